//! PostgreSQL storage against a real server: the shared behaviour suite, plus what only this
//! backend promises (migrations racing from several instances).

use std::sync::Arc;

use purser_domain::repo::Store;
use purser_store_postgres::{PgStore, PgStoreOptions};
use purser_testkit::postgres::TestDatabase;

async fn fresh_store() -> (Arc<dyn Store>, TestDatabase) {
    let database = TestDatabase::create().await;
    let store = PgStore::connect(database.url(), &PgStoreOptions::default())
        .await
        .expect("connect to the test database");
    store.migrate().await.expect("migrate");
    (Arc::new(store), database)
}

mod suite {
    purser_testkit::store_suite!(super::fresh_store);
}

mod grants {
    purser_testkit::grant_suite!(super::fresh_store);
}

mod credits {
    purser_testkit::credit_suite!(super::fresh_store);
}

mod metering {
    purser_testkit::metering_suite!(super::fresh_store);
}

/// Events of the moment write no day version (concurrent live batches never queue on one row);
/// a late event bumps its own day's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_late_events_bump_a_days_version() {
    let (store, database) = fresh_store().await;
    let pg = PgStore::connect(database.url(), &PgStoreOptions::default())
        .await
        .unwrap();
    purser_testkit::metering_suite::only_late_events_bump_a_days_version(
        store,
        |tenant| async move {
            sqlx::query_as(purser_testkit::metering_suite::DAY_VERSIONS_SQL)
                .bind(tenant)
                .fetch_all(pg.pool())
                .await
                .unwrap()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_starting_at_once_migrate_once() {
    let database = TestDatabase::create().await;
    let mut stores = Vec::new();
    for _ in 0..6 {
        stores.push(
            PgStore::connect(database.url(), &PgStoreOptions::default())
                .await
                .unwrap(),
        );
    }
    let results = futures::future::join_all(stores.iter().map(|s| s.migrate())).await;
    for result in results {
        result.expect("every instance's migration succeeds");
    }
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(stores[0].pool())
        .await
        .unwrap();
    let files = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../migrations/postgres"
    ))
    .unwrap()
    .count();
    assert_eq!(
        applied as usize, files,
        "each migration applied exactly once"
    );
    for store in &stores {
        store.close().await;
    }
}

#[tokio::test]
async fn an_unreachable_server_is_reported_as_unavailable() {
    let options = PgStoreOptions {
        acquire_timeout: std::time::Duration::from_millis(500),
        ..PgStoreOptions::default()
    };
    let err = match PgStore::connect("postgres://postgres@127.0.0.1:1/none", &options).await {
        Ok(_) => panic!("connected to a closed port"),
        Err(err) => err,
    };
    assert_eq!(err.code(), purser_domain::ErrorCode::Unavailable);
    let err = match PgStore::connect("mysql://nope", &options).await {
        Ok(_) => panic!("accepted a MySQL URL"),
        Err(err) => err,
    };
    assert_eq!(err.code(), purser_domain::ErrorCode::InvalidInput);
}

/// The ledger's rules hold in the database itself, whatever code writes to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_refuses_unbalanced_or_rewritten_transfers() {
    let (store, database) = fresh_store().await;
    purser_testkit::store_suite::seed_confirmed_settlement(&store).await;
    let pg = PgStore::connect(database.url(), &PgStoreOptions::default())
        .await
        .unwrap();
    let statements = [
        "UPDATE ledger_transfers SET amount = amount * 2",
        "UPDATE ledger_transfers SET state = 'voided', resolved_at = now() WHERE state = 'posted'",
        "DELETE FROM ledger_transfers",
        // One account on both sides.
        "INSERT INTO ledger_transfers (id, tenant_id, network, asset, debit_account_id, credit_account_id,
             amount, state, code, created_at, resolved_at)
         SELECT gen_random_uuid(), tenant_id, network, asset, id, id, 1, 'posted', 'payout', now(), now()
         FROM ledger_accounts LIMIT 1",
        // A zero amount.
        "INSERT INTO ledger_transfers (id, tenant_id, network, asset, debit_account_id, credit_account_id,
             amount, state, code, created_at, resolved_at)
         SELECT gen_random_uuid(), d.tenant_id, d.network, d.asset, d.id, c.id, 0, 'posted', 'payout', now(), now()
         FROM ledger_accounts d, ledger_accounts c WHERE d.id <> c.id LIMIT 1",
        // Accounts of another asset than the transfer's.
        "INSERT INTO ledger_transfers (id, tenant_id, network, asset, debit_account_id, credit_account_id,
             amount, state, code, created_at, resolved_at)
         SELECT gen_random_uuid(), d.tenant_id, d.network, '0x0000000000000000000000000000000000000000',
                d.id, c.id, 5, 'posted', 'payout', now(), now()
         FROM ledger_accounts d, ledger_accounts c WHERE d.id <> c.id LIMIT 1",
        // Posted without a resolution time.
        "INSERT INTO ledger_transfers (id, tenant_id, network, asset, debit_account_id, credit_account_id,
             amount, state, code, created_at)
         SELECT gen_random_uuid(), d.tenant_id, d.network, d.asset, d.id, c.id, 5, 'posted', 'payout', now()
         FROM ledger_accounts d, ledger_accounts c WHERE d.id <> c.id LIMIT 1",
    ];
    for sql in statements {
        let err = sqlx::raw_sql(sql).execute(pg.pool()).await.expect_err(sql);
        let code = err
            .as_database_error()
            .and_then(|e| e.code())
            .unwrap_or_default()
            .to_string();
        assert!(
            code.starts_with("23"),
            "refused as an integrity violation, not {code} ({err}): {sql}"
        );
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger_transfers")
        .fetch_one(pg.pool())
        .await
        .unwrap();
    assert_eq!(
        count, 2,
        "the settlement's two transfers are still there, unchanged"
    );
}

