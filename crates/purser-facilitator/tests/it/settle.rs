//! Verification and settlement against a real chain, on both storage backends.

use alloy::primitives::U256;
use purser_domain::auth::Role;
use purser_domain::money::Amount;
use serde_json::{Value, json};

use crate::support::{Backend, Fixture, Setup, now, tenant_with_key};

on_both_backends!(
    a_payment_is_verified_settled_and_booked_once,
    bad_payments_get_their_reasons_and_move_nothing,
    fifty_concurrent_settles_make_one_transfer,
    payment_identifiers_replay_or_conflict,
    a_settlement_answers_only_the_requirements_it_settled,
    payment_identifiers_answer_only_the_requirements_they_settled,
);

async fn a_payment_is_verified_settled_and_booked_once(backend: Backend) {
    let fixture = Fixture::start(Setup::new(backend)).await;
    let payer = fixture.payer(0);
    let chain_id = fixture.chain().chain_id();
    let payment = fixture.payment(payer, 12_345);
    let body = payment.body(payer, chain_id);
    let before = (
        fixture.token_balance(payer.address()).await,
        fixture.token_balance(fixture.merchant).await,
    );

    let (status, verified) = fixture.post("verify", &body).await;
    assert_eq!(status, 200, "{verified}");
    assert_eq!(verified["isValid"], true, "{verified}");
    assert_eq!(verified["payer"], payer.address().to_checksum(None));

    let (status, settled) = fixture.post("settle", &body).await;
    assert_eq!(status, 200, "{settled}");
    assert_eq!(settled["success"], true, "{settled}");
    assert_eq!(settled["network"], fixture.chain().network());
    let tx = settled["transaction"].as_str().unwrap().to_owned();
    assert_eq!(tx.len(), 66);

    let after = (
        fixture.token_balance(payer.address()).await,
        fixture.token_balance(fixture.merchant).await,
    );
    assert_eq!(before.0 - after.0, U256::from(12_345u64));
    assert_eq!(after.1 - before.1, U256::from(12_345u64));
    assert_eq!(
        fixture.ledger_receivable().await,
        Amount::from_atomic(12_345)
    );
    // Every wei of gas: the receipt's gas used × effective gas price is on the settlement and
    // posted to the tenant's network fees on the chain, exactly.
    let receipt = {
        use alloy::providers::Provider;
        fixture
            .chain()
            .provider()
            .get_transaction_receipt(tx.parse().unwrap())
            .await
            .unwrap()
            .expect("the settlement's receipt")
    };
    let paid = u128::from(receipt.gas_used) * receipt.effective_gas_price;
    assert!(paid > 0);
    assert_eq!(fixture.network_fees().await, Amount::from_atomic(paid));

    // The same payment again: the same answer, no second transfer.
    let (_, again) = fixture.post("settle", &body).await;
    assert_eq!(again["success"], true);
    assert_eq!(again["transaction"], tx.as_str());
    assert_eq!(fixture.token_balance(fixture.merchant).await, after.1);
    assert_eq!(
        fixture.ledger_receivable().await,
        Amount::from_atomic(12_345)
    );
    assert_eq!(
        fixture.network_fees().await,
        Amount::from_atomic(paid),
        "a replayed answer posts no second fee"
    );
    // And verifying it now says the authorization is spent.
    let (_, spent) = fixture.post("verify", &body).await;
    assert_eq!(spent["isValid"], false);
    assert_eq!(
        spent["invalidReason"],
        "invalid_exact_evm_nonce_already_used"
    );
}

