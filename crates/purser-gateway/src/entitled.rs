//! The entitlement check: may this wallet use this resource without paying now?
//!
//! A resource server asks with the wallet's proof (a session token, or a fresh
//! `SIGN-IN-WITH-X`) and, for a usage-priced call, the most the call may cost. The answer:
//!
//! - **grant**: a grant of repeat access holds (one use counted; from memory for grants without
//!   a use limit, see [`purser_entitlement::cache`]);
//! - **credit**: the wallet's prepaid credit with the merchant covers the amount, which is now
//!   held (a reservation to commit for the actual cost, or release);
//! - **deny**, with a stable reason and the 402 to send the client (with a sign-in challenge
//!   when the resource grants repeat access).
//!
//! Refusals of the client's proof (an expired token, a replayed sign-in) are denials with the
//! refusal's code, never errors: errors are about the call itself (its key, its resource) or
//! Purser's own dependencies.

use chrono::{DateTime, Utc};
use http::HeaderMap;
use purser_axum::{Paywall, Reply};
use purser_domain::auth::TenantScope;
use purser_domain::credits::{CreditKey, CreditReservation};
use purser_domain::entitlement::Grant;
use purser_domain::money::Amount;
use purser_domain::{Error, ErrorCode};
use purser_entitlement::{Proof, Proven};

use crate::Priced;
use crate::check::{AccessState, path_and_query};

/// One question: which resource, who asks, and what they would spend.
#[derive(Debug, Clone, Copy, Default)]
pub struct EntitlementQuestion<'a> {
    /// A published resource's id; `None` finds it by `method` and `url`.
    pub resource: Option<&'a str>,
    pub method: &'a str,
    /// The URL the client asked for (needed to find the resource without an id, and to check
    /// a sign-in's domain and URI).
    pub url: &'a str,
    /// A session token from an earlier sign-in (`X-Purser-Session`).
    pub session: Option<&'a str>,
    /// A `SIGN-IN-WITH-X` header, verified and burned by the check.
    pub sign_in: Option<&'a str>,
    /// The most a usage-priced call may cost, in atomic units of the resource's asset: held from
    /// the wallet's prepaid credit when no grant holds.
    pub reserve: Option<Amount>,
    /// Which of the resource's networks to hold credit on; `None`: each in turn.
    pub network: Option<&'a str>,
}

/// The answer.
#[derive(Debug)]
pub enum EntitlementAnswer {
    /// A grant holds; one use was counted.
    Grant {
        wallet: String,
        grant: Box<Grant>,
        /// A session token for a fresh sign-in.
        session: Option<String>,
    },
    /// Credit is held for the call: commit what it cost, or release it.
    Credit {
        wallet: String,
        reservation: Box<CreditReservation>,
        session: Option<String>,
    },
    /// Not entitled: `reason` is a stable code, `reply` the 402 for the client.
    Deny {
        reason: ErrorCode,
        message: String,
        reply: Reply,
    },
}

impl AccessState {
    /// Answers `question` for the caller's tenant `scope`.
    pub async fn entitlement(
        &self,
        scope: TenantScope,
        question: &EntitlementQuestion<'_>,
    ) -> Result<EntitlementAnswer, Error> {
        let priced = self
            .resolve(scope, question.method, question.url, question.resource)
            .await?;
        let now = purser_domain::time::now();
        let proven = match self.prove(&priced, question, now).await {
            Ok(proven) => proven,
            Err(refused) if refused.code().http_status() < 500 => {
                return self.deny(&priced, question, refused).await;
            }
            Err(failure) => return Err(failure),
        };
        let entitlements = self.gateway.entitlements();
        if let Some(policy) = priced.repeat_access()
            && let Some(grant) = entitlements
                .use_grant(scope, &proven.wallet, priced.resource.id, policy, now)
                .await?
        {
            return Ok(EntitlementAnswer::Grant {
                wallet: proven.wallet,
                grant: Box::new(grant),
                session: proven.session,
            });
        }
        let Some(amount) = question.reserve else {
            let denied = Error::new(
                ErrorCode::NoEntitlement,
                "the wallet holds no grant for this resource",
            );
            return self.deny(&priced, question, denied).await;
        };
        match self
            .reserve(&priced, &proven.wallet, amount, question.network)
            .await
        {
            Ok(reservation) => Ok(EntitlementAnswer::Credit {
                wallet: proven.wallet,
                reservation: Box::new(reservation),
                session: proven.session,
            }),
            Err(refused) if refused.code().http_status() < 500 => {
                self.deny(&priced, question, refused).await
            }
            Err(failure) => Err(failure),
        }
    }

