//! [`RedisCoordination`]: coordination over Redis, shared by every Purser instance.

mod subscription;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use purser_domain::coord::{Coordination, Notification, Rate, RateLimitGrant};
use purser_domain::{Error, Result};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Cmd, ErrorKind, FromRedisValue, RedisError, Script, ServerErrorKind};
use tokio::sync::watch;

use crate::gcra::GcraRate;
use crate::limits::{MAX_KEY_BYTES, check_key, check_value, ttl_millis};
use crate::{RATE_LIMIT_NAMESPACE, VALUE_NAMESPACE};

/// How many times the command connection retries a reconnect (with exponential backoff from
/// 100 ms) before the command that needed it fails. Kept low so that, with Redis down, a
/// request fails within about a second instead of queueing; the next command tries again.
const RECONNECT_RETRIES: usize = 2;

/// Settings of a [`RedisCoordination`]. Every duration must be greater than zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisCoordinationConfig {
    /// The bound on establishing a connection (TCP, TLS, AUTH, SELECT): for
    /// [`RedisCoordination::connect`] as a whole, each reconnect, and each subscription.
    pub connect_timeout: Duration,
    /// The bound on waiting for the reply to one command.
    pub response_timeout: Duration,
    /// How many messages a subscriber may fall behind before it misses some and receives
    /// [`Notification::Gap`]. Between 1 and 1,048,576.
    pub subscriber_buffer: usize,
    /// How often a subscription's connection is pinged, so that a silently dead connection
    /// (a half-open TCP socket) is noticed and replaced.
    pub subscription_ping_interval: Duration,
    /// The longest wait between two reconnect attempts.
    pub reconnect_delay_max: Duration,
}

impl Default for RedisCoordinationConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(3),
            subscriber_buffer: 1024,
            subscription_ping_interval: Duration::from_secs(30),
            reconnect_delay_max: Duration::from_secs(5),
        }
    }
}

impl RedisCoordinationConfig {
    fn check(&self) -> Result<()> {
        let durations = [
            ("connect_timeout", self.connect_timeout),
            ("response_timeout", self.response_timeout),
            (
                "subscription_ping_interval",
                self.subscription_ping_interval,
            ),
            ("reconnect_delay_max", self.reconnect_delay_max),
        ];
        for (name, duration) in durations {
            if duration.is_zero() {
                return Err(Error::invalid_input(format!(
                    "{name} must be greater than zero"
                )));
            }
        }
        if !(1..=1 << 20).contains(&self.subscriber_buffer) {
            return Err(Error::invalid_input(
                "subscriber_buffer must be between 1 and 1048576",
            ));
        }
        Ok(())
    }
}

/// Coordination over Redis (6.2 or later: `take` is `GETDEL`).
///
/// Commands go over one [`ConnectionManager`], a multiplexed connection that reconnects by
/// itself: while Redis is unreachable commands fail with `unavailable`, and they succeed
/// again once it is back. Every key and channel starts with the configured prefix, so several
/// deployments (or tests) can share a server. Each subscription has its own pub/sub
/// connection, kept by a background task that resubscribes after a connection loss and then
/// yields [`Notification::Gap`].
///
/// Clones share the connection. Subscription streams end when the last clone is dropped (or
/// when the stream itself is dropped, which closes its connection).
#[derive(Clone)]
pub struct RedisCoordination {
    client: Client,
    connection: ConnectionManager,
    key_prefix: Arc<str>,
    config: RedisCoordinationConfig,
    rate_limit_script: Arc<Script>,
    /// Never sent on: subscription tasks see it closed when the last clone is dropped.
    shutdown: Arc<watch::Sender<()>>,
}

impl std::fmt::Debug for RedisCoordination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the client: its connection info holds the password.
        f.debug_struct("RedisCoordination")
            .field("address", &self.address())
            .field("key_prefix", &self.key_prefix)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RedisCoordination {
    /// Connects with the default settings; see [`RedisCoordination::connect_with_config`].
    pub async fn connect(url: &str, key_prefix: &str) -> Result<Self> {
        Self::connect_with_config(url, key_prefix, RedisCoordinationConfig::default()).await
    }

    /// Connects to the Redis at `url` (`redis://[user:password@]host[:port][/db]`, or
    /// `rediss://` with the `tls` feature) and checks that it answers, within
    /// `config.connect_timeout`. Every key and channel is prefixed with `key_prefix` (such as
    /// `purser:`).
    ///
    /// Fails with `invalid_input` for a malformed URL, prefix or config, and with
    /// `unavailable` when Redis cannot be reached.
    pub async fn connect_with_config(
        url: &str,
        key_prefix: &str,
        config: RedisCoordinationConfig,
    ) -> Result<Self> {
        config.check()?;
        if key_prefix.len() > MAX_KEY_BYTES {
            return Err(Error::invalid_input(format!(
                "key prefix is longer than {MAX_KEY_BYTES} bytes"
            )));
        }
        #[cfg(feature = "tls")]
        install_tls_crypto_provider();
        // The parser's messages name the problem, never the URL (which may hold a password).
        let client = Client::open(url)
            .map_err(|err| Error::invalid_input(format!("redis url is invalid: {err}")))?;
        let address = client.get_connection_info().addr().to_string();
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.response_timeout))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_max_delay(config.reconnect_delay_max);
        let connecting = client.get_connection_manager_with_config(manager_config);
        let connection = match tokio::time::timeout(config.connect_timeout, connecting).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(err)) => {
                return Err(Error::unavailable(
                    format!("cannot connect to redis at {address}"),
                    err,
                ));
            }
            Err(elapsed) => {
                return Err(Error::unavailable(
                    format!(
                        "no connection to redis at {address} within {:?}",
                        config.connect_timeout
                    ),
                    elapsed,
                ));
            }
        };
        let (shutdown, _) = watch::channel(());
        let coordination = Self {
            client,
            connection,
            key_prefix: Arc::from(key_prefix),
            config,
            rate_limit_script: Arc::new(Script::new(include_str!("rate_limit.lua"))),
            shutdown: Arc::new(shutdown),
        };
        // The handshake already ran; a PING proves commands get answers.
        coordination.ping().await.map_err(|err| {
            Error::unavailable(format!("redis at {address} does not answer PING"), err)
        })?;
        Ok(coordination)
    }

    /// The server's address (`host:port` or a socket path), for logs.
    pub fn address(&self) -> String {
        self.client.get_connection_info().addr().to_string()
    }

    /// The prefix of every key and channel.
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    fn value_key(&self, key: &str) -> Result<String> {
        check_key("key", key)?;
        Ok(format!("{}{VALUE_NAMESPACE}{key}", self.key_prefix))
    }

    fn channel_name(&self, channel: &str) -> Result<String> {
        check_key("channel", channel)?;
        Ok(format!("{}{channel}", self.key_prefix))
    }

    /// Runs `cmd` on the shared connection. `what` names the command for the error.
    async fn query<T: FromRedisValue>(&self, what: &'static str, cmd: &Cmd) -> Result<T> {
        let mut connection = self.connection.clone();
        cmd.query_async(&mut connection)
            .await
            .map_err(|err| command_error(what, err))
    }
}

