//! Settlements, their transactions, signer nonces and payment identifiers. Write transactions
//! start with `BEGIN IMMEDIATE`, taking SQLite's single write lock up front, so a transition
//! reads and changes a row without another writer in between.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use purser_domain::auth::TenantScope;
use purser_domain::id::{AttemptId, SettlementId, TenantId};
use purser_domain::page::{Page, PageRequest};
use purser_domain::repo::SettlementRepository;
use purser_domain::settlement::{
    Attempt, AttemptKind, AuthorizationKey, ChainOutcome, Claim, InFlightQuery, NewSettlement,
    PaymentIdentifierClaim, PaymentIdentifierRecord, Settlement, SettlementStatus,
};
use purser_domain::{Error, ErrorCode, Result};
use sqlx::{QueryBuilder, Sqlite, Transaction};
use uuid::Uuid;

use crate::error::{corrupt_row, db_error};
use crate::tenants::push_page;
use crate::{SqliteStore, from_micros, ledger, to_micros};

const SETTLEMENT_COLUMNS: &str = "id, tenant_id, network, asset, payer, auth_nonce, pay_to, amount, \
     valid_after, valid_before, payload, requirements, status, error_reason, error_message, tx_hash, \
     block_number, payment_identifier, created_at, updated_at";

const ATTEMPT_COLUMNS: &str = "id, settlement_id, kind, network, signer, signer_nonce, tx_hash, raw_tx, \
     max_fee_per_gas, max_priority_fee_per_gas, created_at, broadcast_at";

