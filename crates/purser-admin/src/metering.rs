//! Metering: a tenant's meters and their prices, its usage per window and dimension, that usage
//! priced, and corrections of the events it was counted from.
//!
//! Quantities and USD amounts are exact decimals, written as strings (`"0.000002"`) so that no
//! client reads them into a float; outputs are normalised (`"7"`, not `"7.000"`), so both
//! stores answer the same text.

use std::collections::BTreeMap;
use std::str::FromStr;

use async_graphql::connection::Connection;
use async_graphql::{Context, Enum, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use purser_domain::auth::Access;
use purser_domain::metering::meter::SUBJECT;
use purser_domain::metering::price::RatedLine as DomainRatedLine;
use purser_domain::metering::query::parse_time_zone;
use purser_domain::metering::{
    self as domain, CorrectionChange, NewMeter, PriceModel, Tier, UsageQuery, ValuePath,
};
use purser_domain::{ErrorCode, time};
use rust_decimal::Decimal;
use serde_json::Value;

use crate::context::{metering, parse_id, principal, scope};
use crate::error::{GqlError, GqlResult};
use crate::pagination::{IdCursor, RelayArgs, connection};
use crate::payments::Amount;

/// A decimal as clients read it: exact, without trailing zeros.
fn decimal_text(value: Decimal) -> String {
    value.normalize().to_string()
}

/// Reads the decimal string of input field `field`; `invalid_input` naming it otherwise.
fn parse_decimal(field: &str, text: &str) -> GqlResult<Decimal> {
    Decimal::from_str(text.trim()).map_err(|_| {
        GqlError::new(
            ErrorCode::InvalidInput,
            format!(
                "`{field}` is not a decimal number: `{}`",
                text.chars().take(64).collect::<String>()
            ),
        )
    })
}

fn invalid_price(message: impl Into<String>) -> GqlError {
    GqlError::new(ErrorCode::InvalidPriceModel, message)
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "Aggregation", remote = "purser_domain::metering::Aggregation")]
pub enum AggregationGql {
    /// The sum of the values.
    Sum,
    /// The number of events; reads no value.
    Count,
    Min,
    Max,
    /// The mean of the values.
    Avg,
    /// The number of distinct values (any JSON value, compared as text).
    UniqueCount,
    /// The value of the latest event (by event time).
    Latest,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "WindowSize", remote = "purser_domain::metering::WindowSize")]
pub enum WindowSizeGql {
    /// UTC minutes.
    Minute,
    /// Hours of the query's time zone.
    Hour,
    /// Days of the query's time zone.
    Day,
    /// Calendar months of the query's time zone.
    Month,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "UsageEntryKind", remote = "purser_domain::metering::EntryKind")]
pub enum UsageEntryKindGql {
    /// The event as ingested (revision 0).
    Event,
    /// A correction replacing the event's subject, time or data.
    Amendment,
    /// A correction taking the event out of every count.
    Void,
}

/// How a meter's usage is priced. Free units come off the quantity first.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "MeterPriceModel")]
pub enum MeterPriceModelGql {
    /// `unitAmount` per unit.
    Standard,
    /// Each tier prices the units that fall in it (`unitAmount` each, plus its `flatAmount`
    /// once if any unit falls in it).
    Graduated,
    /// The tier the whole quantity falls in prices all of it (`unitAmount` each, plus its
    /// `flatAmount`).
    Volume,
    /// `packageAmount` per started package of `packageSize` units.
    Package,
    /// `percent` of the value, read as atomic units with `valueDecimals` (0: USD).
    Percentage,
}

impl MeterPriceModelGql {
    fn of(model: &PriceModel) -> Self {
        match model {
            PriceModel::Standard { .. } => Self::Standard,
            PriceModel::Graduated { .. } => Self::Graduated,
            PriceModel::Volume { .. } => Self::Volume,
            PriceModel::Package { .. } => Self::Package,
            PriceModel::Percentage { .. } => Self::Percentage,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Standard => "STANDARD",
            Self::Graduated => "GRADUATED",
            Self::Volume => "VOLUME",
            Self::Package => "PACKAGE",
            Self::Percentage => "PERCENTAGE",
        }
    }
}

pub struct MeterPriceTier(Tier);

