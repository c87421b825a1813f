//! The delegated check, whatever carries it. The HTTP routes (`access`) and the gRPC services
//! (`grpc`: Purser's own and Envoy's `ext_authz`) authenticate the caller, find the resource
//! and decide through these functions; they differ only in how they read the question and
//! write the answer.
//!
//! - [`AccessState::check`]: allow (the payer, and a [`SettleToken`] to settle with after
//!   serving) or deny (the engine's [`Reply`]: the exact answer for the client).
//! - [`AccessState::settle`]: settles a token once the request was served below 400.
//! - [`AccessState::check_and_settle`]: both at once, for proxies that cannot settle after
//!   their upstream answered (nginx `auth_request`, Envoy `ext_authz`).
//!
//! Errors about the call itself (no key, no such resource, a URL that does not parse, a store
//! that cannot be read) are [`Error`]s; decisions about the client's payment are never errors.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue};
use purser_axum::engine::Version;
use purser_axum::{Admitted, Offer, Reply, Settled};
use purser_domain::auth::{Access, Authenticator, Principal, TenantScope};
use purser_domain::id::{GrantId, ResourceId};
use purser_domain::{Error, ErrorCode};
use purser_x402::v2::{PaymentPayload, PaymentRequirements};
use serde::{Deserialize, Serialize};

use crate::{Gateway, Priced};

/// What the delegated checks share: the gateway's engine and the key authenticator.
#[derive(Clone)]
pub struct AccessState {
    pub gateway: Gateway,
    pub authenticator: Arc<Authenticator>,
}

/// One request a resource server asks about.
#[derive(Debug, Clone, Copy)]
pub struct CheckRequest<'a> {
    pub method: &'a str,
    /// The full URL the client used, with its query.
    pub url: &'a str,
    /// A published resource's id; `None` finds the resource by method and URL.
    pub resource: Option<&'a str>,
    /// The request's headers: the payment headers are read from them.
    pub headers: &'a HeaderMap,
}

/// The answer to a check.
#[derive(Debug)]
pub enum Decision {
    /// Serve the request, then settle with `settle`.
    Allow {
        payer: String,
        settle: Box<SettleToken>,
    },
    /// Serve the request: the client signed in with a wallet whose grant of repeat access
    /// holds (one use was counted). There is nothing to settle.
    Entitled {
        wallet: String,
        grant: GrantId,
        /// A session token for a fresh sign-in, to hand the client (`X-Purser-Session`).
        session: Option<String>,
    },
    /// Answer the client with this instead of serving.
    Deny(Reply),
}

/// The answer to a check that settles first.
#[derive(Debug)]
pub enum PaidFirst {
    /// Settled (or broadcast and pending): serve, adding `headers` to the response.
    Paid { payer: String, headers: HeaderMap },
    /// Signed in with a grant that holds: serve; nothing was paid. `session`: a token for a
    /// fresh sign-in, to hand the client (`X-Purser-Session`).
    Entitled {
        wallet: String,
        session: Option<String>,
    },
    /// Not paid: answer the client with `reply`. `offer` is the resource's price, for callers
    /// that must rephrase the reply (nginx can only pass a challenge on a 401).
    Refused { reply: Reply, offer: Box<Offer> },
}

/// What a check hands the caller to settle with after serving: the verified payment and its
/// resource. HTTP callers see it as the JSON `settle` object; gRPC callers as [`Self::encode`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SettleToken {
    resource: ResourceId,
    payer: String,
    version: Version,
    payment_payload: PaymentPayload,
    payment_requirements: PaymentRequirements,
}

impl SettleToken {
    /// The token as one opaque string: its JSON, base64url without padding, so that it fits
    /// an HTTP header as well as a protobuf string.
    pub fn encode(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// A token from [`Self::encode`].
    pub fn decode(token: &str) -> Result<Self, Error> {
        let invalid = || Error::invalid_input("settle_token is not a token answered by Check");
        let json = URL_SAFE_NO_PAD
            .decode(token.trim().as_bytes())
            .map_err(|_| invalid())?;
        serde_json::from_slice(&json).map_err(|_| invalid())
    }
}

impl AccessState {
    /// The caller's tenant, from the `resource_server` key in `authorization: Bearer`.
    pub async fn caller(&self, headers: &HeaderMap) -> Result<TenantScope, Error> {
        let principal = purser_http::auth::principal_in(headers, &self.authenticator).await?;
        Self::scope_of(principal)
    }

