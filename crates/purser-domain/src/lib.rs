//! Purser's domain: the types and rules every service shares, and the traits storage and
//! coordination implement. This crate knows no SQL, HTTP, GraphQL or chain.

pub mod auth;
pub mod coord;
pub mod credits;
pub mod entitlement;
pub mod error;
pub mod id;
pub mod ledger;
mod macros;
pub mod metering;
pub mod money;
pub mod page;
pub mod registry;
pub mod repo;
pub mod settlement;
pub mod tenant;
pub mod text;
pub mod time;

pub use error::{Error, ErrorCode, Result};
