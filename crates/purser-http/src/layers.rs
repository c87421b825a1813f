//! The layers around every Purser router, outermost first: panic containment, request id
//! (the caller's when well-formed, else a fresh one), tracing span, then one layer of guards
//! (metrics, error envelope, URL and header limits, rate limits, in-flight limit per route),
//! timeout, body limit.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use http::{HeaderName, HeaderValue, Request, header};
use purser_domain::ErrorCode;
use tokio::sync::Semaphore;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::auth::Verified;
use crate::error::{envelope_framework_error, error_response};
use crate::ratelimit::RateLimiter;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Limits that apply to every request.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    /// The longest URL (path and query) accepted; longer is `414 uri_too_long`.
    pub max_url_bytes: usize,
    /// The most header bytes (names and values) accepted; more is `431 headers_too_large`.
    pub max_header_bytes: usize,
    /// Requests in flight at once on one route (by template); one more is answered
    /// `503 overloaded` at once rather than queued.
    pub max_in_flight_per_route: usize,
    /// Rate limits, when any are configured.
    pub rate_limiter: Option<Arc<RateLimiter>>,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            max_url_bytes: 8 * 1024,
            max_header_bytes: 32 * 1024,
            max_in_flight_per_route: 512,
            rate_limiter: None,
        }
    }
}

/// The most characters a caller's `x-request-id` may have to be kept.
pub const MAX_REQUEST_ID_CHARS: usize = 128;

/// Whether a caller's request id is kept: 1 to [`MAX_REQUEST_ID_CHARS`] of letters, digits and
/// `-_.:` (what UUIDs, ULIDs and tracing ids use). Anything else is replaced by a fresh id, so
/// what reaches the logs is bounded and plain.
pub fn is_acceptable_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    (1..=MAX_REQUEST_ID_CHARS).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

fn drop_unacceptable_request_id<B>(mut request: Request<B>) -> Request<B> {
    if request
        .headers()
        .get(REQUEST_ID_HEADER)
        .is_some_and(|v| !is_acceptable_request_id(v))
    {
        request.headers_mut().remove(REQUEST_ID_HEADER);
    }
    request
}

/// What one route template keeps: its metrics label and its in-flight permits.
#[derive(Debug)]
struct RouteGuard {
    label: Arc<str>,
    in_flight: Semaphore,
}

/// The per-request guards, in one layer so that a request pays for one future and one look-up
/// of its route, not one per guard: URL and header limits, rate limits, the in-flight limit per
/// route and, in the shared stack, the error envelope and metrics around them.
#[derive(Debug)]
struct Guards {
    max_url_bytes: usize,
    max_header_bytes: usize,
    max_in_flight: usize,
    rate_limiter: Option<Arc<RateLimiter>>,
    /// Envelope framework errors and record metrics (the shared stack does; the proxy's guard
    /// passes upstream answers through untouched and is measured elsewhere).
    observe: bool,
    /// By route template: a closed set (the router's routes, and `unmatched`).
    routes: RwLock<HashMap<String, Arc<RouteGuard>>>,
}

impl Guards {
    fn new(limits: &HttpLimits, observe: bool) -> Arc<Self> {
        Arc::new(Self {
            max_url_bytes: limits.max_url_bytes,
            max_header_bytes: limits.max_header_bytes,
            max_in_flight: limits.max_in_flight_per_route.max(1),
            rate_limiter: limits.rate_limiter.clone(),
            observe,
            routes: RwLock::default(),
        })
    }

    fn route(&self, template: &str) -> Arc<RouteGuard> {
        let known = self.routes.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(route) = known.get(template) {
            return route.clone();
        }
        drop(known);
        let mut routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
        routes
            .entry(template.to_owned())
            .or_insert_with(|| {
                Arc::new(RouteGuard {
                    label: Arc::from(template),
                    in_flight: Semaphore::new(self.max_in_flight),
                })
            })
            .clone()
    }

