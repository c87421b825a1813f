//! The discovery catalog, Bazaar-compatible, under `/facilitator/discovery`:
//!
//! - `GET /resources?type&limit&offset&payTo&scheme&network&extensions`: published resources of
//!   every tenant, most recently changed first, with `pagination: {limit, offset, total}`.
//! - `GET /search?query&limit&cursor` (and the same filters): ranked full-text search over
//!   names, descriptions, tags and schema field names, with an opaque `cursor`.
//!
//! Both are public, as the catalog is meant to be found; a key that is presented must be
//! valid. Every filter is honoured; a query parameter this endpoint does not know is named in
//! `unappliedFilters` rather than silently dropped. Malformed input is HTTP 400 with an `error`
//! string (and Purser's `code`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRef, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use http::request::Parts;
use purser_domain::auth::Authenticator;
use purser_domain::page::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use purser_domain::registry::{CatalogFilter, ResourceKind};
use purser_domain::{Error, ErrorCode};
use purser_http::ApiError;
use purser_x402::Network;
use serde_json::{Value, json};

use crate::Registry;
use crate::challenge::catalog_item;
use crate::validate::clip;

/// The longest search query.
pub const MAX_QUERY_CHARS: usize = 256;
/// The deepest offset a listing or search reaches.
pub const MAX_OFFSET: u64 = 10_000;

#[derive(Clone)]
pub struct DiscoveryState {
    pub registry: Arc<Registry>,
    pub authenticator: Arc<Authenticator>,
}

impl FromRef<DiscoveryState> for Arc<Authenticator> {
    fn from_ref(state: &DiscoveryState) -> Self {
        state.authenticator.clone()
    }
}

/// The routes, to be nested under `/facilitator`.
pub fn router(state: DiscoveryState) -> axum::Router {
    axum::Router::new().nest(
        "/facilitator/discovery",
        axum::Router::new()
            .route("/resources", get(list))
            .route("/search", get(search))
            .with_state(state),
    )
}

/// A 400 with the `error` string discovery clients read.
fn bad_request(message: impl Into<String>) -> Response {
    let message = message.into();
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": message, "code": ErrorCode::InvalidInput.as_str() })),
    )
        .into_response()
}

/// The parsed query: filters, paging, and the parameters nobody asked for.
#[derive(Debug, Default)]
struct Params {
    filter: CatalogFilter,
    limit: Option<u32>,
    offset: Option<u64>,
    query: Option<String>,
    cursor: Option<String>,
    unapplied: Vec<String>,
}

fn parse(raw: Option<&str>, search: bool) -> Result<Params, String> {
    let mut params = Params::default();
    let mut seen: Vec<String> = Vec::new();
    for (key, value) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if seen.contains(&key.to_string()) {
            return Err(format!("`{}` is given more than once", clip(&key, 32)));
        }
        seen.push(key.to_string());
        let value = value.trim().to_owned();
        match key.as_ref() {
            "type" => {
                let kind = value.parse::<ResourceKind>().map_err(|_| {
                    format!("`type` must be `http` or `mcp`, not `{}`", clip(&value, 32))
                })?;
                params.filter.kind = Some(kind);
            }
            "limit" => {
                let limit = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
                    .ok_or_else(|| {
                        format!("`limit` must be an integer from 1 to {MAX_PAGE_SIZE}")
                    })?;
                params.limit = Some(limit);
            }
            "offset" if !search => {
                let offset = value
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n <= MAX_OFFSET)
                    .ok_or_else(|| format!("`offset` must be an integer from 0 to {MAX_OFFSET}"))?;
                params.offset = Some(offset);
            }
            "payTo" => {
                if value.is_empty() || value.len() > 128 {
                    return Err("`payTo` must be an address".into());
                }
                params.filter.pay_to = Some(value);
            }
            "scheme" => {
                let valid = !value.is_empty()
                    && value.len() <= 32
                    && value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                if !valid {
                    return Err("`scheme` must be a scheme name such as `exact`".into());
                }
                params.filter.scheme = Some(value);
            }
            "network" => {
                let network = Network::parse(&value)
                    .or_else(|_| Network::parse_v1_name(&value))
                    .map_err(|_| {
                        format!(
                            "`network` must be a CAIP-2 network such as `eip155:8453`, not `{}`",
                            clip(&value, 40)
                        )
                    })?;
                params.filter.network = Some(network.as_str().to_owned());
            }
            "extensions" => {
                let names: Vec<String> = value
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect();
                if names.is_empty() || names.iter().any(|n| n.len() > 64) {
                    return Err("`extensions` must be a comma-separated list of names".into());
                }
                params.filter.extensions = names;
            }
            "query" if search => {
                if value.is_empty() {
                    return Err("`query` must not be empty".into());
                }
                if value.chars().count() > MAX_QUERY_CHARS {
                    return Err(format!(
                        "`query` must be at most {MAX_QUERY_CHARS} characters"
                    ));
                }
                params.query = Some(value);
            }
            "cursor" if search => {
                if !value.is_empty() {
                    params.cursor = Some(value);
                }
            }
            other => params.unapplied.push(clip(other, 64)),
        }
    }
    if search && params.query.is_none() {
        return Err("`query` is required".into());
    }
    Ok(params)
}

