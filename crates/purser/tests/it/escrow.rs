//! Escrowed purchases (x402 `auth-capture`) through Purser's gateway, end to end on the devnet
//! with the official client (`@x402/fetch` with `@x402/evm`'s auth-capture scheme): resources
//! priced with escrow through GraphQL, held before the upstream is called, captured or voided by
//! their policy, and the holds no request finishes finished by the schedule before their
//! deadline, under anvil's clock moved forward. Balances on chain move as the ledger says.

use alloy::primitives::U256;
use purser_domain::auth::{Role, mint_api_key};
use purser_domain::ledger::AccountKind;
use serde_json::{Value, json};

use crate::harness::{Backends, on_both_backend_pairs};
use crate::interop::{Interop, NETWORK, Upstream, run_script};

/// What every escrowed resource here costs, in atomic units.
const PRICE: u128 = 20_000;

on_both_backend_pairs!(
    escrowed_purchases_are_held_then_captured_or_voided_by_the_upstream,
    the_schedule_finishes_holds_before_their_deadlines,
    the_native_layer_holds_then_captures_through_purser,
);

/// A tenant admin key of the interop merchant.
async fn admin_key(fx: &Interop) -> String {
    let (record, token) = mint_api_key(Some(fx.tenant), Role::TenantAdmin, "escrow tests").unwrap();
    fx.app.store.insert_api_key(record).await.unwrap();
    token.expose().to_owned()
}

/// Publishes `url` priced with escrow on `terms`, through GraphQL.
async fn publish_escrowed(fx: &Interop, admin: &str, url: &str, terms: Value) -> String {
    fx.app
        .graphql_ok(
            admin,
            "mutation($address: String!) {
                setPayoutAddress(input: { network: \"eip155:84532\", address: $address }) { network }
            }",
            json!({ "address": fx.merchant().to_checksum(None) }),
        )
        .await;
    let data = fx
        .app
        .graphql_ok(
            admin,
            "mutation($input: CreateResourceInput!) {
                createResource(input: $input) { id escrow { capture captureWindowSeconds } }
            }",
            json!({ "input": {
                "type": "HTTP", "url": url, "name": "Escrowed weather",
                "price": { "amount": PRICE.to_string() },
                "accepts": [{ "network": NETWORK, "scheme": "auth-capture" }],
                "escrow": terms,
                "publish": true,
            }}),
        )
        .await;
    assert_eq!(
        data["createResource"]["escrow"]["capture"], terms["capture"],
        "{data}"
    );
    data["createResource"]["id"].as_str().unwrap().to_owned()
}

/// The gateway, serving `/weather/:city` (an upstream that answers) priced with escrow on
/// `weather` terms and `/broken/:city` (one that fails) on `broken` terms: its URL, and the
/// upstream.
async fn gateway(fx: &Interop, admin: &str, weather: Value, broken: Value) -> (String, Upstream) {
    let upstream = Upstream::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = format!("http://{}", listener.local_addr().unwrap());
    let weather = publish_escrowed(fx, admin, &format!("{gateway}/weather/:city"), weather).await;
    let broken = publish_escrowed(fx, admin, &format!("{gateway}/broken/:city"), broken).await;
    fx.serve_gateway(
        listener,
        &upstream,
        &[
            ("/weather/*", weather.parse().unwrap()),
            ("/broken/*", broken.parse().unwrap()),
        ],
    );
    (gateway, upstream)
}

/// The tenant's escrowed payments, newest last, with what each holds now.
async fn escrow_payments(fx: &Interop, admin: &str) -> Vec<Value> {
    let data = fx
        .app
        .graphql_ok(
            admin,
            "{ escrowPayments(first: 50) { nodes {
                payment amount captured voided refunded captureDeadline
                balances { capturable refundable }
                operations { status }
            } } }",
            json!({}),
        )
        .await;
    data["escrowPayments"]["nodes"].as_array().unwrap().clone()
}

/// Pays `url` with the official client.
async fn pay(fx: &Interop, url: &str) -> Value {
    let mut env = fx.script_env(PRICE);
    env.push(("X402_URL", url.to_owned()));
    run_script("sdk-pay-url.mjs", &env).await
}

/// The tenant's posted balance of `kind` (credits less debits), in the token.
async fn ledger(fx: &Interop, kind: AccountKind) -> i128 {
    purser_testkit::store_suite::posted(&fx.app.store, fx.tenant, kind).await
}

