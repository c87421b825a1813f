//! Coordination: short-lived state shared by every Purser instance. Redis in production, an
//! in-process map on the embedded default. Nothing here is the source of truth for money: losing
//! it loses speed (and, for nonces, forces a fresh sign-in), never value.

use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::error::Result;

/// The result of one attempt against a rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitDecision {
    pub allowed: bool,
    /// How many more attempts would be allowed right now.
    pub remaining: u64,
    /// When denied, how long until the next attempt would be allowed.
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
/// names such as `siwx:nonce:<value>`.
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
    async fn rate_limit(&self, key: &str, rate: Rate) -> Result<RateLimitDecision>;

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
