//! API keys, stored by the hash of their secret.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use purser_domain::Result;
use purser_domain::auth::{ApiKey, KeyOwner, NewApiKey, StoredApiKey};
use purser_domain::id::{ApiKeyId, TenantId};
use purser_domain::page::{Page, PageRequest};
use purser_domain::repo::ApiKeyRepository;

use crate::{Cols, Dialect, Row, Sql, SqlStore, push_page};

const KEY_COLUMNS: &str = "id, tenant_id, role, name, prefix, created_at, last_used_at, revoked_at";

fn read_api_key<D: Dialect>(row: &Row<D>) -> Result<ApiKey> {
    let r = Cols::<D>::new(row);
    Ok(ApiKey {
        id: ApiKeyId::from_uuid(r.uuid("id")?),
        tenant_id: r.opt_uuid("tenant_id")?.map(TenantId::from_uuid),
        role: r.parse("role", "decoding an api key row")?,
        name: r.text("name")?,
        prefix: r.text("prefix")?,
        created_at: r.time("created_at")?,
        last_used_at: r.opt_time("last_used_at")?,
        revoked_at: r.opt_time("revoked_at")?,
    })
}

/// Appends the owner condition: a tenant's keys, or the platform's (tenant-less) keys.
fn push_owner<D: Dialect>(sql: &mut Sql<D>, owner: KeyOwner) {
    match owner {
        KeyOwner::Platform => sql.push(" AND tenant_id IS NULL"),
        KeyOwner::Tenant(scope) => sql
            .push(" AND tenant_id = ")
            .push_arg(scope.tenant_id().as_uuid()),
    };
}

#[async_trait]
impl<D: Dialect> ApiKeyRepository for SqlStore<D> {
    async fn insert_api_key(&self, key: NewApiKey) -> Result<ApiKey> {
        let sql = Sql::new(
            "INSERT INTO api_keys (id, tenant_id, role, name, prefix, secret_hash, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             RETURNING id, tenant_id, role, name, prefix, created_at, last_used_at, revoked_at",
        )
        .arg(key.id.as_uuid())
        .arg(key.tenant_id.map(|t| t.as_uuid()))
        .arg(key.role.as_str())
        .arg(&key.name)
        .arg(&key.prefix)
        .arg(&key.secret_hash)
        .arg(key.created_at);
        read_api_key::<D>(&self.fetch_one(sql, "creating an api key").await?)
    }

    async fn find_api_key_by_prefix(&self, prefix: &str) -> Result<Option<StoredApiKey>> {
        let sql = Sql::new(
            "SELECT k.id, k.tenant_id, k.role, k.name, k.prefix, k.created_at, k.last_used_at,
                    k.revoked_at, k.secret_hash, t.status AS tenant_status
             FROM api_keys k LEFT JOIN tenants t ON t.id = k.tenant_id
             WHERE k.prefix = $1",
        )
        .arg(prefix);
        let Some(row) = self.fetch_optional(sql, "finding an api key").await? else {
            return Ok(None);
        };
        let r = Cols::<D>::new(&row);
        Ok(Some(StoredApiKey {
            key: read_api_key::<D>(&row)?,
            secret_hash: r.text("secret_hash")?,
            tenant_status: r.opt_parse("tenant_status", "decoding a tenant status")?,
        }))
    }

    async fn get_api_key(&self, owner: KeyOwner, id: ApiKeyId) -> Result<Option<ApiKey>> {
        let mut sql = Sql::new(format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = "));
        sql.push_arg(id.as_uuid());
        push_owner(&mut sql, owner);
        self.fetch_optional(sql, "reading an api key")
            .await?
            .as_ref()
            .map(read_api_key::<D>)
            .transpose()
    }

    async fn list_api_keys(
        &self,
        owner: KeyOwner,
        include_revoked: bool,
        page: PageRequest,
    ) -> Result<Page<ApiKey>> {
        let mut sql = Sql::new(format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE TRUE"));
        push_owner(&mut sql, owner);
        if !include_revoked {
            sql.push(" AND revoked_at IS NULL");
        }
        push_page(&mut sql, &page);
        let keys = self
            .fetch_all(sql, "listing api keys")
            .await?
            .iter()
            .map(read_api_key::<D>)
            .collect::<Result<Vec<_>>>()?;
        Ok(page.finish(keys))
    }

    async fn revoke_api_key(
        &self,
        owner: KeyOwner,
        id: ApiKeyId,
        at: DateTime<Utc>,
    ) -> Result<Option<ApiKey>> {
        let mut sql = Sql::new("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ");
        sql.push_arg(at)
            .push(") WHERE id = ")
            .push_arg(id.as_uuid());
        push_owner(&mut sql, owner);
        sql.push(format_args!(" RETURNING {KEY_COLUMNS}"));
        self.fetch_optional(sql, "revoking an api key")
            .await?
            .as_ref()
            .map(read_api_key::<D>)
            .transpose()
    }

    async fn touch_api_key(
        &self,
        id: ApiKeyId,
        at: DateTime<Utc>,
        unless_after: DateTime<Utc>,
    ) -> Result<()> {
        let sql = Sql::new(
            "UPDATE api_keys SET last_used_at = $2
             WHERE id = $1 AND (last_used_at IS NULL OR last_used_at <= $3)",
        )
        .arg(id.as_uuid())
        .arg(at)
        .arg(unless_after);
        self.execute(sql, "recording an api key's use").await?;
        Ok(())
    }
}
