//! Metering's hot paths on SQLite (`purser_store_sql::metering` has the rest).
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
//! (measured: 20 times slower). Paths reach SQLite's JSON functions as [`json_path`]s.
//!
//! A write transaction that stores events or a correction in days that ended over half an hour
//! ago (by this machine's clock) bumps their versions before it commits.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::Range;

use chrono::{DateTime, Utc};
use purser_domain::Result;
use purser_domain::auth::TenantScope;
use purser_domain::metering::path::Segment;
use purser_domain::metering::query::{bumps_day, day_closed, unix_day};
use purser_domain::metering::{
    Aggregation, NewCorrection, NewUsageEvent, UsageCell, UsageDay, UsageScan, ValuePath,
};
use purser_store_sql::metering::{MeteringDialect, stored_outcomes, sum_overflow, value_decimal};
use purser_store_sql::{commit, db_error, json_text};
use rust_decimal::Decimal;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use crate::{SqliteDialect, SqliteStore, from_micros, to_micros};

/// The largest magnitude a `Decimal` holds (as a REAL, so the bound is approximate in its 16th
/// digit): values beyond it are skipped, like other values that are not numbers.
const DECIMAL_MAX: &str = "7.922816251426434e28";

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

/// Bumps the versions of the days among the entries' (event type, time) that ended over half an
/// hour before `now` by this machine's clock (`bumps_day`), inside the write transaction that
/// stores them.
async fn bump_days<'a>(
    conn: &mut SqliteConnection,
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
    .execute(conn)
    .await
    .map_err(db_error::<SqliteDialect>("marking late usage days"))?;
    Ok(())
}

/// A path as SQLite's JSON functions take it: `$."name"[0]`. Names are always quoted; a parsed
/// path's names hold no `"` or `\\` (which this syntax cannot escape) and no control
/// characters.
fn json_path(path: &ValuePath) -> String {
    let mut out = String::from("$");
    for segment in path.segments() {
        match segment {
            Segment::Name(name) => {
                out.push_str(".\"");
                out.push_str(name);
                out.push('"');
            }
            Segment::Index(index) => {
                out.push('[');
                out.push_str(&index.to_string());
                out.push(']');
            }
        }
    }
    out
}

/// The text of the JSON value at `path` in `data`, as a dimension groups and filters by: a
/// string's content, other scalars (and objects, arrays) as JSON; NULL for JSON null and for
/// nothing there. Like PostgreSQL's `#>>`, except that it prints numbers as the event wrote them.
fn push_dimension(q: &mut QueryBuilder<Sqlite>, path: &ValuePath) {
    let path = json_path(path);
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

impl MeteringDialect for SqliteDialect {
    // Corrections whose own time is in the period, and corrections of entries whose time was (a
    // superseded entry's successor is its correction): each found through a partial index of
    // its own (migration 0011), without reading the period's events. A join, not `(source,
    // event_id, revision) IN (...)`: SQLite answers that by reading every entry of the tenant
    // and testing each against the list.
    const LIST_CORRECTIONS: &'static str = "SELECT source, event_id, revision, kind, event_type,
             subject, time, data, reason, recorded_at, superseded_at
         FROM (
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
         LIMIT $6";

    async fn insert_usage_events(
        store: &SqliteStore,
        scope: TenantScope,
        events: &[NewUsageEvent],
        recorded_at: DateTime<Utc>,
    ) -> Result<Vec<bool>> {
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
        let mut tx = store.begin_write().await?;
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
        .map_err(db_error::<SqliteDialect>("storing usage events"))?;
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
        commit::<Self>(tx).await?;
        let inserted: HashSet<(&str, &str)> = inserted
            .iter()
            .map(|(source, id)| (source.as_str(), id.as_str()))
            .collect();
        Ok(stored_outcomes(events, &first, &inserted))
    }

    async fn bump_corrected_days(
        conn: &mut SqliteConnection,
        scope: TenantScope,
        correction: &NewCorrection,
        _replaced: i32,
        event_type: &str,
        replaced_time: DateTime<Utc>,
    ) -> Result<()> {
        // The days of the entry replaced and of its correction, when closed (or closing).
        bump_days(
            conn,
            scope,
            [(event_type, replaced_time), (event_type, correction.time)],
            Utc::now(),
        )
        .await
    }

    async fn aggregate_usage(
        store: &SqliteStore,
        scope: TenantScope,
        scan: &UsageScan,
        value: Option<&ValuePath>,
    ) -> Result<Vec<UsageCell>> {
        let aggregation = scan.aggregation;
        let value = value.map(json_path);
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
            .fetch_all(store.pool())
            .await
            .map_err(db_error::<SqliteDialect>("aggregating usage"))?;
        rows.iter()
            .map(|row| read_cell(row, aggregation, groups))
            .collect()
    }

    async fn usage_days(
        store: &SqliteStore,
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
        let mut tx = store
            .pool()
            .begin()
            .await
            .map_err(db_error::<SqliteDialect>("starting a read"))?;
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
        .map_err(db_error::<SqliteDialect>("reading usage day versions"))?
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
        .map_err(db_error::<SqliteDialect>("reading cached usage"))?
        .into_iter()
        .map(|(day, version, cells)| (day, (version, cells)))
        .collect();
        tx.commit()
            .await
            .map_err(db_error::<SqliteDialect>("ending a read"))?;
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
        store: &SqliteStore,
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
        .execute(store.pool())
        .await
        .map_err(db_error::<SqliteDialect>("caching usage"))?;
        Ok(())
    }
}

/// One row of an aggregation: the keys, then what the aggregation selected.
fn read_cell(row: &SqliteRow, aggregation: Aggregation, groups: usize) -> Result<UsageCell> {
    let read = |e| db_error::<SqliteDialect>("reading aggregated usage")(e);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_quote_every_name() {
        let path = ValuePath::parse("$.usage['input tokens'][2].n").unwrap();
        assert_eq!(json_path(&path), r#"$."usage"."input tokens"[2]."n""#);
        assert_eq!(json_path(&ValuePath::parse("$").unwrap()), "$");
        let quoted = ValuePath::parse(r#"$["it's"]"#).unwrap();
        assert_eq!(json_path(&quoted), r#"$."it's""#);
    }
}
