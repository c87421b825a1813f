//! The reconciler: finishes what requests could not. On every instance, every few seconds, it
//!
//! - resolves in-flight settlements from their receipts (a request timed out, or died);
//! - resends transactions no node acknowledged, verbatim (same hash, so never a second
//!   transfer), and replaces those stuck below the base fee with a higher fee at the same
//!   nonce;
//! - resubmits a settlement whose transactions all lost their nonce to something else, after
//!   checking the authorization is still unused;
//! - rejects settlements claimed but never broadcast (their request died before sending);
//! - fills signer nonce gaps (a nonce leased, then never used) with a zero-value
//!   transaction to self, so the signer's later transactions can be mined.
//!
//! Every change goes through the guarded transitions of the settlement record, so instances
//! reconciling at once do no harm: at worst both resend the same signed transaction.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use purser_chain::eip3009::{Fees, hex_of};
use purser_chain::rails::Rail;
use purser_domain::id::AttemptId;
use purser_domain::settlement::{
    Attempt, AttemptKind, InFlightQuery, Settlement, SettlementStatus,
};
use purser_domain::{Error, Result};
use purser_x402::Reason;

use crate::Facilitator;
use crate::service::{ChainState, taken_reason};

/// Settlements looked at per pass.
const BATCH: u32 = 200;
/// Nonces looked at per signer per pass.
const MAX_GAP_SCAN: u64 = 64;

/// What one pass did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    pub resolved: usize,
    pub rebroadcast: usize,
    pub replaced: usize,
    pub resubmitted: usize,
    pub abandoned: usize,
    pub gaps_filled: usize,
}

#[derive(Clone)]
pub struct Reconciler {
    facilitator: Arc<Facilitator>,
}

fn older_than(at: DateTime<Utc>, age: std::time::Duration, now: DateTime<Utc>) -> bool {
    chrono::Duration::from_std(age).is_ok_and(|age| now - at >= age)
}

impl Reconciler {
    pub fn new(facilitator: Arc<Facilitator>) -> Self {
        Self { facilitator }
    }

