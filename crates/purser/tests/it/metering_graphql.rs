//! Metering through the admin GraphQL API, on both backend pairs: meters and their prices,
//! usage per window and dimension, usage priced, corrections, and who may see and change what.
//! Events come in through `POST /v1/events`; every expected number is computed by hand.

use chrono::{DateTime, Duration, DurationRound, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{TestApp, error_codes, on_both_backends};
use crate::metering::{Row, at, compact_row, expect};

on_both_backends!(
    meters_are_created_listed_priced_and_archived,
    bad_meter_inputs_get_their_codes,
    usage_is_windowed_grouped_and_filtered,
    usage_of_each_aggregation,
    rated_usage_prices_each_subject_with_its_free_units,
    corrections_show_in_history_usage_and_as_of,
    tenants_cannot_reach_each_others_meters_or_events,
    read_only_keys_read_meters_but_cannot_change_them,
);

const METER_FIELDS: &str = "id tenantId slug name description eventType aggregation valuePath
    groupBy { name path }
    price { model unitAmount tiers { upTo unitAmount flatAmount } packageSize packageAmount
            percent valueDecimals freeUnits }
    createdAt updatedAt archivedAt";

fn create_meter_mutation() -> String {
    format!(
        "mutation($input: CreateMeterInput!) {{ createMeter(input: $input) {{ {METER_FIELDS} }} }}"
    )
}

const USAGE: &str = "query($meter: String!, $from: DateTime!, $to: DateTime!, $window: WindowSize,
        $tz: String! = \"UTC\", $subjects: [String!]! = [], $filters: [DimensionFilter!]! = [],
        $groupBy: [String!]! = [], $asOf: DateTime, $tenant: ID) {
    usage(tenantId: $tenant, meter: $meter, from: $from, to: $to, window: $window, timeZone: $tz,
          subjects: $subjects, filters: $filters, groupBy: $groupBy, asOf: $asOf) {
        meter { slug }
        rows { windowStart windowEnd subject groups { dimension value } value }
        corrections { source eventId revision kind subject time data reason recordedAt supersededAt }
    }
}";

const RATED: &str =
    "query($meter: String!, $from: DateTime!, $to: DateTime!, $subjects: [String!]! = []) {
    ratedUsage(meter: $meter, from: $from, to: $to, subjects: $subjects) {
        subject quantity freeUnits billable amountUsd amountAtomic
        lines { description units unitAmount flatAmount amount }
    }
}";

const HISTORY: &str = "query($source: String!, $id: String!) {
    usageEvent(source: $source, id: $id) {
        source eventId revision kind eventType subject time data reason recordedAt supersededAt
    }
}";

const AMEND: &str = "mutation($source: String!, $id: String!, $reason: String!, $subject: String,
        $time: DateTime, $data: JSON) {
    amendUsageEvent(source: $source, id: $id, reason: $reason, subject: $subject, time: $time,
                    data: $data) {
        source eventId revision kind subject time data reason supersededAt
    }
}";

const VOID: &str = "mutation($source: String!, $id: String!, $reason: String!) {
    voidUsageEvent(source: $source, id: $id, reason: $reason) {
        source eventId revision kind subject data reason supersededAt
    }
}";

const SOURCE: &str = "//api.example/llm";

/// A tenant and a `TENANT_ADMIN` key of it: (tenant id, secret).
async fn tenant_with_key(app: &TestApp, name: &str, role: &str) -> (String, String) {
    let data = app
        .graphql_ok(
            &app.operator_token,
            "mutation($name: String!) { createTenant(input: { name: $name }) { id } }",
            json!({ "name": name }),
        )
        .await;
    let tenant = data["createTenant"]["id"].as_str().unwrap().to_owned();
    let secret = key_of(app, &tenant, role).await;
    (tenant, secret)
}

/// A new key of `tenant` with `role`; answers its secret.
async fn key_of(app: &TestApp, tenant: &str, role: &str) -> String {
    let data = app
        .graphql_ok(
            &app.operator_token,
            "mutation($tenant: ID, $role: Role!) {
                createApiKey(input: { tenantId: $tenant, role: $role }) { secret }
            }",
            json!({ "tenant": tenant, "role": role }),
        )
        .await;
    data["createApiKey"]["secret"].as_str().unwrap().to_owned()
}

/// Creates a meter with `token`; answers it.
async fn create_meter(app: &TestApp, token: &str, input: Value) -> Value {
    let data = app
        .graphql_ok(token, &create_meter_mutation(), json!({ "input": input }))
        .await;
    data["createMeter"].clone()
}

/// The error codes of creating a meter from `input`.
async fn create_meter_codes(app: &TestApp, token: &str, input: Value) -> (Vec<String>, Value) {
    let (status, body) = app
        .graphql(
            Some(token),
            &create_meter_mutation(),
            json!({ "input": input }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (error_codes(&body), body)
}

/// A structured-mode CloudEvent from [`SOURCE`].
fn event(id: &str, kind: &str, subject: &str, time: DateTime<Utc>, data: Value) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": SOURCE,
        "type": kind,
        "subject": subject,
        "time": time.to_rfc3339(),
        "datacontenttype": "application/json",
        "data": data,
    })
}

/// Posts `events` as one batch with `token`; answers the batch answer.
async fn ingest(app: &TestApp, token: &str, events: &[Value]) -> Value {
    let response = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(token)
        .header("content-type", "application/cloudevents-batch+json")
        .body(serde_json::to_vec(events).unwrap())
        .send()
        .await
        .expect("POST /v1/events");
    let status = response.status();
    let body: Value = response.json().await.expect("a JSON answer");
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Posts `events`, which must all be stored now.
async fn ingest_all(app: &TestApp, token: &str, events: &[Value]) {
    let answer = ingest(app, token, events).await;
    assert_eq!(answer["accepted"], events.len(), "{answer}");
    assert_eq!(answer["rejected"], 0, "{answer}");
}

/// Midnight (UTC) two days ago: the first day of the tests' events, all in the past and well
/// within the ingestion window.
fn day0() -> DateTime<Utc> {
    (Utc::now() - Duration::days(2))
        .duration_trunc(Duration::days(1))
        .unwrap()
}

fn hours(n: i64) -> Duration {
    Duration::hours(n)
}

/// A usage row, compactly: window start and end (minutes from `origin`), subject, groups as
/// `name=value` (`name=-` for no value), value.
fn row(origin: DateTime<Utc>, row: &Value) -> Row {
    let groups = row["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            format!(
                "{}={}",
                g["dimension"].as_str().unwrap(),
                g["value"].as_str().unwrap_or("-")
            )
        })
        .collect::<Vec<_>>()
        .join(",");
    compact_row(origin, row, groups)
}

