use async_trait::async_trait;
use chrono::{DateTime, Utc};
use purser_domain::auth::TenantScope;
use purser_domain::id::{ResourceId, TenantId};
use purser_domain::page::{Page, PageRequest};
use purser_domain::registry::{
    Accept, CatalogFilter, CatalogPage, LearnedResource, NewResource, PayoutAddress, ProbeOutcome,
    Resource, ResourceChange, ResourceHealth, ResourceMetadata, ResourceOrigin, ResourceStatus,
    ResourceVersion, VersionSpec, resource_key, search_tags,
};
use purser_domain::repo::RegistryRepository;
use purser_domain::{Error, Result};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use uuid::Uuid;

use crate::error::{corrupt_row, db_error};
use crate::{SqliteStore, from_micros, to_micros};

/// The columns of a resource joined with its current version (`r` and `v`).
const RESOURCE_COLUMNS: &str = "r.id, r.tenant_id, r.origin, r.kind, r.url, r.method, r.tool, \
    r.name, r.description, r.mime_type, r.service_name, r.tags, r.icon_url, \
    r.status, r.current_version, r.health, r.health_checked_at, r.health_detail, \
    r.unhealthy_since, r.hidden, r.created_at, r.updated_at, v.spec, \
    v.created_at AS version_created_at, v.superseded_at";

const RESOURCE_FROM: &str = " FROM resources r JOIN resource_versions v \
    ON v.resource_id = r.id AND v.version = r.current_version";

#[derive(sqlx::FromRow)]
struct ResourceRow {
    id: Uuid,
    tenant_id: Uuid,
    origin: String,
    kind: String,
    url: String,
    method: Option<String>,
    tool: Option<String>,
    name: String,
    description: String,
    mime_type: Option<String>,
    service_name: Option<String>,
    tags: String,
    icon_url: Option<String>,
    status: String,
    current_version: i32,
    health: String,
    health_checked_at: Option<i64>,
    health_detail: Option<String>,
    unhealthy_since: Option<i64>,
    hidden: i64,
    created_at: i64,
    updated_at: i64,
    spec: String,
    version_created_at: i64,
    superseded_at: Option<i64>,
}

fn decode_spec(json: &str) -> Result<VersionSpec> {
    serde_json::from_str(json).map_err(|e| Error::internal("decoding a resource version", e))
}

fn encode_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::internal("encoding a resource", e))
}

impl TryFrom<ResourceRow> for Resource {
    type Error = Error;