async fn bad_payments_get_their_reasons_and_move_nothing(backend: Backend) {
    let fixture = Fixture::start(Setup::new(backend)).await;
    let payer = fixture.payer(0);
    let other = fixture.payer(1);
    let chain_id = fixture.chain().chain_id();
    let merchant_before = fixture.token_balance(fixture.merchant).await;
    let base = fixture.payment(payer, 5_000);
    let broke =
        purser_devnet::TestAccount::from_private_key(crate::support::random_nonce()).unwrap();

    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "unknown network",
            {
                let mut p = base.clone();
                p.network = "eip155:1".into();
                p.body(payer, chain_id)
            },
            "invalid_network",
        ),
        (
            "wrong recipient",
            {
                let mut p = base.clone();
                p.pay_to = other.address();
                p.body(payer, chain_id)
            },
            "invalid_exact_evm_recipient_mismatch",
        ),
        (
            "short value",
            {
                let mut p = base.clone();
                p.amount = 5_001;
                p.body(payer, chain_id)
            },
            "invalid_exact_evm_payload_authorization_value_mismatch",
        ),
        (
            "expired",
            {
                let mut p = base.clone();
                p.valid_before = now() + 2;
                p.body(payer, chain_id)
            },
            "invalid_exact_evm_payload_authorization_valid_before",
        ),
        (
            "not yet valid",
            {
                let mut p = base.clone();
                p.valid_after = now() + 600;
                p.body(payer, chain_id)
            },
            "invalid_exact_evm_payload_authorization_valid_after",
        ),
        (
            "signed by another key",
            base.body(other, chain_id),
            "invalid_exact_evm_signature",
        ),
        (
            "signed for another chain",
            base.body(payer, 1),
            "invalid_exact_evm_signature",
        ),
        (
            "insufficient balance",
            {
                let mut p = base.clone();
                p.from = broke.address();
                p.body(&broke, chain_id)
            },
            "invalid_exact_evm_insufficient_balance",
        ),
        (
            "wrong EIP-712 name",
            {
                let mut p = base.clone();
                p.token.name = "Not USDC".into();
                p.body(payer, chain_id)
            },
            "invalid_exact_evm_token_name_mismatch",
        ),
        (
            "missing EIP-712 domain",
            {
                let mut b = base.body(payer, chain_id);
                b["paymentRequirements"]
                    .as_object_mut()
                    .unwrap()
                    .remove("extra");
                b["paymentPayload"]["accepted"]
                    .as_object_mut()
                    .unwrap()
                    .remove("extra");
                b
            },
            "invalid_exact_evm_missing_eip712_domain",
        ),
        (
            "another scheme",
            {
                let mut b = base.body(payer, chain_id);
                b["paymentRequirements"]["scheme"] = json!("upto");
                b["paymentPayload"]["accepted"]["scheme"] = json!("upto");
                b
            },
            "unsupported_scheme",
        ),
        (
            "network mismatch",
            {
                let mut b = base.body(payer, chain_id);
                b["paymentPayload"]["accepted"]["network"] = json!("eip155:421614");
                b
            },
            "invalid_exact_evm_network_mismatch",
        ),
    ];
    for (what, body, reason) in &cases {
        let (status, verified) = fixture.post("verify", body).await;
        assert_eq!(status, 200, "{what}: {verified}");
        assert_eq!(verified["isValid"], false, "{what}: {verified}");
        assert_eq!(verified["invalidReason"], *reason, "{what}: {verified}");
        let (status, settled) = fixture.post("settle", body).await;
        assert_eq!(status, 200, "{what}: {settled}");
        assert_eq!(settled["success"], false, "{what}: {settled}");
        assert_eq!(settled["errorReason"], *reason, "{what}: {settled}");
        assert_eq!(settled["transaction"], "", "{what}: nothing was sent");
        assert!(settled["network"].is_string(), "{what}: {settled}");
    }
    // A reused authorization: settle once, then present it again with other requirements.
    let (_, first) = fixture.post("settle", &base.body(payer, chain_id)).await;
    assert_eq!(first["success"], true, "{first}");
    let mut reused = base.body(payer, chain_id);
    reused["paymentPayload"]["resource"]["url"] = json!("https://merchant.example/other");
    let (_, second) = fixture.post("verify", &reused).await;
    assert_eq!(
        second["invalidReason"],
        "invalid_exact_evm_nonce_already_used"
    );

    // Not x402 at all: HTTP errors with codes.
    for (body, code) in [
        (json!("not an object"), "malformed_json"),
        (json!({ "x402Version": 2 }), "malformed_json"),
        (
            json!({ "x402Version": 9, "paymentPayload": { "x402Version": 9 }, "paymentRequirements": {} }),
            "unsupported_x402_version",
        ),
    ] {
        let (status, answer) = fixture.post("settle", &body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
    }
    let raw = fixture
        .client
        .post(format!("{}/facilitator/verify", fixture.base))
        .bearer_auth(&fixture.key)
        .header("content-type", "application/json")
        .body("{\"x402Version\":2,\"paymentPayload\":")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let mut bad_signature = base.body(payer, chain_id);
    bad_signature["paymentPayload"]["payload"]["signature"] = json!("0xnothex");
    let (_, answer) = fixture.post("verify", &bad_signature).await;
    assert_eq!(answer["isValid"], false);
    assert_eq!(
        answer["invalidReason"], "invalid_exact_evm_failed_to_parse_signature",
        "{answer}"
    );

    // Callers: no key, a key of the wrong role.
    let (status, answer) = fixture
        .post_as(None, "settle", &base.body(payer, chain_id))
        .await;
    assert_eq!(status, 401);
    assert_eq!(answer["error"]["code"], "unauthenticated");
    let (_, reader) = tenant_with_key(&fixture.store, "Reader", Role::TenantRead).await;
    let (status, answer) = fixture
        .post_as(Some(&reader), "settle", &base.body(payer, chain_id))
        .await;
    assert_eq!(status, 403, "{answer}");

    let merchant_after = fixture.token_balance(fixture.merchant).await;
    assert_eq!(
        merchant_after - merchant_before,
        U256::from(5_000u64),
        "only the one good payment moved"
    );
    assert_eq!(
        fixture.ledger_receivable().await,
        Amount::from_atomic(5_000)
    );
}

