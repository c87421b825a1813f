//! Configuration: defaults in code, then an optional TOML file (`--config`), then
//! `PURSER__SECTION__KEY` environment variables. An unknown key or a bad value stops start-up
//! with an error naming its path and where it came from. Secrets (URLs that may carry
//! passwords) are kept in [`SecretString`], whose `Debug` prints `[REDACTED]`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The prefix of environment variables; sections and keys are separated by `__`.
pub const ENV_PREFIX: &str = "PURSER__";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub coordination: CoordinationConfig,
    pub graphql: GraphqlConfig,
    pub telemetry: TelemetryConfig,
    pub facilitator: purser_facilitator::FacilitatorConfig,
    pub registry: purser_registry::RegistryConfig,
    pub gateway: purser_gateway::GatewayConfig,
    pub sessions: SessionsConfig,
    pub entitlements: EntitlementsConfig,
    pub metering: MeteringConfig,
    pub rate_limits: purser_http::ratelimit::RateLimitConfig,
    /// The chains Purser settles on (`[[rails]]` tables); see `purser_chain::config`.
    pub rails: Vec<purser_chain::config::RailConfig>,
    /// The settlement router (`[router]`, with `[[router.price_feeds]]`); see
    /// `purser_router::config`.
    pub router: purser_router::RouterConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Where `purser serve` listens.
    pub listen: SocketAddr,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How long one request may take.
    pub request_timeout_seconds: u64,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace_seconds: u64,
    /// The longest URL (path and query), in bytes.
    pub max_url_bytes: usize,
    /// The most header bytes (names and values) of one request.
    pub max_header_bytes: usize,
    /// The most headers of one request.
    pub max_headers: usize,
    /// Requests in flight at once on one route; more are answered `overloaded` at once.
    pub max_in_flight_per_route: usize,
    /// Connections open at once, on each listener.
    pub max_connections: usize,
    /// Connections open at once from one client address (IPv6: one /64), on each listener.
    pub max_connections_per_address: usize,
    /// How long a client may take to send a request's head (and a kept-alive connection may
    /// wait for its next request).
    pub header_read_timeout_seconds: u64,
    /// A connection on which nothing moved this long is closed.
    pub idle_timeout_seconds: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let http = purser_http::layers::HttpLimits::default();
        let connections = purser_http::serve::ConnectionLimits::default();
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8402)),
            max_body_bytes: http.max_body_bytes,
            request_timeout_seconds: http.request_timeout.as_secs(),
            shutdown_grace_seconds: 30,
            max_url_bytes: http.max_url_bytes,
            max_header_bytes: http.max_header_bytes,
            max_headers: connections.max_headers,
            max_in_flight_per_route: http.max_in_flight_per_route,
            max_connections: connections.max_connections,
            max_connections_per_address: connections.max_connections_per_address,
            header_read_timeout_seconds: connections.header_read_timeout.as_secs(),
            idle_timeout_seconds: connections.idle_timeout.as_secs(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `postgres://…` selects PostgreSQL, `sqlite:…` a SQLite file; unset, the embedded
    /// default keeps a SQLite database in `data_dir`.
    pub database_url: Option<SecretString>,
    /// The embedded default's folder.
    pub data_dir: PathBuf,
    /// The most database connections this instance opens.
    pub max_connections: u32,
    /// Apply pending migrations when `serve` starts (under an advisory lock on PostgreSQL).
    pub migrate_on_start: bool,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            database_url: None,
            data_dir: PathBuf::from("purser-data"),
            max_connections: 16,
            migrate_on_start: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoordinationConfig {
    /// `redis://…` (or `rediss://…`) selects Redis; unset, coordination stays in this process,
    /// which is right for a single instance only.
    pub redis_url: Option<SecretString>,
    /// Prepended to every Redis key and channel, so deployments can share a server.
    pub key_prefix: String,
}

impl Default for CoordinationConfig {
    fn default() -> Self {
        Self {
            redis_url: None,
            key_prefix: "purser:".to_owned(),
        }
    }
}

/// `[graphql]`: the admin API's limits (see `purser_admin::GraphqlLimits`, which documents
/// each) and GraphiQL.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GraphqlConfig {
    pub max_depth: usize,
    pub max_complexity: usize,
    pub max_document_bytes: usize,
    pub max_tokens: usize,
    pub max_nesting: usize,
    pub max_input_depth: usize,
    pub max_fields: usize,
    pub max_aliases: usize,
    pub max_operations: usize,
    pub max_fragments: usize,
    pub max_directives: usize,
    pub max_variables_depth: usize,
    pub max_variables_nodes: usize,
    /// Serve GraphiQL on `GET /graphql`.
    pub graphiql: bool,
}

