//! The registry through the admin GraphQL API: payout addresses, resources and their versions,
//! over the real router and a throwaway PostgreSQL database.

use purser_domain::auth::Role;
use serde_json::{Value, json};

use crate::api::{NETWORK, PAY_TO, TestApi, USDC};

const SET_PAYOUT: &str = "mutation($tenant: ID, $network: String!, $address: String!) {
    setPayoutAddress(input: { tenantId: $tenant, network: $network, address: $address }) {
        tenantId network address
    }
}";

const RESOURCE_FIELDS: &str = "id type url method status origin version name
    price { usd amount }
    accepts { scheme network asset amount payTo eip712Name eip712Version }
    maxTimeoutSeconds inputSchema health hidden";

fn create_resource() -> String {
    format!(
        "mutation($input: CreateResourceInput!) {{ createResource(input: $input) {{ {RESOURCE_FIELDS} }} }}"
    )
}

fn update_resource() -> String {
    format!(
        "mutation($input: UpdateResourceInput!) {{ updateResource(input: $input) {{ {RESOURCE_FIELDS} }} }}"
    )
}

const PUBLISH: &str =
    "mutation($id: ID!) { publishResource(id: $id) { id status version paymentRequired } }";

const RESOURCE: &str = "query($id: ID!) { resource(id: $id) {
    id status version paymentRequired
    versions { version supersededAt price { usd amount } accepts { amount } }
} }";

const RESOURCES: &str = "query($status: ResourceStatus) {
    resources(status: $status) { edges { node { id status } } }
}";

/// A valid draft input, to be spoiled one field at a time.
fn weather_input() -> Value {
    json!({
        "type": "HTTP",
        "url": "https://api.example.com/weather/:city",
        "name": "Weather",
        "description": "Current weather for a city",
        "tags": ["weather"],
        "inputSchema": { "type": "object", "properties": { "units": { "type": "string" } } },
        "price": { "usd": "0.01" },
        "accepts": [{ "network": NETWORK }],
    })
}

fn with(mut input: Value, key: &str, value: Value) -> Value {
    input[key] = value;
    input
}

#[tokio::test]
async fn a_tenant_admin_onboards_a_resource_end_to_end() {
    let api = TestApi::start().await;
    let tenant = api.tenant("Acme").await;
    let admin = api.key(Some(tenant), Role::TenantAdmin).await;

    let data = api
        .ok(
            &admin,
            "{ networks { network assets { address decimals symbol eip712Name eip712Version } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["networks"][0]["network"], NETWORK);
    assert_eq!(data["networks"][0]["assets"][0]["address"], USDC);
    assert_eq!(data["networks"][0]["assets"][0]["decimals"], 6);

    let data = api
        .ok(
            &admin,
            SET_PAYOUT,
            json!({ "network": NETWORK, "address": PAY_TO }),
        )
        .await;
    assert_eq!(data["setPayoutAddress"]["address"], PAY_TO);
    assert_eq!(data["setPayoutAddress"]["tenantId"], tenant.to_string());
    let data = api
        .ok(&admin, "{ payoutAddresses { network address } }", json!({}))
        .await;
    assert_eq!(
        data["payoutAddresses"],
        json!([{ "network": NETWORK, "address": PAY_TO }])
    );

    let data = api
        .ok(
            &admin,
            &create_resource(),
            json!({ "input": weather_input() }),
        )
        .await;
    let created = &data["createResource"];
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["status"], "DRAFT");
    assert_eq!(created["origin"], "MERCHANT");
    assert_eq!(created["type"], "HTTP");
    assert_eq!(created["method"], "GET");
    assert_eq!(created["version"], 1);
    assert_eq!(created["health"], "UNKNOWN");
    assert_eq!(created["price"], json!({ "usd": "0.01", "amount": null }));
    assert_eq!(
        created["accepts"],
        json!([{
            "scheme": "exact",
            "network": NETWORK,
            "asset": USDC,
            "amount": "10000",
            "payTo": PAY_TO,
            "eip712Name": "USDC",
            "eip712Version": "2",
        }])
    );
    assert_eq!(created["inputSchema"]["type"], "object");

    let data = api.ok(&admin, PUBLISH, json!({ "id": id })).await;
    assert_eq!(data["publishResource"]["status"], "PUBLISHED");

    let data = api.ok(&admin, RESOURCE, json!({ "id": id })).await;
    let resource = &data["resource"];
    assert_eq!(resource["status"], "PUBLISHED");
    let challenge = &resource["paymentRequired"];
    assert_eq!(challenge["accepts"][0]["amount"], "10000", "{challenge}");
    assert_eq!(challenge["accepts"][0]["payTo"], PAY_TO, "{challenge}");
    assert!(
        challenge["extensions"]["bazaar"].is_object(),
        "no bazaar extension: {challenge}"
    );

    let data = api
        .ok(&admin, RESOURCES, json!({ "status": "PUBLISHED" }))
        .await;
    let edges = data["resources"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 1);
    assert_eq!(edges[0]["node"]["id"], id.as_str());
    let data = api
        .ok(&admin, RESOURCES, json!({ "status": "DRAFT" }))
        .await;
    assert_eq!(data["resources"]["edges"], json!([]));
}

