//! The behaviour every [`Coordination`] backend must have, written once.
//!
//! Each case is an async function over a [`Factory`]; [`suite!`](crate::suite) instantiates
//! every case as a test for one backend. A new case is added to both lists: the function
//! here and the name in the macro.

use std::sync::Arc;
use std::time::{Duration, Instant};

use purser_domain::ErrorCode;
use purser_domain::coord::{Coordination, Notification, Rate};

use crate::support::{Factory, next, ok};

/// Instantiates every suite case as a `#[tokio::test]` for the backend `$factory` makes.
#[macro_export]
macro_rules! suite {
    ($factory:expr) => {
        $crate::suite!(@cases $factory;
            put_if_absent_stores_only_once,
            put_overwrites_value_and_ttl,
            values_expire_after_their_ttl,
            sub_millisecond_ttls_round_up,
            take_has_a_single_winner,
            delete_removes_and_says_whether_it_existed,
            rate_limit_allows_a_burst_then_denies_then_recovers,
            rate_limit_keys_are_independent,
            rate_limit_take_grants_what_fits_and_shares_the_bucket,
            rate_limits_and_values_do_not_collide,
            publish_reaches_every_subscriber_in_order,
            subscribers_see_only_their_channel,
            coordinators_are_isolated,
            invalid_input_is_refused,
            ping_and_backend,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::suite::$case(&$factory).await;
            }
        )*
    };
}

const MINUTE: Duration = Duration::from_secs(60);

fn error_code<T>(result: purser_domain::Result<T>) -> Option<ErrorCode> {
    result.err().map(|err| err.code())
}

pub async fn put_if_absent_stores_only_once(factory: &impl Factory) {
    let coord = factory.isolated().await;
    assert!(ok(coord.put_if_absent("nonce", b"first", MINUTE).await));
    assert!(!ok(coord.put_if_absent("nonce", b"second", MINUTE).await));
    assert_eq!(ok(coord.get("nonce").await), Some(b"first".to_vec()));
}

pub async fn put_overwrites_value_and_ttl(factory: &impl Factory) {
    let coord = factory.isolated().await;
    ok(coord.put("key", b"one", MINUTE).await);
    ok(coord.put("key", &[0, 255, 7], MINUTE).await);
    assert_eq!(ok(coord.get("key").await), Some(vec![0, 255, 7]));
    // The new TTL replaces the old one.
    ok(coord.put("key", b"short", Duration::from_millis(50)).await);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(ok(coord.get("key").await), None);
}

pub async fn values_expire_after_their_ttl(factory: &impl Factory) {
    let coord = factory.isolated().await;
    let ttl = Duration::from_millis(100);
    let stored_at = Instant::now();
    ok(coord.put("put", b"v", ttl).await);
    assert!(ok(coord.put_if_absent("once", b"v", ttl).await));
    let present = ok(coord.get("put").await);
    // Only meaningful if this machine did not stall past the TTL in between.
    if stored_at.elapsed() < ttl {
        assert_eq!(present, Some(b"v".to_vec()));
    }
    tokio::time::sleep(ttl * 2).await;
    assert_eq!(ok(coord.get("put").await), None);
    assert_eq!(ok(coord.take("put").await), None);
    assert!(!ok(coord.delete("once").await));
    // An expired key is absent: it can be stored again.
    assert!(ok(coord.put_if_absent("once", b"again", MINUTE).await));
}

pub async fn sub_millisecond_ttls_round_up(factory: &impl Factory) {
    let coord = factory.isolated().await;
    // One nanosecond is valid: it becomes one millisecond, not zero (which would be an error
    // in Redis) and not "forever".
    ok(coord.put("key", b"v", Duration::from_nanos(1)).await);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(ok(coord.get("key").await), None);
}

