//! Wiring: opens storage and coordination as configured, and assembles the services' routers
//! into one application behind the shared layers.

use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use purser_admin::{AdminServices, AdminState};
use purser_chain::rails::Rails;
use purser_chain::rpc::RpcPolicy;
use purser_coord::{MemoryCoordination, RedisCoordination};
use purser_domain::auth::Authenticator;
use purser_domain::coord::{Coordination, Invalidator};
use purser_domain::repo::Store;
use purser_entitlement::GrantCache;
use purser_facilitator::{EscrowScheduler, Facilitator, FacilitatorState, Reconciler};
use purser_gateway::access::AccessState;
use purser_gateway::proxy::Proxy;
use purser_gateway::{Gateway, GatewayRepositories};
use purser_http::layers::HttpLimits;
use purser_http::ops::OpsState;
use purser_http::ratelimit::RateLimiter;
use purser_metering::Metering;
use purser_metering::http::MeteringState;
use purser_registry::discovery::DiscoveryState;
use purser_registry::{AssetCatalog, AssetInfo, Prober, Registry};
use purser_router::Router as SettlementRouter;
use purser_store_postgres::{PgStore, PgStoreOptions};
use purser_store_sqlite::{SqliteStore, SqliteStoreOptions};
use secrecy::ExposeSecret;
use tokio::net::TcpListener;

use crate::config::{Config, DatabaseLocation, StorageConfig};

/// A database, opened, before it is put behind the [`Store`] trait.
pub enum Database {
    Postgres(PgStore),
    Sqlite(SqliteStore),
}

impl Database {
    pub async fn open(storage: &StorageConfig) -> anyhow::Result<Self> {
        Ok(match storage.location() {
            DatabaseLocation::Postgres(url) => {
                let options = PgStoreOptions {
                    max_connections: storage.max_connections,
                    ..PgStoreOptions::default()
                };
                Self::Postgres(PgStore::connect(url.expose_secret(), &options).await?)
            }
            DatabaseLocation::SqliteUrl(url) => Self::Sqlite(
                SqliteStore::open_url(url.expose_secret(), &sqlite_options(storage)).await?,
            ),
            DatabaseLocation::SqliteDir(dir) => Self::Sqlite(
                SqliteStore::open_dir(&dir, &sqlite_options(storage))
                    .await
                    .with_context(|| {
                        format!("opening the embedded database in {}", dir.display())
                    })?,
            ),
        })
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self {
            Self::Postgres(store) => store.migrate().await?,
            Self::Sqlite(store) => store.migrate().await?,
        }
        Ok(())
    }

    pub fn describe(&self, storage: &StorageConfig) -> String {
        match (self, storage.location()) {
            (Self::Sqlite(_), DatabaseLocation::SqliteDir(dir)) => {
                format!("sqlite in {}", dir.display())
            }
            (Self::Sqlite(_), _) => "sqlite".to_owned(),
            (Self::Postgres(_), _) => "postgres".to_owned(),
        }
    }

    pub fn into_store(self) -> Arc<dyn Store> {
        match self {
            Self::Postgres(store) => Arc::new(store),
            Self::Sqlite(store) => Arc::new(store),
        }
    }
}

fn sqlite_options(storage: &StorageConfig) -> SqliteStoreOptions {
    SqliteStoreOptions {
        max_connections: storage.max_connections.min(16),
        ..SqliteStoreOptions::default()
    }
}

/// Everything the services share.
#[derive(Clone)]
pub struct Platform {
    pub store: Arc<dyn Store>,
    pub coordination: Arc<dyn Coordination>,
    pub authenticator: Arc<Authenticator>,
    pub facilitator: Arc<Facilitator>,
    pub registry: Arc<Registry>,
    pub gateway: Gateway,
    /// Announces cached facts that changed, and applies other instances' announcements.
    pub invalidator: Arc<Invalidator>,
    pub metering: Arc<Metering>,
    /// Rate limits on every public route, when `[rate_limits]` enables them.
    pub rate_limiter: Option<Arc<RateLimiter>>,
    /// Quotes the rails in the background and orders every 402's offers.
    pub settlement_router: SettlementRouter,
}

