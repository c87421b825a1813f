//! The official x402 SDKs' scripts in `tests/interop` (npm packages installed there by
//! `cargo xtask test`), run with Node.js as a paying agent or a merchant would run them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncReadExt;

/// How long one node script may run before it is killed.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// The interop folder (`PURSER_INTEROP_DIR`, else `tests/interop`), failing the test with the
/// remedy when its npm packages are not installed.
pub fn interop_dir() -> PathBuf {
    let dir = std::env::var_os("PURSER_INTEROP_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop"));
    let installed = dir.join("node_modules/@x402/core/package.json");
    assert!(
        installed.is_file(),
        "the interop npm packages are not installed in {} (no {}): run `cargo xtask test`, or \
         `npm ci` in tests/interop",
        dir.display(),
        installed.display()
    );
    dir
}

/// Runs `node <script>` in the interop folder with `env`, killed after [`SCRIPT_TIMEOUT`],
/// and answers the JSON of the last line it printed. Fails the test, with everything the
/// script printed, when it cannot run, fails, times out or prints no JSON.
pub async fn run_script(script: &str, env: &[(&str, String)]) -> Value {
    let dir = interop_dir();
    let mut child = tokio::process::Command::new("node")
        .arg(script)
        .current_dir(&dir)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `node {script}` in {}: {e} (the interop tests need Node.js 20 or newer \
                 on PATH)",
                dir.display()
            )
        });
    let collect = |stream: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>| {
        tokio::spawn(async move {
            let mut buffer = Vec::new();
            if let Some(mut stream) = stream {
                let _ = stream.read_to_end(&mut buffer).await;
            }
            String::from_utf8_lossy(&buffer).into_owned()
        })
    };
    let stdout = collect(child.stdout.take().map(|s| Box::new(s) as _));
    let stderr = collect(child.stderr.take().map(|s| Box::new(s) as _));
    let status = match tokio::time::timeout(SCRIPT_TIMEOUT, child.wait()).await {
        Ok(status) => Some(status.expect("wait for node")),
        Err(_) => {
            let _ = child.kill().await;
            None
        }
    };
    // The pipes close when node exits; bounded anyway, should it have left a child behind.
    let output = |task: tokio::task::JoinHandle<String>| async move {
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .map(|r| r.unwrap_or_default())
            .unwrap_or_else(|_| "<output not closed>".to_owned())
    };
    let (stdout, stderr) = (output(stdout).await, output(stderr).await);
    let shown = format!("--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    let Some(status) = status else {
        panic!(
            "`node {script}` did not finish within {} s and was killed\n{shown}",
            SCRIPT_TIMEOUT.as_secs()
        );
    };
    assert!(
        status.success(),
        "`node {script}` failed ({status})\n{shown}"
    );
    let line = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_else(|| panic!("`node {script}` printed nothing\n{shown}"));
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("`node {script}` printed no JSON line ({e})\n{shown}"))
}

/// What a server prices an escrowed (`auth-capture`) resource with.
pub struct EscrowOffer<'a> {
    pub network: &'a str,
    /// The token's address and EIP-712 domain.
    pub asset: &'a str,
    pub name: &'a str,
    pub version: &'a str,
    pub pay_to: &'a str,
    pub amount: u128,
    /// Unix seconds.
    pub capture_deadline: u64,
    pub refund_deadline: u64,
}

/// The `auth-capture` requirements a server writes from a facilitator's `/supported` answer:
/// the kind's terms copied verbatim (operator, receiver authorizer, fees), with the server's
/// own asset, price and deadlines.
pub fn auth_capture_requirements(supported: &Value, offer: &EscrowOffer<'_>) -> Value {
    let kind = supported["kinds"]
        .as_array()
        .and_then(|kinds| {
            kinds
                .iter()
                .find(|k| k["scheme"] == "auth-capture" && k["network"] == offer.network)
        })
        .unwrap_or_else(|| panic!("no auth-capture kind for {}: {supported}", offer.network));
    let mut extra = kind["extra"].as_object().cloned().unwrap_or_default();
    for (key, value) in [
        ("name", Value::from(offer.name)),
        ("version", Value::from(offer.version)),
        ("paymentFlow", Value::from("escrow")),
        ("captureDeadline", Value::from(offer.capture_deadline)),
        ("refundDeadline", Value::from(offer.refund_deadline)),
    ] {
        extra.insert(key.to_owned(), value);
    }
    serde_json::json!({
        "scheme": "auth-capture",
        "network": offer.network,
        "amount": offer.amount.to_string(),
        "asset": offer.asset,
        "payTo": offer.pay_to,
        "maxTimeoutSeconds": 120,
        "extra": extra,
    })
}

/// The official client's (`@x402/evm` auth-capture) payment for `requirements`, signed with
/// the private key `payer_key`: a whole `PaymentPayload`.
pub async fn pay_auth_capture(payer_key: &str, requirements: &Value) -> Value {
    let out = run_script(
        "sdk-auth-capture-sign.mjs",
        &[
            ("X402_PAYER_KEY", payer_key.to_owned()),
            ("X402_REQUIREMENTS", requirements.to_string()),
        ],
    )
    .await;
    serde_json::json!({
        "x402Version": 2,
        "accepted": requirements,
        "payload": out["payload"],
    })
}
