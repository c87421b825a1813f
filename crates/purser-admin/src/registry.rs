//! The registry: what Purser settles, where a tenant is paid, and the resources it sells with
//! their versioned prices and schemas.

use async_graphql::connection::Connection;
use async_graphql::{Context, Enum, ID, InputObject, Json, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};
use purser_domain::auth::{Access, TenantScope};
use purser_domain::entitlement::RepeatAccess as RepeatAccessPolicy;
use purser_domain::registry as domain;
use purser_domain::{Error, ErrorCode};
use purser_registry::challenge::{ChallengeRequest, payment_required};
use purser_registry::{AcceptDraft, AssetInfo, ResourceDraft, ResourcePatch};
use serde_json::Value;

use crate::context::{parse_id, principal, registry, scope, store};
use crate::error::{GqlError, GqlResult};
use crate::pagination::{IdCursor, RelayArgs, connection};
use crate::payments::Amount;

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(
    name = "ResourceType",
    remote = "purser_domain::registry::ResourceKind"
)]
pub enum ResourceTypeGql {
    /// Called over HTTP at its URL with its method.
    Http,
    /// A tool of an MCP server.
    Mcp,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(
    name = "ResourceStatus",
    remote = "purser_domain::registry::ResourceStatus"
)]
pub enum ResourceStatusGql {
    /// Being edited; not in the catalog and not payable.
    Draft,
    /// Listed in the catalog and payable.
    Published,
    /// Withdrawn for good; kept for history.
    Archived,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(
    name = "ResourceOrigin",
    remote = "purser_domain::registry::ResourceOrigin"
)]
pub enum ResourceOriginGql {
    /// Registered by the merchant through this API.
    Merchant,
    /// Learned from the `bazaar` extension of a settled payment.
    Bazaar,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(
    name = "ResourceHealth",
    remote = "purser_domain::registry::ResourceHealth"
)]
pub enum ResourceHealthGql {
    /// Not probed yet, or not probeable.
    Unknown,
    /// Answered the 402 it is listed with.
    Healthy,
    /// Did not.
    Unhealthy,
}

/// A token Purser settles.
#[derive(SimpleObject)]
pub struct SupportedAsset {
    /// The token contract, EIP-55 checksummed.
    pub address: String,
    pub decimals: u8,
    pub symbol: Option<String>,
    /// The token's EIP-712 domain name.
    pub eip712_name: String,
    pub eip712_version: String,
}

impl From<&AssetInfo> for SupportedAsset {
    fn from(a: &AssetInfo) -> Self {
        Self {
            address: a.address.clone(),
            decimals: a.decimals,
            symbol: a.symbol.clone(),
            eip712_name: a.eip712_name.clone(),
            eip712_version: a.eip712_version.clone(),
        }
    }
}

/// A network Purser settles, with its assets.
#[derive(SimpleObject)]
pub struct SupportedNetwork {
    /// CAIP-2, e.g. `eip155:8453`.
    pub network: String,
    pub assets: Vec<SupportedAsset>,
}

/// Where a tenant is paid on one network. Having one enables the network for the tenant.
pub struct PayoutAddress(pub domain::PayoutAddress);

#[Object]
impl PayoutAddress {
    async fn tenant_id(&self) -> ID {
        ID(self.0.tenant_id.to_string())
    }

    /// CAIP-2.
    async fn network(&self) -> &str {
        &self.0.network
    }

