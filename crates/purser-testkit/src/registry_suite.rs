//! The registry part of the storage behaviour suite (run through [`crate::store_suite!`]).

use std::sync::Arc;

use chrono::{Duration, Utc};
use purser_domain::ErrorCode;
use purser_domain::auth::TenantScope;
use purser_domain::id::{ResourceId, TenantId};
use purser_domain::money::Amount;
use purser_domain::page::PageRequest;
use purser_domain::registry::{
    Accept, CatalogFilter, LearnedResource, NewResource, PriceSpec, ProbeOutcome, Resource,
    ResourceChange, ResourceHealth, ResourceKind, ResourceMetadata, ResourceOrigin, ResourceStatus,
    VersionSpec,
};
use purser_domain::repo::Store;
use purser_domain::tenant::{NewTenant, TenantKind, TenantName};

const BASE: &str = "eip155:8453";
const SEPOLIA: &str = "eip155:84532";
const PAY_A: &str = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C";
const PAY_B: &str = "0x1111111111111111111111111111111111111111";

pub(crate) async fn tenant(store: &Arc<dyn Store>, name: &str) -> TenantId {
    store
        .create_tenant(NewTenant::new(
            TenantName::parse(name).unwrap(),
            TenantKind::Merchant,
        ))
        .await
        .unwrap()
        .id
}

