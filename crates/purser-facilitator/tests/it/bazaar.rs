//! Resources learned from the `bazaar` extension of payments the facilitator settles.

use base64::Engine as _;
use purser_domain::auth::TenantScope;
use purser_domain::registry::{CatalogFilter, ResourceOrigin};
use serde_json::{Value, json};

use crate::support::{Backend, Fixture, Setup};

fn weather_extension() -> Value {
    json!({
        "info": {
            "input": { "type": "http", "method": "GET", "queryParams": { "city": "Paris" }, "pathParams": { "day": "monday" } },
            "output": { "type": "json", "example": { "temperature": 21 } }
        },
        "schema": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "input": {
                    "type": "object",
                    "properties": {
                        "type": { "type": "string", "const": "http" },
                        "method": { "type": "string", "enum": ["GET"] },
                        "queryParams": { "type": "object", "properties": { "city": { "type": "string" } } },
                        "pathParams": { "type": "object" }
                    },
                    "required": ["type", "method"],
                    "additionalProperties": false
                },
                "output": { "type": "object" }
            },
            "required": ["input"]
        },
        "routeTemplate": "/forecast/:day"
    })
}

async fn settle(fixture: &Fixture, body: &Value) -> (Value, Option<Value>) {
    let response = fixture
        .client
        .post(format!("{}/facilitator/settle", fixture.base))
        .bearer_auth(&fixture.key)
        .json(body)
        .send()
        .await
        .unwrap();
    let header = response.headers().get("EXTENSION-RESPONSES").map(|v| {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v.to_str().unwrap())
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    });
    (response.json().await.unwrap(), header)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_settled_payment_catalogs_its_resource_and_says_so() {
    let fixture = Fixture::start(Setup::new(Backend::Sqlite)).await;
    let payer = fixture.payer(0);
    let chain_id = fixture.chain().chain_id();

    let supported: Value = fixture
        .client
        .get(format!("{}/facilitator/supported", fixture.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        supported["extensions"]
            .as_array()
            .unwrap()
            .contains(&json!("bazaar")),
        "{supported}"
    );

    let mut body = fixture.payment(payer, 7_000).body(payer, chain_id);
    body["paymentPayload"]["resource"] = json!({
        "url": "https://weather.example/forecast/monday?city=Paris",
        "description": "Daily forecast",
        "mimeType": "application/json",
        "serviceName": "Example Weather",
        "tags": ["weather", "forecast"]
    });
    body["paymentPayload"]["extensions"] = json!({ "bazaar": weather_extension() });
    let (settled, header) = settle(&fixture, &body).await;
    assert_eq!(settled["success"], true, "{settled}");
    assert_eq!(header, Some(json!({ "bazaar": { "status": "success" } })));

    let listed = fixture
        .store
        .catalog_list(&CatalogFilter::default(), 0, 10)
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    let learned = &listed.items[0];
    assert_eq!(learned.tenant_id, fixture.tenant);
    assert_eq!(learned.origin, ResourceOrigin::Bazaar);
    assert_eq!(learned.url, "https://weather.example/forecast/:day");
    assert_eq!(learned.method.as_deref(), Some("GET"));
    assert_eq!(learned.metadata.name, "Example Weather");
    assert_eq!(learned.current.spec.accepts[0].amount.atomic(), 7_000);
    let stored = learned.current.spec.bazaar.as_ref().unwrap();
    assert!(stored["info"]["input"].get("pathParams").is_none());
    let found = fixture
        .store
        .catalog_search("city", &CatalogFilter::default(), 0, 10)
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "schema field names are searchable");

    // A second payment for another day is the same listing, in the same version.
    let mut again = fixture.payment(payer, 7_000).body(payer, chain_id);
    again["paymentPayload"]["resource"] = body["paymentPayload"]["resource"].clone();
    again["paymentPayload"]["resource"]["url"] = json!("https://weather.example/forecast/tuesday");
    let mut extension = weather_extension();
    extension["info"]["input"]["pathParams"] = json!({ "day": "tuesday" });
    again["paymentPayload"]["extensions"] = json!({ "bazaar": extension });
    let (settled, header) = settle(&fixture, &again).await;
    assert_eq!(settled["success"], true, "{settled}");
    assert_eq!(header.unwrap()["bazaar"]["status"], "success");
    let resources = fixture
        .store
        .list_resources(
            TenantScope::trusted(fixture.tenant),
            None,
            purser_domain::page::PageRequest::first(10).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resources.items.len(), 1);
    assert_eq!(resources.items[0].current.version, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_invalid_extension_is_rejected_but_the_payment_settles() {
    let fixture = Fixture::start(Setup::new(Backend::Sqlite)).await;
    let payer = fixture.payer(0);
    let chain_id = fixture.chain().chain_id();
    let cases = [
        (
            {
                let mut e = weather_extension();
                e["info"]["input"]["queryParams"]["city"] = json!(42);
                e
            },
            "does not match its schema",
        ),
        (
            {
                let mut e = weather_extension();
                e["schema"]["properties"]["input"]["$ref"] = json!("https://evil.example/s.json");
                e
            },
            "outside the schema",
        ),
        (json!({ "info": "nope" }), "no `info` object"),
    ];
    for (extension, reason) in cases {
        let mut body = fixture.payment(payer, 1_000).body(payer, chain_id);
        body["paymentPayload"]["resource"] =
            json!({ "url": "https://weather.example/forecast/monday" });
        body["paymentPayload"]["extensions"] = json!({ "bazaar": extension });
        let (settled, header) = settle(&fixture, &body).await;
        assert_eq!(settled["success"], true, "{settled}");
        let header = header.expect("an EXTENSION-RESPONSES header");
        assert_eq!(header["bazaar"]["status"], "rejected");
        let why = header["bazaar"]["rejectedReason"].as_str().unwrap();
        assert!(why.contains(reason), "{why}");
    }
    assert_eq!(
        fixture
            .store
            .catalog_list(&CatalogFilter::default(), 0, 10)
            .await
            .unwrap()
            .total,
        0
    );
    // No extension, no header.
    let body = fixture.payment(payer, 1_000).body(payer, chain_id);
    let (settled, header) = settle(&fixture, &body).await;
    assert_eq!(settled["success"], true);
    assert_eq!(header, None);
}
