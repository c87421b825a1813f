//! The facilitator's HTTP API bodies: `POST /verify` and `POST /settle` take
//! `{x402Version, paymentPayload, paymentRequirements}` and answer [`VerifyResponse`] /
//! [`SettleResponse`] (with HTTP 200 even when invalid); `GET /supported` answers
//! [`SupportedResponse`].
//!
//! **Versions.** A request is v1 or v2 by `paymentPayload.x402Version`, as the checklist in the
//! research notes says; [`FacilitatorRequest`] dispatches on it. The top-level `x402Version` is
//! optional (older spec text omits it; the SDK always sends it); when present it must equal the
//! payload's, or the request is refused as `unsupported_x402_version`.
//!
//! **Unknown fields.** Responses keep unknown fields in `other`: a resource server relays a
//! settle response to its client as `PAYMENT-RESPONSE`, and what a newer facilitator added
//! should reach the client. Requests and `/supported` are consumed where they arrive and
//! never relayed, so their unknown fields are ignored (as the SDK's zod schemas strip them).
//!
//! **Reasons** are opaque strings on input ([`crate::reason::Reason::from_wire`] reads the
//! known ones); the constructors here take a [`Reason`] so Purser emits only SDK strings.

use std::collections::BTreeMap;

use purser_core::money::Amount;
use purser_core::{Error, ErrorCode};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::error::{UNSUPPORTED_VERSION, from_serde};
use crate::network::{Network, NetworkPattern};
use crate::reason::Reason;
use crate::v1::{PaymentPayloadV1, PaymentRequirementsV1};
use crate::v2::{Extensions, JsonObject, PaymentPayload, PaymentRequirements};
use crate::version::{V1, V2, X402Version};

/// `POST /verify` body, v2.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyRequest {
    #[serde(
        rename = "x402Version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub x402_version: Option<V2>,
    pub payment_payload: PaymentPayload,
    pub payment_requirements: PaymentRequirements,
}

/// `POST /settle` body, v2: the same shape as verify.
pub type SettleRequest = VerifyRequest;

/// `POST /verify` body, v1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyRequestV1 {
    #[serde(
        rename = "x402Version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub x402_version: Option<V1>,
    pub payment_payload: PaymentPayloadV1,
    pub payment_requirements: PaymentRequirementsV1,
}

/// `POST /settle` body, v1.
pub type SettleRequestV1 = VerifyRequestV1;

/// A verify or settle request of either version, told apart by `paymentPayload.x402Version`.
///
/// Deserializing reads the body once into a JSON value, looks at the version, then decodes the
/// matching shape; [`FacilitatorRequest::from_json`] does this and maps failures to stable
/// codes (`malformed_json`, `unsupported_x402_version`, `invalid_network`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
#[allow(clippy::large_enum_variant)] // both variants are large; one lives per HTTP request
pub enum FacilitatorRequest {
    V1(VerifyRequestV1),
    V2(VerifyRequest),
}

impl<'de> Deserialize<'de> for FacilitatorRequest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let Value::Object(body) = &value else {
            return Err(D::Error::custom("the request body must be a JSON object"));
        };
        let payload = match body.get("paymentPayload") {
            Some(Value::Object(p)) => p,
            Some(_) => return Err(D::Error::custom("paymentPayload must be a JSON object")),
            None => return Err(D::Error::missing_field("paymentPayload")),
        };
        let version = match payload.get("x402Version") {
            None => return Err(D::Error::custom("paymentPayload.x402Version is missing")),
            Some(v) => X402Version::deserialize(v).map_err(|e| {
                let msg = e.to_string();
                if msg.starts_with(UNSUPPORTED_VERSION) {
                    D::Error::custom(msg)
                } else {
                    D::Error::custom("paymentPayload.x402Version must be a positive integer")
                }
            })?,
        };
        let decoded = match version {
            X402Version::V1 => VerifyRequestV1::deserialize(value).map(FacilitatorRequest::V1),
            X402Version::V2 => VerifyRequest::deserialize(value).map(FacilitatorRequest::V2),
        };
        decoded.map_err(|e| D::Error::custom(e.to_string()))
    }
}

impl FacilitatorRequest {
    /// Decodes a `/verify` or `/settle` body; errors carry stable codes and never echo more
    /// than a short prefix of the input.
    pub fn from_json(body: &[u8]) -> Result<Self, Error> {
        serde_json::from_slice(body)
            .map_err(|e| from_serde(ErrorCode::MalformedJson, "invalid request body", &e))
    }

