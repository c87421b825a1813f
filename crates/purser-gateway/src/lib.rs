//! The gateway service: the x402 flow for resources in Purser's registry, run by Purser on a
//! merchant's behalf.
//!
//! - [`proxy`]: a reverse proxy in front of a merchant's upstream API. Routes (host and path
//!   pattern) name an upstream and a registry resource; requests and responses stream through.
//! - [`access`]: delegated checks for resource servers that keep their own HTTP stack:
//!   `POST /v1/access/check` and `POST /v1/access/settle`, and `GET /v1/access/nginx` for nginx's
//!   `auth_request`.
//! - [`grpc`]: the same checks over gRPC (`purser.access.v1.AccessService`), and Envoy's
//!   `ext_authz` (`envoy.service.auth.v3.Authorization`), from `proto/`.
//! - [`check`]: the decisions both of them make, whatever carries the question.
//! - [`entitled`]: the entitlement check (grants and prepaid credit), and [`credits`]: credit
//!   bought with x402.
//!
//! All of them run the engine of `purser-axum` (the same one merchants embed in their axum
//! apps) with the facilitator called in process and replays refused through the coordination
//! backend, so that every Purser instance sees every payment.

pub mod access;
pub mod check;
pub mod config;
pub mod credits;
pub mod entitled;
pub mod grpc;
mod inprocess;
pub mod proxy;

use std::sync::Arc;
use std::time::Duration;

use purser_axum::{Offer, Paywall};
use purser_cache::BoundedCache;
use purser_domain::auth::TenantScope;
use purser_domain::coord::{Coordination, Invalidator};
use purser_domain::entitlement::RepeatAccess;
use purser_domain::id::{ResourceId, TenantId};
use purser_domain::metering::NewUsageEvent;
use purser_domain::page::PageRequest;
use purser_domain::registry::{PriceSpec, Resource, ResourceKind, ResourceStatus, ResourceVersion};
use purser_domain::repo::{
    CreditRepository, GrantRepository, MeteringRepository, RegistryRepository, RoutingRepository,
    SettlementRepository, TenantRepository,
};
use purser_domain::routing::{OfferRouter, RoutingPolicy, Unrouted};
use purser_domain::settlement::AuthorizationKey;
use purser_domain::{Error, ErrorCode};
use purser_entitlement::{
    Admission, Entitlements, GrantCache, Proof, SESSION_HEADER, Sessions, SignIn, SignInConfig,
};
use purser_facilitator::Facilitator;
use purser_metering::Metering;
use purser_registry::challenge::{self, ChallengeRequest};
use purser_registry::validate::RouteTemplate;
use purser_x402::header::lowercase;
use purser_x402::v2::PaymentPayload;

pub use config::{GatewayConfig, GatewayRoute};
pub use inprocess::{CoordReplayGuard, InProcessFacilitator};

/// How long a resource read from the store serves requests before it is read again. A price
/// change reaches the gateway within this time; payments signed for the previous price stay
/// payable for their timeout all the same.
pub const RESOURCE_CACHE_TTL: Duration = Duration::from_secs(2);

/// The `type` of the usage event Purser records for each settled payment.
pub const PAYMENT_EVENT_TYPE: &str = "purser.payment.settled";
/// The `source` of those events.
pub const PAYMENT_EVENT_SOURCE: &str = "purser:payments";

/// A resource and its versions, as the gateway prices requests with them.
#[derive(Debug)]
pub struct Priced {
    pub resource: Resource,
    pub versions: Vec<ResourceVersion>,
    /// The tenant's routing policy, read with the resource.
    pub policy: RoutingPolicy,
    /// Orders and filters the offers of each 402 by live quotes.
    pub router: Arc<dyn OfferRouter>,
}

impl Priced {
    pub fn scope(&self) -> TenantScope {
        TenantScope::trusted(self.resource.tenant_id)
    }

    /// What a payment buys beyond its request, when the resource grants repeat access.
    pub fn repeat_access(&self) -> Option<&RepeatAccess> {
        self.resource.current.spec.repeat_access.as_ref()
    }

    /// The offer for a request at `path_and_query`, or the resource's own URL when the path
    /// does not bind its route template. `None` only when the stored resource cannot be
    /// priced at all.
    pub fn offer_at(&self, path_and_query: Option<&str>) -> Option<Offer> {
        self.offer(path_and_query).or_else(|| self.offer(None))
    }

