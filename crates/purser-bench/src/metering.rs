//! `purser-bench --suite metering`: usage-event ingestion and usage queries, against a real
//! `purser serve` (SQLite by default, a fresh PostgreSQL database with `--postgres`) and against
//! the store alone.
//!
//! What one run does, each part on a database of its own (`--parts` picks them):
//!
//! 1. **http**: creates the tenant and its keys with the CLI, three meters on the event type
//!    `llm.tokens` (`tokens`: SUM of `$.tokens` by `model`; `events`: COUNT by `model`; `users`:
//!    UNIQUE_COUNT of `$.user`) through the store, and serves Purser. Then, after an unmeasured
//!    warm-up, for each batch size and concurrency, sends `POST /v1/events` batches
//!    (`application/cloudevents-batch+json`) for `--ingest-seconds`, every event new (a random
//!    UUID as its `id`, one of four sources: the unique key is checked on every insert). Every
//!    answer must be 200 with `accepted` equal to the batch size. After each phase the `events`
//!    meter's count, asked through `GET /v1/meters/events/query`, must equal every event
//!    acknowledged so far.
//! 2. **store**: the same batches, sizes and concurrencies through
//!    `MeteringRepository::insert_usage_events` of a `PgStore` / `SqliteStore` opened in the
//!    harness against a fresh database (16 connections, as `purser serve` opens it): no HTTP, no
//!    JSON, no validation. The count is checked through the store's `aggregate_usage`.
//! 3. **query**: loads `--query-events` events straight through `insert_usage_events`
//!    (`--load-batch` events per call, `--load-writers` concurrent writers, batches taken in time
//!    order) spread evenly over the `--days` UTC days before today, over `--subjects` subjects,
//!    five models and 10,000 users (`data: {"tokens": 1..2000, "model": m, "user": u}`). On
//!    PostgreSQL it then runs `VACUUM (ANALYZE) usage_events` (what autovacuum would do after
//!    such a load). Then it serves Purser on that database and times usage queries over HTTP
//!    (and one GraphQL `ratedUsage`), each once cold and then `--query-runs` times, each answer
//!    checked against what the loader wrote (sums, counts, distinct users).
//!
//! The load generator runs in this process, on the same cores as Purser (and PostgreSQL). It
//! is [`crate::wire`]'s keep-alive client, one connection per in-flight request; each batch's
//! body is built just before it is sent (outside the timed span), so building costs the
//! harness's CPU, reported beside Purser's.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use clap::ValueEnum;
use purser_domain::auth::TenantScope;
use purser_domain::id::TenantId;
use purser_domain::metering::query::Tz;
use purser_domain::metering::{
    Aggregation, Meter, MeterPrice, NewMeter, NewUsageEvent, PriceModel, UsageQuery, ValuePath,
};
use purser_domain::repo::Store;
use purser_store_postgres::{PgStore, PgStoreOptions};
use purser_store_sqlite::{SqliteStore, SqliteStoreOptions};
use purser_testkit::postgres::TestDatabase;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::stats::{PhaseResult, cpu_time};
use crate::targets::{PurserSetup, PurserStorage, Target, sqlite_data_dir};
use crate::{Args, wire};

/// The CloudEvents `type` every event has, and every meter counts.
const EVENT_TYPE: &str = "llm.tokens";
/// The `model` dimension's values.
const MODELS: [&str; 5] = [
    "gpt-4o",
    "gpt-4o-mini",
    "o3",
    "claude-sonnet-4",
    "llama-3.3-70b",
];
/// Distinct `source`s (services reporting usage).
const SOURCES: u64 = 4;
/// Distinct `data.user` values.
const USERS: u64 = 10_000;
/// The largest `data.tokens`.
const MAX_TOKENS: u64 = 2_000;
/// How many failure messages a phase keeps for the report.
const KEPT_FAILURES: usize = 5;
/// Connections of the harness's own store: what `purser serve` opens by default.
const STORE_CONNECTIONS: u32 = 16;
/// The subject whose hourly usage query (d) asks for.
const ONE_SUBJECT: u64 = 42;

/// Which parts of the metering suite run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Part {
    /// `POST /v1/events` against `purser serve`.
    Http,
    /// `insert_usage_events` in the harness, no HTTP.
    Store,
    /// A bulk load, then usage queries over HTTP.
    Query,
}

/// The metering suite's options.
#[derive(Debug, Clone, clap::Args)]
pub struct MeteringArgs {
    /// The parts to run (metering).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = vec![Part::Http, Part::Store, Part::Query])]
    pub parts: Vec<Part>,
    /// Seconds each ingestion phase runs (metering).
    #[arg(long, default_value_t = 15)]
    pub ingest_seconds: u64,
    /// Events per ingestion request, one phase per value (metering).
    #[arg(long, value_delimiter = ',', default_values_t = vec![100usize, 1_000])]
    pub batch_sizes: Vec<usize>,
    /// Ingestion requests in flight, one phase per value (metering).
    #[arg(long, value_delimiter = ',', default_values_t = vec![1usize, 4, 16])]
    pub ingest_concurrency: Vec<usize>,
    /// Events the query part loads (metering).
    #[arg(long, default_value_t = 10_000_000)]
    pub query_events: u64,
    /// Events per `insert_usage_events` call of the load (metering).
    #[arg(long, default_value_t = 10_000)]
    pub load_batch: usize,
    /// Concurrent writers of the load (metering).
    #[arg(long, default_value_t = 4)]
    pub load_writers: usize,
    /// Timed runs of each usage query, after one cold run (metering).
    #[arg(long, default_value_t = 7)]
    pub query_runs: usize,
    /// Distinct subjects (customers) of the events (metering).
    #[arg(long, default_value_t = 1_000)]
    pub subjects: u64,
    /// UTC days the loaded events span, ending at today's midnight (metering).
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// How event ids are made (metering): `random` UUIDs, or `ordered` ones that grow with
    /// each event (as UUIDv7s and ULIDs do), for a diagnostic of the key index's cost.
    #[arg(long, value_enum, default_value_t = IdOrder::Random)]
    pub event_ids: IdOrder,
}

/// How event ids are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IdOrder {
    /// Random 128 bits, as UUIDv4: each insert lands anywhere in the key index.
    Random,
    /// The event's number first, then random bits: each insert lands at the index's end.
    Ordered,
}

// ---------------------------------------------------------------------------------------------
// Synthetic events

/// SplitMix64's finalizer: a bijection of `u64`, so distinct inputs give distinct outputs.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Event `n` of a run, all but its time: every field a pure function of `n` (and the subject
/// count), so the loader can tally what it wrote and the queries can be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Synth {
    /// The id's 128 bits: `hi` alone is distinct per `n`, so ids never repeat within a run.
    hi: u64,
    lo: u64,
    source: u64,
    subject: u64,
    model: usize,
    tokens: u64,
    user: u64,
    /// Pseudo-random bits for the caller (the time's jitter).
    spare: u64,
}

impl Synth {
    fn with_ids(n: u64, subjects: u64, ids: IdOrder) -> Self {
        let hi = match ids {
            IdOrder::Random => mix(n),
            IdOrder::Ordered => n,
        };
        let lo = mix(mix(n) ^ 0x5DEE_CE66_D1CE_5EED);
        let r = mix(lo);
        let s = mix(r);
        Self {
            hi,
            lo,
            source: r % SOURCES,
            subject: (r >> 8) % subjects.max(1),
            model: ((r >> 40) % MODELS.len() as u64) as usize,
            tokens: 1 + s % MAX_TOKENS,
            user: (s >> 16) % USERS,
            spare: mix(s),
        }
    }

