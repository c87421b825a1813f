//! The HTTP servers of the resource-server suite that are not Purser: the merchant's upstream
//! (an API unaware of payments) and the native layer (an axum app with `purser-axum`'s
//! paywall), each run as a child process of the harness (`purser-bench serve-upstream`,
//! `purser-bench serve-native`) so that neither shares the load generator's runtime; and the
//! handle the harness keeps on every child server, the @x402/express one included.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use clap::Args;
use purser_axum::{ExactPrice, HttpFacilitator, MemoryReplayGuard, Paywall, PaywallLayer};
use purser_domain::money::Amount;
use tokio::process::{Child, Command};

use crate::targets::wait_healthy;

/// What every server answers for the bench's route, paid or not: the upstream for any path,
/// the native layer and the express app from their own handlers.
pub const BODY: &str = r#"{"item":"purser-bench","unit":"request","values":[1,2,3,4,5,6,7,8],"note":"the same answer from every server"}"#;

/// The priced route, on every server.
pub const PAID_PATH: &str = "/data";
/// A route without a price, on the native layer's and the express app's servers.
pub const FREE_PATH: &str = "/free";

/// `purser-bench serve-native`: the native layer's app, pricing `GET /data` with an
/// [`ExactPrice`] and settling through Purser's facilitator with the `resource_server` key in
/// `PURSER_API_KEY` (in the environment, not on the command line).
#[derive(Debug, Args)]
pub struct NativeArgs {
    #[arg(long)]
    pub listen: String,
    /// Purser's facilitator base URL (`…/facilitator`).
    #[arg(long)]
    pub facilitator: String,
    #[arg(long)]
    pub network: String,
    #[arg(long)]
    pub asset: String,
    #[arg(long)]
    pub amount: u128,
    #[arg(long)]
    pub pay_to: String,
    #[arg(long)]
    pub token_name: String,
    #[arg(long)]
    pub token_version: String,
}

fn answer() -> ([(axum::http::HeaderName, &'static str); 1], &'static str) {
    ([(CONTENT_TYPE, "application/json")], BODY)
}

async fn serve(listen: &str, app: Router) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    axum::serve(listener, app).await?;
    Ok(())
}

/// The upstream: [`BODY`] for every method and path.
pub async fn serve_upstream(listen: &str) -> anyhow::Result<()> {
    serve(listen, Router::new().fallback(|| async { answer() })).await
}

/// The native layer: `GET /data` priced with the paywall (settled after the handler, the
/// default), `GET /free` not priced, both answering [`BODY`].
pub async fn serve_native(args: &NativeArgs) -> anyhow::Result<()> {
    let price = ExactPrice {
        network: args.network.clone(),
        asset: args.asset.clone(),
        amount: Amount::from_atomic(args.amount),
        pay_to: args.pay_to.clone(),
        eip712_name: args.token_name.clone(),
        eip712_version: args.token_version.clone(),
        max_timeout_seconds: 60,
    };
    let api_key = std::env::var("PURSER_API_KEY").context("PURSER_API_KEY is not set")?;
    let facilitator = HttpFacilitator::new(&args.facilitator).with_api_key(api_key);
    let paywall = Paywall::new(
        Arc::new(facilitator),
        Arc::new(MemoryReplayGuard::default()),
    );
    let layer = PaywallLayer::new(paywall).route(
        "GET",
        PAID_PATH,
        price
            .offer("purser-bench data")
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    let app = Router::new()
        .route(PAID_PATH, get(|| async { answer() }))
        .route(FREE_PATH, get(|| async { answer() }))
        .layer(layer);
    serve(&args.listen, app).await
}

/// A server of the suite running as a child process, logging to a file of the run's folder.
pub struct ChildServer {
    pub url: String,
    pub log: PathBuf,
    child: Child,
}

impl ChildServer {
    /// Starts `command` (its output going to `log`) and waits until `url{health_path}` answers
    /// 200.
    pub async fn start(
        mut command: Command,
        url: String,
        health_path: &str,
        log: &Path,
        client: &reqwest::Client,
    ) -> anyhow::Result<Self> {
        let log_file = std::fs::File::create(log)?;
        let mut child = command
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {command:?}"))?;
        wait_healthy(client, &format!("{url}{health_path}"), &mut child, log).await?;
        Ok(Self {
            url,
            log: log.to_owned(),
            child,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stops the process (SIGKILL: it holds nothing worth keeping).
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}