    /// The offer for a request at `path_and_query`: the current version's challenge, and the
    /// requirements of older versions still payable. `None` when the path is not the
    /// resource's route.
    pub fn offer(&self, path_and_query: Option<&str>) -> Option<Offer> {
        let mut required = challenge::payment_required(
            &self.resource,
            &ChallengeRequest {
                path_and_query,
                error: None,
            },
        )
        .ok()?;
        challenge::route(&mut required, self.router.as_ref(), &self.policy);
        let now = purser_domain::time::now();
        let current = self.resource.current.version;
        let mut also_accepts: Vec<_> = self
            .versions
            .iter()
            .filter(|v| v.version != current && v.payable_at(now))
            .flat_map(|v| {
                challenge::version_requirements(&v.spec, now.timestamp()).unwrap_or_default()
            })
            .collect();
        also_accepts.extend(challenge::earlier_escrow_requirements(
            &self.resource.current.spec,
            now.timestamp(),
        ));
        let mut offer = Offer::new(required);
        offer.also_accepts = also_accepts;
        Some(offer)
    }
}

/// How long a payment is remembered as granted: longer than any payment stays settleable (its
/// authorization's lifetime is at most the registry's longest timeout).
const GRANTED_PAYMENT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// A payment's identity: the hash of its scheme payload (the signed authorization), the same
/// for every retry of that payment.
fn payment_fingerprint(paid: &PaymentPayload) -> String {
    use sha2::Digest as _;
    let bytes = serde_json::to_vec(&paid.payload).unwrap_or_default();
    let digest = sha2::Sha256::digest(&bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The settled authorization's key, as the facilitator stored it: the EIP-3009 payload's
/// `from` and `nonce`, lower-case.
pub(crate) fn authorization_key(payload: &PaymentPayload) -> Result<AuthorizationKey, Error> {
    let authorization = &payload.payload["authorization"];
    let field = |name: &str| {
        authorization[name]
            .as_str()
            .map(str::to_ascii_lowercase)
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::Internal,
                    "a settled top-up without its authorization",
                )
            })
    };
    Ok(AuthorizationKey {
        network: payload.accepted.network.to_string(),
        asset: payload.accepted.asset.to_ascii_lowercase(),
        payer: field("from")?,
        nonce: field("nonce")?,
    })
}

/// How long before a hold's capture deadline Purser's schedule finishes it at the latest: the
/// capture (or void) must be mined before the escrow refuses it, whatever the chain's load.
pub const ESCROW_DEADLINE_MARGIN_SECONDS: i64 = 600;

fn unix_now() -> i64 {
    purser_domain::time::now().timestamp()
}

/// How much of resources the gateway caches at most: each weighs one plus its number of
/// versions, so this bounds both the resources and the versions held.
pub const PRICED_CACHE_WEIGHT: u64 = 50_000;

/// How much of tenants' routes the gateway caches at most: each tenant weighs one plus its
/// number of routes (up to 2,000 read), so this bounds both the tenants and the routes held.
pub const ROUTE_CACHE_WEIGHT: u64 = 100_000;

/// Published resources read recently, each for [`RESOURCE_CACHE_TTL`].
type PricedCache = BoundedCache<ResourceId, Arc<Priced>>;

fn weight(items: usize) -> u32 {
    u32::try_from(items).unwrap_or(u32::MAX).saturating_add(1)
}

fn priced_cache(max: u64) -> PricedCache {
    BoundedCache::builder("gateway resources", max)
        .weighed_by(|_, priced: &Arc<Priced>| weight(priced.versions.len()))
        .time_to_live(RESOURCE_CACHE_TTL)
        .build()
}

/// A published HTTP resource's route, to find the resource a URL asks for.
#[derive(Debug, Clone)]
pub struct Route {
    pub id: ResourceId,
    /// `None`: any method.
    pub method: Option<String>,
    pub template: RouteTemplate,
}

impl Route {
    /// Whether a request of `method` (empty: any) to `origin` and `path` is this route's.
    pub fn matches(&self, method: &str, origin: &str, path: &str) -> bool {
        (method.is_empty()
            || self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method)))
            && self.template.origin.eq_ignore_ascii_case(origin)
            && self.template.bind(path).is_ok()
    }
}

/// Pages of 100 resources read, at most, for a tenant's routes. A tenant with more resources
/// than this names the one it means.
const MAX_ROUTE_PAGES: usize = 20;

