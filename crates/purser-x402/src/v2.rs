//! The protocol's v2 messages between client and resource server: [`PaymentRequired`] (the
//! 402 challenge), [`PaymentRequirements`] (one way to pay), [`PaymentPayload`] (the client's
//! signed answer) and [`ResourceInfo`].
//!
//! Field names are the wire's camelCase. Optional fields are omitted when `None` and read JSON
//! `null` as `None` (the SDK's zod schemas are `.nullish()`, and some senders write `null`).
//!
//! **Unknown fields.** Every type here is echoed or relayed: the client echoes `accepted` and
//! `extensions`, the resource server matches `accepted` against what it offered, a proxy
//! re-encodes the 402. So each keeps unknown top-level fields in `other` (a flattened map) and
//! writes them back, rather than dropping what a newer peer added. Strictness lives in types
//! (amounts, networks, versions, non-empty strings), not in refusing extra keys; the SDK adds
//! keys such as `serviceName` that older spec text does not know. A key in `other` that names
//! a declared field would be written twice; decoding never puts one there.

use purser_core::money::Amount;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::network::Network;
use crate::serde_util::{non_empty_string, positive_seconds};
use crate::version::V2;

/// A JSON object, as in `extra` and `payload`.
pub type JsonObject = Map<String, Value>;

/// `extensions`: extension name → arbitrary JSON (usually `{info, schema}`), kept verbatim so
/// the client can echo it and extensions this crate does not know survive.
pub type Extensions = Map<String, Value>;

/// What is being paid for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceInfo {
    #[serde(deserialize_with = "non_empty_string")]
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The SDK's express middleware sends `""` when the route declares none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Bazaar metadata (SDK only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Bazaar metadata (SDK only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// Bazaar metadata (SDK only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon_url: Option<String>,
    /// Fields this crate does not know, kept so an echoed resource is unchanged.
    #[serde(flatten)]
    pub other: JsonObject,
}

impl ResourceInfo {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            description: None,
            mime_type: None,
            service_name: None,
            tags: None,
            icon_url: None,
            other: JsonObject::new(),
        }
    }
}

/// One way to pay: `amount` atomic units of `asset` on `network` to `payTo`, under `scheme`.
///
/// `asset` and `payTo` are strings because their syntax belongs to the network (EVM hex,
/// Solana base58); [`crate::exact_evm::EvmAddress`] parses them for EVM.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequirements {
    #[serde(deserialize_with = "non_empty_string")]
    pub scheme: String,
    pub network: Network,
    /// Atomic units as a decimal string.
    pub amount: Amount,
    #[serde(deserialize_with = "non_empty_string")]
    pub asset: String,
    #[serde(deserialize_with = "non_empty_string")]
    pub pay_to: String,
    #[serde(deserialize_with = "positive_seconds")]
    pub max_timeout_seconds: u64,
    /// Scheme-specific data; for `exact` on EVM, the token's EIP-712 `name` and `version`, and
    /// optionally `assetTransferMethod`. The SDK always sends it; the spec makes it optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<JsonObject>,
    /// Fields this crate does not know; they take part in matching `accepted`.
    #[serde(flatten)]
    pub other: JsonObject,
}

/// The token's EIP-712 domain name and version, from `extra`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Eip712NameVersion<'a> {
    pub name: &'a str,
    pub version: &'a str,
}

impl PaymentRequirements {
    fn extra_str(&self, key: &str) -> Option<&str> {
        self.extra.as_ref()?.get(key)?.as_str()
    }

    /// `extra.name` and `extra.version` when both are strings; `None` is what the SDK reports
    /// as `invalid_exact_evm_missing_eip712_domain`.
    pub fn eip712_name_version(&self) -> Option<Eip712NameVersion<'_>> {
        Some(Eip712NameVersion {
            name: self.extra_str("name")?,
            version: self.extra_str("version")?,
        })
    }

    /// `extra.assetTransferMethod` (`eip3009` when absent, `permit2`, ...).
    pub fn asset_transfer_method(&self) -> Option<&str> {
        self.extra_str("assetTransferMethod")
    }
}

/// The 402 challenge: header `PAYMENT-REQUIRED`, base64 of this JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequired {
    #[serde(rename = "x402Version")]
    pub x402_version: V2,
    /// Why payment is (still) required: "Payment required", or a failed verification's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub resource: ResourceInfo,
    /// May be empty: a sign-in-only route offers no way to pay (the SDK's zod asks for at
    /// least one, but its client does not validate the header with zod).
    pub accepts: Vec<PaymentRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Extensions>,
    #[serde(flatten)]
    pub other: JsonObject,
}

/// The client's proof of payment: header `PAYMENT-SIGNATURE`, base64 of this JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentPayload {
    #[serde(rename = "x402Version")]
    pub x402_version: V2,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceInfo>,
    /// The requirements the client chose, echoed from the 402.
    pub accepted: PaymentRequirements,
    /// Scheme-specific proof; for `exact` on EVM see [`crate::exact_evm::ExactEvmPayload`].
    pub payload: JsonObject,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Extensions>,
    #[serde(flatten)]
    pub other: JsonObject,
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

    #[test]
    fn nulls_read_as_absent_and_are_omitted() {
        let v = json!({
            "x402Version": 2, "error": null,
            "resource": {"url": "https://x/y", "description": null, "mimeType": null, "tags": null},
            "accepts": [requirements()], "extensions": null
        });
        let pr: PaymentRequired = serde_json::from_value(v).unwrap();
        assert_eq!(pr.error, None);
        assert_eq!(pr.resource.description, None);
        let back = serde_json::to_value(&pr).unwrap();
        assert_eq!(
            back,
            json!({"x402Version": 2, "resource": {"url": "https://x/y"}, "accepts": [requirements()]})
        );
    }

    #[test]
    fn unknown_fields_round_trip_at_every_level() {
        let mut req = requirements();
        req["futureField"] = json!({"a": [1, 2]});
        let v = json!({
            "x402Version": 2,
            "resource": {"url": "https://x", "newMeta": true},
            "accepted": req, "payload": {"k": "v"}, "topLevelNew": 7
        });
        let p: PaymentPayload = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(p.other.get("topLevelNew"), Some(&json!(7)));
        assert_eq!(serde_json::to_value(&p).unwrap(), v);
    }

    #[test]
    fn requirements_are_checked_field_by_field() {
        let r: PaymentRequirements = serde_json::from_value(requirements()).unwrap();
        assert_eq!(
            r.eip712_name_version(),
            Some(Eip712NameVersion {
                name: "USDC",
                version: "2"
            })
        );
        assert_eq!(r.asset_transfer_method(), None);
        for (field, bad) in [
            ("amount", json!("1.5")),
            ("amount", json!(10000)),
            ("amount", json!("")),
            ("network", json!("base-sepolia")),
            ("scheme", json!("")),
            ("payTo", json!("")),
            ("maxTimeoutSeconds", json!(0)),
            ("maxTimeoutSeconds", json!(1.5)),
            ("maxTimeoutSeconds", json!("60")),
            ("extra", json!([])),
        ] {
            let mut v = requirements();
            v[field] = bad.clone();
            assert!(
                serde_json::from_value::<PaymentRequirements>(v).is_err(),
                "{field} = {bad}"
            );
        }
        let mut no_extra = requirements();
        no_extra.as_object_mut().unwrap().remove("extra");
        let r: PaymentRequirements = serde_json::from_value(no_extra).unwrap();
        assert_eq!(r.eip712_name_version(), None);
    }
}
