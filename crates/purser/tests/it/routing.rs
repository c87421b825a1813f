//! Settlement routing end to end: a resource that accepts two rails, served by a real `purser`
//! over two anvil chains; changing one chain's fees changes the order of the offers Purser
//! writes, through the public payment-required endpoint (what the gateway's proxy, its delegated
//! checks and the native layer answer with), a credit top-up that names no network, and
//! GraphQL; a tenant's policy changes it too.

use purser_chain::config::{PriceFeedConfig, RailConfig};
use purser_chain::rails::Rails;
use purser_chain::rpc::RpcPolicy;
use purser_devnet::{Devnet, DevnetChainSpec, DevnetOptions};
use serde_json::{Value, json};

use crate::harness::{Backends, TestApp};

const GWEI: u128 = 1_000_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changing_a_chains_fees_changes_the_order_of_the_offers() {
    let devnet = Devnet::start(DevnetOptions {
        payer_accounts: 1,
        canonical_usdc: false,
        ..DevnetOptions::with_chains(vec![
            DevnetChainSpec::custom(31_201, "cheap", GWEI),
            DevnetChainSpec::custom(31_202, "dear", 10 * GWEI),
        ])
    })
    .await
    .expect("start the devnet");
    let key = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        key.path(),
        devnet.accounts().settlement_signer.private_key_hex(),
    )
    .unwrap();
    let configs: Vec<RailConfig> = devnet
        .chains()
        .iter()
        .map(|chain| chain.rail_config(key.path()))
        .collect();
    let rails = Rails::open(&configs, RpcPolicy::default()).await.unwrap();
    let mut config = purser::config::Config::default();
    config.router.quote_interval_ms = 200;
    config.router.stall_after_seconds = 0;
    config.router.price_feeds = vec![PriceFeedConfig {
        gas_token: "ETH".to_owned(),
        currency: "USD".to_owned(),
        network: None,
        aggregator: None,
        fixed: Some("3000".to_owned()),
        max_age_seconds: 3600,
    }];
    let app = TestApp::start_with_rails(Backends::Embedded, config, rails).await;
    let operator = app.operator_token.clone();
    let tenant = app
        .graphql_ok(
            &operator,
            "mutation { createTenant(input: { name: \"Routed Merchant\" }) { id } }",
            json!({}),
        )
        .await["createTenant"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let [cheap, dear] = [0, 1].map(|i| devnet.chains()[i].network());
    for network in [&cheap, &dear] {
        app.graphql_ok(
            &operator,
            "mutation($t: ID!, $n: String!) { setPayoutAddress(input: { tenantId: $t, network: $n,
                address: \"0x209693Bc6afc0C5328bA36FaF03C514EF312287C\" }) { address } }",
            json!({ "t": tenant, "n": network }),
        )
        .await;
    }
    // The merchant lists the dear chain first.
    let created = app
        .graphql_ok(
            &operator,
            "mutation($input: CreateResourceInput!) { createResource(input: $input) { id } }",
            json!({ "input": {
                "tenantId": tenant,
                "type": "HTTP",
                "url": "https://api.example.com/routed",
                "method": "GET",
                "name": "Routed",
                "description": "A resource that accepts two chains",
                "price": { "amount": "1000000" },
                "accepts": [{ "network": dear }, { "network": cheap }],
                "publish": true,
            }}),
        )
        .await;
    let id = created["createResource"]["id"].as_str().unwrap().to_owned();
    let offered = |app: &TestApp| {
        let url = app.url(&format!("/v1/resources/{id}/payment-required"));
        let client = app.client.clone();
        async move {
            let body: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
            networks(&body["paymentRequired"])
        }
    };
    // A top-up that names no network is offered on every network the merchant takes, in the
    // router's order too.
    let topped = |app: &TestApp| {
        let url = app.url(&format!(
            "/v1/credits/top-up?tenant={tenant}&amount=5000000"
        ));
        let client = app.client.clone();
        async move {
            let response = client.get(&url).send().await.unwrap();
            assert_eq!(response.status(), 402);
            let header = response.headers()["payment-required"].to_str().unwrap();
            let required = purser_x402::header::decode_payment_required(header).unwrap();
            networks(&serde_json::to_value(required).unwrap())
        }
    };
    // Once quoted, the cheap chain comes first whatever the merchant's order.
    let want = vec![cheap.clone(), dear.clone()];
    eventually(|| offered(&app), &want).await;
    eventually(|| topped(&app), &want).await;

    // A fee spike on the cheap chain: a hundred times the dear one's.
    devnet.chains()[0]
        .set_next_block_base_fee(1_000 * GWEI)
        .await
        .unwrap();
    devnet.chains()[0].mine().await.unwrap();
    let want = vec![dear.clone(), cheap.clone()];
    eventually(|| offered(&app), &want).await;
    eventually(|| topped(&app), &want).await;
    let data = app
        .graphql_ok(
            &operator,
            "query($id: ID!, $t: ID) { resource(id: $id, tenantId: $t) { paymentRequired } }",
            json!({ "id": id, "t": tenant }),
        )
        .await;
    assert_eq!(networks(&data["resource"]["paymentRequired"]), want);
    let quotes = app
        .graphql_ok(
            &operator,
            "{ railQuotes { network healthy cost { total } } }",
            json!({}),
        )
        .await;
    let total = |network: &str| -> u128 {
        quotes["railQuotes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["network"] == network)
            .unwrap()["cost"]["total"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(total(&cheap) > total(&dear), "{quotes}");

    // The tenant pins the merchant's order: the dear chain first, as listed, whatever the fees.
    devnet.chains()[0]
        .set_next_block_base_fee(GWEI)
        .await
        .unwrap();
    devnet.chains()[0].mine().await.unwrap();
    let want = vec![cheap.clone(), dear.clone()];
    eventually(|| offered(&app), &want).await;
    app.graphql_ok(
        &operator,
        "mutation($t: ID) { setRoutingPolicy(input: { tenantId: $t, strategy: PINNED }) { strategy } }",
        json!({ "t": tenant }),
    )
    .await;
    let want = vec![dear.clone(), cheap.clone()];
    eventually(|| offered(&app), &want).await;
}

/// The networks of a `PaymentRequired`'s offers, in order.
fn networks(required: &Value) -> Vec<String> {
    required["accepts"]
        .as_array()
        .unwrap_or_else(|| panic!("no accepts in {required}"))
        .iter()
        .map(|a| a["network"].as_str().unwrap().to_owned())
        .collect()
}

/// Polls `read` until it answers `want` (the router quotes every 200 ms here; a resource and
/// its tenant's policy are cached for 2 s), for at most 15 s.
async fn eventually<F, Fut>(read: F, want: &Vec<String>)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let got = read().await;
        if &got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "offers are {got:?}, waiting for {want:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
