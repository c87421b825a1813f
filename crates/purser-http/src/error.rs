//! The error envelope: `{"error": {"code": "…", "message": "…"}}` with the code's HTTP status.
//! Internal errors are logged with their cause and answered with a fixed message.

use axum::Json;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use purser_domain::{Error, ErrorCode};
use serde::Serialize;

/// A domain error on its way out of an HTTP handler.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        Self(err)
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
}

/// Logs a server-side error with its whole cause chain; client errors are not logged.
pub fn log_error(err: &Error) {
    if err.is_server_error() {
        tracing::error!(code = %err.code(), error = %err.chain(), "request failed");
    }
}

/// The envelope for `code` with `message`.
pub fn error_response(code: ErrorCode, message: &str) -> Response {
    let status =
        StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = Envelope {
        error: ErrorBody {
            code: code.as_str(),
            message,
        },
    };
    (status, Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        log_error(&self.0);
        let mut response = error_response(self.0.code(), self.0.public_message());
        if self.0.code() == ErrorCode::Unauthenticated || self.0.code() == ErrorCode::InvalidApiKey
        {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// Marks a response whose body must reach the client untouched even when it is an error that
/// is not JSON (a proxied upstream's own 404, say).
#[derive(Debug, Clone, Copy)]
pub struct PassThrough;

/// Rewrites errors produced by the framework and layers (unknown route, wrong method, body too
/// large, timeout, panic, rejected JSON) into the envelope, so that every error a client sees
/// carries a code. Responses that already are JSON, or are marked [`PassThrough`], are left alone.
pub async fn envelope_framework_error(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.extensions().get::<PassThrough>().is_some()
        || is_json(&response)
    {
        return response;
    }
    let code = match status {
        StatusCode::NOT_FOUND => ErrorCode::RouteNotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        StatusCode::REQUEST_TIMEOUT => ErrorCode::RequestTimeout,
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthenticated,
        StatusCode::FORBIDDEN => ErrorCode::Forbidden,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
        StatusCode::SERVICE_UNAVAILABLE => ErrorCode::Unavailable,
        s if s.is_server_error() => ErrorCode::Internal,
        // axum's extractors answer 400/422 for bodies that are not the JSON they expect.
        _ => ErrorCode::MalformedJson,
    };
    let message = match code {
        ErrorCode::MalformedJson => rejection_text(response).await,
        ErrorCode::Internal => "internal error".to_owned(),
        other => other.description().to_owned(),
    };
    error_response(code, &message)
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.contains("+json"))
}

/// The text of an extractor's rejection, which says what was wrong with the body.
async fn rejection_text(response: Response) -> String {
    const MAX_CHARS: usize = 300;
    let bytes = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim();
    if text.is_empty() {
        return "the request body is not valid".to_owned();
    }
    text.chars().take(MAX_CHARS).collect()
}

/// The fallback for unknown routes.
pub async fn route_not_found() -> Response {
    error_response(ErrorCode::RouteNotFound, "no such route")
}

/// An empty body, for handlers that answer only with a status.
pub fn empty(status: StatusCode) -> Response {
    (status, Body::empty()).into_response()
}
