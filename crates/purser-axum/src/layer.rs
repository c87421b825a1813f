//! The tower layer: routes of an axum app, each with its price, behind the [`Paywall`].
//!
//! ```text
//! let facilitator = HttpFacilitator::new("http://127.0.0.1:8402/facilitator").with_api_key(key);
//! let paywall = Paywall::new(Arc::new(facilitator), Arc::new(MemoryReplayGuard::default()));
//! let app = Router::new()
//!     .route("/weather", get(weather))
//!     .layer(PaywallLayer::new(paywall).route("GET", "/weather", offer));
//! ```
//!
//! A handler behind a price runs only once the payment is verified, and finds the payer in the
//! [`Payer`] extension and the `X-Purser-Payer` header. Routes not listed pass through.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, Method, Request};
use purser_x402::v2::{PaymentRequired, PaymentRequirements};
use serde::Deserialize;
use tokio::sync::RwLock;
use tower::{Layer, Service, ServiceExt};

use crate::engine::{
    Admitted, Offer, PAYER_HEADER, Paywall, Reply, SettleTiming, Settled, payer_name,
};
use crate::entitlement::{Entitled, EntitlementCheck, has_payment};
use purser_x402::header::lowercase::PURSER_SESSION;

/// The verified payer of the request, for handlers: `Extension<Payer>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payer(pub String);

/// Where a route's price comes from.
#[derive(Clone)]
pub enum OfferSource {
    /// Set in the app's own configuration.
    Fixed(Arc<Offer>),
    /// A resource in Purser's registry, read from its public
    /// `GET /v1/resources/{id}/payment-required` and kept for `refresh`.
    Registry(Arc<RegistryOffer>),
}

impl From<Offer> for OfferSource {
    fn from(offer: Offer) -> Self {
        Self::Fixed(Arc::new(offer))
    }
}

impl From<RegistryOffer> for OfferSource {
    fn from(offer: RegistryOffer) -> Self {
        Self::Registry(Arc::new(offer))
    }
}

/// A price kept in Purser's registry, cached.
pub struct RegistryOffer {
    client: reqwest::Client,
    /// The resource's id.
    resource: String,
    url: String,
    refresh: Duration,
    cached: RwLock<Option<(Instant, Arc<Offer>)>>,
}

impl RegistryOffer {
    /// `purser` is Purser's base URL (`http://127.0.0.1:8402`); `resource` the resource's id.
    pub fn new(purser: &str, resource: &str, refresh: Duration) -> Self {
        Self {
            client: crate::http_client(),
            resource: resource.to_owned(),
            url: format!(
                "{}/v1/resources/{resource}/payment-required",
                purser.trim_end_matches('/')
            ),
            refresh,
            cached: RwLock::new(None),
        }
    }

    async fn offer(&self) -> Result<Arc<Offer>, Reply> {
        if let Some((at, offer)) = &*self.cached.read().await
            && at.elapsed() < self.refresh
        {
            return Ok(offer.clone());
        }
        let fetched = self.fetch().await;
        let mut cached = self.cached.write().await;
        match fetched {
            Ok(offer) => {
                let offer = Arc::new(offer);
                *cached = Some((Instant::now(), offer.clone()));
                Ok(offer)
            }
            // Purser unreachable: a known price is better than no service.
            Err(e) => match &*cached {
                Some((_, offer)) => {
                    tracing::warn!(error = %e, "serving a cached price: the registry is unreachable");
                    Ok(offer.clone())
                }
                None => Err(Reply::error(
                    purser_core::ErrorCode::Unavailable,
                    "this route's price could not be read from the registry",
                )),
            },
        }
    }

    async fn fetch(&self) -> Result<Offer, String> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Answer {
            payment_required: PaymentRequired,
            #[serde(default)]
            also_accepts: Vec<PaymentRequirements>,
            #[serde(default)]
            payment_identifier_required: Option<bool>,
        }
        let response = self
            .client
            .get(&self.url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("{} answered {}", self.url, response.status()));
        }
        let answer: Answer = response.json().await.map_err(|e| e.to_string())?;
        let mut offer = Offer::new(answer.payment_required);
        offer.also_accepts = answer.also_accepts;
        offer.payment_identifier_required = answer.payment_identifier_required.unwrap_or(false);
        Ok(offer)
    }
}