#[tokio::test]
async fn a_new_price_makes_a_new_version() {
    let api = TestApi::start().await;
    let tenant = api.tenant("Acme").await;
    let admin = api.key(Some(tenant), Role::TenantAdmin).await;
    api.ok(
        &admin,
        SET_PAYOUT,
        json!({ "network": NETWORK, "address": PAY_TO }),
    )
    .await;
    let data = api
        .ok(
            &admin,
            &create_resource(),
            json!({ "input": with(weather_input(), "publish", json!(true)) }),
        )
        .await;
    let id = data["createResource"]["id"].as_str().unwrap().to_owned();
    assert_eq!(data["createResource"]["status"], "PUBLISHED");

    // Metadata alone changes in place.
    let data = api
        .ok(
            &admin,
            &update_resource(),
            json!({ "input": { "id": id, "expectedVersion": 1, "name": "Weather now" } }),
        )
        .await;
    assert_eq!(data["updateResource"]["version"], 1);
    assert_eq!(data["updateResource"]["name"], "Weather now");

    let data = api
        .ok(
            &admin,
            &update_resource(),
            json!({ "input": { "id": id, "expectedVersion": 1, "price": { "amount": "25000" } } }),
        )
        .await;
    let updated = &data["updateResource"];
    assert_eq!(updated["version"], 2);
    assert_eq!(updated["price"], json!({ "usd": null, "amount": "25000" }));
    assert_eq!(updated["accepts"][0]["amount"], "25000");
    assert_eq!(updated["name"], "Weather now");

    let data = api.ok(&admin, RESOURCE, json!({ "id": id })).await;
    let resource = &data["resource"];
    assert_eq!(resource["version"], 2);
    assert_eq!(resource["paymentRequired"]["accepts"][0]["amount"], "25000");
    let versions = resource["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{resource}");
    assert_eq!(versions[0]["version"], 1);
    assert!(versions[0]["supersededAt"].is_string(), "{resource}");
    assert_eq!(versions[0]["price"]["usd"], "0.01");
    assert_eq!(versions[0]["accepts"][0]["amount"], "10000");
    assert_eq!(versions[1]["version"], 2);
    assert!(versions[1]["supersededAt"].is_null(), "{resource}");
    assert_eq!(versions[1]["accepts"][0]["amount"], "25000");
}

#[tokio::test]
async fn bad_input_gets_its_code_and_saves_nothing() {
    let api = TestApi::start().await;
    let tenant = api.tenant("Acme").await;
    let admin = api.key(Some(tenant), Role::TenantAdmin).await;
    let create = create_resource();

    // The network is supported but the tenant has not enabled it yet.
    assert_eq!(
        api.error_code(&admin, &create, json!({ "input": weather_input() }))
            .await,
        "network_not_enabled"
    );

    assert_eq!(
        api.error_code(
            &admin,
            SET_PAYOUT,
            json!({ "network": NETWORK, "address": PAY_TO.to_lowercase() }),
        )
        .await,
        "invalid_address"
    );
    assert_eq!(
        api.error_code(
            &admin,
            SET_PAYOUT,
            json!({ "network": "eip155:1", "address": PAY_TO }),
        )
        .await,
        "unsupported_network"
    );
    let data = api
        .ok(&admin, "{ payoutAddresses { network } }", json!({}))
        .await;
    assert_eq!(data["payoutAddresses"], json!([]));

    api.ok(
        &admin,
        SET_PAYOUT,
        json!({ "network": NETWORK, "address": PAY_TO }),
    )
    .await;

    let cases = [
        (
            with(
                weather_input(),
                "accepts",
                json!([{ "network": NETWORK, "payTo": PAY_TO.to_lowercase() }]),
            ),
            "invalid_address",
        ),
        (
            with(
                weather_input(),
                "accepts",
                json!([{ "network": "eip155:1" }]),
            ),
            "unsupported_network",
        ),
        (
            with(weather_input(), "price", json!({ "usd": "0" })),
            "invalid_price",
        ),
        (
            with(
                weather_input(),
                "price",
                json!({ "usd": "0.01", "amount": "10000" }),
            ),
            "invalid_input",
        ),
        (
            with(weather_input(), "inputSchema", json!({ "type": "strnig" })),
            "invalid_json_schema",
        ),
        (
            with(weather_input(), "url", json!("https://x.example/a/../b")),
            "invalid_route_template",
        ),
        (
            with(
                with(weather_input(), "accepts", json!([])),
                "publish",
                json!(true),
            ),
            "resource_not_publishable",
        ),
    ];
    for (input, code) in cases {
        assert_eq!(
            api.error_code(&admin, &create, json!({ "input": input.clone() }))
                .await,
            code,
            "{input}"
        );
    }
    let data = api.ok(&admin, RESOURCES, json!({})).await;
    assert_eq!(data["resources"]["edges"], json!([]), "something was saved");

    // A change against a stale version is refused, and changes nothing.
    let data = api
        .ok(&admin, &create, json!({ "input": weather_input() }))
        .await;
    let id = data["createResource"]["id"].as_str().unwrap().to_owned();
    let update = update_resource();
    api.ok(
        &admin,
        &update,
        json!({ "input": { "id": id, "expectedVersion": 1, "price": { "usd": "0.02" } } }),
    )
    .await;
    assert_eq!(
        api.error_code(
            &admin,
            &update,
            json!({ "input": { "id": id, "expectedVersion": 1, "price": { "usd": "0.05" } } }),
        )
        .await,
        "conflict"
    );
    let data = api.ok(&admin, RESOURCE, json!({ "id": id })).await;
    assert_eq!(data["resource"]["version"], 2);
    assert_eq!(data["resource"]["versions"][1]["price"]["usd"], "0.02");
}

