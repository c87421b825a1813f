//! Metering's HTTP API over a real TCP server, on both backend pairs: `POST /v1/events` (one
//! event, batches, content types, limits) and `GET /v1/meters/{meter}/query` (windows in a
//! time zone, groups, filters, CSV, aggregations, corrections, tenancy, access). Meters are
//! created and events corrected through the service directly; every expected number is
//! computed by hand.

use chrono::{DateTime, Duration, DurationRound, SecondsFormat, Utc};
use purser::config::Config;
use purser_domain::auth::TenantScope;
use purser_domain::metering::query::{Tz, unix_day};
use purser_domain::metering::{
    Aggregation, CorrectionChange, NewMeter, UsageCell, UsageQuery, ValuePath,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Backends, TestApp, on_both_backend_pairs, on_both_backends};

on_both_backends!(
    single_events_are_stored_once_and_refused_with_their_code,
    batches_answer_each_event_and_store_only_the_valid_ones,
    usage_is_windowed_in_the_time_zone_grouped_and_filtered,
    usage_exports_as_csv,
    each_aggregation_folds_the_events,
    corrections_change_usage_and_as_of_shows_the_old_total,
    past_days_are_answered_from_the_day_cache_until_they_change,
    meters_and_events_are_private_to_their_tenant,
    keys_need_the_access_the_route_needs,
    an_event_with_nul_is_refused_alone_and_its_neighbours_are_stored,
    events_for_a_tenant_that_does_not_exist_are_not_found,
    a_row_the_store_refuses_is_rejected_alone,
);

mod limits {
    use super::*;

    on_both_backend_pairs!(events_have_their_own_body_and_batch_limits);
}

const SOURCE: &str = "//api.example/llm";
const BATCH: &str = "application/cloudevents-batch+json";
const SINGLE: &str = "application/cloudevents+json";

/// A tenant of the test, with a key per role.
struct Tenant {
    id: String,
    admin: String,
    reader: String,
    server: String,
}

impl Tenant {
    async fn create(app: &TestApp, name: &str) -> Self {
        let data = app
            .graphql_ok(
                &app.operator_token,
                "mutation($name: String!) { createTenant(input: { name: $name }) { id } }",
                json!({ "name": name }),
            )
            .await;
        let id = data["createTenant"]["id"].as_str().unwrap().to_owned();
        Self {
            admin: key(app, &id, "TENANT_ADMIN").await,
            reader: key(app, &id, "TENANT_READ").await,
            server: key(app, &id, "RESOURCE_SERVER").await,
            id,
        }
    }

    /// A tenant with the `tokens` meter: the SUM of `$.tokens` over `llm.tokens` events.
    async fn with_tokens_meter(app: &TestApp, name: &str) -> Self {
        let tenant = Self::create(app, name).await;
        tenant
            .meter(
                app,
                "tokens",
                "llm.tokens",
                Aggregation::Sum,
                Some("$.tokens"),
                &[],
            )
            .await;
        tenant
    }

    fn scope(&self) -> TenantScope {
        TenantScope::trusted(self.id.parse().unwrap())
    }

    /// Creates a meter of `event_type` reading `value` (none for `COUNT`), with dimensions
    /// `name=path`.
    async fn meter(
        &self,
        app: &TestApp,
        slug: &str,
        event_type: &str,
        aggregation: Aggregation,
        value: Option<&str>,
        dimensions: &[(&str, &str)],
    ) {
        app.platform
            .metering
            .create_meter(
                self.scope(),
                NewMeter {
                    slug: slug.into(),
                    name: slug.into(),
                    description: None,
                    event_type: event_type.into(),
                    aggregation,
                    value: value.map(|path| ValuePath::parse(path).unwrap()),
                    group_by: dimensions
                        .iter()
                        .map(|(name, path)| ((*name).to_owned(), ValuePath::parse(path).unwrap()))
                        .collect(),
                    price: None,
                },
            )
            .await
            .unwrap();
    }
}

