//! Escrowed payments (x402 `auth-capture`): what each holds, its operations, and the merchant's
//! commands on it (capture all or part, void, refund all or part).

use std::sync::Arc;

use async_graphql::connection::Connection;
use async_graphql::{Context, ID, Object};
use purser_domain::auth::Access;
use purser_domain::escrow::{EscrowCommand, EscrowDesk};
use purser_domain::settlement::{self, SettlementKind, SettlementStatus};
use purser_domain::{Error, ErrorCode};

use crate::context::{scope, store};
use crate::error::GqlResult;
use crate::pagination::{IdCursor, RelayArgs, connection};
use crate::payments::{Amount, Settlement};

fn desk<'a>(ctx: &Context<'a>) -> GqlResult<&'a Arc<dyn EscrowDesk>> {
    ctx.data_opt::<Arc<dyn EscrowDesk>>().ok_or_else(|| {
        Error::new(
            ErrorCode::Unavailable,
            "escrowed payments are not served by this instance",
        )
        .into()
    })
}

/// A payment held in the escrow: its authorization and everything done with it since.
pub struct EscrowPayment(pub settlement::Settlement);

impl EscrowPayment {
    fn hash(&self) -> &str {
        self.0.escrow.as_ref().map_or("", |e| e.payment.as_str())
    }

    fn deadline(&self, field: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        let requirements: serde_json::Value = serde_json::from_str(&self.0.requirements).ok()?;
        let seconds = requirements["extra"][field].as_i64()?;
        chrono::DateTime::from_timestamp(seconds, 0)
    }

    async fn confirmed_sum(&self, ctx: &Context<'_>, kind: SettlementKind) -> GqlResult<Amount> {
        let scope = purser_domain::auth::TenantScope::trusted(self.0.tenant_id);
        let operations = store(ctx).escrow_operations(scope, self.hash()).await?;
        let sum = operations
            .iter()
            .filter(|op| op.kind == kind && op.status == SettlementStatus::Confirmed)
            .try_fold(purser_domain::money::Amount::ZERO, |sum, op| {
                sum.checked_add(op.amount)
            })
            .ok_or_else(|| Error::internal("summing escrow operations", "overflow"))?;
        Ok(Amount(sum))
    }
}

/// What the escrow holds of a payment, read from the chain.
#[derive(async_graphql::SimpleObject)]
pub struct EscrowBalances {
    /// Held, and capturable until the capture deadline.
    pub capturable: Amount,
    /// Captured and not refunded, refundable until the refund deadline.
    pub refundable: Amount,
}

#[Object]
impl EscrowPayment {
    /// The escrow's key for the payment: `getHash(paymentInfo)`.
    async fn payment(&self) -> &str {
        self.hash()
    }

    /// The `authorize` (or `charge`) that collected it.
    async fn authorization(&self) -> Settlement {
        Settlement(self.0.clone())
    }

    async fn network(&self) -> &str {
        &self.0.key.network
    }

    async fn asset(&self) -> &str {
        &self.0.key.asset
    }

    async fn payer(&self) -> &str {
        &self.0.key.payer
    }

    /// Where captures go.
    async fn receiver(&self) -> &str {
        &self.0.pay_to
    }

    /// What was authorized (held at first).
    async fn amount(&self) -> Amount {
        Amount(self.0.amount)
    }

    /// Until when it may be captured; after it, the payer may reclaim what is held.
    async fn capture_deadline(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.deadline("captureDeadline")
    }

    /// Until when captured funds may be refunded.
    async fn refund_deadline(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.deadline("refundDeadline")
    }

    /// Captured so far (confirmed captures, or the charge, fees included).
    async fn captured(&self, ctx: &Context<'_>) -> GqlResult<Amount> {
        let captures = self
            .confirmed_sum(ctx, SettlementKind::EscrowCapture)
            .await?;
        let charged = self
            .confirmed_sum(ctx, SettlementKind::EscrowCharge)
            .await?;
        captures
            .0
            .checked_add(charged.0)
            .map(Amount)
            .ok_or_else(|| Error::internal("summing escrow operations", "overflow").into())
    }

    /// Refunded so far.
    async fn refunded(&self, ctx: &Context<'_>) -> GqlResult<Amount> {
        self.confirmed_sum(ctx, SettlementKind::EscrowRefund).await
    }

    /// Released back to the payer by a void.
    async fn voided(&self, ctx: &Context<'_>) -> GqlResult<Amount> {
        self.confirmed_sum(ctx, SettlementKind::EscrowVoid).await
    }

