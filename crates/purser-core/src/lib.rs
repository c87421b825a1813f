//! What every Purser crate speaks: the closed table of error codes and the error type
//! ([`error`]), money as integer atomic units ([`money`]) and typed ids ([`id`]).
//!
//! This is all the wire types (`purser-x402`) and the merchant's tower layer (`purser-axum`)
//! need, so a merchant who adds the layer compiles this crate and not Purser's domain
//! (repositories, metering, credits, time zones, decimals). It depends on serde and uuid only.
//! `purser-domain` re-exports it, so inside Purser both paths name the same types.

pub mod error;
pub mod id;
pub mod money;

pub use error::{Error, ErrorCode, Result};
