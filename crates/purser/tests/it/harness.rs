//! Runs the real application in-process on a TCP port, over a chosen backend pair, with an
//! operator key minted for the test.

use std::any::Any;
use std::sync::Arc;

use purser::app::{self, Platform};
use purser::config::Config;
use purser_coord::{MemoryCoordination, RedisCoordination};
use purser_domain::auth::{Role, mint_api_key};
use purser_domain::coord::Coordination;
use purser_domain::repo::Store;
use purser_store_postgres::{PgStore, PgStoreOptions};
use purser_store_sqlite::{SqliteStore, SqliteStoreOptions};
use purser_testkit::postgres::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// Which storage and coordination a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Backends {
    /// The embedded default: SQLite in a temporary folder, in-process coordination.
    Embedded,
    /// Production: PostgreSQL (a database of the test's own) and Redis (a key prefix of its own).
    Production,
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub operator_token: String,
    pub config: Config,
    /// The application's store, for tests that set up or check data directly.
    #[allow(dead_code)] // used by some test modules, not all
    pub store: Arc<dyn Store>,
    /// The PostgreSQL database's name, on the production backends.
    pub database_name: Option<String>,
    /// The database itself, for tests that reach past the store (one of the two is set).
    #[allow(dead_code)] // used by some test modules, not all
    pub pg_pool: Option<sqlx::PgPool>,
    #[allow(dead_code)] // used by some test modules, not all
    pub sqlite_pool: Option<sqlx::SqlitePool>,
    /// The services, sharing the running app's store, coordination and rails.
    #[allow(dead_code)] // used by some test modules, not all
    pub platform: Platform,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _guards: Vec<Box<dyn Any + Send>>,
}

impl TestApp {
    pub async fn start(backends: Backends) -> Self {
        Self::start_with(backends, Config::default()).await
    }

    pub async fn start_with(backends: Backends, config: Config) -> Self {
        Self::start_with_rails(backends, config, purser_chain::rails::Rails::default()).await
    }

    /// Like [`Self::start_with`], settling on `rails`.
    pub async fn start_with_rails(
        backends: Backends,
        config: Config,
        rails: purser_chain::rails::Rails,
    ) -> Self {
        let mut guards: Vec<Box<dyn Any + Send>> = Vec::new();
        let mut database_name = None;
        let (mut pg_pool, mut sqlite_pool) = (None, None);
        let (store, coordination): (Arc<dyn Store>, Arc<dyn Coordination>) = match backends {
            Backends::Embedded => {
                let dir = tempfile::tempdir().unwrap();
                let store = SqliteStore::open_dir(dir.path(), &SqliteStoreOptions::default())
                    .await
                    .unwrap();
                store.migrate().await.unwrap();
                sqlite_pool = Some(store.pool().clone());
                guards.push(Box::new(dir));
                (Arc::new(store), Arc::new(MemoryCoordination::new()))
            }
            Backends::Production => {
                let database = TestDatabase::create().await;
                let store = PgStore::connect(database.url(), &PgStoreOptions::default())
                    .await
                    .unwrap();
                store.migrate().await.unwrap();
                pg_pool = Some(store.pool().clone());
                database_name = Some(database.name().to_owned());
                guards.push(Box::new(database));
                let prefix = format!("{}:", purser_testkit::unique_name("purser_it"));
                let coordination =
                    RedisCoordination::connect(&purser_testkit::redis_url(), &prefix)
                        .await
                        .unwrap_or_else(|e| {
                            panic!(
                                "Redis is not reachable at {}: {e:?}",
                                purser_testkit::redis_url()
                            )
                        });
                (Arc::new(store), Arc::new(coordination))
            }
        };
        let (record, token) = mint_api_key(None, Role::Operator, "test operator").unwrap();
        store.insert_api_key(record).await.unwrap();
        let store_for_tests = store.clone();
        let platform = Platform::from_parts(store, coordination, rails, &config).unwrap();
        let platform_for_tests = platform.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (shutdown, stop) = oneshot::channel::<()>();
        let server_config = config.clone();
        let server = tokio::spawn(async move {
            app::serve(&server_config, platform, listener, async move {
                let _ = stop.await;
            })
            .await
        });
        Self {
            base,
            client: purser_testkit::http_client(),
            operator_token: token.expose().to_owned(),
            config,
            store: store_for_tests,
            database_name,
            pg_pool,
            sqlite_pool,
            platform: platform_for_tests,
            shutdown: Some(shutdown),
            server: Some(server),
            _guards: guards,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Posts a GraphQL request with `token` (if any) and answers the status and body.
    pub async fn graphql(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("POST /graphql");
        let status = response.status();
        let body = response.json::<Value>().await.expect("a JSON answer");
        (status, body)
    }

    /// Like [`Self::graphql`], but the request must succeed without errors; answers `data`.
    pub async fn graphql_ok(&self, token: &str, query: &str, variables: Value) -> Value {
        let (status, body) = self.graphql(Some(token), query, variables).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("server task")
                .expect("server stopped cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// The error codes of a GraphQL answer, in order.
pub fn error_codes(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    e["extensions"]["code"]
                        .as_str()
                        .unwrap_or("<none>")
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Instantiates each listed `async fn(TestApp)` for both backend pairs.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::harness::TestApp::start($crate::harness::Backends::Embedded).await).await;
                }
            )*
        }
        mod production {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::harness::TestApp::start($crate::harness::Backends::Production).await).await;
                }
            )*
        }
    };
}
pub(crate) use on_both_backends;

/// Instantiates each listed `async fn(Backends)` for both backend pairs.
macro_rules! on_both_backend_pairs {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::harness::Backends::Embedded).await;
                }
            )*
        }
        mod production {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::harness::Backends::Production).await;
                }
            )*
        }
    };
}
pub(crate) use on_both_backend_pairs;