/// One tier of a graduated or volume price. Amounts are USD decimal strings.
#[Object]
impl MeterPriceTier {
    /// The tier's last unit (inclusive); null for the last tier, which has no end.
    async fn up_to(&self) -> Option<String> {
        self.0.up_to.map(decimal_text)
    }

    /// USD per unit in the tier.
    async fn unit_amount(&self) -> String {
        decimal_text(self.0.unit_amount)
    }

    /// USD once for the tier.
    async fn flat_amount(&self) -> String {
        decimal_text(self.0.flat_amount)
    }
}

pub struct MeterPrice(domain::MeterPrice);

/// A meter's price. Only the fields of its model are set; amounts are USD decimal strings.
#[Object]
impl MeterPrice {
    async fn model(&self) -> MeterPriceModelGql {
        MeterPriceModelGql::of(&self.0.model)
    }

    /// STANDARD: USD per unit.
    async fn unit_amount(&self) -> Option<String> {
        match &self.0.model {
            PriceModel::Standard { unit_amount } => Some(decimal_text(*unit_amount)),
            _ => None,
        }
    }

    /// GRADUATED and VOLUME: the tiers, ascending.
    async fn tiers(&self) -> Option<Vec<MeterPriceTier>> {
        match &self.0.model {
            PriceModel::Graduated { tiers } | PriceModel::Volume { tiers } => {
                Some(tiers.iter().cloned().map(MeterPriceTier).collect())
            }
            _ => None,
        }
    }

    /// PACKAGE: units per package.
    async fn package_size(&self) -> Option<String> {
        match &self.0.model {
            PriceModel::Package { package_size, .. } => Some(decimal_text(*package_size)),
            _ => None,
        }
    }

    /// PACKAGE: USD per package.
    async fn package_amount(&self) -> Option<String> {
        match &self.0.model {
            PriceModel::Package { package_amount, .. } => Some(decimal_text(*package_amount)),
            _ => None,
        }
    }

    /// PERCENTAGE: percent of the value, 0 to 100.
    async fn percent(&self) -> Option<String> {
        match &self.0.model {
            PriceModel::Percentage { percent, .. } => Some(decimal_text(*percent)),
            _ => None,
        }
    }

    /// PERCENTAGE: the value's decimals (6: the value is in micro-USD; 0: in USD).
    async fn value_decimals(&self) -> Option<u8> {
        match &self.0.model {
            PriceModel::Percentage { value_decimals, .. } => Some(*value_decimals),
            _ => None,
        }
    }

    /// Units every subject gets free per period, before the model applies.
    async fn free_units(&self) -> String {
        decimal_text(self.0.free_units)
    }
}

/// A dimension usage can be grouped and filtered by: the text of the value at `path` in an
/// event's data.
#[derive(SimpleObject)]
pub struct MeterDimension {
    pub name: String,
    /// A singular JSONPath, e.g. `$.model`.
    pub path: String,
}

pub struct Meter(domain::Meter);

/// How a tenant's usage events of one type are aggregated, grouped and priced.
#[Object]
impl Meter {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn tenant_id(&self) -> ID {
        ID(self.0.tenant_id.to_string())
    }

    /// How queries name the meter; unique per tenant.
    async fn slug(&self) -> &str {
        &self.0.slug
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }

    /// The CloudEvents `type` it counts.
    async fn event_type(&self) -> &str {
        &self.0.event_type
    }

    async fn aggregation(&self) -> AggregationGql {
        self.0.aggregation.into()
    }

    /// Where the value is in an event's data; null for COUNT.
    async fn value_path(&self) -> Option<&str> {
        self.0.value.as_ref().map(ValuePath::as_str)
    }

    /// The dimensions, by name.
    async fn group_by(&self) -> Vec<MeterDimension> {
        self.0
            .group_by
            .iter()
            .map(|(name, path)| MeterDimension {
                name: name.clone(),
                path: path.as_str().to_owned(),
            })
            .collect()
    }

    /// Null: usage of this meter is not priced.
    async fn price(&self) -> Option<MeterPrice> {
        self.0.price.clone().map(MeterPrice)
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }

