//! Placing a chain's fee contracts and price feed, and moving its fee levels and price while it
//! runs: [`DevnetChain`]'s fee methods and [`change_fees`], what `purser devnet fees` does.

use std::path::Path;

use alloy::primitives::{Address, I256, U256, Uint};
use alloy::sol_types::{SolCall, SolConstructor};

use crate::DevnetError;
use crate::chain::DevnetChain;
use crate::contracts::{Artefact, DevnetL1Block, DevnetNodeInterface, DevnetPriceFeed};
use crate::fees::{
    ARB_GAS_INFO_ADDRESS, ChainFees, FeeKind, FeeLevels, GAS_PRICE_ORACLE_ADDRESS,
    L1_BLOCK_ADDRESS, NODE_INTERFACE_ADDRESS, PriceFeedInfo, PriceFeedSpec, PriceRound,
    l1_block_slots, with_bits, word,
};
use crate::files::DevnetManifest;

impl DevnetChain {
    /// Places the contracts of the chain's fee kind at their addresses and writes the initial
    /// levels into them.
    pub(crate) async fn place_fee_contracts(&mut self) -> Result<(), DevnetError> {
        match self.spec().fees.clone() {
            ChainFees::OpStack(fees) => {
                self.set_code(
                    L1_BLOCK_ADDRESS,
                    Artefact::devnet_l1_block().deployed_bytecode,
                )
                .await?;
                self.set_code(
                    GAS_PRICE_ORACLE_ADDRESS,
                    Artefact::devnet_gas_price_oracle().deployed_bytecode,
                )
                .await?;
                self.write_l1_block(&FeeLevels {
                    l1_base_fee_wei: Some(fees.l1_base_fee_wei),
                    blob_base_fee_wei: Some(fees.blob_base_fee_wei),
                    base_fee_scalar: Some(fees.base_fee_scalar),
                    blob_base_fee_scalar: Some(fees.blob_base_fee_scalar),
                    operator_fee_scalar: Some(fees.operator_fee_scalar),
                    operator_fee_constant_wei: Some(fees.operator_fee_constant_wei),
                    ..FeeLevels::default()
                })
                .await?;
            }
            ChainFees::Arbitrum(fees) => {
                self.set_code(
                    NODE_INTERFACE_ADDRESS,
                    Artefact::devnet_node_interface().deployed_bytecode,
                )
                .await?;
                self.set_code(
                    ARB_GAS_INFO_ADDRESS,
                    Artefact::devnet_arb_gas_info().deployed_bytecode,
                )
                .await?;
                self.write_arbitrum_figures(&FeeLevels {
                    l1_base_fee_wei: Some(fees.l1_base_fee_estimate_wei),
                    per_tx_overhead_bytes: Some(fees.per_tx_overhead_bytes),
                    ..FeeLevels::default()
                })
                .await?;
            }
            ChainFees::Ethereum => {}
        }
        self.fee_contracts = self.spec().fees.contracts();
        Ok(())
    }

    /// Deploys a price feed owned by the deployer.
    pub(crate) async fn deploy_price_feed(
        &self,
        feed: &PriceFeedSpec,
    ) -> Result<PriceFeedInfo, DevnetError> {
        let constructor = DevnetPriceFeed::constructorCall {
            feedDecimals: feed.decimals,
            feedDescription: feed.description(),
            initialAnswer: I256::try_from(feed.initial_answer).expect("i128 fits in int256"),
            feedOwner: self.accounts().deployer.address(),
        };
        let mut code = Artefact::devnet_price_feed().bytecode.to_vec();
        code.extend_from_slice(&constructor.abi_encode());
        let address = self.deploy_contract(code.into()).await?;
        Ok(PriceFeedInfo {
            address,
            base: feed.base.clone(),
            quote: feed.quote.clone(),
            description: feed.description(),
            decimals: feed.decimals,
            initial_answer: feed.initial_answer,
        })
    }

    /// How the chain charges for a transaction.
    pub fn fee_kind(&self) -> FeeKind {
        self.spec().fee_kind()
    }

