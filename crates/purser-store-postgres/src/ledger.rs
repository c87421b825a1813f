//! Ledger accounts are keyed by one constraint whose NULLs are not distinct (a tenant-wide
//! account has no wallet); balances are summed in `numeric`, exactly, in one statement.

use purser_domain::Result;
use purser_domain::auth::TenantScope;
use purser_domain::id::LedgerAccountId;
use purser_domain::ledger::{AccountBalance, LedgerAccount};
use purser_store_sql::ledger::LedgerDialect;
use purser_store_sql::{Cols, Sql};

use crate::{PgDialect, PgStore};

impl LedgerDialect for PgDialect {
    fn account_key(_per_wallet: bool) -> &'static str {
        "ON CONSTRAINT ledger_accounts_key"
    }

    async fn account_balances(store: &PgStore, scope: TenantScope) -> Result<Vec<AccountBalance>> {
        let sql = Sql::new(
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
        .arg(scope.tenant_id().as_uuid());
        store
            .fetch_all(sql, "summing ledger balances")
            .await?
            .iter()
            .map(|row| {
                let r = Cols::<Self>::new(row);
                Ok(AccountBalance {
                    account: LedgerAccount {
                        id: LedgerAccountId::from_uuid(r.uuid("id")?),
                        tenant_id: scope.tenant_id(),
                        network: r.text("network")?,
                        asset: r.text("asset")?,
                        kind: r.parse("kind", "decoding an account")?,
                        wallet: r.opt_text("wallet")?,
                    },
                    debits_pending: r.amount("debits_pending")?,
                    credits_pending: r.amount("credits_pending")?,
                    debits_posted: r.amount("debits_posted")?,
                    credits_posted: r.amount("credits_posted")?,
                })
            })
            .collect()
    }
}
