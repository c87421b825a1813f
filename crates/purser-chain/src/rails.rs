//! The configured rails, opened: RPC pools, parsed assets, loaded signers.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use alloy::primitives::Address;
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use purser_domain::{Error, ErrorCode, Result};
use tokio::sync::Mutex;

use crate::config::{AssetConfig, RailConfig, RailKind, SignerSource};
use crate::fees::SettlementGas;
use crate::rpc::{RpcPolicy, RpcPool};

/// An EIP-3009 token on a rail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    pub address: Address,
    pub name: String,
    pub version: String,
    pub decimals: u8,
    pub symbol: Option<String>,
    /// What one whole token is worth one of (`USD`), as price feeds name it.
    pub currency: String,
}

/// A key that signs settlement transactions, with the lock that serialises its broadcasts
/// within this process (across processes, nonces are leased through the database).
pub struct Signer {
    pub(crate) key: PrivateKeySigner,
    broadcast_lock: Mutex<()>,
}

impl Signer {
    pub fn address(&self) -> Address {
        self.key.address()
    }

    /// The address, checksummed.
    pub fn address_string(&self) -> String {
        self.key.address().to_checksum(None)
    }

    /// The address in lower case, as records store it.
    pub fn address_lower(&self) -> String {
        format!("{:#x}", self.key.address())
    }

    /// Held while leasing a nonce, signing and broadcasting, so this process sends one
    /// signer's transactions in nonce order.
    pub async fn lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.broadcast_lock.lock().await
    }
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The address only: never the key.
        write!(f, "Signer({})", self.key.address())
    }
}

/// One EVM chain Purser settles on.
#[derive(Debug)]
pub struct Rail {
    pub network: String,
    pub chain_id: u64,
    /// How the chain charges for a transaction ([`crate::fees`]).
    pub kind: RailKind,
    /// The token gas is paid in, as price feeds name it.
    pub gas_token: String,
    /// The configured fee oracle, when not the kind's predeploy.
    pub(crate) fee_oracle: Option<Address>,
    /// Execution gas of one settlement, as this rail's receipts have shown it.
    pub(crate) settlement_gas: SettlementGas,
    pub(crate) rpc: RpcPool,
    pub assets: Vec<Asset>,
    pub(crate) signers: Vec<Arc<Signer>>,
    next_signer: AtomicUsize,
    pub confirmations: u64,
    pub receipt_timeout: Duration,
    /// How often receipts are polled while waiting.
    pub receipt_poll_interval: Duration,
    pub(crate) erc6492_factories: HashSet<Address>,
    /// Escrowed payments on this chain, when offered.
    pub auth_capture: Option<AuthCaptureRail>,
}

/// The escrow a rail collects `auth-capture` payments into, and the fee terms it advertises.
#[derive(Debug, Clone)]
pub struct AuthCaptureRail {
    pub deployment: crate::auth_capture::Deployment,
    /// Where fees go; `None`: no fee is claimed (both bounds zero).
    pub fee_recipient: Option<Address>,
    pub min_fee_bps: u16,
    pub max_fee_bps: u16,
}

impl AuthCaptureRail {
    fn from_config(config: &crate::config::AuthCaptureConfig) -> Result<Self> {
        let escrow = config
            .escrow
            .as_deref()
            .map(|e| parse_address(e, "auth_capture.escrow"))
            .transpose()?;
        let deployment = crate::auth_capture::deployment(escrow)
            .filter(|d| d.version == crate::auth_capture::EscrowVersion::V1_1)
            .ok_or_else(|| {
                Error::invalid_input("auth_capture.escrow is not a canonical v1.1 escrow")
            })?;
        let fee_recipient = config
            .fee_recipient
            .as_deref()
            .map(|f| parse_address(f, "auth_capture.fee_recipient"))
            .transpose()?;
        let bounds_ok = config.min_fee_bps <= config.max_fee_bps
            && config.max_fee_bps <= purser_x402::auth_capture::MAX_FEE_BPS
            && (fee_recipient.is_some() || config.max_fee_bps == 0);
        if !bounds_ok {
            return Err(Error::invalid_input(
                "auth_capture fees: min_fee_bps <= max_fee_bps <= 10000, and a fee needs a fee_recipient",
            ));
        }
        Ok(Self {
            deployment,
            fee_recipient,
            min_fee_bps: config.min_fee_bps,
            max_fee_bps: config.max_fee_bps,
        })
    }
}

