//! Cache hits, the old way and the new: a `Mutex<HashMap<K, (Instant, V)>>` checked against
//! its time to live (what Purser's services kept until `BoundedCache`) beside a
//! [`BoundedCache`], with the key and value shapes of the hot paths: an API key's hash (a
//! 64-character string) to a principal, and a (tenant, wallet) pair to a wallet's grants
//! (an `Arc<[_]>`). Each is timed on one thread and on two at once over the same cache (the
//! machine's two cores), over 1,000 cached keys in a shuffled order, so contention and cache
//! misses of the CPU show. Figures are nanoseconds per lookup, the median of five rounds.
//!
//! `cargo bench -p purser-cache --bench lookups -- [--lookups N]`

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use purser_cache::BoundedCache;

const KEYS: usize = 1_000;
const ROUNDS: usize = 5;
const TTL: Duration = Duration::from_secs(3600);

/// The shape of a checked key's `Principal`: two ids and a role.
#[derive(Debug, Clone, Copy)]
#[allow(dead_code)]
struct Principal {
    key_id: u128,
    tenant_id: Option<u128>,
    role: u8,
}

/// The hand-written map, as the services had it.
struct OldMap<K, V> {
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Hash + Eq, V: Clone> OldMap<K, V> {
    fn new(entries: impl IntoIterator<Item = (K, V)>) -> Self {
        Self {
            entries: Mutex::new(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, (Instant::now(), v)))
                    .collect(),
            ),
        }
    }

    fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (at, value) = entries.get(key)?;
        (at.elapsed() < TTL).then(|| value.clone())
    }
}

fn new_cache<K, V>(entries: impl IntoIterator<Item = (K, V)>) -> BoundedCache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    let cache = BoundedCache::builder("bench", 10_000)
        .time_to_live(TTL)
        .build();
    for (k, v) in entries {
        assert!(cache.insert(cache.begin_read(), k, v));
    }
    cache
}

/// The median over rounds of nanoseconds per lookup, with `threads` threads each looking up
/// every key of `order` in turn until `lookups` lookups.
fn measure<L: Fn(usize) + Sync>(lookup: &L, lookups: usize, threads: usize) -> f64 {
    let mut rounds: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let total: Duration = std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        s.spawn(move || {
                            let start = Instant::now();
                            for i in 0..lookups {
                                lookup((i + t * 397) % KEYS);
                            }
                            start.elapsed()
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).sum()
            });
            total.as_nanos() as f64 / (lookups * threads) as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[ROUNDS / 2]
}

fn main() {
    let mut lookups = 2_000_000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--lookups" => {
                lookups = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--lookups N")
            }
            "--bench" => {}
            other => panic!("unknown argument {other:?}"),
        }
    }
    // A shuffled order (a fixed permutation), so lookups do not walk memory in insertion order.
    let order: Vec<usize> = (0..KEYS).map(|i| (i * 7919) % KEYS).collect();

    let hashes: Vec<String> = (0..KEYS).map(|i| format!("{i:064x}")).collect();
    let principal = |i: usize| Principal {
        key_id: i as u128,
        tenant_id: Some(i as u128 * 3),
        role: 1,
    };
    let keys_old = OldMap::new(
        hashes
            .iter()
            .enumerate()
            .map(|(i, h)| (h.clone(), principal(i))),
    );
    let keys_new = new_cache(
        hashes
            .iter()
            .enumerate()
            .map(|(i, h)| (h.clone(), principal(i))),
    );

    type Wallet = (u128, Box<str>);
    let wallets: Vec<Wallet> = (0..KEYS)
        .map(|i| (7, format!("0x{i:040x}").into_boxed_str()))
        .collect();
    // Each wallet its own grants, as in the service (one shared `Arc` would make both threads
    // fight over its reference count).
    let grants = || -> Arc<[u64]> { vec![1, 2, 3].into() };
    let grants_old = OldMap::new(wallets.iter().map(|w| (w.clone(), grants())));
    let grants_new = new_cache(wallets.iter().map(|w| (w.clone(), grants())));

    println!("{lookups} lookups per thread and round over {KEYS} keys, median of {ROUNDS} rounds");
    println!(
        "{:<40} {:>12} {:>13}",
        "lookup", "1 thread ns", "2 threads ns"
    );
    let row = |name: &str, lookup: &(dyn Fn(usize) + Sync)| {
        let one = measure(&lookup, lookups, 1);
        let two = measure(&lookup, lookups, 2);
        println!("{name:<40} {one:>12.1} {two:>13.1}");
    };
    row("api key: Mutex<HashMap> (old)", &|i| {
        assert!(keys_old.get(hashes[order[i]].as_str()).is_some());
    });
    row("api key: BoundedCache (new)", &|i| {
        assert!(keys_new.get(hashes[order[i]].as_str()).is_some());
    });
    // The grant cache builds its key per request (the wallet comes as a `&str`): both do.
    row("grants: Mutex<HashMap> (old)", &|i| {
        let (tenant, wallet) = &wallets[order[i]];
        let key: Wallet = (*tenant, Box::from(&**wallet));
        assert!(grants_old.get(&key).is_some());
    });
    row("grants: BoundedCache (new)", &|i| {
        let (tenant, wallet) = &wallets[order[i]];
        let key: Wallet = (*tenant, Box::from(&**wallet));
        assert!(grants_new.get(&key).is_some());
    });
}
