//! What a devnet folder holds: `devnet.json` (the chains, tokens and test accounts),
//! `purser.toml` (the `[[rails]]` Purser settles on) and `signer-<chain id>.key` (the
//! settlement signer's key, 0600).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use alloy::primitives::Address;
use serde::{Deserialize, Serialize};

use crate::chain::{DevnetChain, TokenInfo};
use crate::escrow::EscrowContracts;
use crate::fees::{ChainFees, FeeContracts, PriceFeedInfo};
use crate::{ANVIL_VERSION, DevnetAccounts, DevnetError, DevnetOptions, TestAccount};

pub(crate) const MANIFEST_FILE: &str = "devnet.json";
pub(crate) const CONFIG_FILE: &str = "purser.toml";

const WARNING: &str = "Development only: a local anvil devnet. The private keys here are public \
                       test keys; never use them, or send value to their addresses, anywhere else.";

/// `devnet.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DevnetManifest {
    pub warning: String,
    /// The anvil binary the chains run.
    pub anvil: PathBuf,
    pub anvil_version: String,
    /// The BIP-39 mnemonic the accounts derive from.
    pub mnemonic: String,
    pub chains: Vec<ChainEntry>,
    /// Deploys and owns the tokens.
    pub deployer: AccountEntry,
    /// Signs settlements (the key in `signer-<chain id>.key`); has ether, no tokens.
    pub settlement_signer: AccountEntry,
    /// The payers, each holding `payer_balance` of every token on every chain.
    pub accounts: Vec<AccountEntry>,
    /// Atomic units, a decimal string.
    pub payer_balance: String,
}

/// One chain in `devnet.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainEntry {
    /// `eip155:<chain id>`.
    pub network: String,
    pub chain_id: u64,
    pub name: String,
    pub rpc_url: String,
    /// The genesis block's base fee, a decimal string.
    pub base_fee_wei: String,
    pub token: TokenInfo,
    /// The token's copy at the chain's real USDC address, when placed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canonical_usdc: Option<TokenInfo>,
    /// The fee kind (`kind`) and the initial levels of what the chain charges beyond the base
    /// fee. Absent in folders written before fee kinds: `ethereum`.
    #[serde(default)]
    pub fees: ChainFees,
    /// The fee contracts placed for the kind.
    #[serde(default, skip_serializing_if = "FeeContracts::is_empty")]
    pub fee_contracts: FeeContracts,
    /// The chain's price feed, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_feed: Option<PriceFeedInfo>,
    /// x402 `auth-capture`'s escrow contracts, one entry per address set placed. Absent in
    /// folders written before the devnet had them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escrow_contracts: Vec<EscrowContracts>,
    /// The anvil process, for devnets started by `up` (which `down` stops).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

/// A test account: address and `0x`-hex private key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountEntry {
    #[serde(with = "checksummed")]
    pub address: Address,
    pub private_key: String,
}

impl std::fmt::Debug for AccountEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountEntry")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl From<&TestAccount> for AccountEntry {
    fn from(account: &TestAccount) -> Self {
        AccountEntry {
            address: account.address(),
            private_key: account.private_key_hex(),
        }
    }
}

impl DevnetManifest {
    pub(crate) fn new(
        anvil: &Path,
        options: &DevnetOptions,
        accounts: &DevnetAccounts,
        chains: &[DevnetChain],
        record_pids: bool,
    ) -> DevnetManifest {
        DevnetManifest {
            warning: WARNING.to_owned(),
            anvil: anvil.to_owned(),
            anvil_version: ANVIL_VERSION.to_owned(),
            mnemonic: options.mnemonic.clone(),
            chains: chains
                .iter()
                .map(|chain| ChainEntry {
                    network: chain.network(),
                    chain_id: chain.chain_id(),
                    name: chain.name().to_owned(),
                    rpc_url: chain.rpc_url().to_owned(),
                    base_fee_wei: chain.spec().base_fee_wei.to_string(),
                    token: chain.token().clone(),
                    canonical_usdc: chain.canonical_usdc().cloned(),
                    fees: chain.spec().fees.clone(),
                    fee_contracts: chain.fee_contracts().clone(),
                    price_feed: chain.price_feed().cloned(),
                    escrow_contracts: chain.escrow_contracts().to_vec(),
                    pid: record_pids.then(|| chain.pid()),
                })
                .collect(),
            deployer: (&accounts.deployer).into(),
            settlement_signer: (&accounts.settlement_signer).into(),
            accounts: accounts.payers.iter().map(AccountEntry::from).collect(),
            payer_balance: options.payer_balance.to_string(),
        }
    }

