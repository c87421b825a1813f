//! The resource registry: payout addresses, resources with their append-only versions, the
//! catalog and health probes.

use std::fmt::{self, Display};

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

use crate::{Cols, Conn, Dialect, Row, Sql, SqlStore, commit, json_text, push_page};

/// How a backend searches the catalog.
pub trait RegistryDialect: Dialect {
    /// The search statement: published, visible resources passing `filter` that match any of
    /// `words` (letters and digits only, so safe in either search syntax), best first, the
    /// resource id breaking ties, `limit` of them after `offset`. Built from
    /// [`resource_columns`], [`RESOURCE_FROM`] and [`push_catalog_filter`]; PostgreSQL ranks a
    /// weighted `tsvector` with `ts_rank_cd`, SQLite an FTS5 table with `bm25`.
    fn catalog_search(
        words: &[String],
        filter: &CatalogFilter,
        offset: u64,
        limit: u32,
    ) -> Sql<Self>;
}

/// The columns of a resource joined with its current version (`r` and `v`), as
/// [`RESOURCE_FROM`] joins them.
pub fn resource_columns<D: Dialect>() -> impl Display {
    fmt::from_fn(|f| {
        write!(
            f,
            "r.id, r.tenant_id, r.origin, r.kind, r.url, r.method, r.tool, r.name, r.description, \
             r.mime_type, r.service_name, r.tags{text} AS tags, r.icon_url, r.status, \
             r.current_version, r.health, r.health_checked_at, r.health_detail, r.unhealthy_since, \
             r.hidden, r.created_at, r.updated_at, v.spec{text} AS spec, \
             v.created_at AS version_created_at, v.superseded_at",
            text = D::AS_TEXT
        )
    })
}

pub const RESOURCE_FROM: &str = " FROM resources r JOIN resource_versions v \
    ON v.resource_id = r.id AND v.version = r.current_version";

fn decode_spec(json: &str) -> Result<VersionSpec> {
    serde_json::from_str(json).map_err(|e| Error::internal("decoding a resource version", e))
}

fn version_number(version: i32) -> Result<u32> {
    u32::try_from(version).map_err(|e| Error::internal("decoding a resource version number", e))
}

