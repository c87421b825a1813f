//! [`MemoryCoordination`]: coordination inside one process, for the embedded default.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use purser_domain::coord::{Coordination, Notification, Rate, RateLimitGrant};
use purser_domain::{Error, ErrorCode, Result};
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::gcra::{self, GcraRate};
use crate::limits::{check_key, check_value, ttl_rounded};
use crate::{RATE_LIMIT_NAMESPACE, VALUE_NAMESPACE};

/// The largest [`MemoryCoordinationConfig::subscriber_buffer`].
const MAX_SUBSCRIBER_BUFFER: usize = 1 << 20;

/// Settings of a [`MemoryCoordination`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryCoordinationConfig {
    /// The most keys held at once, values and rate limits together. Storing a new key beyond
    /// it fails with `unavailable` (expired keys are removed first), so memory stays bounded.
    pub max_keys: usize,
    /// How many messages a subscriber may fall behind before it misses some and receives
    /// [`Notification::Gap`]. Between 1 and 1,048,576.
    pub subscriber_buffer: usize,
}

impl Default for MemoryCoordinationConfig {
    fn default() -> Self {
        Self {
            max_keys: 1_000_000,
            subscriber_buffer: 1024,
        }
    }
}

/// Coordination in one process's memory: what the embedded single-process default uses.
///
/// The semantics are the Redis backend's: TTLs are honoured (an expired key is never seen,
/// and is removed on the next operation, so memory does not grow with expired keys), `take`
/// is atomic, rate limits use the same GCRA arithmetic (on this process's monotonic clock),
/// and subscribers who fall more than [`MemoryCoordinationConfig::subscriber_buffer`]
/// messages behind receive [`Notification::Gap`]. Clones share the same state; subscription
/// streams end when the last clone is dropped.
#[derive(Clone)]
pub struct MemoryCoordination {
    inner: Arc<Inner>,
}

struct Inner {
    store: Mutex<Store>,
    channels: Mutex<HashMap<String, broadcast::Sender<Arc<[u8]>>>>,
    config: MemoryCoordinationConfig,
    /// The origin of the rate limiter's microsecond clock.
    epoch: Instant,
}

impl MemoryCoordination {
    /// A coordinator with the default settings.
    pub fn new() -> Self {
        Self::build(MemoryCoordinationConfig::default())
    }

    /// A coordinator with `config`, which must have `max_keys >= 1` and a `subscriber_buffer`
    /// between 1 and 1,048,576.
    pub fn with_config(config: MemoryCoordinationConfig) -> Result<Self> {
        if config.max_keys == 0 {
            return Err(Error::invalid_input("max_keys must be at least 1"));
        }
        if !(1..=MAX_SUBSCRIBER_BUFFER).contains(&config.subscriber_buffer) {
            return Err(Error::invalid_input(format!(
                "subscriber_buffer must be between 1 and {MAX_SUBSCRIBER_BUFFER}"
            )));
        }
        Ok(Self::build(config))
    }

    fn build(config: MemoryCoordinationConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                store: Mutex::new(Store::new(config.max_keys)),
                channels: Mutex::new(HashMap::new()),
                config,
                epoch: Instant::now(),
            }),
        }
    }

    /// How many keys are held, values and rate limits together, after removing expired ones.
    pub fn key_count(&self) -> usize {
        let mut store = lock(&self.inner.store);
        store.remove_expired(Instant::now());
        store.entries.len()
    }

    /// Locks the store after removing what expired, and says what time it is.
    fn store(&self) -> (MutexGuard<'_, Store>, Instant) {
        let mut store = lock(&self.inner.store);
        let now = Instant::now();
        store.remove_expired(now);
        (store, now)
    }
}

impl Default for MemoryCoordination {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryCoordination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCoordination")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Locks `mutex`, ignoring poisoning: every critical section here leaves the data consistent
/// at each point where it could panic (only allocation can), so a poisoned lock holds valid
/// data.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn value_key(key: &str) -> Result<String> {
    check_key("key", key)?;
    Ok(format!("{VALUE_NAMESPACE}{key}"))
}