    /// Runs passes until `stop` resolves.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        let interval = self.facilitator.config.reconcile_interval();
        tokio::pin!(stop);
        loop {
            match self.pass().await {
                Ok(report) if report != ReconcileReport::default() => {
                    tracing::info!(?report, "reconciled");
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err.chain(), "a reconciliation pass failed"),
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// One pass over unfinished settlements and signer nonces.
    pub async fn pass(&self) -> Result<ReconcileReport> {
        let mut report = ReconcileReport::default();
        let now = purser_domain::time::now();
        let unfinished = self
            .facilitator
            .store
            .unfinished_settlements(InFlightQuery {
                updated_before: now
                    - chrono::Duration::from_std(self.facilitator.config.reconcile_min_age())
                        .unwrap_or_default(),
                limit: BATCH,
            })
            .await?;
        for settlement in unfinished {
            if let Err(err) = self.settlement(&settlement, now, &mut report).await {
                tracing::warn!(settlement = %settlement.id, error = %err.chain(), "could not reconcile a settlement");
            }
        }
        for rail in self.facilitator.rails.iter() {
            for signer in rail.signers() {
                if let Err(err) = self
                    .signer_gaps(rail, &signer.address_lower(), now, &mut report)
                    .await
                {
                    tracing::warn!(network = %rail.network, signer = %signer.address_string(), error = %err.chain(), "could not check a signer's nonces");
                }
            }
        }
        Ok(report)
    }

    async fn settlement(
        &self,
        settlement: &Settlement,
        now: DateTime<Utc>,
        report: &mut ReconcileReport,
    ) -> Result<()> {
        let facilitator = &self.facilitator;
        let config = &facilitator.config;
        let Some(rail) = facilitator.rails.get(&settlement.key.network) else {
            return Ok(());
        };
        match settlement.status {
            SettlementStatus::Received | SettlementStatus::Verified => {
                if older_than(settlement.updated_at, config.abandon_after(), now) {
                    let rejected = facilitator
                        .store
                        .reject_settlement(
                            settlement.id,
                            Reason::UnexpectedSettleError.as_str(),
                            "abandoned before broadcast; present the payment again",
                        )
                        .await?;
                    if rejected.status == SettlementStatus::Rejected {
                        report.abandoned += 1;
                    }
                }
                return Ok(());
            }
            SettlementStatus::Submitted | SettlementStatus::Pending => {}
            _ => return Ok(()),
        }
        let work = facilitator.work_of(settlement)?;
        let Some(asset) = rail.asset(&settlement.key.asset).cloned() else {
            return Ok(());
        };
        match facilitator.chain_state(settlement, rail, &work).await? {
            ChainState::Confirmed(_) | ChainState::Failed { .. } => {
                if facilitator
                    .resolve_from_chain(settlement, rail, &work)
                    .await?
                    .is_some()
                {
                    report.resolved += 1;
                }
            }
            ChainState::Dropped => {
                let used = work
                    .done_elsewhere(rail, &asset)
                    .await
                    .map_err(|e| Error::unavailable("reading an authorization's state", e))?;
                if used {
                    // Executed, but by a transaction that is not ours.
                    let failed = facilitator
                        .store
                        .fail_settlement(
                            settlement.id,
                            None,
                            None,
                            taken_reason(&work).as_str(),
                            "the authorization was executed by another transaction",
                        )
                        .await?;
                    if failed.status == SettlementStatus::Failed {
                        report.resolved += 1;
                    }
                } else if facilitator
                    .submit(settlement, rail, &work, &asset)
                    .await
                    .is_ok()
                {
                    report.resubmitted += 1;
                }
            }
            ChainState::Waiting => {
                let attempts = facilitator.store.attempts_for(settlement.id).await?;
                if let Some(latest) = attempts
                    .iter()
                    .rev()
                    .find(|a| a.kind == AttemptKind::Transfer)
                {
                    self.nudge(rail, latest, now, report).await?;
                }
            }
        }
        Ok(())
    }

    /// Resends a transaction nobody acknowledged lately, or replaces it when its fee is below
    /// the base fee.
    async fn nudge(
        &self,
        rail: &Rail,
        latest: &Attempt,
        now: DateTime<Utc>,
        report: &mut ReconcileReport,
    ) -> Result<()> {
        let config = &self.facilitator.config;
        if older_than(latest.created_at, config.replace_after(), now) {
            let quote = rail
                .fee_quote()
                .await
                .map_err(|e| Error::unavailable("reading fees", e))?;
            if latest.max_fee_per_gas < quote.base_fee_per_gas {
                let Some(signer) = rail.signer(&latest.signer) else {
                    return Ok(());
                };
                let _in_order = signer.lock().await;
                let previous = Fees {
                    max_fee_per_gas: latest.max_fee_per_gas,
                    max_priority_fee_per_gas: latest.max_priority_fee_per_gas,
                };
                let signed = rail
                    .resign_with_fees(&signer, &latest.raw_tx, previous.bumped(quote.offer()))
                    .map_err(|e| Error::internal("replacing a stuck transaction", e))?;
                let replacement = Attempt {
                    id: AttemptId::new(),
                    tx_hash: hex_of(signed.hash.as_slice()),
                    raw_tx: signed.raw.to_vec(),
                    max_fee_per_gas: signed.max_fee_per_gas,
                    max_priority_fee_per_gas: signed.max_priority_fee_per_gas,
                    created_at: purser_domain::time::now(),
                    broadcast_at: None,
                    ..latest.clone()
                };
                self.facilitator
                    .store
                    .record_attempt(replacement.clone())
                    .await?;
                tracing::info!(old = %latest.tx_hash, new = %replacement.tx_hash, nonce = latest.signer_nonce, "replaced a transaction stuck below the base fee");
                self.facilitator.broadcast(rail, &replacement).await;
                report.replaced += 1;
                return Ok(());
            }
        }
        let quiet = latest
            .broadcast_at
            .is_none_or(|at| older_than(at, config.rebroadcast_after(), now));
        if quiet {
            self.facilitator.broadcast(rail, latest).await;
            report.rebroadcast += 1;
        }
        Ok(())
    }

    /// Finds nonces between the signer's mined nonce and its next lease that no transaction
    /// uses while later ones wait behind them, and fills them.
    async fn signer_gaps(
        &self,
        rail: &Rail,
        signer: &str,
        now: DateTime<Utc>,
        report: &mut ReconcileReport,
    ) -> Result<()> {
        let store = &self.facilitator.store;
        let Some(next) = store.signer_next_nonce(&rail.network, signer).await? else {
            return Ok(());
        };
        let mined = rail
            .mined_nonce_of(signer)
            .await
            .map_err(|e| Error::unavailable("reading a signer's nonce", e))?;
        if next <= mined {
            return Ok(());
        }
        let attempts = store
            .signer_attempts_from(&rail.network, signer, mined)
            .await?;
        let waiting_behind = |nonce: u64| {
            attempts.iter().any(|a| {
                a.signer_nonce > nonce
                    && older_than(
                        a.created_at,
                        self.facilitator.config.rebroadcast_after(),
                        now,
                    )
            })
        };
        for nonce in mined..next.min(mined + MAX_GAP_SCAN) {
            let used: Vec<&Attempt> = attempts
                .iter()
                .filter(|a| a.signer_nonce == nonce)
                .collect();
            if let Some(latest) = used.last() {
                // Transfers are looked after with their settlement; gap fillers and wallet
                // deployments here.
                if latest.kind != AttemptKind::Transfer {
                    self.nudge(rail, latest, now, report).await?;
                }
                continue;
            }
            if !waiting_behind(nonce) {
                continue;
            }
            let Some(signer_key) = rail.signer(signer) else {
                return Ok(());
            };
            let _in_order = signer_key.lock().await;
            let quote = rail
                .fee_quote()
                .await
                .map_err(|e| Error::unavailable("reading fees", e))?;
            let signed = rail
                .sign_gap_fill(&signer_key, nonce, quote.offer())
                .map_err(|e| Error::internal("signing a gap filler", e))?;
            let filler = Attempt {
                id: AttemptId::new(),
                settlement_id: None,
                kind: AttemptKind::GapFill,
                network: rail.network.clone(),
                signer: signer.to_owned(),
                signer_nonce: nonce,
                tx_hash: hex_of(signed.hash.as_slice()),
                raw_tx: signed.raw.to_vec(),
                max_fee_per_gas: signed.max_fee_per_gas,
                max_priority_fee_per_gas: signed.max_priority_fee_per_gas,
                created_at: purser_domain::time::now(),
                broadcast_at: None,
                route: None,
            };
            store.record_attempt(filler.clone()).await?;
            tracing::warn!(network = %rail.network, %signer, nonce, tx = %filler.tx_hash, "filled a nonce gap");
            self.facilitator.broadcast(rail, &filler).await;
            report.gaps_filled += 1;
        }
        Ok(())
    }
}