/// The credit rules hold in the database itself: no negative balance, a resolved reservation
/// never changes, none is deleted, a payer's account names its wallet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_refuses_overdrafts_and_rewritten_reservations() {
    let (store, database) = fresh_store().await;
    purser_testkit::credit_suite::seed_resolved_reservations(&store).await;
    let pg = PgStore::connect(database.url(), &PgStoreOptions::default())
        .await
        .unwrap();
    let statements = [
        "UPDATE credit_balances SET available = available - 1000000",
        "UPDATE credit_balances SET reserved = reserved - 1000000",
        "UPDATE credit_reservations SET state = 'released', committed_amount = NULL WHERE state = 'committed'",
        "UPDATE credit_reservations SET state = 'committed', committed_amount = 1 WHERE state = 'released'",
        "UPDATE credit_reservations SET amount = amount + 1",
        "DELETE FROM credit_reservations",
        "INSERT INTO ledger_accounts (id, tenant_id, network, asset, kind, created_at)
         SELECT gen_random_uuid(), tenant_id, network, asset, 'payer_credit', now()
         FROM ledger_accounts LIMIT 1",
        "INSERT INTO ledger_accounts (id, tenant_id, network, asset, kind, wallet, created_at)
         SELECT gen_random_uuid(), tenant_id, network, asset, kind, wallet, now()
         FROM ledger_accounts WHERE kind = 'payer_credit' LIMIT 1",
    ];
    for sql in statements {
        let err = sqlx::raw_sql(sql).execute(pg.pool()).await.expect_err(sql);
        let code = err
            .as_database_error()
            .and_then(|e| e.code())
            .unwrap_or_default()
            .to_string();
        assert!(
            code.starts_with("23"),
            "refused as an integrity violation, not {code} ({err}): {sql}"
        );
    }
}

/// Tenants are never deleted, nor given another id (migration 0012): storing usage events
/// looks the tenant up once per batch rather than through a foreign key, which is exact only
/// while a tenant that exists goes on existing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_refuses_deleting_a_tenant() {
    use purser_domain::tenant::{NewTenant, TenantKind, TenantName};

    let (store, database) = fresh_store().await;
    let tenant = store
        .create_tenant(NewTenant::new(
            TenantName::parse("Kept").unwrap(),
            TenantKind::Merchant,
        ))
        .await
        .unwrap();
    let pg = PgStore::connect(database.url(), &PgStoreOptions::default())
        .await
        .unwrap();
    for statement in [
        "DELETE FROM tenants",
        "UPDATE tenants SET id = gen_random_uuid()",
        "TRUNCATE tenants CASCADE",
    ] {
        let err = sqlx::query(statement).execute(pg.pool()).await.unwrap_err();
        assert!(
            err.to_string().contains("never deleted"),
            "{statement}: {err}"
        );
    }
    sqlx::query("UPDATE tenants SET status = 'suspended'")
        .execute(pg.pool())
        .await
        .unwrap();
    assert!(store.get_tenant(tenant.id).await.unwrap().is_some());
}