    /// EIP-55 checksummed.
    async fn address(&self) -> &str {
        &self.0.address
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// How a price was given: `usd`, `amount`, or a usage price (`meter` and `units`).
#[derive(SimpleObject, Default)]
pub struct PriceSpec {
    /// A USD price as a decimal string (`"0.01"`), converted with each asset's decimals.
    pub usd: Option<String>,
    /// The same count of atomic units in every accepted asset.
    pub amount: Option<Amount>,
    /// A usage price: the slug of the priced meter whose price a call pays for `units`.
    pub meter: Option<String>,
    /// The meter units one call counts as, a decimal string.
    pub units: Option<String>,
}

impl From<&domain::PriceSpec> for PriceSpec {
    fn from(p: &domain::PriceSpec) -> Self {
        match p {
            domain::PriceSpec::Usd { usd } => Self {
                usd: Some(usd.clone()),
                ..Self::default()
            },
            domain::PriceSpec::Atomic { amount } => Self {
                amount: Some(Amount(*amount)),
                ..Self::default()
            },
            domain::PriceSpec::Meter { meter, units } => Self {
                meter: Some(meter.clone()),
                units: Some(units.to_string()),
                ..Self::default()
            },
        }
    }
}

/// One way to pay a resource version, resolved.
#[derive(SimpleObject)]
pub struct Accept {
    pub scheme: String,
    /// CAIP-2.
    pub network: String,
    /// The token contract.
    pub asset: String,
    /// Atomic units of the asset.
    pub amount: Amount,
    pub pay_to: String,
    pub eip712_name: String,
    pub eip712_version: String,
}

impl From<&domain::Accept> for Accept {
    fn from(a: &domain::Accept) -> Self {
        Self {
            scheme: a.scheme.clone(),
            network: a.network.clone(),
            asset: a.asset.clone(),
            amount: Amount(a.amount),
            pay_to: a.pay_to.clone(),
            eip712_name: a.eip712_name.clone(),
            eip712_version: a.eip712_version.clone(),
        }
    }
}

/// What one payment buys beyond its request: later requests of the payer's wallet (signed in
/// with Sign-In-With-X) pass without paying while the grant holds.
#[derive(SimpleObject)]
pub struct RepeatAccess {
    /// Every resource of the tenant in this group; null: this resource only.
    pub group: Option<String>,
    /// How long the grant holds after the payment; null: without end.
    pub duration_seconds: Option<u64>,
    /// How many requests it admits after the one paid for; null: any number.
    pub uses: Option<u32>,
}

impl From<&RepeatAccessPolicy> for RepeatAccess {
    fn from(r: &RepeatAccessPolicy) -> Self {
        Self {
            group: r.group.clone(),
            duration_seconds: r.duration_seconds,
            uses: r.uses,
        }
    }
}

/// When a resource priced with escrow captures what it holds.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(
    name = "CapturePolicy",
    remote = "purser_domain::escrow::CapturePolicy"
)]
pub enum CapturePolicyGql {
    /// Capture the whole hold as soon as it is authorized, before the request is served.
    Immediate,
    /// Capture when the upstream answers below 400; void when it fails.
    OnSuccess,
    /// Capture `captureDelaySeconds` after the hold.
    AfterDelay,
    /// The merchant captures by hand; what is still held near the deadline is voided.
    Manual,
}

/// How `auth-capture` payments of a version are held and finished.
#[derive(SimpleObject, InputObject, Clone, Copy)]
#[graphql(input_name = "EscrowTermsInput")]
pub struct EscrowTerms {
    pub capture: CapturePolicyGql,
    /// `AFTER_DELAY` only.
    #[graphql(default)]
    pub capture_delay_seconds: u32,
    /// How long a hold may be captured: the offers' `captureDeadline` is this far ahead
    /// (rounded up to ten minutes). At least 900.
    pub capture_window_seconds: u32,
    /// How long after the capture deadline captured funds may be refunded or disputed.
    pub refund_window_seconds: u32,
}

impl From<EscrowTerms> for purser_domain::escrow::EscrowTerms {
    fn from(t: EscrowTerms) -> Self {
        Self {
            capture: t.capture.into(),
            capture_delay_seconds: t.capture_delay_seconds,
            capture_window_seconds: t.capture_window_seconds,
            refund_window_seconds: t.refund_window_seconds,
        }
    }
}

impl From<purser_domain::escrow::EscrowTerms> for EscrowTerms {
    fn from(t: purser_domain::escrow::EscrowTerms) -> Self {
        Self {
            capture: t.capture.into(),
            capture_delay_seconds: t.capture_delay_seconds,
            capture_window_seconds: t.capture_window_seconds,
            refund_window_seconds: t.refund_window_seconds,
        }
    }
}

