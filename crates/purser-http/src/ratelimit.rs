//! Rate limits on every public route: per client address for anonymous requests, per API key
//! and per tenant for authenticated ones, and a stricter limit per address on failed
//! authentication. A request over a limit is answered `429 rate_limited` with `Retry-After`.
//!
//! The limits are shared by every instance through coordination (GCRA on Redis's clock). So
//! that a busy key does not cost a Redis round trip per request, an instance *leases* attempts:
//! it takes several of a bucket's attempts at once ([`Coordination::rate_limit_take`]) and
//! spends them from memory. A lease starts at one attempt, doubles while a key spends its
//! leases faster than they expire, and halves when one expires unspent; it is at most
//! [`MAX_LEASE`] and a fiftieth of the limit, and lives [`LEASE_LIFETIME`]. So an instance
//! admits at most one lease beyond a limit, and a quiet key wastes at most one attempt per
//! lifetime. Leases are kept in a bounded cache.
//!
//! When coordination cannot be reached the request is admitted (and the failure logged):
//! losing coordination loses protection for a while, never service.
//!
//! Operations routes (`/healthz`, `/readyz`, `/metrics`) are never limited: probes must see
//! the process as it is.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, header};
use ipnet::IpNet;
use moka::sync::Cache;
use purser_domain::ErrorCode;
use purser_domain::auth::{Authenticator, Principal};
use purser_domain::coord::{Coordination, Rate};
use purser_domain::id::{ApiKeyId, TenantId};
use serde::Deserialize;
use tokio::time::Instant;

use crate::serve::client_key;

/// The most attempts one lease takes.
pub const MAX_LEASE: u64 = 64;
/// How long leased attempts may be spent; what is left after is given up.
pub const LEASE_LIFETIME: Duration = Duration::from_secs(1);
/// Buckets whose leases are remembered at once (least recently used beyond).
const LEASE_CACHE_ENTRIES: u64 = 100_000;
/// Routes never limited.
const EXEMPT_PATHS: &[&str] = &["/healthz", "/readyz", "/metrics"];

/// `[rate_limits]`: requests per minute, each a burst of that many, smoothed after; 0 turns a
/// limit off.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Limit requests at all.
    pub enabled: bool,
    /// Requests without an API key, per client address (IPv6: per /64).
    pub per_address_per_minute: u64,
    /// Requests with one API key.
    pub per_key_per_minute: u64,
    /// Requests with any key of one tenant.
    pub per_tenant_per_minute: u64,
    /// Requests whose API key is refused, per client address.
    pub failed_auth_per_address_per_minute: u64,
    /// Proxies (CIDR blocks) whose `X-Forwarded-For` names the client: the client is the
    /// right-most address in it that is not a trusted proxy. Empty: the peer is the client.
    pub trusted_proxies: Vec<String>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            per_address_per_minute: 6_000,
            per_key_per_minute: 600_000,
            per_tenant_per_minute: 1_200_000,
            failed_auth_per_address_per_minute: 60,
            trusted_proxies: Vec::new(),
        }
    }
}

impl RateLimitConfig {
    /// Checks what types alone cannot: a path and why, for the configuration error.
    pub fn check(&self) -> Result<(), (String, String)> {
        for (index, proxy) in self.trusted_proxies.iter().enumerate() {
            parse_proxy(proxy)
                .map_err(|why| (format!("rate_limits.trusted_proxies[{index}]"), why))?;
        }
        for (name, value) in [
            ("per_address_per_minute", self.per_address_per_minute),
            ("per_key_per_minute", self.per_key_per_minute),
            ("per_tenant_per_minute", self.per_tenant_per_minute),
            (
                "failed_auth_per_address_per_minute",
                self.failed_auth_per_address_per_minute,
            ),
        ] {
            if value > 60_000_000 {
                return Err((
                    format!("rate_limits.{name}"),
                    "must be at most 60000000 (one a microsecond)".to_owned(),
                ));
            }
        }
        Ok(())
    }
}