    /// The fee contracts placed on the chain (none for `ethereum`).
    pub fn fee_contracts(&self) -> &crate::FeeContracts {
        &self.fee_contracts
    }

    /// The chain's price feed, if it has one.
    pub fn price_feed(&self) -> Option<&PriceFeedInfo> {
        self.price_feed.as_ref()
    }

    /// Changes the chain's fee levels now. Only the fields meaningful to the chain's kind may be
    /// set (any other fails, naming it, before anything changes):
    ///
    /// - `op-stack`: the L1 fee parameters are written into the L1Block predeploy's storage
    ///   slots (`anvil_setStorageAt`, packed slots read first so their other values are kept),
    ///   which moves the GasPriceOracle's answers at once.
    /// - `arbitrum`: the L1 base fee estimate and per-transaction overhead through
    ///   `DevnetNodeInterface`'s setters, a transaction from the deployer (a block is mined for
    ///   it when automining is off).
    /// - every kind: the base fee becomes the next block's (`anvil_setNextBlockBaseFeePerGas`)
    ///   and a block is mined, so the latest block has it (it then moves as EIP-1559 moves it:
    ///   the next block, if empty, is 12.5% lower). With manual mining, the mined block takes
    ///   whatever the mempool holds.
    pub async fn set_fees(&self, levels: &FeeLevels) -> Result<(), DevnetError> {
        levels.check_for(self.fee_kind(), self.name())?;
        match self.fee_kind() {
            FeeKind::OpStack => self.write_l1_block(levels).await?,
            FeeKind::Arbitrum => self.write_arbitrum_figures(levels).await?,
            FeeKind::Ethereum => {}
        }
        if let Some(base_fee_wei) = levels.base_fee_wei {
            self.set_next_block_base_fee(base_fee_wei).await?;
            self.mine().await?;
        }
        Ok(())
    }

    /// The chain's fee levels now: the latest block's base fee and, by kind, what the fee
    /// contracts hold. The fields that do not apply to the kind are `None`.
    pub async fn fee_levels(&self) -> Result<FeeLevels, DevnetError> {
        let base_fee_wei = Some(self.latest_base_fee().await?);
        let to_u128 = |value: U256, what: &str| {
            u128::try_from(value).map_err(|_| DevnetError::Chain {
                chain_id: self.chain_id(),
                message: format!("{what} exceeds u128: {value}"),
            })
        };
        Ok(match self.fee_kind() {
            FeeKind::OpStack => {
                let block = L1_BLOCK_ADDRESS;
                let (l1_base_fee, blob_base_fee, base_scalar, blob_scalar, op_scalar, op_constant) =
                    tokio::try_join!(
                        self.call(block, &DevnetL1Block::basefeeCall {}),
                        self.call(block, &DevnetL1Block::blobBaseFeeCall {}),
                        self.call(block, &DevnetL1Block::baseFeeScalarCall {}),
                        self.call(block, &DevnetL1Block::blobBaseFeeScalarCall {}),
                        self.call(block, &DevnetL1Block::operatorFeeScalarCall {}),
                        self.call(block, &DevnetL1Block::operatorFeeConstantCall {}),
                    )?;
                FeeLevels {
                    base_fee_wei,
                    l1_base_fee_wei: Some(to_u128(l1_base_fee, "the L1 base fee")?),
                    blob_base_fee_wei: Some(to_u128(blob_base_fee, "the blob base fee")?),
                    base_fee_scalar: Some(base_scalar),
                    blob_base_fee_scalar: Some(blob_scalar),
                    operator_fee_scalar: Some(op_scalar),
                    operator_fee_constant_wei: Some(op_constant),
                    per_tx_overhead_bytes: None,
                }
            }
            FeeKind::Arbitrum => {
                let (estimate, overhead) = tokio::try_join!(
                    self.call(
                        NODE_INTERFACE_ADDRESS,
                        &DevnetNodeInterface::l1BaseFeeEstimateCall {}
                    ),
                    self.call(
                        NODE_INTERFACE_ADDRESS,
                        &DevnetNodeInterface::perTxOverheadBytesCall {}
                    ),
                )?;
                FeeLevels {
                    base_fee_wei,
                    l1_base_fee_wei: Some(to_u128(estimate, "the L1 base fee estimate")?),
                    per_tx_overhead_bytes: Some(overhead.try_into().map_err(|_| {
                        DevnetError::Chain {
                            chain_id: self.chain_id(),
                            message: format!(
                                "the per-transaction overhead exceeds u64: {overhead}"
                            ),
                        }
                    })?),
                    ..FeeLevels::default()
                }
            }
            FeeKind::Ethereum => FeeLevels {
                base_fee_wei,
                ..FeeLevels::default()
            },
        })
    }

