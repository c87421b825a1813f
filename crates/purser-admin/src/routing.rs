//! Settlement routing over GraphQL: a tenant's policy, and the router's live view of every rail
//! (each quote's parts, health and why not) and price feed.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use purser_domain::auth::Access;
use purser_domain::money::{Amount, Money};
use purser_domain::routing::{RoutingPolicy, Strategy};
use purser_router::Router;

use crate::context::{principal, scope, store};
use crate::error::GqlResult;

pub fn router<'a>(ctx: &Context<'a>) -> &'a Router {
    ctx.data_unchecked::<Router>()
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "RoutingStrategy", remote = "purser_domain::routing::Strategy")]
pub enum StrategyGql {
    /// The lowest all-in settlement cost first (the default).
    Cheapest,
    /// The shortest expected time to the rail's confirmations first.
    Fastest,
    /// The merchant's own order.
    Pinned,
    /// Cost and time mixed by `costWeightPercent`.
    Weighted,
}

/// How a tenant's 402s order and filter their ways to pay.
#[derive(SimpleObject)]
#[graphql(name = "RoutingPolicy")]
pub struct RoutingPolicyGql {
    pub strategy: StrategyGql,
    /// For `WEIGHTED`: the share of the score that is cost (0 to 100), the rest being time.
    pub cost_weight_percent: i32,
    /// A rail whose settlement would cost more than this share of the price, in basis points,
    /// is not offered; null: no guard.
    pub max_fee_ratio_bps: Option<i32>,
}

impl From<RoutingPolicy> for RoutingPolicyGql {
    fn from(policy: RoutingPolicy) -> Self {
        Self {
            strategy: policy.strategy.into(),
            cost_weight_percent: i32::from(policy.cost_weight_percent),
            max_fee_ratio_bps: policy
                .max_fee_ratio_bps
                .map(|bps| i32::try_from(bps).unwrap_or(i32::MAX)),
        }
    }
}

#[derive(InputObject)]
pub struct SetRoutingPolicyInput {
    /// Operators name the tenant; tenant keys may omit it.
    pub tenant_id: Option<ID>,
    pub strategy: StrategyGql,
    #[graphql(default = 50)]
    pub cost_weight_percent: i32,
    pub max_fee_ratio_bps: Option<i32>,
}

/// One part of a quote or figure too large for `Int`: a decimal string of wei.
type Wei = String;

/// What settling one payment on a rail costs now, by the rail's fee model, in wei of its gas
/// token.
#[derive(SimpleObject)]
pub struct RailCost {
    pub quoted_at: DateTime<Utc>,
    pub block_number: String,
    pub execution_gas: String,
    pub base_fee_per_gas: Wei,
    pub priority_fee_per_gas: Wei,
    /// Execution gas × (base fee + tip).
    pub execution_fee: Wei,
    /// Arbitrum: the L1 component in L2 gas, padded.
    pub l1_gas: String,
    /// The L1 data fee (OP Stack: the GasPriceOracle's; Arbitrum: L1 gas × base fee).
    pub l1_fee: Wei,
    pub operator_fee: Wei,
    pub total: Wei,
}

/// A rail as the settlement router sees it.
#[derive(SimpleObject)]
pub struct RailQuote {
    pub network: String,
    /// `ethereum`, `op-stack` or `arbitrum`.
    pub kind: String,
    pub gas_token: String,
    /// Offered in 402s.
    pub healthy: bool,
    /// Why not: `rpc_unreachable`, `rpc_refused`, `oracle_failed`, `quote_stale`,
    /// `head_stalled`, `signer_low_balance`, `no_signer`, `starting`...
    pub unhealthy_reason: Option<String>,
    pub unhealthy_detail: Option<String>,
    pub confirmations: i32,
    /// The mean time between blocks seen.
    pub block_time_ms: String,
    /// The expected time from broadcast to the configured confirmations.
    pub expected_time_ms: String,
    /// The poorest settlement signer's balance of the gas token, in wei.
    pub signer_balance: Option<Wei>,
    /// The last good quote.
    pub cost: Option<RailCost>,
}

/// A price of a gas token.
#[derive(SimpleObject)]
pub struct PriceFeed {
    pub gas_token: String,
    pub currency: String,
    /// `fixed`, or the aggregator's `network/address`.
    pub source: String,
    /// The price, a decimal number of `currency` per whole gas token.
    pub price: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
    pub healthy: bool,
    pub unhealthy_reason: Option<String>,
    pub unhealthy_detail: Option<String>,
}

/// A feed's answer in whole units of its currency (`"3000.25"`), exactly.
fn price(answer: u128, decimals: u8) -> String {
    Money::new(Amount::from_atomic(answer), decimals)
        .map(|m| m.to_units_string())
        .unwrap_or_else(|_| format!("{answer}e-{decimals}"))
}

fn time_of_ms(ms: u64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(i64::MAX)).unwrap_or_default()
}

#[derive(Default)]
pub struct RoutingQuery;

