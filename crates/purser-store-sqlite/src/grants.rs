//! Grants of repeat access. A use is counted by one `UPDATE` that picks a holding grant and
//! increments it; SQLite runs a writing statement under the database's single write lock from
//! its first read, so no other writer comes between the pick and the count.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use purser_domain::auth::TenantScope;
use purser_domain::entitlement::{Grant, GrantFilter, GrantScope, NewGrant, check_wallet};
use purser_domain::id::{GrantId, ResourceId, SettlementId, TenantId};
use purser_domain::page::{Page, PageRequest};
use purser_domain::repo::GrantRepository;
use purser_domain::{Error, Result};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use uuid::Uuid;

use crate::error::db_error;
use crate::{SqliteStore, from_micros, to_micros};

const GRANT_COLUMNS: &str = "id, tenant_id, resource_id, group_name, wallet, settlement_id, \
     expires_at, uses_allowed, uses_count, revoked_at, created_at";

#[derive(sqlx::FromRow)]
struct GrantRow {
    id: Uuid,
    tenant_id: Uuid,
    resource_id: Option<Uuid>,
    group_name: Option<String>,
    wallet: String,
    settlement_id: Option<Uuid>,
    expires_at: Option<i64>,
    uses_allowed: Option<i64>,
    uses_count: i64,
    revoked_at: Option<i64>,
    created_at: i64,
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
            expires_at: row.expires_at.map(from_micros).transpose()?,
            uses_allowed: row.uses_allowed.map(uses).transpose()?,
            uses_count: uses(row.uses_count)?,
            revoked_at: row.revoked_at.map(from_micros).transpose()?,
            created_at: from_micros(row.created_at)?,
        })
    }
}

/// Appends keyset conditions, order and limit for a newest-first listing: `after` is a cursor
/// in that order, so it selects smaller (older) ids.
fn push_page_newest_first(query: &mut QueryBuilder<Sqlite>, page: &PageRequest) {
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

/// Whether `sql` finds a row for the ids bound in order.
async fn exists(conn: &mut SqliteConnection, sql: &'static str, ids: &[Uuid]) -> Result<bool> {
    let mut query = sqlx::query_scalar::<_, i64>(sql);
    for id in ids {
        query = query.bind(*id);
    }
    query
        .fetch_optional(&mut *conn)
        .await
        .map(|row| row.is_some())
        .map_err(db_error("checking a grant's references"))
}

/// Names the row a new grant refers to that the tenant lacks. SQLite reports a broken foreign
/// key without saying which, so the write transaction checks them first.
async fn check_references(conn: &mut SqliteConnection, grant: &NewGrant) -> Result<()> {
    let tenant = grant.tenant_id.as_uuid();
    if !exists(conn, "SELECT 1 FROM tenants WHERE id = $1", &[tenant]).await? {
        return Err(Error::not_found(TenantId::WHAT));
    }
    if let GrantScope::Resource(resource) = &grant.scope
        && !exists(
            conn,
            "SELECT 1 FROM resources WHERE id = $1 AND tenant_id = $2",
            &[resource.as_uuid(), tenant],
        )
        .await?
    {
        return Err(Error::not_found(ResourceId::WHAT));
    }
    if let Some(settlement) = grant.settlement_id
        && !exists(
            conn,
            "SELECT 1 FROM settlements WHERE id = $1 AND tenant_id = $2",
            &[settlement.as_uuid(), tenant],
        )
        .await?
    {
        return Err(Error::not_found(SettlementId::WHAT));
    }
    Ok(())
}

#[async_trait]
impl GrantRepository for SqliteStore {
    async fn create_grant(&self, grant: NewGrant) -> Result<Grant> {
        grant.validate()?;
        let mut tx = self.begin_write().await?;
        if let Some(settlement) = grant.settlement_id {
            // The settlement already bought a grant: answer it, if the settlement is the
            // tenant's (the composite foreign key makes a grant's settlement its tenant's).
            let existing = sqlx::query_as::<_, GrantRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {GRANT_COLUMNS} FROM grants WHERE settlement_id = $1"
            )))
            .bind(settlement.as_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error("reading a settlement's grant"))?;
            if let Some(row) = existing {
                if row.tenant_id != grant.tenant_id.as_uuid() {
                    return Err(Error::not_found(SettlementId::WHAT));
                }
                return row.try_into();
            }
        }
        check_references(&mut tx, &grant).await?;
        let (resource_id, group_name) = match &grant.scope {
            GrantScope::Resource(resource) => (Some(resource.as_uuid()), None),
            GrantScope::Group(group) => (None, Some(group.as_str())),
        };
        let row = sqlx::query_as::<_, GrantRow>(sqlx::AssertSqlSafe(format!(
            "INSERT INTO grants (id, tenant_id, resource_id, group_name, wallet, settlement_id,
                 expires_at, uses_allowed, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             RETURNING {GRANT_COLUMNS}"
        )))
        .bind(GrantId::new().as_uuid())
        .bind(grant.tenant_id.as_uuid())
        .bind(resource_id)
        .bind(group_name)
        .bind(&grant.wallet)
        .bind(grant.settlement_id.map(|s| s.as_uuid()))
        .bind(grant.expires_at.map(to_micros))
        .bind(grant.uses_allowed.map(i64::from))
        .bind(to_micros(purser_domain::time::now()))
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error("creating a grant"))?;
        tx.commit().await.map_err(db_error("committing a grant"))?;
        row.try_into()
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
        // then the oldest — the same order as on PostgreSQL.
        //
        // Concurrency: the statement runs in its own write transaction, which takes SQLite's
        // write lock before its first read (waiting up to the busy timeout), so the subquery's
        // pick and the increment see no other writer in between: the equivalent of the
        // `BEGIN IMMEDIATE` that multi-statement writes use here.
        sqlx::query_as::<_, GrantRow>(sqlx::AssertSqlSafe(format!(
            "UPDATE grants SET uses_count = uses_count + 1
             WHERE id = (
                 SELECT id FROM grants
                 WHERE tenant_id = $1 AND wallet = $2
                   AND (resource_id = $3 OR group_name = $4)
                   AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $5)
                   AND (uses_allowed IS NULL OR uses_count < uses_allowed)
                 ORDER BY uses_allowed IS NOT NULL, expires_at ASC NULLS LAST, id
                 LIMIT 1)
             RETURNING {GRANT_COLUMNS}"
        )))
        .bind(scope.tenant_id().as_uuid())
        .bind(wallet)
        .bind(resource.as_uuid())
        .bind(group)
        .bind(to_micros(now))
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
        let mut query = QueryBuilder::<Sqlite>::new(
            "UPDATE grants SET uses_count = MIN(grants.uses_count + batch.column2, 4294967295) FROM (",
        );
        query.push_values(uses, |mut row, (id, n)| {
            row.push_bind(id.as_uuid()).push_bind(i64::from(*n));
        });
        query.push(") AS batch WHERE grants.id = batch.column1 AND grants.uses_allowed IS NULL");
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
        let mut query = QueryBuilder::<Sqlite>::new(format!(
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
                .push_bind(to_micros(now))
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
        .bind(to_micros(at))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("revoking a grant"))?
        .map(Grant::try_from)
        .transpose()
    }
}