    /// A random (version-less) UUID, as CloudEvents producers usually make ids.
    fn write_id(&self, out: &mut impl std::io::Write) {
        let _ = write!(
            out,
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            self.hi >> 32,
            (self.hi >> 16) & 0xffff,
            self.hi & 0xffff,
            self.lo >> 48,
            self.lo & 0xffff_ffff_ffff
        );
    }

    fn id(&self) -> String {
        let mut out = Vec::with_capacity(36);
        self.write_id(&mut out);
        String::from_utf8(out).expect("hex is UTF-8")
    }

    fn source(&self) -> String {
        format!("//bench.purser.dev/svc-{}", self.source)
    }

    fn subject(&self) -> String {
        subject_name(self.subject)
    }

    fn user(&self) -> String {
        format!("user-{:05}", self.user)
    }

    /// The event as a structured-mode CloudEvent, appended to `out`.
    fn write_cloud_event(&self, out: &mut Vec<u8>, time: &str) {
        out.extend_from_slice(br#"{"specversion":"1.0","id":""#);
        self.write_id(out);
        let _ = write!(
            out,
            r#"","source":"//bench.purser.dev/svc-{}","type":"{EVENT_TYPE}","subject":"customer-{:04}","time":"{time}","data":{{"tokens":{},"model":"{}","user":"user-{:05}"}}}}"#,
            self.source, self.subject, self.tokens, MODELS[self.model], self.user
        );
    }

    /// The event as the store takes it.
    fn usage_event(&self, time: DateTime<Utc>) -> NewUsageEvent {
        NewUsageEvent {
            source: self.source(),
            id: self.id(),
            event_type: EVENT_TYPE.to_owned(),
            subject: self.subject(),
            time,
            data: json!({ "tokens": self.tokens, "model": MODELS[self.model], "user": self.user() }),
        }
    }
}

/// What a run's events look like, beyond their number.
#[derive(Debug, Clone, Copy)]
struct Shape {
    subjects: u64,
    ids: IdOrder,
}

impl Shape {
    fn of(args: &MeteringArgs) -> Self {
        Self {
            subjects: args.subjects,
            ids: args.event_ids,
        }
    }

    fn event(self, n: u64) -> Synth {
        Synth::with_ids(n, self.subjects, self.ids)
    }
}

fn subject_name(n: u64) -> String {
    format!("customer-{n:04}")
}

/// Times for live ingestion: within the hour before the phase started (far inside
/// `max_event_age_seconds`), as RFC 3339 text, one per second.
struct RecentTimes {
    text: Vec<String>,
    at: Vec<DateTime<Utc>>,
}

impl RecentTimes {
    fn before(now: DateTime<Utc>) -> Self {
        let now = now.trunc_subsecs(0);
        let at: Vec<DateTime<Utc>> = (0..3_600)
            .map(|s| now - chrono::Duration::seconds(s))
            .collect();
        let text = at
            .iter()
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
            .collect();
        Self { text, at }
    }

