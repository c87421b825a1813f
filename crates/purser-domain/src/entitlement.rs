//! Entitlement: what a wallet may use again without paying again.
//!
//! A resource may grant *repeat access* ([`RepeatAccess`], part of its version spec): after a
//! settled payment, the payer's wallet holds a [`Grant`] for that resource, or for every
//! resource of a group, for a while, for a number of uses, or without end. A later request
//! signed in with the same wallet (Sign-In-With-X) passes without payment while the grant holds.
//! Grants are revocable; uses are counted in the database, one atomic step per use, so a grant
//! of N uses admits exactly N requests whatever the concurrency.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::{GrantId, ResourceId, SettlementId, TenantId};

/// What one payment buys beyond the request it paid for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepeatAccess {
    /// A group name: the grant covers every resource of the tenant in this group. `None`: this
    /// resource only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// How long the grant holds after the payment; `None`: without end (unless `uses` runs out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<u64>,
    /// How many requests the grant admits after the one paid for; `None`: any number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses: Option<u32>,
}

/// The longest group name.
pub const MAX_GROUP_CHARS: usize = 64;

/// Whether `group` is a valid group name: 1 to [`MAX_GROUP_CHARS`] letters, digits, `-`, `_`
/// and `.`.
pub fn is_group_name(group: &str) -> bool {
    !group.is_empty()
        && group.chars().count() <= MAX_GROUP_CHARS
        && group
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Checks that `wallet` is an EVM address as grants store it: `0x` and 40 lower-case hex
/// digits. Callers lower-case what clients send; storage refuses anything else rather than
/// miss a grant over letter case.
pub fn check_wallet(wallet: &str) -> Result<()> {
    let ok = wallet.len() == 42
        && wallet.starts_with("0x")
        && wallet[2..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(
            "wallet must be 0x and 40 lower-case hex digits",
        ))
    }
}

impl RepeatAccess {
    /// Checks the policy's fields.
    pub fn validate(&self) -> Result<()> {
        if let Some(group) = &self.group
            && !is_group_name(group)
        {
            return Err(Error::invalid_input(format!(
                "repeatAccess.group must be 1 to {MAX_GROUP_CHARS} characters of letters, digits, `-`, `_` and `.`"
            )));
        }
        if self.duration_seconds == Some(0) {
            return Err(Error::invalid_input(
                "repeatAccess.durationSeconds must be positive (leave it out for no end)",
            ));
        }
        if self.uses == Some(0) {
            return Err(Error::invalid_input(
                "repeatAccess.uses must be positive (leave it out for any number)",
            ));
        }
        Ok(())
    }
}

/// What a grant covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantScope {
    Resource(ResourceId),
    Group(String),
}

/// A grant to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGrant {
    pub tenant_id: TenantId,
    pub scope: GrantScope,
    /// The wallet, lower-case hex.
    pub wallet: String,
    /// The payment that bought it (unique: one grant per settlement).
    pub settlement_id: Option<SettlementId>,
    pub expires_at: Option<DateTime<Utc>>,
    pub uses_allowed: Option<u32>,
}

impl NewGrant {
    /// The grant `policy` gives `wallet` for a payment of `resource` settled at `at`.
    pub fn from_policy(
        tenant_id: TenantId,
        resource: ResourceId,
        wallet: &str,
        settlement_id: Option<SettlementId>,
        policy: &RepeatAccess,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            tenant_id,
            scope: match &policy.group {
                Some(group) => GrantScope::Group(group.clone()),
                None => GrantScope::Resource(resource),
            },
            wallet: wallet.to_ascii_lowercase(),
            settlement_id,
            expires_at: policy.duration_seconds.map(|s| {
                at + chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000))
            }),
            uses_allowed: policy.uses,
        }
    }

    /// Checks the fields storage relies on: the wallet's shape, the group's name, a positive
    /// number of uses.
    pub fn validate(&self) -> Result<()> {
        check_wallet(&self.wallet)?;
        if let GrantScope::Group(group) = &self.scope
            && !is_group_name(group)
        {
            return Err(Error::invalid_input(format!(
                "a grant's group must be 1 to {MAX_GROUP_CHARS} characters of letters, digits, `-`, `_` and `.`"
            )));
        }
        if self.uses_allowed == Some(0) {
            return Err(Error::invalid_input(
                "a grant's uses must be positive (leave them out for any number)",
            ));
        }
        Ok(())
    }
}

