//! Development automation, in Rust rather than shell.
//!
//! - `cargo xtask test [-- <cargo test args>]`: makes sure PostgreSQL and Redis are reachable
//!   (starting local ones when they are installed but stopped), then runs the whole test suite.
//!   It never skips a backend: when one cannot be reached, it stops and says what to install.
//!   Before that it installs the npm packages of `tests/interop` (anvil, solc, the x402 reference
//!   SDK) when they are missing or older than `package-lock.json`, and hands the tests
//!   `PURSER_INTEROP_DIR` (that folder) and `PURSER_ANVIL` (the anvil binary inside it). It also
//!   finds nginx for the `auth_request` tests (`PURSER_NGINX`, `nginx` on `PATH`,
//!   `/usr/sbin/nginx`, or Debian's package fetched with `apt-get download` and unpacked into
//!   `~/.cache/purser/nginx`) and hands it over as `PURSER_NGINX`.
//! - `cargo xtask schema`: regenerates the committed `schema.graphql`.
//! - `cargo xtask contracts [--check]`: compiles `contracts/src` with the pinned solc into the
//!   committed artefacts `contracts/out/*.json`; with `--check`, compiles into a temporary folder
//!   instead and fails when the committed artefacts differ (CI runs this).
//! - `cargo xtask bench [-- <purser-bench args>]`: installs the npm packages of `tests/interop`
//!   when needed (anvil, and the SDK's express server of `--suite resource-servers`), builds
//!   `purser` and the `purser-bench` harness in release mode and runs the harness (`/verify` and
//!   `/settle` against anvil beside a peer facilitator, or with `--suite resource-servers` a paid
//!   route behind the gateway, the native layer and @x402/express; see BENCHMARKS.md).

use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
const SERVICE_START_TIMEOUT: Duration = Duration::from_secs(60);
const USAGE: &str = "usage: cargo xtask <test [-- cargo test args] | schema | contracts [--check] | bench [-- purser-bench args]>";
/// The npm package holding anvil, solc and the x402 reference SDK, relative to the workspace.
const INTEROP_DIR: &str = "tests/interop";
/// The anvil binary inside it (the npm package `@foundry-rs/anvil-linux-amd64`).
const ANVIL_IN_INTEROP: &str = "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil";
/// Where Debian's nginx package is unpacked when no nginx is installed, under `$HOME`.
const NGINX_CACHE: &str = ".cache/purser/nginx";
/// The binary inside an unpacked nginx package.
const NGINX_IN_PACKAGE: &str = "usr/sbin/nginx";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("schema") => schema(),
        Some("bench") => bench(&args[1..]),
        Some("contracts") => match &args[1..] {
            [] => contracts(false),
            [flag] if flag == "--check" => contracts(true),
            _ => Err(USAGE.to_owned()),
        },
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The checkout `cargo xtask` was run in. `cargo run` names this crate's folder in the
/// environment; the path compiled in is only a fallback, since one binary serves every checkout
/// that shares a `CARGO_TARGET_DIR` (cargo reuses it when sources are older than the build) and
/// must not build or test another checkout than the caller's.
fn workspace_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest_dir.join("../..")
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    command.current_dir(workspace_root());
    command
}

fn run(mut command: Command) -> Result<(), String> {
    let shown = format!("{command:?}");
    let status = command
        .status()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}

