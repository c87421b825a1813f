//! sqlx errors to domain errors. Constraint violations become their codes by constraint name;
//! connection trouble is `unavailable`; the rest is `internal` with the cause kept for the log.

use purser_domain::{Error, ErrorCode};

pub(crate) fn db_error(context: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |err| {
        if let sqlx::Error::Database(db) = &err {
            match db.constraint() {
                Some("tenants_name_normalized_key") => {
                    return Error::new(
                        ErrorCode::TenantNameTaken,
                        "a tenant with this name exists",
                    );
                }
                Some("api_keys_tenant_id_fkey") => return Error::not_found("tenant"),
                Some("resources_tenant_key") => return purser_domain::registry::resource_taken(),
                Some("grants_tenant_id_fkey") => return Error::not_found("tenant"),
                Some("grants_resource_fkey") => return Error::not_found("resource"),
                Some("grants_settlement_fkey") => return Error::not_found("settlement"),
                Some("ledger_accounts_tenant_id_fkey" | "credit_balances_tenant_id_fkey") => {
                    return Error::not_found("tenant");
                }
                Some("meters_tenant_slug_key") => {
                    return Error::new(
                        ErrorCode::MeterSlugTaken,
                        "the tenant has a meter with this slug",
                    );
                }
                Some("meters_tenant_id_fkey") => return Error::not_found("tenant"),
                Some("credit_balances_within_u128") => {
                    return Error::invalid_input(
                        "the credit balance would exceed the largest supported amount",
                    );
                }
                _ => {}
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
}

/// A row that does not decode into the domain (an unknown enum text): a bug or a tampered row.
pub(crate) fn corrupt_row(what: &'static str, err: Error) -> Error {
    Error::internal(what, err)
}
