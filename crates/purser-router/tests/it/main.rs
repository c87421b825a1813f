//! The settlement router against real anvil chains: quotes that follow the chain's fees, offers
//! ordered and filtered by them, rails taken out and brought back by their health, and
//! start-up errors that name the key.

use std::sync::Arc;

use alloy::providers::Provider;
use purser_chain::config::{AssetConfig, PriceFeedConfig, RailConfig, SignerSource};
use purser_chain::rails::Rails;
use purser_chain::rpc::RpcPolicy;
use purser_devnet::{Devnet, DevnetChain, DevnetChainSpec, DevnetOptions};
use purser_domain::money::Amount;
use purser_domain::routing::{Candidate, OfferRouter, RoutingPolicy, Strategy};
use purser_router::{Router, RouterConfig};
use purser_testkit::proxy::{Fault, FaultyProxy};

mod kinds;

const GWEI: u128 = 1_000_000_000;

pub(crate) async fn devnet(chains: Vec<DevnetChainSpec>) -> Devnet {
    Devnet::start(DevnetOptions {
        payer_accounts: 1,
        canonical_usdc: false,
        ..DevnetOptions::with_chains(chains)
    })
    .await
    .expect("start the devnet")
}

/// A rail over `chain` (through `rpc_url` when given), with the devnet's settlement signer.
pub(crate) fn rail(
    devnet: &Devnet,
    chain: &DevnetChain,
    rpc_url: Option<String>,
) -> (RailConfig, tempfile::NamedTempFile) {
    let key = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        key.path(),
        devnet.accounts().settlement_signer.private_key_hex(),
    )
    .unwrap();
    let token = chain.token();
    let config = RailConfig {
        network: chain.network(),
        rpc_urls: vec![rpc_url.unwrap_or_else(|| chain.rpc_url().to_owned())],
        signers: vec![SignerSource::File {
            file: key.path().to_owned(),
        }],
        assets: vec![AssetConfig {
            address: format!("{:#x}", token.address),
            name: token.name.clone(),
            version: token.version.clone(),
            decimals: token.decimals,
            symbol: None,
            currency: "USD".to_owned(),
        }],
        ..Default::default()
    };
    (config, key)
}

pub(crate) fn eth_at(price: &str) -> PriceFeedConfig {
    PriceFeedConfig {
        gas_token: "ETH".to_owned(),
        currency: "USD".to_owned(),
        network: None,
        aggregator: None,
        fixed: Some(price.to_owned()),
        max_age_seconds: 3600,
    }
}

pub(crate) fn config() -> RouterConfig {
    RouterConfig {
        // anvil mines only on demand: an idle head is old, not stuck.
        stall_after_seconds: 0,
        failures_to_open: 1,
        open_for_ms: 200,
        price_feeds: vec![eth_at("3000")],
        ..RouterConfig::default()
    }
}

fn fast_rpc() -> RpcPolicy {
    RpcPolicy {
        attempt_timeout: std::time::Duration::from_millis(500),
        rounds: 1,
        backoff: std::time::Duration::from_millis(10),
    }
}

pub(crate) async fn open(configs: &[RailConfig]) -> Arc<Rails> {
    Arc::new(Rails::open(configs, fast_rpc()).await.expect("open rails"))
}