fn repeat_access_of(spec: &domain::VersionSpec) -> Option<RepeatAccess> {
    spec.repeat_access.as_ref().map(RepeatAccess::from)
}

fn accepts_of(spec: &domain::VersionSpec) -> Vec<Accept> {
    spec.accepts.iter().map(Accept::from).collect()
}

fn json(value: Option<&Value>) -> Option<Json<Value>> {
    value.cloned().map(Json)
}

/// One version of a resource's terms and schemas.
pub struct ResourceVersion(pub domain::ResourceVersion);

#[Object]
impl ResourceVersion {
    /// 1, 2, ...
    async fn version(&self) -> u32 {
        self.0.version
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When the next version replaced it; null for the current one.
    async fn superseded_at(&self) -> Option<DateTime<Utc>> {
        self.0.superseded_at
    }

    async fn price(&self) -> PriceSpec {
        (&self.0.spec.price).into()
    }

    async fn accepts(&self) -> Vec<Accept> {
        accepts_of(&self.0.spec)
    }

    async fn max_timeout_seconds(&self) -> u32 {
        self.0.spec.max_timeout_seconds
    }

    async fn input_schema(&self) -> Option<Json<Value>> {
        json(self.0.spec.input_schema.as_ref())
    }

    async fn output_schema(&self) -> Option<Json<Value>> {
        json(self.0.spec.output_schema.as_ref())
    }

    /// What a payment buys beyond its request; null: every request pays.
    async fn repeat_access(&self) -> Option<RepeatAccess> {
        repeat_access_of(&self.0.spec)
    }

    /// How its `auth-capture` payments are held and finished; null without such an accept.
    async fn escrow(&self) -> Option<EscrowTerms> {
        self.0.spec.escrow.map(Into::into)
    }
}

/// Something a tenant sells: an HTTP endpoint or an MCP tool, with its current version.
pub struct Resource(pub domain::Resource);

#[Object]
impl Resource {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    #[graphql(name = "type")]
    async fn kind(&self) -> ResourceTypeGql {
        self.0.kind.into()
    }

    /// Absolute http(s) URL; an HTTP resource's path may hold `:param` segments.
    async fn url(&self) -> &str {
        &self.0.url
    }

    /// The HTTP method, for HTTP resources.
    async fn method(&self) -> Option<&str> {
        self.0.method.as_deref()
    }

    /// The tool, for MCP resources.
    async fn tool_name(&self) -> Option<&str> {
        self.0.tool.as_deref()
    }

    async fn name(&self) -> &str {
        &self.0.metadata.name
    }

    async fn description(&self) -> &str {
        &self.0.metadata.description
    }

    async fn mime_type(&self) -> Option<&str> {
        self.0.metadata.mime_type.as_deref()
    }

    async fn service_name(&self) -> Option<&str> {
        self.0.metadata.service_name.as_deref()
    }

    async fn tags(&self) -> &[String] {
        &self.0.metadata.tags
    }

    async fn icon_url(&self) -> Option<&str> {
        self.0.metadata.icon_url.as_deref()
    }

    async fn status(&self) -> ResourceStatusGql {
        self.0.status.into()
    }

    async fn origin(&self) -> ResourceOriginGql {
        self.0.origin.into()
    }

    /// The current version.
    async fn version(&self) -> u32 {
        self.0.current.version
    }

    async fn price(&self) -> PriceSpec {
        (&self.0.current.spec.price).into()
    }

    async fn accepts(&self) -> Vec<Accept> {
        accepts_of(&self.0.current.spec)
    }

    async fn max_timeout_seconds(&self) -> u32 {
        self.0.current.spec.max_timeout_seconds
    }

    async fn input_schema(&self) -> Option<Json<Value>> {
        json(self.0.current.spec.input_schema.as_ref())
    }

    async fn output_schema(&self) -> Option<Json<Value>> {
        json(self.0.current.spec.output_schema.as_ref())
    }