impl OfferSource {
    async fn offer(&self) -> Result<Arc<Offer>, Reply> {
        match self {
            Self::Fixed(offer) => Ok(offer.clone()),
            Self::Registry(registry) => registry.offer().await,
        }
    }
}

/// A path pattern: literal segments, `{name}` for any one segment, and a final `*` for any
/// rest (including nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern(Vec<Segment>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param,
    Rest,
}

impl PathPattern {
    pub fn parse(pattern: &str) -> Result<Self, String> {
        if !pattern.starts_with('/') {
            return Err(format!("a path pattern starts with '/', not {pattern:?}"));
        }
        let parts: Vec<&str> = pattern[1..].split('/').collect();
        let mut segments = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            segments.push(match *part {
                "*" if i + 1 == parts.len() => Segment::Rest,
                "*" => return Err(format!("'*' may only end a path pattern: {pattern:?}")),
                p if (p.starts_with('{') && p.ends_with('}') && p.len() > 2)
                    || (p.starts_with(':') && p.len() > 1) =>
                {
                    Segment::Param
                }
                p => Segment::Literal(p.to_owned()),
            });
        }
        Ok(Self(segments))
    }

    pub fn matches(&self, path: &str) -> bool {
        let mut parts = path.strip_prefix('/').unwrap_or(path).split('/');
        for segment in &self.0 {
            match segment {
                Segment::Rest => return true,
                Segment::Param => match parts.next() {
                    Some(p) if !p.is_empty() => {}
                    _ => return false,
                },
                Segment::Literal(l) => {
                    if parts.next() != Some(l.as_str()) {
                        return false;
                    }
                }
            }
        }
        parts.next().is_none()
    }
}

/// One priced route.
#[derive(Clone)]
pub struct PaidRoute {
    pub method: Option<Method>,
    pub path: PathPattern,
    pub offer: OfferSource,
    pub timing: SettleTiming,
}

impl PaidRoute {
    fn matches(&self, method: &Method, path: &str) -> bool {
        self.method.as_ref().is_none_or(|m| m == method) && self.path.matches(path)
    }
}

/// The layer: put it on an axum `Router` with `.layer(...)`.
#[derive(Clone)]
pub struct PaywallLayer {
    paywall: Paywall,
    routes: Arc<Vec<PaidRoute>>,
    entitlements: Option<EntitlementCheck>,
}

impl PaywallLayer {
    pub fn new(paywall: Paywall) -> Self {
        Self {
            paywall,
            routes: Arc::new(Vec::new()),
            entitlements: None,
        }
    }

    /// Lets signed-in wallets whose grant holds into registry-priced routes without paying,
    /// as `check` decides; their 402s offer a sign-in beside the payment.
    pub fn with_entitlements(mut self, check: EntitlementCheck) -> Self {
        self.entitlements = Some(check);
        self
    }

    /// Prices `method` (`"*"` for any) on `path`, settling after the handler.
    ///
    /// # Panics
    /// When `method` or `path` does not parse: routes are fixed when the app is built.
    pub fn route(self, method: &str, path: &str, offer: impl Into<OfferSource>) -> Self {
        self.route_with(method, path, offer, SettleTiming::After)
    }

    /// Prices `method` on `path` with the given settlement timing.
    ///
    /// # Panics
    /// When `method` or `path` does not parse.
    pub fn route_with(
        mut self,
        method: &str,
        path: &str,
        offer: impl Into<OfferSource>,
        timing: SettleTiming,
    ) -> Self {
        let method = (method != "*").then(|| {
            Method::from_bytes(method.as_bytes())
                .unwrap_or_else(|_| panic!("not an HTTP method: {method:?}"))
        });
        let path = PathPattern::parse(path).unwrap_or_else(|e| panic!("{e}"));
        Arc::make_mut(&mut self.routes).push(PaidRoute {
            method,
            path,
            offer: offer.into(),
            timing,
        });
        self
    }
}

