//! Purser's SQL storage, written once for every backend: [`SqlStore`] implements the domain's
//! repository traits over a [`Dialect`], which each backend crate supplies
//! (`purser-store-postgres`, `purser-store-sqlite`).
//!
//! A dialect says how a backend differs in shape (binding and reading values, running a
//! statement, starting a write transaction, naming a violated constraint, a few spellings), and
//! each module's own dialect trait (`SettlementDialect`, `CreditDialect`, ...) holds the few
//! repository pieces that differ in substance: catalog search, exact sums, credit locking, the
//! metering batch insert and usage aggregation. SQL lives next to the repository method that
//! runs it, here when both backends run it, in the backend crate when only one does.
//!
//! Statements are built with [`Sql`] (numbered parameters on every backend) and rows read with
//! [`Cols`]; neither is generic over a value type, so no sqlx bound spreads past the dialect.

mod dialect;

pub mod credits;
pub mod escrow;
pub mod grants;
pub mod keys;
pub mod ledger;
pub mod metering;
pub mod registry;
pub mod routing;
pub mod settlements;
pub mod tenants;

use std::future::Future;
use std::path::Path;

use async_trait::async_trait;
use purser_domain::page::PageRequest;
use purser_domain::repo::StoreHealth;
use purser_domain::{Error, Result};
use sqlx::pool::PoolConnection;
use sqlx::{Pool, Transaction};

pub use dialect::{
    Arg, Args, Cols, Conn, Dialect, Row, Sql, corrupt_json, corrupt_row, db_error, json_text,
};

/// The repositories over one database of dialect `D`. Backend crates name it
/// (`PgStore = SqlStore<PgDialect>`).
pub struct SqlStore<D: Dialect> {
    pool: Pool<D::Db>,
    dialect: D,
}

impl<D: Dialect> Clone for SqlStore<D> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            dialect: self.dialect.clone(),
        }
    }
}

/// A backend kept in a file, opened from a folder.
pub trait FileDialect: Dialect {
    /// Opens (creating if needed) the database in `data_dir`, creating the folder too.
    fn open_dir(
        data_dir: &Path,
        options: &Self::Options,
    ) -> impl Future<Output = Result<SqlStore<Self>>> + Send;
}

impl<D: Dialect> SqlStore<D> {
    /// A store over `pool`, with what the dialect keeps beside it.
    pub fn with_dialect(pool: Pool<D::Db>, dialect: D) -> Self {
        Self { pool, dialect }
    }

    /// Connects to the database at `url`, failing fast when it is unreachable.
    pub async fn connect(url: &str, options: &D::Options) -> Result<Self> {
        D::open_url(url, options).await
    }

    /// [`SqlStore::connect`], by the name an embedded backend's URL is opened with.
    pub async fn open_url(url: &str, options: &D::Options) -> Result<Self> {
        D::open_url(url, options).await
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<()> {
        D::migrate(&self.pool).await
    }

    pub fn pool(&self) -> &Pool<D::Db> {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A pooled connection, for statements that need no transaction.
    pub async fn acquire(&self, context: &'static str) -> Result<PoolConnection<D::Db>> {
        self.pool.acquire().await.map_err(db_error::<D>(context))
    }

    /// A transaction that will write (see [`Dialect::begin_write`]).
    pub async fn begin_write(&self) -> Result<Transaction<'static, D::Db>> {
        D::begin_write(&self.pool)
            .await
            .map_err(db_error::<D>("starting a write transaction"))
    }

    /// Runs `sql` on a pooled connection.
    pub async fn fetch_all(&self, sql: Sql<D>, context: &'static str) -> Result<Vec<Row<D>>> {
        let mut conn = self.acquire(context).await?;
        sql.fetch_all(&mut conn, context).await
    }

    pub async fn fetch_optional(
        &self,
        sql: Sql<D>,
        context: &'static str,
    ) -> Result<Option<Row<D>>> {
        let mut conn = self.acquire(context).await?;
        sql.fetch_optional(&mut conn, context).await
    }

    pub async fn fetch_one(&self, sql: Sql<D>, context: &'static str) -> Result<Row<D>> {
        let mut conn = self.acquire(context).await?;
        sql.fetch_one(&mut conn, context).await
    }

    pub async fn execute(&self, sql: Sql<D>, context: &'static str) -> Result<u64> {
        let mut conn = self.acquire(context).await?;
        sql.execute(&mut conn, context).await
    }
}

impl<D: FileDialect> SqlStore<D> {
    /// Opens (creating if needed) the database in `data_dir`, creating the folder too.
    pub async fn open_dir(data_dir: &Path, options: &D::Options) -> Result<Self> {
        D::open_dir(data_dir, options).await
    }
}

impl<D: Dialect + Default> SqlStore<D> {
    pub fn from_pool(pool: Pool<D::Db>) -> Self {
        Self::with_dialect(pool, D::default())
    }
}

/// Commits `tx`.
pub async fn commit<D: Dialect>(tx: Transaction<'_, D::Db>) -> Result<()> {
    tx.commit()
        .await
        .map_err(db_error::<D>("committing a transaction"))
}

/// Appends keyset conditions, order and limit for `page` to a query that ends in a `WHERE`
/// clause over a table keyed by `id`.
pub fn push_page<D: Dialect>(sql: &mut Sql<D>, page: &PageRequest) {
    if let Some(after) = page.after {
        sql.push(" AND id > ").push_arg(after);
    }
    if let Some(before) = page.before {
        sql.push(" AND id < ").push_arg(before);
    }
    sql.push(if page.from_end {
        " ORDER BY id DESC"
    } else {
        " ORDER BY id ASC"
    });
    sql.push(" LIMIT ").push_arg(page.fetch_limit());
}

/// Like [`push_page`], for a newest-first listing: `after` is a cursor in that order, so it
/// selects smaller (older) ids.
pub fn push_page_newest_first<D: Dialect>(sql: &mut Sql<D>, page: &PageRequest) {
    if let Some(after) = page.after {
        sql.push(" AND id < ").push_arg(after);
    }
    if let Some(before) = page.before {
        sql.push(" AND id > ").push_arg(before);
    }
    sql.push(if page.from_end {
        " ORDER BY id ASC"
    } else {
        " ORDER BY id DESC"
    });
    sql.push(" LIMIT ").push_arg(page.fetch_limit());
}

/// A `u64` the schema keeps in a signed 64-bit column; `invalid_input` naming `what` beyond it.
pub fn to_i64(value: u64, what: &'static str) -> Result<i64> {
    i64::try_from(value).map_err(|_| Error::invalid_input(format!("{what} is too large")))
}

#[async_trait]
impl<D: Dialect> StoreHealth for SqlStore<D> {
    async fn ping(&self) -> Result<()> {
        let unavailable = |e| Error::unavailable(format!("pinging {}", D::NAME), e);
        let mut conn = self.pool.acquire().await.map_err(unavailable)?;
        D::execute(&mut conn, Sql::new("SELECT 1"))
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    fn backend(&self) -> &'static str {
        D::NAME
    }
}
