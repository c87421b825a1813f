//! The one clock. Timestamps are truncated to microseconds, the precision both database
//! backends keep, so a value read back equals the value written.

use chrono::{DateTime, SubsecRound, Utc};

pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}
