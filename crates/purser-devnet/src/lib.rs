//! The local devnet: anvil chains standing for Base, Arbitrum, Optimism and Ethereum, with
//! Purser's EIP-3009 token deployed, test accounts funded, and the fee mechanics of each kind of
//! chain in place. A development tool, kept out of the crates
//! Purser runs in production: `purser-chain` settles on any EVM chain and knows nothing of
//! anvil; the binary reaches this crate only for `purser devnet` and `purser demo`, and the
//! services' tests and the benchmark harness use it as a dev-dependency.
//!
//! Two ways to run one:
//!
//! - [`Devnet::start`] for tests: each chain is an anvil child process on a free port, killed
//!   when the [`Devnet`] is dropped, so every test can have its own chains and tests run in
//!   parallel.
//! - [`up`] and [`down`] for the command line: the anvil processes outlive the caller (their
//!   own process group, output in `DIR/anvil-<chain id>.log`) and are recorded in
//!   `DIR/devnet.json`; `up` also writes `DIR/purser.toml` (the `[[rails]]` of the devnet) and
//!   the settlement signer's key files. `down` stops them and is idempotent.
//!
//! On every chain the same accounts exist (anvil's, from [`TEST_MNEMONIC`] by default):
//! account 0 deploys and owns the tokens ([`DevnetAccounts::deployer`]), account 1 signs
//! settlements ([`DevnetAccounts::settlement_signer`]: ether only, no tokens, never a payer) and
//! the rest are payers, each minted [`DevnetOptions::payer_balance`] of every token. The token is
//! `PurserUSD` (from the committed artefact `contracts/out/PurserUSD.json`, compiled in), with
//! the EIP-712 domain of [`TokenSpec`] (by default name `USD Coin`, version `2`, symbol `USDC`).
//! With [`DevnetOptions::canonical_usdc`], a second copy sits at the chain's real testnet USDC
//! address with that token's EIP-712 name, so clients using the x402 SDK's default assets work
//! unchanged.
//!
//! Each chain has a fee kind ([`FeeKind`]: `op-stack`, `arbitrum` or `ethereum`) and the
//! contracts that answer fee questions where the real chains answer them ([`fees`]): the OP
//! Stack's L1Block and GasPriceOracle predeploys, Arbitrum's NodeInterface and ArbGasInfo, and a
//! Chainlink-style ETH/USD price feed on the Ethereum stand-in. [`DevnetChain::set_fees`] and
//! [`DevnetChain::set_price`] move them while the chain runs; [`change_fees`] does so for a
//! devnet started by [`up`] (`purser devnet fees`).
//!
//! Every chain also has x402's `auth-capture` escrow ([`escrow`]): stand-ins answering the
//! Commerce Payments Protocol's `AuthCaptureEscrow` (v1.1), `ERC3009PaymentCollector` and
//! `OperatorRefundCollector`, at the canonical addresses ([`EscrowContracts`],
//! [`DevnetChain::escrow_contracts`]).
//!
//! Everything here is for development: the keys are public test keys.

mod anvil;
mod chain;
pub mod contracts;
mod detached;
mod error;
pub mod escrow;
mod fee_control;
pub mod fees;
mod files;
pub mod payment;
mod spec;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;

pub use anvil::{ANVIL_NPM_PACKAGE, ANVIL_VERSION, locate_anvil};
pub use chain::{DevnetChain, TokenInfo};
pub use detached::{DownOutcome, down, up};
pub use error::DevnetError;
pub use escrow::{AUTH_CAPTURE_SPEC_VERSION, EscrowContracts};
pub use fee_control::{FeeChange, FeeReport, change_fees};
pub use fees::{
    ArbitrumFees, ChainFees, FeeContracts, FeeKind, FeeLevels, OpStackFees, PriceFeedInfo,
    PriceFeedSpec, PriceRound,
};
pub use files::{
    AccountEntry, ChainEntry, DevnetManifest, PRICE_FEED_MAX_AGE_SECONDS, WRITES_FEE_ROUTING_KEYS,
};
pub use spec::{
    ARBITRUM_SEPOLIA_USDC, BASE_SEPOLIA_USDC, CanonicalUsdc, DevnetChainSpec,
    ETHEREUM_SEPOLIA_USDC, Mining, OPTIMISM_SEPOLIA_USDC, TokenSpec,
};

