use serde_json::{Value, json};

use super::*;

const A: &str = "0x1111111111111111111111111111111111111111";
const B: &str = "0x2222222222222222222222222222222222222222";
const ZERO: &str = "0x0000000000000000000000000000000000000000";
const WORD: &str = "0x0000000000000000000000000000000000000000000000000000000000000abc";
const SIG: &str = "0x2d6a7f0b7b8c1f0e2d6a7f0b7b8c1f0e2d6a7f0b7b8c1f0e2d6a7f0b7b8c1f0e2d6a7f0b7b8c1f0e2d6a7f0b7b8c1f0e2d6a7f0b7b8c1f0e2d6a7f0b7b8c1f0e1b";

fn extra(changes: Value) -> Value {
    let mut base = json!({
        "name": "USDC",
        "version": "2",
        "captureAuthorizer": A,
        "captureDeadline": 1_740_758_554u64,
        "refundDeadline": 1_741_276_954u64,
        "minFeeBps": 100,
        "maxFeeBps": 100,
        "feeRecipient": B,
    });
    for (key, value) in changes.as_object().unwrap() {
        if value.is_null() {
            base.as_object_mut().unwrap().remove(key);
        } else {
            base[key] = value.clone();
        }
    }
    base
}

fn refused(extra_changes: Value) -> AuthCaptureError {
    AuthCaptureExtra::from_json(&extra(extra_changes)).unwrap_err()
}

#[test]
fn extra_reads_the_specifications_example_with_its_defaults() {
    let parsed = AuthCaptureExtra::from_json(&extra(json!({}))).unwrap();
    assert_eq!(parsed.payment_flow, PaymentFlow::Escrow);
    assert_eq!(parsed.operator_type, OperatorType::Delegated);
    assert_eq!(parsed.asset_transfer_method, AssetTransferMethod::Eip3009);
    assert_eq!(parsed.capture_mode, None);
    assert!(!parsed.is_bound());
    assert!(!parsed.relays_lifecycle());
    // A zero receiver authorizer is an absent one; a real one binds the salt and turns
    // relaying on.
    let zero = AuthCaptureExtra::from_json(&extra(json!({ "receiverAuthorizer": ZERO }))).unwrap();
    assert_eq!(zero.receiver_authorizer, None);
    let bound = AuthCaptureExtra::from_json(&extra(json!({
        "receiverAuthorizer": B, "captureMode": "deferred", "paymentFlow": "escrow",
        "assetTransferMethod": "permit2", "authCaptureEscrow": A,
    })))
    .unwrap();
    assert!(bound.is_bound() && bound.relays_lifecycle());
    assert_eq!(bound.capture_mode, Some(CaptureMode::Deferred));
    assert_eq!(bound.asset_transfer_method, AssetTransferMethod::Permit2);
}

