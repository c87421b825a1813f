//! Entitlement: who may come back without paying again.
//!
//! - [`siwx`]: Sign-In-With-X challenges and their verification.
//! - [`Entitlements`]: grants of repeat access: made when a payment settles, used by a wallet
//!   that signs in, counted exactly.
//!
//! This crate knows the wire types, the chain (for contract-wallet signatures) and the
//! repositories; it never knows HTTP frameworks or SQL.

pub mod siwx;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use purser_domain::Result;
use purser_domain::auth::TenantScope;
use purser_domain::entitlement::{Grant, NewGrant, RepeatAccess};
use purser_domain::id::{ResourceId, SettlementId};
use purser_domain::repo::Store;
use purser_x402::siwx::SiwxOffer;

pub use siwx::{SignIn, SignInConfig, SignedIn};

/// A request let in on a grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// The signed-in wallet, lower-case hex.
    pub wallet: String,
    pub grant: Grant,
}

/// Grants of repeat access over the store, with sign-in in front of them.
#[derive(Clone)]
pub struct Entitlements {
    store: Arc<dyn Store>,
    sign_in: SignIn,
}

impl std::fmt::Debug for Entitlements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entitlements")
            .field("sign_in", &self.sign_in)
            .finish_non_exhaustive()
    }
}

impl Entitlements {
    pub fn new(store: Arc<dyn Store>, sign_in: SignIn) -> Self {
        Self { store, sign_in }
    }

    pub fn sign_in(&self) -> &SignIn {
        &self.sign_in
    }

    /// The sign-in challenge for a 402 on `url`.
    pub async fn offer(&self, url: &str) -> Result<SiwxOffer> {
        self.sign_in.offer(url).await
    }

    /// A request to `url` for `resource` that carries a `SIGN-IN-WITH-X` header: verifies it
    /// (burning its nonce) and, when a grant of the wallet holds, counts one use and admits
    /// it. `Ok(None)`: signed in, but nothing to use (the caller asks for payment).
    pub async fn admit(
        &self,
        scope: TenantScope,
        header: &str,
        url: &str,
        resource: ResourceId,
        policy: &RepeatAccess,
        now: DateTime<Utc>,
    ) -> Result<Option<Admission>> {
        let signed_in = self.sign_in.verify(header, url, now).await?;
        let wallet = format!("{:#x}", signed_in.address);
        let grant = self
            .store
            .use_grant(scope, &wallet, resource, policy.group.as_deref(), now)
            .await?;
        Ok(grant.map(|grant| Admission { wallet, grant }))
    }

    /// Records what a settled payment of `payer` for `resource` bought under `policy`.
    pub async fn grant(
        &self,
        scope: TenantScope,
        resource: ResourceId,
        payer: &str,
        settlement: Option<SettlementId>,
        policy: &RepeatAccess,
        at: DateTime<Utc>,
    ) -> Result<Grant> {
        self.store
            .create_grant(NewGrant::from_policy(
                scope.tenant_id(),
                resource,
                payer,
                settlement,
                policy,
                at,
            ))
            .await
    }
}