    fn pick(&self, synth: &Synth) -> usize {
        (synth.spare % self.at.len() as u64) as usize
    }
}

/// A batch of `size` events from `first` on, as a `cloudevents-batch+json` body.
fn batch_body(out: &mut Vec<u8>, first: u64, size: usize, shape: Shape, times: &RecentTimes) {
    out.clear();
    out.push(b'[');
    for n in first..first + size as u64 {
        if n > first {
            out.push(b',');
        }
        let synth = shape.event(n);
        synth.write_cloud_event(out, &times.text[times.pick(&synth)]);
    }
    out.push(b']');
}

/// The same batch as the store takes it.
fn batch_events(first: u64, size: usize, shape: Shape, times: &RecentTimes) -> Vec<NewUsageEvent> {
    (first..first + size as u64)
        .map(|n| {
            let synth = shape.event(n);
            synth.usage_event(times.at[times.pick(&synth)])
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Databases

/// One part's database: a fresh PostgreSQL database or a SQLite file in the part's folder, with
/// the tenant and a `resource_server` key made by the CLI.
struct PartDb {
    dir: PathBuf,
    /// Dropped (the database with it) when the part is done.
    database: Option<TestDatabase>,
    setup: PurserSetup,
    tenant: TenantId,
    db: Db,
}

#[derive(Clone)]
enum Db {
    Pg(PgStore),
    Sqlite(SqliteStore),
}

impl Db {
    fn store(&self) -> Arc<dyn Store> {
        match self {
            Db::Pg(store) => Arc::new(store.clone()),
            Db::Sqlite(store) => Arc::new(store.clone()),
        }
    }

    fn pg(&self) -> Option<&PgStore> {
        match self {
            Db::Pg(store) => Some(store),
            Db::Sqlite(_) => None,
        }
    }
}

impl PartDb {
    async fn create(args: &Args, root: &Path, name: &str) -> anyhow::Result<Self> {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir)?;
        let database = if args.postgres {
            Some(TestDatabase::create().await)
        } else {
            None
        };
        let storage = match &database {
            Some(db) => PurserStorage::Postgres(db.url().to_owned()),
            None => PurserStorage::Sqlite,
        };
        let setup = PurserSetup::prepare_with_rails(&args.purser, &dir, "", &storage, None).await?;
        let tenant: TenantId = setup
            .tenant
            .parse()
            .with_context(|| format!("`purser tenant create` printed {:?}", setup.tenant))?;
        let db = match &storage {
            PurserStorage::Sqlite => {
                let store = SqliteStore::open_dir(
                    &sqlite_data_dir(&dir),
                    &SqliteStoreOptions {
                        max_connections: STORE_CONNECTIONS,
                        ..SqliteStoreOptions::default()
                    },
                )
                .await?;
                store.migrate().await?;
                Db::Sqlite(store)
            }
            PurserStorage::Postgres(url) => {
                let store = PgStore::connect(
                    url,
                    &PgStoreOptions {
                        max_connections: STORE_CONNECTIONS,
                        ..PgStoreOptions::default()
                    },
                )
                .await?;
                store.migrate().await?;
                Db::Pg(store)
            }
        };
        Ok(Self {
            dir,
            database,
            setup,
            tenant,
            db,
        })
    }

    fn scope(&self) -> TenantScope {
        TenantScope::trusted(self.tenant)
    }

    /// The three meters every part has (`tokens` priced, for `ratedUsage`); answers the COUNT
    /// one, `events`.
    async fn create_meters(&self) -> anyhow::Result<Meter> {
        let store = self.db.store();
        let path = |p: &str| ValuePath::parse(p).expect("a valid path");
        let meter = |slug: &str, aggregation, value: Option<&str>, by_model: bool| NewMeter {
            slug: slug.into(),
            name: format!("bench {slug}"),
            description: None,
            event_type: EVENT_TYPE.into(),
            aggregation,
            value: value.map(path),
            group_by: if by_model {
                [("model".to_owned(), path("$.model"))].into()
            } else {
                Default::default()
            },
            price: None,
        };
        let now = Utc::now();
        let mut tokens = meter("tokens", Aggregation::Sum, Some("$.tokens"), true);
        tokens.price = Some(MeterPrice {
            model: PriceModel::Standard {
                unit_amount: "0.000002".parse()?,
            },
            free_units: "10000".parse()?,
        });
        store.create_meter(self.scope(), &tokens, now).await?;
        let users = meter("users", Aggregation::UniqueCount, Some("$.user"), false);
        store.create_meter(self.scope(), &users, now).await?;
        let events = meter("events", Aggregation::Count, None, true);
        Ok(store.create_meter(self.scope(), &events, now).await?)
    }

    /// The events of `meter`'s type in `[from, to)`, counted through the store.
    async fn count(
        &self,
        meter: &Meter,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> anyhow::Result<u64> {
        let query = UsageQuery {
            from,
            to,
            window: None,
            time_zone: Tz::UTC,
            subjects: vec![],
            filters: Default::default(),
            group_by: vec![],
            as_of: None,
        };
        let plan = query.plan(meter)?;
        let cells = self
            .db
            .store()
            .aggregate_usage(self.scope(), &plan.scan)
            .await?;
        Ok(cells.iter().map(|c| c.count).sum())
    }

    /// The database's size on disk: table and indexes (PostgreSQL) or the files (SQLite).
    async fn size(&self) -> String {
        match &self.db {
            Db::Pg(store) => {
                let sizes: Result<(i64, i64), _> = sqlx::query_as(
                    "SELECT pg_table_size('usage_events'), pg_indexes_size('usage_events')",
                )
                .fetch_one(store.pool())
                .await;
                match sizes {
                    Ok((table, indexes)) => format!(
                        "usage_events {} + indexes {}",
                        mib(table as u64),
                        mib(indexes as u64)
                    ),
                    Err(e) => format!("unknown ({e})"),
                }
            }
            Db::Sqlite(_) => {
                // Each file apart: the WAL's share tells how far checkpoints kept up.
                let mut files: Vec<(String, u64)> = std::fs::read_dir(sqlite_data_dir(&self.dir))
                    .map(|entries| {
                        entries
                            .flatten()
                            .filter_map(|e| {
                                let len = e.metadata().ok()?.len();
                                Some((e.file_name().to_string_lossy().into_owned(), len))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                files.sort();
                let total: u64 = files.iter().map(|(_, len)| len).sum();
                let each: Vec<String> = files
                    .iter()
                    .map(|(name, len)| format!("{name} {}", mib(*len)))
                    .collect();
                format!("database files {} ({})", mib(total), each.join(", "))
            }
        }
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// PostgreSQL's WAL position and checkpoints so far (both server-wide).
async fn wal_position(db: &Db) -> Option<(i64, i64)> {
    let store = db.pg()?;
    sqlx::query_as(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint,
                (SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter)",
    )
    .fetch_one(store.pool())
    .await
    .ok()
}

/// The server's version and the settings that bound writes.
async fn pg_settings(store: &PgStore) -> String {
    let row: Result<(String, String), _> = sqlx::query_as(
        "SELECT split_part(version(), ' on ', 1),
                string_agg(name || ' = ' || setting || coalesce(unit, ''), ', ' ORDER BY name)
         FROM pg_settings WHERE name IN ('shared_buffers', 'synchronous_commit', 'fsync',
             'wal_buffers', 'max_wal_size', 'checkpoint_timeout', 'full_page_writes',
             'commit_delay', 'wal_compression', 'max_parallel_workers_per_gather', 'work_mem')",
    )
    .fetch_one(store.pool())
    .await;
    match row {
        Ok((version, settings)) => format!("{version}; {settings}"),
        Err(e) => format!("unknown ({e})"),
    }
}

// ---------------------------------------------------------------------------------------------
// CPU

/// CPU time used so far by every process named `postgres` (the server and its backends).
fn postgres_cpu() -> Option<Duration> {
    let mut total = None;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) else {
            continue;
        };
        if comm.trim() == "postgres"
            && let Some(cpu) = cpu_time(pid)
        {
            total = Some(total.unwrap_or(Duration::ZERO) + cpu);
        }
    }
    total
}

/// CPU time the whole machine has been busy so far (first line of `/proc/stat`: user, nice,
/// system, irq, softirq, steal).
fn machine_busy() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    let busy: u64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| ticks.get(i))
        .sum();
    Some(Duration::from_millis(busy * 10))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// The processes a phase's CPU is read from.
#[derive(Clone, Copy)]
struct Processes {
    purser: Option<u32>,
    postgres: bool,
}

/// CPU used: Purser, the harness (this process), PostgreSQL, and the rest of the machine.
type Cpu = [Option<Duration>; 4];

impl Processes {
    fn read(self) -> Cpu {
        [
            self.purser.and_then(cpu_time),
            cpu_time(std::process::id()),
            if self.postgres { postgres_cpu() } else { None },
            machine_busy(),
        ]
    }

    fn used(before: Cpu, after: Cpu) -> Cpu {
        let mut used: Cpu = std::array::from_fn(|i| match (before[i], after[i]) {
            (Some(b), Some(a)) => Some(a.saturating_sub(b)),
            _ => None,
        });
        let ours: Duration = used[..3].iter().flatten().sum();
        used[3] = used[3].map(|machine| machine.saturating_sub(ours));
        used
    }
}

// ---------------------------------------------------------------------------------------------
// Ingestion

/// Where a phase's batches go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Http,
    Store,
}

impl Via {
    fn name(self) -> &'static str {
        match self {
            Via::Http => "HTTP",
            Via::Store => "store",
        }
    }
}

/// The fields of a batch answer that are judged.
#[derive(Debug, Deserialize)]
struct BatchAnswer {
    accepted: usize,
    duplicates: usize,
    rejected: usize,
}

/// `Ok(events accepted)` when the whole batch was accepted; otherwise why not.
fn judge_batch(status: u16, body: &[u8], size: usize) -> Result<usize, String> {
    let shown = || String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    if status != 200 {
        return Err(format!("HTTP {status}: {}", shown()));
    }
    let answer: BatchAnswer = serde_json::from_slice(body)
        .map_err(|e| format!("not a batch answer ({e}): {}", shown()))?;
    if answer.accepted == size && answer.duplicates == 0 && answer.rejected == 0 {
        return Ok(size);
    }
    // Name the first event that was not accepted.
    let first = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("events")?
                .as_array()?
                .iter()
                .find(|e| e.get("status").and_then(Value::as_str) != Some("accepted"))
                .cloned()
        })
        .map(|e| e.to_string())
        .unwrap_or_default();
    Err(format!(
        "{} accepted, {} duplicates, {} rejected of {size}; first: {}",
        answer.accepted,
        answer.duplicates,
        answer.rejected,
        first.chars().take(300).collect::<String>()
    ))
}

/// One request's latency and the events it got stored (or why it failed).
type Sample = (Duration, Result<usize, String>);

/// How the phase's workers reach the store.
#[derive(Clone)]
enum Sink {
    Http {
        addr: SocketAddr,
        bearer: Arc<str>,
    },
    Store {
        store: Arc<dyn Store>,
        scope: TenantScope,
    },
}

/// Runs batches of `size` events through `sink` with `concurrency` workers for `duration`,
/// event numbers taken from `next`. Answers every request's sample and the wall time.
async fn drive(
    sink: &Sink,
    size: usize,
    concurrency: usize,
    duration: Duration,
    next: &Arc<AtomicU64>,
    shape: Shape,
) -> anyhow::Result<(Vec<Sample>, Duration)> {
    let workers = concurrency.max(1);
    let ready = Arc::new(tokio::sync::Barrier::new(workers + 1));
    let times = Arc::new(RecentTimes::before(Utc::now()));
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (sink, ready, next, times) =
                (sink.clone(), ready.clone(), next.clone(), times.clone());
            tokio::spawn(async move {
                let mut samples: Vec<Sample> = Vec::new();
                match sink {
                    Sink::Http { addr, bearer } => {
                        let mut connection = wire::Connection::new(addr);
                        let connected = connection.connect().await;
                        ready.wait().await;
                        connected?;
                        let host = addr.to_string();
                        let authorization = format!("Bearer {bearer}");
                        let headers = [
                            ("authorization", authorization.as_str()),
                            ("content-type", "application/cloudevents-batch+json"),
                        ];
                        let mut body = Vec::with_capacity(size * 240 + 2);
                        let deadline = Instant::now() + duration;
                        while Instant::now() < deadline {
                            let first = next.fetch_add(size as u64, Ordering::Relaxed);
                            batch_body(&mut body, first, size, shape, &times);
                            let request =
                                wire::encode("POST", "/v1/events", &host, &headers, &body);
                            let sent = Instant::now();
                            let answer = connection.send(&request).await;
                            let latency = sent.elapsed();
                            let judged =
                                answer.and_then(|(status, body)| judge_batch(status, body, size));
                            samples.push((latency, judged));
                        }
                    }
                    Sink::Store { store, scope } => {
                        ready.wait().await;
                        let deadline = Instant::now() + duration;
                        while Instant::now() < deadline {
                            let first = next.fetch_add(size as u64, Ordering::Relaxed);
                            let events = batch_events(first, size, shape, &times);
                            let sent = Instant::now();
                            let stored =
                                store.insert_usage_events(scope, &events, Utc::now()).await;
                            let latency = sent.elapsed();
                            let judged = match stored {
                                Ok(stored) if stored.len() == size && stored.iter().all(|s| *s) => {
                                    Ok(size)
                                }
                                Ok(stored) => Err(format!(
                                    "{} of {size} stored",
                                    stored.iter().filter(|s| **s).count()
                                )),
                                Err(e) => Err(format!("{}: {}", e.code().as_str(), e.message())),
                            };
                            samples.push((latency, judged));
                        }
                    }
                }
                Ok::<_, String>(samples)
            })
        })
        .collect();
    ready.wait().await;
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut broken = None;
    for worker in futures::future::join_all(handles).await {
        match worker.context("a load worker panicked")? {
            Ok(s) => samples.extend(s),
            Err(why) => broken = Some(why),
        }
    }
    let wall = started.elapsed();
    if let Some(why) = broken {
        bail!("a load worker could not connect: {why}");
    }
    Ok((samples, wall))
}

/// One measured ingestion phase.
struct Ingested {
    path: Via,
    batch: usize,
    concurrency: usize,
    result: PhaseResult,
    /// Events acknowledged stored.
    events: u64,
    cpu: Cpu,
    /// WAL bytes written and checkpoints started during the phase (server-wide).
    wal: Option<(i64, i64)>,
    /// Every event acknowledged so far, and what the database counts.
    stored: (u64, u64),
}

impl Ingested {
    fn events_per_second(&self) -> f64 {
        self.events as f64 / self.result.wall.as_secs_f64().max(1e-9)
    }

