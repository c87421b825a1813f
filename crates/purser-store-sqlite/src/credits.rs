//! Prepaid credits (`purser_domain::credits`): balances, top-ups and two-phase reservations,
//! each change one write transaction that writes its ledger transfers and the balance row
//! together.
//!
//! Concurrency: every change starts with `BEGIN IMMEDIATE`, taking SQLite's single write lock
//! before its first read, so a reservation reads the payer's balance, checks it covers the
//! amount and writes it back decremented with no other writer in between; concurrent
//! reservations queue on the lock (each waits up to the busy timeout). Amounts are decimal text,
//! computed in Rust as `u128`.

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
use sqlx::{Sqlite, SqliteConnection, Transaction};
use uuid::Uuid;

use crate::error::{corrupt_row, db_error};
use crate::ledger::ledger_account;
use crate::{SqliteStore, from_micros, to_micros};

const RESERVATION_COLUMNS: &str = "id, tenant_id, wallet, network, asset, amount, state, \
     committed_amount, hold_transfer_id, created_at, resolved_at";

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
    created_at: i64,
    resolved_at: Option<i64>,
}

fn amount(text: &str) -> Result<Amount> {
    text.parse()
        .map_err(|e| corrupt_row("decoding a credit amount", e))
}

impl TryFrom<ReservationRow> for CreditReservation {
    type Error = Error;

    fn try_from(row: ReservationRow) -> Result<Self> {
        let decode = |e| corrupt_row("decoding a credit reservation", e);
        Ok(CreditReservation {
            id: CreditReservationId::from_uuid(row.id),
            tenant_id: TenantId::from_uuid(row.tenant_id),
            key: CreditKey::new(&row.wallet, &row.network, &row.asset).map_err(decode)?,
            amount: amount(&row.amount)?,
            state: row.state.parse().map_err(decode)?,
            committed_amount: row.committed_amount.as_deref().map(amount).transpose()?,
            created_at: from_micros(row.created_at)?,
            resolved_at: row.resolved_at.map(from_micros).transpose()?,
        })
    }
}

/// The balance row's account, available and reserved amounts, if the payer was ever topped up.
async fn balance_row(
    conn: &mut SqliteConnection,
    tenant_id: TenantId,
    key: &CreditKey,
) -> Result<Option<(Uuid, Amount, Amount)>> {
    let row: Option<(Uuid, String, String)> = sqlx::query_as(
        "SELECT account_id, available, reserved FROM credit_balances
         WHERE tenant_id = $1 AND wallet = $2 AND network = $3 AND asset = $4",
    )
    .bind(tenant_id.as_uuid())
    .bind(key.wallet())
    .bind(key.network())
    .bind(key.asset())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error("reading a credit balance"))?;
    row.map(|(account, available, reserved)| Ok((account, amount(&available)?, amount(&reserved)?)))
        .transpose()
}

async fn write_balance(
    tx: &mut Transaction<'_, Sqlite>,
    tenant_id: TenantId,
    key: &CreditKey,
    available: Amount,
    reserved: Amount,
    at: i64,
) -> Result<()> {
    let updated = sqlx::query(
        "UPDATE credit_balances SET available = $5, reserved = $6, updated_at = $7
         WHERE tenant_id = $1 AND wallet = $2 AND network = $3 AND asset = $4",
    )
    .bind(tenant_id.as_uuid())
    .bind(key.wallet())
    .bind(key.network())
    .bind(key.asset())
    .bind(available.to_string())
    .bind(reserved.to_string())
    .bind(at)
    .execute(&mut **tx)
    .await
    .map_err(db_error("writing a credit balance"))?;
    if updated.rows_affected() != 1 {
        return Err(Error::internal(
            "writing a credit balance",
            "the balance row is missing",
        ));
    }
    Ok(())
}

