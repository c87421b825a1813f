//! The shared layers and serving, over real TCP.

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use purser_http::layers::{self, HttpLimits};
use purser_http::serve::ConnectionLimits;
use serde_json::Value;

mod connections;

async fn spawn(
    router: Router,
    shutdown: tokio::sync::oneshot::Receiver<()>,
    grace: Duration,
) -> (String, tokio::task::JoinHandle<bool>) {
    spawn_with(router, shutdown, grace, ConnectionLimits::default()).await
}

async fn spawn_with(
    router: Router,
    shutdown: tokio::sync::oneshot::Receiver<()>,
    grace: Duration,
    limits: ConnectionLimits,
) -> (String, tokio::task::JoinHandle<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        purser_http::serve::serve(
            listener,
            router,
            async move {
                let _ = shutdown.await;
            },
            grace,
            limits,
        )
        .await
        .unwrap()
    });
    (base, server)
}

fn app(limits: HttpLimits) -> Router {
    let routes = Router::new()
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(600)).await;
                "done"
            }),
        )
        .route(
            "/panic",
            get(|| async {
                if true {
                    panic!("handler bug");
                }
                ""
            }),
        )
        .route(
            "/json",
            post(|axum::Json(v): axum::Json<Value>| async move { axum::Json(v) }),
        );
    layers::apply(routes, limits)
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let (base, server) = spawn(app(HttpLimits::default()), stopped, Duration::from_secs(5)).await;
    let in_flight = tokio::spawn(
        purser_testkit::http_client()
            .get(format!("{base}/slow"))
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    stop.send(()).unwrap();
    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight request was answered");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "done");
    assert!(server.await.unwrap(), "drained within the grace period");
    assert!(
        purser_testkit::http_client()
            .get(format!("{base}/slow"))
            .send()
            .await
            .is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn shutdown_gives_up_on_stragglers_after_the_grace_period() {
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let (base, server) = spawn(
        app(HttpLimits::default()),
        stopped,
        Duration::from_millis(100),
    )
    .await;
    let in_flight = tokio::spawn(
        purser_testkit::http_client()
            .get(format!("{base}/slow"))
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    assert!(
        !server.await.unwrap(),
        "reported that requests were cut off"
    );
    drop(in_flight);
}

#[tokio::test]
async fn framework_errors_carry_codes() {
    let (_stop, stopped) = tokio::sync::oneshot::channel();
    let limits = HttpLimits {
        max_body_bytes: 64,
        request_timeout: Duration::from_millis(200),
        ..HttpLimits::default()
    };
    let (base, _server) = spawn(app(limits), stopped, Duration::from_secs(1)).await;
    let client = purser_testkit::http_client();
    let code = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("a JSON envelope");
        (
            status,
            body["error"]["code"]
                .as_str()
                .unwrap_or("<none>")
                .to_owned(),
        )
    };
    assert_eq!(
        code(client.get(format!("{base}/panic")).send().await.unwrap()).await,
        (500, "internal".to_owned())
    );
    assert_eq!(
        code(client.get(format!("{base}/slow")).send().await.unwrap()).await,
        (408, "request_timeout".to_owned())
    );
    let not_json = client
        .post(format!("{base}/json"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(code(not_json).await.1, "malformed_json");
    let wrong_type = client
        .post(format!("{base}/json"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(wrong_type).await,
        (415, "unsupported_media_type".to_owned())
    );
    let too_big = client
        .post(format!("{base}/json"))
        .header("content-type", "application/json")
        .body(format!("\"{}\"", "x".repeat(100)))
        .send()
        .await
        .unwrap();
    assert_eq!(code(too_big).await, (413, "payload_too_large".to_owned()));
    let ok = client
        .post(format!("{base}/json"))
        .json(&serde_json::json!({"a": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}
