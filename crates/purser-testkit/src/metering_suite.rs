//! The metering part of the storage behaviour suite: written once, run against every [`Store`].
//!
//! A storage crate instantiates it in its integration tests next to [`crate::store_suite!`],
//! with the same factory:
//!
//! ```text
//! purser_testkit::metering_suite!(crate::fresh_store);
//! ```
//!
//! Usage is asserted end to end: a [`UsageQuery`] is planned against a stored meter, the store
//! aggregates the plan's scan, and the plan merges the cells into rows, so the store's cells
//! are checked through what a caller sees. Every total is computed by hand from the events
//! each test writes.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use purser_domain::ErrorCode;
use purser_domain::auth::TenantScope;
use purser_domain::metering::query::parse_time_zone;
use purser_domain::metering::query::unix_day;
use purser_domain::metering::{
    Aggregation, CorrectionChange, EntryKind, Meter, MeterPrice, NewCorrection, NewMeter,
    NewUsageEvent, PriceModel, Tier, UsageCell, UsageEntry, UsageQuery, UsageRow, ValuePath,
    WindowSize,
};
use purser_domain::page::PageRequest;
use purser_domain::repo::Store;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::registry_suite::tenant;

/// Instantiates every metering test as a `#[tokio::test]` in the calling module. `$factory` is
/// an async fn returning `(Arc<dyn Store>, guard)`; the guard lives until the test ends.
#[macro_export]
macro_rules! metering_suite {
    ($factory:path) => {
        $crate::metering_suite!(@tests $factory;
            metering_events_are_stored_once_per_tenant_source_and_id,
            metering_a_large_batch_is_stored_in_one_call,
            metering_concurrent_batches_store_each_key_once,
            metering_every_aggregation_by_hour_and_over_the_period,
            metering_groups_by_subject_and_dimensions,
            metering_filters_by_subject_and_dimensions,
            metering_values_that_are_not_numbers_are_skipped_and_sums_are_exact,
            metering_corrections_amend_and_void_what_is_counted,
            metering_concurrent_corrections_of_one_event_one_wins,
            metering_corrections_are_listed_newest_first,
            metering_meters_are_per_tenant_with_unique_slugs,
            metering_meters_are_listed_priced_and_archived,
            metering_late_entries_and_corrections_move_a_closed_days_version,
            metering_text_the_stores_would_not_keep_alike_is_refused,
            metering_writes_for_a_tenant_that_does_not_exist_are_not_found,
        );
    };
    (@tests $factory:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (store, _guard) = $factory().await;
                $crate::metering_suite::$name(store).await;
            }
        )*
    };
}

const CALLS: &str = "api.calls";
const SOURCE: &str = "//api.example/gateway";

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

/// A time on the suite's day, 2026-03-01, from `HH:MM`.
fn at(hour_minute: &str) -> DateTime<Utc> {
    format!("2026-03-01T{hour_minute}:00Z").parse().unwrap()
}

fn path(text: &str) -> ValuePath {
    ValuePath::parse(text).unwrap()
}

fn event(id: &str, subject: &str, time: &str, data: Value) -> NewUsageEvent {
    typed_event(CALLS, id, subject, time, data)
}

fn typed_event(
    event_type: &str,
    id: &str,
    subject: &str,
    time: &str,
    data: Value,
) -> NewUsageEvent {
    NewUsageEvent {
        source: SOURCE.into(),
        id: id.into(),
        event_type: event_type.into(),
        subject: subject.into(),
        time: at(time),
        data,
    }
}

fn new_meter(slug: &str, aggregation: Aggregation, value: Option<&str>) -> NewMeter {
    NewMeter {
        slug: slug.into(),
        name: format!("Meter {slug}"),
        description: None,
        event_type: CALLS.into(),
        aggregation,
        value: value.map(path),
        group_by: BTreeMap::from([
            ("model".to_owned(), path("$.model")),
            ("cached".to_owned(), path("$.flags['cached']")),
        ]),
        price: None,
    }
}

async fn meter(
    store: &Arc<dyn Store>,
    scope: TenantScope,
    aggregation: Aggregation,
    value: Option<&str>,
) -> Meter {
    let slug = aggregation.as_str().to_ascii_lowercase().replace('_', "-");
    store
        .create_meter(scope, &new_meter(&slug, aggregation, value), at("00:00"))
        .await
        .unwrap()
}

/// A query of the suite's day from 00:00 to 02:00 UTC.
fn query(window: Option<WindowSize>) -> UsageQuery {
    UsageQuery {
        from: at("00:00"),
        to: at("02:00"),
        window,
        time_zone: parse_time_zone("UTC").unwrap(),
        subjects: vec![],
        filters: BTreeMap::new(),
        group_by: vec![],
        as_of: None,
    }
}

/// Plans `query` against `meter`, has the store aggregate the scan, and merges the cells.
async fn usage(
    store: &Arc<dyn Store>,
    scope: TenantScope,
    meter: &Meter,
    query: &UsageQuery,
) -> Vec<UsageRow> {
    let plan = query.plan(meter).unwrap();
    let cells = store.aggregate_usage(scope, &plan.scan).await.unwrap();
    for cell in &cells {
        assert!(cell.count > 0, "a cell has events: {cell:?}");
    }
    plan.merge(cells).unwrap()
}

/// `(window start, value)` per row.
async fn windows(
    store: &Arc<dyn Store>,
    scope: TenantScope,
    meter: &Meter,
    query: &UsageQuery,
) -> Vec<(DateTime<Utc>, Decimal)> {
    usage(store, scope, meter, query)
        .await
        .into_iter()
        .map(|row| (row.window_start, row.value))
        .collect()
}

/// The one value of an ungrouped whole-period query (zero when there is no row).
async fn total(
    store: &Arc<dyn Store>,
    scope: TenantScope,
    meter: &Meter,
    query: &UsageQuery,
) -> Decimal {
    let rows = usage(store, scope, meter, query).await;
    assert!(rows.len() <= 1, "one row at most: {rows:?}");
    rows.first().map_or(Decimal::ZERO, |row| row.value)
}

async fn count_meter(store: &Arc<dyn Store>, scope: TenantScope) -> Meter {
    let mut count = new_meter("stored", Aggregation::Count, None);
    count.group_by.clear();
    store
        .create_meter(scope, &count, at("00:00"))
        .await
        .unwrap()
}

/// How many events of the suite's type the scope has, over a wide period.
async fn stored_events(store: &Arc<dyn Store>, scope: TenantScope, count: &Meter) -> Decimal {
    let wide = UsageQuery {
        from: at("00:00") - Duration::days(1),
        to: at("00:00") + Duration::days(1),
        ..query(None)
    };
    total(store, scope, count, &wide).await
}

