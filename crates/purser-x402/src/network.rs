//! Networks: CAIP-2 ids (`eip155:84532`, `solana:5eykt4Us…`), the v1 names that map onto them
//! (`base-sepolia`), and the family patterns (`eip155:*`) that `/supported` keys signers by.
//!
//! Parsing is syntactic plus what the SDK checks: CAIP-2's grammar (namespace `[-a-z0-9]{3,8}`,
//! reference `[-_a-zA-Z0-9]{1,32}`), and for `eip155` a decimal chain id that is a JavaScript
//! safe integer (the SDK's parser is `^eip155:(\d+)$` followed by `Number.isSafeInteger`).
//! Purser is stricter in one way: an `eip155` reference must be canonical (no leading zeros,
//! not zero), so one chain has exactly one spelling and ids can be compared as strings.

use std::fmt;
use std::str::FromStr;

use purser_core::{Error, ErrorCode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{INVALID_NETWORK, snippet};

/// The CAIP-2 namespace of EVM chains.
pub const EIP155_NAMESPACE: &str = "eip155";
/// The CAIP-2 namespace of Solana clusters.
pub const SOLANA_NAMESPACE: &str = "solana";
/// The `/supported` signer key covering every EVM chain, as the TS facilitator emits it.
pub const EIP155_ALL: &str = "eip155:*";
/// The largest integer JavaScript represents exactly (`Number.MAX_SAFE_INTEGER`).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// v1 network names and their CAIP-2 ids, as `@x402/evm` (`EVM_NETWORK_CHAIN_ID_MAP`) and
/// `@x402/svm` map them in SDK 2.27.
pub const V1_NETWORKS: &[(&str, &str)] = &[
    ("ethereum", "eip155:1"),
    ("sepolia", "eip155:11155111"),
    ("abstract", "eip155:2741"),
    ("abstract-testnet", "eip155:11124"),
    ("base-sepolia", "eip155:84532"),
    ("base", "eip155:8453"),
    ("avalanche-fuji", "eip155:43113"),
    ("avalanche", "eip155:43114"),
    ("iotex", "eip155:4689"),
    ("sei", "eip155:1329"),
    ("sei-testnet", "eip155:1328"),
    ("polygon", "eip155:137"),
    ("polygon-amoy", "eip155:80002"),
    ("peaq", "eip155:3338"),
    ("story", "eip155:1514"),
    ("educhain", "eip155:41923"),
    ("skale-base-sepolia", "eip155:324705682"),
    ("megaeth", "eip155:4326"),
    ("monad", "eip155:143"),
    ("stable", "eip155:988"),
    ("stable-testnet", "eip155:2201"),
    ("celo", "eip155:42220"),
    ("flare", "eip155:14"),
    ("solana", "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp"),
    ("solana-devnet", "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1"),
    ("solana-testnet", "solana:4uhcVJyU9pJkvQyS88uRDiswHXSCkY3z"),
];

/// What kind of chain a network id names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NetworkKind {
    /// `eip155:<chain id>`.
    Evm { chain_id: u64 },
    /// `solana:<genesis hash prefix>`; valid CAIP-2, but Purser settles only on EVM chains.
    Solana,
    /// Any other syntactically valid CAIP-2 id.
    Other,
}

/// A validated CAIP-2 network id.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Network {
    id: String,
    /// Where the colon is; derived from `id`, so the derived comparisons agree with `id`'s.
    colon: usize,
}

impl Network {
    /// Parses a CAIP-2 id; errors are `invalid_network` and quote at most a short prefix.
    pub fn parse(s: &str) -> Result<Self, Error> {
        parse_caip2(s).map_err(|problem| Error::new(ErrorCode::InvalidNetwork, problem))
    }

    /// The EVM network with this chain id (`eip155:<id>`); the id must be a safe integer.
    pub fn evm(chain_id: u64) -> Result<Self, Error> {
        Network::parse(&format!("{EIP155_NAMESPACE}:{chain_id}"))
    }

