//! The ledger's tables. Postings are written only by settlement transitions and credit
//! operations (`credits`), inside their transaction; balances are sums over transfers (the
//! credit balance rows are kept equal to them in the same transactions).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use purser_domain::auth::TenantScope;
use purser_domain::id::{LedgerAccountId, SettlementId, TenantId, TransferId};
use purser_domain::ledger::{
    AccountBalance, AccountKind, LedgerAccount, Transfer, TransferCode, TransferState,
};
use purser_domain::repo::LedgerRepository;
use purser_domain::settlement::Settlement;
use purser_domain::{Error, Result};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::PgStore;
use crate::error::{corrupt_row, db_error};
use crate::settlements::parse_amount;

/// The account of `kind` for the settlement's tenant, chain and asset, created on first use.
async fn account(
    tx: &mut Transaction<'_, Postgres>,
    settlement: &Settlement,
    kind: AccountKind,
) -> Result<Uuid> {
    ledger_account(
        tx,
        settlement.tenant_id,
        &settlement.key.network,
        &settlement.key.asset,
        kind,
        None,
    )
    .await
}

/// The account of `kind` for the tenant, chain and asset (and `wallet`, for a per-wallet kind),
/// created on first use.
pub(crate) async fn ledger_account(
    tx: &mut Transaction<'_, Postgres>,
    tenant_id: TenantId,
    network: &str,
    asset: &str,
    kind: AccountKind,
    wallet: Option<&str>,
) -> Result<Uuid> {
    if kind.is_per_wallet() != wallet.is_some() {
        return Err(Error::internal(
            "opening a ledger account",
            format!("a {kind} account needs a wallet exactly when it is per wallet"),
        ));
    }
    sqlx::query(
        "INSERT INTO ledger_accounts (id, tenant_id, network, asset, kind, wallet, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT ON CONSTRAINT ledger_accounts_key DO NOTHING",
    )
    .bind(LedgerAccountId::new().as_uuid())
    .bind(tenant_id.as_uuid())
    .bind(network)
    .bind(asset)
    .bind(kind.as_str())
    .bind(wallet)
    .bind(purser_domain::time::now())
    .execute(&mut **tx)
    .await
    .map_err(db_error("opening a ledger account"))?;
    sqlx::query_scalar(
        "SELECT id FROM ledger_accounts WHERE tenant_id = $1 AND network = $2 AND asset = $3
             AND kind = $4 AND wallet IS NOT DISTINCT FROM $5",
    )
    .bind(tenant_id.as_uuid())
    .bind(network)
    .bind(asset)
    .bind(kind.as_str())
    .bind(wallet)
    .fetch_one(&mut **tx)
    .await
    .map_err(db_error("reading a ledger account"))
}

async fn insert_transfer(
    tx: &mut Transaction<'_, Postgres>,
    settlement: &Settlement,
    code: TransferCode,
    debit: AccountKind,
    credit: AccountKind,
    state: TransferState,
) -> Result<()> {
    if settlement.amount.is_zero() {
        return Ok(());
    }
    let debit = account(tx, settlement, debit).await?;
    let credit = account(tx, settlement, credit).await?;
    let now = purser_domain::time::now();
    sqlx::query(
        "INSERT INTO ledger_transfers (id, tenant_id, network, asset, debit_account_id,
             credit_account_id, amount, state, code, settlement_id, created_at, resolved_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7::numeric, $8, $9, $10, $11, $12)
         ON CONFLICT ON CONSTRAINT ledger_transfers_settlement_code_key DO NOTHING",
    )
    .bind(TransferId::new().as_uuid())
    .bind(settlement.tenant_id.as_uuid())
    .bind(&settlement.key.network)
    .bind(&settlement.key.asset)
    .bind(debit)
    .bind(credit)
    .bind(settlement.amount.to_string())
    .bind(state.as_str())
    .bind(code.as_str())
    .bind(settlement.id.as_uuid())
    .bind(now)
    .bind((state != TransferState::Pending).then_some(now))
    .execute(&mut **tx)
    .await
    .map_err(db_error("writing a ledger transfer"))?;
    Ok(())
}

/// On submission: payer clearing to settlement in flight, pending.
pub(crate) async fn open_settlement_transfer(
    tx: &mut Transaction<'_, Postgres>,
    settlement: &Settlement,
) -> Result<()> {
    insert_transfer(
        tx,
        settlement,
        TransferCode::Settlement,
        AccountKind::PayerClearing,
        AccountKind::SettlementInFlight,
        TransferState::Pending,
    )
    .await
}

async fn resolve_settlement_transfer(
    tx: &mut Transaction<'_, Postgres>,
    settlement: &Settlement,
    state: TransferState,
) -> Result<()> {
    if settlement.amount.is_zero() {
        return Ok(());
    }
    let resolved = sqlx::query(
        "UPDATE ledger_transfers SET state = $2, resolved_at = $3
         WHERE settlement_id = $1 AND code = 'settlement' AND state = 'pending'",
    )
    .bind(settlement.id.as_uuid())
    .bind(state.as_str())
    .bind(purser_domain::time::now())
    .execute(&mut **tx)
    .await
    .map_err(db_error("resolving a ledger transfer"))?;
    if resolved.rows_affected() != 1 {
        return Err(Error::internal(
            "resolving a settlement's ledger transfer",
            format!(
                "settlement {} has no pending transfer to {}",
                settlement.id, state
            ),
        ));
    }
    Ok(())
}

