use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::*;

fn cache(max: u64) -> BoundedCache<u64, u64> {
    BoundedCache::builder("test", max)
        .time_to_live(Duration::from_secs(60))
        .build()
}

#[test]
fn a_flood_of_distinct_keys_leaves_at_most_the_cap() {
    let cache = cache(1_000);
    for key in 0..10_000 {
        cache.insert(cache.begin_read(), key, key);
        // The cap holds throughout, give or take what moka's maintenance has not applied yet.
        if key % 1_000 == 999 {
            assert!(cache.entry_count() <= 1_000);
        }
    }
    assert!(cache.entry_count() <= 1_000, "{}", cache.entry_count());
    assert!(cache.entry_count() > 0);
}

#[test]
fn a_flood_of_heavy_values_leaves_at_most_the_cap_by_weight() {
    let cache: BoundedCache<u64, Arc<[u64]>> = BoundedCache::builder("test", 1_000)
        .weighed_by(|_, v: &Arc<[u64]>| v.len() as u32)
        .time_to_live(Duration::from_secs(60))
        .build();
    let value: Arc<[u64]> = vec![0; 10].into();
    for key in 0..1_000 {
        cache.insert(cache.begin_read(), key, value.clone());
    }
    assert!(cache.weighted_size() <= 1_000, "{}", cache.weighted_size());
    assert!(cache.entry_count() <= 100, "{}", cache.entry_count());
    // An empty value weighs one all the same: weightless entries would escape the cap.
    let empty: Arc<[u64]> = Vec::new().into();
    for key in 1_000..20_000 {
        cache.insert(cache.begin_read(), key, empty.clone());
    }
    assert!(cache.entry_count() <= 1_000, "{}", cache.entry_count());
}

#[test]
fn a_read_that_began_before_an_invalidation_is_not_kept() {
    let cache = cache(100);
    let before = cache.begin_read();
    cache.forget(&7);
    assert!(!cache.insert(before, 7, 1));
    assert_eq!(cache.get(&7), None);

    // Any invalidation counts, whatever key it names: the read may have seen that change too.
    let before = cache.begin_read();
    cache.forget(&8);
    assert!(!cache.insert(before, 7, 1));
    let before = cache.begin_read();
    cache.forget_if(|_, _| false);
    assert!(!cache.insert(before, 7, 1));
    let before = cache.begin_read();
    cache.forget_all();
    assert!(!cache.insert(before, 7, 1));
    assert_eq!(cache.get(&7), None);

    // A read that began after is kept.
    let after = cache.begin_read();
    assert!(cache.insert(after, 7, 2));
    assert_eq!(cache.get(&7), Some(2));
}

/// A writer changes the truth and then forgets, as a revocation does; readers read the truth
/// and keep it, as a request does, with a yield in between for a slow database. Whatever the
/// interleaving, once the writer has forgotten, the cache never answers a value older than the
/// truth it forgot for.
#[test]
fn no_interleaving_keeps_a_value_read_before_the_last_invalidation() {
    let cache = Arc::new(cache(100));
    let truth = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (cache, truth, done) = (cache.clone(), truth.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Acquire) {
                    if cache.get(&1).is_some() {
                        continue;
                    }
                    let read = cache.begin_read();
                    let value = truth.load(Ordering::SeqCst);
                    std::thread::yield_now();
                    cache.insert(read, 1, value);
                }
            })
        })
        .collect();
    for version in 1..=5_000 {
        truth.store(version, Ordering::SeqCst);
        cache.forget(&1);
        // What the cache answers now was read after the change.
        if let Some(cached) = cache.get(&1) {
            assert!(cached >= version, "kept {cached}, read before {version}");
        }
        if version % 100 == 0 {
            std::thread::yield_now();
        }
    }
    done.store(true, Ordering::Release);
    for reader in readers {
        reader.join().unwrap();
    }
    if let Some(cached) = cache.get(&1) {
        assert_eq!(cached, 5_000);
    }
}

