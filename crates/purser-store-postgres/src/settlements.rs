//! A settlement's submission: one `UPDATE` that locks the row, so of two transfer transactions
//! recorded at once the second waits and then sees the first's status.

use purser_domain::id::SettlementId;
use purser_domain::settlement::Settlement;
use purser_domain::{Error, Result};
use purser_store_sql::settlements::{
    SettlementDialect, not_awaiting_transaction, settlement_by_id,
};
use purser_store_sql::{Cols, Sql};
use sqlx::PgConnection;

use crate::PgDialect;

impl SettlementDialect for PgDialect {
    async fn submit_settlement(
        conn: &mut PgConnection,
        id: SettlementId,
        tx_hash: &str,
    ) -> Result<Option<Settlement>> {
        let previous = Sql::<Self>::new(
            "UPDATE settlements AS s SET status = CASE WHEN s.status = 'verified' THEN 'submitted' ELSE s.status END,
                 tx_hash = $2, updated_at = $3
             FROM (SELECT id, status FROM settlements WHERE id = $1 FOR UPDATE) AS old
             WHERE s.id = old.id AND s.status IN ('verified', 'submitted', 'pending')
             RETURNING old.status",
        )
        .arg(id.as_uuid())
        .arg(tx_hash)
        .arg(purser_domain::time::now())
        .fetch_optional(&mut *conn, "submitting a settlement")
        .await?;
        let Some(previous) = previous else {
            return Err(not_awaiting_transaction());
        };
        if Cols::<Self>::new(&previous).text("status")? != "verified" {
            return Ok(None);
        }
        settlement_by_id::<Self>(conn, id)
            .await?
            .map(Some)
            .ok_or_else(|| Error::not_found(SettlementId::WHAT))
    }
}
