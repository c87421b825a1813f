//! GraphQL views of settlements and the ledger.

use async_graphql::{
    Context, Enum, ID, InputValueError, InputValueResult, Object, Scalar, ScalarType, SimpleObject,
    Value,
};
use chrono::{DateTime, Utc};
use purser_domain::auth::TenantScope;
use purser_domain::{ledger, money, settlement};

use crate::context::store;
use crate::error::GqlResult;

/// A non-negative integer count of an asset's atomic units, as a decimal string (USDC has 6
/// decimals: `"1500000"` is 1.5 USDC).
#[derive(Clone, Copy, Debug)]
pub struct Amount(pub money::Amount);

#[Scalar(name = "Amount")]
impl ScalarType for Amount {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => money::Amount::parse_atomic(s)
                .map(Amount)
                .map_err(|e| InputValueError::custom(e.message())),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_string())
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(
    name = "SettlementStatus",
    remote = "purser_domain::settlement::SettlementStatus"
)]
pub enum SettlementStatusGql {
    /// Claimed; nothing sent yet.
    Received,
    /// Verified on chain; nothing sent yet.
    Verified,
    /// A transaction was recorded and sent; no final receipt yet.
    Submitted,
    /// Sent, receipt not seen within the timeout; being reconciled. Not a failure.
    Pending,
    /// Settled on chain.
    Confirmed,
    /// The transaction reverted, or the authorization went elsewhere.
    Failed,
    /// Refused before anything was sent; the payment may be presented again.
    Rejected,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(
    name = "LedgerAccountKind",
    remote = "purser_domain::ledger::AccountKind"
)]
pub enum AccountKindGql {
    PayerClearing,
    SettlementInFlight,
    MerchantReceivable,
    Fees,
    /// Where prepaid credit comes from: debited by every top-up.
    CreditIssuance,
    /// One payer's prepaid credit (see `wallet`): credited by top-ups, debited by uses.
    PayerCredit,
    /// Prepaid credit spent on usage.
    CreditEarned,
    /// What settling the tenant's payments cost in gas (asset `native`, the chain's gas token).
    NetworkFees,
    /// Gas paid by Purser's settlement signers for the tenant.
    SignerGas,
    /// Value held in the escrow for the merchant (`auth-capture`): what the escrow's
    /// `capturableAmount` says, summed over the tenant's payments.
    EscrowHeld,
    /// Value that went back to payers: voided or reclaimed holds, and refunds.
    PayerReturned,
    /// Refunds the operator advanced out of its own wallet: what the merchant owes it.
    RefundAdvances,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(
    name = "TransferState",
    remote = "purser_domain::ledger::TransferState"
)]
pub enum TransferStateGql {
    Pending,
    Posted,
    Voided,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "TransferCode", remote = "purser_domain::ledger::TransferCode")]
pub enum TransferCodeGql {
    Settlement,
    Payout,
    /// Prepaid credit added to a payer's balance.
    CreditTopUp,
    /// A usage-priced call's cost: held (pending) by a reservation, then posted or voided.
    CreditUse,
    /// What a mined settlement transaction cost in gas, exactly as its receipt says.
    NetworkFee,
    /// A capture's fee, from the escrow to the fee receiver.
    EscrowFee,
    /// A hold the payer took back after the authorization expired.
    EscrowReclaim,
}

/// What a mined transaction cost its sender, in wei (decimal strings).
#[derive(async_graphql::SimpleObject)]
pub struct NetworkCost {
    pub gas_used: String,
    pub effective_gas_price: String,
    /// The L1 data fee an OP Stack receipt reports; `0` elsewhere.
    pub l1_fee: String,
    /// The OP Stack operator fee; `0` elsewhere.
    pub operator_fee: String,
    /// gas used × effective gas price + L1 fee + operator fee.
    pub total: String,
}

/// A tenant's settlement gas on one chain on one UTC day (wei, decimal strings).
#[derive(async_graphql::SimpleObject)]
pub struct NetworkCostDay {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub network: String,
    /// Settlements whose mined transaction's cost is known.
    pub settlements: i32,
    /// Their cost in wei of the chain's gas token.
    pub total: String,
    /// The router's estimates, for the settlements that had one...
    pub estimated: String,
    /// ...and what those same settlements cost.
    pub estimated_actual: String,
}

/// One payment authorization, settled (or being settled) exactly once.
pub struct Settlement(pub settlement::Settlement);