    /// The wallet the question proves: a session token of this tenant's, or a sign-in for the
    /// URL asked about (its nonce burned, a session issued for it).
    async fn prove(
        &self,
        priced: &Priced,
        question: &EntitlementQuestion<'_>,
        now: DateTime<Utc>,
    ) -> Result<Proven, Error> {
        let url;
        let proof = if let Some(header) = question.sign_in {
            url = priced
                .offer_at(path_and_query(question.url).as_deref())
                .ok_or_else(crate::check::unpriceable)?
                .required
                .resource
                .url;
            Proof::SignIn { header, url: &url }
        } else if let Some(token) = question.session {
            Proof::Session(token)
        } else {
            return Err(Error::new(
                ErrorCode::SignInRequired,
                "the check carries neither a session token nor a sign-in",
            ));
        };
        self.gateway
            .entitlements()
            .prove(priced.scope(), proof, now)
            .await
    }

    /// Holds `amount` of the wallet's credit on the first of the resource's networks (or the
    /// one named) where it suffices.
    async fn reserve(
        &self,
        priced: &Priced,
        wallet: &str,
        amount: Amount,
        network: Option<&str>,
    ) -> Result<CreditReservation, Error> {
        purser_domain::credits::check_credit_amount(amount)?;
        let mut refusal = None;
        for accept in priced
            .resource
            .current
            .spec
            .accepts
            .iter()
            .filter(|a| network.is_none_or(|n| n == a.network))
        {
            let key = CreditKey::new(wallet, &accept.network, &accept.asset.to_ascii_lowercase())?;
            match self
                .gateway
                .repositories()
                .credits
                .reserve(priced.scope(), &key, amount)
                .await
            {
                Ok(reservation) => return Ok(reservation),
                Err(e) if e.code() == ErrorCode::InsufficientCredit => refusal = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(refusal.unwrap_or_else(|| {
            Error::invalid_input("the resource is not priced on the network named")
        }))
    }

    /// A denial: `refused`'s code and message, and the resource's 402 (with a sign-in
    /// challenge when it grants repeat access).
    async fn deny(
        &self,
        priced: &Priced,
        question: &EntitlementQuestion<'_>,
        refused: Error,
    ) -> Result<EntitlementAnswer, Error> {
        let mut offer = priced
            .offer_at(path_and_query(question.url).as_deref())
            .ok_or_else(crate::check::unpriceable)?;
        self.gateway
            .offer_sign_in(priced, &mut offer, &HeaderMap::new())
            .await;
        let reason = refused.code();
        tracing::debug!(code = %reason, "an entitlement check was denied");
        let reply = Paywall::challenge(&offer, Some(reason.as_str()));
        Ok(EntitlementAnswer::Deny {
            reason,
            message: refused.message().to_owned(),
            reply,
        })
    }
}

/// Releases credit held longer than `older_than` by reservations nobody committed or released
/// (their resource server went away): every tenant's, up to 1,000 per call. Answers how many
/// were released. A reservation resolved meanwhile by its resource server is left as it was.
pub async fn release_stale_reservations(
    store: &dyn purser_domain::repo::CreditRepository,
    older_than: std::time::Duration,
) -> Result<usize, Error> {
    let before = purser_domain::time::now()
        - chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::MAX);
    let mut released = 0;
    for _ in 0..10 {
        let stale = store.stale_credit_reservations(before, 100).await?;
        let found = stale.len();
        for reservation in stale {
            let scope = TenantScope::trusted(reservation.tenant_id);
            match store.release(scope, reservation.id).await {
                Ok(_) => released += 1,
                // Committed or released by its resource server in the meantime.
                Err(e) if e.code() == ErrorCode::Conflict => {}
                Err(e) => return Err(e),
            }
        }
        if found < 100 {
            break;
        }
    }
    Ok(released)
}
