//! Settlements: one record per payment authorization, moving through a small state machine
//! that is durable at every step, so that a crash, a retry or a duplicate request never
//! becomes a second transfer.
//!
//! ```text
//!   received ──▶ verified ──▶ submitted ──▶ confirmed
//!      │            │             │  ▲
//!      ▼            ▼             ▼  │ (receipt seen later)
//!    rejected    rejected       pending ──▶ confirmed | failed
//!                                 │
//!                                 ▼
//!                               failed (reverted on chain)
//! ```
//!
//! - `received`: the authorization is claimed (unique on chain, asset, payer and EIP-3009
//!   nonce); nothing has been sent.
//! - `verified`: every check passed, including a simulation.
//! - `submitted`: a signed transaction, with its hash and signer nonce, is recorded *before* it
//!   is broadcast; the ledger holds a pending transfer.
//! - `pending`: broadcast, but no receipt within the timeout. Not a failure: the reconciler
//!   follows it to `confirmed` or `failed`.
//! - `confirmed` / `failed`: terminal; the ledger's pending transfer is posted or voided.
//! - `rejected`: refused before anything was broadcast. Not sticky: the same authorization may
//!   be presented again (after a top-up, say) and is verified afresh.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode, Result};
use crate::id::{AttemptId, SettlementId, TenantId};
use crate::macros::string_enum;
use crate::money::Amount;

string_enum!(
    /// Where a settlement stands.
    SettlementStatus, "settlement status" {
        Received = "received",
        Verified = "verified",
        Submitted = "submitted",
        Pending = "pending",
        Confirmed = "confirmed",
        Failed = "failed",
        Rejected = "rejected",
    }
);

impl SettlementStatus {
    /// No further transition: the outcome is final.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Confirmed | Self::Failed)
    }

    /// A transaction may be on its way: the outcome is unknown until a receipt is seen.
    pub fn is_in_flight(self) -> bool {
        matches!(self, Self::Submitted | Self::Pending)
    }
}

string_enum!(
    /// What a settlement's transaction does: an `exact` transfer, or one operation of the
    /// `auth-capture` escrow on a payment it holds.
    SettlementKind, "settlement kind" {
        /// `transferWithAuthorization` to the merchant (`exact`).
        Exact = "exact",
        /// `authorize`: the payer's funds move into the escrow, held for the merchant.
        EscrowAuthorize = "escrow_authorize",
        /// `charge`: the payer's funds go straight to the merchant (less the fee), through the
        /// escrow, refundable (the authorization flow).
        EscrowCharge = "escrow_charge",
        /// `capture`: held funds go to the merchant (less the fee, to the fee receiver).
        EscrowCapture = "escrow_capture",
        /// `void`: everything still held goes back to the payer.
        EscrowVoid = "escrow_void",
        /// `refund`: captured funds go back to the payer, advanced by the operator.
        EscrowRefund = "escrow_refund",
    }
);

impl SettlementKind {
    /// An operation on an escrowed payment (every kind but `exact`).
    pub fn is_escrow(self) -> bool {
        !matches!(self, Self::Exact)
    }
}

/// What ties an escrow operation to its payment: the escrow's key for it
/// (`getHash(paymentInfo)`, `0x` and 64 lower-case hex digits) and the fee the operation pays
/// out of `amount` (a capture's; zero for the others).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscrowLink {
    pub payment: String,
    pub fee: Amount,
}

/// The refusal of a second operation on an escrowed payment while one is in flight.
pub fn escrow_operation_in_flight() -> Error {
    Error::new(
        ErrorCode::EscrowOperationInFlight,
        "another operation on this escrowed payment is not final yet; retry once it is",
    )
}

/// What makes an authorization unique on chain: EIP-3009 nonces are per token and payer.
/// Addresses are lower-case `0x` hex; the nonce is `0x` and 64 lower-case hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AuthorizationKey {
    pub network: String,
    pub asset: String,
    pub payer: String,
    pub nonce: String,
}

impl AuthorizationKey {
    /// Normalises case and checks the shapes.
    pub fn new(network: &str, asset: &str, payer: &str, nonce: &str) -> Result<Self> {
        let hex_of = |value: &str, digits: usize, what: &str| -> Result<String> {
            let lower = value.to_ascii_lowercase();
            let ok = lower.len() == digits + 2
                && lower.starts_with("0x")
                && lower[2..].bytes().all(|b| b.is_ascii_hexdigit());
            if ok {
                Ok(lower)
            } else {
                Err(Error::new(
                    ErrorCode::InvalidInput,
                    format!("{what} must be 0x and {digits} hex digits"),
                ))
            }
        };
        Ok(Self {
            network: network.to_owned(),
            asset: hex_of(asset, 40, "asset")?,
            payer: hex_of(payer, 40, "payer")?,
            nonce: hex_of(nonce, 64, "authorization nonce")?,
        })
    }
}

