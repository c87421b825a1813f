//! Entitlement: the grants of repeat access wallets hold, listed and revoked by their tenant.

use async_graphql::connection::Connection;
use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};
use purser_domain::auth::Access;
use purser_domain::coord::Invalidation;
use purser_domain::entitlement::{self, GrantFilter, GrantScope};
use purser_domain::id::GrantId;
use purser_domain::{Error, time};

use crate::context::{invalidator, parse_id, parse_optional_id, principal, scope, store};
use crate::error::GqlResult;
use crate::pagination::{IdCursor, RelayArgs, connection};

/// What a wallet may use again without paying again: one resource, or every resource of a
/// group, until it expires, its uses run out, or it is revoked.
pub struct Grant(pub entitlement::Grant);

#[Object]
impl Grant {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn tenant_id(&self) -> ID {
        ID(self.0.tenant_id.to_string())
    }

    /// The resource it covers; null for a group grant.
    async fn resource_id(&self) -> Option<ID> {
        match &self.0.scope {
            GrantScope::Resource(id) => Some(ID(id.to_string())),
            GrantScope::Group(_) => None,
        }
    }

    /// The group whose resources it covers; null for a resource grant.
    async fn group(&self) -> Option<&str> {
        match &self.0.scope {
            GrantScope::Resource(_) => None,
            GrantScope::Group(group) => Some(group),
        }
    }

    /// The wallet, lower-case hex.
    async fn wallet(&self) -> &str {
        &self.0.wallet
    }

    /// The payment that bought it.
    async fn settlement_id(&self) -> Option<ID> {
        self.0.settlement_id.map(|id| ID(id.to_string()))
    }

    /// Null: without end.
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }

    /// How many requests it admits; null: any number.
    async fn uses_allowed(&self) -> Option<u32> {
        self.0.uses_allowed
    }

    /// How many it has admitted.
    async fn uses_count(&self) -> u32 {
        self.0.uses_count
    }

    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// Whether it admits a request now.
    async fn active(&self) -> bool {
        self.0.holds_at(time::now())
    }
}

/// Entitlement reads.
#[derive(Default)]
pub struct GrantsQuery;

#[Object]
impl GrantsQuery {
    /// A tenant's grants, newest first: `after` pages towards older ones. Filters: one wallet
    /// (any letter case), grants for one resource (group grants aside), and only those that
    /// admit a request now.
    #[graphql(
        complexity = "first.or(last).unwrap_or(20).clamp(1, 100) as usize * child_complexity"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn grants(
        &self,
        ctx: &Context<'_>,
        tenant_id: Option<ID>,
        wallet: Option<String>,
        resource_id: Option<ID>,
        #[graphql(default)] active_only: bool,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> GqlResult<Connection<IdCursor, Grant>> {
        let scope = scope(ctx, tenant_id.as_ref(), Access::Read).await?;
        let request = RelayArgs {
            first,
            after,
            last,
            before,
        }
        .page_request()?;
        let filter = GrantFilter {
            wallet: wallet.map(|w| w.trim().to_ascii_lowercase()),
            resource_id: parse_optional_id(resource_id.as_ref())?,
            active_only,
        };
        let page = store(ctx)
            .list_grants(scope, filter, time::now(), request)
            .await?;
        Ok(connection(&request, page.map(Grant), |g| g.0.id.as_uuid()))
    }
}

/// Entitlement changes. Tenant administrators change their own tenant; operators name it.
#[derive(Default)]
pub struct GrantsMutation;

#[Object]
impl GrantsMutation {
    /// Revokes a grant at once; revoking a revoked grant answers it unchanged.
    async fn revoke_grant(
        &self,
        ctx: &Context<'_>,
        id: ID,
        tenant_id: Option<ID>,
    ) -> GqlResult<Grant> {
        let principal = principal(ctx)?;
        let scope = scope(ctx, tenant_id.as_ref(), Access::Write).await?;
        let revoked = store(ctx)
            .revoke_grant(scope, parse_id(&id)?, time::now())
            .await?
            .ok_or_else(|| Error::not_found(GrantId::WHAT))?;
        invalidator(ctx)
            .announce(&Invalidation::Grants {
                tenant: revoked.tenant_id,
                wallet: revoked.wallet.clone(),
            })
            .await;
        tracing::info!(grant_id = %revoked.id, by = %principal.key_id, "grant revoked");
        Ok(Grant(revoked))
    }
}