    /// What a payment buys beyond its request; null: every request pays.
    async fn repeat_access(&self) -> Option<RepeatAccess> {
        repeat_access_of(&self.0.current.spec)
    }

    /// How its `auth-capture` payments are held and finished (current version); null without
    /// such an accept.
    async fn escrow(&self) -> Option<EscrowTerms> {
        self.0.current.spec.escrow.map(Into::into)
    }

    async fn input_example(&self) -> Option<Json<Value>> {
        json(self.0.current.spec.input_example.as_ref())
    }

    async fn output_example(&self) -> Option<Json<Value>> {
        json(self.0.current.spec.output_example.as_ref())
    }

    /// Where an HTTP resource's input goes: `query`, `json`, `form-data` or `text`.
    async fn body_type(&self) -> Option<&str> {
        self.0.current.spec.body_type.as_deref()
    }

    async fn health(&self) -> ResourceHealthGql {
        self.0.health.into()
    }

    async fn health_checked_at(&self) -> Option<DateTime<Utc>> {
        self.0.health_checked_at
    }

    /// Why the last probe failed.
    async fn health_detail(&self) -> Option<&str> {
        self.0.health_detail.as_deref()
    }

    /// Hidden from the catalog by the prober.
    async fn hidden(&self) -> bool {
        self.0.hidden
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }

    /// Every version, oldest first.
    async fn versions(&self, ctx: &Context<'_>) -> GqlResult<Vec<ResourceVersion>> {
        let scope = TenantScope::trusted(self.0.tenant_id);
        let versions = store(ctx).resource_versions(scope, self.0.id).await?;
        Ok(versions.into_iter().map(ResourceVersion).collect())
    }

