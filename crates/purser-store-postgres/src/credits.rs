//! Prepaid credits (`purser_domain::credits`): balances, top-ups and two-phase reservations,
//! each change one transaction that writes its ledger transfers and the balance row together.
//!
//! Concurrency, at READ COMMITTED: a reservation is one statement that starts with a guarded
//! `UPDATE` of the payer's `credit_balances` row (`available = available - amount … WHERE
//! available >= amount`) and inserts the hold and the reservation for the row it returns. The
//! row lock it takes is held until commit, so concurrent reservations against one balance queue
//! on it; a waiter re-evaluates the guard on the row's newest version (PostgreSQL's
//! EvalPlanQual) and updates nothing when the credit is gone, which is `insufficient_credit`
//! with nothing written. The column's CHECK (`available >= 0`) refuses an overdraft whatever code
//! writes the row. Commit and release lock the reservation (`FOR UPDATE`), then the balance row;
//! a reservation never locks an existing reservation, so the two orders cannot deadlock.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use purser_domain::auth::TenantScope;
use purser_domain::credits::{
    CreditBalance, CreditKey, CreditReservation, CreditReservationState, CreditTopUp,
    check_commit_amount, check_credit_amount, check_top_up_settlement, insufficient_credit,
};
use purser_domain::id::{CreditReservationId, SettlementId, TenantId, TransferId};
use purser_domain::ledger::{AccountKind, TransferCode, TransferState};
use purser_domain::money::Amount;
use purser_domain::repo::CreditRepository;
use purser_domain::settlement::SettlementStatus;
use purser_domain::{Error, Result};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::PgStore;
use crate::error::{corrupt_row, db_error};
use crate::ledger::ledger_account;
use crate::settlements::{commit, parse_amount};

const RESERVATION_COLUMNS: &str = "id, tenant_id, wallet, network, asset, amount::text AS amount, \
     state, committed_amount::text AS committed_amount, hold_transfer_id, created_at, resolved_at";

#[derive(sqlx::FromRow)]
struct ReservationRow {
    id: Uuid,
    tenant_id: Uuid,
    wallet: String,
    network: String,
    asset: String,
    amount: String,
    state: String,
    committed_amount: Option<String>,
    hold_transfer_id: Uuid,
    created_at: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
}

impl TryFrom<ReservationRow> for CreditReservation {
    type Error = Error;

    fn try_from(row: ReservationRow) -> Result<Self> {
        let decode = |e| corrupt_row("decoding a credit reservation", e);
        Ok(CreditReservation {
            id: CreditReservationId::from_uuid(row.id),
            tenant_id: TenantId::from_uuid(row.tenant_id),
            key: CreditKey::new(&row.wallet, &row.network, &row.asset).map_err(decode)?,
            amount: parse_amount(&row.amount)?,
            state: row.state.parse().map_err(decode)?,
            committed_amount: row
                .committed_amount
                .as_deref()
                .map(parse_amount)
                .transpose()?,
            created_at: row.created_at,
            resolved_at: row.resolved_at,
        })
    }
}

/// Inserts a transfer between two accounts of the key's tenant, chain and asset. A top-up
/// names its settlement; `None` back when that settlement already has its top-up.
#[allow(clippy::too_many_arguments)]
async fn insert_transfer(
    tx: &mut Transaction<'_, Postgres>,
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
    sqlx::query_scalar(
        "INSERT INTO ledger_transfers (id, tenant_id, network, asset, debit_account_id,
             credit_account_id, amount, state, code, settlement_id, created_at, resolved_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7::numeric, $8, $9, $10, $11, $12)
         ON CONFLICT ON CONSTRAINT ledger_transfers_settlement_code_key DO NOTHING
         RETURNING id",
    )
    .bind(TransferId::new().as_uuid())
    .bind(tenant_id.as_uuid())
    .bind(key.network())
    .bind(key.asset())
    .bind(debit)
    .bind(credit)
    .bind(amount.to_string())
    .bind(state.as_str())
    .bind(code.as_str())
    .bind(settlement_id.map(|s| s.as_uuid()))
    .bind(at)
    .bind((state != TransferState::Pending).then_some(at))
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_error("writing a credit transfer"))
}

