//! Fee mechanics: how each kind of chain charges for a transaction, the contracts that answer
//! fee questions where the real chains answer them, and changing a chain's fee levels while it
//! runs.
//!
//! - `op-stack` chains (Base, Optimism) get [`DevnetL1Block`](crate::contracts::DevnetL1Block)
//!   at the L1Block predeploy ([`L1_BLOCK_ADDRESS`]) with its L1 fee parameters written into
//!   the storage slots the OP Stack keeps them in ([`l1_block_slots`]), and
//!   [`DevnetGasPriceOracle`](crate::contracts::DevnetGasPriceOracle) at the GasPriceOracle
//!   predeploy ([`GAS_PRICE_ORACLE_ADDRESS`]), which reads them and computes the Fjord L1 fee
//!   and the Isthmus operator fee. A tool that writes those slots moves the oracle's answers.
//! - `arbitrum` chains get [`DevnetNodeInterface`](crate::contracts::DevnetNodeInterface) at
//!   [`NODE_INTERFACE_ADDRESS`] (its storage keeps the L1 figures) and
//!   [`DevnetArbGasInfo`](crate::contracts::DevnetArbGasInfo) at [`ARB_GAS_INFO_ADDRESS`],
//!   which reads them from there.
//! - `ethereum` chains charge execution gas alone: nothing is placed.
//!
//! A chain may also hold a Chainlink-style price feed ([`PriceFeedSpec`]), deployed by the
//! deployer account, which owns it.
//!
//! anvil itself charges none of this (the chains do not run in anvil's OP mode): a receipt's
//! cost is its gas used × its effective gas price, whatever the contracts say.

use std::str::FromStr;

use alloy::primitives::{Address, B256, U256, address};
use serde::{Deserialize, Serialize};

use crate::DevnetError;

/// The OP Stack's L1Block predeploy, where the devnet places `DevnetL1Block`.
pub const L1_BLOCK_ADDRESS: Address = address!("0x4200000000000000000000000000000000000015");
/// The OP Stack's GasPriceOracle predeploy, where the devnet places `DevnetGasPriceOracle`.
pub const GAS_PRICE_ORACLE_ADDRESS: Address =
    address!("0x420000000000000000000000000000000000000F");
/// Arbitrum's NodeInterface, where the devnet places `DevnetNodeInterface`.
pub const NODE_INTERFACE_ADDRESS: Address = address!("0x00000000000000000000000000000000000000C8");
/// Arbitrum's ArbGasInfo precompile, where the devnet places `DevnetArbGasInfo`.
pub const ARB_GAS_INFO_ADDRESS: Address = address!("0x000000000000000000000000000000000000006C");

/// Where the L1Block predeploy keeps the L1 fee parameters (its layout since Isthmus), and
/// where in a packed slot each value sits (bits counted from the low-order end, as Solidity
/// packs them).
pub mod l1_block_slots {
    /// `basefee`: the L1 base fee, wei.
    pub const L1_BASE_FEE: u64 = 1;
    /// `sequenceNumber` (bits 0-63), `blobBaseFeeScalar` (64-95), `baseFeeScalar` (96-127).
    pub const FEE_SCALARS: u64 = 3;
    /// `blobBaseFee`: the L1 blob base fee, wei.
    pub const BLOB_BASE_FEE: u64 = 7;
    /// `operatorFeeConstant` (bits 0-63), `operatorFeeScalar` (64-95).
    pub const OPERATOR_FEE: u64 = 8;

    pub const BLOB_BASE_FEE_SCALAR_SHIFT: usize = 64;
    pub const BASE_FEE_SCALAR_SHIFT: usize = 96;
    pub const OPERATOR_FEE_CONSTANT_SHIFT: usize = 0;
    pub const OPERATOR_FEE_SCALAR_SHIFT: usize = 64;
}

/// Where `DevnetNodeInterface` keeps its figures.
pub mod node_interface_slots {
    /// `l1BaseFeeEstimate`, wei.
    pub const L1_BASE_FEE_ESTIMATE: u64 = 0;
    /// `perTxOverheadBytes`.
    pub const PER_TX_OVERHEAD_BYTES: u64 = 1;
}

/// `value` (`bits` wide) written into `word` at bit `shift`, the other bits kept.
pub(crate) fn with_bits(word: U256, shift: usize, bits: usize, value: u64) -> U256 {
    let mask = ((U256::from(1) << bits) - U256::from(1)) << shift;
    (word & !mask) | ((U256::from(value) << shift) & mask)
}

