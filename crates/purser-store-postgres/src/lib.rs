//! PostgreSQL storage, the production backend. It knows SQL and nothing of HTTP or chains.
//!
//! Migrations live in `migrations/postgres` and are embedded at compile time. sqlx runs them
//! under a PostgreSQL advisory lock, so any number of instances may start at once: one applies
//! them, the others wait and then find nothing to do.

mod credits;
mod error;
mod grants;
mod keys;
mod ledger;
mod metering;
mod registry;
mod settlements;
mod tenants;

use std::time::Duration;

use async_trait::async_trait;
use purser_domain::repo::StoreHealth;
use purser_domain::{Error, Result};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

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

/// The repositories over one PostgreSQL database.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

impl PgStore {
    /// Connects, failing fast (within the acquire timeout) when the server is unreachable.
    pub async fn connect(url: &str, options: &PgStoreOptions) -> Result<Self> {
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
        Ok(Self { pool })
    }

    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Applies pending migrations under an advisory lock.
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| Error::internal("applying PostgreSQL migrations", e))
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl StoreHealth for PgStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| Error::unavailable("pinging PostgreSQL", e))
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }
}
