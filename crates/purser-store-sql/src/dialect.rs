//! The dialect: what the shared repositories ask of a backend, and the statement ([`Sql`]),
//! argument ([`Arg`]) and row ([`Cols`]) types they speak through.
//!
//! Generic code cannot bind or decode a value for an unknown `sqlx::Database` without restating
//! `Encode`, `Decode` and `Type` bounds on every function that does (a trait's where-clauses are
//! not implied), so every sqlx operation that needs such bounds is a dialect method: binding an
//! [`Arg`], reading a column of a known Rust type, and running a statement on a connection.
//! Everything above those methods is written once.

use std::borrow::Cow;
use std::fmt::{Display, Write};
use std::future::Future;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use purser_domain::money::Amount;
use purser_domain::{Error, Result};
use sqlx::error::BoxDynError;
use sqlx::{Arguments, AssertSqlSafe, Database, Pool, Transaction};
use uuid::Uuid;

use crate::SqlStore;

/// A dialect's connection: what a pooled connection or a transaction dereferences to.
pub type Conn<D> = <<D as Dialect>::Db as Database>::Connection;
/// A row as the dialect's driver returns it.
pub type Row<D> = <<D as Dialect>::Db as Database>::Row;
/// The arguments of one statement, as the dialect's driver encodes them.
pub type Args<D> = <<D as Dialect>::Db as Database>::Arguments;

/// How one SQL backend differs from the others in shape: its driver, a few spellings, how values
/// travel and how a write transaction starts. A dialect value is also what the backend keeps
/// beside its pool (SQLite's checkpointer), so it lives as long as the store.
pub trait Dialect: Clone + Send + Sync + Sized + 'static {
    type Db: Database;
    /// How a store of this backend is opened (pool size, timeouts).
    type Options: Send + Sync;

    /// The backend's name, for logs and readiness output (`StoreHealth::backend`).
    const NAME: &'static str;
    /// The larger and the smaller of two values (`GREATEST`, or SQLite's two-argument `MAX`).
    const GREATEST: &'static str;
    const LEAST: &'static str;
    /// Equality under which NULL equals NULL.
    const IS_NOT_DISTINCT_FROM: &'static str;
    /// Written after a numeric or JSON column read as text (`::text` where such columns have
    /// types of their own, nothing where they are text already).
    const AS_TEXT: &'static str;
    /// Written after a parameter (bound as text) that fills a numeric column or joins numeric
    /// arithmetic, and after one that fills a JSON column.
    const AS_NUMERIC: &'static str;
    const AS_JSON: &'static str;
    /// The false of a boolean column (`false`, or SQLite's 0).
    const FALSE: &'static str;
    /// Written after a `SELECT` whose rows the transaction changes next (` FOR UPDATE`), or
    /// nothing where a write transaction already excludes every other writer.
    const FOR_UPDATE: &'static str;

    /// Adds `arg` to a statement's arguments.
    fn bind(args: &mut Args<Self>, arg: Arg<'_>) -> std::result::Result<(), BoxDynError>;

    /// A column of a row, NULL as `None`. Ids are `uuid` or 16-byte blobs, times `timestamptz`
    /// or integer microseconds: each dialect reads its own.
    fn opt_uuid(row: &Row<Self>, column: &str) -> sqlx::Result<Option<Uuid>>;
    fn opt_text(row: &Row<Self>, column: &str) -> sqlx::Result<Option<String>>;
    fn opt_i64(row: &Row<Self>, column: &str) -> sqlx::Result<Option<i64>>;
    fn opt_i32(row: &Row<Self>, column: &str) -> sqlx::Result<Option<i32>>;
    fn opt_bool(row: &Row<Self>, column: &str) -> sqlx::Result<Option<bool>>;
    fn opt_time(row: &Row<Self>, column: &str) -> sqlx::Result<Option<DateTime<Utc>>>;
    fn opt_bytes(row: &Row<Self>, column: &str) -> sqlx::Result<Option<Vec<u8>>>;

    /// Runs a statement on a connection (a pooled one, or a transaction's).
    fn fetch_all<'c>(
        conn: &'c mut Conn<Self>,
        sql: Sql<Self>,
    ) -> impl Future<Output = sqlx::Result<Vec<Row<Self>>>> + Send + 'c;
    fn fetch_optional<'c>(
        conn: &'c mut Conn<Self>,
        sql: Sql<Self>,
    ) -> impl Future<Output = sqlx::Result<Option<Row<Self>>>> + Send + 'c;
    /// Runs a statement and answers how many rows it changed.
    fn execute<'c>(
        conn: &'c mut Conn<Self>,
        sql: Sql<Self>,
    ) -> impl Future<Output = sqlx::Result<u64>> + Send + 'c;

    /// Starts a transaction that will write: PostgreSQL's `BEGIN`, SQLite's `BEGIN IMMEDIATE`
    /// (which takes the single write lock before the first read).
    fn begin_write(
        pool: &Pool<Self::Db>,
    ) -> impl Future<Output = sqlx::Result<Transaction<'static, Self::Db>>> + Send + '_;

    /// A driver error as a domain error: constraint violations by name, connection trouble as
    /// `unavailable`, the rest `internal` with `context` for the log.
    fn map_error(context: &'static str, error: sqlx::Error) -> Error;

    /// Opens a store from its URL.
    fn open_url(
        url: &str,
        options: &Self::Options,
    ) -> impl Future<Output = Result<SqlStore<Self>>> + Send;

    /// Applies pending migrations.
    fn migrate(pool: &Pool<Self::Db>) -> impl Future<Output = Result<()>> + Send + '_;
}

