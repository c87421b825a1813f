//! Settlement routing: how a tenant wants the ways to pay of its 402s ordered and filtered, and
//! the trait through which whatever writes a 402 asks for that order.
//!
//! The client still picks any offer it can pay; the official SDKs pick the first, so the order
//! is the choice for most payers. A router orders a 402's candidates by the tenant's
//! [`Strategy`], leaves out rails that are unhealthy and, under a [`RoutingPolicy::max_fee_ratio_bps`],
//! rails whose settlement would cost more than that share of the price.

use crate::auth::TenantScope;
use crate::macros::string_enum;
use crate::money::Amount;
use crate::{Error, Result};

string_enum!(
    /// What a tenant's offers are ordered by.
    Strategy, "routing strategy" {
        /// The lowest all-in settlement cost first (the default).
        Cheapest = "cheapest",
        /// The shortest expected time to the rail's configured confirmations first.
        Fastest = "fastest",
        /// The merchant's own order, as the resource lists its networks.
        Pinned = "pinned",
        /// A mix of cost and time by [`RoutingPolicy::cost_weight_percent`].
        Weighted = "weighted",
    }
);

/// The most a fee guard may allow: the whole price.
pub const MAX_FEE_RATIO_BPS: u32 = 10_000;

/// A tenant's routing policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutingPolicy {
    pub strategy: Strategy,
    /// For [`Strategy::Weighted`]: how much of the score is cost (the rest is time), 0 to 100.
    pub cost_weight_percent: u8,
    /// A rail whose settlement would cost more than this share of the price, in basis points
    /// (1 to 10,000), is not offered. `None`: no guard.
    pub max_fee_ratio_bps: Option<u32>,
}

impl Default for RoutingPolicy {
    fn default() -> Self {
        Self {
            strategy: Strategy::Cheapest,
            cost_weight_percent: 50,
            max_fee_ratio_bps: None,
        }
    }
}

impl RoutingPolicy {
    /// Checks the ranges a stored policy must be in.
    pub fn check(&self) -> Result<()> {
        if self.cost_weight_percent > 100 {
            return Err(Error::invalid_input(
                "costWeightPercent must be between 0 and 100",
            ));
        }
        if let Some(bps) = self.max_fee_ratio_bps
            && !(1..=MAX_FEE_RATIO_BPS).contains(&bps)
        {
            return Err(Error::invalid_input(
                "maxFeeRatioBps must be between 1 and 10000 (basis points of the price)",
            ));
        }
        Ok(())
    }
}

/// One way to pay a 402 offers, as the router sees it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// CAIP-2.
    pub network: &'a str,
    /// The asset's `0x` address.
    pub asset: &'a str,
    /// The price, in the asset's atomic units.
    pub amount: Amount,
}

/// What a router answered for one 402.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Routed {
    /// Indexes into the candidates, in the order to offer them; the left-out ones are absent.
    pub order: Vec<usize>,
    /// Why each left-out candidate was left out (index, a stable reason: `unhealthy`,
    /// `fee_ratio`).
    pub left_out: Vec<(usize, &'static str)>,
}

/// Orders and filters the offers of a tenant's 402s. Implemented by the settlement router;
/// whatever writes a 402 (the gateway, the delegated checks, the registry's `paymentRequired`)
/// asks it. It answers from memory: quotes are refreshed in the background, never on the
/// request path.
pub trait OfferRouter: Send + Sync {
    /// The order to offer `candidates` in under `policy` (the tenant's, read with whatever
    /// else the caller read of the tenant, such as the resource being priced).
    fn route(&self, policy: &RoutingPolicy, candidates: &[Candidate<'_>]) -> Routed;
}

impl std::fmt::Debug for dyn OfferRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OfferRouter")
    }
}

/// What the settlement router knew when a settlement's transaction was signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteDecision {
    /// The router's estimate of the settlement's cost on its rail, in wei of the gas token;
    /// `None` when the rail had no usable quote.
    pub estimated_cost_wei: Option<Amount>,
    /// Every rail's quote and health at that moment and the rail chosen, as JSON.
    pub json: String,
}

/// The facilitator's view of the settlement router: the decision behind a settlement, and how
/// far its estimate was from what the receipt said.
#[async_trait::async_trait]
pub trait RouteRecorder: Send + Sync {
    /// The decision to keep with a settlement of `scope`'s on `network`: every rail's quote
    /// and health, the tenant's policy, the rail chosen.
    async fn decision(&self, scope: TenantScope, network: &str) -> RouteDecision;

    /// Records a settlement's estimated and actual cost, in wei, for the estimation-error
    /// metric.
    fn observed(&self, network: &str, estimated_wei: u128, actual_wei: u128);
}

/// The merchant's order, unfiltered: what a 402 is without a router.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unrouted;

impl OfferRouter for Unrouted {
    fn route(&self, _policy: &RoutingPolicy, candidates: &[Candidate<'_>]) -> Routed {
        Routed {
            order: (0..candidates.len()).collect(),
            left_out: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_out_of_range_are_refused() {
        assert!(RoutingPolicy::default().check().is_ok());
        let heavy = RoutingPolicy {
            cost_weight_percent: 101,
            ..RoutingPolicy::default()
        };
        assert!(heavy.check().is_err());
        for bad in [0, 10_001] {
            let guard = RoutingPolicy {
                max_fee_ratio_bps: Some(bad),
                ..RoutingPolicy::default()
            };
            assert!(guard.check().is_err(), "{bad}");
        }
        assert_eq!("weighted".parse::<Strategy>().unwrap(), Strategy::Weighted);
        assert!("random".parse::<Strategy>().is_err());
    }
}
