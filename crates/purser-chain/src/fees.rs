//! What settling one payment costs on a rail now, by the fee model of the rail's kind, and what a
//! settlement actually cost, from its receipt.
//!
//! Every estimate prices a real `transferWithAuthorization` call: an authorization signed by a
//! throwaway key in the asset's own EIP-712 domain, of value zero (so a node can execute it:
//! the throwaway key holds nothing), encoded exactly as settlement encodes it. What the chain
//! charges for its data (the OP Stack's L1 fee, Arbitrum's L1 component) is asked of the
//! chain's own oracle for that calldata. Execution gas is the median of this rail's last
//! settlements' receipts (a zero-value transfer writes no balance, so executing the sample would
//! underestimate a real one), starting from the configured `settlement_gas`.
//!
//! - `ethereum`: execution gas × (base fee + tip).
//! - `op-stack`: execution gas × (base fee + tip), plus `GasPriceOracle.getL1Fee` of the
//!   unsigned RLP transaction, plus `getOperatorFee(gas)` when the oracle says the chain is past
//!   Isthmus.
//! - `arbitrum`: (execution gas + the L1 component of `NodeInterface.gasEstimateComponents`,
//!   padded by a tenth as Nitro pads its own estimates) × the base fee (Arbitrum ignores tips).
//!
//! Execution is priced at the next block's base fee (`eth_feeHistory`, as the node's own rules
//! work it out), where a settlement sent now lands; the latest block's when a node has no fee
//! history.

use alloy::consensus::{SignableTransaction, TxEip1559};
use alloy::eips::BlockId;
use alloy::primitives::{Address, Bytes, I256, TxKind, U256, address};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol;
use alloy::sol_types::SolCall;
use serde::Serialize;

use crate::config::RailKind;
use crate::eip3009::ExactTransfer;
use crate::rails::{Asset, Rail};
use crate::rpc::RpcFailure;

/// The OP Stack's GasPriceOracle predeploy.
pub const OP_GAS_PRICE_ORACLE: Address = address!("0x420000000000000000000000000000000000000F");
/// The OP Stack's L1Block predeploy (where the L1 fee parameters are kept).
pub const OP_L1_BLOCK: Address = address!("0x4200000000000000000000000000000000000015");
/// Arbitrum's NodeInterface (answers `eth_call` only).
pub const ARBITRUM_NODE_INTERFACE: Address = address!("0x00000000000000000000000000000000000000C8");

/// Nitro pads the L1 part of its own gas estimates by this many tenths of a percent (110%), so
/// that a small rise of the L1 price between estimate and inclusion does not starve the call.
const ARBITRUM_L1_PADDING_PERMILLE: u64 = 1_100;

sol! {
    interface IGasPriceOracle {
        function getL1Fee(bytes memory data) external view returns (uint256);
        function isIsthmus() external view returns (bool);
        function getOperatorFee(uint256 gasUsed) external view returns (uint256);
    }

    interface INodeInterface {
        function gasEstimateComponents(address to, bool contractCreation, bytes calldata data)
            external payable
            returns (uint64 gasEstimate, uint64 gasEstimateForL1, uint256 baseFee, uint256 l1BaseFeeEstimate);
    }

    interface IAggregatorV3 {
        function decimals() external view returns (uint8);
        function latestRoundData() external view returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);
    }
}

/// The all-in cost of settling one payment on a rail, in wei of its gas token, with each part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SettlementCost {
    pub kind: &'static str,
    /// The block the estimate was read at.
    pub block_number: u64,
    /// That block's timestamp, unix seconds.
    pub block_timestamp: u64,
    /// Execution gas of one settlement.
    pub execution_gas: u64,
    pub base_fee_per_gas: u128,
    /// The tip offered (zero on Arbitrum, which ignores it).
    pub priority_fee_per_gas: u128,
    /// Execution gas × (base fee + tip).
    pub execution_fee: u128,
    /// Arbitrum: the L1 component in L2 gas, padded. Zero on other kinds.
    pub l1_gas: u64,
    /// The L1 data fee: the OP Stack oracle's, or Arbitrum's L1 gas × base fee.
    pub l1_fee: u128,
    /// The OP Stack operator fee, where the chain has one.
    pub operator_fee: u128,
    /// The sum, in wei.
    pub total: u128,
}

