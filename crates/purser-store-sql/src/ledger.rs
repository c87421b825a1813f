//! The ledger's tables. Postings are written only by settlement transitions and credit
//! operations (`credits`), inside their transaction; balances are sums over transfers (the
//! credit balance rows are kept equal to them in the same transactions).

use std::fmt::{self, Display};
use std::future::Future;

use async_trait::async_trait;
use purser_domain::auth::TenantScope;
use purser_domain::id::{LedgerAccountId, SettlementId, TenantId, TransferId};
use purser_domain::ledger::{AccountBalance, AccountKind, Transfer, TransferCode, TransferState};
use purser_domain::money::Amount;
use purser_domain::repo::LedgerRepository;
use purser_domain::settlement::{Settlement, SettlementKind};
use purser_domain::{Error, Result};
use uuid::Uuid;

use crate::{Cols, Conn, Dialect, Row, Sql, SqlStore};

/// How a backend keys ledger accounts and sums balances.
pub trait LedgerDialect: Dialect {
    /// The `ON CONFLICT` target of an account's key (tenant, chain, asset, kind, and the wallet
    /// of a per-wallet account): PostgreSQL has one key whose NULLs are not distinct, SQLite a
    /// partial unique index for each kind of account.
    fn account_key(per_wallet: bool) -> &'static str;

    /// Every account of the tenant with its pending and posted sums, ordered by chain, asset,
    /// kind and wallet (tenant-wide first). Exact in `u128`, which is where backends differ:
    /// PostgreSQL sums `numeric` in SQL, SQLite (whose integers stop at 2^63) in Rust.
    fn account_balances(
        store: &SqlStore<Self>,
        scope: TenantScope,
    ) -> impl Future<Output = Result<Vec<AccountBalance>>> + Send;
}

/// The account of `kind` for the tenant, chain and asset (and `wallet`, for a per-wallet kind),
/// created on first use, in the caller's transaction.
pub async fn ledger_account<D: LedgerDialect>(
    conn: &mut Conn<D>,
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
    Sql::<D>::new(format!(
        "INSERT INTO ledger_accounts (id, tenant_id, network, asset, kind, wallet, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT {} DO NOTHING",
        D::account_key(wallet.is_some())
    ))
    .arg(LedgerAccountId::new().as_uuid())
    .arg(tenant_id.as_uuid())
    .arg(network)
    .arg(asset)
    .arg(kind.as_str())
    .arg(wallet)
    .arg(purser_domain::time::now())
    .execute(&mut *conn, "opening a ledger account")
    .await?;
    let row = Sql::<D>::new(format!(
        "SELECT id FROM ledger_accounts WHERE tenant_id = $1 AND network = $2 AND asset = $3
             AND kind = $4 AND wallet {} $5",
        D::IS_NOT_DISTINCT_FROM
    ))
    .arg(tenant_id.as_uuid())
    .arg(network)
    .arg(asset)
    .arg(kind.as_str())
    .arg(wallet)
    .fetch_one(conn, "reading a ledger account")
    .await?;
    Cols::<D>::new(&row).uuid("id")
}

/// The settlement's own transfer: between which accounts its transaction moves value, and how
/// much (see the tables in [`purser_domain::ledger`]).
fn settlement_leg(settlement: &Settlement) -> (AccountKind, AccountKind, Amount) {
    let fee = settlement
        .escrow
        .as_ref()
        .map_or(Amount::ZERO, |escrow| escrow.fee);
    match settlement.kind {
        SettlementKind::Exact => (
            AccountKind::PayerClearing,
            AccountKind::SettlementInFlight,
            settlement.amount,
        ),
        SettlementKind::EscrowAuthorize => (
            AccountKind::PayerClearing,
            AccountKind::EscrowHeld,
            settlement.amount,
        ),
        SettlementKind::EscrowCharge => (
            AccountKind::PayerClearing,
            AccountKind::MerchantReceivable,
            settlement.amount.checked_sub(fee).unwrap_or(Amount::ZERO),
        ),
        SettlementKind::EscrowCapture => (
            AccountKind::EscrowHeld,
            AccountKind::MerchantReceivable,
            // The store refuses a fee above the amount.
            settlement.amount.checked_sub(fee).unwrap_or(Amount::ZERO),
        ),
        SettlementKind::EscrowVoid => (
            AccountKind::EscrowHeld,
            AccountKind::PayerReturned,
            settlement.amount,
        ),
        SettlementKind::EscrowRefund => (
            AccountKind::RefundAdvances,
            AccountKind::PayerReturned,
            settlement.amount,
        ),
    }
}