    pub fn version(&self) -> X402Version {
        match self {
            FacilitatorRequest::V1(_) => X402Version::V1,
            FacilitatorRequest::V2(_) => X402Version::V2,
        }
    }

    /// The payload and requirements in v2 shape (v1 converted; see
    /// [`PaymentPayloadV1::to_v2`]). A v1 network name that has no CAIP-2 id is `invalid_network`.
    pub fn to_v2(&self) -> Result<(PaymentPayload, PaymentRequirements), Error> {
        match self {
            FacilitatorRequest::V2(r) => {
                Ok((r.payment_payload.clone(), r.payment_requirements.clone()))
            }
            FacilitatorRequest::V1(r) => Ok((
                r.payment_payload.to_v2(&r.payment_requirements)?,
                r.payment_requirements.to_v2()?,
            )),
        }
    }

    /// The network as the client spelled it in its payload (a v1 name or a CAIP-2 id); the SDK
    /// facilitators answer with this in `SettleResponse.network`.
    pub fn payload_network(&self) -> &str {
        match self {
            FacilitatorRequest::V1(r) => &r.payment_payload.network,
            FacilitatorRequest::V2(r) => r.payment_payload.accepted.network.as_str(),
        }
    }

    /// The scheme the client's payload names.
    pub fn payload_scheme(&self) -> &str {
        match self {
            FacilitatorRequest::V1(r) => &r.payment_payload.scheme,
            FacilitatorRequest::V2(r) => &r.payment_payload.accepted.scheme,
        }
    }
}

/// The answer to `POST /verify`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyResponse {
    pub is_valid: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid_message: Option<String>,
    /// The paying address, when it could be determined (also on failures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Extensions>,
    /// Scheme-specific data (SDK only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<JsonObject>,
    #[serde(flatten)]
    pub other: JsonObject,
}

impl VerifyResponse {
    pub fn valid(payer: impl Into<String>) -> Self {
        Self {
            is_valid: true,
            invalid_reason: None,
            invalid_message: None,
            payer: Some(payer.into()),
            extensions: None,
            extra: None,
            other: JsonObject::new(),
        }
    }

    pub fn invalid(reason: Reason, payer: Option<String>) -> Self {
        Self {
            is_valid: false,
            invalid_reason: Some(reason.as_str().to_owned()),
            payer,
            ..Self::valid("")
        }
    }

    /// Adds a human-readable `invalidMessage`.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.invalid_message = Some(message.into());
        self
    }

    /// The reason, if it is one this crate knows.
    pub fn reason(&self) -> Option<Reason> {
        self.invalid_reason.as_deref().and_then(Reason::from_wire)
    }
}

/// The answer to `POST /settle`, and the JSON in `PAYMENT-RESPONSE` / `X-PAYMENT-RESPONSE`.
///
/// `transaction` and `network` are always present (the SDK's schema requires both, and a 200
/// without them is a 502 at an SDK resource server): `transaction` is `""` when nothing was
/// broadcast, and holds the hash on `settlement_pending` and on a reverted transaction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettleResponse {
    pub success: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<String>,
    pub transaction: String,
    /// The network as the request named it: a CAIP-2 id, or a v1 name for v1 requests.
    pub network: String,
    /// The amount actually settled, for schemes (`upto`) where it may differ from the amount
    /// authorized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Amount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Extensions>,
    /// Scheme-specific data (SDK only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<JsonObject>,
    #[serde(flatten)]
    pub other: JsonObject,
}

impl SettleResponse {
    /// A settled payment.
    pub fn settled(
        transaction: impl Into<String>,
        network: impl Into<String>,
        payer: impl Into<String>,
    ) -> Self {
        Self {
            success: true,
            error_reason: None,
            error_message: None,
            payer: Some(payer.into()),
            transaction: transaction.into(),
            network: network.into(),
            amount: None,
            extensions: None,
            extra: None,
            other: JsonObject::new(),
        }
    }

    /// A failure before anything was broadcast: `transaction` is `""`.
    pub fn failed(reason: Reason, network: impl Into<String>, payer: Option<String>) -> Self {
        Self {
            success: false,
            error_reason: Some(reason.as_str().to_owned()),
            payer,
            ..Self::settled("", network, "")
        }
    }

