//! `change_fees`, what `purser devnet fees` runs, against a devnet recorded in a folder: the
//! chain found by name, id or network, levels and prices moved, refusals before any change.

use alloy::primitives::U256;
use purser_devnet::contracts::DevnetGasPriceOracle;
use purser_devnet::fees::{GAS_PRICE_ORACLE_ADDRESS, L1_BLOCK_ADDRESS, parse_gwei};
use purser_devnet::{
    Devnet, DevnetChainSpec, DevnetManifest, FeeChange, FeeKind, FeeLevels, change_fees,
};

use crate::devnet::{now, options};

#[tokio::test]
async fn change_fees_moves_a_recorded_devnet_and_refuses_before_changing_anything() {
    let devnet = Devnet::start(options(vec![
        DevnetChainSpec::base_sepolia(),
        DevnetChainSpec::ethereum_sepolia(),
    ]))
    .await
    .unwrap();
    let folder = tempfile::tempdir().unwrap();
    let dir = folder.path();
    let manifest = devnet.write_files(dir).unwrap();
    let base = devnet.chain(84532).unwrap();
    let l1 = devnet.chain(11155111).unwrap();

    // devnet.json records each chain's kind, initial levels, fee contracts and feed.
    assert_eq!(DevnetManifest::read(dir).unwrap(), manifest);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("devnet.json")).unwrap()).unwrap();
    assert_eq!(json["chains"][0]["fees"]["kind"], "op-stack");
    assert_eq!(json["chains"][0]["fees"]["l1BaseFeeWei"], "1000000000");
    assert_eq!(
        json["chains"][0]["feeContracts"]["gasPriceOracle"],
        "0x420000000000000000000000000000000000000F"
    );
    assert_eq!(json["chains"][1]["fees"]["kind"], "ethereum");
    assert!(json["chains"][1].get("feeContracts").is_none());
    let feed = l1.price_feed().unwrap();
    assert_eq!(
        json["chains"][1]["priceFeed"]["address"],
        feed.address.to_checksum(None)
    );
    assert_eq!(manifest.chains[1].price_feed.as_ref(), Some(feed));
    assert_eq!(
        manifest.chains[0].fee_contracts.l1_block,
        Some(L1_BLOCK_ADDRESS)
    );

    // No change only reports.
    let report = change_fees(dir, "base-sepolia", &FeeChange::default())
        .await
        .unwrap();
    assert_eq!(report.kind, FeeKind::OpStack);
    assert_eq!(report.levels, base.fee_levels().await.unwrap());
    assert_eq!(report.price, None);

    // By chain id: the L1 fee, the base fee and the operator fee move, as the devnet's own
    // handle sees.
    let change = FeeChange {
        levels: FeeLevels {
            l1_base_fee_wei: Some(parse_gwei("50").unwrap()),
            base_fee_wei: Some(parse_gwei("0.02").unwrap()),
            operator_fee_scalar: Some(1_000),
            ..FeeLevels::default()
        },
        ..FeeChange::default()
    };
    let report = change_fees(dir, "84532", &change).await.unwrap();
    assert_eq!(report.levels.l1_base_fee_wei, Some(50_000_000_000));
    assert_eq!(report.levels.base_fee_wei, Some(20_000_000));
    assert_eq!(report.levels.operator_fee_scalar, Some(1_000));
    assert_eq!(report.levels.base_fee_scalar, Some(2_269));
    assert_eq!(
        base.call(
            GAS_PRICE_ORACLE_ADDRESS,
            &DevnetGasPriceOracle::l1BaseFeeCall {}
        )
        .await
        .unwrap(),
        U256::from(50_000_000_000u64)
    );
    assert_eq!(base.latest_base_fee().await.unwrap(), 20_000_000);
    let text = report.to_string();
    assert!(
        text.contains("base-sepolia (eip155:84532), op-stack"),
        "{text}"
    );
    assert!(text.contains("50000000000 wei (50 gwei)"), "{text}");
    assert!(text.contains("0.02 gwei"), "{text}");

    // By network: the price, fresh, then stale.
    let report = change_fees(
        dir,
        "eip155:11155111",
        &FeeChange {
            price: Some("3210.5".to_owned()),
            ..FeeChange::default()
        },
    )
    .await
    .unwrap();
    let round = report.price.unwrap();
    assert_eq!((round.round_id, round.answer), (2, 321_050_000_000));
    assert!(round.updated_at.abs_diff(now()) < 60);
    assert!(report.to_string().contains("ETH / USD"));
    assert!(report.to_string().contains("3210.5 (round 2"));
    let three_days_ago = now() - 3 * 86_400;
    let report = change_fees(
        dir,
        "ethereum-sepolia",
        &FeeChange {
            price: Some("3000".to_owned()),
            price_updated_at: Some(three_days_ago),
            ..FeeChange::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(report.price.unwrap().updated_at, three_days_ago);
    assert_eq!(l1.latest_price().await.unwrap().updated_at, three_days_ago);

    // Refusals, each before anything changes.
    let l1_levels = l1.fee_levels().await.unwrap();
    let refusals = [
        (
            "base-sepolia",
            FeeChange {
                price: Some("1".to_owned()),
                levels: FeeLevels {
                    base_fee_wei: Some(1),
                    ..FeeLevels::default()
                },
                ..FeeChange::default()
            },
            "base-sepolia has no price feed (chains with one: ethereum-sepolia)",
        ),
        (
            "ethereum-sepolia",
            FeeChange {
                levels: FeeLevels {
                    base_fee_wei: Some(1),
                    blob_base_fee_wei: Some(1),
                    ..FeeLevels::default()
                },
                ..FeeChange::default()
            },
            "blob_base_fee_wei",
        ),
        (
            "ethereum-sepolia",
            FeeChange {
                price: Some("1.123456789".to_owned()),
                ..FeeChange::default()
            },
            "at most 8 decimal places",
        ),
        (
            "ethereum-sepolia",
            FeeChange {
                price_updated_at: Some(1),
                ..FeeChange::default()
            },
            "needs the price",
        ),
        ("nowhere", FeeChange::default(), "base-sepolia (84532)"),
    ];
    for (chain, change, expected) in refusals {
        let error = change_fees(dir, chain, &change)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "{chain}: {error}");
    }
    assert_eq!(l1.fee_levels().await.unwrap(), l1_levels);
    assert_eq!(l1.latest_price().await.unwrap().round_id, 3);
    assert_eq!(
        base.fee_levels().await.unwrap().base_fee_wei,
        Some(20_000_000)
    );
    let empty = tempfile::tempdir().unwrap();
    let error = change_fees(empty.path(), "84532", &FeeChange::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("devnet.json"), "{error}");
}
