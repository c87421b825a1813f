//! Rails configuration: the EVM chains Purser settles on, as they appear in `purser.toml`.
//!
//! ```toml
//! [[rails]]
//! network = "eip155:84532"                    # CAIP-2
//! rpc_urls = ["http://127.0.0.1:8545"]        # tried in order, with retry and fallback
//! confirmations = 1
//! receipt_timeout_seconds = 30
//! signers = [{ file = "signer-84532.key" }, { env = "PURSER_SIGNER_BASE" }]
//!
//! [[rails.assets]]
//! address = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
//! name = "USDC"                               # the token's EIP-712 domain name
//! version = "2"                               # and version
//! decimals = 6
//! symbol = "USDC"
//! ```
//!
//! Signer keys are never written in the configuration itself: each signer names an environment
//! variable or a file holding a hex private key. Keys are read when the rails are opened and
//! are never logged or shown in `Debug`.

use std::path::PathBuf;

use serde::Deserialize;

/// One EVM chain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RailConfig {
    /// The chain's CAIP-2 id, `eip155:<chain id>`.
    pub network: String,
    /// JSON-RPC endpoints, in order of preference. At least one.
    pub rpc_urls: Vec<String>,
    /// Blocks on top of the including block before a settlement counts as confirmed
    /// (1 = the including block itself).
    #[serde(default = "default_confirmations")]
    pub confirmations: u64,
    /// How long settlement waits for a receipt before answering `settlement_pending`.
    #[serde(default = "default_receipt_timeout_seconds")]
    pub receipt_timeout_seconds: u64,
    /// Keys that sign settlement transactions; load is spread across them.
    #[serde(default)]
    pub signers: Vec<SignerSource>,
    /// The tokens accepted on this chain.
    #[serde(default)]
    pub assets: Vec<AssetConfig>,
    /// ERC-6492 factories whose counterfactual wallets may be deployed while settling. Empty
    /// (the default) refuses every undeployed smart wallet.
    #[serde(default)]
    pub erc6492_factories: Vec<String>,
}

fn default_confirmations() -> u64 {
    1
}

fn default_receipt_timeout_seconds() -> u64 {
    30
}

/// An EIP-3009 token on a rail.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetConfig {
    /// The token contract's address (checksummed or lower case).
    pub address: String,
    /// The EIP-712 domain name the token signs with (`extra.name` in x402).
    pub name: String,
    /// The EIP-712 domain version (`extra.version`).
    pub version: String,
    pub decimals: u8,
    /// A display symbol such as `USDC`.
    #[serde(default)]
    pub symbol: Option<String>,
}

/// Where a signer's private key is kept.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, untagged)]
pub enum SignerSource {
    /// An environment variable holding the hex key.
    Env { env: String },
    /// A file holding the hex key (relative paths are relative to the working directory).
    File { file: PathBuf },
}

impl std::fmt::Debug for SignerSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names where the key is, never the key.
        match self {
            SignerSource::Env { env } => write!(f, "env:{env}"),
            SignerSource::File { file } => write!(f, "file:{}", file.display()),
        }
    }
}