    /// Records a new round on the chain's price feed: `answer` in the feed's decimals, updated
    /// at `updated_at` (seconds since the epoch; `None` is the block's time, a fresh answer; a
    /// time in the past makes the feed stale). Answers the round as the feed now reports it.
    pub async fn set_price(
        &self,
        answer: i128,
        updated_at: Option<u64>,
    ) -> Result<PriceRound, DevnetError> {
        let feed = self.require_price_feed()?;
        let answer = I256::try_from(answer).expect("i128 fits in int256");
        let input = match updated_at {
            None => DevnetPriceFeed::setAnswerCall { answer }.abi_encode(),
            Some(at) => DevnetPriceFeed::setAnswerUpdatedAtCall {
                answer,
                updatedAt: U256::from(at),
            }
            .abi_encode(),
        };
        self.send_as_and_mine(
            &self.accounts().deployer,
            feed,
            input.into(),
            "set the price feed's answer",
        )
        .await?;
        self.latest_price().await
    }

    /// The price feed's latest round.
    pub async fn latest_price(&self) -> Result<PriceRound, DevnetError> {
        let feed = self.require_price_feed()?;
        let round = self
            .call(feed, &DevnetPriceFeed::latestRoundDataCall {})
            .await?;
        let chain_id = self.chain_id();
        let out_of_range = |what: &str| DevnetError::Chain {
            chain_id,
            message: format!("the price feed's {what} is out of range"),
        };
        Ok(PriceRound {
            round_id: u128::try_from(Uint::<80, 2>::from(round.roundId))
                .map_err(|_| out_of_range("round id"))?,
            answer: i128::try_from(round.answer).map_err(|_| out_of_range("answer"))?,
            updated_at: u64::try_from(round.updatedAt).map_err(|_| out_of_range("updatedAt"))?,
        })
    }

    fn require_price_feed(&self) -> Result<Address, DevnetError> {
        self.price_feed
            .as_ref()
            .map(|f| f.address)
            .ok_or_else(|| DevnetError::Options(format!("{} has no price feed", self.name())))
    }

