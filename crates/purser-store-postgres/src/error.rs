//! sqlx errors to domain errors. Constraint violations become their codes by constraint name;
//! a foreign key names the row the caller named that does not exist (`not_found`); text the
//! database refuses (NUL) is `invalid_input`; connection trouble is `unavailable`; the rest is
//! `internal` with the cause kept for the log.

use purser_domain::{Error, ErrorCode};

/// The foreign keys a caller's write can break, each with what is then not found: the row it
/// named (a tenant, a resource, a settlement). Every other foreign key links rows Purser
/// writes together in one transaction (ledger accounts, transfers, credit balances), and
/// breaking one is a bug, answered `internal`: [`INTERNAL_FOREIGN_KEYS`]. A test checks that
/// every foreign key of the schema is in one list or the other.
pub(crate) const FOREIGN_KEYS: &[(&str, &str)] = &[
    ("api_keys_tenant_id_fkey", "tenant"),
    ("credit_balances_tenant_id_fkey", "tenant"),
    ("escrow_schedules_tenant_id_fkey", "tenant"),
    ("grants_tenant_id_fkey", "tenant"),
    ("grants_resource_fkey", "resource"),
    ("grants_settlement_fkey", "settlement"),
    ("ledger_accounts_tenant_id_fkey", "tenant"),
    ("meters_tenant_id_fkey", "tenant"),
    ("payment_identifiers_tenant_id_fkey", "tenant"),
    ("payout_addresses_tenant_id_fkey", "tenant"),
    ("resource_accepts_resource_id_fkey", "resource"),
    ("resource_versions_resource_id_fkey", "resource"),
    ("resources_tenant_id_fkey", "tenant"),
    ("routing_policies_tenant_id_fkey", "tenant"),
    ("settlement_attempts_settlement_id_fkey", "settlement"),
    ("settlements_tenant_id_fkey", "tenant"),
];

/// Foreign keys between rows Purser writes itself, in one transaction.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const INTERNAL_FOREIGN_KEYS: &[&str] = &[
    "credit_balances_account_fkey",
    "credit_reservations_balance_fkey",
    "credit_reservations_hold_transfer_id_fkey",
    "credit_reservations_use_transfer_id_fkey",
    "ledger_transfers_credit_fkey",
    "ledger_transfers_debit_fkey",
    "ledger_transfers_settlement_id_fkey",
];

/// `character_not_in_repertoire` (a NUL byte in `text`) and `untranslatable_character`
/// (`\u0000` in `jsonb`). The domain's text rules refuse both before any SQL; this keeps a
/// value that slipped past them a refusal rather than an internal error.
const REFUSED_CHARACTER: &[&str] = &["22021", "22P05"];

pub(crate) fn map_error(context: &'static str, err: sqlx::Error) -> Error {
    if let sqlx::Error::Database(db) = &err {
        match db.constraint() {
            Some("tenants_name_normalized_key") => {
                return Error::new(ErrorCode::TenantNameTaken, "a tenant with this name exists");
            }
            Some("resources_tenant_key") => return purser_domain::registry::resource_taken(),
            Some("meters_tenant_slug_key") => {
                return Error::new(
                    ErrorCode::MeterSlugTaken,
                    "the tenant has a meter with this slug",
                );
            }
            Some("settlements_escrow_in_flight_key") => {
                return purser_domain::settlement::escrow_operation_in_flight();
            }
            Some("credit_balances_within_u128") => {
                return Error::invalid_input(
                    "the credit balance would exceed the largest supported amount",
                );
            }
            Some(name) => {
                if let Some((_, what)) = FOREIGN_KEYS.iter().find(|(key, _)| *key == name) {
                    return Error::not_found(what);
                }
            }
            None => {}
        }
        if db
            .code()
            .is_some_and(|code| REFUSED_CHARACTER.contains(&&*code))
        {
            tracing::warn!(context, error = %db, "the database refused a character the text rules let through");
            return Error::invalid_input(
                "a text or JSON value holds a character that cannot be stored (NUL)",
            );
        }
    }
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => Error::unavailable(context, err),
        other => Error::internal(context, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PgStore, PgStoreOptions};

    /// A foreign key added without saying what breaking it means fails here.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_foreign_key_is_mapped_or_internal() {
        let database = purser_testkit::postgres::TestDatabase::create().await;
        let store = PgStore::connect(database.url(), &PgStoreOptions::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let keys: Vec<String> =
            sqlx::query_scalar("SELECT conname::text FROM pg_constraint WHERE contype = 'f'")
                .fetch_all(store.pool())
                .await
                .unwrap();
        assert!(!keys.is_empty());
        for key in &keys {
            let mapped = FOREIGN_KEYS.iter().any(|(name, _)| name == key);
            let internal = INTERNAL_FOREIGN_KEYS.contains(&key.as_str());
            assert!(
                mapped != internal,
                "foreign key {key} must be in exactly one of FOREIGN_KEYS and INTERNAL_FOREIGN_KEYS"
            );
        }
        for (name, _) in FOREIGN_KEYS {
            assert!(
                keys.iter().any(|key| key == name),
                "{name} is not in the schema"
            );
        }
    }
}
