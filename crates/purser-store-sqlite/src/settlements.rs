//! A settlement's submission, under the write lock `BEGIN IMMEDIATE` took: read, check, update,
//! with no other writer in between.

use purser_domain::id::SettlementId;
use purser_domain::settlement::{Settlement, SettlementStatus};
use purser_domain::{Error, Result};
use purser_store_sql::Sql;
use purser_store_sql::settlements::{
    SettlementDialect, not_awaiting_transaction, read_settlement, settlement_by_id,
    settlement_columns,
};
use sqlx::SqliteConnection;

use crate::SqliteDialect;

impl SettlementDialect for SqliteDialect {
    async fn submit_settlement(
        conn: &mut SqliteConnection,
        id: SettlementId,
        tx_hash: &str,
    ) -> Result<Option<Settlement>> {
        let current = settlement_by_id::<Self>(&mut *conn, id)
            .await?
            .ok_or_else(|| Error::not_found(SettlementId::WHAT))?;
        if !matches!(
            current.status,
            SettlementStatus::Verified | SettlementStatus::Submitted | SettlementStatus::Pending
        ) {
            return Err(not_awaiting_transaction());
        }
        let row = Sql::<Self>::new(format!(
            "UPDATE settlements SET status = CASE WHEN status = 'verified' THEN 'submitted' ELSE status END,
                 tx_hash = $2, updated_at = $3
             WHERE id = $1 RETURNING {}",
            settlement_columns::<Self>()
        ))
        .arg(id.as_uuid())
        .arg(tx_hash)
        .arg(purser_domain::time::now())
        .fetch_one(conn, "submitting a settlement")
        .await?;
        if current.status != SettlementStatus::Verified {
            return Ok(None);
        }
        read_settlement::<Self>(&row).map(Some)
    }
}
