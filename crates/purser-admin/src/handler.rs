//! The HTTP side of GraphQL: one JSON request per POST (no batches), the caller's key checked
//! before execution, and every error in the answer carrying `extensions.code`.
//!
//! Status codes: 200 for executed requests (field errors included); 400 for requests that did
//! not parse or validate, or passed a limit of `GraphqlLimits` (`query_too_large`,
//! `query_too_deep`, checked before the parser sees the document); 401 for a bad API key; 415
//! for bodies refused unread; 413, in the platform's error envelope like every route, for
//! bodies over the limit.

use async_graphql::{Request, Response as GqlResponse, ServerError};
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::request::Parts;
use http::{HeaderMap, StatusCode, header};
use purser_domain::ErrorCode;
use serde_json::json;

use crate::{AdminState, GraphqlLimits, bounds};

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/graphql", get(graphiql).post(execute))
        .with_state(state)
}

const GRAPHIQL_HTML: &str = include_str!("graphiql.html");

async fn graphiql(State(state): State<AdminState>) -> Response {
    if state.graphiql {
        Html(GRAPHIQL_HTML).into_response()
    } else {
        purser_http::error::error_response(
            ErrorCode::RouteNotFound,
            "GraphiQL is disabled; POST queries to /graphql",
        )
    }
}

/// A GraphQL-shaped error answer: `{"errors": [{"message", "extensions": {"code"}}]}`.
fn errors_response(code: ErrorCode, message: &str) -> Response {
    let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let body =
        json!({ "errors": [{ "message": message, "extensions": { "code": code.as_str() } }] });
    (status, Json(body)).into_response()
}

async fn execute(
    State(state): State<AdminState>,
    parts: Parts,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if !is_json_content_type(&parts.headers) {
        return errors_response(
            ErrorCode::UnsupportedMediaType,
            "send GraphQL requests as `Content-Type: application/json`",
        );
    }
    let body = match body {
        Ok(body) => body,
        // The same envelope as the body-limit layer answers when `Content-Length` is too big.
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return purser_http::error::error_response(
                ErrorCode::PayloadTooLarge,
                ErrorCode::PayloadTooLarge.description(),
            );
        }
        Err(rejection) => return errors_response(ErrorCode::MalformedJson, &rejection.body_text()),
    };
    // Every dimension of the request is bounded before async-graphql parses or validates it
    // (see `bounds`); each step is linear in what the one before bounded.
    if let Err(refusal) = bounds::check_json_nesting(&body, &state.limits) {
        return errors_response(refusal.code, &refusal.message);
    }
    let mut request = match parse_request(&body, &state.limits) {
        Ok(request) => request,
        Err(Refused::Malformed(message)) => {
            return errors_response(ErrorCode::MalformedJson, &message);
        }
        Err(Refused::Bounds(refusal)) => return errors_response(refusal.code, &refusal.message),
    };
    if let Err(refusal) = bounds::check_document_text(&request.query, &state.limits) {
        return errors_response(refusal.code, &refusal.message);
    }
    let document = match async_graphql::parser::parse_query(&request.query) {
        Ok(document) => document,
        Err(err) => return errors_response(ErrorCode::GraphqlParseError, &err.to_string()),
    };
    if let Err(refusal) = bounds::check_document(&document, &state.limits) {
        return errors_response(refusal.code, &refusal.message);
    }
    // Parsed once: execution takes this document rather than parsing the text again.
    request.set_parsed_query(document);
    let principal = match purser_http::auth::principal_of(&parts, &state.authenticator).await {
        Ok(principal) => principal,
        Err(err) => {
            purser_http::error::log_error(&err);
            return errors_response(err.code(), err.public_message());
        }
    };
    let request = match principal {
        Some(principal) => request.data(principal),
        None => request,
    };
    let mut response = state.schema.execute(request).await;
    let rejected_before_execution =
        response.data == async_graphql::Value::Null && !response.errors.is_empty();
    for error in &mut response.errors {
        ensure_code(error);
    }
    let status = if rejected_before_execution && response.errors.iter().all(|e| e.path.is_empty()) {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    (status, Json(response_json(response))).into_response()
}

fn is_json_content_type(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// Why a body is not a request: not one (`malformed_json`), or over a limit.
enum Refused {
    Malformed(String),
    Bounds(bounds::Refusal),
}

/// Decodes one GraphQL request, its `variables` and `extensions` within the limits. Batches (a
/// JSON array) are refused: they multiply the cost of one HTTP request past the complexity
/// limit.
fn parse_request(body: &[u8], limits: &GraphqlLimits) -> Result<Request, Refused> {
    let malformed = Refused::Malformed;
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| malformed(format!("the body is not JSON: {e}")))?;
    if value.is_array() {
        return Err(malformed(
            "batched requests are not supported; send one request per POST".to_owned(),
        ));
    }
    if !value.get("query").is_some_and(serde_json::Value::is_string) {
        return Err(malformed("the request has no `query` string".to_owned()));
    }
    let carried = ["variables", "extensions"].map(|key| value.get(key));
    bounds::check_json_values(carried.into_iter().flatten(), limits).map_err(Refused::Bounds)?;
    serde_json::from_value(value)
        .map_err(|e| malformed(format!("the body is not a GraphQL request: {e}")))
}

/// Gives every error a code. Resolver errors have theirs already; what async-graphql reports
/// itself (validation, limits) is classified here.
fn ensure_code(error: &mut ServerError) {
    let has_code = error
        .extensions
        .as_ref()
        .is_some_and(|e| e.get("code").is_some());
    if has_code {
        return;
    }
    let code = if error.message == "Query is nested too deep." {
        ErrorCode::QueryTooDeep
    } else if error.message == "Query is too complex." {
        ErrorCode::QueryTooComplex
    } else if error.path.is_empty() {
        ErrorCode::GraphqlValidationFailed
    } else if is_input_coercion(&error.message) {
        // An argument the caller sent that async-graphql could not coerce (a null where a
        // value is needed, a number out of range): bad input, found at the field it feeds.
        ErrorCode::InvalidInput
    } else {
        tracing::error!(message = %error.message, path = ?error.path, "resolver error without a code");
        ErrorCode::Internal
    };
    if code == ErrorCode::Internal {
        error.message = "internal error".to_owned();
    }
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code.as_str());
}

/// Whether an error async-graphql raised at a field is its refusal of an argument's value.
fn is_input_coercion(message: &str) -> bool {
    message.starts_with("Failed to parse ")
        || message.starts_with("Invalid value for argument")
        || (message.starts_with("Expected input type ") && message.contains("while parsing"))
}

fn response_json(response: GqlResponse) -> serde_json::Value {
    serde_json::to_value(&response).unwrap_or_else(|err| {
        tracing::error!(%err, "serializing a GraphQL response");
        json!({ "errors": [{ "message": "internal error", "extensions": { "code": "internal" } }] })
    })
}