    /// [`Self::caller`] of an HTTP request, whose key the layers may have authenticated.
    pub async fn caller_of(&self, parts: &Parts) -> Result<TenantScope, Error> {
        let principal = purser_http::auth::principal_of(parts, &self.authenticator).await?;
        Self::scope_of(principal)
    }

    fn scope_of(principal: Option<Principal>) -> Result<TenantScope, Error> {
        let principal = principal.ok_or_else(|| {
            Error::new(
                ErrorCode::Unauthenticated,
                "access checks need a resource_server API key: `Authorization: Bearer <api key>`",
            )
        })?;
        principal.scope(None, Access::Facilitate)
    }

    /// Allow or deny `request` for the caller's tenant `scope`.
    pub async fn check(
        &self,
        scope: TenantScope,
        request: &CheckRequest<'_>,
    ) -> Result<Decision, Error> {
        let (priced, mut offer) = self.price(scope, request).await?;
        if let Some(admission) = self
            .gateway
            .signed_in(&priced, request.headers, &offer.required.resource.url)
            .await?
        {
            return Ok(Decision::Entitled {
                wallet: admission.wallet,
                grant: admission.grant.id,
                session: admission.session,
            });
        }
        self.gateway
            .offer_sign_in(&priced, &mut offer, request.headers)
            .await;
        let paywall = self.gateway.paywall(priced.scope());
        Ok(match paywall.admit(&offer, request.headers).await {
            Ok(admitted) => Decision::Allow {
                payer: admitted.payer.clone(),
                settle: Box::new(SettleToken {
                    resource: priced.resource.id,
                    payer: admitted.payer,
                    version: admitted.version,
                    payment_payload: admitted.payload,
                    payment_requirements: admitted.requirements,
                }),
            },
            Err(reply) => Decision::Deny(reply),
        })
    }

    /// Settles what a check allowed, for the caller's tenant `scope`.
    pub async fn settle(&self, scope: TenantScope, token: SettleToken) -> Result<Settled, Error> {
        let priced = self
            .resolve(scope, "", "", Some(&token.resource.to_string()))
            .await?;
        let offer = priced.offer(None).ok_or_else(unpriceable)?;
        let admitted = Admitted::verified(
            token.payer,
            token.payment_payload,
            token.payment_requirements,
            token.version,
        );
        let settled = self
            .gateway
            .paywall(priced.scope())
            .settle(&offer, &admitted)
            .await;
        if let Settled::Paid { response, .. } = &settled {
            // The payer the facilitator settled for, not the one the caller's token names.
            let payer = response.payer.as_deref().unwrap_or(&admitted.payer);
            self.gateway.paid(&priced, &admitted.payload, payer).await;
        }
        Ok(settled)
    }

    /// Checks `request` and settles at once: the request is served only on money received.
    pub async fn check_and_settle(
        &self,
        scope: TenantScope,
        request: &CheckRequest<'_>,
    ) -> Result<PaidFirst, Error> {
        let (priced, mut offer) = self.price(scope, request).await?;
        if let Some(admission) = self
            .gateway
            .signed_in(&priced, request.headers, &offer.required.resource.url)
            .await?
        {
            return Ok(PaidFirst::Entitled {
                wallet: admission.wallet,
                session: admission.session,
            });
        }
        self.gateway
            .offer_sign_in(&priced, &mut offer, request.headers)
            .await;
        let paywall = self.gateway.paywall(priced.scope());
        let refused = |reply: Reply, offer: Offer| PaidFirst::Refused {
            reply,
            offer: Box::new(offer),
        };
        let admitted = match paywall.admit(&offer, request.headers).await {
            Ok(admitted) => admitted,
            Err(reply) => return Ok(refused(reply, offer)),
        };
        Ok(match paywall.settle(&offer, &admitted).await {
            Settled::Paid { headers, .. } => {
                self.gateway
                    .paid(&priced, &admitted.payload, &admitted.payer)
                    .await;
                PaidFirst::Paid {
                    payer: admitted.payer,
                    headers,
                }
            }
            Settled::Refused(reply) => refused(reply, offer),
        })
    }