/// Why a rail's cost could not be estimated.
#[derive(Debug, thiserror::Error)]
pub enum FeeFault {
    #[error("{0}")]
    Rpc(#[from] RpcFailure),
    /// A fee oracle that reverted or answered nonsense.
    #[error("fee oracle {oracle}: {message}")]
    Oracle { oracle: Address, message: String },
    #[error("the latest block has no base fee")]
    NoBaseFee,
    #[error("the rail has no asset to price a settlement with")]
    NoAsset,
}

impl FeeFault {
    /// A short stable label for metrics and GraphQL.
    pub fn label(&self) -> &'static str {
        match self {
            FeeFault::Rpc(RpcFailure::Unreachable { .. }) => "rpc_unreachable",
            FeeFault::Rpc(RpcFailure::Refused { .. }) => "rpc_refused",
            FeeFault::Oracle { .. } => "oracle_failed",
            FeeFault::NoBaseFee => "no_base_fee",
            FeeFault::NoAsset => "no_asset",
        }
    }
}

/// A settlement's actual cost, from its receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActualCost {
    pub gas_used: u64,
    pub effective_gas_price: u128,
    /// The L1 fee an OP Stack receipt reports (`l1Fee`); zero when absent.
    pub l1_fee: u128,
    /// The operator fee from an OP Stack receipt's `operatorFeeScalar` and
    /// `operatorFeeConstant`; zero when absent.
    pub operator_fee: u128,
    /// gas used × effective gas price + L1 fee + operator fee, in wei.
    pub total: u128,
}

impl ActualCost {
    /// The cost of a receipt's fields, as the OP Stack computes the operator fee (Isthmus):
    /// gas used × scalar ÷ 10⁶ + constant.
    pub fn from_parts(
        gas_used: u64,
        effective_gas_price: u128,
        l1_fee: Option<u128>,
        operator_fee_scalar: Option<u64>,
        operator_fee_constant: Option<u128>,
    ) -> Self {
        let execution = u128::from(gas_used).saturating_mul(effective_gas_price);
        let l1_fee = l1_fee.unwrap_or(0);
        let operator_fee = match (operator_fee_scalar, operator_fee_constant) {
            (None, None) => 0,
            (scalar, constant) => {
                (u128::from(gas_used).saturating_mul(u128::from(scalar.unwrap_or(0)))) / 1_000_000
                    + constant.unwrap_or(0)
            }
        };
        Self {
            gas_used,
            effective_gas_price,
            l1_fee,
            operator_fee,
            total: execution
                .saturating_add(l1_fee)
                .saturating_add(operator_fee),
        }
    }
}

/// A gas token's price in a currency, as a feed answered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FeedAnswer {
    /// The price × 10^decimals.
    pub answer: u128,
    pub decimals: u8,
    /// When the feed last changed, unix seconds.
    pub updated_at: u64,
}

impl FeedAnswer {
    /// `wei` of an 18-decimal gas token in atomic units of an asset with `asset_decimals`,
    /// rounded up (a cost is never understated).
    pub fn convert(&self, wei: u128, asset_decimals: u8) -> u128 {
        let numerator = U256::from(wei)
            .saturating_mul(U256::from(self.answer))
            .saturating_mul(U256::from(10u64).pow(U256::from(asset_decimals)));
        let denominator = U256::from(10u64).pow(U256::from(18u64 + u64::from(self.decimals)));
        let quotient = numerator.div_ceil(denominator);
        u128::try_from(quotient).unwrap_or(u128::MAX)
    }
}

impl Rail {
    /// The fee oracle this rail asks, if its kind has one.
    pub fn fee_oracle(&self) -> Option<Address> {
        match self.kind {
            RailKind::Ethereum => None,
            RailKind::OpStack => Some(self.fee_oracle.unwrap_or(OP_GAS_PRICE_ORACLE)),
            RailKind::Arbitrum => Some(self.fee_oracle.unwrap_or(ARBITRUM_NODE_INTERFACE)),
        }
    }

    /// Execution gas of one settlement: the median of this rail's recent settlements'
    /// receipts, or the configured figure before the first.
    pub fn settlement_gas(&self) -> u64 {
        self.settlement_gas.get()
    }

