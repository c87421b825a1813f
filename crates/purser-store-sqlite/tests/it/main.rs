//! SQLite storage: the shared behaviour suite over a fresh database file per test, plus what
//! only the embedded backend promises (durability settings, folder creation).

use std::sync::Arc;

use purser_domain::repo::Store;
use purser_store_sqlite::{SqliteStore, SqliteStoreOptions};
use tempfile::TempDir;

/// A migrated store in a folder of its own, for tests that also reach into the database.
async fn fresh_sqlite() -> (SqliteStore, TempDir) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let store = SqliteStore::open_dir(dir.path(), &SqliteStoreOptions::default())
        .await
        .expect("open SQLite");
    store.migrate().await.expect("migrate");
    (store, dir)
}

async fn fresh_store() -> (Arc<dyn Store>, TempDir) {
    let (store, dir) = fresh_sqlite().await;
    (Arc::new(store), dir)
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

#[tokio::test]
async fn the_embedded_default_creates_its_folder_and_keeps_data_durably() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("nested").join("purser-data");
    let store = SqliteStore::open_dir(&data_dir, &SqliteStoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    assert!(data_dir.join(purser_store_sqlite::DATABASE_FILE).is_file());
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(journal, "wal");
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(synchronous, 2, "synchronous = FULL");
    let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(foreign_keys, 1);
    store.close().await;

    // Reopening finds the migrations applied and runs them again harmlessly.
    let again = SqliteStore::open_dir(&data_dir, &SqliteStoreOptions::default())
        .await
        .unwrap();
    again.migrate().await.unwrap();
}

#[tokio::test]
async fn urls_must_name_sqlite() {
    let err = match SqliteStore::open_url("postgres://x", &SqliteStoreOptions::default()).await {
        Ok(_) => panic!("accepted a PostgreSQL URL"),
        Err(err) => err,
    };
    assert_eq!(err.code(), purser_domain::ErrorCode::InvalidInput);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("x.db").display());
    let store = SqliteStore::open_url(&url, &SqliteStoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
}

/// Sustained writes do not grow the write-ahead log without end: past its limit the store
/// empties it (SQLite alone would keep the file at its largest size, and under concurrent
/// writers never restart it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_ahead_log_is_emptied_past_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteStoreOptions {
        wal_limit_bytes: 1024 * 1024,
        ..SqliteStoreOptions::default()
    };
    let sqlite = SqliteStore::open_dir(dir.path(), &options).await.unwrap();
    sqlx::raw_sql("CREATE TABLE filler (b BLOB NOT NULL)")
        .execute(sqlite.pool())
        .await
        .unwrap();
    // Four writers, 16 MiB in all: well past SQLite's own checkpoint point (1,000 pages).
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let pool = sqlite.pool().clone();
            tokio::spawn(async move {
                for _ in 0..32 {
                    sqlx::query("INSERT INTO filler (b) VALUES (randomblob(131072))")
                        .execute(&pool)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let log = dir.path().join("purser.sqlite3-wal");
    let size = || std::fs::metadata(&log).map_or(0, |meta| meta.len());
    let mut waited = 0;
    while size() > options.wal_limit_bytes && waited < 100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    assert!(
        size() <= options.wal_limit_bytes,
        "the log still holds {} bytes",
        size()
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM filler")
        .fetch_one(sqlite.pool())
        .await
        .unwrap();
    assert_eq!(rows, 128, "every write is still there");
}

/// Events of the moment write no day version (a write transaction stays short); a late event
/// bumps its own day's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_late_events_bump_a_days_version() {
    let (sqlite, _dir) = fresh_sqlite().await;
    purser_testkit::metering_suite::only_late_events_bump_a_days_version(
        Arc::new(sqlite.clone()),
        |tenant| async move {
            sqlx::query_as(purser_testkit::metering_suite::DAY_VERSIONS_SQL)
                .bind(tenant)
                .fetch_all(sqlite.pool())
                .await
                .unwrap()
        },
    )
    .await;
}

/// The ledger's rules hold in the database itself, whatever code writes to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_refuses_unbalanced_or_rewritten_transfers() {
    let (sqlite, _dir) = fresh_sqlite().await;
    let store: Arc<dyn Store> = Arc::new(sqlite.clone());
    purser_testkit::store_suite::seed_confirmed_settlement(&store).await;
    let statements = [
        "UPDATE ledger_transfers SET amount = '2000'",
        "UPDATE ledger_transfers SET state = 'voided' WHERE state = 'posted'",
        "DELETE FROM ledger_transfers",
        // One account on both sides.
        "INSERT INTO ledger_transfers (id, tenant_id, network, asset, debit_account_id, credit_account_id,
             amount, state, code, created_at, resolved_at)
         SELECT randomblob(16), tenant_id, network, asset, id, id, '1', 'posted', 'payout', 1, 1
         FROM ledger_accounts LIMIT 1",
        // A zero or malformed amount.
        "INSERT INTO ledger_transfers (id, tenant_id, network, asset, debit_account_id, credit_account_id,
             amount, state, code, created_at, resolved_at)
         SELECT randomblob(16), d.tenant_id, d.network, d.asset, d.id, c.id, '0', 'posted', 'payout', 1, 1
         FROM ledger_accounts d, ledger_accounts c WHERE d.id <> c.id LIMIT 1",
        "INSERT INTO ledger_transfers (id, tenant_id, network, asset, debit_account_id, credit_account_id,
             amount, state, code, created_at, resolved_at)
         SELECT randomblob(16), d.tenant_id, d.network, d.asset, d.id, c.id, '-5', 'posted', 'payout', 1, 1
         FROM ledger_accounts d, ledger_accounts c WHERE d.id <> c.id LIMIT 1",
        // Accounts of another asset than the transfer's.
        "INSERT INTO ledger_transfers (id, tenant_id, network, asset, debit_account_id, credit_account_id,
             amount, state, code, created_at, resolved_at)
         SELECT randomblob(16), d.tenant_id, d.network, '0x0000000000000000000000000000000000000000',
                d.id, c.id, '5', 'posted', 'payout', 1, 1
         FROM ledger_accounts d, ledger_accounts c WHERE d.id <> c.id LIMIT 1",
        // Posted without a resolution time.
        "INSERT INTO ledger_transfers (id, tenant_id, network, asset, debit_account_id, credit_account_id,
             amount, state, code, created_at)
         SELECT randomblob(16), d.tenant_id, d.network, d.asset, d.id, c.id, '5', 'posted', 'payout', 1
         FROM ledger_accounts d, ledger_accounts c WHERE d.id <> c.id LIMIT 1",
    ];
    for sql in statements {
        let err = sqlx::raw_sql(sql)
            .execute(sqlite.pool())
            .await
            .expect_err(sql);
        let code: i32 = err
            .as_database_error()
            .and_then(|e| e.code())
            .and_then(|c| c.parse().ok())
            .unwrap_or_default();
        assert_eq!(
            code & 0xff,
            19,
            "refused as SQLITE_CONSTRAINT, not {code} ({err}): {sql}"
        );
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger_transfers")
        .fetch_one(sqlite.pool())
        .await
        .unwrap();
    assert_eq!(
        count, 2,
        "the settlement's two transfers are still there, unchanged"
    );
}