    /// The x402 `PaymentRequired` (402) the current version answers with.
    async fn payment_required(&self, ctx: &Context<'_>) -> GqlResult<Option<Json<Value>>> {
        let mut challenge = payment_required(&self.0, &ChallengeRequest::default())?;
        let policy = store(ctx)
            .routing_policy(TenantScope::trusted(self.0.tenant_id))
            .await?
            .unwrap_or_default();
        purser_registry::challenge::route(&mut challenge, crate::routing::router(ctx), &policy);
        let value = serde_json::to_value(&challenge)
            .map_err(|e| Error::internal("serializing a PaymentRequired", e))?;
        Ok(Some(Json(value)))
    }
}

/// A price: exactly one of `usd`, `amount` and `meter` (with `units`, default 1).
#[derive(InputObject)]
pub struct PriceInput {
    /// A USD decimal string, e.g. `"0.01"`.
    pub usd: Option<String>,
    /// Atomic units, the same in every accepted asset.
    pub amount: Option<Amount>,
    /// A usage price: the slug of a priced meter; a call costs what the meter's price asks for
    /// `units` beyond the free units, and follows the meter's price when it changes.
    pub meter: Option<String>,
    /// The meter units one call counts as (a positive decimal string; default `"1"`).
    pub units: Option<String>,
}

impl PriceInput {
    fn into_spec(self) -> GqlResult<domain::PriceSpec> {
        match (self.usd, self.amount, self.meter) {
            (Some(usd), None, None) if self.units.is_none() => Ok(domain::PriceSpec::Usd { usd }),
            (None, Some(amount), None) if self.units.is_none() => {
                Ok(domain::PriceSpec::Atomic { amount: amount.0 })
            }
            (None, None, Some(meter)) => {
                let units = match self.units {
                    None => rust_decimal::Decimal::ONE,
                    Some(units) => units.trim().parse().map_err(|_| {
                        GqlError::new(
                            ErrorCode::InvalidPrice,
                            "`units` must be a decimal string such as \"1\" or \"1000\"",
                        )
                    })?,
                };
                Ok(domain::PriceSpec::Meter { meter, units })
            }
            _ => Err(GqlError::new(
                ErrorCode::InvalidInput,
                "a price sets exactly one of `usd`, `amount` and `meter` (`units` goes with `meter`)",
            )),
        }
    }
}

/// One way to pay.
#[derive(InputObject)]
pub struct AcceptInput {
    /// CAIP-2, e.g. `eip155:8453`.
    pub network: String,
    /// The token; the network's first asset when omitted.
    pub asset: Option<String>,
    /// Where to be paid; the tenant's payout address on the network when omitted.
    pub pay_to: Option<String>,
    /// `exact` when omitted.
    pub scheme: Option<String>,
}

impl From<AcceptInput> for AcceptDraft {
    fn from(a: AcceptInput) -> Self {
        Self {
            network: a.network,
            asset: a.asset,
            pay_to: a.pay_to,
            scheme: a.scheme,
        }
    }
}

/// Repeat access for a payer's wallet after a payment; all fields may be omitted (this
/// resource, without end, any number of uses).
#[derive(InputObject)]
pub struct RepeatAccessInput {
    /// A group name (letters, digits, `-`, `_`, `.`): the grant covers every resource of the
    /// tenant with this group.
    pub group: Option<String>,
    /// Positive; omit for no end.
    pub duration_seconds: Option<u32>,
    /// Positive; omit for any number.
    pub uses: Option<u32>,
}

impl From<RepeatAccessInput> for RepeatAccessPolicy {
    fn from(r: RepeatAccessInput) -> Self {
        Self {
            group: r.group,
            duration_seconds: r.duration_seconds.map(u64::from),
            uses: r.uses,
        }
    }
}

#[derive(InputObject)]
pub struct SetPayoutAddressInput {
    pub tenant_id: Option<ID>,
    /// CAIP-2.
    pub network: String,
    /// EIP-55 checksummed.
    pub address: String,
}

#[derive(InputObject)]
pub struct CreateResourceInput {
    pub tenant_id: Option<ID>,
    #[graphql(name = "type")]
    pub kind: ResourceTypeGql,
    /// Absolute http(s) URL; an HTTP resource's path may hold `:param` segments.
    pub url: String,
    /// HTTP only; `GET` when omitted.
    pub method: Option<String>,
    /// MCP only.
    pub tool_name: Option<String>,
    pub name: String,
    #[graphql(default)]
    pub description: String,
    pub mime_type: Option<String>,
    pub service_name: Option<String>,
    #[graphql(default)]
    pub tags: Vec<String>,
    pub icon_url: Option<String>,
    pub input_schema: Option<Json<Value>>,
    pub output_schema: Option<Json<Value>>,
    pub input_example: Option<Json<Value>>,
    pub output_example: Option<Json<Value>>,
    pub body_type: Option<String>,
    pub price: PriceInput,
    #[graphql(default)]
    pub accepts: Vec<AcceptInput>,
    pub max_timeout_seconds: Option<u32>,
    /// What a payment buys beyond its request; omit for none.
    pub repeat_access: Option<RepeatAccessInput>,
    /// How `auth-capture` accepts hold and finish payments; the defaults (`ON_SUCCESS`, a day
    /// to capture, a week to refund) when omitted.
    pub escrow: Option<EscrowTerms>,
    /// Publish at once instead of creating a draft.
    #[graphql(default)]
    pub publish: bool,
}

/// Changes to a resource: omitted fields keep their value; `null` clears an optional one.
/// Changing the price, accepts, timeout, schemas, examples, body type or repeat access makes a
/// new version.
#[derive(InputObject)]
pub struct UpdateResourceInput {
    pub id: ID,
    pub tenant_id: Option<ID>,
    /// The version read; a change made since is a `conflict`.
    pub expected_version: u32,
    pub name: Option<String>,
    pub description: Option<String>,
    pub mime_type: MaybeUndefined<String>,
    pub service_name: MaybeUndefined<String>,
    pub tags: Option<Vec<String>>,
    pub icon_url: MaybeUndefined<String>,
    pub input_schema: MaybeUndefined<Json<Value>>,
    pub output_schema: MaybeUndefined<Json<Value>>,
    pub input_example: MaybeUndefined<Json<Value>>,
    pub output_example: MaybeUndefined<Json<Value>>,
    pub body_type: MaybeUndefined<String>,
    pub price: Option<PriceInput>,
    pub accepts: Option<Vec<AcceptInput>>,
    pub max_timeout_seconds: Option<u32>,
    /// `null` ends repeat access for payments made from the new version on.
    pub repeat_access: MaybeUndefined<RepeatAccessInput>,
    /// `null` restores the default escrow terms.
    pub escrow: MaybeUndefined<EscrowTerms>,
}

/// `None` to keep, `Some(None)` to clear, `Some(Some(v))` to set.
fn patch<T>(value: MaybeUndefined<T>) -> Option<Option<T>> {
    match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(v)),
    }
}