/// `D::map_error` for `context`, as `map_err` takes it.
pub fn db_error<D: Dialect>(context: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |error| D::map_error(context, error)
}

/// A value bound to a statement. Borrowed text and bytes are encoded when bound, so nothing is
/// copied for them before the driver does.
#[derive(Debug, Clone)]
pub enum Arg<'a> {
    Uuid(Option<Uuid>),
    Text(Option<&'a str>),
    String(Option<String>),
    I64(Option<i64>),
    I32(Option<i32>),
    Bool(Option<bool>),
    Time(Option<DateTime<Utc>>),
    Bytes(&'a [u8]),
}

macro_rules! arg_from {
    ($($ty:ty => $variant:ident),* $(,)?) => {$(
        impl<'a> From<$ty> for Arg<'a> {
            fn from(value: $ty) -> Self {
                Arg::$variant(Some(value))
            }
        }

        impl<'a> From<Option<$ty>> for Arg<'a> {
            fn from(value: Option<$ty>) -> Self {
                Arg::$variant(value)
            }
        }
    )*};
}

arg_from! {
    Uuid => Uuid,
    &'a str => Text,
    String => String,
    i64 => I64,
    i32 => I32,
    bool => Bool,
    DateTime<Utc> => Time,
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(value: &'a String) -> Self {
        Arg::Text(Some(value))
    }
}

impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(value: &'a Option<String>) -> Self {
        Arg::Text(value.as_deref())
    }
}

impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(value: &'a [u8]) -> Self {
        Arg::Bytes(value)
    }
}

impl<'a> From<&'a Vec<u8>> for Arg<'a> {
    fn from(value: &'a Vec<u8>) -> Self {
        Arg::Bytes(value)
    }
}

/// An amount travels as its decimal text (into `numeric` with a cast, or into a text column).
impl From<Amount> for Arg<'_> {
    fn from(value: Amount) -> Self {
        Arg::String(Some(value.to_string()))
    }
}

impl From<Option<Amount>> for Arg<'_> {
    fn from(value: Option<Amount>) -> Self {
        Arg::String(value.map(|amount| amount.to_string()))
    }
}

/// A statement with its arguments, built by shared code and run by the dialect. Parameters are
/// numbered (`$1`, `$2`, ...) on every backend: text written with them takes its values from
/// [`Sql::arg`] in order, and [`Sql::push_arg`] writes the next number itself, so the two mix.
pub struct Sql<D: Dialect> {
    text: Cow<'static, str>,
    args: std::result::Result<Args<D>, BoxDynError>,
}

impl<D: Dialect> Sql<D> {
    /// A statement from its text: a `&'static str` is used as is, a `String` when the text is
    /// assembled.
    pub fn new(text: impl Into<Cow<'static, str>>) -> Self {
        Self {
            text: text.into(),
            args: Ok(Args::<D>::default()),
        }
    }

    /// Binds the next numbered parameter the text names.
    pub fn arg<'a>(mut self, value: impl Into<Arg<'a>>) -> Self {
        self.add(value.into());
        self
    }

    /// Appends text.
    pub fn push(&mut self, text: impl Display) -> &mut Self {
        // Writing into a String cannot fail.
        let _ = write!(self.text.to_mut(), "{text}");
        self
    }

    /// Appends the next parameter's placeholder and binds it.
    pub fn push_arg<'a>(&mut self, value: impl Into<Arg<'a>>) -> &mut Self {
        self.add(value.into());
        let number = self.args.as_ref().map_or(0, |args| args.len());
        self.push(format_args!("${number}"))
    }

    fn add(&mut self, arg: Arg<'_>) {
        if let Ok(args) = &mut self.args
            && let Err(error) = D::bind(args, arg)
        {
            self.args = Err(error);
        }
    }

    /// The text and arguments, for the dialect to run (`sqlx::query_with`); an argument that
    /// failed to encode is reported here, when the statement would run.
    pub fn into_parts(self) -> sqlx::Result<(AssertSqlSafe<Cow<'static, str>>, Args<D>)> {
        let args = self.args.map_err(sqlx::Error::Encode)?;
        Ok((AssertSqlSafe(self.text), args))
    }

    pub async fn fetch_all(self, conn: &mut Conn<D>, context: &'static str) -> Result<Vec<Row<D>>> {
        D::fetch_all(conn, self)
            .await
            .map_err(db_error::<D>(context))
    }

    pub async fn fetch_optional(
        self,
        conn: &mut Conn<D>,
        context: &'static str,
    ) -> Result<Option<Row<D>>> {
        D::fetch_optional(conn, self)
            .await
            .map_err(db_error::<D>(context))
    }

    /// The first row; a statement that answers none is an internal error.
    pub async fn fetch_one(self, conn: &mut Conn<D>, context: &'static str) -> Result<Row<D>> {
        D::fetch_optional(conn, self)
            .await
            .and_then(|row| row.ok_or(sqlx::Error::RowNotFound))
            .map_err(db_error::<D>(context))
    }

    /// Runs the statement; answers how many rows it changed.
    pub async fn execute(self, conn: &mut Conn<D>, context: &'static str) -> Result<u64> {
        D::execute(conn, self).await.map_err(db_error::<D>(context))
    }
}