/// Runs `usage` with `variables` (`meter`, `from`, `to` and any others); answers the report.
async fn usage(app: &TestApp, token: &str, variables: Value) -> Value {
    app.graphql_ok(token, USAGE, variables).await["usage"].clone()
}

async fn usage_rows(
    app: &TestApp,
    token: &str,
    origin: DateTime<Utc>,
    variables: Value,
) -> Vec<(i64, i64, String, String, String)> {
    let report = usage(app, token, variables).await;
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| row(origin, r))
        .collect()
}

fn graduated_price() -> Value {
    json!({
        "model": "GRADUATED",
        "freeUnits": "10",
        "tiers": [
            { "upTo": "100", "unitAmount": "0.01" },
            { "upTo": "1000", "unitAmount": "0.005", "flatAmount": "1" },
            { "unitAmount": "0.001" },
        ],
    })
}

fn tokens_meter(slug: &str) -> Value {
    json!({
        "slug": slug,
        "name": "LLM tokens",
        "description": "Tokens in and out",
        "eventType": "llm.tokens",
        "aggregation": "SUM",
        "valuePath": "$.tokens",
        "groupBy": [
            { "name": "region", "path": "$.meta['region']" },
            { "name": "model", "path": "$.model" },
        ],
        "price": graduated_price(),
    })
}

