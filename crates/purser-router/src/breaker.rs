//! A rail's circuit breaker: closed while quotes succeed; open (the rail left out of offers, no
//! quote attempted) after enough consecutive failures; half-open once the open period ends, when
//! one probe decides: success closes it, failure opens it again for twice as long (to a bound).

use std::time::{Duration, Instant};

use crate::config::MAX_OPEN_FOR;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open { until: Instant },
    HalfOpen,
}

#[derive(Debug, Clone)]
pub struct Breaker {
    state: BreakerState,
    failures: u32,
    failures_to_open: u32,
    first_open_for: Duration,
    open_for: Duration,
}

impl Breaker {
    pub fn new(failures_to_open: u32, open_for: Duration) -> Self {
        Self {
            state: BreakerState::Closed,
            failures: 0,
            failures_to_open: failures_to_open.max(1),
            first_open_for: open_for,
            open_for,
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Whether a quote may be attempted at `now` (an open breaker whose time is up becomes
    /// half-open: this attempt is its probe).
    pub fn may_attempt(&mut self, now: Instant) -> bool {
        match self.state {
            BreakerState::Closed | BreakerState::HalfOpen => true,
            BreakerState::Open { until } if now >= until => {
                self.state = BreakerState::HalfOpen;
                true
            }
            BreakerState::Open { .. } => false,
        }
    }

    pub fn succeeded(&mut self) {
        self.state = BreakerState::Closed;
        self.failures = 0;
        self.open_for = self.first_open_for;
    }

    pub fn failed(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        match self.state {
            BreakerState::HalfOpen => {
                self.open_for = self.open_for.saturating_mul(2).min(MAX_OPEN_FOR);
                self.state = BreakerState::Open {
                    until: now + self.open_for,
                };
            }
            BreakerState::Closed if self.failures >= self.failures_to_open => {
                self.state = BreakerState::Open {
                    until: now + self.open_for,
                };
            }
            _ => {}
        }
    }

    /// Whether the rail is out of offers because of failures.
    pub fn is_tripped(&self) -> bool {
        !matches!(self.state, BreakerState::Closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_probes_with_backoff() {
        let start = Instant::now();
        let mut breaker = Breaker::new(2, Duration::from_secs(5));
        breaker.failed(start);
        assert!(!breaker.is_tripped(), "one failure is not enough");
        breaker.failed(start);
        assert!(breaker.is_tripped());
        assert!(!breaker.may_attempt(start + Duration::from_secs(4)));
        // Half-open after the open period: one probe, which fails and doubles the wait.
        assert!(breaker.may_attempt(start + Duration::from_secs(5)));
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        let probe_at = start + Duration::from_secs(5);
        breaker.failed(probe_at);
        assert_eq!(
            breaker.state(),
            BreakerState::Open {
                until: probe_at + Duration::from_secs(10)
            }
        );
        assert!(breaker.may_attempt(probe_at + Duration::from_secs(10)));
        breaker.succeeded();
        assert!(!breaker.is_tripped());
        // A success resets the backoff and the count.
        breaker.failed(probe_at);
        assert!(!breaker.is_tripped());
    }

    #[test]
    fn the_backoff_is_bounded() {
        let now = Instant::now();
        let mut breaker = Breaker::new(1, Duration::from_secs(40));
        breaker.failed(now);
        for _ in 0..5 {
            assert!(breaker.may_attempt(now + Duration::from_secs(3600)));
            breaker.failed(now);
        }
        assert_eq!(
            breaker.state(),
            BreakerState::Open {
                until: now + MAX_OPEN_FOR
            }
        );
    }
}