    fn try_from(row: ResourceRow) -> Result<Self> {
        let decode = |e| corrupt_row("decoding a resource row", e);
        let id = ResourceId::from_uuid(row.id);
        Ok(Resource {
            id,
            tenant_id: TenantId::from_uuid(row.tenant_id),
            origin: row.origin.parse().map_err(decode)?,
            kind: row.kind.parse().map_err(decode)?,
            url: row.url,
            method: row.method,
            tool: row.tool,
            metadata: ResourceMetadata {
                name: row.name,
                description: row.description,
                mime_type: row.mime_type,
                service_name: row.service_name,
                tags: serde_json::from_str(&row.tags)
                    .map_err(|e| Error::internal("decoding resource tags", e))?,
                icon_url: row.icon_url,
            },
            status: row.status.parse().map_err(decode)?,
            current: ResourceVersion {
                resource_id: id,
                version: u32::try_from(row.current_version)
                    .map_err(|e| Error::internal("decoding a resource version number", e))?,
                spec: decode_spec(&row.spec)?,
                created_at: from_micros(row.version_created_at)?,
                superseded_at: row.superseded_at.map(from_micros).transpose()?,
            },
            health: row.health.parse().map_err(decode)?,
            health_checked_at: row.health_checked_at.map(from_micros).transpose()?,
            health_detail: row.health_detail,
            unhealthy_since: row.unhealthy_since.map(from_micros).transpose()?,
            hidden: row.hidden != 0,
            created_at: from_micros(row.created_at)?,
            updated_at: from_micros(row.updated_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct PayoutRow {
    tenant_id: Uuid,
    network: String,
    address: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<PayoutRow> for PayoutAddress {
    type Error = Error;

    fn try_from(row: PayoutRow) -> Result<Self> {
        Ok(PayoutAddress {
            tenant_id: TenantId::from_uuid(row.tenant_id),
            network: row.network,
            address: row.address,
            created_at: from_micros(row.created_at)?,
            updated_at: from_micros(row.updated_at)?,
        })
    }
}

async fn fetch_resource(
    conn: &mut SqliteConnection,
    id: ResourceId,
    tenant: Option<TenantId>,
) -> Result<Option<Resource>> {
    let mut query = QueryBuilder::<Sqlite>::new("SELECT ");
    query
        .push(RESOURCE_COLUMNS)
        .push(RESOURCE_FROM)
        .push(" WHERE r.id = ")
        .push_bind(id.as_uuid());
    if let Some(tenant) = tenant {
        query
            .push(" AND r.tenant_id = ")
            .push_bind(tenant.as_uuid());
    }
    query
        .build_query_as::<ResourceRow>()
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error("reading a resource"))?
        .map(Resource::try_from)
        .transpose()
}

async fn insert_version(
    conn: &mut SqliteConnection,
    id: ResourceId,
    version: u32,
    spec: &VersionSpec,
    at: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO resource_versions (resource_id, version, spec, created_at)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(id.as_uuid())
    .bind(version as i32)
    .bind(encode_json(spec)?)
    .bind(to_micros(at))
    .execute(&mut *conn)
    .await
    .map_err(db_error("recording a resource version"))?;
    sqlx::query("DELETE FROM resource_accepts WHERE resource_id = $1")
        .bind(id.as_uuid())
        .execute(&mut *conn)
        .await
        .map_err(db_error("replacing a resource's accepts"))?;
    for Accept {
        scheme,
        network,
        asset,
        pay_to,
        ..
    } in &spec.accepts
    {
        sqlx::query(
            "INSERT INTO resource_accepts (resource_id, scheme, network, asset, pay_to)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id.as_uuid())
        .bind(scheme)
        .bind(network)
        .bind(asset.to_lowercase())
        .bind(pay_to.to_lowercase())
        .execute(&mut *conn)
        .await
        .map_err(db_error("recording a resource's accepts"))?;
    }
    Ok(())
}

/// Writes new metadata and, when `spec` is set, supersedes the current version with it.
async fn apply_change(
    conn: &mut SqliteConnection,
    current: &Resource,
    metadata: &ResourceMetadata,
    spec: Option<&VersionSpec>,
    search_fields: &str,
    at: DateTime<Utc>,
) -> Result<()> {
    let mut version = current.current.version;
    if let Some(spec) = spec {
        sqlx::query(
            "UPDATE resource_versions SET superseded_at = $3
             WHERE resource_id = $1 AND version = $2",
        )
        .bind(current.id.as_uuid())
        .bind(version as i32)
        .bind(to_micros(at))
        .execute(&mut *conn)
        .await
        .map_err(db_error("superseding a resource version"))?;
        version += 1;
        insert_version(conn, current.id, version, spec, at).await?;
    }
    sqlx::query(
        "UPDATE resources SET name = $2, description = $3, mime_type = $4, service_name = $5,
             tags = $6, icon_url = $7, search_tags = $8, search_fields = $9,
             current_version = $10, updated_at = $11
         WHERE id = $1",
    )
    .bind(current.id.as_uuid())
    .bind(&metadata.name)
    .bind(&metadata.description)
    .bind(&metadata.mime_type)
    .bind(&metadata.service_name)
    .bind(encode_json(&metadata.tags)?)
    .bind(&metadata.icon_url)
    .bind(search_tags(metadata))
    .bind(search_fields)
    .bind(version as i32)
    .bind(to_micros(at))
    .execute(&mut *conn)
    .await
    .map_err(db_error("updating a resource"))?;
    Ok(())
}

/// Appends the catalog's visibility and `filter` to a query over `resources r`.
fn push_catalog_filter(query: &mut QueryBuilder<Sqlite>, filter: &CatalogFilter) {
    query.push(" WHERE r.status = 'published' AND r.hidden = 0");
    if let Some(kind) = filter.kind {
        query.push(" AND r.kind = ").push_bind(kind.as_str());
    }
    for (column, value) in [
        ("network", filter.network.clone()),
        ("scheme", filter.scheme.clone()),
        ("pay_to", filter.pay_to.as_deref().map(str::to_lowercase)),
    ] {
        // A payTo picks out few resources: start from them. A network or scheme is shared by
        // many: check it per candidate instead.
        if let Some(value) = value {
            query.push(if column == "pay_to" {
                " AND r.id IN (SELECT a.resource_id FROM resource_accepts a WHERE a."
            } else {
                " AND EXISTS (SELECT 1 FROM resource_accepts a WHERE a.resource_id = r.id AND a."
            });
            query.push(column).push(" = ").push_bind(value).push(")");
        }
    }
}

#[async_trait]
impl RegistryRepository for SqliteStore {
    async fn set_payout_address(
        &self,
        scope: TenantScope,
        network: &str,
        address: &str,
        at: DateTime<Utc>,
    ) -> Result<PayoutAddress> {
        sqlx::query_as::<_, PayoutRow>(
            "INSERT INTO payout_addresses (tenant_id, network, address, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $4)
             ON CONFLICT (tenant_id, network)
             DO UPDATE SET address = EXCLUDED.address, updated_at = EXCLUDED.updated_at
             RETURNING tenant_id, network, address, created_at, updated_at",
        )
        .bind(scope.tenant_id().as_uuid())
        .bind(network)
        .bind(address)
        .bind(to_micros(at))
        .fetch_one(&self.pool)
        .await
        .map_err(db_error("setting a payout address"))?
        .try_into()
    }

    async fn remove_payout_address(&self, scope: TenantScope, network: &str) -> Result<bool> {
        let done =
            sqlx::query("DELETE FROM payout_addresses WHERE tenant_id = $1 AND network = $2")
                .bind(scope.tenant_id().as_uuid())
                .bind(network)
                .execute(&self.pool)
                .await
                .map_err(db_error("removing a payout address"))?;
        Ok(done.rows_affected() > 0)
    }

    async fn payout_addresses(&self, scope: TenantScope) -> Result<Vec<PayoutAddress>> {
        Ok(sqlx::query_as::<_, PayoutRow>(
            "SELECT tenant_id, network, address, created_at, updated_at
             FROM payout_addresses WHERE tenant_id = $1 ORDER BY network",
        )
        .bind(scope.tenant_id().as_uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("listing payout addresses"))?
        .into_iter()
        .map(PayoutAddress::try_from)
        .collect::<Result<_>>()?)
    }

    async fn create_resource(&self, new: NewResource) -> Result<Resource> {
        new.check()?;
        let mut tx = self.begin_write().await?;
        let m = &new.metadata;
        sqlx::query(
            "INSERT INTO resources (id, tenant_id, origin, kind, url, method, tool, resource_key,
                 name, description, mime_type, service_name, tags, icon_url, status,
                 current_version, search_tags, search_fields, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                 1, $16, $17, $18, $18)",
        )
        .bind(new.id.as_uuid())
        .bind(new.tenant_id.as_uuid())
        .bind(new.origin.as_str())
        .bind(new.kind.as_str())
        .bind(&new.url)
        .bind(&new.method)
        .bind(&new.tool)
        .bind(resource_key(
            new.kind,
            &new.url,
            new.method.as_deref(),
            new.tool.as_deref(),
        ))
        .bind(&m.name)
        .bind(&m.description)
        .bind(&m.mime_type)
        .bind(&m.service_name)
        .bind(encode_json(&m.tags)?)
        .bind(&m.icon_url)
        .bind(new.status.as_str())
        .bind(search_tags(m))
        .bind(&new.search_fields)
        .bind(to_micros(new.at))
        .execute(&mut *tx)
        .await
        .map_err(db_error("creating a resource"))?;
        insert_version(&mut tx, new.id, 1, &new.spec, new.at).await?;
        let created = fetch_resource(&mut tx, new.id, None)
            .await?
            .ok_or_else(|| Error::internal("creating a resource", "the new row is missing"))?;
        tx.commit()
            .await
            .map_err(db_error("committing a resource"))?;
        Ok(created)
    }

    async fn find_resource(&self, scope: TenantScope, id: ResourceId) -> Result<Option<Resource>> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(db_error("reading a resource"))?;
        fetch_resource(&mut conn, id, Some(scope.tenant_id())).await
    }

    async fn get_resource(&self, id: ResourceId) -> Result<Option<Resource>> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(db_error("reading a resource"))?;
        fetch_resource(&mut conn, id, None).await
    }

    async fn list_resources(
        &self,
        scope: TenantScope,
        status: Option<ResourceStatus>,
        page: PageRequest,
    ) -> Result<Page<Resource>> {
        let mut query = QueryBuilder::<Sqlite>::new("SELECT ");
        query
            .push(RESOURCE_COLUMNS)
            .push(RESOURCE_FROM)
            .push(" WHERE r.tenant_id = ")
            .push_bind(scope.tenant_id().as_uuid());
        if let Some(status) = status {
            query.push(" AND r.status = ").push_bind(status.as_str());
        }
        crate::tenants::push_page(&mut query, &page);
        let rows = query
            .build_query_as::<ResourceRow>()
            .fetch_all(&self.pool)
            .await
            .map_err(db_error("listing resources"))?
            .into_iter()
            .map(Resource::try_from)
            .collect::<Result<Vec<_>>>()?;
        Ok(page.finish(rows))
    }

    async fn change_resource(
        &self,
        scope: TenantScope,
        id: ResourceId,
        change: ResourceChange,
    ) -> Result<Option<Resource>> {
        change.check()?;
        let mut tx = self.begin_write().await?;
        let Some(current) = fetch_resource(&mut tx, id, Some(scope.tenant_id())).await? else {
            return Ok(None);
        };
        current.check_change(change.expected_version)?;
        apply_change(
            &mut tx,
            &current,
            &change.metadata,
            change.spec.as_ref(),
            &change.search_fields,
            change.at,
        )
        .await?;
        let changed = fetch_resource(&mut tx, id, None).await?;
        tx.commit()
            .await
            .map_err(db_error("committing a resource change"))?;
        Ok(changed)
    }

    async fn set_resource_status(
        &self,
        scope: TenantScope,
        id: ResourceId,
        status: ResourceStatus,
        at: DateTime<Utc>,
    ) -> Result<Option<Resource>> {
        let mut tx = self.begin_write().await?;
        let Some(current) = fetch_resource(&mut tx, id, Some(scope.tenant_id())).await? else {
            return Ok(None);
        };
        if current.status == status {
            return Ok(Some(current));
        }
        current.check_status_change(status)?;
        sqlx::query("UPDATE resources SET status = $2, updated_at = $3 WHERE id = $1")
            .bind(id.as_uuid())
            .bind(status.as_str())
            .bind(to_micros(at))
            .execute(&mut *tx)
            .await
            .map_err(db_error("changing a resource's status"))?;
        let changed = fetch_resource(&mut tx, id, None).await?;
        tx.commit()
            .await
            .map_err(db_error("committing a resource status"))?;
        Ok(changed)
    }

    async fn resource_versions(
        &self,
        scope: TenantScope,
        id: ResourceId,
    ) -> Result<Vec<ResourceVersion>> {
        let rows: Vec<(i32, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT v.version, v.spec, v.created_at, v.superseded_at
             FROM resource_versions v JOIN resources r ON r.id = v.resource_id
             WHERE v.resource_id = $1 AND r.tenant_id = $2 ORDER BY v.version",
        )
        .bind(id.as_uuid())
        .bind(scope.tenant_id().as_uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("listing resource versions"))?;
        rows.into_iter()
            .map(|(version, spec, created_at, superseded_at)| {
                Ok(ResourceVersion {
                    resource_id: id,
                    version: version as u32,
                    spec: decode_spec(&spec)?,
                    created_at: from_micros(created_at)?,
                    superseded_at: superseded_at.map(from_micros).transpose()?,
                })
            })
            .collect()
    }

    async fn learn_resource(&self, learned: LearnedResource) -> Result<Resource> {
        learned.check()?;
        let key = resource_key(
            learned.kind,
            &learned.url,
            learned.method.as_deref(),
            learned.tool.as_deref(),
        );
        let mut tx = self.begin_write().await?;
        let new_id = ResourceId::new();
        let m = &learned.metadata;
        // Inserts unless a live listing with the key exists; then locks and updates that one.
        sqlx::query(
            "INSERT INTO resources (id, tenant_id, origin, kind, url, method, tool, resource_key,
                 name, description, mime_type, service_name, tags, icon_url, status,
                 current_version, search_tags, search_fields, created_at, updated_at)
             VALUES ($1, $2, 'bazaar', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
                 'published', 1, $14, $15, $16, $16)
             ON CONFLICT (tenant_id, resource_key) WHERE status <> 'archived' DO NOTHING",
        )
        .bind(new_id.as_uuid())
        .bind(learned.tenant_id.as_uuid())
        .bind(learned.kind.as_str())
        .bind(&learned.url)
        .bind(&learned.method)
        .bind(&learned.tool)
        .bind(&key)
        .bind(&m.name)
        .bind(&m.description)
        .bind(&m.mime_type)
        .bind(&m.service_name)
        .bind(encode_json(&m.tags)?)
        .bind(&m.icon_url)
        .bind(search_tags(m))
        .bind(&learned.search_fields)
        .bind(to_micros(learned.at))
        .execute(&mut *tx)
        .await
        .map_err(db_error("learning a resource"))?;
        let existing: Uuid = sqlx::query_scalar(
            "SELECT id FROM resources
             WHERE tenant_id = $1 AND resource_key = $2 AND status <> 'archived'",
        )
        .bind(learned.tenant_id.as_uuid())
        .bind(&key)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error("learning a resource"))?;
        let id = ResourceId::from_uuid(existing);
        if id == new_id {
            insert_version(&mut tx, id, 1, &learned.spec, learned.at).await?;
        } else {
            let current = fetch_resource(&mut tx, id, None)
                .await?
                .ok_or_else(|| Error::internal("learning a resource", "the row vanished"))?;
            if current.origin == ResourceOrigin::Bazaar {
                let spec = (current.current.spec != learned.spec).then_some(&learned.spec);
                apply_change(
                    &mut tx,
                    &current,
                    &learned.metadata,
                    spec,
                    &learned.search_fields,
                    learned.at,
                )
                .await?;
            }
        }
        let resource = fetch_resource(&mut tx, id, None)
            .await?
            .ok_or_else(|| Error::internal("learning a resource", "the row vanished"))?;
        tx.commit()
            .await
            .map_err(db_error("committing a learned resource"))?;
        Ok(resource)
    }

    async fn catalog_list(
        &self,
        filter: &CatalogFilter,
        offset: u64,
        limit: u32,
    ) -> Result<CatalogPage> {
        if !filter.satisfiable() {
            return Ok(CatalogPage {
                items: Vec::new(),
                total: 0,
            });
        }
        let mut count = QueryBuilder::<Sqlite>::new("SELECT count(*) FROM resources r");
        push_catalog_filter(&mut count, filter);
        let total: i64 = count
            .build_query_scalar()
            .fetch_one(&self.pool)
            .await
            .map_err(db_error("counting the catalog"))?;
        let mut query = QueryBuilder::<Sqlite>::new("SELECT ");
        query.push(RESOURCE_COLUMNS).push(RESOURCE_FROM);
        push_catalog_filter(&mut query, filter);
        query
            .push(" ORDER BY r.updated_at DESC, r.id LIMIT ")
            .push_bind(i64::from(limit))
            .push(" OFFSET ")
            .push_bind(i64::try_from(offset).unwrap_or(i64::MAX));
        let items = query
            .build_query_as::<ResourceRow>()
            .fetch_all(&self.pool)
            .await
            .map_err(db_error("listing the catalog"))?
            .into_iter()
            .map(Resource::try_from)
            .collect::<Result<Vec<_>>>()?;
        Ok(CatalogPage {
            items,
            total: total as u64,
        })
    }

    async fn catalog_search(
        &self,
        query_text: &str,
        filter: &CatalogFilter,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<Resource>> {
        let words = purser_domain::registry::query_words(query_text);
        if words.is_empty() || !filter.satisfiable() {
            return Ok(Vec::new());
        }
        // Any word may match; bm25 (lower is better) ranks resources matching more, rarer and
        // weightier words first, with the name weighing most. Each word is letters and digits
        // only, quoted, so the user's text never reaches FTS5's query syntax.
        let terms: Vec<String> = words.iter().map(|w| format!("\"{w}\"")).collect();
        let mut query = QueryBuilder::<Sqlite>::new("SELECT ");
        query.push(RESOURCE_COLUMNS).push(
            " FROM resources_fts f JOIN resources r ON r.rowid = f.rowid \
             JOIN resource_versions v ON v.resource_id = r.id AND v.version = r.current_version",
        );
        push_catalog_filter(&mut query, filter);
        query
            .push(" AND resources_fts MATCH ")
            .push_bind(terms.join(" OR "))
            .push(" ORDER BY bm25(resources_fts, 10.0, 5.0, 2.0, 1.0), r.id LIMIT ")
            .push_bind(i64::from(limit) + 1)
            .push(" OFFSET ")
            .push_bind(i64::try_from(offset).unwrap_or(i64::MAX));
        query
            .build_query_as::<ResourceRow>()
            .fetch_all(&self.pool)
            .await
            .map_err(db_error("searching the catalog"))?
            .into_iter()
            .map(Resource::try_from)
            .collect()
    }

    async fn resources_due_for_probe(
        &self,
        checked_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Resource>> {
        let mut query = QueryBuilder::<Sqlite>::new("SELECT ");
        query
            .push(RESOURCE_COLUMNS)
            .push(RESOURCE_FROM)
            .push(" WHERE r.status = 'published' AND r.kind = 'http' AND (r.health_checked_at IS NULL OR r.health_checked_at < ")
            .push_bind(to_micros(checked_before))
            .push(") ORDER BY r.health_checked_at IS NOT NULL, r.health_checked_at, r.id LIMIT ")
            .push_bind(i64::from(limit));
        query
            .build_query_as::<ResourceRow>()
            .fetch_all(&self.pool)
            .await
            .map_err(db_error("finding resources to probe"))?
            .into_iter()
            .map(Resource::try_from)
            .collect()
    }

    async fn record_probe(&self, id: ResourceId, outcome: ProbeOutcome) -> Result<()> {
        let health = if outcome.healthy {
            ResourceHealth::Healthy
        } else {
            ResourceHealth::Unhealthy
        };
        sqlx::query(
            "UPDATE resources SET health = $2, health_checked_at = $3, health_detail = $4,
                 unhealthy_since = CASE WHEN $5 THEN NULL ELSE coalesce(unhealthy_since, $3) END,
                 hidden = CASE WHEN $5 THEN 0
                     ELSE coalesce(unhealthy_since, $3) <= $6 END
             WHERE id = $1",
        )
        .bind(id.as_uuid())
        .bind(health.as_str())
        .bind(to_micros(outcome.at))
        .bind(&outcome.detail)
        .bind(outcome.healthy)
        .bind(to_micros(outcome.hide_if_unhealthy_since))
        .execute(&self.pool)
        .await
        .map_err(db_error("recording a probe"))?;
        Ok(())
    }
}