    /// The CAIP-2 id of a v1 network name, if the SDK knows the name.
    pub fn from_v1_name(name: &str) -> Option<Self> {
        V1_NETWORKS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, id)| Network::parse(id).expect("the v1 table holds valid ids"))
    }

    /// Parses a v1 network name (`base-sepolia`) into its CAIP-2 id; unknown names are
    /// `invalid_network`.
    pub fn parse_v1_name(name: &str) -> Result<Self, Error> {
        Network::from_v1_name(name).ok_or_else(|| {
            Error::new(
                ErrorCode::InvalidNetwork,
                format!(
                    "{INVALID_NETWORK}: {} is not a known x402 v1 network name",
                    snippet(name)
                ),
            )
        })
    }

    /// The v1 name of this network, if it has one.
    pub fn v1_name(&self) -> Option<&'static str> {
        V1_NETWORKS
            .iter()
            .find(|(_, id)| *id == self.id)
            .map(|(n, _)| *n)
    }

    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// The part before the colon (`eip155`).
    pub fn namespace(&self) -> &str {
        &self.id[..self.colon]
    }

    /// The part after the colon (`84532`).
    pub fn reference(&self) -> &str {
        &self.id[self.colon + 1..]
    }

    pub fn kind(&self) -> NetworkKind {
        match self.namespace() {
            EIP155_NAMESPACE => NetworkKind::Evm {
                chain_id: self
                    .reference()
                    .parse()
                    .expect("validated as a safe integer"),
            },
            SOLANA_NAMESPACE => NetworkKind::Solana,
            _ => NetworkKind::Other,
        }
    }

    /// The EVM chain id, or `None` for a non-EVM network.
    pub fn evm_chain_id(&self) -> Option<u64> {
        match self.kind() {
            NetworkKind::Evm { chain_id } => Some(chain_id),
            _ => None,
        }
    }

    pub fn is_evm(&self) -> bool {
        self.namespace() == EIP155_NAMESPACE
    }
}

/// CAIP-2's namespace grammar: `[-a-z0-9]{3,8}`.
fn is_namespace(s: &str) -> bool {
    (3..=8).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn parse_caip2(s: &str) -> Result<Network, String> {
    let invalid = |why: &str| format!("{INVALID_NETWORK}: {} {why}", snippet(s));
    let Some((namespace, reference)) = s.split_once(':') else {
        return Err(invalid(
            "is not a CAIP-2 id (`namespace:reference`, as in `eip155:8453`)",
        ));
    };
    if !is_namespace(namespace) {
        return Err(invalid("has a namespace that is not 3 to 8 of [-a-z0-9]"));
    }
    let reference_ok = (1..=32).contains(&reference.len())
        && reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !reference_ok {
        return Err(invalid(
            "has a reference that is not 1 to 32 of [-_a-zA-Z0-9]",
        ));
    }
    if namespace == EIP155_NAMESPACE {
        let digits = reference.bytes().all(|b| b.is_ascii_digit());
        let canonical = !reference.starts_with('0');
        let safe = reference
            .parse::<u64>()
            .is_ok_and(|id| id <= MAX_SAFE_INTEGER);
        if !(digits && canonical && safe) {
            return Err(invalid(
                "is not `eip155:` followed by a positive decimal chain id without leading zeros, at most 2^53-1",
            ));
        }
    }
    Ok(Network {
        id: s.to_owned(),
        colon: namespace.len(),
    })
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Network({})", self.id)
    }
}

impl FromStr for Network {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Network::parse(s)
    }
}

impl Serialize for Network {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.id)
    }
}

impl<'de> Deserialize<'de> for Network {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        parse_caip2(&s).map_err(serde::de::Error::custom)
    }
}

/// A `/supported` signer key: one network, or every network of a namespace (`eip155:*`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum NetworkPattern {
    Exact(Network),
    /// Every network in the namespace, written `<namespace>:*`.
    Namespace(String),
}

impl NetworkPattern {
    /// `eip155:*`.
    pub fn eip155() -> Self {
        NetworkPattern::Namespace(EIP155_NAMESPACE.to_owned())
    }

    pub fn parse(s: &str) -> Result<Self, Error> {
        match s.strip_suffix(":*") {
            Some(namespace) if is_namespace(namespace) => {
                Ok(NetworkPattern::Namespace(namespace.to_owned()))
            }
            Some(_) => Err(Error::new(
                ErrorCode::InvalidNetwork,
                format!(
                    "{INVALID_NETWORK}: {} has a namespace that is not 3 to 8 of [-a-z0-9]",
                    snippet(s)
                ),
            )),
            None => Network::parse(s).map(NetworkPattern::Exact),
        }
    }