#[test]
fn extra_refuses_what_the_scheme_refuses_each_with_its_reason() {
    let cases: &[(Value, Reason, &str)] = &[
        (
            json!({ "captureAuthorizer": null }),
            Reason::InvalidAuthCaptureEvmExtra,
            "extra.captureAuthorizer",
        ),
        (
            json!({ "name": 7 }),
            Reason::InvalidAuthCaptureEvmExtra,
            "extra.name",
        ),
        (
            json!({ "minFeeBps": 10_001 }),
            Reason::InvalidAuthCaptureEvmExtra,
            "extra.minFeeBps",
        ),
        (
            json!({ "minFeeBps": 200 }),
            Reason::InvalidAuthCaptureEvmExtra,
            "extra.minFeeBps",
        ),
        (
            json!({ "captureDeadline": "soon" }),
            Reason::InvalidAuthCaptureEvmExtra,
            "extra.captureDeadline",
        ),
        (
            json!({ "refundDeadline": 1_740_758_553u64 }),
            Reason::InvalidAuthCaptureEvmDeadlineOrdering,
            "extra.refundDeadline",
        ),
        (
            json!({ "paymentFlow": "instant" }),
            Reason::InvalidAuthCaptureEvmUnsupportedPaymentFlow,
            "extra.paymentFlow",
        ),
        (
            json!({ "autoCapture": true }),
            Reason::InvalidAuthCaptureEvmUnsupportedPaymentFlow,
            "extra.autoCapture",
        ),
        (
            json!({ "paymentFlow": "authorization", "captureMode": "sync" }),
            Reason::InvalidAuthCaptureEvmExtra,
            "extra.captureMode",
        ),
        (
            json!({ "operatorType": "policy" }),
            Reason::InvalidAuthCaptureEvmUnsupportedOperatorType,
            "extra.operatorType",
        ),
        (
            json!({ "operatorType": "wizard" }),
            Reason::InvalidAuthCaptureEvmUnsupportedOperatorType,
            "extra.operatorType",
        ),
        (
            json!({ "assetTransferMethod": "eip2612" }),
            Reason::InvalidAuthCaptureEvmUnsupportedAssetTransferMethod,
            "extra.assetTransferMethod",
        ),
        (
            json!({ "policy": A }),
            Reason::InvalidAuthCaptureEvmPolicy,
            "extra.policy",
        ),
        (
            json!({ "feeRecipient": "0x12" }),
            Reason::InvalidAuthCaptureEvmExtra,
            "extra.feeRecipient",
        ),
    ];
    for (changes, reason, field) in cases {
        let err = refused(changes.clone());
        assert_eq!(
            (err.reason(), err.field()),
            (*reason, *field),
            "{changes}: {err}"
        );
    }
    // `autoCapture: false` is harmless.
    AuthCaptureExtra::from_json(&extra(json!({ "autoCapture": false }))).unwrap();
}

fn collect(payload: Value) -> Result<CollectPayload, AuthCaptureError> {
    match AuthCapturePayload::from_json(payload.as_object().unwrap())? {
        AuthCapturePayload::Collect(c) => Ok(c),
        other => panic!("not a collect payload: {other:?}"),
    }
}

fn authorization() -> Value {
    json!({
        "from": A, "to": B, "value": "1000000", "validAfter": "0",
        "validBefore": "1740675754", "nonce": WORD,
    })
}

#[test]
fn collect_payloads_read_in_every_shape_the_client_sends() {
    // Unbound EIP-3009, as the official client sends it.
    let unbound =
        collect(json!({ "authorization": authorization(), "signature": SIG, "salt": WORD }))
            .unwrap();
    assert!(unbound.salt_nonce.is_none() && unbound.charge.is_none());
    assert_eq!(unbound.authorization.method(), AssetTransferMethod::Eip3009);
    // Bound: the salt nonce beside the salt.
    let bound = collect(json!({
        "authorization": authorization(), "signature": SIG, "salt": WORD, "saltNonce": WORD,
    }))
    .unwrap();
    assert!(bound.salt_nonce.is_some());
    // Permit2.
    let permit = collect(json!({
        "permit2Authorization": {
            "from": A,
            "permitted": { "token": B, "amount": "1000000" },
            "spender": A,
            "nonce": "110210486920734568342928534950928740912034856789012345678901234567890123456789",
            "deadline": "1740675754",
        },
        "signature": SIG, "salt": WORD,
    }))
    .unwrap();
    assert_eq!(permit.authorization.method(), AssetTransferMethod::Permit2);
    // A charge completed by the server, v1.1 then v1.0.
    let charge = collect(json!({
        "authorization": authorization(), "signature": SIG, "salt": WORD, "saltNonce": WORD,
        "amount": "750000", "feeAmount": "7500", "feeReceiver": B, "authorizerSignature": SIG,
    }))
    .unwrap()
    .charge
    .unwrap();
    assert_eq!(charge.amount, Amount::from_atomic(750_000));
    assert_eq!(charge.fee, SubmittedFee::Amount(Amount::from_atomic(7_500)));
    let v1_0 = collect(json!({
        "authorization": authorization(), "signature": SIG, "salt": WORD, "saltNonce": WORD,
        "amount": "750000", "feeBps": 100, "feeReceiver": B,
    }))
    .unwrap()
    .charge
    .unwrap();
    assert_eq!(v1_0.fee, SubmittedFee::Bps(100));
    assert!(
        v1_0.authorizer_signature.is_none(),
        "a delegated authorizer signs nothing here"
    );
}