/// The credit rules hold in the database itself: no malformed (negative) balance, a resolved
/// reservation never changes, none is deleted, a payer's account names its wallet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_refuses_overdrafts_and_rewritten_reservations() {
    let (store, dir) = fresh_store().await;
    purser_testkit::credit_suite::seed_resolved_reservations(&store).await;
    let sqlite = SqliteStore::open_dir(dir.path(), &SqliteStoreOptions::default())
        .await
        .unwrap();
    let statements = [
        "UPDATE credit_balances SET available = '-1'",
        "UPDATE credit_balances SET reserved = '-5'",
        "UPDATE credit_reservations SET state = 'released', committed_amount = NULL WHERE state = 'committed'",
        "UPDATE credit_reservations SET state = 'committed', committed_amount = '1' WHERE state = 'released'",
        "UPDATE credit_reservations SET amount = '999'",
        "DELETE FROM credit_reservations",
        "INSERT INTO ledger_accounts (id, tenant_id, network, asset, kind, created_at)
         SELECT randomblob(16), tenant_id, network, asset, 'payer_credit', 1
         FROM ledger_accounts LIMIT 1",
        "INSERT INTO ledger_accounts (id, tenant_id, network, asset, kind, wallet, created_at)
         SELECT randomblob(16), tenant_id, network, asset, kind, wallet, 1
         FROM ledger_accounts WHERE kind = 'payer_credit' LIMIT 1",
        "INSERT INTO ledger_accounts (id, tenant_id, network, asset, kind, created_at)
         SELECT randomblob(16), tenant_id, network, asset, kind, 1
         FROM ledger_accounts WHERE kind = 'credit_earned' LIMIT 1",
    ];
    for sql in statements {
        let err = sqlx::raw_sql(sql)
            .execute(sqlite.pool())
            .await
            .expect_err(sql);
        let code: i32 = err
            .as_database_error()
            .and_then(|e| e.code())
            .and_then(|c| c.parse().ok())
            .unwrap_or_default();
        assert_eq!(
            code & 0xff,
            19,
            "refused as SQLITE_CONSTRAINT, not {code} ({err}): {sql}"
        );
    }
}