async fn key(app: &TestApp, tenant: &str, role: &str) -> String {
    let data = app
        .graphql_ok(
            &app.operator_token,
            "mutation($tenant: ID, $role: Role!) {
                createApiKey(input: { tenantId: $tenant, role: $role, name: \"metering\" }) { secret }
            }",
            json!({ "tenant": tenant, "role": role }),
        )
        .await;
    data["createApiKey"]["secret"].as_str().unwrap().to_owned()
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

/// Posts `body` to `/v1/events` with `token` and `content_type` (none: no header); answers the
/// status and the JSON answer.
async fn post_events(
    app: &TestApp,
    token: Option<&str>,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (StatusCode, Value) {
    let mut request = app.client.post(app.url("/v1/events")).body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.send().await.expect("POST /v1/events");
    let status = response.status();
    let body = response.json::<Value>().await.expect("a JSON answer");
    (status, body)
}

async fn post_one(app: &TestApp, token: &str, event: &Value) -> (StatusCode, Value) {
    post_events(app, Some(token), Some(SINGLE), event.to_string()).await
}

async fn post_batch(app: &TestApp, token: &str, events: &[Value]) -> (StatusCode, Value) {
    post_events(
        app,
        Some(token),
        Some(BATCH),
        Value::from(events).to_string(),
    )
    .await
}

/// `GET /v1/meters/{slug}/query?{query}` with `token`: the status, the `content-type` and the
/// body as text.
async fn usage_raw(
    app: &TestApp,
    token: &str,
    slug: &str,
    query: &str,
    accept: Option<&str>,
) -> (StatusCode, String, String) {
    let mut request = app
        .client
        .get(app.url(&format!("/v1/meters/{slug}/query?{query}")))
        .bearer_auth(token);
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    // Once more on a connection the server closed: after a 413 answered before the body was
    // read, the server closes that keep-alive connection, and the pool may hand it out again
    // before it sees the close (a GET is safe to send twice).
    let response = match request.try_clone().expect("a GET clones").send().await {
        Ok(response) => response,
        Err(e) if e.is_request() || e.is_connect() => request.send().await.expect("GET usage"),
        Err(e) => panic!("GET usage: {e}"),
    };
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

/// The JSON usage answer, which must be a success.
async fn usage(app: &TestApp, token: &str, slug: &str, query: &str) -> Value {
    let (status, content_type, body) = usage_raw(app, token, slug, query, None).await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    serde_json::from_str(&body).unwrap()
}

/// The status and error code of a usage query that must fail.
async fn usage_error(app: &TestApp, token: &str, slug: &str, query: &str) -> (StatusCode, Value) {
    let (status, _, body) = usage_raw(app, token, slug, query, None).await;
    let body: Value = serde_json::from_str(&body).unwrap();
    (status, body["error"].clone())
}

/// `from` and `to` as query parameters.
fn period(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    format!("from={}&to={}", param_time(from), param_time(to))
}

fn param_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The value of a query without windows or groups (`"0"` when it has no row).
async fn total(
    app: &TestApp,
    token: &str,
    slug: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> String {
    let answer = usage(app, token, slug, &period(from, to)).await;
    let rows = answer["rows"].as_array().unwrap();
    assert!(rows.len() <= 1, "{answer}");
    rows.first().map_or("0".to_owned(), |row| {
        row["value"].as_str().unwrap().to_owned()
    })
}

/// Midnight (UTC) three days ago: the first day of the tests' events, all in the past and well
/// within the ingestion window.
fn day0() -> DateTime<Utc> {
    (Utc::now() - Duration::days(3))
        .duration_trunc(Duration::days(1))
        .unwrap()
}

fn minutes(n: i64) -> Duration {
    Duration::minutes(n)
}

pub(crate) fn at(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is not a time"))
        .parse()
        .unwrap()
}

/// A usage row, compactly: window start and end (minutes from `origin`), subject (`-` when
/// not grouped), groups as `name=value` (`name=-` for no value), value.
pub(crate) type Row = (i64, i64, String, String, String);

fn row(origin: DateTime<Utc>, row: &Value) -> Row {
    let groups = row["groups"]
        .as_object()
        .unwrap_or_else(|| panic!("no groups object in {row}"))
        .iter()
        .map(|(name, value)| format!("{name}={}", value.as_str().unwrap_or("-")))
        .collect::<Vec<_>>()
        .join(",");
    compact_row(origin, row, groups)
}

/// A usage row of either API (the JSON answer's or GraphQL's), its groups already compacted.
pub(crate) fn compact_row(origin: DateTime<Utc>, row: &Value, groups: String) -> Row {
    let minutes = |v: &Value| (at(v) - origin).num_minutes();
    (
        minutes(&row["windowStart"]),
        minutes(&row["windowEnd"]),
        row["subject"].as_str().unwrap_or("-").to_owned(),
        groups,
        row["value"].as_str().unwrap().to_owned(),
    )
}

fn rows(origin: DateTime<Utc>, answer: &Value) -> Vec<Row> {
    answer["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("no rows in {answer}"))
        .iter()
        .map(|r| row(origin, r))
        .collect()
}

pub(crate) fn expect(rows: &[(i64, i64, &str, &str, &str)]) -> Vec<Row> {
    rows.iter()
        .map(|(start, end, subject, groups, value)| {
            (
                *start,
                *end,
                (*subject).to_owned(),
                (*groups).to_owned(),
                (*value).to_owned(),
            )
        })
        .collect()
}

/// Records in RFC 4180: fields separated by commas, records by CRLF, quoted fields with `""`
/// for a quote. Written here, not with the server's CSV library, to check it independently.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {
                assert_eq!(chars.next(), Some('\n'), "a record ends with CRLF");
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(
        field.is_empty() && record.is_empty(),
        "the last record ends with CRLF"
    );
    records
}

fn error_of(body: &Value) -> (&str, &str) {
    (
        body["error"]["code"].as_str().unwrap_or("<none>"),
        body["error"]["message"].as_str().unwrap_or(""),
    )
}

async fn single_events_are_stored_once_and_refused_with_their_code(app: TestApp) {
    let tenant = Tenant::with_tokens_meter(&app, "Single").await;
    let day = day0();
    let first = event(
        "e-1",
        "llm.tokens",
        "alice",
        day + minutes(60),
        json!({ "tokens": 5 }),
    );

    let (status, body) = post_one(&app, &tenant.admin, &first).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(
        body,
        json!({ "id": "e-1", "source": SOURCE, "status": "accepted" })
    );
    // A retry is answered as a duplicate, and not counted again, even with other data.
    let mut retry = first.clone();
    retry["data"] = json!({ "tokens": 500 });
    let (status, body) = post_one(&app, &tenant.admin, &retry).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({ "id": "e-1", "source": SOURCE, "status": "duplicate" })
    );
    // Parameters of the content type are fine.
    let second = event(
        "e-2",
        "llm.tokens",
        "alice",
        day + minutes(90),
        json!({ "tokens": "2.5" }),
    );
    let (status, body) = post_events(
        &app,
        Some(&tenant.admin),
        Some("Application/CloudEvents+JSON; charset=utf-8"),
        second.to_string(),
    )
    .await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::ACCEPTED, &json!("accepted")),
        "{body}"
    );

    // A rejected event is an error with the event's code; nothing is stored.
    let mut no_spec = event("e-3", "llm.tokens", "alice", day, json!({ "tokens": 1 }));
    no_spec.as_object_mut().unwrap().remove("specversion");
    let too_old = event(
        "e-4",
        "llm.tokens",
        "alice",
        Utc::now() - Duration::days(40),
        json!({ "tokens": 1 }),
    );
    let future = event(
        "e-5",
        "llm.tokens",
        "alice",
        Utc::now() + Duration::hours(1),
        json!({ "tokens": 1 }),
    );
    let missing = event("e-6", "llm.tokens", "alice", day, json!({ "other": 1 }));
    let not_numeric = event(
        "e-7",
        "llm.tokens",
        "alice",
        day,
        json!({ "tokens": "many" }),
    );
    for (refused, code, says) in [
        (&no_spec, "malformed_cloudevent", "specversion"),
        (&too_old, "event_too_old", "in the past"),
        (&future, "event_in_future", "in the future"),
        (&missing, "meter_value_missing", "$.tokens"),
        (&not_numeric, "meter_value_not_numeric", "not a number"),
        (
            &json!([first.clone()]),
            "malformed_cloudevent",
            "not a JSON object",
        ),
    ] {
        let (status, body) = post_one(&app, &tenant.admin, refused).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error_of(&body).0, code, "{body}");
        assert!(error_of(&body).1.contains(says), "{body}");
    }
    let (status, body) = post_events(
        &app,
        Some(&tenant.admin),
        Some(SINGLE),
        "{\"specversion\": ",
    )
    .await;
    assert_eq!(
        (status, error_of(&body).0),
        (StatusCode::BAD_REQUEST, "malformed_json"),
        "{body}"
    );

    // Only the two CloudEvents content types are read.
    for content_type in [Some("application/json"), Some("text/plain"), None] {
        let (status, body) =
            post_events(&app, Some(&tenant.admin), content_type, first.to_string()).await;
        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}: {body}"
        );
        let (code, message) = error_of(&body);
        assert_eq!(code, "unsupported_media_type");
        assert!(
            message.contains(SINGLE) && message.contains(BATCH),
            "{message}"
        );
    }
    // Without a key, nothing is read; a wrong method gets the envelope.
    let (status, body) = post_events(&app, None, Some(SINGLE), first.to_string()).await;
    assert_eq!(
        (status, error_of(&body).0),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );
    let response = app
        .client
        .get(app.url("/v1/events"))
        .bearer_auth(&tenant.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_of(&body).0, "method_not_allowed");

    // Exactly the two accepted events count: 5 + 2.5.
    assert_eq!(
        total(&app, &tenant.reader, "tokens", day, day + Duration::days(1)).await,
        "7.5"
    );
}

