//! Entitlement: who may come back without paying again.
//!
//! - [`siwx`]: Sign-In-With-X challenges and their verification.
//! - [`Entitlements`]: grants of repeat access: made when a payment settles, used by a wallet
//!   that signs in, counted exactly.
//! - [`cache`]: the hot path: a wallet's grants answered from memory, kept fresh by
//!   announcements between instances.
//! - [`session`]: the tokens a signed-in wallet comes back with.
//!
//! This crate knows the wire types, the chain (for contract-wallet signatures) and the
//! repositories; it never knows HTTP frameworks or SQL.

pub mod cache;
pub mod session;
pub mod siwx;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use purser_domain::Result;
use purser_domain::auth::TenantScope;
use purser_domain::coord::{Invalidation, Invalidator};
use purser_domain::entitlement::{Grant, NewGrant, RepeatAccess};
use purser_domain::id::{ResourceId, SettlementId};
use purser_domain::repo::GrantRepository;
use purser_x402::siwx::SiwxOffer;

pub use cache::GrantCache;
pub use session::{SESSION_HEADER, SessionConfig, SessionKeys, Sessions};
pub use siwx::{SignIn, SignInConfig, SignedIn};

/// A request let in on a grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// The signed-in wallet, lower-case hex.
    pub wallet: String,
    pub grant: Grant,
    /// A session token issued for a fresh sign-in, to send back in `X-Purser-Session` instead
    /// of signing in again; `None` when the request came with a session already.
    pub session: Option<String>,
}

/// What a request shows to prove its wallet.
#[derive(Debug, Clone, Copy)]
pub enum Proof<'a> {
    /// A `SIGN-IN-WITH-X` header, checked against `url`: the resource's URL as its offer names
    /// it (never one built from the request's `Host`, which the client chooses).
    SignIn { header: &'a str, url: &'a str },
    /// A session token from an earlier sign-in (`X-Purser-Session`).
    Session(&'a str),
}

/// A wallet a request proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proven {
    /// Lower-case hex.
    pub wallet: String,
    /// A session token for a fresh sign-in, to hand the client.
    pub session: Option<String>,
}

/// Grants of repeat access over the store, with sign-in in front of them.
#[derive(Clone)]
pub struct Entitlements {
    grants: Arc<dyn GrantRepository>,
    invalidator: Arc<Invalidator>,
    sign_in: SignIn,
    sessions: Arc<Sessions>,
    cache: Arc<GrantCache>,
}

impl std::fmt::Debug for Entitlements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entitlements")
            .field("sign_in", &self.sign_in)
            .finish_non_exhaustive()
    }
}

impl Entitlements {
    /// Grants kept in `grants`, checked through `cache`; changes are announced to every
    /// instance through `invalidator` (which must hold `cache`).
    pub fn new(
        grants: Arc<dyn GrantRepository>,
        invalidator: Arc<Invalidator>,
        sign_in: SignIn,
        sessions: Arc<Sessions>,
        cache: Arc<GrantCache>,
    ) -> Self {
        Self {
            grants,
            invalidator,
            sign_in,
            sessions,
            cache,
        }
    }

    pub fn cache(&self) -> &Arc<GrantCache> {
        &self.cache
    }

    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    pub fn sign_in(&self) -> &SignIn {
        &self.sign_in
    }

    /// The sign-in challenge for a 402 of `scope`'s on `url`.
    pub async fn offer(&self, scope: TenantScope, url: &str) -> Result<SiwxOffer> {
        self.sign_in.offer(scope.tenant_id(), url).await
    }

    /// The wallet `proof` proves for the scope's tenant: a sign-in is verified (its nonce
    /// burned) and earns a session token; a session token must be the tenant's.
    pub async fn prove(
        &self,
        scope: TenantScope,
        proof: Proof<'_>,
        now: DateTime<Utc>,
    ) -> Result<Proven> {
        match proof {
            Proof::SignIn { header, url } => {
                let signed_in = self
                    .sign_in
                    .verify(header, scope.tenant_id(), url, now)
                    .await?;
                let wallet = format!("{:#x}", signed_in.address);
                let (session, _) =
                    self.sessions
                        .issue(scope.tenant_id(), &wallet, &signed_in.network, now)?;
                Ok(Proven {
                    wallet,
                    session: Some(session),
                })
            }
            Proof::Session(token) => {
                let claims = self.sessions.verify(token, now)?;
                if claims.tenant().ok() != Some(scope.tenant_id()) {
                    return Err(purser_domain::Error::new(
                        purser_domain::ErrorCode::SessionInvalid,
                        "the session token was issued for another merchant",
                    ));
                }
                Ok(Proven {
                    wallet: claims.sub,
                    session: None,
                })
            }
        }
    }

    /// A request for `resource` that proves a wallet: when a grant of the wallet holds, counts
    /// one use and admits it. `Ok(None)`: proven, but nothing to use (the caller asks for
    /// payment).
    pub async fn admit(
        &self,
        scope: TenantScope,
        proof: Proof<'_>,
        resource: ResourceId,
        policy: &RepeatAccess,
        now: DateTime<Utc>,
    ) -> Result<Option<Admission>> {
        let proven = self.prove(scope, proof, now).await?;
        let grant = self
            .use_grant(scope, &proven.wallet, resource, policy, now)
            .await?;
        Ok(grant.map(|grant| Admission {
            wallet: proven.wallet,
            grant,
            session: proven.session,
        }))
    }

    /// One use of a grant of `wallet` for `resource`, through the cache; `None` when no grant
    /// holds. A grant used up by this use is announced, so other instances stop admitting on it
    /// without a database read.
    pub async fn use_grant(
        &self,
        scope: TenantScope,
        wallet: &str,
        resource: ResourceId,
        policy: &RepeatAccess,
        now: DateTime<Utc>,
    ) -> Result<Option<Grant>> {
        let used = self
            .cache
            .admit(scope, wallet, resource, policy.group.as_deref(), now)
            .await?;
        if let Some(grant) = &used
            && grant.uses_allowed.is_some()
            && !grant.holds_at(now)
        {
            self.announce(scope, wallet).await;
        }
        Ok(used)
    }

    /// Tells every instance (this one at once) that `wallet`'s grants with the scope's tenant
    /// changed.
    pub async fn announce(&self, scope: TenantScope, wallet: &str) {
        self.invalidator
            .announce(&Invalidation::Grants {
                tenant: scope.tenant_id(),
                wallet: wallet.to_owned(),
            })
            .await;
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
        let grant = self
            .grants
            .create_grant(NewGrant::from_policy(
                scope.tenant_id(),
                resource,
                payer,
                settlement,
                policy,
                at,
            ))
            .await?;
        self.announce(scope, &grant.wallet).await;
        Ok(grant)
    }
}
