//! Prepaid credits: a payer tops up a balance with a merchant (a tenant), per wallet, chain and
//! asset, and usage-priced calls spend it in two phases: *reserve* the most a call may cost,
//! then *commit* what it actually cost (the rest returns) or *release* all of it.
//!
//! Every movement is a balanced [`Transfer`](crate::ledger::Transfer) on the payments core's
//! ledger, between three kinds of account:
//!
//! | account | per | holds |
//! |---|---|---|
//! | `credit_issuance` | tenant, chain, asset | debits: every credit ever issued |
//! | `payer_credit` | tenant, chain, asset, **wallet** | credits: what the payer prepaid and has not spent |
//! | `credit_earned` | tenant, chain, asset | credits: what payers spent, the merchant's revenue |
//!
//! | operation | transfer | debit | credit | state |
//! |---|---|---|---|---|
//! | top up `a` | `credit_top_up` | credit issuance | payer credit | posted |
//! | reserve `r` | `credit_use` (the hold) | payer credit | credit earned | pending |
//! | commit `c = r` | (the hold) | | | posted |
//! | commit `c < r` | (the hold) | | | voided |
//! | | `credit_use` | payer credit | credit earned | posted, `c` (none when `c = 0`) |
//! | release | (the hold) | | | voided |
//!
//! A reservation is a pending transfer, so it resolves exactly once (the ledger's triggers refuse
//! a second resolution); committing less than was reserved voids the hold and posts the actual
//! amount in the same database transaction, because a transfer's amount never changes.
//!
//! The payer's *available* credit is `credits posted − debits posted − debits pending` on its
//! `payer_credit` account. Storage keeps it, and the sum of pending holds, in one row per
//! [`CreditKey`] that is changed in the same transaction as the transfers, and that a reservation
//! decrements only while it stays non-negative: the row is what concurrent reservations contend
//! on, so the balance never goes below zero whatever the concurrency. The behaviour suite checks
//! that the row always equals the ledger's sums.

use chrono::{DateTime, Utc};

use crate::entitlement::check_wallet;
use crate::error::{Error, ErrorCode, Result};
use crate::id::{CreditReservationId, SettlementId, TenantId, TransferId};
use crate::macros::string_enum;
use crate::money::Amount;
use crate::settlement::SettlementStatus;

/// The longest network id a credit balance accepts (CAIP-2 allows 41 characters).
pub const MAX_NETWORK_CHARS: usize = 64;

/// Whose credit, on which chain, in which asset: the key of one balance within a tenant.
/// Built only through [`CreditKey::new`], so every key storage sees is well-formed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CreditKey {
    wallet: String,
    network: String,
    asset: String,
}

impl CreditKey {
    /// Checks the shapes: `wallet` and `asset` are `0x` and 40 lower-case hex digits (callers
    /// lower-case what clients send, as for grants), `network` a CAIP-2 id (`eip155:8453`).
    pub fn new(wallet: &str, network: &str, asset: &str) -> Result<Self> {
        check_wallet(wallet)?;
        check_wallet(asset)
            .map_err(|_| Error::invalid_input("asset must be 0x and 40 lower-case hex digits"))?;
        let caip2 = network
            .split_once(':')
            .is_some_and(|(namespace, reference)| {
                !namespace.is_empty()
                    && !reference.is_empty()
                    && namespace
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && reference
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !caip2 || network.len() > MAX_NETWORK_CHARS {
            return Err(Error::invalid_input(
                "network must be a CAIP-2 id such as eip155:8453",
            ));
        }
        Ok(Self {
            wallet: wallet.to_owned(),
            network: network.to_owned(),
            asset: asset.to_owned(),
        })
    }

    /// The payer's wallet, lower-case hex.
    pub fn wallet(&self) -> &str {
        &self.wallet
    }

    /// The chain, CAIP-2.
    pub fn network(&self) -> &str {
        &self.network
    }

    /// The token contract, lower-case hex.
    pub fn asset(&self) -> &str {
        &self.asset
    }
}

/// A payer's credit with one tenant on one chain in one asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditBalance {
    pub tenant_id: TenantId,
    pub key: CreditKey,
    /// What a new reservation may take: prepaid, minus spent, minus held.
    pub available: Amount,
    /// The sum of pending reservations.
    pub reserved: Amount,
}

/// Credit added to a payer's balance: one posted `credit_top_up` transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditTopUp {
    /// The ledger transfer that carries it.
    pub transfer_id: TransferId,
    pub tenant_id: TenantId,
    pub key: CreditKey,
    pub amount: Amount,
    /// The payment that bought it; at most one top-up per settlement.
    pub settlement_id: Option<SettlementId>,
    pub created_at: DateTime<Utc>,
}