/// The `bits`-wide value at bit `shift` of `word`.
#[cfg(test)]
pub(crate) fn bits_of(word: U256, shift: usize, bits: usize) -> u64 {
    let mask = (U256::from(1) << bits) - U256::from(1);
    ((word >> shift) & mask).to::<u64>()
}

pub(crate) fn word(value: U256) -> B256 {
    B256::from(value)
}

/// How a chain charges for a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FeeKind {
    /// An OP Stack rollup: execution gas, the L1 data fee, the operator fee.
    OpStack,
    /// Arbitrum Nitro: execution gas plus the L1 component, both in L2 gas.
    Arbitrum,
    /// Ethereum: execution gas alone.
    Ethereum,
}

impl FeeKind {
    /// `op-stack`, `arbitrum` or `ethereum`, as `purser.toml`'s `kind` names it.
    pub fn as_str(self) -> &'static str {
        match self {
            FeeKind::OpStack => "op-stack",
            FeeKind::Arbitrum => "arbitrum",
            FeeKind::Ethereum => "ethereum",
        }
    }
}

impl From<FeeKind> for purser_chain::config::RailKind {
    /// The rail kind Purser's configuration names the same way.
    fn from(kind: FeeKind) -> Self {
        match kind {
            FeeKind::OpStack => purser_chain::config::RailKind::OpStack,
            FeeKind::Arbitrum => purser_chain::config::RailKind::Arbitrum,
            FeeKind::Ethereum => purser_chain::config::RailKind::Ethereum,
        }
    }
}

impl std::fmt::Display for FeeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for FeeKind {
    type Err = DevnetError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "op-stack" => Ok(FeeKind::OpStack),
            "arbitrum" => Ok(FeeKind::Arbitrum),
            "ethereum" => Ok(FeeKind::Ethereum),
            other => Err(DevnetError::Options(format!(
                "unknown fee kind `{other}` (op-stack, arbitrum or ethereum)"
            ))),
        }
    }
}

/// A chain's fee kind with the initial levels of what it charges beyond the base fee (which
/// is [`crate::DevnetChainSpec::base_fee_wei`] for every kind). `devnet.json` records it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ChainFees {
    OpStack(OpStackFees),
    Arbitrum(ArbitrumFees),
    /// Execution gas alone (also what a devnet recorded before fee kinds existed was).
    #[default]
    Ethereum,
}

impl ChainFees {
    pub fn kind(&self) -> FeeKind {
        match self {
            ChainFees::OpStack(_) => FeeKind::OpStack,
            ChainFees::Arbitrum(_) => FeeKind::Arbitrum,
            ChainFees::Ethereum => FeeKind::Ethereum,
        }
    }

    /// The addresses of the contracts placed for this kind.
    pub fn contracts(&self) -> FeeContracts {
        match self {
            ChainFees::OpStack(_) => FeeContracts {
                l1_block: Some(L1_BLOCK_ADDRESS),
                gas_price_oracle: Some(GAS_PRICE_ORACLE_ADDRESS),
                ..FeeContracts::default()
            },
            ChainFees::Arbitrum(_) => FeeContracts {
                node_interface: Some(NODE_INTERFACE_ADDRESS),
                arb_gas_info: Some(ARB_GAS_INFO_ADDRESS),
                ..FeeContracts::default()
            },
            ChainFees::Ethereum => FeeContracts::default(),
        }
    }
}

/// The L1 fee parameters of an OP Stack chain, as its L1Block predeploy holds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpStackFees {
    /// `basefee`: the L1 base fee, wei.
    #[serde(with = "decimal")]
    pub l1_base_fee_wei: u128,
    /// `blobBaseFee`: the L1 blob base fee, wei.
    #[serde(with = "decimal")]
    pub blob_base_fee_wei: u128,
    /// `baseFeeScalar`, in millionths.
    pub base_fee_scalar: u32,
    /// `blobBaseFeeScalar`, in millionths.
    pub blob_base_fee_scalar: u32,
    /// `operatorFeeScalar`, in millionths (Isthmus).
    pub operator_fee_scalar: u32,
    /// `operatorFeeConstant`, wei (Isthmus).
    #[serde(with = "decimal")]
    pub operator_fee_constant_wei: u64,
}

impl OpStackFees {
    /// Base's scalars (base fee 2,269, blob base fee 1,055,762), an L1 base fee of 1 gwei, a blob
    /// base fee of 1 wei, no operator fee.
    pub fn base_sepolia() -> Self {
        Self {
            l1_base_fee_wei: 1_000_000_000,
            blob_base_fee_wei: 1,
            base_fee_scalar: 2_269,
            blob_base_fee_scalar: 1_055_762,
            operator_fee_scalar: 0,
            operator_fee_constant_wei: 0,
        }
    }

