//! The double-entry ledger. Every movement of value is a [`Transfer`] from one account (debit)
//! to another (credit) of the same tenant, chain and asset, so each transfer balances by its
//! very shape (as in TigerBeetle). Transfers are two-phase where the outcome is not yet known:
//! `pending` when a settlement is submitted, then `posted` or `voided`, exactly once. An
//! account's balance is never stored: it is the sum of its transfers.
//!
//! A settlement of `amount` from a payer to a merchant posts:
//!
//! | when | transfer | debit | credit | state |
//! |---|---|---|---|---|
//! | submitted | `settlement` | payer clearing | settlement in flight | pending |
//! | confirmed | `settlement` | (same) | (same) | posted |
//! | confirmed | `payout` | settlement in flight | merchant receivable | posted |
//! | failed | `settlement` | (same) | (same) | voided |
//! | mined (confirmed or failed) | `network_fee` | network fees (asset `native`) | signer gas (`native`) | posted |
//!
//! Operations on an escrowed payment (`auth-capture`) are settlements too, each with its own
//! two-phase `settlement` transfer between the accounts of its kind, pending from submission,
//! posted on confirmation, voided on failure:
//!
//! | operation | `settlement` transfer | on confirmation, also |
//! |---|---|---|
//! | `authorize` | payer clearing → escrow held (the whole amount) | |
//! | `charge` | payer clearing → merchant receivable (the amount less the fee) | `escrow_fee`: payer clearing → fees |
//! | `capture` | escrow held → merchant receivable (the amount less the fee) | `escrow_fee`: escrow held → fees |
//! | `void` | escrow held → payer returned (all that was held) | |
//! | `refund` | refund advances → payer returned | |
//! | payer's `reclaim` (seen on chain) | `escrow_reclaim`: escrow held → payer returned, on the authorization's settlement | |
//!
//! So for every payment, escrow held is what the escrow's `capturableAmount` says, and the
//! captures less the refunds are its `refundableAmount`.
//!
//! Prepaid credits (`credit_top_up`, `credit_use`) move between `credit_issuance`, a payer's own
//! `payer_credit` account and `credit_earned`; [`crate::credits`] has their table.

use chrono::{DateTime, Utc};

use crate::id::{LedgerAccountId, SettlementId, TenantId, TransferId};
use crate::macros::string_enum;
use crate::money::Amount;

string_enum!(
    /// What an account stands for. Accounts exist per tenant, chain and asset; `payer_credit`
    /// accounts also per wallet ([`AccountKind::is_per_wallet`]).
    AccountKind, "account kind" {
        /// Value authorized by payers, on its way in.
        PayerClearing = "payer_clearing",
        /// Value in a broadcast transaction whose receipt is not yet final.
        SettlementInFlight = "settlement_in_flight",
        /// Value that reached the merchant's payout address.
        MerchantReceivable = "merchant_receivable",
        /// Fees taken by the platform.
        Fees = "fees",
        /// Where prepaid credit comes from: debited by every top-up.
        CreditIssuance = "credit_issuance",
        /// One payer's prepaid credit (per wallet): credited by top-ups, debited by uses.
        PayerCredit = "payer_credit",
        /// Credit spent on usage: the merchant's revenue from prepaid credit.
        CreditEarned = "credit_earned",
        /// What settling the tenant's payments cost in gas (asset `native`: the chain's gas
        /// token): debited by every mined settlement transaction.
        NetworkFees = "network_fees",
        /// Gas paid by Purser's settlement signers for the tenant: credited by the same.
        SignerGas = "signer_gas",
        /// Value authorized into the escrow and held there for the merchant: credited by
        /// authorizations, debited by captures, fees, voids and reclaims.
        EscrowHeld = "escrow_held",
        /// Value that went back to payers: voided or reclaimed holds, and refunds.
        PayerReturned = "payer_returned",
        /// Refunds the operator paid out of its own wallet (the escrow's refund collector pulls
        /// them from the operator): what the merchant owes the operator back.
        RefundAdvances = "refund_advances",
    }
);

impl AccountKind {
    /// Whether accounts of this kind belong to one wallet rather than to the whole tenant.
    pub const fn is_per_wallet(self) -> bool {
        matches!(self, AccountKind::PayerCredit)
    }
}

string_enum!(
    /// A transfer's phase.
    TransferState, "transfer state" {
        Pending = "pending",
        Posted = "posted",
        Voided = "voided",
    }
);

string_enum!(
    /// Why a transfer exists.
    TransferCode, "transfer code" {
        /// The settlement's own transaction: payer clearing to settlement in flight for
        /// `exact`, between the escrow accounts of its kind for an escrow operation.
        Settlement = "settlement",
        /// Settlement in flight to merchant receivable: the confirmed arrival.
        Payout = "payout",
        /// Credit issuance to payer credit: prepaid credit added to a payer's balance.
        CreditTopUp = "credit_top_up",
        /// Payer credit to credit earned: a usage-priced call's cost, held (pending) by a
        /// reservation, then posted or voided.
        CreditUse = "credit_use",
        /// Signer gas to network fees: what a mined settlement transaction cost, exactly as
        /// its receipt says, posted when its outcome is recorded.
        NetworkFee = "network_fee",
        /// Escrow held to fees: a capture's fee, to the payment's fee receiver.
        EscrowFee = "escrow_fee",
        /// Escrow held to payer returned: a hold the payer took back itself after the
        /// authorization expired, posted on the authorization's settlement when seen on chain.
        EscrowReclaim = "escrow_reclaim",
    }
);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerAccount {
    pub id: LedgerAccountId,
    pub tenant_id: TenantId,
    pub network: String,
    pub asset: String,
    pub kind: AccountKind,
    /// The wallet (lower-case hex) of a per-wallet account ([`AccountKind::is_per_wallet`]).
    pub wallet: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub id: TransferId,
    pub tenant_id: TenantId,
    pub network: String,
    pub asset: String,
    pub debit: AccountKind,
    pub credit: AccountKind,
    pub amount: Amount,
    pub state: TransferState,
    pub code: TransferCode,
    pub settlement_id: Option<SettlementId>,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// An account with the sums of its transfers, split by side and phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountBalance {
    pub account: LedgerAccount,
    pub debits_pending: Amount,
    pub credits_pending: Amount,
    pub debits_posted: Amount,
    pub credits_posted: Amount,
}

impl AccountBalance {
    /// Posted credits minus posted debits, for accounts that normally hold credits (merchant
    /// receivable); negative values are returned as `None`.
    pub fn posted_credit_balance(&self) -> Option<Amount> {
        self.credits_posted.checked_sub(self.debits_posted)
    }

    /// Posted debits minus posted credits, for accounts that normally hold debits.
    pub fn posted_debit_balance(&self) -> Option<Amount> {
        self.debits_posted.checked_sub(self.credits_posted)
    }
}
