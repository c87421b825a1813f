use async_graphql::connection::Connection;
use async_graphql::{Context, ID, Object};
use purser_domain::auth::{Access, Principal};
use purser_domain::id::TenantId;

use crate::context::{key_owner, parse_id, principal, scope, store};
use crate::error::{GqlError, GqlResult};
use crate::escrow::EscrowQuery;
use crate::grants::GrantsQuery;
use crate::metering::MeteringQuery;
use crate::pagination::{IdCursor, RelayArgs, connection};
use crate::payments::{LedgerBalance, Settlement};
use crate::registry::RegistryQuery;
use crate::routing::RoutingQuery;
use crate::types::{ApiKey, RoleGql, Tenant};

#[derive(Default)]
pub struct AdminQuery;

/// The root query: each area's fields, merged.
#[derive(async_graphql::MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(
    AdminQuery,
    PaymentsQuery,
    EscrowQuery,
    RegistryQuery,
    GrantsQuery,
    MeteringQuery,
    RoutingQuery,
);

#[Object]
impl AdminQuery {
    /// The key making this request.
    async fn viewer(&self, ctx: &Context<'_>) -> GqlResult<Viewer> {
        Ok(Viewer(principal(ctx)?))
    }

    /// One tenant. Tenant keys read their own (and may omit `id`); operators read any.
    async fn tenant(&self, ctx: &Context<'_>, id: Option<ID>) -> GqlResult<Tenant> {
        let scope = scope(ctx, id.as_ref(), Access::Read).await?;
        store(ctx)
            .get_tenant(scope.tenant_id())
            .await?
            .map(Tenant)
            .ok_or_else(|| purser_domain::Error::not_found("tenant").into())
    }

    /// Every tenant, in creation order. Operators only.
    // A connection costs its page size times its selection.
    #[graphql(
        complexity = "first.or(last).unwrap_or(20).clamp(1, 100) as usize * child_complexity"
    )]
    async fn tenants(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> GqlResult<Connection<IdCursor, Tenant>> {
        principal(ctx)?.require_operator()?;
        let request = RelayArgs {
            first,
            after,
            last,
            before,
        }
        .page_request()?;
        let page = store(ctx).list_tenants(request).await?;
        Ok(connection(&request, page.map(Tenant), |t| t.0.id.as_uuid()))
    }

    /// API keys, in creation order. Tenant keys list their own tenant's; operators name a
    /// tenant, or omit `tenantId` for operator keys.
    // A connection costs its page size times its selection.
    #[graphql(
        complexity = "first.or(last).unwrap_or(20).clamp(1, 100) as usize * child_complexity"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn api_keys(
        &self,
        ctx: &Context<'_>,
        tenant_id: Option<ID>,
        #[graphql(default)] include_revoked: bool,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> GqlResult<Connection<IdCursor, ApiKey>> {
        let owner = key_owner(ctx, tenant_id.as_ref(), Access::Read).await?;
        let request = RelayArgs {
            first,
            after,
            last,
            before,
        }
        .page_request()?;
        let page = store(ctx)
            .list_api_keys(owner, include_revoked, request)
            .await?;
        Ok(connection(&request, page.map(ApiKey), |k| k.0.id.as_uuid()))
    }
}

#[Object]
impl PaymentsQuery {
    /// Settlements of a tenant, in creation order. Tenant keys read their own; operators name
    /// the tenant.
    #[graphql(
        complexity = "first.or(last).unwrap_or(20).clamp(1, 100) as usize * child_complexity"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn settlements(
        &self,
        ctx: &Context<'_>,
        tenant_id: Option<ID>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> GqlResult<Connection<IdCursor, Settlement>> {
        let scope = scope(ctx, tenant_id.as_ref(), Access::Read).await?;
        let request = RelayArgs {
            first,
            after,
            last,
            before,
        }
        .page_request()?;
        let page = store(ctx).list_settlements(scope, request).await?;
        Ok(connection(&request, page.map(Settlement), |s| {
            s.0.id.as_uuid()
        }))
    }

    /// What the tenant's settlements cost in gas, per UTC day and chain, for outcomes recorded
    /// in `[from, to)` (at most 93 days): each mined transaction's cost from its receipt, and the
    /// settlement router's estimates beside what those settlements cost.
    async fn network_costs(
        &self,
        ctx: &Context<'_>,
        tenant_id: Option<ID>,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> GqlResult<Vec<crate::payments::NetworkCostDay>> {
        let scope = scope(ctx, tenant_id.as_ref(), Access::Read).await?;
        let days = store(ctx).network_costs(scope, from, to).await?;
        Ok(days
            .into_iter()
            .map(|d| crate::payments::NetworkCostDay {
                day: d.day.to_string(),
                network: d.network,
                settlements: i32::try_from(d.settlements).unwrap_or(i32::MAX),
                total: d.total.to_string(),
                estimated: d.estimated.to_string(),
                estimated_actual: d.estimated_actual.to_string(),
            })
            .collect())
    }

    /// One settlement of a tenant.
    async fn settlement(
        &self,
        ctx: &Context<'_>,
        id: ID,
        tenant_id: Option<ID>,
    ) -> GqlResult<Settlement> {
        let scope = scope(ctx, tenant_id.as_ref(), Access::Read).await?;
        store(ctx)
            .find_settlement(scope, parse_id(&id)?)
            .await?
            .map(Settlement)
            .ok_or_else(|| purser_domain::Error::not_found("settlement").into())
    }

    /// A tenant's ledger accounts with their sums.
    async fn ledger_balances(
        &self,
        ctx: &Context<'_>,
        tenant_id: Option<ID>,
    ) -> GqlResult<Vec<LedgerBalance>> {
        let scope = scope(ctx, tenant_id.as_ref(), Access::Read).await?;
        let balances = store(ctx).account_balances(scope).await?;
        Ok(balances.into_iter().map(LedgerBalance::from).collect())
    }
}

/// Payments: settlements and the ledger.
#[derive(Default)]
pub struct PaymentsQuery;

/// The key making the request.
pub struct Viewer(Principal);

#[Object]
impl Viewer {
    async fn key_id(&self) -> ID {
        ID(self.0.key_id.to_string())
    }

    async fn role(&self) -> RoleGql {
        self.0.role.into()
    }

    /// The key's tenant; null for operator keys.
    async fn tenant(&self, ctx: &Context<'_>) -> GqlResult<Option<Tenant>> {
        let Some(tenant_id) = self.0.tenant_id else {
            return Ok(None);
        };
        let tenant = store(ctx).get_tenant(tenant_id).await?;
        tenant
            .map(Tenant)
            .map(Some)
            .ok_or_else(|| GqlError::from(purser_domain::Error::not_found(TenantId::WHAT)))
    }
}
