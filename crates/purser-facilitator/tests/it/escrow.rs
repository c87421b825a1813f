//! Escrowed payments (`auth-capture`) through `/facilitator/verify` and `/settle`, on both
//! backends: the official client's payment authorized into the devnet's escrow, then captured
//! in parts, refunded and voided by lifecycle payloads; every balance on chain moves as the
//! ledger says, and the ledger matches the escrow's `paymentState`.

use alloy::primitives::{Address, U256, address};
use alloy::sol;
use alloy::sol_types::SolCall;
use purser_chain::auth_capture::{self, PaymentInfo};
use purser_chain::config::AuthCaptureConfig;
use purser_domain::auth::{Role, TenantScope};
use purser_domain::ledger::AccountKind;
use purser_domain::money::Amount;
use purser_testkit::interop::{EscrowOffer, auth_capture_requirements, pay_auth_capture};
use purser_x402::auth_capture::{
    AuthCaptureExtra, AuthCapturePayload, LifecycleOperation, LifecycleOrder, LifecyclePayload,
};
use purser_x402::exact_evm::EvmAddress;
use purser_x402::v2::PaymentRequirements;
use serde_json::{Value, json};

use crate::support::{Backend, Fixture, Setup, facilitator_with, tenant_with_key};

/// Where the facilitator's fee goes: an address nobody else pays.
const FEE_RECIPIENT: Address = address!("0x000000000000000000000000000000000000fee1");
/// One percent, fixed (equal bounds, as a facilitator should advertise).
const FEE_BPS: u16 = 100;
const AMOUNT: u128 = 1_000_000;

sol! {
    function approve(address spender, uint256 amount) external returns (bool);
}

on_both_backends!(
    an_escrowed_payment_is_held_captured_in_parts_refunded_and_voided,
    a_charge_takes_what_the_server_completes_and_may_be_refunded,
    concurrent_captures_never_take_more_than_is_held,
    every_operation_interrupted_after_broadcast_ends_in_one_outcome,
    a_hold_the_payer_reclaims_after_its_deadline_is_posted_once,
);

fn escrow_setup(backend: Backend) -> Setup {
    Setup {
        auth_capture: Some(AuthCaptureConfig {
            escrow: None,
            fee_recipient: Some(FEE_RECIPIENT.to_checksum(None)),
            min_fee_bps: FEE_BPS,
            max_fee_bps: FEE_BPS,
        }),
        ..Setup::new(backend)
    }
}

async fn start(backend: Backend) -> Fixture {
    Fixture::start(escrow_setup(backend)).await
}

/// Funds the operator (the fixture's signer) for refunds and approves the refund collector.
async fn fund_refunds(fixture: &Fixture, amount: u64) {
    let operator = fixture.devnet.accounts().settlement_signer.clone();
    let chain = fixture.chain();
    chain
        .mint(
            chain.token().address,
            operator.address(),
            U256::from(amount),
        )
        .await
        .unwrap();
    let approval = approveCall {
        spender: auth_capture::V1_1.operator_refund_collector,
        amount: U256::MAX,
    };
    chain
        .send_as(
            &operator,
            chain.token().address,
            approval.abi_encode().into(),
            "approve",
        )
        .await
        .unwrap();
}

/// An escrowed payment collected by the fixture's facilitator: the requirements a server
/// builds from `/supported`, and the official client's payload for them.
struct Escrowed {
    requirements: Value,
    payload: Value,
    info: PaymentInfo,
    hash: alloy::primitives::B256,
}

impl Escrowed {
    async fn signed(fixture: &Fixture, payer_index: usize) -> Self {
        Self::signed_for(fixture, payer_index, "escrow").await
    }

