//! The `purser` process killed between broadcast and receipt, then restarted: the payment
//! settles once, and the ledger matches the chain.

use std::time::Duration;

use alloy::primitives::U256;
use alloy::providers::Provider;
use purser_devnet::payment::Payment;
use purser_devnet::{Devnet, DevnetChainSpec, DevnetOptions, Mining};
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

/// `purser serve` on PostgreSQL killed (SIGKILL) while four clients send batches of usage
/// events, some overlapping earlier ones, then restarted: every event acknowledged before the
/// kill is stored, none is stored twice, and resending everything counts each event once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_under_ingestion_load_it_loses_no_acknowledged_event_and_counts_none_twice() {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};

    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create().await;
    let env = [("PURSER__STORAGE__DATABASE_URL", database.url())];
    let tenant = last_line(&run(
        dir.path(),
        &["tenant", "create", "--name", "Metered"],
        &env,
    ));
    let key = run(
        dir.path(),
        &[
            "key",
            "create",
            "--tenant",
            &tenant,
            "--role",
            "tenant-admin",
        ],
        &env,
    );
    assert!(key.status.success(), "{key:?}");
    let key = last_line(&key);
    let client = purser_testkit::http_client();

    let first = Server::start_with(dir.path(), &[], &env);
    let created: Value = client
        .post(format!("{}/graphql", first.base))
        .bearer_auth(&key)
        .json(&serde_json::json!({
            "query": "mutation { createMeter(input: { slug: \"calls\", name: \"Calls\", eventType: \"api.call\", aggregation: COUNT }) { slug } }"
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created["data"]["createMeter"]["slug"], "calls", "{created}");

    // Each batch: 100 new events and the last 20 of the previous batch again.
    let batch = |task: usize, n: usize| -> Vec<String> {
        let first_new = n * 100;
        let start = first_new.saturating_sub(20);
        (start..first_new + 100)
            .map(|i| format!("t{task}-e{i}"))
            .collect()
    };
    let body = |ids: &[String]| {
        let events: Vec<Value> = ids
            .iter()
            .map(|id| {
                serde_json::json!({
                    "specversion": "1.0", "id": id, "source": "//crash-test", "type": "api.call",
                    "subject": "customer-1", "data": {"n": 1}
                })
            })
            .collect();
        serde_json::to_vec(&events).unwrap()
    };
    let send = {
        let client = client.clone();
        let key = key.clone();
        move |base: String, ids: Vec<String>| {
            let client = client.clone();
            let key = key.clone();
            let body = body(&ids);
            async move {
                let answer = client
                    .post(format!("{base}/v1/events"))
                    .bearer_auth(key)
                    .header("content-type", "application/cloudevents-batch+json")
                    .body(body)
                    .send()
                    .await
                    .ok()?;
                if answer.status() != 200 {
                    return None;
                }
                let answer: Value = answer.json().await.ok()?;
                Some(
                    answer["events"]
                        .as_array()?
                        .iter()
                        .map(|e| {
                            (
                                e["id"].as_str().unwrap_or_default().to_owned(),
                                e["status"].as_str().unwrap_or_default().to_owned(),
                            )
                        })
                        .collect::<Vec<_>>(),
                )
            }
        }
    };

    let acknowledged = Arc::new(Mutex::new(HashSet::<String>::new()));
    let attempted = Arc::new(Mutex::new(Vec::<Vec<String>>::new()));
    let acked_batches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut load = Vec::new();
    for task in 0..4 {
        let (send, base) = (send.clone(), first.base.clone());
        let (acknowledged, attempted, acked_batches) = (
            acknowledged.clone(),
            attempted.clone(),
            acked_batches.clone(),
        );
        load.push(tokio::spawn(async move {
            for n in 0.. {
                let ids = batch(task, n);
                attempted.lock().unwrap().push(ids.clone());
                let Some(answers) = send(base.clone(), ids).await else {
                    return;
                };
                let mut acknowledged = acknowledged.lock().unwrap();
                for (id, status) in answers {
                    assert!(
                        status == "accepted" || status == "duplicate",
                        "{id}: {status}"
                    );
                    acknowledged.insert(id);
                }
                acked_batches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while acked_batches.load(std::sync::atomic::Ordering::SeqCst) < 40 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the load never got going"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut first = first;
    first.child.kill().expect("SIGKILL purser");
    first.child.wait().unwrap();
    for task in load {
        task.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    let attempted = attempted.lock().unwrap().clone();
    assert!(
        attempted.len() > acked_batches.load(std::sync::atomic::Ordering::SeqCst),
        "some batches were in flight at the kill"
    );

    // Every acknowledged event is stored, once.
    let pool = sqlx::PgPool::connect(database.url()).await.unwrap();
    let stored: Vec<(String,)> = sqlx::query_as(
        "SELECT event_id FROM usage_events WHERE tenant_id = $1::uuid AND revision = 0",
    )
    .bind(&tenant)
    .fetch_all(&pool)
    .await
    .unwrap();
    let stored_ids: HashSet<String> = stored.iter().map(|(id,)| id.clone()).collect();
    assert_eq!(stored_ids.len(), stored.len(), "an event is stored twice");
    let lost: Vec<_> = acknowledged.difference(&stored_ids).take(5).collect();
    assert!(lost.is_empty(), "acknowledged, then lost: {lost:?}");

    // After the restart, every batch is sent again: the acknowledged events are duplicates, and
    // the meter counts every distinct event once.
    let second = Server::start_with(dir.path(), &[], &env);
    let mut all = HashSet::new();
    for ids in &attempted {
        let answers = send(second.base.clone(), ids.clone())
            .await
            .expect("the restarted server answers");
        for (id, status) in answers {
            if acknowledged.contains(&id) || stored_ids.contains(&id) {
                assert_eq!(status, "duplicate", "{id} was stored before the kill");
            }
            all.insert(id);
        }
    }
    let usage: Value = client
        .get(format!(
            "{}/v1/meters/calls/query?from=2020-01-01T00:00:00Z&to=2100-01-01T00:00:00Z",
            second.base
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        usage["rows"][0]["value"].as_str(),
        Some(all.len().to_string().as_str()),
        "{usage}"
    );
    second.terminate();
}
