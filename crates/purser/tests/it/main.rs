//! The whole application: in-process over real TCP on both backend pairs, and the `purser`
//! binary as a process.

mod auth_capture;
mod cli;
mod crash;
mod demo;
mod deploy;
mod entitlement;
mod escrow;
mod graphql;
mod grpc;
mod harness;
mod instances;
mod interop;
mod limits;
mod metering;
mod metering_graphql;
mod nginx;
mod ops;
mod routing;
mod usage_priced;
