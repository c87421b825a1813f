//! The `purser` process killed between broadcast and receipt, then restarted: the payment
//! settles once, and the ledger matches the chain.

use std::time::Duration;

use alloy::primitives::U256;
use alloy::providers::Provider;
use purser_chain::devnet::payment::Payment;
use purser_chain::devnet::{Devnet, DevnetChainSpec, DevnetOptions, Mining};
use purser_domain::auth::TenantScope;
use purser_domain::ledger::AccountKind;
use purser_domain::money::Amount;
use purser_store_postgres::{PgStore, PgStoreOptions};
use purser_testkit::postgres::TestDatabase;
use serde_json::Value;

use crate::cli::{Server, last_line, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_between_broadcast_and_receipt_it_settles_once_after_restart() {
    let devnet = Devnet::start(DevnetOptions {
        repo_root: Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")),
        mining: Mining::Manual,
        ..DevnetOptions::with_chains(vec![DevnetChainSpec::base_sepolia()])
    })
    .await
    .unwrap();
    let chain = &devnet.chains()[0];
    let dir = tempfile::tempdir().unwrap();
    devnet.write_files(dir.path()).unwrap();
    let config = dir.path().join("purser.toml");
    let config = config.to_str().unwrap();
    let database = TestDatabase::create().await;
    let env = [
        ("PURSER__STORAGE__DATABASE_URL", database.url()),
        ("PURSER__FACILITATOR__RECONCILE_INTERVAL_MS", "200"),
        ("PURSER__FACILITATOR__RECONCILE_MIN_AGE_MS", "0"),
    ];
    let tenant = last_line(&run(
        dir.path(),
        &["--config", config, "tenant", "create", "--name", "Merchant"],
        &env,
    ));
    let key = run(
        dir.path(),
        &[
            "--config",
            config,
            "key",
            "create",
            "--tenant",
            &tenant,
            "--role",
            "resource-server",
        ],
        &env,
    );
    assert!(key.status.success(), "{key:?}");
    let key = last_line(&key);

    let payer = &devnet.accounts().payers[0];
    let merchant = devnet.accounts().payers[3].address();
    let body = Payment::new(chain, payer, merchant, 4_321).body(payer, chain.chain_id());
    let merchant_before = chain.balance_of(merchant).await.unwrap();
    let signer = devnet.accounts().settlement_signer.address();

    // First life: the settle request gets as far as the mempool, then the process is killed.
    let first = Server::start_with(dir.path(), &["--config", config], &env);
    let client = purser_testkit::http_client();
    let settle = |base: String| {
        let client = client.clone();
        let key = key.clone();
        let body = body.clone();
        async move {
            client
                .post(format!("{base}/facilitator/settle"))
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
        }
    };
    let in_flight = tokio::spawn(settle(first.base.clone()));
    let provider = chain.provider().clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while provider
        .get_transaction_count(signer)
        .pending()
        .await
        .unwrap()
        == 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the settlement never reached the mempool"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut first = first;
    first.child.kill().expect("SIGKILL purser");
    first.child.wait().unwrap();
    assert!(
        in_flight.await.unwrap().is_err(),
        "the request died with the process"
    );

    // The chain mines it while Purser is down; a new process finds out and answers the retry.
    chain.mine().await.unwrap();
    let second = Server::start_with(dir.path(), &["--config", config], &env);
    let answer: Value = settle(second.base.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["success"], true, "{answer}");
    assert_eq!(
        provider.get_transaction_count(signer).await.unwrap(),
        1,
        "one transaction, ever"
    );
    assert_eq!(
        chain.balance_of(merchant).await.unwrap() - merchant_before,
        U256::from(4_321u64)
    );
    let store = PgStore::connect(database.url(), &PgStoreOptions::default())
        .await
        .unwrap();
    let balances = purser_domain::repo::LedgerRepository::account_balances(
        &store,
        TenantScope::trusted(tenant.parse().unwrap()),
    )
    .await
    .unwrap();
    let receivable = balances
        .iter()
        .find(|b| b.account.kind == AccountKind::MerchantReceivable)
        .unwrap();
    assert_eq!(
        receivable.posted_credit_balance(),
        Some(Amount::from_atomic(4_321))
    );
    second.terminate();
}
