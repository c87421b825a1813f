//! Malformed input: each case gets its stable code, and no message quotes more than a short
//! prefix of what was sent.

use base64::Engine as _;
use purser_core::{Error, ErrorCode};
use purser_x402::header::{self, MAX_DECODED_HEADER_BYTES};
use purser_x402::{
    FacilitatorRequest, PaymentIdentifier, PaymentPayload, SettleResponse, decode_json_body,
};
use serde_json::{Value, json};

use crate::fixture_json;

/// No error message is longer than this, whatever the input.
pub const MAX_MESSAGE_CHARS: usize = 400;

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::STANDARD.encode(v.to_string())
}

fn b64_raw(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn payload() -> Value {
    fixture_json("v2_payment_payload_plain.json")
}

/// Sets (or adds) the field at `pointer`.
fn with(mut v: Value, pointer: &str, new: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    v.pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("no object at {parent:?}"))
        .insert(key.to_owned(), new);
    v
}

fn without(mut v: Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    v.pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .unwrap()
        .remove(key);
    v
}

fn check(err: Error, code: ErrorCode, mentions: &str) {
    assert_eq!(err.code(), code, "{}", err.message());
    assert!(
        err.message().contains(mentions),
        "message {:?} does not mention {mentions:?}",
        err.message()
    );
    assert!(err.message().chars().count() <= MAX_MESSAGE_CHARS);
}

#[test]
fn payment_signature_header_cases() {
    use ErrorCode::{InvalidNetwork, MalformedPaymentHeader, UnsupportedX402Version};
    let hostile = "Z".repeat(50_000);
    let cases: Vec<(String, ErrorCode, &str)> = vec![
        (String::new(), MalformedPaymentHeader, "is empty"),
        ("!!!!".into(), MalformedPaymentHeader, "not base64"),
        ("eyJ4Ijo x".into(), MalformedPaymentHeader, "not base64"),
        ("e30=\r\n".into(), MalformedPaymentHeader, "not base64"),
        (
            b64_raw(b"x402Version: 2"),
            MalformedPaymentHeader,
            "not base64 of UTF-8 JSON",
        ),
        (
            b64_raw(&[0x7b, 0x22, 0xc3, 0x28, 0x22, 0x3a, 0x31, 0x7d]),
            MalformedPaymentHeader,
            "not base64 of UTF-8 JSON",
        ),
        (
            b64(&json!([payload()])),
            MalformedPaymentHeader,
            "JSON object",
        ),
        (b64(&json!("str")), MalformedPaymentHeader, "JSON object"),
        (
            b64(&without(payload(), "/x402Version")),
            MalformedPaymentHeader,
            "no x402Version",
        ),
        (
            b64(&with(payload(), "/x402Version", json!("2"))),
            MalformedPaymentHeader,
            "positive integer",
        ),
        (
            b64(&with(payload(), "/x402Version", json!(2.5))),
            MalformedPaymentHeader,
            "positive integer",
        ),
        (
            b64(&with(payload(), "/x402Version", json!(1))),
            UnsupportedX402Version,
            "x402Version 1",
        ),
        (
            b64(&with(payload(), "/x402Version", json!(3))),
            UnsupportedX402Version,
            "x402Version 3",
        ),
        (
            b64(&without(payload(), "/accepted")),
            MalformedPaymentHeader,
            "missing field `accepted`",
        ),
        (
            b64(&with(payload(), "/payload", json!("0xsig"))),
            MalformedPaymentHeader,
            "wrong shape",
        ),
        (
            b64(&with(payload(), "/accepted/amount", json!("1.5"))),
            MalformedPaymentHeader,
            "decimal digits",
        ),
        (
            b64(&with(payload(), "/accepted/amount", json!(hostile.clone()))),
            MalformedPaymentHeader,
            "decimal digits",
        ),
        (
            b64(&with(payload(), "/accepted/maxTimeoutSeconds", json!(0))),
            MalformedPaymentHeader,
            "greater than zero",
        ),
        (
            b64(&with(
                payload(),
                "/accepted/scheme",
                json!([hostile.clone()]),
            )),
            MalformedPaymentHeader,
            "wrong shape",
        ),
        (
            b64(&with(payload(), "/accepted/asset", json!(12))),
            MalformedPaymentHeader,
            "invalid type: integer `12`, expected a string",
        ),
        (
            b64(&with(payload(), "/accepted/network", json!("base-sepolia"))),
            InvalidNetwork,
            "base-sepolia",
        ),
        (
            b64(&with(
                payload(),
                "/accepted/network",
                json!(hostile.clone()),
            )),
            InvalidNetwork,
            "ZZZZ",
        ),
        (
            b64(&with(payload(), "/resource/url", json!(""))),
            MalformedPaymentHeader,
            "empty",
        ),
        (
            b64(&json!({"x402Version": 2, "accepted": {}, "payload": {},
                        "padding": "x".repeat(MAX_DECODED_HEADER_BYTES)})),
            MalformedPaymentHeader,
            "longer than",
        ),
    ];
    for (value, code, mentions) in cases {
        match header::decode_payment_signature(&value) {
            Ok(_) => panic!("accepted a case that should give {code} ({mentions})"),
            Err(err) => check(err, code, mentions),
        }
    }
}

