//! Metering (`purser_domain::metering`): meters, and usage events stored one row per entry.
//!
//! Ingestion is one statement per batch, whatever its size, in its own write transaction: the
//! batch travels as one JSON array bound once, expanded by `json_each` into `INSERT ... ON
//! CONFLICT DO NOTHING RETURNING source, event_id` (no bind-variable limit, one prepared
//! statement, one call into the SQLite thread). A duplicate, of an earlier batch however old,
//! writes nothing; SQLite's single writer orders concurrent batches.
//!
//! Usage queries aggregate in SQL, per fine bucket and group. SQLite has no exact decimal type
//! (`SUM` over REALs rounds, over INTEGERs fails past 2^63), so a value is read as its exact
//! text (a JSON number's own digits, via `->`, or a plain decimal string) and summed as six
//! integer parts of 9 digits around the decimal point (27 digits on each side), which
//! `Decimal` puts back together; integers of up to 17 digits, the usual case, skip the text
//! work. MIN, MAX and LATEST pick their row in SQL (SQLite's bare columns next to a single
//! `min()`/`max()`) and answer the picked value's text. Values that are not numbers are
//! skipped, so a query never fails on an event's data. Each derived step is a subquery with
//! `LIMIT -1`, which SQLite runs as a co-routine feeding the next instead of inlining it:
//! inlined, each step's expressions would be copied into every use, JSON lookups included
//! (measured: 20 times slower).
//!
//! Usage answers of closed days are cached per query shape (`usage_day_cache`) under the day's
//! version (`usage_day_versions`, see migration 0009); a write transaction that stores events
//! or a correction in days that ended over half an hour ago bumps their versions before it
//! commits.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::Range;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use purser_domain::auth::TenantScope;
use purser_domain::id::{MeterId, TenantId};
use purser_domain::metering::query::{bumps_day, day_closed, unix_day};
use purser_domain::metering::{
    Aggregation, EntryKind, Meter, MeterPrice, NewCorrection, NewMeter, NewUsageEvent, UsageCell,
    UsageDay, UsageEntry, UsageScan, ValuePath,
};
use purser_domain::page::{Page, PageRequest};
use purser_domain::repo::MeteringRepository;
use purser_domain::{Error, ErrorCode, Result};
use rust_decimal::Decimal;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};
use uuid::Uuid;

use crate::error::{corrupt_row, db_error};
use crate::tenants::push_page;
use crate::{SqliteStore, from_micros, to_micros};

const METER_COLUMNS: &str = "id, tenant_id, slug, name, description, event_type, aggregation, \
     value_path, group_by, price, created_at, updated_at, archived_at";

const ENTRY_COLUMNS: &str = "source, event_id, revision, kind, event_type, subject, time, data, \
     reason, recorded_at, superseded_at";

/// The largest magnitude a `Decimal` holds (as a REAL, so the bound is approximate in its 16th
/// digit): values beyond it are skipped, like other values that are not numbers.
const DECIMAL_MAX: &str = "7.922816251426434e28";

#[derive(sqlx::FromRow)]
struct MeterRow {
    id: Uuid,
    tenant_id: Uuid,
    slug: String,
    name: String,
    description: Option<String>,
    event_type: String,
    aggregation: String,
    value_path: Option<String>,
    group_by: String,
    price: Option<String>,
    created_at: i64,
    updated_at: i64,
    archived_at: Option<i64>,
}

fn corrupt_json(what: &'static str) -> impl Fn(serde_json::Error) -> Error {
    move |e| corrupt_row(what, Error::internal(what, e))
}

impl TryFrom<MeterRow> for Meter {
    type Error = Error;

