//! The HTTP API of metering.
//!
//! - `POST /v1/events`: usage events as CloudEvents in structured mode, one
//!   (`application/cloudevents+json`) or a batch (`application/cloudevents-batch+json`, a JSON
//!   array). A stored single event answers 202, a duplicate 200 (an idempotent retry), a
//!   rejected one the error envelope with the event's code. A batch answers 200 with an outcome
//!   per event, in order. The answer is sent after the store committed. Keys: `tenant_admin`
//!   and `resource_server` (and operators, naming `tenantId`: `not_found` when there is no such
//!   tenant).
//! - `GET /v1/meters/{meter}/query`: a meter's usage per window, subject and dimension, as
//!   JSON or CSV (`Accept: text/csv` or `format=csv`). Keys that read the tenant.
//!
//! The events route has a body limit of its own (`[metering] max_body_bytes`: batches are
//! larger than most bodies), so [`ingest_router`] is a router of its own: wrap it in
//! [`purser_http::layers::apply`] with that limit, then merge it (as `purser::app` does).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRef, Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, SecondsFormat, Utc};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use purser_domain::auth::{Access, Authenticator, Principal, Role, TenantScope};
use purser_domain::id::TenantId;
use purser_domain::metering::meter::SUBJECT;
use purser_domain::metering::query::{Tz, parse_time_zone};
use purser_domain::metering::{UsageEntry, UsageQuery, WindowSize};
use purser_domain::{Error, ErrorCode};
use purser_http::ApiError;
use purser_http::auth::Authenticated;
use serde::Serialize;
use serde::de::{DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde_json::Value;

use crate::{EventOutcome, EventStatus, Metering, UsageReport};

/// Where usage events are sent.
pub const EVENTS_PATH: &str = "/v1/events";
/// The content type of one structured-mode CloudEvent.
pub const CLOUDEVENT_JSON: &str = "application/cloudevents+json";
/// The content type of a batch of structured-mode CloudEvents (a JSON array).
pub const CLOUDEVENT_BATCH_JSON: &str = "application/cloudevents-batch+json";

/// What the metering routes need.
#[derive(Clone)]
pub struct MeteringState {
    pub metering: Arc<Metering>,
    pub authenticator: Arc<Authenticator>,
}

impl FromRef<MeteringState> for Arc<Authenticator> {
    fn from_ref(state: &MeteringState) -> Self {
        state.authenticator.clone()
    }
}

/// `POST /v1/events`. Layer it with `[metering] max_body_bytes` as its body limit.
pub fn ingest_router(state: MeteringState) -> Router {
    Router::new()
        .route(EVENTS_PATH, post(ingest))
        .with_state(state)
}

/// `GET /v1/meters/{meter}/query`.
pub fn query_router(state: MeteringState) -> Router {
    Router::new()
        .route("/v1/meters/{meter}/query", get(query))
        .with_state(state)
}

// ---------------------------------------------------------------------------------------------
// Ingestion

/// How a request's body holds its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Single,
    Batch,
}

fn mode_of(headers: &HeaderMap) -> Result<Mode, Error> {
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| {
            value
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    match essence.as_deref() {
        Some(CLOUDEVENT_JSON) => Ok(Mode::Single),
        Some(CLOUDEVENT_BATCH_JSON) => Ok(Mode::Batch),
        _ => Err(Error::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "send usage events as `Content-Type: {CLOUDEVENT_JSON}` (one event) or \
                 `{CLOUDEVENT_BATCH_JSON}` (a JSON array of events)"
            ),
        )),
    }
}

/// The tenant events are sent for: a `tenant_admin` key's or a `resource_server` key's own
/// (resource servers report the usage they serve), or the one an operator names, which must
/// exist (`not_found`).
async fn ingest_scope(
    authenticator: &Authenticator,
    principal: &Principal,
    tenant: Option<TenantId>,
) -> Result<TenantScope, Error> {
    let access = match principal.role {
        Role::ResourceServer => Access::Facilitate,
        Role::Operator | Role::TenantAdmin | Role::TenantRead => Access::Write,
    };
    authenticator.scope(principal, tenant, access).await
}

/// The `tenantId` parameter, the only one `POST /v1/events` takes.
fn ingest_tenant(raw: Option<&str>) -> Result<Option<TenantId>, Error> {
    let mut tenant = None;
    for (key, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "tenantId" if tenant.is_none() => tenant = Some(value.parse::<TenantId>()?),
            "tenantId" => return Err(Error::invalid_input("`tenantId` is given twice")),
            other => {
                return Err(Error::invalid_input(format!(
                    "unknown query parameter `{}`; `POST {EVENTS_PATH}` takes only `tenantId` (operator keys)",
                    other.chars().take(64).collect::<String>()
                )));
            }
        }
    }
    Ok(tenant)
}

