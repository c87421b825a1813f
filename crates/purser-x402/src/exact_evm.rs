//! The `exact` scheme's EVM payload for EIP-3009 (`transferWithAuthorization`):
//! `{signature, authorization: {from, to, value, validAfter, validBefore, nonce}}`.
//!
//! Validation here is syntactic, with no chain: addresses are `0x` and 40 hex digits in any
//! case (EIP-55 checksums are not checked; the chain crate parses further), the nonce is `0x`
//! and 64 hex digits, the signature `0x` and a whole, non-zero number of bytes (65 for an EOA,
//! other lengths for ERC-1271 and ERC-6492). `value`, `validAfter` and `validBefore` are
//! decimal strings, or `0x` hex as the older specification text allows and the SDK's verifier
//! (`BigInt(...)`) accepts; anything else (signs, spaces, exponents) is refused. `value` must
//! fit a `u128` and the timestamps a `u64`: the signed numbers are used as they are, never
//! rounded or saturated, because the chain recomputes the EIP-712 hash from them.

use std::fmt;
use std::hash::{Hash, Hasher};

use purser_core::money::Amount;
use purser_core::{Error, ErrorCode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::error::snippet;
use crate::reason::Reason;
use crate::v1::PaymentPayloadV1;
use crate::v2::{JsonObject, PaymentPayload};

/// The 32-byte suffix that marks an ERC-6492 signature wrapper.
pub const ERC6492_MAGIC_SUFFIX: [u8; 32] = [
    0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92,
    0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92,
];

/// The length of an EOA's `r, s, v` signature.
pub const EOA_SIGNATURE_BYTES: usize = 65;

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn hex_nibble(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => unreachable!("validated as hex"),
    }
}

fn hex_to_bytes(hex: &str) -> Vec<u8> {
    hex.as_bytes()
        .chunks_exact(2)
        .map(|p| (hex_nibble(p[0]) << 4) | hex_nibble(p[1]))
        .collect()
}

/// `0x` followed by exactly `digits` hex digits.
fn fixed_hex(s: &str, digits: usize) -> Option<&str> {
    let body = s.strip_prefix("0x")?;
    (body.len() == digits && is_hex(body)).then_some(body)
}