/// Polls until `done` holds of the tenant's escrowed payments, for at most twenty seconds.
async fn until(
    fx: &Interop,
    admin: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let payments = escrow_payments(fx, admin).await;
        if done(&payments) {
            return payments;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not happen: {payments:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

fn amount(value: &Value) -> u128 {
    value.as_str().unwrap().parse().unwrap()
}

async fn escrowed_purchases_are_held_then_captured_or_voided_by_the_upstream(backends: Backends) {
    let fx = Interop::start(backends).await;
    let admin = admin_key(&fx).await;
    let on_success = json!({
        "capture": "ON_SUCCESS", "captureWindowSeconds": 3_600, "refundWindowSeconds": 86_400,
    });
    let (gateway, upstream) = gateway(&fx, &admin, on_success.clone(), on_success).await;
    let payer_before = fx.balance(fx.payer().address()).await;
    let merchant_before = fx.balance(fx.merchant()).await;

    // The 402 offers the escrow, with the facilitator's terms and the deadlines; the client
    // pays it; the upstream answers and the hold is captured whole for the merchant.
    let out = pay(&fx, &format!("{gateway}/weather/lisbon")).await;
    let offer = &out["unpaid"]["paymentRequired"]["accepts"][0];
    assert_eq!(offer["scheme"], "auth-capture", "{out}");
    assert_eq!(offer["extra"]["captureMode"], "sync", "{out}");
    assert_eq!(offer["extra"]["paymentFlow"], "escrow", "{out}");
    assert_eq!(
        offer["extra"]["captureDeadline"].as_i64().unwrap() % 600,
        0,
        "{out}"
    );
    assert_eq!(out["paid"]["status"], 200, "{out}");
    assert_eq!(out["paid"]["body"]["city"], "lisbon", "{out}");
    assert_eq!(out["paid"]["paymentResponse"]["success"], true, "{out}");
    assert_eq!(upstream.calls(), 1);
    assert_eq!(
        fx.balance(fx.merchant()).await,
        merchant_before + U256::from(PRICE)
    );
    assert_eq!(
        fx.balance(fx.payer().address()).await,
        payer_before - U256::from(PRICE)
    );
    // The same payment again is refused before the upstream: its authorization is spent.
    assert_ne!(out["replay"]["status"], 200, "{out}");
    assert_eq!(upstream.calls(), 1);

    // An upstream that fails: the hold is voided, the payer has everything back.
    let out = pay(&fx, &format!("{gateway}/broken/faro")).await;
    assert_eq!(out["paid"]["status"], 500, "{out}");
    assert_eq!(
        fx.balance(fx.merchant()).await,
        merchant_before + U256::from(PRICE)
    );
    assert_eq!(
        fx.balance(fx.payer().address()).await,
        payer_before - U256::from(PRICE)
    );

    // The merchant sees both in GraphQL, as the chain holds them; the ledger agrees.
    let payments = escrow_payments(&fx, &admin).await;
    assert_eq!(payments.len(), 2, "{payments:?}");
    let (captured, voided) = (&payments[0], &payments[1]);
    assert_eq!(amount(&captured["captured"]), PRICE, "{captured}");
    assert_eq!(
        amount(&captured["balances"]["refundable"]),
        PRICE,
        "{captured}"
    );
    assert_eq!(amount(&voided["voided"]), PRICE, "{voided}");
    assert_eq!(amount(&voided["balances"]["capturable"]), 0, "{voided}");
    assert_eq!(ledger(&fx, AccountKind::EscrowHeld).await, 0);
    assert_eq!(ledger(&fx, AccountKind::PayerReturned).await, PRICE as i128);
    // Metrics count the operations by kind and outcome.
    let metrics = reqwest::get(fx.app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for operation in ["authorize", "capture", "void"] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("purser_escrow_operations_total{")
                    && l.contains(&format!("operation=\"{operation}\""))
                    && l.contains("outcome=\"confirmed\"")),
            "{operation}: {metrics}"
        );
    }
    // Each request finished its own hold: the schedule has nothing left to do.
    for payment in &payments {
        let schedule = fx
            .app
            .store
            .escrow_schedule(payment["payment"].as_str().unwrap())
            .await
            .unwrap()
            .expect("every hold is scheduled");
        assert!(schedule.resolved_at.is_some(), "{schedule:?}");
    }
}

async fn the_schedule_finishes_holds_before_their_deadlines(backends: Backends) {
    let fx = Interop::start_with(backends, |config| {
        config.facilitator.escrow_schedule_interval_ms = 200;
    })
    .await;
    let admin = admin_key(&fx).await;
    let (gateway, _upstream) = gateway(
        &fx,
        &admin,
        json!({
            "capture": "AFTER_DELAY", "captureDelaySeconds": 1_800,
            "captureWindowSeconds": 3_600, "refundWindowSeconds": 86_400,
        }),
        json!({ "capture": "MANUAL", "captureWindowSeconds": 3_600, "refundWindowSeconds": 86_400 }),
    )
    .await;
    let payer_before = fx.balance(fx.payer().address()).await;
    let merchant_before = fx.balance(fx.merchant()).await;

    // Deferred: both are served on the hold alone (the manual one's upstream fails, and its
    // hold stays for the merchant to judge).
    let out = pay(&fx, &format!("{gateway}/weather/lisbon")).await;
    assert_eq!(out["paid"]["status"], 200, "{out}");
    assert_eq!(
        out["unpaid"]["paymentRequired"]["accepts"][0]["extra"]["captureMode"], "deferred",
        "{out}"
    );
    let out = pay(&fx, &format!("{gateway}/broken/faro")).await;
    assert_eq!(out["paid"]["status"], 500, "{out}");
    assert_eq!(fx.balance(fx.merchant()).await, merchant_before);
    assert_eq!(
        fx.balance(fx.payer().address()).await,
        payer_before - U256::from(2 * PRICE)
    );
    let payments = escrow_payments(&fx, &admin).await;
    let (delayed_payment, manual_payment) = (
        payments[0]["payment"].as_str().unwrap().to_owned(),
        payments[1]["payment"].as_str().unwrap().to_owned(),
    );
    for payment in &payments {
        assert_eq!(
            amount(&payment["balances"]["capturable"]),
            PRICE,
            "{payment}"
        );
    }

    // The merchant captures part of the manual one by hand; asking for more than is held is
    // refused with its own code, and nothing moves.
    let (_, too_much) = fx
        .app
        .graphql(
            Some(&admin),
            "mutation($p: String!) { captureEscrowPayment(payment: $p, amount: \"20001\") { status } }",
            json!({ "p": manual_payment }),
        )
        .await;
    assert_eq!(
        crate::harness::error_codes(&too_much),
        ["escrow_exceeds_held"],
        "{too_much}"
    );
    let captured = fx
        .app
        .graphql_ok(
            &admin,
            "mutation($p: String!) { captureEscrowPayment(payment: $p, amount: \"5000\") { status amount } }",
            json!({ "p": manual_payment }),
        )
        .await;
    assert_eq!(
        captured["captureEscrowPayment"]["status"], "CONFIRMED",
        "{captured}"
    );
    assert_eq!(
        fx.balance(fx.merchant()).await,
        merchant_before + U256::from(5_000u64)
    );

    // Half an hour later by the chain's clock, the delayed hold is captured by the schedule.
    let chain = fx.chain();
    chain.increase_time(1_800 + 30).await.unwrap();
    until(&fx, &admin, "the delayed capture", |payments| {
        payments
            .iter()
            .any(|p| p["payment"] == delayed_payment.as_str() && amount(&p["captured"]) == PRICE)
    })
    .await;
    assert_eq!(
        fx.balance(fx.merchant()).await,
        merchant_before + U256::from(PRICE + 5_000)
    );

    // Near the manual hold's capture deadline (within the schedule's margin), what the
    // merchant left is voided back to the payer, before the escrow would let the payer reclaim.
    let payments = escrow_payments(&fx, &admin).await;
    let deadline = payments
        .iter()
        .find(|p| p["payment"] == manual_payment.as_str())
        .map(|p| {
            chrono::DateTime::parse_from_rfc3339(p["captureDeadline"].as_str().unwrap()).unwrap()
        })
        .unwrap()
        .timestamp() as u64;
    let now = chain.latest_timestamp().await.unwrap();
    let margin = purser_gateway::ESCROW_DEADLINE_MARGIN_SECONDS as u64;
    chain
        .increase_time(deadline - margin - now + 5)
        .await
        .unwrap();
    let payments = until(&fx, &admin, "the manual hold's void", |payments| {
        payments.iter().any(|p| {
            p["payment"] == manual_payment.as_str() && amount(&p["voided"]) == PRICE - 5_000
        })
    })
    .await;
    assert!(
        chain.latest_timestamp().await.unwrap() < deadline,
        "voided before the deadline"
    );
    assert_eq!(
        fx.balance(fx.payer().address()).await,
        payer_before - U256::from(PRICE + 5_000)
    );
    for payment in &payments {
        assert_eq!(amount(&payment["balances"]["capturable"]), 0, "{payment}");
    }
    assert_eq!(ledger(&fx, AccountKind::EscrowHeld).await, 0);
    assert_eq!(
        ledger(&fx, AccountKind::MerchantReceivable).await,
        (PRICE + 5_000) as i128
    );
}

/// A merchant's own axum app with `purser-axum`, its route priced in Purser's registry with
/// escrow: the official client pays, the layer holds through Purser's facilitator before the
/// handler, then captures; Purser schedules the hold all the same (the layer might have died
/// before capturing), and its schedule finds nothing left to do.
async fn the_native_layer_holds_then_captures_through_purser(backends: Backends) {
    use purser_axum::{HttpFacilitator, MemoryReplayGuard, Paywall, PaywallLayer, RegistryOffer};
    let fx = Interop::start_with(backends, |config| {
        config.facilitator.escrow_schedule_interval_ms = 200;
    })
    .await;
    let admin = admin_key(&fx).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let resource = publish_escrowed(
        &fx,
        &admin,
        &format!("{base}/report"),
        json!({ "capture": "ON_SUCCESS", "captureWindowSeconds": 3_600, "refundWindowSeconds": 86_400 }),
    )
    .await;
    let facilitator = HttpFacilitator::new(fx.app.url("/facilitator")).with_api_key(fx.key.clone());
    let paywall = Paywall::new(
        std::sync::Arc::new(facilitator),
        std::sync::Arc::new(MemoryReplayGuard::default()),
    );
    let offer = RegistryOffer::new(
        &fx.app.url(""),
        &resource,
        std::time::Duration::from_secs(60),
    );
    let app = axum::Router::new()
        .route(
            "/report",
            axum::routing::get(|| async { axum::Json(json!({ "report": "quarterly" })) }),
        )
        .layer(PaywallLayer::new(paywall).route("GET", "/report", offer));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let payer_before = fx.balance(fx.payer().address()).await;
    let merchant_before = fx.balance(fx.merchant()).await;

    let out = pay(&fx, &format!("{base}/report")).await;
    assert_eq!(
        out["unpaid"]["paymentRequired"]["accepts"][0]["scheme"], "auth-capture",
        "{out}"
    );
    assert_eq!(out["paid"]["status"], 200, "{out}");
    assert_eq!(out["paid"]["body"]["report"], "quarterly", "{out}");
    assert_eq!(
        fx.balance(fx.merchant()).await,
        merchant_before + U256::from(PRICE)
    );
    assert_eq!(
        fx.balance(fx.payer().address()).await,
        payer_before - U256::from(PRICE)
    );
    let payments = escrow_payments(&fx, &admin).await;
    assert_eq!(payments.len(), 1, "{payments:?}");
    assert_eq!(amount(&payments[0]["captured"]), PRICE, "{payments:?}");
    let payment = payments[0]["payment"].as_str().unwrap().to_owned();
    let schedule = fx
        .app
        .store
        .escrow_schedule(&payment)
        .await
        .unwrap()
        .expect("the hold is scheduled from the facilitator's settlement");
    assert_eq!(schedule.tenant_id, fx.tenant);
    // At its deadline the schedule finds the hold captured, and only marks it so.
    let chain = fx.chain();
    let now = chain.latest_timestamp().await.unwrap();
    chain
        .increase_time((schedule.due_at - now as i64 + 5) as u64)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let schedule = fx
            .app
            .store
            .escrow_schedule(&payment)
            .await
            .unwrap()
            .unwrap();
        if let Some(outcome) = schedule.outcome {
            assert_eq!(outcome, "nothing held");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{schedule:?}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        fx.balance(fx.merchant()).await,
        merchant_before + U256::from(PRICE)
    );
    assert_eq!(ledger(&fx, AccountKind::EscrowHeld).await, 0);
}