#[test]
fn collect_payloads_refuse_mixed_and_partial_shapes() {
    let base = || json!({ "authorization": authorization(), "signature": SIG, "salt": WORD });
    let with = |changes: Value| {
        let mut p = base();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                p.as_object_mut().unwrap().remove(k);
            } else {
                p[k] = v.clone();
            }
        }
        collect(p).unwrap_err()
    };
    let cases: &[(Value, &str)] = &[
        (json!({ "salt": null }), "salt"),
        (json!({ "salt": "0xabc" }), "salt"),
        (json!({ "signature": null }), "signature"),
        (
            json!({ "permit2Authorization": { "from": A } }),
            "permit2Authorization",
        ),
        (json!({ "authorization": null }), "authorization"),
        (json!({ "amount": "1" }), "amount"),
        (json!({ "authorizerSignature": SIG }), "amount"),
        (
            json!({ "amount": "1", "feeAmount": "0", "feeBps": 0, "feeReceiver": B }),
            "feeAmount",
        ),
        (
            json!({ "amount": "-1", "feeAmount": "0", "feeReceiver": B }),
            "amount",
        ),
    ];
    for (changes, field) in cases {
        let err = with(changes.clone());
        assert_eq!(
            err.reason(),
            Reason::InvalidAuthCaptureEvmPayloadFormat,
            "{changes}: {err}"
        );
        assert_eq!(err.field(), *field, "{changes}: {err}");
    }
    let mut bad_nonce = base();
    bad_nonce["authorization"]["nonce"] = json!("0x12");
    assert_eq!(
        collect(bad_nonce).unwrap_err().field(),
        "authorization.nonce"
    );
}

fn payment_info() -> Value {
    json!({
        "operator": A, "payer": B, "receiver": A, "token": B, "maxAmount": "1000000",
        "preApprovalExpiry": 1_740_675_754u64, "authorizationExpiry": 1_740_758_554u64,
        "refundExpiry": 1_741_276_954u64, "minFeeBps": 100, "maxFeeBps": 100,
        "feeReceiver": B, "salt": WORD,
    })
}

fn lifecycle(payload: Value) -> Result<LifecyclePayload, AuthCaptureError> {
    match AuthCapturePayload::from_json(payload.as_object().unwrap())? {
        AuthCapturePayload::Lifecycle(l) => Ok(l),
        other => panic!("not a lifecycle payload: {other:?}"),
    }
}

#[test]
fn lifecycle_payloads_read_the_specifications_examples() {
    let capture = lifecycle(json!({
        "type": "capture", "paymentInfo": payment_info(), "saltNonce": WORD,
        "amount": "750000", "feeAmount": "7500", "feeReceiver": B,
        "expectedCapturableAmount": "1000000", "expectedRefundableAmount": "0",
        "authorizerSignature": SIG, "voidAuthorizerSignature": SIG,
    }))
    .unwrap();
    assert_eq!(capture.operation, LifecycleOperation::Capture);
    assert_eq!(
        capture.payment_info.max_amount,
        Amount::from_atomic(1_000_000)
    );
    assert!(capture.void_authorizer_signature.is_some());
    let void = lifecycle(json!({
        "type": "void", "paymentInfo": payment_info(), "saltNonce": WORD, "authorizerSignature": SIG,
    }))
    .unwrap();
    assert_eq!(void.operation, LifecycleOperation::Void);
    let refund = lifecycle(json!({
        "type": "refund", "paymentInfo": payment_info(), "saltNonce": WORD, "amount": "250000",
        "expectedCapturableAmount": "250000", "expectedRefundableAmount": "750000",
        "authorizerSignature": SIG,
    }))
    .unwrap();
    assert_eq!(
        refund.expected_refundable,
        Some(Amount::from_atomic(750_000))
    );
}

