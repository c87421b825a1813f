//! `[gateway]`: where the gateway listens and which routes it proxies.

use std::time::Duration;

use purser_axum::{PathPattern, SettleTiming};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// The gateway's own listener (`127.0.0.1:8403`); none when there are no routes to serve.
    pub listen: Option<String>,
    /// The timeout of a route that sets none: until the upstream's response head arrives.
    pub upstream_timeout_seconds: u64,
    pub routes: Vec<GatewayRoute>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: None,
            upstream_timeout_seconds: 30,
            routes: Vec::new(),
        }
    }
}

/// `[[gateway.routes]]`: requests for `host` (any host when unset) whose path matches `path`
/// go to `upstream`, priced by the registry resource `resource`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayRoute {
    #[serde(default)]
    pub host: Option<String>,
    /// `/weather`, `/users/{id}`, `/files/*`.
    pub path: String,
    /// The upstream's base URL; the request's path and query are appended as they came.
    pub upstream: String,
    /// The registry resource (its id) whose price and description the route answers with.
    pub resource: String,
    #[serde(default)]
    pub settle: SettleTiming,
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    /// Speak HTTP/2 to the upstream without negotiation (h2c prior knowledge).
    #[serde(default)]
    pub upstream_http2: bool,
}

impl GatewayConfig {
    /// The first invalid value, as `(path, problem)`.
    pub fn check(&self) -> Result<(), (String, String)> {
        if self.upstream_timeout_seconds == 0 || self.upstream_timeout_seconds > 3600 {
            return Err((
                "gateway.upstream_timeout_seconds".into(),
                "must be between 1 and 3600".into(),
            ));
        }
        if let Some(listen) = &self.listen
            && listen.parse::<std::net::SocketAddr>().is_err()
        {
            return Err((
                "gateway.listen".into(),
                "must be an address such as 127.0.0.1:8403".into(),
            ));
        }
        for (i, route) in self.routes.iter().enumerate() {
            let at = |field: &str| format!("gateway.routes[{i}].{field}");
            PathPattern::parse(&route.path).map_err(|e| (at("path"), e))?;
            match url::Url::parse(&route.upstream) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => return Err((at("upstream"), "must be an absolute http(s) URL".into())),
            }
            if uuid_like(&route.resource).is_none() {
                return Err((at("resource"), "must be a resource id (a UUID)".into()));
            }
            if matches!(route.timeout_seconds, Some(0)) {
                return Err((at("timeout_seconds"), "must be at least 1".into()));
            }
        }
        Ok(())
    }

    pub fn timeout(&self, route: &GatewayRoute) -> Duration {
        Duration::from_secs(
            route
                .timeout_seconds
                .unwrap_or(self.upstream_timeout_seconds),
        )
    }
}

fn uuid_like(s: &str) -> Option<purser_domain::id::ResourceId> {
    s.parse().ok()
}