impl Platform {
    /// Opens storage (migrating when configured) and coordination.
    pub async fn open(config: &Config) -> anyhow::Result<Self> {
        let database = Database::open(&config.storage).await?;
        if config.storage.migrate_on_start {
            database.migrate().await?;
        }
        tracing::info!(storage = %database.describe(&config.storage), "storage ready");
        let coordination: Arc<dyn Coordination> = match &config.coordination.redis_url {
            Some(url) => Arc::new(
                RedisCoordination::connect(url.expose_secret(), &config.coordination.key_prefix)
                    .await?,
            ),
            None => Arc::new(MemoryCoordination::new()),
        };
        tracing::info!(coordination = coordination.backend(), "coordination ready");
        if config.coordination.redis_url.is_some() && config.sessions.keys.is_empty() {
            tracing::warn!(
                "no [sessions] keys are configured: this instance signs session tokens with a key of its own, which other instances sharing this Redis will refuse; configure the same keys everywhere"
            );
        }
        let rails = Rails::open(&config.rails, RpcPolicy::default()).await?;
        for rail in rails.iter() {
            tracing::info!(network = %rail.network, assets = rail.assets.len(), signers = rail.signers().len(), "rail ready");
        }
        let platform = Self::from_parts(database.into_store(), coordination, rails, config)?;
        platform.check_anonymous_tenant(config).await?;
        Ok(platform)
    }

    /// Anonymous settlements belong to `facilitator.anonymous_tenant`: it must exist, which
    /// only the database can say, so it is checked here rather than with the configuration.
    async fn check_anonymous_tenant(&self, config: &Config) -> anyhow::Result<()> {
        let Some(scope) = self.facilitator.anonymous_scope() else {
            return Ok(());
        };
        if self.store.get_tenant(scope.tenant_id()).await?.is_none() {
            anyhow::bail!(
                "invalid configuration: `facilitator.anonymous_tenant` names no tenant ({}); create it with `purser tenant create` first",
                config
                    .facilitator
                    .anonymous_tenant
                    .as_deref()
                    .unwrap_or_default()
            );
        }
        Ok(())
    }

    /// The services over opened storage, coordination and rails, as `config` sets them up.
    pub fn from_parts(
        store: Arc<dyn Store>,
        coordination: Arc<dyn Coordination>,
        rails: Rails,
        config: &Config,
    ) -> anyhow::Result<Self> {
        let authenticator = Arc::new(Authenticator::new(store.clone()));
        let grants = Arc::new(GrantCache::new(
            store.clone(),
            config.entitlements.cache_ttl(),
        ));
        let metering = Arc::new(Metering::new(store.clone(), config.metering.limits()));
        let invalidator = Arc::new(Invalidator::new(
            coordination.clone(),
            vec![authenticator.clone(), grants.clone(), metering.clone()],
        ));
        metering.announce_through(&invalidator);
        let registry = Arc::new(Registry::new(
            store.clone(),
            store.clone(),
            asset_catalog(&rails),
        ));
        let rails = Arc::new(rails);
        let settlement_router = SettlementRouter::new(rails.clone(), config.router.clone())
            .map_err(|e| anyhow::anyhow!("invalid configuration: {}", e.message()))?
            .with_policies(store.clone());
        let facilitator = Arc::new(
            Facilitator::new(store.clone(), rails, config.facilitator.clone())?
                .with_routes(Arc::new(settlement_router.clone())),
        );
        let rate_limiter = RateLimiter::new(
            &config.rate_limits,
            coordination.clone(),
            authenticator.clone(),
        )
        .map_err(|why| anyhow::anyhow!("rate_limits: {why}"))?
        .map(Arc::new);
        let gateway = Gateway::new(
            GatewayRepositories {
                tenants: store.clone(),
                resources: store.clone(),
                settlements: store.clone(),
                grants: store.clone(),
                credits: store.clone(),
                meters: store.clone(),
                routing: store.clone(),
                escrow: store.clone(),
            },
            coordination.clone(),
            facilitator.clone(),
            Arc::new(config.sessions.open()?),
            grants,
            invalidator.clone(),
            metering.clone(),
        )
        .with_router(Arc::new(settlement_router.clone()));
        Ok(Self {
            store,
            coordination,
            authenticator,
            facilitator,
            registry,
            gateway,
            invalidator,
            metering,
            rate_limiter,
            settlement_router,
        })
    }

    /// The limits every request of `config`'s listeners is held to.
    pub fn http_limits(&self, config: &Config) -> HttpLimits {
        HttpLimits {
            max_body_bytes: config.server.max_body_bytes,
            request_timeout: config.server.request_timeout(),
            max_url_bytes: config.server.max_url_bytes,
            max_header_bytes: config.server.max_header_bytes,
            max_in_flight_per_route: config.server.max_in_flight_per_route,
            rate_limiter: self.rate_limiter.clone(),
        }
    }