    /// A failure after broadcast (a revert, a missing transfer log): keeps the hash.
    pub fn failed_after_broadcast(
        reason: Reason,
        transaction: impl Into<String>,
        network: impl Into<String>,
        payer: Option<String>,
    ) -> Self {
        Self {
            transaction: transaction.into(),
            ..Self::failed(reason, network, payer)
        }
    }

    /// Broadcast, receipt not yet seen: `settlement_pending` with the hash, not terminal.
    pub fn pending(
        transaction: impl Into<String>,
        network: impl Into<String>,
        payer: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::failed_after_broadcast(Reason::SettlementPending, transaction, network, payer)
            .with_message(message)
    }

    /// Adds a human-readable `errorMessage`.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.error_message = Some(message.into());
        self
    }

    /// The reason, if it is one this crate knows.
    pub fn reason(&self) -> Option<Reason> {
        self.error_reason.as_deref().and_then(Reason::from_wire)
    }

    /// Whether this is `settlement_pending` with a transaction to wait for: the condition on
    /// which the SDK's resource server retries settle once with the same payload.
    pub fn is_pending(&self) -> bool {
        !self.success
            && self.error_reason.as_deref() == Some(Reason::SettlementPending.as_str())
            && !self.transaction.is_empty()
    }
}

/// One `(x402Version, scheme, network)` a facilitator serves.
///
/// `x402Version` is a plain number and `network` a plain string (a v1 name for v1 kinds), as
/// the SDK's schema has them, so a list from a facilitator that serves more than Purser knows
/// still decodes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SupportedKind {
    #[serde(rename = "x402Version")]
    pub x402_version: u32,
    pub scheme: String,
    pub network: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<JsonObject>,
}

impl SupportedKind {
    pub fn new(
        version: X402Version,
        scheme: impl Into<String>,
        network: impl Into<String>,
    ) -> Self {
        Self {
            x402_version: u32::from(version.as_u8()),
            scheme: scheme.into(),
            network: network.into(),
            extra: None,
        }
    }
}

/// The answer to `GET /supported`.
///
/// `extensions` and `signers` default to empty when absent (as the SDK client does). Signer
/// lists are arrays of strings by type: a `null` entry fails the SDK client's schema.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SupportedResponse {
    pub kinds: Vec<SupportedKind>,
    #[serde(default)]
    pub extensions: Vec<String>,
    /// Network pattern (`eip155:*`) → signer addresses.
    #[serde(default)]
    pub signers: BTreeMap<String, Vec<String>>,
}