/// Migration 0005 rebuilds the ledger tables: the rows written before it survive unchanged,
/// and the rebuilt tables keep their rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_credits_migration_keeps_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_dir(dir.path(), &SqliteStoreOptions::default())
        .await
        .unwrap();
    let migrations =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/sqlite");
    let migrator = sqlx::migrate::Migrator::new(migrations).await.unwrap();
    migrator.run_to(4, store.pool()).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO tenants VALUES (x'00000000000000000000000000000001', 'a', 'a', 'merchant', 'active', 1, 1);
         INSERT INTO ledger_accounts VALUES (x'000000000000000000000000000000a1', x'00000000000000000000000000000001',
             'eip155:1', '0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'payer_clearing', 1);
         INSERT INTO ledger_accounts VALUES (x'000000000000000000000000000000a2', x'00000000000000000000000000000001',
             'eip155:1', '0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'settlement_in_flight', 1);
         INSERT INTO ledger_accounts VALUES (x'000000000000000000000000000000a3', x'00000000000000000000000000000001',
             'eip155:1', '0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'merchant_receivable', 1);
         INSERT INTO ledger_transfers VALUES (x'000000000000000000000000000000f1', x'00000000000000000000000000000001',
             'eip155:1', '0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', x'000000000000000000000000000000a1',
             x'000000000000000000000000000000a2', '100', 'posted', 'settlement', NULL, 1, 2);
         INSERT INTO ledger_transfers VALUES (x'000000000000000000000000000000f2', x'00000000000000000000000000000001',
             'eip155:1', '0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', x'000000000000000000000000000000a2',
             x'000000000000000000000000000000a3', '100', 'posted', 'payout', NULL, 2, 2);
         INSERT INTO ledger_transfers VALUES (x'000000000000000000000000000000f3', x'00000000000000000000000000000001',
             'eip155:1', '0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', x'000000000000000000000000000000a1',
             x'000000000000000000000000000000a2', '7', 'pending', 'settlement', NULL, 3, NULL);",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let snapshot = |pool: sqlx::SqlitePool| async move {
        // One text per row, every column in it.
        let transfers: Vec<String> = sqlx::query_scalar(
            "SELECT hex(id) || '|' || hex(debit_account_id) || '|' || hex(credit_account_id) || '|'
                 || amount || '|' || state || '|' || code || '|' || created_at || '|'
                 || ifnull(resolved_at, '') FROM ledger_transfers ORDER BY id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let accounts: Vec<(Vec<u8>, String, i64)> =
            sqlx::query_as("SELECT id, kind, created_at FROM ledger_accounts ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap();
        (transfers, accounts)
    };
    let before = snapshot(store.pool().clone()).await;
    store.migrate().await.unwrap();
    assert_eq!(snapshot(store.pool().clone()).await, before);
    let foreign_key_errors: Vec<(String,)> = sqlx::query_as("PRAGMA foreign_key_check")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert!(foreign_key_errors.is_empty(), "{foreign_key_errors:?}");
    for sql in [
        "DELETE FROM ledger_transfers",
        "UPDATE ledger_transfers SET state = 'voided', resolved_at = 3 WHERE state = 'posted'",
        "UPDATE ledger_transfers SET amount = '8' WHERE state = 'pending'",
    ] {
        sqlx::raw_sql(sql)
            .execute(store.pool())
            .await
            .expect_err(sql);
    }
    // The pending transfer still resolves once.
    sqlx::raw_sql(
        "UPDATE ledger_transfers SET state = 'posted', resolved_at = 4 WHERE state = 'pending'",
    )
    .execute(store.pool())
    .await
    .unwrap();
}

/// Tenants are never deleted, nor given another id (migration 0012), as on PostgreSQL, where
/// storing usage events relies on it; here the foreign keys refuse it only for tenants that
/// own rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_refuses_deleting_a_tenant() {
    use purser_domain::repo::TenantRepository as _;
    use purser_domain::tenant::{NewTenant, TenantKind, TenantName};

    let (store, _dir) = fresh_sqlite().await;
    let tenant = store
        .create_tenant(NewTenant::new(
            TenantName::parse("Kept").unwrap(),
            TenantKind::Merchant,
        ))
        .await
        .unwrap();
    for statement in [
        "DELETE FROM tenants",
        "UPDATE tenants SET id = randomblob(16)",
    ] {
        let err = sqlx::query(statement)
            .execute(store.pool())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("never deleted"),
            "{statement}: {err}"
        );
    }
    // Everything else about a tenant still changes.
    sqlx::query("UPDATE tenants SET status = 'suspended'")
        .execute(store.pool())
        .await
        .unwrap();
    assert!(store.get_tenant(tenant.id).await.unwrap().is_some());
}
