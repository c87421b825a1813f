//! Metering: usage events in, usage and its price out.
//!
//! [`Metering`] is the service every carrier (the HTTP routes in [`http`], the admin GraphQL
//! API, Purser's own gateway) goes through:
//!
//! - **ingest**: CloudEvents are read and checked one by one (shape, time bounds, the meters of
//!   their type), and the valid ones of a batch are stored in one transaction, deduplicated per
//!   tenant on (`source`, `id`) forever. Each event gets its own answer; an invalid one (which
//!   includes text the stores would not keep alike, see [`purser_domain::text`]) stores
//!   nothing and costs the others nothing, and so does one the store refuses all the same (the
//!   batch is then stored one event at a time). The answer is given only after the
//!   transaction commits, so an acknowledged event is durable.
//! - **query**: a meter's usage per window, subject and dimension (see
//!   [`purser_domain::metering::query`]), with the corrections recorded in the period.
//! - **correct**: amend or void an event, with a reason; the original entry stays.
//! - **rate**: a priced meter's usage per subject, priced.
//!
//! The active meters of a tenant are cached for a second per instance (ingestion checks each
//! event against them) and forgotten at once when a meter changes on any instance
//! ([`Invalidation::Meters`]). The cache is bounded ([`METER_CACHE_WEIGHT`]: a tenant weighs
//! one plus its active meters), and a read that began before an invalidation is not kept.

pub mod http;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{StreamExt, stream};
use purser_cache::BoundedCache;
use purser_domain::auth::TenantScope;
use purser_domain::coord::{Forget, Invalidation, Invalidator};
use purser_domain::id::{MeterId, TenantId};
use purser_domain::metering::event::event_key;
use purser_domain::metering::{
    CorrectionChange, Meter, MeterPrice, NewCorrection, NewMeter, NewUsageEvent, Rated, TimeBounds,
    UsageCell, UsageEntry, UsageQuery, UsageRow, UsageScan,
};
use purser_domain::page::{Page, PageRequest};
use purser_domain::repo::MeteringRepository;
use purser_domain::text;
use purser_domain::{Error, ErrorCode, Result};
use serde::Serialize;
use serde_json::Value;

/// How long an instance trusts its copy of a tenant's meters without an announcement.
const METER_CACHE_TTL: Duration = Duration::from_secs(1);
/// How much of tenants' active meters an instance caches at most: each tenant weighs one plus
/// its number of active meters, so this bounds both the tenants and the meters held.
pub const METER_CACHE_WEIGHT: u64 = 50_000;
/// The most corrections a usage answer lists.
pub const MAX_LISTED_CORRECTIONS: u32 = 100;
/// Scans of one usage query running at once (a month is scanned a day at a time).
const SCAN_PARALLELISM: usize = 2;
/// A day with more cells than this (say, a UNIQUE_COUNT over millions of values) is not
/// cached: reading it back would cost about what scanning it does.
const MAX_CACHED_CELLS: usize = 200_000;

/// Limits on what ingestion accepts.
#[derive(Debug, Clone, Copy)]
pub struct MeteringLimits {
    /// Events per batch request.
    pub max_batch_events: usize,
    pub bounds: TimeBounds,
}

impl Default for MeteringLimits {
    fn default() -> Self {
        Self {
            max_batch_events: 1000,
            bounds: TimeBounds {
                max_age: chrono::Duration::days(35),
                max_future_skew: chrono::Duration::minutes(5),
            },
        }
    }
}

/// What became of one event of a request.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventOutcome {
    /// The event's `id` and `source` as sent (absent when they were not strings).
    pub id: Option<String>,
    pub source: Option<String>,
    pub status: EventStatus,
    /// For a rejected event: why, as a stable code and a message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<OutcomeError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    /// Stored now.
    Accepted,
    /// Stored before (this tenant sent an event with this `source` and `id`): not counted again.
    Duplicate,
    /// Not stored.
    Rejected,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutcomeError {
    #[serde(serialize_with = "code_name")]
    pub code: ErrorCode,
    pub message: String,
}

fn code_name<S: serde::Serializer>(code: &ErrorCode, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(code.as_str())
}

/// A meter's usage over a period, with the corrections that changed it.
#[derive(Debug, Clone)]
pub struct UsageReport {
    pub meter: Meter,
    pub rows: Vec<UsageRow>,
    /// Corrections of the events in the period that match the query's subjects and filters (as
    /// the correction left them; newest first, at most [`MAX_LISTED_CORRECTIONS`]): a report
    /// run before one of them showed other numbers.
    pub corrections: Vec<UsageEntry>,
}

