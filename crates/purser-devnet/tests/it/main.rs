//! purser-devnet's integration tests, one binary with a module per area.

mod arbitrum;
mod devnet;
mod escrow;
mod fees_command;
mod fjord;
mod price_feed;