    /// Every service's routes behind the shared layers.
    pub fn router(&self, config: &Config) -> Router {
        let ops = purser_http::ops::router(OpsState {
            store: self.store.clone(),
            coordination: self.coordination.clone(),
            metrics: purser_http::metrics::install(),
        });
        let admin = purser_admin::router(AdminState::new(
            AdminServices {
                store: self.store.clone(),
                registry: self.registry.clone(),
                metering: self.metering.clone(),
                authenticator: self.authenticator.clone(),
                invalidator: self.invalidator.clone(),
                settlement_router: self.settlement_router.clone(),
                escrow: Some(self.facilitator.clone()),
            },
            config.graphql.limits(),
            config.graphql.graphiql,
        ));
        let limits = self.http_limits(config);
        let facilitator = purser_facilitator::router(FacilitatorState {
            facilitator: self.facilitator.clone(),
            authenticator: self.authenticator.clone(),
            registry: config
                .registry
                .learn_from_payments
                .then(|| self.registry.clone()),
            // Payments settled by merchants' own resource servers earn grants too.
            on_settled: Some(Arc::new(self.gateway.clone())),
        });
        let discovery = purser_registry::discovery::router(DiscoveryState {
            registry: self.registry.clone(),
            authenticator: self.authenticator.clone(),
        });
        let access = AccessState {
            gateway: self.gateway.clone(),
            authenticator: self.authenticator.clone(),
        };
        // gRPC (h2c) on the same listener: axum serves HTTP/1.1 and HTTP/2 on one port.
        let grpc = purser_gateway::grpc::router(access.clone());
        let credits = purser_gateway::credits::router(access.clone());
        let access = purser_gateway::access::router(access);
        let metering = MeteringState {
            metering: self.metering.clone(),
            authenticator: self.authenticator.clone(),
        };
        // `POST /v1/events` has a body limit of its own (batches outgrow most bodies): it is
        // layered on its own, and its layered route merged in. Each route keeps the layers it
        // was wrapped in; only one fallback may remain.
        let events = purser_http::layers::apply(
            purser_metering::http::ingest_router(metering.clone()),
            HttpLimits {
                max_body_bytes: config.metering.max_body_bytes,
                ..limits.clone()
            },
        )
        .reset_fallback();
        purser_http::layers::apply(
            ops.merge(admin)
                .merge(facilitator)
                .merge(discovery)
                .merge(access)
                .merge(credits)
                .merge(purser_metering::http::query_router(metering))
                .merge(grpc),
            limits,
        )
        .merge(events)
    }

    /// The gateway's proxy, when it has a listener to serve, behind the guards of every
    /// public listener (URL and header limits, rate limits, in-flight limit, request ids);
    /// bodies stream, and each route keeps its own timeout.
    pub fn proxy(&self, config: &Config) -> anyhow::Result<Option<Router>> {
        if config.gateway.listen.is_none() && config.gateway.routes.is_empty() {
            return Ok(None);
        }
        let proxy =
            Proxy::new(self.gateway.clone(), &config.gateway).map_err(anyhow::Error::msg)?;
        Ok(Some(purser_http::layers::guard(
            proxy.router(),
            &self.http_limits(config),
        )))
    }
}

/// What the rails settle, for pricing resources.
fn asset_catalog(rails: &Rails) -> AssetCatalog {
    let catalog = AssetCatalog::new(rails.iter().flat_map(|rail| {
        rail.assets.iter().map(|asset| AssetInfo {
            network: rail.network.clone(),
            address: asset.address.to_checksum(None),
            decimals: asset.decimals,
            eip712_name: asset.name.clone(),
            eip712_version: asset.version.clone(),
            symbol: asset.symbol.clone(),
        })
    }));
    rails.iter().fold(
        catalog,
        |catalog, rail| match purser_facilitator::auth_capture_terms(rail) {
            Some(terms) => catalog.with_escrow_terms(&rail.network, terms),
            None => catalog,
        },
    )
}

/// Serves every service on `listener`, and the gateway on `gateway.listen` when configured,
/// until `shutdown` resolves, then drains.
pub async fn serve(
    config: &Config,
    platform: Platform,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let gateway_listener = match &config.gateway.listen {
        Some(listen) => Some(
            TcpListener::bind(listen)
                .await
                .with_context(|| format!("binding the gateway to {listen}"))?,
        ),
        None => None,
    };
    serve_with(config, platform, listener, gateway_listener, shutdown).await
}

