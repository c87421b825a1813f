//! Operations endpoints: `/healthz` (the process answers), `/readyz` (its dependencies answer),
//! `/metrics` (Prometheus text).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::{StatusCode, header};
use metrics_exporter_prometheus::PrometheusHandle;
use purser_domain::coord::Coordination;
use purser_domain::repo::StoreHealth;
use serde_json::json;

/// How long a readiness probe waits for each dependency.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct OpsState {
    pub store: Arc<dyn StoreHealth>,
    pub coordination: Arc<dyn Coordination>,
    pub metrics: PrometheusHandle,
}

pub fn router(state: OpsState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(state)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<OpsState>) -> Response {
    let (database, coordination) = tokio::join!(
        tokio::time::timeout(READINESS_TIMEOUT, state.store.ping()),
        tokio::time::timeout(READINESS_TIMEOUT, state.coordination.ping()),
    );
    let verdict =
        |result: Result<purser_domain::Result<()>, tokio::time::error::Elapsed>| match result {
            Ok(Ok(())) => "ok",
            Ok(Err(err)) => {
                tracing::warn!(error = %err.chain(), "readiness check failed");
                "unavailable"
            }
            Err(_) => "timeout",
        };
    let database = verdict(database);
    let coordination = verdict(coordination);
    let ready = database == "ok" && coordination == "ok";
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "checks": {
            "database": { "backend": state.store.backend(), "status": database },
            "coordination": { "backend": state.coordination.backend(), "status": coordination },
        },
    });
    (status, Json(body)).into_response()
}

async fn render_metrics(State(state): State<OpsState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
