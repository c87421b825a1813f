//! What only the Redis backend can show: connection loss and recovery, namespacing on the
//! server, and connection failures.
//!
//! Connections are killed precisely: the coordinator under test signs in as a Redis user
//! made for the test, and `CLIENT KILL USER <that user> TYPE ...` kills only its connections,
//! never those of tests running in parallel.

use std::time::{Duration, Instant};

use futures::StreamExt;
use purser_coord::{RedisCoordination, RedisCoordinationConfig};
use purser_domain::ErrorCode;
use purser_domain::coord::{Coordination, Notification, Rate};
use redis::aio::MultiplexedConnection;

use crate::support::{
    RECEIVE_TIMEOUT, next, ok, redis_coordination, redis_coordination_at, redis_url, unique_prefix,
};

/// A plain connection to the test Redis, for looking behind the coordinator's back.
async fn raw_connection() -> MultiplexedConnection {
    let client = match redis::Client::open(redis_url()) {
        Ok(client) => client,
        Err(err) => panic!("REDIS_URL is invalid: {err}"),
    };
    match client.get_multiplexed_async_connection().await {
        Ok(connection) => connection,
        Err(err) => panic!("these tests need Redis at REDIS_URL or 127.0.0.1:6379: {err}"),
    }
}

async fn raw<T: redis::FromRedisValue>(cmd: &mut redis::Cmd) -> T {
    let mut connection = raw_connection().await;
    match cmd.query_async(&mut connection).await {
        Ok(value) => value,
        Err(err) => panic!("{cmd:?} failed: {err}"),
    }
}

/// A Redis user that exists for one test, deleted (with its connections) on drop.
struct TestUser {
    name: String,
    password: String,
}

impl TestUser {
    async fn create() -> Self {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let user = Self {
            name: format!("purser-test-{id}"),
            password: format!("pw-{id}"),
        };
        let _: () = raw(redis::cmd("ACL")
            .arg("SETUSER")
            .arg(&user.name)
            .arg("on")
            .arg(format!(">{}", user.password))
            .arg("~*")
            .arg("&*")
            .arg("+@all"))
        .await;
        user
    }

    /// The test Redis URL, signed in as this user.
    fn url(&self) -> String {
        let url = redis_url();
        let Some((scheme, rest)) = url.split_once("://") else {
            panic!("REDIS_URL has no scheme")
        };
        let address = rest.rsplit_once('@').map_or(rest, |(_, address)| address);
        format!("{scheme}://{}:{}@{address}", self.name, self.password)
    }

