//! Coordination: short-lived state shared by every Purser instance. Redis in production, an
//! in-process map on the embedded default. Nothing here is the source of truth for money: losing
//! it loses speed (and, for nonces, forces a fresh sign-in), never value.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::error::Result;
use crate::id::TenantId;

/// The result of one attempt against a rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitDecision {
    pub allowed: bool,
    /// How many more attempts would be allowed right now.
    pub remaining: u64,
    /// When denied, how long until the next attempt would be allowed.
    pub retry_after: Duration,
}

/// The result of taking several attempts at once against a rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitGrant {
    /// How many of the wanted attempts were granted: 0 when denied.
    pub granted: u64,
    /// How many more attempts would be allowed right now, after the granted ones.
    pub remaining: u64,
    /// When nothing was granted, how long until one attempt would be.
    pub retry_after: Duration,
}

/// A rate: `limit` attempts per `window`, smoothed (GCRA), with a burst of up to `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub limit: u64,
    pub window: Duration,
}

/// What a subscription yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    Message(Vec<u8>),
    /// Messages may have been missed (a reconnect, a slow reader): drop whatever they would
    /// have invalidated.
    Gap,
}

/// Keys and channels are namespaced by the implementation (a configured prefix); callers pass
/// names such as `siwx:used:<nonce>`.
#[async_trait]
pub trait Coordination: Send + Sync {
    /// Stores `value` under `key` for `ttl` unless the key exists. True when it was stored.
    async fn put_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool>;

    /// Stores `value` under `key` for `ttl`, replacing any value.
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<()>;

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// Removes the key and returns its value, atomically: of many concurrent takers, one wins.
    /// This is how single-use nonces are burned.
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// Removes the key. True when it existed.
    async fn delete(&self, key: &str) -> Result<bool>;

    /// Counts one attempt against `rate` for `key`.
    async fn rate_limit(&self, key: &str, rate: Rate) -> Result<RateLimitDecision> {
        let grant = self.rate_limit_take(key, rate, 1).await?;
        Ok(RateLimitDecision {
            allowed: grant.granted > 0,
            remaining: grant.remaining,
            retry_after: grant.retry_after,
        })
    }

    /// Takes as many of `wanted` attempts (1 to the rate's limit) as fit now against `rate`
    /// for `key`, atomically: `n` attempts taken at once cost what `n` single attempts cost.
    /// An instance that leases attempts this way spends them without a round trip each.
    async fn rate_limit_take(&self, key: &str, rate: Rate, wanted: u64) -> Result<RateLimitGrant>;

    /// Sends `message` to every current subscriber of `channel`, on every instance.
    async fn publish(&self, channel: &str, message: &[u8]) -> Result<()>;

    /// Receives what is published on `channel` from now on. The stream ends only when the
    /// coordinator shuts down; across reconnects it yields [`Notification::Gap`].
    async fn subscribe(&self, channel: &str) -> Result<BoxStream<'static, Notification>>;

    /// A round trip to the backing service.
    async fn ping(&self) -> Result<()>;

    /// Which backend this is (`redis`, `memory`).
    fn backend(&self) -> &'static str;
}

/// The channel on which instances tell each other that cached facts changed.
pub const INVALIDATION_CHANNEL: &str = "invalidate";

/// A cached fact that changed in the database: every instance drops what it cached about it.
/// Caches also expire entries on their own (a bounded time), so a lost message delays an
/// invalidation, never loses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// A wallet's grants with a tenant: one was made, used up or revoked.
    Grants { tenant: TenantId, wallet: String },
    /// An API key, by its public prefix: revoked.
    ApiKey { prefix: String },
    /// A tenant: suspended or reinstated (its keys stop or start working).
    Tenant(TenantId),
    /// A tenant's meters: one was created, archived or repriced.
    Meters(TenantId),
}