#[async_trait]
impl Coordination for MemoryCoordination {
    async fn put_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool> {
        let name = value_key(key)?;
        check_value("value", value)?;
        let ttl = ttl_rounded(ttl)?;
        let (mut store, now) = self.store();
        if store.entries.contains_key(name.as_str()) {
            return Ok(false);
        }
        store.insert(&name, Slot::Value(value.to_vec()), ttl, now)?;
        Ok(true)
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<()> {
        let name = value_key(key)?;
        check_value("value", value)?;
        let ttl = ttl_rounded(ttl)?;
        let (mut store, now) = self.store();
        store.insert(&name, Slot::Value(value.to_vec()), ttl, now)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let name = value_key(key)?;
        let (store, _) = self.store();
        Ok(match store.entries.get(name.as_str()) {
            Some(Entry {
                slot: Slot::Value(value),
                ..
            }) => Some(value.clone()),
            _ => None,
        })
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let name = value_key(key)?;
        let (mut store, _) = self.store();
        Ok(match store.remove(&name) {
            Some(Slot::Value(value)) => Some(value),
            _ => None,
        })
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let name = value_key(key)?;
        let (mut store, _) = self.store();
        Ok(store.remove(&name).is_some())
    }

    async fn rate_limit_take(&self, key: &str, rate: Rate, wanted: u64) -> Result<RateLimitGrant> {
        check_key("key", key)?;
        let rate = GcraRate::new(rate)?;
        let name = format!("{RATE_LIMIT_NAMESPACE}{key}");
        let (mut store, now) = self.store();
        // Microseconds since this coordinator was made: far from overflowing a u64.
        let now_us =
            u64::try_from(now.duration_since(self.inner.epoch).as_micros()).unwrap_or(u64::MAX);
        let tat_us = match store.entries.get(name.as_str()) {
            Some(Entry {
                slot: Slot::RateLimit { tat_us },
                ..
            }) => Some(*tat_us),
            _ => None,
        };
        let outcome = gcra::take(now_us, tat_us, rate, wanted);
        if let Some(state) = outcome.store {
            let slot = Slot::RateLimit {
                tat_us: state.tat_us,
            };
            store.insert(&name, slot, Duration::from_millis(state.ttl_ms), now)?;
        }
        Ok(RateLimitGrant {
            granted: outcome.granted,
            remaining: outcome.remaining,
            retry_after: outcome.retry_after,
        })
    }

    async fn publish(&self, channel: &str, message: &[u8]) -> Result<()> {
        check_key("channel", channel)?;
        check_value("message", message)?;
        let mut channels = lock(&self.inner.channels);
        if let Some(sender) = channels.get(channel) {
            // An error means nobody listens any more: forget the channel.
            if sender.send(Arc::from(message)).is_err() {
                channels.remove(channel);
            }
        }
        Ok(())
    }

    async fn subscribe(&self, channel: &str) -> Result<BoxStream<'static, Notification>> {
        check_key("channel", channel)?;
        let receiver = lock(&self.inner.channels)
            .entry(channel.to_owned())
            .or_insert_with(|| broadcast::channel(self.inner.config.subscriber_buffer).0)
            .subscribe();
        let subscription = Subscription {
            receiver,
            channel: channel.to_owned(),
            coordinator: Arc::downgrade(&self.inner),
        };
        Ok(
            futures::stream::unfold(subscription, |mut subscription| async move {
                let notification = match subscription.receiver.recv().await {
                    Ok(message) => Notification::Message(message.to_vec()),
                    Err(broadcast::error::RecvError::Lagged(_)) => Notification::Gap,
                    // Every sender is gone: the coordinator was dropped.
                    Err(broadcast::error::RecvError::Closed) => return None,
                };
                Some((notification, subscription))
            })
            .boxed(),
        )
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}

/// One subscriber's receiver. Dropping the last one of a channel forgets the channel, so the
/// channel table holds only channels someone listens to.
struct Subscription {
    receiver: broadcast::Receiver<Arc<[u8]>>,
    channel: String,
    coordinator: Weak<Inner>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let Some(inner) = self.coordinator.upgrade() else {
            return;
        };
        let mut channels = lock(&inner.channels);
        // Receivers are made under this lock, and ours is still alive here: a count of 1
        // means it is the last.
        if channels
            .get(&self.channel)
            .is_some_and(|sender| sender.receiver_count() <= 1)
        {
            channels.remove(&self.channel);
        }
    }
}

