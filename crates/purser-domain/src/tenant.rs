//! Tenants: the merchants (and, later, internal business units) that own everything else.

use chrono::{DateTime, Utc};

use crate::error::Error;
use crate::id::TenantId;
use crate::macros::string_enum;
use crate::text;

string_enum!(
    /// What kind of organisation a tenant is.
    TenantKind, "tenant kind" {
        Merchant = "merchant",
        BusinessUnit = "business_unit",
    }
);

string_enum!(
    /// Whether a tenant's keys work.
    TenantStatus, "tenant status" {
        Active = "active",
        Suspended = "suspended",
    }
);

/// A validated tenant name: trimmed, then [`text::TENANT_NAME`] (1 to 100 characters, one
/// line, no control characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantName(String);

impl TenantName {
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let name = raw.trim();
        text::TENANT_NAME.check("tenant name", name)?;
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form uniqueness is checked on: two names that differ only in case are the same name.
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub kind: TenantKind,
    pub status: TenantStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A tenant about to be created.
#[derive(Debug, Clone)]
pub struct NewTenant {
    pub id: TenantId,
    pub name: TenantName,
    pub kind: TenantKind,
    pub created_at: DateTime<Utc>,
}

impl NewTenant {
    pub fn new(name: TenantName, kind: TenantKind) -> Self {
        Self {
            id: TenantId::new(),
            name,
            kind,
            created_at: crate::time::now(),
        }
    }
}

/// A change to a tenant; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct TenantUpdate {
    pub name: Option<TenantName>,
    pub status: Option<TenantStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_bounded_and_printable() {
        assert_eq!(TenantName::parse("  Acme  ").unwrap().as_str(), "Acme");
        assert_eq!(TenantName::parse("ACME").unwrap().normalized(), "acme");
        assert!(TenantName::parse("   ").is_err());
        assert!(TenantName::parse("a\u{0}b").is_err());
        assert!(TenantName::parse("a\nb").is_err());
        assert!(TenantName::parse(&"x".repeat(101)).is_err());
        assert!(TenantName::parse(&"é".repeat(100)).is_ok());
    }

    #[test]
    fn enums_parse_their_own_names_only() {
        for kind in TenantKind::ALL {
            assert_eq!(kind.as_str().parse::<TenantKind>().unwrap(), *kind);
        }
        let err = "Merchant".parse::<TenantKind>().unwrap_err();
        assert!(err.message().contains("merchant, business_unit"));
    }
}
