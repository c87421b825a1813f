//! purser-x402's integration tests: golden files from the TypeScript SDK 2.27, malformed input
//! and its error codes, and property tests.

mod bad_input;
mod golden;
mod props;

use std::path::PathBuf;

use serde_json::Value;

/// A fixture file's text (`tests/it/fixtures/<name>`), trimmed.
pub fn fixture(name: &str) -> String {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "it", "fixtures", name]
        .iter()
        .collect();
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .trim()
        .to_owned()
}

/// A JSON fixture as a value.
pub fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The payer every fixture pays from (anvil's account #1).
pub const PAYER: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
/// The facilitator signer in the fixtures (anvil's account #0).
pub const FACILITATOR_SIGNER: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