pub async fn metering_events_are_stored_once_per_tenant_source_and_id(store: Arc<dyn Store>) {
    let acme = TenantScope::trusted(tenant(&store, "Metering Dedupe Acme").await);
    let globex = TenantScope::trusted(tenant(&store, "Metering Dedupe Globex").await);
    let recorded = at("03:00");
    assert_eq!(
        store
            .insert_usage_events(acme, &[], recorded)
            .await
            .unwrap(),
        Vec::<bool>::new(),
        "an empty batch stores nothing"
    );

    let first = vec![
        event("e1", "alice", "00:10", json!({"n": 1})),
        event("e2", "alice", "00:20", json!({"n": 2})),
        // The same key again in the batch: the first occurrence wins.
        event("e1", "bob", "00:30", json!({"n": 100})),
        // The same id from another source is another event.
        NewUsageEvent {
            source: "//api.example/other".into(),
            ..event("e1", "carol", "00:40", json!({"n": 3}))
        },
    ];
    assert_eq!(
        store
            .insert_usage_events(acme, &first, recorded)
            .await
            .unwrap(),
        [true, true, false, true]
    );
    // A later batch repeating keys, however changed, stores only its new events.
    let second = vec![
        event("e3", "alice", "00:50", json!({"n": 4})),
        event("e2", "dave", "01:00", json!({"n": 200})),
        event("e3", "alice", "00:50", json!({"n": 4})),
    ];
    assert_eq!(
        store
            .insert_usage_events(acme, &second, at("04:00"))
            .await
            .unwrap(),
        [true, false, false]
    );
    // Another tenant's events are its own, on the same keys.
    assert_eq!(
        store
            .insert_usage_events(globex, &first[..2], recorded)
            .await
            .unwrap(),
        [true, true]
    );

    let history = store.usage_event_history(acme, SOURCE, "e1").await.unwrap();
    assert_eq!(
        history,
        [UsageEntry {
            source: SOURCE.into(),
            id: "e1".into(),
            revision: 0,
            kind: EntryKind::Event,
            event_type: CALLS.into(),
            subject: "alice".into(),
            time: at("00:10"),
            data: json!({"n": 1}),
            reason: None,
            recorded_at: recorded,
            superseded_at: None,
        }],
        "the first occurrence is what is stored"
    );
    let e2 = store.usage_event_history(acme, SOURCE, "e2").await.unwrap();
    assert_eq!(
        (e2.len(), e2[0].subject.as_str(), e2[0].recorded_at),
        (1, "alice", recorded),
        "a duplicate of a later batch changes nothing"
    );
    assert!(
        store
            .usage_event_history(acme, SOURCE, "missing")
            .await
            .unwrap()
            .is_empty()
    );

    let acme_count = count_meter(&store, acme).await;
    let globex_count = count_meter(&store, globex).await;
    assert_eq!(stored_events(&store, acme, &acme_count).await, dec("4"));
    assert_eq!(stored_events(&store, globex, &globex_count).await, dec("2"));
    let sum = meter(&store, acme, Aggregation::Sum, Some("$.n")).await;
    assert_eq!(
        total(&store, acme, &sum, &query(None)).await,
        dec("10"),
        "1 + 2 + 3 + 4: no duplicate counts"
    );
}

pub async fn metering_a_large_batch_is_stored_in_one_call(store: Arc<dyn Store>) {
    const EVENTS: usize = 5_000;
    let scope = TenantScope::trusted(tenant(&store, "Metering Bulk Acme").await);
    let events: Vec<_> = (0..EVENTS)
        .map(|i| {
            let mut e = event(
                &format!("bulk-{i}"),
                &format!("customer-{}", i % 50),
                "00:00",
                json!({"n": i % 10, "model": if i % 2 == 0 { "a" } else { "b" }}),
            );
            e.time += Duration::milliseconds(i as i64 * 1_000);
            e
        })
        .collect();
    let started = Instant::now();
    let stored = store
        .insert_usage_events(scope, &events, at("03:00"))
        .await
        .unwrap();
    let first = started.elapsed();
    let started = Instant::now();
    let again = store
        .insert_usage_events(scope, &events, at("03:00"))
        .await
        .unwrap();
    eprintln!(
        "{EVENTS} usage events in one batch on {}: stored in {first:?}, all duplicates in {:?}",
        store.backend(),
        started.elapsed()
    );
    assert!(stored.iter().all(|s| *s) && stored.len() == EVENTS);
    assert!(again.iter().all(|s| !*s) && again.len() == EVENTS);
    let count = count_meter(&store, scope).await;
    assert_eq!(
        stored_events(&store, scope, &count).await,
        Decimal::from(EVENTS)
    );
    let sum = meter(&store, scope, Aggregation::Sum, Some("$.n")).await;
    let started = Instant::now();
    let hours = windows(&store, scope, &sum, &query(Some(WindowSize::Hour))).await;
    eprintln!(
        "summed {EVENTS} usage events by hour on {} in {:?}",
        store.backend(),
        started.elapsed()
    );
    // 5,000 events one second apart: 3,600 in the first hour, 1,400 in the second; each
    // run of ten contributes 0 + 1 + ... + 9.
    assert_eq!(
        hours,
        [(at("00:00"), dec("16200")), (at("01:00"), dec("6300"))]
    );
}

pub async fn metering_concurrent_batches_store_each_key_once(store: Arc<dyn Store>) {
    const BATCHES: usize = 20;
    const KEYS: usize = 300;
    let scope = TenantScope::trusted(tenant(&store, "Metering Race Acme").await);
    // Batch b holds keys 15b .. 15b + 100 (mod 300), in shuffled orders, some twice.
    let batches: Vec<Vec<NewUsageEvent>> = (0..BATCHES)
        .map(|b| {
            let mut keys: Vec<usize> = (0..100).map(|k| (b * 15 + k) % KEYS).collect();
            if b % 2 == 1 {
                keys.reverse();
            }
            keys.extend((0..10).map(|k| (b * 15 + k * 7) % KEYS));
            keys.iter()
                .map(|k| event(&format!("k{k}"), "alice", "00:30", json!({"n": 1})))
                .collect()
        })
        .collect();
    let tasks: Vec<_> = batches
        .iter()
        .cloned()
        .map(|batch| {
            let store = store.clone();
            tokio::spawn(async move { store.insert_usage_events(scope, &batch, at("03:00")).await })
        })
        .collect();
    let mut stored_by_key: HashMap<String, usize> = HashMap::new();
    for (batch, task) in batches.iter().zip(tasks) {
        let answers = task.await.unwrap().expect("a batch is stored");
        assert_eq!(answers.len(), batch.len());
        for (event, stored) in batch.iter().zip(answers) {
            let entry = stored_by_key.entry(event.id.clone()).or_default();
            *entry += usize::from(stored);
        }
    }
    assert_eq!(stored_by_key.len(), KEYS, "every key was sent");
    for (key, stored) in &stored_by_key {
        assert_eq!(*stored, 1, "{key} is answered stored exactly once");
    }
    let count = count_meter(&store, scope).await;
    assert_eq!(
        stored_events(&store, scope, &count).await,
        Decimal::from(KEYS)
    );
}

/// The suite's usage: two hours of calls by alice and bob, with values that are numbers,
/// decimal strings, not numbers or missing; an event of another type; another tenant's event.
///
/// | id | subject | time  | n     | user | model | cached |
/// |----|---------|-------|-------|------|-------|--------|
/// | e1 | alice   | 00:10 | 5     | u1   | a     | true   |
/// | x1 | alice   | 00:20 | "abc" | u4   | a     |        |
/// | e3 | bob     | 00:30 | 10    | u1   | a     | false  |
/// | e2 | alice   | 00:50 | "2.5" | u2   | b     |        |
/// | x2 | bob     | 01:10 |       |      | b     |        |
/// | e4 | alice   | 01:20 | 1     | u1   | a     |        |
/// | e5 | bob     | 01:40 | -0.5  | u3   |       |        |
/// | late | bob   | 02:00 | 1000  | u9   | a     |        | (outside the period)
async fn seed_usage(store: &Arc<dyn Store>, name: &str) -> TenantScope {
    let scope = TenantScope::trusted(tenant(store, name).await);
    let events = vec![
        event(
            "e1",
            "alice",
            "00:10",
            json!({"n": 5, "user": "u1", "model": "a", "flags": {"cached": true}}),
        ),
        event(
            "x1",
            "alice",
            "00:20",
            json!({"n": "abc", "user": "u4", "model": "a"}),
        ),
        event(
            "e3",
            "bob",
            "00:30",
            json!({"n": 10, "user": "u1", "model": "a", "flags": {"cached": false}}),
        ),
        event(
            "e2",
            "alice",
            "00:50",
            json!({"n": "2.5", "user": "u2", "model": "b"}),
        ),
        event("x2", "bob", "01:10", json!({"model": "b"})),
        event(
            "e4",
            "alice",
            "01:20",
            json!({"n": 1, "user": "u1", "model": "a"}),
        ),
        event("e5", "bob", "01:40", json!({"n": -0.5, "user": "u3"})),
        event(
            "late",
            "bob",
            "02:00",
            json!({"n": 1000, "user": "u9", "model": "a"}),
        ),
        typed_event(
            "other.type",
            "o1",
            "alice",
            "00:15",
            json!({"n": 1000, "user": "u8"}),
        ),
    ];
    let stored = store
        .insert_usage_events(scope, &events, at("03:00"))
        .await
        .unwrap();
    assert!(stored.iter().all(|s| *s));
    let elsewhere = TenantScope::trusted(tenant(store, &format!("{name} Elsewhere")).await);
    store
        .insert_usage_events(
            elsewhere,
            &[event(
                "z1",
                "alice",
                "00:10",
                json!({"n": 1000, "user": "u7", "model": "a"}),
            )],
            at("03:00"),
        )
        .await
        .unwrap();
    scope
}

