//! Faults: an unreachable, slow or failing RPC endpoint, a crash between broadcast and receipt,
//! a fee spike, a nonce gap, two instances sharing a signer. Each ends with exactly one
//! transfer on chain per payment and a ledger that matches the chain.

use std::net::SocketAddr;
use std::time::Duration;

use alloy::primitives::U256;
use alloy::providers::Provider;
use purser_chain::rails::Rails;
use purser_devnet::Mining;
use purser_domain::auth::TenantScope;
use purser_domain::money::Amount;
use purser_domain::settlement::SettlementStatus;
use purser_facilitator::{Facilitator, FacilitatorConfig, Reconciler};
use purser_testkit::proxy::{Fault, FaultyProxy};

use crate::support::{Backend, Fixture, Setup, facilitator_with, fast_rpc, rail_config};

fn anvil_address(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

/// A fixture whose rail reaches anvil only through a proxy the test controls.
async fn behind_proxy(mut setup: Setup) -> (Fixture, FaultyProxy) {
    // The devnet is started by the fixture; find its port by starting a throwaway proxy later.
    // So: start the fixture first against a placeholder, then point a new rail at the proxy.
    setup.rpc_urls = None;
    let fixture = Fixture::start(setup).await;
    let proxy = FaultyProxy::start(anvil_address(fixture.chain().rpc_url())).await;
    (fixture, proxy)
}

fn scope(fixture: &Fixture) -> TenantScope {
    TenantScope::trusted(fixture.tenant)
}

async fn settle_with(
    facilitator: &Facilitator,
    fixture: &Fixture,
    body: &serde_json::Value,
) -> purser_x402::SettleResponse {
    facilitator
        .settle(scope(fixture), &serde_json::to_vec(body).unwrap())
        .await
        .expect("a settle answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_or_slow_endpoint_fails_over_to_the_next() {
    let (fixture, proxy) = behind_proxy(Setup::new(Backend::Sqlite)).await;
    let direct = fixture.chain().rpc_url().to_owned();
    let facilitator = facilitator_with(
        &fixture,
        vec![proxy.url(), direct],
        20,
        FacilitatorConfig::default(),
    )
    .await;
    let payer = fixture.payer(0);
    let chain_id = fixture.chain().chain_id();
    for fault in [
        Fault::Refuse,
        Fault::Hang,
        Fault::Delay(Duration::from_secs(4)),
    ] {
        proxy.set(fault);
        let payment = fixture.payment(payer, 50);
        let answer = settle_with(&facilitator, &fixture, &payment.body(payer, chain_id)).await;
        assert!(answer.success, "{fault:?}: {answer:?}");
    }
    assert_eq!(fixture.ledger_receivable().await, Amount::from_atomic(150));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_chain_before_broadcast_moves_nothing_and_may_be_retried() {
    let (fixture, proxy) = behind_proxy(Setup::new(Backend::Postgres)).await;
    let facilitator = facilitator_with(
        &fixture,
        vec![proxy.url()],
        20,
        FacilitatorConfig::default(),
    )
    .await;
    let payer = fixture.payer(0);
    let payment = fixture.payment(payer, 42);
    let body = payment.body(payer, fixture.chain().chain_id());
    proxy.set(Fault::Refuse);
    let answer = settle_with(&facilitator, &fixture, &body).await;
    assert!(!answer.success);
    assert_eq!(
        answer.error_reason.as_deref(),
        Some("unexpected_settle_error"),
        "{answer:?}"
    );
    assert_eq!(answer.transaction, "", "nothing was sent");
    proxy.set(Fault::None);
    let answer = settle_with(&facilitator, &fixture, &body).await;
    assert!(
        answer.success,
        "the same authorization settles once the chain is back: {answer:?}"
    );
    assert_eq!(fixture.ledger_receivable().await, Amount::from_atomic(42));
}

on_both_backends!(
    an_unknown_outcome_is_pending_then_reconciled,
    a_crash_after_broadcast_resumes_without_a_second_transfer,
);

async fn an_unknown_outcome_is_pending_then_reconciled(backend: Backend) {
    let mut setup = Setup::new(backend);
    setup.mining = Mining::Manual;
    let (fixture, proxy) = behind_proxy(setup).await;
    let facilitator =
        facilitator_with(&fixture, vec![proxy.url()], 2, FacilitatorConfig::default()).await;
    let payer = fixture.payer(0);
    let payment = fixture.payment(payer, 900);
    let body = payment.body(payer, fixture.chain().chain_id());
    let merchant_before = fixture.token_balance(fixture.merchant).await;

    // Broadcast, but no block: the answer is pending, with the transaction, never a failure.
    let answer = settle_with(&facilitator, &fixture, &body).await;
    assert!(!answer.success);
    assert!(answer.is_pending(), "{answer:?}");
    let tx = answer.transaction.clone();
    assert_eq!(tx.len(), 66);
    let balances = fixture
        .store
        .account_balances(scope(&fixture))
        .await
        .unwrap();
    assert!(
        balances
            .iter()
            .any(|b| b.credits_pending == Amount::from_atomic(900)),
        "the ledger holds it in flight"
    );

    // The chain mines it while Purser cannot see the chain.
    proxy.set(Fault::Refuse);
    fixture.chain().mine().await.unwrap();
    let reconciler = Reconciler::new(facilitator.clone());
    let _ = reconciler.pass().await;
    let answer = settle_with(&facilitator, &fixture, &body).await;
    assert!(
        answer.is_pending(),
        "still unknown while the chain is unreachable: {answer:?}"
    );
    assert_eq!(answer.transaction, tx);

    // The chain is back: the reconciler resolves it; a retry answers the outcome.
    proxy.set(Fault::None);
    let report = reconciler.pass().await.unwrap();
    assert_eq!(report.resolved, 1, "{report:?}");
    let answer = settle_with(&facilitator, &fixture, &body).await;
    assert!(answer.success, "{answer:?}");
    assert_eq!(answer.transaction, tx);
    assert_eq!(
        fixture.token_balance(fixture.merchant).await - merchant_before,
        U256::from(900u64)
    );
    assert_eq!(fixture.ledger_receivable().await, Amount::from_atomic(900));
}

async fn a_crash_after_broadcast_resumes_without_a_second_transfer(backend: Backend) {
    let mut setup = Setup::new(backend);
    setup.mining = Mining::Manual;
    let fixture = Fixture::start(setup).await;
    let direct = fixture.chain().rpc_url().to_owned();
    let first = facilitator_with(
        &fixture,
        vec![direct.clone()],
        30,
        FacilitatorConfig::default(),
    )
    .await;
    let payer = fixture.payer(0);
    let payment = fixture.payment(payer, 333);
    let body = payment.body(payer, fixture.chain().chain_id());
    let signer = fixture.devnet.accounts().settlement_signer.address();
    let merchant_before = fixture.token_balance(fixture.merchant).await;

    // The request runs until its transaction is in the mempool, then the process "dies".
    let request = {
        let first = first.clone();
        let body = serde_json::to_vec(&body).unwrap();
        let scope = scope(&fixture);
        tokio::spawn(async move { first.settle(scope, &body).await })
    };
    let provider = fixture.chain().provider().clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while provider
        .get_transaction_count(signer)
        .pending()
        .await
        .unwrap()
        == 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the transaction never reached the mempool"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    request.abort();
    drop(first);

    // A new instance: the same store, the chain moves on.
    let restarted =
        facilitator_with(&fixture, vec![direct], 30, FacilitatorConfig::default()).await;
    fixture.chain().mine().await.unwrap();
    let report = Reconciler::new(restarted.clone()).pass().await.unwrap();
    assert_eq!(report.resolved, 1, "{report:?}");
    // The client retries: the one outcome.
    let answer = settle_with(&restarted, &fixture, &body).await;
    assert!(answer.success, "{answer:?}");
    assert_eq!(
        provider.get_transaction_count(signer).await.unwrap(),
        1,
        "one transaction, ever"
    );
    assert_eq!(
        fixture.token_balance(fixture.merchant).await - merchant_before,
        U256::from(333u64)
    );
    assert_eq!(fixture.ledger_receivable().await, Amount::from_atomic(333));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transaction_stuck_below_the_base_fee_is_replaced() {
    let mut setup = Setup::new(Backend::Postgres);
    setup.mining = Mining::Manual;
    let fixture = Fixture::start(setup).await;
    let config = FacilitatorConfig {
        replace_after_seconds: 0,
        ..FacilitatorConfig::default()
    };
    let facilitator = facilitator_with(
        &fixture,
        vec![fixture.chain().rpc_url().to_owned()],
        1,
        config,
    )
    .await;
    let payer = fixture.payer(0);
    let payment = fixture.payment(payer, 1_234);
    let body = payment.body(payer, fixture.chain().chain_id());
    let first = settle_with(&facilitator, &fixture, &body).await;
    assert!(first.is_pending(), "{first:?}");

    // The base fee spikes far above what the transaction offers: blocks leave it out.
    let chain = fixture.chain();
    chain
        .set_next_block_base_fee(500_000_000_000)
        .await
        .unwrap();
    chain.mine().await.unwrap();
    let stuck = fixture
        .store
        .get_settlement(settlement_id(&fixture, &first.transaction).await)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stuck.status,
        SettlementStatus::Pending,
        "not mined at this base fee"
    );

    let report = Reconciler::new(facilitator.clone()).pass().await.unwrap();
    assert_eq!(report.replaced, 1, "{report:?}");
    chain.mine().await.unwrap();
    let report = Reconciler::new(facilitator.clone()).pass().await.unwrap();
    assert_eq!(report.resolved, 1, "{report:?}");
    let answer = settle_with(&facilitator, &fixture, &body).await;
    assert!(answer.success, "{answer:?}");
    assert_ne!(
        answer.transaction, first.transaction,
        "settled by the replacement"
    );
    let attempts = fixture.store.attempts_for(stuck.id).await.unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(
        attempts[0].signer_nonce, attempts[1].signer_nonce,
        "a replacement reuses the nonce"
    );
    assert!(attempts[1].max_fee_per_gas > attempts[0].max_fee_per_gas);
    assert_eq!(
        fixture.ledger_receivable().await,
        Amount::from_atomic(1_234)
    );
}

async fn settlement_id(fixture: &Fixture, tx_hash: &str) -> purser_domain::id::SettlementId {
    let signer = format!(
        "{:#x}",
        fixture.devnet.accounts().settlement_signer.address()
    );
    fixture
        .store
        .signer_attempts_from(&fixture.chain().network(), &signer, 0)
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.tx_hash == tx_hash)
        .and_then(|a| a.settlement_id)
        .expect("the attempt is recorded")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_nonce_gap_is_found_and_filled() {
    let fixture = Fixture::start(Setup::new(Backend::Sqlite)).await;
    let config = FacilitatorConfig {
        rebroadcast_after_seconds: 0,
        ..FacilitatorConfig::default()
    };
    let facilitator = facilitator_with(
        &fixture,
        vec![fixture.chain().rpc_url().to_owned()],
        2,
        config,
    )
    .await;
    let network = fixture.chain().network();
    let signer = format!(
        "{:#x}",
        fixture.devnet.accounts().settlement_signer.address()
    );
    // An instance leased nonce 0 and died before sending anything.
    assert_eq!(
        fixture
            .store
            .lease_signer_nonce(&network, &signer, 0)
            .await
            .unwrap(),
        0
    );

    let payer = fixture.payer(0);
    let payment = fixture.payment(payer, 64);
    let body = payment.body(payer, fixture.chain().chain_id());
    let answer = settle_with(&facilitator, &fixture, &body).await;
    assert!(
        answer.is_pending(),
        "nonce 1 waits behind the gap at 0: {answer:?}"
    );

    let reconciler = Reconciler::new(facilitator.clone());
    let report = reconciler.pass().await.unwrap();
    assert_eq!(report.gaps_filled, 1, "{report:?}");
    fixture.chain().mine().await.unwrap();
    reconciler.pass().await.unwrap();
    let answer = settle_with(&facilitator, &fixture, &body).await;
    assert!(answer.success, "{answer:?}");
    let attempts = fixture
        .store
        .signer_attempts_from(&network, &signer, 0)
        .await
        .unwrap();
    assert_eq!(
        attempts
            .iter()
            .map(|a| (a.signer_nonce, a.kind.as_str()))
            .collect::<Vec<_>>(),
        vec![(0, "gap_fill"), (1, "transfer")]
    );
    assert_eq!(fixture.ledger_receivable().await, Amount::from_atomic(64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_sharing_a_signer_never_collide() {
    let fixture = Fixture::start(Setup::new(Backend::Postgres)).await;
    let url = fixture.chain().rpc_url().to_owned();
    let a = facilitator_with(
        &fixture,
        vec![url.clone()],
        20,
        FacilitatorConfig::default(),
    )
    .await;
    let b = facilitator_with(&fixture, vec![url], 20, FacilitatorConfig::default()).await;
    let chain_id = fixture.chain().chain_id();
    let bodies: Vec<serde_json::Value> = (0..12)
        .map(|i| {
            let payer = fixture.payer(i % 3);
            fixture.payment(payer, 10 + i as u128).body(payer, chain_id)
        })
        .collect();
    let answers = futures::future::join_all(bodies.iter().enumerate().map(|(i, body)| {
        let instance = if i % 2 == 0 { a.clone() } else { b.clone() };
        let fixture = &fixture;
        async move { settle_with(&instance, fixture, body).await }
    }))
    .await;
    for answer in &answers {
        assert!(answer.success, "{answer:?}");
    }
    let signer = fixture.devnet.accounts().settlement_signer.address();
    assert_eq!(
        fixture
            .chain()
            .provider()
            .get_transaction_count(signer)
            .await
            .unwrap(),
        12,
        "twelve transactions, no collision, no retry"
    );
    let expected: u128 = (0..12).map(|i| 10 + i as u128).sum();
    assert_eq!(
        fixture.ledger_receivable().await,
        Amount::from_atomic(expected)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_signers_share_the_load() {
    let mut setup = Setup::new(Backend::Sqlite);
    setup.signers = 3;
    let fixture = Fixture::start(setup).await;
    let chain_id = fixture.chain().chain_id();
    let answers = futures::future::join_all((0..6).map(|i| {
        let payer = fixture.payer(i % 3);
        let body = fixture.payment(payer, 5).body(payer, chain_id);
        let fixture = &fixture;
        async move { fixture.post("settle", &body).await }
    }))
    .await;
    let mut transactions = Vec::new();
    for (_, answer) in &answers {
        assert_eq!(answer["success"], true, "{answer}");
        transactions.push(answer["transaction"].as_str().unwrap().to_owned());
    }
    let mut senders = std::collections::HashSet::new();
    for tx in transactions {
        let hash: alloy::primitives::B256 = tx.parse().unwrap();
        let found = fixture
            .chain()
            .provider()
            .get_transaction_by_hash(hash)
            .await
            .unwrap()
            .unwrap();
        senders.insert(found.inner.signer());
    }
    assert_eq!(senders.len(), 3, "each signer sent some: {senders:?}");
}

/// A rail whose node is down at start-up still opens (an outage must not stop the other
/// services); a node serving another chain is a configuration error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rails_open_through_an_outage_but_not_on_the_wrong_chain() {
    let (fixture, proxy) = behind_proxy(Setup::new(Backend::Sqlite)).await;
    proxy.set(Fault::Refuse);
    let (rail, _keys) = rail_config(&fixture.devnet, vec![proxy.url()], 1, 20);
    assert!(Rails::open(&[rail], fast_rpc()).await.is_ok());
    let (rail, _keys) = rail_config(
        &fixture.devnet,
        vec![fixture.chain().rpc_url().to_owned()],
        1,
        20,
    );
    let wrong = purser_chain::config::RailConfig {
        network: "eip155:8453".to_owned(),
        ..rail
    };
    let err = Rails::open(&[wrong], fast_rpc()).await.unwrap_err();
    assert!(err.message().contains("serves chain 84532"), "{err:?}");
}
