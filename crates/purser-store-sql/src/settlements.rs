//! Settlements, their transactions, signer nonces and payment identifiers. Transitions are
//! `UPDATE … WHERE status IN (…)`, so of two concurrent callers exactly one applies a change,
//! and the ledger postings a transition causes commit with it, in a write transaction.

use std::fmt::{self, Display};
use std::future::Future;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use purser_domain::auth::TenantScope;
use purser_domain::id::{AttemptId, SettlementId, TenantId};
use purser_domain::money::Amount;
use purser_domain::page::{Page, PageRequest};
use purser_domain::repo::SettlementRepository;
use purser_domain::settlement::{
    Attempt, AttemptKind, AuthorizationKey, ChainOutcome, Claim, EscrowLink, InFlightQuery,
    NetworkCost, NetworkCostDay, NewSettlement, PaymentIdentifierClaim, PaymentIdentifierRecord,
    Settlement, SettlementKind, SettlementStatus,
};
use purser_domain::{Error, ErrorCode, Result};
use sqlx::Transaction;

use crate::ledger::{self, LedgerDialect};
use crate::{Cols, Conn, Dialect, Row, Sql, SqlStore, commit, push_page, to_i64};

/// How a backend moves a settlement to `submitted` when its transfer transaction is recorded.
pub trait SettlementDialect: Dialect {
    /// In the caller's write transaction: records `tx_hash` on a `verified`, `submitted` or
    /// `pending` settlement and moves a `verified` one to `submitted`. Answers the settlement
    /// when it was `verified` (its ledger transfer opens now), `None` when it already had a
    /// transaction, [`not_awaiting_transaction`] in any other state and `not_found` without it.
    fn submit_settlement<'c>(
        conn: &'c mut Conn<Self>,
        id: SettlementId,
        tx_hash: &'c str,
    ) -> impl Future<Output = Result<Option<Settlement>>> + Send + 'c;
}

/// The columns [`settlement`] reads.
pub fn settlement_columns<D: Dialect>() -> impl Display {
    fmt::from_fn(|f| {
        write!(
            f,
            "id, tenant_id, network, asset, payer, auth_nonce, pay_to, amount{text} AS amount, \
             valid_after, valid_before, payload, requirements, status, error_reason, \
             error_message, tx_hash, block_number, payment_identifier, gas_used, \
             effective_gas_price{text} AS effective_gas_price, l1_fee{text} AS l1_fee, \
             operator_fee{text} AS operator_fee, network_cost{text} AS network_cost, \
             estimated_network_cost{text} AS estimated_network_cost, route_decision, kind, \
             escrow_payment, escrow_fee{text} AS escrow_fee, created_at, updated_at",
            text = D::AS_TEXT
        )
    })
}

fn attempt_columns<D: Dialect>() -> impl Display {
    fmt::from_fn(|f| {
        write!(
            f,
            "id, settlement_id, kind, network, signer, signer_nonce, tx_hash, raw_tx, \
             max_fee_per_gas{text} AS max_fee_per_gas, \
             max_priority_fee_per_gas{text} AS max_priority_fee_per_gas, created_at, broadcast_at",
            text = D::AS_TEXT
        )
    })
}

