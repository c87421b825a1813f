//! Rate limits on the public routes, on both backend pairs, and shared by instances through
//! Redis: per client address without a key, per key and per tenant with one, and harder per
//! address on refused keys. Each refusal is `429 rate_limited` with `Retry-After`.

use std::sync::Arc;

use purser::app::{self, Platform};
use purser::config::Config;
use purser_coord::RedisCoordination;
use purser_domain::auth::{Role, mint_api_key};
use purser_domain::coord::Coordination;
use purser_domain::id::TenantId;
use purser_domain::repo::Store;
use purser_domain::tenant::{NewTenant, TenantKind, TenantName};
use purser_store_postgres::{PgStore, PgStoreOptions};
use purser_testkit::postgres::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Backends, TestApp, on_both_backend_pairs};

on_both_backend_pairs!(
    anonymous_requests_are_limited_per_address,
    keys_and_tenants_have_limits_of_their_own,
    refused_keys_are_limited_harder_per_address,
);

fn limited(per_address: u64, per_key: u64, per_tenant: u64, failed_auth: u64) -> Config {
    let mut config = Config::default();
    config.rate_limits.per_address_per_minute = per_address;
    config.rate_limits.per_key_per_minute = per_key;
    config.rate_limits.per_tenant_per_minute = per_tenant;
    config.rate_limits.failed_auth_per_address_per_minute = failed_auth;
    config
}

/// Asserts `response` is the 429 envelope with a `Retry-After` of at least a second.
async fn assert_limited(response: reqwest::Response) {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
}

async fn tenant_with_keys(
    store: &Arc<dyn Store>,
    name: &str,
    keys: usize,
) -> (TenantId, Vec<String>) {
    let tenant = store
        .create_tenant(NewTenant::new(
            TenantName::parse(name).unwrap(),
            TenantKind::Merchant,
        ))
        .await
        .unwrap()
        .id;
    let mut tokens = Vec::new();
    for _ in 0..keys {
        let (record, token) = mint_api_key(Some(tenant), Role::TenantAdmin, "limits").unwrap();
        store.insert_api_key(record).await.unwrap();
        tokens.push(token.expose().to_owned());
    }
    (tenant, tokens)
}

