//! "When" as well as "which": whether work Purser schedules itself (claiming a channel's
//! vouchers, settling refunds) is worth settling now, or should wait for more value or lower
//! fees, up to a bound.

use std::time::Duration;

/// What is waiting to be settled on one rail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiting {
    /// The value waiting, in the asset's atomic units.
    pub amount: u128,
    /// How long the oldest part of it has waited.
    pub waited: Duration,
}

/// The owner's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patience {
    /// Settle as soon as the cost is at most this share of the value, in basis points.
    pub max_fee_ratio_bps: u32,
    /// Never wait longer than this, whatever the cost.
    pub max_wait: Duration,
    /// How often to ask again while waiting.
    pub recheck: Duration,
}

/// The answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Settle now; why (`worth_it`: the cost is within the ratio; `waited_enough`: the bound is
    /// reached).
    Now(&'static str),
    /// Wait, and ask again after this long (never past the bound); why (`too_dear`, or
    /// `no_quote` when the rail has no usable quote).
    Wait {
        ask_again_in: Duration,
        reason: &'static str,
    },
}

/// Whether to settle `waiting` now at `cost` (the all-in cost of one settlement in the same
/// asset; `None` when the rail has no usable quote).
pub fn settle_now_or_wait(waiting: Waiting, cost: Option<u128>, patience: Patience) -> When {
    if waiting.amount == 0 {
        return When::Wait {
            ask_again_in: patience.recheck,
            reason: "nothing_waiting",
        };
    }
    let remaining = patience.max_wait.saturating_sub(waiting.waited);
    let Some(cost) = cost else {
        // Without a quote the cost is unknown: the bound still holds, but settling blind
        // before it would be a guess.
        if remaining.is_zero() {
            return When::Now("waited_enough");
        }
        return When::Wait {
            ask_again_in: patience.recheck.min(remaining),
            reason: "no_quote",
        };
    };
    if cost.saturating_mul(10_000)
        <= waiting
            .amount
            .saturating_mul(u128::from(patience.max_fee_ratio_bps))
    {
        return When::Now("worth_it");
    }
    if remaining.is_zero() {
        return When::Now("waited_enough");
    }
    When::Wait {
        ask_again_in: patience.recheck.min(remaining),
        reason: "too_dear",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATIENCE: Patience = Patience {
        max_fee_ratio_bps: 100, // 1%
        max_wait: Duration::from_secs(3_600),
        recheck: Duration::from_secs(60),
    };

    fn waiting(amount: u128, waited_secs: u64) -> Waiting {
        Waiting {
            amount,
            waited: Duration::from_secs(waited_secs),
        }
    }

    #[test]
    fn settles_when_the_cost_is_a_small_enough_share() {
        // 1% of 100,000 is 1,000.
        assert_eq!(
            settle_now_or_wait(waiting(100_000, 0), Some(1_000), PATIENCE),
            When::Now("worth_it")
        );
        assert_eq!(
            settle_now_or_wait(waiting(100_000, 0), Some(1_001), PATIENCE),
            When::Wait {
                ask_again_in: Duration::from_secs(60),
                reason: "too_dear"
            }
        );
    }

    #[test]
    fn never_waits_past_the_bound() {
        assert_eq!(
            settle_now_or_wait(waiting(10, 3_600), Some(1_000_000), PATIENCE),
            When::Now("waited_enough")
        );
        // The next question comes no later than the bound.
        assert_eq!(
            settle_now_or_wait(waiting(10, 3_590), Some(1_000_000), PATIENCE),
            When::Wait {
                ask_again_in: Duration::from_secs(10),
                reason: "too_dear"
            }
        );
    }

    #[test]
    fn without_a_quote_it_waits_until_the_bound() {
        assert_eq!(
            settle_now_or_wait(waiting(100_000, 0), None, PATIENCE),
            When::Wait {
                ask_again_in: Duration::from_secs(60),
                reason: "no_quote"
            }
        );
        assert_eq!(
            settle_now_or_wait(waiting(100_000, 7_200), None, PATIENCE),
            When::Now("waited_enough")
        );
        assert!(matches!(
            settle_now_or_wait(waiting(0, 7_200), Some(1), PATIENCE),
            When::Wait {
                reason: "nothing_waiting",
                ..
            }
        ));
    }
}