#[test]
fn entries_expire_after_their_time_to_live() {
    let cache: BoundedCache<u64, u64> = BoundedCache::builder("test", 100)
        .time_to_live(Duration::from_millis(100))
        .build();
    assert!(cache.insert(cache.begin_read(), 1, 1));
    assert_eq!(cache.get(&1), Some(1));
    std::thread::sleep(Duration::from_millis(250));
    assert_eq!(cache.get(&1), None);
    assert_eq!(cache.entry_count(), 0);
}

#[test]
fn a_zero_time_to_live_caches_nothing() {
    let cache: BoundedCache<u64, u64> = BoundedCache::builder("test", 100)
        .time_to_live(Duration::ZERO)
        .build();
    assert!(!cache.is_enabled());
    assert!(!cache.insert(cache.begin_read(), 1, 1));
    assert_eq!(cache.get(&1), None);
    assert_eq!(cache.entry_count(), 0);
    cache.forget(&1);
    cache.forget_all();
}

#[test]
fn without_a_time_to_live_entries_stay_until_evicted() {
    let cache: BoundedCache<u64, u64> = BoundedCache::builder("test", 100).build();
    assert_eq!(cache.time_to_live(), None);
    assert!(cache.insert(cache.begin_read(), 1, 1));
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(cache.get(&1), Some(1));
}

#[test]
fn an_endless_time_to_live_is_cut_rather_than_refused() {
    let cache: BoundedCache<u64, u64> = BoundedCache::builder("test", 100)
        .time_to_live(Duration::from_millis(u64::MAX))
        .build();
    assert_eq!(cache.time_to_live(), Some(MAX_TIME_TO_LIVE));
    assert!(cache.insert(cache.begin_read(), 1, 1));
    assert_eq!(cache.get(&1), Some(1));
}

#[test]
fn forget_all_drops_everything_and_forget_if_what_matches() {
    let cache = cache(1_000);
    for key in 0..500 {
        cache.insert(cache.begin_read(), key, key);
    }
    cache.forget_if(|key, _| key % 2 == 0);
    assert_eq!(cache.get(&2), None);
    assert_eq!(cache.get(&3), Some(3));
    assert_eq!(cache.entry_count(), 250);
    cache.forget_all();
    assert!((0..500).all(|key| cache.get(&key).is_none()));
    assert_eq!(cache.entry_count(), 0);
    // Reads that begin afterwards are kept again.
    assert!(cache.insert(cache.begin_read(), 1, 1));
    assert_eq!(cache.get(&1), Some(1));
}

#[test]
fn keys_are_looked_up_by_their_borrowed_form() {
    let cache: BoundedCache<String, u64> = BoundedCache::builder("test", 10).build();
    cache.insert(cache.begin_read(), "key".to_owned(), 1);
    assert_eq!(cache.get("key"), Some(1));
    cache.forget("key");
    assert_eq!(cache.get("key"), None);
}

#[tokio::test]
async fn get_or_read_reads_once_and_keeps_out_a_read_that_raced_an_invalidation() {
    let cache = cache(100);
    let reads = AtomicU64::new(0);
    let read = |value: u64| {
        reads.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, ()>(value) }
    };
    assert_eq!(cache.get_or_read(1, || read(10)).await, Ok(10));
    assert_eq!(cache.get_or_read(1, || read(11)).await, Ok(10), "cached");
    assert_eq!(reads.load(Ordering::SeqCst), 1);
    assert_eq!(
        cache.get_or_read(2, || async { Err("down") }).await,
        Err("down")
    );
    assert_eq!(cache.get(&2), None, "an error is not kept");

    // A read that is slow to answer while the key is invalidated: answered, not kept.
    let (has_read, go) = (tokio::sync::Notify::new(), tokio::sync::Notify::new());
    let slow = cache.get_or_read(3, || async {
        has_read.notify_one();
        go.notified().await;
        Ok::<_, ()>(30)
    });
    let invalidate = async {
        has_read.notified().await;
        cache.forget(&3);
        go.notify_one();
    };
    let (answered, ()) = tokio::join!(slow, invalidate);
    assert_eq!(answered, Ok(30));
    assert_eq!(cache.get(&3), None);
    assert_eq!(cache.get_or_read(3, || read(31)).await, Ok(31));
    assert_eq!(cache.get(&3), Some(31));
}
