//! The admin GraphQL API over a real TCP server, on both backend pairs.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{TestApp, error_codes, on_both_backends};

on_both_backends!(
    introspection_needs_no_key,
    viewer_names_the_calling_key,
    operators_onboard_tenants_and_keys,
    tenants_paginate_both_ways,
    tenant_keys_cannot_reach_another_tenant,
    read_only_keys_cannot_mutate,
    resource_server_keys_have_no_admin_access,
    revoked_unknown_and_malformed_keys_are_refused,
    suspended_tenants_keys_stop_working,
    malformed_requests_get_codes,
    limits_refuse_deep_and_complex_queries,
    attacks_on_the_parser_are_refused_while_health_checks_answer,
    tenant_names_conflict_with_a_code,
    secrets_are_shown_once,
    settlements_and_the_ledger_are_readable,
    operators_naming_a_tenant_that_does_not_exist_get_not_found,
    text_with_nul_is_refused_with_the_field_named,
);

const CREATE_TENANT: &str =
    "mutation($name: String!) { createTenant(input: { name: $name }) { id name kind status } }";
const CREATE_KEY: &str = "mutation($tenant: ID, $role: Role!) {
    createApiKey(input: { tenantId: $tenant, role: $role, name: \"test\" }) {
        secret apiKey { id role prefix tenantId revokedAt }
    }
}";

async fn create_tenant(app: &TestApp, name: &str) -> String {
    let data = app
        .graphql_ok(&app.operator_token, CREATE_TENANT, json!({ "name": name }))
        .await;
    data["createTenant"]["id"].as_str().unwrap().to_owned()
}

/// Creates a key as the operator; answers (key id, secret).
async fn create_key(app: &TestApp, tenant: Option<&str>, role: &str) -> (String, String) {
    let data = app
        .graphql_ok(
            &app.operator_token,
            CREATE_KEY,
            json!({ "tenant": tenant, "role": role }),
        )
        .await;
    let created = &data["createApiKey"];
    (
        created["apiKey"]["id"].as_str().unwrap().to_owned(),
        created["secret"].as_str().unwrap().to_owned(),
    )
}

/// The query graphql-js and GraphiQL send to learn a schema.
const INTROSPECTION: &str = r#"
query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name
    ofType { kind name ofType { kind name ofType { kind name } } } } } } } }
}
"#;

async fn introspection_needs_no_key(app: TestApp) {
    let (status, body) = app.graphql(None, INTROSPECTION, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["__schema"]["queryType"]["name"], "Query");
    let types = body["data"]["__schema"]["types"].as_array().unwrap();
    for wanted in [
        "Tenant",
        "ApiKey",
        "TenantConnection",
        "ApiKeyConnection",
        "PageInfo",
        "Role",
    ] {
        assert!(
            types.iter().any(|t| t["name"] == wanted),
            "{wanted} missing"
        );
    }
    // Everything but the schema itself needs a key.
    let (_, body) = app
        .graphql(None, "{ tenants { edges { node { id } } } }", json!({}))
        .await;
    assert_eq!(error_codes(&body), ["unauthenticated"]);
    assert_eq!(body["data"], Value::Null);
}

