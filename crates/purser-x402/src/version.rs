//! `x402Version`: the protocol version every message carries as a JSON number.
//!
//! Version-specific types hold a zero-sized marker ([`V1`], [`V2`]) that serializes as its number
//! and refuses any other, so a v2 type can never be built from, or written as, a v1 message.
//! Places that accept either carry an [`X402Version`].

use std::fmt;

use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::error::UNSUPPORTED_VERSION;

/// A protocol version this crate speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum X402Version {
    V1,
    V2,
}

impl X402Version {
    pub const fn as_u8(self) -> u8 {
        match self {
            X402Version::V1 => 1,
            X402Version::V2 => 2,
        }
    }

    /// The version numbered `n`, if this crate speaks it.
    pub const fn from_number(n: u64) -> Option<Self> {
        match n {
            1 => Some(X402Version::V1),
            2 => Some(X402Version::V2),
            _ => None,
        }
    }
}

impl fmt::Display for X402Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_u8())
    }
}

impl Serialize for X402Version {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(self.as_u8())
    }
}

impl<'de> Deserialize<'de> for X402Version {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let n = deserializer.deserialize_any(VersionNumber)?;
        X402Version::from_number(n).ok_or_else(|| {
            de::Error::custom(format_args!(
                "{UNSUPPORTED_VERSION} {n}: this endpoint speaks 1 and 2"
            ))
        })
    }
}

/// Reads `x402Version` as an unsigned integer; JSON has one number type, so `2.0` is refused
/// rather than guessed at.
struct VersionNumber;

impl Visitor<'_> for VersionNumber {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("x402Version as a positive integer")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
    }
}

macro_rules! version_marker {
    ($name:ident, $number:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
        pub struct $name;

        impl $name {
            pub const NUMBER: u8 = $number;
        }

        impl From<$name> for X402Version {
            fn from(_: $name) -> X402Version {
                X402Version::from_number($number).expect("a spoken version")
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_u8($number)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let n = deserializer.deserialize_any(VersionNumber)?;
                if n == $number {
                    Ok($name)
                } else {
                    Err(de::Error::custom(format_args!(
                        "{UNSUPPORTED_VERSION} {n} where {} is expected",
                        $number
                    )))
                }
            }
        }
    };
}

version_marker!(V1, 1, "The literal `1` in a v1 message's `x402Version`.");
version_marker!(V2, 2, "The literal `2` in a v2 message's `x402Version`.");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_accept_only_their_number() {
        assert_eq!(serde_json::to_string(&V2).unwrap(), "2");
        assert!(serde_json::from_str::<V2>("2").is_ok());
        for bad in ["1", "3", "2.0", "\"2\"", "-2", "null"] {
            assert!(serde_json::from_str::<V2>(bad).is_err(), "{bad}");
        }
        let err = serde_json::from_str::<V1>("2").unwrap_err().to_string();
        assert!(err.starts_with(UNSUPPORTED_VERSION), "{err}");
        assert_eq!(
            serde_json::from_str::<X402Version>("1").unwrap(),
            X402Version::V1
        );
        assert!(serde_json::from_str::<X402Version>("7").is_err());
        assert_eq!(X402Version::from(V2), X402Version::V2);
    }
}