fn candidates<'a>(devnet: &'a Devnet, networks: &'a [String], amount: u128) -> Vec<Candidate<'a>> {
    networks
        .iter()
        .zip(devnet.chains())
        .map(|(network, chain)| Candidate {
            network,
            asset: Box::leak(format!("{:#x}", chain.token().address).into_boxed_str()),
            amount: Amount::from_atomic(amount),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotes_follow_the_chains_fees_and_order_the_offers() {
    let devnet = devnet(vec![
        DevnetChainSpec::custom(31_001, "alpha", GWEI),
        DevnetChainSpec::custom(31_002, "beta", 10 * GWEI),
    ])
    .await;
    let (alpha, _a) = rail(&devnet, &devnet.chains()[0], None);
    let (beta, _b) = rail(&devnet, &devnet.chains()[1], None);
    let router = Router::new(open(&[alpha, beta]).await, config()).unwrap();
    let networks: Vec<String> = devnet.chains().iter().map(|c| c.network()).collect();

    // Before any quote nothing is known: the merchant's order.
    let offers = candidates(&devnet, &networks, 1_000_000);
    let routed = router.route(&RoutingPolicy::default(), &offers);
    assert_eq!(routed.order, [0, 1]);

    router.round_once().await;
    let snapshot = router.snapshot();
    for chain in devnet.chains() {
        let view = &snapshot.rails[&chain.network()];
        assert!(view.health.is_healthy(), "{view:?}");
        let cost = &view.quote.as_ref().expect("a quote").cost;
        // An `ethereum` rail: the configured gas × (the next block's base fee + the node's
        // tip); the devnet's blocks are far below their gas target, so EIP-1559 lowers it.
        let latest = chain.latest_base_fee().await.unwrap();
        let base_fee = chain
            .provider()
            .get_fee_history(1, alloy::eips::BlockNumberOrTag::Latest, &[])
            .await
            .unwrap()
            .next_block_base_fee()
            .unwrap();
        assert!(base_fee < latest, "{base_fee} against {latest}");
        let tip = chain
            .provider()
            .get_max_priority_fee_per_gas()
            .await
            .unwrap();
        assert_eq!(cost.base_fee_per_gas, base_fee);
        assert_eq!(cost.priority_fee_per_gas, tip);
        assert_eq!(cost.execution_gas, 90_000);
        assert_eq!(cost.total, 90_000 * (base_fee + tip));
        assert_eq!(cost.l1_fee + cost.operator_fee, 0);
    }
    // Alpha is the cheaper: the 402 offers it first, whichever order the merchant typed.
    let reversed: Vec<Candidate<'_>> = offers.iter().rev().copied().collect();
    assert_eq!(
        router.route(&RoutingPolicy::default(), &offers).order,
        [0, 1]
    );
    assert_eq!(
        router.route(&RoutingPolicy::default(), &reversed).order,
        [1, 0]
    );
    // Pinned keeps the merchant's order.
    let pinned = RoutingPolicy {
        strategy: Strategy::Pinned,
        ..RoutingPolicy::default()
    };
    assert_eq!(router.route(&pinned, &reversed).order, [0, 1]);

    // A fee spike on alpha: a hundred times beta's.
    devnet.chains()[0]
        .set_next_block_base_fee(1_000 * GWEI)
        .await
        .unwrap();
    devnet.chains()[0].mine().await.unwrap();
    router.round_once().await;
    let routed = router.route(&RoutingPolicy::default(), &offers);
    assert_eq!(routed.order, [1, 0], "the spike moves alpha behind beta");

    // The cost in the asset: 90,000 gas × ~10 gwei ≈ 9e14 wei, at 3,000 USD per ETH ≈ 2.7 USD,
    // 2,700,000 units of a 6-decimal token. A 1 USD price under a 100% guard leaves beta out
    // too, and then nothing is offered for its fee.
    let beta_cost = router
        .cost_in_asset(&networks[1], offers[1].asset)
        .expect("beta is quoted");
    let beta_wei = snapshot.rails[&networks[1]]
        .quote
        .as_ref()
        .unwrap()
        .cost
        .total;
    assert_eq!(
        beta_cost,
        (beta_wei * 3_000 * 1_000_000).div_ceil(10u128.pow(18))
    );
    let guard = RoutingPolicy {
        max_fee_ratio_bps: Some(10_000),
        ..RoutingPolicy::default()
    };
    let cheap_price = candidates(&devnet, &networks, beta_cost - 1);
    let routed = router.route(&guard, &cheap_price);
    assert!(routed.order.is_empty());
    assert_eq!(routed.left_out, [(0, "fee_ratio"), (1, "fee_ratio")]);
    let dear_price = candidates(&devnet, &networks, beta_cost);
    assert_eq!(router.route(&guard, &dear_price).order, [1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rail_whose_rpc_drops_is_taken_out_and_comes_back() {
    let devnet = devnet(vec![
        DevnetChainSpec::custom(31_011, "steady", 10 * GWEI),
        DevnetChainSpec::custom(31_012, "flaky", GWEI),
    ])
    .await;
    let flaky_chain = &devnet.chains()[1];
    let upstream = flaky_chain
        .rpc_url()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let proxy = FaultyProxy::start(upstream).await;
    let (steady, _s) = rail(&devnet, &devnet.chains()[0], None);
    let (flaky, _f) = rail(&devnet, flaky_chain, Some(proxy.url()));
    let router = Router::new(open(&[steady, flaky]).await, config()).unwrap();
    let networks: Vec<String> = devnet.chains().iter().map(|c| c.network()).collect();
    let offers = candidates(&devnet, &networks, 1_000_000);
    let policy = RoutingPolicy::default();

    // The loop runs as it does in `purser serve`.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(router.clone().run(async move {
        let _ = stopped.await;
    }));
    let wait_for = |want: Vec<usize>| {
        let router = router.clone();
        let offers = offers.clone();
        async move {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
            loop {
                let routed = router.route(&policy, &offers);
                if routed.order == want {
                    return routed;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "still {routed:?}, waiting for {want:?}: {:?}",
                    router.snapshot().rails
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    // Healthy, the cheap flaky rail comes first.
    wait_for(vec![1, 0]).await;
    proxy.set(Fault::Refuse);
    let routed = wait_for(vec![0]).await;
    assert_eq!(routed.left_out, [(1, "rpc_unreachable")]);
    let view = &router.snapshot().rails[&networks[1]];
    assert_eq!(view.health.reason(), Some("rpc_unreachable"));
    // A half-open probe after the open period finds it back.
    proxy.set(Fault::None);
    wait_for(vec![1, 0]).await;
    assert!(router.snapshot().rails[&networks[1]].health.is_healthy());
    let _ = stop.send(());
    running.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signer_that_cannot_pay_for_gas_takes_its_rail_out() {
    let devnet = devnet(vec![DevnetChainSpec::custom(31_021, "poor", GWEI)]).await;
    let chain = &devnet.chains()[0];
    let (config_rail, _k) = rail(&devnet, chain, None);
    let router = Router::new(open(&[config_rail]).await, config()).unwrap();
    router.round_once().await;
    assert!(
        router.snapshot().rails[&chain.network()]
            .health
            .is_healthy()
    );
    let signer = devnet.accounts().settlement_signer.address();
    let set_balance = |wei: u128| async move {
        chain
            .provider()
            .raw_request::<_, ()>(
                "anvil_setBalance".into(),
                (signer, alloy::primitives::U256::from(wei)),
            )
            .await
            .unwrap();
    };
    // Enough for 19 settlements at the quote, one short of the 20 required.
    let cost = router.snapshot().rails[&chain.network()]
        .quote
        .as_ref()
        .unwrap()
        .cost
        .total;
    set_balance(cost * 19).await;
    router.round_once().await;
    let view = &router.snapshot().rails[&chain.network()];
    assert_eq!(view.health.reason(), Some("signer_low_balance"), "{view:?}");
    set_balance(cost * 1_000).await;
    router.round_once().await;
    assert!(
        router.snapshot().rails[&chain.network()]
            .health
            .is_healthy()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_router_configuration_is_a_start_up_error_naming_the_key() {
    let devnet = devnet(vec![DevnetChainSpec::custom(31_031, "keys", GWEI)]).await;
    let (config_rail, _k) = rail(&devnet, &devnet.chains()[0], None);
    let rails = open(&[config_rail]).await;
    let refused = |config: RouterConfig| {
        Router::new(rails.clone(), config)
            .unwrap_err()
            .message()
            .to_owned()
    };
    let missing = refused(RouterConfig {
        price_feeds: vec![],
        ..config()
    });
    assert!(
        missing.contains("router.price_feeds") && missing.contains("eip155:31031"),
        "{missing}"
    );
    let bad_price = refused(RouterConfig {
        price_feeds: vec![eth_at("three thousand")],
        ..config()
    });
    assert!(
        bad_price.contains("router.price_feeds[0].fixed"),
        "{bad_price}"
    );
    let elsewhere = refused(RouterConfig {
        price_feeds: vec![PriceFeedConfig {
            fixed: None,
            network: Some("eip155:1".to_owned()),
            aggregator: Some("0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419".to_owned()),
            ..eth_at("1")
        }],
        ..config()
    });
    assert!(
        elsewhere.contains("router.price_feeds[0].network") && elsewhere.contains("eip155:1"),
        "{elsewhere}"
    );
    // Off, no feed is needed and offers keep the merchant's order.
    let off = Router::new(
        rails.clone(),
        RouterConfig {
            enabled: false,
            price_feeds: vec![],
            ..config()
        },
    )
    .unwrap();
    let asset = format!("{:#x}", devnet.chains()[0].token().address);
    let offers = [
        Candidate {
            network: "eip155:9",
            asset: &asset,
            amount: Amount::from_atomic(1),
        },
        Candidate {
            network: "eip155:31031",
            asset: &asset,
            amount: Amount::from_atomic(1),
        },
    ];
    assert_eq!(off.route(&RoutingPolicy::default(), &offers).order, [0, 1]);
}