pub async fn metering_every_aggregation_by_hour_and_over_the_period(store: Arc<dyn Store>) {
    let scope = seed_usage(&store, "Metering Aggregations Acme").await;
    let (h0, h1) = (at("00:00"), at("01:00"));
    let by_hour = query(Some(WindowSize::Hour));
    let whole = query(None);
    let cases: [(Aggregation, &str, [&str; 2], &str); 7] = [
        // COUNT counts every event, with a value or not.
        (Aggregation::Count, "", ["4", "3"], "7"),
        (Aggregation::Sum, "$.n", ["17.5", "0.5"], "18"),
        (Aggregation::Min, "$.n", ["2.5", "-0.5"], "-0.5"),
        (Aggregation::Max, "$.n", ["10", "1"], "10"),
        // The latest event with a value, by event time.
        (Aggregation::Latest, "$.n", ["2.5", "-0.5"], "-0.5"),
        (Aggregation::UniqueCount, "$.user", ["3", "2"], "4"),
        (Aggregation::Avg, "$.n", ["0", "0.25"], "3.6"),
    ];
    for (aggregation, value, hours, period) in cases {
        let value = (!value.is_empty()).then_some(value);
        let meter = meter(&store, scope, aggregation, value).await;
        let mut expected_hours = vec![(h0, dec(hours[0])), (h1, dec(hours[1]))];
        if aggregation == Aggregation::Avg {
            expected_hours[0].1 = (dec("17.5") / dec("3")).normalize();
        }
        assert_eq!(
            windows(&store, scope, &meter, &by_hour).await,
            expected_hours,
            "{aggregation} by hour"
        );
        assert_eq!(
            windows(&store, scope, &meter, &whole).await,
            [(h0, dec(period))],
            "{aggregation} over the period"
        );
        // The same by day: one window, aggregated in day buckets.
        let by_day = UsageQuery {
            window: Some(WindowSize::Day),
            ..query(None)
        };
        assert_eq!(
            windows(&store, scope, &meter, &by_day).await,
            [(h0, dec(period))],
            "{aggregation} by day"
        );
    }

    // UNIQUE_COUNT cells: one per distinct value, counting its events.
    let unique = store
        .find_meter_by_slug(scope, "unique-count")
        .await
        .unwrap()
        .unwrap();
    let plan = whole.plan(&unique).unwrap();
    let mut cells: Vec<_> = store
        .aggregate_usage(scope, &plan.scan)
        .await
        .unwrap()
        .into_iter()
        .map(|cell| (cell.distinct.unwrap(), cell.count))
        .collect();
    cells.sort();
    assert_eq!(
        cells,
        [
            ("u1".to_owned(), 3),
            ("u2".to_owned(), 1),
            ("u3".to_owned(), 1),
            ("u4".to_owned(), 1)
        ]
    );
    // A period with no events has no rows.
    let empty = UsageQuery {
        from: at("05:00"),
        to: at("06:00"),
        ..query(Some(WindowSize::Hour))
    };
    let count = store
        .find_meter_by_slug(scope, "count")
        .await
        .unwrap()
        .unwrap();
    assert!(usage(&store, scope, &count, &empty).await.is_empty());
}

pub async fn metering_groups_by_subject_and_dimensions(store: Arc<dyn Store>) {
    let scope = seed_usage(&store, "Metering Groups Acme").await;
    let sum = meter(&store, scope, Aggregation::Sum, Some("$.n")).await;
    let count = meter(&store, scope, Aggregation::Count, None).await;
    let grouped = |group_by: &[&str], window| UsageQuery {
        group_by: group_by.iter().map(|g| g.to_string()).collect(),
        ..query(window)
    };
    let rows = usage(
        &store,
        scope,
        &sum,
        &grouped(&["subject"], Some(WindowSize::Hour)),
    )
    .await;
    let by_subject: Vec<_> = rows
        .iter()
        .map(|r| (r.window_start, r.subject.clone().unwrap(), r.value))
        .collect();
    assert_eq!(
        by_subject,
        [
            (at("00:00"), "alice".to_owned(), dec("7.5")),
            (at("00:00"), "bob".to_owned(), dec("10")),
            (at("01:00"), "alice".to_owned(), dec("1")),
            (at("01:00"), "bob".to_owned(), dec("-0.5")),
        ]
    );
    assert!(rows.iter().all(|r| r.groups.is_empty()));

    // An event without the dimension groups under none.
    let rows = usage(&store, scope, &sum, &grouped(&["model"], None)).await;
    let by_model: Vec<_> = rows
        .iter()
        .map(|r| (r.subject.clone(), r.groups["model"].clone(), r.value))
        .collect();
    assert_eq!(
        by_model,
        [
            (None, None, dec("-0.5")),
            (None, Some("a".to_owned()), dec("16")),
            (None, Some("b".to_owned()), dec("2.5")),
        ]
    );

    // Booleans group as `true`/`false` on every backend; nested paths are read.
    let rows = usage(
        &store,
        scope,
        &count,
        &grouped(&["cached", "subject", "model"], None),
    )
    .await;
    let mut all: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.subject.clone().unwrap(),
                r.groups["model"].clone(),
                r.groups["cached"].clone(),
                r.value,
            )
        })
        .collect();
    all.sort();
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(
        all,
        [
            ("alice".to_owned(), some("a"), None, dec("2")),
            ("alice".to_owned(), some("a"), some("true"), dec("1")),
            ("alice".to_owned(), some("b"), None, dec("1")),
            ("bob".to_owned(), None, None, dec("1")),
            ("bob".to_owned(), some("a"), some("false"), dec("1")),
            ("bob".to_owned(), some("b"), None, dec("1")),
        ]
    );
}

