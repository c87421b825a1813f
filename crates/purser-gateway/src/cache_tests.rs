//! The gateway's caches of resources and routes, as [`Gateway::new`] builds them: bounded by
//! weight, expiring after [`RESOURCE_CACHE_TTL`].

use chrono::Utc;
use purser_domain::money::Amount;
use purser_domain::registry::{
    Accept, ResourceHealth, ResourceMetadata, ResourceOrigin, VersionSpec,
};
use purser_registry::validate::resource_url;

use super::*;

fn version(resource_id: ResourceId, version: u32) -> ResourceVersion {
    ResourceVersion {
        resource_id,
        version,
        spec: VersionSpec {
            price: PriceSpec::Usd { usd: "0.01".into() },
            accepts: vec![Accept {
                scheme: "exact".into(),
                network: "eip155:84532".into(),
                asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e".into(),
                amount: Amount::from_atomic(10_000),
                pay_to: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C".into(),
                eip712_name: "USDC".into(),
                eip712_version: "2".into(),
                extra: None,
            }],
            max_timeout_seconds: 60,
            input_schema: None,
            output_schema: None,
            input_example: None,
            output_example: None,
            body_type: None,
            bazaar: None,
            repeat_access: None,
            escrow: None,
        },
        created_at: Utc::now(),
        superseded_at: None,
    }
}

/// A published resource with `versions` versions.
fn priced(versions: u32) -> Arc<Priced> {
    let id = ResourceId::new();
    let now = Utc::now();
    let versions: Vec<ResourceVersion> = (1..=versions).map(|v| version(id, v)).collect();
    Arc::new(Priced {
        resource: Resource {
            id,
            tenant_id: TenantId::new(),
            origin: ResourceOrigin::Merchant,
            kind: ResourceKind::Http,
            url: "https://api.example.com/forecast".into(),
            method: Some("GET".into()),
            tool: None,
            metadata: ResourceMetadata::default(),
            status: ResourceStatus::Published,
            current: versions.last().cloned().unwrap_or_else(|| version(id, 1)),
            health: ResourceHealth::Unknown,
            health_checked_at: None,
            health_detail: None,
            unhealthy_since: None,
            hidden: false,
            created_at: now,
            updated_at: now,
        },
        versions,
        policy: Default::default(),
        router: Arc::new(purser_domain::routing::Unrouted),
    })
}

fn route() -> Route {
    Route {
        id: ResourceId::new(),
        method: Some("GET".into()),
        template: resource_url("https://api.example.com/users/:id").unwrap(),
    }
}

/// Ten times as many resources as the cache holds (one version each, so each weighs two):
/// it holds at most its cap by weight, so at most half as many resources.
#[test]
fn a_flood_of_resources_leaves_at_most_the_cap() {
    let cache = priced_cache(PRICED_CACHE_WEIGHT);
    assert_eq!(cache.max(), PRICED_CACHE_WEIGHT);
    assert_eq!(cache.time_to_live(), Some(RESOURCE_CACHE_TTL));
    let cache = priced_cache(1_000);
    let one = priced(1);
    for _ in 0..10_000 {
        cache.insert(cache.begin_read(), ResourceId::new(), one.clone());
    }
    assert!(cache.weighted_size() <= 1_000, "{}", cache.weighted_size());
    assert!(cache.entry_count() <= 500, "{}", cache.entry_count());
    assert!(cache.entry_count() > 0);
    // A resource with many versions weighs as much.
    let heavy = priced(99);
    let cache = priced_cache(1_000);
    for _ in 0..100 {
        cache.insert(cache.begin_read(), ResourceId::new(), heavy.clone());
    }
    assert!(cache.entry_count() <= 10, "{}", cache.entry_count());
}

/// Ten times as many tenants as the cache holds (no route each): at most the cap; and a
/// tenant with many routes weighs as much.
#[test]
fn a_flood_of_tenants_routes_leaves_at_most_the_cap() {
    let cache = route_cache(ROUTE_CACHE_WEIGHT);
    assert_eq!(cache.max(), ROUTE_CACHE_WEIGHT);
    assert_eq!(cache.time_to_live(), Some(RESOURCE_CACHE_TTL));
    let cache = route_cache(1_000);
    let none: Arc<[Route]> = Vec::new().into();
    for _ in 0..10_000 {
        cache.insert(cache.begin_read(), TenantId::new(), none.clone());
    }
    assert!(cache.entry_count() <= 1_000, "{}", cache.entry_count());
    let many: Arc<[Route]> = vec![route(); 199].into();
    let cache = route_cache(1_000);
    for _ in 0..100 {
        cache.insert(cache.begin_read(), TenantId::new(), many.clone());
    }
    assert!(cache.weighted_size() <= 1_000, "{}", cache.weighted_size());
    assert!(cache.entry_count() <= 5, "{}", cache.entry_count());
}