    /// Every operation on the payment, the authorization first, in the order they were
    /// claimed (refused ones included, with their reasons).
    async fn operations(&self, ctx: &Context<'_>) -> GqlResult<Vec<Settlement>> {
        let scope = purser_domain::auth::TenantScope::trusted(self.0.tenant_id);
        Ok(store(ctx)
            .escrow_operations(scope, self.hash())
            .await?
            .into_iter()
            .map(Settlement)
            .collect())
    }

    /// What the escrow holds now, from the chain.
    async fn balances(&self, ctx: &Context<'_>) -> GqlResult<EscrowBalances> {
        let scope = purser_domain::auth::TenantScope::trusted(self.0.tenant_id);
        let balances = desk(ctx)?.balances(scope, self.hash()).await?;
        Ok(EscrowBalances {
            capturable: Amount(balances.capturable),
            refundable: Amount(balances.refundable),
        })
    }
}

#[derive(Default)]
pub struct EscrowQuery;

#[Object]
impl EscrowQuery {
    /// The tenant's escrowed payments, oldest first.
    async fn escrow_payments(
        &self,
        ctx: &Context<'_>,
        tenant_id: Option<ID>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> GqlResult<Connection<IdCursor, EscrowPayment>> {
        let scope = scope(ctx, tenant_id.as_ref(), Access::Read).await?;
        let request = RelayArgs {
            first,
            after,
            last,
            before,
        }
        .page_request()?;
        let page = store(ctx).list_escrow_payments(scope, request).await?;
        Ok(connection(&request, page.map(EscrowPayment), |p| {
            p.0.id.as_uuid()
        }))
    }

    /// One escrowed payment of the tenant, by the escrow's key for it.
    async fn escrow_payment(
        &self,
        ctx: &Context<'_>,
        tenant_id: Option<ID>,
        payment: String,
    ) -> GqlResult<EscrowPayment> {
        let scope = scope(ctx, tenant_id.as_ref(), Access::Read).await?;
        store(ctx)
            .escrow_operations(scope, &payment)
            .await?
            .into_iter()
            .find(|op| {
                matches!(
                    op.kind,
                    SettlementKind::EscrowAuthorize | SettlementKind::EscrowCharge
                )
            })
            .map(EscrowPayment)
            .ok_or_else(|| Error::not_found("escrowed payment").into())
    }
}

#[derive(Default)]
pub struct EscrowMutation;

impl EscrowMutation {
    async fn run(
        ctx: &Context<'_>,
        tenant_id: Option<&ID>,
        payment: &str,
        command: EscrowCommand,
    ) -> GqlResult<Settlement> {
        let scope = scope(ctx, tenant_id, Access::Write).await?;
        let operation = desk(ctx)?.command(scope, payment, command).await?;
        Ok(Settlement(operation))
    }
}

#[Object]
impl EscrowMutation {
    /// Captures `amount` of what the payment holds (all of it when omitted) for the merchant,
    /// less the fee. Captures may repeat until nothing is held or the capture deadline passes.
    /// Answers the capture's settlement (`PENDING` while its receipt is awaited).
    async fn capture_escrow_payment(
        &self,
        ctx: &Context<'_>,
        tenant_id: Option<ID>,
        payment: String,
        amount: Option<Amount>,
    ) -> GqlResult<Settlement> {
        let amount = amount.map(|a| a.0);
        Self::run(
            ctx,
            tenant_id.as_ref(),
            &payment,
            EscrowCommand::Capture { amount },
        )
        .await
    }

    /// Returns everything the payment still holds to the payer.
    async fn void_escrow_payment(
        &self,
        ctx: &Context<'_>,
        tenant_id: Option<ID>,
        payment: String,
    ) -> GqlResult<Settlement> {
        Self::run(ctx, tenant_id.as_ref(), &payment, EscrowCommand::Void).await
    }

    /// Returns `amount` of what was captured (all of it when omitted) to the payer, within the
    /// refund window. The operator advances the refund; the ledger records what the merchant
    /// owes it (`REFUND_ADVANCES`).
    async fn refund_escrow_payment(
        &self,
        ctx: &Context<'_>,
        tenant_id: Option<ID>,
        payment: String,
        amount: Option<Amount>,
    ) -> GqlResult<Settlement> {
        let amount = amount.map(|a| a.0);
        Self::run(
            ctx,
            tenant_id.as_ref(),
            &payment,
            EscrowCommand::Refund { amount },
        )
        .await
    }
}
