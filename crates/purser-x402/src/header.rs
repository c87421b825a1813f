//! x402's HTTP headers: names, and base64-JSON encoding and decoding of their values.
//!
//! Header values are plain strings in and out; this crate knows no HTTP framework.
//!
//! **Encoding** is what the SDK writes: UTF-8 JSON, standard base64 alphabet, padded.
//!
//! **Decoding** accepts what the SDK's decoder accepts and nothing it refuses: the standard
//! alphabet (`[A-Za-z0-9+/]`), padding optional (the SDK checks `^[A-Za-z0-9+/]*={0,2}$` and
//! then calls `atob`, which forgives missing padding) but, when present, complete; non-zero
//! trailing bits are ignored as `atob` ignores them. Whitespace, the URL-safe alphabet,
//! misplaced `=` and truncated quanta are refused. The bytes must be UTF-8 (the SDK would
//! substitute U+FFFD; no conforming encoder produces invalid UTF-8) and a JSON **object**.
//!
//! **Limits.** A value whose decoded size could exceed [`MAX_DECODED_HEADER_BYTES`] (64 KiB) is
//! refused before decoding, so hostile input cannot make us allocate more than that; JSON
//! nesting is bounded by serde_json's recursion limit (128).
//!
//! **Errors** are `malformed_payment_header` with a message naming the header and what is
//! wrong (empty, too large, not base64, not UTF-8 JSON, not an object, wrong shape);
//! `unsupported_x402_version` when `x402Version` is a number the header does not carry; and
//! `invalid_network` for a network that does not parse. Messages quote at most a short prefix
//! of the input.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use purser_core::{Error, ErrorCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::from_serde;
use crate::facilitator::SettleResponse;
use crate::v1::PaymentPayloadV1;
use crate::v2::{JsonObject, PaymentPayload, PaymentRequired};
use crate::version::X402Version;

/// Server → client, v2: base64 JSON [`PaymentRequired`] on a 402.
pub const PAYMENT_REQUIRED: &str = "PAYMENT-REQUIRED";
/// Client → server, v2: base64 JSON [`PaymentPayload`].
pub const PAYMENT_SIGNATURE: &str = "PAYMENT-SIGNATURE";
/// Server → client, v2: base64 JSON [`SettleResponse`].
pub const PAYMENT_RESPONSE: &str = "PAYMENT-RESPONSE";
/// Client → server, v1: base64 JSON [`PaymentPayloadV1`].
pub const X_PAYMENT: &str = "X-PAYMENT";
/// Server → client, v1: base64 JSON [`SettleResponse`].
pub const X_PAYMENT_RESPONSE: &str = "X-PAYMENT-RESPONSE";
/// Facilitator → resource server: base64 JSON object, extension name → response
/// (`{"bazaar": {"status": "success"}}`).
pub const EXTENSION_RESPONSES: &str = "EXTENSION-RESPONSES";
/// Client → server: base64 JSON Sign-In-With-X payload.
pub const SIGN_IN_WITH_X: &str = "SIGN-IN-WITH-X";
/// The headers a browser client must be allowed to read (`Access-Control-Expose-Headers`).
pub const EXPOSE_HEADERS: &str = "PAYMENT-REQUIRED, PAYMENT-RESPONSE, X-PAYMENT-RESPONSE";

/// The same names in lowercase. Header names are case-insensitive, HTTP/2 and hyper send them
/// lowercase, and `http::HeaderName::from_static` accepts only lowercase (it panics otherwise).
pub mod lowercase {
    pub const PAYMENT_REQUIRED: &str = "payment-required";
    pub const PAYMENT_SIGNATURE: &str = "payment-signature";
    pub const PAYMENT_RESPONSE: &str = "payment-response";
    pub const X_PAYMENT: &str = "x-payment";
    pub const X_PAYMENT_RESPONSE: &str = "x-payment-response";
    pub const EXTENSION_RESPONSES: &str = "extension-responses";
    pub const SIGN_IN_WITH_X: &str = "sign-in-with-x";
    /// Purser's own: the session token a signed-in wallet comes back with, instead of signing
    /// in again (issued after a Sign-In-With-X).
    pub const PURSER_SESSION: &str = "x-purser-session";
}

/// The most bytes a header value may decode to.
pub const MAX_DECODED_HEADER_BYTES: usize = 64 * 1024;
/// The longest header value, in base64 characters, looked at: anything longer decodes to more
/// than [`MAX_DECODED_HEADER_BYTES`] (checked exactly after decoding).
pub const MAX_ENCODED_HEADER_CHARS: usize = MAX_DECODED_HEADER_BYTES.div_ceil(3) * 4;

const ENCODE: GeneralPurpose = base64::engine::general_purpose::STANDARD;
const DECODE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

fn malformed(header: &str, what: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorCode::MalformedPaymentHeader,
        format!("{header} header {what}"),
    )
}

/// Base64 (standard, padded) of `value`'s JSON.
pub fn encode_json<T: Serialize + ?Sized>(value: &T) -> String {
    let json = serde_json::to_vec(value).expect("x402 types serialize to JSON infallibly");
    ENCODE.encode(json)
}