impl CreditTopUp {
    /// What a repeated top-up for the same settlement answers: this one, when the call asks for
    /// the same key and amount; `conflict` otherwise (a settlement tops up once).
    pub fn check_repeated(self, key: &CreditKey, amount: Amount) -> Result<Self> {
        if self.key == *key && self.amount == amount {
            return Ok(self);
        }
        Err(Error::new(
            ErrorCode::Conflict,
            format!(
                "the settlement already topped up {} for {} on {}",
                self.amount,
                self.key.wallet(),
                self.key.network()
            ),
        ))
    }
}

/// Checks that a settlement (`network`, `asset`, amount `paid`, `status`) can pay for a top-up
/// of `amount` under `key`: same chain and asset, at least the amount (`invalid_input`), and
/// confirmed (`conflict`: credit is issued only for value that arrived, never for an outcome
/// still unknown).
pub fn check_top_up_settlement(
    key: &CreditKey,
    amount: Amount,
    network: &str,
    asset: &str,
    paid: Amount,
    status: SettlementStatus,
) -> Result<()> {
    if network != key.network() || asset != key.asset() {
        return Err(Error::invalid_input(
            "the settlement was paid on another network or in another asset than the credit",
        ));
    }
    if amount > paid {
        return Err(Error::invalid_input(format!(
            "the settlement paid {paid}, less than the top-up of {amount}"
        )));
    }
    if status != SettlementStatus::Confirmed {
        return Err(Error::new(
            ErrorCode::Conflict,
            format!("the settlement is {status}; credit is issued only for a confirmed payment"),
        ));
    }
    Ok(())
}

string_enum!(
    /// Where a reservation stands. `Pending` moves once, to `Committed` or `Released`.
    CreditReservationState, "credit reservation state" {
        /// The amount is held: unavailable to other reservations, not yet spent.
        Pending = "pending",
        /// Spent: `committed_amount` went to the merchant, the rest returned to the payer.
        Committed = "committed",
        /// Nothing spent: the whole amount returned to the payer.
        Released = "released",
    }
);

/// A hold on a payer's credit for one usage-priced call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditReservation {
    pub id: CreditReservationId,
    pub tenant_id: TenantId,
    pub key: CreditKey,
    /// The most the call may cost: what was held.
    pub amount: Amount,
    pub state: CreditReservationState,
    /// What the call cost, once committed (at most `amount`; zero is allowed).
    pub committed_amount: Option<Amount>,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

impl CreditReservation {
    /// What a repeated resolution answers: the stored reservation when `wanted` is the outcome
    /// it already has (a retried commit or release is harmless), `conflict` when it was resolved
    /// the other way or committed for another amount. `wanted` is `Some(actual)` for a commit,
    /// `None` for a release. Only for a reservation that is no longer pending.
    pub fn check_resolved_as(self, wanted: Option<Amount>) -> Result<Self> {
        let same = match (self.state, wanted) {
            (CreditReservationState::Committed, Some(actual)) => {
                self.committed_amount == Some(actual)
            }
            (CreditReservationState::Released, None) => true,
            _ => false,
        };
        if same {
            return Ok(self);
        }
        let was = match (self.state, self.committed_amount) {
            (CreditReservationState::Committed, Some(amount)) => format!("committed for {amount}"),
            (state, _) => state.to_string(),
        };
        Err(Error::new(
            ErrorCode::Conflict,
            format!("credit reservation {} was already {was}", self.id),
        ))
    }
}

