//! Prometheus metrics: one process-wide recorder, HTTP request counts and latencies by route
//! (recorded by [`crate::layers`]).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::SharedString;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets in seconds, from 0.5 ms to 10 s.
const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global recorder the first time, and returns the handle that renders it.
/// Must be called from within a Tokio runtime (it starts the recorder's upkeep task).
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".to_owned()),
                    LATENCY_BUCKETS_SECONDS,
                )
                .expect("the bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            let upkeep = handle.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(UPKEEP_INTERVAL).await;
                    upkeep.run_upkeep();
                }
            });
            handle
        })
        .clone()
}

/// A method as a label: the standard ones by name, any other as `other` (a client may send any
/// token as a method; labels come from closed sets only).
pub(crate) fn method_label(method: &http::Method) -> &'static str {
    use http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// A status as a label: the code when it is a real HTTP status (100-599), else `other`.
fn status_label(status: http::StatusCode) -> &'static str {
    static LABELS: OnceLock<Vec<String>> = OnceLock::new();
    let labels = LABELS.get_or_init(|| (100..600).map(|code: u16| code.to_string()).collect());
    status
        .as_u16()
        .checked_sub(100)
        .and_then(|i| labels.get(usize::from(i)))
        .map_or("other", String::as_str)
}

/// Counts one request and records its latency, labelled by method, route template (never the
/// raw path, which would explode the label set) and status. `route` is shared, so that a
/// label costs no copy.
pub(crate) fn record(
    method: &'static str,
    route: &Arc<str>,
    status: http::StatusCode,
    elapsed: Duration,
) {
    let status = status_label(status);
    metrics::counter!(
        "http_requests_total",
        "method" => method,
        "route" => SharedString::from(route.clone()),
        "status" => status,
    )
    .increment(1);
    metrics::histogram!(
        "http_request_duration_seconds",
        "method" => method,
        "route" => SharedString::from(route.clone()),
    )
    .record(elapsed.as_secs_f64());
}