fn patch_json(value: MaybeUndefined<Json<Value>>) -> Option<Option<Value>> {
    patch(value).map(|v| v.map(|j| j.0))
}

/// Registry reads.
#[derive(Default)]
pub struct RegistryQuery;

#[Object]
impl RegistryQuery {
    /// The networks and assets Purser settles. Any key may read them.
    async fn networks(&self, ctx: &Context<'_>) -> GqlResult<Vec<SupportedNetwork>> {
        principal(ctx)?;
        Ok(registry(ctx)
            .assets()
            .networks()
            .map(|(network, assets)| SupportedNetwork {
                network: network.to_owned(),
                assets: assets.iter().map(SupportedAsset::from).collect(),
            })
            .collect())
    }

    /// A tenant's payout addresses, by network.
    async fn payout_addresses(
        &self,
        ctx: &Context<'_>,
        tenant_id: Option<ID>,
    ) -> GqlResult<Vec<PayoutAddress>> {
        let scope = scope(ctx, tenant_id.as_ref(), Access::Read).await?;
        let addresses = store(ctx).payout_addresses(scope).await?;
        Ok(addresses.into_iter().map(PayoutAddress).collect())
    }

    /// A tenant's resources in creation order, optionally of one status.
    #[graphql(
        complexity = "first.or(last).unwrap_or(20).clamp(1, 100) as usize * child_complexity"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn resources(
        &self,
        ctx: &Context<'_>,
        tenant_id: Option<ID>,
        status: Option<ResourceStatusGql>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> GqlResult<Connection<IdCursor, Resource>> {
        let scope = scope(ctx, tenant_id.as_ref(), Access::Read).await?;
        let request = RelayArgs {
            first,
            after,
            last,
            before,
        }
        .page_request()?;
        let page = store(ctx)
            .list_resources(scope, status.map(Into::into), request)
            .await?;
        Ok(connection(&request, page.map(Resource), |r| {
            r.0.id.as_uuid()
        }))
    }

    /// One resource of a tenant; null when the tenant has none with this id.
    async fn resource(
        &self,
        ctx: &Context<'_>,
        id: ID,
        tenant_id: Option<ID>,
    ) -> GqlResult<Option<Resource>> {
        let scope = scope(ctx, tenant_id.as_ref(), Access::Read).await?;
        let resource = store(ctx).find_resource(scope, parse_id(&id)?).await?;
        Ok(resource.map(Resource))
    }
}

/// Registry changes. Tenant administrators change their own tenant; operators name it.
#[derive(Default)]
pub struct RegistryMutation;

#[Object]
impl RegistryMutation {
    /// Sets where the tenant is paid on a network, which enables the network for it.
    async fn set_payout_address(
        &self,
        ctx: &Context<'_>,
        input: SetPayoutAddressInput,
    ) -> GqlResult<PayoutAddress> {
        let scope = scope(ctx, input.tenant_id.as_ref(), Access::Write).await?;
        let address = registry(ctx)
            .set_payout_address(scope, &input.network, &input.address)
            .await?;
        Ok(PayoutAddress(address))
    }

    /// Removes the tenant's payout address on a network; false when there was none.
    async fn remove_payout_address(
        &self,
        ctx: &Context<'_>,
        tenant_id: Option<ID>,
        network: String,
    ) -> GqlResult<bool> {
        let scope = scope(ctx, tenant_id.as_ref(), Access::Write).await?;
        Ok(registry(ctx).remove_payout_address(scope, &network).await?)
    }

