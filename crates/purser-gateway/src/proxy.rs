//! The reverse proxy: a route's requests are priced by its registry resource, paid through the
//! engine, and forwarded to the merchant's upstream with bodies streamed both ways.
//!
//! What the upstream receives: the request as the client sent it, minus hop-by-hop headers and
//! the payment headers (`PAYMENT-SIGNATURE`, `X-PAYMENT`), plus `X-Purser-Payer` (the verified
//! payer; a client's own `X-Purser-Payer` is dropped, so the upstream may trust it) and
//! `X-Forwarded-For`, `X-Forwarded-Host`, `X-Forwarded-Proto`.
//!
//! Failures: no route is 404 `route_not_found`; a resource that is not published is 404
//! `not_found`; an upstream that cannot be reached or breaks off before answering is 502
//! `upstream_unavailable`, one that does not answer within the route's timeout is 504
//! `upstream_timeout`. In none of these is anything settled.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use http::Request;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use purser_axum::{PAYER_HEADER, PathPattern, Reply, SettleTiming, Settled, payer_name};
use purser_domain::ErrorCode;
use purser_domain::id::ResourceId;
use purser_entitlement::SESSION_HEADER;
use purser_http::error::PassThrough;
use purser_x402::header::lowercase;

use crate::{Gateway, GatewayConfig};

/// A route, ready to serve.
struct Route {
    host: Option<String>,
    path: PathPattern,
    upstream: String,
    resource: ResourceId,
    settle: SettleTiming,
    timeout: Duration,
    client: reqwest::Client,
}

/// The proxy's state.
#[derive(Clone)]
pub struct Proxy {
    gateway: Gateway,
    routes: Arc<Vec<Route>>,
}

impl Proxy {
    /// The routes of `config` (checked with [`GatewayConfig::check`] first).
    pub fn new(gateway: Gateway, config: &GatewayConfig) -> Result<Self, String> {
        config
            .check()
            .map_err(|(path, problem)| format!("{path}: {problem}"))?;
        let http1 = client(false)?;
        let http2 = client(true)?;
        let routes = config
            .routes
            .iter()
            .map(|r| Route {
                host: r.host.as_ref().map(|h| h.to_ascii_lowercase()),
                path: PathPattern::parse(&r.path).expect("checked"),
                upstream: r.upstream.trim_end_matches('/').to_owned(),
                resource: r.resource.parse().expect("checked"),
                settle: r.settle,
                timeout: config.timeout(r),
                client: if r.upstream_http2 {
                    http2.clone()
                } else {
                    http1.clone()
                },
            })
            .collect();
        Ok(Self {
            gateway,
            routes: Arc::new(routes),
        })
    }

    /// Every request goes to [`proxy`].
    pub fn router(self) -> Router {
        Router::new().fallback(proxy).with_state(self)
    }

    fn route(&self, host: Option<&str>, path: &str) -> Option<&Route> {
        let host = host.map(|h| h.rsplit_once(':').map_or(h, |(name, _)| name));
        self.routes.iter().find(|r| {
            r.host
                .as_deref()
                .is_none_or(|want| host.is_some_and(|h| h.eq_ignore_ascii_case(want)))
                && r.path.matches(path)
        })
    }
}

fn client(http2: bool) -> Result<reqwest::Client, String> {
    let builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(60));
    let builder = if http2 {
        builder.http2_prior_knowledge()
    } else {
        builder.http1_only()
    };
    builder
        .build()
        .map_err(|e| format!("building the upstream client: {e}"))
}

fn error(code: ErrorCode, message: &str) -> Response {
    Reply::error(code, message).into_response()
}

