//! The cache of tenants' active meters, over the embedded store: bounded, expiring, forgotten
//! when told.

use purser_domain::metering::{Aggregation, NewMeter};
use purser_domain::repo::Store;
use purser_domain::tenant::{NewTenant, TenantKind, TenantName};
use purser_store_sqlite::{SqliteStore, SqliteStoreOptions};

use super::*;

async fn store(dir: &std::path::Path) -> Arc<dyn Store> {
    let sqlite = SqliteStore::open_dir(dir, &SqliteStoreOptions::default())
        .await
        .unwrap();
    sqlite.migrate().await.unwrap();
    Arc::new(sqlite)
}

fn new_meter(slug: &str) -> NewMeter {
    NewMeter {
        slug: slug.into(),
        name: format!("Meter {slug}"),
        description: None,
        event_type: "com.example.call".into(),
        aggregation: Aggregation::Count,
        value: None,
        group_by: BTreeMap::new(),
        price: None,
    }
}

/// Ten times as many tenants as the cache holds (each with no meter, so each weighs one), each
/// ingesting: it holds at most its cap. (At a cap of 100; [`Metering::new`] is checked to use
/// [`METER_CACHE_WEIGHT`].)
#[tokio::test]
async fn a_flood_of_tenants_leaves_at_most_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let metering = Metering::new(store.clone(), MeteringLimits::default());
    assert_eq!(metering.meters.max(), METER_CACHE_WEIGHT);
    let metering = Metering {
        meters: meter_cache(100),
        ..metering
    };
    for _ in 0..1_000 {
        let scope = TenantScope::trusted(TenantId::new());
        assert!(metering.active_meters(scope).await.unwrap().is_empty());
    }
    let held = metering.meters.entry_count();
    assert!(held <= 100, "{held} tenants cached");
    assert!(held > 0);
}

#[tokio::test]
async fn a_tenants_meters_are_cached_until_told_or_a_second_old() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let tenant = store
        .create_tenant(NewTenant::new(
            TenantName::parse("Meters").unwrap(),
            TenantKind::Merchant,
        ))
        .await
        .unwrap()
        .id;
    let scope = TenantScope::trusted(tenant);
    let metering = Metering::new(store.clone(), MeteringLimits::default());
    assert!(metering.active_meters(scope).await.unwrap().is_empty());

    // Created behind the service's back (no announcement): cached as absent until told.
    store
        .create_meter(scope, &new_meter("calls"), Utc::now())
        .await
        .unwrap();
    assert!(metering.active_meters(scope).await.unwrap().is_empty());
    metering.forget(&Invalidation::Meters(TenantId::new()));
    assert!(
        metering.active_meters(scope).await.unwrap().is_empty(),
        "another tenant's announcement"
    );
    metering.forget(&Invalidation::Meters(tenant));
    assert_eq!(metering.active_meters(scope).await.unwrap().len(), 1);

    // Again, untold: the cache's second runs out.
    store
        .create_meter(scope, &new_meter("tokens"), Utc::now())
        .await
        .unwrap();
    assert_eq!(metering.active_meters(scope).await.unwrap().len(), 1);
    tokio::time::sleep(METER_CACHE_TTL + Duration::from_millis(200)).await;
    assert_eq!(metering.active_meters(scope).await.unwrap().len(), 2);

    // And once more, with every announcement possibly missed.
    store
        .create_meter(scope, &new_meter("bytes"), Utc::now())
        .await
        .unwrap();
    metering.forget_all();
    assert_eq!(metering.active_meters(scope).await.unwrap().len(), 3);
}

/// A tenant weighs one plus its meters: the cap bounds the meters held, not only the tenants.
#[test]
fn a_tenant_weighs_one_plus_its_meters() {
    let cache = meter_cache(100);
    let now = Utc::now();
    let meter = Meter {
        id: MeterId::new(),
        tenant_id: TenantId::new(),
        slug: "calls".into(),
        name: "Calls".into(),
        description: None,
        event_type: "com.example.call".into(),
        aggregation: Aggregation::Count,
        value: None,
        group_by: BTreeMap::new(),
        price: None,
        created_at: now,
        updated_at: now,
        archived_at: None,
    };
    let nine: Arc<[Meter]> = vec![meter; 9].into();
    for _ in 0..100 {
        cache.insert(cache.begin_read(), TenantId::new(), nine.clone());
    }
    assert!(cache.weighted_size() <= 100, "{}", cache.weighted_size());
    assert!(cache.entry_count() <= 10, "{}", cache.entry_count());
}