impl Default for GraphqlConfig {
    fn default() -> Self {
        let limits = purser_admin::GraphqlLimits::default();
        Self {
            max_depth: limits.max_depth,
            max_complexity: limits.max_complexity,
            max_document_bytes: limits.max_document_bytes,
            max_tokens: limits.max_tokens,
            max_nesting: limits.max_nesting,
            max_input_depth: limits.max_input_depth,
            max_fields: limits.max_fields,
            max_aliases: limits.max_aliases,
            max_operations: limits.max_operations,
            max_fragments: limits.max_fragments,
            max_directives: limits.max_directives,
            max_variables_depth: limits.max_variables_depth,
            max_variables_nodes: limits.max_variables_nodes,
            graphiql: true,
        }
    }
}

impl GraphqlConfig {
    pub fn limits(&self) -> purser_admin::GraphqlLimits {
        purser_admin::GraphqlLimits {
            max_depth: self.max_depth,
            max_complexity: self.max_complexity,
            max_document_bytes: self.max_document_bytes,
            max_tokens: self.max_tokens,
            max_nesting: self.max_nesting,
            max_input_depth: self.max_input_depth,
            max_fields: self.max_fields,
            max_aliases: self.max_aliases,
            max_operations: self.max_operations,
            max_fragments: self.max_fragments,
            max_directives: self.max_directives,
            max_variables_depth: self.max_variables_depth,
            max_variables_nodes: self.max_variables_nodes,
        }
    }

    /// Each limit with its key and the largest value allowed. The nesting limits are capped:
    /// the parser recurses once per level, on a worker's 2 MiB stack.
    fn bounds(&self) -> [(&'static str, usize, usize); 13] {
        let nesting = purser_admin::GraphqlLimits::MAX_NESTING;
        [
            ("graphql.max_depth", self.max_depth, usize::MAX),
            ("graphql.max_complexity", self.max_complexity, usize::MAX),
            (
                "graphql.max_document_bytes",
                self.max_document_bytes,
                usize::MAX,
            ),
            ("graphql.max_tokens", self.max_tokens, usize::MAX),
            ("graphql.max_nesting", self.max_nesting, nesting),
            ("graphql.max_input_depth", self.max_input_depth, nesting),
            ("graphql.max_fields", self.max_fields, usize::MAX),
            ("graphql.max_aliases", self.max_aliases, usize::MAX),
            ("graphql.max_operations", self.max_operations, usize::MAX),
            ("graphql.max_fragments", self.max_fragments, usize::MAX),
            ("graphql.max_directives", self.max_directives, usize::MAX),
            (
                "graphql.max_variables_depth",
                self.max_variables_depth,
                nesting,
            ),
            (
                "graphql.max_variables_nodes",
                self.max_variables_nodes,
                usize::MAX,
            ),
        ]
    }
}

/// `[sessions]`: the tokens signed-in wallets come back with.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionsConfig {
    /// Ed25519 private keys in PKCS#8 PEM files: the first signs, all verify (and are
    /// published at `/.well-known/jwks.json`). Empty: a key made at start-up, for this process
    /// only — instances sharing merchants must share keys.
    pub keys: Vec<PathBuf>,
    pub ttl_seconds: u64,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            ttl_seconds: 900,
        }
    }
}

