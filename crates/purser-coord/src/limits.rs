//! The limits every backend enforces on its input, and the checks that enforce them.
//!
//! Coordination holds short-lived, small state (nonces, rate limits, invalidation messages);
//! these bounds say so, and turn a caller's mistake into an `invalid_input` error instead of a
//! panic, an overflow or a Redis error.

use std::time::Duration;

use purser_domain::Error;
use purser_domain::coord::Rate;

/// The longest key or channel name, in bytes (before the backend's prefix is added).
pub const MAX_KEY_BYTES: usize = 1024;

/// The largest value or published message, in bytes.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;

/// The longest TTL, and the longest rate-limit window.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Checks a key (or, with `what = "channel"`, a channel name).
pub(crate) fn check_key(what: &'static str, key: &str) -> Result<(), Error> {
    if key.is_empty() {
        return Err(Error::invalid_input(format!("{what} must not be empty")));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::invalid_input(format!(
            "{what} is {} bytes, more than the limit of {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    Ok(())
}

/// Checks a stored value or a published message.
pub(crate) fn check_value(what: &'static str, value: &[u8]) -> Result<(), Error> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(Error::invalid_input(format!(
            "{what} is {} bytes, more than the limit of {MAX_VALUE_BYTES}",
            value.len()
        )));
    }
    Ok(())
}

/// A TTL in whole milliseconds, rounded up, at least 1.
pub(crate) fn ttl_millis(ttl: Duration) -> Result<u64, Error> {
    if ttl.is_zero() {
        return Err(Error::invalid_input("ttl must be greater than zero"));
    }
    if ttl > MAX_TTL {
        return Err(Error::invalid_input(format!(
            "ttl of {ttl:?} is longer than the limit of {MAX_TTL:?}"
        )));
    }
    // At most MAX_TTL (about 3.2e10 ms), so the conversion cannot fail; the fallback is never
    // taken but keeps this free of a panic path.
    let millis = u64::try_from(ttl.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
    Ok(millis.max(1))
}

/// The duration a backend actually applies for `ttl`: [`ttl_millis`] as a `Duration`.
pub(crate) fn ttl_rounded(ttl: Duration) -> Result<Duration, Error> {
    ttl_millis(ttl).map(Duration::from_millis)
}

/// Checks a rate; the GCRA parameters are derived by [`crate::gcra::GcraRate::new`].
pub(crate) fn check_rate(rate: Rate) -> Result<(), Error> {
    if rate.limit == 0 {
        return Err(Error::invalid_input("rate limit must be at least 1"));
    }
    if rate.window.is_zero() {
        return Err(Error::invalid_input(
            "rate window must be greater than zero",
        ));
    }
    if rate.window > MAX_TTL {
        return Err(Error::invalid_input(format!(
            "rate window of {:?} is longer than the limit of {MAX_TTL:?}",
            rate.window
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use purser_domain::ErrorCode;

    #[test]
    fn ttl_is_rounded_up_to_whole_milliseconds() {
        assert_eq!(ttl_millis(Duration::from_nanos(1)).ok(), Some(1));
        assert_eq!(ttl_millis(Duration::from_micros(1_001)).ok(), Some(2));
        assert_eq!(ttl_millis(Duration::from_millis(250)).ok(), Some(250));
        assert_eq!(ttl_millis(MAX_TTL).ok(), Some(365 * 24 * 60 * 60 * 1000));
    }

    #[test]
    fn zero_and_oversized_ttls_are_invalid_input() {
        for ttl in [
            Duration::ZERO,
            MAX_TTL + Duration::from_nanos(1),
            Duration::MAX,
        ] {
            let err = ttl_millis(ttl).err().map(|e| e.code());
            assert_eq!(err, Some(ErrorCode::InvalidInput), "{ttl:?}");
        }
    }

    #[test]
    fn keys_must_be_non_empty_and_bounded() {
        assert!(check_key("key", "a").is_ok());
        assert!(check_key("key", &"k".repeat(MAX_KEY_BYTES)).is_ok());
        for key in [String::new(), "k".repeat(MAX_KEY_BYTES + 1)] {
            let err = check_key("key", &key).err().map(|e| e.code());
            assert_eq!(err, Some(ErrorCode::InvalidInput));
        }
    }

    #[test]
    fn rates_must_be_possible() {
        let ok = Rate {
            limit: 10,
            window: Duration::from_secs(1),
        };
        assert!(check_rate(ok).is_ok());
        for rate in [
            Rate { limit: 0, ..ok },
            Rate {
                window: Duration::ZERO,
                ..ok
            },
            Rate {
                window: MAX_TTL * 2,
                ..ok
            },
        ] {
            let err = check_rate(rate).err().map(|e| e.code());
            assert_eq!(err, Some(ErrorCode::InvalidInput), "{rate:?}");
        }
    }
}
