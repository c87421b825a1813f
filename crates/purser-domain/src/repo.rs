//! Repository traits: what the services need from storage, with no SQL in sight. Both storage
//! crates implement them and pass one behaviour suite (`purser-testkit`).

use std::ops::Range;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::auth::{ApiKey, KeyOwner, NewApiKey, StoredApiKey, TenantScope};
use crate::credits::{CreditBalance, CreditKey, CreditReservation, CreditTopUp};
use crate::entitlement::{Grant, GrantFilter, NewGrant};
use crate::error::Result;
use crate::id::{
    ApiKeyId, AttemptId, CreditReservationId, GrantId, MeterId, ResourceId, SettlementId, TenantId,
};
use crate::ledger::{AccountBalance, Transfer};
use crate::metering::{
    Meter, MeterPrice, NewCorrection, NewMeter, NewUsageEvent, UsageCell, UsageDay, UsageEntry,
    UsageScan,
};
use crate::money::Amount;
use crate::page::{Page, PageRequest};
use crate::registry::{
    CatalogFilter, CatalogPage, LearnedResource, NewResource, PayoutAddress, ProbeOutcome,
    Resource, ResourceChange, ResourceStatus, ResourceVersion,
};
use crate::routing::RoutingPolicy;
use crate::settlement::{
    Attempt, AuthorizationKey, ChainOutcome, Claim, InFlightQuery, NetworkCost, NetworkCostDay,
    NewSettlement, PaymentIdentifierClaim, Settlement,
};
use crate::tenant::{NewTenant, Tenant, TenantUpdate};

#[async_trait]
pub trait TenantRepository: Send + Sync {
    /// Creates a tenant; `tenant_name_taken` when the name (ignoring case) is in use.
    async fn create_tenant(&self, tenant: NewTenant) -> Result<Tenant>;

    async fn get_tenant(&self, id: TenantId) -> Result<Option<Tenant>>;

    /// Every tenant, by creation order. For operators only: callers check the role.
    async fn list_tenants(&self, page: PageRequest) -> Result<Page<Tenant>>;

    /// Applies `update`; `None` when there is no such tenant.
    async fn update_tenant(&self, id: TenantId, update: TenantUpdate) -> Result<Option<Tenant>>;
}

#[async_trait]
pub trait ApiKeyRepository: Send + Sync {
    async fn insert_api_key(&self, key: NewApiKey) -> Result<ApiKey>;

    /// The key with this public prefix, for authentication. Not scoped: the caller has no
    /// principal yet, and proves ownership by the secret's hash.
    async fn find_api_key_by_prefix(&self, prefix: &str) -> Result<Option<StoredApiKey>>;

    async fn get_api_key(&self, owner: KeyOwner, id: ApiKeyId) -> Result<Option<ApiKey>>;

    async fn list_api_keys(
        &self,
        owner: KeyOwner,
        include_revoked: bool,
        page: PageRequest,
    ) -> Result<Page<ApiKey>>;

    /// Revokes the key if `owner` owns it. Revoking twice keeps the first time. `None` when
    /// the owner has no such key.
    async fn revoke_api_key(
        &self,
        owner: KeyOwner,
        id: ApiKeyId,
        at: DateTime<Utc>,
    ) -> Result<Option<ApiKey>>;

    /// Records a use at `at`, unless one was already recorded after `unless_after`.
    async fn touch_api_key(
        &self,
        id: ApiKeyId,
        at: DateTime<Utc>,
        unless_after: DateTime<Utc>,
    ) -> Result<()>;
}

/// Settlement records, their transactions, and the signer nonces those use. Transitions are
/// guarded by the current status, so of two concurrent callers only one applies a change; the
/// other reads the result. Ledger postings happen inside the same database transaction as the
/// transition that causes them.
#[async_trait]
pub trait SettlementRepository: Send + Sync {
    /// Claims the authorization. If it was claimed before, answers the existing record, except
    /// that a `rejected` one (nothing was ever broadcast) is claimed afresh by the same tenant.
    async fn claim_settlement(&self, settlement: NewSettlement) -> Result<Claim>;