/// On confirmation: post the settlement transfer and the payout to the merchant.
pub(crate) async fn post_settlement(
    tx: &mut Transaction<'_, Postgres>,
    settlement: &Settlement,
) -> Result<()> {
    resolve_settlement_transfer(tx, settlement, TransferState::Posted).await?;
    insert_transfer(
        tx,
        settlement,
        TransferCode::Payout,
        AccountKind::SettlementInFlight,
        AccountKind::MerchantReceivable,
        TransferState::Posted,
    )
    .await
}

/// On failure after broadcast: void the settlement transfer.
pub(crate) async fn void_settlement(
    tx: &mut Transaction<'_, Postgres>,
    settlement: &Settlement,
) -> Result<()> {
    resolve_settlement_transfer(tx, settlement, TransferState::Voided).await
}

#[derive(sqlx::FromRow)]
struct TransferRow {
    id: Uuid,
    tenant_id: Uuid,
    network: String,
    asset: String,
    debit_kind: String,
    credit_kind: String,
    amount: String,
    state: String,
    code: String,
    settlement_id: Option<Uuid>,
    created_at: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
}

impl TryFrom<TransferRow> for Transfer {
    type Error = Error;

    fn try_from(row: TransferRow) -> Result<Self> {
        let decode = |e| corrupt_row("decoding a ledger transfer", e);
        Ok(Transfer {
            id: TransferId::from_uuid(row.id),
            tenant_id: TenantId::from_uuid(row.tenant_id),
            network: row.network,
            asset: row.asset,
            debit: row.debit_kind.parse().map_err(decode)?,
            credit: row.credit_kind.parse().map_err(decode)?,
            amount: parse_amount(&row.amount)?,
            state: row.state.parse().map_err(decode)?,
            code: row.code.parse().map_err(decode)?,
            settlement_id: row.settlement_id.map(SettlementId::from_uuid),
            created_at: row.created_at,
            resolved_at: row.resolved_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct BalanceRow {
    id: Uuid,
    network: String,
    asset: String,
    kind: String,
    wallet: Option<String>,
    debits_pending: String,
    credits_pending: String,
    debits_posted: String,
    credits_posted: String,
}

#[async_trait]
impl LedgerRepository for PgStore {
    async fn transfers_for_settlement(
        &self,
        scope: TenantScope,
        id: SettlementId,
    ) -> Result<Vec<Transfer>> {
        sqlx::query_as::<_, TransferRow>(
            "SELECT t.id, t.tenant_id, t.network, t.asset, d.kind AS debit_kind, c.kind AS credit_kind,
                    t.amount::text AS amount, t.state, t.code, t.settlement_id, t.created_at, t.resolved_at
             FROM ledger_transfers t
             JOIN ledger_accounts d ON d.id = t.debit_account_id
             JOIN ledger_accounts c ON c.id = t.credit_account_id
             WHERE t.tenant_id = $1 AND t.settlement_id = $2
             ORDER BY t.created_at, t.id",
        )
        .bind(scope.tenant_id().as_uuid())
        .bind(id.as_uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("reading ledger transfers"))?
        .into_iter()
        .map(Transfer::try_from)
        .collect()
    }

    async fn account_balances(&self, scope: TenantScope) -> Result<Vec<AccountBalance>> {
        let rows = sqlx::query_as::<_, BalanceRow>(
            "SELECT a.id, a.network, a.asset, a.kind, a.wallet,
                COALESCE(SUM(t.amount) FILTER (WHERE t.debit_account_id = a.id AND t.state = 'pending'), 0)::text AS debits_pending,
                COALESCE(SUM(t.amount) FILTER (WHERE t.credit_account_id = a.id AND t.state = 'pending'), 0)::text AS credits_pending,
                COALESCE(SUM(t.amount) FILTER (WHERE t.debit_account_id = a.id AND t.state = 'posted'), 0)::text AS debits_posted,
                COALESCE(SUM(t.amount) FILTER (WHERE t.credit_account_id = a.id AND t.state = 'posted'), 0)::text AS credits_posted
             FROM ledger_accounts a
             LEFT JOIN ledger_transfers t ON t.debit_account_id = a.id OR t.credit_account_id = a.id
             WHERE a.tenant_id = $1
             GROUP BY a.id
             ORDER BY a.network, a.asset, a.kind, a.wallet NULLS FIRST",
        )
        .bind(scope.tenant_id().as_uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("summing ledger balances"))?;
        rows.into_iter()
            .map(|row| {
                Ok(AccountBalance {
                    account: LedgerAccount {
                        id: LedgerAccountId::from_uuid(row.id),
                        tenant_id: scope.tenant_id(),
                        network: row.network,
                        asset: row.asset,
                        kind: row
                            .kind
                            .parse()
                            .map_err(|e| corrupt_row("decoding an account", e))?,
                        wallet: row.wallet,
                    },
                    debits_pending: parse_amount(&row.debits_pending)?,
                    credits_pending: parse_amount(&row.credits_pending)?,
                    debits_posted: parse_amount(&row.debits_posted)?,
                    credits_posted: parse_amount(&row.credits_posted)?,
                })
            })
            .collect()
    }
}