/// Sorts a command's failure: the connection or a server that cannot serve right now is
/// `unavailable` (retry later); anything else is a bug or a misconfiguration, `internal`.
fn command_error(what: &'static str, err: RedisError) -> Error {
    let context = format!("redis {what} failed");
    let server_unavailable = matches!(
        err.kind(),
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ReadOnly
        )
    );
    if server_unavailable
        || err.is_io_error()
        || err.is_timeout()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_unrecoverable_error()
    {
        Error::unavailable(context, err)
    } else {
        Error::internal(context, err)
    }
}

/// Makes sure rustls has a process-wide crypto provider before the first TLS connection.
///
/// redis builds its TLS config with `rustls::ClientConfig::builder()`, which panics when the
/// binary links more than one provider (reqwest may bring aws-lc-rs) and none was installed.
/// Installing ring here, only when nothing is installed yet, avoids that; a binary that
/// prefers another provider installs it before connecting.
#[cfg(feature = "tls")]
fn install_tls_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // An error means another thread installed one first: that one is used, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

#[async_trait]
impl Coordination for RedisCoordination {
    async fn put_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool> {
        let key = self.value_key(key)?;
        check_value("value", value)?;
        let ttl_ms = ttl_millis(ttl)?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value).arg("NX").arg("PX").arg(ttl_ms);
        // OK when stored, nil when the key exists.
        self.query("SET NX", &cmd).await
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<()> {
        let key = self.value_key(key)?;
        check_value("value", value)?;
        let ttl_ms = ttl_millis(ttl)?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value).arg("PX").arg(ttl_ms);
        self.query("SET", &cmd).await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let key = self.value_key(key)?;
        self.query("GET", redis::cmd("GET").arg(key)).await
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let key = self.value_key(key)?;
        self.query("GETDEL", redis::cmd("GETDEL").arg(key)).await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let key = self.value_key(key)?;
        let removed: u64 = self.query("DEL", redis::cmd("DEL").arg(key)).await?;
        Ok(removed > 0)
    }

    async fn rate_limit_take(&self, key: &str, rate: Rate, wanted: u64) -> Result<RateLimitGrant> {
        check_key("key", key)?;
        let rate = GcraRate::new(rate)?;
        let key = format!("{}{RATE_LIMIT_NAMESPACE}{key}", self.key_prefix);
        let mut connection = self.connection.clone();
        // EVALSHA, falling back to loading the script when Redis does not have it yet.
        let (granted, remaining, retry_after_us): (i64, i64, i64) = self
            .rate_limit_script
            .key(key)
            .arg(rate.emission_interval_us)
            .arg(rate.limit)
            .arg(wanted.clamp(1, rate.limit))
            .invoke_async(&mut connection)
            .await
            .map_err(|err| command_error("rate limit script", err))?;
        let (Ok(granted), Ok(remaining), Ok(retry_after_us)) = (
            u64::try_from(granted),
            u64::try_from(remaining),
            u64::try_from(retry_after_us),
        ) else {
            return Err(Error::internal(
                "redis rate limit script failed",
                format!(
                    "negative answer: granted {granted}, remaining {remaining}, retry after {retry_after_us} µs"
                ),
            ));
        };
        Ok(RateLimitGrant {
            granted,
            remaining,
            retry_after: Duration::from_micros(retry_after_us),
        })
    }

    async fn publish(&self, channel: &str, message: &[u8]) -> Result<()> {
        let channel = self.channel_name(channel)?;
        check_value("message", message)?;
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(channel).arg(message);
        // The answer is how many connections received it; a channel nobody listens to is fine.
        let _receivers: u64 = self.query("PUBLISH", &cmd).await?;
        Ok(())
    }

    async fn subscribe(&self, channel: &str) -> Result<BoxStream<'static, Notification>> {
        let channel = self.channel_name(channel)?;
        subscription::subscribe(
            self.client.clone(),
            channel,
            self.config,
            self.shutdown.subscribe(),
        )
        .await
    }

    async fn ping(&self) -> Result<()> {
        let _pong: String = self.query("PING", &redis::cmd("PING")).await?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}
