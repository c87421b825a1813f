//! The x402 protocol on the wire: message types for v2 and v1, their header codecs, networks,
//! the `exact` EVM payload, the facilitator's reason strings and the `payment-identifier`
//! extension.
//!
//! This crate knows no storage, no chain and no HTTP framework: addresses and hashes are
//! checked as hex strings (the chain crate parses them further), and headers are plain string
//! values in and out. It follows the TypeScript SDK 2.27's observable behaviour where the SDK
//! and the specification differ (see `docs/research/x402-sdk-notes.md`); golden tests decode
//! JSON and headers captured from the SDK.
//!
//! - [`v2`]: [`PaymentRequired`], [`PaymentRequirements`], [`PaymentPayload`], [`ResourceInfo`].
//! - [`v1`]: the v1 shapes and their conversion to v2.
//! - [`facilitator`]: `/verify`, `/settle` and `/supported` bodies, and [`FacilitatorRequest`],
//!   which tells v1 from v2 by `paymentPayload.x402Version`.
//! - [`network`]: CAIP-2 [`Network`]s, v1 names, `eip155:*` patterns.
//! - [`exact_evm`]: [`ExactEvmPayload`] (EIP-3009) with typed validation.
//! - [`header`]: header names and base64-JSON encoding with a size limit and strict errors.
//! - [`reason`]: [`Reason`], every verify/settle reason Purser emits.
//! - [`payment_identifier`]: the idempotency extension.
//! - [`matching`]: does a payload's `accepted` match what the server offered?
//! - [`siwx`]: the `sign-in-with-x` offer and the `SIGN-IN-WITH-X` header.
//!
//! Errors are [`purser_core::Error`]s with codes from the domain table:
//! `malformed_payment_header`, `malformed_json`, `unsupported_x402_version`, `invalid_network`,
//! `invalid_payment_payload`, `invalid_payment_identifier`.

pub mod auth_capture;
mod error;
pub mod exact_evm;
pub mod facilitator;
pub mod header;
pub mod matching;
pub mod network;
pub mod payment_identifier;
pub mod reason;
mod serde_util;
pub mod siwx;
pub mod v1;
pub mod v2;
pub mod version;

pub use exact_evm::{
    Bytes32, Eip3009Authorization, EvmAddress, ExactEvmPayload, ExactEvmPayloadError, HexSignature,
};
pub use facilitator::{
    FacilitatorRequest, SettleRequest, SettleRequestV1, SettleResponse, SupportedKind,
    SupportedResponse, VerifyRequest, VerifyRequestV1, VerifyResponse,
};
pub use matching::{accepted_matches, find_accepted};
pub use network::{Network, NetworkKind, NetworkPattern};
pub use payment_identifier::{PaymentId, PaymentIdentifier};
pub use reason::Reason;
pub use v1::{PaymentPayloadV1, PaymentRequiredV1, PaymentRequirementsV1};
pub use v2::{
    Extensions, JsonObject, PaymentPayload, PaymentRequired, PaymentRequirements, ResourceInfo,
};
pub use version::{V1, V2, X402Version};

/// Decodes a JSON body (a v1 402, a facilitator response) into `T`; failures are
/// `malformed_json` (or `unsupported_x402_version` / `invalid_network` where those apply) and
/// quote at most a short prefix of the input.
pub fn decode_json_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
) -> Result<T, purser_core::Error> {
    serde_json::from_slice(body).map_err(|e| {
        error::from_serde(
            purser_core::ErrorCode::MalformedJson,
            "invalid JSON body",
            &e,
        )
    })
}
