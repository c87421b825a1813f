//! A resource priced by a meter: its 402 asks what the meter's price says a call costs, follows
//! the meter's price when it changes, and the paid call is metered as usage, rated at what was
//! paid. Paid with the official SDK client through the gateway.

use alloy::primitives::U256;
use purser_domain::auth::TenantScope;
use purser_domain::metering::{
    Aggregation, MeterPrice, NewMeter, PriceModel, Tier, UsageQuery, ValuePath,
};
use purser_domain::registry::PriceSpec;
use purser_domain::{Error, ErrorCode};
use purser_gateway::{PAYMENT_EVENT_SOURCE, PAYMENT_EVENT_TYPE, RESOURCE_CACHE_TTL};
use rust_decimal::Decimal;
use serde_json::Value;

use crate::harness::{Backends, on_both_backend_pairs};
use crate::interop::{Interop, NETWORK, Upstream, run_script};

on_both_backend_pairs!(usage_priced_resource_charges_what_its_meter_says);

fn dec(text: &str) -> Decimal {
    text.parse().unwrap()
}

async fn unpaid_amount(url: &str) -> u128 {
    let answer = purser_testkit::http_client().get(url).send().await.unwrap();
    assert_eq!(answer.status(), 402);
    let header = answer.headers()["payment-required"].to_str().unwrap();
    let required = purser_x402::header::decode_payment_required(header).unwrap();
    required.accepts[0].amount.atomic()
}

async fn usage_priced_resource_charges_what_its_meter_says(backends: Backends) {
    let fx = Interop::start(backends).await;
    let scope = TenantScope::trusted(fx.tenant);
    let metering = fx.app.platform.metering.clone();
    // Calls are counted in the units Purser records for each paid request; 20 units a call,
    // the first 1,000 units a period at $0.0005, then $0.0002.
    let graduated = MeterPrice {
        model: PriceModel::Graduated {
            tiers: vec![
                Tier {
                    up_to: Some(dec("1000")),
                    unit_amount: dec("0.0005"),
                    flat_amount: Decimal::ZERO,
                },
                Tier {
                    up_to: None,
                    unit_amount: dec("0.0002"),
                    flat_amount: Decimal::ZERO,
                },
            ],
        },
        free_units: Decimal::ZERO,
    };
    let meter = metering
        .create_meter(
            scope,
            NewMeter {
                slug: "api-units".into(),
                name: "API units".into(),
                description: None,
                event_type: PAYMENT_EVENT_TYPE.into(),
                aggregation: Aggregation::Sum,
                value: Some(ValuePath::parse("$.units").unwrap()),
                group_by: Default::default(),
                price: Some(graduated),
            },
        )
        .await
        .unwrap();
    let unpriced = metering
        .create_meter(
            scope,
            NewMeter {
                slug: "unpriced".into(),
                name: "Unpriced".into(),
                description: None,
                event_type: "x".into(),
                aggregation: Aggregation::Count,
                value: None,
                group_by: Default::default(),
                price: None,
            },
        )
        .await
        .unwrap();

    let upstream = Upstream::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = format!("http://{}", listener.local_addr().unwrap());
    let by_meter = |meter: &str, units: &str| PriceSpec::Meter {
        meter: meter.into(),
        units: dec(units),
    };
    let publish = |price: PriceSpec| {
        let fx = &fx;
        let url = format!("{gateway}/weather/:city");
        async move {
            fx.publish_priced(&url, "Metered weather", "Priced by usage", None, price)
                .await
        }
    };

    // What cannot price a call is refused at publishing, each with its reason.
    for (price, says) in [
        (by_meter("no-such-meter", "1"), "no meter"),
        (by_meter(&unpriced.slug, "1"), "has no price"),
        (by_meter(&meter.slug, "0"), "positive"),
    ] {
        let err: Error = publish(price).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidPrice, "{}", err.message());
        assert!(err.message().contains(says), "{}", err.message());
    }

    let resource = publish(by_meter(&meter.slug, "20")).await.unwrap();
    fx.serve_gateway(listener, &upstream, &[("/weather/*", resource)]);
    let url = format!("{gateway}/weather/lisbon");
    // 20 units at $0.0005: $0.01.
    assert_eq!(unpaid_amount(&url).await, 10_000);

    // The meter's price changes; the 402 follows once the gateway reloads the resource.
    metering
        .set_price(
            scope,
            meter.id,
            Some(MeterPrice {
                model: PriceModel::Standard {
                    unit_amount: dec("0.001"),
                },
                free_units: Decimal::ZERO,
            }),
        )
        .await
        .unwrap();
    tokio::time::sleep(RESOURCE_CACHE_TTL + std::time::Duration::from_millis(200)).await;
    assert_eq!(unpaid_amount(&url).await, 20_000);

    // The official client pays what the 402 asks.
    let merchant_before = fx.balance(fx.merchant()).await;
    let mut env = fx.script_env(20_000);
    env.push(("X402_URL", url.clone()));
    let out = run_script("sdk-pay-url.mjs", &env).await;
    assert_eq!(out["paid"]["status"], 200, "{out}");
    assert_eq!(
        out["unpaid"]["paymentRequired"]["accepts"][0]["amount"], "20000",
        "{out}"
    );
    assert_eq!(
        fx.balance(fx.merchant()).await,
        merchant_before + U256::from(20_000u64)
    );

    // The paid call is usage: one event of the payer, with the resource's units, however often
    // its settlement is answered.
    let payer = format!("{:#x}", fx.payer().address());
    let report = metering
        .query(
            scope,
            &meter.slug,
            &UsageQuery {
                from: chrono::Utc::now() - chrono::Duration::hours(1),
                to: chrono::Utc::now() + chrono::Duration::minutes(1),
                window: None,
                time_zone: purser_domain::metering::query::Tz::UTC,
                subjects: vec![],
                filters: Default::default(),
                group_by: vec!["subject".into()],
                as_of: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(report.rows.len(), 1, "{:?}", report.rows);
    assert_eq!(report.rows[0].subject.as_deref(), Some(payer.as_str()));
    assert_eq!(report.rows[0].value, dec("20"));
    let settlements = fx
        .app
        .store
        .list_settlements(scope, purser_domain::page::PageRequest::first(10).unwrap())
        .await
        .unwrap();
    assert_eq!(settlements.items.len(), 1);
    let key = &settlements.items[0].key;
    let id = format!("{}/{}/{}/{}", key.network, key.asset, key.payer, key.nonce);
    let entries = fx
        .app
        .store
        .usage_event_history(scope, PAYMENT_EVENT_SOURCE, &id)
        .await
        .unwrap();
    assert_eq!(entries.len(), 1, "{id}");
    assert_eq!(entries[0].subject, payer);
    assert_eq!(entries[0].data["amount"], Value::from("20000"));
    assert_eq!(entries[0].data["network"], Value::from(NETWORK));
    assert_eq!(
        entries[0].data["resourceId"],
        Value::from(resource.to_string())
    );

    // Rated at the meter's price, the usage costs what was paid.
    let rated = metering
        .rate(
            scope,
            &meter.slug,
            chrono::Utc::now() - chrono::Duration::hours(1),
            chrono::Utc::now() + chrono::Duration::minutes(1),
            vec![payer.clone()],
        )
        .await
        .unwrap();
    assert_eq!(rated.len(), 1);
    assert_eq!(rated[0].rated.amount_atomic.atomic(), 20_000);
}