    /// Writes the L1 fee parameters that are set into the L1Block predeploy's slots.
    async fn write_l1_block(&self, levels: &FeeLevels) -> Result<(), DevnetError> {
        let slot = |n: u64| U256::from(n);
        if let Some(fee) = levels.l1_base_fee_wei {
            self.set_storage_at(
                L1_BLOCK_ADDRESS,
                slot(l1_block_slots::L1_BASE_FEE),
                word(U256::from(fee)),
            )
            .await?;
        }
        if let Some(fee) = levels.blob_base_fee_wei {
            self.set_storage_at(
                L1_BLOCK_ADDRESS,
                slot(l1_block_slots::BLOB_BASE_FEE),
                word(U256::from(fee)),
            )
            .await?;
        }
        if levels.base_fee_scalar.is_some() || levels.blob_base_fee_scalar.is_some() {
            let at = slot(l1_block_slots::FEE_SCALARS);
            let mut packed = self.storage_at(L1_BLOCK_ADDRESS, at).await?;
            if let Some(scalar) = levels.base_fee_scalar {
                packed = with_bits(
                    packed,
                    l1_block_slots::BASE_FEE_SCALAR_SHIFT,
                    32,
                    scalar.into(),
                );
            }
            if let Some(scalar) = levels.blob_base_fee_scalar {
                packed = with_bits(
                    packed,
                    l1_block_slots::BLOB_BASE_FEE_SCALAR_SHIFT,
                    32,
                    scalar.into(),
                );
            }
            self.set_storage_at(L1_BLOCK_ADDRESS, at, word(packed))
                .await?;
        }
        if levels.operator_fee_scalar.is_some() || levels.operator_fee_constant_wei.is_some() {
            let at = slot(l1_block_slots::OPERATOR_FEE);
            let mut packed = self.storage_at(L1_BLOCK_ADDRESS, at).await?;
            if let Some(scalar) = levels.operator_fee_scalar {
                packed = with_bits(
                    packed,
                    l1_block_slots::OPERATOR_FEE_SCALAR_SHIFT,
                    32,
                    scalar.into(),
                );
            }
            if let Some(constant) = levels.operator_fee_constant_wei {
                packed = with_bits(
                    packed,
                    l1_block_slots::OPERATOR_FEE_CONSTANT_SHIFT,
                    64,
                    constant,
                );
            }
            self.set_storage_at(L1_BLOCK_ADDRESS, at, word(packed))
                .await?;
        }
        Ok(())
    }

    /// Sets the Arbitrum figures that are set through `DevnetNodeInterface`'s setters.
    async fn write_arbitrum_figures(&self, levels: &FeeLevels) -> Result<(), DevnetError> {
        let deployer = &self.accounts().deployer;
        if let Some(estimate) = levels.l1_base_fee_wei {
            let call = DevnetNodeInterface::setL1BaseFeeEstimateCall {
                l1BaseFeeEstimateWei: U256::from(estimate),
            };
            self.send_as_and_mine(
                deployer,
                NODE_INTERFACE_ADDRESS,
                call.abi_encode().into(),
                "set the L1 base fee estimate",
            )
            .await?;
        }
        if let Some(overhead) = levels.per_tx_overhead_bytes {
            let call = DevnetNodeInterface::setPerTxOverheadBytesCall {
                overheadBytes: U256::from(overhead),
            };
            self.send_as_and_mine(
                deployer,
                NODE_INTERFACE_ADDRESS,
                call.abi_encode().into(),
                "set the per-transaction overhead",
            )
            .await?;
        }
        Ok(())
    }
}

/// A change of fees and price that `purser devnet fees` asks of one chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeeChange {
    pub levels: FeeLevels,
    /// A new answer for the chain's price feed, a decimal number of its quote currency per
    /// unit (`3500.25`), as typed: converted with the feed's decimals.
    pub price: Option<String>,
    /// When that answer counts as updated, seconds since the epoch (default: the block's time;
    /// an old time makes the feed stale).
    pub price_updated_at: Option<u64>,
}

/// A chain's fees and price after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeReport {
    pub chain_id: u64,
    pub name: String,
    pub kind: FeeKind,
    /// What the chain holds now (the fields of its kind).
    pub levels: FeeLevels,
    pub price_feed: Option<PriceFeedInfo>,
    /// The feed's latest round.
    pub price: Option<PriceRound>,
}

