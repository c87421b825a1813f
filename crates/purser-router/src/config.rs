//! `[router]` in `purser.toml`.
//!
//! ```toml
//! [router]
//! quote_interval_ms = 2000        # how often each rail is quoted, in the background
//! max_quote_age_ms = 30000        # an older quote makes its rail unhealthy
//! stall_after_seconds = 120       # a head whose block is older makes its rail unhealthy (0: off)
//! failures_to_open = 2            # consecutive failed quotes before a rail is taken out
//! open_for_ms = 5000              # how long before the first half-open probe (doubles, to 60 s)
//! min_signer_settlements = 20     # a signer must afford this many settlements at the quote
//!
//! [[router.price_feeds]]          # see purser_chain::config::PriceFeedConfig
//! gas_token = "ETH"
//! currency = "USD"
//! fixed = "3000"
//! ```

use std::time::Duration;

use purser_chain::config::PriceFeedConfig;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouterConfig {
    /// Whether 402s are ordered and filtered at all. Off: every 402 lists its networks in the
    /// merchant's order, and no price feed is needed.
    pub enabled: bool,
    pub quote_interval_ms: u64,
    pub max_quote_age_ms: u64,
    pub stall_after_seconds: u64,
    pub failures_to_open: u32,
    pub open_for_ms: u64,
    pub min_signer_settlements: u64,
    pub price_feeds: Vec<PriceFeedConfig>,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            quote_interval_ms: 2_000,
            max_quote_age_ms: 30_000,
            stall_after_seconds: 120,
            failures_to_open: 2,
            open_for_ms: 5_000,
            min_signer_settlements: 20,
            price_feeds: Vec::new(),
        }
    }
}

/// The longest a broken rail waits between half-open probes.
pub const MAX_OPEN_FOR: Duration = Duration::from_secs(60);

impl RouterConfig {
    pub fn quote_interval(&self) -> Duration {
        Duration::from_millis(self.quote_interval_ms.max(100))
    }

    pub fn max_quote_age(&self) -> Duration {
        Duration::from_millis(self.max_quote_age_ms.max(self.quote_interval_ms))
    }

    pub fn open_for(&self) -> Duration {
        Duration::from_millis(self.open_for_ms.max(100)).min(MAX_OPEN_FOR)
    }
}