    /// Like [`Self::signed`], in the payment flow `flow` (`escrow` or `authorization`).
    async fn signed_for(fixture: &Fixture, payer_index: usize, flow: &str) -> Self {
        let supported = fixture
            .client
            .get(format!("{}/facilitator/supported", fixture.base))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        let token = fixture.chain().token();
        let now = fixture.chain().latest_timestamp().await.unwrap();
        let network = fixture.chain().network();
        let requirements = auth_capture_requirements(
            &supported,
            &EscrowOffer {
                network: &network,
                asset: &token.address.to_checksum(None),
                name: &token.name,
                version: &token.version,
                pay_to: &fixture.merchant.to_checksum(None),
                amount: AMOUNT,
                capture_deadline: now + 3_600,
                refund_deadline: now + 7_200,
            },
        );
        let mut requirements = requirements;
        requirements["extra"]["paymentFlow"] = json!(flow);
        let extra = requirements["extra"].clone();
        let payer = fixture.payer(payer_index);
        let payload = pay_auth_capture(&payer.private_key_hex(), &requirements).await;
        let inner = &payload["payload"];
        let info = PaymentInfo {
            operator: extra["captureAuthorizer"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap(),
            payer: payer.address(),
            receiver: fixture.merchant,
            token: token.address,
            maxAmount: alloy::primitives::aliases::U120::from(AMOUNT),
            preApprovalExpiry: alloy::primitives::aliases::U48::from(
                inner["authorization"]["validBefore"]
                    .as_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap(),
            ),
            authorizationExpiry: alloy::primitives::aliases::U48::from(now + 3_600),
            refundExpiry: alloy::primitives::aliases::U48::from(now + 7_200),
            minFeeBps: FEE_BPS,
            maxFeeBps: FEE_BPS,
            feeReceiver: FEE_RECIPIENT,
            salt: inner["salt"].as_str().unwrap().parse().unwrap(),
        };
        let hash = auth_capture::payment_hash(
            fixture.chain().chain_id(),
            auth_capture::V1_1.escrow,
            &info,
        );
        Self {
            requirements,
            payload,
            info,
            hash,
        }
    }

    fn collect(&self) -> Value {
        json!({
            "x402Version": 2,
            "paymentPayload": self.payload,
            "paymentRequirements": self.requirements,
        })
    }

    /// A lifecycle request for the payment, written by Purser's own builder, with no
    /// authorizer signature: the receiver's authorizer is the facilitator's own, and the
    /// caller's key authenticates it.
    fn lifecycle(&self, request: LifecycleOrder) -> Value {
        let requirements: PaymentRequirements =
            serde_json::from_value(self.requirements.clone()).unwrap();
        let extra = AuthCaptureExtra::from_json(&self.requirements["extra"]).unwrap();
        let AuthCapturePayload::Collect(collect) =
            AuthCapturePayload::from_json(self.payload["payload"].as_object().unwrap()).unwrap()
        else {
            panic!("a collect payload")
        };
        let info = collect.payment_info(&requirements, &extra).unwrap();
        let payload = LifecyclePayload::unsigned(info, collect.salt_nonce.unwrap(), request);
        json!({
            "x402Version": 2,
            "paymentPayload": {
                "x402Version": 2,
                "accepted": self.requirements,
                "payload": payload.to_json(),
            },
            "paymentRequirements": self.requirements,
        })
    }

    fn void(&self) -> Value {
        self.lifecycle(LifecycleOrder::void())
    }

    fn capture(&self, amount: u128, expected: (u128, u128)) -> Value {
        let fee = amount * u128::from(FEE_BPS) / 10_000;
        self.lifecycle(LifecycleOrder {
            operation: LifecycleOperation::Capture,
            amount: Some(Amount::from_atomic(amount)),
            fee: Some((
                Amount::from_atomic(fee),
                EvmAddress::parse(&FEE_RECIPIENT.to_checksum(None)).unwrap(),
            )),
            expected: Some(amounts(expected)),
        })
    }

    fn refund(&self, amount: u128, expected: (u128, u128)) -> Value {
        self.lifecycle(LifecycleOrder::refund(
            Amount::from_atomic(amount),
            amounts(expected),
        ))
    }

    /// (capturable, refundable) as the escrow holds them.
    async fn state(&self, fixture: &Fixture) -> (u128, u128) {
        let state = fixture
            .chain()
            .payment_state(auth_capture::V1_1.escrow, &self.info)
            .await
            .unwrap();
        (
            state.capturableAmount.to::<u128>(),
            state.refundableAmount.to::<u128>(),
        )
    }
}

/// The tenant's posted balance of each escrow account: credits less debits.
async fn ledger(fixture: &Fixture, kind: AccountKind) -> i128 {
    purser_testkit::store_suite::posted(&fixture.store, fixture.tenant, kind).await
}

/// The ledger says what the escrow holds: held is `capturableAmount`; what merchants and fees
/// received, less what was refunded, is `refundableAmount`.
async fn assert_ledger_matches_escrow(fixture: &Fixture, escrowed: &Escrowed) {
    let (capturable, refundable) = escrowed.state(fixture).await;
    assert_eq!(
        ledger(fixture, AccountKind::EscrowHeld).await,
        capturable as i128,
        "escrow held"
    );
    let captured = ledger(fixture, AccountKind::MerchantReceivable).await
        + ledger(fixture, AccountKind::Fees).await;
    let refunded = -ledger(fixture, AccountKind::RefundAdvances).await;
    assert_eq!(captured - refunded, refundable as i128, "refundable");
}

fn amounts((capturable, refundable): (u128, u128)) -> (Amount, Amount) {
    (
        Amount::from_atomic(capturable),
        Amount::from_atomic(refundable),
    )
}

async fn settle(fixture: &Fixture, body: &Value) -> Value {
    let (status, answer) = fixture.post("settle", body).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

async fn an_escrowed_payment_is_held_captured_in_parts_refunded_and_voided(backend: Backend) {
    let fixture = start(backend).await;
    let escrowed = Escrowed::signed(&fixture, 0).await;
    let payer = fixture.payer(0).address();
    let balances = || async {
        (
            fixture.token_balance(payer).await.to::<u128>(),
            fixture.token_balance(fixture.merchant).await.to::<u128>(),
            fixture.token_balance(FEE_RECIPIENT).await.to::<u128>(),
        )
    };
    let start_balances = balances().await;

    // Verified, then authorized: the escrow holds the whole amount, taken from the payer.
    let (status, verified) = fixture.post("verify", &escrowed.collect()).await;
    assert_eq!(
        (status, &verified["isValid"]),
        (200, &json!(true)),
        "{verified}"
    );
    let held = settle(&fixture, &escrowed.collect()).await;
    assert_eq!(held["success"], true, "{held}");
    assert_eq!(held["amount"], AMOUNT.to_string(), "{held}");
    assert_eq!(escrowed.state(&fixture).await, (AMOUNT, 0));
    let after_hold = balances().await;
    assert_eq!(start_balances.0 - after_hold.0, AMOUNT);
    assert_eq!(
        after_hold.1, start_balances.1,
        "nothing reaches the merchant yet"
    );
    assert_ledger_matches_escrow(&fixture, &escrowed).await;
    // The same payment again answers the same hold, and holds nothing more.
    let again = settle(&fixture, &escrowed.collect()).await;
    assert_eq!(again["transaction"], held["transaction"], "{again}");
    assert_eq!(escrowed.state(&fixture).await, (AMOUNT, 0));

    // Captured in two parts, each against the balances it expects, each paying the fee.
    let first = settle(&fixture, &escrowed.capture(300_000, (AMOUNT, 0))).await;
    assert_eq!(first["success"], true, "{first}");
    assert_eq!(first["amount"], "300000", "{first}");
    assert_eq!(escrowed.state(&fixture).await, (700_000, 300_000));
    // Presented again, the same capture is the same settlement: nothing moves twice.
    let replayed = settle(&fixture, &escrowed.capture(300_000, (AMOUNT, 0))).await;
    assert_eq!(replayed["transaction"], first["transaction"], "{replayed}");
    // A capture signed against balances the escrow no longer holds is refused.
    let stale = settle(&fixture, &escrowed.capture(100_000, (AMOUNT, 0))).await;
    assert_eq!(stale["success"], false, "{stale}");
    assert_eq!(
        stale["errorReason"], "invalid_auth_capture_evm_unexpected_payment_state",
        "{stale}"
    );
    // More than is held is refused, by the check before anything is sent.
    let greedy = settle(&fixture, &escrowed.capture(700_001, (700_000, 300_000))).await;
    assert_eq!(
        greedy["errorReason"], "invalid_auth_capture_evm_insufficient_authorization",
        "{greedy}"
    );
    let second = settle(&fixture, &escrowed.capture(200_000, (700_000, 300_000))).await;
    assert_eq!(second["success"], true, "{second}");
    assert_eq!(escrowed.state(&fixture).await, (500_000, 500_000));
    let after_captures = balances().await;
    assert_eq!(
        after_captures.1 - start_balances.1,
        495_000,
        "500,000 less 1%"
    );
    assert_eq!(after_captures.2 - start_balances.2, 5_000, "the fee");
    assert_ledger_matches_escrow(&fixture, &escrowed).await;

    // Another tenant cannot touch the payment, signed or not.
    let (_, other_key) = tenant_with_key(&fixture.store, "Other", Role::ResourceServer).await;
    let (status, foreign) = fixture
        .post_as(
            Some(&other_key),
            "settle",
            &escrowed.capture(100_000, (500_000, 500_000)),
        )
        .await;
    assert_eq!(status, 200, "{foreign}");
    assert_eq!(
        foreign["errorReason"], "invalid_auth_capture_evm_unauthenticated_authorizer_request",
        "{foreign}"
    );
    assert_eq!(escrowed.state(&fixture).await, (500_000, 500_000));

    // A refund is advanced by the operator through the refund collector: fund and approve it.
    fund_refunds(&fixture, 100_000).await;
    // More than was captured is refused; a part is returned to the payer.
    let too_much = settle(&fixture, &escrowed.refund(500_001, (500_000, 500_000))).await;
    assert_eq!(
        too_much["errorReason"], "invalid_auth_capture_evm_refund_exceeds_capture",
        "{too_much}"
    );
    let refunded = settle(&fixture, &escrowed.refund(100_000, (500_000, 500_000))).await;
    assert_eq!(refunded["success"], true, "{refunded}");
    assert_eq!(escrowed.state(&fixture).await, (500_000, 400_000));
    assert_eq!(balances().await.0, after_hold.0 + 100_000);
    assert_ledger_matches_escrow(&fixture, &escrowed).await;

    // The rest is voided back to the payer; then nothing is left to void.
    let voided = settle(&fixture, &escrowed.void()).await;
    assert_eq!(voided["success"], true, "{voided}");
    assert_eq!(voided["amount"], "500000", "{voided}");
    assert_eq!(escrowed.state(&fixture).await, (0, 400_000));
    let end = balances().await;
    assert_eq!(
        start_balances.0 - end.0,
        400_000,
        "paid: 500,000 captured less 100,000 refunded"
    );
    assert_ledger_matches_escrow(&fixture, &escrowed).await;
    assert_eq!(ledger(&fixture, AccountKind::PayerReturned).await, 600_000);
    assert_eq!(
        ledger(&fixture, AccountKind::PayerClearing).await,
        -(AMOUNT as i128)
    );
    // The void presented again is the same void: its answer, and nothing moves.
    let again = settle(&fixture, &escrowed.void()).await;
    assert_eq!(again["transaction"], voided["transaction"], "{again}");
    assert_eq!(escrowed.state(&fixture).await, (0, 400_000));
    // Every operation's gas is the tenant's network fee.
    assert!(fixture.network_fees().await > Amount::ZERO);
    let operations = fixture
        .store
        .escrow_operations(
            TenantScope::trusted(fixture.tenant),
            &format!("{:#x}", escrowed.hash),
        )
        .await
        .unwrap();
    let kinds: Vec<&str> = operations
        .iter()
        .filter(|o| o.status == purser_domain::settlement::SettlementStatus::Confirmed)
        .map(|o| o.kind.as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "escrow_authorize",
            "escrow_capture",
            "escrow_capture",
            "escrow_refund",
            "escrow_void"
        ]
    );
}

async fn concurrent_captures_never_take_more_than_is_held(backend: Backend) {
    let fixture = start(backend).await;
    let escrowed = Escrowed::signed(&fixture, 1).await;
    let held = settle(&fixture, &escrowed.collect()).await;
    assert_eq!(held["success"], true, "{held}");
    let merchant_before = fixture.token_balance(fixture.merchant).await.to::<u128>();

    // Fifty captures at once, every one signed against the full hold, each for a different
    // amount: one runs; the rest are refused, by the in-flight guard or by the balances.
    let captures = (0..50u128).map(|i| {
        let body = escrowed.capture(100_000 + i * 1_000, (AMOUNT, 0));
        let fixture = &fixture;
        async move { fixture.post("settle", &body).await }
    });
    let answers = futures::future::join_all(captures).await;
    let mut settled = Vec::new();
    for (status, answer) in &answers {
        match status {
            200 if answer["success"] == true => settled.push(answer["amount"].clone()),
            200 => assert!(
                answer["errorReason"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("invalid_auth_capture_evm_")),
                "{answer}"
            ),
            409 => assert_eq!(
                answer["error"]["code"], "escrow_operation_in_flight",
                "{answer}"
            ),
            other => panic!("{other}: {answer}"),
        }
    }
    assert_eq!(settled.len(), 1, "{answers:?}");
    let captured: u128 = settled[0].as_str().unwrap().parse().unwrap();
    let (capturable, refundable) = escrowed.state(&fixture).await;
    assert_eq!((capturable, refundable), (AMOUNT - captured, captured));
    let merchant_after = fixture.token_balance(fixture.merchant).await.to::<u128>();
    assert_eq!(merchant_after - merchant_before, captured - captured / 100);
    assert_ledger_matches_escrow(&fixture, &escrowed).await;
}

/// Purser dies after broadcasting each operation (authorize, capture, refund, void) and before
/// its receipt: a new instance over the same store reconciles it from the chain, the retry
/// answers that one outcome, and nothing is sent twice.
async fn every_operation_interrupted_after_broadcast_ends_in_one_outcome(backend: Backend) {
    use std::time::Duration;

    use alloy::providers::Provider;
    use purser_facilitator::{FacilitatorConfig, Reconciler};

    let fixture = start(backend).await;
    fund_refunds(&fixture, 100_000).await;
    let escrowed = Escrowed::signed(&fixture, 2).await;
    // From here on, transactions wait in the mempool until the test mines them.
    fixture.chain().set_automine(false).await.unwrap();
    let rpc = vec![fixture.chain().rpc_url().to_owned()];
    let operator = fixture.devnet.accounts().settlement_signer.address();
    let provider = fixture.chain().provider().clone();
    let scope = TenantScope::trusted(fixture.tenant);
    let steps = [
        ("authorize", escrowed.collect(), (AMOUNT, 0)),
        (
            "capture",
            escrowed.capture(300_000, (AMOUNT, 0)),
            (700_000, 300_000),
        ),
        (
            "refund",
            escrowed.refund(100_000, (700_000, 300_000)),
            (700_000, 200_000),
        ),
        ("void", escrowed.void(), (0, 200_000)),
    ];
    for (what, body, after) in steps {
        let sent_before = provider.get_transaction_count(operator).await.unwrap();
        let dying = facilitator_with(&fixture, rpc.clone(), 30, FacilitatorConfig::default()).await;
        let request = {
            let body = serde_json::to_vec(&body).unwrap();
            tokio::spawn(async move { dying.settle(scope, &body).await })
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while provider
            .get_transaction_count(operator)
            .pending()
            .await
            .unwrap()
            == sent_before
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: the transaction never reached the mempool"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        request.abort();

        // A new instance, the same store; the chain mines what was sent.
        let restarted =
            facilitator_with(&fixture, rpc.clone(), 30, FacilitatorConfig::default()).await;
        fixture.chain().mine().await.unwrap();
        let report = Reconciler::new(restarted.clone()).pass().await.unwrap();
        assert_eq!(report.resolved, 1, "{what}: {report:?}");
        let answer = restarted
            .settle(scope, &serde_json::to_vec(&body).unwrap())
            .await
            .unwrap();
        assert!(answer.success, "{what}: {answer:?}");
        assert_eq!(
            provider.get_transaction_count(operator).await.unwrap(),
            sent_before + 1,
            "{what}: one transaction, ever"
        );
        assert_eq!(escrowed.state(&fixture).await, after, "{what}");
        assert_ledger_matches_escrow(&fixture, &escrowed).await;
    }
}

/// A hold nobody finished before its capture deadline is the payer's to take back: the
/// schedule finds it gone and posts the reclaim, once.
async fn a_hold_the_payer_reclaims_after_its_deadline_is_posted_once(backend: Backend) {
    use purser_domain::escrow::{EscrowAction, EscrowSchedule};
    use purser_facilitator::EscrowScheduler;

    let fixture = start(backend).await;
    let escrowed = Escrowed::signed(&fixture, 1).await;
    let held = settle(&fixture, &escrowed.collect()).await;
    assert_eq!(held["success"], true, "{held}");
    let payer = fixture.payer(1);
    let paid = fixture.token_balance(payer.address()).await;
    let capture_deadline = escrowed.info.authorizationExpiry.to::<i64>();
    fixture
        .store
        .schedule_escrow(EscrowSchedule {
            payment: format!("{:#x}", escrowed.hash),
            tenant_id: fixture.tenant,
            network: fixture.chain().network(),
            action: EscrowAction::Capture,
            due_at: capture_deadline + 60,
            capture_deadline,
            attempts: 0,
            last_error: None,
            resolved_at: None,
            outcome: None,
            created_at: purser_domain::time::now(),
        })
        .await
        .unwrap();

    // Past the deadline (the schedule was down), the payer takes the hold back itself.
    let chain = fixture.chain();
    let now = chain.latest_timestamp().await.unwrap();
    chain
        .increase_time(capture_deadline as u64 - now + 120)
        .await
        .unwrap();
    let reclaim = auth_capture::AuthCaptureEscrow::reclaimCall {
        paymentInfo: escrowed.info.clone(),
    };
    chain
        .send_as(
            payer,
            auth_capture::V1_1.escrow,
            reclaim.abi_encode().into(),
            "reclaim",
        )
        .await
        .unwrap();
    assert_eq!(
        fixture.token_balance(payer.address()).await - paid,
        U256::from(AMOUNT)
    );

    let facilitator = crate::support::facilitator_with(
        &fixture,
        vec![chain.rpc_url().to_owned()],
        20,
        Default::default(),
    )
    .await;
    let scheduler = EscrowScheduler::new(facilitator, fixture.store.clone());
    let report = scheduler.pass().await.unwrap();
    assert_eq!(report.reclaimed, 1, "{report:?}");
    assert_eq!(ledger(&fixture, AccountKind::EscrowHeld).await, 0);
    assert_eq!(
        ledger(&fixture, AccountKind::PayerReturned).await,
        AMOUNT as i128
    );
    assert_ledger_matches_escrow(&fixture, &escrowed).await;
    // Resolved: the next pass has nothing to do, and nothing posts twice.
    let again = scheduler.pass().await.unwrap();
    assert_eq!(again, Default::default());
    let schedule = fixture
        .store
        .escrow_schedule(&format!("{:#x}", escrowed.hash))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(schedule.outcome.as_deref(), Some("reclaimed by the payer"));
}

/// The authorization flow: the client's payment is charged at once, for the amount, fee and
/// fee receiver the server completes it with (here unsigned: the receiver authorizer is the
/// facilitator's own); nothing is held, and what was charged may be refunded.
async fn a_charge_takes_what_the_server_completes_and_may_be_refunded(backend: Backend) {
    let fixture = start(backend).await;
    fund_refunds(&fixture, 100_000).await;
    let escrowed = Escrowed::signed_for(&fixture, 2, "authorization").await;
    let payer = fixture.payer(2).address();
    let before = (
        fixture.token_balance(payer).await.to::<u128>(),
        fixture.token_balance(fixture.merchant).await.to::<u128>(),
        fixture.token_balance(FEE_RECIPIENT).await.to::<u128>(),
    );

    // The raw payload verifies (as the provisional charge of the whole amount) but is not
    // settled until the server completes it.
    let (status, verified) = fixture.post("verify", &escrowed.collect()).await;
    assert_eq!(
        (status, &verified["isValid"]),
        (200, &json!(true)),
        "{verified}"
    );
    let raw = settle(&fixture, &escrowed.collect()).await;
    assert_eq!(
        raw["errorReason"], "invalid_auth_capture_evm_payload_format",
        "{raw}"
    );
    let mut completed = escrowed.collect();
    let fields = completed["paymentPayload"]["payload"]
        .as_object_mut()
        .unwrap();
    fields.insert("amount".into(), json!("600000"));
    fields.insert("feeAmount".into(), json!("6000"));
    fields.insert("feeReceiver".into(), json!(FEE_RECIPIENT.to_checksum(None)));
    // A fee below the bounds for the amount is refused before anything is sent.
    let mut cheap = completed.clone();
    cheap["paymentPayload"]["payload"]["feeAmount"] = json!("5999");
    let refused = settle(&fixture, &cheap).await;
    assert_eq!(refused["success"], false, "{refused}");
    let charged = settle(&fixture, &completed).await;
    assert_eq!(charged["success"], true, "{charged}");
    assert_eq!(charged["amount"], "600000", "{charged}");
    assert_eq!(escrowed.state(&fixture).await, (0, 600_000));
    let after = (
        fixture.token_balance(payer).await.to::<u128>(),
        fixture.token_balance(fixture.merchant).await.to::<u128>(),
        fixture.token_balance(FEE_RECIPIENT).await.to::<u128>(),
    );
    assert_eq!(
        before.0 - after.0,
        600_000,
        "only what was charged leaves the payer"
    );
    assert_eq!(after.1 - before.1, 594_000);
    assert_eq!(after.2 - before.2, 6_000);
    assert_ledger_matches_escrow(&fixture, &escrowed).await;

    // Nothing is held, so nothing is captured; what was charged may be refunded.
    let capture = settle(&fixture, &escrowed.capture(100_000, (0, 600_000))).await;
    assert_eq!(
        capture["errorReason"], "invalid_auth_capture_evm_payload_type",
        "{capture}"
    );
    let refunded = settle(&fixture, &escrowed.refund(100_000, (0, 600_000))).await;
    assert_eq!(refunded["success"], true, "{refunded}");
    assert_eq!(escrowed.state(&fixture).await, (0, 500_000));
    assert_ledger_matches_escrow(&fixture, &escrowed).await;
}
