use async_trait::async_trait;
use chrono::{DateTime, Utc};
use purser_domain::id::TenantId;
use purser_domain::page::{Page, PageRequest};
use purser_domain::repo::TenantRepository;
use purser_domain::tenant::{NewTenant, Tenant, TenantStatus, TenantUpdate};
use purser_domain::{Error, Result};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use crate::PgStore;
use crate::error::{corrupt_row, db_error};

const TENANT_COLUMNS: &str = "id, name, kind, status, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct TenantRow {
    id: Uuid,
    name: String,
    kind: String,
    status: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<TenantRow> for Tenant {
    type Error = Error;

    fn try_from(row: TenantRow) -> Result<Self> {
        let decode = |e| corrupt_row("decoding a tenant row", e);
        Ok(Tenant {
            id: TenantId::from_uuid(row.id),
            name: row.name,
            kind: row.kind.parse().map_err(decode)?,
            status: row.status.parse().map_err(decode)?,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[async_trait]
impl TenantRepository for PgStore {
    async fn create_tenant(&self, tenant: NewTenant) -> Result<Tenant> {
        sqlx::query_as::<_, TenantRow>(
            "INSERT INTO tenants (id, name, name_normalized, kind, status, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)
             RETURNING id, name, kind, status, created_at, updated_at",
        )
        .bind(tenant.id.as_uuid())
        .bind(tenant.name.as_str())
        .bind(tenant.name.normalized())
        .bind(tenant.kind.as_str())
        .bind(TenantStatus::Active.as_str())
        .bind(tenant.created_at)
        .fetch_one(&self.pool)
        .await
        .map_err(db_error("creating a tenant"))?
        .try_into()
    }

    async fn get_tenant(&self, id: TenantId) -> Result<Option<Tenant>> {
        sqlx::query_as::<_, TenantRow>(
            "SELECT id, name, kind, status, created_at, updated_at FROM tenants WHERE id = $1",
        )
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("reading a tenant"))?
        .map(Tenant::try_from)
        .transpose()
    }

    async fn list_tenants(&self, page: PageRequest) -> Result<Page<Tenant>> {
        let mut query = QueryBuilder::<Postgres>::new(format!(
            "SELECT {TENANT_COLUMNS} FROM tenants WHERE TRUE"
        ));
        push_page(&mut query, &page);
        let rows = query
            .build_query_as::<TenantRow>()
            .fetch_all(&self.pool)
            .await
            .map_err(db_error("listing tenants"))?;
        let tenants = rows
            .into_iter()
            .map(Tenant::try_from)
            .collect::<Result<Vec<_>>>()?;
        Ok(page.finish(tenants))
    }

    async fn update_tenant(&self, id: TenantId, update: TenantUpdate) -> Result<Option<Tenant>> {
        sqlx::query_as::<_, TenantRow>(
            "UPDATE tenants SET
                 name = COALESCE($2, name),
                 name_normalized = COALESCE($3, name_normalized),
                 status = COALESCE($4, status),
                 updated_at = GREATEST(updated_at, $5)
             WHERE id = $1
             RETURNING id, name, kind, status, created_at, updated_at",
        )
        .bind(id.as_uuid())
        .bind(update.name.as_ref().map(|n| n.as_str()))
        .bind(update.name.as_ref().map(|n| n.normalized()))
        .bind(update.status.map(|s| s.as_str()))
        .bind(purser_domain::time::now())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("updating a tenant"))?
        .map(Tenant::try_from)
        .transpose()
    }
}

/// Appends keyset conditions, order and limit for `page` to a query that ends in a `WHERE`
/// clause over a table keyed by `id`.
pub(crate) fn push_page(query: &mut QueryBuilder<Postgres>, page: &PageRequest) {
    if let Some(after) = page.after {
        query.push(" AND id > ").push_bind(after);
    }
    if let Some(before) = page.before {
        query.push(" AND id < ").push_bind(before);
    }
    query.push(if page.from_end {
        " ORDER BY id DESC"
    } else {
        " ORDER BY id ASC"
    });
    query.push(" LIMIT ").push_bind(page.fetch_limit());
}