/// One subject's usage of a priced meter over a period, priced.
#[derive(Debug, Clone)]
pub struct RatedUsage {
    pub subject: String,
    pub rated: Rated,
}

type MeterCache = BoundedCache<TenantId, Arc<[Meter]>>;

/// Tenants' active meters, weighing at most `max` in all, each for [`METER_CACHE_TTL`].
fn meter_cache(max: u64) -> MeterCache {
    BoundedCache::builder("active meters", max)
        .weighed_by(|_, meters: &Arc<[Meter]>| {
            u32::try_from(meters.len())
                .unwrap_or(u32::MAX)
                .saturating_add(1)
        })
        .time_to_live(METER_CACHE_TTL)
        .build()
}

/// The metering service.
pub struct Metering {
    store: Arc<dyn MeteringRepository>,
    limits: MeteringLimits,
    meters: MeterCache,
    /// Weak: the invalidator holds this service as one of its caches.
    invalidator: Mutex<Weak<Invalidator>>,
}

impl std::fmt::Debug for Metering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metering")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Metering {
    pub fn new(store: Arc<dyn MeteringRepository>, limits: MeteringLimits) -> Self {
        Self {
            store,
            limits,
            meters: meter_cache(METER_CACHE_WEIGHT),
            invalidator: Mutex::new(Weak::new()),
        }
    }

    /// Where meter changes are announced to other instances (the invalidator holds this
    /// service as one of its caches, so it is set after both exist).
    pub fn announce_through(&self, invalidator: &Arc<Invalidator>) {
        *self.invalidator.lock().unwrap_or_else(|p| p.into_inner()) = Arc::downgrade(invalidator);
    }

    pub fn limits(&self) -> &MeteringLimits {
        &self.limits
    }

    pub fn store(&self) -> &Arc<dyn MeteringRepository> {
        &self.store
    }

    async fn active_meters(&self, scope: TenantScope) -> Result<Arc<[Meter]>> {
        self.meters
            .get_or_read(scope.tenant_id(), || async {
                Ok(self.store.active_meters(scope).await?.into())
            })
            .await
    }

    async fn meters_changed(&self, tenant: TenantId) {
        let invalidator = self
            .invalidator
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .upgrade();
        match invalidator {
            Some(invalidator) => invalidator.announce(&Invalidation::Meters(tenant)).await,
            None => self.forget(&Invalidation::Meters(tenant)),
        }
    }

    /// Checks `data` of an event of `event_type` against every active meter of that type.
    fn check_against(meters: &[Meter], event_type: &str, data: &Value) -> Result<()> {
        meters
            .iter()
            .filter(|meter| meter.event_type == event_type)
            .try_for_each(|meter| meter.check(data))
    }

    /// Ingests a request's events (one, or a batch): an answer per event, in order.
    /// `batch_too_large` (nothing stored) beyond [`MeteringLimits::max_batch_events`].
    pub async fn ingest(
        &self,
        scope: TenantScope,
        events: Vec<Value>,
        now: DateTime<Utc>,
    ) -> Result<Vec<EventOutcome>> {
        if events.len() > self.limits.max_batch_events {
            return Err(Error::new(
                ErrorCode::BatchTooLarge,
                format!(
                    "the batch holds {} events; at most {} are accepted per request",
                    events.len(),
                    self.limits.max_batch_events
                ),
            ));
        }
        let meters = self.active_meters(scope).await?;
        let mut outcomes = Vec::with_capacity(events.len());
        let mut valid = Vec::with_capacity(events.len());
        let mut positions = Vec::with_capacity(events.len());
        for value in events {
            let (id, source) = event_key(&value);
            let (id, source) = (id.map(str::to_owned), source.map(str::to_owned));
            let checked = NewUsageEvent::from_cloud_event(value, now).and_then(|event| {
                self.limits.bounds.check(event.time, now)?;
                Self::check_against(&meters, &event.event_type, &event.data)?;
                Ok(event)
            });
            match checked {
                Ok(event) => {
                    positions.push(outcomes.len());
                    valid.push(event);
                    outcomes.push(EventOutcome {
                        id,
                        source,
                        status: EventStatus::Accepted,
                        error: None,
                    });
                }
                Err(error) => outcomes.push(EventOutcome {
                    id,
                    source,
                    status: EventStatus::Rejected,
                    error: Some(OutcomeError {
                        code: error.code(),
                        message: error.message().to_owned(),
                    }),
                }),
            }
        }
        if valid.is_empty() {
            return Ok(outcomes);
        }
        match self.store.insert_usage_events(scope, &valid, now).await {
            Ok(stored) => {
                for (position, stored) in positions.into_iter().zip(stored) {
                    if !stored {
                        outcomes[position].status = EventStatus::Duplicate;
                    }
                }
            }
            // Every event passed the checks, so this should not happen; if the store refuses
            // the batch all the same (a row it will not keep), the events are stored one at a
            // time, so that the refused one is answered as such and the others are stored.
            Err(error) if refused_rows(&error) => {
                tracing::warn!(
                    tenant = %scope.tenant_id(),
                    events = valid.len(),
                    code = %error.code(),
                    error = %error.chain(),
                    "the store refused a checked batch of usage events; storing them one at a time"
                );
                for (event, position) in valid.iter().zip(positions) {
                    let one = std::slice::from_ref(event);
                    match self.store.insert_usage_events(scope, one, now).await {
                        Ok(stored) if stored.first() == Some(&true) => {}
                        Ok(_) => outcomes[position].status = EventStatus::Duplicate,
                        Err(error) if refused_rows(&error) => {
                            if error.is_server_error() {
                                tracing::error!(error = %error.chain(), "the store refused a usage event");
                            }
                            outcomes[position].status = EventStatus::Rejected;
                            outcomes[position].error = Some(OutcomeError {
                                code: error.code(),
                                message: error.public_message().to_owned(),
                            });
                        }
                        Err(error) => return Err(error),
                    }
                }
            }
            Err(error) => return Err(error),
        }
        Ok(outcomes)
    }

    /// Records an event Purser itself observed (a paid request, a settlement): stored once per
    /// (`source`, `id`), never checked against the tenant's meters (Purser's own events have a
    /// fixed shape). Answers whether it was new.
    pub async fn record(&self, scope: TenantScope, event: NewUsageEvent) -> Result<bool> {
        event.check()?;
        let stored = self
            .store
            .insert_usage_events(scope, std::slice::from_ref(&event), Utc::now())
            .await?;
        Ok(stored.first().copied().unwrap_or(false))
    }

    /// The meter with `slug` (`not_found`, also for another tenant's, and for what is no
    /// slug at all).
    pub async fn meter(&self, scope: TenantScope, slug: &str) -> Result<Meter> {
        if !purser_domain::metering::meter::is_slug(slug) {
            return Err(Error::not_found("meter"));
        }
        self.store
            .find_meter_by_slug(scope, slug)
            .await?
            .ok_or_else(|| Error::not_found("meter"))
    }

    /// A meter's usage.
    pub async fn query(
        &self,
        scope: TenantScope,
        slug: &str,
        query: &UsageQuery,
    ) -> Result<UsageReport> {
        let meter = self.meter(scope, slug).await?;
        let plan = query.plan(&meter)?;
        let cells = self.aggregate(scope, &plan.scan).await?;
        let rows = plan.merge(cells)?;
        // The corrections of the events the query covers: its subjects and dimension values,
        // as the correction left them.
        let corrections = self
            .store
            .list_usage_corrections(
                scope,
                &meter.event_type,
                query.from,
                query.to,
                query.as_of,
                MAX_LISTED_CORRECTIONS,
            )
            .await?
            .into_iter()
            .filter(|entry| {
                (query.subjects.is_empty() || query.subjects.contains(&entry.subject))
                    && plan.scan.filters.iter().all(|(path, values)| {
                        path.select(&entry.data)
                            .map(|value| match value {
                                Value::String(text) => text.clone(),
                                other => other.to_string(),
                            })
                            .is_some_and(|text| values.contains(&text))
                    })
            })
            .collect();
        Ok(UsageReport {
            meter,
            rows,
            corrections,
        })
    }

    /// A priced meter's usage per subject over `[from, to)`, priced (`subjects` empty: every
    /// subject with usage). `invalid_usage_query` when the meter has no price.
    pub async fn rate(
        &self,
        scope: TenantScope,
        slug: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        subjects: Vec<String>,
    ) -> Result<Vec<RatedUsage>> {
        let meter = self.meter(scope, slug).await?;
        let price = meter.price.clone().ok_or_else(|| {
            Error::new(
                ErrorCode::InvalidUsageQuery,
                format!("meter `{slug}` has no price to rate its usage with"),
            )
        })?;
        let query = UsageQuery {
            from,
            to,
            window: None,
            time_zone: purser_domain::metering::query::Tz::UTC,
            subjects,
            filters: Default::default(),
            group_by: vec![purser_domain::metering::meter::SUBJECT.to_owned()],
            as_of: None,
        };
        let plan = query.plan(&meter)?;
        let cells = self.aggregate(scope, &plan.scan).await?;
        plan.merge(cells)?
            .into_iter()
            .map(|row| {
                Ok(RatedUsage {
                    subject: row.subject.unwrap_or_default(),
                    rated: price.rate(row.value)?,
                })
            })
            .collect()
    }

    /// Runs `scan`: each closed UTC day wholly inside its period from the day cache when the
    /// day has not changed since it was cached; the other closed days scanned in runs of
    /// consecutive days, [`SCAN_PARALLELISM`] at a time, and cached per day; the rest of the
    /// period (its ragged ends, the days not closed yet) scanned. A failure to cache costs the
    /// next query a scan, not this one its answer.
    async fn aggregate(&self, scope: TenantScope, scan: &UsageScan) -> Result<Vec<UsageCell>> {
        let days = scan.whole_days();
        let shape = scan.shape();
        let known = if days.is_empty() {
            Vec::new()
        } else {
            self.store
                .usage_days(scope, &scan.event_type, &shape, days)
                .await?
        };
        let mut cells = Vec::new();
        let mut stale = Vec::new();
        for day in &known {
            match &day.cells {
                Some(cached) => cells.extend_from_slice(cached),
                None => stale.push((day.day, day.version)),
            }
        }
        let covered: Vec<i64> = known.iter().map(|day| day.day).collect();
        let mut pieces: Vec<(UsageScan, &[(i64, i64)])> = scan
            .outside(&covered)
            .into_iter()
            .map(|rest| (rest, &[][..]))
            .collect();
        pieces.extend(
            day_runs(&stale, SCAN_PARALLELISM)
                .into_iter()
                .map(|run| (scan.over_days(run[0].0..run[run.len() - 1].0 + 1), run)),
        );
        // The futures are made first, so that the stream holds no closure (which would make
        // the handler's future fail to be `Send` for every lifetime).
        let scans: Vec<_> = pieces
            .into_iter()
            .map(|(piece, days)| self.scan_piece(scope, piece, days, &shape))
            .collect();
        let mut scans = stream::iter(scans).buffer_unordered(SCAN_PARALLELISM);
        while let Some(piece) = scans.next().await {
            cells.extend(piece?);
        }
        Ok(cells)
    }

    /// Scans one piece of a usage scan. When the piece is a run of closed days (`days`: each
    /// with the version read before the scan), each day's cells are cached under `shape` at its
    /// version; days without usage are not (scanning them again costs next to nothing).
    async fn scan_piece(
        &self,
        scope: TenantScope,
        piece: UsageScan,
        days: &[(i64, i64)],
        shape: &str,
    ) -> Result<Vec<UsageCell>> {
        let cells = self.store.aggregate_usage(scope, &piece).await?;
        if days.is_empty() {
            return Ok(cells);
        }
        let mut by_day: BTreeMap<i64, Vec<UsageCell>> = BTreeMap::new();
        for cell in &cells {
            if let Some(day) = cell.day() {
                by_day.entry(day).or_default().push(cell.clone());
            }
        }
        for (day, version) in days {
            let Some(day_cells) = by_day.get(day) else {
                continue;
            };
            if day_cells.len() > MAX_CACHED_CELLS {
                continue;
            }
            if let Err(error) = self
                .store
                .cache_usage_day(scope, &piece.event_type, shape, *day, *version, day_cells)
                .await
            {
                tracing::warn!(code = %error.code(), "caching a day of usage failed: {error}");
            }
        }
        Ok(cells)
    }

    /// Every entry of one event, oldest first (`not_found` when there is none).
    pub async fn history(
        &self,
        scope: TenantScope,
        source: &str,
        id: &str,
    ) -> Result<Vec<UsageEntry>> {
        // No event is stored with a `source` or `id` that breaks the text rules.
        if text::EVENT_SOURCE.fault(source).is_some() || text::EVENT_ID.fault(id).is_some() {
            return Err(Error::not_found("usage event"));
        }
        let entries = self.store.usage_event_history(scope, source, id).await?;
        if entries.is_empty() {
            return Err(Error::not_found("usage event"));
        }
        Ok(entries)
    }

    /// Amends or voids an event, for `reason`. An amendment's data must still satisfy the
    /// meters of the event's type.
    pub async fn correct(
        &self,
        scope: TenantScope,
        source: &str,
        id: &str,
        change: CorrectionChange,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<UsageEntry> {
        let history = self.history(scope, source, id).await?;
        let current = history
            .iter()
            .find(|entry| entry.superseded_at.is_none())
            .or(history.last())
            .ok_or_else(|| Error::not_found("usage event"))?;
        let correction = NewCorrection::of(current, change, reason)?;
        if correction.kind == purser_domain::metering::EntryKind::Amendment {
            if correction.time > now + self.limits.bounds.max_future_skew {
                return Err(Error::new(
                    ErrorCode::EventInFuture,
                    "the amended time is in the future",
                ));
            }
            let meters = self.active_meters(scope).await?;
            Self::check_against(&meters, &current.event_type, &correction.data)?;
        }
        self.store
            .correct_usage_event(scope, &correction, now)
            .await
    }

    pub async fn create_meter(&self, scope: TenantScope, meter: NewMeter) -> Result<Meter> {
        meter.validate()?;
        let created = self.store.create_meter(scope, &meter, Utc::now()).await?;
        self.meters_changed(scope.tenant_id()).await;
        Ok(created)
    }

    pub async fn list_meters(
        &self,
        scope: TenantScope,
        include_archived: bool,
        page: PageRequest,
    ) -> Result<Page<Meter>> {
        self.store.list_meters(scope, include_archived, page).await
    }

    pub async fn set_price(
        &self,
        scope: TenantScope,
        id: MeterId,
        price: Option<MeterPrice>,
    ) -> Result<Meter> {
        if let Some(price) = &price {
            price.validate()?;
        }
        let meter = self
            .store
            .set_meter_price(scope, id, price.as_ref(), Utc::now())
            .await?
            .ok_or_else(|| Error::not_found("meter"))?;
        self.meters_changed(scope.tenant_id()).await;
        Ok(meter)
    }

    pub async fn archive_meter(&self, scope: TenantScope, id: MeterId) -> Result<Meter> {
        let meter = self
            .store
            .archive_meter(scope, id, Utc::now())
            .await?
            .ok_or_else(|| Error::not_found("meter"))?;
        self.meters_changed(scope.tenant_id()).await;
        Ok(meter)
    }
}

