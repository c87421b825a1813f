//! The `purser` binary as an operator runs it: bootstrap commands, configuration errors,
//! serving until SIGTERM, and trace export.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use purser_testkit::postgres::TestDatabase;
use serde_json::{Value, json};

const PURSER: &str = env!("CARGO_BIN_EXE_purser");

/// `purser` with a clean `PURSER__*` environment plus `env`, run in `dir`.
pub(crate) fn purser(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(PURSER);
    command.current_dir(dir).args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("PURSER__") || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    command
}

pub(crate) fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    purser(dir, args, env).output().expect("run purser")
}

pub(crate) fn last_line(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned()
}

/// A `purser serve` process on a port of its own choosing.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) base: String,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    fn start(dir: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_with(dir, &[], env)
    }

    /// `purser <global_args> serve` on a port of its own choosing.
    pub(crate) fn start_with(dir: &Path, global_args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut args = global_args.to_vec();
        args.extend(["serve", "--listen", "127.0.0.1:0"]);
        let mut child = purser(dir, &args, env)
            .env("PURSER__TELEMETRY__LOG_FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn purser serve");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        let lines = BufReader::new(child.stderr.take().unwrap());
        let captured = stderr.clone();
        std::thread::spawn(move || {
            for line in lines.lines().map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str::<Value>(&line)
                    && let Some(address) = event["address"].as_str()
                {
                    let _ = address_tx.send(address.to_owned());
                }
                captured.lock().unwrap().push_str(&line);
                captured.lock().unwrap().push('\n');
            }
        });
        let address = address_rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("purser serve did not start: {}", stderr.lock().unwrap()));
        Self {
            child,
            base: format!("http://{address}"),
            stderr,
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub(crate) fn terminate(mut self) -> String {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let logs = self.stderr.lock().unwrap().clone();
        assert!(exit.success(), "purser exited with {exit}: {logs}");
        logs
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_commands_make_keys_that_serve_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let created = run(dir.path(), &["tenant", "create", "--name", "Acme"], &[]);
    assert!(created.status.success(), "{created:?}");
    let tenant = last_line(&created);
    assert_eq!(tenant.len(), 36, "the last line is the tenant id: {tenant}");

    let key = run(
        dir.path(),
        &[
            "key",
            "create",
            "--tenant",
            &tenant,
            "--role",
            "tenant-admin",
        ],
        &[],
    );
    assert!(key.status.success(), "{key:?}");
    let secret = last_line(&key);
    assert!(
        secret.starts_with("psk_"),
        "the last line is the secret: {secret}"
    );
    let operator = run(
        dir.path(),
        &["key", "create", "--operator", "--name", "root"],
        &[],
    );
    assert!(operator.status.success(), "{operator:?}");
    let operator_secret = last_line(&operator);
    assert!(
        dir.path().join("purser-data").is_dir(),
        "the embedded default keeps a local folder"
    );

    let server = Server::start(dir.path(), &[]);
    let client = purser_testkit::http_client();
    let viewer = |token: String| {
        client
            .post(format!("{}/graphql", server.base))
            .bearer_auth(token)
            .json(&json!({ "query": "{ viewer { role tenant { id name } } }" }))
            .send()
    };
    let body: Value = viewer(secret).await.unwrap().json().await.unwrap();
    assert_eq!(body["data"]["viewer"]["role"], "TENANT_ADMIN", "{body}");
    assert_eq!(body["data"]["viewer"]["tenant"]["id"], tenant.as_str());
    let body: Value = viewer(operator_secret).await.unwrap().json().await.unwrap();
    assert_eq!(body["data"]["viewer"]["role"], "OPERATOR", "{body}");
    let logs = server.terminate();
    assert!(logs.contains("received SIGTERM"), "{logs}");
}

#[test]
fn bad_configuration_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(
        dir.path(),
        &["migrate"],
        &[("PURSER__SERVER__LISTEN", "nowhere")],
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("server.listen"), "{stderr}");
    assert!(stderr.contains("PURSER__SERVER__LISTEN"), "{stderr}");

    std::fs::write(
        dir.path().join("purser.toml"),
        "[storage]\ndatabse_url = \"postgres://x\"\n",
    )
    .unwrap();
    let output = run(dir.path(), &["--config", "purser.toml", "migrate"], &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("databse_url"), "{stderr}");

    let output = run(dir.path(), &["--config", "missing.toml", "migrate"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("missing.toml"));

    let output = run(
        dir.path(),
        &["migrate"],
        &[(
            "PURSER__STORAGE__DATABASE_URL",
            "postgres://user:hunter2@127.0.0.1:1/none",
        )],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("hunter2"),
        "a secret reached the output: {stderr}"
    );
}

/// Anonymous settlements must belong to a tenant that exists: `serve` refuses to start for
/// one that does not, naming the key, instead of failing each settlement later.
#[test]
fn an_anonymous_tenant_that_does_not_exist_stops_serve() {
    let dir = tempfile::tempdir().unwrap();
    let missing = purser_domain::id::TenantId::new().to_string();
    let output = run(
        dir.path(),
        &["serve", "--listen", "127.0.0.1:0"],
        &[
            ("PURSER__FACILITATOR__ALLOW_ANONYMOUS", "true"),
            ("PURSER__FACILITATOR__ANONYMOUS_TENANT", &missing),
        ],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("facilitator.anonymous_tenant"), "{stderr}");
    assert!(stderr.contains(&missing), "{stderr}");
}

#[test]
fn bootstrap_commands_refuse_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(
        dir.path(),
        &[
            "key",
            "create",
            "--tenant",
            "0190c0de-0000-7000-8000-000000000000",
            "--role",
            "tenant-read",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("no tenant"),
        "{output:?}"
    );
    let output = run(
        dir.path(),
        &["key", "create", "--tenant", "junk", "--role", "tenant-read"],
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("not a UUID"),
        "{output:?}"
    );
    let output = run(
        dir.path(),
        &["key", "create", "--operator", "--role", "tenant-read"],
        &[],
    );
    assert_eq!(
        output.status.code(),
        Some(2),
        "clap refuses the combination"
    );
    let output = run(dir.path(), &["tenant", "create", "--name", ""], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("must not be empty"));
    let first = run(dir.path(), &["tenant", "create", "--name", "Acme"], &[]);
    assert!(first.status.success());
    let second = run(dir.path(), &["tenant", "create", "--name", "acme"], &[]);
    assert_eq!(second.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("tenant_name_taken"),
        "{second:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_applies_postgres_migrations() {
    let database = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let env = [("PURSER__STORAGE__DATABASE_URL", database.url())];
    let output = run(dir.path(), &["migrate"], &env);
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("postgres"));
    let again = run(dir.path(), &["migrate"], &env);
    assert!(
        again.status.success(),
        "migrating twice is harmless: {again:?}"
    );
    assert!(
        !dir.path().join("purser-data").exists(),
        "no embedded database was made"
    );
}

/// Spans reach an OTLP/HTTP collector when one is configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_are_exported_over_otlp() {
    let received = Arc::new(Mutex::new(Vec::<(String, Vec<u8>)>::new()));
    let sink = received.clone();
    let collector = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let sink = sink.clone();
                async move {
                    let content_type = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    sink.lock().unwrap().push((content_type, body.to_vec()));
                    ""
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, collector).await });

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            ("PURSER__TELEMETRY__OTLP_ENDPOINT", &endpoint),
            ("PURSER__TELEMETRY__SERVICE_NAME", "purser-otlp-test"),
        ],
    );
    for _ in 0..3 {
        purser_testkit::http_client()
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .unwrap();
    }
    let base = server.base.clone();
    tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    let _ = base;
    let received = received.lock().unwrap();
    assert!(!received.is_empty(), "the collector received nothing");
    let (content_type, body) = &received[0];
    assert_eq!(content_type, "application/x-protobuf");
    let needle = b"purser-otlp-test";
    assert!(
        body.windows(needle.len()).any(|w| w == needle),
        "the service name is in the export"
    );
}
