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

use purser_registry::{BazaarOutcome, Registry};
use purser_x402::header::{EXTENSION_RESPONSES, encode_extension_responses};
use purser_x402::v2::PaymentPayload;

use crate::Facilitator;

/// What else a payment settled through `POST /facilitator/settle` does, beyond the ledger: the
/// gateway grants repeat access for the resource the payment names, so that a merchant's own
/// resource server (the native layer, say) earns its payers the same grants as Purser's gateway.
#[async_trait::async_trait]
pub trait OnSettled: Send + Sync {
    /// `payload` settled successfully for the scope's tenant, paid by `payer`. Failures are the
    /// hook's to log: the payment stands.
    async fn settled(&self, scope: TenantScope, payload: &PaymentPayload, payer: &str);
}

#[derive(Clone)]
pub struct FacilitatorState {
    pub facilitator: Arc<Facilitator>,
    pub authenticator: Arc<Authenticator>,
    /// Catalogs the resources described by the `bazaar` extension of settled payments; `None`
    /// leaves the extension alone (and unadvertised).
    pub registry: Option<Arc<Registry>>,
    /// Called after each successful settlement.
    pub on_settled: Option<Arc<dyn OnSettled>>,
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
    let answer = match state.facilitator.settle(scope, &body).await {
        Ok(answer) => answer,
        Err(err) => return ApiError(err).into_response(),
    };
    let learned = match (&state.registry, answer.success) {
        (Some(registry), true) => learn(registry, scope, &body).await,
        _ => None,
    };
    if let (Some(hook), true, Some(payer)) = (&state.on_settled, answer.success, &answer.payer)
        && let Ok(request) = purser_x402::FacilitatorRequest::from_json(&body)
        && let Ok((payload, _)) = request.to_v2()
    {
        hook.settled(scope, &payload, payer).await;
    }
    let mut response = Json(answer).into_response();
    if let Some(outcome) = learned {
        let mut responses = purser_x402::JsonObject::new();
        responses.insert(purser_registry::bazaar::BAZAAR.into(), outcome.to_json());
        if let Ok(value) = http::HeaderValue::from_str(&encode_extension_responses(&responses)) {
            response.headers_mut().insert(EXTENSION_RESPONSES, value);
        }
    }
    response
}

/// Catalogs what a settled payment's `bazaar` extension describes. A storage failure is
/// logged, not answered: the payment is settled either way.
async fn learn(registry: &Registry, scope: TenantScope, body: &[u8]) -> Option<BazaarOutcome> {
    let request = purser_x402::FacilitatorRequest::from_json(body).ok()?;
    if request.version() != purser_x402::X402Version::V2 {
        return None;
    }
    let (payload, _) = request.to_v2().ok()?;
    match registry.learn(scope, &payload).await {
        Ok(outcome) => outcome,
        Err(err) => {
            tracing::warn!(error = %err.chain(), "cataloging a paid resource failed");
            None
        }
    }
}

/// Open to every caller: what this facilitator settles is not a secret, and resource servers
/// read it at start-up. A key that is presented must still be valid.
async fn supported(State(state): State<FacilitatorState>, parts: Parts) -> Response {
    if let Err(err) = purser_http::auth::principal_of(&parts, &state.authenticator).await {
        return ApiError(err).into_response();
    }
    let mut supported = state.facilitator.supported();
    if state.registry.is_some() {
        supported
            .extensions
            .push(purser_registry::bazaar::BAZAAR.to_owned());
    }
    Json(supported).into_response()
}