    /// Any settlement, for background work that acts for every tenant.
    async fn get_settlement(&self, id: SettlementId) -> Result<Option<Settlement>>;

    /// A settlement of the scope's tenant.
    async fn find_settlement(
        &self,
        scope: TenantScope,
        id: SettlementId,
    ) -> Result<Option<Settlement>>;

    /// The scope's settlement of the authorization `key` (there is at most one per key).
    async fn find_settlement_by_authorization(
        &self,
        scope: TenantScope,
        key: &AuthorizationKey,
    ) -> Result<Option<Settlement>>;

    /// The scope's settlements, in creation order.
    async fn list_settlements(
        &self,
        scope: TenantScope,
        page: PageRequest,
    ) -> Result<Page<Settlement>>;

    /// The scope's escrowed payments: their `authorize` (or `charge`) settlements, in creation
    /// order.
    async fn list_escrow_payments(
        &self,
        scope: TenantScope,
        page: PageRequest,
    ) -> Result<Page<Settlement>>;

    /// The scope's operations on the escrowed payment `payment` (`getHash(paymentInfo)`, `0x`
    /// and lower-case hex), its `authorize` (or `charge`) first, then in the order they were
    /// claimed.
    async fn escrow_operations(&self, scope: TenantScope, payment: &str)
    -> Result<Vec<Settlement>>;

    /// Posts a hold the payer reclaimed itself (seen on chain) on the payment's `authorize`
    /// settlement `authorization`: `escrow_reclaim`, once. False when it was posted before.
    async fn record_escrow_reclaim(
        &self,
        authorization: SettlementId,
        amount: Amount,
    ) -> Result<bool>;

    /// `received` to `verified`.
    async fn mark_verified(&self, id: SettlementId) -> Result<Settlement>;

    /// `received` or `verified` to `rejected`, with the reason.
    async fn reject_settlement(
        &self,
        id: SettlementId,
        reason: &str,
        message: &str,
    ) -> Result<Settlement>;

    /// Leases the signer's next nonce: the larger of the stored next nonce and `chain_pending`
    /// (the node's pending transaction count), which then advances by one. Atomic across
    /// instances.
    async fn lease_signer_nonce(
        &self,
        network: &str,
        signer: &str,
        chain_pending: u64,
    ) -> Result<u64>;

    /// The nonce the next lease would give, if the signer was ever used.
    async fn signer_next_nonce(&self, network: &str, signer: &str) -> Result<Option<u64>>;

    /// Records a signed transaction before it is broadcast. For a transfer, moves the
    /// settlement from `verified` to `submitted` and opens its pending ledger transfer (the
    /// first time), or, for a replacement, keeps it in flight and points it at the new hash.
    async fn record_attempt(&self, attempt: Attempt) -> Result<()>;

    /// Notes that a node accepted the transaction.
    async fn mark_broadcast(&self, attempt: AttemptId, at: DateTime<Utc>) -> Result<()>;

    /// Every transaction recorded for a settlement, oldest first.
    async fn attempts_for(&self, id: SettlementId) -> Result<Vec<Attempt>>;

    /// A signer's transactions with nonces at or above `from_nonce`, by nonce.
    async fn signer_attempts_from(
        &self,
        network: &str,
        signer: &str,
        from_nonce: u64,
    ) -> Result<Vec<Attempt>>;

    /// `submitted` to `pending`: broadcast, receipt not seen in time.
    async fn mark_pending(&self, id: SettlementId, message: &str) -> Result<Settlement>;

