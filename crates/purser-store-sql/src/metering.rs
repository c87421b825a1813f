//! Metering (`purser_domain::metering`): meters, and usage events stored one row per entry
//! (the event as ingested is revision 0, each correction the next revision).
//!
//! Meters, an event's history and a correction's entries are the same on every backend. The
//! hot paths are not ([`MeteringDialect`]): a batch of events is inserted in one statement
//! over PostgreSQL's `UNNEST` of column arrays or SQLite's `json_each` of one JSON array, and
//! usage is aggregated in SQL exactly (PostgreSQL's `numeric`, SQLite's integer parts), each
//! backend answering the domain's [`UsageCell`]s.
//!
//! Usage answers of closed days are cached per query shape (`usage_day_cache`) under the day's
//! version (`usage_day_versions`, see migration 0009); a transaction that stores an event or a
//! correction in a day that ended over half an hour ago bumps that day's version.

use std::collections::{HashMap, HashSet};
use std::fmt::{self, Display};
use std::future::Future;
use std::ops::Range;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use purser_domain::auth::TenantScope;
use purser_domain::id::{MeterId, TenantId};
use purser_domain::metering::{
    EntryKind, Meter, MeterPrice, NewCorrection, NewMeter, NewUsageEvent, UsageCell, UsageDay,
    UsageEntry, UsageScan, ValuePath, check_correction,
};
use purser_domain::page::{Page, PageRequest};
use purser_domain::repo::MeteringRepository;
use purser_domain::{Error, ErrorCode, Result};
use rust_decimal::Decimal;

use crate::{Cols, Conn, Dialect, Row, Sql, SqlStore, commit, corrupt_json, json_text, push_page};

/// The metering pieces each backend writes for itself.
pub trait MeteringDialect: Dialect {
    /// The statement listing a period's corrections: `$1` tenant, `$2` event type, `$3`..`$4`
    /// the period, `$5` the time the answer is as of (or NULL), `$6` the limit; the
    /// [`entry_columns`], newest recorded first (then source, id and revision, descending).
    const LIST_CORRECTIONS: &'static str;