impl Forget for Metering {
    fn forget(&self, what: &Invalidation) {
        if let Invalidation::Meters(tenant) = what {
            self.meters.forget(tenant);
        }
    }

    fn forget_all(&self) {
        self.meters.forget_all();
    }
}

/// Whether a store's refusal of a batch of checked events may be about some of its rows, so
/// that storing them one at a time answers each: a refused value (`invalid_input`,
/// `malformed_cloudevent`) or an unexpected failure (`internal`). A missing tenant or an
/// unreachable database fails every event alike and answers the request.
fn refused_rows(error: &Error) -> bool {
    matches!(
        error.code(),
        ErrorCode::InvalidInput | ErrorCode::MalformedCloudEvent | ErrorCode::Internal
    )
}

/// Splits `days` (ascending Unix days, each with its version) into runs of consecutive days,
/// cutting long runs so that the work spreads over `parallelism` scans: at most
/// `ceil(len / parallelism)` days per run.
fn day_runs(days: &[(i64, i64)], parallelism: usize) -> Vec<&[(i64, i64)]> {
    let longest = days.len().div_ceil(parallelism.max(1)).max(1);
    let mut runs = Vec::new();
    let mut start = 0;
    for at in 1..=days.len() {
        let ends = at == days.len() || days[at].0 != days[at - 1].0 + 1 || at - start == longest;
        if ends {
            runs.push(&days[start..at]);
            start = at;
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::day_runs;

    #[test]
    fn stale_days_are_scanned_in_runs_spread_over_the_parallel_scans() {
        let days = |list: &[i64]| list.iter().map(|d| (*d, 0)).collect::<Vec<_>>();
        let starts = |runs: Vec<&[(i64, i64)]>| {
            runs.iter()
                .map(|run| run.iter().map(|(d, _)| *d).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        };
        // A month of stale days: two runs of 15, one per scan.
        let month: Vec<i64> = (100..130).collect();
        let runs = starts(day_runs(&days(&month), 2));
        assert_eq!(runs, [(100..115).collect::<Vec<_>>(), (115..130).collect()]);
        // Gaps (cached days) cut runs too.
        assert_eq!(
            starts(day_runs(&days(&[1, 2, 3, 7, 8, 20]), 2)),
            [vec![1, 2, 3], vec![7, 8], vec![20]]
        );
        assert!(day_runs(&[], 2).is_empty());
        assert_eq!(starts(day_runs(&days(&[5]), 2)), [vec![5]]);
    }
}

#[cfg(test)]
mod cache_tests;