    /// The resource pricing `request` and its offer at the request's path.
    async fn price(
        &self,
        scope: TenantScope,
        request: &CheckRequest<'_>,
    ) -> Result<(Arc<Priced>, Offer), Error> {
        let priced = self
            .resolve(scope, request.method, request.url, request.resource)
            .await?;
        let path_and_query = path_and_query(request.url);
        let offer = priced
            .offer_at(path_and_query.as_deref())
            .ok_or_else(unpriceable)?;
        Ok((priced, offer))
    }

    /// The caller's published resource for `method` and `url`, by id or by URL.
    pub(crate) async fn resolve(
        &self,
        scope: TenantScope,
        method: &str,
        url: &str,
        resource: Option<&str>,
    ) -> Result<Arc<Priced>, Error> {
        let not_found = || {
            Error::new(
                ErrorCode::NotFound,
                "no published resource of this tenant answers this method and URL",
            )
        };
        let id = match resource {
            Some(id) => id.parse::<ResourceId>()?,
            None => self
                .find_by_url(scope, method, url)
                .await?
                .ok_or_else(not_found)?,
        };
        match self.gateway.priced(id).await? {
            Some(priced) if priced.resource.tenant_id == scope.tenant_id() => Ok(priced),
            _ => Err(not_found()),
        }
    }

    /// Matches `url` against the route templates of the tenant's published HTTP resources.
    async fn find_by_url(
        &self,
        scope: TenantScope,
        method: &str,
        url: &str,
    ) -> Result<Option<ResourceId>, Error> {
        let parsed = url::Url::parse(url)
            .map_err(|_| Error::invalid_input("url must be an absolute http(s) URL"))?;
        let origin = parsed.origin().ascii_serialization();
        self.gateway
            .route_for(scope, method, &origin, parsed.path())
            .await
    }
}

pub(crate) fn unpriceable() -> Error {
    Error::new(ErrorCode::Internal, "building the resource's price")
}

pub(crate) fn path_and_query(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    Some(match parsed.query() {
        Some(q) => format!("{}?{q}", parsed.path()),
        None => parsed.path().to_owned(),
    })
}

/// Headers given as a map of names (in any case) to values; entries that are not valid HTTP
/// (pseudo-headers such as `:path`, say) are left out.
pub fn header_map(headers: &HashMap<String, String>) -> HeaderMap {
    headers
        .iter()
        .filter_map(|(k, v)| {
            Some((
                HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).ok()?,
                HeaderValue::from_str(v).ok()?,
            ))
        })
        .collect()
}

/// The response headers that hand a client its session token, when there is one.
pub fn session_headers(session: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(Ok(value)) = session.map(HeaderValue::from_str) {
        headers.insert(
            HeaderName::from_static(purser_entitlement::SESSION_HEADER),
            value,
        );
    }
    headers
}

/// Headers as a map of lowercase names to values, a name's values joined by `, `; values that
/// are not text are left out.
pub fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for name in headers.keys() {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if !values.is_empty() {
            pairs.push((name.as_str().to_owned(), values.join(", ")));
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_map_lowercases_names_and_drops_what_is_not_http() {
        let headers = header_map(&HashMap::from([
            ("Payment-Signature".to_owned(), "abc".to_owned()),
            (":path".to_owned(), "/x".to_owned()),
            ("x-bad".to_owned(), "line\nbreak".to_owned()),
        ]));
        assert_eq!(headers.len(), 1);
        assert_eq!(headers["payment-signature"], "abc");
    }

    #[test]
    fn header_pairs_join_repeated_names() {
        let mut headers = HeaderMap::new();
        headers.append("vary", HeaderValue::from_static("a"));
        headers.append("vary", HeaderValue::from_static("b"));
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let mut pairs = header_pairs(&headers);
        pairs.sort();
        assert_eq!(
            pairs,
            [
                ("content-type".to_owned(), "application/json".to_owned()),
                ("vary".to_owned(), "a, b".to_owned()),
            ]
        );
    }

    #[test]
    fn settle_tokens_that_were_not_encoded_are_invalid_input() {
        for token in [
            "",
            "not base64!",
            &URL_SAFE_NO_PAD.encode(b"{\"resource\":1}"),
        ] {
            let err = SettleToken::decode(token).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidInput, "{token}");
        }
    }
}
