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
