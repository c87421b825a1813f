//! One subscription: a dedicated pub/sub connection, kept by a background task that forwards
//! messages to the subscriber's stream and replaces the connection when it is lost.

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::BuildHasher;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use purser_domain::coord::Notification;
use purser_domain::{Error, Result};
use redis::aio::{PubSubSink, PubSubStream};
use redis::{Client, RedisResult};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use super::RedisCoordinationConfig;

/// The first wait before reconnecting; it doubles on each failure up to
/// [`RedisCoordinationConfig::reconnect_delay_max`].
const RECONNECT_DELAY_MIN: Duration = Duration::from_millis(50);

/// Opens a pub/sub connection, subscribes to `channel` (the full, prefixed name) and waits for
/// Redis to confirm, so that anything published after this returns is delivered. The
/// returned stream is fed by a spawned task that ends when the stream is dropped or the
/// coordinator shuts down (`shutdown` closes).
pub(super) async fn subscribe(
    client: Client,
    channel: String,
    config: RedisCoordinationConfig,
    shutdown: watch::Receiver<()>,
) -> Result<BoxStream<'static, Notification>> {
    let (sink, stream) = open(&client, &channel, &config).await.map_err(|err| {
        Error::unavailable(
            format!(
                "cannot subscribe to redis at {}",
                client.get_connection_info().addr()
            ),
            err,
        )
    })?;
    let (sender, mut receiver) = mpsc::channel(config.subscriber_buffer);
    let forwarder = Forwarder {
        client,
        channel,
        config,
        sender,
        shutdown,
        gap_pending: false,
    };
    tokio::spawn(forwarder.run(sink, stream));
    Ok(futures::stream::poll_fn(move |cx| receiver.poll_recv(cx)).boxed())
}

/// Connects and subscribes, each step bounded by its timeout.
async fn open(
    client: &Client,
    channel: &str,
    config: &RedisCoordinationConfig,
) -> RedisResult<(PubSubSink, PubSubStream)> {
    let mut pubsub = within(config.connect_timeout, client.get_async_pubsub()).await?;
    within(config.response_timeout, pubsub.subscribe(channel)).await?;
    Ok(pubsub.split())
}

/// `future`, or a timeout error after `limit`.
async fn within<T>(
    limit: Duration,
    future: impl Future<Output = RedisResult<T>>,
) -> RedisResult<T> {
    match tokio::time::timeout(limit, future).await {
        Ok(result) => result,
        Err(_elapsed) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer from redis within {limit:?}"),
        )
        .into()),
    }
}

/// Why forwarding stopped.
enum Stop {
    /// The connection was lost: make another.
    ConnectionLost,
    /// The subscriber dropped the stream, or the coordinator shut down: the task ends.
    Finished,
}

struct Forwarder {
    client: Client,
    channel: String,
    config: RedisCoordinationConfig,
    sender: mpsc::Sender<Notification>,
    shutdown: watch::Receiver<()>,
    /// Messages were missed (a reconnect, or a full buffer) and the subscriber has not been
    /// told yet. It is told before the next message, or as soon as the buffer has room.
    gap_pending: bool,
}

impl Forwarder {
    async fn run(mut self, mut sink: PubSubSink, mut stream: PubSubStream) {
        loop {
            if let Stop::Finished = self.forward(&mut sink, &mut stream).await {
                return;
            }
            // Close the dead connection before making another.
            drop((sink, stream));
            let Some((new_sink, new_stream)) = self.reconnect().await else {
                return;
            };
            (sink, stream) = (new_sink, new_stream);
            self.gap_pending = true;
        }
    }

    /// Forwards messages until the connection is lost or the task should end.
    async fn forward(&mut self, sink: &mut PubSubSink, stream: &mut PubSubStream) -> Stop {
        let period = self.config.subscription_ping_interval;
        let mut ping = tokio::time::interval_at(Instant::now() + period, period);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let received = tokio::select! {
                biased;
                _ = self.shutdown.changed() => return Stop::Finished,
                () = self.sender.closed() => return Stop::Finished,
                permit = self.sender.reserve(), if self.gap_pending => {
                    let Ok(permit) = permit else {
                        return Stop::Finished;
                    };
                    permit.send(Notification::Gap);
                    self.gap_pending = false;
                    continue;
                }
                message = stream.next() => message,
                _ = ping.tick() => {
                    let timeout = self.config.response_timeout;
                    if let Err(err) = within(timeout, sink.ping::<redis::Value>()).await {
                        tracing::warn!(
                            channel = %self.channel,
                            error = %err,
                            "redis subscription connection does not answer PING; reconnecting"
                        );
                        return Stop::ConnectionLost;
                    }
                    continue;
                }
            };
            let Some(message) = received else {
                tracing::warn!(
                    channel = %self.channel,
                    "redis subscription connection lost; reconnecting"
                );
                return Stop::ConnectionLost;
            };
            if !self.deliver(message.get_payload_bytes()) {
                return Stop::Finished;
            }
        }
    }

    /// Hands a message to the subscriber without waiting: when the buffer is full the message
    /// is dropped and a gap is owed instead. False when the subscriber is gone.
    fn deliver(&mut self, payload: &[u8]) -> bool {
        use mpsc::error::TrySendError;
        if self.gap_pending {
            match self.sender.try_send(Notification::Gap) {
                Ok(()) => self.gap_pending = false,
                Err(TrySendError::Full(_)) => return true,
                Err(TrySendError::Closed(_)) => return false,
            }
        }
        match self
            .sender
            .try_send(Notification::Message(payload.to_vec()))
        {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.gap_pending = true;
                true
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }

    /// Reconnects and resubscribes with exponential backoff (with jitter, so that many
    /// subscriptions do not reconnect in lockstep after a Redis restart). `None` when the task
    /// should end instead.
    async fn reconnect(&mut self) -> Option<(PubSubSink, PubSubStream)> {
        let mut delay = RECONNECT_DELAY_MIN;
        for attempt in 1u64.. {
            tokio::select! {
                biased;
                _ = self.shutdown.changed() => return None,
                () = self.sender.closed() => return None,
                () = tokio::time::sleep(jittered(delay, attempt)) => {}
            }
            let opening = open(&self.client, &self.channel, &self.config);
            tokio::select! {
                biased;
                _ = self.shutdown.changed() => return None,
                () = self.sender.closed() => return None,
                opened = opening => match opened {
                    Ok(connection) => {
                        tracing::info!(channel = %self.channel, attempt, "redis subscription restored");
                        return Some(connection);
                    }
                    Err(err) => {
                        tracing::warn!(channel = %self.channel, attempt, error = %err, "redis subscription reconnect failed");
                        delay = (delay * 2).min(self.config.reconnect_delay_max);
                    }
                },
            }
        }
        // `1u64..` does not end in practice (2^64 attempts).
        None
    }
}

/// Between half of `delay` and all of it, chosen at random.
fn jittered(delay: Duration, attempt: u64) -> Duration {
    // RandomState is seeded randomly per process and per instance: enough randomness for
    // spreading reconnects, without a dependency on a random number generator.
    let random = RandomState::new().hash_one(attempt);
    let half = delay / 2;
    let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(random % nanos.max(1))
}
