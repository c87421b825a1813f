//! Property tests: every type survives JSON (and its header, where it has one) unchanged, and
//! no decoder panics or quotes unbounded input, whatever it is given.

use base64::Engine as _;
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use purser_core::money::Amount;
use purser_x402::exact_evm::{Bytes32, Eip3009Authorization, EvmAddress, HexSignature};
use purser_x402::header;
use purser_x402::network::{MAX_SAFE_INTEGER, V1_NETWORKS};
use purser_x402::{
    ExactEvmPayload, FacilitatorRequest, JsonObject, Network, NetworkPattern, PaymentId,
    PaymentIdentifier, PaymentPayload, PaymentPayloadV1, PaymentRequired, PaymentRequiredV1,
    PaymentRequirements, PaymentRequirementsV1, ResourceInfo, SettleResponse, SupportedKind,
    SupportedResponse, V1, V2, VerifyRequest, VerifyRequestV1, VerifyResponse, decode_json_body,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::bad_input::MAX_MESSAGE_CHARS;
use crate::fixture_json;

// ---- strategies ----

/// A non-empty string, as required fields need.
fn word() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 _.:/?=&-]{1,24}"
}

/// Any printable text, possibly empty, including non-ASCII and quotes.
fn text() -> impl Strategy<Value = String> {
    "\\PC{0,24}"
}

fn network() -> impl Strategy<Value = Network> {
    prop_oneof![
        (1..=MAX_SAFE_INTEGER).prop_map(|id| Network::evm(id).unwrap()),
        "[1-9A-HJ-NP-Za-km-z]{32}".prop_map(|r| Network::parse(&format!("solana:{r}")).unwrap()),
        "[a-z0-9-]{3,8}:[-_a-zA-Z0-9]{1,32}"
            .prop_filter_map("not canonical eip155", |s| { Network::parse(&s).ok() }),
    ]
}

fn v1_network_name() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(V1_NETWORKS).prop_map(|(n, _)| n.to_owned()),
        word(),
    ]
}

fn amount() -> impl Strategy<Value = Amount> {
    any::<u128>().prop_map(Amount::from_atomic)
}

/// JSON without floats (serde_json's default float parsing is not guaranteed to round-trip).
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map("\\PC{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn json_object() -> impl Strategy<Value = JsonObject> {
    btree_map("[a-zA-Z$]{1,8}", json_value(), 0..4).prop_map(|m| m.into_iter().collect())
}

/// Unknown fields; the `x-` prefix keeps them clear of declared field names.
fn other_fields() -> impl Strategy<Value = JsonObject> {
    btree_map("x-[a-zA-Z]{1,6}", json_value(), 0..3).prop_map(|m| m.into_iter().collect())
}

fn resource_info() -> impl Strategy<Value = ResourceInfo> {
    (
        word(),
        option::of(text()),
        option::of(text()),
        option::of(word()),
        option::of(vec(word(), 0..5)),
        option::of(word()),
        other_fields(),
    )
        .prop_map(
            |(url, description, mime_type, service_name, tags, icon_url, other)| ResourceInfo {
                url,
                description,
                mime_type,
                service_name,
                tags,
                icon_url,
                other,
            },
        )
}

fn requirements() -> impl Strategy<Value = PaymentRequirements> {
    (
        word(),
        network(),
        amount(),
        word(),
        word(),
        1..=u64::MAX,
        option::of(json_object()),
        other_fields(),
    )
        .prop_map(
            |(scheme, network, amount, asset, pay_to, max_timeout_seconds, extra, other)| {
                PaymentRequirements {
                    scheme,
                    network,
                    amount,
                    asset,
                    pay_to,
                    max_timeout_seconds,
                    extra,
                    other,
                }
            },
        )
}

fn payment_required() -> impl Strategy<Value = PaymentRequired> {
    (
        option::of(text()),
        resource_info(),
        vec(requirements(), 0..3),
        option::of(json_object()),
        other_fields(),
    )
        .prop_map(
            |(error, resource, accepts, extensions, other)| PaymentRequired {
                x402_version: V2,
                error,
                resource,
                accepts,
                extensions,
                other,
            },
        )
}

