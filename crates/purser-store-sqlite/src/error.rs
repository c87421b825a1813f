//! sqlx errors to domain errors. SQLite names the violated column rather than the constraint,
//! so constraint violations are recognised by kind and column; a lock wait that ran out is
//! `unavailable` (retry), like a lost connection; the rest is `internal`.

use purser_domain::{Error, ErrorCode};
use sqlx::error::ErrorKind;

pub(crate) fn map_error(context: &'static str, err: sqlx::Error) -> Error {
    if let sqlx::Error::Database(db) = &err {
        let message = db.message();
        match db.kind() {
            ErrorKind::UniqueViolation if message.contains("tenants.name_normalized") => {
                return Error::new(ErrorCode::TenantNameTaken, "a tenant with this name exists");
            }
            ErrorKind::UniqueViolation if message.contains("resources.resource_key") => {
                return purser_domain::registry::resource_taken();
            }
            ErrorKind::UniqueViolation if message.contains("settlements.escrow_payment") => {
                return purser_domain::settlement::escrow_operation_in_flight();
            }
            ErrorKind::UniqueViolation if message.contains("meters.slug") => {
                return Error::new(
                    ErrorCode::MeterSlugTaken,
                    "the tenant has a meter with this slug",
                );
            }
            // The only foreign key a write can break unchecked is a row's tenant: grants
            // check their resource and settlement first (`grants::check_references`).
            ErrorKind::ForeignKeyViolation => return Error::not_found("tenant"),
            _ => {}
        }
        // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes.
        let busy = db
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| matches!(c & 0xff, 5 | 6));
        if busy {
            return Error::unavailable(context, err);
        }
    }
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            Error::unavailable(context, err)
        }
        other => Error::internal(context, other),
    }
}
