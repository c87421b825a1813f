//! One chain of a devnet: setting it up (token deployed, copied to the canonical address,
//! payers funded, fee contracts placed) and the handle tests drive it through.

use std::sync::Arc;

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{BlockNumberOrTag, TransactionReceipt, TransactionRequest};
use alloy::sol_types::{SolCall, SolConstructor};
use purser_chain::config::{AssetConfig, RailConfig, SignerSource};
use serde::{Deserialize, Serialize};

use crate::anvil::{AttachedAnvil, Started};
use crate::contracts::{Artefact, PurserUSD, TestSmartWallet};
use crate::escrow::EscrowContracts;
use crate::fees::{FeeContracts, PriceFeedInfo};
use crate::files::DevnetManifest;
use crate::spec::CanonicalUsdc;
use crate::{DevnetAccounts, DevnetChainSpec, DevnetError, DevnetOptions, Mining, TestAccount};

/// How long [`DevnetChain::send_as`] waits for a receipt.
const RECEIPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// An EIP-3009 token on a devnet chain, as `devnet.json` and `purser.toml` describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    #[serde(with = "crate::files::checksummed")]
    pub address: Address,
    /// The EIP-712 domain name.
    pub name: String,
    /// The EIP-712 domain version.
    pub version: String,
    pub decimals: u8,
    pub symbol: String,
}

/// A running devnet chain.
pub struct DevnetChain {
    spec: DevnetChainSpec,
    rpc_url: String,
    pid: u32,
    provider: DynProvider,
    /// Without fillers: `eth_sendTransaction` as is, for anvil to fill and sign.
    node: DynProvider,
    token: TokenInfo,
    canonical_usdc: Option<TokenInfo>,
    pub(crate) fee_contracts: FeeContracts,
    pub(crate) price_feed: Option<PriceFeedInfo>,
    pub(crate) escrow_contracts: Vec<EscrowContracts>,
    accounts: Arc<DevnetAccounts>,
    // Kills the anvil when the chain is dropped, for devnets that own their processes.
    _anvil: Option<AttachedAnvil>,
}

impl std::fmt::Debug for DevnetChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevnetChain")
            .field("chain_id", &self.spec.chain_id)
            .field("name", &self.spec.name)
            .field("rpc_url", &self.rpc_url)
            .field("pid", &self.pid)
            .field("token", &self.token.address)
            .field(
                "canonical_usdc",
                &self.canonical_usdc.as_ref().map(|t| t.address),
            )
            .field("fee_kind", &self.spec.fee_kind())
            .field("price_feed", &self.price_feed.as_ref().map(|f| f.address))
            .finish_non_exhaustive()
    }
}

/// A provider over plain HTTP to a devnet chain, signing as `signer` when given.
pub(crate) fn http_provider(
    url: alloy::transports::http::reqwest::Url,
    signer: Option<alloy::signers::local::PrivateKeySigner>,
) -> DynProvider {
    // reqwest is built with rustls and no default crypto provider: building any client needs
    // one installed, even for http://.
    purser_chain::rails::ensure_crypto_provider();
    match signer {
        Some(signer) => ProviderBuilder::new()
            .wallet(signer)
            .connect_http(url)
            .erased(),
        None => ProviderBuilder::new().connect_http(url).erased(),
    }
}

pub(crate) fn rpc_error(
    chain_id: u64,
    what: &str,
) -> impl FnOnce(alloy::transports::TransportError) -> DevnetError {
    let what = what.to_owned();
    move |e| DevnetError::Chain {
        chain_id,
        message: format!("{what}: {e}"),
    }
}

/// A provider for `rpc_url` and one without fillers (for anvil to fill and sign), after checking
/// the endpoint answers `chain_id`.
async fn connect(rpc_url: &str, chain_id: u64) -> Result<(DynProvider, DynProvider), DevnetError> {
    let url: alloy::transports::http::reqwest::Url =
        rpc_url.parse().map_err(|e| DevnetError::Chain {
            chain_id,
            message: format!("bad rpc url {rpc_url}: {e}"),
        })?;
    let provider = http_provider(url.clone(), None);
    let node = ProviderBuilder::new()
        .disable_recommended_fillers()
        .connect_http(url)
        .erased();
    let answered = provider
        .get_chain_id()
        .await
        .map_err(rpc_error(chain_id, "eth_chainId"))?;
    if answered != chain_id {
        return Err(DevnetError::Chain {
            chain_id,
            message: format!("the node at {rpc_url} answers chain id {answered}"),
        });
    }
    Ok((provider, node))
}

