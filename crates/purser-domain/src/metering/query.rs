//! Usage queries: a meter's value per window, subject and dimension.
//!
//! The database aggregates (a scan of millions of events should not cross the wire), but it
//! has no time zones on SQLite and month lengths are calendar arithmetic. So a query is
//! planned in two steps that both stores share:
//!
//! 1. [`UsageQuery::plan`] computes the windows' boundaries in the caller's time zone and picks
//!    the widest *fine bucket* (1 day, 1 hour, 15 minutes or 1 minute of UTC epoch time) that
//!    no boundary falls inside. Every IANA zone's offset is a whole number of minutes, and
//!    today's are multiples of 15, so a day window in `Asia/Kathmandu` aggregates in
//!    15-minute buckets, one in `UTC` in day buckets.
//! 2. The store aggregates per fine bucket ([`UsageScan`] → [`UsageCell`]s: count, sum, min,
//!    max, latest, or one cell per distinct value), and [`UsagePlan::merge`] folds the cells
//!    into windows. Every aggregation merges exactly: `AVG` as sum and count, `UNIQUE_COUNT` as
//!    the set of distinct values, `LATEST` by event time.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
pub use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::hex;
use crate::error::{Error, ErrorCode, Result};
use crate::macros::string_enum;
use crate::metering::meter::{Aggregation, Meter, SUBJECT};
use crate::metering::path::ValuePath;

/// The most windows one query may ask for.
pub const MAX_WINDOWS: usize = 10_000;
/// The most values one filter may list.
pub const MAX_FILTER_VALUES: usize = 100;

string_enum!(
    /// The size of a usage window, in the query's time zone.
    WindowSize, "window size" {
        Minute = "MINUTE",
        Hour = "HOUR",
        Day = "DAY",
        Month = "MONTH",
    }
);

/// What a caller asks.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageQuery {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// `None`: one row per group for the whole period.
    pub window: Option<WindowSize>,
    pub time_zone: Tz,
    /// Only these subjects (empty: all).
    pub subjects: Vec<String>,
    /// Dimension name → the values it may have (as text).
    pub filters: BTreeMap<String, Vec<String>>,
    /// `subject` and dimension names.
    pub group_by: Vec<String>,
    /// See the events as they were at this time: corrections recorded later are not applied.
    pub as_of: Option<DateTime<Utc>>,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::InvalidUsageQuery, message.into())
}

/// Parses a time zone name (`Europe/Berlin`, `UTC`).
pub fn parse_time_zone(name: &str) -> Result<Tz> {
    name.parse::<Tz>().map_err(|_| {
        invalid(format!(
            "unknown time zone `{}`; use an IANA name such as `UTC` or `Europe/Berlin`",
            name.chars().take(64).collect::<String>()
        ))
    })
}

/// What a store computes: one scan over a meter's events.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageScan {
    pub event_type: String,
    pub aggregation: Aggregation,
    pub value: Option<ValuePath>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub as_of: Option<DateTime<Utc>>,
    /// Cells per `floor(epoch seconds / bucket) × bucket`; `None`: no time grouping.
    pub bucket_seconds: Option<u32>,
    pub subjects: Vec<String>,
    /// Each path's value, as text, must be one of the values.
    pub filters: Vec<(ValuePath, Vec<String>)>,
    pub group_by_subject: bool,
    pub group_by: Vec<ValuePath>,
}

/// One cell of a scan: the events of one fine bucket, subject (if grouped) and group values
/// (and, for `UNIQUE_COUNT`, one distinct value). Only what the aggregation needs is set.
/// Events whose value is missing or (for numeric aggregations) not numeric are left out.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UsageCell {
    /// The fine bucket's start, in Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The group-by dimensions' values, in [`UsageScan::group_by`] order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Option<String>>,
    /// Events in the cell (with a value, for aggregations that read one).
    pub count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Decimal>,
    /// The latest event's time and value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<(DateTime<Utc>, Decimal)>,
    /// For `UNIQUE_COUNT`: the distinct value this cell counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distinct: Option<String>,
}