fn spec(network: &str, pay_to: &str, amount: u128) -> VersionSpec {
    VersionSpec {
        price: PriceSpec::Atomic {
            amount: Amount::from_atomic(amount),
        },
        accepts: vec![Accept {
            scheme: "exact".into(),
            network: network.into(),
            asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e".into(),
            amount: Amount::from_atomic(amount),
            pay_to: pay_to.into(),
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
    }
}

fn metadata(name: &str, description: &str, tags: &[&str]) -> ResourceMetadata {
    ResourceMetadata {
        name: name.into(),
        description: description.into(),
        mime_type: Some("application/json".into()),
        service_name: None,
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        icon_url: None,
    }
}

pub(crate) fn new_resource(tenant: TenantId, url: &str, status: ResourceStatus) -> NewResource {
    NewResource {
        id: ResourceId::new(),
        tenant_id: tenant,
        origin: ResourceOrigin::Merchant,
        kind: ResourceKind::Http,
        url: url.into(),
        method: Some("GET".into()),
        tool: None,
        metadata: metadata("Resource", "", &[]),
        status,
        spec: spec(BASE, PAY_A, 1000),
        search_fields: String::new(),
        at: Utc::now(),
    }
}

fn ids(resources: &[Resource]) -> Vec<ResourceId> {
    resources.iter().map(|r| r.id).collect()
}

pub async fn payout_addresses_are_per_tenant_and_network(store: Arc<dyn Store>) {
    let a = TenantScope::trusted(tenant(&store, "Payout A").await);
    let b = TenantScope::trusted(tenant(&store, "Payout B").await);
    let now = Utc::now();
    store.set_payout_address(a, BASE, PAY_A, now).await.unwrap();
    store
        .set_payout_address(a, SEPOLIA, PAY_A, now)
        .await
        .unwrap();
    let moved = store.set_payout_address(a, BASE, PAY_B, now).await.unwrap();
    assert_eq!(moved.address, PAY_B);
    let mine = store.payout_addresses(a).await.unwrap();
    assert_eq!(
        mine.iter()
            .map(|p| (p.network.as_str(), p.address.as_str()))
            .collect::<Vec<_>>(),
        [(BASE, PAY_B), (SEPOLIA, PAY_A)]
    );
    assert!(store.payout_addresses(b).await.unwrap().is_empty());
    assert!(!store.remove_payout_address(b, BASE).await.unwrap());
    assert!(store.remove_payout_address(a, BASE).await.unwrap());
    assert_eq!(store.payout_addresses(a).await.unwrap().len(), 1);
}

pub async fn resources_version_and_stay_scoped(store: Arc<dyn Store>) {
    let a = TenantScope::trusted(tenant(&store, "Versions A").await);
    let b = TenantScope::trusted(tenant(&store, "Versions B").await);
    let created = store
        .create_resource(new_resource(
            a.tenant_id(),
            "https://api.example/v",
            ResourceStatus::Draft,
        ))
        .await
        .unwrap();
    assert_eq!(created.current.version, 1);
    assert_eq!(created.health, ResourceHealth::Unknown);
    assert!(store.find_resource(b, created.id).await.unwrap().is_none());
    assert!(
        store
            .resource_versions(b, created.id)
            .await
            .unwrap()
            .is_empty()
    );
    let change = |expected, spec: Option<VersionSpec>| ResourceChange {
        metadata: metadata("Renamed", "now with words", &["x"]),
        spec,
        search_fields: String::new(),
        expected_version: expected,
        at: Utc::now(),
    };
    assert!(
        store
            .change_resource(b, created.id, change(1, None))
            .await
            .unwrap()
            .is_none(),
        "another tenant's change finds nothing"
    );
    let renamed = store
        .change_resource(a, created.id, change(1, None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (renamed.current.version, renamed.metadata.name.as_str()),
        (1, "Renamed")
    );
    let repriced = store
        .change_resource(a, created.id, change(1, Some(spec(BASE, PAY_A, 2000))))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(repriced.current.version, 2);
    assert_eq!(
        repriced.current.spec.accepts[0].amount,
        Amount::from_atomic(2000)
    );
    let stale = store
        .change_resource(a, created.id, change(1, Some(spec(BASE, PAY_A, 3000))))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), ErrorCode::Conflict);
    let versions = store.resource_versions(a, created.id).await.unwrap();
    assert_eq!(versions.len(), 2);
    assert!(versions[0].superseded_at.is_some() && versions[1].superseded_at.is_none());
    assert_eq!(
        versions[0].spec.accepts[0].amount,
        Amount::from_atomic(1000)
    );

    let now = Utc::now();
    assert!(
        store
            .set_resource_status(b, created.id, ResourceStatus::Archived, now)
            .await
            .unwrap()
            .is_none()
    );
    let archived = store
        .set_resource_status(a, created.id, ResourceStatus::Archived, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(archived.status, ResourceStatus::Archived);
    let revive = store
        .set_resource_status(a, created.id, ResourceStatus::Published, now)
        .await
        .unwrap_err();
    assert_eq!(revive.code(), ErrorCode::ResourceNotPublishable);
    let edit = store
        .change_resource(a, created.id, change(2, None))
        .await
        .unwrap_err();
    assert_eq!(edit.code(), ErrorCode::Conflict);
}

pub async fn one_live_listing_per_tenant_and_key(store: Arc<dyn Store>) {
    let a = tenant(&store, "Listing A").await;
    let b = tenant(&store, "Listing B").await;
    let url = "https://api.example/dup";
    let first = store
        .create_resource(new_resource(a, url, ResourceStatus::Draft))
        .await
        .unwrap();
    let again = store
        .create_resource(new_resource(a, url, ResourceStatus::Draft))
        .await
        .unwrap_err();
    assert_eq!(again.code(), ErrorCode::Conflict);
    // Another tenant, or another method, is another listing.
    store
        .create_resource(new_resource(b, url, ResourceStatus::Draft))
        .await
        .unwrap();
    let mut post = new_resource(a, url, ResourceStatus::Draft);
    post.method = Some("POST".into());
    store.create_resource(post).await.unwrap();
    store
        .set_resource_status(
            TenantScope::trusted(a),
            first.id,
            ResourceStatus::Archived,
            Utc::now(),
        )
        .await
        .unwrap();
    store
        .create_resource(new_resource(a, url, ResourceStatus::Draft))
        .await
        .expect("an archived listing steps aside");
    let listed = store
        .list_resources(
            TenantScope::trusted(a),
            Some(ResourceStatus::Draft),
            PageRequest::first(10).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 2);
}

pub async fn catalog_lists_searches_and_filters(store: Arc<dyn Store>) {
    let a = tenant(&store, "Catalog A").await;
    let b = tenant(&store, "Catalog B").await;
    let mut weather = new_resource(a, "https://w.example/weather", ResourceStatus::Published);
    weather.metadata = metadata(
        "Weather forecast",
        "Hourly forecast for any city",
        &["climate"],
    );
    weather.search_fields = "city zip code".into();
    let weather = store.create_resource(weather).await.unwrap();
    let mut news = new_resource(b, "https://n.example/news", ResourceStatus::Published);
    news.metadata = metadata("Headlines", "Top stories, with weather summary", &["news"]);
    news.spec = spec(SEPOLIA, PAY_B, 5);
    let news = store.create_resource(news).await.unwrap();
    let mut draft = new_resource(a, "https://w.example/draft", ResourceStatus::Draft);
    draft.metadata = metadata("Weather draft", "not listed", &[]);
    store.create_resource(draft).await.unwrap();
    let mut tool = new_resource(b, "https://m.example/mcp", ResourceStatus::Published);
    tool.kind = ResourceKind::Mcp;
    tool.method = None;
    tool.tool = Some("stock_quote".into());
    tool.metadata = metadata("Stock quotes", "Quotes by ticker", &["finance"]);
    let tool = store.create_resource(tool).await.unwrap();

    let all = store
        .catalog_list(&CatalogFilter::default(), 0, 100)
        .await
        .unwrap();
    // Other tests' tenants may list too (shared databases are per test, but be strict only
    // about what this test made).
    for id in [weather.id, news.id, tool.id] {
        assert!(ids(&all.items).contains(&id));
    }
    assert_eq!(all.total, all.items.len() as u64);
    assert!(
        all.items
            .iter()
            .all(|r| r.status == ResourceStatus::Published)
    );
    let page = store
        .catalog_list(&CatalogFilter::default(), 1, 1)
        .await
        .unwrap();
    assert_eq!((page.items.len(), page.total), (1, all.total));
    assert_eq!(page.items[0].id, all.items[1].id);

    let filtered = |filter: CatalogFilter| {
        let store = store.clone();
        async move { ids(&store.catalog_list(&filter, 0, 100).await.unwrap().items) }
    };
    assert_eq!(
        filtered(CatalogFilter {
            network: Some(SEPOLIA.into()),
            ..Default::default()
        })
        .await,
        [news.id]
    );
    assert_eq!(
        filtered(CatalogFilter {
            pay_to: Some(PAY_B.to_lowercase()),
            ..Default::default()
        })
        .await,
        [news.id]
    );
    assert_eq!(
        filtered(CatalogFilter {
            kind: Some(ResourceKind::Mcp),
            ..Default::default()
        })
        .await,
        [tool.id]
    );
    assert!(
        filtered(CatalogFilter {
            scheme: Some("upto".into()),
            ..Default::default()
        })
        .await
        .is_empty()
    );
    assert!(
        filtered(CatalogFilter {
            extensions: vec!["sign-in-with-x".into()],
            ..Default::default()
        })
        .await
        .is_empty()
    );
    assert_eq!(
        filtered(CatalogFilter {
            extensions: vec!["bazaar".into()],
            network: Some(SEPOLIA.into()),
            ..Default::default()
        })
        .await,
        [news.id]
    );

    let search = |query: &'static str, filter: CatalogFilter, offset: u64, limit: u32| {
        let store = store.clone();
        async move {
            ids(&store
                .catalog_search(query, &filter, offset, limit)
                .await
                .unwrap())
        }
    };
    // The name outranks a mention in a description; drafts never show.
    assert_eq!(
        search("weather", CatalogFilter::default(), 0, 10).await,
        [weather.id, news.id]
    );
    // Stemming, schema field names, tags; any word may match.
    assert_eq!(
        search("forecasts", CatalogFilter::default(), 0, 10).await,
        [weather.id]
    );
    assert_eq!(
        search("zip", CatalogFilter::default(), 0, 10).await,
        [weather.id]
    );
    assert_eq!(
        search("finance", CatalogFilter::default(), 0, 10).await,
        [tool.id]
    );
    assert_eq!(
        search(
            "stock OR nothing-at-all \"'",
            CatalogFilter::default(),
            0,
            10
        )
        .await,
        [tool.id]
    );
    // More than `limit` answers one extra; the offset pages on.
    assert_eq!(
        search("weather", CatalogFilter::default(), 0, 1).await,
        [weather.id, news.id]
    );
    assert_eq!(
        search("weather", CatalogFilter::default(), 1, 1).await,
        [news.id]
    );
    assert_eq!(
        search(
            "weather",
            CatalogFilter {
                network: Some(SEPOLIA.into()),
                ..Default::default()
            },
            0,
            10
        )
        .await,
        [news.id]
    );
    assert!(
        search("   ", CatalogFilter::default(), 0, 10)
            .await
            .is_empty()
    );
    assert!(
        search("xylophone", CatalogFilter::default(), 0, 10)
            .await
            .is_empty()
    );

    // A renamed resource is found by its new name only.
    store
        .change_resource(
            TenantScope::trusted(a),
            weather.id,
            ResourceChange {
                metadata: metadata("Rain radar", "Radar images", &[]),
                spec: None,
                search_fields: String::new(),
                expected_version: 1,
                at: Utc::now(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        search("radar", CatalogFilter::default(), 0, 10).await,
        [weather.id]
    );
    assert_eq!(
        search("forecast", CatalogFilter::default(), 0, 10).await,
        Vec::<ResourceId>::new()
    );
}

pub async fn learning_keeps_one_listing_per_key(store: Arc<dyn Store>) {
    let a = tenant(&store, "Learner A").await;
    let learned = |amount: u128, name: &str| LearnedResource {
        tenant_id: a,
        kind: ResourceKind::Http,
        url: "https://third.example/data".into(),
        method: Some("GET".into()),
        tool: None,
        metadata: metadata(name, "learned", &[]),
        spec: spec(BASE, PAY_A, amount),
        search_fields: String::new(),
        at: Utc::now(),
    };
    let first = store.learn_resource(learned(10, "Data")).await.unwrap();
    assert_eq!(
        (first.origin, first.status, first.current.version),
        (ResourceOrigin::Bazaar, ResourceStatus::Published, 1)
    );
    let same = store.learn_resource(learned(10, "Data v2")).await.unwrap();
    assert_eq!(
        (same.id, same.current.version, same.metadata.name.as_str()),
        (first.id, 1, "Data v2")
    );
    let repriced = store.learn_resource(learned(20, "Data v2")).await.unwrap();
    assert_eq!((repriced.id, repriced.current.version), (first.id, 2));

    // Concurrent first payments for a new resource make one listing.
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let store = store.clone();
        let mut l = learned(10, "Race");
        l.url = "https://third.example/race".into();
        tasks.push(tokio::spawn(async move { store.learn_resource(l).await }));
    }
    let mut race_ids = Vec::new();
    for task in tasks {
        race_ids.push(task.await.unwrap().unwrap().id);
    }
    race_ids.dedup();
    assert_eq!(race_ids.len(), 1);

    // A merchant's own listing with the same key is not overwritten by what payments say.
    let own = store
        .create_resource(new_resource(
            a,
            "https://third.example/own",
            ResourceStatus::Published,
        ))
        .await
        .unwrap();
    let mut l = learned(99, "Hijack");
    l.url = "https://third.example/own".into();
    let answered = store.learn_resource(l).await.unwrap();
    assert_eq!(answered.id, own.id);
    assert_eq!(answered.metadata.name, "Resource");
    assert_eq!(answered.current.version, 1);
}

pub async fn probes_mark_health_and_hide_late(store: Arc<dyn Store>) {
    let a = tenant(&store, "Probed A").await;
    let resource = store
        .create_resource(new_resource(
            a,
            "https://p.example/x",
            ResourceStatus::Published,
        ))
        .await
        .unwrap();
    let now = Utc::now();
    let due = store.resources_due_for_probe(now, 1000).await.unwrap();
    assert!(ids(&due).contains(&resource.id));
    let outcome = |healthy: bool, at, limit| ProbeOutcome {
        healthy,
        detail: (!healthy).then(|| "answered 200 instead of 402".to_owned()),
        at,
        hide_if_unhealthy_since: limit,
    };
    // Unhealthy, but not for long enough: listed still.
    store
        .record_probe(resource.id, outcome(false, now, now - Duration::hours(1)))
        .await
        .unwrap();
    let r = store.get_resource(resource.id).await.unwrap().unwrap();
    assert_eq!(r.health, ResourceHealth::Unhealthy);
    assert_eq!(
        r.health_detail.as_deref(),
        Some("answered 200 instead of 402")
    );
    assert!(!r.hidden);
    assert!(
        !ids(&store
            .resources_due_for_probe(now - Duration::seconds(1), 1000)
            .await
            .unwrap())
        .contains(&resource.id),
        "just probed"
    );
    // Still unhealthy two hours on: hidden from the catalog, not from its merchant.
    let later = now + Duration::hours(2);
    store
        .record_probe(
            resource.id,
            outcome(false, later, later - Duration::hours(1)),
        )
        .await
        .unwrap();
    let r = store.get_resource(resource.id).await.unwrap().unwrap();
    assert!(r.hidden);
    let since = r
        .unhealthy_since
        .expect("unhealthy since the first failed probe");
    assert!(since <= now && since > now - Duration::seconds(1));
    let listed = store
        .catalog_list(&CatalogFilter::default(), 0, 100)
        .await
        .unwrap();
    assert!(!ids(&listed.items).contains(&resource.id));
    assert!(
        store
            .find_resource(TenantScope::trusted(a), resource.id)
            .await
            .unwrap()
            .is_some()
    );
    // A passing probe brings it back.
    store
        .record_probe(
            resource.id,
            outcome(true, later, later - Duration::hours(1)),
        )
        .await
        .unwrap();
    let r = store.get_resource(resource.id).await.unwrap().unwrap();
    assert!(!r.hidden && r.unhealthy_since.is_none());
    assert_eq!(r.health, ResourceHealth::Healthy);
}

/// Text and JSON that one backend would keep and the other refuse (NUL: PostgreSQL's `text`
/// and `jsonb` refuse it, SQLite keeps it) are refused by both, before any SQL, with
/// `invalid_input` naming the field; what both keep alike (other control characters inside
/// JSON strings, multi-line descriptions, any script) is read back as written.
pub async fn resources_refuse_text_the_stores_would_not_keep_alike(store: Arc<dyn Store>) {
    let a = tenant(&store, "Text A").await;
    let scope = TenantScope::trusted(a);
    let nul_spec = |field: &str| {
        let mut spec = spec(BASE, PAY_A, 1000);
        let bad = serde_json::json!({"type": "object", "description": "a\u{0}b"});
        match field {
            "inputSchema" => spec.input_schema = Some(bad),
            "outputExample" => spec.output_example = Some(serde_json::json!({"k\u{0}": 1})),
            "bazaar" => spec.bazaar = Some(serde_json::json!({"info": ["\u{0}"]})),
            "an accepted asset's EIP-712 name" => spec.accepts[0].eip712_name = "USD\u{0}C".into(),
            "the resource's terms" => {
                spec.price = PriceSpec::Usd {
                    usd: "0.01\u{0}".into(),
                }
            }
            _ => unreachable!("{field}"),
        }
        spec
    };
    type Break = fn(&mut NewResource);
    let breaks: Vec<(Break, &str)> = vec![
        (|r| r.metadata.name = "Weather\u{0}".into(), "name"),
        (|r| r.metadata.name = "Weather\tnow".into(), "name"),
        (|r| r.metadata.description = "a\u{0}".into(), "description"),
        (|r| r.metadata.description = "a\r\nb".into(), "description"),
        (
            |r| r.metadata.tags = vec!["ok".into(), "b\u{7}".into()],
            "a tag",
        ),
        (
            |r| r.metadata.mime_type = Some("text/\u{0}".into()),
            "mimeType",
        ),
        (|r| r.url = "https://api.example/\u{0}".into(), "url"),
        (
            |r| {
                r.kind = ResourceKind::Mcp;
                r.method = None;
                r.tool = Some("tool\u{0}".into());
            },
            "toolName",
        ),
    ];
    for (break_it, field) in breaks {
        let mut resource = new_resource(a, "https://api.example/text", ResourceStatus::Draft);
        break_it(&mut resource);
        let err = store.create_resource(resource).await.unwrap_err();
        assert_eq!(
            err.code(),
            ErrorCode::InvalidInput,
            "{field}: {}",
            err.message()
        );
        assert!(err.message().contains(field), "{field}: {}", err.message());
    }
    for field in [
        "inputSchema",
        "outputExample",
        "bazaar",
        "an accepted asset's EIP-712 name",
        "the resource's terms",
    ] {
        let mut resource = new_resource(a, "https://api.example/text", ResourceStatus::Draft);
        resource.spec = nul_spec(field);
        let err = store.create_resource(resource).await.unwrap_err();
        assert_eq!(
            err.code(),
            ErrorCode::InvalidInput,
            "{field}: {}",
            err.message()
        );
        assert!(err.message().contains(field), "{field}: {}", err.message());
    }
    // Nesting is bounded too.
    let mut deep = serde_json::json!(1);
    for _ in 0..65 {
        deep = serde_json::json!([deep]);
    }
    let mut resource = new_resource(a, "https://api.example/text", ResourceStatus::Draft);
    resource.spec.output_example = Some(deep);
    let err = store.create_resource(resource).await.unwrap_err();
    assert!(err.message().contains("outputExample"), "{}", err.message());
    assert!(
        store
            .list_resources(scope, None, PageRequest::first(10).unwrap())
            .await
            .unwrap()
            .items
            .is_empty(),
        "nothing refused was stored"
    );

    // What both keep alike comes back as written.
    let mut resource = new_resource(a, "https://api.example/text", ResourceStatus::Draft);
    resource.metadata.name = "Météo 東京 🌦".into();
    resource.metadata.description = "line one\n\tline two".into();
    resource.spec.output_example =
        Some(serde_json::json!({"note": "tab\there, bell\u{7}, newline\n", "ключ": "значение"}));
    let created = store.create_resource(resource.clone()).await.unwrap();
    assert_eq!(created.metadata, resource.metadata);
    assert_eq!(created.current.spec, resource.spec);
    let read = store
        .find_resource(scope, created.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.metadata, resource.metadata);
    assert_eq!(read.current.spec, resource.spec);

    // A change and a learned listing are checked alike.
    let mut changed = spec(BASE, PAY_A, 2000);
    changed.input_schema = Some(serde_json::json!({"title": "\u{0}"}));
    let err = store
        .change_resource(
            scope,
            created.id,
            ResourceChange {
                metadata: created.metadata.clone(),
                spec: Some(changed),
                search_fields: String::new(),
                expected_version: 1,
                at: Utc::now(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput, "{}", err.message());
    assert_eq!(
        store
            .resource_versions(scope, created.id)
            .await
            .unwrap()
            .len(),
        1
    );
    let mut learned_spec = spec(BASE, PAY_A, 10);
    learned_spec.bazaar = Some(serde_json::json!({"info": {"input": {"toolName": "x\u{0}"}}}));
    let err = store
        .learn_resource(LearnedResource {
            tenant_id: a,
            kind: ResourceKind::Http,
            url: "https://third.example/text".into(),
            method: Some("GET".into()),
            tool: None,
            metadata: metadata("Learned", "", &[]),
            spec: learned_spec,
            search_fields: String::new(),
            at: Utc::now(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput, "{}", err.message());
    assert!(err.message().contains("bazaar"), "{}", err.message());
}

/// A write naming a tenant that does not exist is `not_found` (a foreign key, mapped by each
/// store), and stores nothing.
pub async fn registry_writes_for_a_tenant_that_does_not_exist_are_not_found(store: Arc<dyn Store>) {
    let missing = TenantId::new();
    let scope = TenantScope::trusted(missing);
    let err = store
        .set_payout_address(scope, BASE, PAY_A, Utc::now())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound, "{}", err.message());
    assert!(err.message().contains("tenant"), "{}", err.message());
    let err = store
        .create_resource(new_resource(
            missing,
            "https://api.example/nobody",
            ResourceStatus::Draft,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound, "{}", err.message());
    assert!(err.message().contains("tenant"), "{}", err.message());
    let err = store
        .learn_resource(LearnedResource {
            tenant_id: missing,
            kind: ResourceKind::Http,
            url: "https://third.example/nobody".into(),
            method: Some("GET".into()),
            tool: None,
            metadata: metadata("Nobody", "", &[]),
            spec: spec(BASE, PAY_A, 10),
            search_fields: String::new(),
            at: Utc::now(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound, "{}", err.message());
    assert!(store.payout_addresses(scope).await.unwrap().is_empty());
    assert!(
        store
            .list_resources(scope, None, PageRequest::first(10).unwrap())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}