async fn meters_are_created_listed_priced_and_archived(app: TestApp) {
    let (tenant, admin) = tenant_with_key(&app, "Acme", "TENANT_ADMIN").await;

    let tokens = create_meter(&app, &admin, tokens_meter("llm-tokens")).await;
    assert_eq!(tokens["tenantId"], tenant.as_str());
    assert_eq!(tokens["slug"], "llm-tokens");
    assert_eq!(tokens["name"], "LLM tokens");
    assert_eq!(tokens["description"], "Tokens in and out");
    assert_eq!(tokens["eventType"], "llm.tokens");
    assert_eq!(tokens["aggregation"], "SUM");
    assert_eq!(tokens["valuePath"], "$.tokens");
    // Dimensions by name.
    assert_eq!(
        tokens["groupBy"],
        json!([
            { "name": "model", "path": "$.model" },
            { "name": "region", "path": "$.meta['region']" },
        ])
    );
    assert_eq!(
        tokens["price"],
        json!({
            "model": "GRADUATED",
            "unitAmount": null,
            "tiers": [
                { "upTo": "100", "unitAmount": "0.01", "flatAmount": "0" },
                { "upTo": "1000", "unitAmount": "0.005", "flatAmount": "1" },
                { "upTo": null, "unitAmount": "0.001", "flatAmount": "0" },
            ],
            "packageSize": null,
            "packageAmount": null,
            "percent": null,
            "valueDecimals": null,
            "freeUnits": "10",
        })
    );
    assert!(tokens["archivedAt"].is_null());
    assert_eq!(tokens["createdAt"], tokens["updatedAt"]);

    let calls = create_meter(
        &app,
        &admin,
        json!({
            "slug": "api-calls",
            "name": "API calls",
            "eventType": "api.call",
            "aggregation": "COUNT",
            "groupBy": [{ "name": "route", "path": "$.route" }],
            "price": { "model": "PACKAGE", "packageSize": "1000", "packageAmount": "0.50" },
        }),
    )
    .await;
    assert_eq!(calls["aggregation"], "COUNT");
    assert!(calls["valuePath"].is_null());
    assert!(calls["description"].is_null());
    assert_eq!(calls["price"]["model"], "PACKAGE");
    assert_eq!(calls["price"]["packageSize"], "1000");
    assert_eq!(calls["price"]["packageAmount"], "0.5");
    assert_eq!(calls["price"]["freeUnits"], "0");
    assert!(calls["price"]["tiers"].is_null());

    let volume = create_meter(
        &app,
        &admin,
        json!({
            "slug": "payment-volume",
            "name": "Payment volume",
            "eventType": "payment.settled",
            "aggregation": "SUM",
            "valuePath": "$.amount",
            "price": { "model": "PERCENTAGE", "percent": "2.5", "valueDecimals": 6 },
        }),
    )
    .await;
    assert_eq!(volume["price"]["model"], "PERCENTAGE");
    assert_eq!(volume["price"]["percent"], "2.5");
    assert_eq!(volume["price"]["valueDecimals"], 6);
    assert!(volume["price"]["unitAmount"].is_null());

    let unpriced = create_meter(
        &app,
        &admin,
        json!({
            "slug": "active-users",
            "name": "Active users",
            "eventType": "api.call",
            "aggregation": "UNIQUE_COUNT",
            "valuePath": "$.user",
        }),
    )
    .await;
    assert!(unpriced["price"].is_null());

    // Listing: creation order, in pages both ways.
    let list = "query($first: Int, $after: String, $last: Int, $before: String, $archived: Boolean! = false) {
        meters(first: $first, after: $after, last: $last, before: $before, includeArchived: $archived) {
            nodes { slug archivedAt }
            pageInfo { hasNextPage hasPreviousPage endCursor startCursor }
        }
    }";
    let slugs = |data: &Value| -> Vec<String> {
        data["meters"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["slug"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = app.graphql_ok(&admin, list, json!({})).await;
    assert_eq!(
        slugs(&all),
        ["llm-tokens", "api-calls", "payment-volume", "active-users"]
    );
    let first = app.graphql_ok(&admin, list, json!({ "first": 2 })).await;
    assert_eq!(slugs(&first), ["llm-tokens", "api-calls"]);
    assert_eq!(first["meters"]["pageInfo"]["hasNextPage"], true);
    let next = app
        .graphql_ok(
            &admin,
            list,
            json!({ "first": 2, "after": first["meters"]["pageInfo"]["endCursor"] }),
        )
        .await;
    assert_eq!(slugs(&next), ["payment-volume", "active-users"]);
    assert_eq!(next["meters"]["pageInfo"]["hasNextPage"], false);
    assert_eq!(next["meters"]["pageInfo"]["hasPreviousPage"], true);
    let last = app.graphql_ok(&admin, list, json!({ "last": 1 })).await;
    assert_eq!(slugs(&last), ["active-users"]);

    // One meter by slug; an unknown slug is `not_found`.
    let one = app
        .graphql_ok(
            &admin,
            "{ meter(slug: \"api-calls\") { id name } }",
            json!({}),
        )
        .await;
    assert_eq!(one["meter"]["id"], calls["id"]);
    assert_eq!(one["meter"]["name"], "API calls");
    let (_, body) = app
        .graphql(Some(&admin), "{ meter(slug: \"nope\") { id } }", json!({}))
        .await;
    assert_eq!(error_codes(&body), ["not_found"], "{body}");

    // Prices change and go.
    let set_price = format!(
        "mutation($id: ID!, $price: MeterPriceInput) {{
            setMeterPrice(meterId: $id, price: $price) {{ {METER_FIELDS} }}
        }}"
    );
    let repriced = app
        .graphql_ok(
            &admin,
            &set_price,
            json!({
                "id": calls["id"],
                "price": {
                    "model": "VOLUME",
                    "freeUnits": "100",
                    "tiers": [
                        { "upTo": "10000", "unitAmount": "0.001" },
                        { "unitAmount": "0.0005", "flatAmount": "2" },
                    ],
                },
            }),
        )
        .await;
    let repriced = &repriced["setMeterPrice"];
    assert_eq!(repriced["price"]["model"], "VOLUME");
    assert_eq!(repriced["price"]["freeUnits"], "100");
    assert_eq!(repriced["price"]["tiers"][1]["flatAmount"], "2");
    assert!(repriced["price"]["packageSize"].is_null());
    assert!(at(&repriced["updatedAt"]) >= at(&calls["updatedAt"]));
    let standard = app
        .graphql_ok(
            &admin,
            &set_price,
            json!({ "id": calls["id"], "price": { "model": "STANDARD", "unitAmount": "0.000002" } }),
        )
        .await;
    assert_eq!(standard["setMeterPrice"]["price"]["unitAmount"], "0.000002");
    assert!(standard["setMeterPrice"]["price"]["tiers"].is_null());
    let removed = app
        .graphql_ok(
            &admin,
            &set_price,
            json!({ "id": calls["id"], "price": null }),
        )
        .await;
    assert!(removed["setMeterPrice"]["price"].is_null());
    let read = app
        .graphql_ok(
            &admin,
            "{ meter(slug: \"api-calls\") { price { model } } }",
            json!({}),
        )
        .await;
    assert!(read["meter"]["price"].is_null(), "{read}");

    // Archiving hides a meter from the default listing, not from reads.
    let archive = "mutation($id: ID!) { archiveMeter(meterId: $id) { slug archivedAt } }";
    let archived = app
        .graphql_ok(&admin, archive, json!({ "id": calls["id"] }))
        .await;
    let archived_at = archived["archiveMeter"]["archivedAt"].clone();
    assert!(archived_at.is_string(), "{archived}");
    let again = app
        .graphql_ok(&admin, archive, json!({ "id": calls["id"] }))
        .await;
    assert_eq!(
        again["archiveMeter"]["archivedAt"], archived_at,
        "the first time stays"
    );
    let active = app.graphql_ok(&admin, list, json!({})).await;
    assert_eq!(
        slugs(&active),
        ["llm-tokens", "payment-volume", "active-users"]
    );
    let with_archived = app
        .graphql_ok(&admin, list, json!({ "archived": true }))
        .await;
    assert_eq!(
        slugs(&with_archived),
        ["llm-tokens", "api-calls", "payment-volume", "active-users"]
    );
    let read = app
        .graphql_ok(
            &admin,
            "{ meter(slug: \"api-calls\") { archivedAt } }",
            json!({}),
        )
        .await;
    assert_eq!(read["meter"]["archivedAt"], archived_at);

    // Operators name the tenant.
    let (_, body) = app
        .graphql(
            Some(&app.operator_token),
            "{ meters { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_codes(&body), ["invalid_input"], "{body}");
    let data = app
        .graphql_ok(
            &app.operator_token,
            "query($t: ID!) { meters(tenantId: $t) { nodes { slug } } }",
            json!({ "t": tenant }),
        )
        .await;
    assert_eq!(slugs(&data).len(), 3);
}

async fn bad_meter_inputs_get_their_codes(app: TestApp) {
    let (_, admin) = tenant_with_key(&app, "Acme", "TENANT_ADMIN").await;
    create_meter(&app, &admin, tokens_meter("llm-tokens")).await;

    let with = |change: &dyn Fn(&mut Value)| {
        let mut input = tokens_meter("other");
        change(&mut input);
        input
    };
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "descendant value path",
            with(&|m| m["valuePath"] = json!("$..tokens")),
            "invalid_json_path",
            "descendant",
        ),
        (
            "wildcard value path",
            with(&|m| m["valuePath"] = json!("$.tokens[*]")),
            "invalid_json_path",
            "$.tokens[*]",
        ),
        (
            "dimension path without `$`",
            with(&|m| m["groupBy"][0]["path"] = json!("meta.region")),
            "invalid_json_path",
            "meta.region",
        ),
        (
            "tiers out of order",
            with(&|m| {
                m["price"]["tiers"][1]["upTo"] = json!("50");
            }),
            "invalid_price_model",
            "tier 2",
        ),
        (
            "a last tier with an end",
            with(&|m| m["price"]["tiers"][2]["upTo"] = json!("5000")),
            "invalid_price_model",
            "last tier",
        ),
        (
            "negative free units",
            with(&|m| m["price"]["freeUnits"] = json!("-1")),
            "invalid_price_model",
            "free units",
        ),
        (
            "a standard price without its unit amount",
            with(&|m| m["price"] = json!({ "model": "STANDARD" })),
            "invalid_price_model",
            "`unitAmount`",
        ),
        (
            "a field of another model",
            with(&|m| m["price"]["unitAmount"] = json!("1")),
            "invalid_price_model",
            "takes no `unitAmount`",
        ),
        (
            "a zero package",
            with(&|m| {
                m["price"] = json!({ "model": "PACKAGE", "packageSize": "0", "packageAmount": "1" })
            }),
            "invalid_price_model",
            "package size",
        ),
        (
            "a percentage over 100",
            with(&|m| m["price"] = json!({ "model": "PERCENTAGE", "percent": "101" })),
            "invalid_price_model",
            "between 0 and 100",
        ),
        (
            "a decimal that is not one",
            with(&|m| m["price"]["tiers"][1]["unitAmount"] = json!("half a cent")),
            "invalid_input",
            "`price.tiers[1].unitAmount`",
        ),
        (
            "free units that are not a decimal",
            with(&|m| m["price"]["freeUnits"] = json!("ten")),
            "invalid_input",
            "`price.freeUnits`",
        ),
        (
            "a slug taken",
            with(&|m| m["slug"] = json!("llm-tokens")),
            "meter_slug_taken",
            "",
        ),
        (
            "COUNT with a value path",
            with(&|m| m["aggregation"] = json!("COUNT")),
            "invalid_input",
            "COUNT",
        ),
        (
            "SUM without one",
            with(&|m| m["valuePath"] = Value::Null),
            "invalid_input",
            "value JSONPath",
        ),
        (
            "an upper-case slug",
            with(&|m| m["slug"] = json!("LLM")),
            "invalid_input",
            "slug",
        ),
        (
            "a dimension named subject",
            with(&|m| m["groupBy"][0]["name"] = json!("subject")),
            "invalid_input",
            "subject",
        ),
        (
            "a dimension named twice",
            with(&|m| m["groupBy"][1]["name"] = json!("region")),
            "invalid_input",
            "twice",
        ),
    ];
    for (what, input, code, says) in cases {
        let (codes, body) = create_meter_codes(&app, &admin, input).await;
        assert_eq!(codes, [code], "{what}: {body}");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(says), "{what}: `{message}` lacks `{says}`");
        assert!(body["data"].is_null(), "{what}: {body}");
    }
    // None of them was stored.
    let data = app
        .graphql_ok(
            &admin,
            "{ meters(includeArchived: true) { nodes { slug } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["meters"]["nodes"], json!([{ "slug": "llm-tokens" }]));

    // A slug stays taken after its meter is archived.
    let id = app
        .graphql_ok(&admin, "{ meter(slug: \"llm-tokens\") { id } }", json!({}))
        .await["meter"]["id"]
        .clone();
    app.graphql_ok(
        &admin,
        "mutation($id: ID!) { archiveMeter(meterId: $id) { id } }",
        json!({ "id": id }),
    )
    .await;
    let (codes, body) = create_meter_codes(&app, &admin, tokens_meter("llm-tokens")).await;
    assert_eq!(codes, ["meter_slug_taken"], "{body}");

    // Prices are checked on change too; unknown and malformed meter ids are refused.
    let set_price = "mutation($id: ID!, $price: MeterPriceInput) { setMeterPrice(meterId: $id, price: $price) { id } }";
    for (id, price, code) in [
        (
            id.clone(),
            json!({ "model": "VOLUME", "tiers": [] }),
            "invalid_price_model",
        ),
        (
            id.clone(),
            json!({ "model": "STANDARD", "unitAmount": "-0.01" }),
            "invalid_price_model",
        ),
        (
            id.clone(),
            json!({ "model": "PERCENTAGE", "percent": "1", "valueDecimals": -1 }),
            "invalid_price_model",
        ),
        (
            json!("01890f6e-0000-7000-8000-000000000000"),
            json!({ "model": "STANDARD", "unitAmount": "1" }),
            "not_found",
        ),
        (
            json!("not-an-id"),
            json!({ "model": "STANDARD", "unitAmount": "1" }),
            "invalid_input",
        ),
    ] {
        let (_, body) = app
            .graphql(Some(&admin), set_price, json!({ "id": id, "price": price }))
            .await;
        assert_eq!(error_codes(&body), [code], "{price}: {body}");
    }

    // Usage queries the domain cannot plan.
    let from = day0();
    let to = from + Duration::days(1);
    for (variables, says) in [
        (
            json!({ "meter": "llm-tokens", "from": to, "to": from }),
            "`from` must be before `to`",
        ),
        (
            json!({ "meter": "llm-tokens", "from": from, "to": to, "groupBy": ["colour"] }),
            "no dimension `colour`",
        ),
        (
            json!({ "meter": "llm-tokens", "from": from, "to": to, "groupBy": ["model", "model"] }),
            "twice",
        ),
        (
            json!({ "meter": "llm-tokens", "from": from, "to": to, "window": "DAY", "tz": "Mars/Olympus" }),
            "Mars/Olympus",
        ),
        (
            json!({ "meter": "llm-tokens", "from": from, "to": to,
                    "filters": [{ "dimension": "subject", "values": ["a"] }] }),
            "`subjects`",
        ),
        (
            json!({ "meter": "llm-tokens", "from": from, "to": to,
                    "filters": [{ "dimension": "model", "values": [] }] }),
            "1 to 100 values",
        ),
        (
            json!({ "meter": "llm-tokens", "from": from - Duration::days(30), "to": to, "window": "MINUTE" }),
            "more than 10000",
        ),
    ] {
        let (_, body) = app.graphql(Some(&admin), USAGE, variables.clone()).await;
        assert_eq!(
            error_codes(&body),
            ["invalid_usage_query"],
            "{variables}: {body}"
        );
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(says), "`{message}` lacks `{says}`");
    }
    let (_, body) = app
        .graphql(
            Some(&admin),
            USAGE,
            json!({ "meter": "nope", "from": from, "to": to }),
        )
        .await;
    assert_eq!(error_codes(&body), ["not_found"], "{body}");
}