async fn fifty_concurrent_settles_make_one_transfer(backend: Backend) {
    let fixture = Fixture::start(Setup::new(backend)).await;
    let payer = fixture.payer(0);
    let payment = fixture.payment(payer, 777);
    let body = payment.body(payer, fixture.chain().chain_id());
    let merchant_before = fixture.token_balance(fixture.merchant).await;
    let answers = futures::future::join_all((0..50).map(|_| fixture.post("settle", &body))).await;
    let hashes: std::collections::HashSet<String> = answers
        .iter()
        .map(|(status, answer)| {
            assert_eq!(*status, 200, "{answer}");
            assert_eq!(answer["success"], true, "{answer}");
            answer["transaction"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(hashes.len(), 1, "every caller got the one outcome");
    assert_eq!(
        fixture.token_balance(fixture.merchant).await - merchant_before,
        U256::from(777u64)
    );
    assert_eq!(fixture.ledger_receivable().await, Amount::from_atomic(777));
    let nonce = fixture
        .chain()
        .provider()
        .get_transaction_count(fixture.devnet.accounts().settlement_signer.address())
        .await
        .unwrap();
    assert_eq!(nonce, 1, "the signer sent exactly one transaction");
}

use alloy::providers::Provider;

async fn payment_identifiers_replay_or_conflict(backend: Backend) {
    let fixture = Fixture::start(Setup::new(backend)).await;
    let payer = fixture.payer(0);
    let chain_id = fixture.chain().chain_id();
    let identified = |id: &str| json!({ "payment-identifier": { "info": { "required": true, "id": id }, "schema": {} } });
    let mut first = fixture.payment(payer, 100);
    first.extensions = Some(identified("pay_0123456789abcdef0123"));
    let (_, settled) = fixture.post("settle", &first.body(payer, chain_id)).await;
    assert_eq!(settled["success"], true, "{settled}");
    // Same id, same payload: the stored answer.
    let (status, replay) = fixture.post("settle", &first.body(payer, chain_id)).await;
    assert_eq!(status, 200);
    assert_eq!(replay, settled);
    // Same id, another payload: 409.
    let mut second = fixture.payment(payer, 200);
    second.extensions = Some(identified("pay_0123456789abcdef0123"));
    let (status, conflict) = fixture.post("settle", &second.body(payer, chain_id)).await;
    assert_eq!(status, 409, "{conflict}");
    assert_eq!(conflict["error"]["code"], "payment_identifier_conflict");
    // Required, but no id: 400.
    let mut missing = fixture.payment(payer, 300);
    missing.extensions =
        Some(json!({ "payment-identifier": { "info": { "required": true }, "schema": {} } }));
    let (status, refused) = fixture.post("settle", &missing.body(payer, chain_id)).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["code"], "invalid_payment_identifier");
    // Malformed id: 400.
    let mut malformed = fixture.payment(payer, 300);
    malformed.extensions = Some(identified("short"));
    let (status, _) = fixture
        .post("settle", &malformed.body(payer, chain_id))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        fixture.ledger_receivable().await,
        Amount::from_atomic(100),
        "only the first payment moved"
    );
}

/// A contract wallet pays: ERC-1271, through both `transferWithAuthorization` overloads.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn smart_wallets_pay_through_erc1271() {
    let fixture = Fixture::start(Setup::new(Backend::Sqlite)).await;
    let chain = fixture.chain();
    let owner = fixture.payer(0);
    let wallet = chain.deploy_smart_wallet(owner.address()).await.unwrap();
    chain
        .mint(chain.token().address, wallet, U256::from(1_000_000u64))
        .await
        .unwrap();
    let merchant_before = fixture.token_balance(fixture.merchant).await;
    // A 65-byte owner signature takes the (v, r, s) overload; a longer one the bytes overload.
    for (value, suffix) in [(1_000u128, &[][..]), (2_000u128, &[0xee_u8; 7][..])] {
        let mut payment = fixture.payment(owner, value);
        payment.from = wallet;
        let body = serde_json::json!({
            "x402Version": 2,
            "paymentPayload": payment.payload_signed_with(owner, chain.chain_id(), suffix),
            "paymentRequirements": payment.requirements(),
        });
        let (_, verified) = fixture.post("verify", &body).await;
        assert_eq!(verified["isValid"], true, "{verified}");
        assert_eq!(verified["payer"], wallet.to_checksum(None));
        let (_, settled) = fixture.post("settle", &body).await;
        assert_eq!(settled["success"], true, "{settled}");
    }
    assert_eq!(fixture.token_balance(wallet).await, U256::from(997_000u64));
    assert_eq!(
        fixture.token_balance(fixture.merchant).await - merchant_before,
        U256::from(3_000u64)
    );
    // Another key cannot sign for the wallet.
    let mut forged = fixture.payment(owner, 10);
    forged.from = wallet;
    let body = serde_json::json!({
        "x402Version": 2,
        "paymentPayload": forged.payload_signed_with(fixture.payer(1), chain.chain_id(), &[]),
        "paymentRequirements": forged.requirements(),
    });
    let (_, verified) = fixture.post("verify", &body).await;
    assert_eq!(
        verified["invalidReason"], "invalid_exact_evm_signature",
        "{verified}"
    );
}