/// A settlement about to be claimed.
#[derive(Debug, Clone)]
pub struct NewSettlement {
    pub id: SettlementId,
    pub tenant_id: TenantId,
    pub key: AuthorizationKey,
    pub pay_to: String,
    pub amount: Amount,
    pub valid_after: u64,
    pub valid_before: u64,
    /// The x402 `PaymentPayload` as received (JSON), kept to verify and resubmit.
    pub payload: String,
    /// The `PaymentRequirements` it was settled against (JSON).
    pub requirements: String,
    pub payment_identifier: Option<String>,
    pub kind: SettlementKind,
    /// The escrowed payment, for every kind but `exact`.
    pub escrow: Option<EscrowLink>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub id: SettlementId,
    pub tenant_id: TenantId,
    pub key: AuthorizationKey,
    pub pay_to: String,
    pub amount: Amount,
    pub valid_after: u64,
    pub valid_before: u64,
    pub payload: String,
    pub requirements: String,
    pub status: SettlementStatus,
    pub error_reason: Option<String>,
    pub error_message: Option<String>,
    /// The hash of the transaction that settled it, or of the latest one sent.
    pub tx_hash: Option<String>,
    pub block_number: Option<u64>,
    pub payment_identifier: Option<String>,
    /// What the mined transaction cost Purser's signer, from its receipt (confirmed or failed
    /// on chain; none when nothing was mined).
    pub network_cost: Option<NetworkCost>,
    /// The settlement router's estimate of that cost when the transaction was signed, in wei.
    pub estimated_network_cost: Option<Amount>,
    /// Why this rail: the router's quotes of every rail when the transaction was signed, as
    /// JSON.
    pub route_decision: Option<String>,
    pub kind: SettlementKind,
    pub escrow: Option<EscrowLink>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a mined transaction cost its sender, in wei of the chain's gas token, as its receipt
/// reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkCost {
    pub gas_used: u64,
    pub effective_gas_price: Amount,
    /// The L1 data fee an OP Stack receipt reports (zero elsewhere).
    pub l1_fee: Amount,
    /// The OP Stack operator fee (zero elsewhere).
    pub operator_fee: Amount,
    /// gas used × effective gas price + L1 fee + operator fee.
    pub total: Amount,
}

impl NetworkCost {
    /// The cost of these parts; `None` when the sum does not fit.
    pub fn of(
        gas_used: u64,
        effective_gas_price: u128,
        l1_fee: u128,
        operator_fee: u128,
    ) -> Option<Self> {
        let total = u128::from(gas_used)
            .checked_mul(effective_gas_price)?
            .checked_add(l1_fee)?
            .checked_add(operator_fee)?;
        Some(Self {
            gas_used,
            effective_gas_price: Amount::from_atomic(effective_gas_price),
            l1_fee: Amount::from_atomic(l1_fee),
            operator_fee: Amount::from_atomic(operator_fee),
            total: Amount::from_atomic(total),
        })
    }
}

/// What a tenant's settlements cost in gas on one chain on one UTC day (by when their outcome
/// was recorded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkCostDay {
    pub day: chrono::NaiveDate,
    pub network: String,
    /// Settlements whose mined transaction's cost is known.
    pub settlements: u64,
    /// Their cost, in wei of the chain's gas token.
    pub total: Amount,
    /// The router's estimates for those of them that had one, and what those cost.
    pub estimated: Amount,
    pub estimated_actual: Amount,
}

/// The longest period [`crate::repo::SettlementRepository::network_costs`] answers at once.
pub const MAX_NETWORK_COST_DAYS: i64 = 93;

/// The asset ledger accounts of network fees are kept in: the chain's own gas token.
pub const NATIVE_ASSET: &str = "native";

/// The outcome of claiming an authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This caller owns the settlement and must drive it.
    Created(Settlement),
    /// Someone already claimed it; the record says how far it got.
    Existing(Settlement),
}

string_enum!(
    /// What a transaction was for.
    AttemptKind, "attempt kind" {
        /// `transferWithAuthorization` for a settlement.
        Transfer = "transfer",
        /// Deploying the payer's counterfactual smart wallet (ERC-6492) before its transfer.
        Deploy = "deploy",
        /// A zero-value transaction to the signer itself, filling a nonce nobody used.
        GapFill = "gap_fill",
    }
);

/// A signed transaction, recorded before it is broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub id: AttemptId,
    pub settlement_id: Option<SettlementId>,
    pub kind: AttemptKind,
    pub network: String,
    pub signer: String,
    pub signer_nonce: u64,
    pub tx_hash: String,
    /// The signed transaction, EIP-2718 encoded: rebroadcast verbatim after a crash.
    pub raw_tx: Vec<u8>,
    pub max_fee_per_gas: u128,
    pub max_priority_fee_per_gas: u128,
    pub created_at: DateTime<Utc>,
    /// When a node last accepted it; `None` until the first broadcast.
    pub broadcast_at: Option<DateTime<Utc>>,
    /// The settlement router's decision, kept with the settlement (once: the first attempt
    /// that carries one) in the same transaction as the attempt.
    pub route: Option<crate::routing::RouteDecision>,
}

/// How a settlement ended on chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainOutcome {
    pub tx_hash: String,
    pub block_number: u64,
    /// What the transaction cost, from its receipt.
    pub cost: Option<NetworkCost>,
}

/// Filters for the reconciler's work list.
#[derive(Debug, Clone, Copy)]
pub struct InFlightQuery {
    /// Only settlements last changed before this.
    pub updated_before: DateTime<Utc>,
    pub limit: u32,
}

/// What a `payment-identifier` maps to: the payload first seen with it, and the final answer
/// once there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentIdentifierRecord {
    pub tenant_id: TenantId,
    pub identifier: String,
    /// SHA-256 (hex) of the canonical JSON of the payment payload first seen with this id.
    pub payload_hash: String,
    /// The final response (JSON), once the outcome is terminal.
    pub response: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The outcome of presenting a payment identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentIdentifierClaim {
    /// First sight: recorded with this payload.
    New,
    /// Seen before with the same payload: here is what is known.
    Same(PaymentIdentifierRecord),
    /// Seen before with another payload.
    Conflict,
}