    /// OP Mainnet's scalars (base fee 5,227, blob base fee 1,014,213), an L1 base fee of 1 gwei,
    /// a blob base fee of 1 wei, no operator fee.
    pub fn optimism_sepolia() -> Self {
        Self {
            base_fee_scalar: 5_227,
            blob_base_fee_scalar: 1_014_213,
            ..Self::base_sepolia()
        }
    }
}

/// The L1 figures of an Arbitrum chain, as `DevnetNodeInterface` keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArbitrumFees {
    /// ArbOS's estimate of the L1 base fee: the price of one L1 gas unit, wei.
    #[serde(with = "decimal")]
    pub l1_base_fee_estimate_wei: u128,
    /// Bytes charged to every transaction besides its calldata.
    pub per_tx_overhead_bytes: u64,
}

impl Default for ArbitrumFees {
    /// An L1 base fee estimate of 0.1 gwei and Arbitrum's fixed cost estimate of 140 bytes.
    fn default() -> Self {
        Self {
            l1_base_fee_estimate_wei: 100_000_000,
            per_tx_overhead_bytes: 140,
        }
    }
}

/// The fee contracts on a chain, as `devnet.json` records them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeeContracts {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::files::checksummed_option"
    )]
    pub l1_block: Option<Address>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::files::checksummed_option"
    )]
    pub gas_price_oracle: Option<Address>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::files::checksummed_option"
    )]
    pub node_interface: Option<Address>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::files::checksummed_option"
    )]
    pub arb_gas_info: Option<Address>,
}

impl FeeContracts {
    pub fn is_empty(&self) -> bool {
        *self == FeeContracts::default()
    }
}

/// Fee levels to set on a running chain ([`crate::DevnetChain::set_fees`]), or read from it
/// ([`crate::DevnetChain::fee_levels`]). Only the fields meaningful to the chain's kind may be
/// set; reading fills exactly those.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeeLevels {
    /// The chain's own base fee (every kind), wei.
    pub base_fee_wei: Option<u128>,
    /// `op-stack`: the L1Block's L1 base fee; `arbitrum`: the L1 base fee estimate. Wei.
    pub l1_base_fee_wei: Option<u128>,
    /// `op-stack`: the L1 blob base fee, wei.
    pub blob_base_fee_wei: Option<u128>,
    /// `op-stack`: the base fee scalar, millionths.
    pub base_fee_scalar: Option<u32>,
    /// `op-stack`: the blob base fee scalar, millionths.
    pub blob_base_fee_scalar: Option<u32>,
    /// `op-stack`: the operator fee scalar, millionths.
    pub operator_fee_scalar: Option<u32>,
    /// `op-stack`: the operator fee constant, wei.
    pub operator_fee_constant_wei: Option<u64>,
    /// `arbitrum`: bytes charged to every transaction besides its calldata.
    pub per_tx_overhead_bytes: Option<u64>,
}

impl FeeLevels {
    pub fn is_empty(&self) -> bool {
        *self == FeeLevels::default()
    }

    /// The names of the fields that are set, each with the kinds it is meaningful to.
    fn set_fields(&self) -> Vec<(&'static str, &'static [FeeKind])> {
        const ALL: &[FeeKind] = &[FeeKind::OpStack, FeeKind::Arbitrum, FeeKind::Ethereum];
        const L1: &[FeeKind] = &[FeeKind::OpStack, FeeKind::Arbitrum];
        const OP: &[FeeKind] = &[FeeKind::OpStack];
        const ARBITRUM: &[FeeKind] = &[FeeKind::Arbitrum];
        [
            ("base_fee_wei", self.base_fee_wei.is_some(), ALL),
            ("l1_base_fee_wei", self.l1_base_fee_wei.is_some(), L1),
            ("blob_base_fee_wei", self.blob_base_fee_wei.is_some(), OP),
            ("base_fee_scalar", self.base_fee_scalar.is_some(), OP),
            (
                "blob_base_fee_scalar",
                self.blob_base_fee_scalar.is_some(),
                OP,
            ),
            (
                "operator_fee_scalar",
                self.operator_fee_scalar.is_some(),
                OP,
            ),
            (
                "operator_fee_constant_wei",
                self.operator_fee_constant_wei.is_some(),
                OP,
            ),
            (
                "per_tx_overhead_bytes",
                self.per_tx_overhead_bytes.is_some(),
                ARBITRUM,
            ),
        ]
        .into_iter()
        .filter(|(_, set, _)| *set)
        .map(|(name, _, kinds)| (name, kinds))
        .collect()
    }