    fn print(&self) {
        let r = &self.result;
        eprintln!(
            "  {:<5} batch {:>5} c={:<3} {:>6} req {:>9} events {:>9.0} events/s  p50 {} p99 {} max {} ms  failed {}  stored {}/{}",
            self.path.name(),
            self.batch,
            self.concurrency,
            r.requests,
            self.events,
            self.events_per_second(),
            ms3(r.p50()),
            ms3(r.p99()),
            ms3(r.latencies.last().copied().unwrap_or_default()),
            r.failed(),
            self.stored.1,
            self.stored.0,
        );
        for failure in &r.failures {
            eprintln!("      failure: {failure}");
        }
    }
}

fn ms3(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1_000.0)
}

fn phase_result(samples: Vec<Sample>, wall: Duration) -> (PhaseResult, u64) {
    let mut latencies = Vec::with_capacity(samples.len());
    let (mut ok, mut events) = (0, 0u64);
    let mut failures = Vec::new();
    for (latency, outcome) in samples {
        latencies.push(latency);
        match outcome {
            Ok(n) => {
                ok += 1;
                events += n as u64;
            }
            Err(why) if failures.len() < KEPT_FAILURES => failures.push(why),
            Err(_) => {}
        }
    }
    (PhaseResult::new(latencies, ok, wall, failures), events)
}

/// What counts the stored events after a phase.
enum Counter<'a> {
    /// The `events` meter through `GET /v1/meters/events/query`.
    Http {
        client: &'a reqwest::Client,
        base: &'a str,
        key: &'a str,
    },
    /// The `events` meter through the store's `aggregate_usage`.
    Store { part: &'a PartDb, meter: &'a Meter },
}

impl Counter<'_> {
    async fn count(&self, from: DateTime<Utc>) -> anyhow::Result<u64> {
        let to = Utc::now() + chrono::Duration::hours(1);
        match self {
            Counter::Http { client, base, key } => {
                let url = format!(
                    "{base}/v1/meters/events/query?from={}&to={}",
                    instant(from),
                    instant(to)
                );
                let answer = get_json(client, &url, key).await?;
                Ok(row_values(&answer)?.iter().map(|v| *v as u64).sum())
            }
            Counter::Store { part, meter } => part.count(meter, from, to).await,
        }
    }
}

/// Every phase of one path: each batch size at each concurrency, then the count check.
#[allow(clippy::too_many_arguments)]
async fn ingest_phases(
    args: &Args,
    path: Via,
    sink: &Sink,
    processes: Processes,
    db: &Db,
    counter: &Counter<'_>,
    since: DateTime<Utc>,
    next: &Arc<AtomicU64>,
    acknowledged: &mut u64,
) -> anyhow::Result<Vec<Ingested>> {
    let m = &args.metering;
    let mut measured = Vec::new();
    for &batch in &m.batch_sizes {
        for &concurrency in &m.ingest_concurrency {
            let wal_before = wal_position(db).await;
            let before = processes.read();
            let (samples, wall) = drive(
                sink,
                batch,
                concurrency,
                Duration::from_secs(m.ingest_seconds),
                next,
                Shape::of(m),
            )
            .await?;
            let cpu = Processes::used(before, processes.read());
            let wal = wal_position(db)
                .await
                .zip(wal_before)
                .map(|(a, b)| (a.0 - b.0, a.1 - b.1));
            let (result, events) = phase_result(samples, wall);
            *acknowledged += events;
            let found = counter.count(since).await?;
            let phase = Ingested {
                path,
                batch,
                concurrency,
                result,
                events,
                cpu,
                wal,
                stored: (*acknowledged, found),
            };
            phase.print();
            measured.push(phase);
        }
    }
    Ok(measured)
}

/// Unmeasured: `batches` batches of 100 at concurrency 4 (connections, caches, the meter list).
async fn warm_up(
    sink: &Sink,
    batches: usize,
    next: &Arc<AtomicU64>,
    shape: Shape,
) -> anyhow::Result<u64> {
    let started = Instant::now();
    let mut events = 0u64;
    while events < (batches * 100) as u64 && started.elapsed() < Duration::from_secs(30) {
        let (samples, _) = drive(sink, 100, 4, Duration::from_millis(500), next, shape).await?;
        let (result, n) = phase_result(samples, Duration::ZERO);
        if let Some(failure) = result.failures.first() {
            bail!("ingestion fails while warming up: {failure}");
        }
        events += n;
    }
    Ok(events)
}

// ---------------------------------------------------------------------------------------------
// The 10M load

/// What the loader wrote, to check query answers against.
#[derive(Debug, Clone, Default)]
struct Tally {
    events: u64,
    tokens: u128,
    /// Per subject.
    subject_tokens: Vec<u128>,
    /// Per user: seen.
    users: Vec<bool>,
    /// Events in the last day of the period.
    last_day: u64,
}

impl Tally {
    fn new(subjects: u64) -> Self {
        Self {
            subject_tokens: vec![0; subjects as usize],
            users: vec![false; USERS as usize],
            ..Self::default()
        }
    }

