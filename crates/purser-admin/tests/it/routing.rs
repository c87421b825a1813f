//! Routing policies through the admin GraphQL API: per tenant, checked, and refused across
//! tenants; the router's live view.

use purser_domain::auth::Role;
use serde_json::json;

use crate::api::TestApi;

const SET: &str =
    "mutation($tenant: ID, $strategy: RoutingStrategy!, $weight: Int = 50, $bps: Int) {
    setRoutingPolicy(input: { tenantId: $tenant, strategy: $strategy, costWeightPercent: $weight,
                              maxFeeRatioBps: $bps }) {
        strategy costWeightPercent maxFeeRatioBps
    }
}";

const GET: &str = "query($tenant: ID) { routingPolicy(tenantId: $tenant) {
    strategy costWeightPercent maxFeeRatioBps
} }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_policies_are_set_per_tenant_and_checked() {
    let api = TestApi::start().await;
    let acme = api.tenant("Routing Acme").await;
    let other = api.tenant("Routing Other").await;
    let admin = api.key(Some(acme), Role::TenantAdmin).await;
    let reader = api.key(Some(acme), Role::TenantRead).await;
    let stranger = api.key(Some(other), Role::TenantAdmin).await;

    // Never set: the default.
    let data = api.ok(&reader, GET, json!({})).await;
    assert_eq!(
        data["routingPolicy"],
        json!({"strategy": "CHEAPEST", "costWeightPercent": 50, "maxFeeRatioBps": null})
    );
    let data = api
        .ok(
            &admin,
            SET,
            json!({"strategy": "WEIGHTED", "weight": 80, "bps": 300}),
        )
        .await;
    assert_eq!(
        data["setRoutingPolicy"],
        json!({"strategy": "WEIGHTED", "costWeightPercent": 80, "maxFeeRatioBps": 300})
    );
    assert_eq!(
        api.ok(&reader, GET, json!({})).await["routingPolicy"]["strategy"],
        "WEIGHTED"
    );
    // Another tenant sees its own default, and cannot read or change Acme's.
    assert_eq!(
        api.ok(&stranger, GET, json!({})).await["routingPolicy"]["strategy"],
        "CHEAPEST"
    );
    let acme_id = acme.to_string();
    assert_eq!(
        api.error_code(&stranger, GET, json!({"tenant": acme_id}))
            .await,
        "forbidden"
    );
    assert_eq!(
        api.error_code(
            &stranger,
            SET,
            json!({"tenant": acme_id, "strategy": "PINNED"})
        )
        .await,
        "forbidden"
    );
    // A reader cannot write; out-of-range values are refused and change nothing.
    assert_eq!(
        api.error_code(&reader, SET, json!({"strategy": "PINNED"}))
            .await,
        "forbidden"
    );
    for (weight, bps) in [(101, 100), (50, 0), (50, 10_001), (-1, 100)] {
        assert_eq!(
            api.error_code(
                &admin,
                SET,
                json!({"strategy": "FASTEST", "weight": weight, "bps": bps})
            )
            .await,
            "invalid_input",
            "{weight} {bps}"
        );
    }
    assert_eq!(
        api.ok(&reader, GET, json!({})).await["routingPolicy"]["costWeightPercent"],
        80
    );
    // An operator names the tenant.
    let operator = api.key(None, Role::Operator).await;
    let data = api
        .ok(
            &operator,
            SET,
            json!({"tenant": acme_id, "strategy": "PINNED"}),
        )
        .await;
    assert_eq!(data["setRoutingPolicy"]["strategy"], "PINNED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routers_view_answers_without_rails() {
    let api = TestApi::start().await;
    let tenant = api.tenant("Routing View").await;
    let reader = api.key(Some(tenant), Role::TenantRead).await;
    // No rails here: an empty view, but answered.
    let data = api
        .ok(
            &reader,
            "{ railQuotes { network } priceFeeds { gasToken } }",
            json!({}),
        )
        .await;
    assert_eq!(data, json!({"railQuotes": [], "priceFeeds": []}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_argument_the_caller_left_null_is_bad_input_not_internal() {
    let api = TestApi::start().await;
    let tenant = api.tenant("Routing Null").await;
    let admin = api.key(Some(tenant), Role::TenantAdmin).await;
    // `$weight` is nullable and omitted, but fills the non-null `costWeightPercent`.
    let body = api
        .graphql(
            &admin,
            "mutation($weight: Int) { setRoutingPolicy(input: { strategy: PINNED,
                costWeightPercent: $weight }) { strategy } }",
            json!({}),
        )
        .await;
    let code = body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("");
    assert_eq!(code, "invalid_input", "{body}");
    assert_eq!(
        api.ok(&admin, GET, json!({})).await["routingPolicy"]["strategy"],
        "CHEAPEST",
        "nothing was written"
    );
}