/// Each tenant's routes, read recently, each for [`RESOURCE_CACHE_TTL`].
type RouteCache = BoundedCache<TenantId, Arc<[Route]>>;

fn route_cache(max: u64) -> RouteCache {
    BoundedCache::builder("gateway routes", max)
        .weighed_by(|_, routes: &Arc<[Route]>| weight(routes.len()))
        .time_to_live(RESOURCE_CACHE_TTL)
        .build()
}

/// The repositories the gateway uses, each behind its own trait: whoever builds a gateway sees
/// what it reads and writes.
#[derive(Clone)]
pub struct GatewayRepositories {
    /// Whether a tenant takes top-ups (is active).
    pub tenants: Arc<dyn TenantRepository>,
    /// Resources, their versions and payout addresses: what is priced, and where it is paid.
    pub resources: Arc<dyn RegistryRepository>,
    /// The settlement a payment made, for the grant or the credit it buys.
    pub settlements: Arc<dyn SettlementRepository>,
    /// Grants of repeat access.
    pub grants: Arc<dyn GrantRepository>,
    /// Prepaid credit: top-ups, reservations, commits and releases.
    pub credits: Arc<dyn CreditRepository>,
    /// Meters, to price resources sold by usage.
    pub meters: Arc<dyn MeteringRepository>,
    /// Tenants' routing policies, read with their resources.
    pub routing: Arc<dyn RoutingRepository>,
    /// The holds of escrowed payments the gateway leaves for Purser to finish.
    pub escrow: Arc<dyn purser_domain::escrow::EscrowScheduleRepository>,
}

/// What the gateway's parts share.
#[derive(Clone)]
pub struct Gateway {
    repositories: GatewayRepositories,
    facilitator: Arc<Facilitator>,
    guard: Arc<CoordReplayGuard>,
    cache: Arc<PricedCache>,
    routes: Arc<RouteCache>,
    entitlements: Entitlements,
    coordination: Arc<dyn Coordination>,
    metering: Arc<Metering>,
    router: Arc<dyn OfferRouter>,
}

impl Gateway {
    /// `sessions` issues the tokens signed-in wallets come back with; every instance serving
    /// the same merchants must hold the same keys. `grants` answers a wallet's grants from
    /// memory; `invalidator` announces their changes (and must hold `grants`).
    pub fn new(
        repositories: GatewayRepositories,
        coordination: Arc<dyn Coordination>,
        facilitator: Arc<Facilitator>,
        sessions: Arc<Sessions>,
        grants: Arc<GrantCache>,
        invalidator: Arc<Invalidator>,
        metering: Arc<Metering>,
    ) -> Self {
        let sign_in = SignIn::new(
            coordination.clone(),
            facilitator.shared_rails(),
            SignInConfig::default(),
        );
        Self {
            entitlements: Entitlements::new(
                repositories.grants.clone(),
                invalidator,
                sign_in,
                sessions,
                grants,
            ),
            repositories,
            facilitator,
            guard: Arc::new(CoordReplayGuard::new(coordination.clone())),
            coordination,
            cache: Arc::new(priced_cache(PRICED_CACHE_WEIGHT)),
            routes: Arc::new(route_cache(ROUTE_CACHE_WEIGHT)),
            metering,
            router: Arc::new(Unrouted),
        }
    }

    /// What orders and filters the offers of every 402.
    pub fn offer_router(&self) -> &dyn OfferRouter {
        self.router.as_ref()
    }

    /// Orders and filters the offers of every 402 with `router` (the settlement router);
    /// without, 402s list networks in the merchant's order.
    pub fn with_router(mut self, router: Arc<dyn OfferRouter>) -> Self {
        self.router = router;
        self.cache.forget_all();
        self
    }

    /// The engine, settling for `scope` (the resource's tenant).
    pub fn paywall(&self, scope: TenantScope) -> Paywall {
        Paywall::new(
            Arc::new(InProcessFacilitator::new(self.facilitator.clone(), scope)),
            self.guard.clone(),
        )
    }