impl DevnetChain {
    /// Checks the chain answers as expected, deploys and funds the tokens, places the fee
    /// contracts and the price feed, mines a block at the spec's base fee, then applies the
    /// mining mode.
    pub(crate) async fn set_up(
        spec: DevnetChainSpec,
        started: Started,
        accounts: Arc<DevnetAccounts>,
        options: &DevnetOptions,
    ) -> Result<DevnetChain, DevnetError> {
        let chain_id = spec.chain_id;
        let (provider, node) = connect(&started.rpc_url, chain_id).await?;
        let on_chain = provider
            .get_accounts()
            .await
            .map_err(rpc_error(chain_id, "eth_accounts"))?;
        let ours: Vec<Address> = [&accounts.deployer, &accounts.settlement_signer]
            .into_iter()
            .chain(&accounts.payers)
            .map(TestAccount::address)
            .collect();
        if on_chain != ours {
            return Err(DevnetError::Chain {
                chain_id,
                message: "anvil's accounts differ from the keys it printed".to_owned(),
            });
        }
        let mut chain = DevnetChain {
            token: TokenInfo {
                address: Address::ZERO,
                name: options.token.name.clone(),
                version: options.token.version.clone(),
                decimals: 6,
                symbol: options.token.symbol.clone(),
            },
            canonical_usdc: None,
            fee_contracts: FeeContracts::default(),
            price_feed: None,
            escrow_contracts: Vec::new(),
            spec,
            rpc_url: started.rpc_url,
            pid: started.pid,
            provider,
            node,
            accounts,
            _anvil: started.attached,
        };
        chain.token.address = chain
            .deploy_token(
                &options.token.name,
                &options.token.version,
                &options.token.symbol,
            )
            .await?;
        chain
            .fund_payers(chain.token.address, options.payer_balance)
            .await?;
        if let Some(canonical) = chain
            .spec
            .canonical_usdc
            .clone()
            .filter(|_| options.canonical_usdc)
        {
            chain
                .place_token_at(
                    canonical.address,
                    &canonical.name,
                    &canonical.version,
                    &options.token.symbol,
                )
                .await?;
            chain
                .fund_payers(canonical.address, options.payer_balance)
                .await?;
            chain.canonical_usdc = Some(TokenInfo {
                address: canonical.address,
                name: canonical.name,
                version: canonical.version,
                decimals: 6,
                symbol: options.token.symbol.clone(),
            });
        }
        chain.place_fee_contracts().await?;
        // Placed without transactions, so no address the deployer deploys to moves.
        chain.place_escrow_contracts().await?;
        // Deployed last, so the token's address stays what it was before chains had feeds.
        if let Some(feed) = chain.spec.price_feed.clone() {
            chain.price_feed = Some(chain.deploy_price_feed(&feed).await?);
        }
        // Each set-up block lowered the base fee (they are far from full): end with a block at
        // the spec's level, so every chain starts at its own however long its set-up was.
        chain
            .set_next_block_base_fee(chain.spec.base_fee_wei)
            .await?;
        chain.mine().await?;
        match options.mining {
            Mining::Auto => {}
            Mining::Interval { block_time_seconds } => {
                chain.set_interval_mining(block_time_seconds).await?
            }
            Mining::Manual => chain.set_automine(false).await?,
        }
        Ok(chain)
    }