fn encode_cursor(offset: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("o:{offset}"))
}

fn decode_cursor(cursor: &str) -> Result<u64, String> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("o:").and_then(|n| n.parse::<u64>().ok()))
        .filter(|n| *n <= MAX_OFFSET)
        .ok_or_else(|| "`cursor` is not a cursor this endpoint gave".to_owned())
}

async fn check_key(state: &DiscoveryState, parts: &Parts) -> Result<(), Response> {
    purser_http::auth::principal_of(parts, &state.authenticator)
        .await
        .map(|_| ())
        .map_err(|e| ApiError(e).into_response())
}

fn items(resources: &[purser_domain::registry::Resource]) -> Result<Vec<Value>, Error> {
    resources.iter().map(catalog_item).collect()
}

async fn list(
    State(state): State<DiscoveryState>,
    parts: Parts,
    RawQuery(raw): RawQuery,
) -> Response {
    if let Err(response) = check_key(&state, &parts).await {
        return response;
    }
    let params = match parse(raw.as_deref(), false) {
        Ok(p) => p,
        Err(message) => return bad_request(message),
    };
    let limit = params.limit.unwrap_or(DEFAULT_PAGE_SIZE);
    let offset = params.offset.unwrap_or(0);
    let page = match state
        .registry
        .resources()
        .catalog_list(&params.filter, offset, limit)
        .await
    {
        Ok(page) => page,
        Err(err) => return ApiError(err).into_response(),
    };
    let items = match items(&page.items) {
        Ok(items) => items,
        Err(err) => return ApiError(err).into_response(),
    };
    let mut body = json!({
        "x402Version": 2,
        "items": items,
        "pagination": { "limit": limit, "offset": offset, "total": page.total },
    });
    if !params.unapplied.is_empty() {
        body["unappliedFilters"] = json!(params.unapplied);
    }
    Json(body).into_response()
}

async fn search(
    State(state): State<DiscoveryState>,
    parts: Parts,
    RawQuery(raw): RawQuery,
) -> Response {
    if let Err(response) = check_key(&state, &parts).await {
        return response;
    }
    let params = match parse(raw.as_deref(), true) {
        Ok(p) => p,
        Err(message) => return bad_request(message),
    };
    let offset = match params.cursor.as_deref().map(decode_cursor).transpose() {
        Ok(offset) => offset.unwrap_or(0),
        Err(message) => return bad_request(message),
    };
    let limit = params.limit.unwrap_or(DEFAULT_PAGE_SIZE);
    let query = params.query.as_deref().unwrap_or_default();
    let mut found = match state
        .registry
        .resources()
        .catalog_search(query, &params.filter, offset, limit)
        .await
    {
        Ok(found) => found,
        Err(err) => return ApiError(err).into_response(),
    };
    let more = found.len() > limit as usize;
    found.truncate(limit as usize);
    let next = (more && offset + u64::from(limit) <= MAX_OFFSET)
        .then(|| encode_cursor(offset + u64::from(limit)));
    let resources = match items(&found) {
        Ok(items) => items,
        Err(err) => return ApiError(err).into_response(),
    };
    let mut body = json!({
        "x402Version": 2,
        "resources": resources,
        "partialResults": false,
        "pagination": { "limit": limit, "cursor": next },
    });
    if !params.unapplied.is_empty() {
        body["unappliedFilters"] = json!(params.unapplied);
    }
    Json(body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_parsed_or_named_unapplied() {
        let p = parse(
            Some("type=mcp&network=base-sepolia&payTo=0xAb&scheme=exact&extensions=bazaar&color=red&limit=5&offset=10"),
            false,
        )
        .unwrap();
        assert_eq!(p.filter.kind, Some(ResourceKind::Mcp));
        assert_eq!(p.filter.network.as_deref(), Some("eip155:84532"));
        assert_eq!(p.filter.pay_to.as_deref(), Some("0xAb"));
        assert_eq!(p.filter.extensions, ["bazaar"]);
        assert_eq!((p.limit, p.offset), (Some(5), Some(10)));
        assert_eq!(p.unapplied, ["color"]);
        // `offset` is not a search parameter, `cursor` not a listing one.
        let s = parse(Some("query=weather&offset=3"), true).unwrap();
        assert_eq!(s.unapplied, ["offset"]);
        assert_eq!(
            parse(Some("cursor=x"), false).unwrap().unapplied,
            ["cursor"]
        );
    }

    #[test]
    fn malformed_input_is_refused() {
        for (raw, search) in [
            ("limit=0", false),
            ("limit=101", false),
            ("limit=ten", false),
            ("offset=-1", false),
            ("offset=99999999", false),
            ("type=ftp", false),
            ("network=not a network", false),
            ("limit=1&limit=2", false),
            ("", true),
            ("query=", true),
            ("extensions=", false),
        ] {
            assert!(parse(Some(raw), search).is_err(), "{raw}");
        }
        assert!(decode_cursor("garbage!").is_err());
        assert_eq!(decode_cursor(&encode_cursor(40)), Ok(40));
    }
}