    /// Stores a batch of events (checked, not empty) as revision-0 entries, each key once (its
    /// first occurrence, [`first_occurrences`]), and bumps the versions of the closed days the
    /// stored events fall in, in one transaction; answers, per event, whether it was stored
    /// ([`stored_outcomes`]). `not_found` when the tenant does not exist.
    fn insert_usage_events(
        store: &SqlStore<Self>,
        scope: TenantScope,
        events: &[NewUsageEvent],
        recorded_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<bool>>> + Send;

    /// In a correction's transaction, after it is stored: bumps the versions of the days of the
    /// entry replaced (`replaced`, at `replaced_time`) and of the correction, of those that
    /// ended over half an hour ago.
    fn bump_corrected_days(
        conn: &mut Conn<Self>,
        scope: TenantScope,
        correction: &NewCorrection,
        replaced: i32,
        event_type: &str,
        replaced_time: DateTime<Utc>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// The scan's cells, aggregated in SQL per fine bucket and group; `value` is the scan's
    /// value path when its aggregation reads one.
    fn aggregate_usage(
        store: &SqlStore<Self>,
        scope: TenantScope,
        scan: &UsageScan,
        value: Option<&ValuePath>,
    ) -> impl Future<Output = Result<Vec<UsageCell>>> + Send;

    /// The closed days among `days` (not empty) with their versions and the cells cached for
    /// `shape` under the current version, read as of one snapshot.
    fn usage_days(
        store: &SqlStore<Self>,
        scope: TenantScope,
        event_type: &str,
        shape: &str,
        days: Range<i64>,
    ) -> impl Future<Output = Result<Vec<UsageDay>>> + Send;

    /// Stores a day's cells for `shape` under `version`, unless a newer version's are stored.
    fn cache_usage_day(
        store: &SqlStore<Self>,
        scope: TenantScope,
        event_type: &str,
        shape: &str,
        day: i64,
        version: i64,
        cells: &[UsageCell],
    ) -> impl Future<Output = Result<()>> + Send;
}

fn meter_columns<D: Dialect>() -> impl Display {
    fmt::from_fn(|f| {
        write!(
            f,
            "id, tenant_id, slug, name, description, event_type, aggregation, value_path, \
             group_by{text} AS group_by, price{text} AS price, created_at, updated_at, archived_at",
            text = D::AS_TEXT
        )
    })
}

/// The columns [`entry`] reads.
pub fn entry_columns<D: Dialect>() -> impl Display {
    fmt::from_fn(|f| {
        write!(
            f,
            "source, event_id, revision, kind, event_type, subject, time, data{} AS data, \
             reason, recorded_at, superseded_at",
            D::AS_TEXT
        )
    })
}

fn read_meter<D: Dialect>(row: &Row<D>) -> Result<Meter> {
    let r = Cols::<D>::new(row);
    let what = "decoding a meter";
    Ok(Meter {
        id: MeterId::from_uuid(r.uuid("id")?),
        tenant_id: TenantId::from_uuid(r.uuid("tenant_id")?),
        slug: r.text("slug")?,
        name: r.text("name")?,
        description: r.opt_text("description")?,
        event_type: r.text("event_type")?,
        aggregation: r.parse("aggregation", what)?,
        value: r
            .opt_text("value_path")?
            .as_deref()
            .map(ValuePath::parse)
            .transpose()
            .map_err(|e| crate::corrupt_row(what, e))?,
        group_by: serde_json::from_str(&r.text("group_by")?)
            .map_err(corrupt_json("decoding a meter's dimensions"))?,
        price: r
            .opt_text("price")?
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(corrupt_json("decoding a meter's price"))?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
        archived_at: r.opt_time("archived_at")?,
    })
}

pub fn read_entry<D: Dialect>(row: &Row<D>) -> Result<UsageEntry> {
    let r = Cols::<D>::new(row);
    Ok(UsageEntry {
        source: r.text("source")?,
        id: r.text("event_id")?,
        revision: u32::try_from(r.i32("revision")?)
            .map_err(|e| Error::internal("decoding a usage entry's revision", e))?,
        kind: r.parse("kind", "decoding a usage entry")?,
        event_type: r.text("event_type")?,
        subject: r.text("subject")?,
        time: r.time("time")?,
        data: serde_json::from_str(&r.text("data")?)
            .map_err(corrupt_json("decoding a usage entry's data"))?,
        reason: r.opt_text("reason")?,
        recorded_at: r.time("recorded_at")?,
        superseded_at: r.opt_time("superseded_at")?,
    })
}

/// Each event key of a batch with the index of its first occurrence, which is the one stored.
pub fn first_occurrences(events: &[NewUsageEvent]) -> HashMap<(&str, &str), usize> {
    let mut first = HashMap::with_capacity(events.len());
    for (at, event) in events.iter().enumerate() {
        first
            .entry((event.source.as_str(), event.id.as_str()))
            .or_insert(at);
    }
    first
}

/// Per event of a batch, whether it was stored: its key's first occurrence, among the keys the
/// insert answered.
pub fn stored_outcomes(
    events: &[NewUsageEvent],
    first: &HashMap<(&str, &str), usize>,
    inserted: &HashSet<(&str, &str)>,
) -> Vec<bool> {
    events
        .iter()
        .enumerate()
        .map(|(at, event)| {
            let key = (event.source.as_str(), event.id.as_str());
            first.get(&key) == Some(&at) && inserted.contains(&key)
        })
        .collect()
}

/// A usage value or sum as the database answers it (PostgreSQL's `numeric` text, or the exact
/// text SQLite keeps: a JSON number's own digits or a plain decimal string), scientific
/// notation included. `None` when it does not fit a `Decimal`.
pub fn parse_decimal(text: &str) -> Option<Decimal> {
    Decimal::from_str(text)
        .or_else(|_| Decimal::from_scientific(text))
        .ok()
}

/// A value the aggregation picked (a minimum, maximum or latest value). Values beyond a
/// `Decimal`'s range are filtered out in SQL, so this does not fail on data.
pub fn value_decimal(text: &str) -> Result<Decimal> {
    parse_decimal(text)
        .ok_or_else(|| Error::internal("reading a usage value", format!("`{text}` is no decimal")))
}

/// A sum beyond what a `Decimal` holds.
pub fn sum_overflow() -> Error {
    Error::new(
        ErrorCode::InvalidUsageQuery,
        "the sum is beyond 28 significant digits",
    )
}

fn stale_correction() -> Error {
    Error::new(
        ErrorCode::Conflict,
        "the event was corrected meanwhile; read its current entry and correct that",
    )
}

#[async_trait]
impl<D: MeteringDialect> MeteringRepository for SqlStore<D> {
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
        D::insert_usage_events(self, scope, events, recorded_at).await
    }

    async fn usage_event_history(
        &self,
        scope: TenantScope,
        source: &str,
        id: &str,
    ) -> Result<Vec<UsageEntry>> {
        let sql = Sql::new(format!(
            "SELECT {} FROM usage_events
             WHERE tenant_id = $1 AND source = $2 AND event_id = $3 ORDER BY revision",
            entry_columns::<D>()
        ))
        .arg(scope.tenant_id().as_uuid())
        .arg(source)
        .arg(id);
        self.fetch_all(sql, "reading a usage event's history")
            .await?
            .iter()
            .map(read_entry::<D>)
            .collect()
    }

    async fn correct_usage_event(
        &self,
        scope: TenantScope,
        correction: &NewCorrection,
        recorded_at: DateTime<Utc>,
    ) -> Result<UsageEntry> {
        correction.check()?;
        // At most 2^31 - 1 (`check_correction`), as the stores keep it.
        let previous = check_correction(correction)? as i32;
        let tenant = scope.tenant_id().as_uuid();
        let mut tx = self.begin_write().await?;
        // Reads (and where rows are locked, locks) the entry the correction replaces. A
        // concurrent correction of the same event waits for this one to commit, then finds the
        // entry superseded: `conflict`.
        let replaced = Sql::<D>::new(format!(
            "SELECT kind, event_type, superseded_at, time FROM usage_events
             WHERE tenant_id = $1 AND source = $2 AND event_id = $3 AND revision = $4{}",
            D::FOR_UPDATE
        ))
        .arg(tenant)
        .arg(&correction.source)
        .arg(&correction.id)
        .arg(previous)
        .fetch_optional(&mut tx, "reading a usage event's current entry")
        .await?;
        let Some(replaced) = replaced else {
            let row = Sql::<D>::new(
                "SELECT EXISTS (SELECT 1 FROM usage_events
                     WHERE tenant_id = $1 AND source = $2 AND event_id = $3) AS found",
            )
            .arg(tenant)
            .arg(&correction.source)
            .arg(&correction.id)
            .fetch_one(&mut tx, "reading a usage event")
            .await?;
            return Err(if Cols::<D>::new(&row).bool("found")? {
                stale_correction()
            } else {
                Error::not_found("usage event")
            });
        };
        let r = Cols::<D>::new(&replaced);
        if r.opt_time("superseded_at")?.is_some() {
            return Err(stale_correction());
        }
        if r.text("kind")? == EntryKind::Void.as_str() {
            return Err(Error::new(
                ErrorCode::EventVoided,
                "the event was voided; it takes no further corrections",
            ));
        }
        let (event_type, replaced_time) = (r.text("event_type")?, r.time("time")?);
        Sql::<D>::new(
            "UPDATE usage_events SET superseded_at = $5
             WHERE tenant_id = $1 AND source = $2 AND event_id = $3 AND revision = $4",
        )
        .arg(tenant)
        .arg(&correction.source)
        .arg(&correction.id)
        .arg(previous)
        .arg(recorded_at)
        .execute(&mut tx, "superseding a usage entry")
        .await?;
        let row = Sql::<D>::new(format!(
            "INSERT INTO usage_events (tenant_id, source, event_id, revision, kind, event_type,
                 subject, time, data, reason, recorded_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9{}, $10, $11)
             RETURNING {}",
            D::AS_JSON,
            entry_columns::<D>()
        ))
        .arg(tenant)
        .arg(&correction.source)
        .arg(&correction.id)
        .arg(previous + 1)
        .arg(correction.kind.as_str())
        .arg(&event_type)
        .arg(&correction.subject)
        .arg(correction.time)
        .arg(json_text(&correction.data, "encoding a correction's data")?)
        .arg(&correction.reason)
        .arg(recorded_at)
        .fetch_one(&mut tx, "storing a usage correction")
        .await?;
        D::bump_corrected_days(
            &mut tx,
            scope,
            correction,
            previous,
            &event_type,
            replaced_time,
        )
        .await?;
        commit::<D>(tx).await?;
        read_entry::<D>(&row)
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
        let sql = Sql::new(D::LIST_CORRECTIONS)
            .arg(scope.tenant_id().as_uuid())
            .arg(event_type)
            .arg(from)
            .arg(to)
            .arg(as_of)
            .arg(i64::from(limit));
        self.fetch_all(sql, "listing usage corrections")
            .await?
            .iter()
            .map(read_entry::<D>)
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
        D::aggregate_usage(self, scope, scan, value).await
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
        D::usage_days(self, scope, event_type, shape, days).await
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
        D::cache_usage_day(self, scope, event_type, shape, day, version, cells).await
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
        let sql = Sql::new(format!(
            "INSERT INTO meters (id, tenant_id, slug, name, description, event_type, aggregation,
                 value_path, group_by, price, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9{json}, $10{json}, $11, $11)
             RETURNING {columns}",
            json = D::AS_JSON,
            columns = meter_columns::<D>()
        ))
        .arg(MeterId::new().as_uuid())
        .arg(scope.tenant_id().as_uuid())
        .arg(&meter.slug)
        .arg(&meter.name)
        .arg(&meter.description)
        .arg(&meter.event_type)
        .arg(meter.aggregation.as_str())
        .arg(meter.value.as_ref().map(ValuePath::as_str))
        .arg(group_by)
        .arg(price)
        .arg(at);
        read_meter::<D>(&self.fetch_one(sql, "creating a meter").await?)
    }

    async fn find_meter(&self, scope: TenantScope, id: MeterId) -> Result<Option<Meter>> {
        let sql = Sql::new(format!(
            "SELECT {} FROM meters WHERE id = $1 AND tenant_id = $2",
            meter_columns::<D>()
        ))
        .arg(id.as_uuid())
        .arg(scope.tenant_id().as_uuid());
        self.fetch_optional(sql, "reading a meter")
            .await?
            .as_ref()
            .map(read_meter::<D>)
            .transpose()
    }

    async fn find_meter_by_slug(&self, scope: TenantScope, slug: &str) -> Result<Option<Meter>> {
        let sql = Sql::new(format!(
            "SELECT {} FROM meters WHERE tenant_id = $1 AND slug = $2",
            meter_columns::<D>()
        ))
        .arg(scope.tenant_id().as_uuid())
        .arg(slug);
        self.fetch_optional(sql, "reading a meter")
            .await?
            .as_ref()
            .map(read_meter::<D>)
            .transpose()
    }

    async fn list_meters(
        &self,
        scope: TenantScope,
        include_archived: bool,
        page: PageRequest,
    ) -> Result<Page<Meter>> {
        let mut sql = Sql::new(format!(
            "SELECT {} FROM meters WHERE tenant_id = ",
            meter_columns::<D>()
        ));
        sql.push_arg(scope.tenant_id().as_uuid());
        if !include_archived {
            sql.push(" AND archived_at IS NULL");
        }
        push_page(&mut sql, &page);
        let meters = self
            .fetch_all(sql, "listing meters")
            .await?
            .iter()
            .map(read_meter::<D>)
            .collect::<Result<Vec<_>>>()?;
        Ok(page.finish(meters))
    }

    async fn active_meters(&self, scope: TenantScope) -> Result<Vec<Meter>> {
        let sql = Sql::new(format!(
            "SELECT {} FROM meters WHERE tenant_id = $1 AND archived_at IS NULL ORDER BY id",
            meter_columns::<D>()
        ))
        .arg(scope.tenant_id().as_uuid());
        self.fetch_all(sql, "listing active meters")
            .await?
            .iter()
            .map(read_meter::<D>)
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
        let sql = Sql::new(format!(
            "UPDATE meters SET price = $3{}, updated_at = $4
             WHERE id = $1 AND tenant_id = $2
             RETURNING {}",
            D::AS_JSON,
            meter_columns::<D>()
        ))
        .arg(id.as_uuid())
        .arg(scope.tenant_id().as_uuid())
        .arg(price)
        .arg(at);
        self.fetch_optional(sql, "pricing a meter")
            .await?
            .as_ref()
            .map(read_meter::<D>)
            .transpose()
    }

    async fn archive_meter(
        &self,
        scope: TenantScope,
        id: MeterId,
        at: DateTime<Utc>,
    ) -> Result<Option<Meter>> {
        let sql = Sql::new(format!(
            "UPDATE meters
             SET updated_at = CASE WHEN archived_at IS NULL THEN $3 ELSE updated_at END,
                 archived_at = COALESCE(archived_at, $3)
             WHERE id = $1 AND tenant_id = $2
             RETURNING {}",
            meter_columns::<D>()
        ))
        .arg(id.as_uuid())
        .arg(scope.tenant_id().as_uuid())
        .arg(at);
        self.fetch_optional(sql, "archiving a meter")
            .await?
            .as_ref()
            .map(read_meter::<D>)
            .transpose()
    }
}