#[test]
fn hostile_strings_are_quoted_by_prefix_only() {
    let secretish = format!("{}TAIL", "A".repeat(5_000));
    let v = with(payload(), "/accepted/payTo", json!(5));
    let v = with(v, "/accepted/scheme", json!(secretish.clone()));
    let err = header::decode_payment_signature(&b64(&v)).unwrap_err();
    assert!(!err.message().contains("TAIL"), "{}", err.message());

    let v = with(payload(), "/accepted/network", json!(secretish.clone()));
    let err = header::decode_payment_signature(&b64(&v)).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidNetwork);
    assert!(!err.message().contains("TAIL"));
    assert!(err.message().len() < 200, "{}", err.message());

    // Serde quotes values it cannot use; those quotes are cut short too.
    let v = with(
        payload(),
        "/accepted/maxTimeoutSeconds",
        json!(secretish.clone()),
    );
    let err = header::decode_payment_signature(&b64(&v)).unwrap_err();
    assert!(err.message().contains("expected u64"), "{}", err.message());
    assert!(!err.message().contains("TAIL") && err.message().len() < 200);

    let body = with(
        fixture_json("verify_request.json"),
        "/x402Version",
        json!(secretish),
    );
    let err = FacilitatorRequest::from_json(body.to_string().as_bytes()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::MalformedJson);
    assert!(
        err.message().contains("positive integer"),
        "{}",
        err.message()
    );
    assert!(!err.message().contains("TAIL") && err.message().len() < 200);
}

#[test]
fn headers_carry_one_version_each() {
    let v1 = fixture_json("v1_payment_payload.json");
    let err = header::decode_payment_signature(&b64(&v1)).unwrap_err();
    check(err, ErrorCode::UnsupportedX402Version, "PAYMENT-SIGNATURE");
    let err = header::decode_x_payment(&b64(&payload())).unwrap_err();
    check(err, ErrorCode::UnsupportedX402Version, "X-PAYMENT");
    let err = header::decode_payment_required(&b64(&fixture_json("v1_payment_required.json")))
        .unwrap_err();
    check(err, ErrorCode::UnsupportedX402Version, "PAYMENT-REQUIRED");
    let v1_unknown_network = with(v1, "/network", json!("eip155:8453"));
    // v1 names are checked when converting, not when decoding: the header is well-formed.
    let decoded = header::decode_x_payment(&b64(&v1_unknown_network)).unwrap();
    let requirements =
        serde_json::from_value(fixture_json("v1_payment_required.json")["accepts"][0].clone())
            .unwrap();
    check(
        decoded.to_v2(&requirements).unwrap_err(),
        ErrorCode::InvalidNetwork,
        "not a known x402 v1 network name",
    );
}

#[test]
fn payment_response_cases() {
    let ok = fixture_json("settle_response_success.json");
    for (v, mentions) in [
        (
            without(ok.clone(), "/transaction"),
            "missing field `transaction`",
        ),
        (without(ok.clone(), "/network"), "missing field `network`"),
        (
            with(ok.clone(), "/success", json!("true")),
            "expected a boolean",
        ),
        (with(ok.clone(), "/amount", json!("-5")), "decimal digits"),
    ] {
        let err = header::decode_payment_response(&b64(&v)).unwrap_err();
        check(err, ErrorCode::MalformedPaymentHeader, mentions);
    }
    let err = header::decode_extension_responses(&b64(&json!(["bazaar"]))).unwrap_err();
    check(
        err,
        ErrorCode::MalformedPaymentHeader,
        "EXTENSION-RESPONSES",
    );
    let err = header::decode_sign_in_with_x("%%%").unwrap_err();
    check(err, ErrorCode::MalformedPaymentHeader, "SIGN-IN-WITH-X");
}

