//! Ledger accounts are keyed by two partial unique indexes (tenant-wide accounts, per-wallet
//! accounts); balances are summed in Rust as `u128`, because SQLite's integers stop at 2^63.

use std::collections::HashMap;

use purser_domain::auth::TenantScope;
use purser_domain::id::LedgerAccountId;
use purser_domain::ledger::{AccountBalance, LedgerAccount, TransferState};
use purser_domain::money::Amount;
use purser_domain::{Error, Result};
use purser_store_sql::ledger::{LedgerDialect, TRANSFER_FROM, read_transfer, transfer_columns};
use purser_store_sql::{Cols, Sql};

use crate::{SqliteDialect, SqliteStore};

impl LedgerDialect for SqliteDialect {
    fn account_key(per_wallet: bool) -> &'static str {
        if per_wallet {
            "(tenant_id, network, asset, kind, wallet) WHERE wallet IS NOT NULL"
        } else {
            "(tenant_id, network, asset, kind) WHERE wallet IS NULL"
        }
    }

    async fn account_balances(
        store: &SqliteStore,
        scope: TenantScope,
    ) -> Result<Vec<AccountBalance>> {
        let accounts = Sql::new(
            "SELECT id, network, asset, kind, wallet FROM ledger_accounts WHERE tenant_id = $1
             ORDER BY network, asset, kind, wallet NULLS FIRST",
        )
        .arg(scope.tenant_id().as_uuid());
        let mut balances = Vec::new();
        for row in store.fetch_all(accounts, "reading ledger accounts").await? {
            let r = Cols::<Self>::new(&row);
            balances.push(AccountBalance {
                account: LedgerAccount {
                    id: LedgerAccountId::from_uuid(r.uuid("id")?),
                    tenant_id: scope.tenant_id(),
                    network: r.text("network")?,
                    asset: r.text("asset")?,
                    kind: r.parse("kind", "decoding an account")?,
                    wallet: r.opt_text("wallet")?,
                },
                debits_pending: Amount::ZERO,
                credits_pending: Amount::ZERO,
                debits_posted: Amount::ZERO,
                credits_posted: Amount::ZERO,
            });
        }
        let at: HashMap<_, _> = balances
            .iter()
            .enumerate()
            .map(|(at, balance)| (balance.account.id.as_uuid(), at))
            .collect();
        let transfers = Sql::new(format!(
            "SELECT t.debit_account_id, t.credit_account_id, {}{TRANSFER_FROM}
             WHERE t.tenant_id = $1 AND t.state <> 'voided'",
            transfer_columns::<Self>()
        ))
        .arg(scope.tenant_id().as_uuid());
        let overflow = || Error::internal("summing ledger balances", "a balance overflows u128");
        for row in store
            .fetch_all(transfers, "reading ledger transfers")
            .await?
        {
            let transfer = read_transfer::<Self>(&row)?;
            let r = Cols::<Self>::new(&row);
            let posted = transfer.state == TransferState::Posted;
            if let Some(debit) = at.get(&r.uuid("debit_account_id")?) {
                let debit = &mut balances[*debit];
                let side = if posted {
                    &mut debit.debits_posted
                } else {
                    &mut debit.debits_pending
                };
                *side = side.checked_add(transfer.amount).ok_or_else(overflow)?;
            }
            if let Some(credit) = at.get(&r.uuid("credit_account_id")?) {
                let credit = &mut balances[*credit];
                let side = if posted {
                    &mut credit.credits_posted
                } else {
                    &mut credit.credits_pending
                };
                *side = side.checked_add(transfer.amount).ok_or_else(overflow)?;
            }
        }
        Ok(balances)
    }
}