#[tokio::test]
async fn tenants_cannot_reach_each_others_resources() {
    let api = TestApi::start().await;
    let acme = api.tenant("Acme").await;
    let globex = api.tenant("Globex").await;
    let acme_admin = api.key(Some(acme), Role::TenantAdmin).await;
    let acme_read = api.key(Some(acme), Role::TenantRead).await;
    let globex_admin = api.key(Some(globex), Role::TenantAdmin).await;

    api.ok(
        &acme_admin,
        SET_PAYOUT,
        json!({ "network": NETWORK, "address": PAY_TO }),
    )
    .await;
    let data = api
        .ok(
            &acme_admin,
            &create_resource(),
            json!({ "input": weather_input() }),
        )
        .await;
    let id = data["createResource"]["id"].as_str().unwrap().to_owned();

    // Globex sees nothing of it.
    let data = api.ok(&globex_admin, RESOURCE, json!({ "id": id })).await;
    assert_eq!(data["resource"], Value::Null);
    let data = api.ok(&globex_admin, RESOURCES, json!({})).await;
    assert_eq!(data["resources"]["edges"], json!([]));
    let data = api
        .ok(&globex_admin, "{ payoutAddresses { network } }", json!({}))
        .await;
    assert_eq!(data["payoutAddresses"], json!([]));
    // Naming Acme is refused outright.
    assert_eq!(
        api.error_code(
            &globex_admin,
            "query($id: ID!, $t: ID) { resource(id: $id, tenantId: $t) { id } }",
            json!({ "id": id, "t": acme.to_string() }),
        )
        .await,
        "forbidden"
    );

    // Nor can it change it.
    assert_eq!(
        api.error_code(
            &globex_admin,
            &update_resource(),
            json!({ "input": { "id": id, "expectedVersion": 1, "name": "Mine now" } }),
        )
        .await,
        "not_found"
    );
    for mutation in ["publishResource", "unpublishResource", "archiveResource"] {
        assert_eq!(
            api.error_code(
                &globex_admin,
                &format!("mutation($id: ID!) {{ {mutation}(id: $id) {{ id }} }}"),
                json!({ "id": id }),
            )
            .await,
            "not_found",
            "{mutation}"
        );
    }

    // Acme's read-only key reads but does not change.
    let data = api.ok(&acme_read, RESOURCE, json!({ "id": id })).await;
    assert_eq!(data["resource"]["id"], id.as_str());
    assert_eq!(
        api.error_code(
            &acme_read,
            &create_resource(),
            json!({ "input": with(weather_input(), "url", json!("https://api.example.com/other")) }),
        )
        .await,
        "forbidden"
    );
    assert_eq!(
        api.error_code(&acme_read, PUBLISH, json!({ "id": id }))
            .await,
        "forbidden"
    );

    // Untouched by all of it.
    let data = api.ok(&acme_admin, RESOURCE, json!({ "id": id })).await;
    assert_eq!(data["resource"]["status"], "DRAFT");
    assert_eq!(data["resource"]["version"], 1);
    let data = api.ok(&acme_admin, RESOURCES, json!({})).await;
    assert_eq!(data["resources"]["edges"].as_array().unwrap().len(), 1);

    // An operator reaches it by naming the tenant.
    let data = api
        .ok(
            &api.operator,
            "mutation($id: ID!, $t: ID) { publishResource(id: $id, tenantId: $t) { status } }",
            json!({ "id": id, "t": acme.to_string() }),
        )
        .await;
    assert_eq!(data["publishResource"]["status"], "PUBLISHED");
}
