//! JSON-RPC with failover: a rail's endpoints are tried in order, starting from the one that
//! last answered, each attempt bounded by a timeout; a round that reaches no node is retried
//! after a pause. A node that *answers* with a JSON-RPC error is believed (the request was
//! understood and refused), so only transport failures and timeouts move on to the next node.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use alloy::providers::RootProvider;
use alloy::transports::{RpcError, TransportErrorKind};

/// How a request over the pool failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcFailure {
    /// No endpoint answered within the retry budget: the outcome is unknown.
    #[error("no RPC endpoint answered {what}: {last}")]
    Unreachable { what: &'static str, last: String },
    /// A node answered with an error: the request was understood and refused.
    #[error("the node refused {what}: {message}")]
    Refused {
        what: &'static str,
        code: i64,
        message: String,
        /// Revert data, for `eth_call` and `eth_estimateGas`.
        data: Option<String>,
    },
}

impl RpcFailure {
    pub fn is_unreachable(&self) -> bool {
        matches!(self, RpcFailure::Unreachable { .. })
    }

    /// The node's message, or the transport error.
    pub fn message(&self) -> String {
        match self {
            RpcFailure::Unreachable { last, .. } => last.clone(),
            RpcFailure::Refused { message, .. } => message.clone(),
        }
    }
}

/// Retry settings for a pool.
#[derive(Debug, Clone, Copy)]
pub struct RpcPolicy {
    /// The bound on one request to one node.
    pub attempt_timeout: Duration,
    /// How many times every node is tried before giving up.
    pub rounds: u32,
    /// The pause between rounds (doubled each round).
    pub backoff: Duration,
}

impl Default for RpcPolicy {
    fn default() -> Self {
        Self {
            attempt_timeout: Duration::from_secs(5),
            rounds: 3,
            backoff: Duration::from_millis(200),
        }
    }
}

struct Endpoint {
    /// The URL without credentials or query, for logs.
    shown: String,
    provider: RootProvider,
}

/// A rail's RPC endpoints.
pub struct RpcPool {
    endpoints: Vec<Endpoint>,
    preferred: AtomicUsize,
    policy: RpcPolicy,
}

impl std::fmt::Debug for RpcPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcPool")
            .field(
                "endpoints",
                &self.endpoints.iter().map(|e| &e.shown).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A URL as it may appear in logs: scheme, host and port only (API keys often sit in the path
/// or query of hosted RPC URLs).
pub fn redact_url(url: &reqwest::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{}://{host}:{port}", url.scheme()),
        (Some(host), None) => format!("{}://{host}", url.scheme()),
        _ => url.scheme().to_owned(),
    }
}

impl RpcPool {
    /// A pool over `urls` (at least one; each `http://` or `https://`).
    pub fn new(urls: &[String], policy: RpcPolicy) -> Result<Self, String> {
        if urls.is_empty() {
            return Err("at least one RPC URL is needed".to_owned());
        }
        let mut endpoints = Vec::with_capacity(urls.len());
        for raw in urls {
            let url: reqwest::Url = raw
                .parse()
                .map_err(|e| format!("an RPC URL does not parse: {e}"))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(format!(
                    "RPC URLs must be http:// or https://, not {}://",
                    url.scheme()
                ));
            }
            endpoints.push(Endpoint {
                shown: redact_url(&url),
                provider: RootProvider::new_http(url),
            });
        }
        Ok(Self {
            endpoints,
            preferred: AtomicUsize::new(0),
            policy,
        })
    }

    /// Runs `request` against the endpoints until one answers.
    pub async fn request<T, F, Fut>(&self, what: &'static str, request: F) -> Result<T, RpcFailure>
    where
        F: Fn(RootProvider) -> Fut,
        Fut: Future<Output = Result<T, RpcError<TransportErrorKind>>>,
    {
        let count = self.endpoints.len();
        let mut last = String::from("no attempt made");
        let mut backoff = self.policy.backoff;
        for round in 0..self.policy.rounds.max(1) {
            if round > 0 {
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
            }
            let start = self.preferred.load(Ordering::Relaxed);
            for offset in 0..count {
                let index = (start + offset) % count;
                let endpoint = &self.endpoints[index];
                let attempt = tokio::time::timeout(
                    self.policy.attempt_timeout,
                    request(endpoint.provider.clone()),
                )
                .await;
                match attempt {
                    Ok(Ok(value)) => {
                        if index != start {
                            tracing::info!(endpoint = %endpoint.shown, "RPC failed over");
                            self.preferred.store(index, Ordering::Relaxed);
                        }
                        return Ok(value);
                    }
                    Ok(Err(RpcError::ErrorResp(payload))) => {
                        self.preferred.store(index, Ordering::Relaxed);
                        return Err(RpcFailure::Refused {
                            what,
                            code: payload.code,
                            message: payload.message.to_string(),
                            data: payload.data.as_ref().map(|d| d.get().to_owned()),
                        });
                    }
                    Ok(Err(err)) => {
                        tracing::warn!(endpoint = %endpoint.shown, %what, error = %err, "RPC request failed");
                        last = format!("{}: {err}", endpoint.shown);
                    }
                    Err(_) => {
                        tracing::warn!(endpoint = %endpoint.shown, %what, "RPC request timed out");
                        last = format!(
                            "{}: no answer within {:?}",
                            endpoint.shown, self.policy.attempt_timeout
                        );
                    }
                }
            }
        }
        Err(RpcFailure::Unreachable { what, last })
    }
}
