//! The facilitator's settings (`[facilitator]` in `purser.toml`).

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FacilitatorConfig {
    /// Serve `/verify` and `/settle` to callers without an API key, on behalf of
    /// `anonymous_tenant`. Off by default: callers present a `resource_server` key.
    pub allow_anonymous: bool,
    /// The tenant anonymous settlements belong to (its ledger receives them). Required when
    /// `allow_anonymous` is on.
    pub anonymous_tenant: Option<String>,
    /// How often the reconciler looks at unfinished settlements and signer nonces.
    pub reconcile_interval_ms: u64,
    /// The reconciler leaves settlements changed more recently than this to the requests
    /// driving them.
    pub reconcile_min_age_ms: u64,
    /// A settlement claimed but not broadcast for this long was abandoned (its request died):
    /// nothing was sent, so it is rejected and may be presented again.
    pub abandon_after_seconds: u64,
    /// A transaction with no receipt is sent again (verbatim) after this long.
    pub rebroadcast_after_seconds: u64,
    /// A transaction with no receipt whose fee is below the current base fee is replaced with
    /// a higher fee after this long.
    pub replace_after_seconds: u64,
    /// How often the escrow schedule finishes the holds that came due.
    pub escrow_schedule_interval_ms: u64,
}

impl Default for FacilitatorConfig {
    fn default() -> Self {
        Self {
            allow_anonymous: false,
            anonymous_tenant: None,
            reconcile_interval_ms: 2_000,
            reconcile_min_age_ms: 3_000,
            abandon_after_seconds: 120,
            rebroadcast_after_seconds: 15,
            replace_after_seconds: 30,
            escrow_schedule_interval_ms: 5_000,
        }
    }
}

impl FacilitatorConfig {
    pub fn reconcile_interval(&self) -> Duration {
        Duration::from_millis(self.reconcile_interval_ms.max(50))
    }

    pub fn escrow_schedule_interval(&self) -> Duration {
        Duration::from_millis(self.escrow_schedule_interval_ms.max(50))
    }

    pub fn reconcile_min_age(&self) -> Duration {
        Duration::from_millis(self.reconcile_min_age_ms)
    }

    pub fn abandon_after(&self) -> Duration {
        Duration::from_secs(self.abandon_after_seconds)
    }

    pub fn rebroadcast_after(&self) -> Duration {
        Duration::from_secs(self.rebroadcast_after_seconds)
    }

    pub fn replace_after(&self) -> Duration {
        Duration::from_secs(self.replace_after_seconds)
    }
}
