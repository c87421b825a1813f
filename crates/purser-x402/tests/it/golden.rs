//! Golden tests: JSON and headers exactly as the TypeScript SDK 2.27 produced them
//! (`fixtures/generate.mjs`). Each is decoded, re-encoded and compared as JSON values (key
//! order differs: serde_json sorts object keys and our structs fix field order).

use base64::Engine as _;
use purser_core::money::Amount;
use purser_x402::header::{self, PAYMENT_SIGNATURE, X_PAYMENT};
use purser_x402::{
    FacilitatorRequest, Network, PaymentIdentifier, PaymentPayload, PaymentPayloadV1,
    PaymentRequired, PaymentRequiredV1, Reason, SettleResponse, SupportedKind, SupportedResponse,
    VerifyRequest, VerifyResponse, X402Version, accepted_matches, find_accepted,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{FACILITATOR_SIGNER, PAYER, fixture, fixture_json};

/// Decodes a JSON fixture as `T` and checks that re-encoding gives the same JSON value.
fn round_trip<T: Serialize + DeserializeOwned>(name: &str) -> T {
    let original = fixture_json(name);
    let typed: T = serde_json::from_value(original.clone())
        .unwrap_or_else(|e| panic!("{name} does not decode: {e}"));
    assert_eq!(
        serde_json::to_value(&typed).unwrap(),
        original,
        "{name} changed on the way through"
    );
    typed
}

fn base64_json(value: &str) -> Value {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn every_json_fixture_round_trips_through_its_type() {
    round_trip::<PaymentRequired>("v2_payment_required.json");
    round_trip::<PaymentPayload>("v2_payment_payload.json");
    round_trip::<PaymentPayload>("v2_payment_payload_plain.json");
    round_trip::<PaymentRequiredV1>("v1_payment_required.json");
    round_trip::<PaymentPayloadV1>("v1_payment_payload.json");
    round_trip::<VerifyRequest>("verify_request.json");
    round_trip::<VerifyRequest>("settle_request.json");
    round_trip::<FacilitatorRequest>("verify_request.json");
    round_trip::<FacilitatorRequest>("verify_request_v1.json");
    round_trip::<SupportedResponse>("facilitator_supported.json");
    for name in [
        "verify_response_valid.json",
        "verify_response_value_mismatch.json",
        "verify_response_network_mismatch.json",
        "verify_response_simulation_failed.json",
        "verify_response_v1_value_mismatch.json",
    ] {
        let r: VerifyResponse = round_trip(name);
        assert_eq!(r.payer.as_deref(), Some(PAYER));
        if let Some(reason) = &r.invalid_reason {
            assert!(
                Reason::from_wire(reason).is_some(),
                "unknown SDK reason {reason}"
            );
        }
    }
    for name in [
        "settle_response_success.json",
        "settle_response_v1_success.json",
        "settle_response_reverted.json",
        "settle_response_pending.json",
        "settle_response_recipient_mismatch.json",
    ] {
        let r: SettleResponse = round_trip(name);
        assert_eq!(r.payer.as_deref(), Some(PAYER));
        if let Some(reason) = &r.error_reason {
            assert!(
                Reason::from_wire(reason).is_some(),
                "unknown SDK reason {reason}"
            );
        }
    }
}

#[test]
fn sdk_headers_decode_and_re_encode_to_the_same_json() {
    /// Decodes an SDK header value with our decoder and returns the JSON of our re-encoding.
    type Recode = fn(&str) -> Value;
    let cases: [(&str, &str, Recode); 6] = [
        ("v2_payment_required.b64", "v2_payment_required.json", |h| {
            let v = header::decode_payment_required(h).unwrap();
            base64_json(&header::encode_payment_required(&v))
        }),
        ("v2_payment_signature.b64", "v2_payment_payload.json", |h| {
            let v = header::decode_payment_signature(h).unwrap();
            base64_json(&header::encode_payment_signature(&v))
        }),
        (
            "v2_payment_signature_plain.b64",
            "v2_payment_payload_plain.json",
            |h| {
                let v = header::decode_payment_signature(h).unwrap();
                base64_json(&header::encode_payment_signature(&v))
            },
        ),
        ("v1_x_payment.b64", "v1_payment_payload.json", |h| {
            let v = header::decode_x_payment(h).unwrap();
            base64_json(&header::encode_x_payment(&v))
        }),
        (
            "payment_response_success.b64",
            "settle_response_success.json",
            |h| {
                let v = header::decode_payment_response(h).unwrap();
                base64_json(&header::encode_payment_response(&v))
            },
        ),
        (
            "payment_response_pending.b64",
            "settle_response_pending.json",
            |h| {
                let v = header::decode_x_payment_response(h).unwrap();
                assert!(v.is_pending());
                base64_json(&header::encode_payment_response(&v))
            },
        ),
    ];
    for (b64, json, decode_and_re_encode) in cases {
        let sdk_header = fixture(b64);
        assert_eq!(base64_json(&sdk_header), fixture_json(json), "{b64}");
        assert_eq!(
            decode_and_re_encode(&sdk_header),
            fixture_json(json),
            "{b64}"
        );
    }
}

#[test]
fn the_sdk_client_names_the_headers_we_read() {
    let v2 = fixture_json("v2_payment_signature_headers.json");
    let (name, value) = v2.as_object().unwrap().iter().next().unwrap();
    assert_eq!(name, PAYMENT_SIGNATURE);
    assert_eq!(value.as_str().unwrap(), fixture("v2_payment_signature.b64"));
    let v1 = fixture_json("v1_payment_headers.json");
    let (name, value) = v1.as_object().unwrap().iter().next().unwrap();
    assert_eq!(name, X_PAYMENT);
    header::decode_x_payment(value.as_str().unwrap()).unwrap();
}

#[test]
fn our_encoding_is_padded_standard_base64_the_sdk_can_read() {
    let payload = header::decode_payment_signature(&fixture("v2_payment_signature.b64")).unwrap();
    let ours = header::encode_payment_signature(&payload);
    assert_eq!(ours.len() % 4, 0);
    assert!(
        ours.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
    );
    // The SDK's own output happens to serialize keys in another order, but the same bytes
    // come back when both are decoded.
    assert_eq!(header::decode_payment_signature(&ours).unwrap(), payload);
}

#[test]
fn signed_sdk_payloads_parse_as_exact_evm() {
    let payload: PaymentPayload = round_trip("v2_payment_payload.json");
    let exact = payload.exact_evm().unwrap();
    let auth = &exact.authorization;
    assert_eq!(auth.from.as_str(), PAYER);
    assert_eq!(auth.to.as_str(), payload.accepted.pay_to);
    assert_eq!(auth.value, payload.accepted.amount);
    assert_eq!(auth.valid_after, 0, "the v2 client signs validAfter 0");
    assert!(auth.valid_before > 1_700_000_000);
    assert!(exact.signature.is_eoa_length());
    assert!(!exact.signature.is_erc6492_wrapped());
    assert_eq!(
        serde_json::to_value(&exact).unwrap(),
        Value::Object(payload.payload.clone())
    );

    let v1: PaymentPayloadV1 = round_trip("v1_payment_payload.json");
    let exact = v1.exact_evm().unwrap();
    assert_eq!(
        exact.authorization.valid_before - exact.authorization.valid_after,
        600 + 60,
        "the v1 client signs validAfter now-600 and validBefore now+maxTimeoutSeconds"
    );
}

#[test]
fn the_sdk_payload_matches_the_offer_it_answers() {
    let required: PaymentRequired = round_trip("v2_payment_required.json");
    let payload: PaymentPayload = round_trip("v2_payment_payload.json");
    assert_eq!(payload.accepted, required.accepts[0]);
    assert_eq!(payload.resource.as_ref(), Some(&required.resource));
    assert!(find_accepted(&required.accepts, &payload).is_some());
    let mut other_offer = required.accepts[0].clone();
    other_offer.amount = Amount::from_atomic(9_999);
    assert!(!accepted_matches(&other_offer, &payload.accepted));
    let r = payload.accepted.eip712_name_version().unwrap();
    assert_eq!((r.name, r.version), ("MockUSD", "1"));
}

#[test]
fn payment_identifier_as_the_sdk_declares_and_appends_it() {
    let required: PaymentRequired = round_trip("v2_payment_required.json");
    assert_eq!(
        PaymentIdentifier::from_extensions(required.extensions.as_ref()),
        PaymentIdentifier::Declared { required: true }
    );
    let payload: PaymentPayload = round_trip("v2_payment_payload.json");
    let PaymentIdentifier::Present {
        id,
        required: echoed_required,
    } = payload.payment_identifier()
    else {
        panic!("no id in {:?}", payload.extensions);
    };
    assert!(echoed_required);
    assert!(id.as_str().starts_with("pay_") && id.as_str().len() == 36);
    let plain: PaymentPayload = round_trip("v2_payment_payload_plain.json");
    assert_eq!(plain.payment_identifier(), PaymentIdentifier::Absent);
    // The client echoed the declaration and only added the id.
    let mut echoed = payload.extensions.clone().unwrap();
    echoed["payment-identifier"]["info"]
        .as_object_mut()
        .unwrap()
        .remove("id");
    assert_eq!(Some(echoed), required.extensions);
}

#[test]
fn facilitator_requests_dispatch_and_convert() {
    let v2 = FacilitatorRequest::from_json(fixture("verify_request.json").as_bytes()).unwrap();
    assert_eq!(v2.version(), X402Version::V2);
    let (payload, requirements) = v2.to_v2().unwrap();
    assert!(accepted_matches(&requirements, &payload.accepted));

    let v1 = FacilitatorRequest::from_json(fixture("verify_request_v1.json").as_bytes()).unwrap();
    assert_eq!(v1.version(), X402Version::V1);
    assert_eq!(v1.payload_network(), "base-sepolia");
    let (payload, requirements) = v1.to_v2().unwrap();
    assert_eq!(
        requirements.network,
        Network::parse("eip155:84532").unwrap()
    );
    assert_eq!(requirements.amount, Amount::from_atomic(10_000));
    assert_eq!(payload.accepted, requirements);
    assert_eq!(
        payload.resource.as_ref().map(|r| r.url.as_str()),
        Some("http://localhost:4021/paid")
    );
    assert_eq!(
        payload.exact_evm().unwrap().authorization.from.as_str(),
        PAYER
    );
}

#[test]
fn our_constructors_emit_what_the_sdk_facilitator_emits() {
    let network = "eip155:84532";
    let tx = format!("0x{}", "ab".repeat(32));
    let payer = Some(PAYER.to_owned());
    let same = |ours: &dyn erased::Json, name: &str| {
        assert_eq!(ours.json(), fixture_json(name), "{name}");
    };
    same(&VerifyResponse::valid(PAYER), "verify_response_valid.json");
    same(
        &VerifyResponse::invalid(
            Reason::InvalidExactEvmPayloadAuthorizationValueMismatch,
            payer.clone(),
        ),
        "verify_response_value_mismatch.json",
    );
    same(
        &VerifyResponse::invalid(Reason::InvalidExactEvmAuthorizationValue, payer.clone()),
        "verify_response_v1_value_mismatch.json",
    );
    same(
        &SettleResponse::settled(&tx, network, PAYER),
        "settle_response_success.json",
    );
    same(
        &SettleResponse::settled(&tx, "base-sepolia", PAYER),
        "settle_response_v1_success.json",
    );
    same(
        &SettleResponse::failed(
            Reason::InvalidExactEvmRecipientMismatch,
            network,
            payer.clone(),
        ),
        "settle_response_recipient_mismatch.json",
    );
    same(
        &SettleResponse::failed_after_broadcast(
            Reason::InvalidExactEvmTransactionFailed,
            &tx,
            network,
            payer.clone(),
        ),
        "settle_response_reverted.json",
    );
    same(
        &SettleResponse::pending(
            &tx,
            network,
            payer,
            "Timed out while waiting for transaction receipt",
        ),
        "settle_response_pending.json",
    );
    let mut supported = SupportedResponse::default();
    supported
        .kinds
        .push(SupportedKind::new(X402Version::V2, "exact", network));
    supported
        .kinds
        .push(SupportedKind::new(X402Version::V1, "exact", "base-sepolia"));
    supported
        .signers
        .insert("eip155:*".into(), vec![FACILITATOR_SIGNER.into()]);
    same(&supported, "facilitator_supported.json");
    let base_sepolia = Network::parse(network).unwrap();
    assert_eq!(
        supported.signers_for(&base_sepolia).collect::<Vec<_>>(),
        [FACILITATOR_SIGNER]
    );
}

/// Lets one closure compare values of different types as JSON.
mod erased {
    pub trait Json {
        fn json(&self) -> serde_json::Value;
    }

    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap()
        }
    }
}