#[derive(sqlx::FromRow)]
struct SettlementRow {
    id: Uuid,
    tenant_id: Uuid,
    network: String,
    asset: String,
    payer: String,
    auth_nonce: String,
    pay_to: String,
    amount: String,
    valid_after: i64,
    valid_before: i64,
    payload: String,
    requirements: String,
    status: String,
    error_reason: Option<String>,
    error_message: Option<String>,
    tx_hash: Option<String>,
    block_number: Option<i64>,
    payment_identifier: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<SettlementRow> for Settlement {
    type Error = Error;

    fn try_from(row: SettlementRow) -> Result<Self> {
        let decode = |e| corrupt_row("decoding a settlement row", e);
        Ok(Settlement {
            id: SettlementId::from_uuid(row.id),
            tenant_id: TenantId::from_uuid(row.tenant_id),
            key: AuthorizationKey {
                network: row.network,
                asset: row.asset,
                payer: row.payer,
                nonce: row.auth_nonce,
            },
            pay_to: row.pay_to,
            amount: row.amount.parse().map_err(decode)?,
            valid_after: row.valid_after as u64,
            valid_before: row.valid_before as u64,
            payload: row.payload,
            requirements: row.requirements,
            status: row.status.parse().map_err(decode)?,
            error_reason: row.error_reason,
            error_message: row.error_message,
            tx_hash: row.tx_hash,
            block_number: row.block_number.map(|b| b as u64),
            payment_identifier: row.payment_identifier,
            created_at: from_micros(row.created_at)?,
            updated_at: from_micros(row.updated_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    id: Uuid,
    settlement_id: Option<Uuid>,
    kind: String,
    network: String,
    signer: String,
    signer_nonce: i64,
    tx_hash: String,
    raw_tx: Vec<u8>,
    max_fee_per_gas: String,
    max_priority_fee_per_gas: String,
    created_at: i64,
    broadcast_at: Option<i64>,
}

impl TryFrom<AttemptRow> for Attempt {
    type Error = Error;

    fn try_from(row: AttemptRow) -> Result<Self> {
        let fee = |s: &str| {
            s.parse::<u128>()
                .map_err(|e| Error::internal("decoding a fee", e))
        };
        Ok(Attempt {
            id: AttemptId::from_uuid(row.id),
            settlement_id: row.settlement_id.map(SettlementId::from_uuid),
            kind: row
                .kind
                .parse()
                .map_err(|e| corrupt_row("decoding an attempt row", e))?,
            network: row.network,
            signer: row.signer,
            signer_nonce: row.signer_nonce as u64,
            tx_hash: row.tx_hash,
            raw_tx: row.raw_tx,
            max_fee_per_gas: fee(&row.max_fee_per_gas)?,
            max_priority_fee_per_gas: fee(&row.max_priority_fee_per_gas)?,
            created_at: from_micros(row.created_at)?,
            broadcast_at: row.broadcast_at.map(from_micros).transpose()?,
        })
    }
}

fn to_i64(value: u64, what: &'static str) -> Result<i64> {
    i64::try_from(value).map_err(|_| Error::invalid_input(format!("{what} is too large")))
}

async fn settlement_by_id(
    executor: impl sqlx::SqliteExecutor<'_>,
    id: SettlementId,
) -> Result<Option<Settlement>> {
    sqlx::query_as::<_, SettlementRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {SETTLEMENT_COLUMNS} FROM settlements WHERE id = $1"
    )))
    .bind(id.as_uuid())
    .fetch_optional(executor)
    .await
    .map_err(db_error("reading a settlement"))?
    .map(Settlement::try_from)
    .transpose()
}

impl SqliteStore {
    async fn settlement_or_missing(&self, id: SettlementId) -> Result<Settlement> {
        settlement_by_id(&self.pool, id)
            .await?
            .ok_or_else(|| Error::not_found(SettlementId::WHAT))
    }

    /// Runs a guarded status change; answers the record as it now stands either way.
    async fn transition(
        &self,
        id: SettlementId,
        set: &'static str,
        from: &'static str,
        binds: impl FnOnce(
            sqlx::query::QueryAs<'_, Sqlite, SettlementRow, sqlx::sqlite::SqliteArguments>,
        ) -> sqlx::query::QueryAs<
            '_,
            Sqlite,
            SettlementRow,
            sqlx::sqlite::SqliteArguments,
        >,
    ) -> Result<Settlement> {
        let sql = format!(
            "UPDATE settlements SET {set}, updated_at = $2 WHERE id = $1 AND status IN ({from}) \
             RETURNING {SETTLEMENT_COLUMNS}"
        );
        let query = sqlx::query_as::<_, SettlementRow>(sqlx::AssertSqlSafe(sql))
            .bind(id.as_uuid())
            .bind(to_micros(purser_domain::time::now()));
        let updated = binds(query)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error("changing a settlement's status"))?;
        match updated {
            Some(row) => row.try_into(),
            None => self.settlement_or_missing(id).await,
        }
    }

    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error("starting a write transaction"))
    }

    /// A status change with ledger postings, in one write transaction.
    async fn resolve(
        &self,
        id: SettlementId,
        to: SettlementStatus,
        apply: impl for<'t> FnOnce(
            &'t mut Transaction<'static, Sqlite>,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<Option<Settlement>>> + Send + 't>,
        >,
    ) -> Result<Settlement> {
        let mut tx = self.begin_write().await?;
        let Some(settlement) = apply(&mut tx).await? else {
            drop(tx);
            return self.settlement_or_missing(id).await;
        };
        match to {
            SettlementStatus::Confirmed => ledger::post_settlement(&mut tx, &settlement).await?,
            SettlementStatus::Failed => {
                ledger::void_settlement(&mut tx, &settlement).await?;
                revoke_grants_of(&mut tx, &settlement).await?;
            }
            _ => {}
        }
        commit(tx).await?;
        Ok(settlement)
    }
}

/// A failed payment bought nothing: revokes the grants it made, in the failure's transaction.
async fn revoke_grants_of(
    tx: &mut Transaction<'static, Sqlite>,
    settlement: &Settlement,
) -> Result<()> {
    sqlx::query(
        "UPDATE grants SET revoked_at = $2 WHERE settlement_id = $1 AND revoked_at IS NULL",
    )
    .bind(settlement.id.as_uuid())
    .bind(to_micros(settlement.updated_at))
    .execute(&mut **tx)
    .await
    .map_err(db_error("revoking the grants of a failed settlement"))?;
    Ok(())
}

