//! HTTP plumbing every Purser service shares. Only this crate and the service crates know axum.
//!
//! - [`error`]: the JSON error envelope and the rewrite of framework errors into it;
//! - [`auth`]: API keys from `Authorization: Bearer …` to a [`purser_domain::auth::Principal`];
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`;
//! - [`layers`]: request ids, tracing, metrics, URL, header and body limits, in-flight limits,
//!   timeouts, panic containment;
//! - [`ratelimit`]: rate limits per client address, API key and tenant, shared through
//!   coordination;
//! - [`serve`]: the accept loop (connection caps, header and idle timeouts) and graceful
//!   shutdown; [`connection`]: the watched socket under each connection.

pub mod auth;
pub mod connection;
pub mod error;
pub mod layers;
pub mod metrics;
pub mod ops;
pub mod ratelimit;
pub mod serve;

pub use error::ApiError;
