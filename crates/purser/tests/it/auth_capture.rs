//! The `auth-capture` scheme's derivations against the official client: payments signed by
//! `@x402/evm`'s auth-capture client (`tests/interop/sdk-auth-capture-sign.mjs`) are rebuilt
//! the way a facilitator must rebuild them (`purser_chain::auth_capture`): the `PaymentInfo`
//! from the requirements and the payload, its payer-agnostic hash as the authorization's nonce,
//! the salt's commitment to the receiver authorizer, the collector of the named deployment, and
//! the payer's signature over `ReceiveWithAuthorization`. A requirement changed after signing
//! no longer matches the nonce.

use alloy::primitives::aliases::{U48, U120};
use alloy::primitives::{Address, B256, Signature, U256, address};
use purser_chain::auth_capture::{self, Deployment, PaymentInfo, ReceiveWithAuthorization};
use serde_json::{Value, json};

use crate::interop::run_script;

/// Anvil's second well-known key: a payer that holds nothing, which signing does not need.
const PAYER_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
const CHAIN_ID: u64 = 84532;
const TOKEN: Address = address!("0x036CbD53842c5426634e7929541eC2318f3dCF7e");
const OPERATOR: Address = address!("0x1111111111111111111111111111111111111111");
const RECEIVER: Address = address!("0x3333333333333333333333333333333333333333");
const FEE_RECIPIENT: Address = address!("0x4444444444444444444444444444444444444444");
const AUTHORIZER: Address = address!("0x5555555555555555555555555555555555555555");

fn requirements(extra: Value) -> Value {
    let mut base = json!({
        "name": "USDC",
        "version": "2",
        "captureAuthorizer": OPERATOR,
        "captureDeadline": 1_900_000_000u64,
        "refundDeadline": 1_900_100_000u64,
        "minFeeBps": 100,
        "maxFeeBps": 250,
        "feeRecipient": FEE_RECIPIENT,
    });
    base.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({
        "scheme": "auth-capture",
        "network": format!("eip155:{CHAIN_ID}"),
        "amount": "1000000",
        "asset": TOKEN,
        "payTo": RECEIVER,
        "maxTimeoutSeconds": 60,
        "extra": base,
    })
}

/// The official client's payment for `requirements`: (payer, payload).
async fn signed(requirements: &Value) -> (Address, Value) {
    let out = run_script(
        "sdk-auth-capture-sign.mjs",
        &[
            ("X402_PAYER_KEY", PAYER_KEY.to_owned()),
            ("X402_REQUIREMENTS", requirements.to_string()),
        ],
    )
    .await;
    (
        out["payer"].as_str().unwrap().parse().unwrap(),
        out["payload"].clone(),
    )
}

fn word(value: &Value) -> U256 {
    value.as_str().unwrap().parse().unwrap()
}

fn number(value: &Value) -> u64 {
    match value {
        Value::String(s) => s.parse().unwrap(),
        other => other.as_u64().unwrap(),
    }
}

/// The `PaymentInfo` a facilitator rebuilds from `requirements` and the payload, as the
/// specification's appendix lists its sources.
fn rebuilt(requirements: &Value, payer: Address, payload: &Value) -> PaymentInfo {
    let extra = &requirements["extra"];
    let address = |v: &Value| -> Address { v.as_str().unwrap().parse().unwrap() };
    PaymentInfo {
        operator: address(&extra["captureAuthorizer"]),
        payer,
        receiver: address(&requirements["payTo"]),
        token: address(&requirements["asset"]),
        maxAmount: U120::from(number(&requirements["amount"])),
        preApprovalExpiry: U48::from(number(&payload["authorization"]["validBefore"])),
        authorizationExpiry: U48::from(number(&extra["captureDeadline"])),
        refundExpiry: U48::from(number(&extra["refundDeadline"])),
        minFeeBps: u16::try_from(number(&extra["minFeeBps"])).unwrap(),
        maxFeeBps: u16::try_from(number(&extra["maxFeeBps"])).unwrap(),
        feeReceiver: address(&extra["feeRecipient"]),
        salt: word(&payload["salt"]),
    }
}

