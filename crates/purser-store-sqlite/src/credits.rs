//! Credit balances are read, checked and written back under the single write lock every credit
//! change takes first (`BEGIN IMMEDIATE`), so a reservation reads the payer's balance, checks
//! it covers the amount and writes it decremented with no other writer in between; concurrent
//! reservations queue on the lock (each waits up to the busy timeout). Amounts are decimal
//! text, computed in Rust as `u128`.

use chrono::{DateTime, Utc};
use purser_domain::auth::TenantScope;
use purser_domain::credits::{CreditKey, CreditReservation, insufficient_credit};
use purser_domain::id::{CreditReservationId, TenantId};
use purser_domain::ledger::{TransferCode, TransferState};
use purser_domain::money::Amount;
use purser_domain::{Error, Result};
use purser_store_sql::credits::{
    CreditDialect, insert_transfer, read_reservation, reservation_columns,
};
use purser_store_sql::{Cols, Sql, commit};
use sqlx::SqliteConnection;
use uuid::Uuid;

use crate::{SqliteDialect, SqliteStore};

/// The balance row's account, available and reserved amounts, if the payer was ever topped up.
async fn balance_row(
    conn: &mut SqliteConnection,
    tenant_id: TenantId,
    key: &CreditKey,
) -> Result<Option<(Uuid, Amount, Amount)>> {
    let row = Sql::<SqliteDialect>::new(
        "SELECT account_id, available, reserved FROM credit_balances
         WHERE tenant_id = $1 AND wallet = $2 AND network = $3 AND asset = $4",
    )
    .arg(tenant_id.as_uuid())
    .arg(key.wallet())
    .arg(key.network())
    .arg(key.asset())
    .fetch_optional(conn, "reading a credit balance")
    .await?;
    row.map(|row| {
        let r = Cols::<SqliteDialect>::new(&row);
        Ok((
            r.uuid("account_id")?,
            r.amount("available")?,
            r.amount("reserved")?,
        ))
    })
    .transpose()
}

async fn write_balance(
    conn: &mut SqliteConnection,
    tenant_id: TenantId,
    key: &CreditKey,
    available: Amount,
    reserved: Amount,
    at: DateTime<Utc>,
) -> Result<()> {
    let updated = Sql::<SqliteDialect>::new(
        "UPDATE credit_balances SET available = $5, reserved = $6, updated_at = $7
         WHERE tenant_id = $1 AND wallet = $2 AND network = $3 AND asset = $4",
    )
    .arg(tenant_id.as_uuid())
    .arg(key.wallet())
    .arg(key.network())
    .arg(key.asset())
    .arg(available)
    .arg(reserved)
    .arg(at)
    .execute(conn, "writing a credit balance")
    .await?;
    if updated != 1 {
        return Err(Error::internal(
            "writing a credit balance",
            "the balance row is missing",
        ));
    }
    Ok(())
}

fn overflow() -> Error {
    Error::invalid_input("the credit balance would exceed the largest supported amount")
}

impl CreditDialect for SqliteDialect {
    async fn reserve(
        store: &SqliteStore,
        scope: TenantScope,
        key: &CreditKey,
        amount: Amount,
    ) -> Result<CreditReservation> {
        let tenant = scope.tenant_id();
        let mut tx = store.begin_write().await?;
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
        let earned = Sql::<Self>::new(
            "SELECT id FROM ledger_accounts
             WHERE tenant_id = $1 AND network = $2 AND asset = $3 AND kind = 'credit_earned'
               AND wallet IS NULL",
        )
        .arg(tenant.as_uuid())
        .arg(key.network())
        .arg(key.asset())
        .fetch_one(&mut tx, "reading the credit earned account")
        .await?;
        let now = purser_domain::time::now();
        let hold = insert_transfer::<Self>(
            &mut tx,
            tenant,
            key,
            payer,
            Cols::<Self>::new(&earned).uuid("id")?,
            amount,
            TransferState::Pending,
            TransferCode::CreditUse,
            None,
            now,
        )
        .await?
        .ok_or_else(|| Error::internal("reserving credit", "the hold was not written"))?;
        write_balance(&mut tx, tenant, key, available, reserved, now).await?;
        let row = Sql::<Self>::new(format!(
            "INSERT INTO credit_reservations (id, tenant_id, wallet, network, asset, amount, state,
                 hold_transfer_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8)
             RETURNING {}",
            reservation_columns::<Self>()
        ))
        .arg(CreditReservationId::new().as_uuid())
        .arg(tenant.as_uuid())
        .arg(key.wallet())
        .arg(key.network())
        .arg(key.asset())
        .arg(amount)
        .arg(hold)
        .arg(now)
        .fetch_one(&mut tx, "recording a credit reservation")
        .await?;
        commit::<Self>(tx).await?;
        read_reservation::<Self>(&row)
    }

    async fn add_credit(
        conn: &mut SqliteConnection,
        tenant: TenantId,
        key: &CreditKey,
        account: Uuid,
        amount: Amount,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let Some((_, available, reserved)) = balance_row(&mut *conn, tenant, key).await? else {
            Sql::<Self>::new(
                "INSERT INTO credit_balances (tenant_id, wallet, network, asset, account_id,
                     available, reserved, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, '0', $7)",
            )
            .arg(tenant.as_uuid())
            .arg(key.wallet())
            .arg(key.network())
            .arg(key.asset())
            .arg(account)
            .arg(amount)
            .arg(at)
            .execute(conn, "adding credit")
            .await?;
            return Ok(());
        };
        let available = available.checked_add(amount).ok_or_else(overflow)?;
        available.checked_add(reserved).ok_or_else(overflow)?;
        write_balance(conn, tenant, key, available, reserved, at).await
    }

    async fn return_credit(
        conn: &mut SqliteConnection,
        tenant: TenantId,
        key: &CreditKey,
        reserved: Amount,
        returned: Amount,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let (_, available, held) =
            balance_row(&mut *conn, tenant, key).await?.ok_or_else(|| {
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
        let held = held.checked_sub(reserved).ok_or_else(corrupt)?;
        let available = available.checked_add(returned).ok_or_else(corrupt)?;
        write_balance(conn, tenant, key, available, held, at).await
    }
}
