//! The Ethereum stand-in and its ETH/USD feed against real anvil: a high base fee, rounds kept
//! as Chainlink keeps them, answers stamped with the block's time or made stale on purpose.

use alloy::primitives::{I256, U256, aliases::U80};
use alloy::providers::Provider;
use alloy::rpc::types::BlockNumberOrTag;
use alloy::sol_types::SolCall;
use purser_devnet::contracts::DevnetPriceFeed;
use purser_devnet::{DevnetChainSpec, FeeKind, FeeLevels, PriceRound};

use crate::devnet::{now, one_chain};

#[tokio::test]
async fn the_eth_usd_feed_keeps_rounds_and_can_be_made_stale() {
    let devnet = one_chain(DevnetChainSpec::ethereum_sepolia()).await;
    let chain = &devnet.chains()[0];
    assert_eq!(chain.chain_id(), 11155111);
    assert_eq!(chain.fee_kind(), FeeKind::Ethereum);
    assert!(chain.fee_contracts().is_empty());
    let genesis = chain
        .provider()
        .get_block_by_number(BlockNumberOrTag::Number(0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(genesis.header.base_fee_per_gas, Some(20_000_000_000));

    let feed = chain
        .price_feed()
        .expect("the L1 stand-in has the feed")
        .clone();
    assert_eq!(
        (feed.description.as_str(), feed.decimals, feed.base.as_str()),
        ("ETH / USD", 8, "ETH")
    );
    assert_eq!(
        chain
            .call(feed.address, &DevnetPriceFeed::decimalsCall {})
            .await
            .unwrap(),
        8
    );
    assert_eq!(
        chain
            .call(feed.address, &DevnetPriceFeed::descriptionCall {})
            .await
            .unwrap(),
        "ETH / USD"
    );
    assert_eq!(
        chain
            .call(feed.address, &DevnetPriceFeed::versionCall {})
            .await
            .unwrap(),
        U256::from(4)
    );
    assert_eq!(
        chain
            .call(feed.address, &DevnetPriceFeed::ownerCall {})
            .await
            .unwrap(),
        chain.accounts().deployer.address()
    );

    // The first round: 3000.00000000, stamped when the feed was deployed.
    let first = chain
        .call(feed.address, &DevnetPriceFeed::latestRoundDataCall {})
        .await
        .unwrap();
    let latest_block = chain
        .provider()
        .get_block_by_number(BlockNumberOrTag::Latest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.roundId, U80::from(1));
    assert_eq!(first.answer, I256::try_from(300_000_000_000i64).unwrap());
    assert_eq!(first.updatedAt, U256::from(latest_block.header.timestamp));
    assert_eq!(first.startedAt, first.updatedAt);
    assert_eq!(first.answeredInRound, first.roundId);

    // A new answer is a new round, updated at its block's time.
    let second = chain.set_price(350_050_000_000, None).await.unwrap();
    let block_time = chain
        .provider()
        .get_block_by_number(BlockNumberOrTag::Latest)
        .await
        .unwrap()
        .unwrap()
        .header
        .timestamp;
    assert_eq!(
        second,
        PriceRound {
            round_id: 2,
            answer: 350_050_000_000,
            updated_at: block_time,
        }
    );
    assert!(block_time.abs_diff(now()) < 60);

    // An answer updated two days ago: what a router must refuse as stale.
    let two_days_ago = now() - 2 * 86_400;
    let stale = chain
        .set_price(290_000_000_000, Some(two_days_ago))
        .await
        .unwrap();
    assert_eq!(stale.round_id, 3);
    assert_eq!(stale.updated_at, two_days_ago);
    assert_eq!(chain.latest_price().await.unwrap(), stale);
    assert_eq!(
        chain
            .call(feed.address, &DevnetPriceFeed::latestAnswerCall {})
            .await
            .unwrap(),
        I256::try_from(290_000_000_000i64).unwrap()
    );
    assert_eq!(
        chain
            .call(feed.address, &DevnetPriceFeed::latestTimestampCall {})
            .await
            .unwrap(),
        U256::from(two_days_ago)
    );
    assert_eq!(
        chain
            .call(feed.address, &DevnetPriceFeed::latestRoundCall {})
            .await
            .unwrap(),
        U256::from(3)
    );
    // Earlier rounds stay as they were; unknown ones have no data.
    let kept = chain
        .call(
            feed.address,
            &DevnetPriceFeed::getRoundDataCall {
                roundId: U80::from(2),
            },
        )
        .await
        .unwrap();
    assert_eq!(kept.answer, I256::try_from(350_050_000_000i64).unwrap());
    assert_eq!(kept.updatedAt, U256::from(block_time));
    for missing in [0u64, 4] {
        let error = chain
            .call(
                feed.address,
                &DevnetPriceFeed::getRoundDataCall {
                    roundId: U80::from(missing),
                },
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("No data present"), "{missing}: {error}");
    }

    // Only the owner records answers.
    let stranger = &chain.accounts().payers[0];
    let refused = chain
        .send_as(
            stranger,
            feed.address,
            DevnetPriceFeed::setAnswerCall {
                answer: I256::try_from(1).unwrap(),
            }
            .abi_encode()
            .into(),
            "set a price as a stranger",
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("caller is not the owner"), "{refused}");
    assert_eq!(chain.latest_price().await.unwrap().round_id, 3);

    // Its fees are the base fee alone.
    chain
        .set_fees(&FeeLevels {
            base_fee_wei: Some(60_000_000_000),
            ..FeeLevels::default()
        })
        .await
        .unwrap();
    assert_eq!(
        chain.fee_levels().await.unwrap(),
        FeeLevels {
            base_fee_wei: Some(60_000_000_000),
            ..FeeLevels::default()
        }
    );
    let error = chain
        .set_fees(&FeeLevels {
            l1_base_fee_wei: Some(1),
            ..FeeLevels::default()
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("l1_base_fee_wei"), "{error}");
}
