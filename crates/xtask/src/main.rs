//! Development automation, in Rust rather than shell.
//!
//! - `cargo xtask test [-- <cargo test args>]`: makes sure PostgreSQL and Redis are reachable
//!   (starting local ones when they are installed but stopped), then runs the whole test suite.
//!   It never skips a backend: when one cannot be reached, it stops and says what to install.
//! - `cargo xtask schema`: regenerates the committed `schema.graphql`.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
const SERVICE_START_TIMEOUT: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("schema") => schema(),
        _ => Err("usage: cargo xtask <test [-- cargo test args] | schema>".to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
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
    let mut command = cargo();
    command
        .args(["test", "--workspace", "--locked"])
        .env("DATABASE_URL", &database_url)
        .env("REDIS_URL", &redis_url);
    let extra = match extra.first().map(String::as_str) {
        Some("--") => &extra[1..],
        _ => extra,
    };
    if !extra.is_empty() {
        command.arg("--").args(extra);
    }
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