/// Decodes a header value to its JSON object, with the size limit and alphabet rules above.
pub fn decode_json_object(header: &str, value: &str) -> Result<JsonObject, Error> {
    if value.is_empty() {
        return Err(malformed(header, "is empty"));
    }
    if value.len() > MAX_ENCODED_HEADER_CHARS {
        return Err(malformed(
            header,
            format_args!(
                "is longer than {MAX_ENCODED_HEADER_CHARS} characters ({MAX_DECODED_HEADER_BYTES} bytes decoded)"
            ),
        ));
    }
    // `atob` only strips padding from a whole number of quanta: `abc=` yes, `ab=` no.
    if value.contains('=') && !value.len().is_multiple_of(4) {
        return Err(malformed(header, "is not base64: incomplete padding"));
    }
    let bytes = DECODE.decode(value).map_err(|e| {
        malformed(
            header,
            format_args!("is not base64 (standard alphabet): {e}"),
        )
    })?;
    if bytes.len() > MAX_DECODED_HEADER_BYTES {
        return Err(malformed(
            header,
            format_args!("decodes to more than {MAX_DECODED_HEADER_BYTES} bytes"),
        ));
    }
    let json: Value = serde_json::from_slice(&bytes).map_err(|e| {
        malformed(
            header,
            format_args!(
                "is not base64 of UTF-8 JSON: {}",
                crate::error::caller_safe(&e.to_string())
            ),
        )
    })?;
    match json {
        Value::Object(map) => Ok(map),
        _ => Err(malformed(header, "is not base64 of a JSON object")),
    }
}

/// Checks `x402Version` before the shape, so a message of another version is reported as
/// `unsupported_x402_version` rather than as a shape error.
fn check_version(header: &str, object: &JsonObject, expected: X402Version) -> Result<(), Error> {
    let Some(v) = object.get("x402Version") else {
        return Err(malformed(header, "has no x402Version"));
    };
    let Some(n) = v.as_u64() else {
        return Err(malformed(
            header,
            "has an x402Version that is not a positive integer",
        ));
    };
    if n != u64::from(expected.as_u8()) {
        return Err(Error::new(
            ErrorCode::UnsupportedX402Version,
            format!("{header} header carries x402Version {n}; it carries version {expected}"),
        ));
    }
    Ok(())
}

/// Decodes a header value into `T`, checking `x402Version` first when `version` is given.
pub fn decode_header<T: DeserializeOwned>(
    header: &str,
    value: &str,
    version: Option<X402Version>,
) -> Result<T, Error> {
    let object = decode_json_object(header, value)?;
    if let Some(expected) = version {
        check_version(header, &object, expected)?;
    }
    serde_json::from_value(Value::Object(object)).map_err(|e| {
        from_serde(
            ErrorCode::MalformedPaymentHeader,
            &format!("{header} header has the wrong shape"),
            &e,
        )
    })
}

/// `PAYMENT-REQUIRED` value for a 402.
pub fn encode_payment_required(value: &PaymentRequired) -> String {
    encode_json(value)
}

/// Reads a `PAYMENT-REQUIRED` value (v2 only; v1 sends the 402 as a JSON body).
pub fn decode_payment_required(value: &str) -> Result<PaymentRequired, Error> {
    decode_header(PAYMENT_REQUIRED, value, Some(X402Version::V2))
}

/// `PAYMENT-SIGNATURE` value.
pub fn encode_payment_signature(value: &PaymentPayload) -> String {
    encode_json(value)
}

/// Reads a `PAYMENT-SIGNATURE` value; it carries v2 payloads only (the SDK's v2 server reads
/// no other header, and its client sends v1 payloads as `X-PAYMENT`).
pub fn decode_payment_signature(value: &str) -> Result<PaymentPayload, Error> {
    decode_header(PAYMENT_SIGNATURE, value, Some(X402Version::V2))
}

/// `X-PAYMENT` value.
pub fn encode_x_payment(value: &PaymentPayloadV1) -> String {
    encode_json(value)
}

/// Reads an `X-PAYMENT` value; it carries v1 payloads only.
pub fn decode_x_payment(value: &str) -> Result<PaymentPayloadV1, Error> {
    decode_header(X_PAYMENT, value, Some(X402Version::V1))
}

/// `PAYMENT-RESPONSE` (or `X-PAYMENT-RESPONSE`) value.
pub fn encode_payment_response(value: &SettleResponse) -> String {
    encode_json(value)
}

/// Reads a `PAYMENT-RESPONSE` value.
pub fn decode_payment_response(value: &str) -> Result<SettleResponse, Error> {
    decode_header(PAYMENT_RESPONSE, value, None)
}

/// Reads an `X-PAYMENT-RESPONSE` value (v1; same JSON as `PAYMENT-RESPONSE`).
pub fn decode_x_payment_response(value: &str) -> Result<SettleResponse, Error> {
    decode_header(X_PAYMENT_RESPONSE, value, None)
}