/// Inserts a transfer between two accounts of the key's tenant, chain and asset.
#[allow(clippy::too_many_arguments)]
async fn insert_transfer(
    tx: &mut Transaction<'_, Sqlite>,
    tenant_id: TenantId,
    key: &CreditKey,
    debit: Uuid,
    credit: Uuid,
    amount: Amount,
    state: TransferState,
    code: TransferCode,
    settlement_id: Option<SettlementId>,
    at: i64,
) -> Result<Uuid> {
    let id = TransferId::new().as_uuid();
    sqlx::query(
        "INSERT INTO ledger_transfers (id, tenant_id, network, asset, debit_account_id,
             credit_account_id, amount, state, code, settlement_id, created_at, resolved_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(id)
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
    .execute(&mut **tx)
    .await
    .map_err(db_error("writing a credit transfer"))?;
    Ok(id)
}

/// Posts or voids a pending transfer; it must be pending (the caller holds the write lock).
async fn resolve_transfer(
    tx: &mut Transaction<'_, Sqlite>,
    id: Uuid,
    state: TransferState,
    at: i64,
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
    created_at: i64,
}

/// The top-up a settlement bought, if any.
async fn settlement_top_up(
    conn: &mut SqliteConnection,
    scope: TenantScope,
    settlement_id: SettlementId,
) -> Result<Option<CreditTopUp>> {
    let row: Option<TopUpRow> = sqlx::query_as(
        "SELECT t.id, a.wallet, t.network, t.asset, t.amount, t.created_at
         FROM ledger_transfers t JOIN ledger_accounts a ON a.id = t.credit_account_id
         WHERE t.settlement_id = $1 AND t.code = 'credit_top_up' AND t.tenant_id = $2",
    )
    .bind(settlement_id.as_uuid())
    .bind(scope.tenant_id().as_uuid())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error("reading a settlement's top-up"))?;
    let Some(TopUpRow {
        id,
        wallet,
        network,
        asset,
        amount: paid,
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
        amount: amount(&paid)?,
        settlement_id: Some(settlement_id),
        created_at: from_micros(created_at)?,
    }))
}

/// Checks that the settlement can pay for a top-up of `amount` under `key`.
async fn check_settlement(
    conn: &mut SqliteConnection,
    scope: TenantScope,
    settlement_id: SettlementId,
    key: &CreditKey,
    top_up: Amount,
) -> Result<()> {
    let row: Option<(String, String, String, String)> = sqlx::query_as(
        "SELECT network, asset, amount, status FROM settlements WHERE id = $1 AND tenant_id = $2",
    )
    .bind(settlement_id.as_uuid())
    .bind(scope.tenant_id().as_uuid())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error("reading a top-up's settlement"))?;
    let (network, asset, paid, status) = row.ok_or_else(|| Error::not_found(SettlementId::WHAT))?;
    let status: SettlementStatus = status
        .parse()
        .map_err(|e| corrupt_row("decoding a settlement", e))?;
    check_top_up_settlement(key, top_up, &network, &asset, amount(&paid)?, status)
}

fn overflow() -> Error {
    Error::invalid_input("the credit balance would exceed the largest supported amount")
}