async fn proxy(State(proxy): State<Proxy>, request: Request<Body>) -> Response {
    let client_addr = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().host())
        .map(str::to_owned);
    let Some(route) = proxy.route(host.as_deref(), request.uri().path()) else {
        return error(
            ErrorCode::RouteNotFound,
            "no gateway route for this host and path",
        );
    };
    let priced = match proxy.gateway.priced(route.resource).await {
        Ok(Some(priced)) => priced,
        Ok(None) => return error(ErrorCode::NotFound, "this API is not available"),
        Err(e) => {
            purser_http::error::log_error(&e);
            return error(e.code(), e.public_message());
        }
    };
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let Some(mut offer) = priced.offer_at(Some(&path_and_query)) else {
        return error(
            ErrorCode::Internal,
            "the resource's price could not be built",
        );
    };
    let paywall = proxy.gateway.paywall(priced.scope());
    // Repeat access: a wallet that signs in and holds a grant comes in without paying.
    let url = offer.required.resource.url.clone();
    match proxy
        .gateway
        .signed_in(&priced, request.headers(), &url)
        .await
    {
        Ok(Some(admission)) => {
            return match forward(
                route,
                request,
                &path_and_query,
                &admission.wallet,
                host.as_deref(),
                client_addr,
            )
            .await
            {
                Ok(upstream) => {
                    let mut extra = HeaderMap::new();
                    if let Some(value) = admission
                        .session
                        .as_deref()
                        .and_then(|t| HeaderValue::from_str(t).ok())
                    {
                        extra.insert(HeaderName::from_static(SESSION_HEADER), value);
                        // A credential: no shared cache may keep this response.
                        extra.insert(
                            header::CACHE_CONTROL,
                            HeaderValue::from_static("private, no-store"),
                        );
                    }
                    respond(upstream, extra)
                }
                Err(failure) => failure,
            };
        }
        Ok(None) => {}
        Err(e) => {
            purser_http::error::log_error(&e);
            return error(e.code(), e.public_message());
        }
    }
    proxy
        .gateway
        .offer_sign_in(&priced, &mut offer, request.headers())
        .await;
    let admitted = match paywall.admit(&offer, request.headers()).await {
        Ok(admitted) => admitted,
        Err(reply) => return reply.into_response(),
    };
    if let Some(mode) = purser_axum::engine::escrow_capture_mode(&admitted.requirements) {
        return escrowed(
            &proxy,
            route,
            &priced,
            &paywall,
            &offer,
            &admitted,
            mode,
            request,
            &path_and_query,
            (host.as_deref(), client_addr),
        )
        .await;
    }
    let mut paid_headers = HeaderMap::new();
    let mut paid = false;
    if route.settle == SettleTiming::Before {
        match paywall.settle(&offer, &admitted).await {
            Settled::Paid { headers, .. } => {
                paid_headers = headers;
                // Granted now: the money is taken whatever the upstream does next.
                proxy
                    .gateway
                    .paid(&priced, &admitted.payload, &admitted.payer)
                    .await;
            }
            Settled::Refused(reply) => return reply.into_response(),
        }
    }
    let forwarded = forward(
        route,
        request,
        &path_and_query,
        &admitted.payer,
        host.as_deref(),
        client_addr,
    )
    .await;
    let upstream = match forwarded {
        Ok(upstream) => upstream,
        Err(failure) => {
            if route.settle == SettleTiming::After {
                paywall.release(&admitted).await;
            }
            return failure;
        }
    };
    if route.settle == SettleTiming::After {
        if upstream.status().as_u16() >= 400 {
            paywall.release(&admitted).await;
        } else {
            match paywall.settle(&offer, &admitted).await {
                Settled::Paid { headers, .. } => {
                    paid_headers = headers;
                    paid = true;
                }
                Settled::Refused(reply) => return reply.into_response(),
            }
        }
    }
    if paid {
        proxy
            .gateway
            .paid(&priced, &admitted.payload, &admitted.payer)
            .await;
    }
    respond(upstream, paid_headers)
}