/// A batch's answer.
#[derive(Debug, Serialize)]
struct BatchAnswer {
    accepted: usize,
    duplicates: usize,
    rejected: usize,
    events: Vec<EventOutcome>,
}

fn malformed_json(message: String) -> Error {
    Error::new(ErrorCode::MalformedJson, message)
}

/// A batch's events. Reading stops one event past `max`: a batch too large is refused
/// (`batch_too_large`, nothing stored) without building the rest of it in memory.
fn read_batch(body: &[u8], max: usize) -> Result<Vec<Value>, Error> {
    let exceeded = Cell::new(false);
    let mut reader = serde_json::Deserializer::from_slice(body);
    let read = BoundedBatch {
        max,
        exceeded: &exceeded,
    }
    .deserialize(&mut reader)
    .and_then(|events| reader.end().map(|()| events));
    match read {
        Ok(events) => Ok(events),
        Err(_) if exceeded.get() => Err(Error::new(
            ErrorCode::BatchTooLarge,
            format!(
                "the batch holds more than {max} events; at most {max} are accepted per request"
            ),
        )),
        Err(e) => Err(malformed_json(format!(
            "a `{CLOUDEVENT_BATCH_JSON}` body is a JSON array of events: {e}"
        ))),
    }
}

struct BoundedBatch<'a> {
    max: usize,
    exceeded: &'a Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for BoundedBatch<'_> {
    type Value = Vec<Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for BoundedBatch<'_> {
    type Value = Vec<Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON array of events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut events = Vec::new();
        while let Some(event) = seq.next_element::<Value>()? {
            if events.len() == self.max {
                self.exceeded.set(true);
                return Err(serde::de::Error::custom("too many events"));
            }
            events.push(event);
        }
        Ok(events)
    }
}