/// ERC-6492 signatures of undeployed wallets are refused unless their factory is allowlisted
/// (and the allowlist is empty by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counterfactual_wallets_need_an_allowlisted_factory() {
    use alloy::sol_types::SolValue;
    let fixture = Fixture::start(Setup::new(Backend::Sqlite)).await;
    let owner = fixture.payer(0);
    let undeployed = alloy::primitives::Address::repeat_byte(0x42);
    let mut payment = fixture.payment(owner, 10);
    payment.from = undeployed;
    let mut body = serde_json::json!({
        "x402Version": 2,
        "paymentPayload": payment.payload_signed_with(owner, fixture.chain().chain_id(), &[]),
        "paymentRequirements": payment.requirements(),
    });
    let inner = alloy::hex::decode(
        body["paymentPayload"]["payload"]["signature"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
    )
    .unwrap();
    let factory = alloy::primitives::Address::repeat_byte(0x77);
    let mut wrapped = (
        factory,
        alloy::primitives::Bytes::from(vec![1u8, 2, 3]),
        alloy::primitives::Bytes::from(inner),
    )
        .abi_encode_params();
    wrapped.extend_from_slice(&[0x64, 0x92].repeat(16));
    body["paymentPayload"]["payload"]["signature"] =
        json!(format!("0x{}", alloy::hex::encode(&wrapped)));
    let (_, verified) = fixture.post("verify", &body).await;
    assert_eq!(verified["isValid"], false);
    assert_eq!(
        verified["invalidReason"], "eip6492_factory_not_allowed",
        "{verified}"
    );
}

