//! Metering's hot paths on PostgreSQL (`purser_store_sql::metering` has the rest).
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
//! (the path as a `text[]`, [`pg_path`]), cast to `numeric` (exact) when they are JSON numbers
//! or plain decimal strings, and everything else is skipped, so a query never fails on an
//! event's data. Results cross as text and are parsed into `Decimal`s.
//!
//! The insert statement bumps the versions of the days its new events fall in that ended over
//! half an hour ago (`bumps_day`), in a CTE over the rows it inserted, and a correction does so
//! in a statement of its own, both with the database's clock (`now()`, the statement's start),
//! so no instance's clock decides it.

use std::collections::HashSet;
use std::ops::Range;

use chrono::{DateTime, Utc};
use purser_domain::auth::TenantScope;
use purser_domain::id::TenantId;
use purser_domain::metering::path::Segment;
use purser_domain::metering::query::{CLOSED_DAY_MARGIN_SECONDS, WRITE_SLACK_SECONDS};
use purser_domain::metering::{
    Aggregation, NewCorrection, NewUsageEvent, UsageCell, UsageDay, UsageScan, ValuePath,
};
use purser_domain::{Error, Result};
use purser_store_sql::metering::{
    MeteringDialect, first_occurrences, parse_decimal, stored_outcomes, sum_overflow, value_decimal,
};
use purser_store_sql::{db_error, json_text};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use crate::{PgDialect, PgStore};

/// The largest magnitude a `Decimal` holds: values beyond it are skipped, like other values
/// that are not numbers.
const DECIMAL_MAX: &str = "79228162514264337593543950335";

/// A path as PostgreSQL's `#>`/`#>>` operators take it: a `text[]` of its segments, indices as
/// digits (member names of digits alone are refused when a path is parsed, since these
/// operators would read them as indices too).
fn pg_path(path: &ValuePath) -> Vec<String> {
    path.segments()
        .iter()
        .map(|segment| match segment {
            Segment::Name(name) => name.clone(),
            Segment::Index(index) => index.to_string(),
        })
        .collect()
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
            .push_bind(pg_path(path))
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

impl MeteringDialect for PgDialect {
    // Corrections whose own time is in the period, and corrections of entries whose time was (a
    // superseded entry's successor is its correction): each found through a partial index of
    // its own (migration 0011), without reading the period's events.
    const LIST_CORRECTIONS: &'static str = "SELECT source, event_id, revision, kind, event_type,
             subject, time, data::text AS data, reason, recorded_at, superseded_at
         FROM usage_events
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
         LIMIT $6";

    async fn insert_usage_events(
        store: &PgStore,
        scope: TenantScope,
        events: &[NewUsageEvent],
        recorded_at: DateTime<Utc>,
    ) -> Result<Vec<bool>> {
        // Each key once (its first occurrence wins), in key order (see the module's notes).
        let first = first_occurrences(events);
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
        .fetch_all(store.pool())
        .await
        .map_err(db_error::<PgDialect>("storing usage events"))?;
        let inserted = inserted
            .iter()
            .map(|(source, id)| Some((source.as_deref()?, id.as_deref()?)))
            .collect::<Option<HashSet<(&str, &str)>>>()
            .ok_or_else(|| Error::not_found(TenantId::WHAT))?;
        Ok(stored_outcomes(events, &first, &inserted))
    }

    async fn bump_corrected_days(
        conn: &mut PgConnection,
        scope: TenantScope,
        correction: &NewCorrection,
        replaced: i32,
        _event_type: &str,
        _replaced_time: DateTime<Utc>,
    ) -> Result<()> {
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
        .bind(scope.tenant_id().as_uuid())
        .bind(&correction.source)
        .bind(&correction.id)
        .bind(replaced)
        .bind(CLOSED_DAY_MARGIN_SECONDS)
        .bind(WRITE_SLACK_SECONDS)
        .execute(conn)
        .await
        .map_err(db_error::<PgDialect>("marking corrected usage days"))?;
        Ok(())
    }

    async fn aggregate_usage(
        store: &PgStore,
        scope: TenantScope,
        scan: &UsageScan,
        value: Option<&ValuePath>,
    ) -> Result<Vec<UsageCell>> {
        let aggregation = scan.aggregation;
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
                .push_bind(pg_path(path))
                .push(format!("::text[] AS g{i}"));
        }
        if let Some(path) = value {
            q.push(", data #> ")
                .push_bind(pg_path(path))
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
            .fetch_all(store.pool())
            .await
            .map_err(db_error::<PgDialect>("aggregating usage"))?;
        let read = |e| db_error::<PgDialect>("reading aggregated usage")(e);
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
        store: &PgStore,
        scope: TenantScope,
        event_type: &str,
        shape: &str,
        days: Range<i64>,
    ) -> Result<Vec<UsageDay>> {
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
        .fetch_all(store.pool())
        .await
        .map_err(db_error::<PgDialect>("reading cached usage"))?;
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
        store: &PgStore,
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
        .execute(store.pool())
        .await
        .map_err(db_error::<PgDialect>("caching usage"))?;
        Ok(())
    }
}

/// A time from PostgreSQL's `extract(epoch ...)` text: seconds with up to six decimals.
fn epoch_time(text: &str) -> Result<DateTime<Utc>> {
    parse_decimal(text)
        .and_then(|seconds| (seconds * Decimal::from(1_000_000)).trunc().to_i64())
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(|| Error::internal("reading aggregated usage", format!("`{text}` is no time")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_text_arrays() {
        let path = ValuePath::parse("$.usage['input tokens'][2].n").unwrap();
        assert_eq!(pg_path(&path), ["usage", "input tokens", "2", "n"]);
        assert!(pg_path(&ValuePath::parse("$").unwrap()).is_empty());
    }
}
