//! Delegated checks, for resource servers that keep their own HTTP stack.
//!
//! - `POST /v1/access/check` `{method, url, resource?, headers}`: the request's method, full URL
//!   and its payment headers. Answers `{decision: "allow", payer, settle}` (pass `settle` to
//!   `/v1/access/settle` once the request has been served below 400) or `{decision: "deny",
//!   status, headers, body}`: the exact answer to send the client. Either way HTTP 200.
//! - `POST /v1/access/settle` with the `settle` object: `{settled: true, headers, response}`
//!   (add `headers` to the response) or `{settled: false, status, headers, body}`.
//! - `GET /v1/access/nginx`, for nginx's `auth_request`: the original request comes in
//!   `X-Original-Method`, `X-Original-URI`, `X-Original-Host` (and `X-Original-Proto`), the key
//!   in `X-Purser-Key`. nginx cannot settle after its upstream answered, so this endpoint settles
//!   before: 200 with `X-Purser-Payer` and `PAYMENT-RESPONSE` on money received; 401 with
//!   `PAYMENT-REQUIRED` and the v1 JSON body in `X-Purser-Body` for a challenge (the
//!   configuration in the README turns it into the 402); 403 with `X-Purser-Body` for a replay
//!   (turned into 409). `auth_request` reads 401 and 403 as those two, so the endpoint's own
//!   failures never use them: a refused key is 500. The README's configuration is run against a
//!   real nginx by `crates/purser/tests/it/nginx.rs`.
//! - `POST /v1/entitlements/check` `{resource? | method + url, session? | signIn?, reserve?,
//!   network?}`: whether a wallet may use a resource without paying now (see
//!   [`crate::entitled`]). Answers `{decision: "allow", reason: "grant", wallet, grant}`,
//!   `{decision: "allow", reason: "credit", wallet, reservation}` or `{decision: "deny", reason,
//!   message, status, headers, body}` (the 402 to send), with `session` when a sign-in earned
//!   one. HTTP 200 for every decision.
//! - `POST /v1/entitlements/reservations/{id}/commit` `{amount}` and `.../release`: resolve a
//!   credit reservation once the call is served (commit what it cost, at most what was held)
//!   or failed (release all of it). Repeating the same resolution answers it again.
//! - `GET /v1/resources/{id}/payment-required`: a published resource's current 402 and the
//!   requirements still payable, public, for the native layer's registry prices.
//! - `GET /.well-known/jwks.json`: the keys session tokens are signed with, public.
//!
//! The check callers authenticate with a `resource_server` key (`Authorization: Bearer`); a
//! resource is matched among the key's tenant's published resources. The decisions are made in
//! [`crate::check`], which the gRPC services share; this module reads JSON and writes it.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode};
use purser_axum::{Reply, Settled};
use purser_domain::credits::CreditReservation;
use purser_domain::id::{CreditReservationId, ResourceId};
use purser_domain::money::Amount;
use purser_domain::{Error, ErrorCode};
use purser_http::ApiError;
use purser_x402::header::lowercase;
use serde::Deserialize;
use serde_json::{Value, json};

pub use crate::check::AccessState;
use crate::check::{
    CheckRequest, Decision, PaidFirst, SettleToken, header_map, header_pairs, session_headers,
};
use crate::entitled::{EntitlementAnswer, EntitlementQuestion};

pub fn router(state: AccessState) -> Router {
    Router::new()
        .route("/v1/access/check", post(check))
        .route("/v1/access/settle", post(settle))
        .route("/v1/access/nginx", any(nginx))
        .route("/v1/entitlements/check", post(entitlement_check))
        .route(
            "/v1/entitlements/reservations/{id}/commit",
            post(commit_reservation),
        )
        .route(
            "/v1/entitlements/reservations/{id}/release",
            post(release_reservation),
        )
        .route("/v1/resources/{id}/payment-required", get(payment_required))
        .route("/.well-known/jwks.json", get(jwks))
        .with_state(state)
}

