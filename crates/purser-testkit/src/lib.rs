//! Test support shared by Purser's crates. Tests talk to real services: a PostgreSQL server
//! (`DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/test`) and a Redis server
//! (`REDIS_URL`, default `redis://127.0.0.1:6379`). When one is unreachable the test fails with
//! a message saying so; nothing is skipped. `cargo xtask test` starts local servers first.

pub mod credit_suite;
pub mod grant_suite;
pub mod interop;
pub mod metering_suite;
pub mod postgres;
pub mod proxy;
mod registry_suite;
pub mod store_suite;

/// The PostgreSQL server tests use.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The Redis server tests use.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// An HTTP client for tests. The workspace builds reqwest with rustls and no built-in crypto
/// provider (Purser installs ring at start-up), so tests install it too before a client exists.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// A name no other test uses, for key prefixes and database names.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}