async fn ingest(
    State(state): State<MeteringState>,
    Authenticated(principal): Authenticated,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let tenant = ingest_tenant(raw.as_deref())?;
    let scope = ingest_scope(&state.authenticator, &principal, tenant).await?;
    let mode = mode_of(&headers)?;
    let events = match mode {
        Mode::Single => vec![
            serde_json::from_slice::<Value>(&body)
                .map_err(|e| malformed_json(format!("the body is not JSON: {e}")))?,
        ],
        Mode::Batch => read_batch(&body, state.metering.limits().max_batch_events)?,
    };
    let outcomes = state.metering.ingest(scope, events, Utc::now()).await?;
    let count = |status| outcomes.iter().filter(|o| o.status == status).count();
    tracing::debug!(
        tenant = %scope.tenant_id(),
        accepted = count(EventStatus::Accepted),
        duplicates = count(EventStatus::Duplicate),
        rejected = count(EventStatus::Rejected),
        "usage events ingested"
    );
    if mode == Mode::Batch {
        let answer = BatchAnswer {
            accepted: count(EventStatus::Accepted),
            duplicates: count(EventStatus::Duplicate),
            rejected: count(EventStatus::Rejected),
            events: outcomes,
        };
        return Ok(Json(answer).into_response());
    }
    let outcome = outcomes
        .into_iter()
        .next()
        .ok_or_else(|| Error::new(ErrorCode::Internal, "one event got no outcome"))?;
    Ok(match (outcome.status, &outcome.error) {
        (EventStatus::Accepted, _) => (StatusCode::ACCEPTED, Json(outcome)).into_response(),
        (EventStatus::Duplicate, _) => (StatusCode::OK, Json(outcome)).into_response(),
        (EventStatus::Rejected, Some(error)) => {
            purser_http::error::error_response(error.code, &error.message)
        }
        (EventStatus::Rejected, None) => {
            return Err(Error::new(ErrorCode::Internal, "a rejected event has no error").into());
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Usage queries

/// The parameters `GET /v1/meters/{meter}/query` takes.
const QUERY_PARAMETERS: &str =
    "from, to, window, tz, subject, filter[<dimension>], groupBy, asOf, format, tenantId";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
}

/// A usage query's parameters, read from the raw query string (parameters repeat).
#[derive(Debug)]
struct UsageParams {
    query: UsageQuery,
    format: Option<Format>,
    tenant: Option<TenantId>,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::InvalidUsageQuery, message.into())
}

fn clip(text: &str) -> String {
    text.chars().take(64).collect()
}

fn once<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<(), Error> {
    if slot.is_some() {
        return Err(invalid(format!("`{name}` is given twice")));
    }
    *slot = Some(value);
    Ok(())
}

/// An RFC 3339 instant. An unencoded `+` of an offset arrives as a space; it is read back.
fn instant(name: &str, text: &str) -> Result<DateTime<Utc>, Error> {
    DateTime::parse_from_rfc3339(text)
        .or_else(|e| {
            if text.contains(' ') {
                DateTime::parse_from_rfc3339(&text.replace(' ', "+"))
            } else {
                Err(e)
            }
        })
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| {
            invalid(format!(
                "`{name}` is not an RFC 3339 timestamp (such as 2026-01-31T00:00:00Z): `{}`",
                clip(text)
            ))
        })
}

fn usage_params(raw: &str) -> Result<UsageParams, Error> {
    let (mut from, mut to, mut window, mut tz, mut as_of, mut format, mut tenant) =
        (None, None, None, None, None, None, None);
    let mut subjects = Vec::new();
    let mut filters: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut group_by = Vec::new();
    for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
        match key.as_ref() {
            "from" => once(&mut from, "from", instant("from", &value)?)?,
            "to" => once(&mut to, "to", instant("to", &value)?)?,
            "asOf" => once(&mut as_of, "asOf", instant("asOf", &value)?)?,
            "window" => {
                let size = value
                    .to_ascii_uppercase()
                    .parse::<WindowSize>()
                    .map_err(|_| {
                        invalid(format!(
                            "`window` is one of MINUTE, HOUR, DAY, MONTH, not `{}`",
                            clip(&value)
                        ))
                    })?;
                once(&mut window, "window", size)?;
            }
            "tz" => once(&mut tz, "tz", parse_time_zone(&value)?)?,
            "format" => {
                let wanted = match value.to_ascii_lowercase().as_str() {
                    "json" => Format::Json,
                    "csv" => Format::Csv,
                    _ => {
                        return Err(invalid(format!(
                            "`format` is `json` or `csv`, not `{}`",
                            clip(&value)
                        )));
                    }
                };
                once(&mut format, "format", wanted)?;
            }
            "tenantId" => once(&mut tenant, "tenantId", value.parse::<TenantId>()?)?,
            "subject" => subjects.push(value.into_owned()),
            "groupBy" => group_by.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|name| !name.is_empty())
                    .map(str::to_owned),
            ),
            other => match other
                .strip_prefix("filter[")
                .and_then(|rest| rest.strip_suffix(']'))
            {
                Some(SUBJECT) => subjects.push(value.into_owned()),
                Some(dimension) if !dimension.is_empty() => filters
                    .entry(dimension.to_owned())
                    .or_default()
                    .push(value.into_owned()),
                _ => {
                    return Err(invalid(format!(
                        "unknown query parameter `{}`; the parameters are: {QUERY_PARAMETERS}",
                        clip(other)
                    )));
                }
            },
        }
    }
    let from = from.ok_or_else(|| invalid("`from` is required (an RFC 3339 timestamp)"))?;
    let to = to.ok_or_else(|| invalid("`to` is required (an RFC 3339 timestamp)"))?;
    Ok(UsageParams {
        query: UsageQuery {
            from,
            to,
            window,
            time_zone: tz.unwrap_or(Tz::UTC),
            subjects,
            filters,
            group_by,
            as_of,
        },
        format,
        tenant,
    })
}

/// The format the `Accept` header prefers: CSV when it ranks `text/csv` above JSON, JSON
/// otherwise (also when it accepts neither: the error would help nobody).
fn preferred_format(headers: &HeaderMap) -> Format {
    let Some(accept) = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
    else {
        return Format::Json;
    };
    // The quality of the most specific range matching `kind/sub`, per RFC 9110.
    let quality = |kind: &str, sub: &str| -> f32 {
        let mut best: Option<(u8, f32)> = None;
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let specificity = match essence.split_once('/') {
                Some((t, s)) if t == kind && s == sub => 2,
                Some((t, "*")) if t == kind => 1,
                Some(("*", "*")) => 0,
                _ => continue,
            };
            if best.is_none_or(|(seen, _)| specificity > seen) {
                best = Some((specificity, q));
            }
        }
        best.map_or(0.0, |(_, q)| q)
    };
    if quality("text", "csv") > quality("application", "json") {
        Format::Csv
    } else {
        Format::Json
    }
}

