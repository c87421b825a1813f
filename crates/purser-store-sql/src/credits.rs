//! Prepaid credits (`purser_domain::credits`): balances, top-ups and two-phase reservations,
//! each change one write transaction that writes its ledger transfers and the payer's
//! `credit_balances` row together.
//!
//! What differs is how the balance row is guarded ([`CreditDialect`]). PostgreSQL, at READ
//! COMMITTED, changes it with SQL arithmetic under its row lock: a reservation is one statement
//! whose guarded decrement (`… WHERE available >= amount`) concurrent reservations queue on, a
//! waiter re-evaluating the guard on the row's newest version; commit and release lock the
//! reservation (`FOR UPDATE`) before the balance row, and a reservation never locks an existing
//! reservation, so the two orders cannot deadlock. SQLite starts every change with `BEGIN
//! IMMEDIATE`, which takes the single write lock before the first read, then reads, checks and
//! writes the balance, its decimal text computed in Rust as `u128`.

use std::fmt::{self, Display};
use std::future::Future;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use purser_domain::auth::TenantScope;
use purser_domain::credits::{
    CreditBalance, CreditKey, CreditReservation, CreditReservationState, CreditTopUp,
    check_commit_amount, check_credit_amount, check_top_up_settlement,
};
use purser_domain::id::{CreditReservationId, SettlementId, TenantId, TransferId};
use purser_domain::ledger::{AccountKind, TransferCode, TransferState};
use purser_domain::money::Amount;
use purser_domain::repo::CreditRepository;
use purser_domain::settlement::SettlementStatus;
use purser_domain::{Error, Result};
use uuid::Uuid;

use crate::ledger::{LedgerDialect, ledger_account};
use crate::{Cols, Conn, Dialect, Row, Sql, SqlStore, commit, corrupt_row};

/// How a backend guards a payer's balance row.
pub trait CreditDialect: LedgerDialect {
    /// Holds `amount` (checked positive) of the payer's available credit: decrements it and
    /// records a pending `credit_use` transfer from the payer's account to the tenant's
    /// `credit_earned` account and a reservation of it ([`reservation_columns`]), or answers
    /// `insufficient_credit` having written nothing.
    fn reserve(
        store: &SqlStore<Self>,
        scope: TenantScope,
        key: &CreditKey,
        amount: Amount,
    ) -> impl Future<Output = Result<CreditReservation>> + Send;

