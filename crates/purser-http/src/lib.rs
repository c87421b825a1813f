//! HTTP plumbing every Purser service shares. Only this crate and the service crates know axum.
//!
//! - [`error`]: the JSON error envelope and the rewrite of framework errors into it;
//! - [`auth`]: API keys from `Authorization: Bearer …` to a [`purser_domain::auth::Principal`];
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`;
//! - [`layers`]: request ids, tracing, metrics, body limits, timeouts, panic containment;
//! - [`serve`]: serving with graceful shutdown.

pub mod auth;
pub mod error;
pub mod layers;
pub mod metrics;
pub mod ops;
pub mod serve;

pub use error::ApiError;
