//! What a stranger can do with sockets and bytes: slow or endless heads, too many
//! connections, heads hyper cannot parse, odd methods and request ids. Spoken over raw TCP
//! where an HTTP client would refuse to send what is tested.

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use purser_http::layers::{self, HttpLimits};
use purser_http::serve::ConnectionLimits;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{app, spawn, spawn_with};

/// Far longer than any bound under test: a read that takes this long hangs.
const HANG: Duration = Duration::from_secs(10);

fn address(base: &str) -> String {
    base.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection; `None` if it did not within [`HANG`].
async fn read_to_close(stream: &mut TcpStream) -> Option<String> {
    let mut answer = Vec::new();
    tokio::time::timeout(HANG, stream.read_to_end(&mut answer))
        .await
        .ok()?
        .ok()?;
    Some(String::from_utf8_lossy(&answer).into_owned())
}

/// Sends `bytes` on a fresh connection and reads the answer up to the close.
async fn exchange(base: &str, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(address(base)).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    read_to_close(&mut stream)
        .await
        .expect("the server answered and closed")
}

/// The status and the envelope's code of a raw HTTP/1.1 answer.
fn status_and_code(answer: &str) -> (u16, String) {
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    let code = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("<no envelope in {answer:?}>"));
    (status, code)
}

fn quick_limits() -> ConnectionLimits {
    ConnectionLimits {
        header_read_timeout: Duration::from_millis(300),
        ..ConnectionLimits::default()
    }
}

#[tokio::test]
async fn a_head_that_never_ends_is_closed_after_the_header_timeout() {
    let (_stop, stopped) = tokio::sync::oneshot::channel();
    let (base, _server) = spawn_with(
        app(HttpLimits::default()),
        stopped,
        Duration::from_secs(1),
        quick_limits(),
    )
    .await;
    // Slowloris: a head begun and never finished, and a connection that sends nothing.
    let mut partial = TcpStream::connect(address(&base)).await.unwrap();
    partial
        .write_all(b"GET /json HTTP/1.1\r\nhost: a\r\nx-slow: 1\r\n")
        .await
        .unwrap();
    let mut silent = TcpStream::connect(address(&base)).await.unwrap();
    let started = Instant::now();
    assert!(read_to_close(&mut partial).await.is_some(), "never closed");
    assert!(read_to_close(&mut silent).await.is_some(), "never closed");
    assert!(started.elapsed() < HANG);
}

#[tokio::test]
async fn a_kept_alive_connection_waits_for_its_next_request_only_so_long() {
    let (_stop, stopped) = tokio::sync::oneshot::channel();
    let (base, _server) = spawn_with(
        app(HttpLimits::default()),
        stopped,
        Duration::from_secs(1),
        quick_limits(),
    )
    .await;
    let mut stream = TcpStream::connect(address(&base)).await.unwrap();
    stream
        .write_all(b"GET /nowhere HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut stream).await.expect("closed at last");
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
}

#[tokio::test]
async fn connections_over_the_caps_are_refused_with_the_envelope() {
    let (_stop, stopped) = tokio::sync::oneshot::channel();
    let limits = ConnectionLimits {
        max_connections: 3,
        ..ConnectionLimits::default()
    };
    let (base, _server) = spawn_with(
        app(HttpLimits::default()),
        stopped,
        Duration::from_secs(1),
        limits,
    )
    .await;
    let client = purser_testkit::http_client();
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(address(&base)).await.unwrap();
        // A full exchange proves the server admitted the connection.
        stream
            .write_all(b"GET /nowhere HTTP/1.1\r\nhost: a\r\n\r\n")
            .await
            .unwrap();
        let mut buffer = [0u8; 12];
        stream.read_exact(&mut buffer).await.unwrap();
        assert_eq!(&buffer, b"HTTP/1.1 404");
        held.push(stream);
    }
    let answer = exchange(&base, b"GET /nowhere HTTP/1.1\r\nhost: a\r\n\r\n").await;
    assert_eq!(status_and_code(&answer), (503, "overloaded".to_owned()));
    assert!(answer.contains("\r\nretry-after: 1\r\n"), "{answer}");
    // A slot frees when a connection closes.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let response = client.get(format!("{base}/nowhere")).send().await.unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn one_address_may_hold_only_its_share_of_connections() {
    let (_stop, stopped) = tokio::sync::oneshot::channel();
    let limits = ConnectionLimits {
        max_connections_per_address: 2,
        ..ConnectionLimits::default()
    };
    let (base, _server) = spawn_with(
        app(HttpLimits::default()),
        stopped,
        Duration::from_secs(1),
        limits,
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(address(&base)).await.unwrap();
        stream
            .write_all(b"GET /nowhere HTTP/1.1\r\nhost: a\r\n\r\n")
            .await
            .unwrap();
        let mut buffer = [0u8; 12];
        stream.read_exact(&mut buffer).await.unwrap();
        held.push(stream);
    }
    let answer = exchange(&base, b"GET /nowhere HTTP/1.1\r\nhost: a\r\n\r\n").await;
    assert_eq!(status_and_code(&answer), (429, "rate_limited".to_owned()));
    assert!(answer.contains("\r\nretry-after: 1\r\n"), "{answer}");
}