impl<S> Layer<S> for PaywallLayer {
    type Service = PaywallService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PaywallService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`PaywallLayer`] wraps around an app.
#[derive(Clone)]
pub struct PaywallService<S> {
    inner: S,
    layer: PaywallLayer,
}

impl<S> Service<Request<Body>> for PaywallService<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // The clone is not ready; the one poll_ready readied serves this request.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let route = layer
                .routes
                .iter()
                .find(|r| r.matches(request.method(), request.uri().path()));
            match route {
                None => inner.oneshot(request).await,
                Some(route) => Ok(paid(&layer, route, inner, request).await),
            }
        })
    }
}

/// One priced request: let in on a grant, or through the engine.
async fn paid<S>(
    layer: &PaywallLayer,
    route: &PaidRoute,
    inner: S,
    mut request: Request<Body>,
) -> Response
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Send,
    S::Future: Send,
{
    let paywall = &layer.paywall;
    let offer = match route.offer.offer().await {
        Ok(offer) => offer,
        Err(reply) => return reply.into_response(),
    };
    let offer = with_request_url(&offer, &request);
    if let (Some(check), OfferSource::Registry(registry)) = (&layer.entitlements, &route.offer)
        && !has_payment(request.headers())
    {
        let url = request_url(&request);
        match check.ask(&registry.resource, &url, request.headers()).await {
            Ok(Entitled::Allow { wallet, session }) => {
                set_payer(&mut request, &wallet);
                let Ok(mut response) = inner.oneshot(request).await;
                if let Some(Ok(session)) = session.map(|s| HeaderValue::from_str(&s)) {
                    response.headers_mut().insert(PURSER_SESSION, session);
                }
                return response;
            }
            Ok(Entitled::Deny(reply)) => return reply.into_response(),
            // Purser unreachable: the route's own 402 still lets the client pay.
            Err(e) => {
                tracing::warn!(error = %e, "the entitlement check failed; asking for payment")
            }
        }
    }
    let admitted = match paywall.admit(&offer, request.headers()).await {
        Ok(admitted) => admitted,
        Err(reply) => return reply.into_response(),
    };
    set_payer(&mut request, &admitted.payer);
    if let Some(mode) = crate::engine::escrow_capture_mode(&admitted.requirements) {
        return escrowed(
            paywall,
            &offer,
            &admitted,
            mode,
            route.timing,
            inner,
            request,
        )
        .await;
    }
    match route.timing {
        SettleTiming::Before => match paywall.settle(&offer, &admitted).await {
            Settled::Paid { headers, .. } => {
                let Ok(mut response) = inner.oneshot(request).await;
                response.headers_mut().extend(headers);
                response
            }
            Settled::Refused(reply) => reply.into_response(),
        },
        SettleTiming::After => {
            let Ok(mut response) = inner.oneshot(request).await;
            if response.status().as_u16() >= 400 {
                paywall.release(&admitted).await;
                return response;
            }
            match paywall.settle(&offer, &admitted).await {
                Settled::Paid { headers, .. } => {
                    response.headers_mut().extend(headers);
                    response
                }
                Settled::Refused(reply) => reply.into_response(),
            }
        }
    }
}