    /// A published resource and its versions, from the cache when fresh. `None` when there is
    /// no such resource or it is not published; `unavailable` when the store cannot be read.
    pub async fn priced(&self, id: ResourceId) -> Result<Option<Arc<Priced>>, Error> {
        if let Some(priced) = self.cache.get(&id) {
            return Ok(Some(priced));
        }
        let read = self.cache.begin_read();
        let unavailable = |e: Error| Error::unavailable("reading a resource for the gateway", e);
        let Some(resource) = self
            .repositories
            .resources
            .get_resource(id)
            .await
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        if resource.status != ResourceStatus::Published {
            return Ok(None);
        }
        let versions = self
            .repositories
            .resources
            .resource_versions(TenantScope::trusted(resource.tenant_id), id)
            .await
            .map_err(unavailable)?;
        let policy = self
            .repositories
            .routing
            .routing_policy(TenantScope::trusted(resource.tenant_id))
            .await
            .map_err(unavailable)?
            .unwrap_or_default();
        let mut resource = resource;
        self.follow_meter_price(&mut resource).await;
        let priced = Arc::new(Priced {
            resource,
            versions,
            policy,
            router: self.router.clone(),
        });
        self.cache.insert(read, id, priced.clone());
        Ok(Some(priced))
    }

    /// The published HTTP resource of the scope that serves `method` at `origin` and `path`:
    /// from the cached routes, read afresh when they have no match (a resource published a
    /// moment ago is found at once; one unpublished stays found for [`RESOURCE_CACHE_TTL`] at
    /// most, as its price does).
    pub async fn route_for(
        &self,
        scope: TenantScope,
        method: &str,
        origin: &str,
        path: &str,
    ) -> Result<Option<ResourceId>, Error> {
        let find = |routes: &[Route]| {
            routes
                .iter()
                .find(|route| route.matches(method, origin, path))
                .map(|route| route.id)
        };
        if let Some(found) = find(&self.routes(scope, false).await?) {
            return Ok(Some(found));
        }
        Ok(find(&self.routes(scope, true).await?))
    }

    /// The routes of the scope's published HTTP resources, from the cache when fresh (as
    /// fresh as [`RESOURCE_CACHE_TTL`]) unless `reread`.
    pub async fn routes(&self, scope: TenantScope, reread: bool) -> Result<Arc<[Route]>, Error> {
        if !reread && let Some(routes) = self.routes.get(&scope.tenant_id()) {
            return Ok(routes);
        }
        let read = self.routes.begin_read();
        let mut routes = Vec::new();
        let mut page = PageRequest::first(100)?;
        for _ in 0..MAX_ROUTE_PAGES {
            let found = self
                .repositories
                .resources
                .list_resources(scope, Some(ResourceStatus::Published), page)
                .await?;
            routes.extend(
                found
                    .items
                    .iter()
                    .filter(|r| r.kind == ResourceKind::Http)
                    .filter_map(|r| {
                        Some(Route {
                            id: r.id,
                            method: r.method.clone(),
                            template: challenge::template_of(r).ok()?,
                        })
                    }),
            );
            match found.items.last() {
                Some(last) if found.has_more => page.after = Some(last.id.as_uuid()),
                _ => break,
            }
        }
        let routes: Arc<[Route]> = routes.into();
        self.routes.insert(read, scope.tenant_id(), routes.clone());
        Ok(routes)
    }

    pub fn repositories(&self) -> &GatewayRepositories {
        &self.repositories
    }

    /// Sign-in and grants of repeat access.
    pub fn entitlements(&self) -> &Entitlements {
        &self.entitlements
    }

    /// Repeat access for a request to `url` — the resource's URL as its offer names it (never
    /// one built from the request's `Host`, which the client chooses): when the resource grants it and the request signs
    /// in (`SIGN-IN-WITH-X`, or a session token from an earlier sign-in in `X-Purser-Session`)
    /// with a wallet whose grant holds, that wallet, one use counted. A sign-in or session that
    /// is refused, or finds no grant, is `None`: the client may still pay. Only failures of
    /// Purser's own dependencies are errors.
    pub async fn signed_in(
        &self,
        priced: &Priced,
        headers: &http::HeaderMap,
        url: &str,
    ) -> Result<Option<Admission>, Error> {
        let Some(policy) = priced.repeat_access() else {
            return Ok(None);
        };
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let now = purser_domain::time::now();
        let proof = if let Some(header) = header(lowercase::SIGN_IN_WITH_X) {
            Proof::SignIn { header, url }
        } else if let Some(token) = header(SESSION_HEADER) {
            Proof::Session(token)
        } else {
            return Ok(None);
        };
        let admitted = self
            .entitlements
            .admit(priced.scope(), proof, priced.resource.id, policy, now)
            .await;
        match admitted {
            Ok(admission) => Ok(admission),
            Err(e) if e.code().http_status() >= 500 => Err(e),
            Err(e) => {
                tracing::debug!(code = %e.code(), "a sign-in was refused");
                Ok(None)
            }
        }
    }