impl SupportedResponse {
    /// The signer addresses whose pattern matches `network`; keys that are not valid patterns
    /// are skipped.
    pub fn signers_for<'a>(&'a self, network: &'a Network) -> impl Iterator<Item = &'a str> + 'a {
        self.signers
            .iter()
            .filter(move |(pattern, _)| {
                NetworkPattern::parse(pattern).is_ok_and(|p| p.matches(network))
            })
            .flat_map(|(_, addresses)| addresses.iter().map(String::as_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn requirements() -> Value {
        json!({
            "scheme": "exact", "network": "eip155:84532", "amount": "10000",
            "asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
            "payTo": "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
            "maxTimeoutSeconds": 60, "extra": {"name": "USDC", "version": "2"}
        })
    }

    fn v2_body() -> Value {
        json!({
            "x402Version": 2,
            "paymentPayload": {"x402Version": 2, "accepted": requirements(), "payload": {}},
            "paymentRequirements": requirements()
        })
    }

    fn code_of(body: &Value) -> ErrorCode {
        FacilitatorRequest::from_json(body.to_string().as_bytes())
            .unwrap_err()
            .code()
    }

    #[test]
    fn dispatches_on_the_payload_version() {
        let req = FacilitatorRequest::from_json(v2_body().to_string().as_bytes()).unwrap();
        assert_eq!(req.version(), X402Version::V2);
        assert_eq!(req.payload_network(), "eip155:84532");
        assert_eq!(req.payload_scheme(), "exact");
        assert_eq!(serde_json::to_value(&req).unwrap(), v2_body());

        let mut no_top = v2_body();
        no_top.as_object_mut().unwrap().remove("x402Version");
        assert!(FacilitatorRequest::from_json(no_top.to_string().as_bytes()).is_ok());
    }

    #[test]
    fn bad_requests_get_stable_codes() {
        let mut v = v2_body();
        v["paymentPayload"]["x402Version"] = json!(3);
        assert_eq!(code_of(&v), ErrorCode::UnsupportedX402Version);
        let mut v = v2_body();
        v["x402Version"] = json!(1);
        assert_eq!(code_of(&v), ErrorCode::UnsupportedX402Version);
        let mut v = v2_body();
        v["paymentRequirements"]["network"] = json!("base");
        assert_eq!(code_of(&v), ErrorCode::InvalidNetwork);
        let mut v = v2_body();
        v["paymentPayload"]["x402Version"] = json!("2");
        assert_eq!(code_of(&v), ErrorCode::MalformedJson);
        let mut v = v2_body();
        v["paymentPayload"]
            .as_object_mut()
            .unwrap()
            .remove("x402Version");
        assert_eq!(code_of(&v), ErrorCode::MalformedJson);
        let mut v = v2_body();
        v.as_object_mut().unwrap().remove("paymentRequirements");
        assert_eq!(code_of(&v), ErrorCode::MalformedJson);
        assert_eq!(code_of(&json!([1])), ErrorCode::MalformedJson);
        assert_eq!(
            FacilitatorRequest::from_json(b"{not json")
                .unwrap_err()
                .code(),
            ErrorCode::MalformedJson
        );
    }

    #[test]
    fn responses_have_the_sdk_shape() {
        let ok = VerifyResponse::valid("0xabc");
        assert_eq!(
            serde_json::to_value(&ok).unwrap(),
            json!({"isValid": true, "payer": "0xabc"})
        );
        let bad = VerifyResponse::invalid(Reason::InvalidExactEvmSignature, None).with_message("m");
        assert_eq!(
            serde_json::to_value(&bad).unwrap(),
            json!({"isValid": false, "invalidReason": "invalid_exact_evm_signature", "invalidMessage": "m"})
        );
        assert_eq!(bad.reason(), Some(Reason::InvalidExactEvmSignature));

        let failed = SettleResponse::failed(
            Reason::InvalidExactEvmRecipientMismatch,
            "eip155:84532",
            Some("0xp".into()),
        );
        assert_eq!(
            serde_json::to_value(&failed).unwrap(),
            json!({"success": false, "errorReason": "invalid_exact_evm_recipient_mismatch",
                   "payer": "0xp", "transaction": "", "network": "eip155:84532"})
        );
        assert!(!failed.is_pending());
        let pending = SettleResponse::pending("0xhash", "base", None, "timed out");
        assert!(pending.is_pending());
        assert_eq!(pending.reason(), Some(Reason::SettlementPending));
    }

    #[test]
    fn settle_responses_need_transaction_and_network_but_take_nulls() {
        let v = json!({"success": false, "errorReason": null, "transaction": "", "network": "x",
                       "amount": null, "payer": null});
        let r: SettleResponse = serde_json::from_value(v).unwrap();
        assert_eq!(r.error_reason, None);
        for missing in ["transaction", "network", "success"] {
            let mut v = json!({"success": true, "transaction": "0x1", "network": "x"});
            v.as_object_mut().unwrap().remove(missing);
            assert!(
                serde_json::from_value::<SettleResponse>(v).is_err(),
                "{missing}"
            );
        }
    }

    #[test]
    fn supported_defaults_and_signer_lookup() {
        let s: SupportedResponse = serde_json::from_value(json!({"kinds": []})).unwrap();
        assert!(s.extensions.is_empty() && s.signers.is_empty());
        let bad = json!({"kinds": [], "signers": {"eip155:*": [null]}});
        assert!(serde_json::from_value::<SupportedResponse>(bad).is_err());

        let mut s = SupportedResponse::default();
        s.kinds
            .push(SupportedKind::new(X402Version::V2, "exact", "eip155:84532"));
        s.signers.insert("eip155:*".into(), vec!["0xf39F".into()]);
        s.signers.insert("solana:*".into(), vec!["So1".into()]);
        let base = Network::parse("eip155:8453").unwrap();
        assert_eq!(s.signers_for(&base).collect::<Vec<_>>(), ["0xf39F"]);
        assert_eq!(
            serde_json::to_value(&s).unwrap()["kinds"][0],
            json!({"x402Version": 2, "scheme": "exact", "network": "eip155:84532"})
        );
    }
}