pub fn read_settlement<D: Dialect>(row: &Row<D>) -> Result<Settlement> {
    let r = Cols::<D>::new(row);
    let what = "decoding a settlement row";
    Ok(Settlement {
        id: SettlementId::from_uuid(r.uuid("id")?),
        tenant_id: TenantId::from_uuid(r.uuid("tenant_id")?),
        key: AuthorizationKey {
            network: r.text("network")?,
            asset: r.text("asset")?,
            payer: r.text("payer")?,
            nonce: r.text("auth_nonce")?,
        },
        pay_to: r.text("pay_to")?,
        amount: r.parse("amount", what)?,
        valid_after: r.i64("valid_after")? as u64,
        valid_before: r.i64("valid_before")? as u64,
        payload: r.text("payload")?,
        requirements: r.text("requirements")?,
        status: r.parse("status", what)?,
        error_reason: r.opt_text("error_reason")?,
        error_message: r.opt_text("error_message")?,
        tx_hash: r.opt_text("tx_hash")?,
        block_number: r.opt_i64("block_number")?.map(|b| b as u64),
        payment_identifier: r.opt_text("payment_identifier")?,
        network_cost: match (
            r.opt_i64("gas_used")?,
            r.opt_amount("effective_gas_price")?,
            r.opt_amount("l1_fee")?,
            r.opt_amount("operator_fee")?,
            r.opt_amount("network_cost")?,
        ) {
            (
                Some(gas_used),
                Some(effective_gas_price),
                Some(l1_fee),
                Some(operator_fee),
                Some(total),
            ) => Some(NetworkCost {
                gas_used: u64::try_from(gas_used).map_err(|e| Error::internal(what, e))?,
                effective_gas_price,
                l1_fee,
                operator_fee,
                total,
            }),
            _ => None,
        },
        estimated_network_cost: r.opt_amount("estimated_network_cost")?,
        route_decision: r.opt_text("route_decision")?,
        kind: r.parse("kind", what)?,
        escrow: match (r.opt_text("escrow_payment")?, r.opt_amount("escrow_fee")?) {
            (Some(payment), Some(fee)) => Some(EscrowLink { payment, fee }),
            _ => None,
        },
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

/// `SET` assignments recording a mined transaction's cost (parameters from `$first`), and the
/// values to bind, in order.
fn cost_assignments<D: Dialect>(first: usize) -> String {
    format!(
        "gas_used = ${a}, effective_gas_price = ${b}{n}, l1_fee = ${c}{n}, \
         operator_fee = ${d}{n}, network_cost = ${e}{n}",
        a = first,
        b = first + 1,
        c = first + 2,
        d = first + 3,
        e = first + 4,
        n = D::AS_NUMERIC
    )
}

fn bind_cost<D: Dialect>(sql: Sql<D>, cost: Option<&NetworkCost>) -> Result<Sql<D>> {
    let gas_used = cost.map(|c| to_i64(c.gas_used, "gas used")).transpose()?;
    Ok(sql
        .arg(gas_used)
        .arg(cost.map(|c| c.effective_gas_price))
        .arg(cost.map(|c| c.l1_fee))
        .arg(cost.map(|c| c.operator_fee))
        .arg(cost.map(|c| c.total)))
}

fn read_attempt<D: Dialect>(row: &Row<D>) -> Result<Attempt> {
    let r = Cols::<D>::new(row);
    let fee = |column| {
        r.text(column)?
            .parse::<u128>()
            .map_err(|e| Error::internal("decoding a fee", e))
    };
    Ok(Attempt {
        id: AttemptId::from_uuid(r.uuid("id")?),
        settlement_id: r.opt_uuid("settlement_id")?.map(SettlementId::from_uuid),
        kind: r.parse("kind", "decoding an attempt row")?,
        network: r.text("network")?,
        signer: r.text("signer")?,
        signer_nonce: r.i64("signer_nonce")? as u64,
        tx_hash: r.text("tx_hash")?,
        raw_tx: r.bytes("raw_tx")?,
        max_fee_per_gas: fee("max_fee_per_gas")?,
        max_priority_fee_per_gas: fee("max_priority_fee_per_gas")?,
        created_at: r.time("created_at")?,
        broadcast_at: r.opt_time("broadcast_at")?,
        route: None,
    })
}

/// The settlement, read on `conn` (a pooled connection or a transaction).
pub async fn settlement_by_id<D: Dialect>(
    conn: &mut Conn<D>,
    id: SettlementId,
) -> Result<Option<Settlement>> {
    Sql::<D>::new(format!(
        "SELECT {} FROM settlements WHERE id = $1",
        settlement_columns::<D>()
    ))
    .arg(id.as_uuid())
    .fetch_optional(conn, "reading a settlement")
    .await?
    .as_ref()
    .map(read_settlement::<D>)
    .transpose()
}

/// A transfer transaction recorded for a settlement that is past taking one.
pub fn not_awaiting_transaction() -> Error {
    Error::new(
        ErrorCode::Conflict,
        "the settlement is not awaiting a transaction",
    )
}

/// A settlement's outcome message as stored: printable, and of bounded length.
fn outcome_message(message: &str) -> String {
    purser_domain::text::printable(message, purser_domain::text::OUTCOME_MESSAGE_MAX_CHARS)
}

impl<D: Dialect> SqlStore<D> {
    /// The scope's settlements, of these kinds (all when none), in creation order.
    async fn settlements_page(
        &self,
        scope: TenantScope,
        kinds: &[SettlementKind],
        page: PageRequest,
    ) -> Result<Page<Settlement>> {
        let mut sql = Sql::new(format!(
            "SELECT {} FROM settlements WHERE tenant_id = ",
            settlement_columns::<D>()
        ));
        sql.push_arg(scope.tenant_id().as_uuid());
        for (i, kind) in kinds.iter().enumerate() {
            sql.push(if i == 0 { " AND kind IN (" } else { ", " })
                .push_arg(kind.as_str());
        }
        if !kinds.is_empty() {
            sql.push(")");
        }
        push_page(&mut sql, &page);
        let settlements = self
            .fetch_all(sql, "listing settlements")
            .await?
            .iter()
            .map(read_settlement::<D>)
            .collect::<Result<Vec<_>>>()?;
        Ok(page.finish(settlements))
    }

    async fn settlement_or_missing(&self, id: SettlementId) -> Result<Settlement> {
        let mut conn = self.acquire("reading a settlement").await?;
        settlement_by_id::<D>(&mut conn, id)
            .await?
            .ok_or_else(|| Error::not_found(SettlementId::WHAT))
    }

    /// Runs a guarded status change (`set` and the statuses it applies `from`, with `$3`… bound
    /// by `binds`); answers the record as it now stands either way.
    async fn transition(
        &self,
        id: SettlementId,
        set: &'static str,
        from: &'static str,
        binds: impl FnOnce(Sql<D>) -> Sql<D> + Send,
    ) -> Result<Settlement> {
        let sql = Sql::new(format!(
            "UPDATE settlements SET {set}, updated_at = $2 WHERE id = $1 AND status IN ({from}) \
             RETURNING {}",
            settlement_columns::<D>()
        ))
        .arg(id.as_uuid())
        .arg(purser_domain::time::now());
        match self
            .fetch_optional(binds(sql), "changing a settlement's status")
            .await?
        {
            Some(row) => read_settlement::<D>(&row),
            None => self.settlement_or_missing(id).await,
        }
    }

    /// Starts a final status change: runs `update` (a guarded `UPDATE … RETURNING`) in a write
    /// transaction, which the caller completes with the change's ledger postings. `None`, with
    /// the transaction rolled back, when the settlement was not in a status it applies to.
    async fn begin_resolution(
        &self,
        update: Sql<D>,
        context: &'static str,
    ) -> Result<Option<(Transaction<'static, D::Db>, Settlement)>> {
        let mut tx = self.begin_write().await?;
        let Some(row) = update.fetch_optional(&mut tx, context).await? else {
            return Ok(None);
        };
        Ok(Some((tx, read_settlement::<D>(&row)?)))
    }
}

#[async_trait]
impl<D: SettlementDialect + LedgerDialect> SettlementRepository for SqlStore<D> {
    async fn claim_settlement(&self, new: NewSettlement) -> Result<Claim> {
        let columns = settlement_columns::<D>();
        let numeric = D::AS_NUMERIC;
        let insert = Sql::new(format!(
            "INSERT INTO settlements (id, tenant_id, network, asset, payer, auth_nonce, pay_to, amount,
                 valid_after, valid_before, payload, requirements, status, payment_identifier,
                 kind, escrow_payment, escrow_fee, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8{numeric}, $9, $10, $11, $12, 'received', $13,
                 $14, $15, $16{numeric}, $17, $17)
             ON CONFLICT (network, asset, payer, auth_nonce) DO NOTHING
             RETURNING {columns}"
        ))
        .arg(new.id.as_uuid())
        .arg(new.tenant_id.as_uuid())
        .arg(&new.key.network)
        .arg(&new.key.asset)
        .arg(&new.key.payer)
        .arg(&new.key.nonce)
        .arg(&new.pay_to)
        .arg(new.amount)
        .arg(to_i64(new.valid_after, "validAfter")?)
        .arg(to_i64(new.valid_before, "validBefore")?)
        .arg(&new.payload)
        .arg(&new.requirements)
        .arg(&new.payment_identifier)
        .arg(new.kind.as_str())
        .arg(new.escrow.as_ref().map(|e| e.payment.as_str()))
        .arg(new.escrow.as_ref().map(|e| e.fee))
        .arg(new.created_at);
        if let Some(row) = self.fetch_optional(insert, "claiming a settlement").await? {
            return Ok(Claim::Created(read_settlement::<D>(&row)?));
        }
        // Claimed before. A rejected claim of the same tenant is taken over afresh.
        let reclaim = Sql::new(format!(
            "UPDATE settlements SET status = 'received', pay_to = $6, amount = $7{numeric},
                 valid_after = $8, valid_before = $9, payload = $10, requirements = $11,
                 payment_identifier = $12, kind = $14, escrow_payment = $15, escrow_fee = $16{numeric},
                 error_reason = NULL, error_message = NULL, updated_at = $13
             WHERE network = $1 AND asset = $2 AND payer = $3 AND auth_nonce = $4 AND tenant_id = $5
               AND status = 'rejected'
             RETURNING {columns}"
        ))
        .arg(&new.key.network)
        .arg(&new.key.asset)
        .arg(&new.key.payer)
        .arg(&new.key.nonce)
        .arg(new.tenant_id.as_uuid())
        .arg(&new.pay_to)
        .arg(new.amount)
        .arg(to_i64(new.valid_after, "validAfter")?)
        .arg(to_i64(new.valid_before, "validBefore")?)
        .arg(&new.payload)
        .arg(&new.requirements)
        .arg(&new.payment_identifier)
        .arg(purser_domain::time::now())
        .arg(new.kind.as_str())
        .arg(new.escrow.as_ref().map(|e| e.payment.as_str()))
        .arg(new.escrow.as_ref().map(|e| e.fee));
        if let Some(row) = self
            .fetch_optional(reclaim, "reclaiming a settlement")
            .await?
        {
            return Ok(Claim::Created(read_settlement::<D>(&row)?));
        }
        let existing = Sql::new(format!(
            "SELECT {columns} FROM settlements
             WHERE network = $1 AND asset = $2 AND payer = $3 AND auth_nonce = $4"
        ))
        .arg(&new.key.network)
        .arg(&new.key.asset)
        .arg(&new.key.payer)
        .arg(&new.key.nonce);
        let row = self
            .fetch_one(existing, "reading a claimed settlement")
            .await?;
        Ok(Claim::Existing(read_settlement::<D>(&row)?))
    }

    async fn get_settlement(&self, id: SettlementId) -> Result<Option<Settlement>> {
        let mut conn = self.acquire("reading a settlement").await?;
        settlement_by_id::<D>(&mut conn, id).await
    }

    async fn find_settlement(
        &self,
        scope: TenantScope,
        id: SettlementId,
    ) -> Result<Option<Settlement>> {
        Ok(self
            .get_settlement(id)
            .await?
            .filter(|s| s.tenant_id == scope.tenant_id()))
    }

    async fn find_settlement_by_authorization(
        &self,
        scope: TenantScope,
        key: &AuthorizationKey,
    ) -> Result<Option<Settlement>> {
        let sql = Sql::new(format!(
            "SELECT {} FROM settlements \
             WHERE network = $1 AND asset = $2 AND payer = $3 AND auth_nonce = $4 AND tenant_id = $5",
            settlement_columns::<D>()
        ))
        .arg(&key.network)
        .arg(&key.asset)
        .arg(&key.payer)
        .arg(&key.nonce)
        .arg(scope.tenant_id().as_uuid());
        self.fetch_optional(sql, "reading a settlement by its authorization")
            .await?
            .as_ref()
            .map(read_settlement::<D>)
            .transpose()
    }

    async fn list_settlements(
        &self,
        scope: TenantScope,
        page: PageRequest,
    ) -> Result<Page<Settlement>> {
        self.settlements_page(scope, &[], page).await
    }

    async fn list_escrow_payments(
        &self,
        scope: TenantScope,
        page: PageRequest,
    ) -> Result<Page<Settlement>> {
        self.settlements_page(
            scope,
            &[
                SettlementKind::EscrowAuthorize,
                SettlementKind::EscrowCharge,
            ],
            page,
        )
        .await
    }

    async fn escrow_operations(
        &self,
        scope: TenantScope,
        payment: &str,
    ) -> Result<Vec<Settlement>> {
        let sql = Sql::new(format!(
            "SELECT {} FROM settlements WHERE escrow_payment = $1 AND tenant_id = $2
             ORDER BY kind NOT IN ('escrow_authorize', 'escrow_charge'), created_at, id",
            settlement_columns::<D>()
        ))
        .arg(payment.to_ascii_lowercase())
        .arg(scope.tenant_id().as_uuid());
        self.fetch_all(sql, "reading an escrowed payment's operations")
            .await?
            .iter()
            .map(read_settlement::<D>)
            .collect()
    }

    async fn record_escrow_reclaim(
        &self,
        authorization: SettlementId,
        amount: Amount,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let settlement = settlement_by_id::<D>(&mut tx, authorization)
            .await?
            .ok_or_else(|| Error::not_found(SettlementId::WHAT))?;
        if settlement.kind != SettlementKind::EscrowAuthorize
            || settlement.status != SettlementStatus::Confirmed
        {
            return Err(Error::new(
                ErrorCode::Conflict,
                "only a confirmed authorization's hold can be reclaimed",
            ));
        }
        let before = ledger::has_transfer::<D>(&mut tx, authorization, "escrow_reclaim").await?;
        ledger::post_escrow_reclaim::<D>(&mut tx, &settlement, amount).await?;
        commit::<D>(tx).await?;
        Ok(!before)
    }

    async fn mark_verified(&self, id: SettlementId) -> Result<Settlement> {
        self.transition(id, "status = 'verified'", "'received'", |q| q)
            .await
    }

    async fn reject_settlement(
        &self,
        id: SettlementId,
        reason: &str,
        message: &str,
    ) -> Result<Settlement> {
        self.transition(
            id,
            "status = 'rejected', error_reason = $3, error_message = $4",
            "'received', 'verified'",
            |q| q.arg(reason).arg(outcome_message(message)),
        )
        .await
    }

    async fn lease_signer_nonce(
        &self,
        network: &str,
        signer: &str,
        chain_pending: u64,
    ) -> Result<u64> {
        let sql = Sql::new(format!(
            "INSERT INTO signer_nonces (network, signer, next_nonce, updated_at)
             VALUES ($1, $2, $3 + 1, $4)
             ON CONFLICT (network, signer) DO UPDATE
                 SET next_nonce = {greatest}(signer_nonces.next_nonce, $3) + 1, updated_at = $4
             RETURNING next_nonce - 1 AS leased",
            greatest = D::GREATEST
        ))
        .arg(network)
        .arg(signer)
        .arg(to_i64(chain_pending, "nonce")?)
        .arg(purser_domain::time::now());
        let row = self.fetch_one(sql, "leasing a signer nonce").await?;
        Ok(Cols::<D>::new(&row).i64("leased")? as u64)
    }

    async fn signer_next_nonce(&self, network: &str, signer: &str) -> Result<Option<u64>> {
        let sql =
            Sql::new("SELECT next_nonce FROM signer_nonces WHERE network = $1 AND signer = $2")
                .arg(network)
                .arg(signer);
        self.fetch_optional(sql, "reading a signer nonce")
            .await?
            .map(|row| Ok(Cols::<D>::new(&row).i64("next_nonce")? as u64))
            .transpose()
    }

    async fn record_attempt(&self, attempt: Attempt) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let numeric = D::AS_NUMERIC;
        Sql::<D>::new(format!(
            "INSERT INTO settlement_attempts (id, settlement_id, kind, network, signer, signer_nonce,
                 tx_hash, raw_tx, max_fee_per_gas, max_priority_fee_per_gas, created_at, broadcast_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9{numeric}, $10{numeric}, $11, $12)"
        ))
        .arg(attempt.id.as_uuid())
        .arg(attempt.settlement_id.map(|s| s.as_uuid()))
        .arg(attempt.kind.as_str())
        .arg(&attempt.network)
        .arg(&attempt.signer)
        .arg(to_i64(attempt.signer_nonce, "nonce")?)
        .arg(&attempt.tx_hash)
        .arg(&attempt.raw_tx)
        .arg(attempt.max_fee_per_gas.to_string())
        .arg(attempt.max_priority_fee_per_gas.to_string())
        .arg(attempt.created_at)
        .arg(attempt.broadcast_at)
        .execute(&mut tx, "recording a transaction")
        .await?;
        if let (AttemptKind::Transfer, Some(settlement_id)) = (attempt.kind, attempt.settlement_id)
            && let Some(settlement) =
                D::submit_settlement(&mut tx, settlement_id, &attempt.tx_hash).await?
        {
            ledger::open_settlement_transfer::<D>(&mut tx, &settlement).await?;
        }
        if let (Some(route), Some(settlement_id)) = (&attempt.route, attempt.settlement_id) {
            // The first decision is kept: a replacement's does not overwrite it.
            Sql::<D>::new(format!(
                "UPDATE settlements SET estimated_network_cost = $2{numeric}, route_decision = $3
                 WHERE id = $1 AND route_decision IS NULL"
            ))
            .arg(settlement_id.as_uuid())
            .arg(route.estimated_cost_wei)
            .arg(&route.json)
            .execute(&mut tx, "recording a settlement's route")
            .await?;
        }
        commit::<D>(tx).await
    }

    async fn mark_broadcast(&self, attempt: AttemptId, at: DateTime<Utc>) -> Result<()> {
        let sql = Sql::new("UPDATE settlement_attempts SET broadcast_at = $2 WHERE id = $1")
            .arg(attempt.as_uuid())
            .arg(at);
        self.execute(sql, "recording a broadcast").await?;
        Ok(())
    }

    async fn attempts_for(&self, id: SettlementId) -> Result<Vec<Attempt>> {
        let sql = Sql::new(format!(
            "SELECT {} FROM settlement_attempts WHERE settlement_id = $1 ORDER BY id",
            attempt_columns::<D>()
        ))
        .arg(id.as_uuid());
        self.fetch_all(sql, "reading a settlement's transactions")
            .await?
            .iter()
            .map(read_attempt::<D>)
            .collect()
    }

    async fn signer_attempts_from(
        &self,
        network: &str,
        signer: &str,
        from_nonce: u64,
    ) -> Result<Vec<Attempt>> {
        let sql = Sql::new(format!(
            "SELECT {} FROM settlement_attempts
             WHERE network = $1 AND signer = $2 AND signer_nonce >= $3 ORDER BY signer_nonce, id",
            attempt_columns::<D>()
        ))
        .arg(network)
        .arg(signer)
        .arg(to_i64(from_nonce, "nonce")?);
        self.fetch_all(sql, "reading a signer's transactions")
            .await?
            .iter()
            .map(read_attempt::<D>)
            .collect()
    }

    async fn network_costs(
        &self,
        scope: TenantScope,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<NetworkCostDay>> {
        use purser_domain::settlement::MAX_NETWORK_COST_DAYS;
        if to <= from || to - from > chrono::Duration::days(MAX_NETWORK_COST_DAYS) {
            return Err(Error::invalid_input(format!(
                "the period must be positive and at most {MAX_NETWORK_COST_DAYS} days"
            )));
        }
        // Amounts are exact in u128, summed here alike for both backends (SQLite's integers
        // stop at 2^63 wei, 9.2 ETH); the period bounds the rows.
        let sql = Sql::new(format!(
            "SELECT network, updated_at, network_cost{t} AS network_cost,
                 estimated_network_cost{t} AS estimated_network_cost
             FROM settlements
             WHERE tenant_id = $1 AND network_cost IS NOT NULL
                 AND updated_at >= $2 AND updated_at < $3",
            t = D::AS_TEXT
        ))
        .arg(scope.tenant_id().as_uuid())
        .arg(from)
        .arg(to);
        let mut days: std::collections::BTreeMap<(chrono::NaiveDate, String), NetworkCostDay> =
            std::collections::BTreeMap::new();
        let overflow = || Error::internal("summing network costs", "a sum exceeds 2^128 wei");
        for row in self.fetch_all(sql, "summing network costs").await? {
            let r = Cols::<D>::new(&row);
            let network = r.text("network")?;
            let day = r.time("updated_at")?.date_naive();
            let cost = r.amount("network_cost")?;
            let estimate = r.opt_amount("estimated_network_cost")?;
            let entry = days
                .entry((day, network.clone()))
                .or_insert_with(|| NetworkCostDay {
                    day,
                    network,
                    settlements: 0,
                    total: purser_domain::money::Amount::ZERO,
                    estimated: purser_domain::money::Amount::ZERO,
                    estimated_actual: purser_domain::money::Amount::ZERO,
                });
            entry.settlements += 1;
            entry.total = entry.total.checked_add(cost).ok_or_else(overflow)?;
            if let Some(estimate) = estimate {
                entry.estimated = entry.estimated.checked_add(estimate).ok_or_else(overflow)?;
                entry.estimated_actual = entry
                    .estimated_actual
                    .checked_add(cost)
                    .ok_or_else(overflow)?;
            }
        }
        Ok(days.into_values().collect())
    }

    async fn mark_pending(&self, id: SettlementId, message: &str) -> Result<Settlement> {
        self.transition(
            id,
            "status = 'pending', error_message = $3",
            "'submitted'",
            |q| q.arg(outcome_message(message)),
        )
        .await
    }

    async fn confirm_settlement(
        &self,
        id: SettlementId,
        outcome: ChainOutcome,
    ) -> Result<Settlement> {
        let update = Sql::new(format!(
            "UPDATE settlements SET status = 'confirmed', tx_hash = $2, block_number = $3,
                 error_reason = NULL, error_message = NULL, updated_at = $4,
                 {cost}
             WHERE id = $1 AND status IN ('submitted', 'pending')
             RETURNING {}",
            settlement_columns::<D>(),
            cost = cost_assignments::<D>(5),
        ))
        .arg(id.as_uuid())
        .arg(&outcome.tx_hash)
        .arg(to_i64(outcome.block_number, "block number")?)
        .arg(purser_domain::time::now());
        let update = bind_cost(update, outcome.cost.as_ref())?;
        let Some((mut tx, settlement)) = self
            .begin_resolution(update, "confirming a settlement")
            .await?
        else {
            return self.settlement_or_missing(id).await;
        };
        ledger::post_settlement::<D>(&mut tx, &settlement).await?;
        ledger::post_network_fee::<D>(&mut tx, &settlement).await?;
        commit::<D>(tx).await?;
        Ok(settlement)
    }

    async fn fail_settlement(
        &self,
        id: SettlementId,
        tx_hash: Option<&str>,
        cost: Option<&NetworkCost>,
        reason: &str,
        message: &str,
    ) -> Result<Settlement> {
        let update = Sql::new(format!(
            "UPDATE settlements SET status = 'failed', tx_hash = COALESCE($2, tx_hash),
                 error_reason = $3, error_message = $4, updated_at = $5,
                 {cost}
             WHERE id = $1 AND status IN ('submitted', 'pending')
             RETURNING {}",
            settlement_columns::<D>(),
            cost = cost_assignments::<D>(6),
        ))
        .arg(id.as_uuid())
        .arg(tx_hash)
        .arg(reason)
        .arg(outcome_message(message))
        .arg(purser_domain::time::now());
        let update = bind_cost(update, cost)?;
        let Some((mut tx, settlement)) = self
            .begin_resolution(update, "failing a settlement")
            .await?
        else {
            return self.settlement_or_missing(id).await;
        };
        ledger::void_settlement::<D>(&mut tx, &settlement).await?;
        ledger::post_network_fee::<D>(&mut tx, &settlement).await?;
        // A failed payment bought nothing: the grants it made are revoked with it.
        Sql::<D>::new(
            "UPDATE grants SET revoked_at = $2 WHERE settlement_id = $1 AND revoked_at IS NULL",
        )
        .arg(settlement.id.as_uuid())
        .arg(settlement.updated_at)
        .execute(&mut tx, "revoking the grants of a failed settlement")
        .await?;
        commit::<D>(tx).await?;
        Ok(settlement)
    }

    async fn unfinished_settlements(&self, query: InFlightQuery) -> Result<Vec<Settlement>> {
        let sql = Sql::new(format!(
            "SELECT {} FROM settlements
             WHERE status IN ('received', 'verified', 'submitted', 'pending') AND updated_at < $1
             ORDER BY updated_at LIMIT $2",
            settlement_columns::<D>()
        ))
        .arg(query.updated_before)
        .arg(i64::from(query.limit));
        self.fetch_all(sql, "listing unfinished settlements")
            .await?
            .iter()
            .map(read_settlement::<D>)
            .collect()
    }

    async fn claim_payment_identifier(
        &self,
        scope: TenantScope,
        identifier: &str,
        payload_hash: &str,
    ) -> Result<PaymentIdentifierClaim> {
        let insert = Sql::new(
            "INSERT INTO payment_identifiers (tenant_id, identifier, payload_hash, created_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .arg(scope.tenant_id().as_uuid())
        .arg(identifier)
        .arg(payload_hash)
        .arg(purser_domain::time::now());
        if self
            .execute(insert, "recording a payment identifier")
            .await?
            == 1
        {
            return Ok(PaymentIdentifierClaim::New);
        }
        let existing = Sql::new(
            "SELECT payload_hash, response, created_at FROM payment_identifiers
             WHERE tenant_id = $1 AND identifier = $2",
        )
        .arg(scope.tenant_id().as_uuid())
        .arg(identifier);
        let row = self
            .fetch_one(existing, "reading a payment identifier")
            .await?;
        let r = Cols::<D>::new(&row);
        let hash = r.text("payload_hash")?;
        if hash != payload_hash {
            return Ok(PaymentIdentifierClaim::Conflict);
        }
        Ok(PaymentIdentifierClaim::Same(PaymentIdentifierRecord {
            tenant_id: scope.tenant_id(),
            identifier: identifier.to_owned(),
            payload_hash: hash,
            response: r.opt_text("response")?,
            created_at: r.time("created_at")?,
        }))
    }

    async fn store_payment_response(
        &self,
        scope: TenantScope,
        identifier: &str,
        response: &str,
    ) -> Result<()> {
        let sql = Sql::new(
            "UPDATE payment_identifiers SET response = $3 WHERE tenant_id = $1 AND identifier = $2",
        )
        .arg(scope.tenant_id().as_uuid())
        .arg(identifier)
        .arg(response);
        self.execute(sql, "storing a payment response").await?;
        Ok(())
    }
}