/// `/supported` lists what the resource servers register.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn supported_lists_kinds_extensions_and_signers() {
    let fixture = Fixture::start(Setup::new(Backend::Sqlite)).await;
    let response = fixture
        .client
        .get(format!("{}/facilitator/supported", fixture.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let supported: Value = response.json().await.unwrap();
    let kinds = supported["kinds"].as_array().unwrap();
    assert!(
        kinds.contains(&json!({ "x402Version": 2, "scheme": "exact", "network": "eip155:84532" })),
        "{supported}"
    );
    assert!(
        kinds.contains(&json!({ "x402Version": 1, "scheme": "exact", "network": "base-sepolia" })),
        "{supported}"
    );
    assert_eq!(
        supported["extensions"],
        json!(["payment-identifier", "bazaar"])
    );
    let signer = fixture
        .devnet
        .accounts()
        .settlement_signer
        .address()
        .to_checksum(None);
    assert_eq!(supported["signers"]["eip155:*"], json!([signer]));
}

/// x402 v1 bodies (`maxAmountRequired`, network names) are verified and settled too, and
/// answered with the network as the request named it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn v1_requests_are_served_in_v1_terms() {
    let fixture = Fixture::start(Setup::new(Backend::Sqlite)).await;
    let payer = fixture.payer(0);
    let payment = fixture.payment(payer, 2_500);
    let v2 = payment.body(payer, fixture.chain().chain_id());
    let requirements = json!({
        "scheme": "exact",
        "network": "base-sepolia",
        "maxAmountRequired": "2500",
        "resource": "https://merchant.example/paid",
        "description": "a paid thing",
        "mimeType": "application/json",
        "payTo": v2["paymentRequirements"]["payTo"],
        "maxTimeoutSeconds": 300,
        "asset": v2["paymentRequirements"]["asset"],
        "extra": v2["paymentRequirements"]["extra"],
    });
    let body = json!({
        "x402Version": 1,
        "paymentPayload": {
            "x402Version": 1,
            "scheme": "exact",
            "network": "base-sepolia",
            "payload": v2["paymentPayload"]["payload"],
        },
        "paymentRequirements": requirements,
    });
    let (status, verified) = fixture.post("verify", &body).await;
    assert_eq!(status, 200, "{verified}");
    assert_eq!(verified["isValid"], true, "{verified}");
    let mut short = body.clone();
    short["paymentRequirements"]["maxAmountRequired"] = json!("2501");
    let (_, refused) = fixture.post("verify", &short).await;
    assert_eq!(
        refused["invalidReason"], "invalid_exact_evm_authorization_value",
        "the v1 verifier's string: {refused}"
    );
    let (_, settled) = fixture.post("settle", &body).await;
    assert_eq!(settled["success"], true, "{settled}");
    assert_eq!(settled["network"], "base-sepolia");
    assert_eq!(
        fixture.ledger_receivable().await,
        Amount::from_atomic(2_500)
    );
}

/// With anonymous access configured, callers without a key settle for the configured tenant;
/// a bad key is still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn anonymous_callers_settle_for_the_configured_tenant_when_allowed() {
    let mut setup = Setup::new(Backend::Sqlite);
    setup.anonymous = true;
    let fixture = Fixture::start(setup).await;
    let payer = fixture.payer(0);
    let body = fixture
        .payment(payer, 99)
        .body(payer, fixture.chain().chain_id());
    let (status, settled) = fixture.post_as(None, "settle", &body).await;
    assert_eq!(status, 200, "{settled}");
    assert_eq!(settled["success"], true, "{settled}");
    assert_eq!(
        fixture.ledger_receivable().await,
        Amount::from_atomic(99),
        "booked to the anonymous tenant"
    );
    let (status, _) = fixture
        .post_as(
            Some("psk_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            "settle",
            &body,
        )
        .await;
    assert_eq!(status, 401);
}

alloy::sol! {
    interface ITestSmartWalletFactory {
        function deploy(address owner, bytes32 salt) external returns (address wallet);
        function predict(address owner, bytes32 salt) external view returns (address);
    }
}