    fn try_from(row: MeterRow) -> Result<Self> {
        let decode = |e| corrupt_row("decoding a meter", e);
        Ok(Meter {
            id: MeterId::from_uuid(row.id),
            tenant_id: TenantId::from_uuid(row.tenant_id),
            slug: row.slug,
            name: row.name,
            description: row.description,
            event_type: row.event_type,
            aggregation: row.aggregation.parse().map_err(decode)?,
            value: row
                .value_path
                .as_deref()
                .map(ValuePath::parse)
                .transpose()
                .map_err(decode)?,
            group_by: serde_json::from_str(&row.group_by)
                .map_err(corrupt_json("decoding a meter's dimensions"))?,
            price: row
                .price
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(corrupt_json("decoding a meter's price"))?,
            created_at: from_micros(row.created_at)?,
            updated_at: from_micros(row.updated_at)?,
            archived_at: row.archived_at.map(from_micros).transpose()?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct EntryRow {
    source: String,
    event_id: String,
    revision: i64,
    kind: String,
    event_type: String,
    subject: String,
    time: i64,
    data: String,
    reason: Option<String>,
    recorded_at: i64,
    superseded_at: Option<i64>,
}

impl TryFrom<EntryRow> for UsageEntry {
    type Error = Error;

    fn try_from(row: EntryRow) -> Result<Self> {
        let decode = |e| corrupt_row("decoding a usage entry", e);
        Ok(UsageEntry {
            source: row.source,
            id: row.event_id,
            revision: u32::try_from(row.revision)
                .map_err(|e| Error::internal("decoding a usage entry's revision", e))?,
            kind: row.kind.parse().map_err(decode)?,
            event_type: row.event_type,
            subject: row.subject,
            time: from_micros(row.time)?,
            data: serde_json::from_str(&row.data)
                .map_err(corrupt_json("decoding a usage entry's data"))?,
            reason: row.reason,
            recorded_at: from_micros(row.recorded_at)?,
            superseded_at: row.superseded_at.map(from_micros).transpose()?,
        })
    }
}

fn json_text(value: &impl serde::Serialize, what: &'static str) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::internal(what, e))
}

/// A value's text as SQLite holds it: a JSON number's own digits (`1.50`, `1e-7`) or a plain
/// decimal string. Values beyond a `Decimal`'s range are filtered out in SQL.
fn value_decimal(text: &str) -> Result<Decimal> {
    Decimal::from_str(text)
        .or_else(|_| Decimal::from_scientific(text))
        .map_err(|e| Error::internal(format!("reading a usage value `{text}`"), e))
}

fn sum_overflow() -> Error {
    Error::new(
        ErrorCode::InvalidUsageQuery,
        "the sum is beyond 28 significant digits",
    )
}

/// The sum of the six integer parts a SUM scan returns: `Σ p18·10^18 + p9·10^9 + p0 +
/// f1·10^-9 + f2·10^-18 + f3·10^-27`.
fn sum_of_parts(parts: [i64; 6]) -> Result<Decimal> {
    let [p18, p9, p0, f1, f2, f3] = parts;
    let billion = Decimal::from(1_000_000_000u64);
    let whole = Decimal::from(p18)
        .checked_mul(billion)
        .and_then(|v| v.checked_add(Decimal::from(p9)))
        .and_then(|v| v.checked_mul(billion))
        .and_then(|v| v.checked_add(Decimal::from(p0)))
        .ok_or_else(sum_overflow)?;
    let fraction = Decimal::new(f1, 9)
        .checked_add(Decimal::new(f2, 18))
        .and_then(|v| v.checked_add(Decimal::new(f3, 27)))
        .ok_or_else(sum_overflow)?;
    whole.checked_add(fraction).ok_or_else(sum_overflow)
}

/// The revision a correction replaces; `invalid_input` for what no correction can be.
fn check_correction(correction: &NewCorrection) -> Result<i64> {
    if correction.revision == 0 || correction.kind == EntryKind::Event {
        return Err(Error::invalid_input(
            "a correction is an amendment or a void of revision 1 or more",
        ));
    }
    Ok(i64::from(correction.revision) - 1)
}

fn stale_correction() -> Error {
    Error::new(
        ErrorCode::Conflict,
        "the event was corrected meanwhile; read its current entry and correct that",
    )
}

/// Bumps the versions of the days among the entries' (event type, time) that ended over half an
/// hour before `now` by this machine's clock (`bumps_day`), inside the write transaction that
/// stores them.
async fn bump_days<'a>(
    tx: &mut Transaction<'static, Sqlite>,
    scope: TenantScope,
    entries: impl IntoIterator<Item = (&'a str, DateTime<Utc>)>,
    now: DateTime<Utc>,
) -> Result<()> {
    let days: BTreeSet<(&str, i64)> = entries
        .into_iter()
        .filter(|(_, time)| bumps_day(*time, now))
        .map(|(event_type, time)| (event_type, unix_day(time)))
        .collect();
    if days.is_empty() {
        return Ok(());
    }
    let days: Vec<(&str, i64)> = days.into_iter().collect();
    sqlx::query(
        "INSERT INTO usage_day_versions (tenant_id, event_type, day, version)
         SELECT $1, d.value ->> 0, d.value ->> 1, 1 FROM json_each($2) AS d WHERE true
         ON CONFLICT (tenant_id, event_type, day) DO UPDATE SET version = version + 1",
    )
    .bind(scope.tenant_id().as_uuid())
    .bind(json_text(&days, "encoding usage days")?)
    .execute(&mut **tx)
    .await
    .map_err(db_error("marking late usage days"))?;
    Ok(())
}

/// The text of the JSON value at `path` in `data`, as a dimension groups and filters by: a
/// string's content, other scalars (and objects, arrays) as JSON; NULL for JSON null and for
/// nothing there. Like PostgreSQL's `#>>`, except that it prints numbers as the event wrote them.
fn push_dimension(q: &mut QueryBuilder<Sqlite>, path: &ValuePath) {
    let path = path.sqlite_path();
    q.push("CASE json_type(data, ")
        .push_bind(path.clone())
        .push(") WHEN 'text' THEN json_extract(data, ")
        .push_bind(path.clone())
        .push(") WHEN 'null' THEN NULL ELSE data -> ")
        .push_bind(path)
        .push(" END");
}

/// The text of any JSON value at `path` (JSON null is `null`), NULL for nothing there: what
/// `UNIQUE_COUNT` tells values apart by. Without the JSON-null case, also the raw text a numeric
/// value is checked and read from.
fn push_value_text(q: &mut QueryBuilder<Sqlite>, path: &str) {
    q.push("CASE json_type(data, ")
        .push_bind(path.to_owned())
        .push(") WHEN 'text' THEN json_extract(data, ")
        .push_bind(path.to_owned())
        .push(") ELSE data -> ")
        .push_bind(path.to_owned())
        .push(" END");
}

/// The sign, the digits before the point (`w`) and the digits after it (`f`) of `t`, the exact
/// text of a number that is not summed as an integer (`i`): a plain decimal (`-12.50`) or a
/// JSON number with an exponent (`1.5e-7`: its digits, with the point moved by the exponent).
fn split_decimal() -> String {
    let a = "lower(ltrim(t, '-'))";
    let m = format!("substr({a}, 1, instr({a}, 'e') - 1)");
    let x = format!("CAST(substr({a}, instr({a}, 'e') + 1) AS INTEGER)");
    let digits = format!("replace({m}, '.', '')");
    let pos = format!("(instr({m} || '.', '.') - 1 + {x})");
    format!(
        "i, t GLOB '-*' AS neg,
         CASE WHEN i IS NOT NULL THEN NULL
             WHEN t GLOB '*[eE]*' THEN CASE WHEN {pos} <= 0 THEN ''
                 ELSE substr({digits} || '00000000000000000000000000000', 1, {pos}) END
             ELSE substr(ltrim(t, '-'), 1, instr(ltrim(t, '-') || '.', '.') - 1) END AS w,
         CASE WHEN i IS NOT NULL THEN NULL
             WHEN t GLOB '*[eE]*' THEN CASE WHEN {pos} >= 0 THEN substr({digits}, {pos} + 1)
                 ELSE substr('000000000000000000000000000', 1, min(-{pos}, 27)) || {digits} END
             ELSE substr(ltrim(t, '-'), instr(ltrim(t, '-') || '.', '.') + 1) END AS f"
    )
}

/// Six sums that add up to the exact total: p18, p9, p0 (`w` in 9-digit groups from the
/// right; an integer `i` as its two lower groups) and f1, f2, f3 (the first 27 digits of `f`).
const SUM_OF_PARTS: &str = "
     sum(CASE WHEN i IS NULL
         THEN (CASE WHEN neg THEN -1 ELSE 1 END) * CAST(substr(w, 1, max(length(w) - 18, 0)) AS INTEGER)
         ELSE 0 END),
     sum(CASE WHEN i IS NULL
         THEN (CASE WHEN neg THEN -1 ELSE 1 END) * CAST(substr(w, max(length(w) - 17, 1),
             max(length(w) - 9 - max(length(w) - 18, 0), 0)) AS INTEGER)
         ELSE i / 1000000000 END),
     sum(CASE WHEN i IS NULL
         THEN (CASE WHEN neg THEN -1 ELSE 1 END) * CAST(substr(w, max(length(w) - 8, 1)) AS INTEGER)
         ELSE i % 1000000000 END),
     sum(CASE WHEN i IS NULL
         THEN (CASE WHEN neg THEN -1 ELSE 1 END) * CAST(substr(f || '000000000', 1, 9) AS INTEGER)
         ELSE 0 END),
     sum(CASE WHEN i IS NULL
         THEN (CASE WHEN neg THEN -1 ELSE 1 END) * CAST(substr(f || '000000000000000000', 10, 9) AS INTEGER)
         ELSE 0 END),
     sum(CASE WHEN i IS NULL
         THEN (CASE WHEN neg THEN -1 ELSE 1 END) * CAST(substr(f || '000000000000000000000000000', 19, 9) AS INTEGER)
         ELSE 0 END)";

/// Whether `raw` (a JSON string's content) is a plain decimal, `-?[0-9]+(\.[0-9]+)?`.
const PLAIN_DECIMAL: &str = "(raw NOT GLOB '--*' AND ltrim(raw, '-') <> '' \
     AND ltrim(raw, '-') NOT GLOB '*[^0-9.]*' AND ltrim(raw, '-') NOT GLOB '*.*.*' \
     AND ltrim(raw, '-') NOT GLOB '.*' AND ltrim(raw, '-') NOT GLOB '*.')";

/// Appends the conditions every usage scan shares: the scope's events of the scan's type in its
/// period, current (as of `as_of`, when given) and not voided, of the listed subjects and with
/// the filtered dimension values.
fn push_scan_conditions(
    q: &mut QueryBuilder<Sqlite>,
    scope: TenantScope,
    scan: &UsageScan,
) -> Result<()> {
    q.push(" FROM usage_events WHERE tenant_id = ")
        .push_bind(scope.tenant_id().as_uuid())
        .push(" AND event_type = ")
        .push_bind(scan.event_type.clone())
        .push(" AND time >= ")
        .push_bind(to_micros(scan.from))
        .push(" AND time < ")
        .push_bind(to_micros(scan.to))
        .push(" AND kind <> 'void'");
    match scan.as_of {
        None => {
            q.push(" AND superseded_at IS NULL");
        }
        Some(as_of) => {
            q.push(" AND recorded_at <= ")
                .push_bind(to_micros(as_of))
                .push(" AND (superseded_at IS NULL OR superseded_at > ")
                .push_bind(to_micros(as_of))
                .push(")");
        }
    }
    if !scan.subjects.is_empty() {
        q.push(" AND subject IN (SELECT value FROM json_each(")
            .push_bind(json_text(&scan.subjects, "encoding a subject filter")?)
            .push("))");
    }
    for (path, values) in &scan.filters {
        q.push(" AND ");
        push_dimension(q, path);
        q.push(" IN (SELECT value FROM json_each(")
            .push_bind(json_text(values, "encoding a dimension filter")?)
            .push("))");
    }
    Ok(())
}

#[async_trait]
impl MeteringRepository for SqliteStore {
    async fn insert_usage_events(
        &self,
        scope: TenantScope,
        events: &[NewUsageEvent],
        recorded_at: DateTime<Utc>,
    ) -> Result<Vec<bool>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        // Both stores refuse what the text rules refuse, before any SQL.
        for event in events {
            event.check()?;
        }
        // Each key once: its first occurrence in the batch wins.
        let mut first = HashMap::with_capacity(events.len());
        let mut batch = Vec::with_capacity(events.len());
        for (at, event) in events.iter().enumerate() {
            if let Entry::Vacant(vacant) = first.entry((event.source.as_str(), event.id.as_str())) {
                vacant.insert(at);
                batch.push((
                    &event.source,
                    &event.id,
                    &event.event_type,
                    &event.subject,
                    to_micros(event.time),
                    &event.data,
                ));
            }
        }
        let batch = json_text(&batch, "encoding usage events")?;
        let mut tx = self.begin_write().await?;
        let inserted: Vec<(String, String)> = sqlx::query_as(
            "INSERT INTO usage_events (tenant_id, source, event_id, revision, kind, event_type,
                 subject, time, data, recorded_at)
             SELECT $1, e.value ->> 0, e.value ->> 1, 0, 'event', e.value ->> 2, e.value ->> 3,
                 e.value ->> 4, e.value -> 5, $2
             FROM json_each($3) AS e WHERE true
             ON CONFLICT (tenant_id, source, event_id, revision) DO NOTHING
             RETURNING source, event_id",
        )
        .bind(scope.tenant_id().as_uuid())
        .bind(to_micros(recorded_at))
        .bind(batch)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error("storing usage events"))?;
        let now = Utc::now();
        bump_days(
            &mut tx,
            scope,
            inserted.iter().filter_map(|(source, id)| {
                let event = &events[*first.get(&(source.as_str(), id.as_str()))?];
                Some((event.event_type.as_str(), event.time))
            }),
            now,
        )
        .await?;
        tx.commit()
            .await
            .map_err(db_error("committing usage events"))?;
        let inserted: HashSet<(&str, &str)> = inserted
            .iter()
            .map(|(source, id)| (source.as_str(), id.as_str()))
            .collect();
        Ok(events
            .iter()
            .enumerate()
            .map(|(at, event)| {
                let key = (event.source.as_str(), event.id.as_str());
                first.get(&key) == Some(&at) && inserted.contains(&key)
            })
            .collect())
    }

    async fn usage_event_history(
        &self,
        scope: TenantScope,
        source: &str,
        id: &str,
    ) -> Result<Vec<UsageEntry>> {
        sqlx::query_as::<_, EntryRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY_COLUMNS} FROM usage_events
             WHERE tenant_id = $1 AND source = $2 AND event_id = $3 ORDER BY revision"
        )))
        .bind(scope.tenant_id().as_uuid())
        .bind(source)
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("reading a usage event's history"))?
        .into_iter()
        .map(UsageEntry::try_from)
        .collect()
    }

    async fn correct_usage_event(
        &self,
        scope: TenantScope,
        correction: &NewCorrection,
        recorded_at: DateTime<Utc>,
    ) -> Result<UsageEntry> {
        correction.check()?;
        let previous = check_correction(correction)?;
        let tenant = scope.tenant_id().as_uuid();
        // The write lock from the start: a concurrent correction of the same event runs after
        // this one commits, and finds the entry it replaces superseded (`conflict`).
        let mut tx = self.begin_write().await?;
        let replaced: Option<(String, String, Option<i64>, i64)> = sqlx::query_as(
            "SELECT kind, event_type, superseded_at, time FROM usage_events
             WHERE tenant_id = $1 AND source = $2 AND event_id = $3 AND revision = $4",
        )
        .bind(tenant)
        .bind(&correction.source)
        .bind(&correction.id)
        .bind(previous)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error("reading a usage event's current entry"))?;
        let (event_type, replaced_time) = match replaced {
            Some((_, _, Some(_), _)) => return Err(stale_correction()),
            Some((kind, _, None, _)) if kind == EntryKind::Void.as_str() => {
                return Err(Error::new(
                    ErrorCode::EventVoided,
                    "the event was voided; it takes no further corrections",
                ));
            }
            Some((_, event_type, None, time)) => (event_type, from_micros(time)?),
            None => {
                let exists: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM usage_events
                         WHERE tenant_id = $1 AND source = $2 AND event_id = $3)",
                )
                .bind(tenant)
                .bind(&correction.source)
                .bind(&correction.id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error("reading a usage event"))?;
                return Err(if exists {
                    stale_correction()
                } else {
                    Error::not_found("usage event")
                });
            }
        };
        sqlx::query(
            "UPDATE usage_events SET superseded_at = $5
             WHERE tenant_id = $1 AND source = $2 AND event_id = $3 AND revision = $4",
        )
        .bind(tenant)
        .bind(&correction.source)
        .bind(&correction.id)
        .bind(previous)
        .bind(to_micros(recorded_at))
        .execute(&mut *tx)
        .await
        .map_err(db_error("superseding a usage entry"))?;
        let row = sqlx::query_as::<_, EntryRow>(sqlx::AssertSqlSafe(format!(
            "INSERT INTO usage_events (tenant_id, source, event_id, revision, kind, event_type,
                 subject, time, data, reason, recorded_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             RETURNING {ENTRY_COLUMNS}"
        )))
        .bind(tenant)
        .bind(&correction.source)
        .bind(&correction.id)
        .bind(previous + 1)
        .bind(correction.kind.as_str())
        .bind(&event_type)
        .bind(&correction.subject)
        .bind(to_micros(correction.time))
        .bind(json_text(&correction.data, "encoding a correction's data")?)
        .bind(&correction.reason)
        .bind(to_micros(recorded_at))
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error("storing a usage correction"))?;
        // The days of the entry replaced and of its correction, when closed (or closing).
        bump_days(
            &mut tx,
            scope,
            [
                (event_type.as_str(), replaced_time),
                (event_type.as_str(), correction.time),
            ],
            Utc::now(),
        )
        .await?;
        tx.commit()
            .await
            .map_err(db_error("committing a usage correction"))?;
        row.try_into()
    }

    async fn list_usage_corrections(
        &self,
        scope: TenantScope,
        event_type: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        as_of: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<UsageEntry>> {
        // Corrections whose own time is in the period, and corrections of entries whose time
        // was (a superseded entry's successor is its correction): each found through a partial
        // index of its own (migration 0011), without reading the period's events. A join, not
        // `(source, event_id, revision) IN (...)`: SQLite answers that by reading every entry
        // of the tenant and testing each against the list.
        sqlx::query_as::<_, EntryRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY_COLUMNS} FROM (
                 SELECT source AS c_source, event_id AS c_id, revision AS c_revision
                 FROM usage_events
                 WHERE tenant_id = $1 AND event_type = $2 AND time >= $3 AND time < $4
                   AND revision > 0
                 UNION
                 SELECT source, event_id, revision + 1 FROM usage_events
                 WHERE tenant_id = $1 AND event_type = $2 AND time >= $3 AND time < $4
                   AND superseded_at IS NOT NULL) AS c
             JOIN usage_events
                 ON tenant_id = $1 AND source = c_source AND event_id = c_id
                    AND revision = c_revision
             WHERE ($5 IS NULL OR recorded_at <= $5)
             ORDER BY recorded_at DESC, source DESC, event_id DESC, revision DESC
             LIMIT $6"
        )))
        .bind(scope.tenant_id().as_uuid())
        .bind(event_type)
        .bind(to_micros(from))
        .bind(to_micros(to))
        .bind(as_of.map(to_micros))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("listing usage corrections"))?
        .into_iter()
        .map(UsageEntry::try_from)
        .collect()
    }

    async fn aggregate_usage(
        &self,
        scope: TenantScope,
        scan: &UsageScan,
    ) -> Result<Vec<UsageCell>> {
        let aggregation = scan.aggregation;
        let value = match (&scan.value, aggregation.needs_value()) {
            (_, false) => None,
            (Some(path), true) => Some(path.sqlite_path()),
            (None, true) => {
                return Err(Error::invalid_input(format!(
                    "a {aggregation} scan needs a value path"
                )));
            }
        };
        let groups = scan.group_by.len();
        let keys = format!(
            "bucket, subject{}",
            (0..groups).map(|i| format!(", g{i}")).collect::<String>()
        );

        let mut q = QueryBuilder::<Sqlite>::new("SELECT ");
        q.push(&keys);
        // The outer query: the aggregates per key, over the derived steps below.
        match aggregation {
            Aggregation::Count => {
                q.push(", count(*) FROM (");
            }
            Aggregation::UniqueCount => {
                q.push(", v, count(*) FROM (");
            }
            Aggregation::Min => {
                q.push(", count(*), min(CAST(t AS REAL)), t FROM (");
            }
            Aggregation::Max => {
                q.push(", count(*), max(CAST(t AS REAL)), t FROM (");
            }
            Aggregation::Latest => {
                q.push(", count(*), max(printf('%020d%020d', time, recorded_at)), time, t FROM (");
            }
            Aggregation::Sum | Aggregation::Avg => {
                q.push(", count(*), ");
                q.push(SUM_OF_PARTS);
                q.push(" FROM (");
                q.push(format!("SELECT {keys}, "));
                q.push(split_decimal());
                q.push(" FROM (");
            }
        }
        if let Some(path) = &value
            && aggregation.is_numeric()
        {
            // The exact text of a usable numeric value, from the scan's JSON type and raw text.
            q.push(format!("SELECT {keys}, time, recorded_at, raw AS t"));
            if matches!(aggregation, Aggregation::Sum | Aggregation::Avg) {
                // An integer of up to 17 digits is summed as is (split in two, so that the
                // sum of billions of them does not overflow).
                q.push(", CASE WHEN jt = 'integer' AND length(raw) <= 18 THEN CAST(raw AS INTEGER) END AS i");
            }
            q.push(" FROM (SELECT time, recorded_at, json_type(data, ");
            q.push_bind(path.clone()).push(") AS jt, ");
            push_value_text(&mut q, path);
            q.push(" AS raw");
        } else {
            q.push("SELECT time, recorded_at");
            if let Some(path) = &value {
                q.push(", ");
                push_value_text(&mut q, path);
                q.push(" AS v");
            }
        }
        // The scan itself: the keys of each current entry.
        q.push(", ");
        match scan.bucket_seconds {
            Some(seconds) => {
                let micros = i64::from(seconds.max(1)) * 1_000_000;
                q.push("(time - ((time % ")
                    .push_bind(micros)
                    .push(") + ")
                    .push_bind(micros)
                    .push(") % ")
                    .push_bind(micros)
                    .push(") / 1000000 AS bucket");
            }
            None => {
                q.push("NULL AS bucket");
            }
        }
        q.push(if scan.group_by_subject {
            ", subject"
        } else {
            ", NULL AS subject"
        });
        for (i, path) in scan.group_by.iter().enumerate() {
            q.push(", ");
            push_dimension(&mut q, path);
            q.push(format!(" AS g{i}"));
        }
        push_scan_conditions(&mut q, scope, scan)?;
        q.push(" LIMIT -1)");
        if value.is_some() && aggregation.is_numeric() {
            q.push(format!(
                " WHERE (jt IN ('integer', 'real') OR (jt = 'text' AND {PLAIN_DECIMAL})) \
                   AND abs(CAST(raw AS REAL)) <= {DECIMAL_MAX} LIMIT -1)"
            ));
            if matches!(aggregation, Aggregation::Sum | Aggregation::Avg) {
                q.push(" LIMIT -1)");
            }
        } else if value.is_some() {
            q.push(" WHERE v IS NOT NULL");
        }
        q.push(format!(" GROUP BY {keys}"));
        if aggregation == Aggregation::UniqueCount {
            q.push(", v");
        }
        let rows = q
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(db_error("aggregating usage"))?;
        rows.iter()
            .map(|row| read_cell(row, aggregation, groups))
            .collect()
    }

    async fn usage_days(
        &self,
        scope: TenantScope,
        event_type: &str,
        shape: &str,
        days: Range<i64>,
    ) -> Result<Vec<UsageDay>> {
        let now = Utc::now();
        let closed = days.start
            ..days.end.min(
                (days.start..days.end)
                    .find(|day| !day_closed(*day, now))
                    .unwrap_or(days.end),
            );
        if closed.is_empty() {
            return Ok(Vec::new());
        }
        // One read transaction: the versions and the cached answers as of one snapshot.
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db_error("starting a read"))?;
        let versions: HashMap<i64, i64> = sqlx::query_as(
            "SELECT day, version FROM usage_day_versions
             WHERE tenant_id = $1 AND event_type = $2 AND day >= $3 AND day < $4",
        )
        .bind(scope.tenant_id().as_uuid())
        .bind(event_type)
        .bind(closed.start)
        .bind(closed.end)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error("reading usage day versions"))?
        .into_iter()
        .collect();
        let mut cached: HashMap<i64, (i64, String)> = sqlx::query_as(
            "SELECT day, version, cells FROM usage_day_cache
             WHERE tenant_id = $1 AND event_type = $2 AND shape = $3 AND day >= $4 AND day < $5",
        )
        .bind(scope.tenant_id().as_uuid())
        .bind(event_type)
        .bind(shape)
        .bind(closed.start)
        .bind(closed.end)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error("reading cached usage"))?
        .into_iter()
        .map(|(day, version, cells)| (day, (version, cells)))
        .collect();
        tx.commit().await.map_err(db_error("ending a read"))?;
        Ok(closed
            .map(|day| {
                let version = versions.get(&day).copied().unwrap_or(0);
                UsageDay {
                    day,
                    version,
                    cells: cached
                        .remove(&day)
                        .filter(|(cached_version, _)| *cached_version == version)
                        .and_then(|(_, text)| UsageCell::decode_day(&text)),
                }
            })
            .collect())
    }

    async fn cache_usage_day(
        &self,
        scope: TenantScope,
        event_type: &str,
        shape: &str,
        day: i64,
        version: i64,
        cells: &[UsageCell],
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO usage_day_cache (tenant_id, event_type, shape, day, version, cells,
                 cached_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (tenant_id, event_type, shape, day) DO UPDATE
                 SET version = excluded.version, cells = excluded.cells,
                     cached_at = excluded.cached_at
                 WHERE version <= excluded.version",
        )
        .bind(scope.tenant_id().as_uuid())
        .bind(event_type)
        .bind(shape)
        .bind(day)
        .bind(version)
        .bind(UsageCell::encode_day(cells)?)
        .bind(to_micros(Utc::now()))
        .execute(&self.pool)
        .await
        .map_err(db_error("caching usage"))?;
        Ok(())
    }

    async fn create_meter(
        &self,
        scope: TenantScope,
        meter: &NewMeter,
        at: DateTime<Utc>,
    ) -> Result<Meter> {
        meter.validate()?;
        let group_by = json_text(&meter.group_by, "encoding a meter's dimensions")?;
        let price = meter
            .price
            .as_ref()
            .map(|price| json_text(price, "encoding a meter's price"))
            .transpose()?;
        sqlx::query_as::<_, MeterRow>(sqlx::AssertSqlSafe(format!(
            "INSERT INTO meters (id, tenant_id, slug, name, description, event_type, aggregation,
                 value_path, group_by, price, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)
             RETURNING {METER_COLUMNS}"
        )))
        .bind(MeterId::new().as_uuid())
        .bind(scope.tenant_id().as_uuid())
        .bind(&meter.slug)
        .bind(&meter.name)
        .bind(&meter.description)
        .bind(&meter.event_type)
        .bind(meter.aggregation.as_str())
        .bind(meter.value.as_ref().map(ValuePath::as_str))
        .bind(group_by)
        .bind(price)
        .bind(to_micros(at))
        .fetch_one(&self.pool)
        .await
        .map_err(db_error("creating a meter"))?
        .try_into()
    }

    async fn find_meter(&self, scope: TenantScope, id: MeterId) -> Result<Option<Meter>> {
        sqlx::query_as::<_, MeterRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {METER_COLUMNS} FROM meters WHERE id = $1 AND tenant_id = $2"
        )))
        .bind(id.as_uuid())
        .bind(scope.tenant_id().as_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("reading a meter"))?
        .map(Meter::try_from)
        .transpose()
    }

    async fn find_meter_by_slug(&self, scope: TenantScope, slug: &str) -> Result<Option<Meter>> {
        sqlx::query_as::<_, MeterRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {METER_COLUMNS} FROM meters WHERE tenant_id = $1 AND slug = $2"
        )))
        .bind(scope.tenant_id().as_uuid())
        .bind(slug)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("reading a meter"))?
        .map(Meter::try_from)
        .transpose()
    }

    async fn list_meters(
        &self,
        scope: TenantScope,
        include_archived: bool,
        page: PageRequest,
    ) -> Result<Page<Meter>> {
        let mut query = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {METER_COLUMNS} FROM meters WHERE tenant_id = "
        ));
        query.push_bind(scope.tenant_id().as_uuid());
        if !include_archived {
            query.push(" AND archived_at IS NULL");
        }
        push_page(&mut query, &page);
        let meters = query
            .build_query_as::<MeterRow>()
            .fetch_all(&self.pool)
            .await
            .map_err(db_error("listing meters"))?
            .into_iter()
            .map(Meter::try_from)
            .collect::<Result<Vec<_>>>()?;
        Ok(page.finish(meters))
    }

    async fn active_meters(&self, scope: TenantScope) -> Result<Vec<Meter>> {
        sqlx::query_as::<_, MeterRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {METER_COLUMNS} FROM meters
             WHERE tenant_id = $1 AND archived_at IS NULL ORDER BY id"
        )))
        .bind(scope.tenant_id().as_uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("listing active meters"))?
        .into_iter()
        .map(Meter::try_from)
        .collect()
    }

    async fn set_meter_price(
        &self,
        scope: TenantScope,
        id: MeterId,
        price: Option<&MeterPrice>,
        at: DateTime<Utc>,
    ) -> Result<Option<Meter>> {
        if let Some(price) = price {
            price.validate()?;
        }
        let price = price
            .map(|price| json_text(price, "encoding a meter's price"))
            .transpose()?;
        sqlx::query_as::<_, MeterRow>(sqlx::AssertSqlSafe(format!(
            "UPDATE meters SET price = $3, updated_at = $4
             WHERE id = $1 AND tenant_id = $2
             RETURNING {METER_COLUMNS}"
        )))
        .bind(id.as_uuid())
        .bind(scope.tenant_id().as_uuid())
        .bind(price)
        .bind(to_micros(at))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("pricing a meter"))?
        .map(Meter::try_from)
        .transpose()
    }

    async fn archive_meter(
        &self,
        scope: TenantScope,
        id: MeterId,
        at: DateTime<Utc>,
    ) -> Result<Option<Meter>> {
        sqlx::query_as::<_, MeterRow>(sqlx::AssertSqlSafe(format!(
            "UPDATE meters
             SET updated_at = CASE WHEN archived_at IS NULL THEN $3 ELSE updated_at END,
                 archived_at = COALESCE(archived_at, $3)
             WHERE id = $1 AND tenant_id = $2
             RETURNING {METER_COLUMNS}"
        )))
        .bind(id.as_uuid())
        .bind(scope.tenant_id().as_uuid())
        .bind(to_micros(at))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("archiving a meter"))?
        .map(Meter::try_from)
        .transpose()
    }
}

