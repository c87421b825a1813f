//! SQLite storage: the shared behaviour suite over a fresh database file per test, plus what
//! only the embedded backend promises (durability settings, folder creation).

use std::sync::Arc;

use purser_domain::repo::Store;
use purser_store_sqlite::{SqliteStore, SqliteStoreOptions};
use tempfile::TempDir;

async fn fresh_store() -> (Arc<dyn Store>, TempDir) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let store = SqliteStore::open_dir(dir.path(), &SqliteStoreOptions::default())
        .await
        .expect("open SQLite");
    store.migrate().await.expect("migrate");
    (Arc::new(store), dir)
}

mod suite {
    purser_testkit::store_suite!(super::fresh_store);
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
