//! Credit balances change with SQL arithmetic on `numeric`, under the balance row's lock, at
//! READ COMMITTED. A reservation is one statement that starts with the guarded `UPDATE` of the
//! payer's `credit_balances` row (`available = available - amount … WHERE available >=
//! amount`) and inserts the hold and the reservation for the row it returns. The row lock it
//! takes is held until commit, so concurrent reservations against one balance queue on it; a
//! waiter re-evaluates the guard on the row's newest version (PostgreSQL's EvalPlanQual) and
//! updates nothing when the credit is gone, which is `insufficient_credit` with nothing
//! written. The column's CHECK (`available >= 0`) refuses an overdraft whatever code writes the
//! row, and `credit_balances_within_u128` one past `u128`.

use chrono::{DateTime, Utc};
use purser_domain::auth::TenantScope;
use purser_domain::credits::{CreditKey, CreditReservation, insufficient_credit};
use purser_domain::id::{CreditReservationId, TenantId, TransferId};
use purser_domain::money::Amount;
use purser_domain::{Error, Result};
use purser_store_sql::Sql;
use purser_store_sql::credits::{CreditDialect, read_reservation, reservation_columns};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{PgDialect, PgStore};

impl CreditDialect for PgDialect {
    async fn reserve(
        store: &PgStore,
        scope: TenantScope,
        key: &CreditKey,
        amount: Amount,
    ) -> Result<CreditReservation> {
        // One statement, so one round trip and the shortest hold on the balance row's lock: the
        // guarded decrement, then the pending transfer and the reservation for the row it
        // returns. When the guard fails, nothing matches and nothing is written. The earned
        // account comes from a subquery: were it missing, the NOT NULL on the transfer's credit
        // account would fail the whole statement, decrement included.
        let sql = Sql::new(format!(
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
             RETURNING {}",
            reservation_columns::<Self>()
        ))
        .arg(scope.tenant_id().as_uuid())
        .arg(key.wallet())
        .arg(key.network())
        .arg(key.asset())
        .arg(amount)
        .arg(purser_domain::time::now())
        .arg(TransferId::new().as_uuid())
        .arg(CreditReservationId::new().as_uuid());
        let row = store.fetch_optional(sql, "reserving credit").await?;
        read_reservation::<Self>(&row.ok_or_else(|| insufficient_credit(amount))?)
    }

    async fn add_credit(
        conn: &mut PgConnection,
        tenant: TenantId,
        key: &CreditKey,
        account: Uuid,
        amount: Amount,
        at: DateTime<Utc>,
    ) -> Result<()> {
        Sql::<Self>::new(
            "INSERT INTO credit_balances (tenant_id, wallet, network, asset, account_id, available,
                 reserved, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6::numeric, 0, $7)
             ON CONFLICT (tenant_id, wallet, network, asset) DO UPDATE
             SET available = credit_balances.available + EXCLUDED.available,
                 updated_at = EXCLUDED.updated_at",
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
        Ok(())
    }

    async fn return_credit(
        conn: &mut PgConnection,
        tenant: TenantId,
        key: &CreditKey,
        reserved: Amount,
        returned: Amount,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let updated = Sql::<Self>::new(
            "UPDATE credit_balances
             SET reserved = reserved - $5::numeric, available = available + $6::numeric, updated_at = $7
             WHERE tenant_id = $1 AND wallet = $2 AND network = $3 AND asset = $4",
        )
        .arg(tenant.as_uuid())
        .arg(key.wallet())
        .arg(key.network())
        .arg(key.asset())
        .arg(reserved)
        .arg(returned)
        .arg(at)
        .execute(conn, "returning held credit")
        .await?;
        if updated != 1 {
            return Err(Error::internal(
                "returning held credit",
                "a reservation without its balance row",
            ));
        }
        Ok(())
    }
}