/// The public keys session tokens are signed with, for resource servers that verify them
/// offline. Cacheable for a few minutes: a rotated-in key is listed before it signs.
async fn jwks(State(state): State<AccessState>) -> Response {
    (
        [(http::header::CACHE_CONTROL, "public, max-age=300")],
        Json(state.gateway.entitlements().sessions().jwks()),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckBody {
    method: String,
    url: String,
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    headers: HashMap<String, String>,
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|e| Error::new(ErrorCode::MalformedJson, e.to_string()))
}

fn headers_json(headers: &HeaderMap) -> Value {
    Value::Object(
        header_pairs(headers)
            .into_iter()
            .map(|(name, value)| (name, Value::String(value)))
            .collect(),
    )
}

fn deny(reply: Reply) -> Value {
    let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    json!({
        "decision": "deny",
        "status": reply.status.as_u16(),
        "headers": headers_json(&reply.headers),
        "body": body,
    })
}

async fn check(
    State(state): State<AccessState>,
    parts: Parts,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let scope = state.caller_of(&parts).await?;
    let request: CheckBody = parse(&body)?;
    let headers = header_map(&request.headers);
    let decision = state
        .check(
            scope,
            &CheckRequest {
                method: &request.method,
                url: &request.url,
                resource: request.resource.as_deref(),
                headers: &headers,
            },
        )
        .await?;
    Ok(match decision {
        Decision::Allow { payer, settle } => Json(json!({
            "decision": "allow",
            "payer": payer,
            "settle": settle,
        })),
        Decision::Entitled {
            wallet,
            grant,
            session,
        } => Json(json!({
            "decision": "allow",
            "payer": wallet,
            "grant": grant.to_string(),
            "session": session,
            "settle": null,
        })),
        Decision::Deny(reply) => Json(deny(reply)),
    }
    .into_response())
}

async fn settle(
    State(state): State<AccessState>,
    parts: Parts,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let scope = state.caller_of(&parts).await?;
    let token: SettleToken = parse(&body)?;
    Ok(match state.settle(scope, token).await? {
        Settled::Paid { response, headers } => Json(json!({
            "settled": true,
            "headers": headers_json(&headers),
            "response": response,
        })),
        Settled::Refused(reply) => {
            let mut answer = deny(reply);
            answer["settled"] = Value::Bool(false);
            if let Value::Object(map) = &mut answer {
                map.remove("decision");
            }
            Json(answer)
        }
    }
    .into_response())
}

/// nginx `auth_request`: settle before, answer 200, 401 (challenge) or 403 (replay).
async fn nginx(State(state): State<AccessState>, parts: Parts) -> Response {
    nginx_decision(&state, parts)
        .await
        .unwrap_or_else(nginx_failure)
}

/// The endpoint's own failures (a refused key, a resource not found): `auth_request` takes 401
/// for a challenge and 403 for a replay, so those two become 500, which nginx answers its
/// client as 500 (logging the status), instead of a 402 or 409 without a challenge.
fn nginx_failure(mut response: Response) -> Response {
    let status = response.status();
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        tracing::warn!(
            %status,
            "nginx auth_request: the X-Purser-Key was refused; answering 500"
        );
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    }
    response
}

/// The decision for nginx (200, 401 or 403), or the endpoint's failure.
async fn nginx_decision(state: &AccessState, mut parts: Parts) -> Result<Response, Response> {
    // The key comes in its own header: `Authorization` is the client's.
    if let Some(key) = parts.headers.get("x-purser-key").cloned() {
        let bearer = format!("Bearer {}", key.to_str().unwrap_or_default());
        if let Ok(value) = HeaderValue::from_str(&bearer) {
            parts.headers.insert(http::header::AUTHORIZATION, value);
        }
    } else {
        parts.headers.remove(http::header::AUTHORIZATION);
    }
    let scope = state
        .caller_of(&parts)
        .await
        .map_err(|e| ApiError(e).into_response())?;
    let original = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (Some(method), Some(uri), Some(host)) = (
        original("x-original-method"),
        original("x-original-uri"),
        original("x-original-host").or_else(|| original("host")),
    ) else {
        return Err(ApiError(Error::invalid_input(
            "nginx must pass X-Original-Method, X-Original-URI and X-Original-Host",
        ))
        .into_response());
    };
    let proto = original("x-original-proto").unwrap_or_else(|| "http".into());
    let url = format!("{proto}://{host}{uri}");
    let request = CheckRequest {
        method: &method,
        url: &url,
        resource: None,
        headers: &parts.headers,
    };
    let allow = |payer: &str, headers: HeaderMap| {
        let mut response = StatusCode::OK.into_response();
        response.headers_mut().extend(headers);
        if let Ok(payer) = HeaderValue::from_str(&purser_axum::payer_name(payer)) {
            response
                .headers_mut()
                .insert(purser_axum::PAYER_HEADER, payer);
        }
        response
    };
    Ok(match state.check_and_settle(scope, &request).await {
        Ok(PaidFirst::Paid { payer, headers }) => allow(&payer, headers),
        Ok(PaidFirst::Entitled { wallet, session }) => {
            allow(&wallet, session_headers(session.as_deref()))
        }
        Ok(PaidFirst::Refused { reply, offer }) => nginx_refusal(&offer, reply),
        Err(e) => return Err(ApiError(e).into_response()),
    })
}

/// A refusal as `auth_request` can carry it: 403 for a conflict, else 401 with the challenge.
fn nginx_refusal(offer: &purser_axum::Offer, reply: Reply) -> Response {
    let reply = match reply.status {
        StatusCode::PAYMENT_REQUIRED | StatusCode::CONFLICT => reply,
        _ => {
            // A malformed payment, or a failure: the client gets a challenge naming it.
            let code: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
            let error = code["error"]["code"].as_str().unwrap_or("invalid_payment");
            purser_axum::Paywall::challenge(offer, Some(error))
        }
    };
    let status = if reply.status == StatusCode::CONFLICT {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::UNAUTHORIZED
    };
    let mut response = status.into_response();
    let headers = response.headers_mut();
    if let Some(required) = reply.headers.get(lowercase::PAYMENT_REQUIRED) {
        headers.insert(lowercase::PAYMENT_REQUIRED, required.clone());
    }
    if let Ok(body) = HeaderValue::from_bytes(&reply.body) {
        headers.insert("x-purser-body", body);
    }
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .extensions_mut()
        .insert(purser_http::error::PassThrough);
    response
}

