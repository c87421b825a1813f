//! A new grant is checked before it is inserted, in one write transaction: SQLite reports a
//! broken foreign key without saying which, so the grant's tenant, resource and settlement are
//! looked up first, and a settlement's earlier grant is answered without inserting.

use purser_domain::entitlement::{Grant, GrantScope, NewGrant};
use purser_domain::id::{ResourceId, SettlementId, TenantId};
use purser_domain::{Error, Result};
use purser_store_sql::grants::{GrantDialect, insert_grant, read_grant, settlement_grant};
use purser_store_sql::{Sql, commit};
use sqlx::SqliteConnection;
use uuid::Uuid;

use crate::{SqliteDialect, SqliteStore};

/// Whether `sql` finds a row for the ids bound in order.
async fn exists(conn: &mut SqliteConnection, sql: &'static str, ids: &[Uuid]) -> Result<bool> {
    let mut query = Sql::<SqliteDialect>::new(sql);
    for id in ids {
        query = query.arg(*id);
    }
    Ok(query
        .fetch_optional(conn, "checking a grant's references")
        .await?
        .is_some())
}

/// Names the row a new grant refers to that the tenant lacks.
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

impl GrantDialect for SqliteDialect {
    async fn create_grant(store: &SqliteStore, grant: NewGrant) -> Result<Grant> {
        let mut tx = store.begin_write().await?;
        if let Some(settlement) = grant.settlement_id
            && let Some(existing) = settlement_grant::<Self>(&mut tx, settlement).await?
        {
            // The settlement already bought a grant: answer it, if the settlement is the
            // tenant's (the composite foreign key makes a grant's settlement its tenant's).
            if existing.tenant_id != grant.tenant_id {
                return Err(Error::not_found(SettlementId::WHAT));
            }
            return Ok(existing);
        }
        check_references(&mut tx, &grant).await?;
        let row = insert_grant::<Self>(&grant, "")
            .fetch_one(&mut tx, "creating a grant")
            .await?;
        commit::<Self>(tx).await?;
        read_grant::<Self>(&row)
    }
}
