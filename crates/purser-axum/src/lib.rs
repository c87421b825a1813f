//! Put a price on routes of an axum app with x402, verified and settled by Purser.
//!
//! - [`engine`]: the resource server's half of the protocol, free of any framework: the 402,
//!   reading and verifying a payment, refusing replays, settling after (or before) the request.
//!   Purser's gateway runs the same engine.
//! - [`layer`]: the tower layer for axum apps, with per-route prices from the app's own
//!   configuration ([`ExactPrice`]) or from Purser's registry ([`layer::RegistryOffer`]).
//! - [`facilitator`]: who verifies and settles: Purser over HTTP, or in process.
//! - [`entitlement`]: repeat access: signed-in wallets with a grant pass without paying, as
//!   Purser's entitlement check decides.
//!
//! This crate knows the x402 wire types and HTTP; it never knows Purser's storage.

pub mod engine;
pub mod entitlement;
pub mod facilitator;
pub mod layer;

pub use engine::{
    Admitted, MemoryReplayGuard, Offer, PAYER_HEADER, Paywall, ReplayGuard, Reply, SettleTiming,
    Settled, payer_name,
};
pub use entitlement::EntitlementCheck;
pub use facilitator::{Facilitator, FacilitatorError, HttpFacilitator};
pub use layer::{OfferSource, PathPattern, Payer, PaywallLayer, RegistryOffer};

use purser_core::money::Amount;
use purser_x402::Network;
use purser_x402::v2::{JsonObject, PaymentRequired, PaymentRequirements, ResourceInfo};
use serde::Deserialize;
use serde_json::Value;

/// An HTTP client for calls to Purser. reqwest's TLS needs a rustls crypto provider; ring is
/// installed when the app has not installed one of its own.
pub(crate) fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// A price in an app's own configuration: the `exact` scheme, one network and asset.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExactPrice {
    /// CAIP-2, such as `eip155:84532`.
    pub network: String,
    /// The token contract.
    pub asset: String,
    /// Atomic units of the asset (`10000` is one cent of a 6-decimal USDC).
    pub amount: Amount,
    /// Where the money goes.
    pub pay_to: String,
    /// The token's EIP-712 domain name and version (`"USD Coin"`, `"2"` for USDC).
    pub eip712_name: String,
    pub eip712_version: String,
    #[serde(default = "default_timeout")]
    pub max_timeout_seconds: u64,
}

fn default_timeout() -> u64 {
    60
}

impl ExactPrice {
    /// The requirements a client pays against.
    pub fn requirements(&self) -> Result<PaymentRequirements, purser_core::Error> {
        let mut extra = JsonObject::new();
        extra.insert("name".into(), Value::String(self.eip712_name.clone()));
        extra.insert("version".into(), Value::String(self.eip712_version.clone()));
        Ok(PaymentRequirements {
            scheme: "exact".into(),
            network: Network::parse(&self.network)?,
            amount: self.amount,
            asset: self.asset.clone(),
            pay_to: self.pay_to.clone(),
            max_timeout_seconds: self.max_timeout_seconds,
            extra: Some(extra),
            other: JsonObject::new(),
        })
    }

    /// An offer of this price for a resource described by `description`. Its URL is the
    /// request's, unless set on the returned offer.
    pub fn offer(&self, description: &str) -> Result<Offer, purser_core::Error> {
        let mut resource = ResourceInfo::new(String::new());
        resource.description = Some(description.to_owned());
        Ok(Offer::new(PaymentRequired {
            x402_version: purser_x402::V2,
            error: None,
            resource,
            accepts: vec![self.requirements()?],
            extensions: None,
            other: JsonObject::new(),
        }))
    }
}