fn test(extra: &[String]) -> Result<(), String> {
    let database_url =
        std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
    let redis_url = std::env::var("REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.to_owned());
    ensure_postgres(&database_url)?;
    ensure_redis(&redis_url)?;
    let interop = ensure_interop_packages()?;
    let anvil = interop.join(ANVIL_IN_INTEROP);
    if !anvil.is_file() {
        return Err(format!(
            "{} is missing after `npm ci`; is this machine linux x86-64?",
            anvil.display()
        ));
    }
    let nginx = ensure_nginx()?;
    let mut command = cargo();
    command
        .args(["test", "--workspace", "--locked"])
        .env("DATABASE_URL", &database_url)
        .env("REDIS_URL", &redis_url)
        .env("PURSER_INTEROP_DIR", &interop)
        .env("PURSER_ANVIL", &anvil)
        .env("PURSER_NGINX", &nginx);
    let extra = match extra.first().map(String::as_str) {
        Some("--") => &extra[1..],
        _ => extra,
    };
    if !extra.is_empty() {
        command.arg("--").args(extra);
    }
    run(command)
}

fn bench(extra: &[String]) -> Result<(), String> {
    ensure_interop_packages()?;
    let mut build = cargo();
    build.args([
        "build",
        "--release",
        "--locked",
        "-p",
        "purser",
        "-p",
        "purser-bench",
    ]);
    run(build)?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || workspace_root().join("target"),
        |dir| workspace_root().join(dir),
    );
    let release = target.join("release");
    let mut command = Command::new(release.join("purser-bench"));
    command
        .current_dir(workspace_root())
        .arg("--purser")
        .arg(release.join("purser"));
    let extra = match extra.first().map(String::as_str) {
        Some("--") => &extra[1..],
        _ => extra,
    };
    command.args(extra);
    run(command)
}

fn schema() -> Result<(), String> {
    let mut command = cargo();
    command
        .args([
            "test",
            "--quiet",
            "-p",
            "purser-admin",
            "--test",
            "it",
            "committed_schema_matches_the_code",
        ])
        .env("PURSER_BLESS", "1");
    run(command)?;
    println!("wrote schema.graphql");
    Ok(())
}

fn contracts(check: bool) -> Result<(), String> {
    ensure_interop_packages()?;
    let root = workspace_root();
    let committed = root.join("contracts/out");
    if !check {
        return run(node_build_contracts(&committed));
    }
    let fresh = std::env::temp_dir().join(format!("purser-contracts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&fresh);
    let result =
        run(node_build_contracts(&fresh)).and_then(|()| compare_artefacts(&committed, &fresh));
    let _ = std::fs::remove_dir_all(&fresh);
    result?;
    println!("contracts/out matches contracts/src");
    Ok(())
}

fn node_build_contracts(out: &Path) -> Command {
    let mut command = Command::new("node");
    command
        .current_dir(workspace_root())
        .arg("contracts/build.mjs")
        .arg("--out")
        .arg(out);
    command
}

/// Fails, naming every file that differs, unless both folders hold the same `*.json` files with
/// the same bytes.
fn compare_artefacts(committed: &Path, fresh: &Path) -> Result<(), String> {
    let names = |dir: &Path| -> Result<Vec<String>, String> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("cannot read {}: {e}", dir.display())),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".json"))
            .collect();
        names.sort();
        Ok(names)
    };
    let (old, new) = (names(committed)?, names(fresh)?);
    let mut drift = Vec::new();
    for name in old.iter().filter(|n| !new.contains(n)) {
        drift.push(format!(
            "{name} is committed but no contract of that name exists"
        ));
    }
    for name in &new {
        let compiled = std::fs::read(fresh.join(name)).map_err(|e| format!("{name}: {e}"))?;
        match std::fs::read(committed.join(name)) {
            Ok(bytes) if bytes == compiled => {}
            Ok(_) => drift.push(format!("{name} differs from a fresh build")),
            Err(_) => drift.push(format!("{name} is not committed")),
        }
    }
    if drift.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "contracts/out is stale ({}); run `cargo xtask contracts` and commit the result",
            drift.join("; ")
        ))
    }
}

/// Installs `tests/interop`'s npm packages unless `node_modules` is already as new as
/// `package-lock.json`, and answers the folder's absolute path.
fn ensure_interop_packages() -> Result<PathBuf, String> {
    let interop = workspace_root()
        .join(INTEROP_DIR)
        .canonicalize()
        .map_err(|e| format!("cannot find {INTEROP_DIR}: {e}"))?;
    let lock = interop.join("package-lock.json");
    // npm writes this copy of the lock file on every install.
    let installed = interop.join("node_modules/.package-lock.json");
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let up_to_date = match (modified(&installed), modified(&lock)) {
        (Some(installed), Some(lock)) => installed >= lock,
        _ => false,
    };
    if up_to_date {
        return Ok(interop);
    }
    if !on_path("node") || !on_path("npm") {
        return Err(
            "Node.js and npm are needed (anvil, solc and the x402 reference SDK come from npm) \
             but are not installed. Install Node.js 20 or newer with npm (Debian: `apt-get \
             install nodejs npm`)."
                .to_owned(),
        );
    }
    eprintln!("xtask: installing the npm packages of {INTEROP_DIR} (npm ci)");
    run({
        let mut command = Command::new("npm");
        command
            .current_dir(&interop)
            .args(["ci", "--no-audit", "--no-fund"]);
        command
    })?;
    Ok(interop)
}