/// Typed reads of a row's columns by name, through the dialect.
pub struct Cols<'r, D: Dialect> {
    row: &'r Row<D>,
}

fn decoded<T>(result: sqlx::Result<Option<T>>, column: &str) -> Result<Option<T>> {
    result.map_err(|error| Error::internal(format!("decoding column {column}"), error))
}

fn required<T>(value: Result<Option<T>>, column: &str) -> Result<T> {
    value?.ok_or_else(|| Error::internal(format!("decoding column {column}"), "an unexpected NULL"))
}

impl<'r, D: Dialect> Cols<'r, D> {
    pub fn new(row: &'r Row<D>) -> Self {
        Self { row }
    }

    pub fn opt_uuid(&self, column: &str) -> Result<Option<Uuid>> {
        decoded(D::opt_uuid(self.row, column), column)
    }

    pub fn uuid(&self, column: &str) -> Result<Uuid> {
        required(self.opt_uuid(column), column)
    }

    pub fn opt_text(&self, column: &str) -> Result<Option<String>> {
        decoded(D::opt_text(self.row, column), column)
    }

    pub fn text(&self, column: &str) -> Result<String> {
        required(self.opt_text(column), column)
    }

    pub fn opt_i64(&self, column: &str) -> Result<Option<i64>> {
        decoded(D::opt_i64(self.row, column), column)
    }

    pub fn i64(&self, column: &str) -> Result<i64> {
        required(self.opt_i64(column), column)
    }

    pub fn i32(&self, column: &str) -> Result<i32> {
        required(decoded(D::opt_i32(self.row, column), column), column)
    }

    pub fn bool(&self, column: &str) -> Result<bool> {
        required(decoded(D::opt_bool(self.row, column), column), column)
    }

    pub fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>> {
        decoded(D::opt_time(self.row, column), column)
    }

    pub fn time(&self, column: &str) -> Result<DateTime<Utc>> {
        required(self.opt_time(column), column)
    }

    pub fn bytes(&self, column: &str) -> Result<Vec<u8>> {
        required(decoded(D::opt_bytes(self.row, column), column), column)
    }

    /// A text column parsed into a domain value (an enum's name, an amount); a value that does
    /// not parse is a corrupt row, reported with `what`.
    pub fn parse<T: FromStr<Err = Error>>(&self, column: &str, what: &'static str) -> Result<T> {
        self.text(column)?
            .parse()
            .map_err(|error| corrupt_row(what, error))
    }

    pub fn opt_parse<T: FromStr<Err = Error>>(
        &self,
        column: &str,
        what: &'static str,
    ) -> Result<Option<T>> {
        self.opt_text(column)?
            .map(|text| text.parse().map_err(|error| corrupt_row(what, error)))
            .transpose()
    }

    /// An amount: `numeric` read as text, or the decimal text SQLite keeps.
    pub fn amount(&self, column: &str) -> Result<Amount> {
        self.parse(column, "decoding an amount")
    }

    pub fn opt_amount(&self, column: &str) -> Result<Option<Amount>> {
        self.opt_parse(column, "decoding an amount")
    }
}

/// A row that does not decode into the domain (an unknown enum text): a bug or a tampered row.
pub fn corrupt_row(what: &'static str, error: Error) -> Error {
    Error::internal(what, error)
}

/// A stored JSON value that does not decode: a bug or a tampered row.
pub fn corrupt_json(what: &'static str) -> impl Fn(serde_json::Error) -> Error {
    move |error| corrupt_row(what, Error::internal(what, error))
}

/// A value as JSON text, to bind.
pub fn json_text(value: &impl serde::Serialize, what: &'static str) -> Result<String> {
    serde_json::to_string(value).map_err(|error| Error::internal(what, error))
}