async fn viewer_names_the_calling_key(app: TestApp) {
    let data = app
        .graphql_ok(
            &app.operator_token,
            "{ viewer { keyId role tenant { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["viewer"]["role"], "OPERATOR");
    assert_eq!(data["viewer"]["tenant"], Value::Null);
    let tenant = create_tenant(&app, "Acme").await;
    let (key_id, secret) = create_key(&app, Some(&tenant), "TENANT_READ").await;
    let data = app
        .graphql_ok(
            &secret,
            "{ viewer { keyId role tenant { id name } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["viewer"]["keyId"], key_id);
    assert_eq!(data["viewer"]["role"], "TENANT_READ");
    assert_eq!(data["viewer"]["tenant"]["id"], tenant);
    assert_eq!(data["viewer"]["tenant"]["name"], "Acme");
}

async fn operators_onboard_tenants_and_keys(app: TestApp) {
    let data = app
        .graphql_ok(
            &app.operator_token,
            "mutation { createTenant(input: { name: \"  Finance  \", kind: BUSINESS_UNIT }) { id name kind status } }",
            json!({}),
        )
        .await;
    let tenant = &data["createTenant"];
    assert_eq!(tenant["name"], "Finance");
    assert_eq!(tenant["kind"], "BUSINESS_UNIT");
    assert_eq!(tenant["status"], "ACTIVE");
    let tenant_id = tenant["id"].as_str().unwrap();

    let (_, admin) = create_key(&app, Some(tenant_id), "TENANT_ADMIN").await;
    // The tenant's administrator manages its own keys from here on.
    let data = app
        .graphql_ok(
            &admin,
            CREATE_KEY,
            json!({ "tenant": null, "role": "RESOURCE_SERVER" }),
        )
        .await;
    let server_key = &data["createApiKey"]["apiKey"];
    assert_eq!(server_key["tenantId"], tenant_id);
    assert_eq!(server_key["role"], "RESOURCE_SERVER");
    assert!(server_key["prefix"].as_str().unwrap().starts_with("psk_"));
    let data = app
        .graphql_ok(
            &admin,
            "{ apiKeys { edges { node { role tenantId } } } }",
            json!({}),
        )
        .await;
    let roles: Vec<&str> = data["apiKeys"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["TENANT_ADMIN", "RESOURCE_SERVER"]);

    // Operators may mint more operators, and see them under the platform's keys.
    let (operator_key, _) = create_key(&app, None, "OPERATOR").await;
    let data = app
        .graphql_ok(
            &app.operator_token,
            "{ apiKeys { nodes { id role tenantId } } }",
            json!({}),
        )
        .await;
    let ids: Vec<&str> = data["apiKeys"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&operator_key.as_str()));
    assert!(
        data["apiKeys"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["tenantId"].is_null())
    );
    // An operator key needs no tenant, and tenant roles need one.
    let (_, body) = app
        .graphql(
            Some(&app.operator_token),
            CREATE_KEY,
            json!({ "tenant": null, "role": "TENANT_READ" }),
        )
        .await;
    assert_eq!(error_codes(&body), ["invalid_input"]);
}

async fn tenants_paginate_both_ways(app: TestApp) {
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(create_tenant(&app, &format!("tenant {i}")).await);
    }
    let query = "query($first: Int, $after: String, $last: Int, $before: String) {
        tenants(first: $first, after: $after, last: $last, before: $before) {
            edges { cursor node { id } }
            pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
        }
    }";
    let page = |data: &Value| -> Vec<String> {
        data["tenants"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = app
        .graphql_ok(&app.operator_token, query, json!({ "first": 2 }))
        .await;
    assert_eq!(page(&first), ids[0..2]);
    assert_eq!(first["tenants"]["pageInfo"]["hasNextPage"], true);
    assert_eq!(first["tenants"]["pageInfo"]["hasPreviousPage"], false);
    let end = first["tenants"]["pageInfo"]["endCursor"].clone();
    let second = app
        .graphql_ok(
            &app.operator_token,
            query,
            json!({ "first": 2, "after": end }),
        )
        .await;
    assert_eq!(page(&second), ids[2..4]);
    assert_eq!(second["tenants"]["pageInfo"]["hasPreviousPage"], true);
    let last = app
        .graphql_ok(&app.operator_token, query, json!({ "last": 2 }))
        .await;
    assert_eq!(page(&last), ids[3..5]);
    assert_eq!(last["tenants"]["pageInfo"]["hasPreviousPage"], true);
    let start = last["tenants"]["pageInfo"]["startCursor"].clone();
    let before = app
        .graphql_ok(
            &app.operator_token,
            query,
            json!({ "last": 10, "before": start }),
        )
        .await;
    assert_eq!(page(&before), ids[0..3]);
    assert_eq!(before["tenants"]["pageInfo"]["hasPreviousPage"], false);

    for (variables, code) in [
        (json!({ "first": 101 }), "invalid_input"),
        (json!({ "first": -1 }), "invalid_input"),
        (json!({ "first": 1, "last": 1 }), "invalid_input"),
        (
            json!({ "first": 1, "after": "not-a-cursor" }),
            "invalid_input",
        ),
    ] {
        let (_, body) = app
            .graphql(Some(&app.operator_token), query, variables.clone())
            .await;
        assert_eq!(error_codes(&body), [code], "{variables}: {body}");
    }
}

/// Every root field, with how a tenant-A key tries to use it against tenant B. The test
/// `every_root_field_is_covered_by_the_isolation_test` keeps this list complete.
const ISOLATION_ATTEMPTS: &[(&str, &str)] = &[
    (
        "routingPolicy",
        "query($b: ID!) { routingPolicy(tenantId: $b) { strategy } }",
    ),
    (
        "setRoutingPolicy",
        "mutation($b: ID!) { setRoutingPolicy(input: { tenantId: $b, strategy: PINNED }) { strategy } }",
    ),
    ("railQuotes", "{ railQuotes { network healthy } }"),
    (
        "networkCosts",
        "query($b: ID!) { networkCosts(tenantId: $b, from: \"2026-01-01T00:00:00Z\", to: \"2026-02-01T00:00:00Z\") { total } }",
    ),
    ("priceFeeds", "{ priceFeeds { gasToken } }"),
    ("tenant", "query($b: ID!) { tenant(id: $b) { id name } }"),
    ("tenants", "{ tenants { nodes { id } } }"),
    (
        "apiKeys",
        "query($b: ID!) { apiKeys(tenantId: $b, includeRevoked: true) { nodes { id } } }",
    ),
    ("viewer", "{ viewer { tenant { id } } }"),
    (
        "createTenant",
        "mutation { createTenant(input: { name: \"Intruder\" }) { id } }",
    ),
    (
        "updateTenant",
        "mutation($b: ID!) { updateTenant(input: { id: $b, status: SUSPENDED }) { id } }",
    ),
    (
        "createApiKey",
        "mutation($b: ID!) { createApiKey(input: { tenantId: $b, role: TENANT_ADMIN }) { secret } }",
    ),
    (
        "revokeApiKey",
        "mutation($bKey: ID!) { revokeApiKey(input: { id: $bKey }) { id } }",
    ),
    (
        "revokeApiKey",
        "mutation($b: ID!, $bKey: ID!) { revokeApiKey(input: { id: $bKey, tenantId: $b }) { id } }",
    ),
    (
        "settlements",
        "query($b: ID!) { settlements(tenantId: $b) { nodes { id } } }",
    ),
    (
        "settlement",
        "query($b: ID!, $bSettlement: ID!) { settlement(id: $bSettlement, tenantId: $b) { id } }",
    ),
    (
        "settlement",
        "query($bSettlement: ID!) { settlement(id: $bSettlement) { id } }",
    ),
    (
        "escrowPayments",
        "query($b: ID!) { escrowPayments(tenantId: $b) { nodes { payment } } }",
    ),
    (
        "escrowPayment",
        "query($bPayment: String!) { escrowPayment(payment: $bPayment) { payment } }",
    ),
    (
        "escrowPayment",
        "query($b: ID!, $bPayment: String!) { escrowPayment(tenantId: $b, payment: $bPayment) { payment } }",
    ),
    (
        "captureEscrowPayment",
        "mutation($bPayment: String!) { captureEscrowPayment(payment: $bPayment) { id } }",
    ),
    (
        "captureEscrowPayment",
        "mutation($b: ID!, $bPayment: String!) { captureEscrowPayment(tenantId: $b, payment: $bPayment, amount: \"1\") { id } }",
    ),
    (
        "voidEscrowPayment",
        "mutation($bPayment: String!) { voidEscrowPayment(payment: $bPayment) { id } }",
    ),
    (
        "refundEscrowPayment",
        "mutation($bPayment: String!) { refundEscrowPayment(payment: $bPayment) { id } }",
    ),
    (
        "ledgerBalances",
        "query($b: ID!) { ledgerBalances(tenantId: $b) { kind } }",
    ),
    // Any key may ask which networks Purser settles; it says nothing of tenants.
    ("networks", "{ networks { network } }"),
    (
        "payoutAddresses",
        "query($b: ID!) { payoutAddresses(tenantId: $b) { address } }",
    ),
    (
        "resources",
        "query($b: ID!) { resources(tenantId: $b) { nodes { id } } }",
    ),
    (
        "resource",
        "query($b: ID!, $bResource: ID!) { resource(id: $bResource, tenantId: $b) { id } }",
    ),
    (
        "setPayoutAddress",
        "mutation($b: ID!) { setPayoutAddress(input: { tenantId: $b, network: \"eip155:84532\", address: \"0x209693Bc6afc0C5328bA36FaF03C514EF312287C\" }) { address } }",
    ),
    (
        "removePayoutAddress",
        "mutation($b: ID!) { removePayoutAddress(tenantId: $b, network: \"eip155:84532\") }",
    ),
    (
        "createResource",
        "mutation($b: ID!) { createResource(input: { tenantId: $b, type: HTTP, url: \"https://x.example/a\", name: \"Intruder\", description: \"\", price: { usd: \"0.01\" } }) { id } }",
    ),
    (
        "updateResource",
        "mutation($bResource: ID!) { updateResource(input: { id: $bResource, expectedVersion: 1, name: \"Taken\" }) { id } }",
    ),
    (
        "publishResource",
        "mutation($bResource: ID!) { publishResource(id: $bResource) { id } }",
    ),
    (
        "unpublishResource",
        "mutation($b: ID!, $bResource: ID!) { unpublishResource(id: $bResource, tenantId: $b) { id } }",
    ),
    (
        "archiveResource",
        "mutation($bResource: ID!) { archiveResource(id: $bResource) { id } }",
    ),
    (
        "grants",
        "query($b: ID!) { grants(tenantId: $b) { nodes { id wallet } } }",
    ),
    (
        "revokeGrant",
        "mutation($bGrant: ID!) { revokeGrant(id: $bGrant) { id } }",
    ),
    (
        "revokeGrant",
        "mutation($b: ID!, $bGrant: ID!) { revokeGrant(id: $bGrant, tenantId: $b) { id } }",
    ),
    (
        "meters",
        "query($b: ID!) { meters(tenantId: $b) { nodes { id } } }",
    ),
    ("meter", "{ meter(slug: \"b-meter\") { id } }"),
    (
        "meter",
        "query($b: ID!) { meter(tenantId: $b, slug: \"b-meter\") { id } }",
    ),
    (
        "usage",
        "{ usage(meter: \"b-meter\", from: \"2020-01-01T00:00:00Z\", to: \"2030-01-01T00:00:00Z\") { rows { value } } }",
    ),
    (
        "usage",
        "query($b: ID!) { usage(tenantId: $b, meter: \"b-meter\", from: \"2020-01-01T00:00:00Z\", to: \"2030-01-01T00:00:00Z\") { rows { value } } }",
    ),
    (
        "ratedUsage",
        "{ ratedUsage(meter: \"b-meter\", from: \"2020-01-01T00:00:00Z\", to: \"2030-01-01T00:00:00Z\") { subject } }",
    ),
    (
        "usageEvent",
        "{ usageEvent(source: \"//b.example\", id: \"b-event\") { subject } }",
    ),
    (
        "createMeter",
        "mutation($b: ID!) { createMeter(input: { tenantId: $b, slug: \"intruder\", name: \"x\", eventType: \"x\", aggregation: COUNT }) { id } }",
    ),
    (
        "setMeterPrice",
        "mutation($bMeter: ID!) { setMeterPrice(meterId: $bMeter, price: null) { id } }",
    ),
    (
        "archiveMeter",
        "mutation($bMeter: ID!) { archiveMeter(meterId: $bMeter) { id } }",
    ),
    (
        "amendUsageEvent",
        "mutation { amendUsageEvent(source: \"//b.example\", id: \"b-event\", reason: \"mine\", subject: \"mallory\") { revision } }",
    ),
    (
        "voidUsageEvent",
        "mutation { voidUsageEvent(source: \"//b.example\", id: \"b-event\", reason: \"gone\") { revision } }",
    ),
];

async fn tenant_keys_cannot_reach_another_tenant(app: TestApp) {
    let tenant_a = create_tenant(&app, "Tenant A").await;
    let tenant_b = create_tenant(&app, "Tenant B").await;
    let (_, admin_a) = create_key(&app, Some(&tenant_a), "TENANT_ADMIN").await;
    let (b_key, admin_b) = create_key(&app, Some(&tenant_b), "TENANT_ADMIN").await;
    let b_settlement =
        purser_testkit::store_suite::seed_settlement_for(&app.store, tenant_b.parse().unwrap())
            .await;
    let (b_payment, _) = purser_testkit::store_suite::seed_escrow_payment_for(
        &app.store,
        tenant_b.parse().unwrap(),
        1_000,
    )
    .await;
    let b_resource =
        purser_registry::Registry::new(app.store.clone(), app.store.clone(), Default::default())
            .create_resource(
                purser_domain::auth::TenantScope::trusted(tenant_b.parse().unwrap()),
                purser_registry::ResourceDraft {
                    kind: purser_domain::registry::ResourceKind::Http,
                    url: "https://b.example/private".into(),
                    method: None,
                    tool: None,
                    name: "B's resource".into(),
                    description: String::new(),
                    mime_type: None,
                    service_name: None,
                    tags: vec![],
                    icon_url: None,
                    input_schema: None,
                    output_schema: None,
                    input_example: None,
                    output_example: None,
                    body_type: None,
                    price: purser_domain::registry::PriceSpec::Usd { usd: "0.01".into() },
                    accepts: vec![],
                    max_timeout_seconds: None,
                    repeat_access: None,
                    escrow: None,
                },
                false,
            )
            .await
            .unwrap();
    let b_grant = app
        .store
        .create_grant(purser_domain::entitlement::NewGrant {
            tenant_id: tenant_b.parse().unwrap(),
            scope: purser_domain::entitlement::GrantScope::Resource(b_resource.id),
            wallet: "0xb0b0000000000000000000000000000000000002".into(),
            settlement_id: Some(b_settlement),
            expires_at: None,
            uses_allowed: None,
        })
        .await
        .unwrap();
    let b_scope = purser_domain::auth::TenantScope::trusted(tenant_b.parse().unwrap());
    let b_meter = app
        .platform
        .metering
        .create_meter(
            b_scope,
            purser_domain::metering::NewMeter {
                slug: "b-meter".into(),
                name: "B's meter".into(),
                description: None,
                event_type: "b.usage".into(),
                aggregation: purser_domain::metering::Aggregation::Count,
                value: None,
                group_by: Default::default(),
                price: Some(purser_domain::metering::MeterPrice {
                    model: purser_domain::metering::PriceModel::Standard {
                        unit_amount: 1.into(),
                    },
                    free_units: 0.into(),
                }),
            },
        )
        .await
        .unwrap();
    let b_event = purser_domain::metering::NewUsageEvent {
        source: "//b.example".into(),
        id: "b-event".into(),
        event_type: "b.usage".into(),
        subject: "b-customer".into(),
        time: purser_domain::time::now(),
        data: Value::Null,
    };
    assert!(
        app.platform
            .metering
            .record(b_scope, b_event)
            .await
            .unwrap()
    );
    let variables = json!({
        "b": tenant_b,
        "bMeter": b_meter.id.to_string(),
        "bKey": b_key,
        "bSettlement": b_settlement.to_string(),
        "bResource": b_resource.id.to_string(),
        "bGrant": b_grant.id.to_string(),
        "bPayment": b_payment,
    });

    for (field, attempt) in ISOLATION_ATTEMPTS {
        let (status, body) = app
            .graphql(Some(&admin_a), attempt, variables.clone())
            .await;
        let text = body.to_string();
        assert!(
            !text.contains(&tenant_b) || *field == "viewer",
            "{field} leaked tenant B: {text}"
        );
        assert!(
            !text.contains("Tenant B"),
            "{field} leaked tenant B's name: {text}"
        );
        // Platform-wide facts, the same for every tenant: answered, about no tenant.
        if ["networks", "railQuotes", "priceFeeds"].contains(field) {
            assert!(body["data"][*field].is_array(), "{text}");
            continue;
        }
        if *field == "viewer" {
            // The viewer is A's own key: it answers, about A only.
            assert_eq!(body["data"]["viewer"]["tenant"]["id"], tenant_a, "{text}");
            continue;
        }
        let codes = error_codes(&body);
        assert!(
            codes == ["forbidden"] || codes == ["not_found"],
            "{field}: expected forbidden or not_found, got {codes:?} ({status}): {text}"
        );
    }

    // B's resource is as it was.
    let unchanged = app
        .store
        .find_resource(
            purser_domain::auth::TenantScope::trusted(tenant_b.parse().unwrap()),
            b_resource.id,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unchanged.metadata.name, "B's resource");
    assert_eq!(
        unchanged.status,
        purser_domain::registry::ResourceStatus::Draft
    );
    // B's grant too.
    let grant = app
        .store
        .find_grant(
            purser_domain::auth::TenantScope::trusted(tenant_b.parse().unwrap()),
            b_grant.id,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(grant.revoked_at, None);
    // B's meter and event too.
    let meter = app
        .platform
        .metering
        .meter(b_scope, "b-meter")
        .await
        .unwrap();
    assert_eq!(meter.archived_at, None);
    assert!(meter.price.is_some());
    let history = app
        .platform
        .metering
        .history(b_scope, "//b.example", "b-event")
        .await
        .unwrap();
    assert_eq!(history.len(), 1);

    // Nothing of B changed: its key works, its tenant is active, and no key was added to it.
    let data = app
        .graphql_ok(
            &admin_b,
            "{ viewer { keyId tenant { status } } apiKeys(includeRevoked: true) { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["viewer"]["keyId"], b_key);
    assert_eq!(data["viewer"]["tenant"]["status"], "ACTIVE");
    assert_eq!(data["apiKeys"]["nodes"].as_array().unwrap().len(), 1);
    // And A's own listing holds only A's key.
    let data = app
        .graphql_ok(&admin_a, "{ apiKeys { nodes { tenantId } } }", json!({}))
        .await;
    let nodes = data["apiKeys"]["nodes"].as_array().unwrap();
    assert!(!nodes.is_empty());
    assert!(nodes.iter().all(|k| k["tenantId"] == tenant_a.as_str()));
}

/// Guards the isolation test: a root field added without an isolation attempt fails here.
#[tokio::test]
async fn every_root_field_is_covered_by_the_isolation_test() {
    let sdl = purser_admin::sdl();
    let fields_of = |type_name: &str| -> Vec<String> {
        let start = sdl
            .find(&format!("type {type_name} {{"))
            .unwrap_or_else(|| panic!("no {type_name} in SDL"));
        let body = &sdl[start..];
        let body = &body[body.find('{').unwrap() + 1..body.find("\n}").unwrap()];
        body.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('"'))
            .filter_map(|l| l.split(['(', ':']).next())
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric()))
            .collect()
    };
    let covered: Vec<&str> = ISOLATION_ATTEMPTS.iter().map(|(field, _)| *field).collect();
    let mut fields = fields_of("Query");
    fields.extend(fields_of("Mutation"));
    assert!(fields.len() >= 8, "parsed too few fields: {fields:?}");
    for field in fields {
        assert!(
            covered.contains(&field.as_str()),
            "root field `{field}` has no isolation attempt"
        );
    }
}