/// Posts or voids a pending transfer; it must be pending (the caller holds its reservation).
async fn resolve_transfer(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
    state: TransferState,
    at: DateTime<Utc>,
) -> Result<()> {
    let resolved = sqlx::query(
        "UPDATE ledger_transfers SET state = $2, resolved_at = $3 WHERE id = $1 AND state = 'pending'",
    )
    .bind(id)
    .bind(state.as_str())
    .bind(at)
    .execute(&mut **tx)
    .await
    .map_err(db_error("resolving a credit hold"))?;
    if resolved.rows_affected() != 1 {
        return Err(Error::internal(
            "resolving a credit hold",
            format!("transfer {id} is not pending"),
        ));
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct TopUpRow {
    id: Uuid,
    wallet: Option<String>,
    network: String,
    asset: String,
    amount: String,
    created_at: DateTime<Utc>,
}

/// The top-up a settlement bought, if any, as the caller would have made it.
async fn settlement_top_up(
    tx: &mut Transaction<'_, Postgres>,
    scope: TenantScope,
    settlement_id: SettlementId,
) -> Result<Option<CreditTopUp>> {
    let row: Option<TopUpRow> = sqlx::query_as(
        "SELECT t.id, a.wallet, t.network, t.asset, t.amount::text AS amount, t.created_at
         FROM ledger_transfers t JOIN ledger_accounts a ON a.id = t.credit_account_id
         WHERE t.settlement_id = $1 AND t.code = 'credit_top_up' AND t.tenant_id = $2",
    )
    .bind(settlement_id.as_uuid())
    .bind(scope.tenant_id().as_uuid())
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_error("reading a settlement's top-up"))?;
    let Some(TopUpRow {
        id,
        wallet,
        network,
        asset,
        amount,
        created_at,
    }) = row
    else {
        return Ok(None);
    };
    let wallet = wallet.ok_or_else(|| {
        Error::internal(
            "reading a settlement's top-up",
            "credited a tenant-wide account",
        )
    })?;
    Ok(Some(CreditTopUp {
        transfer_id: TransferId::from_uuid(id),
        tenant_id: scope.tenant_id(),
        key: CreditKey::new(&wallet, &network, &asset)
            .map_err(|e| corrupt_row("decoding a top-up", e))?,
        amount: parse_amount(&amount)?,
        settlement_id: Some(settlement_id),
        created_at,
    }))
}

/// Checks that the settlement can pay for a top-up of `amount` under `key`.
async fn check_settlement(
    tx: &mut Transaction<'_, Postgres>,
    scope: TenantScope,
    settlement_id: SettlementId,
    key: &CreditKey,
    amount: Amount,
) -> Result<()> {
    let row: Option<(String, String, String, String)> = sqlx::query_as(
        "SELECT network, asset, amount::text, status FROM settlements WHERE id = $1 AND tenant_id = $2",
    )
    .bind(settlement_id.as_uuid())
    .bind(scope.tenant_id().as_uuid())
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_error("reading a top-up's settlement"))?;
    let (network, asset, paid, status) = row.ok_or_else(|| Error::not_found(SettlementId::WHAT))?;
    let status: SettlementStatus = status
        .parse()
        .map_err(|e| corrupt_row("decoding a settlement", e))?;
    check_top_up_settlement(key, amount, &network, &asset, parse_amount(&paid)?, status)
}

