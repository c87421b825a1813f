//! Grants of repeat access. A use is counted by one `UPDATE` that picks a holding grant, locks
//! it, checks it again and increments it, so a grant of N uses admits exactly N requests however
//! many instances ask at once.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use purser_domain::auth::TenantScope;
use purser_domain::entitlement::{Grant, GrantFilter, GrantScope, NewGrant, check_wallet};
use purser_domain::id::{GrantId, ResourceId, SettlementId, TenantId};
use purser_domain::page::{Page, PageRequest};
use purser_domain::repo::GrantRepository;
use purser_domain::{Error, Result};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use crate::PgStore;
use crate::error::db_error;

const GRANT_COLUMNS: &str = "id, tenant_id, resource_id, group_name, wallet, settlement_id, \
     expires_at, uses_allowed, uses_count, revoked_at, created_at";

/// The conditions under which a grant admits a request at the time bound as `$5`, as in
/// [`Grant::holds_at`].
const HOLDS: &str = "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $5) \
     AND (uses_allowed IS NULL OR uses_count < uses_allowed)";

#[derive(sqlx::FromRow)]
struct GrantRow {
    id: Uuid,
    tenant_id: Uuid,
    resource_id: Option<Uuid>,
    group_name: Option<String>,
    wallet: String,
    settlement_id: Option<Uuid>,
    expires_at: Option<DateTime<Utc>>,
    uses_allowed: Option<i64>,
    uses_count: i64,
    revoked_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

fn uses(value: i64) -> Result<u32> {
    u32::try_from(value).map_err(|e| Error::internal("decoding a grant's uses", e))
}

impl TryFrom<GrantRow> for Grant {
    type Error = Error;

    fn try_from(row: GrantRow) -> Result<Self> {
        let scope = match (row.resource_id, row.group_name) {
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
            id: GrantId::from_uuid(row.id),
            tenant_id: TenantId::from_uuid(row.tenant_id),
            scope,
            wallet: row.wallet,
            settlement_id: row.settlement_id.map(SettlementId::from_uuid),
            expires_at: row.expires_at,
            uses_allowed: row.uses_allowed.map(uses).transpose()?,
            uses_count: uses(row.uses_count)?,
            revoked_at: row.revoked_at,
            created_at: row.created_at,
        })
    }
}

/// Appends keyset conditions, order and limit for a newest-first listing: `after` is a cursor
/// in that order, so it selects smaller (older) ids.
fn push_page_newest_first(query: &mut QueryBuilder<Postgres>, page: &PageRequest) {
    if let Some(after) = page.after {
        query.push(" AND id < ").push_bind(after);
    }
    if let Some(before) = page.before {
        query.push(" AND id > ").push_bind(before);
    }
    query.push(if page.from_end {
        " ORDER BY id ASC"
    } else {
        " ORDER BY id DESC"
    });
    query.push(" LIMIT ").push_bind(page.fetch_limit());
}