impl SqliteStore {
    /// Commits (`Some(actual)`) or releases (`None`) a reservation, once.
    async fn resolve_reservation(
        &self,
        scope: TenantScope,
        id: CreditReservationId,
        actual: Option<Amount>,
    ) -> Result<CreditReservation> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query_as::<_, ReservationRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {RESERVATION_COLUMNS} FROM credit_reservations WHERE id = $1 AND tenant_id = $2"
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
        let tenant = scope.tenant_id();
        let spent = actual.unwrap_or(Amount::ZERO);
        let now = to_micros(purser_domain::time::now());
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
                use_transfer = Some(
                    insert_transfer(
                        &mut tx,
                        tenant,
                        &reservation.key,
                        debit,
                        credit,
                        spent,
                        TransferState::Posted,
                        TransferCode::CreditUse,
                        None,
                        now,
                    )
                    .await?,
                );
            }
        }
        let (_, available, reserved) = balance_row(&mut tx, tenant, &reservation.key)
            .await?
            .ok_or_else(|| {
                Error::internal(
                    "returning held credit",
                    "a reservation without its balance row",
                )
            })?;
        let corrupt = || {
            Error::internal(
                "returning held credit",
                "the balance does not cover the reservation",
            )
        };
        let returned = reservation.amount.checked_sub(spent).ok_or_else(corrupt)?;
        let reserved = reserved
            .checked_sub(reservation.amount)
            .ok_or_else(corrupt)?;
        let available = available.checked_add(returned).ok_or_else(corrupt)?;
        write_balance(&mut tx, tenant, &reservation.key, available, reserved, now).await?;
        let state = if actual.is_some() {
            CreditReservationState::Committed
        } else {
            CreditReservationState::Released
        };
        let row = sqlx::query_as::<_, ReservationRow>(sqlx::AssertSqlSafe(format!(
            "UPDATE credit_reservations
             SET state = $2, committed_amount = $3, use_transfer_id = $4, resolved_at = $5
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
        tx.commit()
            .await
            .map_err(db_error("committing a credit reservation"))?;
        row.try_into()
    }
}

#[async_trait]
impl CreditRepository for SqliteStore {
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
            check_settlement(&mut tx, scope, settlement_id, key, amount).await?;
            // Under the write lock, no other top-up for the settlement can come in between.
            if let Some(existing) = settlement_top_up(&mut tx, scope, settlement_id).await? {
                return existing.check_repeated(key, amount);
            }
        }
        let (network, asset) = (key.network(), key.asset());
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
        // Opened here, so a reservation finds it.
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
        let at = to_micros(now);
        let transfer = insert_transfer(
            &mut tx,
            tenant,
            key,
            issuance,
            payer,
            amount,
            TransferState::Posted,
            TransferCode::CreditTopUp,
            settlement_id,
            at,
        )
        .await?;
        match balance_row(&mut tx, tenant, key).await? {
            Some((_, available, reserved)) => {
                let available = available.checked_add(amount).ok_or_else(overflow)?;
                available.checked_add(reserved).ok_or_else(overflow)?;
                write_balance(&mut tx, tenant, key, available, reserved, at).await?;
            }
            None => {
                sqlx::query(
                    "INSERT INTO credit_balances (tenant_id, wallet, network, asset, account_id,
                         available, reserved, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, '0', $7)",
                )
                .bind(tenant.as_uuid())
                .bind(key.wallet())
                .bind(network)
                .bind(asset)
                .bind(payer)
                .bind(amount.to_string())
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(db_error("adding credit"))?;
            }
        }
        tx.commit().await.map_err(db_error("committing a top-up"))?;
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
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(db_error("reading a credit balance"))?;
        let (available, reserved) = match balance_row(&mut conn, scope.tenant_id(), key).await? {
            Some((_, available, reserved)) => (available, reserved),
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
        let mut tx = self.begin_write().await?;
        // Read, check and decrement under the write lock.
        let (payer, available, reserved) = match balance_row(&mut tx, tenant, key).await? {
            Some((payer, available, reserved)) if available >= amount => {
                (payer, available, reserved)
            }
            // Nothing was written; dropping the transaction rolls it back.
            _ => return Err(insufficient_credit(amount)),
        };
        let available = available.checked_sub(amount).ok_or_else(overflow)?;
        let reserved = reserved.checked_add(amount).ok_or_else(overflow)?;
        let earned: Uuid = sqlx::query_scalar(
            "SELECT id FROM ledger_accounts
             WHERE tenant_id = $1 AND network = $2 AND asset = $3 AND kind = 'credit_earned'
               AND wallet IS NULL",
        )
        .bind(tenant.as_uuid())
        .bind(key.network())
        .bind(key.asset())
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error("reading the credit earned account"))?;
        let now = to_micros(purser_domain::time::now());
        let hold = insert_transfer(
            &mut tx,
            tenant,
            key,
            payer,
            earned,
            amount,
            TransferState::Pending,
            TransferCode::CreditUse,
            None,
            now,
        )
        .await?;
        write_balance(&mut tx, tenant, key, available, reserved, now).await?;
        let row = sqlx::query_as::<_, ReservationRow>(sqlx::AssertSqlSafe(format!(
            "INSERT INTO credit_reservations (id, tenant_id, wallet, network, asset, amount, state,
                 hold_transfer_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8)
             RETURNING {RESERVATION_COLUMNS}"
        )))
        .bind(CreditReservationId::new().as_uuid())
        .bind(tenant.as_uuid())
        .bind(key.wallet())
        .bind(key.network())
        .bind(key.asset())
        .bind(amount.to_string())
        .bind(hold)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error("recording a credit reservation"))?;
        tx.commit()
            .await
            .map_err(db_error("committing a credit reservation"))?;
        row.try_into()
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
        .bind(to_micros(created_before))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("listing stale credit reservations"))?
        .into_iter()
        .map(CreditReservation::try_from)
        .collect()
    }
}
