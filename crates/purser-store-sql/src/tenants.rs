//! Tenants.

use async_trait::async_trait;
use purser_domain::Result;
use purser_domain::id::TenantId;
use purser_domain::page::{Page, PageRequest};
use purser_domain::repo::TenantRepository;
use purser_domain::tenant::{NewTenant, Tenant, TenantStatus, TenantUpdate};

use crate::{Cols, Dialect, Row, Sql, SqlStore, push_page};

const TENANT_COLUMNS: &str = "id, name, kind, status, created_at, updated_at";

fn read_tenant<D: Dialect>(row: &Row<D>) -> Result<Tenant> {
    let r = Cols::<D>::new(row);
    let what = "decoding a tenant row";
    Ok(Tenant {
        id: TenantId::from_uuid(r.uuid("id")?),
        name: r.text("name")?,
        kind: r.parse("kind", what)?,
        status: r.parse("status", what)?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

#[async_trait]
impl<D: Dialect> TenantRepository for SqlStore<D> {
    async fn create_tenant(&self, new: NewTenant) -> Result<Tenant> {
        let sql = Sql::new(
            "INSERT INTO tenants (id, name, name_normalized, kind, status, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)
             RETURNING id, name, kind, status, created_at, updated_at",
        )
        .arg(new.id.as_uuid())
        .arg(new.name.as_str())
        .arg(new.name.normalized())
        .arg(new.kind.as_str())
        .arg(TenantStatus::Active.as_str())
        .arg(new.created_at);
        read_tenant::<D>(&self.fetch_one(sql, "creating a tenant").await?)
    }

    async fn get_tenant(&self, id: TenantId) -> Result<Option<Tenant>> {
        let sql = Sql::new(
            "SELECT id, name, kind, status, created_at, updated_at FROM tenants WHERE id = $1",
        )
        .arg(id.as_uuid());
        self.fetch_optional(sql, "reading a tenant")
            .await?
            .as_ref()
            .map(read_tenant::<D>)
            .transpose()
    }

    async fn list_tenants(&self, page: PageRequest) -> Result<Page<Tenant>> {
        let mut sql = Sql::new(format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE TRUE"));
        push_page(&mut sql, &page);
        let tenants = self
            .fetch_all(sql, "listing tenants")
            .await?
            .iter()
            .map(read_tenant::<D>)
            .collect::<Result<Vec<_>>>()?;
        Ok(page.finish(tenants))
    }

    async fn update_tenant(&self, id: TenantId, update: TenantUpdate) -> Result<Option<Tenant>> {
        let sql = Sql::new(format!(
            "UPDATE tenants SET
                 name = COALESCE($2, name),
                 name_normalized = COALESCE($3, name_normalized),
                 status = COALESCE($4, status),
                 updated_at = {greatest}(updated_at, $5)
             WHERE id = $1
             RETURNING id, name, kind, status, created_at, updated_at",
            greatest = D::GREATEST,
        ))
        .arg(id.as_uuid())
        .arg(update.name.as_ref().map(|n| n.as_str()))
        .arg(update.name.as_ref().map(|n| n.normalized()))
        .arg(update.status.map(|s| s.as_str()))
        .arg(purser_domain::time::now());
        self.fetch_optional(sql, "updating a tenant")
            .await?
            .as_ref()
            .map(read_tenant::<D>)
            .transpose()
    }
}