/// An undeployed wallet of an allowlisted factory pays with an ERC-6492 signature: verified by
/// deploying it inside a call, settled by deploying it, then transferring.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counterfactual_wallets_of_allowlisted_factories_pay() {
    use alloy::primitives::Bytes;
    use alloy::sol_types::{SolCall, SolValue};
    use purser_domain::settlement::AttemptKind;
    let fixture = Fixture::start(Setup::new(Backend::Sqlite)).await;
    let chain = fixture.chain();
    let artefact: Value = serde_json::from_str(include_str!(
        "../../../../contracts/out/TestSmartWalletFactory.json"
    ))
    .unwrap();
    let creation = alloy::hex::decode(
        artefact["bytecode"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
    )
    .unwrap();
    let factory = chain.deploy_contract(creation.into()).await.unwrap();
    let owner = fixture.payer(0);
    let salt = crate::support::random_nonce();
    let wallet = chain
        .call(
            factory,
            &ITestSmartWalletFactory::predictCall {
                owner: owner.address(),
                salt,
            },
        )
        .await
        .unwrap();
    chain
        .mint(chain.token().address, wallet, U256::from(50_000u64))
        .await
        .unwrap();
    assert!(
        chain
            .provider()
            .get_code_at(wallet)
            .await
            .unwrap()
            .is_empty(),
        "not deployed yet"
    );

    let mut payment = fixture.payment(owner, 20_000);
    payment.from = wallet;
    let mut body = json!({
        "x402Version": 2,
        "paymentPayload": payment.payload_signed_with(owner, chain.chain_id(), &[]),
        "paymentRequirements": payment.requirements(),
    });
    let inner = alloy::hex::decode(
        body["paymentPayload"]["payload"]["signature"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
    )
    .unwrap();
    let deploy = ITestSmartWalletFactory::deployCall {
        owner: owner.address(),
        salt,
    }
    .abi_encode();
    let mut wrapped = (factory, Bytes::from(deploy), Bytes::from(inner)).abi_encode_params();
    wrapped.extend_from_slice(&[0x64, 0x92].repeat(16));
    body["paymentPayload"]["payload"]["signature"] =
        json!(format!("0x{}", alloy::hex::encode(&wrapped)));

    let (rail, _keys) =
        crate::support::rail_config(&fixture.devnet, vec![chain.rpc_url().to_owned()], 1, 20);
    let rail = purser_chain::config::RailConfig {
        erc6492_factories: vec![format!("{factory:#x}")],
        ..rail
    };
    let rails = purser_chain::rails::Rails::open(&[rail], crate::support::fast_rpc())
        .await
        .unwrap();
    let facilitator = purser_facilitator::Facilitator::new(
        fixture.store.clone(),
        std::sync::Arc::new(rails),
        Default::default(),
    )
    .unwrap();
    let bytes = serde_json::to_vec(&body).unwrap();
    let verified = facilitator.verify(&bytes).await.unwrap();
    assert!(verified.is_valid, "{verified:?}");
    let scope = purser_domain::auth::TenantScope::trusted(fixture.tenant);
    let settled = facilitator.settle(scope, &bytes).await.unwrap();
    assert!(settled.success, "{settled:?}");
    assert!(
        !chain
            .provider()
            .get_code_at(wallet)
            .await
            .unwrap()
            .is_empty(),
        "deployed by the settlement"
    );
    assert_eq!(fixture.token_balance(wallet).await, U256::from(30_000u64));
    let signer = format!(
        "{:#x}",
        fixture.devnet.accounts().settlement_signer.address()
    );
    let kinds: Vec<AttemptKind> = fixture
        .store
        .signer_attempts_from(&chain.network(), &signer, 0)
        .await
        .unwrap()
        .iter()
        .map(|a| a.kind)
        .collect();
    assert_eq!(kinds, vec![AttemptKind::Deploy, AttemptKind::Transfer]);
    assert_eq!(
        fixture.ledger_receivable().await,
        Amount::from_atomic(20_000)
    );
}

/// A payment whose identifier settle would refuse is not valid at verify either, so a resource
/// server never runs its handler for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verify_refuses_what_settle_would_refuse_for_its_identifier() {
    let fixture = Fixture::start(Setup::new(Backend::Sqlite)).await;
    let payer = fixture.payer(0);
    let mut payment = fixture.payment(payer, 10);
    payment.extensions =
        Some(json!({ "payment-identifier": { "info": { "required": true }, "schema": {} } }));
    let (status, verified) = fixture
        .post("verify", &payment.body(payer, fixture.chain().chain_id()))
        .await;
    assert_eq!(status, 200);
    assert_eq!(verified["isValid"], false, "{verified}");
    assert_eq!(verified["invalidReason"], "invalid_payload");
    assert!(
        verified["invalidMessage"]
            .as_str()
            .unwrap()
            .contains("payment-identifier"),
        "{verified}"
    );
}

