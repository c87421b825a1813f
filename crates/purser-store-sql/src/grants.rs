//! Grants of repeat access. A use is counted by one `UPDATE` that picks a holding grant, checks
//! it and increments it, so a grant of N uses admits exactly N requests however many instances
//! ask at once.

use std::fmt::{self, Display};
use std::future::Future;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use purser_domain::auth::TenantScope;
use purser_domain::entitlement::{Grant, GrantFilter, GrantScope, NewGrant, check_wallet};
use purser_domain::id::{GrantId, ResourceId, SettlementId, TenantId};
use purser_domain::page::{Page, PageRequest};
use purser_domain::repo::GrantRepository;
use purser_domain::{Error, Result};

use crate::{Cols, Conn, Dialect, Row, Sql, SqlStore, push_page_newest_first};

/// How a backend stores a new grant.
pub trait GrantDialect: Dialect {
    /// Stores `grant` (validated), with [`insert_grant`]; a second grant for the same
    /// settlement answers the first one ([`settlement_grant`]) if that settlement is the
    /// grant's tenant's, and `not_found` (of the tenant, resource or settlement) when the grant
    /// names a row its tenant lacks. PostgreSQL inserts first and learns both from the
    /// statement (a conflict, a named foreign key); SQLite, whose foreign key errors name no
    /// key, checks first in its write transaction.
    fn create_grant(
        store: &SqlStore<Self>,
        grant: NewGrant,
    ) -> impl Future<Output = Result<Grant>> + Send;
}

pub const GRANT_COLUMNS: &str = "id, tenant_id, resource_id, group_name, wallet, settlement_id, \
     expires_at, uses_allowed, uses_count, revoked_at, created_at";

/// The conditions under which a grant admits a request at the time bound as `$5`, as in
/// [`Grant::holds_at`].
const HOLDS: &str = "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $5) \
     AND (uses_allowed IS NULL OR uses_count < uses_allowed)";

fn uses(value: i64) -> Result<u32> {
    u32::try_from(value).map_err(|e| Error::internal("decoding a grant's uses", e))
}

pub fn read_grant<D: Dialect>(row: &Row<D>) -> Result<Grant> {
    let r = Cols::<D>::new(row);
    let scope = match (r.opt_uuid("resource_id")?, r.opt_text("group_name")?) {
        (Some(resource), None) => GrantScope::Resource(ResourceId::from_uuid(resource)),
        (None, Some(group)) => GrantScope::Group(group),
        _ => {
            return Err(Error::internal(
                "decoding a grant row",
                "a grant needs a resource or a group",
            ));
        }
    };
    Ok(Grant {
        id: GrantId::from_uuid(r.uuid("id")?),
        tenant_id: TenantId::from_uuid(r.uuid("tenant_id")?),
        scope,
        wallet: r.text("wallet")?,
        settlement_id: r.opt_uuid("settlement_id")?.map(SettlementId::from_uuid),
        expires_at: r.opt_time("expires_at")?,
        uses_allowed: r.opt_i64("uses_allowed")?.map(uses).transpose()?,
        uses_count: uses(r.i64("uses_count")?)?,
        revoked_at: r.opt_time("revoked_at")?,
        created_at: r.time("created_at")?,
    })
}

/// The statement that stores `grant`, `on_conflict` (a clause, or nothing) before its
/// `RETURNING`.
pub fn insert_grant<D: Dialect>(grant: &NewGrant, on_conflict: &str) -> Sql<D> {
    let (resource_id, group_name) = match &grant.scope {
        GrantScope::Resource(resource) => (Some(resource.as_uuid()), None),
        GrantScope::Group(group) => (None, Some(group.as_str())),
    };
    Sql::new(format!(
        "INSERT INTO grants (id, tenant_id, resource_id, group_name, wallet, settlement_id,
             expires_at, uses_allowed, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9){on_conflict}
         RETURNING {GRANT_COLUMNS}"
    ))
    .arg(GrantId::new().as_uuid())
    .arg(grant.tenant_id.as_uuid())
    .arg(resource_id)
    .arg(group_name)
    .arg(&grant.wallet)
    .arg(grant.settlement_id.map(|s| s.as_uuid()))
    .arg(grant.expires_at)
    .arg(grant.uses_allowed.map(i64::from))
    .arg(purser_domain::time::now())
}

/// The grant `settlement` bought, if any, whichever tenant's.
pub async fn settlement_grant<D: Dialect>(
    conn: &mut Conn<D>,
    settlement: SettlementId,
) -> Result<Option<Grant>> {
    Sql::<D>::new(format!(
        "SELECT {GRANT_COLUMNS} FROM grants WHERE settlement_id = $1"
    ))
    .arg(settlement.as_uuid())
    .fetch_optional(conn, "reading a settlement's grant")
    .await?
    .as_ref()
    .map(read_grant::<D>)
    .transpose()
}

/// The statement that counts a use (see [`GrantRepository::use_grant`]).
fn use_grant_sql<D: Dialect>() -> impl Display {
    fmt::from_fn(|f| {
        write!(
            f,
            "UPDATE grants SET uses_count = uses_count + 1
             WHERE id = (
                 SELECT id FROM grants
                 WHERE tenant_id = $1 AND wallet = $2
                   AND (resource_id = $3 OR group_name = $4) AND {HOLDS}
                 ORDER BY uses_allowed IS NOT NULL, expires_at ASC NULLS LAST, id
                 LIMIT 1{lock})
               AND tenant_id = $1 AND {HOLDS}
             RETURNING {GRANT_COLUMNS}",
            lock = D::FOR_UPDATE
        )
    })
}