    /// Fails naming the first field that does not apply to a chain of `kind`.
    pub(crate) fn check_for(&self, kind: FeeKind, chain: &str) -> Result<(), DevnetError> {
        match self
            .set_fields()
            .into_iter()
            .find(|(_, kinds)| !kinds.contains(&kind))
        {
            Some((name, kinds)) => Err(DevnetError::Options(format!(
                "`{name}` does not apply to {chain}, an {kind} chain (only to {})",
                kinds
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
            None => Ok(()),
        }
    }
}

/// A Chainlink-style price feed to deploy on a chain: how many `quote` one `base` is worth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceFeedSpec {
    /// What is priced, as price feeds name a gas token: `ETH`.
    pub base: String,
    /// What it is priced in: `USD`.
    pub quote: String,
    pub decimals: u8,
    /// The first round's answer, in units of 10^-decimals `quote`.
    pub initial_answer: i128,
}

impl PriceFeedSpec {
    /// ETH/USD with 8 decimals, as Chainlink's, answering 3000.00000000.
    pub fn eth_usd() -> Self {
        Self {
            base: "ETH".to_owned(),
            quote: "USD".to_owned(),
            decimals: 8,
            // 3000.00000000
            initial_answer: 300_000_000_000,
        }
    }

    /// `ETH / USD`, as Chainlink describes its feeds.
    pub fn description(&self) -> String {
        format!("{} / {}", self.base, self.quote)
    }
}

/// A deployed price feed, as `devnet.json` records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PriceFeedInfo {
    #[serde(with = "crate::files::checksummed")]
    pub address: Address,
    pub base: String,
    pub quote: String,
    pub description: String,
    pub decimals: u8,
    /// The answer the feed was deployed with, a decimal string in units of 10^-decimals.
    #[serde(with = "decimal")]
    pub initial_answer: i128,
}

impl PriceFeedInfo {
    pub fn spec(&self) -> PriceFeedSpec {
        PriceFeedSpec {
            base: self.base.clone(),
            quote: self.quote.clone(),
            decimals: self.decimals,
            initial_answer: self.initial_answer,
        }
    }
}

/// One round of a price feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriceRound {
    pub round_id: u128,
    /// In units of 10^-decimals of the quote currency.
    pub answer: i128,
    /// Seconds since the epoch.
    pub updated_at: u64,
}

/// A decimal number such as `1.5` as an integer of `decimals` decimal places (`1.5` with 9 is
/// 1,500,000,000): exact, never through floating point. Digits beyond `decimals` are refused.
pub fn parse_decimal(text: &str, decimals: u32) -> Result<u128, DevnetError> {
    let bad = |why: &str| DevnetError::Options(format!("`{text}` is not {why}"));
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad("a non-negative decimal number"));
    }
    if fraction.len() > decimals as usize {
        return Err(bad(&format!(
            "a number with at most {decimals} decimal places"
        )));
    }
    let digits = format!("{whole}{fraction:0<width$}", width = decimals as usize);
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Ok(0);
    }
    digits
        .parse::<u128>()
        .map_err(|_| bad("a number this small"))
}

/// Gwei as typed (`0.05`) in wei, for `purser devnet fees`.
pub fn parse_gwei(text: &str) -> Result<u128, DevnetError> {
    parse_decimal(text, 9)
}

