//! Purser behind a real nginx: `auth_request` asks `/v1/access/nginx`, with the configuration
//! that README.md documents (read from README.md, so that the two cannot drift), in front of an
//! upstream API; the official SDK's clients pay through it, on both backend pairs.
//!
//! nginx is `PURSER_NGINX` (which `cargo xtask test` sets, fetching Debian's package when nginx
//! is not installed), else `nginx` on `PATH`, `/usr/sbin/nginx`, or the package xtask unpacked.
//! It runs unprivileged as one process in a temporary prefix and is killed with the test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use purser_domain::money::Amount;
use serde_json::{Value, json};

use crate::harness::{Backends, on_both_backend_pairs};
use crate::interop::{
    Interop, NETWORK, PRICE, Upstream, assert_same_address, repo_root, run_script,
};

/// How long nginx may take to listen.
const NGINX_START_TIMEOUT: Duration = Duration::from_secs(10);

/// Where `cargo xtask test` unpacks Debian's nginx package, under `$HOME`.
const XTASK_NGINX: &str = ".cache/purser/nginx/usr/sbin/nginx";

on_both_backend_pairs!(sdk_clients_pay_through_nginx);

async fn sdk_clients_pay_through_nginx(backends: Backends) {
    // Fail fast, before any chain starts, when there is no nginx.
    let binary = nginx_binary();
    let fx = Interop::start(backends).await;
    let upstream = Upstream::start().await;
    let nginx = Nginx::start(
        &binary,
        &readme_server(&fx.app.base, &upstream.base, &fx.key),
    )
    .await;
    // A description as long as the registry allows: the challenge travels in response
    // headers, between Purser and nginx, and back in the client's payment.
    let description = long_description();
    fx.publish_described(
        &format!("{}/weather/:city", nginx.base),
        "Weather",
        &description,
    )
    .await;
    let merchant_before = fx.balance(fx.merchant()).await;

    // Unpaid: nginx answers the 402, the challenge in PAYMENT-REQUIRED and the v1 body. A long
    // path too: the v2 payment echoes the URL twice, past nginx's default 8k header line.
    let city = format!("lisbon-{}", "0123456789".repeat(100));
    let url = format!("{}/weather/{city}", nginx.base);
    let unpaid = reqwest::get(&url).await.unwrap();
    assert_eq!(unpaid.status(), 402, "{}", nginx.log());
    let headers = unpaid.headers().clone();
    assert!(
        headers["server"].to_str().unwrap().starts_with("nginx"),
        "nginx answered: {headers:?}"
    );
    assert_eq!(headers["content-type"], "application/json");
    assert!(!headers.contains_key("payment-response"), "{headers:?}");
    let required =
        purser_x402::header::decode_payment_required(headers["payment-required"].to_str().unwrap())
            .unwrap();
    assert_eq!(required.resource.url, url);
    assert_eq!(
        required.resource.description.as_deref(),
        Some(&*description)
    );
    assert_eq!(required.accepts.len(), 1, "{required:?}");
    let offer = serde_json::to_value(&required.accepts[0]).unwrap();
    assert_eq!(offer["network"], NETWORK, "{offer}");
    assert_eq!(offer["scheme"], "exact", "{offer}");
    assert_eq!(required.accepts[0].amount, Amount::from_atomic(PRICE));
    assert_same_address(&offer["payTo"], fx.merchant());
    assert_same_address(&offer["asset"], fx.chain().token().address);
    let body: Value = unpaid.json().await.unwrap();
    assert_eq!(body["x402Version"], 1, "{body}");
    assert_eq!(body["accepts"][0]["description"], description, "{body}");
    assert_eq!(body["accepts"][0]["network"], "base-sepolia", "{body}");
    assert_eq!(
        body["accepts"][0]["maxAmountRequired"],
        PRICE.to_string(),
        "{body}"
    );
    assert_eq!(
        upstream.calls(),
        0,
        "an unpaid request reached the upstream"
    );

    // v2: @x402/fetch pays through nginx; Purser settled before nginx called the upstream.
    let mut env = fx.script_env(PRICE);
    env.push(("X402_URL", url.clone()));
    let out = run_script("sdk-pay-url.mjs", &env).await;
    let shown = format!("{out}\n{}", nginx.log());
    assert_eq!(out["unpaid"]["status"], 402, "{shown}");
    assert_eq!(
        out["unpaid"]["paymentRequired"]["accepts"][0]["amount"],
        PRICE.to_string(),
        "{shown}"
    );
    assert_eq!(out["sent"], json!(["payment-signature"]), "{shown}");
    assert_eq!(out["paid"]["status"], 200, "{shown}");
    assert_eq!(
        out["paid"]["body"],
        json!({ "city": city, "forecast": "sunny" }),
        "{shown}"
    );
    let settled = &out["paid"]["paymentResponse"];
    assert_eq!(settled["success"], true, "{shown}");
    assert_eq!(settled["network"], NETWORK, "{shown}");
    assert_same_address(&settled["payer"], fx.payer().address());
    fx.assert_transaction_succeeded(settled["transaction"].as_str().unwrap())
        .await;
    assert_eq!(
        fx.balance(fx.merchant()).await,
        merchant_before + U256::from(PRICE)
    );
    assert_eq!(
        upstream.calls(),
        1,
        "only the paid request reached the upstream"
    );
    {
        let seen = upstream.seen.lock().unwrap();
        assert_same_address(
            &json!(seen[0]["x-purser-payer"].to_str().unwrap()),
            fx.payer().address(),
        );
        for withheld in ["payment-signature", "x-payment", "x-purser-key"] {
            assert!(
                !seen[0].contains_key(withheld),
                "the upstream received {withheld}: {:?}",
                seen[0]
            );
        }
    }

    // The same PAYMENT-SIGNATURE again: 409 before the upstream, nothing more moves.
    assert_eq!(out["replay"]["status"], 409, "{shown}");
    assert_eq!(
        out["replay"]["body"]["error"]["code"], "payment_already_used",
        "{shown}"
    );
    assert_eq!(upstream.calls(), 1, "a replay reached the upstream");
    assert_eq!(
        fx.balance(fx.merchant()).await,
        merchant_before + U256::from(PRICE)
    );

    // v1: x402-fetch 1.x reads the 402's JSON body, pays with X-PAYMENT and is answered in v1.
    let mut env = fx.script_env(PRICE);
    env.push(("X402_URL", format!("{}/weather/porto", nginx.base)));
    env.push(("X402_CLIENT", "v1".into()));
    let out = run_script("sdk-pay-url.mjs", &env).await;
    let shown = format!("{out}\n{}", nginx.log());
    assert_eq!(out["unpaid"]["body"]["x402Version"], 1, "{shown}");
    assert_eq!(out["sent"], json!(["x-payment"]), "{shown}");
    assert_eq!(out["paid"]["status"], 200, "{shown}");
    assert_eq!(out["paid"]["body"]["city"], "porto", "{shown}");
    assert!(out["paid"]["paymentResponse"].is_null(), "{shown}");
    let settled = &out["paid"]["xPaymentResponse"];
    assert_eq!(settled["success"], true, "{shown}");
    assert_eq!(settled["network"], "base-sepolia", "{shown}");
    fx.assert_transaction_succeeded(settled["transaction"].as_str().unwrap())
        .await;
    assert_eq!(
        fx.balance(fx.merchant()).await,
        merchant_before + U256::from(2 * PRICE)
    );
    assert_eq!(upstream.calls(), 2);
    assert_same_address(
        &json!(
            upstream.seen.lock().unwrap()[1]["x-purser-payer"]
                .to_str()
                .unwrap()
        ),
        fx.payer().address(),
    );
    assert_eq!(out["replay"]["status"], 409, "{shown}");
    assert_eq!(
        out["replay"]["body"]["error"]["code"], "payment_already_used",
        "{shown}"
    );
    assert_eq!(upstream.calls(), 2, "a v1 replay reached the upstream");

    // A key Purser refuses is nginx's 500, never a 402 without a challenge (nginx would take
    // Purser's 401 for one) nor a 409.
    let misconfigured = Nginx::start(
        &binary,
        &readme_server(&fx.app.base, &upstream.base, "not-a-purser-key"),
    )
    .await;
    let refused = reqwest::get(format!("{}/weather/faro", misconfigured.base))
        .await
        .unwrap();
    let log = misconfigured.log();
    assert_eq!(refused.status(), 500, "{log}");
    assert!(!refused.headers().contains_key("payment-required"));
    // Purser answered the 500 (an unknown resource would be 404, an unreachable Purser 502).
    assert!(log.contains("auth request unexpected status: 500"), "{log}");
    assert_eq!(upstream.calls(), 2);
    fx.app.stop().await;
}

