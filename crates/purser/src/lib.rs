//! The `purser` binary's library half: configuration, telemetry and wiring, so integration
//! tests can run the real application in-process.

pub mod app;
pub mod cli;
pub mod config;
pub mod demo_application;
pub mod telemetry;