#[async_trait]
impl<D: GrantDialect> GrantRepository for SqlStore<D> {
    async fn create_grant(&self, grant: NewGrant) -> Result<Grant> {
        grant.validate()?;
        D::create_grant(self, grant).await
    }

    async fn use_grant(
        &self,
        scope: TenantScope,
        wallet: &str,
        resource: ResourceId,
        group: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<Grant>> {
        check_wallet(wallet)?;
        // Which grant pays for the use: one without a count first (using it costs the wallet
        // nothing), then the one that lapses soonest (so the fewest paid uses go to waste),
        // then the oldest.
        //
        // Concurrency on PostgreSQL, at READ COMMITTED: the subquery locks its pick with `FOR
        // UPDATE`. A caller that finds the pick locked waits for the holder's commit, then
        // checks the row's new version against the conditions again; if the last use went to
        // the holder, the row is dropped and the next candidate is locked instead (PostgreSQL
        // applies `LIMIT` above the row locking, so a dropped row does not use up the limit).
        // The outer `UPDATE` checks the conditions once more on the latest version, and the
        // table's CHECK keeps `uses_count <= uses_allowed` whatever happens. `SKIP LOCKED`
        // would be faster under contention but wrong: a caller would skip a grant that still
        // has uses because another caller holds it for a moment, and answer `None` to a wallet
        // that paid. Callers lock candidates in one order (the sort keys never change after
        // insert), so they cannot deadlock.
        //
        // On SQLite the statement runs in its own write transaction, which takes the database's
        // write lock before its first read (waiting up to the busy timeout), so the pick and
        // the increment see no other writer in between (the outer check is then redundant).
        let sql = Sql::new(use_grant_sql::<D>().to_string())
            .arg(scope.tenant_id().as_uuid())
            .arg(wallet)
            .arg(resource.as_uuid())
            .arg(group)
            .arg(now);
        self.fetch_optional(sql, "using a grant")
            .await?
            .as_ref()
            .map(read_grant::<D>)
            .transpose()
    }

    async fn add_grant_uses(&self, uses: &[(GrantId, u32)]) -> Result<()> {
        if uses.is_empty() {
            return Ok(());
        }
        // One statement for the batch; the count saturates at what a grant can report.
        let mut sql = Sql::new(format!(
            "UPDATE grants SET uses_count = {}(grants.uses_count + batch.column2, 4294967295) \
             FROM (VALUES ",
            D::LEAST
        ));
        for (at, (id, n)) in uses.iter().enumerate() {
            sql.push(if at == 0 { "(" } else { ", (" })
                .push_arg(id.as_uuid())
                .push(", ")
                .push_arg(i64::from(*n))
                .push(")");
        }
        sql.push(") AS batch WHERE grants.id = batch.column1 AND grants.uses_allowed IS NULL");
        self.execute(sql, "adding counted grant uses").await?;
        Ok(())
    }

    async fn find_grant(&self, scope: TenantScope, id: GrantId) -> Result<Option<Grant>> {
        let sql = Sql::new(format!(
            "SELECT {GRANT_COLUMNS} FROM grants WHERE id = $1 AND tenant_id = $2"
        ))
        .arg(id.as_uuid())
        .arg(scope.tenant_id().as_uuid());
        self.fetch_optional(sql, "reading a grant")
            .await?
            .as_ref()
            .map(read_grant::<D>)
            .transpose()
    }

    async fn list_grants(
        &self,
        scope: TenantScope,
        filter: GrantFilter,
        now: DateTime<Utc>,
        page: PageRequest,
    ) -> Result<Page<Grant>> {
        let mut sql = Sql::new(format!(
            "SELECT {GRANT_COLUMNS} FROM grants WHERE tenant_id = "
        ));
        sql.push_arg(scope.tenant_id().as_uuid());
        if let Some(wallet) = &filter.wallet {
            check_wallet(wallet)?;
            sql.push(" AND wallet = ").push_arg(wallet);
        }
        if let Some(resource) = filter.resource_id {
            sql.push(" AND resource_id = ").push_arg(resource.as_uuid());
        }
        if filter.active_only {
            sql.push(" AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ")
                .push_arg(now)
                .push(") AND (uses_allowed IS NULL OR uses_count < uses_allowed)");
        }
        push_page_newest_first(&mut sql, &page);
        let grants = self
            .fetch_all(sql, "listing grants")
            .await?
            .iter()
            .map(read_grant::<D>)
            .collect::<Result<Vec<_>>>()?;
        Ok(page.finish(grants))
    }

    async fn revoke_grant(
        &self,
        scope: TenantScope,
        id: GrantId,
        at: DateTime<Utc>,
    ) -> Result<Option<Grant>> {
        let sql = Sql::new(format!(
            "UPDATE grants SET revoked_at = COALESCE(revoked_at, $3)
             WHERE id = $1 AND tenant_id = $2
             RETURNING {GRANT_COLUMNS}"
        ))
        .arg(id.as_uuid())
        .arg(scope.tenant_id().as_uuid())
        .arg(at);
        self.fetch_optional(sql, "revoking a grant")
            .await?
            .as_ref()
            .map(read_grant::<D>)
            .transpose()
    }
}