    pub fn matches(&self, network: &Network) -> bool {
        match self {
            NetworkPattern::Exact(n) => n == network,
            NetworkPattern::Namespace(ns) => network.namespace() == ns,
        }
    }
}

impl fmt::Display for NetworkPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetworkPattern::Exact(n) => f.write_str(n.as_str()),
            NetworkPattern::Namespace(ns) => write!(f, "{ns}:*"),
        }
    }
}

impl FromStr for NetworkPattern {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        NetworkPattern::parse(s)
    }
}

impl Serialize for NetworkPattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NetworkPattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        NetworkPattern::parse(&s).map_err(|e| serde::de::Error::custom(e.message()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_evm_and_solana_ids() {
        let n = Network::parse("eip155:84532").unwrap();
        assert_eq!(n.kind(), NetworkKind::Evm { chain_id: 84532 });
        assert_eq!(n.namespace(), "eip155");
        assert_eq!(n.reference(), "84532");
        assert_eq!(n.v1_name(), Some("base-sepolia"));
        assert!(n.is_evm());

        let s = Network::parse("solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp").unwrap();
        assert_eq!(s.kind(), NetworkKind::Solana);
        assert_eq!(s.evm_chain_id(), None);
        assert_eq!(s.v1_name(), Some("solana"));

        let other = Network::parse("cosmos:cosmoshub-4").unwrap();
        assert_eq!(other.kind(), NetworkKind::Other);
        assert_eq!(
            Network::evm(MAX_SAFE_INTEGER).unwrap().evm_chain_id(),
            Some(MAX_SAFE_INTEGER)
        );
    }

    #[test]
    fn refuses_what_is_not_caip2_or_not_canonical() {
        for bad in [
            "",
            "base",
            "eip155",
            "eip155:",
            ":1",
            "eip155:*",
            "eip155:0",
            "eip155:084532",
            "eip155:-1",
            "eip155:1.0",
            "eip155:0x14a34",
            "eip155:9007199254740992",
            "eip155:99999999999999999999999",
            "EIP155:1",
            "ab:1",
            "abcdefghi:1",
            "eip155:1:2",
            "eip155: 1",
            "solana:",
            "solana:abc/def",
            "solana:123456789012345678901234567890123",
        ] {
            let err = Network::parse(bad).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidNetwork, "{bad}");
        }
    }

    #[test]
    fn v1_names_map_both_ways() {
        for (name, id) in V1_NETWORKS {
            let n = Network::from_v1_name(name).unwrap();
            assert_eq!(n.as_str(), *id);
            assert_eq!(n.v1_name(), Some(*name));
        }
        assert_eq!(
            Network::parse_v1_name("base").unwrap().evm_chain_id(),
            Some(8453)
        );
        let err = Network::parse_v1_name("eip155:8453").unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidNetwork);
        assert_eq!(V1_NETWORKS.len(), 26);
    }

    #[test]
    fn patterns_match_families() {
        let all = NetworkPattern::parse(EIP155_ALL).unwrap();
        assert_eq!(all, NetworkPattern::eip155());
        assert_eq!(all.to_string(), EIP155_ALL);
        assert!(all.matches(&Network::parse("eip155:1").unwrap()));
        assert!(!all.matches(&Network::parse("solana:devnet").unwrap()));
        let one = NetworkPattern::parse("eip155:8453").unwrap();
        assert!(one.matches(&Network::parse("eip155:8453").unwrap()));
        assert!(!one.matches(&Network::parse("eip155:1").unwrap()));
        assert!(NetworkPattern::parse("*").is_err());
        assert!(NetworkPattern::parse("EIP:*").is_err());
        assert_eq!(
            serde_json::to_string(&NetworkPattern::eip155()).unwrap(),
            "\"eip155:*\""
        );
    }

    #[test]
    fn serde_errors_carry_the_sentinel() {
        let err = serde_json::from_str::<Network>("\"base\"").unwrap_err();
        assert!(err.to_string().starts_with(INVALID_NETWORK), "{err}");
    }
}
