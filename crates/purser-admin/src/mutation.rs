use async_graphql::{Context, Object};
use purser_domain::Error;
use purser_domain::auth::{Access, KeyOwner, mint_api_key};
use purser_domain::coord::Invalidation;
use purser_domain::tenant::{NewTenant, TenantName, TenantUpdate};

use crate::context::{invalidator, key_owner, parse_id, principal, store};
use crate::error::GqlResult;
use crate::escrow::EscrowMutation;
use crate::grants::GrantsMutation;
use crate::metering::MeteringMutation;
use crate::registry::RegistryMutation;
use crate::routing::RoutingMutation;
use crate::types::{
    ApiKey, CreateApiKeyInput, CreateTenantInput, CreatedApiKey, RevokeApiKeyInput, Tenant,
    UpdateTenantInput,
};

#[derive(Default)]
pub struct AdminMutation;

/// The root mutation: each area's fields, merged.
#[derive(async_graphql::MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(
    AdminMutation,
    EscrowMutation,
    RegistryMutation,
    GrantsMutation,
    MeteringMutation,
    RoutingMutation,
);

#[Object]
impl AdminMutation {
    /// Creates a tenant. Operators only.
    async fn create_tenant(
        &self,
        ctx: &Context<'_>,
        input: CreateTenantInput,
    ) -> GqlResult<Tenant> {
        principal(ctx)?.require_operator()?;
        let name = TenantName::parse(&input.name)?;
        let tenant = store(ctx)
            .create_tenant(NewTenant::new(name, input.kind.into()))
            .await?;
        Ok(Tenant(tenant))
    }

    /// Renames, suspends or reactivates a tenant. Operators only.
    async fn update_tenant(
        &self,
        ctx: &Context<'_>,
        input: UpdateTenantInput,
    ) -> GqlResult<Tenant> {
        principal(ctx)?.require_operator()?;
        let update = TenantUpdate {
            name: input.name.as_deref().map(TenantName::parse).transpose()?,
            status: input.status.map(Into::into),
        };
        let tenant = store(ctx)
            .update_tenant(parse_id(&input.id)?, update)
            .await?
            .ok_or_else(|| Error::not_found("tenant"))?;
        // Its keys stop (or start) working on every instance now, not when caches expire.
        invalidator(ctx)
            .announce(&Invalidation::Tenant(tenant.id))
            .await;
        Ok(Tenant(tenant))
    }

    /// Creates an API key and answers its secret, once.
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        input: CreateApiKeyInput,
    ) -> GqlResult<CreatedApiKey> {
        let principal = principal(ctx)?;
        let role = input.role.into();
        principal.may_grant(role)?;
        let owner = key_owner(ctx, input.tenant_id.as_ref(), Access::Write).await?;
        let tenant_id = match owner {
            KeyOwner::Platform => None,
            KeyOwner::Tenant(scope) => Some(scope.tenant_id()),
        };
        let (record, token) = mint_api_key(tenant_id, role, &input.name)?;
        let api_key = store(ctx).insert_api_key(record).await?;
        tracing::info!(key_id = %api_key.id, role = %api_key.role, by = %principal.key_id, "api key created");
        Ok(CreatedApiKey {
            api_key: ApiKey(api_key),
            secret: token.expose().to_owned(),
        })
    }

    /// Revokes an API key. Revoking a revoked key answers it unchanged.
    async fn revoke_api_key(
        &self,
        ctx: &Context<'_>,
        input: RevokeApiKeyInput,
    ) -> GqlResult<ApiKey> {
        let principal = principal(ctx)?;
        let owner = key_owner(ctx, input.tenant_id.as_ref(), Access::Write).await?;
        let revoked = store(ctx)
            .revoke_api_key(owner, parse_id(&input.id)?, purser_domain::time::now())
            .await?
            .ok_or_else(|| Error::not_found("api key"))?;
        invalidator(ctx)
            .announce(&Invalidation::ApiKey {
                prefix: revoked.prefix.clone(),
            })
            .await;
        tracing::info!(key_id = %revoked.id, by = %principal.key_id, "api key revoked");
        Ok(ApiKey(revoked))
    }
}