/// Checks everything a facilitator checks of the client's signed authorization.
fn check(requirements: &Value, payer: Address, payload: &Value, deployment: Deployment) {
    let authorization = &payload["authorization"];
    let to: Address = authorization["to"].as_str().unwrap().parse().unwrap();
    assert_eq!(to, deployment.eip3009_collector, "{payload}");
    assert_eq!(number(&authorization["validAfter"]), 0);
    assert_eq!(number(&authorization["value"]), 1_000_000);
    let info = rebuilt(requirements, payer, payload);
    let nonce: B256 = authorization["nonce"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        auth_capture::signature_nonce(CHAIN_ID, deployment.escrow, &info),
        nonce,
        "{payload}"
    );
    let message = ReceiveWithAuthorization {
        from: payer,
        to,
        value: U256::from(1_000_000u64),
        validAfter: U256::ZERO,
        validBefore: U256::from(number(&authorization["validBefore"])),
        nonce,
    };
    let digest = auth_capture::receive_authorization_digest(&message, "USDC", "2", CHAIN_ID, TOKEN);
    let signature: Signature = payload["signature"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        signature.recover_address_from_prehash(&digest).unwrap(),
        payer
    );
}

#[tokio::test]
async fn an_unbound_payment_of_the_official_client_rebuilds_to_its_nonce() {
    let requirements = requirements(json!({}));
    let (payer, payload) = signed(&requirements).await;
    // No receiver authorizer nor policy: the salt is the client's random word, alone.
    assert!(payload.get("saltNonce").is_none(), "{payload}");
    check(&requirements, payer, &payload, auth_capture::V1_1);

    // Any requirement changed after signing no longer matches: one check covers every field.
    let mut moved = requirements.clone();
    moved["extra"]["refundDeadline"] = json!(1_900_100_001u64);
    let info = rebuilt(&moved, payer, &payload);
    let nonce: B256 = payload["authorization"]["nonce"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(
        auth_capture::signature_nonce(CHAIN_ID, auth_capture::V1_1.escrow, &info),
        nonce
    );
}

#[tokio::test]
async fn a_bound_payment_commits_its_salt_to_the_receiver_authorizer() {
    let requirements = requirements(json!({ "receiverAuthorizer": AUTHORIZER }));
    let (payer, payload) = signed(&requirements).await;
    let salt_nonce = word(&payload["saltNonce"]);
    assert_eq!(
        word(&payload["salt"]),
        auth_capture::bound_salt(AUTHORIZER, Address::ZERO, salt_nonce)
    );
    // The same nonce opens no commitment to another authorizer.
    assert_ne!(
        word(&payload["salt"]),
        auth_capture::bound_salt(OPERATOR, Address::ZERO, salt_nonce)
    );
    check(&requirements, payer, &payload, auth_capture::V1_1);
}

#[tokio::test]
async fn a_payment_pinned_to_the_v1_0_escrow_is_collected_there() {
    let requirements = requirements(json!({ "authCaptureEscrow": auth_capture::V1_0.escrow }));
    let (payer, payload) = signed(&requirements).await;
    check(&requirements, payer, &payload, auth_capture::V1_0);
}

/// The facilitator's checks of a collect payload (`auth_capture::verify::check_collect`) on
/// the official client's payments: what passes, and each thing that must not.
mod checks {
    use purser_chain::auth_capture::verify::{
        CollectRequest, PayerSignature, Refusal, check_collect,
    };
    use purser_x402::Reason;
    use purser_x402::auth_capture::{AuthCapturePayload, CollectPayload};
    use purser_x402::v2::PaymentRequirements;

    use super::*;

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn parse(payload: &Value) -> CollectPayload {
        match AuthCapturePayload::from_json(payload.as_object().unwrap()).unwrap() {
            AuthCapturePayload::Collect(c) => c,
            other => panic!("{other:?}"),
        }
    }

    fn run(
        requirements: &Value,
        accepted: &Value,
        payload: &Value,
        submitters: &[Address],
        now: u64,
    ) -> Result<purser_chain::auth_capture::verify::Collect, Refusal> {
        let requirements: PaymentRequirements =
            serde_json::from_value(requirements.clone()).unwrap();
        let accepted: PaymentRequirements = serde_json::from_value(accepted.clone()).unwrap();
        check_collect(CollectRequest {
            requirements: &requirements,
            accepted: &accepted,
            payload: &parse(payload),
            settling: false,
            submitters,
            now,
        })
    }

    fn refused(requirements: &Value, payload: &Value, submitters: &[Address], now: u64) -> Reason {
        run(requirements, requirements, payload, submitters, now)
            .unwrap_err()
            .reason
    }

    #[tokio::test]
    async fn the_official_clients_payments_pass_and_every_tampering_is_refused() {
        let unbound = requirements(json!({}));
        let (payer, payload) = signed(&unbound).await;
        let now = now();
        let passed = run(&unbound, &unbound, &payload, &[OPERATOR], now).unwrap();
        assert_eq!(passed.payer_signature, PayerSignature::Verified);
        assert_eq!(passed.info.payer, payer);
        assert_eq!(passed.deployment, auth_capture::V1_1);
        assert_eq!(
            passed.payment_hash,
            auth_capture::payment_hash(CHAIN_ID, auth_capture::V1_1.escrow, &passed.info)
        );

        // The operator must be one of this facilitator's own submitters.
        assert_eq!(
            refused(&unbound, &payload, &[AUTHORIZER], now),
            Reason::InvalidAuthCaptureEvmOperatorNotAdmitted
        );
        // A requirement changed after signing: the amount directly, any other field through
        // the nonce.
        let mut dearer = unbound.clone();
        dearer["amount"] = json!("2000000");
        assert_eq!(
            refused(&dearer, &payload, &[OPERATOR], now),
            Reason::InvalidAuthCaptureEvmAmountMismatch
        );
        let mut later = unbound.clone();
        later["extra"]["refundDeadline"] = json!(1_900_100_001u64);
        assert_eq!(
            refused(&later, &payload, &[OPERATOR], now),
            Reason::InvalidAuthCaptureEvmNonceMismatch
        );
        let mut other_receiver = unbound.clone();
        other_receiver["payTo"] = json!(AUTHORIZER);
        assert_eq!(
            refused(&other_receiver, &payload, &[OPERATOR], now),
            Reason::InvalidAuthCaptureEvmNonceMismatch
        );
        // Another network accepted than required.
        let mut elsewhere = unbound.clone();
        elsewhere["network"] = json!("eip155:8453");
        assert_eq!(
            run(&unbound, &elsewhere, &payload, &[OPERATOR], now)
                .unwrap_err()
                .reason,
            Reason::InvalidAuthCaptureEvmNetworkMismatch
        );
        // Time: the authorization about to expire, a capture deadline too close.
        let valid_before = number(&payload["authorization"]["validBefore"]);
        assert_eq!(
            refused(&unbound, &payload, &[OPERATOR], valid_before - 3),
            Reason::InvalidAuthCaptureEvmAuthorizationExpired
        );
        let mut hurried = unbound.clone();
        hurried["extra"]["captureDeadline"] = json!(now + 5);
        assert_eq!(
            refused(&hurried, &payload, &[OPERATOR], now),
            Reason::InvalidAuthCaptureEvmCaptureDeadlineExpired
        );
        // Another signature than the payer's.
        let mut forged = payload.clone();
        let signature = payload["signature"].as_str().unwrap();
        let flipped = if &signature[10..11] == "0" { "1" } else { "0" };
        forged["signature"] = json!(format!(
            "{}{}{}",
            &signature[..10],
            flipped,
            &signature[11..]
        ));
        assert_eq!(
            refused(&unbound, &forged, &[OPERATOR], now),
            Reason::InvalidAuthCaptureEvmSignature
        );
        // A salt nonce where the salt commits to nothing.
        let mut stray = payload.clone();
        stray["saltNonce"] = payload["salt"].clone();
        assert_eq!(
            refused(&unbound, &stray, &[OPERATOR], now),
            Reason::InvalidAuthCaptureEvmPayloadFormat
        );
    }

    #[tokio::test]
    async fn a_bound_payment_passes_only_with_its_own_salt_nonce() {
        let bound = requirements(json!({ "receiverAuthorizer": AUTHORIZER }));
        let (_, payload) = signed(&bound).await;
        let now = now();
        run(&bound, &bound, &payload, &[OPERATOR], now).unwrap();
        let mut reopened = payload.clone();
        reopened["saltNonce"] = json!(format!("0x{}", "0".repeat(63) + "1"));
        assert_eq!(
            refused(&bound, &reopened, &[OPERATOR], now),
            Reason::InvalidAuthCaptureEvmSaltBindingMismatch
        );
        let mut bare = payload.clone();
        bare.as_object_mut().unwrap().remove("saltNonce");
        assert_eq!(
            refused(&bound, &bare, &[OPERATOR], now),
            Reason::InvalidAuthCaptureEvmPayloadFormat
        );
        // The same payment pointed at another authorizer no longer opens its salt.
        let mut repointed = bound.clone();
        repointed["extra"]["receiverAuthorizer"] = json!(FEE_RECIPIENT);
        assert_eq!(
            refused(&repointed, &payload, &[OPERATOR], now),
            Reason::InvalidAuthCaptureEvmSaltBindingMismatch
        );
    }
}

/// The escrow on a real chain: the official client's payment, checked, simulated as the
/// operator's `authorize` against the devnet's escrow (ours, answering commerce-payments'
/// ABI at the client's v1.1 address), authorized for real, then refused as already collected
/// with the specification's reason; the escrow holds exactly the amount.
mod onchain {
    use alloy::primitives::Bytes;
    use alloy::sol_types::SolCall;
    use purser_chain::auth_capture::AuthCaptureEscrow;
    use purser_chain::auth_capture::verify::{CollectRequest, check_collect};
    use purser_chain::rails::Rails;
    use purser_chain::rpc::RpcPolicy;
    use purser_devnet::{Devnet, DevnetChainSpec, DevnetOptions};
    use purser_x402::Reason;
    use purser_x402::auth_capture::{AuthCapturePayload, CollectPayload};
    use purser_x402::v2::PaymentRequirements;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_official_clients_payment_is_authorized_once_in_the_escrow() {
        let devnet = Devnet::start(DevnetOptions {
            payer_accounts: 1,
            canonical_usdc: false,
            ..DevnetOptions::with_chains(vec![DevnetChainSpec::base_sepolia()])
        })
        .await
        .expect("start the devnet");
        let chain = &devnet.chains()[0];
        let token = chain.token();
        let operator = devnet.accounts().settlement_signer.clone();
        let payer = devnet.accounts().payers[0].clone();
        let key = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(key.path(), operator.private_key_hex()).unwrap();
        let rails = Rails::open(&[chain.rail_config(key.path())], RpcPolicy::default())
            .await
            .unwrap();
        let rail = rails.get(&chain.network()).unwrap();
        let now = chain.latest_timestamp().await.unwrap();
        let requirements = json!({
            "scheme": "auth-capture",
            "network": chain.network(),
            "amount": "1000000",
            "asset": token.address,
            "payTo": RECEIVER,
            "maxTimeoutSeconds": 60,
            "extra": {
                "name": token.name, "version": token.version,
                "captureAuthorizer": operator.address(),
                "captureDeadline": now + 3_600, "refundDeadline": now + 7_200,
                "minFeeBps": 0, "maxFeeBps": 0, "feeRecipient": FEE_RECIPIENT,
            },
        });
        let out = run_script(
            "sdk-auth-capture-sign.mjs",
            &[
                ("X402_PAYER_KEY", payer.private_key_hex()),
                ("X402_REQUIREMENTS", requirements.to_string()),
            ],
        )
        .await;
        let payload = out["payload"].clone();
        let parsed: CollectPayload =
            match AuthCapturePayload::from_json(payload.as_object().unwrap()).unwrap() {
                AuthCapturePayload::Collect(c) => c,
                other => panic!("{other:?}"),
            };
        let typed: PaymentRequirements = serde_json::from_value(requirements).unwrap();
        let collect = check_collect(CollectRequest {
            requirements: &typed,
            accepted: &typed,
            payload: &parsed,
            settling: true,
            submitters: &[operator.address()],
            now,
        })
        .unwrap();
        let signature = Bytes::from(parsed.signature.to_bytes());

        // The simulation passes, and nothing is held yet.
        let authorize = collect.authorize_call(signature.clone());
        rail.simulate_escrow(&authorize).await.unwrap().unwrap();
        let escrow = collect.deployment.escrow;
        let before = rail
            .escrow_payment_state(escrow, collect.payment_hash)
            .await
            .unwrap();
        assert!(!before.collected && before.capturable == 0, "{before:?}");

        // Authorized for real by the operator: the escrow holds the whole amount...
        // (the calldata is the escrow's own ABI encoding of authorize)
        let call = AuthCaptureEscrow::authorizeCall {
            paymentInfo: collect.info.clone(),
            amount: U256::from(1_000_000u64),
            tokenCollector: collect.deployment.eip3009_collector,
            collectorData: signature.clone(),
        };
        assert_eq!(authorize.calldata(), Bytes::from(call.abi_encode()));
        chain
            .send_as(&operator, escrow, authorize.calldata(), "authorize")
            .await
            .unwrap();
        let held = rail
            .escrow_payment_state(escrow, collect.payment_hash)
            .await
            .unwrap();
        assert!(held.collected, "{held:?}");
        assert_eq!((held.capturable, held.refundable), (1_000_000, 0));

        // ...and the same payment again is refused with the specification's reason.
        let again = rail.simulate_escrow(&authorize).await.unwrap().unwrap_err();
        assert_eq!(
            again.reason,
            Reason::InvalidAuthCaptureEvmPaymentAlreadyCollected,
            "{again:?}"
        );
    }
}