/// Every configured rail, by CAIP-2 network.
#[derive(Debug, Default)]
pub struct Rails {
    rails: BTreeMap<String, Arc<Rail>>,
}

/// Installs ring as rustls's process-wide crypto provider, once, if none is installed: RPC
/// over `https://` needs one, and the binary links ring already (through sqlx).
pub fn ensure_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn parse_address(raw: &str, what: &str) -> Result<Address> {
    raw.parse::<Address>()
        .map_err(|_| Error::invalid_input(format!("{what} `{raw}` is not an EVM address")))
}

/// The chain id of a CAIP-2 `eip155:<id>` network.
pub fn eip155_chain_id(network: &str) -> Result<u64> {
    network
        .strip_prefix("eip155:")
        .and_then(|id| id.parse::<u64>().ok())
        .filter(|id| *id > 0 && *id <= (1 << 53))
        .ok_or_else(|| {
            Error::new(
                ErrorCode::InvalidInput,
                format!("network `{network}` is not an eip155:<chain id> CAIP-2 id"),
            )
        })
}

fn load_signer(source: &SignerSource) -> Result<PrivateKeySigner> {
    let (raw, origin) = match source {
        SignerSource::Env { env } => (
            std::env::var(env).map_err(|_| {
                Error::invalid_input(format!("signer key environment variable {env} is not set"))
            })?,
            format!("environment variable {env}"),
        ),
        SignerSource::File { file } => (
            std::fs::read_to_string(file).map_err(|e| {
                Error::invalid_input(format!(
                    "cannot read signer key file {}: {e}",
                    file.display()
                ))
            })?,
            format!("file {}", file.display()),
        ),
    };
    // The error names where the key came from, never what it held.
    raw.trim().parse::<PrivateKeySigner>().map_err(|_| {
        Error::invalid_input(format!(
            "the signer key in {origin} is not a hex private key"
        ))
    })
}