    /// A handle on chain `chain` (its id, name or `eip155:` network) of a devnet that is
    /// already running, as its `devnet.json` describes it: started by [`crate::up`], or written
    /// by [`crate::Devnet::write_files`]. The handle owns no process; dropping it stops nothing.
    pub async fn attach(
        manifest: &DevnetManifest,
        chain: &str,
    ) -> Result<DevnetChain, DevnetError> {
        let entry = manifest.find_chain(chain).ok_or_else(|| {
            DevnetError::Options(format!(
                "the devnet has no chain `{chain}` (it has {})",
                manifest
                    .chains
                    .iter()
                    .map(|c| format!("{} ({})", c.name, c.chain_id))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let chain_id = entry.chain_id;
        let (provider, node) = connect(&entry.rpc_url, chain_id).await?;
        let account = |entry: &crate::files::AccountEntry| {
            let key: B256 = entry.private_key.parse().map_err(|_| {
                DevnetError::Options(format!("the key of {} is not hex", entry.address))
            })?;
            let account = TestAccount::from_private_key(key)?;
            if account.address() != entry.address {
                return Err(DevnetError::Options(format!(
                    "the key recorded for {} is another account's",
                    entry.address
                )));
            }
            Ok(account)
        };
        let accounts = DevnetAccounts {
            deployer: account(&manifest.deployer)?,
            settlement_signer: account(&manifest.settlement_signer)?,
            payers: manifest
                .accounts
                .iter()
                .map(account)
                .collect::<Result<_, _>>()?,
        };
        let base_fee_wei = entry.base_fee_wei.parse().map_err(|_| {
            DevnetError::Options(format!(
                "the base fee of chain {chain_id} is not a number: {}",
                entry.base_fee_wei
            ))
        })?;
        let spec = DevnetChainSpec {
            chain_id,
            name: entry.name.clone(),
            base_fee_wei,
            canonical_usdc: entry.canonical_usdc.as_ref().map(|t| CanonicalUsdc {
                address: t.address,
                name: t.name.clone(),
                version: t.version.clone(),
            }),
            fees: entry.fees.clone(),
            price_feed: entry.price_feed.as_ref().map(PriceFeedInfo::spec),
        };
        Ok(DevnetChain {
            spec,
            rpc_url: entry.rpc_url.clone(),
            pid: entry.pid.unwrap_or_default(),
            provider,
            node,
            token: entry.token.clone(),
            canonical_usdc: entry.canonical_usdc.clone(),
            fee_contracts: entry.fee_contracts.clone(),
            price_feed: entry.price_feed.clone(),
            escrow_contracts: entry.escrow_contracts.clone(),
            accounts: Arc::new(accounts),
            _anvil: None,
        })
    }

    async fn deploy_token(
        &self,
        name: &str,
        version: &str,
        symbol: &str,
    ) -> Result<Address, DevnetError> {
        let constructor = PurserUSD::constructorCall {
            tokenName: name.to_owned(),
            tokenVersion: version.to_owned(),
            tokenSymbol: symbol.to_owned(),
            tokenOwner: self.accounts.deployer.address(),
        };
        let mut code = Artefact::purser_usd().bytecode.to_vec();
        code.extend_from_slice(&constructor.abi_encode());
        self.deploy_contract(code.into()).await
    }

    /// Puts the token's runtime code at `address` and initializes it there: `anvil_setCode`
    /// copies code, not the storage a constructor would have written, and the token keeps all
    /// of its state in storage that `initialize` sets (its domain separator is computed from
    /// that storage, the chain id and its own address on every use).
    async fn place_token_at(
        &self,
        address: Address,
        name: &str,
        version: &str,
        symbol: &str,
    ) -> Result<(), DevnetError> {
        self.set_code(address, Artefact::purser_usd().deployed_bytecode)
            .await?;
        let initialize = PurserUSD::initializeCall {
            tokenName: name.to_owned(),
            tokenVersion: version.to_owned(),
            tokenSymbol: symbol.to_owned(),
            tokenOwner: self.accounts.deployer.address(),
        };
        self.send_as(
            &self.accounts.deployer,
            address,
            initialize.abi_encode().into(),
            "initialize the canonical usdc",
        )
        .await?;
        Ok(())
    }

    async fn fund_payers(&self, token: Address, amount: U256) -> Result<(), DevnetError> {
        for payer in &self.accounts.payers {
            self.mint(token, payer.address(), amount).await?;
        }
        Ok(())
    }

    /// Sends a transaction from `account` and waits for its receipt, failing when it reverted
    /// (or would: the gas is estimated first, so a revert fails the send, with its reason).
    /// anvil signs it (`eth_sendTransaction`: every devnet account is one of anvil's
    /// unlocked accounts), which keeps set-up fast; to test signing and sending of your own,
    /// use [`Self::wallet_provider`]. Needs a block to be mined (automine, interval mining, or
    /// a [`Self::mine`] elsewhere).
    pub async fn send_as(
        &self,
        account: &TestAccount,
        to: Address,
        input: Bytes,
        what: &str,
    ) -> Result<TransactionReceipt, DevnetError> {
        let tx = TransactionRequest::default().with_to(to).with_input(input);
        self.send_transaction(account, tx, what, false).await
    }

    /// [`Self::send_as`], mining a block for the transaction when automining is off, so it
    /// completes in every mining mode (with interval mining, the extra block comes early).
    pub(crate) async fn send_as_and_mine(
        &self,
        account: &TestAccount,
        to: Address,
        input: Bytes,
        what: &str,
    ) -> Result<TransactionReceipt, DevnetError> {
        let automine: bool = self
            .provider
            .raw_request("anvil_getAutomine".into(), ())
            .await
            .map_err(rpc_error(self.chain_id(), "anvil_getAutomine"))?;
        let tx = TransactionRequest::default().with_to(to).with_input(input);
        self.send_transaction(account, tx, what, !automine).await
    }

    async fn send_transaction(
        &self,
        account: &TestAccount,
        tx: TransactionRequest,
        what: &str,
        mine: bool,
    ) -> Result<TransactionReceipt, DevnetError> {
        let chain_id = self.chain_id();
        let tx = tx.with_from(account.address());
        // anvil's `eth_sendTransaction` mines a reverting transaction; estimating first fails
        // with the revert reason instead, as a wallet would.
        let gas = self
            .node
            .estimate_gas(tx.clone())
            .await
            .map_err(rpc_error(chain_id, what))?;
        let pending = self
            .node
            .send_transaction(tx.with_gas_limit(gas))
            .await
            .map_err(rpc_error(chain_id, what))?;
        if mine {
            self.mine().await?;
        }
        let receipt = pending
            .with_timeout(Some(RECEIPT_TIMEOUT))
            .get_receipt()
            .await
            .map_err(|e| DevnetError::Chain {
                chain_id,
                message: format!("{what}: {e} (is mining off?)"),
            })?;
        if !receipt.status() {
            return Err(DevnetError::Chain {
                chain_id,
                message: format!("{what}: transaction {} reverted", receipt.transaction_hash),
            });
        }
        Ok(receipt)
    }

    /// Deploys creation code (with any constructor arguments appended) from the deployer
    /// account, answering the new contract's address.
    pub async fn deploy_contract(&self, creation_code: Bytes) -> Result<Address, DevnetError> {
        let tx = TransactionRequest::default().with_deploy_code(creation_code);
        let receipt = self
            .send_transaction(&self.accounts.deployer, tx, "deploy a contract", false)
            .await?;
        receipt.contract_address.ok_or_else(|| DevnetError::Chain {
            chain_id: self.chain_id(),
            message: "a deployment's receipt has no contract address".to_owned(),
        })
    }

    /// Deploys a `TestSmartWallet` owned by `owner` (an EOA): an ERC-1271 signer for tests.
    pub async fn deploy_smart_wallet(&self, owner: Address) -> Result<Address, DevnetError> {
        let mut code = Artefact::test_smart_wallet().bytecode.to_vec();
        code.extend_from_slice(
            &TestSmartWallet::constructorCall { walletOwner: owner }.abi_encode(),
        );
        self.deploy_contract(code.into()).await
    }

    /// Mints `amount` of a devnet token to `to`, as its owner (the deployer).
    pub async fn mint(&self, token: Address, to: Address, amount: U256) -> Result<(), DevnetError> {
        let call = PurserUSD::mintCall { to, amount };
        self.send_as(
            &self.accounts.deployer,
            token,
            call.abi_encode().into(),
            "mint",
        )
        .await
        .map(drop)
    }

    /// `eth_call` of a contract function on the latest block.
    pub async fn call<C: SolCall>(&self, to: Address, call: &C) -> Result<C::Return, DevnetError> {
        let chain_id = self.chain_id();
        let tx = TransactionRequest::default()
            .with_to(to)
            .with_input(Bytes::from(call.abi_encode()));
        let output = self
            .provider
            .call(tx)
            .block(alloy::eips::BlockId::latest())
            .await
            .map_err(rpc_error(chain_id, C::SIGNATURE))?;
        C::abi_decode_returns(&output).map_err(|e| DevnetError::Chain {
            chain_id,
            message: format!("{}: cannot decode the answer: {e}", C::SIGNATURE),
        })
    }

    pub fn spec(&self) -> &DevnetChainSpec {
        &self.spec
    }

    pub fn chain_id(&self) -> u64 {
        self.spec.chain_id
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// `eip155:<chain id>`.
    pub fn network(&self) -> String {
        self.spec.network()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn rpc_url(&self) -> &str {
        &self.rpc_url
    }

    /// The anvil process's id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// A read-only provider (no wallet).
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// A provider that signs and sends as `account`.
    pub fn wallet_provider(&self, account: &TestAccount) -> DynProvider {
        let url = self
            .rpc_url
            .parse()
            .expect("checked when the chain was set up");
        http_provider(url, Some(account.signer()))
    }

    /// The deployed token.
    pub fn token(&self) -> &TokenInfo {
        &self.token
    }

    /// The rail Purser settles this chain on: its endpoint, its fee kind, the deployed token
    /// (a dollar stablecoin) and the settlement signer whose key is in `signer_key_file`; the
    /// rest as `RailConfig` defaults it.
    pub fn rail_config(&self, signer_key_file: &std::path::Path) -> RailConfig {
        let token = self.token();
        RailConfig {
            network: self.network(),
            kind: self.fee_kind().into(),
            rpc_urls: vec![self.rpc_url().to_owned()],
            signers: vec![SignerSource::File {
                file: signer_key_file.to_owned(),
            }],
            assets: vec![AssetConfig {
                address: token.address.to_checksum(None),
                name: token.name.clone(),
                version: token.version.clone(),
                decimals: token.decimals,
                symbol: Some(token.symbol.clone()),
                currency: "USD".to_owned(),
            }],
            // Escrowed payments wherever the escrows are placed, into the one the official
            // client defaults to, without a fee.
            auth_capture: (!self.escrow_contracts.is_empty())
                .then(purser_chain::config::AuthCaptureConfig::default),
            ..RailConfig::default()
        }
    }

    /// The copy at the canonical USDC address, when placed.
    pub fn canonical_usdc(&self) -> Option<&TokenInfo> {
        self.canonical_usdc.as_ref()
    }

    pub fn accounts(&self) -> &DevnetAccounts {
        &self.accounts
    }

    /// The deployed token's balance of `owner`, in atomic units.
    pub async fn balance_of(&self, owner: Address) -> Result<U256, DevnetError> {
        self.token_balance(self.token.address, owner).await
    }

    /// Any token's balance of `owner`.
    pub async fn token_balance(&self, token: Address, owner: Address) -> Result<U256, DevnetError> {
        self.call(token, &PurserUSD::balanceOfCall { account: owner })
            .await
    }

    /// What a token at `address` says it is, read from the chain.
    pub async fn token_info(&self, address: Address) -> Result<TokenInfo, DevnetError> {
        let (name, version, decimals, symbol) = tokio::try_join!(
            self.call(address, &PurserUSD::nameCall {}),
            self.call(address, &PurserUSD::versionCall {}),
            self.call(address, &PurserUSD::decimalsCall {}),
            self.call(address, &PurserUSD::symbolCall {}),
        )?;
        Ok(TokenInfo {
            address,
            name,
            version,
            decimals,
            symbol,
        })
    }

    /// Whether `authorizer`'s EIP-3009 `nonce` is used (or canceled) on `token`.
    pub async fn authorization_state(
        &self,
        token: Address,
        authorizer: Address,
        nonce: B256,
    ) -> Result<bool, DevnetError> {
        self.call(
            token,
            &PurserUSD::authorizationStateCall { authorizer, nonce },
        )
        .await
    }

    /// An anvil or `evm_` JSON-RPC method whose answer does not matter.
    pub(crate) async fn anvil<P>(&self, method: &'static str, params: P) -> Result<(), DevnetError>
    where
        P: Serialize + Clone + std::fmt::Debug + Send + Sync + Unpin + 'static,
    {
        self.provider
            .raw_request::<P, serde_json::Value>(method.into(), params)
            .await
            .map(drop)
            .map_err(rpc_error(self.chain_id(), method))
    }

    /// Turns automining on or off (`evm_setAutomine`). Off, transactions wait in the mempool
    /// until [`Self::mine`].
    pub async fn set_automine(&self, enabled: bool) -> Result<(), DevnetError> {
        self.anvil("evm_setAutomine", (enabled,)).await
    }

    /// Mines a block every `block_time_seconds` (`evm_setIntervalMining`; 0 turns it off).
    pub async fn set_interval_mining(&self, block_time_seconds: u64) -> Result<(), DevnetError> {
        self.anvil("evm_setIntervalMining", (block_time_seconds,))
            .await
    }

    /// Mines one block now (`evm_mine`), with whatever the mempool holds.
    pub async fn mine(&self) -> Result<(), DevnetError> {
        self.anvil("evm_mine", ()).await
    }

    /// Moves the chain's clock `seconds` forward (`evm_increaseTime`) and mines a block at the
    /// new time, so the latest block (what `eth_call` and the next transaction see, roughly)
    /// has it.
    pub async fn increase_time(&self, seconds: u64) -> Result<(), DevnetError> {
        self.anvil("evm_increaseTime", (U256::from(seconds),))
            .await?;
        self.mine().await
    }

    /// The latest block's timestamp, Unix seconds.
    pub async fn latest_timestamp(&self) -> Result<u64, DevnetError> {
        Ok(self.latest_header().await?.timestamp)
    }

    /// The latest block's header.
    async fn latest_header(&self) -> Result<alloy::rpc::types::Header, DevnetError> {
        let chain_id = self.chain_id();
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .map_err(rpc_error(chain_id, "eth_getBlockByNumber"))?
            .ok_or_else(|| DevnetError::Chain {
                chain_id,
                message: "no latest block".to_owned(),
            })?;
        Ok(block.header)
    }

    /// Mines `blocks` blocks now (`anvil_mine`).
    pub async fn mine_blocks(&self, blocks: u64) -> Result<(), DevnetError> {
        self.anvil("anvil_mine", (U256::from(blocks),)).await
    }

    /// Sets the next block's base fee (`anvil_setNextBlockBaseFeePerGas`): a fee spike.
    pub async fn set_next_block_base_fee(&self, base_fee_wei: u128) -> Result<(), DevnetError> {
        self.anvil(
            "anvil_setNextBlockBaseFeePerGas",
            (U256::from(base_fee_wei),),
        )
        .await
        .map(drop)
    }

    /// Replaces the code at `address` (`anvil_setCode`), e.g. to install a stand-in for a
    /// chain's fee oracle.
    pub async fn set_code(&self, address: Address, runtime_code: Bytes) -> Result<(), DevnetError> {
        self.anvil("anvil_setCode", (address, runtime_code)).await
    }

    /// Writes one storage slot of `address` (`anvil_setStorageAt`): how a tool moves a fee
    /// parameter where a chain keeps it (see [`crate::fees::l1_block_slots`]).
    pub async fn set_storage_at(
        &self,
        address: Address,
        slot: U256,
        value: B256,
    ) -> Result<(), DevnetError> {
        self.anvil("anvil_setStorageAt", (address, slot, value))
            .await
    }

    /// One storage slot of `address` on the latest block.
    pub async fn storage_at(&self, address: Address, slot: U256) -> Result<U256, DevnetError> {
        self.provider
            .get_storage_at(address, slot)
            .await
            .map_err(rpc_error(self.chain_id(), "eth_getStorageAt"))
    }

    /// The latest block's base fee.
    pub async fn latest_base_fee(&self) -> Result<u128, DevnetError> {
        self.latest_header()
            .await?
            .base_fee_per_gas
            .map(u128::from)
            .ok_or_else(|| DevnetError::Chain {
                chain_id: self.chain_id(),
                message: "the latest block has no base fee".to_owned(),
            })
    }
}