pub async fn take_has_a_single_winner(factory: &impl Factory) {
    let coord = factory.isolated().await;
    assert_eq!(ok(coord.take("nonce").await), None);
    ok(coord.put("nonce", b"burn me", MINUTE).await);
    let start = Arc::new(tokio::sync::Barrier::new(50));
    let takers: Vec<_> = (0..50)
        .map(|_| {
            let coord = Arc::clone(&coord);
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                coord.take("nonce").await
            })
        })
        .collect();
    let mut winners = 0;
    for taker in takers {
        match taker.await {
            Ok(Ok(Some(value))) => {
                assert_eq!(value, b"burn me");
                winners += 1;
            }
            Ok(Ok(None)) => {}
            Ok(Err(err)) => panic!("take failed: {}", err.chain()),
            Err(err) => panic!("taker panicked: {err}"),
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(ok(coord.get("nonce").await), None);
}

pub async fn delete_removes_and_says_whether_it_existed(factory: &impl Factory) {
    let coord = factory.isolated().await;
    assert!(!ok(coord.delete("key").await));
    ok(coord.put("key", b"v", MINUTE).await);
    assert!(ok(coord.delete("key").await));
    assert_eq!(ok(coord.get("key").await), None);
    assert!(!ok(coord.delete("key").await));
}

pub async fn rate_limit_allows_a_burst_then_denies_then_recovers(factory: &impl Factory) {
    let coord = factory.isolated().await;
    // One attempt every 500 ms (long enough that a stalled test machine does not refill the
    // bucket between two calls), a burst of 5.
    let interval = Duration::from_millis(500);
    let rate = Rate {
        limit: 5,
        window: interval * 5,
    };
    for expected_remaining in (0..5).rev() {
        let decision = ok(coord.rate_limit("login:1.2.3.4", rate).await);
        assert!(decision.allowed, "{decision:?}");
        assert_eq!(decision.remaining, expected_remaining);
        assert_eq!(decision.retry_after, Duration::ZERO);
    }
    let denied = ok(coord.rate_limit("login:1.2.3.4", rate).await);
    assert!(!denied.allowed);
    assert_eq!(denied.remaining, 0);
    // About one emission interval, less the time the attempts above took.
    assert!(
        denied.retry_after > Duration::ZERO && denied.retry_after <= interval,
        "{denied:?}"
    );
    // A denied attempt does not push the next slot further away.
    let again = ok(coord.rate_limit("login:1.2.3.4", rate).await);
    assert!(!again.allowed && again.retry_after <= denied.retry_after);

    tokio::time::sleep(again.retry_after + Duration::from_millis(50)).await;
    let recovered = ok(coord.rate_limit("login:1.2.3.4", rate).await);
    assert!(recovered.allowed, "{recovered:?}");
    assert_eq!(recovered.remaining, 0);
    // One emission interval freed one slot, not more.
    assert!(!ok(coord.rate_limit("login:1.2.3.4", rate).await).allowed);
}

pub async fn rate_limit_keys_are_independent(factory: &impl Factory) {
    let coord = factory.isolated().await;
    let rate = Rate {
        limit: 2,
        window: MINUTE,
    };
    for _ in 0..2 {
        assert!(ok(coord.rate_limit("a", rate).await).allowed);
    }
    assert!(!ok(coord.rate_limit("a", rate).await).allowed);
    let other = ok(coord.rate_limit("b", rate).await);
    assert!(other.allowed);
    assert_eq!(other.remaining, 1);
}

pub async fn rate_limit_take_grants_what_fits_and_shares_the_bucket(factory: &impl Factory) {
    let coord = factory.isolated().await;
    let rate = Rate {
        limit: 10,
        window: MINUTE,
    };
    let lease = ok(coord.rate_limit_take("lease", rate, 4).await);
    assert_eq!((lease.granted, lease.remaining), (4, 6), "{lease:?}");
    // Single attempts and leases draw on one bucket.
    assert!(ok(coord.rate_limit("lease", rate).await).allowed);
    let rest = ok(coord.rate_limit_take("lease", rate, 100).await);
    assert_eq!((rest.granted, rest.remaining), (5, 0), "{rest:?}");
    let none = ok(coord.rate_limit_take("lease", rate, 3).await);
    assert_eq!(none.granted, 0);
    // One attempt frees every 6 s: the wait is about that, never more.
    assert!(
        none.retry_after > Duration::ZERO && none.retry_after <= Duration::from_secs(6),
        "{none:?}"
    );
    assert!(!ok(coord.rate_limit("lease", rate).await).allowed);
    // Wanting nothing is wanting one.
    assert_eq!(ok(coord.rate_limit_take("other", rate, 0).await).granted, 1);
}

pub async fn rate_limits_and_values_do_not_collide(factory: &impl Factory) {
    let coord = factory.isolated().await;
    let rate = Rate {
        limit: 1,
        window: MINUTE,
    };
    ok(coord.put("shared", b"value", MINUTE).await);
    assert!(ok(coord.rate_limit("shared", rate).await).allowed);
    assert!(!ok(coord.rate_limit("shared", rate).await).allowed);
    assert_eq!(ok(coord.get("shared").await), Some(b"value".to_vec()));
    assert!(ok(coord.delete("shared").await));
    assert!(!ok(coord.rate_limit("shared", rate).await).allowed);
}

pub async fn publish_reaches_every_subscriber_in_order(factory: &impl Factory) {
    let (first, second) = factory.shared_pair().await;
    let mut on_first = ok(first.subscribe("tenant:invalidate").await);
    let mut on_second = ok(second.subscribe("tenant:invalidate").await);
    // Published right after subscribe returned: must not be missed.
    let messages: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i, 255 - i]).collect();
    for message in &messages {
        ok(first.publish("tenant:invalidate", message).await);
    }
    for stream in [&mut on_first, &mut on_second] {
        for message in &messages {
            assert_eq!(next(stream).await, Notification::Message(message.clone()));
        }
    }
    // The other instance publishes too.
    ok(second.publish("tenant:invalidate", b"from second").await);
    assert_eq!(
        next(&mut on_first).await,
        Notification::Message(b"from second".to_vec())
    );
}

