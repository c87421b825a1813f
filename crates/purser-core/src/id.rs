//! Typed identifiers. Every id is a UUIDv7: unique without coordination and ordered by creation
//! time, which is what keyset pagination sorts on.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, ErrorCode};

macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident, $what:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh id, ordered after every id made before it in this process.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// What the id names, for error messages.
            pub const WHAT: &'static str = $what;
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(s: &str) -> Result<Self, Error> {
                Uuid::try_parse(s).map(Self).map_err(|_| {
                    Error::new(
                        ErrorCode::InvalidInput,
                        format!("{} id `{}` is not a UUID", $what, s.chars().take(64).collect::<String>()),
                    )
                })
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }
    };
}

typed_id!(
    /// A tenant: a merchant, or (later) an internal business unit.
    TenantId,
    "tenant"
);
typed_id!(
    /// An API key.
    ApiKeyId,
    "api key"
);
typed_id!(
    /// A settlement record: one per payment authorization.
    SettlementId,
    "settlement"
);
typed_id!(
    /// One signed transaction sent for a settlement (or to fill a signer's nonce gap).
    AttemptId,
    "settlement attempt"
);
typed_id!(
    /// A resource in the registry: a paid URL, route or MCP tool.
    ResourceId,
    "resource"
);

typed_id!(
    /// A grant of repeat access to a wallet.
    GrantId,
    "grant"
);

typed_id!(
    /// A hold on a payer's prepaid credit, committed or released once.
    CreditReservationId,
    "credit reservation"
);

typed_id!(
    /// A meter: how a tenant's usage events of one type are aggregated and priced.
    MeterId,
    "meter"
);

typed_id!(
    /// A ledger account.
    LedgerAccountId,
    "ledger account"
);
typed_id!(
    /// A ledger transfer.
    TransferId,
    "ledger transfer"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_ordered_by_creation() {
        let ids: Vec<TenantId> = (0..1000).map(|_| TenantId::new()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn parsing_rejects_garbage_with_a_code() {
        let err = "not-a-uuid".parse::<TenantId>().unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidInput);
        let id = TenantId::new();
        assert_eq!(id.to_string().parse::<TenantId>().unwrap(), id);
    }
}
