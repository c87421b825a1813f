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
//! - `GET /v1/resources/{id}/payment-required`: a published resource's current 402 and the
//!   requirements still payable, public, for the native layer's registry prices.
//!
//! The check callers authenticate with a `resource_server` key (`Authorization: Bearer`); a
//! resource is matched among the key's tenant's published resources.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use purser_axum::engine::Version;
use purser_axum::{Admitted, Reply, Settled};
use purser_domain::auth::{Access, Authenticator, TenantScope};
use purser_domain::id::ResourceId;
use purser_domain::page::PageRequest;
use purser_domain::registry::{ResourceKind, ResourceStatus};
use purser_domain::{Error, ErrorCode};
use purser_http::ApiError;
use purser_registry::challenge;
use purser_x402::header::lowercase;
use purser_x402::v2::{PaymentPayload, PaymentRequirements};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{Gateway, Priced};

#[derive(Clone)]
pub struct AccessState {
    pub gateway: Gateway,
    pub authenticator: Arc<Authenticator>,
}

pub fn router(state: AccessState) -> Router {
    Router::new()
        .route("/v1/access/check", post(check))
        .route("/v1/access/settle", post(settle))
        .route("/v1/access/nginx", any(nginx))
        .route("/v1/resources/{id}/payment-required", get(payment_required))
        .with_state(state)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckRequest {
    method: String,
    url: String,
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    headers: HashMap<String, String>,
}

/// What `/v1/access/settle` takes back.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SettleToken {
    resource: ResourceId,
    payer: String,
    version: Version,
    payment_payload: PaymentPayload,
    payment_requirements: PaymentRequirements,
}

async fn caller(state: &AccessState, parts: &Parts) -> Result<TenantScope, ApiError> {
    let principal = purser_http::auth::principal_of(parts, &state.authenticator)
        .await?
        .ok_or_else(|| {
            Error::new(
                ErrorCode::Unauthenticated,
                "access checks need a resource_server API key: `Authorization: Bearer <api key>`",
            )
        })?;
    Ok(principal.scope(None, Access::Facilitate)?)
}

/// The caller's published resource for `method` and `url`, by id or by URL.
async fn resolve(
    state: &AccessState,
    scope: TenantScope,
    method: &str,
    url: &str,
    resource: Option<&str>,
) -> Result<Arc<Priced>, Response> {
    let not_found = || {
        ApiError(Error::new(
            ErrorCode::NotFound,
            "no published resource of this tenant answers this method and URL",
        ))
        .into_response()
    };
    let id = match resource {
        Some(id) => id
            .parse::<ResourceId>()
            .map_err(|e| ApiError(e).into_response())?,
        None => find_by_url(state, scope, method, url)
            .await?
            .ok_or_else(not_found)?,
    };
    match state.gateway.priced(id).await {
        Ok(Some(priced)) if priced.resource.tenant_id == scope.tenant_id() => Ok(priced),
        Ok(_) => Err(not_found()),
        Err(reply) => Err(reply.into_response()),
    }
}

/// Matches `url` against the route templates of the tenant's published HTTP resources.
async fn find_by_url(
    state: &AccessState,
    scope: TenantScope,
    method: &str,
    url: &str,
) -> Result<Option<ResourceId>, Response> {
    let parsed = url::Url::parse(url).map_err(|_| {
        ApiError(Error::invalid_input("url must be an absolute http(s) URL")).into_response()
    })?;
    let origin = parsed.origin().ascii_serialization();
    let mut page = PageRequest::first(100).map_err(|e| ApiError(e).into_response())?;
    // A tenant with more resources than this names the one it means.
    for _ in 0..20 {
        let found = state
            .gateway
            .store()
            .list_resources(scope, Some(ResourceStatus::Published), page)
            .await
            .map_err(|e| ApiError(e).into_response())?;
        for resource in &found.items {
            if resource.kind != ResourceKind::Http
                || resource
                    .method
                    .as_deref()
                    .is_some_and(|m| !m.eq_ignore_ascii_case(method))
            {
                continue;
            }
            let Ok(template) = challenge::template_of(resource) else {
                continue;
            };
            if template.origin.eq_ignore_ascii_case(&origin) && template.bind(parsed.path()).is_ok()
            {
                return Ok(Some(resource.id));
            }
        }
        match found.items.last() {
            Some(last) if found.has_more => page.after = Some(last.id.as_uuid()),
            _ => break,
        }
    }
    Ok(None)
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|e| Error::new(ErrorCode::MalformedJson, e.to_string()))
}