impl SessionsConfig {
    pub fn open(&self) -> purser_domain::Result<purser_entitlement::Sessions> {
        let keys = if self.keys.is_empty() {
            purser_entitlement::SessionKeys::generate()?
        } else {
            purser_entitlement::SessionKeys::from_files(&self.keys)?
        };
        Ok(purser_entitlement::Sessions::new(
            keys,
            purser_entitlement::SessionConfig {
                ttl: std::time::Duration::from_secs(self.ttl_seconds.max(1)),
            },
        ))
    }
}

/// `[entitlements]`: how checks of repeat access are answered.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EntitlementsConfig {
    /// How long a wallet's grants are answered from memory before they are read again, in
    /// milliseconds: the longest a revoked grant can still admit on an instance that missed
    /// the announcement. Zero reads the database on every check.
    pub cache_ttl_ms: u64,
    /// How long credit held for a usage-priced call may stay neither committed nor released
    /// before it returns to the payer (its resource server went away).
    pub reservation_timeout_seconds: u64,
}

impl Default for EntitlementsConfig {
    fn default() -> Self {
        Self {
            cache_ttl_ms: purser_entitlement::cache::DEFAULT_TTL.as_millis() as u64,
            reservation_timeout_seconds: 600,
        }
    }
}

impl EntitlementsConfig {
    pub fn cache_ttl(&self) -> Duration {
        Duration::from_millis(self.cache_ttl_ms)
    }

    pub fn reservation_timeout(&self) -> Duration {
        Duration::from_secs(self.reservation_timeout_seconds.max(1))
    }
}

/// `[metering]`: what usage-event ingestion accepts.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeteringConfig {
    /// The most events one `application/cloudevents-batch+json` request may hold.
    pub max_batch_events: usize,
    /// The largest body `POST /v1/events` reads, in bytes (a batch of 1,000 typical events is
    /// about 300 KB).
    pub max_body_bytes: usize,
    /// Events whose time is further in the past are rejected (`event_too_old`): usage of a
    /// period that has been invoiced is corrected, not sent late.
    pub max_event_age_seconds: u64,
    /// Events whose time is further in the future are rejected (`event_in_future`): the
    /// allowance for clocks that run ahead.
    pub max_future_skew_seconds: u64,
}

impl Default for MeteringConfig {
    fn default() -> Self {
        Self {
            max_batch_events: 1000,
            max_body_bytes: 4 * 1024 * 1024,
            max_event_age_seconds: 35 * 24 * 3600,
            max_future_skew_seconds: 300,
        }
    }
}