/// `EXTENSION-RESPONSES` value.
pub fn encode_extension_responses(value: &JsonObject) -> String {
    encode_json(value)
}

/// Reads an `EXTENSION-RESPONSES` value: extension name → that extension's response.
pub fn decode_extension_responses(value: &str) -> Result<JsonObject, Error> {
    decode_json_object(EXTENSION_RESPONSES, value)
}

/// Reads a `SIGN-IN-WITH-X` value as a JSON object; its fields are the SIWX extension's to
/// check.
pub fn decode_sign_in_with_x(value: &str) -> Result<JsonObject, Error> {
    decode_json_object(SIGN_IN_WITH_X, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        ENCODE.encode(s)
    }

    fn code(r: Result<JsonObject, Error>) -> ErrorCode {
        r.unwrap_err().code()
    }

    #[test]
    fn padding_is_optional_but_never_partial() {
        let padded = b64(r#"{"a":1}"#);
        assert!(padded.ends_with("=="));
        let unpadded = padded.trim_end_matches('=');
        assert!(decode_json_object("H", &padded).is_ok());
        assert!(decode_json_object("H", unpadded).is_ok());
        let partial = format!("{unpadded}=");
        assert_eq!(
            code(decode_json_object("H", &partial)),
            ErrorCode::MalformedPaymentHeader
        );
        assert!(decode_json_object("H", &format!("{padded}=")).is_err());
        // Non-zero trailing bits, as atob tolerates: eyJhIjoxfR== decodes like eyJhIjoxfQ==.
        assert!(decode_json_object("H", "eyJhIjoxfR==").is_ok());
    }

    #[test]
    fn refuses_other_alphabets_and_whitespace() {
        let std = b64(r#"{"a":"??>>"}"#);
        assert!(std.contains('/') || std.contains('+'));
        let url_safe = std.replace('/', "_").replace('+', "-");
        for bad in [
            url_safe,
            format!(" {std}"),
            format!("{std}\n"),
            "e yJ9".into(),
        ] {
            let err = decode_json_object("PAYMENT-SIGNATURE", &bad).unwrap_err();
            assert_eq!(err.code(), ErrorCode::MalformedPaymentHeader);
            assert!(
                err.message()
                    .starts_with("PAYMENT-SIGNATURE header is not base64"),
                "{}",
                err.message()
            );
        }
    }

    #[test]
    fn size_is_limited_before_decoding() {
        let big = format!(r#"{{"a":"{}"}}"#, "x".repeat(MAX_DECODED_HEADER_BYTES));
        let err = decode_json_object("H", &b64(&big)).unwrap_err();
        assert!(err.message().contains("longer than"), "{}", err.message());
        let fits = format!(r#"{{"a":"{}"}}"#, "x".repeat(MAX_DECODED_HEADER_BYTES - 8));
        assert!(fits.len() <= MAX_DECODED_HEADER_BYTES);
        assert!(decode_json_object("H", &b64(&fits)).is_ok());
    }

    #[test]
    fn the_limit_is_exact() {
        // The longest value looked at, unpadded, decodes to two bytes over the limit; exactly
        // the limit is fine.
        let over = "A".repeat(MAX_ENCODED_HEADER_CHARS);
        let err = decode_json_object("H", &over).unwrap_err();
        assert!(
            err.message().contains("decodes to more than"),
            "{}",
            err.message()
        );
        let fits = format!("{{}}{}", " ".repeat(MAX_DECODED_HEADER_BYTES - 2));
        assert_eq!(fits.len(), MAX_DECODED_HEADER_BYTES);
        assert!(decode_json_object("H", &b64(&fits)).is_ok());
    }

    #[test]
    fn lowercase_names_match() {
        for (canonical, lower) in [
            (PAYMENT_REQUIRED, lowercase::PAYMENT_REQUIRED),
            (PAYMENT_SIGNATURE, lowercase::PAYMENT_SIGNATURE),
            (PAYMENT_RESPONSE, lowercase::PAYMENT_RESPONSE),
            (X_PAYMENT, lowercase::X_PAYMENT),
            (X_PAYMENT_RESPONSE, lowercase::X_PAYMENT_RESPONSE),
            (EXTENSION_RESPONSES, lowercase::EXTENSION_RESPONSES),
            (SIGN_IN_WITH_X, lowercase::SIGN_IN_WITH_X),
        ] {
            assert_eq!(canonical.to_ascii_lowercase(), lower);
        }
    }

    #[test]
    fn each_layer_reports_what_failed() {
        let msg = |v: &str| decode_json_object("H", v).unwrap_err().message().to_owned();
        assert_eq!(msg(""), "H header is empty");
        assert!(msg(&b64("not json")).contains("not base64 of UTF-8 JSON"));
        assert!(msg(&ENCODE.encode([0x22, 0xff, 0x22])).contains("not base64 of UTF-8 JSON"));
        assert_eq!(
            msg(&b64("[1,2]")),
            "H header is not base64 of a JSON object"
        );
    }
}