    /// Reads `dir/devnet.json`.
    pub fn read(dir: &Path) -> Result<DevnetManifest, DevnetError> {
        Self::read_optional(dir)?.ok_or_else(|| DevnetError::State {
            dir: dir.to_owned(),
            message: format!("there is no {MANIFEST_FILE}"),
        })
    }

    /// Reads `dir/devnet.json`, `None` when there is none.
    pub(crate) fn read_optional(dir: &Path) -> Result<Option<DevnetManifest>, DevnetError> {
        let path = dir.join(MANIFEST_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(DevnetError::io(format!("cannot read {}", path.display()))(
                    e,
                ));
            }
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| DevnetError::State {
                dir: dir.to_owned(),
                message: format!("{MANIFEST_FILE} is not a devnet manifest: {e}"),
            })
    }

    /// The chain with this id.
    pub fn chain(&self, chain_id: u64) -> Option<&ChainEntry> {
        self.chains.iter().find(|c| c.chain_id == chain_id)
    }

    /// The chain `selector` names: its chain id (`84532`), name (`base-sepolia`) or network
    /// (`eip155:84532`).
    pub fn find_chain(&self, selector: &str) -> Option<&ChainEntry> {
        let id = selector
            .strip_prefix("eip155:")
            .unwrap_or(selector)
            .parse::<u64>()
            .ok();
        self.chains
            .iter()
            .find(|c| Some(c.chain_id) == id || c.name == selector)
    }
}

/// Addresses in EIP-55 mixed case (alloy's serde writes lower case), as the x402 SDK and
/// explorers show them.
pub(crate) mod checksummed {
    use alloy::primitives::Address;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(address: &Address, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&address.to_checksum(None))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Address, D::Error> {
        Address::deserialize(deserializer)
    }
}

