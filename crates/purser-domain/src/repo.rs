//! Repository traits: what the services need from storage, with no SQL in sight. Both storage
//! crates implement them and pass one behaviour suite (`purser-testkit`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::auth::{ApiKey, KeyOwner, NewApiKey, StoredApiKey};
use crate::error::Result;
use crate::id::{ApiKeyId, TenantId};
use crate::page::{Page, PageRequest};
use crate::tenant::{NewTenant, Tenant, TenantUpdate};

#[async_trait]
pub trait TenantRepository: Send + Sync {
    /// Creates a tenant; `tenant_name_taken` when the name (ignoring case) is in use.
    async fn create_tenant(&self, tenant: NewTenant) -> Result<Tenant>;

    async fn get_tenant(&self, id: TenantId) -> Result<Option<Tenant>>;

    /// Every tenant, by creation order. For operators only: callers check the role.
    async fn list_tenants(&self, page: PageRequest) -> Result<Page<Tenant>>;

    /// Applies `update`; `None` when there is no such tenant.
    async fn update_tenant(&self, id: TenantId, update: TenantUpdate) -> Result<Option<Tenant>>;
}

#[async_trait]
pub trait ApiKeyRepository: Send + Sync {
    async fn insert_api_key(&self, key: NewApiKey) -> Result<ApiKey>;

    /// The key with this public prefix, for authentication. Not scoped: the caller has no
    /// principal yet, and proves ownership by the secret's hash.
    async fn find_api_key_by_prefix(&self, prefix: &str) -> Result<Option<StoredApiKey>>;

    async fn get_api_key(&self, owner: KeyOwner, id: ApiKeyId) -> Result<Option<ApiKey>>;

    async fn list_api_keys(
        &self,
        owner: KeyOwner,
        include_revoked: bool,
        page: PageRequest,
    ) -> Result<Page<ApiKey>>;

    /// Revokes the key if `owner` owns it. Revoking twice keeps the first time. `None` when
    /// the owner has no such key.
    async fn revoke_api_key(
        &self,
        owner: KeyOwner,
        id: ApiKeyId,
        at: DateTime<Utc>,
    ) -> Result<Option<ApiKey>>;

    /// Records a use at `at`, unless one was already recorded after `unless_after`.
    async fn touch_api_key(
        &self,
        id: ApiKeyId,
        at: DateTime<Utc>,
        unless_after: DateTime<Utc>,
    ) -> Result<()>;
}

#[async_trait]
pub trait StoreHealth: Send + Sync {
    /// A round trip to the database.
    async fn ping(&self) -> Result<()>;

    /// Which backend this is, for logs and readiness output (`postgres`, `sqlite`).
    fn backend(&self) -> &'static str;
}

/// Everything the platform keeps in its database.
pub trait Store: TenantRepository + ApiKeyRepository + StoreHealth {}

impl<T: TenantRepository + ApiKeyRepository + StoreHealth> Store for T {}