async fn read_only_keys_cannot_mutate(app: TestApp) {
    let tenant = create_tenant(&app, "Acme").await;
    let (admin_id, _) = create_key(&app, Some(&tenant), "TENANT_ADMIN").await;
    let (_, reader) = create_key(&app, Some(&tenant), "TENANT_READ").await;
    let data = app
        .graphql_ok(
            &reader,
            "{ tenant { name } apiKeys { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["tenant"]["name"], "Acme");
    assert_eq!(data["apiKeys"]["nodes"].as_array().unwrap().len(), 2);
    for (mutation, variables) in [
        (CREATE_KEY, json!({ "tenant": null, "role": "TENANT_READ" })),
        (
            "mutation($id: ID!) { revokeApiKey(input: { id: $id }) { id } }",
            json!({ "id": admin_id }),
        ),
        (
            "mutation { createTenant(input: { name: \"x\" }) { id } }",
            json!({}),
        ),
        (
            "mutation($id: ID!) { updateTenant(input: { id: $id, name: \"x\" }) { id } }",
            json!({ "id": tenant }),
        ),
    ] {
        let (_, body) = app.graphql(Some(&reader), mutation, variables).await;
        assert_eq!(error_codes(&body), ["forbidden"], "{mutation}: {body}");
    }
    let data = app
        .graphql_ok(&reader, "{ apiKeys { nodes { id revokedAt } } }", json!({}))
        .await;
    assert_eq!(
        data["apiKeys"]["nodes"].as_array().unwrap().len(),
        2,
        "nothing was added"
    );
    assert!(
        data["apiKeys"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["revokedAt"].is_null())
    );
}

async fn resource_server_keys_have_no_admin_access(app: TestApp) {
    let tenant = create_tenant(&app, "Acme").await;
    let (_, server) = create_key(&app, Some(&tenant), "RESOURCE_SERVER").await;
    let data = app
        .graphql_ok(&server, "{ viewer { role } }", json!({}))
        .await;
    assert_eq!(data["viewer"]["role"], "RESOURCE_SERVER");
    for query in ["{ tenant { name } }", "{ apiKeys { nodes { id } } }"] {
        let (_, body) = app.graphql(Some(&server), query, json!({})).await;
        assert_eq!(error_codes(&body), ["forbidden"], "{query}: {body}");
    }
}

async fn revoked_unknown_and_malformed_keys_are_refused(app: TestApp) {
    let tenant = create_tenant(&app, "Acme").await;
    let (key_id, secret) = create_key(&app, Some(&tenant), "TENANT_ADMIN").await;
    let data = app
        .graphql_ok(
            &secret,
            "mutation($id: ID!) { revokeApiKey(input: { id: $id }) { revokedAt } }",
            json!({ "id": key_id }),
        )
        .await;
    assert!(data["revokeApiKey"]["revokedAt"].is_string());

    let (status, body) = app
        .graphql(Some(&secret), "{ viewer { role } }", json!({}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_codes(&body), ["api_key_revoked"]);

    let unknown = format!("psk_0123456789abcdef_{}", "A".repeat(43));
    let (status, body) = app
        .graphql(Some(&unknown), "{ viewer { role } }", json!({}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_codes(&body), ["invalid_api_key"]);

    let response = app
        .client
        .post(app.url("/graphql"))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .json(&json!({ "query": "{ viewer { role } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_codes(&body), ["invalid_api_key"]);
}

async fn suspended_tenants_keys_stop_working(app: TestApp) {
    let tenant = create_tenant(&app, "Acme").await;
    let (_, secret) = create_key(&app, Some(&tenant), "TENANT_ADMIN").await;
    let suspend = "mutation($id: ID!, $status: TenantStatus!) { updateTenant(input: { id: $id, status: $status }) { status } }";
    let data = app
        .graphql_ok(
            &app.operator_token,
            suspend,
            json!({ "id": tenant, "status": "SUSPENDED" }),
        )
        .await;
    assert_eq!(data["updateTenant"]["status"], "SUSPENDED");
    let (_, body) = app
        .graphql(Some(&secret), "{ viewer { role } }", json!({}))
        .await;
    assert_eq!(error_codes(&body), ["forbidden"]);
    app.graphql_ok(
        &app.operator_token,
        suspend,
        json!({ "id": tenant, "status": "ACTIVE" }),
    )
    .await;
    app.graphql_ok(&secret, "{ viewer { role } }", json!({}))
        .await;
}

async fn malformed_requests_get_codes(app: TestApp) {
    let post = |body: &'static str, content_type: &'static str| {
        app.client
            .post(app.url("/graphql"))
            .bearer_auth(&app.operator_token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    for (body, content_type, status, code) in [
        ("{not json", "application/json", 400, "malformed_json"),
        (
            "[{\"query\": \"{ viewer { role } }\"}]",
            "application/json",
            400,
            "malformed_json",
        ),
        (
            "{\"variables\": {}}",
            "application/json",
            400,
            "malformed_json",
        ),
        (
            "{\"query\": \"{ viewer { \"}",
            "application/json",
            400,
            "graphql_parse_error",
        ),
        (
            "{\"query\": \"{ nosuchfield }\"}",
            "application/json",
            400,
            "graphql_validation_failed",
        ),
        (
            "{\"query\": \"{ viewer { role } }\"}",
            "text/plain",
            415,
            "unsupported_media_type",
        ),
    ] {
        let response = post(body, content_type).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{body}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(error_codes(&answer), [code], "{body}: {answer}");
    }
    // Oversized bodies are refused with 413 before they are read. These go over
    // a raw socket: an HTTP client still writing the body when the refusal
    // arrives sees a broken pipe instead of the answer.
    let limit = app.config.server.max_body_bytes;
    let declared = format!(
        "POST /graphql HTTP/1.1\r\nhost: purser\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        limit + 1
    );
    let (status, answer) = raw_exchange(&app, declared.as_bytes()).await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["error"]["code"], "payload_too_large", "{answer}");
    // Streamed without a length, the body is cut off at the limit all the same.
    let mut chunked =
        b"POST /graphql HTTP/1.1\r\nhost: purser\r\ncontent-type: application/json\r\n\
        transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
            .to_vec();
    // Just over the limit, so that the server has read all of it when it refuses.
    for chunk_bytes in [limit / 2, limit - limit / 2, 1] {
        chunked.extend_from_slice(format!("{chunk_bytes:x}\r\n").as_bytes());
        chunked.extend(std::iter::repeat_n(b' ', chunk_bytes));
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (status, answer) = raw_exchange(&app, &chunked).await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["error"]["code"], "payload_too_large", "{answer}");
    // Bad ids and enum values are refused with codes, not panics.
    let (_, body) = app
        .graphql(
            Some(&app.operator_token),
            "query($id: ID!) { tenant(id: $id) { id } }",
            json!({ "id": "not-a-uuid" }),
        )
        .await;
    assert_eq!(error_codes(&body), ["invalid_input"]);
    let (status, body) = app
        .graphql(
            Some(&app.operator_token),
            CREATE_KEY,
            json!({ "tenant": null, "role": "KING" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_codes(&body), ["graphql_validation_failed"], "{body}");
}

async fn limits_refuse_deep_and_complex_queries(app: TestApp) {
    let levels = 20;
    let deep = format!(
        "{{ __schema {{ types {{ fields {{ type {{ {} name {} }} }} }} }} }}",
        "ofType { ".repeat(levels),
        "} ".repeat(levels)
    );
    let (status, body) = app
        .graphql(Some(&app.operator_token), &deep, json!({}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_codes(&body), ["query_too_deep"], "{body}");
    // Twenty-five aliases of a 100-item page of tenants.
    let aliases: String = (0..25)
        .map(|i| format!("a{i}: tenants(first: 100) {{ nodes {{ id name }} }} "))
        .collect();
    let (status, body) = app
        .graphql(
            Some(&app.operator_token),
            &format!("{{ {aliases} }}"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_codes(&body), ["query_too_complex"], "{body}");
}

/// Fragments `F0` to `F30`, each spreading the next twice: 2^30 fields once expanded, which
/// async-graphql's validation expanded, synchronously, for minutes.
fn fragment_bomb() -> String {
    let mut document = String::from("{ ...F0 }\n");
    for level in 0..30 {
        let next = level + 1;
        document += &format!("fragment F{level} on Query {{ ...F{next} ...F{next} }}\n");
    }
    document + "fragment F30 on Query { __typename }\n"
}

/// Two fragment bombs in flight held both of the app's workers (this harness runs two), so
/// health checks went unanswered; a list 500 deep overflowed a worker's stack and aborted the
/// process. The requests are made from a thread and runtime of their own, as another machine's
/// would be, so that a stuck server fails this test instead of stalling its client too.
async fn attacks_on_the_parser_are_refused_while_health_checks_answer(app: TestApp) {
    let base = app.base.clone();
    let token = app.operator_token.clone();
    let outcome = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(attacks_from_elsewhere(base, token));
    })
    .join();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn attacks_from_elsewhere(base: String, token: String) {
    let within = std::time::Duration::from_secs(10);
    let client = purser_testkit::http_client();
    let post = |query: String| {
        let request = client
            .post(format!("{base}/graphql"))
            .json(&json!({ "query": query }))
            .timeout(within);
        async move {
            let response = request.send().await.expect("an answer in time");
            let status = response.status();
            (
                status,
                response.json::<Value>().await.expect("a JSON answer"),
            )
        }
    };
    let bombs: Vec<_> = (0..2)
        .map(|_| tokio::spawn(post(fragment_bomb())))
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let health = client
        .get(format!("{base}/healthz"))
        .timeout(within)
        .send()
        .await
        .expect("a health check answered while two bombs are in flight");
    assert_eq!(health.status(), StatusCode::OK);
    for bomb in bombs {
        let (status, body) = bomb.await.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error_codes(&body), ["query_too_large"], "{body}");
    }
    for depth in [500, 100_000] {
        let list = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        let (status, body) =
            post(format!("{{ tenants(first: {list}) {{ nodes {{ id }} }} }}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error_codes(&body), ["query_too_deep"], "{body}");
    }
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    // And the keyed API works as before.
    let viewer = client
        .post(format!("{base}/graphql"))
        .bearer_auth(&token)
        .json(&json!({ "query": "{ viewer { role } }" }))
        .send()
        .await
        .unwrap();
    let body: Value = viewer.json().await.unwrap();
    assert_eq!(body["data"]["viewer"]["role"], "OPERATOR", "{body}");
}

/// `[graphql]`'s limits reach the handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_limits_come_from_the_configuration() {
    let mut config = purser::config::Config::default();
    config.graphql.max_aliases = 2;
    config.graphql.max_nesting = 4;
    let app = TestApp::start_with(crate::harness::Backends::Embedded, config).await;
    let (status, body) = app
        .graphql(None, "{ a: __typename b: __typename }", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .graphql(
            None,
            "{ a: __typename b: __typename c: __typename }",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_codes(&body), ["query_too_large"], "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("graphql.max_aliases") && message.contains('2'),
        "{message}"
    );
    let (_, body) = app
        .graphql(
            None,
            "{ __type(name: \"Query\") { fields { type { ofType { name } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_codes(&body), ["query_too_deep"], "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("graphql.max_nesting"), "{message}");
}

async fn tenant_names_conflict_with_a_code(app: TestApp) {
    create_tenant(&app, "Acme").await;
    let (status, body) = app
        .graphql(
            Some(&app.operator_token),
            CREATE_TENANT,
            json!({ "name": "ACME" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(error_codes(&body), ["tenant_name_taken"]);
    let (_, body) = app
        .graphql(
            Some(&app.operator_token),
            CREATE_TENANT,
            json!({ "name": "  " }),
        )
        .await;
    assert_eq!(error_codes(&body), ["invalid_input"]);
    let data = app
        .graphql_ok(
            &app.operator_token,
            "{ tenants { nodes { name } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["tenants"]["nodes"].as_array().unwrap().len(), 1);
}

async fn secrets_are_shown_once(app: TestApp) {
    let tenant = create_tenant(&app, "Acme").await;
    let (_, secret) = create_key(&app, Some(&tenant), "TENANT_ADMIN").await;
    let (_, body) = app
        .graphql(
            Some(&app.operator_token),
            "query($t: ID!) { apiKeys(tenantId: $t) { nodes { secret } } }",
            json!({ "t": tenant }),
        )
        .await;
    assert_eq!(
        error_codes(&body),
        ["graphql_validation_failed"],
        "keys have no secret field"
    );
    let (_, body) = app
        .graphql(Some(&app.operator_token), "query($t: ID!) { apiKeys(tenantId: $t) { nodes { id name prefix role createdAt lastUsedAt } } }", json!({ "t": tenant }))
        .await;
    let text = body.to_string();
    // `psk_<prefix>_<secret>`: the secret itself may contain `_`.
    let secret_part = secret.splitn(3, '_').nth(2).unwrap();
    assert!(
        !text.contains(secret_part),
        "a listing showed the secret: {text}"
    );
    assert!(
        secret.starts_with(
            body["data"]["apiKeys"]["nodes"][0]["prefix"]
                .as_str()
                .unwrap()
        )
    );
}

async fn settlements_and_the_ledger_are_readable(app: TestApp) {
    let tenant = create_tenant(&app, "Acme").await;
    let (_, reader) = create_key(&app, Some(&tenant), "TENANT_READ").await;
    let id =
        purser_testkit::store_suite::seed_settlement_for(&app.store, tenant.parse().unwrap()).await;
    let data = app
        .graphql_ok(
            &reader,
            "{ settlements { nodes { id status network amount transactionHash blockNumber transfers { code debit credit amount state } } }
               ledgerBalances { kind debitsPosted creditsPosted creditsPending } }",
            json!({}),
        )
        .await;
    let settlement = &data["settlements"]["nodes"][0];
    assert_eq!(settlement["id"], id.to_string());
    assert_eq!(settlement["status"], "CONFIRMED");
    assert_eq!(settlement["amount"], "1000");
    assert_eq!(settlement["blockNumber"], "1");
    let transfers = settlement["transfers"].as_array().unwrap();
    assert_eq!(transfers.len(), 2);
    assert!(
        transfers
            .iter()
            .all(|t| t["state"] == "POSTED" && t["amount"] == "1000")
    );
    let receivable = data["ledgerBalances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["kind"] == "MERCHANT_RECEIVABLE")
        .unwrap();
    assert_eq!(receivable["creditsPosted"], "1000");
    let one = app
        .graphql_ok(
            &app.operator_token,
            "query($id: ID!, $t: ID!) { settlement(id: $id, tenantId: $t) { status } }",
            json!({ "id": id.to_string(), "t": tenant }),
        )
        .await;
    assert_eq!(one["settlement"]["status"], "CONFIRMED");
}

/// Writes `request` on a fresh connection and reads the answer to its end,
/// returning the status and the JSON body. Writing stops quietly if the server
/// answers and closes first: that is what an early refusal looks like.
async fn raw_exchange(app: &TestApp, request: &[u8]) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.base.trim_start_matches("http://");
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let request = request.to_vec();
    let write = tokio::spawn(async move {
        let _ = writer.write_all(&request).await;
        writer
    });
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    // A reset after the answer has arrived still leaves the answer readable.
    while let Ok(read) = reader.read(&mut buf).await {
        if read == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..read]);
    }
    drop(write.await.unwrap());
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        // One chunk is all these small answers ever take.
        body.split_once("\r\n")
            .map_or(body, |(_, rest)| rest)
            .rsplit_once("\r\n0\r\n")
            .map_or(body, |(json, _)| json)
    } else {
        body
    };
    (status, serde_json::from_str(body).expect("a JSON body"))
}

/// An operator naming a tenant that does not exist is told `not_found` (never `internal`, from
/// a foreign key), by mutations and reads alike, and nothing is stored for it.
async fn operators_naming_a_tenant_that_does_not_exist_get_not_found(app: TestApp) {
    use purser_domain::auth::{KeyOwner, TenantScope};
    use purser_domain::page::PageRequest;

    let missing = purser_domain::id::TenantId::new();
    let operations = [
        (
            "createApiKey",
            "mutation($tenant: ID) {
                createApiKey(input: { tenantId: $tenant, role: TENANT_ADMIN, name: \"k\" }) { secret }
            }",
        ),
        (
            "createMeter",
            "mutation($tenant: ID) {
                createMeter(input: { tenantId: $tenant, slug: \"calls\", name: \"Calls\",
                    eventType: \"api.call\", aggregation: COUNT }) { id }
            }",
        ),
        (
            "createResource",
            "mutation($tenant: ID) {
                createResource(input: { tenantId: $tenant, type: HTTP,
                    url: \"https://api.example.com/weather\", name: \"Weather\",
                    price: { usd: \"0.01\" } }) { id }
            }",
        ),
        (
            "setPayoutAddress",
            "mutation($tenant: ID) {
                setPayoutAddress(input: { tenantId: $tenant, network: \"eip155:84532\",
                    address: \"0x209693Bc6afc0C5328bA36FaF03C514EF312287C\" }) { network }
            }",
        ),
        (
            "voidUsageEvent",
            "mutation($tenant: ID) {
                voidUsageEvent(tenantId: $tenant, source: \"s\", id: \"i\", reason: \"r\") { revision }
            }",
        ),
        ("tenant", "query($tenant: ID) { tenant(id: $tenant) { id } }"),
        (
            "apiKeys",
            "query($tenant: ID) { apiKeys(tenantId: $tenant) { nodes { id } } }",
        ),
        (
            "meters",
            "query($tenant: ID) { meters(tenantId: $tenant) { nodes { id } } }",
        ),
        (
            "resources",
            "query($tenant: ID) { resources(tenantId: $tenant) { nodes { id } } }",
        ),
        (
            "settlements",
            "query($tenant: ID) { settlements(tenantId: $tenant) { nodes { id } } }",
        ),
        (
            "ledgerBalances",
            "query($tenant: ID) { ledgerBalances(tenantId: $tenant) { network } }",
        ),
        (
            "payoutAddresses",
            "query($tenant: ID) { payoutAddresses(tenantId: $tenant) { network } }",
        ),
        (
            "grants",
            "query($tenant: ID) { grants(tenantId: $tenant) { nodes { id } } }",
        ),
    ];
    for (field, document) in operations {
        let (status, body) = app
            .graphql(
                Some(&app.operator_token),
                document,
                json!({ "tenant": missing.to_string() }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{field}: {body}");
        assert_eq!(error_codes(&body), ["not_found"], "{field}: {body}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("tenant"),
            "{field}: {body}"
        );
    }
    // Nothing was written for it.
    let scope = TenantScope::trusted(missing);
    let page = PageRequest::first(100).unwrap();
    let store = &app.store;
    assert!(
        store
            .list_api_keys(KeyOwner::Tenant(scope), true, page)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        store
            .list_meters(scope, true, page)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        store
            .list_resources(scope, None, page)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(store.payout_addresses(scope).await.unwrap().is_empty());
}

/// Text with NUL (which PostgreSQL's `text` and `jsonb` refuse and SQLite keeps) or other
/// control characters is refused before any store sees it, with `invalid_input` naming the
/// field, on both backends.
async fn text_with_nul_is_refused_with_the_field_named(app: TestApp) {
    let tenant = create_tenant(&app, "Text").await;
    let cases = [
        (
            "createTenant name",
            "mutation { createTenant(input: { name: \"a\\u0000b\" }) { id } }",
            "name",
        ),
        (
            "updateTenant name",
            "mutation($tenant: ID!) { updateTenant(input: { id: $tenant, name: \"a\\u0007b\" }) { id } }",
            "name",
        ),
        (
            "createApiKey name",
            "mutation($tenant: ID) {
                createApiKey(input: { tenantId: $tenant, role: TENANT_READ, name: \"k\\u0000\" }) { secret }
            }",
            "name",
        ),
        (
            "createMeter name",
            "mutation($tenant: ID) {
                createMeter(input: { tenantId: $tenant, slug: \"calls\", name: \"Calls\\u0000\",
                    eventType: \"api.call\", aggregation: COUNT }) { id }
            }",
            "name",
        ),
        (
            "createMeter description",
            "mutation($tenant: ID) {
                createMeter(input: { tenantId: $tenant, slug: \"calls\", name: \"Calls\",
                    description: \"x\\u0000y\", eventType: \"api.call\", aggregation: COUNT }) { id }
            }",
            "description",
        ),
        (
            "createMeter name with a bell",
            "mutation($tenant: ID) {
                createMeter(input: { tenantId: $tenant, slug: \"calls\", name: \"Calls\\u0007\",
                    eventType: \"api.call\", aggregation: COUNT }) { id }
            }",
            "name",
        ),
        (
            "createResource inputSchema",
            "mutation($tenant: ID) {
                createResource(input: { tenantId: $tenant, type: HTTP,
                    url: \"https://api.example.com/weather\", name: \"Weather\",
                    inputSchema: { type: \"object\", description: \"a\\u0000b\" },
                    price: { usd: \"0.01\" } }) { id }
            }",
            "inputSchema",
        ),
        (
            "createResource outputExample key",
            "mutation($tenant: ID) {
                createResource(input: { tenantId: $tenant, type: HTTP,
                    url: \"https://api.example.com/weather\", name: \"Weather\",
                    outputExample: { ok: { deep: [\"\\u0000\"] } },
                    price: { usd: \"0.01\" } }) { id }
            }",
            "outputExample",
        ),
    ];
    for (case, document, field) in cases {
        let (status, body) = app
            .graphql(
                Some(&app.operator_token),
                document,
                json!({ "tenant": tenant }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{case}: {body}");
        assert_eq!(error_codes(&body), ["invalid_input"], "{case}: {body}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains(field),
            "{case}: {body}"
        );
    }
    // A value no row can hold is not asked of the store (PostgreSQL refuses NUL even to
    // compare with): there is no such payout address.
    let data = app
        .graphql_ok(
            &app.operator_token,
            "mutation($tenant: ID) {
                removePayoutAddress(tenantId: $tenant, network: \"eip155:1\\u0000\")
            }",
            json!({ "tenant": tenant }),
        )
        .await;
    assert_eq!(data["removePayoutAddress"], json!(false), "{data}");
    // Nothing was stored: the tenant has no meter, resource or key.
    let data = app
        .graphql_ok(
            &app.operator_token,
            "query($tenant: ID) {
                meters(tenantId: $tenant, includeArchived: true) { nodes { id } }
                resources(tenantId: $tenant) { nodes { id } }
                apiKeys(tenantId: $tenant) { nodes { id } }
            }",
            json!({ "tenant": tenant }),
        )
        .await;
    for list in ["meters", "resources", "apiKeys"] {
        assert_eq!(data[list]["nodes"], json!([]), "{list}: {data}");
    }
}