impl Rail {
    /// Opens a rail: parses and loads everything, then checks the endpoint serves the
    /// configured chain.
    pub async fn open(config: &RailConfig, policy: RpcPolicy) -> Result<Self> {
        let context =
            |message: String| Error::invalid_input(format!("rail {}: {message}", config.network));
        let chain_id = eip155_chain_id(&config.network)?;
        let rpc = RpcPool::new(&config.rpc_urls, policy).map_err(context)?;
        let mut assets = Vec::with_capacity(config.assets.len());
        for AssetConfig {
            address,
            name,
            version,
            decimals,
            symbol,
            currency,
        } in &config.assets
        {
            if *decimals > purser_domain::money::MAX_DECIMALS {
                return Err(context(format!("asset {address} has too many decimals")));
            }
            assets.push(Asset {
                address: parse_address(address, "asset")?,
                name: name.clone(),
                version: version.clone(),
                decimals: *decimals,
                symbol: symbol.clone(),
                currency: currency.clone(),
            });
        }
        let signers = config
            .signers
            .iter()
            .map(|source| {
                load_signer(source).map(|key| {
                    Arc::new(Signer {
                        key,
                        broadcast_lock: Mutex::new(()),
                    })
                })
            })
            .collect::<Result<Vec<_>>>()
            .map_err(|e| context(e.message().to_owned()))?;
        let erc6492_factories = config
            .erc6492_factories
            .iter()
            .map(|f| parse_address(f, "ERC-6492 factory"))
            .collect::<Result<HashSet<_>>>()?;
        let fee_oracle = config
            .fee_oracle
            .as_deref()
            .map(|o| parse_address(o, "fee oracle"))
            .transpose()?;
        if config.settlement_gas < 21_000 {
            return Err(context(
                "settlement_gas must be at least 21000 (a transaction's intrinsic gas)".to_owned(),
            ));
        }
        if config.confirmations == 0 {
            return Err(context("confirmations must be at least 1".to_owned()));
        }
        let rail = Self {
            network: config.network.clone(),
            chain_id,
            kind: config.kind,
            gas_token: config.gas_token.clone(),
            fee_oracle,
            settlement_gas: SettlementGas::new(config.settlement_gas),
            rpc,
            assets,
            signers,
            next_signer: AtomicUsize::new(0),
            confirmations: config.confirmations,
            receipt_timeout: Duration::from_secs(config.receipt_timeout_seconds.max(1)),
            receipt_poll_interval: Duration::from_millis(250),
            erc6492_factories,
            auth_capture: config
                .auth_capture
                .as_ref()
                .map(AuthCaptureRail::from_config)
                .transpose()
                .map_err(|e| context(e.message().to_owned()))?,
        };
        // A node that answers for another chain is a configuration error; one that does not
        // answer yet is an outage, which must not keep the other services from starting.
        match rail
            .rpc
            .request("eth_chainId", |p| async move { p.get_chain_id().await })
            .await
        {
            Ok(served) if served != chain_id => {
                return Err(context(format!(
                    "the RPC endpoint serves chain {served}, not {chain_id}"
                )));
            }
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(network = %config.network, error = %err, "the rail's RPC does not answer yet; its chain id is unchecked");
            }
        }
        Ok(rail)
    }

    /// The configured asset at `address`, if any.
    pub fn asset(&self, address: &str) -> Option<&Asset> {
        let address = address.parse::<Address>().ok()?;
        self.assets.iter().find(|a| a.address == address)
    }

    /// The signers' addresses, checksummed.
    pub fn signer_addresses(&self) -> Vec<String> {
        self.signers
            .iter()
            .map(|s| s.address().to_checksum(None))
            .collect()
    }

    pub fn signers(&self) -> &[Arc<Signer>] {
        &self.signers
    }

    /// The next signer, round-robin, to spread load across keys.
    pub fn pick_signer(&self) -> Option<Arc<Signer>> {
        if self.signers.is_empty() {
            return None;
        }
        let index = self.next_signer.fetch_add(1, Ordering::Relaxed) % self.signers.len();
        Some(self.signers[index].clone())
    }

    pub fn signer(&self, address: &str) -> Option<Arc<Signer>> {
        let address = address.parse::<Address>().ok()?;
        self.signers
            .iter()
            .find(|s| s.address() == address)
            .cloned()
    }
}

impl Rails {
    /// Opens every configured rail. Two rails for one network are refused.
    pub async fn open(configs: &[RailConfig], policy: RpcPolicy) -> Result<Self> {
        ensure_crypto_provider();
        let mut rails = BTreeMap::new();
        for config in configs {
            let rail = Rail::open(config, policy).await?;
            if rails.insert(rail.network.clone(), Arc::new(rail)).is_some() {
                return Err(Error::invalid_input(format!(
                    "rail {} is configured twice",
                    config.network
                )));
            }
        }
        Ok(Self { rails })
    }

    pub fn from_rails(rails: impl IntoIterator<Item = Rail>) -> Self {
        Self {
            rails: rails
                .into_iter()
                .map(|r| (r.network.clone(), Arc::new(r)))
                .collect(),
        }
    }

    pub fn get(&self, network: &str) -> Option<&Arc<Rail>> {
        self.rails.get(network)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Rail>> {
        self.rails.values()
    }

    pub fn is_empty(&self) -> bool {
        self.rails.is_empty()
    }
}