pub async fn metering_filters_by_subject_and_dimensions(store: Arc<dyn Store>) {
    let scope = seed_usage(&store, "Metering Filters Acme").await;
    let sum = meter(&store, scope, Aggregation::Sum, Some("$.n")).await;
    let count = meter(&store, scope, Aggregation::Count, None).await;
    let filtered = |subjects: &[&str], filters: &[(&str, &[&str])]| UsageQuery {
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        filters: filters
            .iter()
            .map(|(name, values)| {
                (
                    name.to_string(),
                    values.iter().map(|v| v.to_string()).collect(),
                )
            })
            .collect(),
        ..query(None)
    };
    assert_eq!(
        total(&store, scope, &sum, &filtered(&["bob"], &[])).await,
        dec("9.5")
    );
    assert_eq!(
        total(&store, scope, &sum, &filtered(&["bob", "alice"], &[])).await,
        dec("18")
    );
    assert_eq!(
        total(&store, scope, &count, &filtered(&["nobody"], &[])).await,
        dec("0")
    );
    assert_eq!(
        total(&store, scope, &count, &filtered(&[], &[("model", &["b"])])).await,
        dec("2"),
        "e2 and x2"
    );
    assert_eq!(
        total(
            &store,
            scope,
            &sum,
            &filtered(&["alice"], &[("model", &["a", "b"])])
        )
        .await,
        dec("8.5")
    );
    assert_eq!(
        total(
            &store,
            scope,
            &count,
            &filtered(&[], &[("cached", &["true"])])
        )
        .await,
        dec("1")
    );
    assert_eq!(
        total(
            &store,
            scope,
            &count,
            &filtered(&[], &[("model", &["a"]), ("cached", &["false", "true"])])
        )
        .await,
        dec("2")
    );
    // Filters and grouping together.
    let rows = usage(
        &store,
        scope,
        &sum,
        &UsageQuery {
            group_by: vec!["subject".into()],
            ..filtered(&[], &[("model", &["a"])])
        },
    )
    .await;
    let by_subject: Vec<_> = rows
        .iter()
        .map(|r| (r.subject.clone().unwrap(), r.value))
        .collect();
    assert_eq!(
        by_subject,
        [
            ("alice".to_owned(), dec("6")),
            ("bob".to_owned(), dec("10"))
        ]
    );
}

pub async fn metering_values_that_are_not_numbers_are_skipped_and_sums_are_exact(
    store: Arc<dyn Store>,
) {
    let scope = TenantScope::trusted(tenant(&store, "Metering Values Acme").await);
    // Events stored before any meter read them: whatever `n` is, a query must not fail.
    let values = [
        json!({"n": -1234567890123i64}),
        json!({"n": 0.1}),
        json!({"n": 0.2}),
        json!({"n": 1.5e-7}),
        json!({"n": "-12.50"}),
        json!({"n": "1e3"}),
        json!({"n": "abc"}),
        json!({"n": " 1"}),
        json!({"n": "1."}),
        json!({"n": ".5"}),
        json!({"n": "--1"}),
        json!({"n": "-"}),
        json!({"n": ""}),
        json!({"n": true}),
        json!({"n": null}),
        json!({"n": {"value": 1}}),
        json!({"n": [1]}),
        json!({"n": 1e40}),
        json!({"m": 1}),
        json!(null),
        json!([1, 2]),
        json!(7),
        json!("text"),
    ];
    let events: Vec<_> = values
        .iter()
        .enumerate()
        .map(|(i, data)| {
            let mut e = event(&format!("v{i}"), "alice", "00:10", data.clone());
            e.time += Duration::minutes(i as i64);
            e
        })
        .collect();
    store
        .insert_usage_events(scope, &events, at("03:00"))
        .await
        .unwrap();
    let whole = query(None);
    let expect = [
        // -1234567890123 + 0.1 + 0.2 + 0.00000015 - 12.50, exactly.
        (Aggregation::Sum, "-1234567890135.19999985"),
        (Aggregation::Avg, "-246913578027.03999997"),
        (Aggregation::Min, "-1234567890123"),
        (Aggregation::Max, "0.2"),
        // "-12.50" is the latest event with a usable value (00:14).
        (Aggregation::Latest, "-12.5"),
        (Aggregation::Count, "23"),
    ];
    for (aggregation, value) in expect {
        let meter = meter(
            &store,
            scope,
            aggregation,
            aggregation.needs_value().then_some("$.n"),
        )
        .await;
        assert_eq!(
            total(&store, scope, &meter, &whole).await,
            dec(value),
            "{aggregation}"
        );
    }
    // UNIQUE_COUNT reads any JSON value, null included; not a missing one.
    let unique = meter(&store, scope, Aggregation::UniqueCount, Some("$.n")).await;
    assert_eq!(total(&store, scope, &unique, &whole).await, dec("18"));

    // Sums beyond 64-bit integers stay exact: 3 × 9·10^18 + 1e21 + (2^64 - 1).
    let big = [
        json!({"n": "9000000000000000000"}),
        json!({"n": "9000000000000000000"}),
        json!({"n": 9000000000000000000u64}),
        json!({"n": 1e21}),
        json!({"n": u64::MAX}),
    ];
    let events: Vec<_> = big
        .iter()
        .enumerate()
        .map(|(i, data)| typed_event("big", &format!("b{i}"), "alice", "00:10", data.clone()))
        .collect();
    store
        .insert_usage_events(scope, &events, at("03:00"))
        .await
        .unwrap();
    let mut big_sum = new_meter("big-sum", Aggregation::Sum, Some("$.n"));
    big_sum.event_type = "big".into();
    let big_sum = store
        .create_meter(scope, &big_sum, at("00:00"))
        .await
        .unwrap();
    assert_eq!(
        total(&store, scope, &big_sum, &whole).await,
        dec("1045446744073709551615")
    );
}

async fn correct(
    store: &Arc<dyn Store>,
    scope: TenantScope,
    id: &str,
    change: CorrectionChange,
    recorded_at: DateTime<Utc>,
) -> UsageEntry {
    let history = store.usage_event_history(scope, SOURCE, id).await.unwrap();
    let current = history.last().unwrap();
    let correction = NewCorrection::of(current, change, "a reason").unwrap();
    store
        .correct_usage_event(scope, &correction, recorded_at)
        .await
        .unwrap()
}

fn amend_data(data: Value) -> CorrectionChange {
    CorrectionChange::Amend {
        subject: None,
        time: None,
        data: Some(data),
    }
}