/// The keyspace: entries by name, and the same entries by expiry so that expired ones are
/// removed in order, each once, in O(log n).
struct Store {
    entries: HashMap<Arc<str>, Entry>,
    by_expiry: BTreeMap<ExpiryKey, Arc<str>>,
    /// Tells apart entries that expire at the same instant.
    next_sequence: u64,
    max_keys: usize,
}

/// When an entry expires, and a sequence number that makes the key unique.
type ExpiryKey = (Instant, u64);

struct Entry {
    slot: Slot,
    expiry: ExpiryKey,
}

enum Slot {
    Value(Vec<u8>),
    RateLimit { tat_us: u64 },
}

impl Store {
    fn new(max_keys: usize) -> Self {
        Self {
            entries: HashMap::new(),
            by_expiry: BTreeMap::new(),
            next_sequence: 0,
            max_keys,
        }
    }

    /// Removes every entry whose expiry is not after `now`.
    fn remove_expired(&mut self, now: Instant) {
        while let Some(first) = self.by_expiry.first_entry() {
            if first.key().0 > now {
                break;
            }
            let name = first.remove();
            self.entries.remove(&name);
        }
    }

    /// Stores `slot` under `name` until `now + ttl`, replacing what was there. Fails when
    /// `name` is new and the store is full.
    fn insert(&mut self, name: &str, slot: Slot, ttl: Duration, now: Instant) -> Result<()> {
        // The TTL is at most a year (checked by the callers): this cannot fail in practice.
        let expires_at = now
            .checked_add(ttl)
            .ok_or_else(|| Error::invalid_input("ttl reaches past the end of the clock"))?;
        let name: Arc<str> = match self.entries.get_key_value(name) {
            Some((existing, _)) => Arc::clone(existing),
            None if self.entries.len() >= self.max_keys => {
                return Err(Error::new(
                    ErrorCode::Unavailable,
                    format!(
                        "the in-memory coordination store is full ({} keys); raise max_keys \
                         or wait for keys to expire",
                        self.max_keys
                    ),
                ));
            }
            None => Arc::from(name),
        };
        let expiry = (expires_at, self.next_sequence);
        self.next_sequence = self.next_sequence.wrapping_add(1);
        let entry = Entry { slot, expiry };
        if let Some(old) = self.entries.insert(Arc::clone(&name), entry) {
            self.by_expiry.remove(&old.expiry);
        }
        self.by_expiry.insert(expiry, name);
        Ok(())
    }