/// [`serve`] on listeners bound by the caller; the gateway serves on `gateway_listener` when
/// given and `[gateway]` has routes or a listener configured.
pub async fn serve_with(
    config: &Config,
    platform: Platform,
    listener: TcpListener,
    gateway_listener: Option<TcpListener>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let router = platform.router(config);
    let address = listener.local_addr()?;
    // Subscribed before serving: no announcement made while this instance serves is missed.
    let invalidations = tokio::spawn(
        platform
            .invalidator
            .listen()
            .await
            .context("subscribing to cache invalidations")?,
    );
    let (stopping, stop) = tokio::sync::watch::channel(false);
    let stop_prober = stop.clone();
    let grant_uses = tokio::spawn(flush_grant_uses(platform.gateway.clone(), stop.clone()));
    let stale_holds = tokio::spawn(release_stale_reservations(
        platform.store.clone(),
        config.entitlements.reservation_timeout(),
        stop.clone(),
    ));
    let gateway = match (platform.proxy(config)?, gateway_listener) {
        (Some(proxy), Some(gateway_listener)) => {
            tracing::info!(address = %gateway_listener.local_addr()?, routes = config.gateway.routes.len(), "the gateway is serving");
            Some(tokio::spawn(serve_gateway(
                gateway_listener,
                proxy,
                stop.clone(),
                config.server.shutdown_grace(),
                config.server.connection_limits(),
            )))
        }
        _ => None,
    };
    let quotes = {
        let mut stop = stop.clone();
        tokio::spawn(platform.settlement_router.clone().run(async move {
            let _ = stop.wait_for(|stopping| *stopping).await;
        }))
    };
    let escrow_schedule = {
        let mut stop = stop.clone();
        tokio::spawn(
            EscrowScheduler::new(platform.facilitator.clone(), platform.store.clone()).run(
                async move {
                    let _ = stop.wait_for(|stopping| *stopping).await;
                },
            ),
        )
    };
    let reconciler = tokio::spawn(
        Reconciler::new(platform.facilitator.clone()).run(async move {
            let mut stop = stop;
            let _ = stop.wait_for(|stopping| *stopping).await;
        }),
    );
    let prober = config.registry.probe.then(|| {
        let mut stop = stop_prober;
        tokio::spawn(
            Prober::new(platform.store.clone(), config.registry.probe_config()).run(async move {
                let _ = stop.wait_for(|stopping| *stopping).await;
            }),
        )
    });
    tracing::info!(%address, "purser is serving: GraphQL at http://{address}/graphql, x402 at http://{address}/facilitator");
    let drained = purser_http::serve::serve(
        listener,
        router,
        async move {
            shutdown.await;
            let _ = stopping.send(true);
        },
        config.server.shutdown_grace(),
        config.server.connection_limits(),
    )
    .await?;
    let _ = reconciler.await;
    let _ = escrow_schedule.await;
    let _ = quotes.await;
    if let Some(gateway) = gateway {
        let _ = gateway.await;
    }
    if let Some(prober) = prober {
        let _ = prober.await;
    }
    let _ = grant_uses.await;
    let _ = stale_holds.await;
    invalidations.abort();
    if drained {
        tracing::info!("stopped");
    }
    Ok(())
}

/// How often uses of unlimited grants, counted in memory, are added to the database.
const GRANT_USES_FLUSH: std::time::Duration = std::time::Duration::from_secs(1);

/// Adds uses of unlimited grants counted in memory to the database every
/// [`GRANT_USES_FLUSH`], and once more when `stop` turns true (after the last request).
async fn flush_grant_uses(gateway: Gateway, mut stop: tokio::sync::watch::Receiver<bool>) {
    let cache = gateway.entitlements().cache().clone();
    let mut every = tokio::time::interval(GRANT_USES_FLUSH);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.wait_for(|stopping| *stopping) => break,
        }
        if let Err(error) = cache.flush_uses().await {
            tracing::warn!(error = %error.chain(), "could not record grant uses; kept for the next try");
        }
    }
    if let Err(error) = cache.flush_uses().await {
        tracing::error!(error = %error.chain(), lost = cache.unflushed_uses(), "grant uses were not recorded at shutdown");
    }
}

/// Returns credit held longer than `timeout` by reservations nobody resolved, checking every
/// half timeout (at most every 30 s) until `stop` turns true.
async fn release_stale_reservations(
    store: Arc<dyn Store>,
    timeout: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let period = (timeout / 2).clamp(
        std::time::Duration::from_millis(100),
        std::time::Duration::from_secs(30),
    );
    let mut every = tokio::time::interval(period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.wait_for(|stopping| *stopping) => return,
        }
        match purser_gateway::entitled::release_stale_reservations(store.as_ref(), timeout).await {
            Ok(0) => {}
            Ok(released) => tracing::info!(
                released,
                "released credit held past the reservation timeout"
            ),
            Err(error) => {
                tracing::warn!(error = %error.chain(), "could not release stale credit reservations")
            }
        }
    }
}

/// Serves the gateway's proxy until `stop` turns true, with the connection limits of every
/// listener. Requests carry the client's address for `X-Forwarded-For`.
async fn serve_gateway(
    listener: TcpListener,
    proxy: Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
    grace: std::time::Duration,
    limits: purser_http::serve::ConnectionLimits,
) {
    let served = purser_http::serve::serve(
        listener,
        proxy,
        async move {
            let _ = stop.wait_for(|stopping| *stopping).await;
        },
        grace,
        limits,
    )
    .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "the gateway stopped");
    }
}