/// An escrowed (`auth-capture`) payment: the hold is authorized before the handler runs, so
/// the request is served only on money held. Then, in `sync` capture mode, the hold is captured
/// whole when the handler answers below 400 and voided otherwise (`SettleTiming::Before`
/// captures at once, before the handler); in `deferred` mode it is left for later (the
/// merchant, or Purser's schedule by the resource's policy). A capture or void that fails does
/// not unserve the request: the hold stays, for the schedule or the merchant to finish.
async fn escrowed<S>(
    paywall: &Paywall,
    offer: &Offer,
    admitted: &Admitted,
    mode: purser_x402::auth_capture::CaptureMode,
    timing: SettleTiming,
    inner: S,
    request: Request<Body>,
) -> Response
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Send,
    S::Future: Send,
{
    use purser_x402::auth_capture::CaptureMode;
    let held = match paywall.settle(offer, admitted).await {
        Settled::Paid { headers, response } if response.success => headers,
        // A hold still pending is not money held: nothing is served on it.
        Settled::Paid { .. } => {
            return Paywall::challenge(offer, Some("settlement_pending")).into_response();
        }
        Settled::Refused(reply) => return reply.into_response(),
    };
    let finalize = |capture: bool| async move {
        match paywall.finalize_escrow(admitted, capture).await {
            Ok(answer) if answer.success || answer.is_pending() => {}
            Ok(answer) => tracing::warn!(
                capture,
                reason = ?answer.error_reason,
                "finishing an escrowed payment was refused; the hold stays"
            ),
            Err(e) => {
                tracing::warn!(capture, error = %e, "finishing an escrowed payment failed; the hold stays")
            }
        }
    };
    let captures_now = mode == CaptureMode::Sync && timing == SettleTiming::Before;
    if captures_now {
        finalize(true).await;
    }
    let Ok(mut response) = inner.oneshot(request).await;
    if mode == CaptureMode::Sync && !captures_now {
        finalize(response.status().as_u16() < 400).await;
    }
    response.headers_mut().extend(held);
    response
}

/// Hands the handler the payer (or the signed-in wallet): the [`Payer`] extension and the
/// `X-Purser-Payer` header.
fn set_payer(request: &mut Request<Body>, payer: &str) {
    let payer = payer_name(payer);
    if let Ok(value) = HeaderValue::from_str(&payer) {
        request.headers_mut().insert(PAYER_HEADER, value);
    }
    request.extensions_mut().insert(Payer(payer));
}

fn request_url(request: &Request<Body>) -> String {
    url_of(request.headers(), request.uri())
}

/// The URL a request asked for, as the client named it (its `Host`, or the URI's authority).
pub fn url_of(headers: &http::HeaderMap, uri: &http::Uri) -> String {
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or("localhost");
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    format!("http://{host}{path}")
}

/// The offer for this request: one configured without a resource URL names the request's; a
/// registry resource's URL (a route template, `https://api.example.com/forecast/:city`) names
/// the request's path under the registry's origin, as Purser's gateway and checks name it, so
/// that a payment made for one path is not taken for another.
fn with_request_url<'a>(
    offer: &'a Arc<Offer>,
    request: &Request<Body>,
) -> std::borrow::Cow<'a, Offer> {
    let configured = &offer.required.resource.url;
    let url = if configured.is_empty() {
        request_url(request)
    } else if configured.contains("/:") || configured.contains('{') {
        let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
        format!("{}{path}", origin_of(configured))
    } else {
        return std::borrow::Cow::Borrowed(offer.as_ref());
    };
    let mut owned = offer.as_ref().clone();
    owned.required.resource.url = url;
    std::borrow::Cow::Owned(owned)
}

/// `scheme://host[:port]` of an absolute URL.
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(slash) => &url[..after_scheme + slash],
        None => url,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port() {
        assert_eq!(
            origin_of("https://api.example.com/a/:b"),
            "https://api.example.com"
        );
        assert_eq!(origin_of("http://127.0.0.1:9/x"), "http://127.0.0.1:9");
        assert_eq!(origin_of("http://host"), "http://host");
    }

    #[test]
    fn patterns_match_literals_params_and_rests() {
        let p = |s: &str| PathPattern::parse(s).unwrap();
        assert!(p("/weather").matches("/weather"));
        assert!(!p("/weather").matches("/weather/today"));
        assert!(!p("/weather").matches("/"));
        assert!(p("/users/{id}").matches("/users/42"));
        assert!(p("/users/:id").matches("/users/42"));
        assert!(!p("/users/{id}").matches("/users/"));
        assert!(!p("/users/{id}").matches("/users/42/posts"));
        assert!(p("/files/*").matches("/files/a/b/c"));
        assert!(p("/files/*").matches("/files/"));
        assert!(!p("/files/*").matches("/other/a"));
        assert!(PathPattern::parse("weather").is_err());
        assert!(PathPattern::parse("/*/x").is_err());
    }
}