    fn add(&mut self, synth: &Synth, time: DateTime<Utc>, last_day_from: DateTime<Utc>) {
        self.events += 1;
        self.tokens += u128::from(synth.tokens);
        self.subject_tokens[synth.subject as usize] += u128::from(synth.tokens);
        self.users[synth.user as usize] = true;
        if time >= last_day_from {
            self.last_day += 1;
        }
    }

    fn merge(&mut self, other: &Tally) {
        self.events += other.events;
        self.tokens += other.tokens;
        for (a, b) in self.subject_tokens.iter_mut().zip(&other.subject_tokens) {
            *a += b;
        }
        for (a, b) in self.users.iter_mut().zip(&other.users) {
            *a |= b;
        }
        self.last_day += other.last_day;
    }

    fn distinct_users(&self) -> u64 {
        self.users.iter().filter(|u| **u).count() as u64
    }

    fn subjects_with_usage(&self) -> u64 {
        self.subject_tokens.iter().filter(|t| **t > 0).count() as u64
    }
}

/// The period the load spreads its events over: `days` UTC days ending at today's midnight.
#[derive(Debug, Clone, Copy)]
struct Period {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

impl Period {
    fn ending_today(days: u32) -> Self {
        let today = Utc::now()
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc();
        Self {
            from: today - chrono::Duration::days(i64::from(days)),
            to: today,
        }
    }

    /// Event `n` of `total`: evenly spread, so batches taken in order are in time order.
    fn time_of(&self, n: u64, total: u64) -> DateTime<Utc> {
        let span = (self.to - self.from).num_microseconds().unwrap_or(i64::MAX) as u128;
        let offset = span * u128::from(n) / u128::from(total.max(1));
        self.from + chrono::Duration::microseconds(offset as i64)
    }

    fn last_day(&self) -> DateTime<Utc> {
        self.to - chrono::Duration::days(1)
    }
}

struct Loaded {
    tally: Tally,
    wall: Duration,
    cpu: Cpu,
    wal: Option<(i64, i64)>,
    /// `VACUUM (ANALYZE)` afterwards (PostgreSQL).
    vacuum: Option<Duration>,
    size: String,
}

async fn load(args: &Args, part: &PartDb, period: Period) -> anyhow::Result<Loaded> {
    let m = &args.metering;
    let total = m.query_events;
    let batch = m.load_batch.max(1) as u64;
    let batches = total.div_ceil(batch);
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let store = part.db.store();
    let scope = part.scope();
    let subjects = m.subjects;
    let shape = Shape::of(m);
    let processes = Processes {
        purser: None,
        postgres: args.postgres,
    };
    let wal_before = wal_position(&part.db).await;
    let before = processes.read();
    let started = Instant::now();
    let progress = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut last = (Instant::now(), 0u64);
            loop {
                tokio::time::sleep(Duration::from_secs(15)).await;
                let now = (Instant::now(), done.load(Ordering::Relaxed));
                eprintln!(
                    "    {:>10} events loaded, {:>7.0} events/s over the last {:.0} s, {:.0} s in",
                    now.1,
                    (now.1 - last.1) as f64 / (now.0 - last.0).as_secs_f64(),
                    (now.0 - last.0).as_secs_f64(),
                    (now.0 - started).as_secs_f64()
                );
                last = now;
            }
        })
    };
    let handles: Vec<_> = (0..m.load_writers.max(1))
        .map(|_| {
            let (next, done, store) = (next.clone(), done.clone(), store.clone());
            tokio::spawn(async move {
                let mut tally = Tally::new(subjects);
                let last_day = period.last_day();
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= batches {
                        break;
                    }
                    let range = k * batch..((k + 1) * batch).min(total);
                    let mut part_tally = Tally::new(subjects);
                    let events: Vec<NewUsageEvent> = range
                        .map(|n| {
                            let synth = shape.event(n);
                            let time = period.time_of(n, total);
                            part_tally.add(&synth, time, last_day);
                            synth.usage_event(time)
                        })
                        .collect();
                    let stored = store
                        .insert_usage_events(scope, &events, Utc::now())
                        .await
                        .map_err(|e| anyhow::anyhow!("loading batch {k}: {e}"))?;
                    ensure!(
                        stored.iter().all(|s| *s),
                        "batch {k}: {} of {} stored",
                        stored.iter().filter(|s| **s).count(),
                        stored.len()
                    );
                    tally.merge(&part_tally);
                    done.fetch_add(events.len() as u64, Ordering::Relaxed);
                }
                anyhow::Ok(tally)
            })
        })
        .collect();
    let mut tally = Tally::new(subjects);
    for handle in futures::future::join_all(handles).await {
        tally.merge(&handle.context("a loader panicked")??);
    }
    let wall = started.elapsed();
    progress.abort();
    let cpu = Processes::used(before, processes.read());
    let wal = wal_position(&part.db)
        .await
        .zip(wal_before)
        .map(|(a, b)| (a.0 - b.0, a.1 - b.1));
    let vacuum = match part.db.pg() {
        Some(store) => {
            let started = Instant::now();
            sqlx::raw_sql("VACUUM (ANALYZE) usage_events")
                .execute(store.pool())
                .await
                .context("VACUUM (ANALYZE) usage_events")?;
            Some(started.elapsed())
        }
        None => None,
    };
    Ok(Loaded {
        tally,
        wall,
        cpu,
        wal,
        vacuum,
        size: part.size().await,
    })
}

// ---------------------------------------------------------------------------------------------
// Queries

fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

async fn get_json(client: &reqwest::Client, url: &str, key: &str) -> anyhow::Result<Value> {
    let response = client.get(url).bearer_auth(key).send().await?;
    let status = response.status();
    let body = response.bytes().await?;
    if !status.is_success() {
        bail!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        );
    }
    Ok(serde_json::from_slice(&body)?)
}

/// An integral decimal string (`"123"`, `"123.000"`) as a number.
fn integer(text: &str) -> Option<u128> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if !fraction.bytes().all(|b| b == b'0') {
        return None;
    }
    whole.parse().ok()
}

/// The `value` of every row of a usage answer.
fn row_values(answer: &Value) -> anyhow::Result<Vec<u128>> {
    answer
        .get("rows")
        .and_then(Value::as_array)
        .context("a usage answer without rows")?
        .iter()
        .map(|row| {
            row.get("value")
                .and_then(Value::as_str)
                .and_then(integer)
                .with_context(|| format!("a row without an integral value: {row}"))
        })
        .collect()
}

/// One usage query and what its answer must say.
struct QuerySpec {
    label: &'static str,
    request: QueryRequest,
    check: Check,
}

enum QueryRequest {
    /// `GET {base}{path}`.
    Rest(String),
    /// `POST {base}/graphql` with this body.
    Graphql(Value),
}

/// What an answer must hold.
enum Check {
    /// Rows whose values add up to this.
    Sum(u128),
    /// One row with this value.
    One(u128),
    /// `ratedUsage`: this many subjects whose quantities add up to this.
    Rated { subjects: u64, quantity: u128 },
}