    /// The refusal of a URL or header set over the limits, with the envelope.
    fn refuse_head<B>(&self, request: &Request<B>) -> Option<Response> {
        let url_bytes = request
            .uri()
            .path_and_query()
            .map_or(0, |p| p.as_str().len());
        if url_bytes > self.max_url_bytes {
            return Some(error_response(
                ErrorCode::UriTooLong,
                &format!(
                    "the URL is {url_bytes} bytes; the limit is {}",
                    self.max_url_bytes
                ),
            ));
        }
        let header_bytes: usize = request
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len())
            .sum();
        if header_bytes > self.max_header_bytes {
            return Some(error_response(
                ErrorCode::HeadersTooLarge,
                &format!(
                    "the headers are {header_bytes} bytes; the limit is {}",
                    self.max_header_bytes
                ),
            ));
        }
        None
    }

    /// Runs `request` when every guard admits it. A key the rate limiter authenticated is
    /// handed on as [`Verified`], so the handler does not authenticate it again.
    async fn admit(&self, route: &RouteGuard, mut request: Request<Body>, next: Next) -> Response {
        if let Some(refusal) = self.refuse_head(&request) {
            return refusal;
        }
        if let Some(limiter) = &self.rate_limiter {
            let peer = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip());
            match limiter
                .check(request.uri().path(), peer, request.headers())
                .await
            {
                Ok(Some(principal)) => {
                    request.extensions_mut().insert(Verified(principal));
                }
                Ok(None) => {}
                Err(limited) => return crate::ratelimit::rate_limited(limited.retry_after),
            }
        }
        let Ok(_permit) = route.in_flight.try_acquire() else {
            let mut response = error_response(
                ErrorCode::Overloaded,
                "this route has as many requests in flight as it allows; retry shortly",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return response;
        };
        next.run(request).await
    }
}

async fn guard_request(
    State(guards): State<Arc<Guards>>,
    request: Request<Body>,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = crate::metrics::method_label(request.method());
    let route = guards.route(
        request
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str),
    );
    let response = guards.admit(&route, request, next).await;
    if !guards.observe {
        return response;
    }
    let response = envelope_framework_error(response).await;
    crate::metrics::record(method, &route.label, response.status(), started.elapsed());
    response
}

/// A handler panicked: a bug. Log it, answer the envelope, keep serving.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %message, "a handler panicked");
    crate::error::error_response(purser_domain::ErrorCode::Internal, "internal error")
}

/// Wraps `router` in the shared layers. Unknown routes answer `route_not_found`.
pub fn apply(router: Router, limits: HttpLimits) -> Router {
    let router = router
        .fallback(crate::error::route_not_found)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            http::StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(middleware::from_fn_with_state(
            Guards::new(&limits, true),
            guard_request,
        ));
    router.layer(
        ServiceBuilder::new()
            .layer(CatchPanicLayer::custom(panic_response))
            .layer(SetSensitiveRequestHeadersLayer::new([
                header::AUTHORIZATION,
                header::COOKIE,
            ]))
            .map_request(drop_unacceptable_request_id)
            .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid))
            .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
            .layer(
                TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                    let request_id = request
                        .headers()
                        .get(REQUEST_ID_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    tracing::info_span!(
                        "http",
                        method = %request.method(),
                        path = %request.uri().path(),
                        request_id = %request_id,
                    )
                }),
            ),
    )
}

/// The guards for a router that streams bodies and keeps its own timeouts (the gateway's
/// proxy): URL and header limits, rate limits, in-flight limit, and the request id.
pub fn guard(router: Router, limits: &HttpLimits) -> Router {
    router
        .layer(middleware::from_fn_with_state(
            Guards::new(limits, false),
            guard_request,
        ))
        .layer(
            ServiceBuilder::new()
                .map_request(drop_unacceptable_request_id)
                .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER)),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_kept_only_when_plain_and_short() {
        let ok = |s: &str| is_acceptable_request_id(&HeaderValue::from_str(s).unwrap());
        assert!(ok("0190f3a2-7b1c-7d2e-9f00-123456789abc"));
        assert!(ok("req_01HZX.trace:7"));
        assert!(!ok(""));
        assert!(!ok("has space"));
        assert!(!ok("quote\"inside"));
        assert!(!ok(&"a".repeat(MAX_REQUEST_ID_CHARS + 1)));
        assert!(ok(&"a".repeat(MAX_REQUEST_ID_CHARS)));
        let raw = HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap();
        assert!(!is_acceptable_request_id(&raw));
    }
}