impl MeteringConfig {
    pub fn limits(&self) -> purser_metering::MeteringLimits {
        // A hundred years is no bound at all; beyond it chrono's durations would overflow.
        const CENTURY: u64 = 100 * 366 * 24 * 3600;
        let seconds = |s: u64| chrono::Duration::seconds(s.min(CENTURY) as i64);
        purser_metering::MeteringLimits {
            max_batch_events: self.max_batch_events.max(1),
            bounds: purser_domain::metering::TimeBounds {
                max_age: seconds(self.max_event_age_seconds),
                max_future_skew: seconds(self.max_future_skew_seconds),
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    pub log_format: LogFormat,
    /// A `tracing` filter such as `info` or `purser=debug,sqlx=warn`. `RUST_LOG` overrides it.
    pub log_filter: String,
    /// An OTLP/HTTP traces endpoint (`http://collector:4318/v1/traces`); unset, no export.
    pub otlp_endpoint: Option<String>,
    pub service_name: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Human,
            log_filter: "info".to_owned(),
            otlp_endpoint: None,
            service_name: "purser".to_owned(),
        }
    }
}

/// Where the database is.
#[derive(Debug, Clone)]
pub enum DatabaseLocation {
    Postgres(SecretString),
    SqliteUrl(SecretString),
    SqliteDir(PathBuf),
}

impl StorageConfig {
    pub fn location(&self) -> DatabaseLocation {
        match &self.database_url {
            Some(url) if url.expose_secret().starts_with("sqlite:") => {
                DatabaseLocation::SqliteUrl(url.clone())
            }
            Some(url) => DatabaseLocation::Postgres(url.clone()),
            None => DatabaseLocation::SqliteDir(self.data_dir.clone()),
        }
    }
}

impl ServerConfig {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_seconds)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }

    /// The bounds on each listener's connections. The idle timeout is kept above the request
    /// timeout, so that a request working quietly is never cut off as idle.
    pub fn connection_limits(&self) -> purser_http::serve::ConnectionLimits {
        let idle = self
            .idle_timeout_seconds
            .max(self.request_timeout_seconds + 5);
        purser_http::serve::ConnectionLimits {
            max_connections: self.max_connections,
            max_connections_per_address: self.max_connections_per_address,
            header_read_timeout: Duration::from_secs(self.header_read_timeout_seconds),
            idle_timeout: Duration::from_secs(idle),
            max_headers: self.max_headers,
            // The URL and the headers, with room for the request line and line ends; the
            // layers refuse either over its own limit with the envelope first.
            max_head_bytes: self.max_url_bytes + self.max_header_bytes + 8 * 1024,
            ..purser_http::serve::ConnectionLimits::default()
        }
    }
}