macro_rules! hex_newtype {
    ($name:ident, $digits:literal, $bytes:literal, $what:literal) => {
        #[doc = concat!("A ", $what, ": `0x` and ", stringify!($digits), " hex digits in any case, kept as written. Equality ignores case.")]
        #[derive(Clone)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, String> {
                fixed_hex(s, $digits)
                    .map(|_| $name(s.to_owned()))
                    .ok_or_else(|| {
                        format!(
                            concat!("must be `0x` and ", stringify!($digits), " hex digits, not {}"),
                            snippet(s)
                        )
                    })
            }

            /// As written on the wire.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Lowercase `0x…`, one spelling per value.
            pub fn to_lowercase(&self) -> String {
                self.0.to_ascii_lowercase()
            }

            pub fn to_bytes(&self) -> [u8; $bytes] {
                hex_to_bytes(&self.0[2..])
                    .try_into()
                    .expect("validated length")
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.0.eq_ignore_ascii_case(&other.0)
            }
        }

        impl Eq for $name {}

        impl Hash for $name {
            fn hash<H: Hasher>(&self, state: &mut H) {
                for b in self.0.bytes() {
                    state.write_u8(b.to_ascii_lowercase());
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                $name::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

hex_newtype!(EvmAddress, 40, 20, "20-byte EVM address");
hex_newtype!(Bytes32, 64, 32, "32-byte value (an EIP-3009 nonce)");

/// A signature: `0x` and an even, non-zero number of hex digits, kept as written.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct HexSignature(String);

impl HexSignature {
    pub fn parse(s: &str) -> Result<Self, String> {
        let Some(body) = s.strip_prefix("0x") else {
            return Err(format!("must start with `0x`, not {}", snippet(s)));
        };
        if body.is_empty() || body.len() % 2 != 0 || !is_hex(body) {
            return Err(format!(
                "must be `0x` and a whole, non-zero number of hex bytes, not {}",
                snippet(s)
            ));
        }
        Ok(HexSignature(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn byte_len(&self) -> usize {
        (self.0.len() - 2) / 2
    }

    /// 65 bytes: an EOA's `r, s, v`, the only length `ecrecover` takes.
    pub fn is_eoa_length(&self) -> bool {
        self.byte_len() == EOA_SIGNATURE_BYTES
    }

    /// Whether the signature ends with the ERC-6492 magic suffix (a counterfactual wallet's
    /// `abi.encode(factory, calldata, innerSignature)` wrapper).
    pub fn is_erc6492_wrapped(&self) -> bool {
        let body = &self.0[2..];
        body.len() >= 128 && hex_to_bytes(&body[body.len() - 64..]) == ERC6492_MAGIC_SUFFIX
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        hex_to_bytes(&self.0[2..])
    }
}

impl fmt::Debug for HexSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HexSignature({})", self.0)
    }
}

impl Serialize for HexSignature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for HexSignature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        HexSignature::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The EIP-3009 `TransferWithAuthorization` message the payer signed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Eip3009Authorization {
    pub from: EvmAddress,
    pub to: EvmAddress,
    pub value: Amount,
    /// Unix seconds; the transfer is valid strictly after this.
    pub valid_after: u64,
    /// Unix seconds; the transfer is valid strictly before this.
    pub valid_before: u64,
    pub nonce: Bytes32,
}

/// The `exact` EVM payload for EIP-3009, parsed and validated.
///
/// Serializes back to the wire shape with decimal numbers; the original JSON stays in
/// [`PaymentPayload::payload`], so nothing is lost by parsing.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExactEvmPayload {
    pub signature: HexSignature,
    pub authorization: Eip3009Authorization,
}

/// Why an `exact` EVM payload is not valid: the field (a path under `payload`), what is wrong,
/// and the reason string a facilitator answers with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExactEvmPayloadError {
    field: &'static str,
    problem: String,
    reason: Reason,
}

impl ExactEvmPayloadError {
    fn new(field: &'static str, problem: impl Into<String>) -> Self {
        let reason = if field == "signature" {
            Reason::InvalidExactEvmFailedToParseSignature
        } else {
            Reason::InvalidPayload
        };
        Self {
            field,
            problem: problem.into(),
            reason,
        }
    }

    /// The offending field, as a path under `payload` (`authorization.value`).
    pub fn field(&self) -> &'static str {
        self.field
    }

    pub fn problem(&self) -> &str {
        &self.problem
    }

    /// What a facilitator puts in `invalidReason`: `invalid_payload`,
    /// `invalid_exact_evm_failed_to_parse_signature` for an unparseable signature, or
    /// `unsupported_payload_type` for a Permit2 payload.
    pub fn reason(&self) -> Reason {
        self.reason
    }
}

impl fmt::Display for ExactEvmPayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "payload.{} {}", self.field, self.problem)
    }
}

impl std::error::Error for ExactEvmPayloadError {}

impl From<ExactEvmPayloadError> for Error {
    fn from(e: ExactEvmPayloadError) -> Error {
        Error::new(ErrorCode::InvalidPaymentPayload, e.to_string())
    }
}

fn field_str<'a>(
    obj: &'a JsonObject,
    key: &'static str,
    path: &'static str,
) -> Result<&'a str, ExactEvmPayloadError> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ExactEvmPayloadError::new(path, "must be a string")),
        None => Err(ExactEvmPayloadError::new(path, "is missing")),
    }
}

/// A non-negative integer written in decimal, or in hex after `0x`.
fn parse_uint(s: &str) -> Result<u128, &'static str> {
    let (digits, radix, ok) = match s.strip_prefix("0x") {
        Some(hex) => (hex, 16, is_hex(hex)),
        None => (s, 10, s.bytes().all(|b| b.is_ascii_digit())),
    };
    if digits.is_empty() || !ok {
        return Err("must be a non-negative integer as a decimal string (or `0x` hex)");
    }
    u128::from_str_radix(digits, radix).map_err(|_| "is larger than 2^128-1")
}