#[Object]
impl RoutingQuery {
    /// The tenant's routing policy (the default when it never set one).
    async fn routing_policy(
        &self,
        ctx: &Context<'_>,
        tenant_id: Option<ID>,
    ) -> GqlResult<RoutingPolicyGql> {
        let scope = scope(ctx, tenant_id.as_ref(), Access::Read).await?;
        let policy = store(ctx).routing_policy(scope).await?.unwrap_or_default();
        Ok(policy.into())
    }

    /// Every rail's live quote and health, as 402s are ordered by now.
    async fn rail_quotes(&self, ctx: &Context<'_>) -> GqlResult<Vec<RailQuote>> {
        principal(ctx)?;
        let snapshot = router(ctx).snapshot();
        Ok(snapshot
            .rails
            .values()
            .map(|view| RailQuote {
                network: view.network.clone(),
                kind: view.kind.to_owned(),
                gas_token: view.gas_token.clone(),
                healthy: view.health.is_healthy(),
                unhealthy_reason: view.health.reason().map(str::to_owned),
                unhealthy_detail: match &view.health {
                    purser_router::Health::Healthy => None,
                    purser_router::Health::Unhealthy { detail, .. } => Some(detail.clone()),
                },
                confirmations: i32::try_from(view.confirmations).unwrap_or(i32::MAX),
                block_time_ms: view.block_time_ms.to_string(),
                expected_time_ms: view.expected_time_ms().to_string(),
                signer_balance: view.signer_balance_wei.map(|b| b.to_string()),
                cost: view.quote.as_ref().map(|q| RailCost {
                    quoted_at: time_of_ms(q.quoted_at_ms),
                    block_number: q.cost.block_number.to_string(),
                    execution_gas: q.cost.execution_gas.to_string(),
                    base_fee_per_gas: q.cost.base_fee_per_gas.to_string(),
                    priority_fee_per_gas: q.cost.priority_fee_per_gas.to_string(),
                    execution_fee: q.cost.execution_fee.to_string(),
                    l1_gas: q.cost.l1_gas.to_string(),
                    l1_fee: q.cost.l1_fee.to_string(),
                    operator_fee: q.cost.operator_fee.to_string(),
                    total: q.cost.total.to_string(),
                }),
            })
            .collect())
    }

    /// The price feeds that turn gas into the payments' assets.
    async fn price_feeds(&self, ctx: &Context<'_>) -> GqlResult<Vec<PriceFeed>> {
        principal(ctx)?;
        let snapshot = router(ctx).snapshot();
        Ok(snapshot
            .feeds
            .iter()
            .map(|feed| PriceFeed {
                gas_token: feed.gas_token.clone(),
                currency: feed.currency.clone(),
                source: feed.source.clone(),
                price: feed.answer.map(|a| price(a.answer, a.decimals)),
                updated_at: feed
                    .answer
                    .filter(|a| a.updated_at != u64::MAX)
                    .and_then(|a| i64::try_from(a.updated_at).ok())
                    .and_then(|s| DateTime::from_timestamp(s, 0)),
                healthy: feed.health.is_healthy(),
                unhealthy_reason: feed.health.reason().map(str::to_owned),
                unhealthy_detail: match &feed.health {
                    purser_router::Health::Healthy => None,
                    purser_router::Health::Unhealthy { detail, .. } => Some(detail.clone()),
                },
            })
            .collect())
    }
}

#[derive(Default)]
pub struct RoutingMutation;

#[Object]
impl RoutingMutation {
    /// Sets how the tenant's 402s order and filter their ways to pay. Takes effect on every
    /// instance within the gateway's resource cache time (2 s).
    async fn set_routing_policy(
        &self,
        ctx: &Context<'_>,
        input: SetRoutingPolicyInput,
    ) -> GqlResult<RoutingPolicyGql> {
        let scope = scope(ctx, input.tenant_id.as_ref(), Access::Write).await?;
        let out_of_range =
            |what: &str| purser_domain::Error::invalid_input(format!("{what} is out of range"));
        let policy = RoutingPolicy {
            strategy: Strategy::from(input.strategy),
            cost_weight_percent: u8::try_from(input.cost_weight_percent)
                .map_err(|_| out_of_range("costWeightPercent"))?,
            max_fee_ratio_bps: input
                .max_fee_ratio_bps
                .map(|bps| u32::try_from(bps).map_err(|_| out_of_range("maxFeeRatioBps")))
                .transpose()?,
        };
        policy.check()?;
        let stored = store(ctx)
            .set_routing_policy(scope, policy, purser_domain::time::now())
            .await?;
        Ok(stored.into())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn prices_print_in_whole_units() {
        assert_eq!(super::price(300_000_000_000, 8), "3000");
        assert_eq!(super::price(300_025_000_000, 8), "3000.25");
        assert_eq!(super::price(5, 3), "0.005");
        assert_eq!(super::price(42, 0), "42");
    }
}