async fn batches_answer_each_event_and_store_only_the_valid_ones(app: TestApp) {
    let tenant = Tenant::with_tokens_meter(&app, "Batches").await;
    let day = day0();
    let t = |m| day + minutes(m);
    let earlier = event("before", "llm.tokens", "c0", t(10), json!({ "tokens": 3 }));
    let (status, _) = post_one(&app, &tenant.admin, &earlier).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let mut malformed = event(
        "malformed",
        "llm.tokens",
        "bad",
        t(20),
        json!({ "tokens": 1 }),
    );
    malformed.as_object_mut().unwrap().remove("specversion");
    let mut unnamed = event("x", "llm.tokens", "bad", t(20), json!({ "tokens": 1 }));
    unnamed["id"] = json!(7);
    let batch = vec![
        event("a", "llm.tokens", "c1", t(30), json!({ "tokens": 5 })),
        event("b", "llm.tokens", "c2", t(40), json!({ "tokens": "7.5" })),
        // The same (source, id) again in the batch: the first one wins.
        event("a", "llm.tokens", "c1", t(50), json!({ "tokens": 100 })),
        // Sent before.
        event(
            "before",
            "llm.tokens",
            "c0",
            t(10),
            json!({ "tokens": 1000 }),
        ),
        malformed,
        event(
            "old",
            "llm.tokens",
            "bad",
            Utc::now() - Duration::days(40),
            json!({ "tokens": 1 }),
        ),
        event(
            "future",
            "llm.tokens",
            "bad",
            Utc::now() + Duration::hours(2),
            json!({ "tokens": 1 }),
        ),
        event("missing", "llm.tokens", "bad", t(20), json!({ "count": 1 })),
        event(
            "nan",
            "llm.tokens",
            "bad",
            t(20),
            json!({ "tokens": "lots" }),
        ),
        json!(42),
        unnamed,
        // No meter counts this type: stored all the same.
        event("other", "page.view", "c3", t(20), json!({})),
    ];
    let (status, answer) = post_batch(&app, &tenant.admin, &batch).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        (
            &answer["accepted"],
            &answer["duplicates"],
            &answer["rejected"]
        ),
        (&json!(3), &json!(2), &json!(7)),
        "{answer}"
    );
    let outcomes: Vec<(Value, Value, &str, &str)> = answer["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["id"].clone(),
                o["source"].clone(),
                o["status"].as_str().unwrap(),
                o["error"]["code"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    let s = json!(SOURCE);
    assert_eq!(
        outcomes,
        vec![
            (json!("a"), s.clone(), "accepted", "-"),
            (json!("b"), s.clone(), "accepted", "-"),
            (json!("a"), s.clone(), "duplicate", "-"),
            (json!("before"), s.clone(), "duplicate", "-"),
            (
                json!("malformed"),
                s.clone(),
                "rejected",
                "malformed_cloudevent"
            ),
            (json!("old"), s.clone(), "rejected", "event_too_old"),
            (json!("future"), s.clone(), "rejected", "event_in_future"),
            (
                json!("missing"),
                s.clone(),
                "rejected",
                "meter_value_missing"
            ),
            (
                json!("nan"),
                s.clone(),
                "rejected",
                "meter_value_not_numeric"
            ),
            (Value::Null, Value::Null, "rejected", "malformed_cloudevent"),
            (Value::Null, s.clone(), "rejected", "malformed_cloudevent"),
            (json!("other"), s.clone(), "accepted", "-"),
        ],
        "{answer}"
    );
    assert!(
        answer["events"][4]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("specversion")
    );

    // Stored: the first "a", "b" and the earlier event, each once; nothing of the rejected.
    let query = format!("{}&groupBy=subject", period(day, day + Duration::days(1)));
    let by_subject: Vec<(String, String)> =
        usage(&app, &tenant.reader, "tokens", &query).await["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["subject"].as_str().unwrap().to_owned(),
                    r["value"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
    assert_eq!(
        by_subject,
        [
            ("c0".into(), "3".into()),
            ("c1".into(), "5".into()),
            ("c2".into(), "7.5".into())
        ]
    );

    // The same batch again: nothing new.
    let (status, again) = post_batch(&app, &tenant.admin, &batch).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&again["accepted"], &again["duplicates"], &again["rejected"]),
        (&json!(0), &json!(5), &json!(7)),
        "{again}"
    );
    assert_eq!(
        total(&app, &tenant.reader, "tokens", day, day + Duration::days(1)).await,
        "15.5"
    );

    // A batch body must be a JSON array.
    for body in [batch[0].to_string(), "not json".to_owned()] {
        let (status, answer) = post_events(&app, Some(&tenant.admin), Some(BATCH), body).await;
        assert_eq!(
            (status, error_of(&answer).0),
            (StatusCode::BAD_REQUEST, "malformed_json"),
            "{answer}"
        );
    }
    // An empty batch is nothing to do.
    let (status, answer) = post_batch(&app, &tenant.admin, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        answer,
        json!({ "accepted": 0, "duplicates": 0, "rejected": 0, "events": [] })
    );
}

/// `[server] max_body_bytes` is smaller than `[metering] max_body_bytes`: the events route
/// reads up to its own limit, every other route up to the server's.
async fn events_have_their_own_body_and_batch_limits(backends: Backends) {
    let mut config = Config::default();
    config.server.max_body_bytes = 4 * 1024;
    config.metering.max_body_bytes = 32 * 1024;
    config.metering.max_batch_events = 40;
    let app = TestApp::start_with(backends, config).await;
    let tenant = Tenant::create(&app, "Limits").await;
    tenant
        .meter(&app, "calls", "api.call", Aggregation::Count, None, &[])
        .await;
    let day = day0();
    let batch = |prefix: &str, n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| {
                event(
                    &format!("{prefix}-{i}"),
                    "api.call",
                    "alice",
                    day + minutes(i as i64),
                    json!({ "path": "/v1/forecast" }),
                )
            })
            .collect()
    };

    // 40 events: about 9 KB, over the server's limit and within the route's.
    let fits = batch("fits", 40);
    let size = Value::from(fits.clone()).to_string().len();
    assert!((4 * 1024..32 * 1024).contains(&size), "{size}");
    let (status, answer) = post_batch(&app, &tenant.admin, &fits).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["accepted"], 40);

    // One event too many: nothing is stored.
    let (status, answer) = post_batch(&app, &tenant.admin, &batch("over", 41)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    let (code, message) = error_of(&answer);
    assert_eq!(code, "batch_too_large");
    assert!(message.contains("at most 40"), "{message}");
    assert_eq!(
        total(&app, &tenant.reader, "calls", day, day + Duration::days(1)).await,
        "40"
    );

    // Over the route's body limit, with and without a declared length.
    let mut big = batch("big", 1);
    big[0]["data"]["padding"] = json!("x".repeat(40 * 1024));
    let (status, answer) = post_events(
        &app,
        Some(&tenant.admin),
        Some(BATCH),
        Value::from(big.clone()).to_string(),
    )
    .await;
    assert_eq!(
        (status, error_of(&answer).0),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        "{answer}"
    );
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = Value::from(big)
        .to_string()
        .into_bytes()
        .chunks(4096)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let streamed = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let (status, answer) = post_events(&app, Some(&tenant.admin), Some(BATCH), streamed).await;
    assert_eq!(
        (status, error_of(&answer).0),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        "{answer}"
    );
    assert_eq!(
        total(&app, &tenant.reader, "calls", day, day + Duration::days(1)).await,
        "40"
    );

    // Other routes keep the server's limit.
    let padding = "x".repeat(8 * 1024);
    let (status, _) = app
        .graphql(
            Some(&tenant.admin),
            &format!("query {{ viewer {{ role }} }} # {padding}"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

/// Usage of the `tokens` meter (SUM of `$.tokens`, dimensions `model` and `region`) over six
/// events, in `Asia/Kolkata` (UTC+05:30: its hours start at half past UTC hours).
async fn windowed_fixture(app: &TestApp) -> (Tenant, DateTime<Utc>) {
    let tenant = Tenant::create(app, "Windows").await;
    tenant
        .meter(
            app,
            "tokens",
            "llm.tokens",
            Aggregation::Sum,
            Some("$.tokens"),
            &[("model", "$.model"), ("region", "$['region']")],
        )
        .await;
    let day = day0();
    let t = |m| day + minutes(m);
    let data = |model: &str, region: Option<&str>, tokens: i64| {
        let mut data = json!({ "model": model, "tokens": tokens });
        if let Some(region) = region {
            data["region"] = json!(region);
        }
        data
    };
    let events = vec![
        event(
            "e1",
            "llm.tokens",
            "alice",
            t(600),
            data("gpt", Some("eu, west"), 100),
        ),
        event(
            "e2",
            "llm.tokens",
            "alice",
            t(620),
            data("gpt", Some("eu, west"), 50),
        ),
        event(
            "e3",
            "llm.tokens",
            "alice",
            t(640),
            data("o1 \"mini\"", Some("us"), 7),
        ),
        event(
            "e4",
            "llm.tokens",
            "bob",
            t(1080),
            data("gpt", Some("us"), 1000),
        ),
        event(
            "e5",
            "llm.tokens",
            "bob",
            t(1200),
            data("gpt", Some("us"), 3),
        ),
        event("e6", "llm.tokens", "carol", t(610), data("gpt", None, 20)),
    ];
    let (status, answer) = post_batch(app, &tenant.server, &events).await;
    assert_eq!(
        (status, &answer["accepted"]),
        (StatusCode::OK, &json!(6)),
        "{answer}"
    );
    (tenant, day)
}

async fn usage_is_windowed_in_the_time_zone_grouped_and_filtered(app: TestApp) {
    let (tenant, day) = windowed_fixture(&app).await;
    let whole_day = period(day, day + Duration::days(1));

    // Hours in Kolkata start at :30 UTC; the first window holds `from`.
    let answer = usage(
        &app,
        &tenant.reader,
        "tokens",
        &format!("{whole_day}&window=hour&tz=Asia/Kolkata&groupBy=subject,model"),
    )
    .await;
    assert_eq!(answer["meter"], "tokens");
    assert_eq!(answer["aggregation"], "SUM");
    assert_eq!(answer["window"], "HOUR");
    assert_eq!(answer["timeZone"], "Asia/Kolkata");
    assert_eq!(at(&answer["from"]), day);
    assert!(
        answer["from"].as_str().unwrap().ends_with("+05:30"),
        "{answer}"
    );
    assert!(
        answer["rows"][0]["windowStart"]
            .as_str()
            .unwrap()
            .ends_with(":00:00+05:30"),
        "{answer}"
    );
    assert_eq!(answer["corrections"], json!([]));
    assert_eq!(
        rows(day, &answer),
        expect(&[
            (570, 630, "alice", "model=gpt", "150"),
            (570, 630, "carol", "model=gpt", "20"),
            (630, 690, "alice", "model=o1 \"mini\"", "7"),
            (1050, 1110, "bob", "model=gpt", "1000"),
            (1170, 1230, "bob", "model=gpt", "3"),
        ])
    );

    // Days in Kolkata start at 18:30 UTC; events without a region group under null.
    let answer = usage(
        &app,
        &tenant.reader,
        "tokens",
        &format!("{whole_day}&window=DAY&tz=Asia%2FKolkata&groupBy=region"),
    )
    .await;
    assert_eq!(answer["rows"][0]["groups"], json!({ "region": null }));
    assert!(answer["rows"][0].get("subject").is_none(), "{answer}");
    assert_eq!(
        rows(day, &answer),
        expect(&[
            (-330, 1110, "-", "region=-", "20"),
            (-330, 1110, "-", "region=eu, west", "150"),
            (-330, 1110, "-", "region=us", "1007"),
            (1110, 2550, "-", "region=us", "3"),
        ])
    );

    // The same period in UTC days is one window.
    let answer = usage(
        &app,
        &tenant.reader,
        "tokens",
        &format!("{whole_day}&window=day&groupBy=region"),
    )
    .await;
    assert_eq!(answer["timeZone"], "UTC");
    assert_eq!(
        rows(day, &answer),
        expect(&[
            (0, 1440, "-", "region=-", "20"),
            (0, 1440, "-", "region=eu, west", "150"),
            (0, 1440, "-", "region=us", "1010"),
        ])
    );

    // Subjects, repeated or as a filter; without a window, one window is the period.
    for subjects in [
        "subject=alice&subject=bob",
        "filter[subject]=alice&subject=bob",
    ] {
        let answer = usage(
            &app,
            &tenant.reader,
            "tokens",
            &format!("{whole_day}&{subjects}&groupBy=subject"),
        )
        .await;
        assert_eq!(answer["window"], Value::Null);
        assert_eq!(
            rows(day, &answer),
            expect(&[(0, 1440, "alice", "", "157"), (0, 1440, "bob", "", "1003")])
        );
    }
    // Dimension filters: values of one dimension are alternatives, dimensions all apply.
    let filtered = |filters: &str| {
        let query = format!("{whole_day}&{filters}");
        let (app, token) = (&app, tenant.reader.clone());
        async move { rows(day, &usage(app, &token, "tokens", &query).await) }
    };
    assert_eq!(
        filtered("filter[model]=gpt&filter%5Bregion%5D=us").await,
        expect(&[(0, 1440, "-", "", "1003")])
    );
    assert_eq!(
        filtered("filter[region]=eu%2C%20west&filter[region]=us&groupBy=region").await,
        expect(&[
            (0, 1440, "-", "region=eu, west", "150"),
            (0, 1440, "-", "region=us", "1010")
        ])
    );
    assert_eq!(filtered("filter[model]=claude").await, expect(&[]));
    // An offset's `+` sent unencoded (a space once decoded) is read as meant.
    let answer = usage(
        &app,
        &tenant.reader,
        "tokens",
        &format!(
            "from={}&to={}",
            day.with_timezone(&chrono::FixedOffset::east_opt(3600).unwrap())
                .to_rfc3339(),
            param_time(day + Duration::days(1))
        ),
    )
    .await;
    assert_eq!(at(&answer["from"]), day);

    // Bad parameters are named.
    for (query, says) in [
        (format!("to={}", param_time(day)), "`from` is required"),
        (format!("{whole_day}&window=WEEK"), "`window`"),
        (format!("{whole_day}&tz=Mars%2FOlympus"), "Mars/Olympus"),
        (format!("{whole_day}&groupBy=color"), "no dimension `color`"),
        (
            format!("{whole_day}&filter[color]=red"),
            "no dimension `color`",
        ),
        (format!("{whole_day}&group_by=model"), "`group_by`"),
        (format!("{whole_day}&asOf=yesterday"), "`asOf`"),
        (period(day, day), "`from` must be before `to`"),
        (format!("{whole_day}&format=xml"), "`format`"),
    ] {
        let (status, error) = usage_error(&app, &tenant.reader, "tokens", &query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {error}");
        assert_eq!(error["code"], "invalid_usage_query", "{query}: {error}");
        assert!(
            error["message"].as_str().unwrap().contains(says),
            "{query}: {error}"
        );
    }
}

async fn usage_exports_as_csv(app: TestApp) {
    let (tenant, day) = windowed_fixture(&app).await;
    let query = format!(
        "{}&window=DAY&tz=Asia/Kolkata&groupBy=subject,model,region",
        period(day, day + Duration::days(1))
    );
    let json = usage(&app, &tenant.reader, "tokens", &query).await;
    let expected_rows: Vec<Vec<String>> = json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            vec![
                r["windowStart"].as_str().unwrap().to_owned(),
                r["windowEnd"].as_str().unwrap().to_owned(),
                r["subject"].as_str().unwrap().to_owned(),
                r["groups"]["model"].as_str().unwrap_or("").to_owned(),
                r["groups"]["region"].as_str().unwrap_or("").to_owned(),
                r["value"].as_str().unwrap().to_owned(),
            ]
        })
        .collect();
    assert_eq!(expected_rows.len(), 5, "{json}");

    let mut answers = Vec::new();
    for (query, accept) in [
        (format!("{query}&format=csv"), None),
        (query.clone(), Some("text/csv")),
        (query.clone(), Some("application/json;q=0.5, text/csv")),
    ] {
        let (status, content_type, body) =
            usage_raw(&app, &tenant.reader, "tokens", &query, accept).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(content_type, "text/csv; charset=utf-8");
        answers.push(body);
    }
    assert!(answers.iter().all(|a| *a == answers[0]));
    let csv = &answers[0];
    // Quoted as RFC 4180 says: a comma and a quote inside fields.
    assert!(csv.contains(",\"o1 \"\"mini\"\"\","), "{csv}");
    assert!(csv.contains(",\"eu, west\","), "{csv}");
    let records = parse_csv(csv);
    assert_eq!(
        records[0],
        [
            "window_start",
            "window_end",
            "subject",
            "model",
            "region",
            "value"
        ]
    );
    assert_eq!(records[1..], expected_rows[..]);
    // Exactly the events: alice gpt eu 150, alice o1 us 7, bob gpt us 1000, carol gpt - 20 on
    // the first Kolkata day; bob gpt us 3 on the next.
    let values: Vec<(&str, &str, &str, &str)> = records[1..]
        .iter()
        .map(|r| (r[2].as_str(), r[3].as_str(), r[4].as_str(), r[5].as_str()))
        .collect();
    assert_eq!(
        values,
        [
            ("alice", "gpt", "eu, west", "150"),
            ("alice", "o1 \"mini\"", "us", "7"),
            ("bob", "gpt", "us", "1000"),
            ("carol", "gpt", "", "20"),
            ("bob", "gpt", "us", "3"),
        ][..]
    );

    // Without groups: the subject column stays, empty; JSON unless CSV is preferred.
    let (_, _, csv) = usage_raw(
        &app,
        &tenant.reader,
        "tokens",
        &format!("{}&format=csv", period(day, day + Duration::days(1))),
        None,
    )
    .await;
    let records = parse_csv(&csv);
    assert_eq!(records.len(), 2, "{csv}");
    assert_eq!(
        records[0],
        ["window_start", "window_end", "subject", "value"]
    );
    assert_eq!(records[1][2..], ["", "1180"]);
    assert_eq!(records[1][0].parse::<DateTime<Utc>>().unwrap(), day);
    let (_, content_type, _) = usage_raw(
        &app,
        &tenant.reader,
        "tokens",
        &period(day, day + Duration::days(1)),
        Some("text/csv;q=0.1, application/json"),
    )
    .await;
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );

    // A subject or dimension a spreadsheet would run as a formula opens as text; JSON keeps it.
    let formulas = Tenant::create(&app, "CSV formulas").await;
    formulas
        .meter(
            &app,
            "tokens",
            "llm.tokens",
            Aggregation::Sum,
            Some("$.tokens"),
            &[("model", "$.model")],
        )
        .await;
    let events = vec![event(
        "f1",
        "llm.tokens",
        "=HYPERLINK(\"http://evil.example\")",
        day + minutes(60),
        json!({ "tokens": 4, "model": "@SUM(A1)" }),
    )];
    let (status, _) = post_batch(&app, &formulas.admin, &events).await;
    assert_eq!(status, StatusCode::OK);
    let query = format!(
        "{}&groupBy=subject,model",
        period(day, day + Duration::days(1))
    );
    let json = usage(&app, &formulas.reader, "tokens", &query).await;
    assert_eq!(
        json["rows"][0]["subject"],
        "=HYPERLINK(\"http://evil.example\")"
    );
    let (_, _, csv) = usage_raw(
        &app,
        &formulas.reader,
        "tokens",
        &format!("{query}&format=csv"),
        None,
    )
    .await;
    let records = parse_csv(&csv);
    assert_eq!(
        records[1][2..],
        ["'=HYPERLINK(\"http://evil.example\")", "'@SUM(A1)", "4"]
    );
}

async fn each_aggregation_folds_the_events(app: TestApp) {
    let tenant = Tenant::create(&app, "Aggregations").await;
    for (slug, aggregation, value) in [
        ("calls", Aggregation::Count, None),
        ("users", Aggregation::UniqueCount, Some("$.user")),
        ("tokens", Aggregation::Sum, Some("$.tokens")),
        ("balance", Aggregation::Latest, Some("$.balance")),
        ("fastest", Aggregation::Min, Some("$.ms")),
        ("slowest", Aggregation::Max, Some("$.ms")),
        ("latency", Aggregation::Avg, Some("$.ms")),
    ] {
        tenant
            .meter(&app, slug, "api.call", aggregation, value, &[])
            .await;
    }
    let day = day0();
    let call =
        |id: &str, subject: &str, m: i64, user: &str, tokens: Value, balance: Value, ms: i64| {
            event(
                id,
                "api.call",
                subject,
                day + minutes(m),
                json!({ "user": user, "tokens": tokens, "balance": balance, "ms": ms }),
            )
        };
    let events = vec![
        call("c1", "s1", 60, "u1", json!(5), json!(10), 30),
        // The latest by event time, although not sent last.
        call("c2", "s1", 180, "u2", json!(7), json!("2.5"), 10),
        call("c3", "s1", 120, "u1", json!(1), json!(4), 50),
        call("c4", "s2", 90, "u1", json!("0.25"), json!(8), 20),
    ];
    let (status, answer) = post_batch(&app, &tenant.server, &events).await;
    assert_eq!(
        (status, &answer["accepted"]),
        (StatusCode::OK, &json!(4)),
        "{answer}"
    );
    // Every meter of the type checks the event: one without `balance` is refused by `balance`.
    let (status, body) = post_one(
        &app,
        &tenant.server,
        &event(
            "c5",
            "api.call",
            "s1",
            day + minutes(10),
            json!({ "user": "u9", "tokens": 1, "ms": 1 }),
        ),
    )
    .await;
    assert_eq!(
        (status, error_of(&body).0),
        (StatusCode::BAD_REQUEST, "meter_value_missing")
    );
    assert!(error_of(&body).1.contains("`balance`"), "{body}");

    let (from, to) = (day, day + Duration::days(1));
    for (slug, expected) in [
        ("calls", "4"),
        ("users", "2"),
        ("tokens", "13.25"),
        ("balance", "2.5"),
        ("fastest", "10"),
        ("slowest", "50"),
        ("latency", "27.5"),
    ] {
        assert_eq!(
            total(&app, &tenant.reader, slug, from, to).await,
            expected,
            "{slug}"
        );
        assert_eq!(
            usage(&app, &tenant.reader, slug, &period(from, to)).await["aggregation"],
            json!(match slug {
                "calls" => "COUNT",
                "users" => "UNIQUE_COUNT",
                "tokens" => "SUM",
                "balance" => "LATEST",
                "fastest" => "MIN",
                "slowest" => "MAX",
                _ => "AVG",
            })
        );
    }
    // Per subject and hour.
    let by_subject = |slug: &'static str| {
        let query = format!("{}&groupBy=subject", period(from, to));
        let (app, token) = (&app, tenant.reader.clone());
        async move { rows(day, &usage(app, &token, slug, &query).await) }
    };
    assert_eq!(
        by_subject("users").await,
        expect(&[(0, 1440, "s1", "", "2"), (0, 1440, "s2", "", "1")])
    );
    assert_eq!(
        by_subject("balance").await,
        expect(&[(0, 1440, "s1", "", "2.5"), (0, 1440, "s2", "", "8")])
    );
    let hourly = usage(
        &app,
        &tenant.reader,
        "calls",
        &format!("{}&window=HOUR", period(from, to)),
    )
    .await;
    assert_eq!(
        rows(day, &hourly),
        expect(&[
            (60, 120, "-", "", "2"),
            (120, 180, "-", "", "1"),
            (180, 240, "-", "", "1")
        ])
    );
}