/// A transfer for `settlement` of `amount` of `asset` on its chain, between tenant-wide
/// accounts, once per settlement and code. Nothing for a zero amount.
async fn insert_transfer_of<D: LedgerDialect>(
    conn: &mut Conn<D>,
    settlement: &Settlement,
    asset: &str,
    amount: Amount,
    code: TransferCode,
    (debit, credit): (AccountKind, AccountKind),
    state: TransferState,
) -> Result<()> {
    if amount.is_zero() {
        return Ok(());
    }
    let network = &settlement.key.network;
    let debit =
        ledger_account::<D>(conn, settlement.tenant_id, network, asset, debit, None).await?;
    let credit =
        ledger_account::<D>(conn, settlement.tenant_id, network, asset, credit, None).await?;
    let now = purser_domain::time::now();
    Sql::<D>::new(format!(
        "INSERT INTO ledger_transfers (id, tenant_id, network, asset, debit_account_id,
             credit_account_id, amount, state, code, settlement_id, created_at, resolved_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7{}, $8, $9, $10, $11, $12)
         ON CONFLICT (settlement_id, code) DO NOTHING",
        D::AS_NUMERIC
    ))
    .arg(TransferId::new().as_uuid())
    .arg(settlement.tenant_id.as_uuid())
    .arg(network)
    .arg(asset)
    .arg(debit)
    .arg(credit)
    .arg(amount)
    .arg(state.as_str())
    .arg(code.as_str())
    .arg(settlement.id.as_uuid())
    .arg(now)
    .arg((state != TransferState::Pending).then_some(now))
    .execute(conn, "writing a ledger transfer")
    .await?;
    Ok(())
}

/// On submission: the settlement's own transfer, pending.
pub async fn open_settlement_transfer<D: LedgerDialect>(
    conn: &mut Conn<D>,
    settlement: &Settlement,
) -> Result<()> {
    let (debit, credit, amount) = settlement_leg(settlement);
    insert_transfer_of::<D>(
        conn,
        settlement,
        &settlement.key.asset,
        amount,
        TransferCode::Settlement,
        (debit, credit),
        TransferState::Pending,
    )
    .await
}