    /// Kills this user's connections of `kind` (`pubsub` or `normal`); returns how many.
    async fn kill_connections(&self, kind: &str) -> u64 {
        raw(redis::cmd("CLIENT")
            .arg("KILL")
            .arg("USER")
            .arg(&self.name)
            .arg("TYPE")
            .arg(kind))
        .await
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        // Synchronous on purpose: drop cannot await. Best effort: a leftover user is harmless.
        let deleted = redis::Client::open(redis_url())
            .and_then(|client| client.get_connection())
            .and_then(|mut connection| {
                redis::cmd("ACL")
                    .arg("DELUSER")
                    .arg(&self.name)
                    .query::<u64>(&mut connection)
            });
        if let Err(err) = deleted {
            eprintln!("could not delete Redis user {}: {err}", self.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_survives_a_killed_connection_with_a_gap() {
    let user = TestUser::create().await;
    let prefix = unique_prefix();
    let subscriber = redis_coordination_at(&user.url(), &prefix).await;
    let publisher = redis_coordination(&prefix).await;
    let mut stream = ok(subscriber.subscribe("events").await);

    ok(publisher.publish("events", b"before").await);
    assert_eq!(
        next(&mut stream).await,
        Notification::Message(b"before".to_vec())
    );

    assert_eq!(user.kill_connections("pubsub").await, 1);
    // The gap comes once the subscription is back, so what is published after it arrives.
    assert_eq!(next(&mut stream).await, Notification::Gap);
    ok(publisher.publish("events", b"after").await);
    assert_eq!(
        next(&mut stream).await,
        Notification::Message(b"after".to_vec())
    );

    // And again: recovery is not a one-off.
    assert_eq!(user.kill_connections("pubsub").await, 1);
    assert_eq!(next(&mut stream).await, Notification::Gap);
    ok(publisher.publish("events", b"after again").await);
    assert_eq!(
        next(&mut stream).await,
        Notification::Message(b"after again".to_vec())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_recover_after_a_killed_connection() {
    let user = TestUser::create().await;
    let coord = redis_coordination_at(&user.url(), &unique_prefix()).await;
    ok(coord.put("key", b"kept", Duration::from_secs(60)).await);

    assert_eq!(user.kill_connections("normal").await, 1);
    // The command that finds the connection dead may fail, as unavailable; the connection
    // manager reconnects and later commands succeed.
    let deadline = Instant::now() + RECEIVE_TIMEOUT;
    let value = loop {
        match coord.get("key").await {
            Ok(value) => break value,
            Err(err) => {
                assert_eq!(err.code(), ErrorCode::Unavailable, "{}", err.chain());
                assert!(Instant::now() < deadline, "no recovery: {}", err.chain());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(value, Some(b"kept".to_vec()));
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    let started = Instant::now();
    let result = RedisCoordination::connect("redis://127.0.0.1:1", "purser-test:").await;
    let Err(err) = result else {
        panic!("connected to a closed port")
    };
    assert_eq!(err.code(), ErrorCode::Unavailable);
    assert!(err.message().contains("127.0.0.1:1"), "{}", err.chain());
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_malformed_url_is_invalid_input() {
    for url in ["not a url", "http://127.0.0.1:6379"] {
        let result = RedisCoordination::connect(url, "purser-test:").await;
        assert_eq!(
            result.err().map(|err| err.code()),
            Some(ErrorCode::InvalidInput),
            "{url}"
        );
    }
}

/// Without the `tls` feature, `rediss://` is refused up front rather than sent in clear.
#[cfg(not(feature = "tls"))]
#[tokio::test]
async fn rediss_without_the_tls_feature_is_invalid_input() {
    let result = RedisCoordination::connect("rediss://127.0.0.1:6379", "purser-test:").await;
    let Err(err) = result else {
        panic!("connected over TLS without TLS support")
    };
    assert_eq!(err.code(), ErrorCode::InvalidInput, "{}", err.chain());
    assert!(err.message().contains("TLS"), "{}", err.chain());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_channels_live_under_the_prefix() {
    let prefix = unique_prefix();
    let coord = redis_coordination(&prefix).await;

    ok(coord.put("nonce", b"v", Duration::from_secs(60)).await);
    let stored: Option<Vec<u8>> = raw(redis::cmd("GET").arg(format!("{prefix}kv:nonce"))).await;
    assert_eq!(stored, Some(b"v".to_vec()));

    // A rate-limit key holds its state only until the bucket would be full again.
    let rate = Rate {
        limit: 2,
        window: Duration::from_secs(10),
    };
    ok(coord.rate_limit("login", rate).await);
    let ttl_ms: i64 = raw(redis::cmd("PTTL").arg(format!("{prefix}rl:login"))).await;
    assert!((1..=5_000).contains(&ttl_ms), "PTTL {ttl_ms}");

    let mut stream = ok(coord.subscribe("events").await);
    let subscribers: Vec<(String, u64)> = raw(redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(format!("{prefix}events")))
    .await;
    assert_eq!(subscribers, [(format!("{prefix}events"), 1)]);
    let _: u64 = raw(redis::cmd("PUBLISH")
        .arg(format!("{prefix}events"))
        .arg("raw"))
    .await;
    assert_eq!(
        next(&mut stream).await,
        Notification::Message(b"raw".to_vec())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_stream_closes_its_subscription() {
    let prefix = unique_prefix();
    let coord = redis_coordination(&prefix).await;
    let channel = format!("{prefix}events");
    let stream = ok(coord.subscribe("events").await);
    let count = || async {
        let numsub: Vec<(String, u64)> =
            raw(redis::cmd("PUBSUB").arg("NUMSUB").arg(&channel)).await;
        numsub.first().map_or(0, |(_, count)| *count)
    };
    assert_eq!(count().await, 1);
    drop(stream);
    let deadline = Instant::now() + RECEIVE_TIMEOUT;
    while count().await != 0 {
        assert!(
            Instant::now() < deadline,
            "the subscription outlived its stream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_end_when_the_coordinator_is_dropped() {
    let coord = redis_coordination(&unique_prefix()).await;
    let clone = coord.clone();
    let mut stream = ok(coord.subscribe("events").await);
    drop(coord);
    // A clone keeps it alive.
    ok(clone.publish("events", b"still here").await);
    assert_eq!(
        next(&mut stream).await,
        Notification::Message(b"still here".to_vec())
    );
    drop(clone);
    let ended = tokio::time::timeout(RECEIVE_TIMEOUT, stream.next()).await;
    assert_eq!(ended.ok(), Some(None), "the stream should end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_pings_keep_a_quiet_subscription_without_gaps() {
    let prefix = unique_prefix();
    let config = RedisCoordinationConfig {
        subscription_ping_interval: Duration::from_millis(20),
        ..RedisCoordinationConfig::default()
    };
    let coord = match RedisCoordination::connect_with_config(&redis_url(), &prefix, config).await {
        Ok(coord) => coord,
        Err(err) => panic!("these tests need Redis: {}", err.chain()),
    };
    let mut stream = ok(coord.subscribe("events").await);
    // Several pings go by on the subscribed connection; a ping that failed would reconnect
    // and show up as a gap.
    tokio::time::sleep(Duration::from_millis(200)).await;
    ok(coord.publish("events", b"after pings").await);
    assert_eq!(
        next(&mut stream).await,
        Notification::Message(b"after pings".to_vec())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_gets_a_gap_then_newer_messages() {
    let prefix = unique_prefix();
    let config = RedisCoordinationConfig {
        subscriber_buffer: 2,
        ..RedisCoordinationConfig::default()
    };
    let coord = match RedisCoordination::connect_with_config(&redis_url(), &prefix, config).await {
        Ok(coord) => coord,
        Err(err) => panic!("these tests need Redis: {}", err.chain()),
    };
    let mut stream = ok(coord.subscribe("events").await);
    for i in 0..10u8 {
        ok(coord.publish("events", &[i]).await);
    }
    // Let every message reach the subscription: two fit, the rest are dropped.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(next(&mut stream).await, Notification::Message(vec![0]));
    assert_eq!(next(&mut stream).await, Notification::Message(vec![1]));
    assert_eq!(next(&mut stream).await, Notification::Gap);
    ok(coord.publish("events", b"later").await);
    assert_eq!(
        next(&mut stream).await,
        Notification::Message(b"later".to_vec())
    );
}