/// An nginx binary with the `auth_request` module: `PURSER_NGINX`, else `nginx` on `PATH` or
/// `/usr/sbin/nginx`, else Debian's package, downloaded once (`apt-get download nginx`, which
/// needs no root) and unpacked into `~/.cache/purser/nginx`.
fn ensure_nginx() -> Result<PathBuf, String> {
    const INSTALL: &str = "Install nginx (Debian: `apt-get install nginx`), or set PURSER_NGINX to \
                           an nginx binary built with the auth_request module.";
    if let Some(path) = std::env::var_os("PURSER_NGINX") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            return Err(format!(
                "PURSER_NGINX is {}, which is not a file. {INSTALL}",
                path.display()
            ));
        }
        return check_nginx(path);
    }
    if let Some(installed) = find_on_path("nginx")
        .or_else(|| Some(PathBuf::from("/usr/sbin/nginx")).filter(|p| p.is_file()))
    {
        return check_nginx(installed);
    }
    let home = std::env::var_os("HOME")
        .ok_or_else(|| format!("nginx is not installed and HOME is not set. {INSTALL}"))?;
    let cache = Path::new(&home).join(NGINX_CACHE);
    let cached = cache.join(NGINX_IN_PACKAGE);
    if !cached.is_file() {
        fetch_debian_nginx(&cache).map_err(|e| {
            format!(
                "nginx is not installed, and fetching Debian's nginx package failed: {e}. {INSTALL}"
            )
        })?;
    }
    check_nginx(cached)
}