    /// Archived meters no longer check ingested events; their usage can still be queried.
    async fn archived_at(&self) -> Option<DateTime<Utc>> {
        self.0.archived_at
    }
}

/// The value of one grouped dimension in a row.
#[derive(SimpleObject)]
pub struct GroupValue {
    pub dimension: String,
    /// The value's text; null for events without a value there.
    pub value: Option<String>,
}

pub struct UsageRow(domain::UsageRow);

/// A meter's value in one window, for one subject and group (when grouped by them).
#[Object]
impl UsageRow {
    async fn window_start(&self) -> DateTime<Utc> {
        self.0.window_start
    }

    async fn window_end(&self) -> DateTime<Utc> {
        self.0.window_end
    }

    /// When grouped by `subject`.
    async fn subject(&self) -> Option<&str> {
        self.0.subject.as_deref()
    }

    /// The dimensions grouped by (other than `subject`), by name.
    async fn groups(&self) -> Vec<GroupValue> {
        self.0
            .groups
            .iter()
            .map(|(dimension, value)| GroupValue {
                dimension: dimension.clone(),
                value: value.clone(),
            })
            .collect()
    }

    /// A decimal string.
    async fn value(&self) -> String {
        decimal_text(self.0.value)
    }
}

pub struct UsageEntry(domain::UsageEntry);

/// One stored version of a usage event. Corrections never change an entry: each is an entry of
/// its own with the next revision, and the entry it replaces gets `supersededAt`.
#[Object]
impl UsageEntry {
    /// The event's CloudEvents `source`.
    async fn source(&self) -> &str {
        &self.0.source
    }

    /// The event's CloudEvents `id` (with `source`, the event's key; shared by its revisions).
    async fn event_id(&self) -> &str {
        &self.0.id
    }

    /// 0 for the event as ingested, then 1, 2, ... per correction.
    async fn revision(&self) -> u32 {
        self.0.revision
    }

    async fn kind(&self) -> UsageEntryKindGql {
        self.0.kind.into()
    }

    async fn event_type(&self) -> &str {
        &self.0.event_type
    }

    async fn subject(&self) -> &str {
        &self.0.subject
    }

    async fn time(&self) -> DateTime<Utc> {
        self.0.time
    }

    async fn data(&self) -> Json<Value> {
        Json(self.0.data.clone())
    }

    /// Why the correction was made; null for the event as ingested.
    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }

    async fn recorded_at(&self) -> DateTime<Utc> {
        self.0.recorded_at
    }

    /// When a correction replaced this entry; null for the current one.
    async fn superseded_at(&self) -> Option<DateTime<Utc>> {
        self.0.superseded_at
    }
}

pub struct UsageReport(purser_metering::UsageReport);

/// A meter's usage over a period.
#[Object]
impl UsageReport {
    async fn meter(&self) -> Meter {
        Meter(self.0.meter.clone())
    }

    /// Ordered by window, subject and groups; windows without events have no rows.
    async fn rows(&self) -> Vec<UsageRow> {
        self.0.rows.iter().cloned().map(UsageRow).collect()
    }

    /// Corrections of the meter's events in the period (recorded by `asOf`, when given),
    /// newest first, at most 100: a report run before one of them showed other numbers.
    async fn corrections(&self) -> Vec<UsageEntry> {
        self.0.corrections.iter().cloned().map(UsageEntry).collect()
    }
}

pub struct RatedLine(DomainRatedLine);

/// One line of a rating. Decimal strings; amounts in USD.
#[Object]
impl RatedLine {
    async fn description(&self) -> &str {
        &self.0.description
    }

    async fn units(&self) -> String {
        decimal_text(self.0.units)
    }

    async fn unit_amount(&self) -> String {
        decimal_text(self.0.unit_amount)
    }

    async fn flat_amount(&self) -> String {
        decimal_text(self.0.flat_amount)
    }

    /// `units × unitAmount + flatAmount`, exact.
    async fn amount(&self) -> String {
        decimal_text(self.0.amount)
    }
}

pub struct RatedUsage(purser_metering::RatedUsage);

/// One subject's usage of a priced meter over a period, priced. Decimal strings.
#[Object]
impl RatedUsage {
    async fn subject(&self) -> &str {
        &self.0.subject
    }

