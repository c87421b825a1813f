//! The OP Stack and Arbitrum fee models against the devnet's stand-ins at the canonical
//! predeploy addresses, and a price read from a Chainlink-style feed on the L1 stand-in.

use alloy::primitives::Bytes;
use alloy::providers::Provider;
use purser_chain::config::{PriceFeedConfig, RailConfig};
use purser_devnet::{DevnetChain, DevnetChainSpec, FeeLevels};
use purser_domain::money::Amount;
use purser_domain::routing::{Candidate, OfferRouter, RoutingPolicy};
use purser_router::{Router, RouterConfig};

use crate::{config, devnet, open, rail};

const GWEI: u128 = 1_000_000_000;

/// A rail of the chain's own kind.
fn kind_rail(
    devnet: &purser_devnet::Devnet,
    chain: &DevnetChain,
) -> (RailConfig, tempfile::NamedTempFile) {
    let (mut config, key) = rail(devnet, chain, None);
    config.kind = chain.fee_kind().into();
    (config, key)
}

fn feed_on(chain: &DevnetChain, max_age_seconds: u64) -> PriceFeedConfig {
    PriceFeedConfig {
        gas_token: "ETH".to_owned(),
        currency: "USD".to_owned(),
        network: Some(chain.network()),
        aggregator: Some(format!("{:#x}", chain.price_feed().unwrap().address)),
        fixed: None,
        max_age_seconds,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn op_stack_and_arbitrum_quotes_follow_their_oracles() {
    let devnet = devnet(vec![
        DevnetChainSpec::base_sepolia(),
        DevnetChainSpec::arbitrum_sepolia(),
        DevnetChainSpec::ethereum_sepolia(),
    ])
    .await;
    let [base, arbitrum, ethereum] = [0, 1, 2].map(|i| &devnet.chains()[i]);
    let (base_rail, _a) = kind_rail(&devnet, base);
    let (arbitrum_rail, _b) = kind_rail(&devnet, arbitrum);
    let (ethereum_rail, _c) = kind_rail(&devnet, ethereum);
    let router = Router::new(
        open(&[base_rail, arbitrum_rail, ethereum_rail]).await,
        RouterConfig {
            price_feeds: vec![feed_on(ethereum, 3600)],
            ..config()
        },
    )
    .unwrap();
    router.round_once().await;
    let snapshot = router.snapshot();
    let feed = &snapshot.feeds[0];
    assert!(feed.health.is_healthy(), "{feed:?}");
    assert_eq!(feed.answer.unwrap().answer, 300_000_000_000);
    assert_eq!(feed.answer.unwrap().decimals, 8);

    // OP Stack: an L1 fee from the GasPriceOracle, no operator fee yet.
    let quote = |network: String| {
        let router = router.clone();
        async move {
            router.round_once().await;
            let snapshot = router.snapshot();
            let view = &snapshot.rails[&network];
            assert!(view.health.is_healthy(), "{view:?}");
            view.quote.clone().unwrap().cost
        }
    };
    let before = quote(base.network()).await;
    assert_eq!(before.kind, "op-stack");
    assert!(before.l1_fee > 0, "{before:?}");
    assert_eq!(before.operator_fee, 0);
    assert_eq!(
        before.total,
        before.execution_fee + before.l1_fee + before.operator_fee
    );
    // Raising the L1 base fee the OP Stack way (L1Block's slot) raises the L1 fee with it: the
    // L1 base fee is almost all of it while the blob base fee is 1 wei.
    base.set_fees(&FeeLevels {
        l1_base_fee_wei: Some(1_000 * GWEI),
        ..FeeLevels::default()
    })
    .await
    .unwrap();
    let after = quote(base.network()).await;
    assert!(
        after.l1_fee > before.l1_fee * 900,
        "{} then {}",
        before.l1_fee,
        after.l1_fee
    );
    // The operator fee (Isthmus): gas × scalar / 10⁶ + constant, exactly.
    base.set_fees(&FeeLevels {
        operator_fee_scalar: Some(2_500_000),
        operator_fee_constant_wei: Some(7_000),
        ..FeeLevels::default()
    })
    .await
    .unwrap();
    let operated = quote(base.network()).await;
    assert_eq!(
        operated.operator_fee,
        u128::from(operated.execution_gas) * 2_500_000 / 1_000_000 + 7_000
    );

    // Arbitrum: the NodeInterface's L1 component for the settlement's 292 bytes of calldata
    // (`transferWithAuthorization` with v, r, s), padded by a tenth, × the base fee; no tip.
    let arb = quote(arbitrum.network()).await;
    let l1_estimate = arbitrum
        .fee_levels()
        .await
        .unwrap()
        .l1_base_fee_wei
        .unwrap();
    // The node prices the L1 component at the latest base fee; execution is priced at the
    // next block's.
    let latest = arbitrum.latest_base_fee().await.unwrap();
    let unpadded = 16 * (292 + 140) * l1_estimate / latest;
    assert_eq!(u128::from(arb.l1_gas), unpadded * 1_100 / 1_000);
    assert_eq!(arb.l1_fee, u128::from(arb.l1_gas) * latest);
    assert!(arb.base_fee_per_gas < latest, "{arb:?}");
    assert_eq!(arb.priority_fee_per_gas, 0);
    assert_eq!(
        arb.total,
        u128::from(arb.execution_gas) * arb.base_fee_per_gas + arb.l1_fee
    );

    // Ethereum at 20 gwei is the dearest; with Base's L1 fee up a thousandfold, Base is behind
    // Arbitrum.
    let networks = [base.network(), arbitrum.network(), ethereum.network()];
    let assets: Vec<String> = devnet
        .chains()
        .iter()
        .map(|c| format!("{:#x}", c.token().address))
        .collect();
    let offers: Vec<Candidate<'_>> = networks
        .iter()
        .zip(&assets)
        .map(|(network, asset)| Candidate {
            network,
            asset,
            amount: Amount::from_atomic(1_000_000),
        })
        .collect();
    let order = router.route(&RoutingPolicy::default(), &offers).order;
    assert_eq!(order[0], 1, "Arbitrum first: {order:?}");
    assert_eq!(*order.last().unwrap(), 2, "Ethereum last: {order:?}");

    // The feed goes stale (its answer back-dated past the bound): every rail priced with it is
    // out, for that reason.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    ethereum
        .set_price(310_000_000_000, Some(now - 7_200))
        .await
        .unwrap();
    router.round_once().await;
    let routed = router.route(&RoutingPolicy::default(), &offers);
    assert!(routed.order.is_empty(), "{routed:?}");
    assert!(
        routed
            .left_out
            .iter()
            .all(|(_, reason)| *reason == "price_feed_stale"),
        "{routed:?}"
    );
    // A fresh round brings them back, priced at the new answer.
    ethereum.set_price(310_000_000_000, None).await.unwrap();
    router.round_once().await;
    assert_eq!(
        router.route(&RoutingPolicy::default(), &offers).order.len(),
        3
    );
    assert_eq!(
        router.snapshot().feeds[0].answer.unwrap().answer,
        310_000_000_000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reverting_fee_oracle_takes_the_rail_out_until_it_answers_again() {
    let devnet = devnet(vec![DevnetChainSpec::base_sepolia()]).await;
    let base = &devnet.chains()[0];
    let (base_rail, _k) = kind_rail(&devnet, base);
    let router = Router::new(open(&[base_rail]).await, config()).unwrap();
    router.round_once().await;
    assert!(router.snapshot().rails[&base.network()].health.is_healthy());
    let oracle = purser_chain::fees::OP_GAS_PRICE_ORACLE;
    let code = base.provider().get_code_at(oracle).await.unwrap();
    assert!(!code.is_empty(), "the devnet places the GasPriceOracle");
    // PUSH1 0 PUSH1 0 REVERT: every call reverts.
    base.set_code(oracle, Bytes::from_static(&[0x60, 0x00, 0x60, 0x00, 0xfd]))
        .await
        .unwrap();
    router.round_once().await;
    let view = &router.snapshot().rails[&base.network()];
    assert_eq!(view.health.reason(), Some("oracle_failed"), "{view:?}");
    let asset = format!("{:#x}", base.token().address);
    let network = base.network();
    let offer = [Candidate {
        network: &network,
        asset: &asset,
        amount: Amount::from_atomic(1),
    }];
    assert_eq!(
        router.route(&RoutingPolicy::default(), &offer).left_out,
        [(0, "oracle_failed")]
    );
    base.set_code(oracle, code).await.unwrap();
    // The breaker lets a probe through once its open period (200 ms here) is over.
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    router.round_once().await;
    assert!(router.snapshot().rails[&base.network()].health.is_healthy());
}
