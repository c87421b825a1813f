//! `/facilitator/verify`, `/facilitator/settle`, `/facilitator/supported`.
//!
//! As the x402 specification and `HTTPFacilitatorClient` expect: verification and settlement
//! failures are answers (HTTP 200 with `isValid: false` / `success: false`), so the client
//! returns them rather than throwing; HTTP errors are kept for requests that are not x402
//! requests at all (400), missing or bad keys (401), and a reused payment identifier (409).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRef, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::request::Parts;
use purser_domain::auth::{Access, Authenticator, TenantScope};
use purser_domain::{Error, ErrorCode};
use purser_http::ApiError;

use crate::Facilitator;

#[derive(Clone)]
pub struct FacilitatorState {
    pub facilitator: Arc<Facilitator>,
    pub authenticator: Arc<Authenticator>,
}

impl FromRef<FacilitatorState> for Arc<Authenticator> {
    fn from_ref(state: &FacilitatorState) -> Self {
        state.authenticator.clone()
    }
}

pub fn router(state: FacilitatorState) -> Router {
    Router::new().nest(
        "/facilitator",
        Router::new()
            .route("/verify", post(verify))
            .route("/settle", post(settle))
            .route("/supported", get(supported))
            .with_state(state),
    )
}

/// The tenant a caller acts for: its `resource_server` key's, or the configured anonymous
/// tenant when the request carries no key and anonymous access is on.
async fn caller(state: &FacilitatorState, parts: &Parts) -> Result<TenantScope, ApiError> {
    match purser_http::auth::principal_of(parts, &state.authenticator).await? {
        Some(principal) => Ok(principal.scope(None, Access::Facilitate)?),
        None => state.facilitator.anonymous_scope().ok_or_else(|| {
            ApiError(Error::new(
                ErrorCode::Unauthenticated,
                "the facilitator needs a resource_server API key: `Authorization: Bearer <api key>`",
            ))
        }),
    }
}

async fn verify(State(state): State<FacilitatorState>, parts: Parts, body: Bytes) -> Response {
    if let Err(err) = caller(&state, &parts).await {
        return err.into_response();
    }
    match state.facilitator.verify(&body).await {
        Ok(answer) => Json(answer).into_response(),
        Err(err) => ApiError(err).into_response(),
    }
}

async fn settle(State(state): State<FacilitatorState>, parts: Parts, body: Bytes) -> Response {
    let scope = match caller(&state, &parts).await {
        Ok(scope) => scope,
        Err(err) => return err.into_response(),
    };
    match state.facilitator.settle(scope, &body).await {
        Ok(answer) => Json(answer).into_response(),
        Err(err) => ApiError(err).into_response(),
    }
}

/// Open to every caller: what this facilitator settles is not a secret, and resource servers
/// read it at start-up. A key that is presented must still be valid.
async fn supported(State(state): State<FacilitatorState>, parts: Parts) -> Response {
    if let Err(err) = purser_http::auth::principal_of(&parts, &state.authenticator).await {
        return ApiError(err).into_response();
    }
    Json(state.facilitator.supported()).into_response()
}