/// The public price of a published resource, for the native layer.
async fn payment_required(State(state): State<AccessState>, Path(id): Path<String>) -> Response {
    let id = match id.parse::<ResourceId>() {
        Ok(id) => id,
        Err(e) => return ApiError(e).into_response(),
    };
    match state.gateway.priced(id).await {
        Ok(Some(priced)) => match priced.offer(None) {
            Some(offer) => Json(json!({
                "paymentRequired": offer.required,
                "alsoAccepts": offer.also_accepts,
                "paymentIdentifierRequired": offer.payment_identifier_required,
            }))
            .into_response(),
            None => ApiError(Error::new(
                ErrorCode::Internal,
                "building the resource's price",
            ))
            .into_response(),
        },
        Ok(None) => ApiError(Error::new(
            ErrorCode::NotFound,
            "no such published resource",
        ))
        .into_response(),
        Err(e) => ApiError(e).into_response(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EntitlementBody {
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    session: Option<String>,
    #[serde(default)]
    sign_in: Option<String>,
    /// Atomic units, as a decimal string.
    #[serde(default)]
    reserve: Option<String>,
    #[serde(default)]
    network: Option<String>,
}

fn reservation_json(reservation: &CreditReservation) -> Value {
    json!({
        "id": reservation.id.to_string(),
        "wallet": reservation.key.wallet(),
        "network": reservation.key.network(),
        "asset": reservation.key.asset(),
        "amount": reservation.amount.to_string(),
        "state": reservation.state.as_str(),
        "committedAmount": reservation.committed_amount.map(|a| a.to_string()),
    })
}

async fn entitlement_check(
    State(state): State<AccessState>,
    parts: Parts,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let scope = state.caller_of(&parts).await?;
    let request: EntitlementBody = parse(&body)?;
    if request.resource.is_none() && request.url.is_none() {
        return Err(Error::invalid_input("name the resource, or its method and url").into());
    }
    let reserve = request
        .reserve
        .as_deref()
        .map(Amount::parse_atomic)
        .transpose()?;
    let question = EntitlementQuestion {
        resource: request.resource.as_deref(),
        method: request.method.as_deref().unwrap_or("GET"),
        url: request.url.as_deref().unwrap_or_default(),
        session: request.session.as_deref(),
        sign_in: request.sign_in.as_deref(),
        reserve,
        network: request.network.as_deref(),
    };
    Ok(match state.entitlement(scope, &question).await? {
        EntitlementAnswer::Grant {
            wallet,
            grant,
            session,
        } => Json(json!({
            "decision": "allow",
            "reason": "grant",
            "wallet": wallet,
            "grant": {
                "id": grant.id.to_string(),
                "expiresAt": grant.expires_at,
                "usesLeft": grant.uses_allowed.map(|n| n.saturating_sub(grant.uses_count)),
            },
            "session": session,
        })),
        EntitlementAnswer::Credit {
            wallet,
            reservation,
            session,
        } => Json(json!({
            "decision": "allow",
            "reason": "credit",
            "wallet": wallet,
            "reservation": reservation_json(&reservation),
            "session": session,
        })),
        EntitlementAnswer::Deny {
            reason,
            message,
            reply,
        } => {
            let mut answer = deny(reply);
            answer["reason"] = Value::from(reason.as_str());
            answer["message"] = Value::from(message);
            Json(answer)
        }
    }
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommitBody {
    /// What the call cost, atomic units as a decimal string.
    amount: String,
}

async fn commit_reservation(
    State(state): State<AccessState>,
    Path(id): Path<String>,
    parts: Parts,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let scope = state.caller_of(&parts).await?;
    let id = id.parse::<CreditReservationId>()?;
    let request: CommitBody = parse(&body)?;
    let actual = Amount::parse_atomic(&request.amount)?;
    let reservation = state
        .gateway
        .repositories()
        .credits
        .commit(scope, id, actual)
        .await?;
    Ok(Json(reservation_json(&reservation)).into_response())
}

async fn release_reservation(
    State(state): State<AccessState>,
    Path(id): Path<String>,
    parts: Parts,
) -> Result<Response, ApiError> {
    let scope = state.caller_of(&parts).await?;
    let id = id.parse::<CreditReservationId>()?;
    let reservation = state
        .gateway
        .repositories()
        .credits
        .release(scope, id)
        .await?;
    Ok(Json(reservation_json(&reservation)).into_response())
}
