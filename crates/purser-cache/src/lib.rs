//! Bounded caches of facts read from a source of truth (the database), for Purser's services.
//!
//! Every cache Purser keeps of something it read is a [`BoundedCache`]: a
//! [moka](https://docs.rs/moka) cache (concurrent reads without a global lock, TinyLFU
//! admission and LRU eviction) with
//!
//! - **a size cap**: at most [`CacheBuilder::new`]'s number of entries, or of total weight when
//!   entries are weighed ([`CacheBuilder::weighed_by`]), so no request input can grow one
//!   without bound. Eviction happens in moka's maintenance, which runs on the callers' threads
//!   every few dozen writes: between two runs a cache may hold a few hundred entries more than
//!   its cap, never more;
//! - **a time to live** per entry ([`CacheBuilder::time_to_live`]), counted from the insert;
//!   a zero time to live caches nothing (every read goes to the source), and a cache without
//!   one keeps entries until evicted (for facts that never change);
//! - **invalidation** by key ([`BoundedCache::forget`]), by predicate
//!   ([`BoundedCache::forget_if`]) or of everything ([`BoundedCache::forget_all`]), for the
//!   announcements of `purser_domain::coord::Invalidator`;
//! - **a generation guard**: a read of the source begins with [`BoundedCache::begin_read`], and
//!   [`BoundedCache::insert`] keeps its answer only when no invalidation happened since
//!   ([`BoundedCache::get_or_read`] does both around a read). So a slow database read that
//!   started before a grant was revoked (and may not have seen the revocation) can never put
//!   the revoked grant back after the revocation's invalidation dropped it.
//!
//! This crate knows nothing of Purser's domain: each service says which invalidation drops
//! which of its keys.

use std::borrow::Borrow;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use moka::sync::Cache;

/// The longest an entry may live: moka refuses lives over a thousand years (they would
/// overflow its clock), and configuration can ask for any number of milliseconds.
pub const MAX_TIME_TO_LIVE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Marks the start of a read of the source: [`BoundedCache::insert`] keeps what the read found
/// only if no invalidation happened since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a read's answer is kept only with the ticket taken before the read"]
pub struct ReadTicket {
    generation: u64,
}

/// How an entry is weighed against the cap.
type Weigher<K, V> = Box<dyn Fn(&K, &V) -> u32 + Send + Sync + 'static>;

/// How a [`BoundedCache`] is made.
pub struct CacheBuilder<K, V> {
    name: &'static str,
    max: u64,
    weigher: Option<Weigher<K, V>>,
    time_to_live: Option<Duration>,
}

impl<K, V> CacheBuilder<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A cache called `name` (in logs and `Debug`) of at most `max` entries, kept until
    /// evicted or forgotten.
    pub fn new(name: &'static str, max: u64) -> Self {
        Self {
            name,
            max,
            weigher: None,
            time_to_live: None,
        }
    }

    /// Weighs each entry by `weigh` (counted as at least 1), so that the cap bounds the total
    /// weight rather than the number of entries: for values whose size varies (a tenant's
    /// routes, a resource's versions). The number of entries stays at most the cap too.
    pub fn weighed_by(mut self, weigh: impl Fn(&K, &V) -> u32 + Send + Sync + 'static) -> Self {
        self.weigher = Some(Box::new(weigh));
        self
    }

    /// Drops each entry `time_to_live` after it was inserted. Zero caches nothing; a life
    /// longer than [`MAX_TIME_TO_LIVE`] is cut to it.
    pub fn time_to_live(mut self, time_to_live: Duration) -> Self {
        self.time_to_live = Some(time_to_live.min(MAX_TIME_TO_LIVE));
        self
    }

    pub fn build(self) -> BoundedCache<K, V> {
        let enabled = self.time_to_live.is_none_or(|ttl| !ttl.is_zero());
        let entries = enabled.then(|| {
            let mut builder = Cache::builder().name(self.name).max_capacity(self.max);
            if let Some(ttl) = self.time_to_live {
                builder = builder.time_to_live(ttl);
            }
            match self.weigher {
                Some(weigh) => builder
                    .weigher(move |key: &K, value: &V| weigh(key, value).max(1))
                    .build(),
                None => builder.build(),
            }
        });
        BoundedCache {
            name: self.name,
            max: self.max,
            time_to_live: self.time_to_live,
            entries,
            generation: AtomicU64::new(0),
            writes: RwLock::new(()),
        }
    }
}

/// A bounded cache with invalidation and a generation guard; see the crate's documentation.
pub struct BoundedCache<K, V> {
    name: &'static str,
    max: u64,
    time_to_live: Option<Duration>,
    /// `None` when the time to live is zero: nothing is cached.
    entries: Option<Cache<K, V>>,
    /// Bumped by every invalidation: a read that began before one is not kept.
    generation: AtomicU64,
    /// Inserts hold it shared, invalidations exclusively, so that an insert's check of the
    /// generation and the insert itself happen both before an invalidation or both after it.
    /// Lookups never take it.
    writes: RwLock<()>,
}

