//! A new grant is inserted first: a settlement's second grant meets the partial unique index
//! and answers the first, and a missing tenant, resource or settlement breaks a foreign key
//! that names it (`error::FOREIGN_KEYS`). A grant's resource and settlement are composite
//! foreign keys with its tenant, so they cannot belong to another tenant.

use purser_domain::entitlement::{Grant, NewGrant};
use purser_domain::id::SettlementId;
use purser_domain::{Error, Result};
use purser_store_sql::grants::{GrantDialect, insert_grant, read_grant, settlement_grant};

use crate::{PgDialect, PgStore};

impl GrantDialect for PgDialect {
    async fn create_grant(store: &PgStore, grant: NewGrant) -> Result<Grant> {
        let insert = insert_grant::<Self>(
            &grant,
            " ON CONFLICT (settlement_id) WHERE settlement_id IS NOT NULL DO NOTHING",
        );
        if let Some(row) = store.fetch_optional(insert, "creating a grant").await? {
            return read_grant::<Self>(&row);
        }
        // The settlement already bought a grant: answer it, if the settlement is the tenant's.
        let settlement = grant.settlement_id.ok_or_else(|| {
            Error::internal("creating a grant", "a conflict without a settlement")
        })?;
        let mut conn = store.acquire("reading a settlement's grant").await?;
        settlement_grant::<Self>(&mut conn, settlement)
            .await?
            .filter(|existing| existing.tenant_id == grant.tenant_id)
            .ok_or_else(|| Error::not_found(SettlementId::WHAT))
    }
}