/// `insufficient_credit`: the payer's available credit is below `wanted`.
pub fn insufficient_credit(wanted: Amount) -> Error {
    Error::new(
        ErrorCode::InsufficientCredit,
        format!("available credit is less than {wanted}; top up and retry"),
    )
}

/// Checks what [`CreditRepository::reserve`](crate::repo::CreditRepository::reserve) and
/// [`top_up`](crate::repo::CreditRepository::top_up) take: a positive amount.
pub fn check_credit_amount(amount: Amount) -> Result<()> {
    if amount.is_zero() {
        return Err(Error::invalid_input("a credit amount must be positive"));
    }
    Ok(())
}

/// Checks a commit's actual amount against what was reserved.
pub fn check_commit_amount(reserved: Amount, actual: Amount) -> Result<()> {
    if actual > reserved {
        return Err(Error::invalid_input(format!(
            "cannot commit {actual}: only {reserved} was reserved"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WALLET: &str = "0xa11ce00000000000000000000000000000000001";
    const ASSET: &str = "0x036cbd53842c5426634e7929541ec2318f3dcf7e";

    #[test]
    fn keys_need_lower_case_addresses_and_a_caip2_network() {
        let key = CreditKey::new(WALLET, "eip155:84532", ASSET).unwrap();
        assert_eq!(
            (key.wallet(), key.network(), key.asset()),
            (WALLET, "eip155:84532", ASSET)
        );
        for (wallet, network, asset) in [
            ("0xABC", "eip155:1", ASSET),
            (
                &WALLET.to_uppercase().replace("0X", "0x")[..],
                "eip155:1",
                ASSET,
            ),
            (WALLET, "eip155:1", "usdc"),
            (WALLET, "", ASSET),
            (WALLET, "base", ASSET),
            (WALLET, "eip155:", ASSET),
            (WALLET, ":1", ASSET),
            (WALLET, "EIP155:1", ASSET),
            (WALLET, "eip155:1 ", ASSET),
            (WALLET, &format!("eip155:{}", "1".repeat(60)), ASSET),
        ] {
            let err = CreditKey::new(wallet, network, asset).unwrap_err();
            assert_eq!(
                err.code(),
                ErrorCode::InvalidInput,
                "{wallet} {network} {asset}"
            );
        }
    }

    #[test]
    fn amounts_are_positive_and_commits_stay_within_the_hold() {
        assert!(check_credit_amount(Amount::ZERO).is_err());
        check_credit_amount(Amount::from_atomic(1)).unwrap();
        let ten = Amount::from_atomic(10);
        check_commit_amount(ten, ten).unwrap();
        check_commit_amount(ten, Amount::ZERO).unwrap();
        let err = check_commit_amount(ten, Amount::from_atomic(11)).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidInput);
    }

    #[test]
    fn a_repeated_resolution_answers_the_first_or_conflicts() {
        let resolved = |state, committed: Option<u128>| CreditReservation {
            id: CreditReservationId::new(),
            tenant_id: TenantId::new(),
            key: CreditKey::new(WALLET, "eip155:1", ASSET).unwrap(),
            amount: Amount::from_atomic(10),
            state,
            committed_amount: committed.map(Amount::from_atomic),
            created_at: crate::time::now(),
            resolved_at: Some(crate::time::now()),
        };
        let committed = resolved(CreditReservationState::Committed, Some(4));
        let released = resolved(CreditReservationState::Released, None);
        let four = Some(Amount::from_atomic(4));
        assert_eq!(
            committed.clone().check_resolved_as(four).unwrap(),
            committed
        );
        assert_eq!(released.clone().check_resolved_as(None).unwrap(), released);
        for (reservation, wanted) in [
            (committed.clone(), None),
            (committed, Some(Amount::from_atomic(5))),
            (released, four),
        ] {
            let err = reservation.check_resolved_as(wanted).unwrap_err();
            assert_eq!(err.code(), ErrorCode::Conflict);
        }
    }
}
