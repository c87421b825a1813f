//! The `sign-in-with-x` extension (CAIP-122): what a 402 offers, and the `SIGN-IN-WITH-X` header
//! a client answers with, shaped as the SDK 2.27's `@x402/extensions` sends them.
//!
//! The offer sits in `PaymentRequired.extensions["sign-in-with-x"]`: `info` (the fields the
//! client copies into the message it signs: domain, URI, version, a single-use nonce, issue and
//! expiry times), `supportedChains`, and a JSON Schema of the payload. The header is base64 JSON
//! of those fields plus `address`, `chainId`, `type`, `signatureScheme?` and `signature`. The
//! signed text is an EIP-4361 message built from them; building and checking it is the
//! entitlement service's job.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::header::{self, SIGN_IN_WITH_X};
use crate::v2::Extensions;

/// The extension's key in `extensions`.
pub const EXTENSION: &str = "sign-in-with-x";

/// The message fields the server chooses and the client copies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SiwxInfo {
    /// The host (and port) the client is signing in to.
    pub domain: String,
    /// The resource's URI; its origin must be the request's.
    pub uri: String,
    /// EIP-4361 version, `"1"`.
    pub version: String,
    /// Single use; alphanumeric, at least 8 characters.
    pub nonce: String,
    /// RFC 3339.
    pub issued_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<String>>,
}

/// A chain the server accepts sign-ins from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SupportedChain {
    /// CAIP-2, such as `eip155:84532`.
    pub chain_id: String,
    /// `eip191` for EVM chains (`ed25519` for Solana, which Purser does not accept).
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_scheme: Option<String>,
}

/// The offer in a 402.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SiwxOffer {
    pub info: SiwxInfo,
    pub supported_chains: Vec<SupportedChain>,
    pub schema: Value,
}

impl SiwxOffer {
    /// `extensions` with this offer under [`EXTENSION`].
    pub fn insert_into(&self, extensions: &mut Extensions) {
        extensions.insert(
            EXTENSION.to_owned(),
            serde_json::to_value(self).expect("the offer serializes"),
        );
    }
}

/// The `SIGN-IN-WITH-X` header's payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SiwxPayload {
    pub domain: String,
    /// The signer: an EOA, or a contract wallet (ERC-1271, ERC-6492).
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<String>,
    pub uri: String,
    pub version: String,
    /// CAIP-2.
    pub chain_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub nonce: String,
    pub issued_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<String>>,
    /// `eip191`, `eip1271`, `eip6492` (`siws` for Solana): a hint; verification decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_scheme: Option<String>,
    /// Hex, `0x`-prefixed.
    pub signature: String,
}

/// Decodes a `SIGN-IN-WITH-X` header value; failures are `malformed_payment_header`.
pub fn decode(value: &str) -> Result<SiwxPayload, purser_core::Error> {
    header::decode_header(SIGN_IN_WITH_X, value, None)
}

/// Encodes a payload as a `SIGN-IN-WITH-X` header value.
pub fn encode(payload: &SiwxPayload) -> String {
    header::encode_json(payload)
}

/// The JSON Schema (2020-12) of the payload, as the SDK declares it.
pub fn payload_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "domain": { "type": "string" },
            "address": { "type": "string" },
            "statement": { "type": "string" },
            "uri": { "type": "string", "format": "uri" },
            "version": { "type": "string" },
            "chainId": { "type": "string" },
            "type": { "type": "string" },
            "nonce": { "type": "string" },
            "issuedAt": { "type": "string", "format": "date-time" },
            "expirationTime": { "type": "string", "format": "date-time" },
            "notBefore": { "type": "string", "format": "date-time" },
            "requestId": { "type": "string" },
            "resources": { "type": "array", "items": { "type": "string", "format": "uri" } },
            "signature": { "type": "string" }
        },
        "required": [
            "domain", "address", "uri", "version", "chainId", "type", "nonce", "issuedAt",
            "signature"
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header as `@x402/extensions` 2.27's `createSIWxPayload` + `encodeSIWxHeader` build it.
    fn sdk_payload() -> Value {
        json!({
            "domain": "127.0.0.1:8403",
            "address": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
            "statement": "Sign in to reuse what you bought",
            "uri": "http://127.0.0.1:8403/weather/lisbon",
            "version": "1",
            "chainId": "eip155:84532",
            "type": "eip191",
            "nonce": "a1b2c3d4e5f6a7b8",
            "issuedAt": "2026-11-30T12:00:00.000Z",
            "expirationTime": "2026-11-30T12:05:00.000Z",
            "resources": ["http://127.0.0.1:8403/weather/lisbon"],
            "signature": "0xabcdef"
        })
    }

    #[test]
    fn sdk_headers_decode_and_encode_back() {
        let value = header::encode_json(&sdk_payload());
        let payload = decode(&value).unwrap();
        assert_eq!(payload.kind, "eip191");
        assert_eq!(payload.chain_id, "eip155:84532");
        assert_eq!(
            payload.expiration_time.as_deref(),
            Some("2026-11-30T12:05:00.000Z")
        );
        assert_eq!(payload.not_before, None);
        let again: Value = serde_json::to_value(&payload).unwrap();
        assert_eq!(again, sdk_payload());
        assert_eq!(decode(&encode(&payload)).unwrap(), payload);
    }

    #[test]
    fn malformed_headers_are_refused_with_their_code() {
        for bad in [
            "not base64!".to_owned(),
            header::encode_json(&json!({ "domain": "x" })),
            header::encode_json(&json!([1, 2])),
        ] {
            let err = decode(&bad).unwrap_err();
            assert_eq!(
                err.code(),
                purser_core::ErrorCode::MalformedPaymentHeader,
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn offers_serialize_as_the_sdk_declares_them() {
        let offer = SiwxOffer {
            info: SiwxInfo {
                domain: "api.example.com".into(),
                uri: "https://api.example.com/report".into(),
                version: "1".into(),
                nonce: "n0nce12345".into(),
                issued_at: "2026-11-30T12:00:00Z".into(),
                expiration_time: None,
                not_before: None,
                statement: None,
                request_id: None,
                resources: None,
            },
            supported_chains: vec![SupportedChain {
                chain_id: "eip155:8453".into(),
                kind: "eip191".into(),
                signature_scheme: None,
            }],
            schema: payload_schema(),
        };
        let mut extensions = Extensions::new();
        offer.insert_into(&mut extensions);
        let value = &extensions[EXTENSION];
        assert_eq!(value["info"]["issuedAt"], "2026-11-30T12:00:00Z");
        assert_eq!(value["supportedChains"][0]["type"], "eip191");
        assert!(value["info"].get("expirationTime").is_none());
        assert_eq!(value["schema"]["required"][0], "domain");
    }
}