#[test]
fn facilitator_body_cases() {
    use ErrorCode::{InvalidNetwork, MalformedJson, UnsupportedX402Version};
    let body = fixture_json("verify_request.json");
    let cases: Vec<(Value, ErrorCode, &str)> = vec![
        (json!(null), MalformedJson, "JSON object"),
        (
            without(body.clone(), "/paymentPayload"),
            MalformedJson,
            "paymentPayload",
        ),
        (
            with(body.clone(), "/paymentPayload", json!("b64")),
            MalformedJson,
            "paymentPayload must be a JSON object",
        ),
        (
            without(body.clone(), "/paymentPayload/x402Version"),
            MalformedJson,
            "paymentPayload.x402Version is missing",
        ),
        (
            with(body.clone(), "/paymentPayload/x402Version", json!(-1)),
            MalformedJson,
            "positive integer",
        ),
        (
            with(body.clone(), "/paymentPayload/x402Version", json!(0)),
            UnsupportedX402Version,
            "0",
        ),
        (
            with(body.clone(), "/x402Version", json!(1)),
            UnsupportedX402Version,
            "1",
        ),
        (
            without(body.clone(), "/paymentRequirements"),
            MalformedJson,
            "missing field `paymentRequirements`",
        ),
        (
            with(
                body.clone(),
                "/paymentRequirements/network",
                json!("eip155:0x14a34"),
            ),
            InvalidNetwork,
            "eip155:0x14a34",
        ),
    ];
    for (v, code, mentions) in cases {
        let err = FacilitatorRequest::from_json(v.to_string().as_bytes()).unwrap_err();
        check(err, code, mentions);
    }
    for raw in [
        &b""[..],
        b"{",
        b"\xff\xfe",
        b"{\"paymentPayload\": {\"x402Version\": 2}",
    ] {
        let err = FacilitatorRequest::from_json(raw).unwrap_err();
        assert_eq!(err.code(), MalformedJson);
    }
    let err = decode_json_body::<PaymentPayload>(b"{\"x402Version\": 2}").unwrap_err();
    check(err, MalformedJson, "missing field");
}

#[test]
fn exact_evm_payload_cases() {
    let base: PaymentPayload = serde_json::from_value(payload()).unwrap();
    for (pointer, bad, field) in [
        ("/signature", json!("0x"), "signature"),
        ("/authorization/from", json!("0x1234"), "authorization.from"),
        ("/authorization/value", json!("1e4"), "authorization.value"),
        (
            "/authorization/validBefore",
            json!("-1"),
            "authorization.validBefore",
        ),
        ("/authorization/nonce", json!("0x12"), "authorization.nonce"),
    ] {
        let mut p = base.clone();
        let mut inner = Value::Object(p.payload);
        *inner.pointer_mut(pointer).unwrap() = bad;
        p.payload = inner.as_object().unwrap().clone();
        let err = p.exact_evm().unwrap_err();
        assert_eq!(err.field(), field);
        check(Error::from(err), ErrorCode::InvalidPaymentPayload, field);
    }
}

#[test]
fn payment_identifier_cases() {
    let p: PaymentPayload =
        serde_json::from_value(fixture_json("v2_payment_payload.json")).unwrap();
    let mut bad = p.clone();
    bad.extensions.as_mut().unwrap()["payment-identifier"]["info"]["id"] = json!("too-short");
    assert!(matches!(
        bad.payment_identifier(),
        PaymentIdentifier::Invalid { .. }
    ));
    check(
        bad.payment_identifier().require(false).unwrap_err(),
        ErrorCode::InvalidPaymentIdentifier,
        "16 to 128",
    );
    let mut none = p;
    none.extensions = None;
    check(
        none.payment_identifier().require(true).unwrap_err(),
        ErrorCode::InvalidPaymentIdentifier,
        "must carry info.id",
    );
}

#[test]
fn settle_response_needs_its_required_fields_as_a_body_too() {
    let err =
        decode_json_body::<SettleResponse>(br#"{"success":false,"errorReason":"x"}"#).unwrap_err();
    check(err, ErrorCode::MalformedJson, "missing field");
}