/// Seconds in a UTC day: the unit usage answers are cached in (see [`UsageScan::shape`]).
pub const DAY_SECONDS: i64 = 86_400;

/// A UTC day is *closed*, and its usage answers may be cached, once it ended this long ago by
/// the store's clock.
pub const CLOSED_DAY_MARGIN_SECONDS: i64 = 3_600;

/// How long a write may take, from the clock reading it decides by to its commit, and still be
/// seen by every answer cached for its day. Storing an event or a correction in a day that
/// closes less than this far in the store's future (so: a day that ended more than half an hour
/// ago) bumps the day's version, so no cached answer outlives it; an entry stored sooner after
/// its day's end (the traffic of the moment, a batch sent a little late) writes nothing but
/// itself, so live ingestion never waits on a day's version row.
pub const WRITE_SLACK_SECONDS: i64 = 1_800;

/// The Unix day (days since 1970-01-01 UTC) holding `at`.
pub fn unix_day(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(DAY_SECONDS)
}

/// Whether storing an entry timed `at`, at `now` by the store's clock, must bump its day's
/// version: the day closes at most [`WRITE_SLACK_SECONDS`] after `now`.
pub fn bumps_day(at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    (unix_day(at) + 1) * DAY_SECONDS + CLOSED_DAY_MARGIN_SECONDS
        <= now.timestamp() + WRITE_SLACK_SECONDS
}

/// Whether the Unix day `day` is closed at `now` by the store's clock.
pub fn day_closed(day: i64, now: DateTime<Utc>) -> bool {
    (day + 1) * DAY_SECONDS + CLOSED_DAY_MARGIN_SECONDS <= now.timestamp()
}

/// A closed day of a usage scan, as a store knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageDay {
    /// The Unix day.
    pub day: i64,
    /// The day's version now: what a scan computed after this read is cached under.
    pub version: i64,
    /// The day's cells for the scan's shape, when cached at this version.
    pub cells: Option<Vec<UsageCell>>,
}

impl UsageCell {
    /// The Unix day of the cell's bucket (`None` for a scan without buckets).
    pub fn day(&self) -> Option<i64> {
        self.bucket.map(|bucket| bucket.div_euclid(DAY_SECONDS))
    }

    /// A day's cells as a store caches them.
    pub fn encode_day(cells: &[UsageCell]) -> Result<String> {
        serde_json::to_string(cells).map_err(|e| Error::internal("encoding usage cells", e))
    }

    /// Cells cached by [`UsageCell::encode_day`]; `None` when the text is not such cells (a
    /// row written by another version: it is recomputed).
    pub fn decode_day(text: &str) -> Option<Vec<UsageCell>> {
        serde_json::from_str(text).ok()
    }
}

impl UsageScan {
    /// What identifies this scan but its period and `as_of`: the key its answers per day are
    /// cached under, a SHA-256 in hex of the aggregation, value path, fine bucket, subjects,
    /// filters and grouping (subjects and filter values sorted: their order changes nothing).
    pub fn shape(&self) -> String {
        let mut subjects = self.subjects.clone();
        subjects.sort_unstable();
        subjects.dedup();
        let mut filters: Vec<(String, Vec<String>)> = self
            .filters
            .iter()
            .map(|(path, values)| {
                let mut values = values.clone();
                values.sort_unstable();
                values.dedup();
                (path.to_string(), values)
            })
            .collect();
        filters.sort_unstable();
        let canonical = serde_json::json!({
            "cells": 1,
            "eventType": self.event_type,
            "aggregation": self.aggregation.as_str(),
            "value": self.value.as_ref().map(ToString::to_string),
            "bucket": self.bucket_seconds,
            "subjects": subjects,
            "filters": filters,
            "groupBySubject": self.group_by_subject,
            "groupBy": self.group_by.iter().map(ToString::to_string).collect::<Vec<_>>(),
        });
        hex(&Sha256::digest(canonical.to_string().as_bytes()))
    }