/// The events of the tokens meter's tests, from `day0`: (id, subject, hour, data).
fn token_events(day0: DateTime<Utc>) -> Vec<Value> {
    let tokens = |id: &str, subject: &str, hour: i64, data: Value| {
        event(id, "llm.tokens", subject, day0 + hours(hour), data)
    };
    vec![
        tokens(
            "e1",
            "alice",
            1,
            json!({ "tokens": 100, "model": "gpt", "meta": { "region": "eu" } }),
        ),
        tokens(
            "e2",
            "alice",
            2,
            json!({ "tokens": 50, "model": "gpt", "meta": { "region": "us" } }),
        ),
        tokens(
            "e3",
            "bob",
            3,
            json!({ "tokens": 30, "model": "claude", "meta": { "region": "eu" } }),
        ),
        tokens(
            "e4",
            "alice",
            25,
            json!({ "tokens": 20, "model": "claude", "meta": { "region": "eu" } }),
        ),
        tokens(
            "e5",
            "bob",
            29,
            json!({ "tokens": "12.5", "model": "gpt", "meta": { "region": "eu" } }),
        ),
        // No model and no region: grouped under no value.
        tokens("e6", "bob", 30, json!({ "tokens": 7 })),
    ]
}

async fn usage_is_windowed_grouped_and_filtered(app: TestApp) {
    let (_, admin) = tenant_with_key(&app, "Acme", "TENANT_ADMIN").await;
    create_meter(&app, &admin, tokens_meter("llm-tokens")).await;
    let day0 = day0();
    let events = token_events(day0);
    ingest_all(&app, &admin, &events).await;
    // A retry stores nothing again, and an event the meter cannot read is refused.
    let again = ingest(
        &app,
        &admin,
        &[
            events[0].clone(),
            event(
                "e7",
                "llm.tokens",
                "bob",
                day0 + hours(4),
                json!({ "model": "gpt" }),
            ),
        ],
    )
    .await;
    assert_eq!(again["duplicates"], 1, "{again}");
    assert_eq!(again["rejected"], 1, "{again}");
    assert_eq!(again["events"][1]["error"]["code"], "meter_value_missing");

    let from = day0;
    let to = day0 + Duration::days(2);
    let base = json!({ "meter": "llm-tokens", "from": from, "to": to });
    let with = |extra: Value| {
        let mut variables = base.clone();
        variables
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        variables
    };

    // The whole period, one row: 100 + 50 + 30 + 20 + 12.5 + 7.
    let report = usage(&app, &admin, base.clone()).await;
    assert_eq!(report["meter"]["slug"], "llm-tokens");
    assert_eq!(report["corrections"], json!([]));
    assert_eq!(
        usage_rows(&app, &admin, day0, base.clone()).await,
        expect(&[(0, 2 * 1440, "-", "", "219.5")])
    );

    // Per day and subject.
    assert_eq!(
        usage_rows(
            &app,
            &admin,
            day0,
            with(json!({ "window": "DAY", "groupBy": ["subject"] }))
        )
        .await,
        expect(&[
            (0, 1440, "alice", "", "150"),
            (0, 1440, "bob", "", "30"),
            (1440, 2880, "alice", "", "20"),
            (1440, 2880, "bob", "", "19.5"),
        ])
    );

    // Per model, over the whole period; e6 has none.
    assert_eq!(
        usage_rows(&app, &admin, day0, with(json!({ "groupBy": ["model"] }))).await,
        expect(&[
            (0, 2880, "-", "model=-", "7"),
            (0, 2880, "-", "model=claude", "50"),
            (0, 2880, "-", "model=gpt", "162.5"),
        ])
    );

    // Per model in the EU only: e2 (US) and e6 (no region) are left out.
    assert_eq!(
        usage_rows(
            &app,
            &admin,
            day0,
            with(json!({
                "groupBy": ["model"],
                "filters": [{ "dimension": "region", "values": ["eu"] }],
            }))
        )
        .await,
        expect(&[
            (0, 2880, "-", "model=claude", "50"),
            (0, 2880, "-", "model=gpt", "112.5"),
        ])
    );

    // Two dimensions and the subject, for one subject.
    assert_eq!(
        usage_rows(
            &app,
            &admin,
            day0,
            with(json!({ "subjects": ["bob"], "groupBy": ["subject", "region", "model"] }))
        )
        .await,
        expect(&[
            (0, 2880, "bob", "model=-,region=-", "7"),
            (0, 2880, "bob", "model=claude,region=eu", "30"),
            (0, 2880, "bob", "model=gpt,region=eu", "12.5"),
        ])
    );

    // Hours of the first day; windows without events have no rows.
    assert_eq!(
        usage_rows(
            &app,
            &admin,
            day0,
            json!({ "meter": "llm-tokens", "from": day0, "to": day0 + hours(6), "window": "HOUR" })
        )
        .await,
        expect(&[
            (60, 120, "-", "", "100"),
            (120, 180, "-", "", "50"),
            (180, 240, "-", "", "30"),
        ])
    );

    // Days of India (UTC+05:30) start at 18:30 UTC: the first window starts before `from`,
    // and only events in [from, to) count.
    assert_eq!(
        usage_rows(
            &app,
            &admin,
            day0,
            with(json!({ "window": "DAY", "tz": "Asia/Kolkata" }))
        )
        .await,
        expect(&[(-330, 1110, "-", "", "180"), (1110, 2550, "-", "", "39.5"),])
    );
    // A period without events has no rows.
    let empty = usage(
        &app,
        &admin,
        json!({ "meter": "llm-tokens", "from": day0 - Duration::days(3), "to": day0 }),
    )
    .await;
    assert_eq!(empty["rows"], json!([]));
}