/// Integers written as decimal strings in JSON (wei amounts exceed what JSON numbers keep).
pub(crate) mod decimal {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<T: std::fmt::Display, S: Serializer>(
        value: &T,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub fn deserialize<'de, T, D>(deserializer: D) -> Result<T, D::Error>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
        D: Deserializer<'de>,
    {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_values_land_where_solidity_packs_them() {
        let word = with_bits(U256::ZERO, l1_block_slots::BASE_FEE_SCALAR_SHIFT, 32, 2_269);
        let word = with_bits(
            word,
            l1_block_slots::BLOB_BASE_FEE_SCALAR_SHIFT,
            32,
            1_055_762,
        );
        let word = with_bits(word, 0, 64, 7);
        // Big-endian bytes 16..20 hold baseFeeScalar, 20..24 blobBaseFeeScalar, 24..32 the
        // sequence number: the byte offsets op-revm reads.
        let bytes = word.to_be_bytes::<32>();
        assert_eq!(bytes[16..20], 2_269u32.to_be_bytes());
        assert_eq!(bytes[20..24], 1_055_762u32.to_be_bytes());
        assert_eq!(bytes[24..32], 7u64.to_be_bytes());
        assert_eq!(
            bits_of(word, l1_block_slots::BASE_FEE_SCALAR_SHIFT, 32),
            2_269
        );
        // Replacing one value keeps the others.
        let word = with_bits(
            word,
            l1_block_slots::BASE_FEE_SCALAR_SHIFT,
            32,
            u32::MAX.into(),
        );
        assert_eq!(
            bits_of(word, l1_block_slots::BASE_FEE_SCALAR_SHIFT, 32),
            u64::from(u32::MAX)
        );
        assert_eq!(
            bits_of(word, l1_block_slots::BLOB_BASE_FEE_SCALAR_SHIFT, 32),
            1_055_762
        );
        assert_eq!(bits_of(word, 0, 64), 7);
        // A value wider than its field is cut to it, never spilling into the next.
        let word = with_bits(U256::ZERO, 64, 32, u64::MAX);
        assert_eq!(word, U256::from(u32::MAX) << 64);
    }

    #[test]
    fn decimals_parse_exactly() {
        assert_eq!(parse_decimal("1.5", 9).unwrap(), 1_500_000_000);
        assert_eq!(parse_decimal("0.01", 9).unwrap(), 10_000_000);
        assert_eq!(parse_decimal("20", 9).unwrap(), 20_000_000_000);
        assert_eq!(parse_decimal(".5", 1).unwrap(), 5);
        assert_eq!(parse_decimal("3000.12345678", 8).unwrap(), 300_012_345_678);
        assert_eq!(parse_decimal("0", 8).unwrap(), 0);
        assert_eq!(parse_decimal("000.000", 3).unwrap(), 0);
        for bad in ["", ".", "-1", "1e9", "1.2.3", " 1", "0x10", "1.0000000001"] {
            assert!(parse_decimal(bad, 9).is_err(), "{bad}");
        }
        assert!(parse_decimal(&"9".repeat(40), 0).is_err());
    }

    #[test]
    fn fee_levels_are_checked_against_the_kind() {
        let op_only = FeeLevels {
            blob_base_fee_wei: Some(1),
            ..FeeLevels::default()
        };
        assert!(op_only.check_for(FeeKind::OpStack, "base").is_ok());
        let error = op_only
            .check_for(FeeKind::Arbitrum, "arbitrum-sepolia")
            .unwrap_err()
            .to_string();
        assert!(error.contains("blob_base_fee_wei"), "{error}");
        let l1 = FeeLevels {
            l1_base_fee_wei: Some(1),
            base_fee_wei: Some(1),
            ..FeeLevels::default()
        };
        assert!(l1.check_for(FeeKind::Arbitrum, "a").is_ok());
        assert!(l1.check_for(FeeKind::Ethereum, "e").is_err());
        assert!(
            FeeLevels {
                base_fee_wei: Some(1),
                ..FeeLevels::default()
            }
            .check_for(FeeKind::Ethereum, "e")
            .is_ok()
        );
    }

    #[test]
    fn kinds_and_fees_round_trip_through_json() {
        for kind in [FeeKind::OpStack, FeeKind::Arbitrum, FeeKind::Ethereum] {
            assert_eq!(kind.as_str().parse::<FeeKind>().unwrap(), kind);
            // Spelled as purser.toml's `kind` spells the same rail kind.
            assert_eq!(
                purser_chain::config::RailKind::from(kind).as_str(),
                kind.as_str()
            );
        }
        assert!("optimism".parse::<FeeKind>().is_err());
        for fees in [
            ChainFees::OpStack(OpStackFees {
                operator_fee_constant_wei: u64::MAX,
                l1_base_fee_wei: u128::MAX,
                ..OpStackFees::base_sepolia()
            }),
            ChainFees::Arbitrum(ArbitrumFees::default()),
            ChainFees::Ethereum,
        ] {
            let json = serde_json::to_value(&fees).unwrap();
            assert_eq!(json["kind"], fees.kind().as_str());
            assert_eq!(serde_json::from_value::<ChainFees>(json).unwrap(), fees);
        }
        let json = serde_json::to_value(ChainFees::OpStack(OpStackFees::base_sepolia())).unwrap();
        assert_eq!(json["l1BaseFeeWei"], "1000000000");
        assert_eq!(json["baseFeeScalar"], 2_269);
    }
}