    /// The meter's value over the period.
    async fn quantity(&self) -> String {
        decimal_text(self.0.rated.quantity)
    }

    /// The free units taken off the quantity.
    async fn free_units(&self) -> String {
        decimal_text(self.0.rated.free_units)
    }

    /// What the price model priced.
    async fn billable(&self) -> String {
        decimal_text(self.0.rated.billable)
    }

    /// USD, exact: the sum of the lines.
    async fn amount_usd(&self) -> String {
        decimal_text(self.0.rated.amount)
    }

    /// `amountUsd` in atomic units of a 6-decimal USD stablecoin (micro-USD), rounded half up.
    async fn amount_atomic(&self) -> Amount {
        Amount(self.0.rated.amount_atomic)
    }

    async fn lines(&self) -> Vec<RatedLine> {
        self.0.rated.lines.iter().cloned().map(RatedLine).collect()
    }
}

/// A dimension a meter's usage is grouped and filtered by.
#[derive(InputObject)]
pub struct MeterDimensionInput {
    /// An identifier (letters, digits, `_`) other than `subject`.
    pub name: String,
    /// A singular JSONPath into the event's data: `$`, member names, array indices.
    pub path: String,
}

/// One tier of a graduated or volume price. Amounts are USD decimal strings.
#[derive(InputObject)]
pub struct MeterPriceTierInput {
    /// The tier's last unit (inclusive), above the previous tier's; omit for the last tier.
    pub up_to: Option<String>,
    #[graphql(default_with = "String::from(\"0\")")]
    pub unit_amount: String,
    #[graphql(default_with = "String::from(\"0\")")]
    pub flat_amount: String,
}

/// A meter's price: a model and exactly the fields it takes (STANDARD: `unitAmount`;
/// GRADUATED and VOLUME: `tiers`; PACKAGE: `packageSize` and `packageAmount`; PERCENTAGE:
/// `percent` and, optionally, `valueDecimals`). Decimals are strings.
#[derive(InputObject)]
pub struct MeterPriceInput {
    pub model: MeterPriceModelGql,
    pub unit_amount: Option<String>,
    pub tiers: Option<Vec<MeterPriceTierInput>>,
    pub package_size: Option<String>,
    pub package_amount: Option<String>,
    pub percent: Option<String>,
    /// 0 to 18; 0 when omitted.
    pub value_decimals: Option<i32>,
    #[graphql(default_with = "String::from(\"0\")")]
    pub free_units: String,
}

