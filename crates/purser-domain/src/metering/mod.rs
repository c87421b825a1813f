//! Metering: usage events in (CloudEvents), meters that aggregate them, usage out, prices.
//!
//! - [`event`]: reading CloudEvents, time bounds, stored entries and corrections (an event is
//!   never changed: a correction is an entry of its own that supersedes the current one).
//! - [`path`]: the singular JSONPaths meters read values and dimensions with.
//! - [`meter`]: meter definitions and the check an event of a meter's type must pass.
//! - [`query`]: usage queries, planned into a store scan and merged into windows.
//! - [`price`]: price models and rating.

pub mod event;
pub mod meter;
pub mod path;
pub mod price;
pub mod query;

pub use event::{
    CorrectionChange, EntryKind, NewCorrection, NewUsageEvent, TimeBounds, UsageEntry,
    check_correction,
};
pub use meter::{Aggregation, Meter, NewMeter};
pub use path::ValuePath;
pub use price::{MeterPrice, PriceModel, Rated, Tier};
pub use query::{UsageCell, UsageDay, UsagePlan, UsageQuery, UsageRow, UsageScan, WindowSize};