/// An escrowed (`auth-capture`) payment through the proxy, as the native layer runs one
/// (`purser_axum::layer`): the hold is authorized before the upstream is called; in `sync`
/// capture mode it is captured whole when the upstream answers below 400 (at once, before the
/// upstream, when the route settles `before`) and voided when it fails; in `deferred` mode the
/// resource's schedule finishes it. Either way the hold is scheduled, so that a capture or
/// void that does not happen here (a crash, the chain away) still happens before the capture
/// deadline.
#[allow(clippy::too_many_arguments)]
async fn escrowed(
    proxy: &Proxy,
    route: &Route,
    priced: &crate::Priced,
    paywall: &purser_axum::Paywall,
    offer: &purser_axum::Offer,
    admitted: &purser_axum::engine::Admitted,
    mode: purser_x402::auth_capture::CaptureMode,
    request: Request<Body>,
    path_and_query: &str,
    (host, client_addr): (Option<&str>, Option<SocketAddr>),
) -> Response {
    use purser_x402::auth_capture::CaptureMode;
    let held = match paywall.settle(offer, admitted).await {
        Settled::Paid { headers, response } if response.success => headers,
        Settled::Paid { .. } => {
            return purser_axum::Paywall::challenge(offer, Some("settlement_pending"))
                .into_response();
        }
        Settled::Refused(reply) => return reply.into_response(),
    };
    let scheduled = proxy
        .gateway
        .escrow_held(priced, &admitted.payload, &admitted.requirements)
        .await;
    let finalize = |capture: bool| {
        let scheduled = scheduled.as_deref();
        async move {
            let outcome = paywall.finalize_escrow(admitted, capture).await;
            if let Some(payment) = scheduled {
                proxy
                    .gateway
                    .escrow_finalized(payment, capture, &outcome)
                    .await;
            }
        }
    };
    let captures_now = mode == CaptureMode::Sync && route.settle == SettleTiming::Before;
    if captures_now {
        finalize(true).await;
    }
    let forwarded = forward(
        route,
        request,
        path_and_query,
        &admitted.payer,
        host,
        client_addr,
    )
    .await;
    if mode == CaptureMode::Sync && !captures_now {
        let served = matches!(&forwarded, Ok(upstream) if upstream.status().as_u16() < 400);
        finalize(served).await;
    }
    match forwarded {
        Ok(upstream) => respond(upstream, held),
        Err(failure) => failure,
    }
}

/// The upstream's response, streamed, with `extra` headers (the settlement's) added.
fn respond(upstream: reqwest::Response, extra: HeaderMap) -> Response {
    let status = upstream.status();
    let mut headers = upstream.headers().clone();
    let mut response = Response::new(Body::from_stream(upstream_body(upstream.bytes_stream())));
    *response.status_mut() = status;
    strip_hop_by_hop(&mut headers);
    headers.extend(extra);
    *response.headers_mut() = headers;
    response.extensions_mut().insert(PassThrough);
    response
}

/// The upstream's body; a break mid-stream ends the client's response with an error (the
/// client sees a truncated body, as from the upstream itself).
fn upstream_body(
    stream: impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send + 'static,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    use futures::StreamExt as _;
    stream.map(|chunk| chunk.map_err(std::io::Error::other))
}

/// Sends the request on to the upstream; answers its response head, or the gateway error.
async fn forward(
    route: &Route,
    request: Request<Body>,
    path_and_query: &str,
    payer: &str,
    host: Option<&str>,
    client_addr: Option<SocketAddr>,
) -> Result<reqwest::Response, Response> {
    let (parts, body) = request.into_parts();
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    for name in [
        header::HOST.as_str(),
        lowercase::PAYMENT_SIGNATURE,
        lowercase::X_PAYMENT,
        lowercase::SIGN_IN_WITH_X,
        SESSION_HEADER,
        PAYER_HEADER,
    ] {
        headers.remove(name);
    }
    if let Ok(value) = HeaderValue::from_str(&payer_name(payer)) {
        headers.insert(PAYER_HEADER, value);
    }
    if let Some(addr) = client_addr {
        let chain = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(earlier) => format!("{earlier}, {}", addr.ip()),
            None => addr.ip().to_string(),
        };
        if let Ok(value) = HeaderValue::from_str(&chain) {
            headers.insert(HeaderName::from_static("x-forwarded-for"), value);
        }
    }
    if let Some(value) = host.and_then(|h| HeaderValue::from_str(h).ok()) {
        headers.insert(HeaderName::from_static("x-forwarded-host"), value);
    }
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static("http"),
    );
    let url = format!("{}{path_and_query}", route.upstream);
    let body = reqwest::Body::wrap_stream(body.into_data_stream());
    let send = route
        .client
        .request(parts.method, url)
        .headers(headers)
        .body(body)
        .send();
    match tokio::time::timeout(route.timeout, send).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, upstream = %route.upstream, "the upstream failed");
            Err(error(
                ErrorCode::UpstreamUnavailable,
                "the upstream could not be reached or broke off",
            ))
        }
        Err(_) => Err(error(
            ErrorCode::UpstreamTimeout,
            &format!(
                "the upstream did not answer within {} s",
                route.timeout.as_secs()
            ),
        )),
    }
}

/// Removes the headers that belong to one connection (RFC 9110, 7.6.1), including those the
/// `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go_including_the_ones_connection_names() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "connection",
            HeaderValue::from_static("close, x-secret-hop"),
        );
        headers.insert("x-secret-hop", HeaderValue::from_static("1"));
        headers.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert!(headers.contains_key("x-kept"));
    }
}