#[test]
fn lifecycle_payloads_refuse_what_does_not_belong() {
    let cases: &[(Value, Reason, &str)] = &[
        (
            json!({ "type": "release", "paymentInfo": payment_info(), "saltNonce": WORD }),
            Reason::InvalidAuthCaptureEvmPayloadType,
            "type",
        ),
        (
            json!({ "type": 1, "paymentInfo": payment_info(), "saltNonce": WORD }),
            Reason::InvalidAuthCaptureEvmPayloadType,
            "type",
        ),
        (
            json!({ "type": "void", "paymentInfo": payment_info() }),
            Reason::InvalidAuthCaptureEvmPayloadFormat,
            "saltNonce",
        ),
        (
            json!({ "type": "void", "paymentInfo": payment_info(), "saltNonce": WORD, "voidAuthorizerSignature": SIG }),
            Reason::InvalidAuthCaptureEvmVoidAuthorizerSignature,
            "voidAuthorizerSignature",
        ),
        (
            json!({ "type": "void", "paymentInfo": payment_info(), "saltNonce": WORD, "amount": "1" }),
            Reason::InvalidAuthCaptureEvmPayloadFormat,
            "amount",
        ),
        (
            json!({ "type": "capture", "paymentInfo": payment_info(), "saltNonce": WORD, "amount": "1", "feeAmount": "0", "feeReceiver": B }),
            Reason::InvalidAuthCaptureEvmPayloadFormat,
            "expectedCapturableAmount",
        ),
        (
            json!({ "type": "refund", "paymentInfo": payment_info(), "saltNonce": WORD, "amount": "1", "feeAmount": "0", "expectedCapturableAmount": "0", "expectedRefundableAmount": "1" }),
            Reason::InvalidAuthCaptureEvmPayloadFormat,
            "feeAmount",
        ),
        (
            json!({ "type": "capture", "paymentInfo": { "operator": A }, "saltNonce": WORD }),
            Reason::InvalidAuthCaptureEvmPayloadFormat,
            "paymentInfo.payer",
        ),
    ];
    for (payload, reason, field) in cases {
        let err = lifecycle(payload.clone()).unwrap_err();
        assert_eq!(
            (err.reason(), err.field()),
            (*reason, *field),
            "{payload}: {err}"
        );
    }
}

#[test]
fn a_lifecycle_payload_written_for_a_collected_payment_reads_back_as_it_was_asked() {
    let requirements: crate::v2::PaymentRequirements = serde_json::from_value(json!({
        "scheme": "auth-capture", "network": "eip155:84532", "amount": "1000000",
        "asset": A, "payTo": B, "maxTimeoutSeconds": 60,
        "extra": extra(json!({ "receiverAuthorizer": A })),
    }))
    .unwrap();
    let parsed_extra =
        AuthCaptureExtra::from_json(&Value::Object(requirements.extra.clone().unwrap())).unwrap();
    let paid = collect(json!({
        "authorization": authorization(), "signature": SIG, "salt": WORD, "saltNonce": WORD,
    }))
    .unwrap();
    let info = paid.payment_info(&requirements, &parsed_extra).unwrap();
    assert_eq!(info.max_amount, Amount::from_atomic(1_000_000));
    assert_eq!(info.receiver.as_str(), B);
    assert_eq!(info.authorization_expiry, 1_740_758_554);
    assert_eq!(info.salt.as_str(), WORD);
    let asked = LifecyclePayload::unsigned(
        info,
        Bytes32::parse(WORD).unwrap(),
        LifecycleOrder {
            operation: LifecycleOperation::Capture,
            amount: Some(Amount::from_atomic(300_000)),
            fee: Some((Amount::from_atomic(3_000), EvmAddress::parse(B).unwrap())),
            expected: Some((Amount::from_atomic(1_000_000), Amount::ZERO)),
        },
    );
    let written = asked.to_json();
    assert_eq!(written["type"], "capture");
    assert_eq!(written["feeAmount"], "3000");
    match AuthCapturePayload::from_json(&written).unwrap() {
        AuthCapturePayload::Lifecycle(read) => assert_eq!(read, asked),
        other => panic!("{other:?}"),
    }
    // A void carries none of a capture's amounts.
    let void = LifecyclePayload::unsigned(
        asked.payment_info.clone(),
        asked.salt_nonce.clone(),
        LifecycleOrder {
            operation: LifecycleOperation::Void,
            amount: None,
            fee: None,
            expected: None,
        },
    );
    assert!(matches!(
        AuthCapturePayload::from_json(&void.to_json()),
        Ok(AuthCapturePayload::Lifecycle(LifecyclePayload {
            operation: LifecycleOperation::Void,
            ..
        }))
    ));
}