impl Check {
    /// `Ok(rows)` when the answer holds what it must.
    fn judge(&self, answer: &Value) -> anyhow::Result<usize> {
        match self {
            Check::Sum(expected) => {
                let values = row_values(answer)?;
                let sum: u128 = values.iter().sum();
                ensure!(sum == *expected, "rows add up to {sum}, not {expected}");
                Ok(values.len())
            }
            Check::One(expected) => {
                let values = row_values(answer)?;
                ensure!(
                    values.as_slice() == [*expected],
                    "rows {values:?}, not one of {expected}"
                );
                Ok(1)
            }
            Check::Rated { subjects, quantity } => {
                if let Some(errors) = answer.get("errors") {
                    bail!("GraphQL errors: {errors}");
                }
                let rated = answer
                    .pointer("/data/ratedUsage")
                    .and_then(Value::as_array)
                    .context("no data.ratedUsage")?;
                let mut sum = 0u128;
                for line in rated {
                    sum += line
                        .get("quantity")
                        .and_then(Value::as_str)
                        .and_then(integer)
                        .with_context(|| format!("a rated line without a quantity: {line}"))?;
                    ensure!(
                        line.get("amountUsd").and_then(Value::as_str).is_some(),
                        "a rated line without amountUsd: {line}"
                    );
                }
                ensure!(
                    rated.len() as u64 == *subjects && sum == *quantity,
                    "{} subjects rated for {sum}, not {subjects} for {quantity}",
                    rated.len()
                );
                Ok(rated.len())
            }
        }
    }
}

fn query_specs(period: Period, tally: &Tally) -> Vec<QuerySpec> {
    let (from, to) = (instant(period.from), instant(period.to));
    let rest = |meter: &str, rest: &str| {
        QueryRequest::Rest(format!(
            "/v1/meters/{meter}/query?from={from}&to={to}{rest}"
        ))
    };
    let one = subject_name(ONE_SUBJECT);
    vec![
        QuerySpec {
            label: "(a) SUM, whole period, no window",
            request: rest("tokens", ""),
            check: Check::One(tally.tokens),
        },
        QuerySpec {
            label: "(b) SUM by DAY in Europe/Berlin, by model",
            request: rest("tokens", "&window=DAY&tz=Europe/Berlin&groupBy=model"),
            check: Check::Sum(tally.tokens),
        },
        QuerySpec {
            label: "(c) SUM by DAY, by subject",
            request: rest("tokens", "&window=DAY&groupBy=subject"),
            check: Check::Sum(tally.tokens),
        },
        QuerySpec {
            label: "(d) one subject, by HOUR",
            request: rest("tokens", &format!("&window=HOUR&subject={one}")),
            check: Check::Sum(
                tally
                    .subject_tokens
                    .get(ONE_SUBJECT as usize)
                    .copied()
                    .unwrap_or_default(),
            ),
        },
        QuerySpec {
            label: "(e) UNIQUE_COUNT of $.user, whole period",
            request: rest("users", ""),
            check: Check::One(u128::from(tally.distinct_users())),
        },
        QuerySpec {
            label: "(f) COUNT, the last day",
            request: QueryRequest::Rest(format!(
                "/v1/meters/events/query?from={}&to={to}",
                instant(period.last_day())
            )),
            check: Check::One(u128::from(tally.last_day)),
        },
        QuerySpec {
            label: "(g) GraphQL ratedUsage, every subject",
            request: QueryRequest::Graphql(json!({
                "query": "query($from: DateTime!, $to: DateTime!) { ratedUsage(meter: \"tokens\", from: $from, to: $to) { subject quantity amountUsd } }",
                "variables": { "from": from, "to": to },
            })),
            check: Check::Rated {
                subjects: tally.subjects_with_usage(),
                quantity: tally.tokens,
            },
        },
    ]
}

struct Queried {
    label: &'static str,
    /// Rows of the last answer that passed its check.
    rows: Option<usize>,
    /// The last answer's size.
    bytes: usize,
    first: Duration,
    runs: Vec<Duration>,
    /// Runs (the cold one included) whose answer passed its check.
    answered: usize,
    /// CPU over the timed runs.
    cpu: Cpu,
    failures: Vec<String>,
}

/// Sends `spec`'s request once and judges the answer: (latency, body bytes, rows or why not).
async fn ask(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    spec: &QuerySpec,
) -> (Duration, usize, Result<usize, String>) {
    let request = match &spec.request {
        QueryRequest::Rest(path) => client.get(format!("{base}{path}")),
        QueryRequest::Graphql(body) => client.post(format!("{base}/graphql")).json(body),
    };
    let started = Instant::now();
    let answer = async {
        let response = request.bearer_auth(key).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        anyhow::Ok((status, body))
    }
    .await;
    let latency = started.elapsed();
    match answer {
        Err(e) => (latency, 0, Err(format!("request failed: {e:#}"))),
        Ok((status, body)) if !status.is_success() => (
            latency,
            body.len(),
            Err(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            )),
        ),
        Ok((_, body)) => {
            let judged = serde_json::from_slice::<Value>(&body)
                .map_err(anyhow::Error::from)
                .and_then(|answer| spec.check.judge(&answer))
                .map_err(|e| format!("{e:#}"));
            (latency, body.len(), judged)
        }
    }
}

async fn run_queries(
    args: &Args,
    specs: &[QuerySpec],
    base: &str,
    key: &str,
    processes: Processes,
) -> anyhow::Result<Vec<Queried>> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()?;
    let mut measured = Vec::new();
    for spec in specs {
        let (first, mut bytes, judged) = ask(&client, base, key, spec).await;
        let mut failures = Vec::new();
        let (mut rows, mut answered) = (None, 0);
        match judged {
            Ok(n) => (rows, answered) = (Some(n), 1),
            Err(why) => failures.push(format!("cold run: {why}")),
        }
        let before = processes.read();
        let mut runs = Vec::new();
        for _ in 0..args.metering.query_runs {
            let (latency, size, judged) = ask(&client, base, key, spec).await;
            runs.push(latency);
            bytes = size;
            match judged {
                Ok(n) => (rows, answered) = (Some(n), answered + 1),
                Err(why) if failures.len() < KEPT_FAILURES => failures.push(why),
                Err(_) => {}
            }
        }
        let cpu = Processes::used(before, processes.read());
        runs.sort_unstable();
        let queried = Queried {
            label: spec.label,
            rows,
            bytes,
            first,
            runs,
            answered,
            cpu,
            failures,
        };
        eprintln!(
            "  {:<44} rows {:>6} cold {:>9} ms  p50 {:>9} ms  max {:>9} ms  answered {}/{}",
            queried.label,
            queried
                .rows
                .map_or_else(|| "–".to_owned(), |r| r.to_string()),
            ms3(queried.first),
            ms3(queried.p50()),
            ms3(queried.max()),
            queried.answered,
            queried.runs.len() + 1
        );
        for failure in &queried.failures {
            eprintln!("      failure: {failure}");
        }
        measured.push(queried);
    }
    Ok(measured)
}

impl Queried {
    fn p50(&self) -> Duration {
        crate::stats::percentile(&self.runs, 50.0).unwrap_or_default()
    }