/// A configuration error: what is wrong, and at which key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Loads the configuration from `file` (if given) and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let env = Env::prefixed(ENV_PREFIX).split("__");
        let mut figment = Figment::new();
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        let config: Config = figment
            .merge(env)
            .extract()
            .map_err(|e| ConfigError(describe_figment_error(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot.
    fn validate(&self) -> Result<(), ConfigError> {
        let fail = |path: &str, why: &str| Err(ConfigError(format!("`{path}` {why}")));
        if self.server.max_body_bytes < 1024 || self.server.max_body_bytes > 64 * 1024 * 1024 {
            return fail("server.max_body_bytes", "must be between 1024 and 67108864");
        }
        if self.server.request_timeout_seconds == 0 || self.server.request_timeout_seconds > 3600 {
            return fail(
                "server.request_timeout_seconds",
                "must be between 1 and 3600",
            );
        }
        if self.server.shutdown_grace_seconds > 3600 {
            return fail("server.shutdown_grace_seconds", "must be at most 3600");
        }
        let server = &self.server;
        let ranges: [(&str, usize, usize, usize); 6] = [
            ("server.max_url_bytes", server.max_url_bytes, 256, 60 * 1024),
            (
                "server.max_header_bytes",
                server.max_header_bytes,
                1024,
                1024 * 1024,
            ),
            ("server.max_headers", server.max_headers, 8, 1000),
            (
                "server.max_in_flight_per_route",
                server.max_in_flight_per_route,
                1,
                1_000_000,
            ),
            (
                "server.max_connections",
                server.max_connections,
                1,
                1_000_000,
            ),
            (
                "server.max_connections_per_address",
                server.max_connections_per_address,
                1,
                1_000_000,
            ),
        ];
        for (path, value, low, high) in ranges {
            if !(low..=high).contains(&value) {
                return fail(path, &format!("must be between {low} and {high}"));
            }
        }
        if server.header_read_timeout_seconds == 0 || server.header_read_timeout_seconds > 3600 {
            return fail(
                "server.header_read_timeout_seconds",
                "must be between 1 and 3600",
            );
        }
        if server.idle_timeout_seconds == 0 || server.idle_timeout_seconds > 86_400 {
            return fail("server.idle_timeout_seconds", "must be between 1 and 86400");
        }
        if let Err((path, why)) = self.rate_limits.check() {
            return fail(&path, &why);
        }
        if let Some(url) = &self.storage.database_url {
            let url = url.expose_secret();
            let known = ["postgres://", "postgresql://", "sqlite:"];
            if !known.iter().any(|scheme| url.starts_with(scheme)) {
                return fail(
                    "storage.database_url",
                    "must start with postgres://, postgresql:// or sqlite:",
                );
            }
        }
        if let Err((path, why)) = self.gateway.check() {
            return fail(&path, &why);
        }
        if self.storage.data_dir.as_os_str().is_empty() {
            return fail("storage.data_dir", "must not be empty");
        }
        if self.storage.max_connections == 0 || self.storage.max_connections > 1000 {
            return fail("storage.max_connections", "must be between 1 and 1000");
        }
        if let Some(url) = &self.coordination.redis_url {
            let url = url.expose_secret();
            let known = ["redis://", "rediss://", "redis+unix://", "unix://"];
            if !known.iter().any(|scheme| url.starts_with(scheme)) {
                return fail(
                    "coordination.redis_url",
                    "must start with redis://, rediss:// or unix://",
                );
            }
        }
        let prefix_ok = !self.coordination.key_prefix.is_empty()
            && self.coordination.key_prefix.len() <= 64
            && self
                .coordination
                .key_prefix
                .chars()
                .all(|c| c.is_ascii_graphic());
        if !prefix_ok {
            return fail(
                "coordination.key_prefix",
                "must be 1 to 64 printable ASCII characters",
            );
        }
        for (path, value, max) in self.graphql.bounds() {
            if value == 0 {
                return fail(path, "must be positive");
            }
            if value > max {
                return fail(path, &format!("must be at most {max}"));
            }
        }
        if let Some(endpoint) = &self.telemetry.otlp_endpoint
            && !endpoint.starts_with("http://")
        {
            return fail(
                "telemetry.otlp_endpoint",
                "must be an http:// OTLP/HTTP endpoint",
            );
        }
        if self.facilitator.allow_anonymous {
            match &self.facilitator.anonymous_tenant {
                Some(tenant) if tenant.parse::<purser_domain::id::TenantId>().is_ok() => {}
                _ => {
                    return fail(
                        "facilitator.anonymous_tenant",
                        "must be a tenant id when facilitator.allow_anonymous is on",
                    );
                }
            }
        }
        for (index, rail) in self.rails.iter().enumerate() {
            if rail.rpc_urls.is_empty() {
                return Err(ConfigError(format!(
                    "`rails[{index}].rpc_urls` must name at least one endpoint"
                )));
            }
            if purser_chain::rails::eip155_chain_id(&rail.network).is_err() {
                return Err(ConfigError(format!(
                    "`rails[{index}].network` must be eip155:<chain id>, not `{}`",
                    rail.network
                )));
            }
        }
        if self.telemetry.service_name.trim().is_empty() {
            return fail("telemetry.service_name", "must not be empty");
        }
        if let Err(err) = tracing_subscriber::EnvFilter::try_new(&self.telemetry.log_filter) {
            return Err(ConfigError(format!(
                "`telemetry.log_filter` is not a valid filter: {err}"
            )));
        }
        Ok(())
    }
}

/// Figment names the key (`server.listen`) and where the value came from (a file, or an
/// environment variable); keep both, and never the value of a secret.
fn describe_figment_error(err: figment::Error) -> String {
    err.into_iter()
        .map(|e| {
            let path = e.path.join(".");
            let origin = e.metadata.as_ref().map(|m| match &m.source {
                // A file: name it.
                Some(source) => format!(" (in {source})"),
                // The environment: name the variable.
                None if m.name.contains("environment") => {
                    format!(" (from {ENV_PREFIX}{})", e.path.join("__").to_uppercase())
                }
                None => format!(" (from {})", m.name),
            });
            let origin = origin.unwrap_or_default();
            if path.is_empty() {
                format!("{}{origin}", e.kind)
            } else {
                format!("`{path}`: {}{origin}", e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loads `toml` as the config file with `env` set, in figment's jail (which serialises
    /// tests that touch the environment).
    #[allow(clippy::result_large_err)] // figment's own error type, in a test
    fn load(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut outcome = None;
        figment::Jail::expect_with(|jail| {
            jail.create_file("purser.toml", toml)?;
            for (key, value) in env {
                jail.set_env(key, value);
            }
            outcome = Some(Config::load(Some(Path::new("purser.toml"))));
            Ok(())
        });
        outcome.expect("the jail ran")
    }

    #[test]
    fn defaults_need_nothing() {
        let config = load("", &[]).unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8402");
        assert!(matches!(
            config.storage.location(),
            DatabaseLocation::SqliteDir(_)
        ));
        assert!(config.coordination.redis_url.is_none());
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let config = load(
            "[server]\nlisten = \"127.0.0.1:9000\"\nrequest_timeout_seconds = 5\n",
            &[("PURSER__SERVER__LISTEN", "0.0.0.0:9100")],
        )
        .unwrap();
        assert_eq!(config.server.listen.to_string(), "0.0.0.0:9100");
        assert_eq!(config.server.request_timeout_seconds, 5);
    }

    #[test]
    fn urls_select_backends_and_stay_secret() {
        let config = load(
            "[storage]\ndatabase_url = \"postgres://u:hunter2@db/purser\"\n[coordination]\nredis_url = \"redis://:hunter2@cache\"\n",
            &[],
        )
        .unwrap();
        assert!(matches!(
            config.storage.location(),
            DatabaseLocation::Postgres(_)
        ));
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = load("[server]\nlistn = \"127.0.0.1:1\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("listn"), "{err}");
        assert!(err.contains("server"), "{err}");
        let err = load("", &[("PURSER__SERVR__LISTEN", "x")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("servr"), "{err}");
    }

    #[test]
    fn graphql_limits_are_keys_of_their_own_checked_at_start_up() {
        let config = load(
            "[graphql]\nmax_tokens = 500\nmax_fields = 30\n",
            &[("PURSER__GRAPHQL__MAX_VARIABLES_NODES", "99")],
        )
        .unwrap();
        let limits = config.graphql.limits();
        assert_eq!(limits.max_tokens, 500);
        assert_eq!(limits.max_fields, 30);
        assert_eq!(limits.max_variables_nodes, 99);
        assert_eq!(
            limits.max_nesting,
            purser_admin::GraphqlLimits::default().max_nesting
        );
        for (toml, key) in [
            ("max_operations = 0", "graphql.max_operations"),
            ("max_document_bytes = 0", "graphql.max_document_bytes"),
            ("max_nesting = 65", "graphql.max_nesting"),
            ("max_input_depth = 1000", "graphql.max_input_depth"),
            ("max_variables_depth = 100", "graphql.max_variables_depth"),
        ] {
            let err = load(&format!("[graphql]\n{toml}\n"), &[])
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{toml}: {err}");
        }
        let err = load("[graphql]\nmax_tokenz = 1\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_tokenz"), "{err}");
    }

    #[test]
    fn bad_values_are_named_with_their_path_and_origin() {
        let err = load("[server]\nlisten = \"not an address\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.listen"), "{err}");
        let err = load("", &[("PURSER__SERVER__REQUEST_TIMEOUT_SECONDS", "soon")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.request_timeout_seconds"), "{err}");
        assert!(
            err.contains("PURSER__SERVER__REQUEST_TIMEOUT_SECONDS"),
            "{err}"
        );
        let err = load("[storage]\ndatabase_url = \"mysql://u:hunter2@db\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("storage.database_url"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = load("[server]\nmax_body_bytes = 10\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.max_body_bytes"), "{err}");
        let err = load("[telemetry]\nlog_format = \"xml\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("telemetry.log_format"), "{err}");
    }
}