    /// Adds a sign-in challenge to `offer` when the resource grants repeat access and the
    /// request carries no payment (a paying request does not need one).
    pub async fn offer_sign_in(
        &self,
        priced: &Priced,
        offer: &mut Offer,
        headers: &http::HeaderMap,
    ) {
        if priced.repeat_access().is_none()
            || headers.contains_key(lowercase::PAYMENT_SIGNATURE)
            || headers.contains_key(lowercase::X_PAYMENT)
        {
            return;
        }
        match self
            .entitlements
            .offer(priced.scope(), &offer.required.resource.url)
            .await
        {
            Ok(sign_in) => sign_in.insert_into(offer.required.extensions.get_or_insert_default()),
            // The 402 goes out without a sign-in: paying still works.
            Err(e) => purser_http::error::log_error(&e),
        }
    }

    /// For a usage-priced resource, sets its accepted amounts from the meter's price now: a
    /// repriced meter reprices its resources within [`RESOURCE_CACHE_TTL`]. When the meter
    /// cannot price a call any more (archived, its price removed), the amounts published last
    /// stand and the problem is logged.
    async fn follow_meter_price(&self, resource: &mut Resource) {
        let PriceSpec::Meter { meter, units } = resource.current.spec.price.clone() else {
            return;
        };
        let scope = TenantScope::trusted(resource.tenant_id);
        let usd = match purser_registry::validate::meter_call_price(
            self.repositories.meters.as_ref(),
            scope,
            &meter,
            units,
        )
        .await
        {
            Ok(usd) => usd,
            Err(e) => {
                tracing::warn!(resource = %resource.id, %meter, code = %e.code(), "a usage-priced resource keeps its published amounts: its meter cannot price a call");
                return;
            }
        };
        let rails = self.facilitator.shared_rails();
        let spec = &mut resource.current.spec;
        for accept in &mut spec.accepts {
            let Some(decimals) = rails
                .get(&accept.network)
                .and_then(|rail| rail.asset(&accept.asset))
                .map(|asset| asset.decimals)
            else {
                continue;
            };
            match purser_registry::validate::atomic_price(&spec.price, decimals, Some(usd)) {
                Ok(amount) => accept.amount = amount,
                Err(e) => {
                    tracing::warn!(resource = %resource.id, %meter, code = %e.code(), "a usage-priced amount cannot be paid in this asset; the published one stands")
                }
            }
        }
    }

    /// What follows a settled payment `paid` of `payer` for a resource: its grant of repeat
    /// access ([`Self::grant_paid`]) and its usage event ([`Self::meter_paid`]).
    pub async fn paid(&self, priced: &Priced, paid: &PaymentPayload, payer: &str) {
        self.grant_paid(priced, paid, payer).await;
        self.meter_paid(priced.scope(), Some(priced), paid, payer)
            .await;
    }

    /// Records the settled payment as a usage event of the tenant, so that Purser's own paid
    /// requests are metered like any other usage: type [`PAYMENT_EVENT_TYPE`], source
    /// [`PAYMENT_EVENT_SOURCE`], the payer as subject, and the authorization (network, asset,
    /// payer, nonce) as id, so however often a settlement is answered (gateway, native layer,
    /// retries), it is one event. `data`: the resource's id and URL (when it is in the
    /// registry), network, asset, amount (atomic), payee, scheme, and `units` (a usage-priced
    /// resource's units per call, else 1). A failure is logged: the payment stands.
    pub async fn meter_paid(
        &self,
        scope: TenantScope,
        priced: Option<&Priced>,
        paid: &PaymentPayload,
        payer: &str,
    ) {
        let Ok(key) = authorization_key(paid) else {
            return;
        };
        let units = match priced.map(|p| &p.resource.current.spec.price) {
            Some(PriceSpec::Meter { units, .. }) => units.to_string(),
            _ => "1".to_owned(),
        };
        let event = NewUsageEvent {
            source: PAYMENT_EVENT_SOURCE.to_owned(),
            id: format!("{}/{}/{}/{}", key.network, key.asset, key.payer, key.nonce),
            event_type: PAYMENT_EVENT_TYPE.to_owned(),
            subject: payer.to_ascii_lowercase(),
            time: purser_domain::time::now(),
            data: serde_json::json!({
                "resourceId": priced.map(|p| p.resource.id.to_string()),
                "resource": paid.resource.as_ref().map(|r| r.url.clone()),
                "network": key.network,
                "asset": paid.accepted.asset,
                "amount": paid.accepted.amount.to_string(),
                "payTo": paid.accepted.pay_to,
                "scheme": paid.accepted.scheme,
                "units": units,
            }),
        };
        if let Err(e) = self.metering.record(scope, event).await {
            tracing::error!(code = %e.code(), %payer, "a paid request was not metered");
            purser_http::error::log_error(&e);
        }
    }