/// What the fixture's tenant has settled, and what moved on chain for it: a replay that is
/// refused must leave all of it as it was.
struct Settled {
    settlements: Vec<purser_domain::settlement::Settlement>,
    merchant: U256,
    signer_transactions: u64,
    receivable: Amount,
}

async fn settled_state(fixture: &Fixture) -> Settled {
    let settlements = fixture
        .store
        .list_settlements(
            purser_domain::auth::TenantScope::trusted(fixture.tenant),
            purser_domain::page::PageRequest::first(10).unwrap(),
        )
        .await
        .unwrap()
        .items;
    let signer_transactions = fixture
        .chain()
        .provider()
        .get_transaction_count(fixture.devnet.accounts().settlement_signer.address())
        .await
        .unwrap();
    Settled {
        settlements,
        merchant: fixture.token_balance(fixture.merchant).await,
        signer_transactions,
        receivable: fixture.ledger_receivable().await,
    }
}

fn assert_unchanged(what: &str, before: &Settled, after: &Settled) {
    assert_eq!(
        after.settlements, before.settlements,
        "{what}: the settlement is unchanged"
    );
    assert_eq!(after.merchant, before.merchant, "{what}: nothing moved");
    assert_eq!(
        after.signer_transactions, before.signer_transactions,
        "{what}: nothing was broadcast"
    );
    assert_eq!(
        after.receivable, before.receivable,
        "{what}: nothing booked"
    );
}

/// Each way of asking for something else with a payment settled as `body`: what is bent, the
/// request, and the reason a new payment of that shape gets.
fn other_requirements(
    fixture: &Fixture,
    body: &Value,
    settled_value: u128,
) -> Vec<(&'static str, Value, &'static str)> {
    let bent = |path: &str, value: Value| {
        let mut b = body.clone();
        b["paymentRequirements"][path] = value;
        b
    };
    let other_merchant = fixture.payer(1).address().to_checksum(None);
    let v1 = {
        let requirements = &body["paymentRequirements"];
        json!({
            "x402Version": 1,
            "paymentPayload": {
                "x402Version": 1,
                "scheme": "exact",
                "network": "base-sepolia",
                "payload": body["paymentPayload"]["payload"],
            },
            "paymentRequirements": {
                "scheme": "exact",
                "network": "base-sepolia",
                "maxAmountRequired": (settled_value * 10).to_string(),
                "resource": "https://merchant.example/dearer",
                "description": "a dearer thing",
                "payTo": requirements["payTo"],
                "maxTimeoutSeconds": requirements["maxTimeoutSeconds"],
                "asset": requirements["asset"],
                "extra": requirements["extra"],
            },
        })
    };
    vec![
        (
            "a higher amount",
            bent("amount", json!((settled_value * 10).to_string())),
            "invalid_exact_evm_payload_authorization_value_mismatch",
        ),
        (
            "a lower amount",
            bent("amount", json!((settled_value - 1).to_string())),
            "invalid_exact_evm_payload_authorization_value_mismatch",
        ),
        (
            "another payTo",
            bent("payTo", json!(other_merchant)),
            "invalid_exact_evm_recipient_mismatch",
        ),
        (
            "a higher amount, in x402 v1",
            v1,
            "invalid_exact_evm_authorization_value",
        ),
        (
            "the same transfer under another timeout",
            bent("maxTimeoutSeconds", json!(60)),
            "invalid_exact_evm_nonce_already_used",
        ),
        (
            "the same transfer with another extra",
            bent(
                "extra",
                json!({
                    "name": body["paymentRequirements"]["extra"]["name"],
                    "version": body["paymentRequirements"]["extra"]["version"],
                    "assetTransferMethod": "eip3009",
                }),
            ),
            "invalid_exact_evm_nonce_already_used",
        ),
    ]
}