/// The mnemonic anvil derives its accounts from by default (`test … junk`).
pub const TEST_MNEMONIC: &str = "test test test test test test test test test test test junk";

/// The token has 6 decimals: one whole token is this many atomic units.
pub const TOKEN_UNIT: u64 = 1_000_000;

/// How a devnet is made.
#[derive(Debug, Clone)]
pub struct DevnetOptions {
    /// The chains, each its own anvil. Default: [`DevnetChainSpec::defaults`].
    pub chains: Vec<DevnetChainSpec>,
    /// How many funded payer accounts (beyond the deployer and the settlement signer).
    pub payer_accounts: usize,
    /// Atomic units of each token minted to every payer (default 1,000,000 tokens).
    pub payer_balance: U256,
    /// The EIP-712 identity of the deployed token.
    pub token: TokenSpec,
    /// Also place a copy of the token at the chain's canonical testnet USDC address (for chains
    /// whose spec names one), with that token's real EIP-712 name and version.
    pub canonical_usdc: bool,
    /// How blocks are mined once the devnet is set up (setup itself always automines).
    pub mining: Mining,
    /// The BIP-39 mnemonic the accounts are derived from.
    pub mnemonic: String,
    /// The anvil binary; `None` looks for it as [`locate_anvil`] does.
    pub anvil: Option<PathBuf>,
    /// Where to look for `tests/interop/node_modules` when locating anvil; `None` searches the
    /// current directory and its ancestors.
    pub repo_root: Option<PathBuf>,
    /// `receipt_timeout_seconds` written into `purser.toml`.
    pub receipt_timeout_seconds: u64,
}

impl Default for DevnetOptions {
    fn default() -> Self {
        Self {
            chains: DevnetChainSpec::defaults(),
            payer_accounts: 8,
            payer_balance: U256::from(1_000_000u64) * U256::from(TOKEN_UNIT),
            token: TokenSpec::default(),
            canonical_usdc: true,
            mining: Mining::Auto,
            mnemonic: TEST_MNEMONIC.to_owned(),
            anvil: None,
            repo_root: None,
            receipt_timeout_seconds: 30,
        }
    }
}

impl DevnetOptions {
    /// Only the given chains, everything else by default.
    pub fn with_chains(chains: Vec<DevnetChainSpec>) -> Self {
        Self {
            chains,
            ..Self::default()
        }
    }

    fn validate(&self) -> Result<(), DevnetError> {
        if self.chains.is_empty() {
            return Err(DevnetError::Options("no chains".to_owned()));
        }
        for (i, chain) in self.chains.iter().enumerate() {
            if chain.chain_id == 0 {
                return Err(DevnetError::Options(format!(
                    "chain {} has chain id 0",
                    chain.name
                )));
            }
            if self.chains[..i]
                .iter()
                .any(|c| c.chain_id == chain.chain_id)
            {
                return Err(DevnetError::Options(format!(
                    "chain id {} appears twice",
                    chain.chain_id
                )));
            }
        }
        if self.payer_accounts == 0 {
            return Err(DevnetError::Options("no payer accounts".to_owned()));
        }
        if self.payer_balance.is_zero() {
            return Err(DevnetError::Options("the payer balance is zero".to_owned()));
        }
        Ok(())
    }

    /// anvil's `--accounts`: the deployer, the settlement signer and the payers.
    fn anvil_accounts(&self) -> usize {
        self.payer_accounts + 2
    }
}

/// A funded test account: its address and its (public, test-only) private key.
#[derive(Clone, PartialEq, Eq)]
pub struct TestAccount {
    address: Address,
    private_key: B256,
}