    /// A sample of what settlement sends for `asset`: a zero-value authorization from a
    /// throwaway key to `pay_to`, signed in the asset's domain, encoded as settlement encodes it.
    pub fn sample_calldata(&self, asset: &Asset, pay_to: Address, now: u64) -> Bytes {
        let key = PrivateKeySigner::random();
        let mut transfer = ExactTransfer {
            from: key.address(),
            to: pay_to,
            value: U256::ZERO,
            valid_after: 0,
            valid_before: now.saturating_add(3_600),
            nonce: alloy::primitives::keccak256(key.to_bytes()),
            signature: Bytes::new(),
        };
        let hash = transfer.signing_hash(asset, self.chain_id);
        // Signing a hash with a fresh in-memory key cannot fail; a zeroed signature of the
        // same length would price the same calldata size if it ever did.
        transfer.signature = key
            .sign_hash_sync(&hash)
            .map(|s| Bytes::from(s.as_bytes().to_vec()))
            .unwrap_or_else(|_| Bytes::from(vec![0u8; 65]));
        transfer.settlement_calldata()
    }

    /// What settling one payment of its first asset costs now, by the rail's kind.
    pub async fn estimate_settlement(&self, now: u64) -> Result<SettlementCost, FeeFault> {
        let asset = self.assets.first().ok_or(FeeFault::NoAsset)?;
        let pay_to = self
            .signers
            .first()
            .map(|s| s.address())
            .unwrap_or(Address::repeat_byte(0x11));
        let calldata = self.sample_calldata(asset, pay_to, now);
        let (block, tip, history) = tokio::join!(
            self.rpc.request("eth_getBlockByNumber", |p| async move {
                p.get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
                    .await
            }),
            self.rpc
                .request("eth_maxPriorityFeePerGas", |p| async move {
                    p.get_max_priority_fee_per_gas().await
                }),
            // A settlement lands in the next block: its base fee, as the node's own rules
            // (EIP-1559, or the rollup's parameters) work it out from the latest.
            self.rpc.request("eth_feeHistory", |p| async move {
                p.get_fee_history(1, alloy::eips::BlockNumberOrTag::Latest, &[])
                    .await
            }),
        );
        let block = block?.ok_or(FeeFault::NoBaseFee)?;
        let latest_base_fee = block
            .header
            .base_fee_per_gas
            .map(u128::from)
            .ok_or(FeeFault::NoBaseFee)?;
        // A node without fee history (or one that answers nonsense) is quoted at the latest.
        let base_fee = history
            .ok()
            .and_then(|h| h.next_block_base_fee())
            .filter(|next| *next > 0)
            .unwrap_or(latest_base_fee);
        let block_number = block.header.number;
        let block_timestamp = block.header.timestamp;
        let gas = self.settlement_gas();
        let mut cost = SettlementCost {
            kind: self.kind.as_str(),
            block_number,
            block_timestamp,
            execution_gas: gas,
            base_fee_per_gas: base_fee,
            priority_fee_per_gas: 0,
            execution_fee: 0,
            l1_gas: 0,
            l1_fee: 0,
            operator_fee: 0,
            total: 0,
        };
        match self.kind {
            RailKind::Ethereum => {
                cost.priority_fee_per_gas = tip?;
            }
            RailKind::OpStack => {
                let tip = tip?;
                cost.priority_fee_per_gas = tip;
                let oracle = self.fee_oracle().unwrap_or(OP_GAS_PRICE_ORACLE);
                let unsigned = TxEip1559 {
                    chain_id: self.chain_id,
                    nonce: 0,
                    gas_limit: gas.saturating_add(gas / 5),
                    max_fee_per_gas: base_fee.saturating_mul(2).saturating_add(tip),
                    max_priority_fee_per_gas: tip,
                    to: TxKind::Call(asset.address),
                    value: U256::ZERO,
                    access_list: Default::default(),
                    input: calldata,
                }
                .encoded_for_signing();
                let l1_fee = self
                    .oracle_call(
                        oracle,
                        IGasPriceOracle::getL1FeeCall {
                            data: unsigned.into(),
                        },
                        Some(block_number),
                    )
                    .await?;
                cost.l1_fee = u128::try_from(l1_fee).map_err(|_| FeeFault::Oracle {
                    oracle,
                    message: "getL1Fee answered more than 2^128 wei".to_owned(),
                })?;
                // A chain before Isthmus has no operator fee, and an oracle before Isthmus no
                // `isIsthmus`: a revert there means no operator fee, not a broken oracle.
                let isthmus = self
                    .oracle_call(
                        oracle,
                        IGasPriceOracle::isIsthmusCall {},
                        Some(block_number),
                    )
                    .await
                    .unwrap_or(false);
                if isthmus {
                    let fee = self
                        .oracle_call(
                            oracle,
                            IGasPriceOracle::getOperatorFeeCall {
                                gasUsed: U256::from(gas),
                            },
                            Some(block_number),
                        )
                        .await?;
                    cost.operator_fee = u128::try_from(fee).unwrap_or(u128::MAX);
                }
            }
            RailKind::Arbitrum => {
                let oracle = self.fee_oracle().unwrap_or(ARBITRUM_NODE_INTERFACE);
                let components = self
                    .oracle_call(
                        oracle,
                        INodeInterface::gasEstimateComponentsCall {
                            to: asset.address,
                            contractCreation: false,
                            data: calldata,
                        },
                        Some(block_number),
                    )
                    .await?;
                let l1_gas = components.gasEstimateForL1;
                cost.l1_gas = l1_gas.saturating_mul(ARBITRUM_L1_PADDING_PERMILLE) / 1_000;
                // The L1 component is the L1 cost in wei divided by the base fee the node
                // priced it at: at that base fee it is the same wei whatever block it lands in.
                let node_base_fee = u128::try_from(components.baseFee)
                    .ok()
                    .filter(|fee| *fee > 0)
                    .unwrap_or(latest_base_fee);
                cost.l1_fee = u128::from(cost.l1_gas).saturating_mul(node_base_fee);
            }
        }
        let fee_per_gas = cost
            .base_fee_per_gas
            .saturating_add(cost.priority_fee_per_gas);
        cost.execution_fee = u128::from(gas).saturating_mul(fee_per_gas);
        cost.total = cost
            .execution_fee
            .saturating_add(cost.l1_fee)
            .saturating_add(cost.operator_fee);
        Ok(cost)
    }