async fn anonymous_requests_are_limited_per_address(backends: Backends) {
    let app = TestApp::start_with(backends, limited(5, 0, 0, 0)).await;
    let discovery = app.url("/facilitator/discovery/resources");
    for _ in 0..5 {
        let response = app.client.get(&discovery).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_limited(app.client.get(&discovery).send().await.unwrap()).await;
    // Every anonymous route shares the address's budget: GraphQL too.
    let response = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_limited(response).await;
    // Probes are never limited.
    for _ in 0..10 {
        let health = app.client.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(health.status(), StatusCode::OK);
    }
    // A request with a key is counted against the key, not the address.
    let (status, body) = app
        .graphql(Some(&app.operator_token), "{ __typename }", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["__typename"], "Query", "{body}");
}

async fn keys_and_tenants_have_limits_of_their_own(backends: Backends) {
    let app = TestApp::start_with(backends, limited(0, 4, 6, 0)).await;
    let (_, keys) = tenant_with_keys(&app.store, "Rate Limited Co", 2).await;
    let (_, others) = tenant_with_keys(&app.store, "Unlimited Co", 1).await;
    let ask = |token: &str| {
        app.client
            .post(app.url("/graphql"))
            .bearer_auth(token)
            .json(&json!({ "query": "{ __typename }" }))
            .send()
    };
    for _ in 0..4 {
        assert_eq!(ask(&keys[0]).await.unwrap().status(), StatusCode::OK);
    }
    assert_limited(ask(&keys[0]).await.unwrap()).await;
    // The tenant's other key has two left of the tenant's six.
    for _ in 0..2 {
        assert_eq!(ask(&keys[1]).await.unwrap().status(), StatusCode::OK);
    }
    assert_limited(ask(&keys[1]).await.unwrap()).await;
    // Another tenant is untouched.
    assert_eq!(ask(&others[0]).await.unwrap().status(), StatusCode::OK);
    // Ingestion is limited like every route.
    let events = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(&keys[0])
        .header("content-type", "application/cloudevents+json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_limited(events).await;
}

async fn refused_keys_are_limited_harder_per_address(backends: Backends) {
    let app = TestApp::start_with(backends, limited(1000, 0, 0, 3)).await;
    let forged = "psk_live_0000000000000000000000000000000000000000000000000000";
    for _ in 0..3 {
        let response = app
            .client
            .post(app.url("/graphql"))
            .bearer_auth(forged)
            .json(&json!({ "query": "{ __typename }" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let response = app
        .client
        .post(app.url("/facilitator/settle"))
        .bearer_auth(forged)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_limited(response).await;
    // A valid key still works from that address.
    let data = app
        .graphql_ok(&app.operator_token, "{ __typename }", json!({}))
        .await;
    assert_eq!(data["__typename"], "Query");
}

/// Two instances on one PostgreSQL and one Redis share each limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_share_their_limits_through_redis() {
    let database = TestDatabase::create().await;
    let pg = PgStore::connect(database.url(), &PgStoreOptions::default())
        .await
        .unwrap();
    pg.migrate().await.unwrap();
    let store: Arc<dyn Store> = Arc::new(pg);
    let prefix = format!("{}:", purser_testkit::unique_name("purser_limits"));
    let config = limited(6, 0, 0, 0);
    let mut bases = Vec::new();
    let mut stops = Vec::new();
    for _ in 0..2 {
        let coordination: Arc<dyn Coordination> = Arc::new(
            RedisCoordination::connect(&purser_testkit::redis_url(), &prefix)
                .await
                .unwrap(),
        );
        let platform = Platform::from_parts(
            store.clone(),
            coordination,
            purser_chain::rails::Rails::default(),
            &config,
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        bases.push(format!("http://{}", listener.local_addr().unwrap()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server_config = config.clone();
        tokio::spawn(async move {
            app::serve(&server_config, platform, listener, async move {
                let _ = stopped.await;
            })
            .await
        });
        stops.push(stop);
    }
    let client = purser_testkit::http_client();
    for round in 0..3 {
        for base in &bases {
            let response = client
                .get(format!("{base}/facilitator/discovery/resources"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK, "round {round}");
        }
    }
    for base in &bases {
        let response = client
            .get(format!("{base}/facilitator/discovery/resources"))
            .send()
            .await
            .unwrap();
        assert_limited(response).await;
    }
    drop(stops);
}

/// The gateway's own listener is guarded like the main one: rate limits per address, and URL
/// limits with the envelope.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_listener_is_limited_too() {
    use purser_gateway::GatewayRoute;
    let mut config = limited(3, 0, 0, 0);
    config.gateway.routes = vec![GatewayRoute {
        host: None,
        path: "/paid/*".into(),
        // Nothing listens on the discard port: nothing here reaches an upstream.
        upstream: "http://127.0.0.1:9".into(),
        resource: purser_domain::id::ResourceId::new().to_string(),
        settle: Default::default(),
        timeout_seconds: Some(2),
        upstream_http2: false,
    }];
    let app = TestApp::start_with(Backends::Embedded, config.clone()).await;
    let proxy = app.platform.proxy(&config).unwrap().expect("a gateway");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(purser_http::serve::serve(
        listener,
        proxy,
        std::future::pending(),
        std::time::Duration::from_secs(1),
        config.server.connection_limits(),
    ));
    let long = format!("{gateway}/paid/{}", "a".repeat(10 * 1024));
    let response = app.client.get(long).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::URI_TOO_LONG);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "uri_too_long");
    // The refused URL was not counted: three requests pass the limit of three.
    for _ in 0..3 {
        let response = app
            .client
            .get(format!("{gateway}/paid/thing"))
            .send()
            .await
            .unwrap();
        assert_ne!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    let response = app
        .client
        .get(format!("{gateway}/paid/thing"))
        .send()
        .await
        .unwrap();
    assert_limited(response).await;
}