impl<K, V> std::fmt::Debug for BoundedCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundedCache")
            .field("name", &self.name)
            .field("max", &self.max)
            .field("time_to_live", &self.time_to_live)
            .field(
                "entries",
                &self.entries.as_ref().map_or(0, Cache::entry_count),
            )
            .finish_non_exhaustive()
    }
}

impl<K, V> BoundedCache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A cache called `name` of at most `max` entries; see [`CacheBuilder`].
    pub fn builder(name: &'static str, max: u64) -> CacheBuilder<K, V> {
        CacheBuilder::new(name, max)
    }

    /// The value cached for `key`, unless it expired or was forgotten.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.as_ref()?.get(key)
    }

    /// To be taken before reading the source: see [`Self::insert`].
    pub fn begin_read(&self) -> ReadTicket {
        ReadTicket {
            generation: self.generation.load(Ordering::Acquire),
        }
    }

    /// Keeps `value`, read from the source after `read` was taken, for `key`, unless an
    /// invalidation happened since (the value may predate it: the next lookup reads again).
    /// Whether it was kept; never when the cache caches nothing, and moka may also decline a
    /// new key when the cache is full of keys asked more often.
    pub fn insert(&self, read: ReadTicket, key: K, value: V) -> bool {
        let Some(entries) = &self.entries else {
            return false;
        };
        let _shared = self.writes.read().unwrap_or_else(PoisonError::into_inner);
        if self.generation.load(Ordering::Acquire) != read.generation {
            return false;
        }
        entries.insert(key, value);
        true
    }

    /// The value for `key`: the cached one, or else what `read` answers (from the source),
    /// kept unless an invalidation happened while it ran ([`Self::begin_read`] and
    /// [`Self::insert`] around it). An error is answered and not kept. Concurrent misses of
    /// one key each read: the source sees as many reads as there are callers in that moment.
    pub async fn get_or_read<F, Fut, E>(&self, key: K, read: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        if let Some(value) = self.get(&key) {
            return Ok(value);
        }
        let ticket = self.begin_read();
        let value = read().await?;
        self.insert(ticket, key, value.clone());
        Ok(value)
    }

    /// Drops what is cached for `key`, and keeps out every read that began before.
    pub fn forget<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let _exclusive = self.invalidating();
        if let Some(entries) = &self.entries {
            entries.invalidate(key);
        }
    }

    /// Drops every entry for which `predicate` holds (a walk over the whole cache: for
    /// invalidations that do not name a key, such as a tenant's keys), and keeps out every read
    /// that began before.
    pub fn forget_if(&self, mut predicate: impl FnMut(&K, &V) -> bool) {
        let _exclusive = self.invalidating();
        if let Some(entries) = &self.entries {
            for (key, value) in entries.iter() {
                if predicate(&key, &value) {
                    entries.invalidate(&*key);
                }
            }
        }
    }

    /// Drops everything (announcements may have been missed), and keeps out every read that
    /// began before.
    pub fn forget_all(&self) {
        let _exclusive = self.invalidating();
        if let Some(entries) = &self.entries {
            entries.invalidate_all();
        }
    }

    /// Bumps the generation while holding off inserts.
    fn invalidating(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        let exclusive = self.writes.write().unwrap_or_else(PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::AcqRel);
        exclusive
    }

    /// How many entries the cache holds, counted one by one once every pending eviction and
    /// expiry is applied: for tests and occasional reports, not per request (it walks the
    /// cache, and moka's own count lags behind writes it has not processed yet).
    pub fn entry_count(&self) -> u64 {
        self.settle().map_or(0, |(count, _)| count)
    }

    /// The total weight of the entries (their number when entries are not weighed), once every
    /// pending eviction and expiry is applied.
    pub fn weighted_size(&self) -> u64 {
        self.settle().map_or(0, |(_, weight)| weight)
    }

    /// Runs moka's maintenance until the entries stop changing (each run is cut short after a
    /// while, so one may leave work behind), then counts them and their weight.
    fn settle(&self) -> Option<(u64, u64)> {
        let entries = self.entries.as_ref()?;
        let mut last = None;
        for _ in 0..1_000 {
            entries.run_pending_tasks();
            let held = (entries.iter().count() as u64, entries.weighted_size());
            if last == Some(held) {
                break;
            }
            last = Some(held);
        }
        last
    }

    /// The cap: of entries, or of total weight when entries are weighed.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// How long an entry is kept at most; `None` when entries do not expire.
    pub fn time_to_live(&self) -> Option<Duration> {
        self.time_to_live
    }

    /// False when the time to live is zero: nothing is cached.
    pub fn is_enabled(&self) -> bool {
        self.entries.is_some()
    }
}

#[cfg(test)]
mod tests;