impl TestAccount {
    /// The account of a hex private key.
    pub fn from_private_key(private_key: B256) -> Result<Self, DevnetError> {
        let signer = PrivateKeySigner::from_bytes(&private_key)
            .map_err(|e| DevnetError::Options(format!("bad private key: {e}")))?;
        Ok(Self {
            address: signer.address(),
            private_key,
        })
    }

    pub fn address(&self) -> Address {
        self.address
    }

    pub fn private_key(&self) -> B256 {
        self.private_key
    }

    /// `0x`-prefixed hex of the private key, as key files and `devnet.json` hold it.
    pub fn private_key_hex(&self) -> String {
        self.private_key.to_string()
    }

    /// A local signer for the account.
    pub fn signer(&self) -> PrivateKeySigner {
        PrivateKeySigner::from_bytes(&self.private_key).expect("checked when the account was made")
    }
}

impl std::fmt::Debug for TestAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Test keys are public, but keys are never printed anywhere in Purser.
        f.debug_struct("TestAccount")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// The accounts of a devnet, the same on every chain.
#[derive(Debug, Clone)]
pub struct DevnetAccounts {
    /// Deploys the tokens, owns them and mints.
    pub deployer: TestAccount,
    /// The account `purser.toml` names as the settlement signer: ether, no tokens.
    pub settlement_signer: TestAccount,
    /// Funded with every token; they sign payments.
    pub payers: Vec<TestAccount>,
}

/// A running devnet whose anvil processes belong to it: dropping it kills them.
#[derive(Debug)]
pub struct Devnet {
    chains: Vec<DevnetChain>,
    accounts: Arc<DevnetAccounts>,
    options: DevnetOptions,
    anvil: PathBuf,
}

impl Devnet {
    /// Starts one anvil per chain (in parallel, each on a free port), deploys and funds the
    /// tokens, then applies the mining mode.
    pub async fn start(options: DevnetOptions) -> Result<Devnet, DevnetError> {
        options.validate()?;
        let started = Instant::now();
        let anvil = match &options.anvil {
            Some(path) => path.clone(),
            None => locate_anvil(options.repo_root.as_deref()).await?,
        };
        let processes = futures::future::try_join_all(
            options
                .chains
                .iter()
                .map(|spec| anvil::spawn_attached(&anvil, spec, &options)),
        )
        .await?;
        let accounts = Arc::new(anvil::accounts_from_banner(
            &processes[0].banner,
            options.chains[0].chain_id,
            &options,
        )?);
        let chains = futures::future::try_join_all(processes.into_iter().zip(&options.chains).map(
            |(started, spec)| {
                DevnetChain::set_up(spec.clone(), started, accounts.clone(), &options)
            },
        ))
        .await?;
        tracing::debug!(
            chains = chains.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "devnet started"
        );
        Ok(Devnet {
            chains,
            accounts,
            options,
            anvil,
        })
    }

    pub fn chains(&self) -> &[DevnetChain] {
        &self.chains
    }

    /// The chain with this chain id.
    pub fn chain(&self, chain_id: u64) -> Option<&DevnetChain> {
        self.chains.iter().find(|c| c.chain_id() == chain_id)
    }

    pub fn accounts(&self) -> &DevnetAccounts {
        &self.accounts
    }

    /// What `devnet.json` holds for this devnet.
    pub fn manifest(&self) -> DevnetManifest {
        DevnetManifest::new(
            &self.anvil,
            &self.options,
            &self.accounts,
            &self.chains,
            false,
        )
    }

    /// Writes `devnet.json`, `purser.toml` and the signer key files into `dir` (created if
    /// needed), as [`up`] does; for tests that run Purser against this devnet.
    pub fn write_files(&self, dir: &std::path::Path) -> Result<DevnetManifest, DevnetError> {
        let manifest = self.manifest();
        files::write_all(dir, &manifest, &self.options)?;
        Ok(manifest)
    }
}
