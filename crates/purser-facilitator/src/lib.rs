//! The x402 facilitator service: `POST /verify`, `POST /settle` and `GET /supported` under
//! `/facilitator`, answering as the x402 specification and the reference SDK do, and settling
//! each payment authorization exactly once over the settlement record's state machine.

pub mod config;
mod escrow;
mod reconcile;
mod replay;
mod routes;
mod schedule;
mod service;
mod work;

pub use config::FacilitatorConfig;
pub use escrow::auth_capture_terms;
pub use reconcile::{ReconcileReport, Reconciler};
pub use routes::{FacilitatorState, OnSettled, router};
pub use schedule::{EscrowScheduler, ScheduleReport};
pub use service::Facilitator;
