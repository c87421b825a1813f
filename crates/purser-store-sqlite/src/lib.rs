//! SQLite storage, the embedded default: with no configuration Purser keeps its data in a local
//! folder and needs no database server. It is the SQLite dialect of `purser-store-sql`, which
//! holds the repositories and their behaviour suite; this crate says how SQLite differs.
//!
//! Representation: ids are 16-byte UUID blobs, timestamps integer microseconds since the Unix
//! epoch (UTC), so ordering and time arithmetic stay in integers; amounts are decimal text,
//! computed in Rust as `u128`. Every write transaction starts with `BEGIN IMMEDIATE`, taking
//! the single write lock before its first read, where PostgreSQL locks rows. The database runs
//! in WAL mode with `synchronous = FULL` (a committed write survives a power cut, as money
//! requires), with a checkpointer of its own (`checkpoint.rs`).

mod checkpoint;
mod credits;
mod error;
mod grants;
mod ledger;
mod metering;
mod registry;
mod settlements;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use purser_domain::{Error, Result};
use purser_store_sql::{Arg, Dialect, FileDialect, Sql, SqlStore};
use sqlx::error::BoxDynError;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Arguments, Row, Sqlite, SqliteConnection, Transaction};
use uuid::Uuid;

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

/// SQLite, as `purser-store-sql` speaks to it, with the store's checkpointer (stopped when the
/// last clone of the store is dropped).
#[derive(Clone)]
pub struct SqliteDialect {
    _checkpointer: Option<Arc<checkpoint::Checkpointer>>,
}

/// The repositories over one SQLite database file.
pub type SqliteStore = SqlStore<SqliteDialect>;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// Opens the database `connect` names with the store's settings, and starts its checkpointer.
async fn open(connect: SqliteConnectOptions, options: &SqliteStoreOptions) -> Result<SqliteStore> {
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
    Ok(SqliteStore::with_dialect(
        pool,
        SqliteDialect {
            _checkpointer: checkpointer.map(Arc::new),
        },
    ))
}

/// A timestamp as stored: microseconds since the Unix epoch.
pub(crate) fn to_micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

pub(crate) fn from_micros(micros: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| Error::internal("decoding a timestamp", format!("{micros} is out of range")))
}

impl Dialect for SqliteDialect {
    type Db = Sqlite;
    type Options = SqliteStoreOptions;

    const NAME: &'static str = "sqlite";
    const GREATEST: &'static str = "MAX";
    const LEAST: &'static str = "MIN";
    const IS_NOT_DISTINCT_FROM: &'static str = "IS";
    const AS_TEXT: &'static str = "";
    const AS_NUMERIC: &'static str = "";
    const AS_JSON: &'static str = "";
    const FALSE: &'static str = "0";
    const FOR_UPDATE: &'static str = "";

    fn bind(args: &mut SqliteArguments, arg: Arg<'_>) -> std::result::Result<(), BoxDynError> {
        match arg {
            Arg::Uuid(value) => args.add(value),
            Arg::Text(value) => args.add(value),
            Arg::String(value) => args.add(value),
            Arg::I64(value) => args.add(value),
            Arg::I32(value) => args.add(value),
            Arg::Bool(value) => args.add(value),
            Arg::Time(value) => args.add(value.map(to_micros)),
            Arg::Bytes(value) => args.add(value),
        }
    }

    fn opt_uuid(row: &SqliteRow, column: &str) -> sqlx::Result<Option<Uuid>> {
        row.try_get(column)
    }

    fn opt_text(row: &SqliteRow, column: &str) -> sqlx::Result<Option<String>> {
        row.try_get(column)
    }

    fn opt_i64(row: &SqliteRow, column: &str) -> sqlx::Result<Option<i64>> {
        row.try_get(column)
    }

    fn opt_i32(row: &SqliteRow, column: &str) -> sqlx::Result<Option<i32>> {
        row.try_get(column)
    }

    fn opt_bool(row: &SqliteRow, column: &str) -> sqlx::Result<Option<bool>> {
        row.try_get(column)
    }

    fn opt_time(row: &SqliteRow, column: &str) -> sqlx::Result<Option<DateTime<Utc>>> {
        row.try_get::<Option<i64>, _>(column)?
            .map(|micros| from_micros(micros).map_err(|e| sqlx::Error::Decode(e.into())))
            .transpose()
    }

    fn opt_bytes(row: &SqliteRow, column: &str) -> sqlx::Result<Option<Vec<u8>>> {
        row.try_get(column)
    }

    async fn fetch_all(
        conn: &mut SqliteConnection,
        sql: Sql<Self>,
    ) -> sqlx::Result<Vec<SqliteRow>> {
        let (text, args) = sql.into_parts()?;
        sqlx::query_with(text, args).fetch_all(conn).await
    }

    async fn fetch_optional(
        conn: &mut SqliteConnection,
        sql: Sql<Self>,
    ) -> sqlx::Result<Option<SqliteRow>> {
        let (text, args) = sql.into_parts()?;
        sqlx::query_with(text, args).fetch_optional(conn).await
    }

    async fn execute(conn: &mut SqliteConnection, sql: Sql<Self>) -> sqlx::Result<u64> {
        let (text, args) = sql.into_parts()?;
        let done = sqlx::query_with(text, args).execute(conn).await?;
        Ok(done.rows_affected())
    }

    async fn begin_write(pool: &SqlitePool) -> sqlx::Result<Transaction<'static, Sqlite>> {
        pool.begin_with("BEGIN IMMEDIATE").await
    }

    fn map_error(context: &'static str, error: sqlx::Error) -> Error {
        error::map_error(context, error)
    }

    /// Opens a database from a `sqlite://path` URL.
    async fn open_url(url: &str, options: &SqliteStoreOptions) -> Result<SqliteStore> {
        if !url.starts_with("sqlite:") {
            return Err(Error::invalid_input("database_url must start with sqlite:"));
        }
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::invalid_input(format!("database_url is not a SQLite URL: {e}")))?;
        open(connect, options).await
    }

    /// Applies pending migrations. SQLite's file lock serialises concurrent migrators.
    async fn migrate(pool: &SqlitePool) -> Result<()> {
        MIGRATOR
            .run(pool)
            .await
            .map_err(|e| Error::internal("applying SQLite migrations", e))
    }
}

impl FileDialect for SqliteDialect {
    async fn open_dir(data_dir: &Path, options: &SqliteStoreOptions) -> Result<SqliteStore> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            Error::unavailable(
                format!("creating the data folder {}", data_dir.display()),
                e,
            )
        })?;
        let connect = SqliteConnectOptions::new().filename(data_dir.join(DATABASE_FILE));
        open(connect, options).await
    }
}