    /// Records what the settled payment `paid` of `payer` bought, when the resource grants
    /// repeat access: once per payment, however often its settlement is answered (a retry with
    /// the same payment identifier, a settle token posted twice). The payment stands whatever
    /// happens here; a grant that cannot be written is logged as an error.
    pub async fn grant_paid(&self, priced: &Priced, paid: &PaymentPayload, payer: &str) {
        let Some(policy) = priced.repeat_access() else {
            return;
        };
        // The grant names its settlement: one grant per settlement (the database makes sure),
        // and revoked with it should the payment fail after all.
        let settlement = match authorization_key(paid) {
            Ok(key) => self
                .repositories
                .settlements
                .find_settlement_by_authorization(priced.scope(), &key)
                .await
                .unwrap_or_else(|e| {
                    purser_http::error::log_error(&e);
                    None
                })
                .map(|s| s.id),
            Err(_) => None,
        };
        if let Some(settlement) = settlement {
            return self
                .record_grant(priced, policy, payer, Some(settlement))
                .await;
        }
        let once = format!("grant:paid:{}", payment_fingerprint(paid));
        match self
            .coordination
            .put_if_absent(&once, b"1", GRANTED_PAYMENT_TTL)
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            // Unsure whether it was granted: granting twice is the lesser harm to a payer.
            Err(e) => purser_http::error::log_error(&e),
        }
        self.record_grant(priced, policy, payer, None).await;
    }

    async fn record_grant(
        &self,
        priced: &Priced,
        policy: &RepeatAccess,
        payer: &str,
        settlement: Option<purser_domain::id::SettlementId>,
    ) {
        if let Err(e) = self
            .entitlements
            .grant(
                priced.scope(),
                priced.resource.id,
                payer,
                settlement,
                policy,
                purser_domain::time::now(),
            )
            .await
        {
            tracing::error!(code = %e.code(), %payer, resource = %priced.resource.id, "a paid grant was not recorded");
            purser_http::error::log_error(&e);
        }
    }
}

#[async_trait::async_trait]
impl purser_facilitator::OnSettled for Gateway {
    /// A payment a merchant's own resource server settled: when it names (by URL) one of the
    /// tenant's published resources that grants repeat access, the payer gets the grant, once
    /// per payment as through the gateway.
    async fn settled(&self, scope: TenantScope, payload: &PaymentPayload, payer: &str) {
        let Some(Ok(url)) = payload.resource.as_ref().map(|r| url::Url::parse(&r.url)) else {
            return;
        };
        let origin = url.origin().ascii_serialization();
        // The payment names a URL, not a method: the first route of that URL.
        let route = match self.route_for(scope, "", &origin, url.path()).await {
            Ok(route) => route,
            Err(e) => return purser_http::error::log_error(&e),
        };
        let priced = match route {
            Some(route) => self.priced(route).await.unwrap_or_else(|e| {
                purser_http::error::log_error(&e);
                None
            }),
            None => None,
        };
        if payload.accepted.scheme == purser_x402::auth_capture::SCHEME {
            // A hold, not yet a payment: scheduled by the resource's policy, so that it is
            // finished before its deadline whatever the resource server does.
            if let Some(priced) = priced
                && !payload.payload.contains_key("type")
            {
                self.escrow_held(&priced, payload, &payload.accepted).await;
            }
            return;
        }
        match priced {
            Some(priced) => self.paid(&priced, payload, payer).await,
            // A payment for something outside the registry is usage all the same.
            None => self.meter_paid(scope, None, payload, payer).await,
        }
    }
}