/// A stored grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub id: GrantId,
    pub tenant_id: TenantId,
    pub scope: GrantScope,
    pub wallet: String,
    pub settlement_id: Option<SettlementId>,
    pub expires_at: Option<DateTime<Utc>>,
    pub uses_allowed: Option<u32>,
    pub uses_count: u32,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl Grant {
    /// Whether the grant admits a request at `now` (before counting it).
    pub fn holds_at(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none()
            && self.expires_at.is_none_or(|at| now < at)
            && self.uses_allowed.is_none_or(|n| self.uses_count < n)
    }
}

/// Which grants to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantFilter {
    /// Lower-case hex.
    pub wallet: Option<String>,
    pub resource_id: Option<ResourceId>,
    /// Only grants that hold now.
    pub active_only: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(expires_in: Option<i64>, uses: Option<u32>, used: u32) -> Grant {
        let now = Utc::now();
        Grant {
            id: GrantId::new(),
            tenant_id: TenantId::new(),
            scope: GrantScope::Group("reports".into()),
            wallet: "0xabc".into(),
            settlement_id: None,
            expires_at: expires_in.map(|s| now + chrono::Duration::seconds(s)),
            uses_allowed: uses,
            uses_count: used,
            revoked_at: None,
            created_at: now,
        }
    }

    #[test]
    fn grants_hold_until_time_or_uses_run_out_or_revocation() {
        let now = Utc::now();
        assert!(grant(None, None, 1_000).holds_at(now));
        assert!(grant(Some(60), None, 0).holds_at(now));
        assert!(!grant(Some(-1), None, 0).holds_at(now));
        assert!(grant(None, Some(2), 1).holds_at(now));
        assert!(!grant(None, Some(2), 2).holds_at(now));
        let mut revoked = grant(None, None, 0);
        revoked.revoked_at = Some(now);
        assert!(!revoked.holds_at(now));
    }

    #[test]
    fn policies_are_validated_and_turned_into_grants() {
        let bad = [
            RepeatAccess {
                group: Some(String::new()),
                duration_seconds: None,
                uses: None,
            },
            RepeatAccess {
                group: Some("no spaces".into()),
                duration_seconds: None,
                uses: None,
            },
            RepeatAccess {
                group: None,
                duration_seconds: Some(0),
                uses: None,
            },
            RepeatAccess {
                group: None,
                duration_seconds: None,
                uses: Some(0),
            },
        ];
        for policy in bad {
            assert!(policy.validate().is_err(), "{policy:?}");
        }
        let policy = RepeatAccess {
            group: None,
            duration_seconds: Some(3600),
            uses: Some(5),
        };
        policy.validate().unwrap();
        let at = Utc::now();
        let resource = ResourceId::new();
        let grant = NewGrant::from_policy(TenantId::new(), resource, "0xABC", None, &policy, at);
        assert_eq!(grant.scope, GrantScope::Resource(resource));
        assert_eq!(grant.wallet, "0xabc");
        assert_eq!(grant.expires_at, Some(at + chrono::Duration::seconds(3600)));
        assert_eq!(grant.uses_allowed, Some(5));
    }

    #[test]
    fn new_grants_need_a_lower_case_wallet_a_named_group_and_positive_uses() {
        let good = NewGrant {
            tenant_id: TenantId::new(),
            scope: GrantScope::Group("reports".into()),
            wallet: format!("0x{}", "ab".repeat(20)),
            settlement_id: None,
            expires_at: None,
            uses_allowed: Some(1),
        };
        good.validate().unwrap();
        let bad_wallets = [
            String::new(),
            "0xabc".to_owned(),
            format!("0x{}", "AB".repeat(20)),
            format!("0X{}", "ab".repeat(20)),
            format!("0x{}", "gg".repeat(20)),
            format!("0x{}", "ab".repeat(21)),
            format!("ab{}", "ab".repeat(20)),
        ];
        for wallet in bad_wallets {
            let grant = NewGrant {
                wallet: wallet.clone(),
                ..good.clone()
            };
            let err = grant.validate().unwrap_err();
            assert_eq!(err.code(), crate::ErrorCode::InvalidInput, "{wallet}");
        }
        for scope in [
            GrantScope::Group(String::new()),
            GrantScope::Group("a b".into()),
        ] {
            assert!(
                NewGrant {
                    scope,
                    ..good.clone()
                }
                .validate()
                .is_err()
            );
        }
        assert!(
            NewGrant {
                uses_allowed: Some(0),
                ..good
            }
            .validate()
            .is_err()
        );
    }
}