    /// The scope's settlement gas per UTC day and chain, for outcomes recorded in `[from, to)`
    /// (at most [`crate::settlement::MAX_NETWORK_COST_DAYS`] days), by day then chain.
    async fn network_costs(
        &self,
        scope: TenantScope,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<NetworkCostDay>>;

    /// `submitted` or `pending` to `confirmed`; posts the settlement transfer and the payout,
    /// and the network fee when the outcome carries the transaction's cost.
    async fn confirm_settlement(
        &self,
        id: SettlementId,
        outcome: ChainOutcome,
    ) -> Result<Settlement>;

    /// `submitted` or `pending` to `failed`; voids the pending transfer, and posts the network
    /// fee of a transaction that was mined (and reverted) when `cost` is given.
    async fn fail_settlement(
        &self,
        id: SettlementId,
        tx_hash: Option<&str>,
        cost: Option<&NetworkCost>,
        reason: &str,
        message: &str,
    ) -> Result<Settlement>;

    /// Settlements the reconciler should look at: in flight, or stuck before broadcast.
    async fn unfinished_settlements(&self, query: InFlightQuery) -> Result<Vec<Settlement>>;

    /// Registers a `payment-identifier` with the hash of its payload, or says how it was seen.
    async fn claim_payment_identifier(
        &self,
        scope: TenantScope,
        identifier: &str,
        payload_hash: &str,
    ) -> Result<PaymentIdentifierClaim>;

    /// Stores the final response for a payment identifier.
    async fn store_payment_response(
        &self,
        scope: TenantScope,
        identifier: &str,
        response: &str,
    ) -> Result<()>;
}

/// Reading the ledger. Writes happen only through settlement transitions and credit operations
/// ([`CreditRepository`]).
#[async_trait]
pub trait LedgerRepository: Send + Sync {
    /// The transfers a settlement caused, oldest first.
    async fn transfers_for_settlement(
        &self,
        scope: TenantScope,
        id: SettlementId,
    ) -> Result<Vec<Transfer>>;

    /// Every account of the tenant with its sums.
    async fn account_balances(&self, scope: TenantScope) -> Result<Vec<AccountBalance>>;
}

/// Payout addresses, resources with their versions, and the public catalog over them.
#[async_trait]
pub trait RegistryRepository: Send + Sync {
    /// Sets the tenant's payout address on `network`, enabling the network for it.
    async fn set_payout_address(
        &self,
        scope: TenantScope,
        network: &str,
        address: &str,
        at: DateTime<Utc>,
    ) -> Result<PayoutAddress>;

    /// Removes it; `false` when there was none.
    async fn remove_payout_address(&self, scope: TenantScope, network: &str) -> Result<bool>;

    /// The tenant's payout addresses, by network.
    async fn payout_addresses(&self, scope: TenantScope) -> Result<Vec<PayoutAddress>>;

    /// Creates a resource with version 1. `conflict` when the tenant already has a resource
    /// with this kind, URL and method or tool (archived ones aside).
    async fn create_resource(&self, resource: NewResource) -> Result<Resource>;

    async fn find_resource(&self, scope: TenantScope, id: ResourceId) -> Result<Option<Resource>>;

    /// Any resource, for background work.
    async fn get_resource(&self, id: ResourceId) -> Result<Option<Resource>>;

    /// The tenant's resources in creation order, optionally of one status.
    async fn list_resources(
        &self,
        scope: TenantScope,
        status: Option<ResourceStatus>,
        page: PageRequest,
    ) -> Result<Page<Resource>>;

    /// Applies `change` (appending a version when it carries a spec); `None` when the tenant
    /// has no such resource; `conflict` when the current version is no longer
    /// `change.expected_version`, or the resource is archived.
    async fn change_resource(
        &self,
        scope: TenantScope,
        id: ResourceId,
        change: ResourceChange,
    ) -> Result<Option<Resource>>;

    /// Moves the resource to `status`; `None` when the tenant has no such resource. Archived
    /// is final: leaving it is `conflict`.
    async fn set_resource_status(
        &self,
        scope: TenantScope,
        id: ResourceId,
        status: ResourceStatus,
        at: DateTime<Utc>,
    ) -> Result<Option<Resource>>;

    /// Every version, oldest first; empty when the tenant has no such resource.
    async fn resource_versions(
        &self,
        scope: TenantScope,
        id: ResourceId,
    ) -> Result<Vec<ResourceVersion>>;

    /// Creates or updates a resource learned from the `bazaar` extension, published at once.
    /// A merchant-registered resource with the same key is left alone and answered instead.
    async fn learn_resource(&self, learned: LearnedResource) -> Result<Resource>;

