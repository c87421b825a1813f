//! PostgreSQL storage, the production backend: the PostgreSQL dialect of `purser-store-sql`,
//! which holds the repositories. This crate says how PostgreSQL differs: ids are `uuid`,
//! timestamps `timestamptz`, amounts `numeric` and documents `jsonb` (read as text, written
//! from text with a cast); row locks (`FOR UPDATE`) where SQLite has one writer; catalog search
//! over a weighted `tsvector`; exact sums in `numeric`; a reservation in one statement under
//! the balance row's lock; the metering batch insert over `UNNEST`; constraint names to error
//! codes.
//!
//! Migrations live in `migrations/postgres` and are embedded at compile time. sqlx runs them
//! under a PostgreSQL advisory lock, so any number of instances may start at once: one applies
//! them, the others wait and then find nothing to do.

mod credits;
mod error;
mod grants;
mod ledger;
mod metering;
mod registry;
mod settlements;

use std::time::Duration;

use chrono::{DateTime, Utc};
use purser_domain::{Error, Result};
use purser_store_sql::{Arg, Dialect, Sql, SqlStore};
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Arguments, PgConnection, Postgres, Row, Transaction};
use uuid::Uuid;

/// How the connection pool is sized and how long a caller waits for a connection.
#[derive(Debug, Clone)]
pub struct PgStoreOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PgStoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// PostgreSQL, as `purser-store-sql` speaks to it.
#[derive(Debug, Clone, Copy, Default)]
pub struct PgDialect;

/// The repositories over one PostgreSQL database.
pub type PgStore = SqlStore<PgDialect>;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

impl Dialect for PgDialect {
    type Db = Postgres;
    type Options = PgStoreOptions;

    const NAME: &'static str = "postgres";
    const GREATEST: &'static str = "GREATEST";
    const LEAST: &'static str = "LEAST";
    const IS_NOT_DISTINCT_FROM: &'static str = "IS NOT DISTINCT FROM";
    const AS_TEXT: &'static str = "::text";
    const AS_NUMERIC: &'static str = "::numeric";
    const AS_JSON: &'static str = "::jsonb";
    const FALSE: &'static str = "false";
    const FOR_UPDATE: &'static str = " FOR UPDATE";

    fn bind(args: &mut PgArguments, arg: Arg<'_>) -> std::result::Result<(), BoxDynError> {
        match arg {
            Arg::Uuid(value) => args.add(value),
            Arg::Text(value) => args.add(value),
            Arg::String(value) => args.add(value),
            Arg::I64(value) => args.add(value),
            Arg::I32(value) => args.add(value),
            Arg::Bool(value) => args.add(value),
            Arg::Time(value) => args.add(value),
            Arg::Bytes(value) => args.add(value),
        }
    }

    fn opt_uuid(row: &PgRow, column: &str) -> sqlx::Result<Option<Uuid>> {
        row.try_get(column)
    }

    fn opt_text(row: &PgRow, column: &str) -> sqlx::Result<Option<String>> {
        row.try_get(column)
    }

    fn opt_i64(row: &PgRow, column: &str) -> sqlx::Result<Option<i64>> {
        row.try_get(column)
    }

    fn opt_i32(row: &PgRow, column: &str) -> sqlx::Result<Option<i32>> {
        row.try_get(column)
    }

    fn opt_bool(row: &PgRow, column: &str) -> sqlx::Result<Option<bool>> {
        row.try_get(column)
    }

    fn opt_time(row: &PgRow, column: &str) -> sqlx::Result<Option<DateTime<Utc>>> {
        row.try_get(column)
    }

    fn opt_bytes(row: &PgRow, column: &str) -> sqlx::Result<Option<Vec<u8>>> {
        row.try_get(column)
    }

    async fn fetch_all(conn: &mut PgConnection, sql: Sql<Self>) -> sqlx::Result<Vec<PgRow>> {
        let (text, args) = sql.into_parts()?;
        sqlx::query_with(text, args).fetch_all(conn).await
    }

    async fn fetch_optional(
        conn: &mut PgConnection,
        sql: Sql<Self>,
    ) -> sqlx::Result<Option<PgRow>> {
        let (text, args) = sql.into_parts()?;
        sqlx::query_with(text, args).fetch_optional(conn).await
    }

    async fn execute(conn: &mut PgConnection, sql: Sql<Self>) -> sqlx::Result<u64> {
        let (text, args) = sql.into_parts()?;
        let done = sqlx::query_with(text, args).execute(conn).await?;
        Ok(done.rows_affected())
    }

    async fn begin_write(pool: &PgPool) -> sqlx::Result<Transaction<'static, Postgres>> {
        pool.begin().await
    }

    fn map_error(context: &'static str, error: sqlx::Error) -> Error {
        error::map_error(context, error)
    }

    /// Connects, failing fast (within the acquire timeout) when the server is unreachable.
    async fn open_url(url: &str, options: &PgStoreOptions) -> Result<PgStore> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(Error::invalid_input(
                "database_url must start with postgres:// or postgresql://",
            ));
        }
        let connect: PgConnectOptions = url.parse().map_err(|e| {
            Error::invalid_input(format!("database_url is not a PostgreSQL URL: {e}"))
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(|e| Error::unavailable("connecting to PostgreSQL", e))?;
        Ok(PgStore::from_pool(pool))
    }

    /// Applies pending migrations under an advisory lock.
    async fn migrate(pool: &PgPool) -> Result<()> {
        MIGRATOR
            .run(pool)
            .await
            .map_err(|e| Error::internal("applying PostgreSQL migrations", e))
    }
}