/// `apt-get download nginx` into a scratch folder, unpacked with `dpkg-deb -x`, then moved to
/// `cache` whole, so that an interrupted fetch is never mistaken for a finished one.
fn fetch_debian_nginx(cache: &Path) -> Result<(), String> {
    for tool in ["apt-get", "dpkg-deb"] {
        if find_on_path(tool).is_none() {
            return Err(format!("`{tool}` is not on PATH (not a Debian system?)"));
        }
    }
    let parent = cache
        .parent()
        .ok_or_else(|| format!("{} has no parent folder", cache.display()))?;
    let scratch = parent.join(format!("nginx.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let unpacked = scratch.join("root");
    std::fs::create_dir_all(&unpacked)
        .map_err(|e| format!("cannot create {}: {e}", unpacked.display()))?;
    let result = (|| {
        eprintln!(
            "xtask: nginx is not installed; fetching Debian's package into {}",
            cache.display()
        );
        run({
            let mut command = Command::new("apt-get");
            command.current_dir(&scratch).args(["download", "nginx"]);
            command
        })?;
        let package = std::fs::read_dir(&scratch)
            .map_err(|e| format!("cannot read {}: {e}", scratch.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .ok_or_else(|| "`apt-get download nginx` left no .deb file".to_owned())?;
        run({
            let mut command = Command::new("dpkg-deb");
            command.arg("-x").arg(&package).arg(&unpacked);
            command
        })?;
        if !unpacked.join(NGINX_IN_PACKAGE).is_file() {
            return Err(format!("{} holds no {NGINX_IN_PACKAGE}", package.display()));
        }
        let _ = std::fs::remove_dir_all(cache);
        std::fs::rename(&unpacked, cache)
            .map_err(|e| format!("cannot move the package to {}: {e}", cache.display()))
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// `nginx` when it runs and was built with the `auth_request` module.
fn check_nginx(nginx: PathBuf) -> Result<PathBuf, String> {
    let output = Command::new(&nginx)
        .arg("-V")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", nginx.display()))?;
    // `nginx -V` prints its version and configure arguments on stderr.
    let built_with = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() || !built_with.contains("--with-http_auth_request_module") {
        return Err(format!(
            "{} is not an nginx built with the auth_request module (`nginx -V`: {}). Install \
             Debian's (`apt-get install nginx`), or set PURSER_NGINX to one that is.",
            nginx.display(),
            built_with.trim()
        ));
    }
    Ok(nginx)
}

/// The first `program` in a `PATH` folder.
fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

/// `host:port` of a `scheme://[user[:password]@]host[:port][/…]` URL.
fn host_port(url: &str, default_port: u16) -> Result<(String, u16), String> {
    let rest = url
        .split_once("://")
        .map(|(_, r)| r)
        .ok_or_else(|| format!("`{}` is not a URL", redact(url)))?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    match host_port.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => {
            let port = port
                .parse()
                .map_err(|_| format!("bad port in `{}`", redact(url)))?;
            Ok((host.trim_matches(['[', ']']).to_owned(), port))
        }
        _ => Ok((host_port.trim_matches(['[', ']']).to_owned(), default_port)),
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}://{user}:***{}", &url[..scheme_end], &url[at..])
        }
        _ => url.to_owned(),
    }
}

fn reachable(host: &str, port: u16) -> bool {
    let Ok(addresses) = (host, port).to_socket_addrs() else {
        return false;
    };
    addresses
        .into_iter()
        .any(|a| TcpStream::connect_timeout(&a, Duration::from_millis(500)).is_ok())
}

fn wait_until_reachable(host: &str, port: u16) -> bool {
    let started = Instant::now();
    while started.elapsed() < SERVICE_START_TIMEOUT {
        if reachable(host, port) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    false
}

fn is_local(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "localhost" | "::1")
}

fn on_path(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

fn ensure_postgres(url: &str) -> Result<(), String> {
    let (host, port) = host_port(url, 5432)?;
    if reachable(&host, port) {
        return Ok(());
    }
    let shown = redact(url);
    if !is_local(&host) {
        return Err(format!(
            "PostgreSQL is not reachable at {shown}; start it or set DATABASE_URL"
        ));
    }
    // Debian's packaging: one cluster per installed version under /etc/postgresql.
    let versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    if versions.is_empty() || !on_path("pg_ctlcluster") {
        return Err(format!(
            "PostgreSQL is not reachable at {shown} and no local installation was found. \
             Install it (Debian: `apt-get install postgresql`) and start it, or set DATABASE_URL \
             to a server the tests may create databases on."
        ));
    }
    for version in &versions {
        eprintln!("xtask: starting PostgreSQL {version}");
        let _ = Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", version, "main", "start"])
            .status();
    }
    if wait_until_reachable(&host, port) {
        Ok(())
    } else {
        Err(format!(
            "started PostgreSQL, but it does not answer at {shown}"
        ))
    }
}

fn ensure_redis(url: &str) -> Result<(), String> {
    let (host, port) = host_port(url, 6379)?;
    if reachable(&host, port) {
        return Ok(());
    }
    let shown = redact(url);
    if !is_local(&host) {
        return Err(format!(
            "Redis is not reachable at {shown}; start it or set REDIS_URL"
        ));
    }
    if !on_path("redis-server") {
        return Err(format!(
            "Redis is not reachable at {shown} and redis-server is not installed. \
             Install it (Debian: `apt-get install redis-server`), or set REDIS_URL."
        ));
    }
    eprintln!("xtask: starting redis-server on port {port}");
    run({
        let mut command = Command::new("redis-server");
        command.args([
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ]);
        command
    })?;
    if wait_until_reachable(&host, port) {
        Ok(())
    } else {
        Err(format!(
            "started redis-server, but it does not answer at {shown}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_split_and_redacted() {
        assert_eq!(
            host_port("postgres://postgres@127.0.0.1:5432/test", 1).unwrap(),
            ("127.0.0.1".to_owned(), 5432)
        );
        assert_eq!(
            host_port("redis://:pw@cache", 6379).unwrap(),
            ("cache".to_owned(), 6379)
        );
        assert_eq!(
            host_port("postgres://u:p@[::1]:6000/db?x=y", 1).unwrap(),
            ("::1".to_owned(), 6000)
        );
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert!(host_port("nonsense", 1).is_err());
    }
}