    /// The Unix days wholly inside the scan's period: the ones whose answers may be cached.
    /// Empty for an `as_of` scan (it reads entries as they were, not as they are).
    pub fn whole_days(&self) -> Range<i64> {
        if self.as_of.is_some() {
            return 0..0;
        }
        let first = (self.from.timestamp() + DAY_SECONDS - 1).div_euclid(DAY_SECONDS);
        let end = self.to.timestamp().div_euclid(DAY_SECONDS);
        first..end.max(first)
    }

    /// This scan over `[from, to)` instead.
    pub fn over(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> UsageScan {
        UsageScan {
            from,
            to,
            ..self.clone()
        }
    }

    /// This scan over the Unix days `days`, its cells split by day at least (a scan without
    /// windows gets day buckets; every fine bucket divides a day), so that each cell belongs to
    /// one day: see [`UsageCell::day`].
    pub fn over_days(&self, days: Range<i64>) -> UsageScan {
        UsageScan {
            bucket_seconds: Some(self.bucket_seconds.unwrap_or(DAY_SECONDS as u32)),
            ..self.over(day_start(days.start), day_start(days.end))
        }
    }

    /// The scans covering the rest of the period when the Unix days `covered` (ascending,
    /// inside [`UsageScan::whole_days`]) are answered otherwise.
    pub fn outside(&self, covered: &[i64]) -> Vec<UsageScan> {
        let mut rest = Vec::new();
        let mut from = self.from;
        for day in covered {
            let start = day_start(*day);
            if from < start {
                rest.push(self.over(from, start));
            }
            from = from.max(day_start(day + 1));
        }
        if from < self.to {
            rest.push(self.over(from, self.to));
        }
        rest
    }
}

fn day_start(day: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(day.saturating_mul(DAY_SECONDS), 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// One row of an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRow {
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    /// When grouped by subject.
    pub subject: Option<String>,
    /// The dimensions grouped by (by name), `None` where an event had no value.
    pub groups: BTreeMap<String, Option<String>>,
    pub value: Decimal,
}

/// A planned query: the scan to run and the windows to fold it into.
#[derive(Debug, Clone, PartialEq)]
pub struct UsagePlan {
    pub scan: UsageScan,
    /// Window starts, ascending, then the last window's end.
    boundaries: Vec<DateTime<Utc>>,
    group_names: Vec<String>,
}

impl UsageQuery {
    /// Plans the query against `meter`: `invalid_usage_query` naming the problem.
    pub fn plan(&self, meter: &Meter) -> Result<UsagePlan> {
        if self.from >= self.to {
            return Err(invalid("`from` must be before `to`"));
        }
        if self.subjects.len() > MAX_FILTER_VALUES {
            return Err(invalid("at most 100 subjects may be filtered on"));
        }
        // No stored event holds NUL (see `crate::text`), and PostgreSQL refuses it even to
        // compare with.
        if self
            .subjects
            .iter()
            .chain(self.filters.values().flatten())
            .any(|value| value.contains('\0'))
        {
            return Err(invalid(
                "a subject or filter value contains NUL (U+0000), which no event holds",
            ));
        }
        let dimension = |name: &str| -> Result<ValuePath> {
            meter.group_by.get(name).cloned().ok_or_else(|| {
                invalid(format!(
                    "meter `{}` has no dimension `{}`; it has: {}",
                    meter.slug,
                    name.chars().take(64).collect::<String>(),
                    std::iter::once(SUBJECT)
                        .chain(meter.group_by.keys().map(String::as_str))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
        };
        let mut filters = Vec::new();
        for (name, values) in &self.filters {
            if values.is_empty() || values.len() > MAX_FILTER_VALUES {
                return Err(invalid(format!(
                    "the filter on `{name}` needs 1 to 100 values"
                )));
            }
            filters.push((dimension(name)?, values.clone()));
        }
        let mut group_by_subject = false;
        let mut group_by = Vec::new();
        let mut group_names = Vec::new();
        let mut seen = BTreeSet::new();
        for name in &self.group_by {
            if !seen.insert(name.as_str()) {
                return Err(invalid(format!("`{name}` is grouped by twice")));
            }
            if name == SUBJECT {
                group_by_subject = true;
            } else {
                group_by.push(dimension(name)?);
                group_names.push(name.clone());
            }
        }
        let boundaries = match self.window {
            None => vec![self.from, self.to],
            Some(size) => window_boundaries(self.from, self.to, size, self.time_zone)?,
        };
        let bucket_seconds = self.window.map(|_| fine_bucket(&boundaries));
        Ok(UsagePlan {
            scan: UsageScan {
                event_type: meter.event_type.clone(),
                aggregation: meter.aggregation,
                value: meter.value.clone(),
                from: self.from,
                to: self.to,
                as_of: self.as_of,
                bucket_seconds,
                subjects: self.subjects.clone(),
                filters,
                group_by_subject,
                group_by,
            },
            boundaries,
            group_names,
        })
    }
}

/// The start of the window holding `at`, in `tz`.
fn window_floor(at: DateTime<Utc>, size: WindowSize, tz: Tz) -> DateTime<Utc> {
    let local = at.with_timezone(&tz).naive_local();
    let date = local.date();
    let floored: NaiveDateTime = match size {
        WindowSize::Minute => {
            // Minute windows are plain UTC minutes (every zone's offset is whole minutes).
            let secs = at.timestamp().div_euclid(60) * 60;
            return DateTime::from_timestamp(secs, 0).unwrap_or(at);
        }
        WindowSize::Hour => date.and_hms_opt(local.hour(), 0, 0),
        WindowSize::Day => date.and_hms_opt(0, 0, 0),
        WindowSize::Month => NaiveDate::from_ymd_opt(date.year(), date.month(), 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0)),
    }
    .unwrap_or(local);
    resolve_local(floored, tz)
}

/// The instant of a local time; in a gap (a DST jump), the first instant after it.
fn resolve_local(local: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    let mut probe = local;
    for _ in 0..=8 {
        if let Some(at) = tz.from_local_datetime(&probe).earliest() {
            return at.with_timezone(&Utc);
        }
        probe += Duration::minutes(15);
    }
    Utc.from_utc_datetime(&local)
}

fn next_window(start: DateTime<Utc>, size: WindowSize, tz: Tz) -> DateTime<Utc> {
    match size {
        WindowSize::Minute => start + Duration::minutes(1),
        WindowSize::Hour => {
            // An hour in local time can be 30 or 90 minutes across a shift; take the next local
            // hour's start strictly after `start`.
            let next = window_floor(start + Duration::minutes(61), size, tz);
            if next > start {
                next
            } else {
                start + Duration::hours(1)
            }
        }
        WindowSize::Day => {
            let local = start.with_timezone(&tz).naive_local().date();
            let next = local.succ_opt().unwrap_or(local);
            resolve_local(next.and_hms_opt(0, 0, 0).unwrap_or_default(), tz)
        }
        WindowSize::Month => {
            let local = start.with_timezone(&tz).naive_local().date();
            let (year, month) = if local.month() == 12 {
                (local.year() + 1, 1)
            } else {
                (local.year(), local.month() + 1)
            };
            let first = NaiveDate::from_ymd_opt(year, month, 1).unwrap_or(local);
            resolve_local(first.and_hms_opt(0, 0, 0).unwrap_or_default(), tz)
        }
    }
}

fn window_boundaries(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    size: WindowSize,
    tz: Tz,
) -> Result<Vec<DateTime<Utc>>> {
    let mut boundaries = vec![window_floor(from, size, tz)];
    while *boundaries.last().unwrap_or(&to) < to {
        if boundaries.len() > MAX_WINDOWS {
            return Err(invalid(format!(
                "the period holds more than {MAX_WINDOWS} {size} windows; use a larger window or a shorter period"
            )));
        }
        let last = *boundaries.last().unwrap_or(&to);
        boundaries.push(next_window(last, size, tz));
    }
    Ok(boundaries)
}

/// The widest fine bucket no window boundary falls strictly inside.
fn fine_bucket(boundaries: &[DateTime<Utc>]) -> u32 {
    [86_400u32, 3_600, 900, 60]
        .into_iter()
        .find(|size| {
            boundaries
                .iter()
                .all(|b| b.timestamp().rem_euclid(i64::from(*size)) == 0)
        })
        .unwrap_or(60)
}

#[derive(Default)]
struct Fold {
    count: u64,
    sum: Decimal,
    min: Option<Decimal>,
    max: Option<Decimal>,
    latest: Option<(DateTime<Utc>, Decimal)>,
    distinct: BTreeSet<String>,
}

impl UsagePlan {
    /// The windows, as (start, end) pairs.
    pub fn windows(&self) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> + '_ {
        self.boundaries.windows(2).map(|pair| (pair[0], pair[1]))
    }

    /// Folds a store's cells into rows, ordered by window, subject and groups. Windows without
    /// events have no rows. Overflow of a sum is `invalid_usage_query`.
    pub fn merge(&self, cells: Vec<UsageCell>) -> Result<Vec<UsageRow>> {
        type Key = (usize, Option<String>, Vec<Option<String>>);
        let mut folds: BTreeMap<Key, Fold> = BTreeMap::new();
        let from = self.scan.from.timestamp();
        for cell in cells {
            let window = match cell.bucket {
                None => 0,
                Some(bucket) => {
                    let at = bucket.max(from);
                    let after = self.boundaries.partition_point(|b| b.timestamp() <= at);
                    after
                        .saturating_sub(1)
                        .min(self.boundaries.len().saturating_sub(2))
                }
            };
            let fold = folds
                .entry((window, cell.subject, cell.groups))
                .or_default();
            fold.count += cell.count;
            if let Some(sum) = cell.sum {
                fold.sum = fold
                    .sum
                    .checked_add(sum)
                    .ok_or_else(|| invalid("the sum is beyond 28 significant digits"))?;
            }
            fold.min = match (fold.min, cell.min) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            fold.max = match (fold.max, cell.max) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            if let Some(latest) = cell.latest
                && fold.latest.is_none_or(|(at, _)| latest.0 > at)
            {
                fold.latest = Some(latest);
            }
            if let Some(distinct) = cell.distinct {
                fold.distinct.insert(distinct);
            }
        }
        let mut rows = Vec::with_capacity(folds.len());
        for ((window, subject, groups), fold) in folds {
            let value = match self.scan.aggregation {
                Aggregation::Count => Decimal::from(fold.count),
                Aggregation::Sum => fold.sum,
                Aggregation::Avg if fold.count == 0 => continue,
                Aggregation::Avg => fold.sum / Decimal::from(fold.count),
                Aggregation::Min => match fold.min {
                    Some(min) => min,
                    None => continue,
                },
                Aggregation::Max => match fold.max {
                    Some(max) => max,
                    None => continue,
                },
                Aggregation::Latest => match fold.latest {
                    Some((_, value)) => value,
                    None => continue,
                },
                Aggregation::UniqueCount => Decimal::from(fold.distinct.len()),
            };
            rows.push(UsageRow {
                window_start: self.boundaries[window],
                window_end: self.boundaries[window + 1],
                subject,
                groups: self.group_names.iter().cloned().zip(groups).collect(),
                value: value.normalize(),
            });
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{MeterId, TenantId};
    use rust_decimal::dec;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn meter(aggregation: Aggregation) -> Meter {
        Meter {
            id: MeterId::new(),
            tenant_id: TenantId::new(),
            slug: "m".into(),
            name: "m".into(),
            description: None,
            event_type: "t".into(),
            aggregation,
            value: Some(ValuePath::parse("$.n").unwrap()),
            group_by: BTreeMap::from([("model".into(), ValuePath::parse("$.model").unwrap())]),
            price: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            archived_at: None,
        }
    }

    fn query(window: Option<WindowSize>, tz: &str, from: &str, to: &str) -> UsageQuery {
        UsageQuery {
            from: at(from),
            to: at(to),
            window,
            time_zone: parse_time_zone(tz).unwrap(),
            subjects: vec![],
            filters: BTreeMap::new(),
            group_by: vec![],
            as_of: None,
        }
    }

    #[test]
    fn day_windows_follow_the_zone_and_its_shifts() {
        // Berlin leaves summer time on 2026-10-25: that day has 25 hours.
        let plan = query(
            Some(WindowSize::Day),
            "Europe/Berlin",
            "2026-10-24T00:00:00Z",
            "2026-10-26T12:00:00Z",
        )
        .plan(&meter(Aggregation::Sum))
        .unwrap();
        let windows: Vec<_> = plan.windows().collect();
        assert_eq!(windows.len(), 3);
        assert_eq!(windows[0].0, at("2026-10-23T22:00:00Z"));
        assert_eq!(
            windows[1],
            (at("2026-10-24T22:00:00Z"), at("2026-10-25T23:00:00Z"))
        );
        assert_eq!(plan.scan.bucket_seconds, Some(3600));

        let kathmandu = query(
            Some(WindowSize::Day),
            "Asia/Kathmandu",
            "2026-10-24T00:00:00Z",
            "2026-10-26T00:00:00Z",
        )
        .plan(&meter(Aggregation::Sum))
        .unwrap();
        assert_eq!(kathmandu.scan.bucket_seconds, Some(900));
        let utc = query(
            Some(WindowSize::Month),
            "UTC",
            "2026-01-15T00:00:00Z",
            "2026-03-01T00:00:00Z",
        )
        .plan(&meter(Aggregation::Sum))
        .unwrap();
        assert_eq!(utc.scan.bucket_seconds, Some(86_400));
        let months: Vec<_> = utc.windows().map(|w| w.0).collect();
        assert_eq!(
            months,
            [at("2026-01-01T00:00:00Z"), at("2026-02-01T00:00:00Z")]
        );
    }

    #[test]
    fn hour_windows_in_a_half_hour_zone() {
        let plan = query(
            Some(WindowSize::Hour),
            "Asia/Kolkata",
            "2026-10-24T00:10:00Z",
            "2026-10-24T03:00:00Z",
        )
        .plan(&meter(Aggregation::Sum))
        .unwrap();
        let starts: Vec<_> = plan.windows().map(|w| w.0).collect();
        assert_eq!(starts[0], at("2026-10-23T23:30:00Z"));
        assert_eq!(starts.len(), 4);
        assert_eq!(plan.scan.bucket_seconds, Some(900));
    }

    #[test]
    fn refuses_bad_queries() {
        let m = meter(Aggregation::Sum);
        let mut q = query(None, "UTC", "2026-10-24T00:00:00Z", "2026-10-24T00:00:00Z");
        assert_eq!(q.plan(&m).unwrap_err().code(), ErrorCode::InvalidUsageQuery);
        q.to = at("2027-10-24T00:00:00Z");
        q.window = Some(WindowSize::Minute);
        assert!(q.plan(&m).unwrap_err().message().contains("more than"));
        q.window = None;
        q.group_by = vec!["color".into()];
        assert!(
            q.plan(&m)
                .unwrap_err()
                .message()
                .contains("no dimension `color`")
        );
        q.group_by = vec!["subject".into(), "subject".into()];
        assert!(q.plan(&m).is_err());
        q.group_by = vec![];
        q.filters.insert("model".into(), vec![]);
        assert!(q.plan(&m).is_err());
        q.filters.insert("model".into(), vec!["gpt\u{0}".into()]);
        assert!(q.plan(&m).unwrap_err().message().contains("NUL"));
        q.filters.clear();
        q.subjects = vec!["\u{0}".into()];
        assert!(q.plan(&m).unwrap_err().message().contains("NUL"));
        assert!(parse_time_zone("Mars/Olympus").is_err());
    }

    fn cell(bucket: &str, count: u64, sum: Decimal) -> UsageCell {
        UsageCell {
            bucket: Some(at(bucket).timestamp()),
            count,
            sum: Some(sum),
            min: Some(sum),
            max: Some(sum),
            latest: Some((at(bucket), sum)),
            groups: vec![],
            ..UsageCell::default()
        }
    }

    #[test]
    fn merges_fine_buckets_into_windows() {
        let cells = || {
            vec![
                cell("2026-10-24T22:00:00Z", 2, dec!(3)),
                cell("2026-10-25T05:00:00Z", 1, dec!(10)),
                cell("2026-10-25T23:00:00Z", 4, dec!(1)),
            ]
        };
        let q = query(
            Some(WindowSize::Day),
            "Europe/Berlin",
            "2026-10-24T22:00:00Z",
            "2026-10-26T23:00:00Z",
        );
        let rows = |aggregation| {
            q.plan(&meter(aggregation))
                .unwrap()
                .merge(cells())
                .unwrap()
                .into_iter()
                .map(|row| (row.window_start, row.value))
                .collect::<Vec<_>>()
        };
        let (day1, day2) = (at("2026-10-24T22:00:00Z"), at("2026-10-25T23:00:00Z"));
        assert_eq!(rows(Aggregation::Sum), [(day1, dec!(13)), (day2, dec!(1))]);
        assert_eq!(rows(Aggregation::Count), [(day1, dec!(3)), (day2, dec!(4))]);
        assert_eq!(
            rows(Aggregation::Avg),
            [(day1, dec!(13) / dec!(3)), (day2, dec!(0.25))]
        );
        assert_eq!(rows(Aggregation::Min), [(day1, dec!(3)), (day2, dec!(1))]);
        assert_eq!(rows(Aggregation::Max), [(day1, dec!(10)), (day2, dec!(1))]);
        assert_eq!(
            rows(Aggregation::Latest),
            [(day1, dec!(10)), (day2, dec!(1))]
        );

        let unique = q.plan(&meter(Aggregation::UniqueCount)).unwrap();
        let distinct = |bucket: &str, value: &str| UsageCell {
            bucket: Some(at(bucket).timestamp()),
            count: 1,
            distinct: Some(value.into()),
            ..UsageCell::default()
        };
        let rows = unique
            .merge(vec![
                distinct("2026-10-24T22:00:00Z", "a"),
                distinct("2026-10-25T01:00:00Z", "a"),
                distinct("2026-10-25T02:00:00Z", "b"),
                distinct("2026-10-26T02:00:00Z", "a"),
            ])
            .unwrap();
        assert_eq!(
            rows.iter().map(|r| r.value).collect::<Vec<_>>(),
            [dec!(2), dec!(1)]
        );
    }

    #[test]
    fn whole_days_are_the_utc_days_inside_the_period() {
        let plan = query(None, "UTC", "2026-11-03T06:00:00Z", "2026-11-06T00:00:00Z")
            .plan(&meter(Aggregation::Sum))
            .unwrap();
        let nov4 = unix_day(at("2026-11-04T00:00:00Z"));
        assert_eq!(plan.scan.whole_days(), nov4..nov4 + 2);
        // A period inside one day has none; an `asOf` scan never has any.
        let short = plan
            .scan
            .over(at("2026-11-04T01:00:00Z"), at("2026-11-04T23:00:00Z"));
        assert!(short.whole_days().is_empty());
        let mut as_of = plan.scan.clone();
        as_of.as_of = Some(at("2026-11-10T00:00:00Z"));
        assert!(as_of.whole_days().is_empty());
    }

    #[test]
    fn outside_covers_exactly_what_the_cached_days_do_not() {
        let plan = query(None, "UTC", "2026-11-03T06:00:00Z", "2026-11-07T12:00:00Z")
            .plan(&meter(Aggregation::Sum))
            .unwrap();
        let nov4 = unix_day(at("2026-11-04T00:00:00Z"));
        // Days 4 and 6 cached: the head, day 5 and the tail are scanned.
        let rest: Vec<_> = plan
            .scan
            .outside(&[nov4, nov4 + 2])
            .into_iter()
            .map(|scan| (scan.from, scan.to))
            .collect();
        assert_eq!(
            rest,
            [
                (at("2026-11-03T06:00:00Z"), at("2026-11-04T00:00:00Z")),
                (at("2026-11-05T00:00:00Z"), at("2026-11-06T00:00:00Z")),
                (at("2026-11-07T00:00:00Z"), at("2026-11-07T12:00:00Z")),
            ]
        );
        assert_eq!(plan.scan.outside(&[]).len(), 1);
        let all: Vec<i64> = plan.scan.whole_days().collect();
        assert_eq!(plan.scan.outside(&all).len(), 2);
    }

    #[test]
    fn a_day_closes_after_the_margin_and_late_entries_bump_it_before_then() {
        let day = unix_day(at("2026-11-04T12:00:00Z"));
        assert!(!day_closed(day, at("2026-11-05T00:59:59Z")));
        assert!(day_closed(day, at("2026-11-05T01:00:00Z")));
        let in_day = at("2026-11-04T23:59:00Z");
        // Stored before the day ends or within half an hour after: no bump (the day cannot be
        // cached before such a write commits) ...
        assert!(!bumps_day(in_day, at("2026-11-04T23:59:30Z")));
        assert!(!bumps_day(in_day, at("2026-11-05T00:29:59Z")));
        // ... from half an hour after its end on, and ever after: a bump.
        assert!(bumps_day(in_day, at("2026-11-05T00:30:00Z")));
        assert!(bumps_day(in_day, at("2026-12-01T00:00:00Z")));
        // A day is never closed while a write that started up to the slack earlier, and so
        // may not have committed yet, skipped its bump.
        for minutes in -120..120 {
            let now = at("2026-11-05T00:00:00Z") + Duration::minutes(minutes);
            let started = now - Duration::seconds(WRITE_SLACK_SECONDS);
            assert!(!day_closed(day, now) || bumps_day(in_day, started));
        }
    }

    #[test]
    fn the_shape_ignores_the_period_and_the_order_of_filter_values() {
        let mut a = query(
            Some(WindowSize::Day),
            "UTC",
            "2026-11-01T00:00:00Z",
            "2026-11-08T00:00:00Z",
        );
        a.subjects = vec!["bob".into(), "alice".into()];
        a.filters = BTreeMap::from([("model".into(), vec!["b".into(), "a".into()])]);
        let mut b = a.clone();
        b.from = at("2026-10-01T00:00:00Z");
        b.subjects.reverse();
        b.filters
            .insert("model".into(), vec!["a".into(), "b".into()]);
        let m = meter(Aggregation::Sum);
        let shape = a.plan(&m).unwrap().scan.shape();
        assert_eq!(shape, b.plan(&m).unwrap().scan.shape());
        assert_eq!(shape.len(), 64);
        // Anything that changes the cells changes the shape.
        let mut c = a.clone();
        c.group_by = vec!["model".into()];
        assert_ne!(shape, c.plan(&m).unwrap().scan.shape());
        let mut d = a.clone();
        d.window = Some(WindowSize::Hour);
        assert_ne!(shape, d.plan(&m).unwrap().scan.shape());
        assert_ne!(
            shape,
            a.plan(&meter(Aggregation::Max)).unwrap().scan.shape()
        );
    }

    #[test]
    fn cached_cells_read_back_as_written() {
        let cells = vec![
            UsageCell {
                bucket: Some(86_400),
                subject: Some("alice".into()),
                groups: vec![Some("a".into()), None],
                count: 3,
                sum: Some(dec!(1.5)),
                latest: Some((at("2026-11-04T10:00:00.123456Z"), dec!(-2))),
                ..UsageCell::default()
            },
            UsageCell {
                count: 1,
                distinct: Some("u-1".into()),
                ..UsageCell::default()
            },
        ];
        let text = UsageCell::encode_day(&cells).unwrap();
        assert_eq!(UsageCell::decode_day(&text), Some(cells));
        assert_eq!(UsageCell::decode_day("{\"not\": \"cells\"}"), None);
    }
}
