//! Freshness: a background prober asks each published HTTP resource's URL for its 402 and
//! checks the `PAYMENT-REQUIRED` challenge still offers what the catalog lists (every listed
//! network, asset, amount and `payTo`). A resource that fails is marked unhealthy; one that
//! stays unhealthy past `hide_after` is hidden from the catalog until a probe passes again.
//!
//! Listed URLs are untrusted: by default the prober refuses hosts that resolve to loopback,
//! private, link-local or otherwise non-public addresses (and pins the connection to the
//! addresses it checked), follows no redirects, reads at most the headers, and gives up
//! after `timeout`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use purser_domain::registry::{ProbeOutcome, Resource};
use purser_domain::repo::RegistryRepository;
use purser_domain::{Error, Result};
use purser_x402::header::{PAYMENT_REQUIRED, decode_payment_required};

use crate::challenge::template_of;
use crate::validate::clip;

/// How often and how patiently to probe.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// Probe each resource at most this often; also the pause between passes.
    pub interval: Duration,
    pub timeout: Duration,
    /// Hide a resource unhealthy for longer than this.
    pub hide_after: Duration,
    /// Probe hosts on loopback and private networks (tests, and single-network deployments).
    pub allow_private_addresses: bool,
    /// Resources probed per pass.
    pub batch: u32,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(300),
            timeout: Duration::from_secs(5),
            hide_after: Duration::from_secs(3600),
            allow_private_addresses: false,
            batch: 100,
        }
    }
}

pub struct Prober {
    store: Arc<dyn RegistryRepository>,
    config: ProbeConfig,
}

impl Prober {
    pub fn new(store: Arc<dyn RegistryRepository>, config: ProbeConfig) -> Self {
        crate::ensure_crypto_provider();
        Self { store, config }
    }

    /// Probes until `shutdown` resolves.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            match self.probe_due().await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(probed = n, "freshness probes done"),
                Err(err) => tracing::warn!(error = %err.chain(), "freshness probing failed"),
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(self.config.interval.min(Duration::from_secs(60))) => {}
            }
        }
    }

    /// One pass: probes the resources whose last probe is older than the interval, and
    /// records each outcome. Answers how many were probed.
    pub async fn probe_due(&self) -> Result<usize> {
        let now = Utc::now();
        let interval = chrono::Duration::from_std(self.config.interval)
            .map_err(|e| Error::internal("the probe interval", e))?;
        let due = self
            .store
            .resources_due_for_probe(now - interval, self.config.batch)
            .await?;
        let mut tasks = tokio::task::JoinSet::new();
        for resource in due.iter().cloned() {
            let config = self.config.clone();
            tasks.spawn(async move {
                let verdict = probe(&resource, &config).await;
                (resource.id, verdict)
            });
        }
        let hide_after = chrono::Duration::from_std(self.config.hide_after)
            .map_err(|e| Error::internal("the hide-after time", e))?;
        while let Some(done) = tasks.join_next().await {
            let (id, verdict) = done.map_err(|e| Error::internal("a probe task", e))?;
            let at = Utc::now();
            self.store
                .record_probe(
                    id,
                    ProbeOutcome {
                        healthy: verdict.is_ok(),
                        detail: verdict.err(),
                        at,
                        hide_if_unhealthy_since: at - hide_after,
                    },
                )
                .await?;
        }
        Ok(due.len())
    }
}

/// Asks the resource for its 402 and compares it with the listing: `Err` says what is wrong.
pub async fn probe(resource: &Resource, config: &ProbeConfig) -> std::result::Result<(), String> {
    let template = template_of(resource).map_err(|e| e.to_string())?;
    let mut url = format!("{}{}", template.origin, template.path_with("1"));
    if let Some(query) = &template.query {
        url.push('?');
        url.push_str(query);
    }
    let parsed = url::Url::parse(&url).map_err(|_| "the URL does not parse".to_owned())?;
    let host = parsed.host_str().unwrap_or_default().to_owned();
    let port = parsed.port_or_known_default().unwrap_or(443);
    let addresses: Vec<SocketAddr> = tokio::time::timeout(
        config.timeout,
        tokio::net::lookup_host((host.trim_matches(['[', ']']), port)),
    )
    .await
    .map_err(|_| format!("resolving {host} timed out"))?
    .map_err(|e| format!("resolving {host}: {e}"))?
    .collect();
    if addresses.is_empty() {
        return Err(format!("{host} resolves to no address"));
    }
    if !config.allow_private_addresses
        && let Some(bad) = addresses.iter().find(|a| !is_public(a.ip()))
    {
        return Err(format!(
            "{host} resolves to {}, which is not a public address",
            bad.ip()
        ));
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(config.timeout)
        .resolve_to_addrs(&host, &addresses)
        .user_agent("purser-prober/1")
        .build()
        .map_err(|e| format!("building the probe client: {e}"))?;
    let method =
        reqwest::Method::from_bytes(resource.method.as_deref().unwrap_or("GET").as_bytes())
            .map_err(|_| "the listed method is not an HTTP method".to_owned())?;
    let response = client
        .request(method, parsed)
        .send()
        .await
        .map_err(|e| format!("requesting {url}: {}", clip(&e.to_string(), 120)))?;
    if response.status().as_u16() != 402 {
        return Err(format!(
            "answered {} instead of 402",
            response.status().as_u16()
        ));
    }
    let header = response
        .headers()
        .get(PAYMENT_REQUIRED)
        .and_then(|v| v.to_str().ok())
        .ok_or("the 402 has no PAYMENT-REQUIRED header")?;
    let challenge = decode_payment_required(header)
        .map_err(|e| format!("PAYMENT-REQUIRED: {}", clip(e.message(), 120)))?;
    for accept in &resource.current.spec.accepts {
        let offered = challenge.accepts.iter().any(|r| {
            r.scheme == accept.scheme
                && r.network.as_str() == accept.network
                && r.asset.eq_ignore_ascii_case(&accept.asset)
                && r.pay_to.eq_ignore_ascii_case(&accept.pay_to)
                && r.amount == accept.amount
        });
        if !offered {
            return Err(format!(
                "the 402 does not offer {} of {} on {} to {}, as listed",
                accept.amount, accept.asset, accept.network, accept.pay_to
            ));
        }
    }
    Ok(())
}

/// Whether `ip` is a globally routable unicast address.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_probed_by_default() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }
}
