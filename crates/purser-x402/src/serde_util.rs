//! Field-level checks the SDK's zod schemas make (`NonEmptyString`, `z.number().positive()`),
//! applied while deserializing so a decoded value is always well-formed.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

/// A string that must not be empty (zod's `NonEmptyString`).
pub(crate) fn non_empty_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.is_empty() {
        return Err(D::Error::custom("a required string is empty"));
    }
    Ok(s)
}

/// A whole number of seconds greater than zero (`maxTimeoutSeconds`). The SDK accepts any
/// positive JSON number; a fractional timeout has no meaning on chain, so it is refused.
pub(crate) fn positive_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = u64::deserialize(d)?;
    if n == 0 {
        return Err(D::Error::custom(
            "maxTimeoutSeconds must be greater than zero",
        ));
    }
    Ok(n)
}