fn payment_payload() -> impl Strategy<Value = PaymentPayload> {
    (
        option::of(resource_info()),
        requirements(),
        json_object(),
        option::of(json_object()),
        other_fields(),
    )
        .prop_map(
            |(resource, accepted, payload, extensions, other)| PaymentPayload {
                x402_version: V2,
                resource,
                accepted,
                payload,
                extensions,
                other,
            },
        )
}

fn requirements_v1() -> impl Strategy<Value = PaymentRequirementsV1> {
    (
        (word(), v1_network_name(), amount(), word(), text()),
        (option::of(text()), option::of(json_object()), word()),
        (
            1..=u64::MAX,
            word(),
            option::of(json_object()),
            other_fields(),
        ),
    )
        .prop_map(
            |(
                (scheme, network, max_amount_required, resource, description),
                (mime_type, output_schema, pay_to),
                (max_timeout_seconds, asset, extra, other),
            )| PaymentRequirementsV1 {
                scheme,
                network,
                max_amount_required,
                resource,
                description,
                mime_type,
                output_schema,
                pay_to,
                max_timeout_seconds,
                asset,
                extra,
                other,
            },
        )
}

fn payment_required_v1() -> impl Strategy<Value = PaymentRequiredV1> {
    (
        option::of(text()),
        vec(requirements_v1(), 0..3),
        other_fields(),
    )
        .prop_map(|(error, accepts, other)| PaymentRequiredV1 {
            x402_version: V1,
            error,
            accepts,
            other,
        })
}

fn payment_payload_v1() -> impl Strategy<Value = PaymentPayloadV1> {
    (word(), v1_network_name(), json_object(), other_fields()).prop_map(
        |(scheme, network, payload, other)| PaymentPayloadV1 {
            x402_version: V1,
            scheme,
            network,
            payload,
            other,
        },
    )
}

fn verify_response() -> impl Strategy<Value = VerifyResponse> {
    (
        any::<bool>(),
        option::of(word()),
        option::of(text()),
        option::of(word()),
        option::of(json_object()),
        option::of(json_object()),
        other_fields(),
    )
        .prop_map(
            |(is_valid, invalid_reason, invalid_message, payer, extensions, extra, other)| {
                VerifyResponse {
                    is_valid,
                    invalid_reason,
                    invalid_message,
                    payer,
                    extensions,
                    extra,
                    other,
                }
            },
        )
}

fn settle_response() -> impl Strategy<Value = SettleResponse> {
    (
        (any::<bool>(), option::of(word()), option::of(text())),
        (option::of(word()), text(), word(), option::of(amount())),
        (
            option::of(json_object()),
            option::of(json_object()),
            other_fields(),
        ),
    )
        .prop_map(
            |(
                (success, error_reason, error_message),
                (payer, transaction, network, amount),
                (extensions, extra, other),
            )| SettleResponse {
                success,
                error_reason,
                error_message,
                payer,
                transaction,
                network,
                amount,
                extensions,
                extra,
                other,
            },
        )
}

fn supported_response() -> impl Strategy<Value = SupportedResponse> {
    let kind = (any::<u32>(), word(), word(), option::of(json_object())).prop_map(
        |(x402_version, scheme, network, extra)| SupportedKind {
            x402_version,
            scheme,
            network,
            extra,
        },
    );
    (
        vec(kind, 0..4),
        vec(word(), 0..3),
        btree_map(word(), vec(word(), 0..3), 0..3),
    )
        .prop_map(|(kinds, extensions, signers)| SupportedResponse {
            kinds,
            extensions,
            signers,
        })
}

fn exact_evm_payload() -> impl Strategy<Value = ExactEvmPayload> {
    let address = "0x[0-9a-fA-F]{40}".prop_map(|s| EvmAddress::parse(&s).unwrap());
    (
        "0x([0-9a-fA-F]{2}){1,120}".prop_map(|s| HexSignature::parse(&s).unwrap()),
        address.clone(),
        address,
        amount(),
        any::<u64>(),
        any::<u64>(),
        "0x[0-9a-fA-F]{64}".prop_map(|s| Bytes32::parse(&s).unwrap()),
    )
        .prop_map(
            |(signature, from, to, value, valid_after, valid_before, nonce)| ExactEvmPayload {
                signature,
                authorization: Eip3009Authorization {
                    from,
                    to,
                    value,
                    valid_after,
                    valid_before,
                    nonce,
                },
            },
        )
}