impl ExactEvmPayload {
    /// Parses the `payload` object of an `exact` EVM payment.
    pub fn from_json(payload: &JsonObject) -> Result<Self, ExactEvmPayloadError> {
        if payload.contains_key("permit2Authorization") {
            return Err(ExactEvmPayloadError {
                field: "permit2Authorization",
                problem: "is a Permit2 payload; only EIP-3009 is supported".to_owned(),
                reason: Reason::UnsupportedPayloadType,
            });
        }
        let signature = HexSignature::parse(field_str(payload, "signature", "signature")?)
            .map_err(|p| ExactEvmPayloadError::new("signature", p))?;
        let auth = match payload.get("authorization") {
            Some(Value::Object(a)) => a,
            Some(_) => {
                return Err(ExactEvmPayloadError::new(
                    "authorization",
                    "must be an object",
                ));
            }
            None => return Err(ExactEvmPayloadError::new("authorization", "is missing")),
        };
        let address = |key, path| {
            EvmAddress::parse(field_str(auth, key, path)?)
                .map_err(|p| ExactEvmPayloadError::new(path, p))
        };
        let uint = |key, path| {
            parse_uint(field_str(auth, key, path)?).map_err(|p| ExactEvmPayloadError::new(path, p))
        };
        let seconds = |key, path| {
            let n = uint(key, path)?;
            u64::try_from(n).map_err(|_| ExactEvmPayloadError::new(path, "is larger than 2^64-1"))
        };
        let authorization = Eip3009Authorization {
            from: address("from", "authorization.from")?,
            to: address("to", "authorization.to")?,
            value: Amount::from_atomic(uint("value", "authorization.value")?),
            valid_after: seconds("validAfter", "authorization.validAfter")?,
            valid_before: seconds("validBefore", "authorization.validBefore")?,
            nonce: Bytes32::parse(field_str(auth, "nonce", "authorization.nonce")?)
                .map_err(|p| ExactEvmPayloadError::new("authorization.nonce", p))?,
        };
        Ok(ExactEvmPayload {
            signature,
            authorization,
        })
    }

    /// The wire shape, with numbers as decimal strings.
    pub fn to_json(&self) -> JsonObject {
        let a = &self.authorization;
        let json = serde_json::json!({
            "signature": self.signature,
            "authorization": {
                "from": a.from,
                "to": a.to,
                "value": a.value,
                "validAfter": a.valid_after.to_string(),
                "validBefore": a.valid_before.to_string(),
                "nonce": a.nonce,
            }
        });
        match json {
            Value::Object(map) => map,
            _ => unreachable!("built as an object"),
        }
    }
}

impl Serialize for ExactEvmPayload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ExactEvmPayload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = JsonObject::deserialize(deserializer)?;
        ExactEvmPayload::from_json(&map).map_err(serde::de::Error::custom)
    }
}

impl PaymentPayload {
    /// The `payload` as an `exact` EVM (EIP-3009) payload. Does not look at `accepted.scheme`;
    /// a facilitator checks the scheme first (`invalid_exact_evm_scheme`).
    pub fn exact_evm(&self) -> Result<ExactEvmPayload, ExactEvmPayloadError> {
        ExactEvmPayload::from_json(&self.payload)
    }
}

