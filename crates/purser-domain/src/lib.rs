//! Purser's domain: the types and rules every service shares, and the traits storage and
//! coordination implement. This crate knows no SQL, HTTP, GraphQL or chain.

pub mod auth;
pub mod coord;
pub mod credits;
pub mod entitlement;
pub mod escrow;
pub mod ledger;
mod macros;
pub mod metering;
pub mod page;
pub mod registry;
pub mod repo;
pub mod routing;
pub mod settlement;
pub mod tenant;
pub mod text;
pub mod time;

// The error table, money and ids live in `purser-core`, which the wire types and the
// merchant's tower layer use without the rest of the domain; here they keep their paths.
pub use purser_core::{Error, ErrorCode, Result};
pub use purser_core::{error, id, money};
