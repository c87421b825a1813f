//! GCRA, the generic cell rate algorithm, as pure arithmetic on microseconds.
//!
//! A rate of `limit` per `window` admits one attempt every *emission interval*
//! `T = window / limit`, with a burst of up to `limit`. The only state is the *theoretical
//! arrival time* (TAT): when the key would be back to an empty bucket if no attempt came.
//! An attempt at `now` would move it to `new_tat = max(tat, now) + T`; it is allowed when
//! `new_tat - now <= limit * T` (the *capacity*), and then the TAT is stored until it passes
//! (after which a missing key and a stored one mean the same thing, so the key may expire).
//!
//! [`attempt`] is used by the memory backend. `redis_backend/rate_limit.lua` is the same
//! function line for line, on Redis's clock; change both together.

use std::time::Duration;

use purser_domain::Error;
use purser_domain::coord::Rate;

use crate::limits::check_rate;

/// A validated rate, in the units the algorithm works in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GcraRate {
    /// The burst, and the number of emission intervals the bucket holds.
    pub limit: u64,
    /// `window / limit`, rounded down, in microseconds; at least 1.
    pub emission_interval_us: u64,
}

impl GcraRate {
    /// Validates `rate` (see [`check_rate`]) and derives the emission interval. A rate of more
    /// than one attempt per microsecond is refused as invalid input.
    pub fn new(rate: Rate) -> Result<Self, Error> {
        check_rate(rate)?;
        // The window is at most MAX_TTL (about 3.2e13 µs): the conversion cannot fail.
        let window_us = u64::try_from(rate.window.as_micros()).unwrap_or(u64::MAX);
        let emission_interval_us = window_us / rate.limit;
        if emission_interval_us == 0 {
            return Err(Error::invalid_input(format!(
                "rate of {} per {:?} is more than one attempt per microsecond",
                rate.limit, rate.window
            )));
        }
        Ok(Self {
            limit: rate.limit,
            emission_interval_us,
        })
    }

    /// `limit * T`: at most the window, so it cannot overflow.
    fn capacity_us(self) -> u64 {
        self.limit.saturating_mul(self.emission_interval_us)
    }
}

/// What to store after an allowed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GcraStore {
    /// The new theoretical arrival time, on the caller's clock.
    pub tat_us: u64,
    /// How long to keep it: until it passes, rounded up to whole milliseconds (at least 1).
    pub ttl_ms: u64,
}

/// The outcome of one attempt, or of taking several at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GcraOutcome {
    /// How many attempts were granted: between 0 (denied) and the number wanted.
    pub granted: u64,
    /// How many more attempts would be allowed right now, after the granted ones.
    pub remaining: u64,
    /// When nothing was granted, how long until one attempt would be.
    pub retry_after: Duration,
    /// `Some` when attempts were granted and the state must be written; a denial leaves the
    /// state as it was.
    pub store: Option<GcraStore>,
}

#[cfg(test)]
impl GcraOutcome {
    pub fn decision(self) -> purser_domain::coord::RateLimitDecision {
        purser_domain::coord::RateLimitDecision {
            allowed: self.granted > 0,
            remaining: self.remaining,
            retry_after: self.retry_after,
        }
    }
}

/// Counts one attempt at `now_us` against `rate`, given the stored TAT (if any).
#[cfg(test)]
pub(crate) fn attempt(now_us: u64, stored_tat_us: Option<u64>, rate: GcraRate) -> GcraOutcome {
    take(now_us, stored_tat_us, rate, 1)
}

