//! Ordering and filtering one 402's offers by a tenant's policy: pure, on what the router knows
//! of each offer's rail at that moment.

use purser_domain::money::Amount;
use purser_domain::routing::{Routed, RoutingPolicy, Strategy};

/// What the router knows of one offer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Standing {
    /// A fresh quote: the all-in cost of settling it, in the offer's asset (atomic units), and
    /// the expected time to the rail's confirmations.
    Quoted { cost: u128, time_ms: u64 },
    /// The rail is out of offers (a stable reason).
    Unhealthy(&'static str),
    /// Nothing is known (no such rail here, or no quote yet): kept, after the quoted offers, in
    /// the merchant's order.
    Unknown,
}

/// The offers to make, in order, for offers priced `amounts` with `standings`.
pub fn order(policy: &RoutingPolicy, amounts: &[Amount], standings: &[Standing]) -> Routed {
    debug_assert_eq!(amounts.len(), standings.len());
    let mut left_out = Vec::new();
    let mut quoted: Vec<(usize, u128, u64)> = Vec::new();
    let mut unknown = Vec::new();
    for (index, standing) in standings.iter().enumerate() {
        match *standing {
            Standing::Unhealthy(reason) => left_out.push((index, reason)),
            Standing::Quoted { cost, time_ms } => {
                if let Some(bps) = policy.max_fee_ratio_bps
                    && exceeds(cost, amounts[index], bps)
                {
                    left_out.push((index, "fee_ratio"));
                } else {
                    quoted.push((index, cost, time_ms));
                }
            }
            Standing::Unknown => unknown.push(index),
        }
    }
    match policy.strategy {
        // Stable sorts: equal keys keep the merchant's order.
        Strategy::Cheapest => quoted.sort_by_key(|&(_, cost, time)| (cost, time)),
        Strategy::Fastest => quoted.sort_by_key(|&(_, cost, time)| (time, cost)),
        Strategy::Pinned => {}
        Strategy::Weighted => {
            let best_cost = quoted.iter().map(|q| q.1).min().unwrap_or(0).max(1);
            let best_time = quoted.iter().map(|q| q.2).min().unwrap_or(0).max(1);
            let weight = u128::from(policy.cost_weight_percent.min(100));
            // Each offer's cost and time relative to the best, in millionths, mixed by weight:
            // integer arithmetic, so the order never depends on float rounding.
            let score = |cost: u128, time: u64| {
                let cost_part = cost.saturating_mul(1_000_000) / best_cost;
                let time_part = u128::from(time).saturating_mul(1_000_000) / u128::from(best_time);
                weight
                    .saturating_mul(cost_part)
                    .saturating_add((100 - weight).saturating_mul(time_part))
            };
            quoted.sort_by_key(|&(_, cost, time)| score(cost, time));
        }
    }
    let order = if policy.strategy == Strategy::Pinned {
        // The merchant's order across quoted and unknown offers alike.
        let mut all: Vec<usize> = quoted.iter().map(|q| q.0).chain(unknown).collect();
        all.sort_unstable();
        all
    } else {
        quoted.iter().map(|q| q.0).chain(unknown).collect()
    };
    Routed { order, left_out }
}

/// Whether settling at `cost` takes more than `bps` basis points of `amount`.
fn exceeds(cost: u128, amount: Amount, bps: u32) -> bool {
    cost.saturating_mul(10_000) > amount.atomic().saturating_mul(u128::from(bps))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted(cost: u128, time_ms: u64) -> Standing {
        Standing::Quoted { cost, time_ms }
    }

    fn policy(strategy: Strategy) -> RoutingPolicy {
        RoutingPolicy {
            strategy,
            ..RoutingPolicy::default()
        }
    }

    const PRICE: Amount = Amount::from_atomic(10_000);

    #[test]
    fn cheapest_orders_by_cost_and_keeps_unknowns_last() {
        let standings = [
            quoted(300, 2_000),
            Standing::Unknown,
            quoted(100, 12_000),
            quoted(200, 250),
        ];
        let routed = order(&policy(Strategy::Cheapest), &[PRICE; 4], &standings);
        assert_eq!(routed.order, [2, 3, 0, 1]);
        assert!(routed.left_out.is_empty());
    }

    #[test]
    fn fastest_orders_by_time() {
        let standings = [quoted(300, 2_000), quoted(100, 12_000), quoted(200, 250)];
        let routed = order(&policy(Strategy::Fastest), &[PRICE; 3], &standings);
        assert_eq!(routed.order, [2, 0, 1]);
    }

    #[test]
    fn pinned_keeps_the_merchants_order_but_still_filters() {
        let standings = [
            quoted(300, 2_000),
            Standing::Unhealthy("rpc_unreachable"),
            Standing::Unknown,
            quoted(100, 12_000),
        ];
        let routed = order(&policy(Strategy::Pinned), &[PRICE; 4], &standings);
        assert_eq!(routed.order, [0, 2, 3]);
        assert_eq!(routed.left_out, [(1, "rpc_unreachable")]);
    }

    #[test]
    fn weighted_mixes_cost_and_time() {
        // A: cheap and slow; B: twice the cost, a twelfth of the time.
        let standings = [quoted(100, 12_000), quoted(200, 1_000)];
        let by_cost = RoutingPolicy {
            strategy: Strategy::Weighted,
            cost_weight_percent: 100,
            max_fee_ratio_bps: None,
        };
        assert_eq!(order(&by_cost, &[PRICE; 2], &standings).order, [0, 1]);
        let by_time = RoutingPolicy {
            cost_weight_percent: 0,
            ..by_cost
        };
        assert_eq!(order(&by_time, &[PRICE; 2], &standings).order, [1, 0]);
        // Half and half: A scores 50×1 + 50×12 = 650, B 50×2 + 50×1 = 150.
        let even = RoutingPolicy {
            cost_weight_percent: 50,
            ..by_cost
        };
        assert_eq!(order(&even, &[PRICE; 2], &standings).order, [1, 0]);
        // Mostly cost: A 90×1 + 10×12 = 210, B 90×2 + 10×1 = 190: still B, narrowly.
        let mostly_cost = RoutingPolicy {
            cost_weight_percent: 90,
            ..by_cost
        };
        assert_eq!(order(&mostly_cost, &[PRICE; 2], &standings).order, [1, 0]);
    }

    #[test]
    fn the_fee_guard_leaves_out_dear_rails() {
        // 2.5% of 10,000 is 250: 250 passes, 251 does not.
        let guarded = RoutingPolicy {
            max_fee_ratio_bps: Some(250),
            ..RoutingPolicy::default()
        };
        let standings = [quoted(251, 1), quoted(250, 1)];
        let routed = order(&guarded, &[PRICE; 2], &standings);
        assert_eq!(routed.order, [1]);
        assert_eq!(routed.left_out, [(0, "fee_ratio")]);
        // Unknown costs are not guarded: nothing says they are dear.
        let routed = order(&guarded, &[PRICE], &[Standing::Unknown]);
        assert_eq!(routed.order, [0]);
    }
}