/// A description of the registry's maximum length, not all ASCII.
fn long_description() -> String {
    let sentence = "Hourly forecasts for Lisboa, Porto, Faro and São Miguel. ";
    sentence
        .chars()
        .cycle()
        .take(purser_registry::validate::MAX_DESCRIPTION_CHARS)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// nginx.

/// The README's nginx configuration (its one `nginx` code block), pointed at this test's Purser
/// (`purser`), upstream and `key`. It still listens on `80`; [`Nginx::start`] picks the port.
fn readme_server(purser: &str, upstream: &str, key: &str) -> String {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("read README.md");
    let blocks: Vec<&str> = readme
        .split("```nginx\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap_or_default())
        .collect();
    let [server] = blocks[..] else {
        panic!(
            "README.md should hold exactly one ```nginx block, the tested configuration; it holds {}",
            blocks.len()
        );
    };
    let server = replace_documented(server, "http://127.0.0.1:8402", purser);
    let server = replace_documented(&server, "http://10.0.0.7:9000", upstream);
    replace_documented(&server, "<resource_server key>", key)
}

/// `text` with `documented` replaced by `actual`; fails when the README no longer says it.
fn replace_documented(text: &str, documented: &str, actual: &str) -> String {
    assert!(
        text.contains(documented),
        "the README's nginx configuration no longer contains `{documented}`, which this test \
         replaces; update the test with it:\n{text}"
    );
    text.replace(documented, actual)
}

/// nginx for the tests: `PURSER_NGINX`, else `nginx` on `PATH`, `/usr/sbin/nginx`, or the one
/// `cargo xtask test` unpacked. Fails (never skips) when there is none.
fn nginx_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PURSER_NGINX") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "PURSER_NGINX is {}, which is not a file",
            path.display()
        );
        return path;
    }
    let on_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("nginx"))
                .collect()
        })
        .unwrap_or_default();
    let unpacked = std::env::var_os("HOME").map(|home| Path::new(&home).join(XTASK_NGINX));
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin/nginx")])
        .chain(unpacked)
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the nginx tests need nginx, and PURSER_NGINX is not set and no nginx was found \
                 (on PATH, /usr/sbin/nginx, ~/{XTASK_NGINX}): run `cargo xtask test` (which \
                 fetches Debian's package), install nginx (`apt-get install nginx`), or set \
                 PURSER_NGINX"
            )
        })
}