/// Takes as many of `wanted` attempts (at least 1) as fit at `now_us` against `rate`, given
/// the stored TAT (if any): each granted attempt moves the TAT one emission interval, so `n`
/// attempts taken at once cost exactly what `n` single attempts would.
pub(crate) fn take(
    now_us: u64,
    stored_tat_us: Option<u64>,
    rate: GcraRate,
    wanted: u64,
) -> GcraOutcome {
    let interval = rate.emission_interval_us;
    let capacity = rate.capacity_us();
    let wanted = wanted.clamp(1, rate.limit);
    let tat = stored_tat_us.map_or(now_us, |tat| tat.max(now_us));
    // What the bucket holds beyond `now`, at most the capacity (a TAT stored under a larger
    // capacity may lie further ahead).
    let ahead = tat - now_us;
    let fits = capacity.saturating_sub(ahead) / interval;
    let granted = wanted.min(fits);
    if granted == 0 {
        // One attempt fits once the TAT is back to `now + capacity - interval`.
        let used = ahead.saturating_add(interval);
        return GcraOutcome {
            granted: 0,
            remaining: 0,
            retry_after: Duration::from_micros(used - capacity),
            store: None,
        };
    }
    let new_tat = tat.saturating_add(granted * interval);
    let used = new_tat - now_us;
    GcraOutcome {
        granted,
        remaining: capacity.saturating_sub(used) / interval,
        retry_after: Duration::ZERO,
        store: Some(GcraStore {
            tat_us: new_tat,
            // `used` is at least one interval, so this is at least 1 (`max` covers a clock
            // saturated at u64::MAX, where the interval could not be added).
            ttl_ms: used.div_ceil(1000).max(1),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000_000;

    fn rate(limit: u64, window: Duration) -> GcraRate {
        match GcraRate::new(Rate { limit, window }) {
            Ok(rate) => rate,
            Err(err) => panic!("{err}"),
        }
    }

    /// Runs attempts at the given instants, threading the state through like a backend.
    fn run(rate: GcraRate, instants: &[u64]) -> Vec<purser_domain::coord::RateLimitDecision> {
        let mut tat = None;
        instants
            .iter()
            .map(|&now| {
                let outcome = attempt(now, tat, rate);
                if let Some(store) = outcome.store {
                    tat = Some(store.tat_us);
                }
                outcome.decision()
            })
            .collect()
    }

    #[test]
    fn emission_interval_is_window_over_limit() {
        let r = rate(10, Duration::from_secs(1));
        assert_eq!(r.emission_interval_us, 100_000);
        assert_eq!(r.capacity_us(), 1_000_000);
        // Rounded down: 3 per 1 µs would be 0, so that rate is refused.
        assert_eq!(rate(3, Duration::from_micros(10)).emission_interval_us, 3);
        assert!(
            GcraRate::new(Rate {
                limit: 3,
                window: Duration::from_micros(2)
            })
            .is_err()
        );
    }

    #[test]
    fn a_burst_of_limit_is_allowed_then_denied() {
        let r = rate(5, Duration::from_secs(1));
        let decisions = run(r, &[NOW; 6]);
        let allowed: Vec<bool> = decisions.iter().map(|d| d.allowed).collect();
        assert_eq!(allowed, [true, true, true, true, true, false]);
        let remaining: Vec<u64> = decisions.iter().map(|d| d.remaining).collect();
        assert_eq!(remaining, [4, 3, 2, 1, 0, 0]);
        // The bucket frees one slot per emission interval (200 ms).
        assert_eq!(decisions[5].retry_after, Duration::from_millis(200));
        assert!(decisions[..5].iter().all(|d| d.retry_after.is_zero()));
    }

    #[test]
    fn recovers_one_attempt_per_emission_interval() {
        let r = rate(5, Duration::from_secs(1));
        let interval = r.emission_interval_us;
        let mut instants = vec![NOW; 5];
        instants.push(NOW + interval - 1); // still one microsecond early
        instants.push(NOW + interval); // exactly on time
        instants.push(NOW + interval); // and not twice
        let decisions = run(r, &instants);
        assert!(!decisions[5].allowed);
        assert_eq!(decisions[5].retry_after, Duration::from_micros(1));
        assert!(decisions[6].allowed);
        assert_eq!(decisions[6].remaining, 0);
        assert!(!decisions[7].allowed);
    }

    #[test]
    fn an_idle_key_is_full_again_and_expires_when_it_passes() {
        let r = rate(3, Duration::from_millis(300));
        let first = attempt(NOW, None, r);
        let Some(store) = first.store else {
            panic!("allowed")
        };
        assert_eq!(store.tat_us, NOW + 100_000);
        assert_eq!(store.ttl_ms, 100);
        // After the TAT passed, the stored state is the same as none at all.
        let later = NOW + 10_000_000;
        assert_eq!(
            attempt(later, Some(store.tat_us), r),
            attempt(later, None, r)
        );
        assert_eq!(attempt(later, None, r).remaining, 2);
    }

    #[test]
    fn ttl_is_rounded_up_to_milliseconds() {
        let r = rate(1, Duration::from_micros(1_500));
        let outcome = attempt(NOW, None, r);
        assert_eq!(outcome.store.map(|s| s.ttl_ms), Some(2));
        let r = rate(1, Duration::from_micros(1));
        assert_eq!(attempt(NOW, None, r).store.map(|s| s.ttl_ms), Some(1));
    }

    #[test]
    fn denied_attempts_do_not_move_the_state() {
        let r = rate(1, Duration::from_secs(60));
        let first = attempt(NOW, None, r);
        let tat = first.store.map(|s| s.tat_us);
        for offset in [0, 1_000, 59_000_000] {
            let denied = attempt(NOW + offset, tat, r);
            assert!(!denied.decision().allowed);
            assert_eq!(denied.store, None);
            assert_eq!(
                denied.decision().retry_after,
                Duration::from_micros(60_000_000 - offset)
            );
        }
    }

    #[test]
    fn a_stored_tat_in_the_past_or_clock_skew_never_underflows() {
        let r = rate(2, Duration::from_secs(1));
        // A TAT far in the past (a clock that jumped forward) counts as an empty bucket.
        assert!(attempt(NOW, Some(0), r).decision().allowed);
        // A TAT far in the future (a clock that jumped back) denies until it is reached.
        let denied = attempt(NOW, Some(NOW + 10_000_000), r);
        assert!(!denied.decision().allowed);
        assert_eq!(
            denied.decision().retry_after,
            Duration::from_micros(9_500_000)
        );
        // Saturation at the top of the clock, not a panic.
        let _ = attempt(u64::MAX, Some(u64::MAX), r);
    }

    #[test]
    fn taking_several_costs_what_single_attempts_cost() {
        let r = rate(10, Duration::from_secs(1));
        let four = take(NOW, None, r, 4);
        assert_eq!((four.granted, four.remaining), (4, 6));
        let mut tat = None;
        for _ in 0..4 {
            tat = attempt(NOW, tat, r).store.map(|s| s.tat_us);
        }
        assert_eq!(four.store.map(|s| s.tat_us), tat);
        // Only what fits is granted; then nothing, with the wait for one attempt.
        let rest = take(NOW, four.store.map(|s| s.tat_us), r, 100);
        assert_eq!((rest.granted, rest.remaining), (6, 0));
        let none = take(NOW, rest.store.map(|s| s.tat_us), r, 3);
        assert_eq!(none.granted, 0);
        assert_eq!(none.store, None);
        assert_eq!(none.retry_after, Duration::from_millis(100));
        // Wanting nothing is wanting one; wanting more than the burst is wanting the burst.
        assert_eq!(take(NOW, None, r, 0).granted, 1);
        assert_eq!(take(NOW, None, r, u64::MAX).granted, 10);
    }
}
