//! Entitlement through the admin GraphQL API: repeat access on resources, and the grants wallets
//! hold, listed and revoked per tenant.

use chrono::Duration;
use purser_domain::auth::{Role, TenantScope};
use purser_domain::entitlement::{GrantScope, NewGrant};
use purser_domain::id::{ResourceId, TenantId};
use purser_domain::time;
use serde_json::{Value, json};

use crate::api::{NETWORK, PAY_TO, TestApi};

const ALICE: &str = "0xa11ce00000000000000000000000000000000001";
const BOB: &str = "0xb0b0000000000000000000000000000000000002";

const SET_PAYOUT: &str = "mutation($network: String!, $address: String!) {
    setPayoutAddress(input: { network: $network, address: $address }) { network }
}";

const CREATE: &str = "mutation($input: CreateResourceInput!) {
    createResource(input: $input) { id version repeatAccess { group durationSeconds uses } }
}";

const UPDATE: &str = "mutation($input: UpdateResourceInput!) {
    updateResource(input: $input) { id version repeatAccess { group durationSeconds uses } }
}";

const GRANTS: &str = "query($wallet: String, $resource: ID, $active: Boolean! = false,
        $first: Int, $after: String, $t: ID) {
    grants(wallet: $wallet, resourceId: $resource, activeOnly: $active, first: $first,
           after: $after, tenantId: $t) {
        edges { node { id tenantId resourceId group wallet settlementId expiresAt usesAllowed
                       usesCount revokedAt createdAt active } }
        pageInfo { hasNextPage hasPreviousPage endCursor }
    }
}";

const REVOKE: &str = "mutation($id: ID!, $t: ID) {
    revokeGrant(id: $id, tenantId: $t) { id revokedAt active }
}";

fn resource_input(url: &str) -> Value {
    json!({
        "type": "HTTP",
        "url": url,
        "name": "Report",
        "price": { "usd": "0.01" },
        "accepts": [{ "network": NETWORK }],
    })
}