impl PaymentPayloadV1 {
    /// The `payload` as an `exact` EVM (EIP-3009) payload.
    pub fn exact_evm(&self) -> Result<ExactEvmPayload, ExactEvmPayloadError> {
        ExactEvmPayload::from_json(&self.payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> JsonObject {
        let v = json!({
            "signature": format!("0x{}", "ab".repeat(65)),
            "authorization": {
                "from": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                "to": "0x25859d548ff74327e6eb0a801057a8800182a508",
                "value": "10000",
                "validAfter": "0",
                "validBefore": "1795315668",
                "nonce": format!("0x{}", "cF".repeat(32)),
            }
        });
        v.as_object().unwrap().clone()
    }

    #[test]
    fn parses_the_sdk_shape() {
        let p = ExactEvmPayload::from_json(&sample()).unwrap();
        assert!(p.signature.is_eoa_length());
        assert!(!p.signature.is_erc6492_wrapped());
        assert_eq!(p.authorization.value, Amount::from_atomic(10_000));
        assert_eq!(p.authorization.valid_before, 1_795_315_668);
        assert_eq!(p.authorization.nonce.to_bytes(), [0xcf; 32]);
        assert_eq!(
            p.authorization.from,
            EvmAddress::parse("0x70997970c51812dc3a010c7d01b50e0d17dc79c8").unwrap()
        );
        assert_eq!(p.authorization.to.to_bytes()[0], 0x25);
        assert_eq!(p.to_json(), sample());
    }

    #[test]
    fn accepts_hex_numbers_and_long_signatures() {
        let mut v = sample();
        v["authorization"]["value"] = json!("0x2710");
        v["authorization"]["validBefore"] = json!("0xFFFFFFFFFFFFFFFF");
        let wrapped = format!("0x{}{}", "11".repeat(200), "6492".repeat(16));
        v["signature"] = json!(wrapped);
        let p = ExactEvmPayload::from_json(&v).unwrap();
        assert_eq!(p.authorization.value.atomic(), 10_000);
        assert_eq!(p.authorization.valid_before, u64::MAX);
        assert!(p.signature.is_erc6492_wrapped());
        assert_eq!(p.signature.byte_len(), 232);
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: &[(&str, &str, Value)] = &[
            ("signature", "signature", json!("ab")),
            ("signature", "signature", json!("0x")),
            ("signature", "signature", json!("0xabc")),
            ("signature", "signature", json!("0xzz")),
            ("signature", "signature", json!(12)),
            ("authorization.from", "from", json!("0x1234")),
            (
                "authorization.to",
                "to",
                json!(format!("0x{}", "g".repeat(40))),
            ),
            ("authorization.value", "value", json!("-1")),
            ("authorization.value", "value", json!(" 1")),
            ("authorization.value", "value", json!("1e6")),
            ("authorization.value", "value", json!(10000)),
            ("authorization.value", "value", json!("0x")),
            (
                "authorization.value",
                "value",
                json!("340282366920938463463374607431768211456"),
            ),
            ("authorization.validAfter", "validAfter", json!("")),
            (
                "authorization.validBefore",
                "validBefore",
                json!("18446744073709551616"),
            ),
            ("authorization.nonce", "nonce", json!("0x00")),
        ];
        for (path, key, bad) in cases {
            let mut v = sample();
            if *key == "signature" {
                v["signature"] = bad.clone();
            } else {
                v["authorization"][*key] = bad.clone();
            }
            let err = ExactEvmPayload::from_json(&v).unwrap_err();
            assert_eq!(err.field(), *path, "{bad}");
            let expected = if *key == "signature" {
                Reason::InvalidExactEvmFailedToParseSignature
            } else {
                Reason::InvalidPayload
            };
            assert_eq!(err.reason(), expected);
            assert_eq!(Error::from(err).code(), ErrorCode::InvalidPaymentPayload);
        }
        let mut v = sample();
        v.remove("authorization");
        assert_eq!(
            ExactEvmPayload::from_json(&v).unwrap_err().field(),
            "authorization"
        );
        let mut v = sample();
        v.insert("permit2Authorization".into(), json!({}));
        assert_eq!(
            ExactEvmPayload::from_json(&v).unwrap_err().reason(),
            Reason::UnsupportedPayloadType
        );
    }

    #[test]
    fn value_overflow_message_is_clear() {
        let mut v = sample();
        v["authorization"]["value"] = json!("9".repeat(60));
        let err = ExactEvmPayload::from_json(&v).unwrap_err();
        assert_eq!(
            err.to_string(),
            "payload.authorization.value is larger than 2^128-1"
        );
    }
}
