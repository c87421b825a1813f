//! The ledger's tables. Postings are written only by settlement transitions and credit
//! operations (`credits`), inside their transaction; balances are sums over transfers (the
//! credit balance rows are kept equal to them in the same transactions), computed here in
//! `u128` because SQLite's integers stop at 2^63.

use std::collections::BTreeMap;

use async_trait::async_trait;
use purser_domain::auth::TenantScope;
use purser_domain::id::{LedgerAccountId, SettlementId, TenantId, TransferId};
use purser_domain::ledger::{
    AccountBalance, AccountKind, LedgerAccount, Transfer, TransferCode, TransferState,
};
use purser_domain::money::Amount;
use purser_domain::repo::LedgerRepository;
use purser_domain::settlement::Settlement;
use purser_domain::{Error, Result};
use sqlx::{Sqlite, Transaction};
use uuid::Uuid;

use crate::error::{corrupt_row, db_error};
use crate::{SqliteStore, from_micros, to_micros};

/// The account of `kind` for the settlement's tenant, chain and asset, created on first use.
async fn account(
    tx: &mut Transaction<'_, Sqlite>,
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
    tx: &mut Transaction<'_, Sqlite>,
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
    // One partial unique index each for tenant-wide and per-wallet accounts.
    let conflict = if wallet.is_some() {
        "(tenant_id, network, asset, kind, wallet) WHERE wallet IS NOT NULL"
    } else {
        "(tenant_id, network, asset, kind) WHERE wallet IS NULL"
    };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO ledger_accounts (id, tenant_id, network, asset, kind, wallet, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT {conflict} DO NOTHING"
    )))
    .bind(LedgerAccountId::new().as_uuid())
    .bind(tenant_id.as_uuid())
    .bind(network)
    .bind(asset)
    .bind(kind.as_str())
    .bind(wallet)
    .bind(to_micros(purser_domain::time::now()))
    .execute(&mut **tx)
    .await
    .map_err(db_error("opening a ledger account"))?;
    sqlx::query_scalar(
        "SELECT id FROM ledger_accounts WHERE tenant_id = $1 AND network = $2 AND asset = $3
             AND kind = $4 AND wallet IS $5",
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
    tx: &mut Transaction<'_, Sqlite>,
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
    let now = to_micros(purser_domain::time::now());
    sqlx::query(
        "INSERT INTO ledger_transfers (id, tenant_id, network, asset, debit_account_id,
             credit_account_id, amount, state, code, settlement_id, created_at, resolved_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (settlement_id, code) DO NOTHING",
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
    tx: &mut Transaction<'_, Sqlite>,
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
    tx: &mut Transaction<'_, Sqlite>,
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
    .bind(to_micros(purser_domain::time::now()))
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
    tx: &mut Transaction<'_, Sqlite>,
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
    tx: &mut Transaction<'_, Sqlite>,
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
    debit_account_id: Uuid,
    credit_account_id: Uuid,
    debit_kind: String,
    credit_kind: String,
    amount: String,
    state: String,
    code: String,
    settlement_id: Option<Uuid>,
    created_at: i64,
    resolved_at: Option<i64>,
}

impl TryFrom<&TransferRow> for Transfer {
    type Error = Error;

    fn try_from(row: &TransferRow) -> Result<Self> {
        let decode = |e| corrupt_row("decoding a ledger transfer", e);
        Ok(Transfer {
            id: TransferId::from_uuid(row.id),
            tenant_id: TenantId::from_uuid(row.tenant_id),
            network: row.network.clone(),
            asset: row.asset.clone(),
            debit: row.debit_kind.parse().map_err(decode)?,
            credit: row.credit_kind.parse().map_err(decode)?,
            amount: row.amount.parse().map_err(decode)?,
            state: row.state.parse().map_err(decode)?,
            code: row.code.parse().map_err(decode)?,
            settlement_id: row.settlement_id.map(SettlementId::from_uuid),
            created_at: from_micros(row.created_at)?,
            resolved_at: row.resolved_at.map(from_micros).transpose()?,
        })
    }
}

const TRANSFER_SELECT: &str = "SELECT t.id, t.tenant_id, t.network, t.asset, t.debit_account_id, \
     t.credit_account_id, d.kind AS debit_kind, c.kind AS credit_kind, t.amount, t.state, t.code, \
     t.settlement_id, t.created_at, t.resolved_at \
     FROM ledger_transfers t \
     JOIN ledger_accounts d ON d.id = t.debit_account_id \
     JOIN ledger_accounts c ON c.id = t.credit_account_id";

#[async_trait]
impl LedgerRepository for SqliteStore {
    async fn transfers_for_settlement(
        &self,
        scope: TenantScope,
        id: SettlementId,
    ) -> Result<Vec<Transfer>> {
        let rows = sqlx::query_as::<_, TransferRow>(sqlx::AssertSqlSafe(format!(
            "{TRANSFER_SELECT} WHERE t.tenant_id = $1 AND t.settlement_id = $2 ORDER BY t.created_at, t.id"
        )))
        .bind(scope.tenant_id().as_uuid())
        .bind(id.as_uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("reading ledger transfers"))?;
        rows.iter().map(Transfer::try_from).collect()
    }

    async fn account_balances(&self, scope: TenantScope) -> Result<Vec<AccountBalance>> {
        let accounts: Vec<(Uuid, String, String, String, Option<String>)> = sqlx::query_as(
            "SELECT id, network, asset, kind, wallet FROM ledger_accounts WHERE tenant_id = $1
             ORDER BY network, asset, kind, wallet NULLS FIRST",
        )
        .bind(scope.tenant_id().as_uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("reading ledger accounts"))?;
        let mut balances: BTreeMap<Uuid, AccountBalance> = BTreeMap::new();
        let mut order = Vec::with_capacity(accounts.len());
        for (id, network, asset, kind, wallet) in accounts {
            order.push(id);
            balances.insert(
                id,
                AccountBalance {
                    account: LedgerAccount {
                        id: LedgerAccountId::from_uuid(id),
                        tenant_id: scope.tenant_id(),
                        network,
                        asset,
                        kind: kind
                            .parse()
                            .map_err(|e| corrupt_row("decoding an account", e))?,
                        wallet,
                    },
                    debits_pending: Amount::ZERO,
                    credits_pending: Amount::ZERO,
                    debits_posted: Amount::ZERO,
                    credits_posted: Amount::ZERO,
                },
            );
        }
        let rows = sqlx::query_as::<_, TransferRow>(sqlx::AssertSqlSafe(format!(
            "{TRANSFER_SELECT} WHERE t.tenant_id = $1 AND t.state <> 'voided'"
        )))
        .bind(scope.tenant_id().as_uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("reading ledger transfers"))?;
        let overflow = || Error::internal("summing ledger balances", "a balance overflows u128");
        for row in &rows {
            let transfer = Transfer::try_from(row)?;
            let posted = transfer.state == TransferState::Posted;
            if let Some(debit) = balances.get_mut(&row.debit_account_id) {
                let side = if posted {
                    &mut debit.debits_posted
                } else {
                    &mut debit.debits_pending
                };
                *side = side.checked_add(transfer.amount).ok_or_else(overflow)?;
            }
            if let Some(credit) = balances.get_mut(&row.credit_account_id) {
                let side = if posted {
                    &mut credit.credits_posted
                } else {
                    &mut credit.credits_pending
                };
                *side = side.checked_add(transfer.amount).ok_or_else(overflow)?;
            }
        }
        Ok(order
            .into_iter()
            .filter_map(|id| balances.remove(&id))
            .collect())
    }
}