impl PgStore {
    /// Commits (`Some(actual)`) or releases (`None`) a reservation, once.
    async fn resolve_reservation(
        &self,
        scope: TenantScope,
        id: CreditReservationId,
        actual: Option<Amount>,
    ) -> Result<CreditReservation> {
        let mut tx = self.begin().await?;
        // Locks the reservation: of two resolutions at once, the second waits and then finds it
        // resolved.
        let row = sqlx::query_as::<_, ReservationRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {RESERVATION_COLUMNS} FROM credit_reservations
             WHERE id = $1 AND tenant_id = $2 FOR UPDATE"
        )))
        .bind(id.as_uuid())
        .bind(scope.tenant_id().as_uuid())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error("reading a credit reservation"))?
        .ok_or_else(|| Error::not_found(CreditReservationId::WHAT))?;
        let hold = row.hold_transfer_id;
        let reservation = CreditReservation::try_from(row)?;
        if let Some(actual) = actual {
            check_commit_amount(reservation.amount, actual)?;
        }
        if reservation.state != CreditReservationState::Pending {
            return reservation.check_resolved_as(actual);
        }
        let spent = actual.unwrap_or(Amount::ZERO);
        let now = purser_domain::time::now();
        let mut use_transfer = None;
        if spent == reservation.amount {
            resolve_transfer(&mut tx, hold, TransferState::Posted, now).await?;
        } else {
            resolve_transfer(&mut tx, hold, TransferState::Voided, now).await?;
            if !spent.is_zero() {
                let (debit, credit): (Uuid, Uuid) = sqlx::query_as(
                    "SELECT debit_account_id, credit_account_id FROM ledger_transfers WHERE id = $1",
                )
                .bind(hold)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error("reading a credit hold"))?;
                use_transfer = insert_transfer(
                    &mut tx,
                    scope.tenant_id(),
                    &reservation.key,
                    debit,
                    credit,
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
        let balance = sqlx::query(
            "UPDATE credit_balances
             SET reserved = reserved - $5::numeric, available = available + $6::numeric, updated_at = $7
             WHERE tenant_id = $1 AND wallet = $2 AND network = $3 AND asset = $4",
        )
        .bind(scope.tenant_id().as_uuid())
        .bind(reservation.key.wallet())
        .bind(reservation.key.network())
        .bind(reservation.key.asset())
        .bind(reservation.amount.to_string())
        .bind(returned.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error("returning held credit"))?;
        if balance.rows_affected() != 1 {
            return Err(Error::internal(
                "returning held credit",
                "a reservation without its balance row",
            ));
        }
        let state = if actual.is_some() {
            CreditReservationState::Committed
        } else {
            CreditReservationState::Released
        };
        let row = sqlx::query_as::<_, ReservationRow>(sqlx::AssertSqlSafe(format!(
            "UPDATE credit_reservations
             SET state = $2, committed_amount = $3::numeric, use_transfer_id = $4, resolved_at = $5
             WHERE id = $1 AND state = 'pending'
             RETURNING {RESERVATION_COLUMNS}"
        )))
        .bind(id.as_uuid())
        .bind(state.as_str())
        .bind(actual.map(|a| a.to_string()))
        .bind(use_transfer)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error("resolving a credit reservation"))?;
        commit(tx).await?;
        row.try_into()
    }
}