impl std::fmt::Display for FeeReport {
    /// One line per level, `name value`, for `purser devnet fees`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} (eip155:{}), {}", self.name, self.chain_id, self.kind)?;
        let levels = &self.levels;
        let wei = [
            ("base fee", levels.base_fee_wei),
            (
                if self.kind == FeeKind::Arbitrum {
                    "L1 base fee estimate"
                } else {
                    "L1 base fee"
                },
                levels.l1_base_fee_wei,
            ),
            ("blob base fee", levels.blob_base_fee_wei),
            (
                "operator fee constant",
                levels.operator_fee_constant_wei.map(u128::from),
            ),
        ];
        for (name, value) in wei {
            if let Some(value) = value {
                writeln!(f, "  {name:<22} {} wei ({} gwei)", value, decimal(value, 9))?;
            }
        }
        let plain = [
            ("base fee scalar", levels.base_fee_scalar.map(u64::from)),
            (
                "blob base fee scalar",
                levels.blob_base_fee_scalar.map(u64::from),
            ),
            (
                "operator fee scalar",
                levels.operator_fee_scalar.map(u64::from),
            ),
            ("per-tx overhead bytes", levels.per_tx_overhead_bytes),
        ];
        for (name, value) in plain {
            if let Some(value) = value {
                writeln!(f, "  {name:<22} {value}")?;
            }
        }
        if let (Some(feed), Some(round)) = (&self.price_feed, &self.price) {
            let answer = decimal(round.answer.unsigned_abs(), feed.decimals.into());
            let sign = if round.answer < 0 { "-" } else { "" };
            writeln!(
                f,
                "  {:<22} {sign}{answer} (round {}, updated at {}) from {}",
                feed.description, round.round_id, round.updated_at, feed.address
            )?;
        }
        Ok(())
    }
}

/// `value` × 10^-decimals as a decimal number, without trailing zeros.
fn decimal(value: u128, decimals: u32) -> String {
    let scale = 10u128.pow(decimals);
    let fraction = format!("{:0width$}", value % scale, width = decimals as usize);
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        format!("{}", value / scale)
    } else {
        format!("{}.{fraction}", value / scale)
    }
}

/// Applies `change` to chain `chain` (its id, name or `eip155:` network) of the devnet running
/// in `dir` (`DIR/devnet.json`), and answers the chain's fees and price afterwards. An empty
/// change only reports. A field that does not apply to the chain's kind, or a price for a chain
/// without a feed, fails before anything changes.
pub async fn change_fees(
    dir: &Path,
    chain: &str,
    change: &FeeChange,
) -> Result<FeeReport, DevnetError> {
    if change.price_updated_at.is_some() && change.price.is_none() {
        return Err(DevnetError::Options(
            "a price's update time needs the price itself".to_owned(),
        ));
    }
    let manifest = DevnetManifest::read(dir)?;
    let handle = DevnetChain::attach(&manifest, chain).await?;
    change.levels.check_for(handle.fee_kind(), handle.name())?;
    let answer = match &change.price {
        None => None,
        Some(price) => {
            let feed = handle.price_feed().ok_or_else(|| {
                let with_feeds: Vec<&str> = manifest
                    .chains
                    .iter()
                    .filter(|c| c.price_feed.is_some())
                    .map(|c| c.name.as_str())
                    .collect();
                DevnetError::Options(format!(
                    "{} has no price feed (chains with one: {})",
                    handle.name(),
                    if with_feeds.is_empty() {
                        "none".to_owned()
                    } else {
                        with_feeds.join(", ")
                    }
                ))
            })?;
            let answer = crate::fees::parse_decimal(price, feed.decimals.into())?;
            Some(
                i128::try_from(answer)
                    .map_err(|_| DevnetError::Options(format!("the price {price} is too large")))?,
            )
        }
    };
    handle.set_fees(&change.levels).await?;
    if let Some(answer) = answer {
        handle.set_price(answer, change.price_updated_at).await?;
    }
    let price = match handle.price_feed() {
        Some(_) => Some(handle.latest_price().await?),
        None => None,
    };
    Ok(FeeReport {
        chain_id: handle.chain_id(),
        name: handle.name().to_owned(),
        kind: handle.fee_kind(),
        levels: handle.fee_levels().await?,
        price_feed: handle.price_feed().cloned(),
        price,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_print_without_trailing_zeros() {
        assert_eq!(decimal(20_000_000_000, 9), "20");
        assert_eq!(decimal(10_000_000, 9), "0.01");
        assert_eq!(decimal(300_012_345_678, 8), "3000.12345678");
        assert_eq!(decimal(0, 9), "0");
        assert_eq!(decimal(7, 0), "7");
    }
}