    /// The signers' smallest balance of the gas token, in wei.
    pub async fn poorest_signer_balance(&self) -> Result<Option<u128>, RpcFailure> {
        let mut poorest: Option<u128> = None;
        for signer in &self.signers {
            let address = signer.address();
            let balance = self
                .rpc
                .request(
                    "eth_getBalance",
                    |p| async move { p.get_balance(address).await },
                )
                .await?;
            let balance = u128::try_from(balance).unwrap_or(u128::MAX);
            poorest = Some(poorest.map_or(balance, |p| p.min(balance)));
        }
        Ok(poorest)
    }

    /// A Chainlink-style aggregator's latest answer, read on this rail.
    pub async fn read_price_feed(&self, aggregator: Address) -> Result<FeedAnswer, FeeFault> {
        let decimals = self
            .oracle_call(aggregator, IAggregatorV3::decimalsCall {}, None)
            .await?;
        let round = self
            .oracle_call(aggregator, IAggregatorV3::latestRoundDataCall {}, None)
            .await?;
        if round.answer <= I256::ZERO {
            return Err(FeeFault::Oracle {
                oracle: aggregator,
                message: "the feed's answer is not positive".to_owned(),
            });
        }
        let answer = u128::try_from(round.answer.into_raw()).map_err(|_| FeeFault::Oracle {
            oracle: aggregator,
            message: "the feed's answer is out of range".to_owned(),
        })?;
        Ok(FeedAnswer {
            answer,
            decimals,
            updated_at: u64::try_from(round.updatedAt).unwrap_or(u64::MAX),
        })
    }

    /// `eth_call` of `call` on `oracle` at `block` (the latest when `None`), decoded. A revert
    /// or an undecodable answer is the oracle's fault; a transport failure the RPC's.
    async fn oracle_call<C: SolCall + Send + Sync>(
        &self,
        oracle: Address,
        call: C,
        block: Option<u64>,
    ) -> Result<C::Return, FeeFault> {
        let request = TransactionRequest::default()
            .to(oracle)
            .input(Bytes::from(call.abi_encode()).into());
        let at = block.map_or(BlockId::latest(), BlockId::number);
        let answer = self
            .rpc
            .request("eth_call", |p| {
                let request = request.clone();
                async move { p.call(request).block(at).await }
            })
            .await
            .map_err(|failure| match failure {
                RpcFailure::Refused { message, .. } => FeeFault::Oracle { oracle, message },
                unreachable => FeeFault::Rpc(unreachable),
            })?;
        C::abi_decode_returns(&answer).map_err(|e| FeeFault::Oracle {
            oracle,
            message: format!("undecodable answer: {e}"),
        })
    }
}