    fn max(&self) -> Duration {
        self.runs.last().copied().unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------------
// The run

async fn serve(part: &PartDb, client: &reqwest::Client) -> anyhow::Result<Target> {
    part.setup
        .serve(client, "[registry]\nprobe = false\n")
        .await
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if !args.purser.is_file() {
        bail!(
            "no purser binary at {} (cargo build --release -p purser)",
            args.purser.display()
        );
    }
    let m = &args.metering;
    ensure!(m.subjects > 0, "--subjects must be at least 1");
    ensure!(
        m.batch_sizes.iter().all(|b| *b > 0),
        "--batch-sizes must be positive"
    );
    let load_at_start = load_average();
    let (root, _scratch) = crate::run_dir(&args)?;
    let setup_client = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()?;
    let mut report = Report {
        version: String::new(),
        settings: None,
        ingested: Vec::new(),
        loaded: None,
        queried: Vec::new(),
        loads: (load_at_start, String::new()),
    };
    let run_started = Utc::now() - chrono::Duration::hours(2);

    if m.parts.contains(&Part::Http) {
        eprintln!("http: setting up Purser ({})", args.purser.display());
        let part = PartDb::create(&args, &root, "http").await?;
        if let Some(store) = part.db.pg() {
            report.settings = Some(pg_settings(store).await);
        }
        part.create_meters().await?;
        let reader = part
            .setup
            .create_key("tenant-read", "purser-bench reader")
            .await?;
        let purser = serve(&part, &setup_client).await?;
        report.version = purser.version.clone();
        eprintln!(
            "  Purser ({}) at {}, log {}",
            purser.version,
            part.setup.url(),
            purser.log.display()
        );
        let base = part.setup.url();
        let sink = Sink::Http {
            addr: base
                .strip_prefix("http://")
                .and_then(|a| a.parse().ok())
                .with_context(|| format!("{base} is not http://<ip>:<port>"))?,
            bearer: part.setup.key.as_str().into(),
        };
        let next = Arc::new(AtomicU64::new(0));
        let mut acknowledged = warm_up(&sink, args.warmup, &next, Shape::of(m)).await?;
        eprintln!("  warmed up: {acknowledged} events");
        let counter = Counter::Http {
            client: &setup_client,
            base: &base,
            key: &reader,
        };
        let processes = Processes {
            purser: purser.pid(),
            postgres: args.postgres,
        };
        report.ingested.extend(
            ingest_phases(
                &args,
                Via::Http,
                &sink,
                processes,
                &part.db,
                &counter,
                run_started,
                &next,
                &mut acknowledged,
            )
            .await?,
        );
        eprintln!("  {}", part.size().await);
        purser.stop().await;
        drop(part.database);
    }

    if m.parts.contains(&Part::Store) {
        eprintln!("store: a fresh database, insert_usage_events from the harness");
        let part = PartDb::create(&args, &root, "store").await?;
        if let (None, Some(store)) = (&report.settings, part.db.pg()) {
            report.settings = Some(pg_settings(store).await);
        }
        let events_meter = part.create_meters().await?;
        let sink = Sink::Store {
            store: part.db.store(),
            scope: part.scope(),
        };
        let next = Arc::new(AtomicU64::new(0));
        let mut acknowledged = warm_up(&sink, args.warmup, &next, Shape::of(m)).await?;
        let counter = Counter::Store {
            part: &part,
            meter: &events_meter,
        };
        let processes = Processes {
            purser: None,
            postgres: args.postgres,
        };
        report.ingested.extend(
            ingest_phases(
                &args,
                Via::Store,
                &sink,
                processes,
                &part.db,
                &counter,
                run_started,
                &next,
                &mut acknowledged,
            )
            .await?,
        );
        eprintln!("  {}", part.size().await);
        drop(part.database);
    }

    if m.parts.contains(&Part::Query) {
        eprintln!(
            "query: loading {} events ({} per batch, {} writers)",
            m.query_events, m.load_batch, m.load_writers
        );
        let part = PartDb::create(&args, &root, "query").await?;
        if let (None, Some(store)) = (&report.settings, part.db.pg()) {
            report.settings = Some(pg_settings(store).await);
        }
        part.create_meters().await?;
        let period = Period::ending_today(m.days);
        let loaded = load(&args, &part, period).await?;
        eprintln!(
            "  loaded {} events in {:.1} s ({:.0} events/s){}; {}",
            loaded.tally.events,
            loaded.wall.as_secs_f64(),
            loaded.tally.events as f64 / loaded.wall.as_secs_f64(),
            loaded
                .vacuum
                .map(|v| format!(", VACUUM (ANALYZE) {:.1} s", v.as_secs_f64()))
                .unwrap_or_default(),
            loaded.size
        );
        let reader = part
            .setup
            .create_key("tenant-read", "purser-bench reader")
            .await?;
        let purser = serve(&part, &setup_client).await?;
        if report.version.is_empty() {
            report.version = purser.version.clone();
        }
        let processes = Processes {
            purser: purser.pid(),
            postgres: args.postgres,
        };
        let specs = query_specs(period, &loaded.tally);
        report.queried = run_queries(&args, &specs, &part.setup.url(), &reader, processes).await?;
        report.loaded = Some((loaded, period));
        purser.stop().await;
        drop(part.database);
    }

    report.loads.1 = load_average();
    println!("{}", report.render(&args));
    let failed: usize = report
        .ingested
        .iter()
        .map(|i| i.result.failed() + usize::from(i.stored.0 != i.stored.1))
        .sum::<usize>()
        + report
            .queried
            .iter()
            .map(|q| q.runs.len() + 1 - q.answered)
            .sum::<usize>();
    if failed > 0 {
        bail!("{failed} failure(s): failed requests, wrong counts or wrong answers (see above)");
    }
    Ok(())
}

struct Report {
    version: String,
    settings: Option<String>,
    ingested: Vec<Ingested>,
    loaded: Option<(Loaded, Period)>,
    queried: Vec<Queried>,
    loads: (String, String),
}

fn memory() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let kb: u64 = m
                .lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()?;
            Some(format!("{:.1} GiB", kb as f64 / (1024.0 * 1024.0)))
        })
        .unwrap_or_else(|| "?".to_owned())
}

/// µs per unit of `cpu`, or `–`.
fn per(cpu: Option<Duration>, units: u64) -> String {
    cpu.map_or_else(
        || "–".to_owned(),
        |cpu| format!("{:.1}", cpu.as_secs_f64() * 1e6 / units.max(1) as f64),
    )
}