async fn corrections_change_usage_and_as_of_shows_the_old_total(app: TestApp) {
    let tenant = Tenant::with_tokens_meter(&app, "Corrections").await;
    let day = day0();
    let (from, to) = (day, day + Duration::days(1));
    let events = vec![
        event(
            "k1",
            "llm.tokens",
            "alice",
            day + minutes(60),
            json!({ "tokens": 10 }),
        ),
        event(
            "k2",
            "llm.tokens",
            "bob",
            day + minutes(120),
            json!({ "tokens": 20 }),
        ),
    ];
    let (status, _) = post_batch(&app, &tenant.admin, &events).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(total(&app, &tenant.reader, "tokens", from, to).await, "30");

    let pause = || tokio::time::sleep(std::time::Duration::from_millis(50));
    pause().await;
    let before_amend = Utc::now();
    pause().await;
    let metering = &app.platform.metering;
    metering
        .correct(
            tenant.scope(),
            SOURCE,
            "k1",
            CorrectionChange::Amend {
                subject: None,
                time: None,
                data: Some(json!({ "tokens": 15 })),
            },
            "recounted",
            Utc::now(),
        )
        .await
        .unwrap();
    pause().await;
    let before_void = Utc::now();
    pause().await;
    metering
        .correct(
            tenant.scope(),
            SOURCE,
            "k2",
            CorrectionChange::Void,
            "test traffic",
            Utc::now(),
        )
        .await
        .unwrap();

    // Now: 15 (k1 amended), k2 voided; both corrections listed, newest first.
    let answer = usage(&app, &tenant.reader, "tokens", &period(from, to)).await;
    assert_eq!(answer["rows"][0]["value"], "15", "{answer}");
    let corrections: Vec<(&str, i64, &str, &str, &str)> = answer["corrections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap(),
                c["revision"].as_i64().unwrap(),
                c["kind"].as_str().unwrap(),
                c["reason"].as_str().unwrap(),
                c["subject"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        corrections,
        [
            ("k2", 1, "void", "test traffic", "bob"),
            ("k1", 1, "amendment", "recounted", "alice")
        ]
    );
    let first = &answer["corrections"][0];
    assert_eq!(first["source"], SOURCE);
    assert_eq!(at(&first["time"]), day + minutes(120));
    assert!(at(&first["recordedAt"]) > before_void, "{first}");

    // As of a time before a correction, it is not applied and not listed.
    let as_of = |at: DateTime<Utc>| format!("{}&asOf={}", period(from, to), param_time(at));
    let between = usage(&app, &tenant.reader, "tokens", &as_of(before_void)).await;
    assert_eq!(between["rows"][0]["value"], "35", "{between}");
    assert_eq!(
        between["corrections"].as_array().unwrap().len(),
        1,
        "{between}"
    );
    assert_eq!(between["corrections"][0]["kind"], "amendment");
    assert!(between["asOf"].is_string(), "{between}");
    let before = usage(&app, &tenant.reader, "tokens", &as_of(before_amend)).await;
    assert_eq!(before["rows"][0]["value"], "30", "{before}");
    assert_eq!(before["corrections"], json!([]));
    // Per subject now: bob's usage is gone.
    let by_subject = usage(
        &app,
        &tenant.reader,
        "tokens",
        &format!("{}&groupBy=subject", period(from, to)),
    )
    .await;
    assert_eq!(
        rows(day, &by_subject),
        expect(&[(0, 1440, "alice", "", "15")])
    );
}

async fn past_days_are_answered_from_the_day_cache_until_they_change(app: TestApp) {
    let tenant = Tenant::with_tokens_meter(&app, "Day cache").await;
    let other = Tenant::with_tokens_meter(&app, "Day cache, other").await;
    let day = day0();
    let now = Utc::now();
    let events = vec![
        event(
            "c1",
            "llm.tokens",
            "alice",
            day + minutes(60),
            json!({ "tokens": 10 }),
        ),
        event(
            "c2",
            "llm.tokens",
            "bob",
            day + Duration::days(1) + minutes(60),
            json!({ "tokens": 20 }),
        ),
        event(
            "c3",
            "llm.tokens",
            "bob",
            now - minutes(1),
            json!({ "tokens": 5 }),
        ),
    ];
    let (status, _) = post_batch(&app, &tenant.admin, &events).await;
    assert_eq!(status, StatusCode::OK);
    let (from, to) = (day, now + Duration::hours(1));
    assert_eq!(total(&app, &tenant.reader, "tokens", from, to).await, "35");

    // The query cached its two closed days (today is scanned every time).
    let store = &app.platform.store;
    let shape = meter_shape(&app, &tenant, from, to).await;
    let first = unix_day(day);
    let cached = || store.usage_days(tenant.scope(), "llm.tokens", &shape, first..first + 2);
    let days = cached().await.unwrap();
    let sums: Vec<_> = days
        .iter()
        .map(|day| {
            day.cells
                .as_ref()
                .map(|cells| cells[0].sum.unwrap().to_string())
        })
        .collect();
    assert_eq!(sums, [Some("10".to_owned()), Some("20".to_owned())]);

    // Asked again, the first day is answered from the cache: an answer planted there shows.
    let planted = UsageCell {
        count: 1,
        sum: Some(1000.into()),
        ..UsageCell::default()
    };
    store
        .cache_usage_day(
            tenant.scope(),
            "llm.tokens",
            &shape,
            first,
            days[0].version,
            &[planted],
        )
        .await
        .unwrap();
    assert_eq!(
        total(&app, &tenant.reader, "tokens", from, to).await,
        "1025"
    );
    // The other tenant asks the same question of its own (empty) days.
    assert_eq!(total(&app, &other.reader, "tokens", from, to).await, "0");

    // A late event in that day moves its version: the day is scanned again.
    let late = event(
        "c4",
        "llm.tokens",
        "alice",
        day + minutes(120),
        json!({ "tokens": 1 }),
    );
    let (status, _) = post_batch(&app, &tenant.server, &[late]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(total(&app, &tenant.reader, "tokens", from, to).await, "36");

    // So does a correction of the second day, once that day is cached again.
    assert_eq!(total(&app, &tenant.reader, "tokens", from, to).await, "36");
    assert!(cached().await.unwrap()[1].cells.is_some());
    app.platform
        .metering
        .correct(
            tenant.scope(),
            SOURCE,
            "c2",
            CorrectionChange::Amend {
                subject: None,
                time: None,
                data: Some(json!({ "tokens": 25 })),
            },
            "recounted",
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(total(&app, &tenant.reader, "tokens", from, to).await, "41");
    assert_eq!(total(&app, &tenant.reader, "tokens", from, to).await, "41");
}

/// The cache key of the `tokens` meter's plain total over `[from, to)`.
async fn meter_shape(
    app: &TestApp,
    tenant: &Tenant,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> String {
    let meter = app
        .platform
        .metering
        .meter(tenant.scope(), "tokens")
        .await
        .unwrap();
    UsageQuery {
        from,
        to,
        window: None,
        time_zone: Tz::UTC,
        subjects: vec![],
        filters: Default::default(),
        group_by: vec![],
        as_of: None,
    }
    .plan(&meter)
    .unwrap()
    .scan
    .shape()
}

async fn meters_and_events_are_private_to_their_tenant(app: TestApp) {
    let a = Tenant::create(&app, "Tenant A").await;
    let b = Tenant::create(&app, "Tenant B").await;
    a.meter(
        &app,
        "tokens",
        "llm.tokens",
        Aggregation::Sum,
        Some("$.tokens"),
        &[],
    )
    .await;
    b.meter(
        &app,
        "tokens",
        "llm.tokens",
        Aggregation::Sum,
        Some("$.tokens"),
        &[],
    )
    .await;
    b.meter(&app, "secret", "llm.tokens", Aggregation::Count, None, &[])
        .await;
    let day = day0();
    let (from, to) = (day, day + Duration::days(1));
    // The same (source, id) in two tenants: two events, one each.
    let mine = event(
        "shared-id",
        "llm.tokens",
        "alice",
        day + minutes(5),
        json!({ "tokens": 1 }),
    );
    let theirs = event(
        "shared-id",
        "llm.tokens",
        "alice",
        day + minutes(5),
        json!({ "tokens": 100 }),
    );
    assert_eq!(
        post_one(&app, &a.admin, &mine).await.0,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        post_one(&app, &b.admin, &theirs).await.0,
        StatusCode::ACCEPTED
    );
    assert_eq!(total(&app, &a.reader, "tokens", from, to).await, "1");
    assert_eq!(total(&app, &b.reader, "tokens", from, to).await, "100");

    // Another tenant's meter is not found, like a meter that does not exist.
    for slug in ["secret", "nothing"] {
        let (status, error) = usage_error(&app, &a.reader, slug, &period(from, to)).await;
        assert_eq!(
            (status, error["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{error}"
        );
    }
    // A tenant key cannot name another tenant.
    let (status, error) = usage_error(
        &app,
        &a.reader,
        "tokens",
        &format!("{}&tenantId={}", period(from, to), b.id),
    )
    .await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "{error}"
    );
    let (status, body) = post_events(
        &app,
        Some(&a.admin),
        Some(SINGLE),
        event("x", "llm.tokens", "alice", day, json!({ "tokens": 5 })).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let response = app
        .client
        .post(app.url(&format!("/v1/events?tenantId={}", b.id)))
        .bearer_auth(&a.admin)
        .header("content-type", SINGLE)
        .body(event("y", "llm.tokens", "alice", day, json!({ "tokens": 5 })).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(total(&app, &b.reader, "tokens", from, to).await, "100");

    // Operators name the tenant.
    let operator = &app.operator_token;
    let (status, error) = usage_error(&app, operator, "tokens", &period(from, to)).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_input")),
        "{error}"
    );
    let answer = usage(
        &app,
        operator,
        "secret",
        &format!("{}&tenantId={}", period(from, to), b.id),
    )
    .await;
    assert_eq!(answer["rows"][0]["value"], "1");
    let response = app
        .client
        .post(app.url(&format!("/v1/events?tenantId={}", b.id)))
        .bearer_auth(operator)
        .header("content-type", SINGLE)
        .body(event("z", "llm.tokens", "alice", day, json!({ "tokens": 5 })).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(total(&app, &b.reader, "tokens", from, to).await, "105");
    assert_eq!(total(&app, &a.reader, "tokens", from, to).await, "6");
}

async fn keys_need_the_access_the_route_needs(app: TestApp) {
    let tenant = Tenant::create(&app, "Access").await;
    tenant
        .meter(&app, "calls", "api.call", Aggregation::Count, None, &[])
        .await;
    let day = day0();
    let (from, to) = (day, day + Duration::days(1));
    let call = |id: &str| event(id, "api.call", "alice", day + minutes(1), json!({}));

    // Read-only keys read usage but send no events.
    let (status, body) = post_one(&app, &tenant.reader, &call("r")).await;
    assert_eq!(
        (status, error_of(&body).0),
        (StatusCode::FORBIDDEN, "forbidden"),
        "{body}"
    );
    // Resource servers (which serve the usage) and administrators send events.
    assert_eq!(
        post_one(&app, &tenant.server, &call("s")).await.0,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        post_one(&app, &tenant.admin, &call("a")).await.0,
        StatusCode::ACCEPTED
    );
    // Resource servers read no usage.
    let (status, error) = usage_error(&app, &tenant.server, "calls", &period(from, to)).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "{error}"
    );
    assert_eq!(total(&app, &tenant.admin, "calls", from, to).await, "2");
    assert_eq!(total(&app, &tenant.reader, "calls", from, to).await, "2");

    // No key, a malformed header, an unknown key.
    let url = app.url(&format!("/v1/meters/calls/query?{}", period(from, to)));
    let response = app.client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_of(&body).0, "unauthenticated");
    for authorization in ["Basic abc", "Bearer psk_0000000000000000_nothing"] {
        let response = app
            .client
            .get(&url)
            .header("authorization", authorization)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{authorization}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(error_of(&body).0, "invalid_api_key", "{authorization}");
    }
    let (status, body) = post_events(
        &app,
        Some("psk_0000000000000000_nothing"),
        Some(SINGLE),
        call("n").to_string(),
    )
    .await;
    assert_eq!(
        (status, error_of(&body).0),
        (StatusCode::UNAUTHORIZED, "invalid_api_key"),
        "{body}"
    );
    // Refused keys stored nothing.
    assert_eq!(total(&app, &tenant.reader, "calls", from, to).await, "2");
}

/// A batch whose middle event carries a NUL (in its data, a data key, or its subject): that
/// event alone is refused, and the two around it are stored and acknowledged. PostgreSQL
/// refuses NUL in `text` and `\u0000` in `jsonb`, SQLite keeps both: the validation before the
/// store makes them answer alike.
async fn an_event_with_nul_is_refused_alone_and_its_neighbours_are_stored(app: TestApp) {
    let tenant = Tenant::with_tokens_meter(&app, "Nul").await;
    let day = day0();
    let t = |m| day + minutes(m);
    let nul_subject = event(
        "s-2",
        "llm.tokens",
        "bob\u{0}",
        t(2),
        json!({ "tokens": 20 }),
    );
    let runs = [
        (
            "d",
            event(
                "d-2",
                "llm.tokens",
                "bob",
                t(2),
                json!({ "tokens": 20, "note": "a\u{0}b" }),
            ),
        ),
        (
            "k",
            event(
                "k-2",
                "llm.tokens",
                "bob",
                t(2),
                json!({ "tokens": 20, "x\u{0}": 1 }),
            ),
        ),
        ("s", nul_subject),
    ];
    for (run, (prefix, middle)) in runs.into_iter().enumerate() {
        let first = format!("{prefix}-1");
        let third = format!("{prefix}-3");
        let batch = vec![
            event(&first, "llm.tokens", "alice", t(1), json!({ "tokens": 1 })),
            middle.clone(),
            event(
                &third,
                "llm.tokens",
                "carol",
                t(3),
                json!({ "tokens": 300 }),
            ),
        ];
        let (status, answer) = post_batch(&app, &tenant.admin, &batch).await;
        assert_eq!(status, StatusCode::OK, "{prefix}: {answer}");
        let outcomes: Vec<(&str, &str)> = answer["events"]
            .as_array()
            .unwrap_or_else(|| panic!("{prefix}: {answer}"))
            .iter()
            .map(|o| {
                (
                    o["status"].as_str().unwrap(),
                    o["error"]["code"].as_str().unwrap_or("-"),
                )
            })
            .collect();
        assert_eq!(
            outcomes,
            [
                ("accepted", "-"),
                ("rejected", "malformed_cloudevent"),
                ("accepted", "-")
            ],
            "{prefix}: {answer}"
        );
        assert!(
            answer["events"][1]["error"]["message"]
                .as_str()
                .unwrap()
                .contains(if prefix == "s" { "`subject`" } else { "`data`" }),
            "{prefix}: {answer}"
        );
        // Exactly the two good events are stored, each run adding 1 + 300.
        for (id, stored) in [
            (first.as_str(), 1),
            (&format!("{prefix}-2"), 0),
            (&third, 1),
        ] {
            let history = app
                .store
                .usage_event_history(tenant.scope(), SOURCE, id)
                .await
                .unwrap();
            assert_eq!(history.len(), stored, "{id}");
        }
        let expected = (301 * (run + 1)).to_string();
        assert_eq!(
            total(&app, &tenant.reader, "tokens", day, day + Duration::days(1)).await,
            expected,
            "{prefix}"
        );
        // Sent alone, the event is refused with the same code.
        let (status, body) = post_one(&app, &tenant.admin, &middle).await;
        assert_eq!(
            (status, error_of(&body).0),
            (StatusCode::BAD_REQUEST, "malformed_cloudevent"),
            "{prefix}: {body}"
        );
    }
}

/// An operator naming a tenant that does not exist stores nothing and is told `not_found`, on
/// both backends (PostgreSQL's `usage_events` has no foreign key to `tenants`).
async fn events_for_a_tenant_that_does_not_exist_are_not_found(app: TestApp) {
    let missing = purser_domain::id::TenantId::new();
    let day = day0();
    let ghost = event("ghost", "llm.tokens", "alice", day, json!({ "tokens": 1 }));
    let url = app.url(&format!("/v1/events?tenantId={missing}"));
    for (content_type, body) in [
        (SINGLE, ghost.to_string()),
        (BATCH, Value::from(vec![ghost.clone()]).to_string()),
    ] {
        let response = app
            .client
            .post(&url)
            .bearer_auth(&app.operator_token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            (status, error_of(&body).0),
            (StatusCode::NOT_FOUND, "not_found"),
            "{content_type}: {body}"
        );
    }
    let stored = app
        .store
        .usage_event_history(TenantScope::trusted(missing), SOURCE, "ghost")
        .await
        .unwrap();
    assert!(stored.is_empty(), "{stored:?}");
    // Reading usage of a tenant that does not exist is `not_found` too.
    let (status, error) = usage_error(
        &app,
        &app.operator_token,
        "tokens",
        &format!(
            "{}&tenantId={missing}",
            period(day, day + Duration::days(1))
        ),
    )
    .await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found")),
        "{error}"
    );
}

/// Defence in depth: should the store refuse a row that passed every check (here, a trigger
/// planted in the database refuses one subject), the batch is stored one event at a time, so
/// that event alone is rejected, with the store's code, and its neighbours are stored.
async fn a_row_the_store_refuses_is_rejected_alone(app: TestApp) {
    let tenant = Tenant::with_tokens_meter(&app, "Refused").await;
    if let Some(pool) = &app.pg_pool {
        sqlx::raw_sql(
            "CREATE FUNCTION refuse_row() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.subject = 'refused-by-store' THEN
                     RAISE EXCEPTION 'refused' USING ERRCODE = 'character_not_in_repertoire';
                 END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER refuse_row BEFORE INSERT ON usage_events
                 FOR EACH ROW EXECUTE FUNCTION refuse_row();",
        )
        .execute(pool)
        .await
        .unwrap();
    }
    if let Some(pool) = &app.sqlite_pool {
        sqlx::raw_sql(
            "CREATE TRIGGER refuse_row BEFORE INSERT ON usage_events
             WHEN NEW.subject = 'refused-by-store'
             BEGIN SELECT RAISE(ABORT, 'refused'); END;",
        )
        .execute(pool)
        .await
        .unwrap();
    }
    let day = day0();
    let batch = vec![
        event(
            "r-1",
            "llm.tokens",
            "alice",
            day + minutes(1),
            json!({ "tokens": 1 }),
        ),
        event(
            "r-2",
            "llm.tokens",
            "refused-by-store",
            day + minutes(2),
            json!({ "tokens": 20 }),
        ),
        event(
            "r-3",
            "llm.tokens",
            "carol",
            day + minutes(3),
            json!({ "tokens": 300 }),
        ),
        // A duplicate in the batch is still answered as one.
        event(
            "r-1",
            "llm.tokens",
            "alice",
            day + minutes(1),
            json!({ "tokens": 1 }),
        ),
    ];
    let (status, answer) = post_batch(&app, &tenant.admin, &batch).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let statuses: Vec<&str> = answer["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["accepted", "rejected", "accepted", "duplicate"],
        "{answer}"
    );
    // PostgreSQL's refusal of a character is `invalid_input`; anything else the store says is
    // `internal`, its text only in the log.
    let code = answer["events"][1]["error"]["code"].as_str().unwrap();
    assert!(matches!(code, "invalid_input" | "internal"), "{answer}");
    assert_eq!(
        total(&app, &tenant.reader, "tokens", day, day + Duration::days(1)).await,
        "301"
    );
}