pub async fn subscribers_see_only_their_channel(factory: &impl Factory) {
    let coord = factory.isolated().await;
    let mut on_a = ok(coord.subscribe("a").await);
    let mut on_b = ok(coord.subscribe("b").await);
    ok(coord.publish("a", b"for a").await);
    ok(coord.publish("b", b"for b").await);
    ok(coord.publish("a", b"end").await);
    ok(coord.publish("b", b"end").await);
    assert_eq!(
        next(&mut on_a).await,
        Notification::Message(b"for a".to_vec())
    );
    assert_eq!(
        next(&mut on_a).await,
        Notification::Message(b"end".to_vec())
    );
    assert_eq!(
        next(&mut on_b).await,
        Notification::Message(b"for b".to_vec())
    );
    assert_eq!(
        next(&mut on_b).await,
        Notification::Message(b"end".to_vec())
    );
}

pub async fn coordinators_are_isolated(factory: &impl Factory) {
    let one = factory.isolated().await;
    let two = factory.isolated().await;

    ok(one.put("key", b"one", MINUTE).await);
    assert_eq!(ok(two.get("key").await), None);
    assert!(ok(two.put_if_absent("key", b"two", MINUTE).await));
    assert_eq!(ok(one.take("key").await), Some(b"one".to_vec()));
    assert_eq!(ok(two.get("key").await), Some(b"two".to_vec()));

    let rate = Rate {
        limit: 1,
        window: MINUTE,
    };
    assert!(ok(one.rate_limit("key", rate).await).allowed);
    assert!(ok(two.rate_limit("key", rate).await).allowed);

    let mut on_two = ok(two.subscribe("channel").await);
    ok(one.publish("channel", b"from one").await);
    ok(two.publish("channel", b"from two").await);
    assert_eq!(
        next(&mut on_two).await,
        Notification::Message(b"from two".to_vec())
    );
}

pub async fn invalid_input_is_refused(factory: &impl Factory) {
    let coord = factory.isolated().await;
    let zero = Duration::ZERO;
    let invalid = Some(ErrorCode::InvalidInput);

    assert_eq!(error_code(coord.put("key", b"v", zero).await), invalid);
    assert_eq!(
        error_code(coord.put_if_absent("key", b"v", zero).await),
        invalid
    );
    assert_eq!(error_code(coord.put("", b"v", MINUTE).await), invalid);
    assert_eq!(
        error_code(coord.put_if_absent("", b"v", MINUTE).await),
        invalid
    );
    assert_eq!(error_code(coord.get("").await), invalid);
    assert_eq!(error_code(coord.take("").await), invalid);
    assert_eq!(error_code(coord.delete("").await), invalid);
    assert_eq!(error_code(coord.publish("", b"m").await), invalid);
    assert_eq!(error_code(coord.subscribe("").await), invalid);
    let long_key = "k".repeat(purser_coord::limits::MAX_KEY_BYTES + 1);
    assert_eq!(error_code(coord.get(&long_key).await), invalid);
    let huge = vec![0; purser_coord::limits::MAX_VALUE_BYTES + 1];
    assert_eq!(error_code(coord.put("key", &huge, MINUTE).await), invalid);
    assert_eq!(error_code(coord.publish("channel", &huge).await), invalid);

    let rate = Rate {
        limit: 1,
        window: MINUTE,
    };
    assert_eq!(error_code(coord.rate_limit("", rate).await), invalid);
    for bad in [
        Rate { limit: 0, ..rate },
        Rate {
            window: zero,
            ..rate
        },
        Rate {
            limit: u64::MAX,
            ..rate
        },
    ] {
        assert_eq!(
            error_code(coord.rate_limit("key", bad).await),
            invalid,
            "{bad:?}"
        );
    }
    // Nothing was stored by the refused calls.
    assert_eq!(ok(coord.get("key").await), None);
}

pub async fn ping_and_backend<F: Factory>(factory: &F) {
    let coord: Arc<dyn Coordination> = factory.isolated().await;
    ok(coord.ping().await);
    assert_eq!(coord.backend(), F::BACKEND);
}