/// nginx serving one `server` block, as a single unprivileged process in a temporary prefix;
/// killed when dropped.
struct Nginx {
    base: String,
    child: Child,
    prefix: tempfile::TempDir,
}

impl Nginx {
    /// Starts `binary` with `server` (which says `listen 80;`) on a free port, and waits until
    /// it listens.
    async fn start(binary: &Path, server: &str) -> Self {
        // The port is free when picked; another process may take it before nginx binds it, so
        // a start that lost the port is tried again on another.
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("pick a free port")
                .port();
            let server =
                replace_documented(server, "listen 80;", &format!("listen 127.0.0.1:{port};"));
            let mut nginx = Self::spawn(binary, &server, port);
            match nginx.wait_until_listening(port).await {
                Ok(()) => return nginx,
                Err(log) if log.contains("Address already in use") => continue,
                Err(log) => panic!(
                    "nginx ({}) did not start listening on port {port}:\n{log}",
                    binary.display()
                ),
            }
        }
        panic!("nginx lost its port to another process three times")
    }

    fn spawn(binary: &Path, server: &str, port: u16) -> Self {
        let prefix = tempfile::tempdir().expect("create nginx's prefix folder");
        // What the test adds around the README's server block: no root, no system paths.
        let config = format!(
            "pid nginx.pid;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n\
             access_log off;\n\
             client_body_temp_path client_body;\n\
             proxy_temp_path proxy;\n\
             fastcgi_temp_path fastcgi;\n\
             uwsgi_temp_path uwsgi;\n\
             scgi_temp_path scgi;\n\
             {server}\n\
             }}\n"
        );
        std::fs::write(prefix.path().join("nginx.conf"), config).expect("write nginx.conf");
        let stderr =
            std::fs::File::create(prefix.path().join("stderr.log")).expect("create stderr.log");
        let child = Command::new(binary)
            .arg("-p")
            .arg(prefix.path())
            .args(["-c", "nginx.conf", "-e", "error.log"])
            // One process, which never changes user: nothing left behind when it is killed.
            .args(["-g", "daemon off; master_process off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run nginx ({}): {e}", binary.display()));
        Self {
            base: format!("http://127.0.0.1:{port}"),
            child,
            prefix,
        }
    }

    /// Polls the port until nginx accepts connections; the log when it exits or times out.
    async fn wait_until_listening(&mut self, port: u16) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("poll nginx") {
                return Err(format!("nginx exited ({status})\n{}", self.log()));
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            if started.elapsed() > NGINX_START_TIMEOUT {
                return Err(format!(
                    "nginx did not listen within {} s\n{}",
                    NGINX_START_TIMEOUT.as_secs(),
                    self.log()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// nginx's error log and anything it printed, for failure messages.
    fn log(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.prefix.path().join(name)).unwrap_or_default();
        format!(
            "--- nginx error.log ---\n{}--- nginx stderr ---\n{}",
            read("error.log"),
            read("stderr.log")
        )
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
