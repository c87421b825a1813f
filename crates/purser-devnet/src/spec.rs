//! What a devnet chain is: its id, name, fee kind and levels, the token, an optional price feed,
//! and the mining mode.

use alloy::primitives::{Address, address};

use crate::fees::{ArbitrumFees, ChainFees, OpStackFees, PriceFeedSpec};

/// One anvil chain of a devnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevnetChainSpec {
    pub chain_id: u64,
    /// A short name such as `base-sepolia`.
    pub name: String,
    /// The base fee of the genesis block (anvil `--base-fee`) and of the last block of set-up.
    /// It moves as on any EIP-1559 chain: each block that uses less than half the gas limit
    /// lowers the next block's by up to 12.5%, so the levels of the default chains are a factor
    /// of ten apart to stay ordered.
    pub base_fee_wei: u128,
    /// The chain's real testnet USDC, placed when [`crate::DevnetOptions::canonical_usdc`] is on.
    pub canonical_usdc: Option<CanonicalUsdc>,
    /// How the chain charges for a transaction beyond the base fee, with the initial levels:
    /// which fee contracts are placed and what they start with ([`crate::fees`]).
    pub fees: ChainFees,
    /// A Chainlink-style price feed to deploy on the chain (the deployer owns it).
    pub price_feed: Option<PriceFeedSpec>,
}

/// Where a chain's real USDC lives and the EIP-712 domain it signs with (as the x402 SDK's
/// default assets name it, so the SDK's defaults work against the devnet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalUsdc {
    pub address: Address,
    pub name: String,
    pub version: String,
}

/// Base Sepolia's USDC. Its EIP-712 name is `USDC` (not `USD Coin`), as in the x402 SDK's
/// default assets.
pub const BASE_SEPOLIA_USDC: Address = address!("0x036CbD53842c5426634e7929541eC2318f3dCF7e");
/// Arbitrum Sepolia's USDC, EIP-712 name `USD Coin`.
pub const ARBITRUM_SEPOLIA_USDC: Address = address!("0x75faf114eafb1BDbe2F0316DF893fd58CE46AA4d");
/// Optimism Sepolia's USDC. The x402 SDK has no default asset for this chain; its EIP-712 name
/// is taken to be `USDC`, as for Circle's other recent testnet deployments.
pub const OPTIMISM_SEPOLIA_USDC: Address = address!("0x5fd84259d66Cd46123540766Be93DFE6D43130D7");
/// Ethereum Sepolia's USDC (Circle's), EIP-712 name `USDC`. The x402 SDK has no default asset
/// for this chain either.
pub const ETHEREUM_SEPOLIA_USDC: Address = address!("0x1c7D4B196Cb0C7B01d743Fbc6116a902379C7238");

impl DevnetChainSpec {
    /// Base Sepolia (84532), the cheapest of the defaults: an OP Stack chain at 0.01 gwei, with
    /// [`OpStackFees::base_sepolia`].
    pub fn base_sepolia() -> Self {
        Self {
            chain_id: 84532,
            name: "base-sepolia".to_owned(),
            base_fee_wei: 10_000_000,
            canonical_usdc: Some(CanonicalUsdc {
                address: BASE_SEPOLIA_USDC,
                name: "USDC".to_owned(),
                version: "2".to_owned(),
            }),
            fees: ChainFees::OpStack(OpStackFees::base_sepolia()),
            price_feed: None,
        }
    }

    /// Arbitrum Sepolia (421614): 0.1 gwei, with [`ArbitrumFees::default`].
    pub fn arbitrum_sepolia() -> Self {
        Self {
            chain_id: 421614,
            name: "arbitrum-sepolia".to_owned(),
            base_fee_wei: 100_000_000,
            canonical_usdc: Some(CanonicalUsdc {
                address: ARBITRUM_SEPOLIA_USDC,
                name: "USD Coin".to_owned(),
                version: "2".to_owned(),
            }),
            fees: ChainFees::Arbitrum(ArbitrumFees::default()),
            price_feed: None,
        }
    }

    /// Optimism Sepolia (11155420), the dearest of the L2 defaults: an OP Stack chain at 1 gwei,
    /// with [`OpStackFees::optimism_sepolia`].
    pub fn optimism_sepolia() -> Self {
        Self {
            chain_id: 11155420,
            name: "optimism-sepolia".to_owned(),
            base_fee_wei: 1_000_000_000,
            canonical_usdc: Some(CanonicalUsdc {
                address: OPTIMISM_SEPOLIA_USDC,
                name: "USDC".to_owned(),
                version: "2".to_owned(),
            }),
            fees: ChainFees::OpStack(OpStackFees::optimism_sepolia()),
            price_feed: None,
        }
    }

    /// Ethereum Sepolia (11155111), the L1 stand-in: execution gas alone at a high 20 gwei, and
    /// the ETH/USD price feed ([`PriceFeedSpec::eth_usd`]).
    pub fn ethereum_sepolia() -> Self {
        Self {
            chain_id: 11155111,
            name: "ethereum-sepolia".to_owned(),
            base_fee_wei: 20_000_000_000,
            canonical_usdc: Some(CanonicalUsdc {
                address: ETHEREUM_SEPOLIA_USDC,
                name: "USDC".to_owned(),
                version: "2".to_owned(),
            }),
            fees: ChainFees::Ethereum,
            price_feed: Some(PriceFeedSpec::eth_usd()),
        }
    }

    /// The four default chains, cheapest first: Base, Arbitrum and Optimism Sepolia, and
    /// Ethereum Sepolia with the price feed.
    pub fn defaults() -> Vec<Self> {
        vec![
            Self::base_sepolia(),
            Self::arbitrum_sepolia(),
            Self::optimism_sepolia(),
            Self::ethereum_sepolia(),
        ]
    }

    /// A chain of your own: execution gas alone, without a canonical USDC or a price feed.
    pub fn custom(chain_id: u64, name: impl Into<String>, base_fee_wei: u128) -> Self {
        Self {
            chain_id,
            name: name.into(),
            base_fee_wei,
            canonical_usdc: None,
            fees: ChainFees::Ethereum,
            price_feed: None,
        }
    }

    /// How the chain charges for a transaction.
    pub fn fee_kind(&self) -> crate::FeeKind {
        self.fees.kind()
    }

    /// `eip155:<chain id>`.
    pub fn network(&self) -> String {
        format!("eip155:{}", self.chain_id)
    }
}

/// The EIP-712 identity and symbol of the deployed token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSpec {
    pub name: String,
    pub version: String,
    pub symbol: String,
}

impl Default for TokenSpec {
    /// `USD Coin`, version `2`, `USDC`: the domain of USDC on Ethereum and most mainnets.
    fn default() -> Self {
        Self {
            name: "USD Coin".to_owned(),
            version: "2".to_owned(),
            symbol: "USDC".to_owned(),
        }
    }
}

/// How blocks are mined after the devnet is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mining {
    /// A block for every transaction, at once (anvil's default).
    #[default]
    Auto,
    /// A block every so many seconds, holding transactions in the mempool in between.
    Interval { block_time_seconds: u64 },
    /// Only when asked ([`crate::DevnetChain::mine`]): transactions wait in the mempool.
    Manual,
}