#[async_trait]
impl CreditRepository for PgStore {
    async fn top_up(
        &self,
        scope: TenantScope,
        key: &CreditKey,
        amount: Amount,
        settlement_id: Option<SettlementId>,
    ) -> Result<CreditTopUp> {
        check_credit_amount(amount)?;
        let tenant = scope.tenant_id();
        let mut tx = self.begin().await?;
        if let Some(settlement_id) = settlement_id {
            check_settlement(&mut tx, scope, settlement_id, key, amount).await?;
            if let Some(existing) = settlement_top_up(&mut tx, scope, settlement_id).await? {
                return existing.check_repeated(key, amount);
            }
        }
        let (network, asset) = (key.network(), key.asset());
        // Accounts are opened in one order by every caller, so first top-ups racing for a new
        // tenant, chain or wallet wait on each other's inserts without deadlocking. The earned
        // account is opened here, so a reservation finds it.
        let issuance = ledger_account(
            &mut tx,
            tenant,
            network,
            asset,
            AccountKind::CreditIssuance,
            None,
        )
        .await?;
        let payer = ledger_account(
            &mut tx,
            tenant,
            network,
            asset,
            AccountKind::PayerCredit,
            Some(key.wallet()),
        )
        .await?;
        ledger_account(
            &mut tx,
            tenant,
            network,
            asset,
            AccountKind::CreditEarned,
            None,
        )
        .await?;
        let now = purser_domain::time::now();
        let Some(transfer) = insert_transfer(
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
            let mut tx = self.begin().await?;
            let existing = settlement_top_up(&mut tx, scope, settlement_id)
                .await?
                .ok_or_else(|| Error::internal("topping up", "the conflicting top-up is gone"))?;
            return existing.check_repeated(key, amount);
        };
        sqlx::query(
            "INSERT INTO credit_balances (tenant_id, wallet, network, asset, account_id, available,
                 reserved, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6::numeric, 0, $7)
             ON CONFLICT (tenant_id, wallet, network, asset) DO UPDATE
             SET available = credit_balances.available + EXCLUDED.available,
                 updated_at = EXCLUDED.updated_at",
        )
        .bind(tenant.as_uuid())
        .bind(key.wallet())
        .bind(network)
        .bind(asset)
        .bind(payer)
        .bind(amount.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error("adding credit"))?;
        commit(tx).await?;
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
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT available::text, reserved::text FROM credit_balances
             WHERE tenant_id = $1 AND wallet = $2 AND network = $3 AND asset = $4",
        )
        .bind(scope.tenant_id().as_uuid())
        .bind(key.wallet())
        .bind(key.network())
        .bind(key.asset())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("reading a credit balance"))?;
        let (available, reserved) = match row {
            Some((available, reserved)) => (parse_amount(&available)?, parse_amount(&reserved)?),
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
        let tenant = scope.tenant_id();
        let now = purser_domain::time::now();
        // One statement, so one round trip and the shortest hold on the balance row's lock: the
        // guarded decrement, then the pending transfer and the reservation for the row it
        // returns. When the guard fails, nothing matches and nothing is written. The earned
        // account comes from a subquery: were it missing, the NOT NULL on the transfer's credit
        // account would fail the whole statement, decrement included.
        let row = sqlx::query_as::<_, ReservationRow>(sqlx::AssertSqlSafe(format!(
            "WITH debited AS (
                 UPDATE credit_balances
                 SET available = available - $5::numeric, reserved = reserved + $5::numeric,
                     updated_at = $6
                 WHERE tenant_id = $1 AND wallet = $2 AND network = $3 AND asset = $4
                   AND available >= $5::numeric
                 RETURNING account_id
             ), hold AS (
                 INSERT INTO ledger_transfers (id, tenant_id, network, asset, debit_account_id,
                     credit_account_id, amount, state, code, created_at)
                 SELECT $7, $1, $3, $4, debited.account_id,
                     (SELECT id FROM ledger_accounts
                      WHERE tenant_id = $1 AND network = $3 AND asset = $4
                        AND kind = 'credit_earned' AND wallet IS NULL),
                     $5::numeric, 'pending', 'credit_use', $6
                 FROM debited
                 RETURNING id
             )
             INSERT INTO credit_reservations (id, tenant_id, wallet, network, asset, amount, state,
                 hold_transfer_id, created_at)
             SELECT $8, $1, $2, $3, $4, $5::numeric, 'pending', hold.id, $6 FROM hold
             RETURNING {RESERVATION_COLUMNS}"
        )))
        .bind(tenant.as_uuid())
        .bind(key.wallet())
        .bind(key.network())
        .bind(key.asset())
        .bind(amount.to_string())
        .bind(now)
        .bind(TransferId::new().as_uuid())
        .bind(CreditReservationId::new().as_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("reserving credit"))?;
        row.ok_or_else(|| insufficient_credit(amount))?.try_into()
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
        sqlx::query_as::<_, ReservationRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {RESERVATION_COLUMNS} FROM credit_reservations WHERE id = $1 AND tenant_id = $2"
        )))
        .bind(id.as_uuid())
        .bind(scope.tenant_id().as_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("reading a credit reservation"))?
        .map(CreditReservation::try_from)
        .transpose()
    }

    async fn stale_credit_reservations(
        &self,
        created_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<CreditReservation>> {
        sqlx::query_as::<_, ReservationRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {RESERVATION_COLUMNS} FROM credit_reservations
             WHERE state = 'pending' AND created_at < $1 ORDER BY created_at LIMIT $2"
        )))
        .bind(created_before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("listing stale credit reservations"))?
        .into_iter()
        .map(CreditReservation::try_from)
        .collect()
    }
}