async fn usage_of_each_aggregation(app: TestApp) {
    let (_, admin) = tenant_with_key(&app, "Acme", "TENANT_ADMIN").await;
    for (slug, aggregation, value) in [
        ("calls", "COUNT", None),
        ("users", "UNIQUE_COUNT", Some("$.user")),
        ("latency-max", "MAX", Some("$.ms")),
        ("latency-min", "MIN", Some("$.ms")),
        ("latency-avg", "AVG", Some("$.ms")),
        ("latency-latest", "LATEST", Some("$.ms")),
        ("latency-sum", "SUM", Some("$.ms")),
    ] {
        let meter = create_meter(
            &app,
            &admin,
            json!({
                "slug": slug,
                "name": slug,
                "eventType": "api.call",
                "aggregation": aggregation,
                "valuePath": value,
                "groupBy": [{ "name": "route", "path": "$.route" }],
            }),
        )
        .await;
        assert_eq!(meter["aggregation"], aggregation);
    }
    let day0 = day0();
    let call = |id: &str, subject: &str, minute: i64, user: &str, ms: &str, route: &str| {
        event(
            id,
            "api.call",
            subject,
            day0 + Duration::minutes(minute),
            json!({ "user": user, "ms": ms.parse::<f64>().unwrap(), "route": route }),
        )
    };
    // Latest by event time, not by arrival: c2 arrives last but happened first.
    ingest_all(
        &app,
        &admin,
        &[
            call("c1", "acme", 10, "u1", "10", "/a"),
            call("c3", "acme", 30, "u1", "30", "/b"),
            call("c4", "acme", 40, "u3", "45.5", "/a"),
            call("c2", "acme", 5, "u2", "20", "/a"),
        ],
    )
    .await;
    let from = day0;
    let to = day0 + hours(1);
    for (slug, total, per_route) in [
        ("calls", "4", ["3", "1"]),
        ("users", "3", ["3", "1"]),
        ("latency-max", "45.5", ["45.5", "30"]),
        ("latency-min", "10", ["10", "30"]),
        // (10 + 30 + 45.5 + 20) / 4 = 26.375; /a: 75.5 / 3
        (
            "latency-avg",
            "26.375",
            ["25.166666666666666666666666667", "30"],
        ),
        ("latency-latest", "45.5", ["45.5", "30"]),
        ("latency-sum", "105.5", ["75.5", "30"]),
    ] {
        let rows = usage_rows(
            &app,
            &admin,
            day0,
            json!({ "meter": slug, "from": from, "to": to }),
        )
        .await;
        assert_eq!(rows, expect(&[(0, 60, "-", "", total)]), "{slug}");
        let rows = usage_rows(
            &app,
            &admin,
            day0,
            json!({ "meter": slug, "from": from, "to": to, "groupBy": ["route"] }),
        )
        .await;
        assert_eq!(
            rows,
            expect(&[
                (0, 60, "-", "route=/a", per_route[0]),
                (0, 60, "-", "route=/b", per_route[1]),
            ]),
            "{slug} per route"
        );
    }
    // Minute windows split what hours fold together.
    let rows = usage_rows(
        &app,
        &admin,
        day0,
        json!({ "meter": "latency-latest", "from": from, "to": day0 + Duration::minutes(11), "window": "MINUTE" }),
    )
    .await;
    assert_eq!(
        rows,
        expect(&[(5, 6, "-", "", "20"), (10, 11, "-", "", "10")])
    );
}