/// [`checksummed`] for an optional address.
pub(crate) mod checksummed_option {
    use alloy::primitives::Address;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        address: &Option<Address>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match address {
            Some(address) => serializer.serialize_some(&address.to_checksum(None)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Address>, D::Error> {
        Option::<Address>::deserialize(deserializer)
    }
}

/// `signer-<chain id>.key`.
pub(crate) fn signer_key_file(dir: &Path, chain_id: u64) -> PathBuf {
    dir.join(format!("signer-{chain_id}.key"))
}

/// Writes the key files, `purser.toml` and, last (its presence means the others are there),
/// `devnet.json` into `dir`, which is made absolute so `purser.toml` names the keys wherever
/// Purser runs from.
pub(crate) fn write_all(
    dir: &Path,
    manifest: &DevnetManifest,
    options: &DevnetOptions,
) -> Result<(), DevnetError> {
    std::fs::create_dir_all(dir)
        .map_err(DevnetError::io(format!("cannot create {}", dir.display())))?;
    let dir = dir
        .canonicalize()
        .map_err(DevnetError::io(format!("cannot resolve {}", dir.display())))?;
    for chain in &manifest.chains {
        write_secret(
            &signer_key_file(&dir, chain.chain_id),
            format!("{}\n", manifest.settlement_signer.private_key).as_bytes(),
        )?;
    }
    write_atomically(
        &dir.join(CONFIG_FILE),
        rails_toml(&dir, manifest, options.receipt_timeout_seconds).as_bytes(),
    )?;
    let json = serde_json::to_string_pretty(manifest).expect("the manifest serializes") + "\n";
    write_atomically(&dir.join(MANIFEST_FILE), json.as_bytes())
}

/// Writes a file only its owner may read (0600), whatever its mode was before.
fn write_secret(path: &Path, contents: &[u8]) -> Result<(), DevnetError> {
    let context = || format!("cannot write {}", path.display());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(DevnetError::io(context()))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(DevnetError::io(context()))?;
    file.write_all(contents).map_err(DevnetError::io(context()))
}

fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), DevnetError> {
    let partial = path.with_extension(format!("partial-{}", std::process::id()));
    std::fs::write(&partial, contents).map_err(DevnetError::io(format!(
        "cannot write {}",
        partial.display()
    )))?;
    std::fs::rename(&partial, path)
        .map_err(DevnetError::io(format!("cannot write {}", path.display())))
}

/// A TOML basic string.
fn toml_string(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            c if c.is_control() => quoted.push_str(&format!("\\u{:04X}", c as u32)),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// Whether `purser.toml` carries the settlement router's keys: each rail's `kind` and a
/// `[[router.price_feeds]]` table per price feed of the devnet ([`fee_routing_toml`]). Off, the
/// rails are all `ethereum` to the router and it prices gas at a fixed 3000 USD per ETH (what a
/// Purser that refused the keys needed: `RailConfig` denies unknown keys).
pub const WRITES_FEE_ROUTING_KEYS: bool = true;

/// How old a devnet price feed's answer may be before the router stops trusting it, as
/// `purser.toml` says: a day, so a devnet left running overnight still routes.
pub const PRICE_FEED_MAX_AGE_SECONDS: u64 = 86_400;

/// `purser.toml`: one `[[rails]]` per chain, in the format of [`purser_chain::config::RailConfig`],
/// with the router's keys when [`WRITES_FEE_ROUTING_KEYS`] is on.
pub(crate) fn rails_toml(
    dir: &Path,
    manifest: &DevnetManifest,
    receipt_timeout_seconds: u64,
) -> String {
    rails_toml_with(
        dir,
        manifest,
        receipt_timeout_seconds,
        WRITES_FEE_ROUTING_KEYS,
    )
}

/// [`rails_toml`], with or without the router's keys.
pub(crate) fn rails_toml_with(
    dir: &Path,
    manifest: &DevnetManifest,
    receipt_timeout_seconds: u64,
    fee_routing_keys: bool,
) -> String {
    let mut toml = String::from(
        "# Written by the Purser devnet for the anvil chains described in devnet.json beside it.\n\
         # Development only: the signer keys are public test keys.\n",
    );
    for chain in &manifest.chains {
        let key_file = signer_key_file(dir, chain.chain_id);
        let kind = if fee_routing_keys {
            format!("kind = {}\n", toml_string(chain.fees.kind().as_str()))
        } else {
            String::new()
        };
        toml.push_str(&format!(
            "\n[[rails]]\n\
             network = {network}\n\
             {kind}\
             rpc_urls = [{rpc_url}]\n\
             confirmations = 1\n\
             receipt_timeout_seconds = {receipt_timeout_seconds}\n\
             signers = [{{ file = {key_file} }}]\n",
            network = toml_string(&chain.network),
            rpc_url = toml_string(&chain.rpc_url),
            key_file = toml_string(&key_file.to_string_lossy()),
        ));
        for token in std::iter::once(&chain.token).chain(&chain.canonical_usdc) {
            toml.push_str(&format!(
                "\n[[rails.assets]]\n\
                 address = {address}\n\
                 name = {name}\n\
                 version = {version}\n\
                 decimals = {decimals}\n\
                 symbol = {symbol}\n",
                address = toml_string(&token.address.to_string()),
                name = toml_string(&token.name),
                version = toml_string(&token.version),
                decimals = token.decimals,
                symbol = toml_string(&token.symbol),
            ));
        }
    }
    toml.push_str(&router_toml(manifest, fee_routing_keys));
    toml
}

/// `[router]`: the head-stall check off (anvil mines only when a transaction arrives, so an
/// idle devnet's head is old without being stuck), and the price feeds the router converts gas
/// into the tokens' dollars with: with the routing keys, the devnet's own feeds
/// ([`fee_routing_toml`]); without them, or when the devnet has none, a fixed 3000 USD per ETH.
fn router_toml(manifest: &DevnetManifest, fee_routing_keys: bool) -> String {
    let mut toml = String::from("\n[router]\nstall_after_seconds = 0\n");
    let feeds = if fee_routing_keys {
        fee_routing_toml(manifest)
    } else {
        String::new()
    };
    if feeds.is_empty() {
        toml.push_str(
            "\n[[router.price_feeds]]\n\
             gas_token = \"ETH\"\n\
             currency = \"USD\"\n\
             fixed = \"3000\"\n",
        );
    } else {
        toml.push_str(&feeds);
    }
    toml
}

/// The `[[router.price_feeds]]` tables of the devnet's price feeds: each names its gas token
/// and currency, the rail of the chain holding it, its address, and
/// [`PRICE_FEED_MAX_AGE_SECONDS`].
pub(crate) fn fee_routing_toml(manifest: &DevnetManifest) -> String {
    let mut toml = String::new();
    for chain in &manifest.chains {
        if let Some(feed) = &chain.price_feed {
            toml.push_str(&format!(
                "\n[[router.price_feeds]]\n\
                 gas_token = {gas_token}\n\
                 currency = {currency}\n\
                 network = {network}\n\
                 aggregator = {aggregator}\n\
                 max_age_seconds = {PRICE_FEED_MAX_AGE_SECONDS}\n",
                gas_token = toml_string(&feed.base),
                currency = toml_string(&feed.quote),
                network = toml_string(&chain.network),
                aggregator = toml_string(&feed.address.to_checksum(None)),
            ));
        }
    }
    toml
}

#[cfg(test)]
mod tests {
    use alloy::primitives::address;

    use super::*;
    use crate::fees::{OpStackFees, PriceFeedSpec};

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(toml_string("x\u{1}"), r#""x\u0001""#);
    }

    fn token(address: Address) -> TokenInfo {
        TokenInfo {
            address,
            name: "USD Coin".to_owned(),
            version: "2".to_owned(),
            decimals: 6,
            symbol: "USDC".to_owned(),
        }
    }

    /// An OP Stack chain and an Ethereum chain with a feed, as a devnet records them.
    fn manifest() -> DevnetManifest {
        let account = AccountEntry {
            address: address!("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"),
            private_key: "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
                .to_owned(),
        };
        let op = ChainFees::OpStack(OpStackFees::base_sepolia());
        let feed = PriceFeedSpec::eth_usd();
        DevnetManifest {
            warning: WARNING.to_owned(),
            anvil: PathBuf::from("/bin/anvil"),
            anvil_version: ANVIL_VERSION.to_owned(),
            mnemonic: "test".to_owned(),
            chains: vec![
                ChainEntry {
                    network: "eip155:84532".to_owned(),
                    chain_id: 84532,
                    name: "base-sepolia".to_owned(),
                    rpc_url: "http://127.0.0.1:1".to_owned(),
                    base_fee_wei: "10000000".to_owned(),
                    token: token(Address::repeat_byte(1)),
                    canonical_usdc: None,
                    fee_contracts: op.contracts(),
                    fees: op,
                    price_feed: None,
                    escrow_contracts: EscrowContracts::all(),
                    pid: None,
                },
                ChainEntry {
                    network: "eip155:11155111".to_owned(),
                    chain_id: 11155111,
                    name: "ethereum-sepolia".to_owned(),
                    rpc_url: "http://127.0.0.1:2".to_owned(),
                    base_fee_wei: "20000000000".to_owned(),
                    token: token(Address::repeat_byte(2)),
                    canonical_usdc: None,
                    fees: ChainFees::Ethereum,
                    fee_contracts: FeeContracts::default(),
                    price_feed: Some(PriceFeedInfo {
                        address: address!("0x5FbDB2315678afecb367f032d93F642f64180aa3"),
                        base: feed.base.clone(),
                        quote: feed.quote.clone(),
                        description: feed.description(),
                        decimals: feed.decimals,
                        initial_answer: feed.initial_answer,
                    }),
                    escrow_contracts: Vec::new(),
                    pid: None,
                },
            ],
            deployer: account.clone(),
            settlement_signer: account,
            accounts: Vec::new(),
            payer_balance: "1".to_owned(),
        }
    }

    #[test]
    fn chains_are_found_by_id_name_or_network() {
        let manifest = manifest();
        for selector in ["84532", "base-sepolia", "eip155:84532"] {
            assert_eq!(manifest.find_chain(selector).unwrap().chain_id, 84532);
        }
        assert_eq!(
            manifest.find_chain("ethereum-sepolia").unwrap().chain_id,
            11155111
        );
        for selector in ["1", "base", "eip155:", "eip155:base-sepolia"] {
            assert!(manifest.find_chain(selector).is_none(), "{selector}");
        }
    }

    #[test]
    fn a_manifest_from_before_fee_kinds_reads_as_ethereum_chains() {
        let mut json = serde_json::to_value(manifest()).unwrap();
        for chain in json["chains"].as_array_mut().unwrap() {
            let chain = chain.as_object_mut().unwrap();
            for key in ["fees", "feeContracts", "priceFeed", "escrowContracts"] {
                chain.remove(key);
            }
        }
        let old: DevnetManifest = serde_json::from_value(json).unwrap();
        assert!(old.chains.iter().all(|c| c.fees == ChainFees::Ethereum
            && c.fee_contracts.is_empty()
            && c.price_feed.is_none()
            && c.escrow_contracts.is_empty()));
    }

    /// `purser.toml` as Purser's configuration reads the parts the devnet writes.
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct PurserToml {
        rails: Vec<purser_chain::config::RailConfig>,
        router: RouterTable,
    }

    /// The `[router]` keys the devnet writes (`purser_router::config::RouterConfig` has these
    /// and more).
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RouterTable {
        stall_after_seconds: u64,
        price_feeds: Vec<purser_chain::config::PriceFeedConfig>,
    }

    #[test]
    fn purser_toml_names_each_rails_kind_and_the_devnets_feed() {
        use purser_chain::config::RailKind;

        let manifest = manifest();
        let dir = Path::new("/devnet");
        assert_eq!(
            rails_toml(dir, &manifest, 30),
            rails_toml_with(dir, &manifest, 30, WRITES_FEE_ROUTING_KEYS)
        );

        // With the routing keys: every rail names its kind, and the devnet's feed is the
        // router's.
        let on: PurserToml = toml::from_str(&rails_toml_with(dir, &manifest, 30, true)).unwrap();
        let kinds: Vec<RailKind> = on.rails.iter().map(|rail| rail.kind).collect();
        assert_eq!(kinds, [RailKind::OpStack, RailKind::Ethereum]);
        assert_eq!(on.rails[0].assets.len(), 1);
        assert_eq!(on.router.stall_after_seconds, 0);
        assert_eq!(on.router.price_feeds.len(), 1);
        let feed = &on.router.price_feeds[0];
        assert_eq!(
            (feed.gas_token.as_str(), feed.currency.as_str()),
            ("ETH", "USD")
        );
        assert_eq!(feed.network.as_deref(), Some("eip155:11155111"));
        assert_eq!(
            feed.aggregator.as_deref(),
            Some("0x5FbDB2315678afecb367f032d93F642f64180aa3")
        );
        assert_eq!(feed.fixed, None);
        assert_eq!(feed.max_age_seconds, PRICE_FEED_MAX_AGE_SECONDS);

        // Without them, or with no feed on the devnet: no kinds (so `ethereum`), and a fixed
        // price.
        let off: PurserToml = toml::from_str(&rails_toml_with(dir, &manifest, 30, false)).unwrap();
        assert!(off.rails.iter().all(|rail| rail.kind == RailKind::Ethereum));
        let mut no_feed = manifest.clone();
        no_feed.chains[1].price_feed = None;
        let no_feed: PurserToml =
            toml::from_str(&rails_toml_with(dir, &no_feed, 30, true)).unwrap();
        assert_eq!(no_feed.rails[0].kind, RailKind::OpStack);
        for file in [off, no_feed] {
            assert_eq!(file.router.price_feeds.len(), 1);
            assert_eq!(file.router.price_feeds[0].fixed.as_deref(), Some("3000"));
            assert_eq!(file.router.price_feeds[0].aggregator, None);
        }
    }
}