fn path_and_query(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    Some(match parsed.query() {
        Some(q) => format!("{}?{q}", parsed.path()),
        None => parsed.path().to_owned(),
    })
}

fn header_map(headers: &HashMap<String, String>) -> HeaderMap {
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

fn headers_json(headers: &HeaderMap) -> Value {
    Value::Object(
        headers
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    k.as_str().to_owned(),
                    Value::String(v.to_str().ok()?.into()),
                ))
            })
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
) -> Response {
    let scope = match caller(&state, &parts).await {
        Ok(scope) => scope,
        Err(e) => return e.into_response(),
    };
    let request: CheckRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return ApiError(e).into_response(),
    };
    let priced = match resolve(
        &state,
        scope,
        &request.method,
        &request.url,
        request.resource.as_deref(),
    )
    .await
    {
        Ok(p) => p,
        Err(response) => return response,
    };
    let pq = path_and_query(&request.url);
    let Some(offer) = priced.offer_at(pq.as_deref()) else {
        return ApiError(Error::new(
            ErrorCode::Internal,
            "building the resource's price",
        ))
        .into_response();
    };
    let paywall = state.gateway.paywall(priced.scope());
    match paywall.admit(&offer, &header_map(&request.headers)).await {
        Ok(admitted) => Json(json!({
            "decision": "allow",
            "payer": admitted.payer,
            "settle": SettleToken {
                resource: priced.resource.id,
                payer: admitted.payer.clone(),
                version: admitted.version,
                payment_payload: admitted.payload.clone(),
                payment_requirements: admitted.requirements.clone(),
            },
        }))
        .into_response(),
        Err(reply) => Json(deny(reply)).into_response(),
    }
}

async fn settle(
    State(state): State<AccessState>,
    parts: Parts,
    body: axum::body::Bytes,
) -> Response {
    let scope = match caller(&state, &parts).await {
        Ok(scope) => scope,
        Err(e) => return e.into_response(),
    };
    let token: SettleToken = match parse(&body) {
        Ok(t) => t,
        Err(e) => return ApiError(e).into_response(),
    };
    let priced = match resolve(&state, scope, "", "", Some(&token.resource.to_string())).await {
        Ok(p) => p,
        Err(response) => return response,
    };
    let Some(offer) = priced.offer(None) else {
        return ApiError(Error::new(
            ErrorCode::Internal,
            "building the resource's price",
        ))
        .into_response();
    };
    let admitted = Admitted::verified(
        token.payer,
        token.payment_payload,
        token.payment_requirements,
        token.version,
    );
    match state
        .gateway
        .paywall(priced.scope())
        .settle(&offer, &admitted)
        .await
    {
        Settled::Paid { response, headers } => Json(json!({
            "settled": true,
            "headers": headers_json(&headers),
            "response": response,
        }))
        .into_response(),
        Settled::Refused(reply) => {
            let mut answer = deny(reply);
            answer["settled"] = Value::Bool(false);
            if let Value::Object(map) = &mut answer {
                map.remove("decision");
            }
            Json(answer).into_response()
        }
    }
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
    let scope = caller(state, &parts)
        .await
        .map_err(IntoResponse::into_response)?;
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
    let priced = resolve(state, scope, &method, &url, None).await?;
    let Some(offer) = priced.offer_at(Some(&uri)) else {
        return Err(ApiError(Error::new(
            ErrorCode::Internal,
            "building the resource's price",
        ))
        .into_response());
    };
    let paywall = state.gateway.paywall(priced.scope());
    let admitted = match paywall.admit(&offer, &parts.headers).await {
        Ok(admitted) => admitted,
        Err(reply) => return Ok(nginx_refusal(&offer, reply)),
    };
    Ok(match paywall.settle(&offer, &admitted).await {
        Settled::Paid { headers, .. } => {
            let mut response = StatusCode::OK.into_response();
            response.headers_mut().extend(headers);
            if let Ok(payer) = HeaderValue::from_str(&admitted.payer) {
                response
                    .headers_mut()
                    .insert(purser_axum::PAYER_HEADER, payer);
            }
            response
        }
        Settled::Refused(reply) => nginx_refusal(&offer, reply),
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
        Err(reply) => reply.into_response(),
    }
}