/// A resource of the key's tenant, made through the API; answers its id.
async fn resource(api: &TestApi, admin: &str, url: &str) -> ResourceId {
    let data = api
        .ok(admin, CREATE, json!({ "input": resource_input(url) }))
        .await;
    data["createResource"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn grant(api: &TestApi, grant: NewGrant) -> String {
    api.store.create_grant(grant).await.unwrap().id.to_string()
}

fn new_grant(tenant: TenantId, scope: GrantScope, wallet: &str) -> NewGrant {
    NewGrant {
        tenant_id: tenant,
        scope,
        wallet: wallet.to_owned(),
        settlement_id: None,
        expires_at: None,
        uses_allowed: None,
    }
}

fn ids(data: &Value) -> Vec<String> {
    data["grants"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn resources_carry_their_repeat_access() {
    let api = TestApi::start().await;
    let acme = api.tenant("Acme").await;
    let admin = api.key(Some(acme), Role::TenantAdmin).await;
    api.ok(
        &admin,
        SET_PAYOUT,
        json!({ "network": NETWORK, "address": PAY_TO }),
    )
    .await;

    // Bad policies are refused with a code, and nothing is saved.
    for bad in [
        json!({ "uses": 0 }),
        json!({ "durationSeconds": 0 }),
        json!({ "group": "no spaces" }),
        json!({ "group": "" }),
    ] {
        let mut input = resource_input("https://api.example.com/bad");
        input["repeatAccess"] = bad.clone();
        assert_eq!(
            api.error_code(&admin, CREATE, json!({ "input": input }))
                .await,
            "invalid_input",
            "{bad}"
        );
    }
    let data = api
        .ok(&admin, "{ resources { edges { node { id } } } }", json!({}))
        .await;
    assert_eq!(data["resources"]["edges"], json!([]));

    let mut input = resource_input("https://api.example.com/report");
    input["repeatAccess"] = json!({ "group": "reports", "durationSeconds": 3600, "uses": 5 });
    let data = api.ok(&admin, CREATE, json!({ "input": input })).await;
    let created = &data["createResource"];
    assert_eq!(
        created["repeatAccess"],
        json!({ "group": "reports", "durationSeconds": 3600, "uses": 5 })
    );
    let id = created["id"].as_str().unwrap().to_owned();
    let stored = api
        .store
        .find_resource(TenantScope::trusted(acme), id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.current.spec.repeat_access.unwrap().duration_seconds,
        Some(3600)
    );

    // A new policy is a new version; null ends it; a rename keeps the version.
    let data = api
        .ok(
            &admin,
            UPDATE,
            json!({ "input": { "id": id, "expectedVersion": 1, "repeatAccess": { "uses": 10 } } }),
        )
        .await;
    assert_eq!(data["updateResource"]["version"], 2);
    assert_eq!(
        data["updateResource"]["repeatAccess"],
        json!({ "group": null, "durationSeconds": null, "uses": 10 })
    );
    let data = api
        .ok(
            &admin,
            UPDATE,
            json!({ "input": { "id": id, "expectedVersion": 2, "repeatAccess": null } }),
        )
        .await;
    assert_eq!(data["updateResource"]["version"], 3);
    assert_eq!(data["updateResource"]["repeatAccess"], Value::Null);
    let data = api
        .ok(
            &admin,
            UPDATE,
            json!({ "input": { "id": id, "expectedVersion": 3, "name": "Reports" } }),
        )
        .await;
    assert_eq!(data["updateResource"]["version"], 3);
    assert_eq!(
        api.error_code(
            &admin,
            UPDATE,
            json!({ "input": { "id": id, "expectedVersion": 3, "repeatAccess": { "uses": 0 } } }),
        )
        .await,
        "invalid_input"
    );
    let data = api
        .ok(
            &admin,
            "query($id: ID!) { resource(id: $id) { versions { version repeatAccess { uses } } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        data["resource"]["versions"],
        json!([
            { "version": 1, "repeatAccess": { "uses": 5 } },
            { "version": 2, "repeatAccess": { "uses": 10 } },
            { "version": 3, "repeatAccess": null },
        ])
    );
}

#[tokio::test]
async fn tenant_keys_list_and_revoke_their_grants() {
    let api = TestApi::start().await;
    let acme = api.tenant("Acme").await;
    let admin = api.key(Some(acme), Role::TenantAdmin).await;
    let reader = api.key(Some(acme), Role::TenantRead).await;
    api.ok(
        &admin,
        SET_PAYOUT,
        json!({ "network": NETWORK, "address": PAY_TO }),
    )
    .await;
    let report = resource(&api, &admin, "https://api.example.com/report").await;
    let chart = resource(&api, &admin, "https://api.example.com/chart").await;
    let settlement = purser_testkit::store_suite::seed_settlement_for(&api.store, acme).await;
    let g0 = grant(
        &api,
        NewGrant {
            settlement_id: Some(settlement),
            uses_allowed: Some(2),
            ..new_grant(acme, GrantScope::Resource(report), ALICE)
        },
    )
    .await;
    let g1 = grant(&api, new_grant(acme, GrantScope::Resource(chart), ALICE)).await;
    let g2 = grant(
        &api,
        new_grant(acme, GrantScope::Group("reports".into()), BOB),
    )
    .await;
    let g3 = grant(
        &api,
        NewGrant {
            expires_at: Some(time::now() - Duration::seconds(1)),
            ..new_grant(acme, GrantScope::Resource(report), BOB)
        },
    )
    .await;

    // Newest first, every field, for the read-only key too.
    let data = api.ok(&reader, GRANTS, json!({})).await;
    assert_eq!(
        ids(&data),
        [g3.as_str(), g2.as_str(), g1.as_str(), g0.as_str()]
    );
    let edges = data["grants"]["edges"].as_array().unwrap();
    let oldest = &edges[3]["node"];
    assert_eq!(oldest["tenantId"], acme.to_string());
    assert_eq!(oldest["resourceId"], report.to_string());
    assert_eq!(oldest["group"], Value::Null);
    assert_eq!(oldest["wallet"], ALICE);
    assert_eq!(oldest["settlementId"], settlement.to_string());
    assert_eq!(oldest["expiresAt"], Value::Null);
    assert_eq!(
        (oldest["usesAllowed"].clone(), oldest["usesCount"].clone()),
        (json!(2), json!(0))
    );
    assert_eq!(oldest["active"], true);
    assert_eq!(edges[1]["node"]["group"], "reports");
    assert_eq!(edges[1]["node"]["resourceId"], Value::Null);
    assert_eq!(edges[0]["node"]["active"], false, "expired");

    // Pages follow the newest-first order.
    let first = api.ok(&reader, GRANTS, json!({ "first": 2 })).await;
    assert_eq!(ids(&first), [g3.as_str(), g2.as_str()]);
    assert_eq!(first["grants"]["pageInfo"]["hasNextPage"], true);
    let cursor = first["grants"]["pageInfo"]["endCursor"].clone();
    let second = api
        .ok(&reader, GRANTS, json!({ "first": 2, "after": cursor }))
        .await;
    assert_eq!(ids(&second), [g1.as_str(), g0.as_str()]);
    assert_eq!(second["grants"]["pageInfo"]["hasNextPage"], false);
    assert_eq!(second["grants"]["pageInfo"]["hasPreviousPage"], true);

    // Filters; a wallet is matched whatever its letter case.
    let data = api
        .ok(
            &reader,
            GRANTS,
            json!({ "wallet": ALICE.to_uppercase().replace("0X", "0x") }),
        )
        .await;
    assert_eq!(ids(&data), [g1.as_str(), g0.as_str()]);
    let data = api
        .ok(&reader, GRANTS, json!({ "resource": report.to_string() }))
        .await;
    assert_eq!(ids(&data), [g3.as_str(), g0.as_str()]);
    let data = api.ok(&reader, GRANTS, json!({ "active": true })).await;
    assert_eq!(ids(&data), [g2.as_str(), g1.as_str(), g0.as_str()]);
    assert_eq!(
        api.error_code(&reader, GRANTS, json!({ "wallet": "0x1234" }))
            .await,
        "invalid_input"
    );

    // Reading is not revoking.
    assert_eq!(
        api.error_code(&reader, REVOKE, json!({ "id": g0 })).await,
        "forbidden"
    );
    let data = api.ok(&admin, REVOKE, json!({ "id": g0 })).await;
    assert_eq!(data["revokeGrant"]["active"], false);
    let revoked_at = data["revokeGrant"]["revokedAt"].clone();
    assert!(revoked_at.is_string());
    let again = api.ok(&admin, REVOKE, json!({ "id": g0 })).await;
    assert_eq!(
        again["revokeGrant"]["revokedAt"], revoked_at,
        "the first time is kept"
    );
    let data = api.ok(&reader, GRANTS, json!({ "active": true })).await;
    assert_eq!(ids(&data), [g2.as_str(), g1.as_str()]);
    assert_eq!(
        api.store
            .use_grant(TenantScope::trusted(acme), ALICE, report, None, time::now())
            .await
            .unwrap(),
        None,
        "a revoked grant admits nothing"
    );
    assert_eq!(
        api.error_code(
            &admin,
            REVOKE,
            json!({ "id": ResourceId::new().to_string() })
        )
        .await,
        "not_found"
    );
}

#[tokio::test]
async fn tenants_cannot_reach_each_others_grants() {
    let api = TestApi::start().await;
    let acme = api.tenant("Acme").await;
    let globex = api.tenant("Globex").await;
    let acme_admin = api.key(Some(acme), Role::TenantAdmin).await;
    let globex_admin = api.key(Some(globex), Role::TenantAdmin).await;
    let id = grant(
        &api,
        new_grant(acme, GrantScope::Group("reports".into()), ALICE),
    )
    .await;

    let data = api.ok(&globex_admin, GRANTS, json!({})).await;
    assert_eq!(ids(&data), Vec::<String>::new());
    let data = api
        .ok(&globex_admin, GRANTS, json!({ "wallet": ALICE }))
        .await;
    assert_eq!(ids(&data), Vec::<String>::new());
    assert_eq!(
        api.error_code(&globex_admin, GRANTS, json!({ "t": acme.to_string() }))
            .await,
        "forbidden"
    );
    assert_eq!(
        api.error_code(&globex_admin, REVOKE, json!({ "id": id }))
            .await,
        "not_found"
    );
    assert_eq!(
        api.error_code(
            &globex_admin,
            REVOKE,
            json!({ "id": id, "t": acme.to_string() })
        )
        .await,
        "forbidden"
    );
    let data = api.ok(&acme_admin, GRANTS, json!({})).await;
    assert_eq!(ids(&data), [id.as_str()]);
    assert_eq!(data["grants"]["edges"][0]["node"]["revokedAt"], Value::Null);

    // An operator reaches it by naming the tenant.
    let data = api
        .ok(&api.operator, GRANTS, json!({ "t": acme.to_string() }))
        .await;
    assert_eq!(ids(&data), [id.as_str()]);
    let data = api
        .ok(
            &api.operator,
            REVOKE,
            json!({ "id": id, "t": acme.to_string() }),
        )
        .await;
    assert_eq!(data["revokeGrant"]["active"], false);
}
