//! The freshness prober against a local server answering good, wrong and missing 402s.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::get;
use chrono::Utc;
use purser_domain::auth::TenantScope;
use purser_domain::id::ResourceId;
use purser_domain::money::Amount;
use purser_domain::registry::{
    Accept, CatalogFilter, NewResource, PriceSpec, ResourceHealth, ResourceKind, ResourceMetadata,
    ResourceOrigin, ResourceStatus, VersionSpec,
};
use purser_domain::repo::Store;
use purser_domain::tenant::{NewTenant, TenantKind, TenantName};
use purser_registry::challenge::{ChallengeRequest, payment_required};
use purser_registry::{ProbeConfig, Prober};
use purser_x402::header::{PAYMENT_REQUIRED, encode_payment_required};

fn accept(amount: u128) -> Accept {
    Accept {
        scheme: "exact".into(),
        network: "eip155:84532".into(),
        asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e".into(),
        amount: Amount::from_atomic(amount),
        pay_to: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C".into(),
        eip712_name: "USDC".into(),
        eip712_version: "2".into(),
        extra: None,
    }
}

fn new_resource(tenant: purser_domain::id::TenantId, url: String, amount: u128) -> NewResource {
    NewResource {
        id: ResourceId::new(),
        tenant_id: tenant,
        origin: ResourceOrigin::Merchant,
        kind: ResourceKind::Http,
        url,
        method: Some("GET".into()),
        tool: None,
        metadata: ResourceMetadata {
            name: "Probed".into(),
            ..Default::default()
        },
        status: ResourceStatus::Published,
        spec: VersionSpec {
            price: PriceSpec::Atomic {
                amount: Amount::from_atomic(amount),
            },
            accepts: vec![accept(amount)],
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
        search_fields: String::new(),
        at: Utc::now(),
    }
}

/// A server whose `/items/:id` answers the 402 `challenge` header, `/free` a 200, and
/// `/broken` a 402 without a header.
async fn serve(challenge: String) -> String {
    let app = Router::new()
        .route(
            "/items/{id}",
            get(move || {
                let challenge = challenge.clone();
                async move {
                    let mut headers = HeaderMap::new();
                    headers.insert(PAYMENT_REQUIRED, HeaderValue::from_str(&challenge).unwrap());
                    (StatusCode::PAYMENT_REQUIRED, headers, "{}")
                }
            }),
        )
        .route("/free", get(|| async { "free" }))
        .route(
            "/broken",
            get(|| async { (StatusCode::PAYMENT_REQUIRED, "pay up") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_mark_listings_by_what_their_urls_answer() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = purser_store_sqlite::SqliteStore::open_dir(dir.path(), &Default::default())
        .await
        .unwrap();
    sqlite.migrate().await.unwrap();
    let store: Arc<dyn Store> = Arc::new(sqlite);
    let tenant = store
        .create_tenant(NewTenant::new(
            TenantName::parse("Probed").unwrap(),
            TenantKind::Merchant,
        ))
        .await
        .unwrap()
        .id;

    // The server's 402 is what the registry builds for a 10,000-unit listing.
    let template = store
        .create_resource(new_resource(
            tenant,
            "https://placeholder.example/items/:id".into(),
            10_000,
        ))
        .await
        .unwrap();
    let challenge = payment_required(&template, &ChallengeRequest::default()).unwrap();
    let base = serve(encode_payment_required(&challenge)).await;
    store
        .set_resource_status(
            TenantScope::trusted(tenant),
            template.id,
            ResourceStatus::Archived,
            Utc::now(),
        )
        .await
        .unwrap();

    let good = store
        .create_resource(new_resource(tenant, format!("{base}/items/:id"), 10_000))
        .await
        .unwrap();
    let repriced = store
        .create_resource(new_resource(
            tenant,
            format!("{base}/items/:id?v=2"),
            20_000,
        ))
        .await
        .unwrap();
    let free = store
        .create_resource(new_resource(tenant, format!("{base}/free"), 10_000))
        .await
        .unwrap();
    let broken = store
        .create_resource(new_resource(tenant, format!("{base}/broken"), 10_000))
        .await
        .unwrap();

    // By default, loopback is off limits: nothing is requested.
    let strict = ProbeConfig::default();
    let refused = purser_registry::prober::probe(&good, &strict)
        .await
        .unwrap_err();
    assert!(refused.contains("not a public address"), "{refused}");

    let config = ProbeConfig {
        allow_private_addresses: true,
        timeout: Duration::from_secs(5),
        hide_after: Duration::ZERO,
        interval: Duration::from_secs(3600),
        ..ProbeConfig::default()
    };
    let prober = Prober::new(store.clone(), config);
    assert_eq!(prober.probe_due().await.unwrap(), 4);
    // Each was probed just now: none is due again.
    assert_eq!(prober.probe_due().await.unwrap(), 0);

    let health = |id| {
        let store = store.clone();
        async move {
            let r = store.get_resource(id).await.unwrap().unwrap();
            (r.health, r.health_detail.unwrap_or_default())
        }
    };
    assert_eq!(
        health(good.id).await,
        (ResourceHealth::Healthy, String::new())
    );
    let (h, detail) = health(repriced.id).await;
    assert_eq!(h, ResourceHealth::Unhealthy);
    assert!(detail.contains("does not offer 20000"), "{detail}");
    let (h, detail) = health(free.id).await;
    assert_eq!(h, ResourceHealth::Unhealthy);
    assert!(detail.contains("answered 200"), "{detail}");
    let (h, detail) = health(broken.id).await;
    assert_eq!(h, ResourceHealth::Unhealthy);
    assert!(detail.contains("no PAYMENT-REQUIRED"), "{detail}");

    // With `hide_after` zero, unhealthy listings leave the catalog at their first failure.
    let listed: Vec<ResourceId> = store
        .catalog_list(&CatalogFilter::default(), 0, 100)
        .await
        .unwrap()
        .items
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(listed, [good.id]);
}