fn facilitator_request() -> impl Strategy<Value = FacilitatorRequest> {
    prop_oneof![
        (any::<bool>(), payment_payload(), requirements()).prop_map(|(top, p, r)| {
            FacilitatorRequest::V2(VerifyRequest {
                x402_version: top.then_some(V2),
                payment_payload: p,
                payment_requirements: r,
            })
        }),
        (any::<bool>(), payment_payload_v1(), requirements_v1()).prop_map(|(top, p, r)| {
            FacilitatorRequest::V1(VerifyRequestV1 {
                x402_version: top.then_some(V1),
                payment_payload: p,
                payment_requirements: r,
            })
        }),
    ]
}

// ---- properties ----

fn json_round_trip<T>(value: &T) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let text = serde_json::to_string(value).unwrap();
    let back: T = serde_json::from_str(&text)
        .map_err(|e| TestCaseError::fail(format!("{e} decoding {text}")))?;
    prop_assert_eq!(&back, value);
    Ok(())
}

/// Whatever the outcome, no panic and a bounded message.
fn bounded<T>(r: Result<T, purser_core::Error>) -> Result<(), TestCaseError> {
    if let Err(e) = r {
        prop_assert!(
            e.message().chars().count() <= MAX_MESSAGE_CHARS,
            "{} chars: {}",
            e.message().len(),
            e.message()
        );
    }
    Ok(())
}

fn all_header_decoders(value: &str) -> Result<(), TestCaseError> {
    bounded(header::decode_payment_required(value))?;
    bounded(header::decode_payment_signature(value))?;
    bounded(header::decode_x_payment(value))?;
    bounded(header::decode_payment_response(value))?;
    bounded(header::decode_x_payment_response(value))?;
    bounded(header::decode_extension_responses(value))?;
    bounded(header::decode_sign_in_with_x(value))?;
    Ok(())
}