async fn query(
    State(state): State<MeteringState>,
    Authenticated(principal): Authenticated,
    Path(slug): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = usage_params(raw.as_deref().unwrap_or_default())?;
    let scope = state
        .authenticator
        .scope(&principal, params.tenant, Access::Read)
        .await?;
    let report = state.metering.query(scope, &slug, &params.query).await?;
    Ok(
        match params.format.unwrap_or_else(|| preferred_format(&headers)) {
            Format::Json => Json(usage_json(&params.query, &report)).into_response(),
            Format::Csv => usage_csv(&params.query, &report)?,
        },
    )
}

/// An instant in the query's time zone (window boundaries read as local times).
fn local(at: DateTime<Utc>, tz: Tz) -> String {
    at.with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn utc(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct UsageAnswer<'a> {
    meter: &'a str,
    aggregation: &'static str,
    from: String,
    to: String,
    window: Option<&'static str>,
    time_zone: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    as_of: Option<String>,
    rows: Vec<RowAnswer<'a>>,
    corrections: Vec<CorrectionAnswer<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RowAnswer<'a> {
    window_start: String,
    window_end: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a str>,
    groups: &'a BTreeMap<String, Option<String>>,
    /// A decimal string: exact, unlike a JSON number read as a float.
    value: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CorrectionAnswer<'a> {
    source: &'a str,
    id: &'a str,
    revision: u32,
    kind: &'static str,
    reason: Option<&'a str>,
    recorded_at: String,
    /// The event's time after the correction.
    time: String,
    subject: &'a str,
}

fn usage_json<'a>(query: &UsageQuery, report: &'a UsageReport) -> UsageAnswer<'a> {
    let tz = query.time_zone;
    UsageAnswer {
        meter: &report.meter.slug,
        aggregation: report.meter.aggregation.as_str(),
        from: local(query.from, tz),
        to: local(query.to, tz),
        window: query.window.map(WindowSize::as_str),
        time_zone: tz.name(),
        as_of: query.as_of.map(utc),
        rows: report
            .rows
            .iter()
            .map(|row| RowAnswer {
                window_start: local(row.window_start, tz),
                window_end: local(row.window_end, tz),
                subject: row.subject.as_deref(),
                groups: &row.groups,
                value: row.value.to_string(),
            })
            .collect(),
        corrections: report.corrections.iter().map(correction_json).collect(),
    }
}

fn correction_json(entry: &UsageEntry) -> CorrectionAnswer<'_> {
    CorrectionAnswer {
        source: &entry.source,
        id: &entry.id,
        revision: entry.revision,
        kind: entry.kind.as_str(),
        reason: entry.reason.as_deref(),
        recorded_at: utc(entry.recorded_at),
        time: utc(entry.time),
        subject: &entry.subject,
    }
}

/// A subject or dimension value (text from events, so from anyone who can send one) as a CSV
/// cell a spreadsheet shows as text: one starting like a formula (`=`, `+`, `-`, `@`, a tab or a
/// carriage return) gets a leading `'`, as OWASP advises against CSV injection. Windows and
/// values are written by Purser and left alone.
fn spreadsheet_text(text: String) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text
    }
}