/// A settled authorization presented again for other requirements (another amount, another
/// `payTo`, anything else that was settled) is judged as a new payment would be and refused
/// with its reason, never answered with the settlement's success; the settlement stays as it
/// was and nothing is sent. A true retry still gets the stored success, addresses in any case.
async fn a_settlement_answers_only_the_requirements_it_settled(backend: Backend) {
    let fixture = Fixture::start(Setup::new(backend)).await;
    let payer = fixture.payer(0);
    let payment = fixture.payment(payer, 4_000);
    let body = payment.body(payer, fixture.chain().chain_id());
    let (_, settled) = fixture.post("settle", &body).await;
    assert_eq!(settled["success"], true, "{settled}");
    let before = settled_state(&fixture).await;
    assert_eq!(before.settlements.len(), 1);
    assert_eq!(before.signer_transactions, 1);

    for (what, other, reason) in other_requirements(&fixture, &body, 4_000) {
        let (status, answer) = fixture.post("settle", &other).await;
        assert_eq!(status, 200, "{what}: {answer}");
        assert_eq!(answer["success"], false, "{what}: {answer}");
        assert_eq!(answer["errorReason"], reason, "{what}: {answer}");
        assert_eq!(answer["transaction"], "", "{what}: {answer}");
        assert_unchanged(what, &before, &settled_state(&fixture).await);
    }

    // A true retry: the stored success, also with the same addresses in lower case.
    let (_, again) = fixture.post("settle", &body).await;
    assert_eq!(again, settled);
    let mut lower = body.clone();
    for field in ["payTo", "asset"] {
        let address = lower["paymentRequirements"][field]
            .as_str()
            .unwrap()
            .to_ascii_lowercase();
        lower["paymentRequirements"][field] = json!(address);
    }
    let (_, again) = fixture.post("settle", &lower).await;
    assert_eq!(again, settled);
    assert_unchanged("true retries", &before, &settled_state(&fixture).await);
}

/// The payment-identifier extension answers its stored response only to the requirements it
/// was settled for: the same payload (so the same identifier record) for other requirements is
/// judged as a new payment and refused, and the stored response stays for true retries.
async fn payment_identifiers_answer_only_the_requirements_they_settled(backend: Backend) {
    let fixture = Fixture::start(Setup::new(backend)).await;
    let payer = fixture.payer(0);
    let mut payment = fixture.payment(payer, 4_000);
    payment.extensions = Some(json!({
        "payment-identifier": { "info": { "required": true, "id": "pay_requirements_0123456789" }, "schema": {} }
    }));
    let body = payment.body(payer, fixture.chain().chain_id());
    let (_, settled) = fixture.post("settle", &body).await;
    assert_eq!(settled["success"], true, "{settled}");
    let before = settled_state(&fixture).await;

    // The v1 case carries no extensions: it is the claim of the authorization that answers it.
    for (what, other, reason) in other_requirements(&fixture, &body, 4_000)
        .into_iter()
        .filter(|(_, other, _)| other["x402Version"] == 2)
    {
        let (status, answer) = fixture.post("settle", &other).await;
        assert_eq!(status, 200, "{what}: {answer}");
        assert_eq!(answer["success"], false, "{what}: {answer}");
        assert_eq!(answer["errorReason"], reason, "{what}: {answer}");
        assert_eq!(answer["transaction"], "", "{what}: {answer}");
        assert_unchanged(what, &before, &settled_state(&fixture).await);
    }

    let (status, again) = fixture.post("settle", &body).await;
    assert_eq!(status, 200);
    assert_eq!(again, settled, "a true retry gets the stored response");
    assert_unchanged("a true retry", &before, &settled_state(&fixture).await);
}
