//! The schedule of holds Purser finishes itself: one row per escrowed payment it scheduled.

use async_trait::async_trait;
use purser_domain::escrow::{EscrowAction, EscrowSchedule, EscrowScheduleRepository};
use purser_domain::id::TenantId;
use purser_domain::{Error, Result};

use crate::{Cols, Dialect, Row, Sql, SqlStore};

const COLUMNS: &str = "payment, tenant_id, network, action, due_at, capture_deadline, attempts, \
     last_error, resolved_at, outcome, created_at";

fn read_schedule<D: Dialect>(row: &Row<D>) -> Result<EscrowSchedule> {
    let r = Cols::<D>::new(row);
    let what = "decoding an escrow schedule row";
    Ok(EscrowSchedule {
        payment: r.text("payment")?,
        tenant_id: TenantId::from_uuid(r.uuid("tenant_id")?),
        network: r.text("network")?,
        action: r.parse("action", what)?,
        due_at: r.i64("due_at")?,
        capture_deadline: r.i64("capture_deadline")?,
        attempts: u32::try_from(r.i32("attempts")?).map_err(|e| Error::internal(what, e))?,
        last_error: r.opt_text("last_error")?,
        resolved_at: r.opt_time("resolved_at")?,
        outcome: r.opt_text("outcome")?,
        created_at: r.time("created_at")?,
    })
}

/// Errors and outcomes as kept: printable, and of bounded length.
fn bounded(text: &str) -> String {
    purser_domain::text::printable(text, purser_domain::text::OUTCOME_MESSAGE_MAX_CHARS)
}

#[async_trait]
impl<D: Dialect> EscrowScheduleRepository for SqlStore<D> {
    async fn schedule_escrow(&self, schedule: EscrowSchedule) -> Result<bool> {
        let sql = Sql::new(format!(
            "INSERT INTO escrow_schedules ({COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, 0, NULL, NULL, NULL, $7)
             ON CONFLICT (payment) DO NOTHING"
        ))
        .arg(schedule.payment.to_ascii_lowercase())
        .arg(schedule.tenant_id.as_uuid())
        .arg(schedule.network.as_str())
        .arg(schedule.action.as_str())
        .arg(schedule.due_at)
        .arg(schedule.capture_deadline)
        .arg(schedule.created_at);
        Ok(self.execute(sql, "scheduling an escrowed payment").await? == 1)
    }

    async fn reschedule_escrow(
        &self,
        payment: &str,
        action: EscrowAction,
        due_at: i64,
    ) -> Result<()> {
        let sql = Sql::new(
            "UPDATE escrow_schedules SET action = $2, due_at = $3
             WHERE payment = $1 AND resolved_at IS NULL",
        )
        .arg(payment.to_ascii_lowercase())
        .arg(action.as_str())
        .arg(due_at);
        self.execute(sql, "rescheduling an escrowed payment")
            .await?;
        Ok(())
    }

    async fn due_escrow_schedules(
        &self,
        network: &str,
        now: i64,
        limit: u32,
    ) -> Result<Vec<EscrowSchedule>> {
        let sql = Sql::new(format!(
            "SELECT {COLUMNS} FROM escrow_schedules
             WHERE network = $1 AND resolved_at IS NULL AND due_at <= $2
             ORDER BY due_at, payment LIMIT $3"
        ))
        .arg(network)
        .arg(now)
        .arg(i64::from(limit));
        self.fetch_all(sql, "reading due escrow schedules")
            .await?
            .iter()
            .map(read_schedule::<D>)
            .collect()
    }

    async fn resolve_escrow_schedule(&self, payment: &str, outcome: &str) -> Result<()> {
        let sql = Sql::new(
            "UPDATE escrow_schedules SET resolved_at = $2, outcome = $3
             WHERE payment = $1 AND resolved_at IS NULL",
        )
        .arg(payment.to_ascii_lowercase())
        .arg(purser_domain::time::now())
        .arg(bounded(outcome));
        self.execute(sql, "resolving an escrow schedule").await?;
        Ok(())
    }

    async fn note_escrow_attempt(&self, payment: &str, error: &str) -> Result<()> {
        let sql = Sql::new(
            "UPDATE escrow_schedules SET attempts = attempts + 1, last_error = $2
             WHERE payment = $1 AND resolved_at IS NULL",
        )
        .arg(payment.to_ascii_lowercase())
        .arg(bounded(error));
        self.execute(sql, "noting an escrow attempt").await?;
        Ok(())
    }

    async fn escrow_schedule(&self, payment: &str) -> Result<Option<EscrowSchedule>> {
        let sql = Sql::new(format!(
            "SELECT {COLUMNS} FROM escrow_schedules WHERE payment = $1"
        ))
        .arg(payment.to_ascii_lowercase());
        self.fetch_optional(sql, "reading an escrow schedule")
            .await?
            .as_ref()
            .map(read_schedule::<D>)
            .transpose()
    }
}