fn parse_proxy(text: &str) -> Result<IpNet, String> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{text}` is not an IP address or CIDR block"))
}

fn per_minute(limit: u64) -> Option<Rate> {
    (limit > 0).then_some(Rate {
        limit,
        window: Duration::from_secs(60),
    })
}

/// What one request is counted against: the lease cache's key, a few plain bytes (no text is
/// built for a request a lease admits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Bucket {
    Address(IpAddr),
    FailedAuth(IpAddr),
    Key(ApiKeyId),
    Tenant(TenantId),
}

impl Bucket {
    /// Its name in coordination, built only when attempts are leased.
    fn name(&self) -> String {
        match self {
            Self::Address(ip) => format!("http:addr:{ip}"),
            Self::FailedAuth(ip) => format!("http:authfail:{ip}"),
            Self::Key(id) => format!("http:key:{id}"),
            Self::Tenant(id) => format!("http:tenant:{id}"),
        }
    }
}

/// Attempts taken from coordination, being spent here.
#[derive(Debug)]
struct Lease {
    left: u64,
    expires: Instant,
    /// How many to take next time.
    next: u64,
}

/// Proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn parse(proxies: &[String]) -> Result<Self, String> {
        proxies
            .iter()
            .map(|p| parse_proxy(p))
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client a request comes from: the peer, or, behind a trusted proxy, the right-most
    /// address of `X-Forwarded-For` that is not a trusted proxy (a malformed entry stops the
    /// walk at the last address known good). `None` when the server did not record the peer.
    pub fn client_address(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let mut client = peer?;
        if !self.trusts(client) {
            return Some(client);
        }
        for value in headers.get_all("x-forwarded-for").iter().rev() {
            let Ok(value) = value.to_str() else {
                return Some(client);
            };
            for hop in value.rsplit(',') {
                let Ok(hop) = hop.trim().parse::<IpAddr>() else {
                    return Some(client);
                };
                client = hop;
                if !self.trusts(hop) {
                    return Some(hop);
                }
            }
        }
        Some(client)
    }
}

/// The limiter the [`enforce`] middleware runs.
pub struct RateLimiter {
    coordination: Arc<dyn Coordination>,
    authenticator: Arc<Authenticator>,
    per_address: Option<Rate>,
    per_key: Option<Rate>,
    per_tenant: Option<Rate>,
    failed_auth: Option<Rate>,
    proxies: TrustedProxies,
    leases: Cache<Bucket, Arc<Mutex<Lease>>>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("per_address", &self.per_address)
            .field("per_key", &self.per_key)
            .field("per_tenant", &self.per_tenant)
            .field("failed_auth", &self.failed_auth)
            .finish_non_exhaustive()
    }
}

/// A request refused by a limit: how long until it would be admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after: Duration,
}

impl RateLimiter {
    /// The limiter `config` describes, or `None` when it limits nothing.
    pub fn new(
        config: &RateLimitConfig,
        coordination: Arc<dyn Coordination>,
        authenticator: Arc<Authenticator>,
    ) -> Result<Option<Self>, String> {
        if !config.enabled {
            return Ok(None);
        }
        let proxies = TrustedProxies::parse(&config.trusted_proxies)?;
        Ok(Some(Self {
            coordination,
            authenticator,
            per_address: per_minute(config.per_address_per_minute),
            per_key: per_minute(config.per_key_per_minute),
            per_tenant: per_minute(config.per_tenant_per_minute),
            failed_auth: per_minute(config.failed_auth_per_address_per_minute),
            proxies,
            leases: Cache::builder()
                .max_capacity(LEASE_CACHE_ENTRIES)
                .time_to_idle(LEASE_LIFETIME * 2)
                .build(),
        }))
    }

    /// Counts a request from `client` (when known) presenting `token` (when any). `Err` when
    /// a limit refuses it.
    pub async fn admit(
        &self,
        client: Option<IpAddr>,
        token: Option<&str>,
    ) -> Result<Option<Principal>, Limited> {
        let client = client.map(client_key);
        let Some(token) = token else {
            if let (Some(ip), Some(rate)) = (client, self.per_address) {
                self.count(Bucket::Address(ip), rate).await?;
            }
            return Ok(None);
        };
        match self.authenticator.authenticate(token).await {
            Ok(principal) => {
                self.count_principal(&principal).await?;
                Ok(Some(principal))
            }
            Err(err) if err.is_server_error() => Ok(None),
            // A refused key: the handler answers 401; the address is limited harder.
            Err(_) => {
                if let (Some(ip), Some(rate)) = (client, self.failed_auth) {
                    self.count(Bucket::FailedAuth(ip), rate).await?;
                }
                Ok(None)
            }
        }
    }

    async fn count_principal(&self, principal: &Principal) -> Result<(), Limited> {
        if let Some(rate) = self.per_key {
            self.count(Bucket::Key(principal.key_id), rate).await?;
        }
        if let (Some(rate), Some(tenant)) = (self.per_tenant, principal.tenant_id) {
            self.count(Bucket::Tenant(tenant), rate).await?;
        }
        Ok(())
    }

    /// Spends one attempt of `bucket`, leasing more from coordination when none is left.
    async fn count(&self, bucket: Bucket, rate: Rate) -> Result<(), Limited> {
        let lease = self.leases.get_with(bucket, || {
            Arc::new(Mutex::new(Lease {
                left: 0,
                expires: Instant::now(),
                next: 1,
            }))
        });
        let now = Instant::now();
        let wanted = {
            let mut lease = lease.lock().unwrap_or_else(PoisonError::into_inner);
            if lease.left > 0 && now < lease.expires {
                lease.left -= 1;
                return Ok(());
            }
            let most = (rate.limit / 50).clamp(1, MAX_LEASE);
            lease.next = if lease.left == 0 && now < lease.expires {
                // Spent before it expired: this key is busy here.
                (lease.next * 2).min(most)
            } else {
                // Expired (or never taken): take less.
                (lease.next / 2).max(1)
            }
            .min(most);
            lease.left = 0;
            lease.next
        };
        let name = bucket.name();
        let granted = match self.coordination.rate_limit_take(&name, rate, wanted).await {
            Ok(grant) if grant.granted == 0 => {
                return Err(Limited {
                    retry_after: grant.retry_after,
                });
            }
            Ok(grant) => grant.granted,
            Err(err) => {
                tracing::warn!(error = %err.chain(), "rate limits are not enforced: coordination failed");
                return Ok(());
            }
        };
        let mut lease = lease.lock().unwrap_or_else(PoisonError::into_inner);
        // Concurrent requests of one bucket may lease at once; what they took adds up.
        lease.left = if now < lease.expires {
            lease.left + granted - 1
        } else {
            granted - 1
        };
        lease.expires = Instant::now() + LEASE_LIFETIME;
        Ok(())
    }
}

/// Middleware: refuses requests over a limit with `429 rate_limited` and `Retry-After`.
impl RateLimiter {
    /// Counts a request for `path` from `peer` with `headers` against its limits. `Ok`
    /// carries the principal its key authenticated as, when it has a valid one, so that
    /// handlers need not authenticate it again.
    pub async fn check(
        &self,
        path: &str,
        peer: Option<IpAddr>,
        headers: &HeaderMap,
    ) -> Result<Option<Principal>, Limited> {
        if EXEMPT_PATHS.contains(&path) {
            return Ok(None);
        }
        let client = self.proxies.client_address(peer, headers);
        let token = crate::auth::bearer_token_in(headers)
            .ok()
            .flatten()
            .filter(|t| !t.is_empty());
        self.admit(client, token).await
    }
}

/// The `429` answer, with `Retry-After` in whole seconds (at least 1).
pub fn rate_limited(retry_after: Duration) -> Response {
    let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    let mut response = crate::error::error_response(
        ErrorCode::RateLimited,
        &format!("too many requests; retry after {seconds} s"),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let none = TrustedProxies::default();
        let headers = forwarded(&["6.6.6.6"]);
        assert_eq!(
            none.client_address(ip("10.0.0.9"), &headers),
            ip("10.0.0.9")
        );
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".into(), "192.0.2.7".into()]).unwrap();
        // The right-most untrusted hop is the client; what a client wrote before it is not.
        let headers = forwarded(&["6.6.6.6, 203.0.113.5", "192.0.2.7"]);
        assert_eq!(
            proxies.client_address(ip("10.1.2.3"), &headers),
            ip("203.0.113.5")
        );
        // A peer outside the trusted blocks is the client, whatever it forwards.
        assert_eq!(
            proxies.client_address(ip("198.51.100.1"), &headers),
            ip("198.51.100.1")
        );
        // A malformed hop stops the walk at the last good address.
        let headers = forwarded(&["203.0.113.5, garbage"]);
        assert_eq!(
            proxies.client_address(ip("10.1.2.3"), &headers),
            ip("10.1.2.3")
        );
        // Only trusted hops: the first of them.
        let headers = forwarded(&["10.9.9.9"]);
        assert_eq!(
            proxies.client_address(ip("10.1.2.3"), &headers),
            ip("10.9.9.9")
        );
        assert_eq!(proxies.client_address(None, &headers), None);
    }

    #[test]
    fn proxies_must_be_addresses_or_blocks() {
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(TrustedProxies::parse(&["proxy.internal".into()]).is_err());
        assert!(TrustedProxies::parse(&["::1".into(), "fd00::/8".into()]).is_ok());
        let config = RateLimitConfig {
            trusted_proxies: vec!["nope".into()],
            ..RateLimitConfig::default()
        };
        assert_eq!(
            config.check().map_err(|(path, _)| path),
            Err("rate_limits.trusted_proxies[0]".to_owned())
        );
    }
}
