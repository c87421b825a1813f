//! The escrow schedule: finishes the holds of escrowed payments by their resources' policies
//! (`purser_domain::escrow`), every few seconds, on every instance. A hold comes due at its
//! policy's time (a delay after the hold, say) and at the latest a margin before its capture
//! deadline, judged by the chain's own clock; due, it is captured or voided as scheduled,
//! through the same operations a merchant's command runs, so exactly once. A hold already
//! finished (in its request, by the merchant, or reclaimed by the payer) is marked so. Failed
//! attempts are counted and retried on the next pass; instances racing on one hold are kept
//! apart by the escrow's one-operation-in-flight guard.

use std::sync::Arc;

use purser_domain::Result;
use purser_domain::auth::TenantScope;
use purser_domain::escrow::{
    EscrowAction, EscrowCommand, EscrowDesk, EscrowSchedule, EscrowScheduleRepository,
};
use purser_domain::money::Amount;
use purser_domain::settlement::{SettlementKind, SettlementStatus};

use crate::Facilitator;

/// Holds looked at per chain per pass.
const BATCH: u32 = 100;

/// What one pass did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScheduleReport {
    pub captured: usize,
    pub voided: usize,
    /// Found finished already (nothing held).
    pub finished: usize,
    pub pending: usize,
    /// Found taken back by the payer after its deadline: posted to the ledger.
    pub reclaimed: usize,
    pub failed: usize,
}

impl ScheduleReport {
    /// Adds the pass to `purser_escrow_schedule_total{result}`.
    fn count(&self) {
        for (result, n) in [
            ("captured", self.captured),
            ("voided", self.voided),
            ("finished", self.finished),
            ("pending", self.pending),
            ("reclaimed", self.reclaimed),
            ("failed", self.failed),
        ] {
            if n > 0 {
                metrics::counter!("purser_escrow_schedule_total", "result" => result)
                    .increment(n as u64);
            }
        }
    }
}

#[derive(Clone)]
pub struct EscrowScheduler {
    facilitator: Arc<Facilitator>,
    schedules: Arc<dyn EscrowScheduleRepository>,
}

impl EscrowScheduler {
    pub fn new(
        facilitator: Arc<Facilitator>,
        schedules: Arc<dyn EscrowScheduleRepository>,
    ) -> Self {
        Self {
            facilitator,
            schedules,
        }
    }

    /// Runs passes until `stop` resolves.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        let interval = self.facilitator.config.escrow_schedule_interval();
        tokio::pin!(stop);
        loop {
            match self.pass().await {
                Ok(report) if report != ScheduleReport::default() => {
                    report.count();
                    tracing::info!(?report, "escrow schedule");
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err.chain(), "an escrow schedule pass failed"),
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// One pass over every chain with an escrow.
    pub async fn pass(&self) -> Result<ScheduleReport> {
        let mut report = ScheduleReport::default();
        for rail in self.facilitator.rails.iter() {
            if rail.auth_capture.is_none() {
                continue;
            }
            let now = match rail.latest_block_time().await {
                Ok(now) => i64::try_from(now).unwrap_or(i64::MAX),
                Err(err) => {
                    tracing::warn!(network = %rail.network, error = %err, "the chain's clock could not be read; its holds wait");
                    continue;
                }
            };
            let due = self
                .schedules
                .due_escrow_schedules(&rail.network, now, BATCH)
                .await?;
            for schedule in due {
                self.finish(&schedule, now, &mut report).await;
            }
        }
        Ok(report)
    }

    /// A due hold the escrow no longer holds: finished by an operation of ours (once its
    /// receipt is in), or taken back by the payer (`reclaim`, after the capture deadline),
    /// which the ledger learns here, once.
    async fn nothing_held(
        &self,
        scope: TenantScope,
        payment: &str,
        report: &mut ScheduleReport,
    ) -> Result<()> {
        let operations = self
            .facilitator
            .store
            .escrow_operations(scope, payment)
            .await?;
        if operations
            .iter()
            .any(|op| !op.status.is_terminal() && op.status != SettlementStatus::Rejected)
        {
            // An operation of ours is still in flight: its receipt decides.
            report.pending += 1;
            return Ok(());
        }
        let confirmed = |kind: SettlementKind| {
            operations
                .iter()
                .filter(|op| op.kind == kind && op.status == SettlementStatus::Confirmed)
                .map(|op| op.amount.atomic())
                .sum::<u128>()
        };
        let Some(authorization) = operations.iter().find(|op| {
            op.kind == SettlementKind::EscrowAuthorize && op.status == SettlementStatus::Confirmed
        }) else {
            // Charged (nothing was ever held), or never collected.
            return self
                .schedules
                .resolve_escrow_schedule(payment, "no authorization held")
                .await;
        };
        let left = authorization
            .amount
            .atomic()
            .saturating_sub(confirmed(SettlementKind::EscrowCapture))
            .saturating_sub(confirmed(SettlementKind::EscrowVoid));
        let outcome = if left > 0 {
            let posted = self
                .facilitator
                .store
                .record_escrow_reclaim(authorization.id, Amount::from_atomic(left))
                .await?;
            if posted {
                report.reclaimed += 1;
                tracing::warn!(%payment, amount = left, "the payer reclaimed a hold Purser did not finish in time");
            }
            "reclaimed by the payer"
        } else {
            report.finished += 1;
            "nothing held"
        };
        self.schedules
            .resolve_escrow_schedule(payment, outcome)
            .await
    }

    async fn finish(&self, schedule: &EscrowSchedule, now: i64, report: &mut ScheduleReport) {
        let scope = TenantScope::trusted(schedule.tenant_id);
        let payment = schedule.payment.as_str();
        let outcome = async {
            let held = self.facilitator.balances(scope, payment).await?;
            if held.capturable.is_zero() {
                return self.nothing_held(scope, payment, report).await;
            }
            if schedule.action == EscrowAction::Capture && now >= schedule.capture_deadline {
                tracing::error!(%payment, "a hold the policy captures reached its deadline uncaptured");
            }
            let command = match schedule.action {
                EscrowAction::Capture => EscrowCommand::Capture { amount: None },
                EscrowAction::Void => EscrowCommand::Void,
            };
            let operation = self.facilitator.command(scope, payment, command).await?;
            if operation.status == SettlementStatus::Confirmed {
                match schedule.action {
                    EscrowAction::Capture => report.captured += 1,
                    EscrowAction::Void => report.voided += 1,
                }
                let outcome = format!("{} by the schedule", schedule.action);
                self.schedules
                    .resolve_escrow_schedule(payment, &outcome)
                    .await
            } else {
                // Its receipt is still to come: the next pass finds nothing held.
                report.pending += 1;
                Ok(())
            }
        }
        .await;
        if let Err(err) = outcome {
            report.failed += 1;
            tracing::warn!(%payment, action = %schedule.action, error = %err.chain(), "finishing a hold failed; retried next pass");
            if let Err(err) = self
                .schedules
                .note_escrow_attempt(payment, err.message())
                .await
            {
                tracing::warn!(error = %err.chain(), "recording a failed escrow attempt");
            }
        }
    }
}