    /// In the top-up's transaction: adds `amount` to the payer's available credit, creating
    /// the balance row (for the payer's `account`) on the first top-up; `invalid_input` when
    /// the balance would exceed `u128`.
    fn add_credit(
        conn: &mut Conn<Self>,
        tenant: TenantId,
        key: &CreditKey,
        account: Uuid,
        amount: Amount,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// In a resolution's transaction: takes `reserved` off the payer's reserved credit and
    /// gives `returned` back to its available credit.
    fn return_credit(
        conn: &mut Conn<Self>,
        tenant: TenantId,
        key: &CreditKey,
        reserved: Amount,
        returned: Amount,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// The columns [`reservation`] reads (and the hold's transfer id).
pub fn reservation_columns<D: Dialect>() -> impl Display {
    fmt::from_fn(|f| {
        write!(
            f,
            "id, tenant_id, wallet, network, asset, amount{text} AS amount, state, \
             committed_amount{text} AS committed_amount, hold_transfer_id, created_at, resolved_at",
            text = D::AS_TEXT
        )
    })
}

pub fn read_reservation<D: Dialect>(row: &Row<D>) -> Result<CreditReservation> {
    let r = Cols::<D>::new(row);
    let what = "decoding a credit reservation";
    Ok(CreditReservation {
        id: CreditReservationId::from_uuid(r.uuid("id")?),
        tenant_id: TenantId::from_uuid(r.uuid("tenant_id")?),
        key: CreditKey::new(&r.text("wallet")?, &r.text("network")?, &r.text("asset")?)
            .map_err(|e| corrupt_row(what, e))?,
        amount: r.amount("amount")?,
        state: r.parse("state", what)?,
        committed_amount: r.opt_amount("committed_amount")?,
        created_at: r.time("created_at")?,
        resolved_at: r.opt_time("resolved_at")?,
    })
}

/// Inserts a transfer between two accounts of the key's tenant, chain and asset. A top-up
/// names its settlement; `None` back when that settlement already has its top-up.
#[allow(clippy::too_many_arguments)]
pub async fn insert_transfer<D: Dialect>(
    conn: &mut Conn<D>,
    tenant_id: TenantId,
    key: &CreditKey,
    debit: Uuid,
    credit: Uuid,
    amount: Amount,
    state: TransferState,
    code: TransferCode,
    settlement_id: Option<SettlementId>,
    at: DateTime<Utc>,
) -> Result<Option<Uuid>> {
    Sql::<D>::new(format!(
        "INSERT INTO ledger_transfers (id, tenant_id, network, asset, debit_account_id,
             credit_account_id, amount, state, code, settlement_id, created_at, resolved_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7{}, $8, $9, $10, $11, $12)
         ON CONFLICT (settlement_id, code) DO NOTHING
         RETURNING id",
        D::AS_NUMERIC
    ))
    .arg(TransferId::new().as_uuid())
    .arg(tenant_id.as_uuid())
    .arg(key.network())
    .arg(key.asset())
    .arg(debit)
    .arg(credit)
    .arg(amount)
    .arg(state.as_str())
    .arg(code.as_str())
    .arg(settlement_id.map(|s| s.as_uuid()))
    .arg(at)
    .arg((state != TransferState::Pending).then_some(at))
    .fetch_optional(conn, "writing a credit transfer")
    .await?
    .map(|row| Cols::<D>::new(&row).uuid("id"))
    .transpose()
}

/// Posts or voids a pending transfer; it must be pending (the caller holds its reservation).
async fn resolve_transfer<D: Dialect>(
    conn: &mut Conn<D>,
    id: Uuid,
    state: TransferState,
    at: DateTime<Utc>,
) -> Result<()> {
    let resolved = Sql::<D>::new(
        "UPDATE ledger_transfers SET state = $2, resolved_at = $3 WHERE id = $1 AND state = 'pending'",
    )
    .arg(id)
    .arg(state.as_str())
    .arg(at)
    .execute(conn, "resolving a credit hold")
    .await?;
    if resolved != 1 {
        return Err(Error::internal(
            "resolving a credit hold",
            format!("transfer {id} is not pending"),
        ));
    }
    Ok(())
}

/// The top-up a settlement bought, if any, as the caller would have made it.
async fn settlement_top_up<D: Dialect>(
    conn: &mut Conn<D>,
    scope: TenantScope,
    settlement_id: SettlementId,
) -> Result<Option<CreditTopUp>> {
    let Some(row) = Sql::<D>::new(format!(
        "SELECT t.id, a.wallet, t.network, t.asset, t.amount{} AS amount, t.created_at
         FROM ledger_transfers t JOIN ledger_accounts a ON a.id = t.credit_account_id
         WHERE t.settlement_id = $1 AND t.code = 'credit_top_up' AND t.tenant_id = $2",
        D::AS_TEXT
    ))
    .arg(settlement_id.as_uuid())
    .arg(scope.tenant_id().as_uuid())
    .fetch_optional(conn, "reading a settlement's top-up")
    .await?
    else {
        return Ok(None);
    };
    let r = Cols::<D>::new(&row);
    let wallet = r.opt_text("wallet")?.ok_or_else(|| {
        Error::internal(
            "reading a settlement's top-up",
            "credited a tenant-wide account",
        )
    })?;
    Ok(Some(CreditTopUp {
        transfer_id: TransferId::from_uuid(r.uuid("id")?),
        tenant_id: scope.tenant_id(),
        key: CreditKey::new(&wallet, &r.text("network")?, &r.text("asset")?)
            .map_err(|e| corrupt_row("decoding a top-up", e))?,
        amount: r.amount("amount")?,
        settlement_id: Some(settlement_id),
        created_at: r.time("created_at")?,
    }))
}

/// Checks that the settlement can pay for a top-up of `amount` under `key`.
async fn check_settlement<D: Dialect>(
    conn: &mut Conn<D>,
    scope: TenantScope,
    settlement_id: SettlementId,
    key: &CreditKey,
    amount: Amount,
) -> Result<()> {
    let row = Sql::<D>::new(format!(
        "SELECT network, asset, amount{} AS amount, status FROM settlements \
         WHERE id = $1 AND tenant_id = $2",
        D::AS_TEXT
    ))
    .arg(settlement_id.as_uuid())
    .arg(scope.tenant_id().as_uuid())
    .fetch_optional(conn, "reading a top-up's settlement")
    .await?
    .ok_or_else(|| Error::not_found(SettlementId::WHAT))?;
    let r = Cols::<D>::new(&row);
    let status: SettlementStatus = r.parse("status", "decoding a settlement")?;
    check_top_up_settlement(
        key,
        amount,
        &r.text("network")?,
        &r.text("asset")?,
        r.amount("amount")?,
        status,
    )
}

impl<D: CreditDialect> SqlStore<D> {
    /// Commits (`Some(actual)`) or releases (`None`) a reservation, once.
    async fn resolve_reservation(
        &self,
        scope: TenantScope,
        id: CreditReservationId,
        actual: Option<Amount>,
    ) -> Result<CreditReservation> {
        let mut tx = self.begin_write().await?;
        // Locks the reservation: of two resolutions at once, the second waits and then finds it
        // resolved.
        let row = Sql::<D>::new(format!(
            "SELECT {} FROM credit_reservations WHERE id = $1 AND tenant_id = $2{}",
            reservation_columns::<D>(),
            D::FOR_UPDATE
        ))
        .arg(id.as_uuid())
        .arg(scope.tenant_id().as_uuid())
        .fetch_optional(&mut tx, "reading a credit reservation")
        .await?
        .ok_or_else(|| Error::not_found(CreditReservationId::WHAT))?;
        let hold = Cols::<D>::new(&row).uuid("hold_transfer_id")?;
        let reservation = read_reservation::<D>(&row)?;
        if let Some(actual) = actual {
            check_commit_amount(reservation.amount, actual)?;
        }
        if reservation.state != CreditReservationState::Pending {
            return reservation.check_resolved_as(actual);
        }
        let tenant = scope.tenant_id();
        let spent = actual.unwrap_or(Amount::ZERO);
        let now = purser_domain::time::now();
        let mut use_transfer = None;
        if spent == reservation.amount {
            resolve_transfer::<D>(&mut tx, hold, TransferState::Posted, now).await?;
        } else {
            resolve_transfer::<D>(&mut tx, hold, TransferState::Voided, now).await?;
            if !spent.is_zero() {
                let row = Sql::<D>::new(
                    "SELECT debit_account_id, credit_account_id FROM ledger_transfers WHERE id = $1",
                )
                .arg(hold)
                .fetch_one(&mut tx, "reading a credit hold")
                .await?;
                let r = Cols::<D>::new(&row);
                use_transfer = insert_transfer::<D>(
                    &mut tx,
                    tenant,
                    &reservation.key,
                    r.uuid("debit_account_id")?,
                    r.uuid("credit_account_id")?,
                    spent,
                    TransferState::Posted,
                    TransferCode::CreditUse,
                    None,
                    now,
                )
                .await?;
            }
        }
        let returned = reservation
            .amount
            .checked_sub(spent)
            .ok_or_else(|| Error::internal("committing credit", "spent more than reserved"))?;
        D::return_credit(
            &mut tx,
            tenant,
            &reservation.key,
            reservation.amount,
            returned,
            now,
        )
        .await?;
        let state = if actual.is_some() {
            CreditReservationState::Committed
        } else {
            CreditReservationState::Released
        };
        let row = Sql::<D>::new(format!(
            "UPDATE credit_reservations
             SET state = $2, committed_amount = $3{}, use_transfer_id = $4, resolved_at = $5
             WHERE id = $1 AND state = 'pending'
             RETURNING {}",
            D::AS_NUMERIC,
            reservation_columns::<D>()
        ))
        .arg(id.as_uuid())
        .arg(state.as_str())
        .arg(actual)
        .arg(use_transfer)
        .arg(now)
        .fetch_one(&mut tx, "resolving a credit reservation")
        .await?;
        commit::<D>(tx).await?;
        read_reservation::<D>(&row)
    }
}

#[async_trait]
impl<D: CreditDialect> CreditRepository for SqlStore<D> {
    async fn top_up(
        &self,
        scope: TenantScope,
        key: &CreditKey,
        amount: Amount,
        settlement_id: Option<SettlementId>,
    ) -> Result<CreditTopUp> {
        check_credit_amount(amount)?;
        let tenant = scope.tenant_id();
        let mut tx = self.begin_write().await?;
        if let Some(settlement_id) = settlement_id {
            check_settlement::<D>(&mut tx, scope, settlement_id, key, amount).await?;
            if let Some(existing) = settlement_top_up::<D>(&mut tx, scope, settlement_id).await? {
                return existing.check_repeated(key, amount);
            }
        }
        let (network, asset) = (key.network(), key.asset());
        // Accounts are opened in one order by every caller, so first top-ups racing for a new
        // tenant, chain or wallet wait on each other's inserts without deadlocking. The earned
        // account is opened here, so a reservation finds it.
        let issuance = ledger_account::<D>(
            &mut tx,
            tenant,
            network,
            asset,
            AccountKind::CreditIssuance,
            None,
        )
        .await?;
        let payer = ledger_account::<D>(
            &mut tx,
            tenant,
            network,
            asset,
            AccountKind::PayerCredit,
            Some(key.wallet()),
        )
        .await?;
        ledger_account::<D>(
            &mut tx,
            tenant,
            network,
            asset,
            AccountKind::CreditEarned,
            None,
        )
        .await?;
        let now = purser_domain::time::now();
        let Some(transfer) = insert_transfer::<D>(
            &mut tx,
            tenant,
            key,
            issuance,
            payer,
            amount,
            TransferState::Posted,
            TransferCode::CreditTopUp,
            settlement_id,
            now,
        )
        .await?
        else {
            // A concurrent call topped up for this settlement first (and committed: the insert
            // waited for it): answer its top-up.
            drop(tx);
            let settlement_id = settlement_id
                .ok_or_else(|| Error::internal("topping up", "a conflict without a settlement"))?;
            let mut conn = self.acquire("reading a settlement's top-up").await?;
            let existing = settlement_top_up::<D>(&mut conn, scope, settlement_id)
                .await?
                .ok_or_else(|| Error::internal("topping up", "the conflicting top-up is gone"))?;
            return existing.check_repeated(key, amount);
        };
        D::add_credit(&mut tx, tenant, key, payer, amount, now).await?;
        commit::<D>(tx).await?;
        Ok(CreditTopUp {
            transfer_id: TransferId::from_uuid(transfer),
            tenant_id: tenant,
            key: key.clone(),
            amount,
            settlement_id,
            created_at: now,
        })
    }

    async fn credit_balance(&self, scope: TenantScope, key: &CreditKey) -> Result<CreditBalance> {
        let sql = Sql::new(format!(
            "SELECT available{text} AS available, reserved{text} AS reserved FROM credit_balances
             WHERE tenant_id = $1 AND wallet = $2 AND network = $3 AND asset = $4",
            text = D::AS_TEXT
        ))
        .arg(scope.tenant_id().as_uuid())
        .arg(key.wallet())
        .arg(key.network())
        .arg(key.asset());
        let (available, reserved) =
            match self.fetch_optional(sql, "reading a credit balance").await? {
                Some(row) => {
                    let r = Cols::<D>::new(&row);
                    (r.amount("available")?, r.amount("reserved")?)
                }
                None => (Amount::ZERO, Amount::ZERO),
            };
        Ok(CreditBalance {
            tenant_id: scope.tenant_id(),
            key: key.clone(),
            available,
            reserved,
        })
    }

    async fn reserve(
        &self,
        scope: TenantScope,
        key: &CreditKey,
        amount: Amount,
    ) -> Result<CreditReservation> {
        check_credit_amount(amount)?;
        D::reserve(self, scope, key, amount).await
    }

    async fn commit(
        &self,
        scope: TenantScope,
        id: CreditReservationId,
        actual: Amount,
    ) -> Result<CreditReservation> {
        self.resolve_reservation(scope, id, Some(actual)).await
    }

    async fn release(
        &self,
        scope: TenantScope,
        id: CreditReservationId,
    ) -> Result<CreditReservation> {
        self.resolve_reservation(scope, id, None).await
    }

    async fn find_credit_reservation(
        &self,
        scope: TenantScope,
        id: CreditReservationId,
    ) -> Result<Option<CreditReservation>> {
        let sql = Sql::new(format!(
            "SELECT {} FROM credit_reservations WHERE id = $1 AND tenant_id = $2",
            reservation_columns::<D>()
        ))
        .arg(id.as_uuid())
        .arg(scope.tenant_id().as_uuid());
        self.fetch_optional(sql, "reading a credit reservation")
            .await?
            .as_ref()
            .map(read_reservation::<D>)
            .transpose()
    }

    async fn stale_credit_reservations(
        &self,
        created_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<CreditReservation>> {
        let sql = Sql::new(format!(
            "SELECT {} FROM credit_reservations
             WHERE state = 'pending' AND created_at < $1 ORDER BY created_at LIMIT $2",
            reservation_columns::<D>()
        ))
        .arg(created_before)
        .arg(i64::from(limit));
        self.fetch_all(sql, "listing stale credit reservations")
            .await?
            .iter()
            .map(read_reservation::<D>)
            .collect()
    }
}