/// One row of an aggregation: the keys, then what the aggregation selected.
fn read_cell(row: &SqliteRow, aggregation: Aggregation, groups: usize) -> Result<UsageCell> {
    let read = |e| db_error("reading aggregated usage")(e);
    let mut column = 0;
    let mut next = || {
        column += 1;
        column - 1
    };
    let bucket: Option<i64> = row.try_get(next()).map_err(read)?;
    let subject: Option<String> = row.try_get(next()).map_err(read)?;
    let mut group_values = Vec::with_capacity(groups);
    for _ in 0..groups {
        group_values.push(row.try_get::<Option<String>, _>(next()).map_err(read)?);
    }
    let distinct: Option<String> = if aggregation == Aggregation::UniqueCount {
        row.try_get(next()).map_err(read)?
    } else {
        None
    };
    let count: i64 = row.try_get(next()).map_err(read)?;
    let mut cell = UsageCell {
        bucket,
        subject,
        groups: group_values,
        count: u64::try_from(count).unwrap_or_default(),
        distinct,
        ..UsageCell::default()
    };
    match aggregation {
        Aggregation::Count | Aggregation::UniqueCount => {}
        Aggregation::Sum | Aggregation::Avg => {
            let mut parts = [0i64; 6];
            for part in &mut parts {
                *part = row
                    .try_get::<Option<i64>, _>(next())
                    .map_err(read)?
                    .unwrap_or_default();
            }
            cell.sum = Some(sum_of_parts(parts)?);
        }
        Aggregation::Min | Aggregation::Max => {
            next(); // the REAL the row was picked by
            let value: String = row.try_get(next()).map_err(read)?;
            let value = value_decimal(&value)?;
            if aggregation == Aggregation::Min {
                cell.min = Some(value);
            } else {
                cell.max = Some(value);
            }
        }
        Aggregation::Latest => {
            next(); // the (time, recorded_at) key the row was picked by
            let time: i64 = row.try_get(next()).map_err(read)?;
            let value: String = row.try_get(next()).map_err(read)?;
            cell.latest = Some((from_micros(time)?, value_decimal(&value)?));
        }
    }
    Ok(cell)
}
