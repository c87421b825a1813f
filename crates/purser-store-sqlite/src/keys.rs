use async_trait::async_trait;
use chrono::{DateTime, Utc};
use purser_domain::auth::{ApiKey, KeyOwner, NewApiKey, StoredApiKey};
use purser_domain::id::{ApiKeyId, TenantId};
use purser_domain::page::{Page, PageRequest};
use purser_domain::repo::ApiKeyRepository;
use purser_domain::{Error, Result};
use sqlx::{QueryBuilder, Sqlite};
use uuid::Uuid;

use crate::error::{corrupt_row, db_error};
use crate::tenants::push_page;
use crate::{SqliteStore, from_micros, to_micros};

const KEY_COLUMNS: &str = "id, tenant_id, role, name, prefix, created_at, last_used_at, revoked_at";

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: Uuid,
    tenant_id: Option<Uuid>,
    role: String,
    name: String,
    prefix: String,
    created_at: i64,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl TryFrom<KeyRow> for ApiKey {
    type Error = Error;

    fn try_from(row: KeyRow) -> Result<Self> {
        Ok(ApiKey {
            id: ApiKeyId::from_uuid(row.id),
            tenant_id: row.tenant_id.map(TenantId::from_uuid),
            role: row
                .role
                .parse()
                .map_err(|e| corrupt_row("decoding an api key row", e))?,
            name: row.name,
            prefix: row.prefix,
            created_at: from_micros(row.created_at)?,
            last_used_at: row.last_used_at.map(from_micros).transpose()?,
            revoked_at: row.revoked_at.map(from_micros).transpose()?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct StoredKeyRow {
    #[sqlx(flatten)]
    key: KeyRow,
    secret_hash: String,
    tenant_status: Option<String>,
}

/// Appends the owner condition: a tenant's keys, or the platform's (tenant-less) keys.
fn push_owner(query: &mut QueryBuilder<Sqlite>, owner: KeyOwner) {
    match owner {
        KeyOwner::Platform => query.push(" AND tenant_id IS NULL"),
        KeyOwner::Tenant(scope) => query
            .push(" AND tenant_id = ")
            .push_bind(scope.tenant_id().as_uuid()),
    };
}

#[async_trait]
impl ApiKeyRepository for SqliteStore {
    async fn insert_api_key(&self, key: NewApiKey) -> Result<ApiKey> {
        sqlx::query_as::<_, KeyRow>(
            "INSERT INTO api_keys (id, tenant_id, role, name, prefix, secret_hash, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             RETURNING id, tenant_id, role, name, prefix, created_at, last_used_at, revoked_at",
        )
        .bind(key.id.as_uuid())
        .bind(key.tenant_id.map(|t| t.as_uuid()))
        .bind(key.role.as_str())
        .bind(&key.name)
        .bind(&key.prefix)
        .bind(&key.secret_hash)
        .bind(to_micros(key.created_at))
        .fetch_one(&self.pool)
        .await
        .map_err(db_error("creating an api key"))?
        .try_into()
    }

    async fn find_api_key_by_prefix(&self, prefix: &str) -> Result<Option<StoredApiKey>> {
        let row = sqlx::query_as::<_, StoredKeyRow>(
            "SELECT k.id, k.tenant_id, k.role, k.name, k.prefix, k.created_at, k.last_used_at,
                    k.revoked_at, k.secret_hash, t.status AS tenant_status
             FROM api_keys k LEFT JOIN tenants t ON t.id = k.tenant_id
             WHERE k.prefix = $1",
        )
        .bind(prefix)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("finding an api key"))?;
        let Some(row) = row else { return Ok(None) };
        let tenant_status = row
            .tenant_status
            .map(|s| s.parse())
            .transpose()
            .map_err(|e| corrupt_row("decoding a tenant status", e))?;
        Ok(Some(StoredApiKey {
            key: row.key.try_into()?,
            secret_hash: row.secret_hash,
            tenant_status,
        }))
    }

    async fn get_api_key(&self, owner: KeyOwner, id: ApiKeyId) -> Result<Option<ApiKey>> {
        let mut query =
            QueryBuilder::<Sqlite>::new(format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = "));
        query.push_bind(id.as_uuid());
        push_owner(&mut query, owner);
        query
            .build_query_as::<KeyRow>()
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error("reading an api key"))?
            .map(ApiKey::try_from)
            .transpose()
    }

    async fn list_api_keys(
        &self,
        owner: KeyOwner,
        include_revoked: bool,
        page: PageRequest,
    ) -> Result<Page<ApiKey>> {
        let mut query =
            QueryBuilder::<Sqlite>::new(format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE TRUE"));
        push_owner(&mut query, owner);
        if !include_revoked {
            query.push(" AND revoked_at IS NULL");
        }
        push_page(&mut query, &page);
        let rows = query
            .build_query_as::<KeyRow>()
            .fetch_all(&self.pool)
            .await
            .map_err(db_error("listing api keys"))?;
        let keys = rows
            .into_iter()
            .map(ApiKey::try_from)
            .collect::<Result<Vec<_>>>()?;
        Ok(page.finish(keys))
    }

    async fn revoke_api_key(
        &self,
        owner: KeyOwner,
        id: ApiKeyId,
        at: DateTime<Utc>,
    ) -> Result<Option<ApiKey>> {
        let mut query =
            QueryBuilder::<Sqlite>::new("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ");
        query
            .push_bind(to_micros(at))
            .push(") WHERE id = ")
            .push_bind(id.as_uuid());
        push_owner(&mut query, owner);
        query.push(format!(" RETURNING {KEY_COLUMNS}"));
        query
            .build_query_as::<KeyRow>()
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error("revoking an api key"))?
            .map(ApiKey::try_from)
            .transpose()
    }

    async fn touch_api_key(
        &self,
        id: ApiKeyId,
        at: DateTime<Utc>,
        unless_after: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE api_keys SET last_used_at = $2
             WHERE id = $1 AND (last_used_at IS NULL OR last_used_at <= $3)",
        )
        .bind(id.as_uuid())
        .bind(to_micros(at))
        .bind(to_micros(unless_after))
        .execute(&self.pool)
        .await
        .map_err(db_error("recording an api key's use"))?;
        Ok(())
    }
}