    /// Registers a resource, as a draft unless `publish`.
    async fn create_resource(
        &self,
        ctx: &Context<'_>,
        input: CreateResourceInput,
    ) -> GqlResult<Resource> {
        let scope = scope(ctx, input.tenant_id.as_ref(), Access::Write).await?;
        let draft = ResourceDraft {
            kind: input.kind.into(),
            url: input.url,
            method: input.method,
            tool: input.tool_name,
            name: input.name,
            description: input.description,
            mime_type: input.mime_type,
            service_name: input.service_name,
            tags: input.tags,
            icon_url: input.icon_url,
            input_schema: input.input_schema.map(|j| j.0),
            output_schema: input.output_schema.map(|j| j.0),
            input_example: input.input_example.map(|j| j.0),
            output_example: input.output_example.map(|j| j.0),
            body_type: input.body_type,
            price: input.price.into_spec()?,
            accepts: input.accepts.into_iter().map(Into::into).collect(),
            max_timeout_seconds: input.max_timeout_seconds,
            repeat_access: input.repeat_access.map(Into::into),
            escrow: input.escrow.map(Into::into),
        };
        let resource = registry(ctx)
            .create_resource(scope, draft, input.publish)
            .await?;
        Ok(Resource(resource))
    }

    /// Changes a resource: metadata in place, and a new version when its terms or schemas
    /// change.
    async fn update_resource(
        &self,
        ctx: &Context<'_>,
        input: UpdateResourceInput,
    ) -> GqlResult<Resource> {
        let scope = scope(ctx, input.tenant_id.as_ref(), Access::Write).await?;
        let id = parse_id(&input.id)?;
        let patch = ResourcePatch {
            expected_version: input.expected_version,
            name: input.name,
            description: input.description,
            mime_type: patch(input.mime_type),
            service_name: patch(input.service_name),
            tags: input.tags,
            icon_url: patch(input.icon_url),
            input_schema: patch_json(input.input_schema),
            output_schema: patch_json(input.output_schema),
            input_example: patch_json(input.input_example),
            output_example: patch_json(input.output_example),
            body_type: patch(input.body_type),
            price: input.price.map(PriceInput::into_spec).transpose()?,
            accepts: input
                .accepts
                .map(|a| a.into_iter().map(Into::into).collect()),
            max_timeout_seconds: input.max_timeout_seconds,
            repeat_access: patch(input.repeat_access).map(|r| r.map(Into::into)),
            escrow: patch(input.escrow).map(|t| t.map(Into::into)),
        };
        let resource = registry(ctx).update_resource(scope, id, patch).await?;
        Ok(Resource(resource))
    }

    /// Lists the resource in the catalog and makes it payable.
    async fn publish_resource(
        &self,
        ctx: &Context<'_>,
        id: ID,
        tenant_id: Option<ID>,
    ) -> GqlResult<Resource> {
        let scope = scope(ctx, tenant_id.as_ref(), Access::Write).await?;
        let resource = registry(ctx)
            .publish_resource(scope, parse_id(&id)?)
            .await?;
        Ok(Resource(resource))
    }

    /// Takes the resource out of the catalog, keeping it editable.
    async fn unpublish_resource(
        &self,
        ctx: &Context<'_>,
        id: ID,
        tenant_id: Option<ID>,
    ) -> GqlResult<Resource> {
        let scope = scope(ctx, tenant_id.as_ref(), Access::Write).await?;
        let resource = registry(ctx)
            .unpublish_resource(scope, parse_id(&id)?)
            .await?;
        Ok(Resource(resource))
    }

    /// Withdraws the resource for good; its history stays.
    async fn archive_resource(
        &self,
        ctx: &Context<'_>,
        id: ID,
        tenant_id: Option<ID>,
    ) -> GqlResult<Resource> {
        let scope = scope(ctx, tenant_id.as_ref(), Access::Write).await?;
        let resource = registry(ctx)
            .archive_resource(scope, parse_id(&id)?)
            .await?;
        Ok(Resource(resource))
    }
}
