//! SQLite storage, the embedded default: with no configuration Purser keeps its data in a local
//! folder and needs no database server. It passes the same behaviour suite as PostgreSQL.
//!
//! Representation: ids are 16-byte UUID blobs, timestamps integer microseconds since the Unix
//! epoch (UTC), so ordering and time arithmetic stay in integers. The database runs in WAL mode
//! with `synchronous = FULL`: a committed write survives a power cut, as money requires.

mod checkpoint;
mod credits;
mod error;
mod grants;
mod keys;
mod ledger;
mod metering;
mod registry;
mod settlements;
mod tenants;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use purser_domain::repo::StoreHealth;
use purser_domain::{Error, Result};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// The file the embedded default keeps inside its data folder.
pub const DATABASE_FILE: &str = "purser.sqlite3";

/// How the pool is sized, how long a writer waits on a lock, and how large the write-ahead
/// log may grow before the store empties it (see `checkpoint.rs`).
#[derive(Debug, Clone)]
pub struct SqliteStoreOptions {
    pub max_connections: u32,
    pub busy_timeout: Duration,
    pub wal_limit_bytes: u64,
}

impl Default for SqliteStoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            busy_timeout: Duration::from_secs(10),
            wal_limit_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The repositories over one SQLite database file.
#[derive(Clone)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
    _checkpointer: Option<Arc<checkpoint::Checkpointer>>,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

impl SqliteStore {
    /// Opens (creating if needed) the database in `data_dir`, creating the folder too.
    pub async fn open_dir(data_dir: &Path, options: &SqliteStoreOptions) -> Result<Self> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            Error::unavailable(
                format!("creating the data folder {}", data_dir.display()),
                e,
            )
        })?;
        let connect = SqliteConnectOptions::new().filename(data_dir.join(DATABASE_FILE));
        Self::open(connect, options).await
    }

    /// Opens a database from a `sqlite://path` URL.
    pub async fn open_url(url: &str, options: &SqliteStoreOptions) -> Result<Self> {
        if !url.starts_with("sqlite:") {
            return Err(Error::invalid_input("database_url must start with sqlite:"));
        }
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::invalid_input(format!("database_url is not a SQLite URL: {e}")))?;
        Self::open(connect, options).await
    }

    async fn open(connect: SqliteConnectOptions, options: &SqliteStoreOptions) -> Result<Self> {
        let connect = connect
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(options.busy_timeout);
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections)
            .connect_with(connect.clone())
            .await
            .map_err(|e| Error::unavailable("opening the SQLite database", e))?;
        let checkpointer = checkpoint::Checkpointer::start(&connect, options.wal_limit_bytes)
            .await
            .map_err(|e| Error::unavailable("opening the SQLite database", e))?;
        Ok(Self {
            pool,
            _checkpointer: checkpointer.map(Arc::new),
        })
    }

    /// Applies pending migrations. SQLite's file lock serialises concurrent migrators.
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| Error::internal("applying SQLite migrations", e))
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl StoreHealth for SqliteStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| Error::unavailable("querying SQLite", e))
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}

/// A timestamp as stored: microseconds since the Unix epoch.
pub(crate) fn to_micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

pub(crate) fn from_micros(micros: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| Error::internal("decoding a timestamp", format!("{micros} is out of range")))
}
