//! x402 v1, read so that v1 clients and resource servers keep working, and converted to v2 so
//! the rest of Purser handles one shape.
//!
//! v1 differs from v2 in where things live: the 402 is a JSON **body** (no header), the client
//! sends `X-PAYMENT` (and gets `X-PAYMENT-RESPONSE`), networks are names (`base-sepolia`), the
//! price is `maxAmountRequired`, each requirement carries its own resource `url`, `description`
//! and `mimeType`, and the payload names `scheme` and `network` itself instead of echoing
//! `accepted`. Optionality follows the SDK's zod schemas (`PaymentRequirementsV1Schema`):
//! `mimeType`, `outputSchema` and `extra` may be absent or `null`; `description` must be a
//! string but may be empty. Unknown fields are kept in `other`, as in [`crate::v2`].

use purser_core::Error;
use purser_core::money::Amount;
use serde::{Deserialize, Serialize};

use crate::network::Network;
use crate::serde_util::{non_empty_string, positive_seconds};
use crate::v2::{JsonObject, PaymentPayload, PaymentRequirements, ResourceInfo};
use crate::version::{V1, V2};

/// One way to pay, v1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequirementsV1 {
    #[serde(deserialize_with = "non_empty_string")]
    pub scheme: String,
    /// A v1 network name (`base-sepolia`); see [`Network::parse_v1_name`].
    #[serde(deserialize_with = "non_empty_string")]
    pub network: String,
    /// Atomic units as a decimal string; the v1 `exact` scheme requires exactly this much.
    pub max_amount_required: Amount,
    /// The resource's URL.
    #[serde(deserialize_with = "non_empty_string")]
    pub resource: String,
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<JsonObject>,
    #[serde(deserialize_with = "non_empty_string")]
    pub pay_to: String,
    #[serde(deserialize_with = "positive_seconds")]
    pub max_timeout_seconds: u64,
    #[serde(deserialize_with = "non_empty_string")]
    pub asset: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<JsonObject>,
    #[serde(flatten)]
    pub other: JsonObject,
}

/// The v1 402 body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequiredV1 {
    #[serde(rename = "x402Version")]
    pub x402_version: V1,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub accepts: Vec<PaymentRequirementsV1>,
    #[serde(flatten)]
    pub other: JsonObject,
}

/// The v1 proof of payment: header `X-PAYMENT`, base64 of this JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentPayloadV1 {
    #[serde(rename = "x402Version")]
    pub x402_version: V1,
    #[serde(deserialize_with = "non_empty_string")]
    pub scheme: String,
    /// A v1 network name.
    #[serde(deserialize_with = "non_empty_string")]
    pub network: String,
    pub payload: JsonObject,
    #[serde(flatten)]
    pub other: JsonObject,
}

impl PaymentRequirementsV1 {
    /// The v2 requirements: the network name becomes its CAIP-2 id (`invalid_network` when the
    /// name is unknown) and `maxAmountRequired` becomes `amount`. The resource fields move to
    /// [`Self::resource_info`]; `outputSchema` is dropped (v2 describes outputs in the `bazaar`
    /// extension); unknown fields carry over.
    pub fn to_v2(&self) -> Result<PaymentRequirements, Error> {
        Ok(PaymentRequirements {
            scheme: self.scheme.clone(),
            network: Network::parse_v1_name(&self.network)?,
            amount: self.max_amount_required,
            asset: self.asset.clone(),
            pay_to: self.pay_to.clone(),
            max_timeout_seconds: self.max_timeout_seconds,
            extra: self.extra.clone(),
            other: self.other.clone(),
        })
    }

    /// The v2 resource description built from the v1 inline fields. An empty description is
    /// kept as `""`, as the SDK does with `mimeType`.
    pub fn resource_info(&self) -> ResourceInfo {
        ResourceInfo {
            description: Some(self.description.clone()),
            mime_type: self.mime_type.clone(),
            ..ResourceInfo::new(self.resource.clone())
        }
    }
}

impl PaymentPayloadV1 {
    /// The v2 payload for these requirements. `accepted` is the requirements converted to v2,
    /// except that `scheme` and `network` are the payload's own, so a v1 payload for another
    /// scheme or network still fails verification with the mismatch it is. `resource` comes
    /// from the requirements; unknown fields carry over.
    pub fn to_v2(&self, requirements: &PaymentRequirementsV1) -> Result<PaymentPayload, Error> {
        let mut accepted = requirements.to_v2()?;
        accepted.scheme = self.scheme.clone();
        accepted.network = Network::parse_v1_name(&self.network)?;
        Ok(PaymentPayload {
            x402_version: V2,
            resource: Some(requirements.resource_info()),
            accepted,
            payload: self.payload.clone(),
            extensions: None,
            other: self.other.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use purser_core::ErrorCode;
    use serde_json::json;

    fn requirements() -> PaymentRequirementsV1 {
        serde_json::from_value(json!({
            "scheme": "exact", "network": "base-sepolia", "maxAmountRequired": "10000",
            "resource": "https://api.example.com/paid", "description": "",
            "payTo": "0x209693Bc6afc0C5328bA36FaF03C514EF312287C", "maxTimeoutSeconds": 60,
            "asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
            "outputSchema": null, "extra": {"name": "USDC", "version": "2"}
        }))
        .unwrap()
    }

    #[test]
    fn converts_requirements_and_payload() {
        let r = requirements();
        assert_eq!(r.output_schema, None);
        let v2 = r.to_v2().unwrap();
        assert_eq!(v2.network.as_str(), "eip155:84532");
        assert_eq!(v2.amount.atomic(), 10_000);
        assert_eq!(v2.extra, r.extra);
        let info = r.resource_info();
        assert_eq!(info.url, "https://api.example.com/paid");
        assert_eq!(info.description.as_deref(), Some(""));

        let p = PaymentPayloadV1 {
            x402_version: V1,
            scheme: "exact".into(),
            network: "base".into(),
            payload: JsonObject::new(),
            other: JsonObject::new(),
        };
        let p2 = p.to_v2(&r).unwrap();
        assert_eq!(p2.accepted.network.as_str(), "eip155:8453");
        assert_eq!(p2.accepted.amount, v2.amount);
        assert_eq!(p2.resource, Some(info));
    }

    #[test]
    fn unknown_v1_names_are_invalid_network() {
        let mut r = requirements();
        r.network = "eip155:84532".into();
        assert_eq!(r.to_v2().unwrap_err().code(), ErrorCode::InvalidNetwork);
    }

    #[test]
    fn mime_type_and_output_schema_are_optional() {
        let v = json!({
            "scheme": "exact", "network": "base", "maxAmountRequired": "1",
            "resource": "https://x", "description": "d", "payTo": "0xabc",
            "maxTimeoutSeconds": 5, "asset": "0xdef"
        });
        let r: PaymentRequirementsV1 = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(&r).unwrap(), v);
    }
}
