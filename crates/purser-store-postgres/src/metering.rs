//! Metering (`purser_domain::metering`): meters, and usage events stored one row per entry.
//!
//! Ingestion is one statement per batch, whatever its size: the events travel as parallel
//! arrays, `UNNEST`ed into `INSERT ... ON CONFLICT DO NOTHING RETURNING source, event_id`, so
//! a batch costs one round trip and one commit, and a duplicate (of an earlier batch, however
//! old, or of a concurrent one) writes nothing. Each key is sent once, its first occurrence in
//! the batch, and keys are sent sorted: an insert that meets a concurrent batch's uncommitted
//! row of the same key waits for that batch, and batches that all wait in one key order cannot
//! wait on each other in a cycle (no deadlock).
//!
//! Usage queries aggregate in SQL, per fine bucket and group: the values are read with `#>`
//! (the path as a `text[]`), cast to `numeric` (exact) when they are JSON numbers or plain
//! decimal strings, and everything else is skipped, so a query never fails on an event's data.
//! Results cross as text and are parsed into `Decimal`s.
//!
//! Usage answers of closed days are cached per query shape (`usage_day_cache`) under the day's
//! version (`usage_day_versions`, see migration 0009). The insert statement bumps the versions
//! of the days its new events fall in that ended over half an hour ago (`bumps_day`), in a CTE
//! over the rows it inserted, with the database's clock (`now()`, the statement's start), so no
//! instance's clock decides it.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use purser_domain::auth::TenantScope;
use purser_domain::id::{MeterId, TenantId};
use purser_domain::metering::query::{CLOSED_DAY_MARGIN_SECONDS, WRITE_SLACK_SECONDS};
use purser_domain::metering::{
    Aggregation, EntryKind, Meter, MeterPrice, NewCorrection, NewMeter, NewUsageEvent, UsageCell,
    UsageDay, UsageEntry, UsageScan, ValuePath,
};
use purser_domain::page::{Page, PageRequest};
use purser_domain::repo::MeteringRepository;
use purser_domain::{Error, ErrorCode, Result};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use sqlx::{Postgres, QueryBuilder, Row};
use uuid::Uuid;

use crate::PgStore;
use crate::error::{corrupt_row, db_error};
use crate::settlements::commit;
use crate::tenants::push_page;

const METER_COLUMNS: &str = "id, tenant_id, slug, name, description, event_type, aggregation, \
     value_path, group_by::text AS group_by, price::text AS price, created_at, updated_at, \
     archived_at";

const ENTRY_COLUMNS: &str = "source, event_id, revision, kind, event_type, subject, time, \
     data::text AS data, reason, recorded_at, superseded_at";

/// The largest magnitude a `Decimal` holds: values beyond it are skipped, like other values
/// that are not numbers.
const DECIMAL_MAX: &str = "79228162514264337593543950335";

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
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    archived_at: Option<DateTime<Utc>>,
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
            created_at: row.created_at,
            updated_at: row.updated_at,
            archived_at: row.archived_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct EntryRow {
    source: String,
    event_id: String,
    revision: i32,
    kind: String,
    event_type: String,
    subject: String,
    time: DateTime<Utc>,
    data: String,
    reason: Option<String>,
    recorded_at: DateTime<Utc>,
    superseded_at: Option<DateTime<Utc>>,
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
            time: row.time,
            data: serde_json::from_str(&row.data)
                .map_err(corrupt_json("decoding a usage entry's data"))?,
            reason: row.reason,
            recorded_at: row.recorded_at,
            superseded_at: row.superseded_at,
        })
    }
}

fn json_text(value: &impl serde::Serialize, what: &'static str) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::internal(what, e))
}

/// A decimal as PostgreSQL prints `numeric` (plain digits; scientific notation too, to be
/// safe). `None` when it does not fit a `Decimal`.
fn parse_decimal(text: &str) -> Option<Decimal> {
    Decimal::from_str(text)
        .or_else(|_| Decimal::from_scientific(text))
        .ok()
}

fn sum_overflow() -> Error {
    Error::new(
        ErrorCode::InvalidUsageQuery,
        "the sum is beyond 28 significant digits",
    )
}

fn value_decimal(text: &str) -> Result<Decimal> {
    // Values beyond a Decimal's range are filtered out in SQL, so this does not fail on data.
    parse_decimal(text)
        .ok_or_else(|| Error::internal("reading a usage value", format!("`{text}` is no decimal")))
}