    /// Published, unhidden resources of every tenant that pass `filter`, most recently changed
    /// first.
    async fn catalog_list(
        &self,
        filter: &CatalogFilter,
        offset: u64,
        limit: u32,
    ) -> Result<CatalogPage>;

    /// Like [`Self::catalog_list`], restricted to resources matching any word of `query` in
    /// their name, description, tags or schema field names, best match first. Answers one
    /// more than `limit` when more follow.
    async fn catalog_search(
        &self,
        query: &str,
        filter: &CatalogFilter,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<Resource>>;

    /// Published HTTP resources whose last probe is older than `checked_before` (or never ran),
    /// oldest first.
    async fn resources_due_for_probe(
        &self,
        checked_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Resource>>;

    /// Records a probe: health, and hidden when unhealthy since before the outcome's limit.
    async fn record_probe(&self, id: ResourceId, outcome: ProbeOutcome) -> Result<()>;
}

#[async_trait]
pub trait StoreHealth: Send + Sync {
    /// A round trip to the database.
    async fn ping(&self) -> Result<()>;

    /// Which backend this is, for logs and readiness output (`postgres`, `sqlite`).
    fn backend(&self) -> &'static str;
}

/// Grants of repeat access. Uses are counted in the same statement that checks them.
#[async_trait]
pub trait GrantRepository: Send + Sync {
    /// Stores a grant. A second grant for the same settlement answers the first one.
    async fn create_grant(&self, grant: NewGrant) -> Result<Grant>;

    /// Admits one request of `wallet` (lower-case hex) to `resource`, a member of `group` when
    /// it has one, at `now`: picks a grant of the scope's tenant that holds (for the resource,
    /// or for the group) and counts the use, atomically, so a grant of N uses admits N
    /// requests whatever the concurrency. `None` when no grant holds.
    async fn use_grant(
        &self,
        scope: TenantScope,
        wallet: &str,
        resource: ResourceId,
        group: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<Grant>>;

    async fn find_grant(&self, scope: TenantScope, id: GrantId) -> Result<Option<Grant>>;

    /// Adds uses counted outside the database to grants without a use limit: a cache admits
    /// requests on such grants without a write each and records their uses in batches, for
    /// every tenant at once. Grants with a limit are left alone (their uses are counted by
    /// [`Self::use_grant`] alone, one atomic step each); unknown ids are ignored.
    async fn add_grant_uses(&self, uses: &[(GrantId, u32)]) -> Result<()>;

    /// The scope's grants that pass `filter` (`active_only`: those that hold at `now`), newest
    /// first. The page's cursors follow that order: `page.after` selects older grants (ids
    /// below it), `page.before` newer ones, and the page's items come newest first. A
    /// `resource_id` filter matches grants for that resource, not group grants.
    async fn list_grants(
        &self,
        scope: TenantScope,
        filter: GrantFilter,
        now: DateTime<Utc>,
        page: PageRequest,
    ) -> Result<Page<Grant>>;

    /// Revokes the grant; revoking twice keeps the first time. `None` when the scope has no
    /// such grant.
    async fn revoke_grant(
        &self,
        scope: TenantScope,
        id: GrantId,
        at: DateTime<Utc>,
    ) -> Result<Option<Grant>>;
}

/// Prepaid credits (see [`crate::credits`]): balances per tenant and [`CreditKey`], topped up by
/// payments and spent in two phases. Every change posts balanced ledger transfers in the same
/// database transaction as the balance it changes, and a payer's available credit never goes
/// below zero, whatever the concurrency: of N concurrent reservations against a balance, exactly
/// as many succeed as the balance covers.
#[async_trait]
pub trait CreditRepository: Send + Sync {
    /// Adds `amount` (positive) to the payer's balance with a posted `credit_top_up` transfer.
    ///
    /// With `settlement_id`, the top-up is what that payment bought: the settlement must be the
    /// scope's (`not_found`), on the key's network and asset and for at least `amount`
    /// (`invalid_input`), and `confirmed` (`conflict`: credit is issued only for value that
    /// arrived). A settlement tops up at most once: a repeated call answers the first top-up,
    /// or `conflict` when it names another wallet or amount. Without one (a grant of credit by
    /// the merchant), every call adds credit.
    async fn top_up(
        &self,
        scope: TenantScope,
        key: &CreditKey,
        amount: Amount,
        settlement_id: Option<SettlementId>,
    ) -> Result<CreditTopUp>;

    /// The payer's balance: `available` (prepaid − spent − held) and `reserved` (held); zero
    /// for a key that was never topped up.
    async fn credit_balance(&self, scope: TenantScope, key: &CreditKey) -> Result<CreditBalance>;

    /// Holds `amount` (positive) of the payer's available credit with a pending `credit_use`
    /// transfer. `insufficient_credit` (nothing written) when less is available.
    async fn reserve(
        &self,
        scope: TenantScope,
        key: &CreditKey,
        amount: Amount,
    ) -> Result<CreditReservation>;

    /// Spends `actual` (at most the reserved amount, else `invalid_input`; zero is allowed) and
    /// returns the rest to the payer: posts the hold when `actual` is all of it, else voids it
    /// and posts `actual`. Committing again for the same amount answers the stored reservation;
    /// after a release, or for another amount, it is `conflict` and the first outcome stands.
    /// `not_found` when the scope has no such reservation.
    async fn commit(
        &self,
        scope: TenantScope,
        id: CreditReservationId,
        actual: Amount,
    ) -> Result<CreditReservation>;

    /// Returns the whole hold to the payer (voids it). Releasing again answers the stored
    /// reservation; after a commit it is `conflict`. `not_found` when the scope has no such
    /// reservation.
    async fn release(
        &self,
        scope: TenantScope,
        id: CreditReservationId,
    ) -> Result<CreditReservation>;

    async fn find_credit_reservation(
        &self,
        scope: TenantScope,
        id: CreditReservationId,
    ) -> Result<Option<CreditReservation>>;

    /// Pending reservations made before `created_before`, oldest first, at most `limit`, of
    /// every tenant: for the background job that releases holds nobody resolved.
    async fn stale_credit_reservations(
        &self,
        created_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<CreditReservation>>;
}

/// Usage events and meters (see [`crate::metering`]).
///
/// Events are deduplicated per tenant on (`source`, `id`) forever: an event's revision-0 entry
/// is unique on that key, so a duplicate writes nothing, however long after. Corrections append
/// entries (revision 1, 2, ...) and mark the entry they replace superseded; no entry's content
/// is ever changed or deleted.
#[async_trait]
pub trait MeteringRepository: Send + Sync {
    /// Stores the events that are new for the scope, in one transaction, with `recorded_at`:
    /// answers, per event and in order, `true` if it was stored and `false` if the tenant sent
    /// an event with its (`source`, `id`) before (ever, or earlier in this batch; the first
    /// one wins). Durable once it returns.
    async fn insert_usage_events(
        &self,
        scope: TenantScope,
        events: &[NewUsageEvent],
        recorded_at: DateTime<Utc>,
    ) -> Result<Vec<bool>>;

    /// Every entry of one event, oldest first; empty when the scope has no such event.
    async fn usage_event_history(
        &self,
        scope: TenantScope,
        source: &str,
        id: &str,
    ) -> Result<Vec<UsageEntry>>;

    /// Appends `correction` (built by [`NewCorrection::of`] from the current entry; the event
    /// type is the event's) and marks the entry it replaces superseded at `recorded_at`,
    /// atomically. `conflict` when the event's current revision is no longer
    /// `correction.revision - 1` (a concurrent correction won); `not_found` when the scope has
    /// no such event.
    async fn correct_usage_event(
        &self,
        scope: TenantScope,
        correction: &NewCorrection,
        recorded_at: DateTime<Utc>,
    ) -> Result<UsageEntry>;

    /// Corrections (entries of revision 1 and up) of events of `event_type` whose time, before
    /// or after the correction, is in `[from, to)`, recorded up to `as_of` if given; newest
    /// first, at most `limit`.
    async fn list_usage_corrections(
        &self,
        scope: TenantScope,
        event_type: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        as_of: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<UsageEntry>>;

    /// Runs `scan` over the scope's current entries (as of `scan.as_of`, when given: entries
    /// recorded by then and not superseded by then), voided ones excluded. Cells in no
    /// particular order.
    async fn aggregate_usage(&self, scope: TenantScope, scan: &UsageScan)
    -> Result<Vec<UsageCell>>;

    /// The closed days (by the store's clock, see [`day_closed`]) among the Unix days `days`,
    /// ascending: each with its version now and, when an answer for `shape` is cached at that
    /// version, its cells. Storing an event or a correction in a day that ended over half an
    /// hour ago ([`bumps_day`]) bumps the day's version in the same transaction.
    ///
    /// [`day_closed`]: crate::metering::query::day_closed
    /// [`bumps_day`]: crate::metering::query::bumps_day
    async fn usage_days(
        &self,
        scope: TenantScope,
        event_type: &str,
        shape: &str,
        days: Range<i64>,
    ) -> Result<Vec<UsageDay>>;

    /// Caches the cells of one closed day for `shape`, computed by a scan that began after
    /// [`MeteringRepository::usage_days`] read `version`, stamped with the store's clock. An
    /// answer cached at a later version stays.
    async fn cache_usage_day(
        &self,
        scope: TenantScope,
        event_type: &str,
        shape: &str,
        day: i64,
        version: i64,
        cells: &[UsageCell],
    ) -> Result<()>;

    /// `meter_slug_taken` when the scope has a meter with the slug (archived ones included).
    async fn create_meter(
        &self,
        scope: TenantScope,
        meter: &NewMeter,
        at: DateTime<Utc>,
    ) -> Result<Meter>;

    async fn find_meter(&self, scope: TenantScope, id: MeterId) -> Result<Option<Meter>>;

    async fn find_meter_by_slug(&self, scope: TenantScope, slug: &str) -> Result<Option<Meter>>;

    /// The scope's meters in creation order (archived ones only when asked).
    async fn list_meters(
        &self,
        scope: TenantScope,
        include_archived: bool,
        page: PageRequest,
    ) -> Result<Page<Meter>>;

    /// Every meter of the scope that is not archived: what ingestion checks events against.
    async fn active_meters(&self, scope: TenantScope) -> Result<Vec<Meter>>;

    /// Sets (or, with `None`, removes) the meter's price. `None` when the scope has no such
    /// meter.
    async fn set_meter_price(
        &self,
        scope: TenantScope,
        id: MeterId,
        price: Option<&MeterPrice>,
        at: DateTime<Utc>,
    ) -> Result<Option<Meter>>;

    /// Archives the meter (archiving twice keeps the first time). `None` when the scope has no
    /// such meter.
    async fn archive_meter(
        &self,
        scope: TenantScope,
        id: MeterId,
        at: DateTime<Utc>,
    ) -> Result<Option<Meter>>;
}

/// Tenants' settlement routing policies ([`crate::routing`]).
#[async_trait]
pub trait RoutingRepository: Send + Sync {
    /// The scope's policy, `None` when it never set one (the default applies).
    async fn routing_policy(&self, scope: TenantScope) -> Result<Option<RoutingPolicy>>;

    /// Replaces the scope's policy (checked first) and answers it as stored.
    async fn set_routing_policy(
        &self,
        scope: TenantScope,
        policy: RoutingPolicy,
        at: DateTime<Utc>,
    ) -> Result<RoutingPolicy>;
}

/// Everything the platform keeps in its database.
pub trait Store:
    TenantRepository
    + ApiKeyRepository
    + SettlementRepository
    + LedgerRepository
    + RegistryRepository
    + GrantRepository
    + CreditRepository
    + MeteringRepository
    + RoutingRepository
    + crate::escrow::EscrowScheduleRepository
    + StoreHealth
{
}

impl<T> Store for T where
    T: TenantRepository
        + ApiKeyRepository
        + SettlementRepository
        + LedgerRepository
        + RegistryRepository
        + GrantRepository
        + CreditRepository
        + MeteringRepository
        + RoutingRepository
        + crate::escrow::EscrowScheduleRepository
        + StoreHealth
{
}