fn all_body_decoders(body: &[u8]) -> Result<(), TestCaseError> {
    bounded(FacilitatorRequest::from_json(body))?;
    bounded(decode_json_body::<PaymentPayload>(body))?;
    bounded(decode_json_body::<PaymentRequiredV1>(body))?;
    bounded(decode_json_body::<VerifyResponse>(body))?;
    bounded(decode_json_body::<SettleResponse>(body))?;
    bounded(decode_json_body::<SupportedResponse>(body))?;
    Ok(())
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Places in a valid payload where a fuzzed value goes.
const PAYLOAD_POINTERS: &[&str] = &[
    "",
    "/x402Version",
    "/accepted",
    "/accepted/network",
    "/accepted/amount",
    "/accepted/maxTimeoutSeconds",
    "/accepted/extra",
    "/resource",
    "/resource/url",
    "/resource/tags",
    "/payload",
    "/payload/signature",
    "/payload/authorization",
    "/payload/authorization/value",
    "/payload/authorization/validBefore",
    "/extensions",
    "/extensions/payment-identifier",
    "/extensions/payment-identifier/info",
    "/extensions/payment-identifier/info/id",
];

proptest! {
    #[test]
    fn v2_types_round_trip(
        required in payment_required(),
        payload in payment_payload(),
        verify in verify_response(),
        settle in settle_response(),
        supported in supported_response(),
    ) {
        json_round_trip(&required)?;
        json_round_trip(&payload)?;
        json_round_trip(&verify)?;
        json_round_trip(&settle)?;
        json_round_trip(&supported)?;
        json_round_trip(&payload.accepted)?;
        json_round_trip(&required.resource)?;
        prop_assert_eq!(
            header::decode_payment_required(&header::encode_payment_required(&required)).unwrap(),
            required
        );
        prop_assert_eq!(
            header::decode_payment_signature(&header::encode_payment_signature(&payload)).unwrap(),
            payload.clone()
        );
        prop_assert_eq!(
            header::decode_payment_response(&header::encode_payment_response(&settle)).unwrap(),
            settle
        );
        prop_assert!(purser_x402::accepted_matches(&payload.accepted, &payload.accepted));
    }

    #[test]
    fn v1_types_and_requests_round_trip(
        required in payment_required_v1(),
        payload in payment_payload_v1(),
        request in facilitator_request(),
    ) {
        json_round_trip(&required)?;
        json_round_trip(&payload)?;
        json_round_trip(&request)?;
        prop_assert_eq!(
            header::decode_x_payment(&header::encode_x_payment(&payload)).unwrap(),
            payload
        );
        let body = serde_json::to_vec(&request).unwrap();
        prop_assert_eq!(FacilitatorRequest::from_json(&body).unwrap(), request.clone());
        // Converting to v2 succeeds exactly when the v1 names are known.
        if let FacilitatorRequest::V1(r) = &request {
            let known = |n: &str| Network::from_v1_name(n).is_some();
            let converts = request.to_v2().is_ok();
            prop_assert_eq!(
                converts,
                known(&r.payment_payload.network) && known(&r.payment_requirements.network)
            );
        }
    }

    #[test]
    fn exact_evm_payloads_round_trip(p in exact_evm_payload()) {
        json_round_trip(&p)?;
        prop_assert_eq!(ExactEvmPayload::from_json(&p.to_json()).unwrap(), p);
    }

    #[test]
    fn networks_and_patterns_round_trip(n in network()) {
        prop_assert_eq!(Network::parse(n.as_str()).unwrap(), n.clone());
        json_round_trip(&n)?;
        let family = NetworkPattern::parse(&format!("{}:*", n.namespace())).unwrap();
        prop_assert!(family.matches(&n));
        json_round_trip(&family)?;
    }

    #[test]
    fn header_decoders_never_panic_on_strings(s in any::<String>()) {
        all_header_decoders(&s)?;
    }

    #[test]
    fn header_decoders_never_panic_on_base64_alphabet(s in "[A-Za-z0-9+/=]{0,300}") {
        all_header_decoders(&s)?;
    }

    #[test]
    fn header_decoders_never_panic_on_base64_of_bytes(bytes in vec(any::<u8>(), 0..400)) {
        all_header_decoders(&b64(&bytes))?;
    }

    #[test]
    fn header_decoders_never_panic_on_base64_of_json(v in json_value()) {
        all_header_decoders(&b64(v.to_string().as_bytes()))?;
    }

    #[test]
    fn decoders_never_panic_on_mutated_sdk_payloads(
        pointer in proptest::sample::select(PAYLOAD_POINTERS),
        replacement in json_value(),
    ) {
        let mut v = fixture_json("v2_payment_payload.json");
        if let Some(slot) = v.pointer_mut(pointer) {
            *slot = replacement;
        }
        all_header_decoders(&b64(v.to_string().as_bytes()))?;
        let body = serde_json::json!({"paymentPayload": v.clone(), "paymentRequirements": v["accepted"]});
        all_body_decoders(body.to_string().as_bytes())?;
        if let Ok(p) = serde_json::from_value::<PaymentPayload>(v) {
            let _ = p.exact_evm();
            let _ = p.payment_identifier().require(true);
        }
    }

    #[test]
    fn body_decoders_never_panic_on_bytes(bytes in vec(any::<u8>(), 0..400)) {
        all_body_decoders(&bytes)?;
    }

    #[test]
    fn body_decoders_never_panic_on_json(v in json_value()) {
        all_body_decoders(v.to_string().as_bytes())?;
    }

    #[test]
    fn parsers_never_panic(s in any::<String>(), v in json_value(), o in json_object()) {
        let _ = Network::parse(&s);
        let _ = Network::from_v1_name(&s);
        let _ = NetworkPattern::parse(&s);
        let _ = PaymentId::parse(&s);
        let _ = EvmAddress::parse(&s);
        let _ = Bytes32::parse(&s);
        let _ = HexSignature::parse(&s);
        let _ = ExactEvmPayload::from_json(&o);
        let mut ext = JsonObject::new();
        ext.insert("payment-identifier".into(), v);
        let _ = PaymentIdentifier::from_extensions(Some(&ext));
        bounded(Network::parse(&s))?;
    }
}