pub async fn metering_corrections_amend_and_void_what_is_counted(store: Arc<dyn Store>) {
    let scope = TenantScope::trusted(tenant(&store, "Metering Corrections Acme").await);
    let other = TenantScope::trusted(tenant(&store, "Metering Corrections Globex").await);
    let (r0, r1, r2, r3) = (at("03:00"), at("04:00"), at("05:00"), at("06:00"));
    store
        .insert_usage_events(
            scope,
            &[
                event("e1", "alice", "00:10", json!({"n": 5})),
                event("e2", "alice", "00:20", json!({"n": 3})),
            ],
            r0,
        )
        .await
        .unwrap();
    let sum = meter(&store, scope, Aggregation::Sum, Some("$.n")).await;
    let count = meter(&store, scope, Aggregation::Count, None).await;
    let by_hour = query(Some(WindowSize::Hour));
    let as_of = |t: DateTime<Utc>| UsageQuery {
        as_of: Some(t),
        ..query(Some(WindowSize::Hour))
    };
    assert_eq!(
        windows(&store, scope, &sum, &by_hour).await,
        [(at("00:00"), dec("8"))]
    );

    // Amend e1's value: the totals change.
    let amended = correct(&store, scope, "e1", amend_data(json!({"n": 7})), r1).await;
    assert_eq!(
        (amended.revision, amended.kind, amended.reason.as_deref()),
        (1, EntryKind::Amendment, Some("a reason"))
    );
    assert_eq!(
        (
            amended.event_type.as_str(),
            amended.time,
            amended.recorded_at
        ),
        (CALLS, at("00:10"), r1)
    );
    assert_eq!(amended.superseded_at, None);
    assert_eq!(
        windows(&store, scope, &sum, &by_hour).await,
        [(at("00:00"), dec("10"))]
    );

    // Move e1 to the next hour, then void e2.
    let moved = correct(
        &store,
        scope,
        "e1",
        CorrectionChange::Amend {
            subject: Some("bob".into()),
            time: Some(at("01:30")),
            data: None,
        },
        r2,
    )
    .await;
    assert_eq!((moved.revision, moved.subject.as_str()), (2, "bob"));
    assert_eq!(
        moved.data,
        json!({"n": 7}),
        "what an amendment leaves stays"
    );
    let voided = correct(&store, scope, "e2", CorrectionChange::Void, r3).await;
    assert_eq!((voided.revision, voided.kind), (1, EntryKind::Void));
    assert_eq!(
        windows(&store, scope, &sum, &by_hour).await,
        [(at("01:00"), dec("7"))]
    );
    assert_eq!(
        windows(&store, scope, &count, &by_hour).await,
        [(at("01:00"), dec("1"))],
        "a voided event is not counted"
    );

    // As of earlier times, the corrections recorded later are not applied.
    assert_eq!(
        windows(&store, scope, &sum, &as_of(r0)).await,
        [(at("00:00"), dec("8"))]
    );
    assert_eq!(
        windows(&store, scope, &sum, &as_of(r1 - Duration::microseconds(1))).await,
        [(at("00:00"), dec("8"))]
    );
    assert_eq!(
        windows(&store, scope, &sum, &as_of(r1)).await,
        [(at("00:00"), dec("10"))]
    );
    assert_eq!(
        windows(&store, scope, &sum, &as_of(r2)).await,
        [(at("00:00"), dec("3")), (at("01:00"), dec("7"))]
    );
    assert_eq!(
        windows(&store, scope, &sum, &as_of(r3)).await,
        [(at("01:00"), dec("7"))]
    );
    assert!(
        windows(&store, scope, &sum, &as_of(r0 - Duration::seconds(1)))
            .await
            .is_empty(),
        "before the events were recorded, there was nothing"
    );

    // The history keeps every entry, oldest first, each superseded when the next was recorded.
    let history = store
        .usage_event_history(scope, SOURCE, "e1")
        .await
        .unwrap();
    let summary: Vec<_> = history
        .iter()
        .map(|e| {
            (
                e.revision,
                e.kind,
                e.subject.as_str(),
                e.time,
                e.superseded_at,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (0, EntryKind::Event, "alice", at("00:10"), Some(r1)),
            (1, EntryKind::Amendment, "alice", at("00:10"), Some(r2)),
            (2, EntryKind::Amendment, "bob", at("01:30"), None),
        ]
    );
    assert_eq!(
        history[0].data,
        json!({"n": 5}),
        "the original is kept as it was"
    );
    assert_eq!(history[2], moved);

    // A correction built from an entry that is no longer current: `conflict`.
    let stale = NewCorrection::of(&history[1], amend_data(json!({"n": 1})), "late").unwrap();
    assert_eq!(
        store
            .correct_usage_event(scope, &stale, r3)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::Conflict
    );
    let ahead = NewCorrection {
        revision: 9,
        ..stale.clone()
    };
    assert_eq!(
        store
            .correct_usage_event(scope, &ahead, r3)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::Conflict
    );
    // What no correction can be (revision 0, an event), or no store keeps (a revision past
    // 2^31), is refused alike: `invalid_input`, before any SQL.
    for wrong in [
        NewCorrection {
            revision: 0,
            ..stale.clone()
        },
        NewCorrection {
            kind: EntryKind::Event,
            ..stale.clone()
        },
        NewCorrection {
            revision: u32::MAX,
            ..stale.clone()
        },
    ] {
        assert_eq!(
            store
                .correct_usage_event(scope, &wrong, r3)
                .await
                .unwrap_err()
                .code(),
            ErrorCode::InvalidInput,
            "{wrong:?}"
        );
    }
    // A voided event takes no further corrections.
    let e2 = store
        .usage_event_history(scope, SOURCE, "e2")
        .await
        .unwrap();
    let after_void = NewCorrection {
        id: "e2".into(),
        revision: 2,
        ..stale.clone()
    };
    assert_eq!(e2.last().unwrap().kind, EntryKind::Void);
    assert_eq!(
        store
            .correct_usage_event(scope, &after_void, r3)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::EventVoided
    );
    // No such event, or another tenant's: `not_found`.
    let missing = NewCorrection {
        id: "missing".into(),
        revision: 1,
        ..stale.clone()
    };
    assert_eq!(
        store
            .correct_usage_event(scope, &missing, r3)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::NotFound
    );
    let current = NewCorrection::of(&history[2], amend_data(json!({"n": 1})), "r").unwrap();
    assert_eq!(
        store
            .correct_usage_event(other, &current, r3)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::NotFound
    );
    assert!(
        store
            .usage_event_history(other, SOURCE, "e1")
            .await
            .unwrap()
            .is_empty()
    );
    // None of the refused corrections wrote anything.
    assert_eq!(
        store
            .usage_event_history(scope, SOURCE, "e1")
            .await
            .unwrap(),
        history
    );
    assert_eq!(
        store
            .usage_event_history(scope, SOURCE, "e2")
            .await
            .unwrap(),
        e2
    );
}

pub async fn metering_concurrent_corrections_of_one_event_one_wins(store: Arc<dyn Store>) {
    const WRITERS: usize = 8;
    let scope = TenantScope::trusted(tenant(&store, "Metering Correction Race Acme").await);
    store
        .insert_usage_events(
            scope,
            &[event("e1", "alice", "00:10", json!({"n": 1}))],
            at("03:00"),
        )
        .await
        .unwrap();
    let current = store
        .usage_event_history(scope, SOURCE, "e1")
        .await
        .unwrap()[0]
        .clone();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|i| {
            let store = store.clone();
            let correction = NewCorrection::of(
                &current,
                amend_data(json!({"n": 10 + i})),
                &format!("writer {i}"),
            )
            .unwrap();
            tokio::spawn(async move {
                store
                    .correct_usage_event(scope, &correction, at("04:00"))
                    .await
            })
        })
        .collect();
    let mut won = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(entry) => won.push(entry),
            Err(err) => assert_eq!(err.code(), ErrorCode::Conflict, "{err:?}"),
        }
    }
    assert_eq!(won.len(), 1, "exactly one correction wins");
    let history = store
        .usage_event_history(scope, SOURCE, "e1")
        .await
        .unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1], won[0]);
    let sum = meter(&store, scope, Aggregation::Sum, Some("$.n")).await;
    assert_eq!(
        total(&store, scope, &sum, &query(None)).await,
        Decimal::from(won[0].data["n"].as_u64().unwrap())
    );
}