async fn commit(tx: Transaction<'_, Sqlite>) -> Result<()> {
    tx.commit()
        .await
        .map_err(db_error("committing a transaction"))
}

#[async_trait]
impl SettlementRepository for SqliteStore {
    async fn claim_settlement(&self, new: NewSettlement) -> Result<Claim> {
        let inserted = sqlx::query_as::<_, SettlementRow>(sqlx::AssertSqlSafe(format!(
            "INSERT INTO settlements (id, tenant_id, network, asset, payer, auth_nonce, pay_to, amount,
                 valid_after, valid_before, payload, requirements, status, payment_identifier,
                 created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'received', $13, $14, $14)
             ON CONFLICT (network, asset, payer, auth_nonce) DO NOTHING
             RETURNING {SETTLEMENT_COLUMNS}"
        )))
        .bind(new.id.as_uuid())
        .bind(new.tenant_id.as_uuid())
        .bind(&new.key.network)
        .bind(&new.key.asset)
        .bind(&new.key.payer)
        .bind(&new.key.nonce)
        .bind(&new.pay_to)
        .bind(new.amount.to_string())
        .bind(to_i64(new.valid_after, "validAfter")?)
        .bind(to_i64(new.valid_before, "validBefore")?)
        .bind(&new.payload)
        .bind(&new.requirements)
        .bind(&new.payment_identifier)
        .bind(to_micros(new.created_at))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("claiming a settlement"))?;
        if let Some(row) = inserted {
            return Ok(Claim::Created(row.try_into()?));
        }
        // Claimed before. A rejected claim of the same tenant is taken over afresh.
        let reclaimed = sqlx::query_as::<_, SettlementRow>(sqlx::AssertSqlSafe(format!(
            "UPDATE settlements SET status = 'received', pay_to = $6, amount = $7,
                 valid_after = $8, valid_before = $9, payload = $10, requirements = $11,
                 payment_identifier = $12, error_reason = NULL, error_message = NULL, updated_at = $13
             WHERE network = $1 AND asset = $2 AND payer = $3 AND auth_nonce = $4 AND tenant_id = $5
               AND status = 'rejected'
             RETURNING {SETTLEMENT_COLUMNS}"
        )))
        .bind(&new.key.network)
        .bind(&new.key.asset)
        .bind(&new.key.payer)
        .bind(&new.key.nonce)
        .bind(new.tenant_id.as_uuid())
        .bind(&new.pay_to)
        .bind(new.amount.to_string())
        .bind(to_i64(new.valid_after, "validAfter")?)
        .bind(to_i64(new.valid_before, "validBefore")?)
        .bind(&new.payload)
        .bind(&new.requirements)
        .bind(&new.payment_identifier)
        .bind(to_micros(purser_domain::time::now()))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("reclaiming a settlement"))?;
        if let Some(row) = reclaimed {
            return Ok(Claim::Created(row.try_into()?));
        }
        let existing = sqlx::query_as::<_, SettlementRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {SETTLEMENT_COLUMNS} FROM settlements
             WHERE network = $1 AND asset = $2 AND payer = $3 AND auth_nonce = $4"
        )))
        .bind(&new.key.network)
        .bind(&new.key.asset)
        .bind(&new.key.payer)
        .bind(&new.key.nonce)
        .fetch_one(&self.pool)
        .await
        .map_err(db_error("reading a claimed settlement"))?;
        Ok(Claim::Existing(existing.try_into()?))
    }

    async fn get_settlement(&self, id: SettlementId) -> Result<Option<Settlement>> {
        settlement_by_id(&self.pool, id).await
    }

    async fn find_settlement(
        &self,
        scope: TenantScope,
        id: SettlementId,
    ) -> Result<Option<Settlement>> {
        Ok(settlement_by_id(&self.pool, id)
            .await?
            .filter(|s| s.tenant_id == scope.tenant_id()))
    }

    async fn find_settlement_by_authorization(
        &self,
        scope: TenantScope,
        key: &AuthorizationKey,
    ) -> Result<Option<Settlement>> {
        sqlx::query_as::<_, SettlementRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {SETTLEMENT_COLUMNS} FROM settlements \
             WHERE network = $1 AND asset = $2 AND payer = $3 AND auth_nonce = $4 AND tenant_id = $5"
        )))
        .bind(&key.network)
        .bind(&key.asset)
        .bind(&key.payer)
        .bind(&key.nonce)
        .bind(scope.tenant_id().as_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("reading a settlement by its authorization"))?
        .map(Settlement::try_from)
        .transpose()
    }

    async fn list_settlements(
        &self,
        scope: TenantScope,
        page: PageRequest,
    ) -> Result<Page<Settlement>> {
        let mut query = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {SETTLEMENT_COLUMNS} FROM settlements WHERE tenant_id = "
        ));
        query.push_bind(scope.tenant_id().as_uuid());
        push_page(&mut query, &page);
        let rows = query
            .build_query_as::<SettlementRow>()
            .fetch_all(&self.pool)
            .await
            .map_err(db_error("listing settlements"))?;
        let settlements = rows
            .into_iter()
            .map(Settlement::try_from)
            .collect::<Result<Vec<_>>>()?;
        Ok(page.finish(settlements))
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
            |q| q.bind(reason.to_owned()).bind(outcome_message(message)),
        )
        .await
    }

    async fn lease_signer_nonce(
        &self,
        network: &str,
        signer: &str,
        chain_pending: u64,
    ) -> Result<u64> {
        let leased: i64 = sqlx::query_scalar(
            "INSERT INTO signer_nonces (network, signer, next_nonce, updated_at)
             VALUES ($1, $2, $3 + 1, $4)
             ON CONFLICT (network, signer) DO UPDATE
                 SET next_nonce = MAX(signer_nonces.next_nonce, $3) + 1, updated_at = $4
             RETURNING next_nonce - 1",
        )
        .bind(network)
        .bind(signer)
        .bind(to_i64(chain_pending, "nonce")?)
        .bind(to_micros(purser_domain::time::now()))
        .fetch_one(&self.pool)
        .await
        .map_err(db_error("leasing a signer nonce"))?;
        Ok(leased as u64)
    }

    async fn signer_next_nonce(&self, network: &str, signer: &str) -> Result<Option<u64>> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT next_nonce FROM signer_nonces WHERE network = $1 AND signer = $2",
        )
        .bind(network)
        .bind(signer)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("reading a signer nonce"))?;
        Ok(next.map(|n| n as u64))
    }

    async fn record_attempt(&self, attempt: Attempt) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO settlement_attempts (id, settlement_id, kind, network, signer, signer_nonce,
                 tx_hash, raw_tx, max_fee_per_gas, max_priority_fee_per_gas, created_at, broadcast_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(attempt.id.as_uuid())
        .bind(attempt.settlement_id.map(|s| s.as_uuid()))
        .bind(attempt.kind.as_str())
        .bind(&attempt.network)
        .bind(&attempt.signer)
        .bind(to_i64(attempt.signer_nonce, "nonce")?)
        .bind(&attempt.tx_hash)
        .bind(&attempt.raw_tx)
        .bind(attempt.max_fee_per_gas.to_string())
        .bind(attempt.max_priority_fee_per_gas.to_string())
        .bind(to_micros(attempt.created_at))
        .bind(attempt.broadcast_at.map(to_micros))
        .execute(&mut *tx)
        .await
        .map_err(db_error("recording a transaction"))?;
        if let (AttemptKind::Transfer, Some(settlement_id)) = (attempt.kind, attempt.settlement_id)
        {
            let current = settlement_by_id(&mut *tx, settlement_id)
                .await?
                .ok_or_else(|| Error::not_found(SettlementId::WHAT))?;
            if !matches!(
                current.status,
                SettlementStatus::Verified
                    | SettlementStatus::Submitted
                    | SettlementStatus::Pending
            ) {
                return Err(Error::new(
                    ErrorCode::Conflict,
                    "the settlement is not awaiting a transaction",
                ));
            }
            let row = sqlx::query_as::<_, SettlementRow>(sqlx::AssertSqlSafe(format!(
                "UPDATE settlements SET status = CASE WHEN status = 'verified' THEN 'submitted' ELSE status END,
                     tx_hash = $2, updated_at = $3
                 WHERE id = $1 RETURNING {SETTLEMENT_COLUMNS}"
            )))
            .bind(settlement_id.as_uuid())
            .bind(&attempt.tx_hash)
            .bind(to_micros(purser_domain::time::now()))
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error("submitting a settlement"))?;
            if current.status == SettlementStatus::Verified {
                ledger::open_settlement_transfer(&mut tx, &row.try_into()?).await?;
            }
        }
        commit(tx).await
    }

    async fn mark_broadcast(&self, attempt: AttemptId, at: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE settlement_attempts SET broadcast_at = $2 WHERE id = $1")
            .bind(attempt.as_uuid())
            .bind(to_micros(at))
            .execute(&self.pool)
            .await
            .map_err(db_error("recording a broadcast"))?;
        Ok(())
    }

    async fn attempts_for(&self, id: SettlementId) -> Result<Vec<Attempt>> {
        sqlx::query_as::<_, AttemptRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {ATTEMPT_COLUMNS} FROM settlement_attempts WHERE settlement_id = $1 ORDER BY id"
        )))
        .bind(id.as_uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("reading a settlement's transactions"))?
        .into_iter()
        .map(Attempt::try_from)
        .collect()
    }

    async fn signer_attempts_from(
        &self,
        network: &str,
        signer: &str,
        from_nonce: u64,
    ) -> Result<Vec<Attempt>> {
        sqlx::query_as::<_, AttemptRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {ATTEMPT_COLUMNS} FROM settlement_attempts
             WHERE network = $1 AND signer = $2 AND signer_nonce >= $3 ORDER BY signer_nonce, id"
        )))
        .bind(network)
        .bind(signer)
        .bind(to_i64(from_nonce, "nonce")?)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("reading a signer's transactions"))?
        .into_iter()
        .map(Attempt::try_from)
        .collect()
    }

    async fn mark_pending(&self, id: SettlementId, message: &str) -> Result<Settlement> {
        self.transition(
            id,
            "status = 'pending', error_message = $3",
            "'submitted'",
            |q| q.bind(outcome_message(message)),
        )
        .await
    }

    async fn confirm_settlement(
        &self,
        id: SettlementId,
        outcome: ChainOutcome,
    ) -> Result<Settlement> {
        let block = to_i64(outcome.block_number, "block number")?;
        self.resolve(id, SettlementStatus::Confirmed, move |tx| {
            Box::pin(async move {
                sqlx::query_as::<_, SettlementRow>(sqlx::AssertSqlSafe(format!(
                    "UPDATE settlements SET status = 'confirmed', tx_hash = $2, block_number = $3,
                         error_reason = NULL, error_message = NULL, updated_at = $4
                     WHERE id = $1 AND status IN ('submitted', 'pending')
                     RETURNING {SETTLEMENT_COLUMNS}"
                )))
                .bind(id.as_uuid())
                .bind(outcome.tx_hash)
                .bind(block)
                .bind(to_micros(purser_domain::time::now()))
                .fetch_optional(&mut **tx)
                .await
                .map_err(db_error("confirming a settlement"))?
                .map(Settlement::try_from)
                .transpose()
            })
        })
        .await
    }

    async fn fail_settlement(
        &self,
        id: SettlementId,
        tx_hash: Option<&str>,
        reason: &str,
        message: &str,
    ) -> Result<Settlement> {
        let (tx_hash, reason, message) = (
            tx_hash.map(str::to_owned),
            reason.to_owned(),
            outcome_message(message),
        );
        self.resolve(id, SettlementStatus::Failed, move |tx| {
            Box::pin(async move {
                sqlx::query_as::<_, SettlementRow>(sqlx::AssertSqlSafe(format!(
                    "UPDATE settlements SET status = 'failed', tx_hash = COALESCE($2, tx_hash),
                         error_reason = $3, error_message = $4, updated_at = $5
                     WHERE id = $1 AND status IN ('submitted', 'pending')
                     RETURNING {SETTLEMENT_COLUMNS}"
                )))
                .bind(id.as_uuid())
                .bind(tx_hash)
                .bind(reason)
                .bind(message)
                .bind(to_micros(purser_domain::time::now()))
                .fetch_optional(&mut **tx)
                .await
                .map_err(db_error("failing a settlement"))?
                .map(Settlement::try_from)
                .transpose()
            })
        })
        .await
    }

    async fn unfinished_settlements(&self, query: InFlightQuery) -> Result<Vec<Settlement>> {
        sqlx::query_as::<_, SettlementRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {SETTLEMENT_COLUMNS} FROM settlements
             WHERE status IN ('received', 'verified', 'submitted', 'pending') AND updated_at < $1
             ORDER BY updated_at LIMIT $2"
        )))
        .bind(to_micros(query.updated_before))
        .bind(i64::from(query.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("listing unfinished settlements"))?
        .into_iter()
        .map(Settlement::try_from)
        .collect()
    }

    async fn claim_payment_identifier(
        &self,
        scope: TenantScope,
        identifier: &str,
        payload_hash: &str,
    ) -> Result<PaymentIdentifierClaim> {
        let inserted = sqlx::query(
            "INSERT INTO payment_identifiers (tenant_id, identifier, payload_hash, created_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(scope.tenant_id().as_uuid())
        .bind(identifier)
        .bind(payload_hash)
        .bind(to_micros(purser_domain::time::now()))
        .execute(&self.pool)
        .await
        .map_err(db_error("recording a payment identifier"))?;
        if inserted.rows_affected() == 1 {
            return Ok(PaymentIdentifierClaim::New);
        }
        let (hash, response, created_at): (String, Option<String>, i64) = sqlx::query_as(
            "SELECT payload_hash, response, created_at FROM payment_identifiers
             WHERE tenant_id = $1 AND identifier = $2",
        )
        .bind(scope.tenant_id().as_uuid())
        .bind(identifier)
        .fetch_one(&self.pool)
        .await
        .map_err(db_error("reading a payment identifier"))?;
        if hash != payload_hash {
            return Ok(PaymentIdentifierClaim::Conflict);
        }
        Ok(PaymentIdentifierClaim::Same(PaymentIdentifierRecord {
            tenant_id: scope.tenant_id(),
            identifier: identifier.to_owned(),
            payload_hash: hash,
            response,
            created_at: from_micros(created_at)?,
        }))
    }

    async fn store_payment_response(
        &self,
        scope: TenantScope,
        identifier: &str,
        response: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE payment_identifiers SET response = $3 WHERE tenant_id = $1 AND identifier = $2",
        )
        .bind(scope.tenant_id().as_uuid())
        .bind(identifier)
        .bind(response)
        .execute(&self.pool)
        .await
        .map_err(db_error("storing a payment response"))?;
        Ok(())
    }
}

/// A settlement's outcome message as stored: printable, and of bounded length.
fn outcome_message(message: &str) -> String {
    purser_domain::text::printable(message, purser_domain::text::OUTCOME_MESSAGE_MAX_CHARS)
}