#[Object]
impl Settlement {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn status(&self) -> SettlementStatusGql {
        self.0.status.into()
    }

    /// CAIP-2 network, e.g. `eip155:8453`.
    async fn network(&self) -> &str {
        &self.0.key.network
    }

    /// The token contract.
    async fn asset(&self) -> &str {
        &self.0.key.asset
    }

    async fn payer(&self) -> &str {
        &self.0.key.payer
    }

    async fn pay_to(&self) -> &str {
        &self.0.pay_to
    }

    async fn amount(&self) -> Amount {
        Amount(self.0.amount)
    }

    /// The EIP-3009 nonce of the authorization.
    async fn authorization_nonce(&self) -> &str {
        &self.0.key.nonce
    }

    /// The transaction that settled it, or the latest one sent.
    async fn transaction_hash(&self) -> Option<&str> {
        self.0.tx_hash.as_deref()
    }

    /// The including block, once confirmed (a decimal string).
    async fn block_number(&self) -> Option<String> {
        self.0.block_number.map(|b| b.to_string())
    }

    /// The x402 reason of a failure or rejection.
    async fn error_reason(&self) -> Option<&str> {
        self.0.error_reason.as_deref()
    }

    async fn error_message(&self) -> Option<&str> {
        self.0.error_message.as_deref()
    }

    async fn payment_identifier(&self) -> Option<&str> {
        self.0.payment_identifier.as_deref()
    }

    /// What the mined transaction cost, in wei of the chain's gas token, from its receipt.
    async fn network_cost(&self) -> Option<NetworkCost> {
        self.0.network_cost.map(|c| NetworkCost {
            gas_used: c.gas_used.to_string(),
            effective_gas_price: c.effective_gas_price.to_string(),
            l1_fee: c.l1_fee.to_string(),
            operator_fee: c.operator_fee.to_string(),
            total: c.total.to_string(),
        })
    }

    /// The settlement router's estimate of that cost when the transaction was signed, in wei.
    async fn estimated_network_cost(&self) -> Option<String> {
        self.0.estimated_network_cost.map(|c| c.to_string())
    }

    /// Why this rail: every rail's quote and health when the transaction was signed, and the
    /// rail chosen.
    async fn route_decision(&self) -> Option<async_graphql::Json<serde_json::Value>> {
        self.0
            .route_decision
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
            .map(async_graphql::Json)
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }

    /// The ledger transfers this settlement caused.
    async fn transfers(&self, ctx: &Context<'_>) -> GqlResult<Vec<LedgerTransfer>> {
        let scope = TenantScope::trusted(self.0.tenant_id);
        let transfers = store(ctx)
            .transfers_for_settlement(scope, self.0.id)
            .await?;
        Ok(transfers.into_iter().map(LedgerTransfer::from).collect())
    }
}

/// A double-entry transfer: `amount` from the debit account to the credit account.
#[derive(SimpleObject)]
pub struct LedgerTransfer {
    pub id: ID,
    pub code: TransferCodeGql,
    pub debit: AccountKindGql,
    pub credit: AccountKindGql,
    pub amount: Amount,
    pub state: TransferStateGql,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

impl From<ledger::Transfer> for LedgerTransfer {
    fn from(t: ledger::Transfer) -> Self {
        Self {
            id: ID(t.id.to_string()),
            code: t.code.into(),
            debit: t.debit.into(),
            credit: t.credit.into(),
            amount: Amount(t.amount),
            state: t.state.into(),
            created_at: t.created_at,
            resolved_at: t.resolved_at,
        }
    }
}

/// An account's sums, by side and phase: sums over its transfers.
#[derive(SimpleObject)]
pub struct LedgerBalance {
    pub kind: AccountKindGql,
    /// The payer of a per-wallet account (`PAYER_CREDIT`); null for tenant-wide accounts.
    pub wallet: Option<String>,
    pub network: String,
    pub asset: String,
    pub debits_pending: Amount,
    pub credits_pending: Amount,
    pub debits_posted: Amount,
    pub credits_posted: Amount,
}

impl From<ledger::AccountBalance> for LedgerBalance {
    fn from(b: ledger::AccountBalance) -> Self {
        Self {
            kind: b.account.kind.into(),
            wallet: b.account.wallet,
            network: b.account.network,
            asset: b.account.asset,
            debits_pending: Amount(b.debits_pending),
            credits_pending: Amount(b.credits_pending),
            debits_posted: Amount(b.debits_posted),
            credits_posted: Amount(b.credits_posted),
        }
    }
}