impl Report {
    fn render(&self, args: &Args) -> String {
        let m = &args.metering;
        let mut out = String::new();
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let _ = writeln!(
            out,
            "purser-bench --suite metering: {cores} cores, {} memory, load average {} before the run and {} after",
            memory(),
            self.loads.0,
            self.loads.1
        );
        let _ = writeln!(
            out,
            "- Purser: {} (commit {}), storage {}, log level info",
            self.version,
            crate::commit(),
            if args.postgres {
                "PostgreSQL"
            } else {
                "SQLite (embedded: WAL, synchronous = FULL)"
            }
        );
        if let Some(settings) = &self.settings {
            let _ = writeln!(out, "- PostgreSQL: {settings}");
        }
        let _ = writeln!(
            out,
            "- events: type `{EVENT_TYPE}`, {} ids, {SOURCES} sources, {} subjects, {} models, {USERS} users, data {{tokens, model, user}}; meters: SUM tokens by model, COUNT by model, UNIQUE_COUNT of user",
            match m.event_ids {
                IdOrder::Random => "random UUID",
                IdOrder::Ordered => "ordered (growing) UUID-shaped",
            },
            m.subjects,
            MODELS.len()
        );
        if !self.ingested.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "Ingestion, {} s per phase (HTTP: `POST /v1/events`, one keep-alive connection per request in flight; store: `insert_usage_events` in the harness, 16 connections). Latency is per request (a batch).",
                m.ingest_seconds
            );
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "| path | batch | in flight | requests | events | events/s | p50 ms | p99 ms | max ms | failed | Purser CPU µs/event | harness CPU µs/event | PostgreSQL CPU µs/event | others, cores | WAL bytes/event | checkpoints | stored = acknowledged |"
            );
            let _ = writeln!(
                out,
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
            );
            for i in &self.ingested {
                let r = &i.result;
                let others = i.cpu[3].map_or_else(
                    || "–".to_owned(),
                    |c| format!("{:.2}", c.as_secs_f64() / r.wall.as_secs_f64().max(1e-9)),
                );
                let (wal, checkpoints) = i.wal.map_or_else(
                    || ("–".to_owned(), "–".to_owned()),
                    |(bytes, checkpoints)| {
                        (
                            format!("{:.0}", bytes as f64 / i.events.max(1) as f64),
                            checkpoints.to_string(),
                        )
                    },
                );
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {others} | {wal} | {checkpoints} | {} |",
                    i.path.name(),
                    i.batch,
                    i.concurrency,
                    r.requests,
                    i.events,
                    i.events_per_second(),
                    ms3(r.p50()),
                    ms3(r.p99()),
                    ms3(r.latencies.last().copied().unwrap_or_default()),
                    r.failed(),
                    per(i.cpu[0], i.events),
                    per(i.cpu[1], i.events),
                    per(i.cpu[2], i.events),
                    if i.stored.0 == i.stored.1 {
                        format!("{} = {} ok", i.stored.1, i.stored.0)
                    } else {
                        format!("{} ≠ {} MISMATCH", i.stored.1, i.stored.0)
                    },
                );
            }
        }
        if let Some((loaded, period)) = &self.loaded {
            let t = &loaded.tally;
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "Load: {} events over {} to {} ({} per `insert_usage_events`, {} writers) in {:.1} s: {:.0} events/s; harness CPU {} µs/event, PostgreSQL CPU {} µs/event{}{}; {}.",
                t.events,
                instant(period.from),
                instant(period.to),
                m.load_batch,
                m.load_writers,
                loaded.wall.as_secs_f64(),
                t.events as f64 / loaded.wall.as_secs_f64().max(1e-9),
                per(loaded.cpu[1], t.events),
                per(loaded.cpu[2], t.events),
                loaded
                    .wal
                    .map(|(bytes, checkpoints)| format!(
                        ", WAL {:.0} bytes/event, {checkpoints} checkpoints",
                        bytes as f64 / t.events.max(1) as f64
                    ))
                    .unwrap_or_default(),
                loaded
                    .vacuum
                    .map(|v| format!("; then VACUUM (ANALYZE) in {:.1} s", v.as_secs_f64()))
                    .unwrap_or_default(),
                loaded.size,
            );
            let _ = writeln!(
                out,
                "Expected: {} tokens in all, {} distinct users, {} subjects with usage, {} events in the last day.",
                t.tokens,
                t.distinct_users(),
                t.subjects_with_usage(),
                t.last_day
            );
        }
        if !self.queried.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "Usage queries over HTTP, one at a time: one cold run, then {} timed runs (p50 and max of those). CPU per timed run; \"the rest\" is the machine's busy time less Purser's and the harness's (PostgreSQL and its parallel workers, and anything else running). Answered: runs whose answer was 200 and checked right.",
                m.query_runs
            );
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "| query | rows | answer bytes | cold ms | p50 ms | max ms | Purser CPU ms/query | the rest, CPU ms/query | answered | first failure |"
            );
            let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
            let runs = m.query_runs.max(1) as f64;
            for q in &self.queried {
                let cpu = |c: Option<Duration>| {
                    c.map_or_else(
                        || "–".to_owned(),
                        |c| format!("{:.1}", c.as_secs_f64() * 1e3 / runs),
                    )
                };
                let rest = match (q.cpu[2], q.cpu[3]) {
                    (None, None) => None,
                    (a, b) => Some(a.unwrap_or_default() + b.unwrap_or_default()),
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {} | {} | {}/{} | {} |",
                    q.label,
                    q.rows.map_or_else(|| "–".to_owned(), |r| r.to_string()),
                    q.bytes,
                    q.first.as_secs_f64() * 1e3,
                    q.p50().as_secs_f64() * 1e3,
                    q.max().as_secs_f64() * 1e3,
                    cpu(q.cpu[0]),
                    cpu(rest),
                    q.answered,
                    q.runs.len() + 1,
                    q.failures
                        .first()
                        .map(|why| why.chars().take(100).collect::<String>())
                        .unwrap_or_default()
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    use purser_domain::metering::event::NewUsageEvent as Event;

    #[test]
    fn ids_do_not_repeat_and_look_like_uuids() {
        let ids: HashSet<String> = (0..100_000)
            .map(|n| Synth::with_ids(n, 1_000, IdOrder::Random).id())
            .collect();
        assert_eq!(ids.len(), 100_000);
        let id = Synth::with_ids(7, 1_000, IdOrder::Random).id();
        assert_eq!(id.len(), 36, "{id}");
        let ordered: Vec<String> = (0..1_000)
            .map(|n| Synth::with_ids(n, 1_000, IdOrder::Ordered).id())
            .collect();
        assert!(ordered.windows(2).all(|w| w[0] < w[1]), "ordered ids grow");
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(id.matches('-').count(), 4, "{id}");
    }

    #[test]
    fn a_batch_body_is_valid_cloud_events_of_the_same_events() {
        let now = "2026-12-01T12:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let times = RecentTimes::before(now);
        let mut body = Vec::new();
        let shape = Shape {
            subjects: 1_000,
            ids: IdOrder::Random,
        };
        batch_body(&mut body, 500, 3, shape, &times);
        let values: Vec<Value> = serde_json::from_slice(&body).unwrap();
        assert_eq!(values.len(), 3);
        let events = batch_events(500, 3, shape, &times);
        for (value, expected) in values.into_iter().zip(events) {
            let read = Event::from_cloud_event(value, now).unwrap();
            assert_eq!(read, expected);
            assert!(read.time <= now && read.time > now - chrono::Duration::hours(1));
            assert!(read.data["tokens"].as_u64().unwrap() >= 1);
        }
    }

    #[test]
    fn batches_are_judged_whole() {
        let answer = |a: usize, d: usize, r: usize| {
            serde_json::to_vec(&json!({
                "accepted": a, "duplicates": d, "rejected": r,
                "events": [{"id": "x", "source": "s", "status": if r > 0 { "rejected" } else { "accepted" }}],
            }))
            .unwrap()
        };
        assert_eq!(judge_batch(200, &answer(100, 0, 0), 100), Ok(100));
        let rejected = judge_batch(200, &answer(99, 0, 1), 100).unwrap_err();
        assert!(
            rejected.contains("1 rejected") && rejected.contains("\"x\""),
            "{rejected}"
        );
        assert!(judge_batch(200, &answer(99, 1, 0), 100).is_err());
        assert!(judge_batch(413, &answer(100, 0, 0), 100).is_err());
        assert!(judge_batch(200, b"{}", 100).is_err());
    }

    #[test]
    fn the_load_spreads_over_the_period_in_order() {
        let period = Period {
            from: "2026-11-01T00:00:00Z".parse().unwrap(),
            to: "2026-12-01T00:00:00Z".parse().unwrap(),
        };
        let total = 10_000_000;
        assert_eq!(period.time_of(0, total), period.from);
        assert!(period.time_of(total - 1, total) < period.to);
        assert!(period.time_of(5, total) <= period.time_of(6, total));
        let mut tally = Tally::new(1_000);
        for n in 0..1_000 {
            let synth = Synth::with_ids(n, 1_000, IdOrder::Random);
            tally.add(&synth, period.time_of(n * 10_000, total), period.last_day());
        }
        // One day in thirty of evenly spread events.
        assert_eq!(tally.last_day, 33);
        assert!(tally.distinct_users() > 900);
        assert_eq!(
            tally.subject_tokens.iter().sum::<u128>(),
            tally.tokens,
            "every token belongs to a subject"
        );
    }

    #[test]
    fn values_are_read_as_integers() {
        assert_eq!(integer("123"), Some(123));
        assert_eq!(integer("123.000"), Some(123));
        assert_eq!(integer("1.5"), None);
        let answer = json!({"rows": [{"value": "2"}, {"value": "40"}]});
        assert_eq!(row_values(&answer).unwrap(), [2, 40]);
        assert_eq!(Check::Sum(42).judge(&answer).unwrap(), 2);
        assert!(Check::One(42).judge(&answer).is_err());
    }
}