fn read_resource<D: Dialect>(row: &Row<D>) -> Result<Resource> {
    let r = Cols::<D>::new(row);
    let what = "decoding a resource row";
    let id = ResourceId::from_uuid(r.uuid("id")?);
    Ok(Resource {
        id,
        tenant_id: TenantId::from_uuid(r.uuid("tenant_id")?),
        origin: r.parse("origin", what)?,
        kind: r.parse("kind", what)?,
        url: r.text("url")?,
        method: r.opt_text("method")?,
        tool: r.opt_text("tool")?,
        metadata: ResourceMetadata {
            name: r.text("name")?,
            description: r.text("description")?,
            mime_type: r.opt_text("mime_type")?,
            service_name: r.opt_text("service_name")?,
            tags: serde_json::from_str(&r.text("tags")?)
                .map_err(|e| Error::internal("decoding resource tags", e))?,
            icon_url: r.opt_text("icon_url")?,
        },
        status: r.parse("status", what)?,
        current: ResourceVersion {
            resource_id: id,
            version: version_number(r.i32("current_version")?)?,
            spec: decode_spec(&r.text("spec")?)?,
            created_at: r.time("version_created_at")?,
            superseded_at: r.opt_time("superseded_at")?,
        },
        health: r.parse("health", what)?,
        health_checked_at: r.opt_time("health_checked_at")?,
        health_detail: r.opt_text("health_detail")?,
        unhealthy_since: r.opt_time("unhealthy_since")?,
        hidden: r.bool("hidden")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

fn read_payout_address<D: Dialect>(row: &Row<D>) -> Result<PayoutAddress> {
    let r = Cols::<D>::new(row);
    Ok(PayoutAddress {
        tenant_id: TenantId::from_uuid(r.uuid("tenant_id")?),
        network: r.text("network")?,
        address: r.text("address")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

fn encode_json<T: serde::Serialize>(value: &T) -> Result<String> {
    json_text(value, "encoding a resource")
}

/// The resource with its current version; `lock`ed for the transaction's change where the
/// dialect locks rows.
async fn fetch_resource<D: Dialect>(
    conn: &mut Conn<D>,
    id: ResourceId,
    tenant: Option<TenantId>,
    lock: bool,
) -> Result<Option<Resource>> {
    let mut sql = Sql::<D>::new(format!(
        "SELECT {}{RESOURCE_FROM} WHERE r.id = ",
        resource_columns::<D>()
    ));
    sql.push_arg(id.as_uuid());
    if let Some(tenant) = tenant {
        sql.push(" AND r.tenant_id = ").push_arg(tenant.as_uuid());
    }
    if lock && !D::FOR_UPDATE.is_empty() {
        sql.push(D::FOR_UPDATE).push(" OF r");
    }
    sql.fetch_optional(conn, "reading a resource")
        .await?
        .as_ref()
        .map(read_resource::<D>)
        .transpose()
}

async fn insert_version<D: Dialect>(
    conn: &mut Conn<D>,
    id: ResourceId,
    version: u32,
    spec: &VersionSpec,
    at: DateTime<Utc>,
) -> Result<()> {
    Sql::<D>::new(format!(
        "INSERT INTO resource_versions (resource_id, version, spec, created_at)
         VALUES ($1, $2, $3{}, $4)",
        D::AS_JSON
    ))
    .arg(id.as_uuid())
    .arg(version as i32)
    .arg(encode_json(spec)?)
    .arg(at)
    .execute(&mut *conn, "recording a resource version")
    .await?;
    Sql::<D>::new("DELETE FROM resource_accepts WHERE resource_id = $1")
        .arg(id.as_uuid())
        .execute(&mut *conn, "replacing a resource's accepts")
        .await?;
    for Accept {
        scheme,
        network,
        asset,
        pay_to,
        ..
    } in &spec.accepts
    {
        Sql::<D>::new(
            "INSERT INTO resource_accepts (resource_id, scheme, network, asset, pay_to)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .arg(id.as_uuid())
        .arg(scheme)
        .arg(network)
        .arg(asset.to_lowercase())
        .arg(pay_to.to_lowercase())
        .execute(&mut *conn, "recording a resource's accepts")
        .await?;
    }
    Ok(())
}

/// Writes new metadata and, when `spec` is set, supersedes the current version with it.
async fn apply_change<D: Dialect>(
    conn: &mut Conn<D>,
    current: &Resource,
    metadata: &ResourceMetadata,
    spec: Option<&VersionSpec>,
    search_fields: &str,
    at: DateTime<Utc>,
) -> Result<()> {
    let mut version = current.current.version;
    if let Some(spec) = spec {
        Sql::<D>::new(
            "UPDATE resource_versions SET superseded_at = $3
             WHERE resource_id = $1 AND version = $2",
        )
        .arg(current.id.as_uuid())
        .arg(version as i32)
        .arg(at)
        .execute(&mut *conn, "superseding a resource version")
        .await?;
        version += 1;
        insert_version::<D>(conn, current.id, version, spec, at).await?;
    }
    Sql::<D>::new(format!(
        "UPDATE resources SET name = $2, description = $3, mime_type = $4, service_name = $5,
             tags = $6{json}, icon_url = $7, search_tags = $8, search_fields = $9,
             current_version = $10, updated_at = $11
         WHERE id = $1",
        json = D::AS_JSON
    ))
    .arg(current.id.as_uuid())
    .arg(&metadata.name)
    .arg(&metadata.description)
    .arg(&metadata.mime_type)
    .arg(&metadata.service_name)
    .arg(encode_json(&metadata.tags)?)
    .arg(&metadata.icon_url)
    .arg(search_tags(metadata))
    .arg(search_fields)
    .arg(version as i32)
    .arg(at)
    .execute(conn, "updating a resource")
    .await?;
    Ok(())
}

/// Appends the catalog's visibility and `filter` to a query over `resources r`.
pub fn push_catalog_filter<D: Dialect>(sql: &mut Sql<D>, filter: &CatalogFilter) {
    sql.push(format_args!(
        " WHERE r.status = 'published' AND r.hidden = {}",
        D::FALSE
    ));
    if let Some(kind) = filter.kind {
        sql.push(" AND r.kind = ").push_arg(kind.as_str());
    }
    for (column, value) in [
        ("network", filter.network.as_deref().map(str::to_owned)),
        ("scheme", filter.scheme.as_deref().map(str::to_owned)),
        ("pay_to", filter.pay_to.as_deref().map(str::to_lowercase)),
    ] {
        // A payTo picks out few resources: start from them. A network or scheme is shared by
        // many: check it per candidate instead.
        if let Some(value) = value {
            sql.push(if column == "pay_to" {
                " AND r.id IN (SELECT a.resource_id FROM resource_accepts a WHERE a."
            } else {
                " AND EXISTS (SELECT 1 FROM resource_accepts a WHERE a.resource_id = r.id AND a."
            });
            sql.push(column).push(" = ").push_arg(value).push(")");
        }
    }
}

#[async_trait]
impl<D: RegistryDialect> RegistryRepository for SqlStore<D> {
    async fn set_payout_address(
        &self,
        scope: TenantScope,
        network: &str,
        address: &str,
        at: DateTime<Utc>,
    ) -> Result<PayoutAddress> {
        let sql = Sql::new(
            "INSERT INTO payout_addresses (tenant_id, network, address, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $4)
             ON CONFLICT (tenant_id, network)
             DO UPDATE SET address = EXCLUDED.address, updated_at = EXCLUDED.updated_at
             RETURNING tenant_id, network, address, created_at, updated_at",
        )
        .arg(scope.tenant_id().as_uuid())
        .arg(network)
        .arg(address)
        .arg(at);
        read_payout_address::<D>(&self.fetch_one(sql, "setting a payout address").await?)
    }

    async fn remove_payout_address(&self, scope: TenantScope, network: &str) -> Result<bool> {
        let sql = Sql::new("DELETE FROM payout_addresses WHERE tenant_id = $1 AND network = $2")
            .arg(scope.tenant_id().as_uuid())
            .arg(network);
        Ok(self.execute(sql, "removing a payout address").await? > 0)
    }

    async fn payout_addresses(&self, scope: TenantScope) -> Result<Vec<PayoutAddress>> {
        let sql = Sql::new(
            "SELECT tenant_id, network, address, created_at, updated_at
             FROM payout_addresses WHERE tenant_id = $1 ORDER BY network",
        )
        .arg(scope.tenant_id().as_uuid());
        self.fetch_all(sql, "listing payout addresses")
            .await?
            .iter()
            .map(read_payout_address::<D>)
            .collect()
    }

    async fn create_resource(&self, new: NewResource) -> Result<Resource> {
        new.check()?;
        let mut tx = self.begin_write().await?;
        let m = &new.metadata;
        Sql::<D>::new(format!(
            "INSERT INTO resources (id, tenant_id, origin, kind, url, method, tool, resource_key,
                 name, description, mime_type, service_name, tags, icon_url, status,
                 current_version, search_tags, search_fields, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13{}, $14, $15,
                 1, $16, $17, $18, $18)",
            D::AS_JSON
        ))
        .arg(new.id.as_uuid())
        .arg(new.tenant_id.as_uuid())
        .arg(new.origin.as_str())
        .arg(new.kind.as_str())
        .arg(&new.url)
        .arg(&new.method)
        .arg(&new.tool)
        .arg(resource_key(
            new.kind,
            &new.url,
            new.method.as_deref(),
            new.tool.as_deref(),
        ))
        .arg(&m.name)
        .arg(&m.description)
        .arg(&m.mime_type)
        .arg(&m.service_name)
        .arg(encode_json(&m.tags)?)
        .arg(&m.icon_url)
        .arg(new.status.as_str())
        .arg(search_tags(m))
        .arg(&new.search_fields)
        .arg(new.at)
        .execute(&mut tx, "creating a resource")
        .await?;
        insert_version::<D>(&mut tx, new.id, 1, &new.spec, new.at).await?;
        let created = fetch_resource::<D>(&mut tx, new.id, None, false)
            .await?
            .ok_or_else(|| Error::internal("creating a resource", "the new row is missing"))?;
        commit::<D>(tx).await?;
        Ok(created)
    }

    async fn find_resource(&self, scope: TenantScope, id: ResourceId) -> Result<Option<Resource>> {
        let mut conn = self.acquire("reading a resource").await?;
        fetch_resource::<D>(&mut conn, id, Some(scope.tenant_id()), false).await
    }

    async fn get_resource(&self, id: ResourceId) -> Result<Option<Resource>> {
        let mut conn = self.acquire("reading a resource").await?;
        fetch_resource::<D>(&mut conn, id, None, false).await
    }

    async fn list_resources(
        &self,
        scope: TenantScope,
        status: Option<ResourceStatus>,
        page: PageRequest,
    ) -> Result<Page<Resource>> {
        let mut sql = Sql::new(format!(
            "SELECT {}{RESOURCE_FROM} WHERE r.tenant_id = ",
            resource_columns::<D>()
        ));
        sql.push_arg(scope.tenant_id().as_uuid());
        if let Some(status) = status {
            sql.push(" AND r.status = ").push_arg(status.as_str());
        }
        push_page(&mut sql, &page);
        let resources = self
            .fetch_all(sql, "listing resources")
            .await?
            .iter()
            .map(read_resource::<D>)
            .collect::<Result<Vec<_>>>()?;
        Ok(page.finish(resources))
    }

    async fn change_resource(
        &self,
        scope: TenantScope,
        id: ResourceId,
        change: ResourceChange,
    ) -> Result<Option<Resource>> {
        change.check()?;
        let mut tx = self.begin_write().await?;
        let Some(current) = fetch_resource::<D>(&mut tx, id, Some(scope.tenant_id()), true).await?
        else {
            return Ok(None);
        };
        current.check_change(change.expected_version)?;
        apply_change::<D>(
            &mut tx,
            &current,
            &change.metadata,
            change.spec.as_ref(),
            &change.search_fields,
            change.at,
        )
        .await?;
        let changed = fetch_resource::<D>(&mut tx, id, None, false).await?;
        commit::<D>(tx).await?;
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
        let Some(current) = fetch_resource::<D>(&mut tx, id, Some(scope.tenant_id()), true).await?
        else {
            return Ok(None);
        };
        if current.status == status {
            return Ok(Some(current));
        }
        current.check_status_change(status)?;
        Sql::<D>::new("UPDATE resources SET status = $2, updated_at = $3 WHERE id = $1")
            .arg(id.as_uuid())
            .arg(status.as_str())
            .arg(at)
            .execute(&mut tx, "changing a resource's status")
            .await?;
        let changed = fetch_resource::<D>(&mut tx, id, None, false).await?;
        commit::<D>(tx).await?;
        Ok(changed)
    }

    async fn resource_versions(
        &self,
        scope: TenantScope,
        id: ResourceId,
    ) -> Result<Vec<ResourceVersion>> {
        let sql = Sql::new(format!(
            "SELECT v.version, v.spec{} AS spec, v.created_at, v.superseded_at
             FROM resource_versions v JOIN resources r ON r.id = v.resource_id
             WHERE v.resource_id = $1 AND r.tenant_id = $2 ORDER BY v.version",
            D::AS_TEXT
        ))
        .arg(id.as_uuid())
        .arg(scope.tenant_id().as_uuid());
        self.fetch_all(sql, "listing resource versions")
            .await?
            .iter()
            .map(|row| {
                let r = Cols::<D>::new(row);
                Ok(ResourceVersion {
                    resource_id: id,
                    version: version_number(r.i32("version")?)?,
                    spec: decode_spec(&r.text("spec")?)?,
                    created_at: r.time("created_at")?,
                    superseded_at: r.opt_time("superseded_at")?,
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
        Sql::<D>::new(format!(
            "INSERT INTO resources (id, tenant_id, origin, kind, url, method, tool, resource_key,
                 name, description, mime_type, service_name, tags, icon_url, status,
                 current_version, search_tags, search_fields, created_at, updated_at)
             VALUES ($1, $2, 'bazaar', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12{}, $13,
                 'published', 1, $14, $15, $16, $16)
             ON CONFLICT (tenant_id, resource_key) WHERE status <> 'archived' DO NOTHING",
            D::AS_JSON
        ))
        .arg(new_id.as_uuid())
        .arg(learned.tenant_id.as_uuid())
        .arg(learned.kind.as_str())
        .arg(&learned.url)
        .arg(&learned.method)
        .arg(&learned.tool)
        .arg(&key)
        .arg(&m.name)
        .arg(&m.description)
        .arg(&m.mime_type)
        .arg(&m.service_name)
        .arg(encode_json(&m.tags)?)
        .arg(&m.icon_url)
        .arg(search_tags(m))
        .arg(&learned.search_fields)
        .arg(learned.at)
        .execute(&mut tx, "learning a resource")
        .await?;
        let row = Sql::<D>::new(
            "SELECT id FROM resources
             WHERE tenant_id = $1 AND resource_key = $2 AND status <> 'archived'",
        )
        .arg(learned.tenant_id.as_uuid())
        .arg(&key)
        .fetch_one(&mut tx, "learning a resource")
        .await?;
        let id = ResourceId::from_uuid(Cols::<D>::new(&row).uuid("id")?);
        if id == new_id {
            insert_version::<D>(&mut tx, id, 1, &learned.spec, learned.at).await?;
        } else {
            let current = fetch_resource::<D>(&mut tx, id, None, true)
                .await?
                .ok_or_else(|| Error::internal("learning a resource", "the row vanished"))?;
            if current.origin == ResourceOrigin::Bazaar {
                let spec = (current.current.spec != learned.spec).then_some(&learned.spec);
                apply_change::<D>(
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
        let resource = fetch_resource::<D>(&mut tx, id, None, false)
            .await?
            .ok_or_else(|| Error::internal("learning a resource", "the row vanished"))?;
        commit::<D>(tx).await?;
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
        let mut count = Sql::new("SELECT count(*) AS total FROM resources r");
        push_catalog_filter(&mut count, filter);
        let total =
            Cols::<D>::new(&self.fetch_one(count, "counting the catalog").await?).i64("total")?;
        let mut sql = Sql::new(format!("SELECT {}{RESOURCE_FROM}", resource_columns::<D>()));
        push_catalog_filter(&mut sql, filter);
        sql.push(" ORDER BY r.updated_at DESC, r.id LIMIT ")
            .push_arg(i64::from(limit))
            .push(" OFFSET ")
            .push_arg(i64::try_from(offset).unwrap_or(i64::MAX));
        let items = self
            .fetch_all(sql, "listing the catalog")
            .await?
            .iter()
            .map(read_resource::<D>)
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
        let sql = D::catalog_search(&words, filter, offset, limit);
        self.fetch_all(sql, "searching the catalog")
            .await?
            .iter()
            .map(read_resource::<D>)
            .collect()
    }

    async fn resources_due_for_probe(
        &self,
        checked_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Resource>> {
        let mut sql = Sql::new(format!(
            "SELECT {}{RESOURCE_FROM} WHERE r.status = 'published' AND r.kind = 'http' \
             AND (r.health_checked_at IS NULL OR r.health_checked_at < ",
            resource_columns::<D>()
        ));
        sql.push_arg(checked_before)
            .push(") ORDER BY r.health_checked_at NULLS FIRST, r.id LIMIT ")
            .push_arg(i64::from(limit));
        self.fetch_all(sql, "finding resources to probe")
            .await?
            .iter()
            .map(read_resource::<D>)
            .collect()
    }

    async fn record_probe(&self, id: ResourceId, outcome: ProbeOutcome) -> Result<()> {
        let health = if outcome.healthy {
            ResourceHealth::Healthy
        } else {
            ResourceHealth::Unhealthy
        };
        let sql = Sql::new(format!(
            "UPDATE resources SET health = $2, health_checked_at = $3, health_detail = $4,
                 unhealthy_since = CASE WHEN $5 THEN NULL ELSE coalesce(unhealthy_since, $3) END,
                 hidden = CASE WHEN $5 THEN {no}
                     ELSE coalesce(unhealthy_since, $3) <= $6 END
             WHERE id = $1",
            no = D::FALSE
        ))
        .arg(id.as_uuid())
        .arg(health.as_str())
        .arg(outcome.at)
        .arg(&outcome.detail)
        .arg(outcome.healthy)
        .arg(outcome.hide_if_unhealthy_since);
        self.execute(sql, "recording a probe").await?;
        Ok(())
    }
}