/// Receipts [`SettlementGas`] keeps.
const GAS_WINDOW: usize = 16;

/// The execution gas of one settlement: the configured figure until the first receipt, then the
/// median of the last [`GAS_WINDOW`] receipts' gas. A median, because settlement gas is not
/// noise around a mean but a few discrete cases: one unusual settlement (the first payment to an
/// empty balance, which writes a fresh storage slot) must not move every estimate after it.
#[derive(Debug)]
pub(crate) struct SettlementGas {
    configured: u64,
    /// Each receipt's transaction and gas, oldest first.
    recent: std::sync::Mutex<std::collections::VecDeque<(alloy::primitives::B256, u64)>>,
}

impl SettlementGas {
    pub(crate) fn new(configured: u64) -> Self {
        Self {
            configured,
            recent: std::sync::Mutex::new(std::collections::VecDeque::with_capacity(GAS_WINDOW)),
        }
    }

    pub(crate) fn get(&self) -> u64 {
        let recent = self
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut gas: Vec<u64> = recent.iter().map(|(_, gas)| *gas).collect();
        drop(recent);
        if gas.is_empty() {
            return self.configured;
        }
        gas.sort_unstable();
        // The lower median: an estimate between two cases is neither.
        gas[(gas.len() - 1) / 2]
    }

    /// Keeps what the receipt of `transaction` used, once however often it is read.
    pub(crate) fn observe(&self, transaction: alloy::primitives::B256, gas_used: u64) {
        let mut recent = self
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if recent.iter().any(|(seen, _)| *seen == transaction) {
            return;
        }
        if recent.len() == GAS_WINDOW {
            recent.pop_front();
        }
        recent.push_back((transaction, gas_used.max(21_000)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_conversion_rounds_up_and_scales() {
        // 3000.00000000 USD per ETH (8 decimals); 1e15 wei = 0.001 ETH = 3 USD = 3_000_000 of a
        // 6-decimal asset.
        let feed = FeedAnswer {
            answer: 300_000_000_000,
            decimals: 8,
            updated_at: 0,
        };
        assert_eq!(feed.convert(1_000_000_000_000_000, 6), 3_000_000);
        // One wei is worth far less than one atomic unit, but is never priced at zero.
        assert_eq!(feed.convert(1, 6), 1);
        assert_eq!(feed.convert(0, 6), 0);
    }

    #[test]
    fn actual_cost_adds_the_op_stack_parts() {
        let cost =
            ActualCost::from_parts(60_000, 1_000_000_000, Some(5_000), Some(2_000_000), Some(7));
        // 60,000 × 1 gwei + 5,000 + (60,000 × 2,000,000 / 1e6 + 7)
        assert_eq!(cost.operator_fee, 120_007);
        assert_eq!(cost.total, 60_000_000_000_000 + 5_000 + 120_007);
        let plain = ActualCost::from_parts(21_000, 2, None, None, None);
        assert_eq!(plain.total, 42_000);
        assert_eq!(plain.l1_fee + plain.operator_fee, 0);
    }

    #[test]
    fn settlement_gas_starts_configured_then_is_the_median_of_recent_receipts() {
        let tx = |n: u8| alloy::primitives::B256::repeat_byte(n);
        let gas = SettlementGas::new(90_000);
        assert_eq!(gas.get(), 90_000);
        // The first payment to an empty balance costs more; the ones after it do not.
        gas.observe(tx(1), 79_000);
        assert_eq!(gas.get(), 79_000);
        gas.observe(tx(2), 62_000);
        gas.observe(tx(3), 62_100);
        // A receipt read again counts once.
        gas.observe(tx(3), 62_100);
        gas.observe(tx(3), 62_100);
        assert_eq!(gas.get(), 62_100);
        for n in 10..30 {
            gas.observe(tx(n), 61_900);
        }
        // The window forgot the outlier, and the median is what most settlements use.
        assert_eq!(gas.get(), 61_900);
        gas.observe(tx(99), 150_000);
        assert_eq!(gas.get(), 61_900);
    }
}
