//! What a devnet folder holds: `devnet.json` (the chains, tokens and test accounts),
//! `purser.toml` (the `[[rails]]` Purser settles on) and `signer-<chain id>.key` (the
//! settlement signer's key, 0600).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use alloy::primitives::Address;
use serde::{Deserialize, Serialize};

use crate::chain::{DevnetChain, TokenInfo};
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

/// `purser.toml`: one `[[rails]]` per chain, in the format of [`purser_chain::config::RailConfig`].
pub(crate) fn rails_toml(
    dir: &Path,
    manifest: &DevnetManifest,
    receipt_timeout_seconds: u64,
) -> String {
    let mut toml = String::from(
        "# Written by the Purser devnet for the anvil chains described in devnet.json beside it.\n\
         # Development only: the signer keys are public test keys.\n",
    );
    for chain in &manifest.chains {
        let key_file = signer_key_file(dir, chain.chain_id);
        toml.push_str(&format!(
            "\n[[rails]]\n\
             network = {network}\n\
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
    // The settlement router converts gas into the tokens' dollars; anvil mines only when a
    // transaction arrives, so an idle devnet's head is old without being stuck.
    toml.push_str(
        "\n[router]\n\
         stall_after_seconds = 0\n\
         \n[[router.price_feeds]]\n\
         gas_token = \"ETH\"\n\
         currency = \"USD\"\n\
         fixed = \"3000\"\n",
    );
    toml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(toml_string("x\u{1}"), r#""x\u0001""#);
    }
}