/// The revision a correction replaces; `invalid_input` for what no correction can be.
fn check_correction(correction: &NewCorrection) -> Result<i32> {
    if correction.revision == 0 || correction.kind == EntryKind::Event {
        return Err(Error::invalid_input(
            "a correction is an amendment or a void of revision 1 or more",
        ));
    }
    i32::try_from(correction.revision - 1)
        .map_err(|_| Error::invalid_input("the correction's revision is out of range"))
}

/// Appends the conditions every usage scan shares: the scope's events of the scan's type in its
/// period, current (as of `as_of`, when given) and not voided, of the listed subjects and with
/// the filtered dimension values.
fn push_scan_conditions(q: &mut QueryBuilder<Postgres>, scope: TenantScope, scan: &UsageScan) {
    q.push(" FROM usage_events WHERE tenant_id = ")
        .push_bind(scope.tenant_id().as_uuid())
        .push(" AND event_type = ")
        .push_bind(scan.event_type.clone())
        .push(" AND time >= ")
        .push_bind(scan.from)
        .push(" AND time < ")
        .push_bind(scan.to)
        .push(" AND kind <> 'void'");
    match scan.as_of {
        None => {
            q.push(" AND superseded_at IS NULL");
        }
        Some(as_of) => {
            q.push(" AND recorded_at <= ")
                .push_bind(as_of)
                .push(" AND (superseded_at IS NULL OR superseded_at > ")
                .push_bind(as_of)
                .push(")");
        }
    }
    if !scan.subjects.is_empty() {
        q.push(" AND subject = ANY(")
            .push_bind(scan.subjects.clone())
            .push("::text[])");
    }
    for (path, values) in &scan.filters {
        q.push(" AND data #>> ")
            .push_bind(path.postgres_path())
            .push("::text[] = ANY(")
            .push_bind(values.clone())
            .push("::text[])");
    }
}

/// The value an aggregation reads, from `x` (the jsonb at the value path): `numeric` for the
/// numeric aggregations (a JSON number, or a string of a plain decimal), the value's text for
/// `UNIQUE_COUNT` (a string's content, any other JSON as JSON). NULL when unusable.
fn value_expression(aggregation: Aggregation) -> &'static str {
    if aggregation == Aggregation::UniqueCount {
        "CASE jsonb_typeof(x) WHEN 'string' THEN x #>> '{}' ELSE x::text END"
    } else {
        "CASE jsonb_typeof(x) \
             WHEN 'number' THEN x::numeric \
             WHEN 'string' THEN CASE WHEN x #>> '{}' ~ '^-?[0-9]+(\\.[0-9]+)?$' \
                 THEN (x #>> '{}')::numeric END \
         END"
    }
}