pub async fn metering_corrections_are_listed_newest_first(store: Arc<dyn Store>) {
    let scope = TenantScope::trusted(tenant(&store, "Metering Correction List Acme").await);
    let other = TenantScope::trusted(tenant(&store, "Metering Correction List Globex").await);
    let (r1, r2, r3) = (at("04:00"), at("05:00"), at("06:00"));
    store
        .insert_usage_events(
            scope,
            &[
                event("e1", "alice", "00:10", json!({"n": 5})),
                event("e2", "alice", "00:20", json!({"n": 3})),
                event("e3", "alice", "00:30", json!({"n": 1})),
                typed_event("other.type", "o1", "alice", "00:10", json!({"n": 1})),
            ],
            at("03:00"),
        )
        .await
        .unwrap();
    let e1_first = correct(&store, scope, "e1", amend_data(json!({"n": 6})), r1).await;
    let e1_moved = correct(
        &store,
        scope,
        "e1",
        CorrectionChange::Amend {
            subject: None,
            time: Some(at("01:30")),
            data: None,
        },
        r2,
    )
    .await;
    let e2_void = correct(&store, scope, "e2", CorrectionChange::Void, r3).await;
    correct(&store, scope, "o1", CorrectionChange::Void, r3).await;

    let list = |from: &str, to: &str, as_of: Option<DateTime<Utc>>, limit: u32| {
        let store = store.clone();
        let (from, to) = (at(from), at(to));
        async move {
            store
                .list_usage_corrections(scope, CALLS, from, to, as_of, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|entry| (entry.id, entry.revision))
                .collect::<Vec<_>>()
        }
    };
    let key = |entry: &UsageEntry| (entry.id.clone(), entry.revision);
    assert_eq!(
        list("00:00", "01:00", None, 10).await,
        [key(&e2_void), key(&e1_moved), key(&e1_first)],
        "the move counts for the period it left"
    );
    assert_eq!(
        list("01:00", "02:00", None, 10).await,
        [key(&e1_moved)],
        "and for the period it entered"
    );
    assert_eq!(
        list("00:00", "01:00", Some(r2), 10).await,
        [key(&e1_moved), key(&e1_first)],
        "as of r2, the void was not recorded yet"
    );
    assert_eq!(list("00:00", "01:00", None, 1).await, [key(&e2_void)]);
    assert!(list("02:00", "03:00", None, 10).await.is_empty());
    // The entries are listed as they are now: the first amendment, superseded by the move.
    let listed = store
        .list_usage_corrections(scope, CALLS, at("00:00"), at("01:00"), None, 10)
        .await
        .unwrap();
    let e1 = store
        .usage_event_history(scope, SOURCE, "e1")
        .await
        .unwrap();
    assert_eq!(listed[1..], [e1[2].clone(), e1[1].clone()]);
    assert_eq!(listed[0], e2_void);
    assert_eq!(e1[1].superseded_at, Some(r2));
    assert!(
        store
            .list_usage_corrections(other, CALLS, at("00:00"), at("02:00"), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

fn graduated_price() -> MeterPrice {
    MeterPrice {
        model: PriceModel::Graduated {
            tiers: vec![
                Tier {
                    up_to: Some(dec("1000")),
                    unit_amount: dec("0.000002"),
                    flat_amount: dec("0"),
                },
                Tier {
                    up_to: None,
                    unit_amount: dec("0.0000015"),
                    flat_amount: dec("1.25"),
                },
            ],
        },
        free_units: dec("100.5"),
    }
}

pub async fn metering_meters_are_per_tenant_with_unique_slugs(store: Arc<dyn Store>) {
    let acme = TenantScope::trusted(tenant(&store, "Metering Meters Acme").await);
    let globex = TenantScope::trusted(tenant(&store, "Metering Meters Globex").await);
    let mut tokens = new_meter("tokens", Aggregation::Sum, Some("$.usage['input tokens']"));
    tokens.description = Some("Input tokens".into());
    tokens.price = Some(graduated_price());
    let created = store
        .create_meter(acme, &tokens, at("00:00"))
        .await
        .unwrap();
    assert_eq!(created.tenant_id, acme.tenant_id());
    assert_eq!(
        (
            created.slug.as_str(),
            created.name.as_str(),
            created.description.as_deref(),
            created.event_type.as_str(),
            created.aggregation
        ),
        (
            "tokens",
            "Meter tokens",
            Some("Input tokens"),
            CALLS,
            Aggregation::Sum
        )
    );
    assert_eq!(created.value, tokens.value);
    assert_eq!(created.group_by, tokens.group_by);
    assert_eq!(created.price, Some(graduated_price()));
    assert_eq!(
        (created.created_at, created.updated_at, created.archived_at),
        (at("00:00"), at("00:00"), None)
    );
    assert_eq!(
        store.find_meter(acme, created.id).await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(
        store.find_meter_by_slug(acme, "tokens").await.unwrap(),
        Some(created.clone())
    );

    let again = NewMeter {
        aggregation: Aggregation::Count,
        value: None,
        ..tokens.clone()
    };
    assert_eq!(
        store
            .create_meter(acme, &again, at("00:01"))
            .await
            .unwrap_err()
            .code(),
        ErrorCode::MeterSlugTaken
    );
    store
        .archive_meter(acme, created.id, at("00:02"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .create_meter(acme, &again, at("00:03"))
            .await
            .unwrap_err()
            .code(),
        ErrorCode::MeterSlugTaken,
        "an archived meter keeps its slug"
    );

    // Another tenant sees none of it, and may use the slug.
    assert_eq!(store.find_meter(globex, created.id).await.unwrap(), None);
    assert_eq!(
        store.find_meter_by_slug(globex, "tokens").await.unwrap(),
        None
    );
    assert_eq!(
        store
            .set_meter_price(globex, created.id, None, at("00:04"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .archive_meter(globex, created.id, at("00:04"))
            .await
            .unwrap(),
        None
    );
    let theirs = store
        .create_meter(globex, &again, at("00:05"))
        .await
        .unwrap();
    assert_ne!(theirs.id, created.id);
    assert_eq!(
        store.find_meter_by_slug(globex, "tokens").await.unwrap(),
        Some(theirs)
    );
    assert_eq!(
        store
            .find_meter(acme, created.id)
            .await
            .unwrap()
            .unwrap()
            .price,
        Some(graduated_price()),
        "the refused change left the meter alone"
    );

    // What does not validate is refused before it is stored.
    let mut bad = new_meter("Bad Slug", Aggregation::Count, None);
    assert_eq!(
        store
            .create_meter(acme, &bad, at("00:06"))
            .await
            .unwrap_err()
            .code(),
        ErrorCode::InvalidInput
    );
    bad.slug = "no-value".into();
    bad.aggregation = Aggregation::Sum;
    assert!(store.create_meter(acme, &bad, at("00:06")).await.is_err());
    assert_eq!(
        store.find_meter_by_slug(acme, "no-value").await.unwrap(),
        None
    );
}

pub async fn metering_meters_are_listed_priced_and_archived(store: Arc<dyn Store>) {
    let scope = TenantScope::trusted(tenant(&store, "Metering Meter List Acme").await);
    let mut created = Vec::new();
    for (i, slug) in ["m1", "m2", "m3", "m4"].into_iter().enumerate() {
        let meter = store
            .create_meter(
                scope,
                &new_meter(slug, Aggregation::Count, None),
                at("00:00") + Duration::minutes(i as i64),
            )
            .await
            .unwrap();
        created.push(meter);
    }
    let archived = store
        .archive_meter(scope, created[1].id, at("01:00"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (archived.archived_at, archived.updated_at),
        (Some(at("01:00")), at("01:00"))
    );
    let twice = store
        .archive_meter(scope, created[1].id, at("02:00"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(twice, archived, "archiving twice keeps the first time");

    let slugs = |meters: &[Meter]| meters.iter().map(|m| m.slug.clone()).collect::<Vec<_>>();
    let page = store
        .list_meters(scope, false, PageRequest::first(2).unwrap())
        .await
        .unwrap();
    assert_eq!(
        (slugs(&page.items), page.has_more),
        (vec!["m1".into(), "m3".into()], true)
    );
    let rest = store
        .list_meters(
            scope,
            false,
            PageRequest::relay(Some(2), Some(page.items[1].id.as_uuid()), None, None).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        (slugs(&rest.items), rest.has_more),
        (vec!["m4".into()], false)
    );
    let all = store
        .list_meters(scope, true, PageRequest::first(10).unwrap())
        .await
        .unwrap();
    assert_eq!(slugs(&all.items), ["m1", "m2", "m3", "m4"]);
    assert_eq!(all.items[1], archived);
    let last = store
        .list_meters(
            scope,
            true,
            PageRequest::relay(None, None, Some(3), None).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        (slugs(&last.items), last.has_more),
        (vec!["m2".into(), "m3".into(), "m4".into()], true)
    );
    assert_eq!(
        slugs(&store.active_meters(scope).await.unwrap()),
        ["m1", "m3", "m4"]
    );
    // An archived meter is still found, and its usage can still be queried.
    assert_eq!(
        store.find_meter(scope, created[1].id).await.unwrap(),
        Some(archived.clone())
    );

    // Prices round-trip exactly, and can be removed.
    let standard = MeterPrice {
        model: PriceModel::Standard {
            unit_amount: dec("0.000002"),
        },
        free_units: dec("0"),
    };
    for price in [graduated_price(), standard] {
        let priced = store
            .set_meter_price(scope, created[0].id, Some(&price), at("03:00"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(priced.price, Some(price));
        assert_eq!(priced.updated_at, at("03:00"));
        assert_eq!(priced.created_at, created[0].created_at);
        assert_eq!(
            store.find_meter(scope, created[0].id).await.unwrap(),
            Some(priced)
        );
    }
    let unpriced = store
        .set_meter_price(scope, created[0].id, None, at("04:00"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((unpriced.price, unpriced.updated_at), (None, at("04:00")));
    let invalid = MeterPrice {
        model: PriceModel::Standard {
            unit_amount: dec("-1"),
        },
        free_units: dec("0"),
    };
    assert_eq!(
        store
            .set_meter_price(scope, created[0].id, Some(&invalid), at("05:00"))
            .await
            .unwrap_err()
            .code(),
        ErrorCode::InvalidPriceModel
    );
    assert_eq!(
        store
            .set_meter_price(scope, purser_domain::id::MeterId::new(), None, at("05:00"))
            .await
            .unwrap(),
        None
    );
}

/// `(day, version, cached cells)` of `days` as the store reports them for `shape`.
async fn days_of(
    store: &Arc<dyn Store>,
    scope: TenantScope,
    shape: &str,
    days: std::ops::Range<i64>,
) -> Vec<(i64, i64, Option<Vec<UsageCell>>)> {
    store
        .usage_days(scope, CALLS, shape, days)
        .await
        .unwrap()
        .into_iter()
        .map(|day| (day.day, day.version, day.cells))
        .collect()
}

pub async fn metering_late_entries_and_corrections_move_a_closed_days_version(
    store: Arc<dyn Store>,
) {
    let scope = TenantScope::trusted(tenant(&store, "Metering Days Acme").await);
    let other = TenantScope::trusted(tenant(&store, "Metering Days Globex").await);
    let day = unix_day(at("00:00"));
    let today = unix_day(Utc::now());
    let shape = "a-shape";
    let cells = |count: u64| {
        vec![UsageCell {
            count,
            subject: Some("alice".into()),
            ..UsageCell::default()
        }]
    };

    // Closed days are reported, version 0 and nothing cached; today never (it is not closed).
    assert_eq!(
        days_of(&store, scope, shape, day..day + 2).await,
        [(day, 0, None), (day + 1, 0, None)]
    );
    assert_eq!(days_of(&store, scope, shape, today..today + 1).await, []);

    // A cached answer is returned while its version is the day's.
    store
        .cache_usage_day(scope, CALLS, shape, day, 0, &cells(1))
        .await
        .unwrap();
    assert_eq!(
        days_of(&store, scope, shape, day..day + 1).await,
        [(day, 0, Some(cells(1)))]
    );
    // Another shape or another tenant sees nothing of it.
    assert_eq!(
        days_of(&store, scope, "another-shape", day..day + 1).await,
        [(day, 0, None)]
    );
    assert_eq!(
        days_of(&store, other, shape, day..day + 1).await,
        [(day, 0, None)]
    );

    // A late event bumps its day (not the next one) and invalidates the cached answer.
    let stored = store
        .insert_usage_events(
            scope,
            &[event("late-1", "alice", "10:00", json!({"n": 1}))],
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(stored, [true]);
    assert_eq!(
        days_of(&store, scope, shape, day..day + 2).await,
        [(day, 1, None), (day + 1, 0, None)]
    );
    // ... but not the other tenant's day.
    assert_eq!(
        days_of(&store, other, shape, day..day + 1).await,
        [(day, 0, None)]
    );

    // Cached at the new version it is used; an older scan finishing late does not replace it.
    store
        .cache_usage_day(scope, CALLS, shape, day, 1, &cells(2))
        .await
        .unwrap();
    store
        .cache_usage_day(scope, CALLS, shape, day, 0, &cells(1))
        .await
        .unwrap();
    assert_eq!(
        days_of(&store, scope, shape, day..day + 1).await,
        [(day, 1, Some(cells(2)))]
    );

    // A duplicate stores nothing and bumps nothing; an event of today bumps no closed day.
    let mut today_event = event("today-1", "alice", "00:00", json!({"n": 1}));
    today_event.time = Utc::now();
    let stored = store
        .insert_usage_events(
            scope,
            &[
                event("late-1", "alice", "10:00", json!({"n": 1})),
                today_event,
            ],
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(stored, [false, true]);
    assert_eq!(
        days_of(&store, scope, shape, day..day + 2).await,
        [(day, 1, Some(cells(2))), (day + 1, 0, None)]
    );

    // An amendment moving the event to the next day bumps both days.
    let moved = CorrectionChange::Amend {
        subject: None,
        time: Some(at("10:00") + Duration::days(1)),
        data: None,
    };
    correct(&store, scope, "late-1", moved, Utc::now()).await;
    assert_eq!(
        days_of(&store, scope, shape, day..day + 2).await,
        [(day, 2, None), (day + 1, 1, None)]
    );
    // A void bumps the day it was in.
    correct(&store, scope, "late-1", CorrectionChange::Void, Utc::now()).await;
    assert_eq!(
        days_of(&store, scope, shape, day..day + 2).await,
        [(day, 2, None), (day + 1, 2, None)]
    );
}

/// A tenant's rows of `usage_day_versions` as (day, version), ascending: what
/// [`only_late_events_bump_a_days_version`] reads through each backend's own pool (the
/// [`Store`] trait does not show the versions of days still open). Binds the tenant's UUID.
pub const DAY_VERSIONS_SQL: &str =
    "SELECT day, version FROM usage_day_versions WHERE tenant_id = $1 ORDER BY day";

/// Events of the moment write no day version (concurrent live batches never queue on one row);
/// a late event bumps its own day's. Stores, for a new tenant, an event of now, one of 25
/// minutes ago (perhaps of the day that just ended: within the half hour a write may take) and
/// one of three days ago; `versions` reads the tenant's rows with [`DAY_VERSIONS_SQL`].
pub async fn only_late_events_bump_a_days_version<F, Fut>(store: Arc<dyn Store>, versions: F)
where
    F: FnOnce(uuid::Uuid) -> Fut,
    Fut: std::future::Future<Output = Vec<(i64, i64)>>,
{
    let scope = TenantScope::trusted(tenant(&store, "Metering Live Acme").await);
    let now = Utc::now();
    let late = now - Duration::days(3);
    let events: Vec<NewUsageEvent> = [now, now - Duration::minutes(25), late]
        .into_iter()
        .enumerate()
        .map(|(n, time)| NewUsageEvent {
            time,
            ..event(&format!("live-{n}"), "alice", "00:00", json!({"n": 1}))
        })
        .collect();
    let stored = store
        .insert_usage_events(scope, &events, now)
        .await
        .unwrap();
    assert_eq!(stored, [true, true, true]);
    assert_eq!(
        versions(scope.tenant_id().as_uuid()).await,
        [(unix_day(late), 1)]
    );
}

/// Text and JSON that one backend would keep and the other refuse (NUL: PostgreSQL's `text`
/// and `jsonb` refuse it, SQLite keeps it) are refused alike by the domain's constructors and,
/// for events, corrections and meters built any other way, by both stores before any SQL,
/// storing nothing; what both keep alike (other control characters inside `data` strings, any
/// script) is read back as written.
pub async fn metering_text_the_stores_would_not_keep_alike_is_refused(store: Arc<dyn Store>) {
    let scope = TenantScope::trusted(tenant(&store, "Metering Text").await);
    let recorded = at("03:00");
    let history = |id: &'static str| {
        let store = store.clone();
        async move { store.usage_event_history(scope, SOURCE, id).await.unwrap() }
    };

    // Read from CloudEvents: refused with the attribute named.
    let cloud_event = |subject: &str, data: Value| {
        json!({
            "specversion": "1.0", "id": "ce", "source": SOURCE, "type": CALLS,
            "subject": subject, "time": "2026-03-01T00:10:00Z", "data": data,
        })
    };
    for (sent, says) in [
        (cloud_event("a\u{0}", json!({})), "`subject`"),
        (cloud_event("a\u{1b}", json!({})), "`subject`"),
        (cloud_event("a", json!({"n": "\u{0}"})), "`data`"),
        (cloud_event("a", json!({"\u{0}": 1})), "`data`"),
    ] {
        let err = NewUsageEvent::from_cloud_event(sent, recorded).unwrap_err();
        assert_eq!(err.code(), ErrorCode::MalformedCloudEvent, "{says}");
        assert!(err.message().contains(says), "{}", err.message());
    }

    // Built another way: the store refuses the batch whole, and stores none of it.
    let good = |id: &str| event(id, "alice", "00:10", json!({"n": 1}));
    let mut deep = json!(1);
    for _ in 0..40 {
        deep = json!([deep]);
    }
    for (bad, says) in [
        (
            event("bad", "alice", "00:10", json!({"note": "a\u{0}b"})),
            "`data`",
        ),
        (
            event("bad", "alice", "00:10", json!({"k\u{0}": 1})),
            "`data`",
        ),
        (event("bad", "alice", "00:10", deep), "`data`"),
        (event("bad", "al\u{0}ice", "00:10", json!({})), "`subject`"),
        (event("bad", "al\nice", "00:10", json!({})), "`subject`"),
        (event("b\u{0}d", "alice", "00:10", json!({})), "`id`"),
        (
            typed_event("t\u{0}", "bad", "alice", "00:10", json!({})),
            "`type`",
        ),
    ] {
        let err = store
            .insert_usage_events(scope, &[good("g1"), bad, good("g2")], recorded)
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::MalformedCloudEvent, "{says}");
        assert!(err.message().contains(says), "{}", err.message());
        assert!(history("g1").await.is_empty(), "{says}");
        assert!(history("g2").await.is_empty(), "{says}");
    }

    // What both keep alike is read back as written.
    let kept = json!({
        "note": "tab\there, bell\u{7}, newline\n, escape\u{1b}",
        "ключ": "値 🚀",
        "nested": [{"deep": [1, 2.5, "x"]}],
    });
    let stored = event("kept", "Ünïcödé 顧客", "00:20", kept.clone());
    assert_eq!(
        store
            .insert_usage_events(scope, std::slice::from_ref(&stored), recorded)
            .await
            .unwrap(),
        [true]
    );
    let entries = history("kept").await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].data, kept);
    assert_eq!(entries[0].subject, "Ünïcödé 顧客");

    // Corrections: refused by the constructor, and by the store when built another way.
    let current = entries[0].clone();
    for (change, reason, says) in [
        (CorrectionChange::Void, "typo\u{0}", "`reason`"),
        (
            CorrectionChange::Amend {
                subject: Some("bob\u{0}".into()),
                time: None,
                data: None,
            },
            "r",
            "`subject`",
        ),
        (
            CorrectionChange::Amend {
                subject: None,
                time: None,
                data: Some(json!({"n": "\u{0}"})),
            },
            "r",
            "`data`",
        ),
    ] {
        let err = NewCorrection::of(&current, change, reason).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidInput, "{says}");
        assert!(err.message().contains(says), "{}", err.message());
    }
    let valid = NewCorrection::of(&current, CorrectionChange::Void, "test\ntraffic").unwrap();
    for tampered in [
        NewCorrection {
            reason: "x\u{0}".into(),
            ..valid.clone()
        },
        NewCorrection {
            data: json!({"n": "\u{0}"}),
            kind: EntryKind::Amendment,
            ..valid.clone()
        },
    ] {
        let err = store
            .correct_usage_event(scope, &tampered, recorded)
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidInput, "{}", err.message());
    }
    assert_eq!(history("kept").await.len(), 1, "no correction was stored");
    let voided = store
        .correct_usage_event(scope, &valid, recorded)
        .await
        .unwrap();
    assert_eq!(voided.reason.as_deref(), Some("test\ntraffic"));

    // Meters: refused by their validation, which both stores run too.
    type Break = fn(&mut NewMeter);
    let breaks: [(Break, &str); 4] = [
        (|m| m.name = "Calls\u{0}".into(), "`name`"),
        (|m| m.name = "Calls\r".into(), "`name`"),
        (|m| m.description = Some("x\u{0}".into()), "`description`"),
        (|m| m.event_type = "api\u{0}".into(), "`eventType`"),
    ];
    for (break_it, says) in breaks {
        let mut meter = new_meter("calls", Aggregation::Count, None);
        break_it(&mut meter);
        let err = store
            .create_meter(scope, &meter, recorded)
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidInput, "{says}");
        assert!(err.message().contains(says), "{}", err.message());
    }
    assert_eq!(
        ValuePath::parse("$['a\u{0}']").unwrap_err().code(),
        ErrorCode::InvalidJsonPath
    );
    assert!(
        store
            .list_meters(scope, true, PageRequest::first(10).unwrap())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // A query for a value no event can hold is refused before the store.
    let meter = meter(&store, scope, Aggregation::Count, None).await;
    let mut query = query(None);
    query.subjects = vec!["al\u{0}ice".into()];
    assert_eq!(
        query.plan(&meter).unwrap_err().code(),
        ErrorCode::InvalidUsageQuery
    );
}

/// Usage events and meters of a tenant that does not exist are `not_found`, and nothing is
/// stored: PostgreSQL's `usage_events` has no foreign key to `tenants` and looks the tenant up
/// once per batch instead; SQLite's has one.
pub async fn metering_writes_for_a_tenant_that_does_not_exist_are_not_found(store: Arc<dyn Store>) {
    let missing = TenantScope::trusted(purser_domain::id::TenantId::new());
    let batch = [
        event("ghost-1", "alice", "00:10", json!({"n": 1})),
        event("ghost-2", "bob", "00:20", json!({"n": 2})),
    ];
    let err = store
        .insert_usage_events(missing, &batch, at("03:00"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound, "{}", err.message());
    assert!(err.message().contains("tenant"), "{}", err.message());
    for id in ["ghost-1", "ghost-2"] {
        assert!(
            store
                .usage_event_history(missing, SOURCE, id)
                .await
                .unwrap()
                .is_empty()
        );
    }
    let err = store
        .create_meter(
            missing,
            &new_meter("calls", Aggregation::Count, None),
            at("00:00"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound, "{}", err.message());
    assert!(
        store
            .list_meters(missing, true, PageRequest::first(10).unwrap())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // A tenant that exists stores the same batch.
    let real = TenantScope::trusted(tenant(&store, "Metering Real").await);
    assert_eq!(
        store
            .insert_usage_events(real, &batch, at("03:00"))
            .await
            .unwrap(),
        [true, true]
    );
}
