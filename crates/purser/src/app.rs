//! Wiring: opens storage and coordination as configured, and assembles the services' routers
//! into one application behind the shared layers.

use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use purser_admin::{AdminState, GraphqlLimits};
use purser_chain::rails::Rails;
use purser_chain::rpc::RpcPolicy;
use purser_coord::{MemoryCoordination, RedisCoordination};
use purser_domain::auth::Authenticator;
use purser_domain::coord::Coordination;
use purser_domain::repo::Store;
use purser_facilitator::{Facilitator, FacilitatorConfig, FacilitatorState, Reconciler};
use purser_http::layers::HttpLimits;
use purser_http::ops::OpsState;
use purser_registry::discovery::DiscoveryState;
use purser_registry::{AssetCatalog, AssetInfo, Prober, Registry};
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
        let rails = Rails::open(&config.rails, RpcPolicy::default()).await?;
        for rail in rails.iter() {
            tracing::info!(network = %rail.network, assets = rail.assets.len(), signers = rail.signers().len(), "rail ready");
        }
        Self::from_parts(
            database.into_store(),
            coordination,
            rails,
            config.facilitator.clone(),
        )
    }

    pub fn from_parts(
        store: Arc<dyn Store>,
        coordination: Arc<dyn Coordination>,
        rails: Rails,
        facilitator: FacilitatorConfig,
    ) -> anyhow::Result<Self> {
        let authenticator = Arc::new(Authenticator::new(store.clone()));
        let registry = Arc::new(Registry::new(store.clone(), asset_catalog(&rails)));
        let facilitator = Arc::new(Facilitator::new(
            store.clone(),
            Arc::new(rails),
            facilitator,
        )?);
        Ok(Self {
            store,
            coordination,
            authenticator,
            facilitator,
            registry,
        })
    }

    /// Every service's routes behind the shared layers.
    pub fn router(&self, config: &Config) -> Router {
        let ops = purser_http::ops::router(OpsState {
            store: self.store.clone(),
            coordination: self.coordination.clone(),
            metrics: purser_http::metrics::install(),
        });
        let admin = purser_admin::router(AdminState::new(
            self.store.clone(),
            self.registry.clone(),
            self.authenticator.clone(),
            GraphqlLimits {
                max_depth: config.graphql.max_depth,
                max_complexity: config.graphql.max_complexity,
            },
            config.graphql.graphiql,
        ));
        let limits = HttpLimits {
            max_body_bytes: config.server.max_body_bytes,
            request_timeout: config.server.request_timeout(),
        };
        let facilitator = purser_facilitator::router(FacilitatorState {
            facilitator: self.facilitator.clone(),
            authenticator: self.authenticator.clone(),
            registry: config
                .registry
                .learn_from_payments
                .then(|| self.registry.clone()),
        });
        let discovery = purser_registry::discovery::router(DiscoveryState {
            registry: self.registry.clone(),
            authenticator: self.authenticator.clone(),
        });
        purser_http::layers::apply(ops.merge(admin).merge(facilitator).merge(discovery), limits)
    }
}

/// What the rails settle, for pricing resources.
fn asset_catalog(rails: &Rails) -> AssetCatalog {
    AssetCatalog::new(rails.iter().flat_map(|rail| {
        rail.assets.iter().map(|asset| AssetInfo {
            network: rail.network.clone(),
            address: asset.address.to_checksum(None),
            decimals: asset.decimals,
            eip712_name: asset.name.clone(),
            eip712_version: asset.version.clone(),
            symbol: asset.symbol.clone(),
        })
    }))
}

/// Serves every service on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    config: &Config,
    platform: Platform,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let router = platform.router(config);
    let address = listener.local_addr()?;
    let (stopping, stop) = tokio::sync::watch::channel(false);
    let stop_prober = stop.clone();
    let reconciler = tokio::spawn(
        Reconciler::new(platform.facilitator.clone()).run(async move {
            let mut stop = stop;
            let _ = stop.wait_for(|stopping| *stopping).await;
        }),
    );
    tracing::info!(%address, "purser is serving: GraphQL at http://{address}/graphql, x402 at http://{address}/facilitator");
    let drained = purser_http::serve::serve(
        listener,
        router,
        async move {
            shutdown.await;
            let _ = stopping.send(true);
        },
        config.server.shutdown_grace(),
    )
    .await?;
    let prober = config.registry.probe.then(|| {
        let mut stop = stop_prober;
        tokio::spawn(
            Prober::new(platform.store.clone(), config.registry.probe_config()).run(async move {
                let _ = stop.wait_for(|stopping| *stopping).await;
            }),
        )
    });
    let _ = reconciler.await;
    if let Some(prober) = prober {
        let _ = prober.await;
    }
    if drained {
        tracing::info!("stopped");
    }
    Ok(())
}