#[async_trait]
impl MeteringRepository for PgStore {
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
        // Each key once (its first occurrence wins), in key order (see the module's notes).
        let mut first = HashMap::with_capacity(events.len());
        for (at, event) in events.iter().enumerate() {
            first
                .entry((event.source.as_str(), event.id.as_str()))
                .or_insert(at);
        }
        let mut unique: Vec<usize> = first.values().copied().collect();
        unique.sort_unstable_by(|a, b| {
            let (a, b) = (&events[*a], &events[*b]);
            (&a.source, &a.id).cmp(&(&b.source, &b.id))
        });
        let mut sources = Vec::with_capacity(unique.len());
        let mut ids = Vec::with_capacity(unique.len());
        let mut types = Vec::with_capacity(unique.len());
        let mut subjects = Vec::with_capacity(unique.len());
        let mut times = Vec::with_capacity(unique.len());
        let mut data = Vec::with_capacity(unique.len());
        for at in &unique {
            let event = &events[*at];
            sources.push(event.source.as_str());
            ids.push(event.id.as_str());
            types.push(event.event_type.as_str());
            subjects.push(event.subject.as_str());
            times.push(event.time);
            data.push(json_text(&event.data, "encoding an event's data")?);
        }
        // The stored events of days that ended over half an hour ago (late ones) bump their
        // days' versions in the same statement, days in order (concurrent batches lock them in
        // one order: no deadlock). `usage_events` has no foreign key to `tenants` (its check per
        // row is a third of a large batch's cost), so the statement looks the tenant up once
        // and stores nothing when there is no such tenant, answering a row of nulls instead;
        // tenants are never deleted (migration 0012), so one that exists stays.
        let inserted: Vec<(Option<String>, Option<String>)> = sqlx::query_as(
            "WITH tenant AS (SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1) AS known),
             stored AS (
                 INSERT INTO usage_events (tenant_id, source, event_id, revision, kind,
                     event_type, subject, time, data, recorded_at)
                 SELECT $1, e.source, e.event_id, 0, 'event', e.event_type, e.subject, e.time,
                     e.data::jsonb, $8
                 FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
                     $7::text[]) AS e (source, event_id, event_type, subject, time, data)
                 WHERE (SELECT known FROM tenant)
                 ON CONFLICT (tenant_id, source, event_id, revision) DO NOTHING
                 RETURNING source, event_id, event_type, time),
             bumped AS (
                 INSERT INTO usage_day_versions AS v (tenant_id, event_type, day, version)
                 SELECT DISTINCT $1::uuid, event_type,
                     floor(extract(epoch FROM time) / 86400)::bigint, 1::bigint
                 FROM stored
                 WHERE (floor(extract(epoch FROM time) / 86400) + 1) * 86400 + $9
                     <= extract(epoch FROM now()) + $10
                 ORDER BY 2, 3
                 ON CONFLICT (tenant_id, event_type, day) DO UPDATE SET version = v.version + 1)
             SELECT source, event_id FROM stored
             UNION ALL SELECT NULL, NULL FROM tenant WHERE NOT known",
        )
        .bind(scope.tenant_id().as_uuid())
        .bind(sources)
        .bind(ids)
        .bind(types)
        .bind(subjects)
        .bind(times)
        .bind(data)
        .bind(recorded_at)
        .bind(CLOSED_DAY_MARGIN_SECONDS)
        .bind(WRITE_SLACK_SECONDS)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("storing usage events"))?;
        let inserted = inserted
            .iter()
            .map(|(source, id)| Some((source.as_deref()?, id.as_deref()?)))
            .collect::<Option<HashSet<(&str, &str)>>>()
            .ok_or_else(|| Error::not_found(TenantId::WHAT))?;
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
        let mut tx = self.begin().await?;
        // Locks the entry the correction replaces. A concurrent correction of the same event
        // waits here; when it gets the row, the row has been superseded: `conflict`.
        let replaced: Option<(String, String, Option<DateTime<Utc>>)> = sqlx::query_as(
            "SELECT kind, event_type, superseded_at FROM usage_events
             WHERE tenant_id = $1 AND source = $2 AND event_id = $3 AND revision = $4
             FOR UPDATE",
        )
        .bind(tenant)
        .bind(&correction.source)
        .bind(&correction.id)
        .bind(previous)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error("reading a usage event's current entry"))?;
        let event_type = match replaced {
            Some((_, _, Some(_))) => return Err(stale_correction()),
            Some((kind, _, None)) if kind == EntryKind::Void.as_str() => {
                return Err(Error::new(
                    ErrorCode::EventVoided,
                    "the event was voided; it takes no further corrections",
                ));
            }
            Some((_, event_type, None)) => event_type,
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
        .bind(recorded_at)
        .execute(&mut *tx)
        .await
        .map_err(db_error("superseding a usage entry"))?;
        let row = sqlx::query_as::<_, EntryRow>(sqlx::AssertSqlSafe(format!(
            "INSERT INTO usage_events (tenant_id, source, event_id, revision, kind, event_type,
                 subject, time, data, reason, recorded_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11)
             RETURNING {ENTRY_COLUMNS}"
        )))
        .bind(tenant)
        .bind(&correction.source)
        .bind(&correction.id)
        .bind(previous + 1)
        .bind(correction.kind.as_str())
        .bind(event_type)
        .bind(&correction.subject)
        .bind(correction.time)
        .bind(json_text(&correction.data, "encoding a correction's data")?)
        .bind(&correction.reason)
        .bind(recorded_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error("storing a usage correction"))?;
        // The days of the entry replaced and of its correction, when they ended over half an hour
        // ago.
        sqlx::query(
            "INSERT INTO usage_day_versions AS v (tenant_id, event_type, day, version)
             SELECT DISTINCT $1::uuid, e.event_type, floor(extract(epoch FROM e.time) / 86400)::bigint,
                 1::bigint
             FROM usage_events e
             WHERE e.tenant_id = $1 AND e.source = $2 AND e.event_id = $3
               AND e.revision IN ($4, $4 + 1)
               AND (floor(extract(epoch FROM e.time) / 86400) + 1) * 86400 + $5
                   <= extract(epoch FROM now()) + $6
             ORDER BY 2, 3
             ON CONFLICT (tenant_id, event_type, day) DO UPDATE SET version = v.version + 1",
        )
        .bind(tenant)
        .bind(&correction.source)
        .bind(&correction.id)
        .bind(previous)
        .bind(CLOSED_DAY_MARGIN_SECONDS)
        .bind(WRITE_SLACK_SECONDS)
        .execute(&mut *tx)
        .await
        .map_err(db_error("marking corrected usage days"))?;
        commit(tx).await?;
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
        // index of its own (migration 0011), without reading the period's events.
        sqlx::query_as::<_, EntryRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY_COLUMNS} FROM usage_events
             WHERE tenant_id = $1 AND (source, event_id, revision) IN (
                 SELECT source, event_id, revision FROM usage_events
                 WHERE tenant_id = $1 AND event_type = $2 AND time >= $3 AND time < $4
                   AND revision > 0
                 UNION
                 SELECT source, event_id, revision + 1 FROM usage_events
                 WHERE tenant_id = $1 AND event_type = $2 AND time >= $3 AND time < $4
                   AND superseded_at IS NOT NULL)
               AND ($5::timestamptz IS NULL OR recorded_at <= $5)
             ORDER BY recorded_at DESC, source DESC, event_id DESC, revision DESC
             LIMIT $6"
        )))
        .bind(scope.tenant_id().as_uuid())
        .bind(event_type)
        .bind(from)
        .bind(to)
        .bind(as_of)
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
            (Some(path), true) => Some(path),
            (None, true) => {
                return Err(Error::invalid_input(format!(
                    "a {aggregation} scan needs a value path"
                )));
            }
        };
        let groups = scan.group_by.len();
        let group_columns: String = (0..groups).map(|i| format!(", g{i}")).collect();
        let distinct_column = if aggregation == Aggregation::UniqueCount {
            ", v"
        } else {
            ""
        };
        // Outer: the aggregates per key. Middle: the value from `x`. Inner: the scan. The
        // `OFFSET 0`s keep PostgreSQL from inlining one level into the next, which would
        // evaluate `#>` (and detoast `data`) once per use of the value instead of once per row.
        let mut q = QueryBuilder::<Postgres>::new(format!(
            "SELECT bucket, subject{group_columns}{distinct_column}, count(*) AS count"
        ));
        match aggregation {
            Aggregation::Count | Aggregation::UniqueCount => {}
            Aggregation::Sum | Aggregation::Avg => {
                q.push(", sum(v)::text");
            }
            Aggregation::Min => {
                q.push(", min(v)::text");
            }
            Aggregation::Max => {
                q.push(", max(v)::text");
            }
            Aggregation::Latest => {
                // The greatest (time, recorded_at, value): the latest event's value, in one
                // pass and constant memory per group.
                q.push(
                    ", max(ARRAY[extract(epoch FROM time), extract(epoch FROM recorded_at), v])::text[]",
                );
            }
        }
        q.push(" FROM (SELECT bucket, subject, time, recorded_at");
        q.push(&group_columns);
        if value.is_some() {
            q.push(", ")
                .push(value_expression(aggregation))
                .push(" AS v");
        }
        q.push(" FROM (SELECT ");
        match scan.bucket_seconds {
            Some(seconds) => {
                q.push("(floor(extract(epoch FROM time) / ")
                    .push_bind(i64::from(seconds.max(1)))
                    .push(") * ")
                    .push_bind(i64::from(seconds.max(1)))
                    .push(")::bigint AS bucket");
            }
            None => {
                q.push("NULL::bigint AS bucket");
            }
        }
        q.push(if scan.group_by_subject {
            ", subject"
        } else {
            ", NULL::text AS subject"
        });
        q.push(", time, recorded_at");
        for (i, path) in scan.group_by.iter().enumerate() {
            q.push(", data #>> ")
                .push_bind(path.postgres_path())
                .push(format!("::text[] AS g{i}"));
        }
        if let Some(path) = value {
            q.push(", data #> ")
                .push_bind(path.postgres_path())
                .push("::text[] AS x");
        }
        push_scan_conditions(&mut q, scope, scan);
        q.push(" OFFSET 0) AS e OFFSET 0) AS e");
        if value.is_some() {
            q.push(" WHERE v IS NOT NULL");
            if aggregation.is_numeric() {
                q.push(format!(" AND abs(v) <= {DECIMAL_MAX}"));
            }
        }
        q.push(format!(
            " GROUP BY bucket, subject{group_columns}{distinct_column}"
        ));

        let rows = q
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(db_error("aggregating usage"))?;
        let read = |e| db_error("reading aggregated usage")(e);
        let mut cells = Vec::with_capacity(rows.len());
        for row in rows {
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
                    let sum: String = row.try_get(next()).map_err(read)?;
                    cell.sum = Some(parse_decimal(&sum).ok_or_else(sum_overflow)?);
                }
                Aggregation::Min => {
                    let min: String = row.try_get(next()).map_err(read)?;
                    cell.min = Some(value_decimal(&min)?);
                }
                Aggregation::Max => {
                    let max: String = row.try_get(next()).map_err(read)?;
                    cell.max = Some(value_decimal(&max)?);
                }
                Aggregation::Latest => {
                    let latest: Vec<String> = row.try_get(next()).map_err(read)?;
                    let [time, _, value] = latest.as_slice() else {
                        return Err(Error::internal(
                            "reading aggregated usage",
                            "the latest value is not a triple",
                        ));
                    };
                    cell.latest = Some((epoch_time(time)?, value_decimal(value)?));
                }
            }
            cells.push(cell);
        }
        Ok(cells)
    }

    async fn usage_days(
        &self,
        scope: TenantScope,
        event_type: &str,
        shape: &str,
        days: Range<i64>,
    ) -> Result<Vec<UsageDay>> {
        if days.is_empty() {
            return Ok(Vec::new());
        }
        // One statement: the versions and the cached answers as of one snapshot.
        let rows: Vec<(i64, i64, Option<i64>, Option<String>)> = sqlx::query_as(
            "SELECT d.day, coalesce(v.version, 0), c.version, c.cells
             FROM generate_series($3::bigint, $4::bigint - 1) AS d (day)
             LEFT JOIN usage_day_versions v
                 ON v.tenant_id = $1 AND v.event_type = $2 AND v.day = d.day
             LEFT JOIN usage_day_cache c
                 ON c.tenant_id = $1 AND c.event_type = $2 AND c.shape = $5 AND c.day = d.day
             WHERE (d.day + 1) * 86400 + $6 <= extract(epoch FROM now())
             ORDER BY d.day",
        )
        .bind(scope.tenant_id().as_uuid())
        .bind(event_type)
        .bind(days.start)
        .bind(days.end)
        .bind(shape)
        .bind(CLOSED_DAY_MARGIN_SECONDS)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("reading cached usage"))?;
        Ok(rows
            .into_iter()
            .map(|(day, version, cached_version, cells)| UsageDay {
                day,
                version,
                cells: cells
                    .filter(|_| cached_version == Some(version))
                    .and_then(|text| UsageCell::decode_day(&text)),
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
            "INSERT INTO usage_day_cache AS c (tenant_id, event_type, shape, day, version, cells,
                 cached_at)
             VALUES ($1, $2, $3, $4, $5, $6, now())
             ON CONFLICT (tenant_id, event_type, shape, day) DO UPDATE
                 SET version = excluded.version, cells = excluded.cells,
                     cached_at = excluded.cached_at
                 WHERE c.version <= excluded.version",
        )
        .bind(scope.tenant_id().as_uuid())
        .bind(event_type)
        .bind(shape)
        .bind(day)
        .bind(version)
        .bind(UsageCell::encode_day(cells)?)
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
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10::jsonb, $11, $11)
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
        .bind(at)
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
        let mut query = QueryBuilder::<Postgres>::new(format!(
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
            "UPDATE meters SET price = $3::jsonb, updated_at = $4
             WHERE id = $1 AND tenant_id = $2
             RETURNING {METER_COLUMNS}"
        )))
        .bind(id.as_uuid())
        .bind(scope.tenant_id().as_uuid())
        .bind(price)
        .bind(at)
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
        .bind(at)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("archiving a meter"))?
        .map(Meter::try_from)
        .transpose()
    }
}

fn stale_correction() -> Error {
    Error::new(
        ErrorCode::Conflict,
        "the event was corrected meanwhile; read its current entry and correct that",
    )
}

/// A time from PostgreSQL's `extract(epoch ...)` text: seconds with up to six decimals.
fn epoch_time(text: &str) -> Result<DateTime<Utc>> {
    parse_decimal(text)
        .and_then(|seconds| (seconds * Decimal::from(1_000_000)).trunc().to_i64())
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(|| Error::internal("reading aggregated usage", format!("`{text}` is no time")))
}