#[tokio::test]
async fn heads_hyper_cannot_parse_get_the_envelope() {
    let (_stop, stopped) = tokio::sync::oneshot::channel();
    let (base, _server) = spawn(app(HttpLimits::default()), stopped, Duration::from_secs(1)).await;
    // A URL past hyper's own limit (64 KiB).
    let long = format!("GET /{} HTTP/1.1\r\nhost: a\r\n\r\n", "a".repeat(70 * 1024));
    let answer = exchange(&base, long.as_bytes()).await;
    let (status, code) = status_and_code(&answer);
    assert!(
        (status, code.as_str()) == (414, "uri_too_long")
            || (status, code.as_str()) == (431, "headers_too_large"),
        "{answer}"
    );
    // A request line that is not HTTP.
    let answer = exchange(&base, b"HELLO THERE\r\n\r\n").await;
    assert_eq!(status_and_code(&answer), (400, "malformed_http".to_owned()));
    // More headers than allowed.
    let mut many = String::from("GET /json HTTP/1.1\r\nhost: a\r\n");
    for i in 0..150 {
        many.push_str(&format!("x-h{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let answer = exchange(&base, many.as_bytes()).await;
    assert_eq!(
        status_and_code(&answer),
        (431, "headers_too_large".to_owned())
    );
    // A head larger than hyper's buffer.
    let huge = format!(
        "GET /json HTTP/1.1\r\nhost: a\r\nx-big: {}\r\n\r\n",
        "b".repeat(200 * 1024)
    );
    let answer = exchange(&base, huge.as_bytes()).await;
    assert_eq!(
        status_and_code(&answer),
        (431, "headers_too_large".to_owned())
    );
    // The server still serves.
    let response = purser_testkit::http_client()
        .get(format!("{base}/nowhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn urls_and_headers_over_the_limits_get_the_envelope() {
    let (_stop, stopped) = tokio::sync::oneshot::channel();
    let (base, _server) = spawn(app(HttpLimits::default()), stopped, Duration::from_secs(1)).await;
    let client = purser_testkit::http_client();
    let code = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("a JSON envelope");
        (
            status,
            body["error"]["code"].as_str().unwrap_or("").to_owned(),
        )
    };
    let long = format!("{base}/json?q={}", "q".repeat(10 * 1024));
    assert_eq!(
        code(client.get(long).send().await.unwrap()).await,
        (414, "uri_too_long".to_owned())
    );
    let mut request = client.get(format!("{base}/nowhere"));
    for i in 0..40 {
        request = request.header(format!("x-pad-{i}"), "p".repeat(1000));
    }
    assert_eq!(
        code(request.send().await.unwrap()).await,
        (431, "headers_too_large".to_owned())
    );
}

#[tokio::test]
async fn a_route_holds_only_so_many_requests_at_once() {
    let (_stop, stopped) = tokio::sync::oneshot::channel();
    let limits = HttpLimits {
        max_in_flight_per_route: 2,
        ..HttpLimits::default()
    };
    let (base, _server) = spawn(app(limits), stopped, Duration::from_secs(1)).await;
    let client = purser_testkit::http_client();
    let slow = || client.get(format!("{base}/slow")).send();
    let (a, b, c) = tokio::join!(slow(), slow(), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        slow().await
    });
    assert_eq!(a.unwrap().status(), 200);
    assert_eq!(b.unwrap().status(), 200);
    let c = c.unwrap();
    assert_eq!(c.status(), 503);
    assert_eq!(c.headers()["retry-after"], "1");
    let body: Value = c.json().await.unwrap();
    assert_eq!(body["error"]["code"], "overloaded");
}

#[tokio::test]
async fn odd_methods_and_paths_add_no_metric_series() {
    let handle = purser_http::metrics::install();
    let (_stop, stopped) = tokio::sync::oneshot::channel();
    let router: Router = Router::new().route("/known", get(|| async { "ok" }));
    let (base, _server) = spawn(
        layers::apply(router, HttpLimits::default()),
        stopped,
        Duration::from_secs(1),
    )
    .await;
    let mut tokens = Vec::new();
    for i in 0..200 {
        let method = format!("ZQX{i}METHOD");
        let path = format!("/zqx-path-{i}");
        let request = format!("{method} {path} HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n");
        let answer = exchange(&base, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
        tokens.push(method);
        tokens.push(path);
    }
    let rendered = handle.render();
    for token in &tokens {
        assert!(!rendered.contains(token.as_str()), "{token} became a label");
    }
    let odd: Vec<&str> = rendered
        .lines()
        .filter(|l| l.starts_with("http_requests_total") && l.contains("route=\"unmatched\""))
        .collect();
    assert!(
        odd.iter().any(|l| l.contains("method=\"other\"")),
        "{rendered}"
    );
    assert!(odd.len() <= 10, "{odd:?}");
}

#[tokio::test]
async fn request_ids_are_kept_only_when_plain_and_short() {
    let (_stop, stopped) = tokio::sync::oneshot::channel();
    let (base, _server) = spawn(app(HttpLimits::default()), stopped, Duration::from_secs(1)).await;
    let client = purser_testkit::http_client();
    let id_of = |id: String| {
        let request = client
            .get(format!("{base}/nowhere"))
            .header("x-request-id", id);
        async move {
            let response = request.send().await.unwrap();
            response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned()
        }
    };
    assert_eq!(id_of("trace-42".to_owned()).await, "trace-42");
    for bad in ["x".repeat(5000), "has spaces".to_owned(), "a\"b".to_owned()] {
        let issued = id_of(bad.clone()).await;
        assert_ne!(issued, bad);
        assert_eq!(issued.len(), 36, "a fresh UUID: {issued}");
    }
}

#[tokio::test]
async fn shutdown_is_not_held_by_a_connection_that_never_finishes_its_head() {
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let (base, server) = spawn_with(
        app(HttpLimits::default()),
        stopped,
        Duration::from_secs(2),
        ConnectionLimits::default(),
    )
    .await;
    let mut partial = TcpStream::connect(address(&base)).await.unwrap();
    partial
        .write_all(b"GET /json HTTP/1.1\r\nhost: a\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    stop.send(()).unwrap();
    let finished = tokio::time::timeout(HANG, server)
        .await
        .expect("shutdown finished within the grace period");
    finished.unwrap();
    assert!(
        started.elapsed() <= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