/// `window_start,window_end,subject,<dimensions grouped by...>,value`, RFC 4180. Without a
/// `window`, the one window is the period. `subject` is empty unless grouped by subject.
fn usage_csv(query: &UsageQuery, report: &UsageReport) -> Result<Response, Error> {
    let csv_error = |e: csv::Error| Error::internal("writing a usage export", e);
    let tz = query.time_zone;
    let dimensions: Vec<&str> = query
        .group_by
        .iter()
        .map(String::as_str)
        .filter(|name| *name != SUBJECT)
        .collect();
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let mut header_row = vec!["window_start", "window_end", SUBJECT];
    header_row.extend(&dimensions);
    header_row.push("value");
    writer.write_record(&header_row).map_err(csv_error)?;
    for row in &report.rows {
        let mut record = vec![
            local(row.window_start, tz),
            local(row.window_end, tz),
            spreadsheet_text(row.subject.clone().unwrap_or_default()),
        ];
        record.extend(dimensions.iter().map(|name| {
            spreadsheet_text(row.groups.get(*name).cloned().flatten().unwrap_or_default())
        }));
        record.push(row.value.to_string());
        writer.write_record(&record).map_err(csv_error)?;
    }
    let body = writer
        .into_inner()
        .map_err(|e| Error::internal("writing a usage export", e.into_error()))?;
    let disposition = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}-usage.csv\"",
        report.meter.slug
    ))
    .map_err(|e| Error::internal("naming a usage export", e))?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> Format {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        preferred_format(&headers)
    }

    #[test]
    fn text_that_a_spreadsheet_would_run_is_quoted() {
        for risky in [
            "=HYPERLINK(\"http://x\")",
            "+1+2",
            "-2+3",
            "@SUM(A1)",
            "\tx",
            "\rx",
        ] {
            assert_eq!(spreadsheet_text(risky.into()), format!("'{risky}"));
        }
        for plain in ["alice", "0xabc", "gpt-4o", "", "1.5", "'quoted"] {
            assert_eq!(spreadsheet_text(plain.into()), plain);
        }
    }

    #[test]
    fn negotiates_csv_only_when_preferred() {
        assert_eq!(preferred_format(&HeaderMap::new()), Format::Json);
        assert_eq!(accept("text/csv"), Format::Csv);
        assert_eq!(accept("text/*"), Format::Csv);
        assert_eq!(accept("*/*"), Format::Json);
        assert_eq!(accept("application/json, text/csv"), Format::Json);
        assert_eq!(accept("application/json;q=0.5, text/csv"), Format::Csv);
        assert_eq!(accept("text/csv;q=0.2, */*;q=0.9"), Format::Json);
        assert_eq!(accept("application/xml"), Format::Json);
    }

    #[test]
    fn reads_repeated_and_bracketed_parameters() {
        let params = usage_params(
            "from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00%2B01:00&window=hour&tz=Europe/Berlin\
             &subject=a&filter[subject]=b&filter%5Bmodel%5D=gpt&filter[model]=o1\
             &groupBy=subject,model&groupBy=region&asOf=2026-01-03T00:00:00 02:00&format=CSV",
        )
        .unwrap();
        let query = params.query;
        assert_eq!(
            query.from,
            "2026-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            query.to,
            "2026-01-01T23:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            query.as_of,
            Some("2026-01-02T22:00:00Z".parse::<DateTime<Utc>>().unwrap())
        );
        assert_eq!(query.window, Some(WindowSize::Hour));
        assert_eq!(query.time_zone, Tz::Europe__Berlin);
        assert_eq!(query.subjects, ["a", "b"]);
        assert_eq!(query.filters["model"], ["gpt", "o1"]);
        assert_eq!(query.group_by, ["subject", "model", "region"]);
        assert_eq!(params.format, Some(Format::Csv));
    }

    #[test]
    fn names_the_bad_parameter() {
        let says = |raw: &str, what: &str| {
            let err = usage_params(raw).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidUsageQuery, "{raw}");
            assert!(err.message().contains(what), "{raw}: {}", err.message());
        };
        let period = "from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z";
        says("to=2026-01-02T00:00:00Z", "`from` is required");
        says("from=2026-01-01T00:00:00Z", "`to` is required");
        says(
            "from=yesterday&to=2026-01-02T00:00:00Z",
            "`from` is not an RFC 3339",
        );
        says(&format!("{period}&window=week"), "`window`");
        says(&format!("{period}&tz=Mars/Olympus"), "Mars/Olympus");
        says(&format!("{period}&format=xml"), "`format`");
        says(&format!("{period}&group_by=model"), "`group_by`");
        says(&format!("{period}&filter[]=x"), "`filter[]`");
        says(
            &format!("{period}&from=2026-01-01T00:00:00Z"),
            "`from` is given twice",
        );
    }

    #[test]
    fn batches_stop_reading_past_the_limit() {
        assert_eq!(read_batch(b"[{}, 1, []]", 3).unwrap().len(), 3);
        assert_eq!(read_batch(b" [] ", 3).unwrap().len(), 0);
        let too_many = read_batch(b"[{}, 1, [], 2, this is never read", 3).unwrap_err();
        assert_eq!(too_many.code(), ErrorCode::BatchTooLarge);
        for malformed in [&b"{}"[..], b"[1,", b"[1] [2]", b"", b"[1, x]"] {
            assert_eq!(
                read_batch(malformed, 3).unwrap_err().code(),
                ErrorCode::MalformedJson,
                "{}",
                String::from_utf8_lossy(malformed)
            );
        }
    }

    #[test]
    fn content_types() {
        let mode = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
            mode_of(&headers).map_err(|e| e.code())
        };
        assert_eq!(mode("application/cloudevents+json"), Ok(Mode::Single));
        assert_eq!(
            mode("Application/CloudEvents-Batch+JSON; charset=utf-8"),
            Ok(Mode::Batch)
        );
        assert_eq!(
            mode("application/json"),
            Err(ErrorCode::UnsupportedMediaType)
        );
        assert_eq!(
            mode_of(&HeaderMap::new()).map_err(|e| e.code()),
            Err(ErrorCode::UnsupportedMediaType)
        );
    }
}
