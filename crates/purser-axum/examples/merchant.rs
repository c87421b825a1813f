//! A merchant's own axum service with paid routes, verified and settled by Purser.
//!
//! - `GET /` is free.
//! - `GET /reports/{name}` costs a fixed price set here, settled after the handler succeeded.
//! - `GET /exports/{name}` costs a fixed price too, but settles *before* the handler runs: for
//!   answers that cannot be taken back once sent (a download, a side effect), at the cost of
//!   charging even if the handler then fails.
//! - `GET /forecast/{city}`, when `PURSER_RESOURCE` names a resource in Purser's registry, costs
//!   whatever the registry says; the merchant changes the price there, not here.
//!
//! Handlers read the verified payer from `Extension<Payer>`.
//!
//! Run it against `purser demo`, which prints a merchant key and settles on a local chain:
//!
//! ```sh
//! PURSER_API_KEY=<the demo's merchant key> PAY_TO=<the demo's payout address> \
//! ASSET=<the demo's token> cargo run -p purser-axum --example merchant
//! ```
//!
//! Environment: `PURSER_URL` (default `http://127.0.0.1:8402`), `PURSER_API_KEY` (required),
//! `PAY_TO` and `ASSET` (required), `NETWORK` (default `eip155:84532`), `AMOUNT` (atomic units,
//! default `10000`), `TOKEN_NAME`/`TOKEN_VERSION` (the token's EIP-712 domain, default `USD Coin`
//! and `2`), `PURSER_RESOURCE` (optional), `LISTEN` (default `127.0.0.1:3000`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Path;
use axum::routing::get;
use axum::{Extension, Json, Router};
use purser_axum::{
    EntitlementCheck, ExactPrice, HttpFacilitator, MemoryReplayGuard, Payer, Paywall, PaywallLayer,
    RegistryOffer, SettleTiming,
};
use purser_core::money::Amount;
use serde_json::{Value, json};

/// What the app needs to know about Purser and its prices.
pub struct MerchantConfig {
    /// Purser's base URL.
    pub purser_url: String,
    /// A key of the merchant's tenant, for `/facilitator/verify` and `/settle`.
    pub api_key: String,
    /// The price of a report and of an export.
    pub price: ExactPrice,
    /// A registry resource pricing `/forecast/{city}`.
    pub registry_resource: Option<String>,
}

/// The merchant's app with its paywall.
pub fn app(config: &MerchantConfig) -> Result<Router, purser_core::Error> {
    let facilitator = HttpFacilitator::new(format!(
        "{}/facilitator",
        config.purser_url.trim_end_matches('/')
    ))
    .with_api_key(config.api_key.clone());
    // One process: replays are caught in memory. Several replicas would share a guard.
    let paywall = Paywall::new(
        Arc::new(facilitator),
        Arc::new(MemoryReplayGuard::default()),
    );
    let mut layer = PaywallLayer::new(paywall)
        .route(
            "GET",
            "/reports/{name}",
            config.price.offer("A report, rendered on request")?,
        )
        .route_with(
            "GET",
            "/exports/{name}",
            config.price.offer("A data export")?,
            SettleTiming::Before,
        );
    let mut router = Router::new()
        .route(
            "/",
            get(|| async { "Acme Reports: /reports/{name} is paid" }),
        )
        .route("/reports/{name}", get(report))
        .route("/exports/{name}", get(export));
    if let Some(resource) = &config.registry_resource {
        // Signed-in wallets whose grant holds (when the resource grants repeat access) come
        // back without paying.
        layer = layer
            .route(
                "GET",
                "/forecast/{city}",
                RegistryOffer::new(&config.purser_url, resource, Duration::from_secs(30)),
            )
            .with_entitlements(EntitlementCheck::new(&config.purser_url, &config.api_key));
        router = router.route("/forecast/{city}", get(forecast));
    }
    Ok(router.layer(layer))
}

async fn report(Path(name): Path<String>, Extension(payer): Extension<Payer>) -> Json<Value> {
    Json(json!({ "report": name, "pages": 12, "paid_by": payer.0 }))
}

async fn export(Path(name): Path<String>, Extension(payer): Extension<Payer>) -> Json<Value> {
    Json(json!({ "export": name, "rows": 1000, "paid_by": payer.0 }))
}

async fn forecast(Path(city): Path<String>, Extension(payer): Extension<Payer>) -> Json<Value> {
    Json(json!({ "city": city, "forecast": "sunny", "paid_by": payer.0 }))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn required(name: &str) -> Result<String, String> {
    env(name).ok_or_else(|| format!("set {name} (see the top of examples/merchant.rs)"))
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let amount = env("AMOUNT").unwrap_or_else(|| "10000".into());
    let config = MerchantConfig {
        purser_url: env("PURSER_URL").unwrap_or_else(|| "http://127.0.0.1:8402".into()),
        api_key: required("PURSER_API_KEY")?,
        price: ExactPrice {
            network: env("NETWORK").unwrap_or_else(|| "eip155:84532".into()),
            asset: required("ASSET")?,
            amount: Amount::parse_atomic(&amount).map_err(|e| format!("AMOUNT: {e}"))?,
            pay_to: required("PAY_TO")?,
            eip712_name: env("TOKEN_NAME").unwrap_or_else(|| "USD Coin".into()),
            eip712_version: env("TOKEN_VERSION").unwrap_or_else(|| "2".into()),
            max_timeout_seconds: 60,
        },
        registry_resource: env("PURSER_RESOURCE"),
    };
    let app = app(&config).map_err(|e| e.to_string())?;
    let listen = env("LISTEN").unwrap_or_else(|| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    println!("Acme Reports on http://{listen}; paid: /reports/{{name}}, /exports/{{name}}");
    axum::serve(listener, app).await.map_err(|e| e.to_string())
}