async fn rated_usage_prices_each_subject_with_its_free_units(app: TestApp) {
    let (_, admin) = tenant_with_key(&app, "Acme", "TENANT_ADMIN").await;
    create_meter(&app, &admin, tokens_meter("llm-tokens")).await;
    let day0 = day0();
    let tokens = |id: &str, subject: &str, hour: i64, tokens: Value| {
        event(
            id,
            "llm.tokens",
            subject,
            day0 + hours(hour),
            json!({ "tokens": tokens }),
        )
    };
    ingest_all(
        &app,
        &admin,
        &[
            tokens("r1", "alice", 1, json!(1000)),
            tokens("r2", "alice", 2, json!(500)),
            tokens("r3", "bob", 3, json!(60)),
            tokens("r4", "carol", 4, json!(5)),
            tokens("r5", "dave", 5, json!("110.0001")),
            // Outside the rated period.
            tokens("r6", "alice", 30, json!(1_000_000)),
        ],
    )
    .await;
    let period = json!({ "meter": "llm-tokens", "from": day0, "to": day0 + Duration::days(1) });
    let rated = app.graphql_ok(&admin, RATED, period.clone()).await;
    let rated = rated["ratedUsage"].as_array().unwrap().clone();
    let subjects: Vec<&str> = rated
        .iter()
        .map(|r| r["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["alice", "bob", "carol", "dave"]);

    // alice: 1500 - 10 free = 1490 billable: 100 × 0.01 + (1 + 900 × 0.005) + 490 × 0.001.
    let alice = &rated[0];
    assert_eq!(alice["quantity"], "1500");
    assert_eq!(alice["freeUnits"], "10");
    assert_eq!(alice["billable"], "1490");
    assert_eq!(alice["amountUsd"], "6.99");
    assert_eq!(alice["amountAtomic"], "6990000");
    assert_eq!(
        alice["lines"],
        json!([
            { "description": "tier 1 (above 0 up to 100)", "units": "100", "unitAmount": "0.01", "flatAmount": "0", "amount": "1" },
            { "description": "tier 2 (above 100 up to 1000)", "units": "900", "unitAmount": "0.005", "flatAmount": "1", "amount": "5.5" },
            { "description": "tier 3 (above 1000)", "units": "490", "unitAmount": "0.001", "flatAmount": "0", "amount": "0.49" },
        ])
    );
    // bob: 60 - 10 = 50 in the first tier.
    let bob = &rated[1];
    assert_eq!(
        (&bob["billable"], &bob["amountUsd"], &bob["amountAtomic"]),
        (&json!("50"), &json!("0.5"), &json!("500000"))
    );
    assert_eq!(bob["lines"].as_array().unwrap().len(), 1);
    // carol: all 5 free.
    let carol = &rated[2];
    assert_eq!(carol["quantity"], "5");
    assert_eq!(carol["freeUnits"], "5");
    assert_eq!(carol["billable"], "0");
    assert_eq!(carol["amountUsd"], "0");
    assert_eq!(carol["amountAtomic"], "0");
    assert_eq!(carol["lines"], json!([]));
    // dave: 100.0001 billable: 1 + (1 + 0.0001 × 0.005) = 2.0000005 USD, half a micro-USD
    // over 2, which rounds up once, at the end.
    let dave = &rated[3];
    assert_eq!(dave["billable"], "100.0001");
    assert_eq!(dave["amountUsd"], "2.0000005");
    assert_eq!(dave["amountAtomic"], "2000001");

    // Only the subjects asked for.
    let mut only_bob = period.clone();
    only_bob["subjects"] = json!(["bob", "nobody"]);
    let rated = app.graphql_ok(&admin, RATED, only_bob).await;
    let subjects: Vec<&str> = rated["ratedUsage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["bob"]);

    // A meter without a price cannot be rated.
    create_meter(
        &app,
        &admin,
        json!({ "slug": "unpriced", "name": "Unpriced", "eventType": "llm.tokens", "aggregation": "COUNT" }),
    )
    .await;
    let (_, body) = app
        .graphql(
            Some(&admin),
            RATED,
            json!({ "meter": "unpriced", "from": day0, "to": day0 + Duration::days(1) }),
        )
        .await;
    assert_eq!(error_codes(&body), ["invalid_usage_query"], "{body}");
}

async fn corrections_show_in_history_usage_and_as_of(app: TestApp) {
    let (_, admin) = tenant_with_key(&app, "Acme", "TENANT_ADMIN").await;
    create_meter(&app, &admin, tokens_meter("llm-tokens")).await;
    let day0 = day0();
    let events = token_events(day0);
    ingest_all(&app, &admin, &events[..3]).await;
    let period = json!({ "meter": "llm-tokens", "from": day0, "to": day0 + Duration::days(1), "groupBy": ["subject"] });
    let before = usage_rows(&app, &admin, day0, period.clone()).await;
    assert_eq!(
        before,
        expect(&[(0, 1440, "alice", "", "150"), (0, 1440, "bob", "", "30")])
    );
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let as_of = Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    // e1 was double counted: 100 becomes 40.
    let amended = app
        .graphql_ok(
            &admin,
            AMEND,
            json!({
                "source": SOURCE, "id": "e1", "reason": "  double counted ",
                "data": { "tokens": 40, "model": "gpt", "meta": { "region": "eu" } },
            }),
        )
        .await;
    let amended = &amended["amendUsageEvent"];
    assert_eq!(amended["source"], SOURCE);
    assert_eq!(amended["eventId"], "e1");
    assert_eq!(amended["revision"], 1);
    assert_eq!(amended["kind"], "AMENDMENT");
    assert_eq!(amended["subject"], "alice");
    assert_eq!(at(&amended["time"]), day0 + hours(1));
    assert_eq!(amended["data"]["tokens"], 40);
    assert_eq!(amended["reason"], "double counted");
    assert!(amended["supersededAt"].is_null());
    // e2 was alice's usage on bob's behalf.
    let moved = app
        .graphql_ok(
            &admin,
            AMEND,
            json!({ "source": SOURCE, "id": "e2", "reason": "wrong customer", "subject": "bob" }),
        )
        .await;
    assert_eq!(moved["amendUsageEvent"]["subject"], "bob");
    assert_eq!(
        moved["amendUsageEvent"]["data"]["tokens"], 50,
        "the data stays"
    );
    // e3 was test traffic.
    let voided = app
        .graphql_ok(
            &admin,
            VOID,
            json!({ "source": SOURCE, "id": "e3", "reason": "test traffic" }),
        )
        .await;
    assert_eq!(voided["voidUsageEvent"]["kind"], "VOID");
    assert_eq!(voided["voidUsageEvent"]["revision"], 1);
    // e1 again: 40 becomes 45, and moves to the next hour.
    let again = app
        .graphql_ok(
            &admin,
            AMEND,
            json!({
                "source": SOURCE, "id": "e1", "reason": "recounted",
                "time": day0 + hours(5),
                "data": { "tokens": 45, "model": "gpt", "meta": { "region": "eu" } },
            }),
        )
        .await;
    assert_eq!(again["amendUsageEvent"]["revision"], 2);

    // The history keeps every entry, oldest first; only the last is current.
    let history = app
        .graphql_ok(&admin, HISTORY, json!({ "source": SOURCE, "id": "e1" }))
        .await;
    let history = history["usageEvent"].as_array().unwrap().clone();
    let summary: Vec<(i64, &str, i64, Option<&str>, bool)> = history
        .iter()
        .map(|entry| {
            (
                entry["revision"].as_i64().unwrap(),
                entry["kind"].as_str().unwrap(),
                entry["data"]["tokens"].as_i64().unwrap(),
                entry["reason"].as_str(),
                entry["supersededAt"].is_null(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (0, "EVENT", 100, None, false),
            (1, "AMENDMENT", 40, Some("double counted"), false),
            (2, "AMENDMENT", 45, Some("recounted"), true),
        ]
    );
    assert!(
        history
            .iter()
            .all(|e| e["eventType"] == "llm.tokens" && e["eventId"] == "e1")
    );
    assert_eq!(at(&history[0]["time"]), day0 + hours(1));
    assert_eq!(at(&history[2]["time"]), day0 + hours(5));
    assert!(at(&history[0]["recordedAt"]) < as_of);
    assert!(at(&history[1]["recordedAt"]) > as_of);
    // A superseded entry was superseded when its successor was recorded.
    assert_eq!(history[0]["supersededAt"], history[1]["recordedAt"]);

    // Usage now: alice 45 (e1); bob 50 (e2); e3 is gone.
    let report = usage(&app, &admin, period.clone()).await;
    let rows: Vec<_> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| row(day0, r))
        .collect();
    assert_eq!(
        rows,
        expect(&[(0, 1440, "alice", "", "45"), (0, 1440, "bob", "", "50")])
    );
    // ... and lists the corrections, newest first.
    let corrections: Vec<(&str, i64, &str)> = report["corrections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["eventId"].as_str().unwrap(),
                c["revision"].as_i64().unwrap(),
                c["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        corrections,
        [
            ("e1", 2, "AMENDMENT"),
            ("e3", 1, "VOID"),
            ("e2", 1, "AMENDMENT"),
            ("e1", 1, "AMENDMENT"),
        ]
    );
    // Hourly, e1 is at its amended time.
    let mut hourly = period.clone();
    hourly["window"] = json!("HOUR");
    hourly["groupBy"] = json!([]);
    assert_eq!(
        usage_rows(&app, &admin, day0, hourly).await,
        expect(&[(120, 180, "-", "", "50"), (300, 360, "-", "", "45")])
    );

    // As of before the corrections, the numbers are the ones reported then, with no corrections.
    let mut then = period.clone();
    then["asOf"] = json!(as_of);
    let report = usage(&app, &admin, then).await;
    let rows: Vec<_> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| row(day0, r))
        .collect();
    assert_eq!(rows, before);
    assert_eq!(report["corrections"], json!([]));

    // The rated usage follows the corrections: bob 50 - 10 free = 40 × 0.01.
    let rated = app
        .graphql_ok(
            &admin,
            RATED,
            json!({ "meter": "llm-tokens", "from": day0, "to": day0 + Duration::days(1), "subjects": ["bob"] }),
        )
        .await;
    assert_eq!(rated["ratedUsage"][0]["amountUsd"], "0.4");

    // What corrections refuse.
    for (mutation, variables, code) in [
        (
            VOID,
            json!({ "source": SOURCE, "id": "e3", "reason": "again" }),
            "event_voided",
        ),
        (
            AMEND,
            json!({ "source": SOURCE, "id": "e3", "reason": "revive", "subject": "carol" }),
            "event_voided",
        ),
        (
            AMEND,
            json!({ "source": SOURCE, "id": "e2", "reason": "same", "subject": "bob" }),
            "invalid_input",
        ),
        (
            AMEND,
            json!({ "source": SOURCE, "id": "e2", "reason": " ", "subject": "carol" }),
            "invalid_input",
        ),
        (
            AMEND,
            json!({ "source": SOURCE, "id": "e2", "reason": "drop tokens", "data": { "model": "gpt" } }),
            "meter_value_missing",
        ),
        (
            AMEND,
            json!({ "source": SOURCE, "id": "e2", "reason": "later", "time": Utc::now() + Duration::hours(1) }),
            "event_in_future",
        ),
        (
            AMEND,
            json!({ "source": SOURCE, "id": "nope", "reason": "r", "subject": "carol" }),
            "not_found",
        ),
        (
            VOID,
            json!({ "source": "//other", "id": "e1", "reason": "r" }),
            "not_found",
        ),
    ] {
        let (_, body) = app.graphql(Some(&admin), mutation, variables.clone()).await;
        assert_eq!(error_codes(&body), [code], "{variables}: {body}");
    }
    let (_, body) = app
        .graphql(
            Some(&admin),
            HISTORY,
            json!({ "source": SOURCE, "id": "nope" }),
        )
        .await;
    assert_eq!(error_codes(&body), ["not_found"], "{body}");
    // None of the refusals wrote an entry.
    let history = app
        .graphql_ok(&admin, HISTORY, json!({ "source": SOURCE, "id": "e2" }))
        .await;
    assert_eq!(history["usageEvent"].as_array().unwrap().len(), 2);
    let history = app
        .graphql_ok(&admin, HISTORY, json!({ "source": SOURCE, "id": "e3" }))
        .await;
    assert_eq!(history["usageEvent"].as_array().unwrap().len(), 2);
}

async fn tenants_cannot_reach_each_others_meters_or_events(app: TestApp) {
    let (tenant_a, admin_a) = tenant_with_key(&app, "Tenant A", "TENANT_ADMIN").await;
    let (tenant_b, admin_b) = tenant_with_key(&app, "Tenant B", "TENANT_ADMIN").await;
    let meter_a = create_meter(&app, &admin_a, tokens_meter("llm-tokens")).await;
    let day0 = day0();
    ingest_all(&app, &admin_a, &token_events(day0)[..1]).await;
    let from = day0;
    let to = day0 + Duration::days(1);

    let attempts: Vec<(&str, String, Value)> = vec![
        (
            "meter",
            "{ meter(slug: \"llm-tokens\") { id } }".into(),
            json!({}),
        ),
        (
            "usage",
            USAGE.into(),
            json!({ "meter": "llm-tokens", "from": from, "to": to }),
        ),
        (
            "ratedUsage",
            RATED.into(),
            json!({ "meter": "llm-tokens", "from": from, "to": to }),
        ),
        (
            "usageEvent",
            HISTORY.into(),
            json!({ "source": SOURCE, "id": "e1" }),
        ),
        (
            "amendUsageEvent",
            AMEND.into(),
            json!({ "source": SOURCE, "id": "e1", "reason": "mine now", "subject": "mallory" }),
        ),
        (
            "voidUsageEvent",
            VOID.into(),
            json!({ "source": SOURCE, "id": "e1", "reason": "gone" }),
        ),
        (
            "setMeterPrice",
            "mutation($id: ID!) { setMeterPrice(meterId: $id, price: null) { id } }".into(),
            json!({ "id": meter_a["id"] }),
        ),
        (
            "archiveMeter",
            "mutation($id: ID!) { archiveMeter(meterId: $id) { id } }".into(),
            json!({ "id": meter_a["id"] }),
        ),
    ];
    for (field, query, variables) in &attempts {
        let (_, body) = app.graphql(Some(&admin_b), query, variables.clone()).await;
        assert_eq!(error_codes(&body), ["not_found"], "{field}: {body}");
        assert!(
            !body.to_string().contains(&tenant_a),
            "{field} leaked A: {body}"
        );
    }
    // Naming A is refused outright.
    for (field, query, variables) in [
        (
            "meters",
            "query($t: ID) { meters(tenantId: $t) { nodes { id } } }",
            json!({ "t": tenant_a }),
        ),
        (
            "meter",
            "query($t: ID) { meter(tenantId: $t, slug: \"llm-tokens\") { id } }",
            json!({ "t": tenant_a }),
        ),
        (
            "usage",
            USAGE,
            json!({ "tenant": tenant_a, "meter": "llm-tokens", "from": from, "to": to }),
        ),
        (
            "createMeter",
            "mutation($t: ID) { createMeter(input: { tenantId: $t, slug: \"x\", name: \"x\", eventType: \"x\", aggregation: COUNT }) { id } }",
            json!({ "t": tenant_a }),
        ),
        (
            "voidUsageEvent",
            "mutation($t: ID) { voidUsageEvent(tenantId: $t, source: \"//api.example/llm\", id: \"e1\", reason: \"r\") { revision } }",
            json!({ "t": tenant_a }),
        ),
    ] {
        let (_, body) = app.graphql(Some(&admin_b), query, variables).await;
        assert_eq!(error_codes(&body), ["forbidden"], "{field}: {body}");
    }
    // B sees no meters of A's, and may use the same slug for its own.
    let data = app
        .graphql_ok(
            &admin_b,
            "{ meters(includeArchived: true) { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["meters"]["nodes"], json!([]));
    let meter_b = create_meter(&app, &admin_b, tokens_meter("llm-tokens")).await;
    assert_eq!(meter_b["tenantId"], tenant_b.as_str());
    assert_ne!(meter_b["id"], meter_a["id"]);
    // B's meter counts none of A's events.
    let report = usage(
        &app,
        &admin_b,
        json!({ "meter": "llm-tokens", "from": from, "to": to }),
    )
    .await;
    assert_eq!(report["rows"], json!([]));

    // A's meter and event are as they were.
    let data = app
        .graphql_ok(
            &admin_a,
            "{ meter(slug: \"llm-tokens\") { id archivedAt price { model } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["meter"]["id"], meter_a["id"]);
    assert!(data["meter"]["archivedAt"].is_null());
    assert_eq!(data["meter"]["price"]["model"], "GRADUATED");
    let history = app
        .graphql_ok(&admin_a, HISTORY, json!({ "source": SOURCE, "id": "e1" }))
        .await;
    assert_eq!(history["usageEvent"].as_array().unwrap().len(), 1);
    assert_eq!(history["usageEvent"][0]["subject"], "alice");
    let rows = usage_rows(
        &app,
        &admin_a,
        day0,
        json!({ "meter": "llm-tokens", "from": from, "to": to }),
    )
    .await;
    assert_eq!(rows, expect(&[(0, 1440, "-", "", "100")]));
    // The operator reads A's, naming it.
    let data = app
        .graphql_ok(
            &app.operator_token,
            "query($t: ID) { meter(tenantId: $t, slug: \"llm-tokens\") { id } }",
            json!({ "t": tenant_a }),
        )
        .await;
    assert_eq!(data["meter"]["id"], meter_a["id"]);
}

async fn read_only_keys_read_meters_but_cannot_change_them(app: TestApp) {
    let (tenant, admin) = tenant_with_key(&app, "Acme", "TENANT_ADMIN").await;
    let reader = key_of(&app, &tenant, "TENANT_READ").await;
    let server = key_of(&app, &tenant, "RESOURCE_SERVER").await;
    let meter = create_meter(&app, &admin, tokens_meter("llm-tokens")).await;
    let day0 = day0();
    ingest_all(&app, &admin, &token_events(day0)[..1]).await;

    // Reading works.
    let data = app
        .graphql_ok(&reader, "{ meters { nodes { slug } } }", json!({}))
        .await;
    assert_eq!(data["meters"]["nodes"], json!([{ "slug": "llm-tokens" }]));
    let rows = usage_rows(
        &app,
        &reader,
        day0,
        json!({ "meter": "llm-tokens", "from": day0, "to": day0 + Duration::days(1) }),
    )
    .await;
    assert_eq!(rows, expect(&[(0, 1440, "-", "", "100")]));
    app.graphql_ok(&reader, HISTORY, json!({ "source": SOURCE, "id": "e1" }))
        .await;

    // Changing does not.
    let changes: Vec<(String, Value)> = vec![
        (
            create_meter_mutation(),
            json!({ "input": tokens_meter("readers-meter") }),
        ),
        (
            "mutation($id: ID!) { setMeterPrice(meterId: $id, price: null) { id } }".into(),
            json!({ "id": meter["id"] }),
        ),
        (
            "mutation($id: ID!) { archiveMeter(meterId: $id) { id } }".into(),
            json!({ "id": meter["id"] }),
        ),
        (
            AMEND.into(),
            json!({ "source": SOURCE, "id": "e1", "reason": "r", "subject": "bob" }),
        ),
        (
            VOID.into(),
            json!({ "source": SOURCE, "id": "e1", "reason": "r" }),
        ),
    ];
    for (mutation, variables) in &changes {
        let (_, body) = app
            .graphql(Some(&reader), mutation, variables.clone())
            .await;
        assert_eq!(error_codes(&body), ["forbidden"], "{mutation}: {body}");
    }
    // Resource servers report usage; they do not read or change meters here.
    for (query, variables) in [
        ("{ meters { nodes { slug } } }".to_owned(), json!({})),
        (changes[0].0.clone(), changes[0].1.clone()),
    ] {
        let (_, body) = app.graphql(Some(&server), &query, variables).await;
        assert_eq!(error_codes(&body), ["forbidden"], "{query}: {body}");
    }
    // Nothing changed.
    let data = app
        .graphql_ok(
            &admin,
            "{ meters(includeArchived: true) { nodes { slug archivedAt price { model } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["meters"]["nodes"],
        json!([{ "slug": "llm-tokens", "archivedAt": null, "price": { "model": "GRADUATED" } }])
    );
    let history = app
        .graphql_ok(&admin, HISTORY, json!({ "source": SOURCE, "id": "e1" }))
        .await;
    assert_eq!(history["usageEvent"].as_array().unwrap().len(), 1);
}