impl MeterPriceInput {
    /// The domain's price: `invalid_price_model` for a field the model does not take or a
    /// missing one it needs, `invalid_input` for a string that is not a decimal. The domain
    /// checks the rest when the price is stored.
    fn into_domain(self, field: &str) -> GqlResult<domain::MeterPrice> {
        let model = self.model;
        let given = [
            ("unitAmount", self.unit_amount.is_some()),
            ("tiers", self.tiers.is_some()),
            ("packageSize", self.package_size.is_some()),
            ("packageAmount", self.package_amount.is_some()),
            ("percent", self.percent.is_some()),
            ("valueDecimals", self.value_decimals.is_some()),
        ];
        let takes: &[&str] = match model {
            MeterPriceModelGql::Standard => &["unitAmount"],
            MeterPriceModelGql::Graduated | MeterPriceModelGql::Volume => &["tiers"],
            MeterPriceModelGql::Package => &["packageSize", "packageAmount"],
            MeterPriceModelGql::Percentage => &["percent", "valueDecimals"],
        };
        if let Some((name, _)) = given
            .iter()
            .find(|(name, is_given)| *is_given && !takes.contains(name))
        {
            return Err(invalid_price(format!(
                "a {} price takes no `{name}`; it takes {}",
                model.name(),
                takes
                    .iter()
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let needed = |value: Option<String>, name: &str| -> GqlResult<Decimal> {
            let text = value
                .ok_or_else(|| invalid_price(format!("a {} price needs `{name}`", model.name())))?;
            parse_decimal(&format!("{field}.{name}"), &text)
        };
        let price_model = match model {
            MeterPriceModelGql::Standard => PriceModel::Standard {
                unit_amount: needed(self.unit_amount, "unitAmount")?,
            },
            MeterPriceModelGql::Graduated | MeterPriceModelGql::Volume => {
                let tiers = self
                    .tiers
                    .ok_or_else(|| {
                        invalid_price(format!("a {} price needs `tiers`", model.name()))
                    })?
                    .into_iter()
                    .enumerate()
                    .map(|(at, tier)| {
                        let name = |part: &str| format!("{field}.tiers[{at}].{part}");
                        Ok(Tier {
                            up_to: tier
                                .up_to
                                .map(|up_to| parse_decimal(&name("upTo"), &up_to))
                                .transpose()?,
                            unit_amount: parse_decimal(&name("unitAmount"), &tier.unit_amount)?,
                            flat_amount: parse_decimal(&name("flatAmount"), &tier.flat_amount)?,
                        })
                    })
                    .collect::<GqlResult<Vec<_>>>()?;
                if model == MeterPriceModelGql::Graduated {
                    PriceModel::Graduated { tiers }
                } else {
                    PriceModel::Volume { tiers }
                }
            }
            MeterPriceModelGql::Package => PriceModel::Package {
                package_size: needed(self.package_size, "packageSize")?,
                package_amount: needed(self.package_amount, "packageAmount")?,
            },
            MeterPriceModelGql::Percentage => PriceModel::Percentage {
                percent: needed(self.percent, "percent")?,
                value_decimals: u8::try_from(self.value_decimals.unwrap_or(0))
                    .map_err(|_| invalid_price("`valueDecimals` must be 0 to 18"))?,
            },
        };
        Ok(domain::MeterPrice {
            model: price_model,
            free_units: parse_decimal(&format!("{field}.freeUnits"), &self.free_units)?,
        })
    }
}

#[derive(InputObject)]
pub struct CreateMeterInput {
    /// Operators name the tenant; tenant keys may omit it.
    pub tenant_id: Option<ID>,
    /// 1 to 63 characters of a-z, 0-9, `_` and `-`, starting with a letter or digit; unique
    /// per tenant, archived meters included.
    pub slug: String,
    pub name: String,
    pub description: Option<String>,
    /// The CloudEvents `type` the meter counts.
    pub event_type: String,
    pub aggregation: AggregationGql,
    /// A singular JSONPath to the value in the event's data; required for every aggregation
    /// but COUNT, which takes none.
    pub value_path: Option<String>,
    /// At most 16 dimensions, with distinct names.
    #[graphql(default)]
    pub group_by: Vec<MeterDimensionInput>,
    pub price: Option<MeterPriceInput>,
}

impl CreateMeterInput {
    fn into_domain(self) -> GqlResult<NewMeter> {
        let mut group_by = BTreeMap::new();
        for dimension in self.group_by {
            let path = ValuePath::parse(&dimension.path)?;
            if group_by.insert(dimension.name.clone(), path).is_some() {
                return Err(GqlError::new(
                    ErrorCode::InvalidInput,
                    format!(
                        "dimension `{}` is named twice",
                        dimension.name.chars().take(64).collect::<String>()
                    ),
                ));
            }
        }
        Ok(NewMeter {
            slug: self.slug,
            name: self.name,
            description: self.description,
            event_type: self.event_type,
            aggregation: self.aggregation.into(),
            value: self
                .value_path
                .as_deref()
                .map(ValuePath::parse)
                .transpose()?,
            group_by,
            price: self
                .price
                .map(|price| price.into_domain("price"))
                .transpose()?,
        })
    }
}

/// Only usage whose dimension has one of the values (as text).
#[derive(InputObject)]
pub struct DimensionFilter {
    pub dimension: String,
    /// 1 to 100 values.
    pub values: Vec<String>,
}

fn filters_by_dimension(filters: Vec<DimensionFilter>) -> GqlResult<BTreeMap<String, Vec<String>>> {
    let mut by_dimension = BTreeMap::new();
    for filter in filters {
        if filter.dimension == SUBJECT {
            return Err(GqlError::new(
                ErrorCode::InvalidUsageQuery,
                "filter on subjects with the `subjects` argument",
            ));
        }
        let name = filter.dimension.chars().take(64).collect::<String>();
        if by_dimension
            .insert(filter.dimension, filter.values)
            .is_some()
        {
            return Err(GqlError::new(
                ErrorCode::InvalidUsageQuery,
                format!("`{name}` is filtered on twice; list its values in one filter"),
            ));
        }
    }
    Ok(by_dimension)
}

/// Metering reads.
#[derive(Default)]
pub struct MeteringQuery;

#[Object]
impl MeteringQuery {
    /// A tenant's meters, in creation order; archived ones only when asked.
    #[graphql(
        complexity = "first.or(last).unwrap_or(20).clamp(1, 100) as usize * child_complexity"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn meters(
        &self,
        ctx: &Context<'_>,
        tenant_id: Option<ID>,
        #[graphql(default)] include_archived: bool,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> GqlResult<Connection<IdCursor, Meter>> {
        let scope = scope(ctx, tenant_id.as_ref(), Access::Read).await?;
        let request = RelayArgs {
            first,
            after,
            last,
            before,
        }
        .page_request()?;
        let page = metering(ctx)
            .list_meters(scope, include_archived, request)
            .await?;
        Ok(connection(&request, page.map(Meter), |m| m.0.id.as_uuid()))
    }

    /// One meter of a tenant, by slug (archived ones too).
    async fn meter(
        &self,
        ctx: &Context<'_>,
        tenant_id: Option<ID>,
        slug: String,
    ) -> GqlResult<Meter> {
        let scope = scope(ctx, tenant_id.as_ref(), Access::Read).await?;
        Ok(Meter(metering(ctx).meter(scope, &slug).await?))
    }

    /// A meter's usage over `[from, to)`. `meter`: its slug. `window`: the windows' size
    /// (omitted: one row for the whole period), in `timeZone` (an IANA name) for HOUR, DAY and
    /// MONTH. `subjects`: only these (at most 100; none: all). `filters`: only these values of
    /// dimensions. `groupBy`: `subject` and dimension names. `asOf`: as a query run then would
    /// have answered, without the corrections recorded later.
    #[allow(clippy::too_many_arguments)]
    async fn usage(
        &self,
        ctx: &Context<'_>,
        tenant_id: Option<ID>,
        meter: String,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        window: Option<WindowSizeGql>,
        #[graphql(default_with = "String::from(\"UTC\")")] time_zone: String,
        #[graphql(default)] subjects: Vec<String>,
        #[graphql(default)] filters: Vec<DimensionFilter>,
        #[graphql(default)] group_by: Vec<String>,
        as_of: Option<DateTime<Utc>>,
    ) -> GqlResult<UsageReport> {
        let scope = scope(ctx, tenant_id.as_ref(), Access::Read).await?;
        let query = UsageQuery {
            from,
            to,
            window: window.map(Into::into),
            time_zone: parse_time_zone(&time_zone)?,
            subjects,
            filters: filters_by_dimension(filters)?,
            group_by,
            as_of,
        };
        let report = metering(ctx).query(scope, &meter, &query).await?;
        Ok(UsageReport(report))
    }

    /// A priced meter's usage over `[from, to)` per subject, priced. `meter`: its slug.
    /// `subjects`: only these (none: every subject with usage). `invalid_usage_query` when the
    /// meter has no price.
    async fn rated_usage(
        &self,
        ctx: &Context<'_>,
        tenant_id: Option<ID>,
        meter: String,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        #[graphql(default)] subjects: Vec<String>,
    ) -> GqlResult<Vec<RatedUsage>> {
        let scope = scope(ctx, tenant_id.as_ref(), Access::Read).await?;
        let rated = metering(ctx)
            .rate(scope, &meter, from, to, subjects)
            .await?;
        Ok(rated.into_iter().map(RatedUsage).collect())
    }

    /// Every entry of one usage event (its CloudEvents `source` and `id`), oldest first:
    /// the event as ingested and its corrections. `not_found` when the tenant has no such event.
    async fn usage_event(
        &self,
        ctx: &Context<'_>,
        tenant_id: Option<ID>,
        source: String,
        id: String,
    ) -> GqlResult<Vec<UsageEntry>> {
        let scope = scope(ctx, tenant_id.as_ref(), Access::Read).await?;
        let history = metering(ctx).history(scope, &source, &id).await?;
        Ok(history.into_iter().map(UsageEntry).collect())
    }
}

/// Metering changes. Tenant administrators change their own tenant; operators name it.
#[derive(Default)]
pub struct MeteringMutation;

#[Object]
impl MeteringMutation {
    /// Creates a meter. Events of its type ingested from now on must carry its value.
    async fn create_meter(&self, ctx: &Context<'_>, input: CreateMeterInput) -> GqlResult<Meter> {
        let principal = principal(ctx)?;
        let scope = scope(ctx, input.tenant_id.as_ref(), Access::Write).await?;
        let meter = metering(ctx)
            .create_meter(scope, input.into_domain()?)
            .await?;
        tracing::info!(meter_id = %meter.id, slug = %meter.slug, by = %principal.key_id, "meter created");
        Ok(Meter(meter))
    }

    /// Sets a meter's price, or removes it with `null`.
    async fn set_meter_price(
        &self,
        ctx: &Context<'_>,
        tenant_id: Option<ID>,
        meter_id: ID,
        price: Option<MeterPriceInput>,
    ) -> GqlResult<Meter> {
        let principal = principal(ctx)?;
        let scope = scope(ctx, tenant_id.as_ref(), Access::Write).await?;
        let price = price.map(|price| price.into_domain("price")).transpose()?;
        let meter = metering(ctx)
            .set_price(scope, parse_id(&meter_id)?, price)
            .await?;
        tracing::info!(meter_id = %meter.id, by = %principal.key_id, "meter price set");
        Ok(Meter(meter))
    }

    /// Archives a meter: it stops checking ingested events and leaves the default listing;
    /// its usage stays queryable. Archiving twice keeps the first time.
    async fn archive_meter(
        &self,
        ctx: &Context<'_>,
        tenant_id: Option<ID>,
        meter_id: ID,
    ) -> GqlResult<Meter> {
        let principal = principal(ctx)?;
        let scope = scope(ctx, tenant_id.as_ref(), Access::Write).await?;
        let meter = metering(ctx)
            .archive_meter(scope, parse_id(&meter_id)?)
            .await?;
        tracing::info!(meter_id = %meter.id, by = %principal.key_id, "meter archived");
        Ok(Meter(meter))
    }

    /// Amends a usage event (its CloudEvents `source` and `id`), for `reason`: replaces any of
    /// its subject, time and data (omitted: kept). Answers the new entry; the one it replaces
    /// stays in the event's history. `event_voided` after a void.
    #[allow(clippy::too_many_arguments)]
    async fn amend_usage_event(
        &self,
        ctx: &Context<'_>,
        tenant_id: Option<ID>,
        source: String,
        id: String,
        reason: String,
        subject: Option<String>,
        time: Option<DateTime<Utc>>,
        data: Option<Json<Value>>,
    ) -> GqlResult<UsageEntry> {
        let principal = principal(ctx)?;
        let scope = scope(ctx, tenant_id.as_ref(), Access::Write).await?;
        let change = CorrectionChange::Amend {
            subject,
            time,
            data: data.map(|data| data.0),
        };
        let entry = metering(ctx)
            .correct(scope, &source, &id, change, &reason, time::now())
            .await?;
        tracing::info!(source = %entry.source, id = %entry.id, revision = entry.revision, by = %principal.key_id, "usage event amended");
        Ok(UsageEntry(entry))
    }

    /// Voids a usage event, for `reason`: it leaves every count from now on (queries `asOf`
    /// an earlier time still see it). Answers the new entry. `event_voided` when it was voided.
    async fn void_usage_event(
        &self,
        ctx: &Context<'_>,
        tenant_id: Option<ID>,
        source: String,
        id: String,
        reason: String,
    ) -> GqlResult<UsageEntry> {
        let principal = principal(ctx)?;
        let scope = scope(ctx, tenant_id.as_ref(), Access::Write).await?;
        let entry = metering(ctx)
            .correct(
                scope,
                &source,
                &id,
                CorrectionChange::Void,
                &reason,
                time::now(),
            )
            .await?;
        tracing::info!(source = %entry.source, id = %entry.id, revision = entry.revision, by = %principal.key_id, "usage event voided");
        Ok(UsageEntry(entry))
    }
}