#[async_trait]
impl GrantRepository for PgStore {
    async fn create_grant(&self, grant: NewGrant) -> Result<Grant> {
        grant.validate()?;
        let (resource_id, group_name) = match &grant.scope {
            GrantScope::Resource(resource) => (Some(resource.as_uuid()), None),
            GrantScope::Group(group) => (None, Some(group.as_str())),
        };
        let inserted = sqlx::query_as::<_, GrantRow>(sqlx::AssertSqlSafe(format!(
            "INSERT INTO grants (id, tenant_id, resource_id, group_name, wallet, settlement_id,
                 expires_at, uses_allowed, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (settlement_id) WHERE settlement_id IS NOT NULL DO NOTHING
             RETURNING {GRANT_COLUMNS}"
        )))
        .bind(GrantId::new().as_uuid())
        .bind(grant.tenant_id.as_uuid())
        .bind(resource_id)
        .bind(group_name)
        .bind(&grant.wallet)
        .bind(grant.settlement_id.map(|s| s.as_uuid()))
        .bind(grant.expires_at)
        .bind(grant.uses_allowed.map(i64::from))
        .bind(purser_domain::time::now())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("creating a grant"))?;
        if let Some(row) = inserted {
            return row.try_into();
        }
        // The settlement already bought a grant: answer it, if the settlement is the tenant's.
        let settlement_id = grant.settlement_id.ok_or_else(|| {
            Error::internal("creating a grant", "a conflict without a settlement")
        })?;
        sqlx::query_as::<_, GrantRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {GRANT_COLUMNS} FROM grants WHERE settlement_id = $1 AND tenant_id = $2"
        )))
        .bind(settlement_id.as_uuid())
        .bind(grant.tenant_id.as_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("reading a settlement's grant"))?
        .ok_or_else(|| Error::not_found(SettlementId::WHAT))?
        .try_into()
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
        // Concurrency, at READ COMMITTED: the subquery locks its pick with `FOR UPDATE`. A caller
        // that finds the pick locked waits for the holder's commit, then checks the row's new
        // version against the conditions again; if the last use went to the holder, the row is
        // dropped and the next candidate is locked instead (PostgreSQL applies `LIMIT` above
        // the row locking, so a dropped row does not use up the limit). The outer `UPDATE`
        // checks the conditions once more on the latest version, and the table's CHECK keeps
        // `uses_count <= uses_allowed` whatever happens. `SKIP LOCKED` would be faster under
        // contention but wrong: a caller would skip a grant that still has uses because another
        // caller holds it for a moment, and answer `None` to a wallet that paid. Callers lock
        // candidates in one order (the sort keys never change after insert), so they cannot
        // deadlock.
        let sql = format!(
            "UPDATE grants SET uses_count = uses_count + 1
             WHERE id = (
                 SELECT id FROM grants
                 WHERE tenant_id = $1 AND wallet = $2
                   AND (resource_id = $3 OR group_name = $4) AND {HOLDS}
                 ORDER BY uses_allowed IS NOT NULL, expires_at ASC NULLS LAST, id
                 LIMIT 1
                 FOR UPDATE)
               AND tenant_id = $1 AND {HOLDS}
             RETURNING {GRANT_COLUMNS}"
        );
        sqlx::query_as::<_, GrantRow>(sqlx::AssertSqlSafe(sql))
            .bind(scope.tenant_id().as_uuid())
            .bind(wallet)
            .bind(resource.as_uuid())
            .bind(group)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error("using a grant"))?
            .map(Grant::try_from)
            .transpose()
    }

    async fn add_grant_uses(&self, uses: &[(GrantId, u32)]) -> Result<()> {
        if uses.is_empty() {
            return Ok(());
        }
        // One statement for the batch; the count saturates at what a grant can report.
        let mut query = QueryBuilder::<Postgres>::new(
            "UPDATE grants SET uses_count = LEAST(grants.uses_count + batch.n, 4294967295) FROM (",
        );
        query.push_values(uses, |mut row, (id, n)| {
            row.push_bind(id.as_uuid()).push_bind(i64::from(*n));
        });
        query.push(") AS batch(id, n) WHERE grants.id = batch.id AND grants.uses_allowed IS NULL");
        query
            .build()
            .execute(&self.pool)
            .await
            .map_err(db_error("adding counted grant uses"))?;
        Ok(())
    }

    async fn find_grant(&self, scope: TenantScope, id: GrantId) -> Result<Option<Grant>> {
        sqlx::query_as::<_, GrantRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {GRANT_COLUMNS} FROM grants WHERE id = $1 AND tenant_id = $2"
        )))
        .bind(id.as_uuid())
        .bind(scope.tenant_id().as_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("reading a grant"))?
        .map(Grant::try_from)
        .transpose()
    }

    async fn list_grants(
        &self,
        scope: TenantScope,
        filter: GrantFilter,
        now: DateTime<Utc>,
        page: PageRequest,
    ) -> Result<Page<Grant>> {
        let mut query = QueryBuilder::<Postgres>::new(format!(
            "SELECT {GRANT_COLUMNS} FROM grants WHERE tenant_id = "
        ));
        query.push_bind(scope.tenant_id().as_uuid());
        if let Some(wallet) = &filter.wallet {
            check_wallet(wallet)?;
            query.push(" AND wallet = ").push_bind(wallet.clone());
        }
        if let Some(resource) = filter.resource_id {
            query
                .push(" AND resource_id = ")
                .push_bind(resource.as_uuid());
        }
        if filter.active_only {
            query
                .push(" AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ")
                .push_bind(now)
                .push(") AND (uses_allowed IS NULL OR uses_count < uses_allowed)");
        }
        push_page_newest_first(&mut query, &page);
        let grants = query
            .build_query_as::<GrantRow>()
            .fetch_all(&self.pool)
            .await
            .map_err(db_error("listing grants"))?
            .into_iter()
            .map(Grant::try_from)
            .collect::<Result<Vec<_>>>()?;
        Ok(page.finish(grants))
    }

    async fn revoke_grant(
        &self,
        scope: TenantScope,
        id: GrantId,
        at: DateTime<Utc>,
    ) -> Result<Option<Grant>> {
        sqlx::query_as::<_, GrantRow>(sqlx::AssertSqlSafe(format!(
            "UPDATE grants SET revoked_at = COALESCE(revoked_at, $3)
             WHERE id = $1 AND tenant_id = $2
             RETURNING {GRANT_COLUMNS}"
        )))
        .bind(id.as_uuid())
        .bind(scope.tenant_id().as_uuid())
        .bind(at)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("revoking a grant"))?
        .map(Grant::try_from)
        .transpose()
    }
}
