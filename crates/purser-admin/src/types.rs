//! GraphQL views of domain objects.

use async_graphql::{Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use purser_domain::{auth, tenant};

/// What a key may do.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "Role", remote = "purser_domain::auth::Role")]
pub enum RoleGql {
    /// Platform operators: every tenant, every operation.
    Operator,
    /// Read and change their own tenant.
    TenantAdmin,
    /// Read their own tenant.
    TenantRead,
    /// Verify and settle payments for their own tenant.
    ResourceServer,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "TenantKind", remote = "purser_domain::tenant::TenantKind")]
pub enum TenantKindGql {
    Merchant,
    BusinessUnit,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "TenantStatus", remote = "purser_domain::tenant::TenantStatus")]
pub enum TenantStatusGql {
    /// The tenant's keys work.
    Active,
    /// The tenant's keys are refused.
    Suspended,
}

/// A merchant or internal business unit.
pub struct Tenant(pub tenant::Tenant);

#[Object]
impl Tenant {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn kind(&self) -> TenantKindGql {
        self.0.kind.into()
    }

    async fn status(&self) -> TenantStatusGql {
        self.0.status.into()
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// An API key. Its secret is shown once, when it is created, and never again.
pub struct ApiKey(pub auth::ApiKey);

#[Object]
impl ApiKey {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The key's tenant; null for operator keys.
    async fn tenant_id(&self) -> Option<ID> {
        self.0.tenant_id.map(|t| ID(t.to_string()))
    }

    async fn role(&self) -> RoleGql {
        self.0.role.into()
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    /// The public start of the key (`psk_…`), enough to recognise it, useless to use it.
    async fn prefix(&self) -> &str {
        &self.0.prefix
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When the key was last used, to within a minute.
    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_used_at
    }

    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
}

/// A freshly created key and its secret. Store the secret now: it is not shown again.
#[derive(SimpleObject)]
pub struct CreatedApiKey {
    pub api_key: ApiKey,
    /// The full key, for `Authorization: Bearer <secret>`.
    pub secret: String,
}

#[derive(InputObject)]
pub struct CreateTenantInput {
    /// 1 to 100 characters, unique ignoring case.
    pub name: String,
    #[graphql(default_with = "TenantKindGql::Merchant")]
    pub kind: TenantKindGql,
}

#[derive(InputObject)]
pub struct UpdateTenantInput {
    pub id: ID,
    pub name: Option<String>,
    pub status: Option<TenantStatusGql>,
}

#[derive(InputObject)]
pub struct CreateApiKeyInput {
    /// The key's tenant. Tenant keys may omit it (their own tenant); operators name it, or
    /// omit it to create an operator key.
    pub tenant_id: Option<ID>,
    pub role: RoleGql,
    /// A label to recognise the key by, up to 100 characters.
    #[graphql(default)]
    pub name: String,
}

#[derive(InputObject)]
pub struct RevokeApiKeyInput {
    pub id: ID,
    /// The key's tenant, for operators revoking a tenant's key; omitted for operator keys and
    /// by tenant keys.
    pub tenant_id: Option<ID>,
}