#[cfg(test)]
mod cache_tests;

impl Gateway {
    /// The escrow's key for an admitted escrowed payment, as the facilitator recorded it with
    /// the payment's authorization; `None` when that record cannot be read.
    async fn escrow_payment_of(&self, priced: &Priced, paid: &PaymentPayload) -> Option<String> {
        let key = authorization_key(paid).ok()?;
        match self
            .repositories
            .settlements
            .find_settlement_by_authorization(priced.scope(), &key)
            .await
        {
            Ok(settlement) => settlement.and_then(|s| s.escrow).map(|e| e.payment),
            Err(e) => {
                tracing::warn!(error = %e.chain(), "reading an escrowed payment's authorization");
                None
            }
        }
    }

    /// An escrowed payment's hold was authorized for `priced`: schedules what finishes it by
    /// the resource's policy, at the latest [`ESCROW_DEADLINE_MARGIN_SECONDS`] before its
    /// capture deadline, so that no hold the policy captures expires uncaptured, and none it
    /// voids waits for the payer's reclaim. A request that finishes the hold itself resolves
    /// the schedule ([`Self::escrow_finalized`], with the escrow's key for the payment this
    /// answers).
    pub async fn escrow_held(
        &self,
        priced: &Priced,
        paid: &PaymentPayload,
        requirements: &purser_x402::PaymentRequirements,
    ) -> Option<String> {
        use purser_domain::escrow::{CapturePolicy, EscrowAction, EscrowSchedule};
        let Some(payment) = self.escrow_payment_of(priced, paid).await else {
            tracing::error!("an escrowed payment held without its record; it is not scheduled");
            return None;
        };
        let extra = requirements.extra.clone().unwrap_or_default();
        let capture_deadline = extra.get("captureDeadline").and_then(|d| d.as_i64())?;
        let terms = priced.resource.current.spec.escrow.unwrap_or_default();
        let latest = capture_deadline - ESCROW_DEADLINE_MARGIN_SECONDS;
        let (action, due_at) = match terms.capture {
            CapturePolicy::Immediate => (EscrowAction::Capture, latest),
            CapturePolicy::AfterDelay => (
                EscrowAction::Capture,
                (unix_now() + i64::from(terms.capture_delay_seconds)).min(latest),
            ),
            // Until the upstream has answered, a hold is not earned.
            CapturePolicy::OnSuccess | CapturePolicy::Manual => (EscrowAction::Void, latest),
        };
        let schedule = EscrowSchedule {
            payment: payment.clone(),
            tenant_id: priced.resource.tenant_id,
            network: requirements.network.to_string(),
            action,
            due_at,
            capture_deadline,
            attempts: 0,
            last_error: None,
            resolved_at: None,
            outcome: None,
            created_at: purser_domain::time::now(),
        };
        if let Err(e) = self.repositories.escrow.schedule_escrow(schedule).await {
            tracing::error!(error = %e.chain(), "scheduling an escrowed payment failed");
        }
        Some(payment)
    }

    /// What the request did to its hold: a capture or void that went through resolves the
    /// schedule; one that did not is left to the schedule, due now, with the request's verdict
    /// (capture when the upstream served, void when it failed).
    pub async fn escrow_finalized(
        &self,
        payment: &str,
        capture: bool,
        outcome: &Result<purser_x402::SettleResponse, purser_axum::FacilitatorError>,
    ) {
        use purser_domain::escrow::EscrowAction;
        let action = if capture {
            EscrowAction::Capture
        } else {
            EscrowAction::Void
        };
        let store = &self.repositories.escrow;
        let done = match outcome {
            Ok(answer) if answer.success => {
                store
                    .resolve_escrow_schedule(payment, &format!("{action} in the request"))
                    .await
            }
            other => {
                let why = match other {
                    Ok(answer) if answer.is_pending() => "pending".to_owned(),
                    Ok(answer) => answer.error_reason.clone().unwrap_or_default(),
                    Err(e) => e.to_string(),
                };
                tracing::warn!(%payment, %action, %why, "the request did not finish its hold; the schedule will");
                store.reschedule_escrow(payment, action, unix_now()).await
            }
        };
        if let Err(e) = done {
            tracing::error!(error = %e.chain(), "recording an escrowed payment's outcome failed");
        }
    }
}