impl Invalidation {
    /// The message as published: a word and its fields, space-separated.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Grants { tenant, wallet } => format!("grants {tenant} {wallet}"),
            Self::ApiKey { prefix } => format!("key {prefix}"),
            Self::Tenant(tenant) => format!("tenant {tenant}"),
            Self::Meters(tenant) => format!("meters {tenant}"),
        }
        .into_bytes()
    }

    /// A message from [`Self::encode`]; `None` for anything else (a newer instance's message
    /// this one does not know, say).
    pub fn decode(message: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(message).ok()?;
        let mut words = text.split(' ');
        let found = match (words.next()?, words.next(), words.next()) {
            ("grants", Some(tenant), Some(wallet)) => Self::Grants {
                tenant: tenant.parse().ok()?,
                wallet: wallet.to_owned(),
            },
            ("key", Some(prefix), None) => Self::ApiKey {
                prefix: prefix.to_owned(),
            },
            ("tenant", Some(tenant), None) => Self::Tenant(tenant.parse().ok()?),
            ("meters", Some(tenant), None) => Self::Meters(tenant.parse().ok()?),
            _ => return None,
        };
        words.next().is_none().then_some(found)
    }
}

/// A cache that drops entries when told.
pub trait Forget: Send + Sync {
    /// Drops what is cached about `what` (ignoring what this cache does not hold).
    fn forget(&self, what: &Invalidation);
    /// Drops everything: announcements may have been missed.
    fn forget_all(&self);
}

/// Announces changes to every instance and applies the announcements of every instance to
/// this one's caches.
pub struct Invalidator {
    coordination: Arc<dyn Coordination>,
    caches: Vec<Arc<dyn Forget>>,
}

impl std::fmt::Debug for Invalidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invalidator")
            .field("caches", &self.caches.len())
            .finish_non_exhaustive()
    }
}

impl Invalidator {
    pub fn new(coordination: Arc<dyn Coordination>, caches: Vec<Arc<dyn Forget>>) -> Self {
        Self {
            coordination,
            caches,
        }
    }

    /// Drops `what` from this instance's caches at once, then publishes it to every instance.
    /// A failure to publish is logged, not returned: the database change it follows stands,
    /// and the other instances' caches expire the stale entry in time.
    pub async fn announce(&self, what: &Invalidation) {
        self.apply(what);
        if let Err(error) = self
            .coordination
            .publish(INVALIDATION_CHANNEL, &what.encode())
            .await
        {
            tracing::warn!(error = %error.chain(), ?what, "could not announce an invalidation; caches will expire it");
        }
    }

    fn apply(&self, what: &Invalidation) {
        for cache in &self.caches {
            cache.forget(what);
        }
    }

    /// Subscribes to every instance's announcements and answers the work of applying them to
    /// this instance's caches, to be spawned; it runs until the coordination backend shuts
    /// down. Answers once subscribed, so that nothing announced afterwards is missed.
    pub async fn listen(
        self: &Arc<Self>,
    ) -> Result<impl std::future::Future<Output = ()> + Send + 'static> {
        use futures::StreamExt as _;
        let mut notifications = self.coordination.subscribe(INVALIDATION_CHANNEL).await?;
        let this = self.clone();
        Ok(async move {
            while let Some(notification) = notifications.next().await {
                match notification {
                    Notification::Message(message) => match Invalidation::decode(&message) {
                        Some(what) => this.apply(&what),
                        None => {
                            tracing::debug!("ignored an invalidation this version does not know")
                        }
                    },
                    Notification::Gap => {
                        tracing::info!(
                            "announcements may have been missed; dropping every cached entry"
                        );
                        for cache in &this.caches {
                            cache.forget_all();
                        }
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalidations_round_trip_and_unknown_messages_are_ignored() {
        let tenant = TenantId::new();
        for what in [
            Invalidation::Grants {
                tenant,
                wallet: "0xabc".into(),
            },
            Invalidation::ApiKey {
                prefix: "pk_123".into(),
            },
            Invalidation::Tenant(tenant),
            Invalidation::Meters(tenant),
        ] {
            assert_eq!(Invalidation::decode(&what.encode()), Some(what));
        }
        for junk in [
            &b""[..],
            b"grants",
            b"grants not-a-tenant 0xabc",
            b"key a b",
            b"later-kind x",
            b"\xff\xfe",
        ] {
            assert_eq!(Invalidation::decode(junk), None, "{junk:?}");
        }
    }
}
