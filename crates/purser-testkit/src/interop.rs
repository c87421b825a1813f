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
