//! Rails configuration: the EVM chains Purser settles on, as they appear in `purser.toml`.
//!
//! ```toml
//! [[rails]]
//! network = "eip155:84532"                    # CAIP-2
//! kind = "op-stack"                           # op-stack | arbitrum | ethereum: the fee model
//! gas_token = "ETH"                           # what gas is paid in (a price feed's `gas_token`)
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
    /// How the chain charges for a transaction, which decides how a settlement's cost is
    /// estimated. `ethereum` (execution gas alone) when absent.
    #[serde(default)]
    pub kind: RailKind,
    /// The token gas is paid in, as price feeds name it.
    #[serde(default = "default_gas_token")]
    pub gas_token: String,
    /// The fee oracle to ask instead of the kind's predeploy (the OP Stack's GasPriceOracle,
    /// Arbitrum's NodeInterface); `0x` address. Ignored for `ethereum`.
    #[serde(default)]
    pub fee_oracle: Option<String>,
    /// Execution gas of one settlement until receipts of this rail's own settlements have
    /// been seen (then the median of the last sixteen is used).
    #[serde(default = "default_settlement_gas")]
    pub settlement_gas: u64,
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
    /// Escrowed payments (x402 `auth-capture`) on this chain; absent, the scheme is not
    /// offered here.
    #[serde(default)]
    pub auth_capture: Option<AuthCaptureConfig>,
}

/// `[rails.auth_capture]`: which Commerce Payments escrow payments are collected into, and the
/// facilitator's fee terms, advertised in `/supported` for servers to copy.
///
/// ```toml
/// [rails.auth_capture]
/// escrow = "0xf968e2A5d5D4aA4D2bF1d2c7F8dAa3c9c4DE36C3"   # a canonical v1.1 escrow (the default)
/// fee_recipient = "0x…"                                  # absent: no fee is claimed
/// min_fee_bps = 100
/// max_fee_bps = 100
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthCaptureConfig {
    /// The escrow: one of the canonical v1.1 deployments (`purser_chain::auth_capture`);
    /// absent, the one the official client defaults to.
    #[serde(default)]
    pub escrow: Option<String>,
    #[serde(default)]
    pub fee_recipient: Option<String>,
    #[serde(default)]
    pub min_fee_bps: u16,
    #[serde(default)]
    pub max_fee_bps: u16,
}

impl Default for RailConfig {
    /// No network and no endpoint (both must be set), everything else as when absent from
    /// `purser.toml`: for building a configuration in code with `..Default::default()`.
    fn default() -> Self {
        Self {
            network: String::new(),
            kind: RailKind::default(),
            gas_token: default_gas_token(),
            fee_oracle: None,
            settlement_gas: default_settlement_gas(),
            rpc_urls: Vec::new(),
            confirmations: default_confirmations(),
            receipt_timeout_seconds: default_receipt_timeout_seconds(),
            signers: Vec::new(),
            assets: Vec::new(),
            erc6492_factories: Vec::new(),
            auth_capture: None,
        }
    }
}

fn default_gas_token() -> String {
    "ETH".to_owned()
}

/// Between the 61,000 and 90,000 gas an EIP-3009 settlement takes on Base, at the high end, so
/// a rail is never chosen for an estimate too low before its first receipt.
fn default_settlement_gas() -> u64 {
    90_000
}

/// How a chain charges for a transaction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RailKind {
    /// Ethereum itself, or any chain that charges execution gas alone: gas × (base fee + tip).
    #[default]
    Ethereum,
    /// An OP Stack rollup (Base, Optimism): execution gas, the L1 data fee of its
    /// GasPriceOracle, and the operator fee where the chain has one.
    OpStack,
    /// Arbitrum Nitro: NodeInterface's gas estimate, whose L1 component is in gas, × the base
    /// fee.
    Arbitrum,
}

impl RailKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RailKind::Ethereum => "ethereum",
            RailKind::OpStack => "op-stack",
            RailKind::Arbitrum => "arbitrum",
        }
    }
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
    /// The currency one whole token is worth one of, as price feeds name it (`USD` for
    /// USDC): how gas costs are converted into this asset.
    #[serde(default = "default_currency")]
    pub currency: String,
}

fn default_currency() -> String {
    "USD".to_owned()
}

/// A price of a gas token in a currency: a Chainlink-style aggregator on a configured rail,
/// or a fixed figure.
///
/// ```toml
/// [[router.price_feeds]]
/// gas_token = "ETH"
/// currency = "USD"
/// network = "eip155:1"                           # a configured rail
/// aggregator = "0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419"
/// max_age_seconds = 3600                         # older answers make the rails unhealthy
///
/// [[router.price_feeds]]
/// gas_token = "ETH"
/// currency = "USD"
/// fixed = "3000.00"                              # or a fixed price
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceFeedConfig {
    pub gas_token: String,
    #[serde(default = "default_currency")]
    pub currency: String,
    /// The rail whose chain holds `aggregator`.
    #[serde(default)]
    pub network: Option<String>,
    /// An `AggregatorV3Interface` (`latestRoundData`, `decimals`).
    #[serde(default)]
    pub aggregator: Option<String>,
    /// A fixed price, a decimal number of `currency` per whole gas token.
    #[serde(default)]
    pub fixed: Option<String>,
    /// The oldest answer (`updatedAt`) the feed may give.
    #[serde(default = "default_feed_max_age_seconds")]
    pub max_age_seconds: u64,
}

fn default_feed_max_age_seconds() -> u64 {
    3600
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
