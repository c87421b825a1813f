//! `purser demo` on the real application: how the binary opens Purser for the walkthrough in
//! `purser-demo` (the embedded defaults, settling on the demo's devnet) and serves it. The
//! walkthrough, the devnet and the agent live in those development crates, not here.

use std::path::Path;
use std::sync::Arc;

use purser_chain::rails::Rails;
use purser_coord::MemoryCoordination;
use purser_domain::repo::Store;
use purser_gateway::{GatewayConfig, GatewayRoute};
use purser_metering::Metering;
use purser_registry::Registry;
use tokio::net::TcpListener;

use crate::app::{self, Database, Platform};
use crate::config::Config;

/// Purser as `purser demo` runs it.
pub struct DemoApplication {
    config: Config,
    platform: Platform,
}

impl purser_demo::Application for DemoApplication {
    async fn open(data_dir: &Path, rails: Rails) -> anyhow::Result<Self> {
        let mut config = Config::default();
        config.storage.data_dir = data_dir.to_owned();
        // The demo's API lives on loopback; let the freshness prober look at it.
        config.registry.probe_private_addresses = true;
        // The devnet's ETH, at a fixed price, turns gas into USDC for the settlement router.
        config.router.price_feeds = vec![purser_chain::config::PriceFeedConfig {
            gas_token: "ETH".to_owned(),
            currency: "USD".to_owned(),
            network: None,
            aggregator: None,
            fixed: Some("3000".to_owned()),
            max_age_seconds: 3600,
        }];
        // Quoted often, so that the demo's fee spike shows in its 402s at once.
        config.router.quote_interval_ms = 500;
        let database = Database::open(&config.storage).await?;
        database.migrate().await?;
        let platform = Platform::from_parts(
            database.into_store(),
            Arc::new(MemoryCoordination::new()),
            rails,
            &config,
        )?;
        Ok(Self { config, platform })
    }

    fn store(&self) -> Arc<dyn Store> {
        self.platform.store.clone()
    }

    fn registry(&self) -> &Registry {
        &self.platform.registry
    }

    fn metering(&self) -> &Metering {
        &self.platform.metering
    }

    async fn serve(
        self,
        listener: TcpListener,
        gateway_listener: TcpListener,
        routes: Vec<GatewayRoute>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let mut config = self.config;
        config.gateway = GatewayConfig {
            listen: Some(gateway_listener.local_addr()?.to_string()),
            routes,
            ..GatewayConfig::default()
        };
        app::serve_with(
            &config,
            self.platform,
            listener,
            Some(gateway_listener),
            shutdown,
        )
        .await
    }
}
