//! What Purser can settle: per network, the assets with their decimals and EIP-712 domains.
//! Built by the binary from the rails' configuration; the registry prices resources in them.

use std::collections::BTreeMap;

use purser_domain::{Error, ErrorCode, Result};

/// One settleable token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetInfo {
    /// CAIP-2.
    pub network: String,
    /// EIP-55 checksummed contract address.
    pub address: String,
    pub decimals: u8,
    pub eip712_name: String,
    pub eip712_version: String,
    pub symbol: Option<String>,
}

/// Every network and asset Purser settles, in configuration order.
#[derive(Debug, Clone, Default)]
pub struct AssetCatalog {
    networks: BTreeMap<String, Vec<AssetInfo>>,
    /// Per network with an escrow: the facilitator's `auth-capture` terms, as its `/supported`
    /// kind gives them (`extra`), for escrowed offers to carry.
    escrow_terms: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
}

impl AssetCatalog {
    pub fn new(assets: impl IntoIterator<Item = AssetInfo>) -> Self {
        let mut networks: BTreeMap<String, Vec<AssetInfo>> = BTreeMap::new();
        for asset in assets {
            networks
                .entry(asset.network.clone())
                .or_default()
                .push(asset);
        }
        Self {
            networks,
            escrow_terms: BTreeMap::new(),
        }
    }

    /// Offers escrowed payments on `network`, on the facilitator's `terms`.
    pub fn with_escrow_terms(
        mut self,
        network: &str,
        terms: serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        self.escrow_terms.insert(network.to_owned(), terms);
        self
    }

    /// The facilitator's `auth-capture` terms on `network`, when it offers escrowed payments.
    pub fn escrow_terms(
        &self,
        network: &str,
    ) -> Option<&serde_json::Map<String, serde_json::Value>> {
        self.escrow_terms.get(network)
    }

    pub fn networks(&self) -> impl Iterator<Item = (&str, &[AssetInfo])> {
        self.networks
            .iter()
            .map(|(n, a)| (n.as_str(), a.as_slice()))
    }

    pub fn supports_network(&self, network: &str) -> bool {
        self.networks.contains_key(network)
    }

    /// The asset on `network`: the one at `address` (any case), or the network's first when
    /// `address` is `None`.
    pub fn asset(&self, network: &str, address: Option<&str>) -> Result<&AssetInfo> {
        let assets = self.networks.get(network).ok_or_else(|| {
            Error::new(
                ErrorCode::UnsupportedNetwork,
                format!(
                    "Purser settles no network `{}`; it settles: {}",
                    crate::validate::clip(network, 64),
                    self.networks.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        })?;
        match address {
            None => assets.first(),
            Some(address) => assets
                .iter()
                .find(|a| a.address.eq_ignore_ascii_case(address.trim())),
        }
        .ok_or_else(|| {
            Error::new(
                ErrorCode::UnsupportedNetwork,
                format!(
                    "Purser settles no asset `{}` on {network}",
                    crate::validate::clip(address.unwrap_or(""), 64)
                ),
            )
        })
    }
}