    fn remove(&mut self, name: &str) -> Option<Slot> {
        let entry = self.entries.remove(name)?;
        self.by_expiry.remove(&entry.expiry);
        Some(entry.slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_keys: usize) -> MemoryCoordinationConfig {
        MemoryCoordinationConfig {
            max_keys,
            ..MemoryCoordinationConfig::default()
        }
    }

    fn coordinator(max_keys: usize) -> MemoryCoordination {
        match MemoryCoordination::with_config(config(max_keys)) {
            Ok(coordinator) => coordinator,
            Err(err) => panic!("{err}"),
        }
    }

    #[test]
    fn the_expiry_index_tracks_every_entry_exactly_once() {
        let mut store = Store::new(10);
        let now = Instant::now();
        let ttl = Duration::from_secs(1);
        for _ in 0..3 {
            assert!(store.insert("a", Slot::Value(vec![1]), ttl, now).is_ok());
        }
        assert!(
            store
                .insert("b", Slot::Value(vec![2]), ttl * 2, now)
                .is_ok()
        );
        assert_eq!((store.entries.len(), store.by_expiry.len()), (2, 2));
        assert!(store.remove("a").is_some());
        assert_eq!((store.entries.len(), store.by_expiry.len()), (1, 1));
        store.remove_expired(now + ttl * 2);
        assert_eq!((store.entries.len(), store.by_expiry.len()), (0, 0));
    }

    #[tokio::test]
    async fn expired_keys_are_removed_without_being_read() {
        let coord = coordinator(100);
        for i in 0..50 {
            let key = format!("k{i}");
            assert!(
                coord
                    .put(&key, b"v", Duration::from_millis(500))
                    .await
                    .is_ok()
            );
        }
        assert_eq!(coord.key_count(), 50);
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(coord.key_count(), 0);
    }

    #[tokio::test]
    async fn a_full_store_refuses_new_keys_but_not_updates() {
        let coord = coordinator(2);
        let ttl = Duration::from_secs(60);
        assert!(coord.put("a", b"1", ttl).await.is_ok());
        assert!(coord.put("b", b"1", ttl).await.is_ok());
        let full = coord.put("c", b"1", ttl).await.err().map(|e| e.code());
        assert_eq!(full, Some(ErrorCode::Unavailable));
        let rate = Rate {
            limit: 1,
            window: ttl,
        };
        let full = coord.rate_limit("c", rate).await.err().map(|e| e.code());
        assert_eq!(full, Some(ErrorCode::Unavailable));
        // Replacing an existing key needs no room.
        assert!(coord.put("a", b"2", ttl).await.is_ok());
        assert!(coord.delete("b").await.is_ok_and(|existed| existed));
        assert!(coord.put("c", b"1", ttl).await.is_ok());
    }

    #[tokio::test]
    async fn channels_are_forgotten_when_their_last_subscriber_leaves() {
        let coord = coordinator(10);
        let first = coord.subscribe("c").await;
        let second = coord.subscribe("c").await;
        assert_eq!(lock(&coord.inner.channels).len(), 1);
        drop(first);
        assert_eq!(lock(&coord.inner.channels).len(), 1);
        drop(second);
        assert_eq!(lock(&coord.inner.channels).len(), 0);
    }

    #[tokio::test]
    async fn a_slow_subscriber_gets_a_gap_then_newer_messages() {
        let coord = match MemoryCoordination::with_config(MemoryCoordinationConfig {
            max_keys: 10,
            subscriber_buffer: 2,
        }) {
            Ok(coord) => coord,
            Err(err) => panic!("{err}"),
        };
        let Ok(mut stream) = coord.subscribe("c").await else {
            panic!("subscribe")
        };
        for i in 0..5u8 {
            assert!(coord.publish("c", &[i]).await.is_ok());
        }
        assert_eq!(stream.next().await, Some(Notification::Gap));
        assert_eq!(stream.next().await, Some(Notification::Message(vec![3])));
        assert_eq!(stream.next().await, Some(Notification::Message(vec![4])));
    }

    #[tokio::test]
    async fn streams_end_when_the_coordinator_is_dropped() {
        let coord = coordinator(10);
        let Ok(mut stream) = coord.subscribe("c").await else {
            panic!("subscribe")
        };
        drop(coord);
        assert_eq!(stream.next().await, None);
    }

    #[test]
    fn bad_configs_are_refused() {
        for config in [
            config(0),
            MemoryCoordinationConfig {
                subscriber_buffer: 0,
                ..MemoryCoordinationConfig::default()
            },
            MemoryCoordinationConfig {
                subscriber_buffer: MAX_SUBSCRIBER_BUFFER + 1,
                ..MemoryCoordinationConfig::default()
            },
        ] {
            let err = MemoryCoordination::with_config(config).err();
            assert_eq!(err.map(|e| e.code()), Some(ErrorCode::InvalidInput));
        }
    }
}
