//! API keys on requests: `Authorization: Bearer psk_…`.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use http::request::Parts;
use http::{HeaderMap, header};
use purser_domain::auth::{Authenticator, Principal};
use purser_domain::{Error, ErrorCode};

use crate::ApiError;

/// The bearer token on a request, if any. A malformed `Authorization` header is an error, not
/// an absence: a client that meant to authenticate learns that it failed.
pub fn bearer_token(parts: &Parts) -> Result<Option<&str>, Error> {
    bearer_token_in(&parts.headers)
}

/// [`bearer_token`] from a header map (gRPC metadata, say).
pub fn bearer_token_in(headers: &HeaderMap) -> Result<Option<&str>, Error> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let invalid = || {
        Error::new(
            ErrorCode::InvalidApiKey,
            "the Authorization header must be `Bearer <api key>`",
        )
    };
    let value = value.to_str().map_err(|_| invalid())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(invalid)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(invalid());
    }
    Ok(Some(token.trim()))
}

/// The principal of a request whose key a layer in front (the rate limiter) already
/// authenticated. Only Purser's own layers insert it; a client cannot.
#[derive(Debug, Clone, Copy)]
pub struct Verified(pub Principal);

/// Authenticates the request's key, if it carries one (once per request: a key the layers
/// already authenticated is taken from [`Verified`]).
pub async fn principal_of(
    parts: &Parts,
    authenticator: &Authenticator,
) -> Result<Option<Principal>, Error> {
    if let Some(Verified(principal)) = parts.extensions.get::<Verified>() {
        return Ok(Some(*principal));
    }
    principal_in(&parts.headers, authenticator).await
}

/// [`principal_of`] from a header map (gRPC metadata, say).
pub async fn principal_in(
    headers: &HeaderMap,
    authenticator: &Authenticator,
) -> Result<Option<Principal>, Error> {
    match bearer_token_in(headers)? {
        Some(token) => authenticator.authenticate(token).await.map(Some),
        None => Ok(None),
    }
}

/// Extracts the caller's principal, refusing requests without a valid key.
pub struct Authenticated(pub Principal);

impl<S> FromRequestParts<S> for Authenticated
where
    S: Send + Sync,
    Arc<Authenticator>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let authenticator = Arc::<Authenticator>::from_ref(state);
        match principal_of(parts, &authenticator).await? {
            Some(principal) => Ok(Self(principal)),
            None => Err(ApiError(Error::new(
                ErrorCode::Unauthenticated,
                "this endpoint needs an API key: `Authorization: Bearer <api key>`",
            ))),
        }
    }
}

/// Extracts the caller's principal when there is a key; a request without one is anonymous,
/// and a request with a bad one is refused.
pub struct MaybeAuthenticated(pub Option<Principal>);

impl<S> FromRequestParts<S> for MaybeAuthenticated
where
    S: Send + Sync,
    Arc<Authenticator>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let authenticator = Arc::<Authenticator>::from_ref(state);
        Ok(Self(principal_of(parts, &authenticator).await?))
    }
}