async fn resolve_settlement_transfer<D: Dialect>(
    conn: &mut Conn<D>,
    settlement: &Settlement,
    state: TransferState,
) -> Result<()> {
    if settlement_leg(settlement).2.is_zero() {
        return Ok(());
    }
    let resolved = Sql::<D>::new(
        "UPDATE ledger_transfers SET state = $2, resolved_at = $3
         WHERE settlement_id = $1 AND code = 'settlement' AND state = 'pending'",
    )
    .arg(settlement.id.as_uuid())
    .arg(state.as_str())
    .arg(purser_domain::time::now())
    .execute(conn, "resolving a ledger transfer")
    .await?;
    if resolved != 1 {
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

/// On confirmation: post the settlement transfer, and what follows from it: the payout to the
/// merchant of an `exact` settlement, the fee of an escrow charge or capture.
pub async fn post_settlement<D: LedgerDialect>(
    conn: &mut Conn<D>,
    settlement: &Settlement,
) -> Result<()> {
    resolve_settlement_transfer::<D>(conn, settlement, TransferState::Posted).await?;
    let (code, accounts, amount) = match (settlement.kind, &settlement.escrow) {
        (SettlementKind::Exact, _) => (
            TransferCode::Payout,
            (
                AccountKind::SettlementInFlight,
                AccountKind::MerchantReceivable,
            ),
            settlement.amount,
        ),
        (SettlementKind::EscrowCapture, Some(escrow)) => (
            TransferCode::EscrowFee,
            (AccountKind::EscrowHeld, AccountKind::Fees),
            escrow.fee,
        ),
        (SettlementKind::EscrowCharge, Some(escrow)) => (
            TransferCode::EscrowFee,
            (AccountKind::PayerClearing, AccountKind::Fees),
            escrow.fee,
        ),
        _ => return Ok(()),
    };
    insert_transfer_of::<D>(
        conn,
        settlement,
        &settlement.key.asset,
        amount,
        code,
        accounts,
        TransferState::Posted,
    )
    .await
}

/// Whether the settlement has a transfer with this code.
pub async fn has_transfer<D: Dialect>(
    conn: &mut Conn<D>,
    settlement: SettlementId,
    code: &str,
) -> Result<bool> {
    let row = Sql::<D>::new(
        "SELECT COUNT(*) AS n FROM ledger_transfers WHERE settlement_id = $1 AND code = $2",
    )
    .arg(settlement.as_uuid())
    .arg(code)
    .fetch_one(conn, "reading a ledger transfer")
    .await?;
    Ok(Cols::<D>::new(&row).i64("n")? > 0)
}

/// A hold the payer reclaimed itself (seen on chain after the authorization expired): escrow
/// held to payer returned, on the authorization's settlement, once.
pub async fn post_escrow_reclaim<D: LedgerDialect>(
    conn: &mut Conn<D>,
    authorization: &Settlement,
    amount: Amount,
) -> Result<()> {
    insert_transfer_of::<D>(
        conn,
        authorization,
        &authorization.key.asset,
        amount,
        TransferCode::EscrowReclaim,
        (AccountKind::EscrowHeld, AccountKind::PayerReturned),
        TransferState::Posted,
    )
    .await
}

/// Once a settlement's transaction is mined (confirmed or failed): what it cost in gas, from the
/// signer's gas to the tenant's network fees, in the chain's gas token. Nothing when no cost was
/// recorded.
pub async fn post_network_fee<D: LedgerDialect>(
    conn: &mut Conn<D>,
    settlement: &Settlement,
) -> Result<()> {
    let Some(cost) = settlement.network_cost else {
        return Ok(());
    };
    insert_transfer_of::<D>(
        conn,
        settlement,
        purser_domain::settlement::NATIVE_ASSET,
        cost.total,
        TransferCode::NetworkFee,
        (AccountKind::NetworkFees, AccountKind::SignerGas),
        TransferState::Posted,
    )
    .await
}

/// On failure after broadcast: void the settlement transfer.
pub async fn void_settlement<D: Dialect>(
    conn: &mut Conn<D>,
    settlement: &Settlement,
) -> Result<()> {
    resolve_settlement_transfer::<D>(conn, settlement, TransferState::Voided).await
}

/// The columns [`transfer`] reads, from `ledger_transfers t` joined with its two accounts
/// (`d`, `c`) as [`TRANSFER_FROM`] does.
pub fn transfer_columns<D: Dialect>() -> impl Display {
    fmt::from_fn(|f| {
        write!(
            f,
            "t.id, t.tenant_id, t.network, t.asset, d.kind AS debit_kind, c.kind AS credit_kind, \
             t.amount{} AS amount, t.state, t.code, t.settlement_id, t.created_at, t.resolved_at",
            D::AS_TEXT
        )
    })
}

pub const TRANSFER_FROM: &str = " FROM ledger_transfers t \
     JOIN ledger_accounts d ON d.id = t.debit_account_id \
     JOIN ledger_accounts c ON c.id = t.credit_account_id";

pub fn read_transfer<D: Dialect>(row: &Row<D>) -> Result<Transfer> {
    let r = Cols::<D>::new(row);
    let what = "decoding a ledger transfer";
    Ok(Transfer {
        id: TransferId::from_uuid(r.uuid("id")?),
        tenant_id: TenantId::from_uuid(r.uuid("tenant_id")?),
        network: r.text("network")?,
        asset: r.text("asset")?,
        debit: r.parse("debit_kind", what)?,
        credit: r.parse("credit_kind", what)?,
        amount: r.amount("amount")?,
        state: r.parse("state", what)?,
        code: r.parse("code", what)?,
        settlement_id: r.opt_uuid("settlement_id")?.map(SettlementId::from_uuid),
        created_at: r.time("created_at")?,
        resolved_at: r.opt_time("resolved_at")?,
    })
}

#[async_trait]
impl<D: LedgerDialect> LedgerRepository for SqlStore<D> {
    async fn transfers_for_settlement(
        &self,
        scope: TenantScope,
        id: SettlementId,
    ) -> Result<Vec<Transfer>> {
        let sql = Sql::new(format!(
            "SELECT {}{TRANSFER_FROM}
             WHERE t.tenant_id = $1 AND t.settlement_id = $2
             ORDER BY t.created_at, t.id",
            transfer_columns::<D>()
        ))
        .arg(scope.tenant_id().as_uuid())
        .arg(id.as_uuid());
        self.fetch_all(sql, "reading ledger transfers")
            .await?
            .iter()
            .map(read_transfer::<D>)
            .collect()
    }

    async fn account_balances(&self, scope: TenantScope) -> Result<Vec<AccountBalance>> {
        D::account_balances(self, scope).await
    }
}
