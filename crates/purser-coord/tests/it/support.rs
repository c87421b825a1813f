//! Factories that make coordinators for the suite, and small helpers.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use purser_coord::{MemoryCoordination, RedisCoordination};
use purser_domain::coord::{Coordination, Notification};

/// The longest a test waits for a notification before failing.
pub const RECEIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Makes coordinators of one backend for the suite.
pub trait Factory: Sync {
    /// What [`Coordination::backend`] answers.
    const BACKEND: &'static str;

    /// A coordinator with a namespace of its own: it sees nothing of any other.
    async fn isolated(&self) -> Arc<dyn Coordination>;

    /// Two coordinators sharing one namespace, as two Purser instances do.
    async fn shared_pair(&self) -> (Arc<dyn Coordination>, Arc<dyn Coordination>);
}

pub struct MemoryFactory;

impl Factory for MemoryFactory {
    const BACKEND: &'static str = "memory";

    async fn isolated(&self) -> Arc<dyn Coordination> {
        Arc::new(MemoryCoordination::new())
    }

    async fn shared_pair(&self) -> (Arc<dyn Coordination>, Arc<dyn Coordination>) {
        // In one process, "another instance" is another handle on the same state.
        let coordination = MemoryCoordination::new();
        (Arc::new(coordination.clone()), Arc::new(coordination))
    }
}

pub struct RedisFactory;

impl Factory for RedisFactory {
    const BACKEND: &'static str = "redis";

    async fn isolated(&self) -> Arc<dyn Coordination> {
        Arc::new(redis_coordination(&unique_prefix()).await)
    }

    async fn shared_pair(&self) -> (Arc<dyn Coordination>, Arc<dyn Coordination>) {
        let prefix = unique_prefix();
        let first = redis_coordination(&prefix).await;
        let second = redis_coordination(&prefix).await;
        (Arc::new(first), Arc::new(second))
    }
}

/// `REDIS_URL`, or the local default.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A key prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("purser-test:{}:", uuid::Uuid::now_v7())
}

/// Connects to the test Redis, failing the test with a clear message when it is not there.
pub async fn redis_coordination(prefix: &str) -> RedisCoordination {
    redis_coordination_at(&redis_url(), prefix).await
}

pub async fn redis_coordination_at(url: &str, prefix: &str) -> RedisCoordination {
    match RedisCoordination::connect(url, prefix).await {
        Ok(coordination) => coordination,
        Err(err) => panic!(
            "these tests need Redis: set REDIS_URL or start one on 127.0.0.1:6379 ({})",
            err.chain()
        ),
    }
}

/// The next notification, failing the test if none comes within [`RECEIVE_TIMEOUT`].
pub async fn next(stream: &mut BoxStream<'static, Notification>) -> Notification {
    match tokio::time::timeout(RECEIVE_TIMEOUT, stream.next()).await {
        Ok(Some(notification)) => notification,
        Ok(None) => panic!("the subscription ended"),
        Err(_) => panic!("no notification within {RECEIVE_TIMEOUT:?}"),
    }
}

/// Unwraps `result`, failing the test with the error's whole chain.
pub fn ok<T>(result: purser_domain::Result<T>) -> T {
    match result {
        Ok(value) => value,
        Err(err) => panic!("unexpected error: {}", err.chain()),
    }
}
