//! The admin API under test: the real router over a throwaway PostgreSQL database, with keys
//! and tenants made directly in the store.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use http::{Request, StatusCode, header};
use purser_admin::{AdminState, GraphqlLimits};
use purser_domain::auth::{Authenticator, Role, mint_api_key};
use purser_domain::coord::Invalidator;
use purser_domain::id::TenantId;
use purser_domain::repo::Store;
use purser_domain::tenant::{NewTenant, TenantKind, TenantName};
use purser_registry::{AssetCatalog, AssetInfo, Registry};
use purser_store_postgres::{PgStore, PgStoreOptions};
use purser_testkit::postgres::TestDatabase;
use serde_json::{Value, json};
use tower::ServiceExt as _;

pub const NETWORK: &str = "eip155:84532";
pub const USDC: &str = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";
/// EIP-55's own example address.
pub const PAY_TO: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";

pub struct TestApi {
    router: Router,
    pub store: Arc<dyn Store>,
    pub operator: String,
    _database: TestDatabase,
}

impl TestApi {
    pub async fn start() -> Self {
        Self::start_with_limits(GraphqlLimits::default()).await
    }

    pub async fn start_with_limits(limits: GraphqlLimits) -> Self {
        let database = TestDatabase::create().await;
        let pg = PgStore::connect(database.url(), &PgStoreOptions::default())
            .await
            .unwrap();
        pg.migrate().await.unwrap();
        let store: Arc<dyn Store> = Arc::new(pg);
        let catalog = AssetCatalog::new(vec![AssetInfo {
            network: NETWORK.into(),
            address: USDC.into(),
            decimals: 6,
            eip712_name: "USDC".into(),
            eip712_version: "2".into(),
            symbol: Some("USDC".into()),
        }]);
        let registry = Arc::new(Registry::new(store.clone(), store.clone(), catalog));
        let authenticator = Arc::new(Authenticator::new(store.clone()));
        let invalidator = Arc::new(Invalidator::new(
            Arc::new(purser_coord::MemoryCoordination::new()),
            vec![authenticator.clone()],
        ));
        let metering = Arc::new(purser_metering::Metering::new(
            store.clone(),
            purser_metering::MeteringLimits::default(),
        ));
        let state = AdminState::new(
            purser_admin::AdminServices {
                store: store.clone(),
                registry,
                metering,
                authenticator,
                invalidator,
                settlement_router: purser_router::Router::new(
                    Default::default(),
                    Default::default(),
                )
                .unwrap(),
                escrow: None,
            },
            limits,
            false,
        );
        let api = Self {
            router: purser_admin::router(state),
            store,
            operator: String::new(),
            _database: database,
        };
        let operator = api.key(None, Role::Operator).await;
        Self { operator, ..api }
    }

    /// The admin router, without the platform's layers.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Creates a tenant directly in the store.
    pub async fn tenant(&self, name: &str) -> TenantId {
        self.store
            .create_tenant(NewTenant::new(
                TenantName::parse(name).unwrap(),
                TenantKind::Merchant,
            ))
            .await
            .unwrap()
            .id
    }

    /// Creates a key directly in the store; answers its secret.
    pub async fn key(&self, tenant: Option<TenantId>, role: Role) -> String {
        let (record, token) = mint_api_key(tenant, role, "test").unwrap();
        self.store.insert_api_key(record).await.unwrap();
        token.expose().to_owned()
    }

    /// Posts a GraphQL request with `token`; answers the whole JSON body.
    pub async fn graphql(&self, token: &str, query: &str, variables: Value) -> Value {
        let request = Request::post("/graphql")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::from(
                json!({ "query": query, "variables": variables }).to_string(),
            ))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Like [`Self::graphql`], but there must be no errors; answers `data`.
    pub async fn ok(&self, token: &str, query: &str, variables: Value) -> Value {
        let body = self.graphql(token, query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// The single error's `extensions.code`.
    pub async fn error_code(&self, token: &str, query: &str, variables: Value) -> String {
        let body = self.graphql(token, query, variables).await;
        let errors = body["errors"].as_array().unwrap_or_else(|| {
            panic!("expected an error: {body}");
        });
        assert_eq!(errors.len(), 1, "{body}");
        errors[0]["extensions"]["code"]
            .as_str()
            .unwrap_or("<none>")
            .to_owned()
    }
}
