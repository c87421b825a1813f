//! A facilitator over real backends and a real anvil devnet, served over TCP, and payments
//! signed the way x402 clients sign them.

use std::any::Any;
use std::sync::Arc;

use alloy::primitives::{Address, U256};
use purser_chain::config::{AssetConfig, AuthCaptureConfig, RailConfig, SignerSource};
use purser_chain::rails::Rails;
use purser_chain::rpc::RpcPolicy;
use purser_devnet::{Devnet, DevnetChain, DevnetChainSpec, DevnetOptions, Mining, TestAccount};
use purser_domain::auth::{Authenticator, Role, TenantScope, mint_api_key};
use purser_domain::id::TenantId;
use purser_domain::ledger::AccountKind;
use purser_domain::money::Amount;
use purser_domain::repo::Store;
use purser_domain::tenant::{NewTenant, TenantKind, TenantName};
use purser_facilitator::{Facilitator, FacilitatorConfig, FacilitatorState};
use purser_store_postgres::{PgStore, PgStoreOptions};
use purser_store_sqlite::{SqliteStore, SqliteStoreOptions};
use purser_testkit::postgres::TestDatabase;
use serde_json::Value;

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// How a fixture is set up.
pub struct Setup {
    pub backend: Backend,
    pub mining: Mining,
    /// The rail's RPC URLs; `None` for the chain's own.
    pub rpc_urls: Option<Vec<String>>,
    pub signers: usize,
    pub receipt_timeout_seconds: u64,
    pub config: FacilitatorConfig,
    /// Serve callers without a key, for the fixture's tenant.
    pub anonymous: bool,
    /// Offer escrowed payments (`auth-capture`) on the rail, on these terms.
    pub auth_capture: Option<AuthCaptureConfig>,
}

impl Setup {
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            mining: Mining::Auto,
            rpc_urls: None,
            signers: 1,
            receipt_timeout_seconds: 20,
            config: FacilitatorConfig::default(),
            anonymous: false,
            auth_capture: None,
        }
    }
}

/// A running facilitator, its chain, store and tenant.
pub struct Fixture {
    pub devnet: Devnet,
    pub store: Arc<dyn Store>,
    pub tenant: TenantId,
    pub base: String,
    pub key: String,
    pub client: reqwest::Client,
    pub merchant: Address,
    /// The escrow terms the rail offers, for facilitators made beside the fixture's.
    pub auth_capture: Option<AuthCaptureConfig>,
    server: tokio::task::JoinHandle<()>,
    _guard: Box<dyn Any + Send>,
}

pub async fn open_store(backend: Backend) -> (Arc<dyn Store>, Box<dyn Any + Send>) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open_dir(dir.path(), &SqliteStoreOptions::default())
                .await
                .unwrap();
            store.migrate().await.unwrap();
            (Arc::new(store), Box::new(dir))
        }
        Backend::Postgres => {
            let database = TestDatabase::create().await;
            let store = PgStore::connect(database.url(), &PgStoreOptions::default())
                .await
                .unwrap();
            store.migrate().await.unwrap();
            (Arc::new(store), Box::new(database))
        }
    }
}

pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub async fn devnet(mining: Mining, extra_signers: usize) -> Devnet {
    Devnet::start(DevnetOptions {
        repo_root: Some(repo_root()),
        mining,
        payer_accounts: 4 + extra_signers,
        ..DevnetOptions::with_chains(vec![DevnetChainSpec::base_sepolia()])
    })
    .await
    .expect("start the devnet")
}

/// The rail for the devnet's chain with `signers` keys (the settlement signer, then payer
/// accounts beyond the first four).
pub fn rail_config(
    devnet: &Devnet,
    rpc_urls: Vec<String>,
    signers: usize,
    receipt_timeout_seconds: u64,
) -> (RailConfig, Vec<tempfile::NamedTempFile>) {
    let chain = &devnet.chains()[0];
    let token = chain.token();
    let accounts = devnet.accounts();
    let mut keys = vec![accounts.settlement_signer.private_key_hex()];
    keys.extend(
        accounts
            .payers
            .iter()
            .skip(4)
            .take(signers.saturating_sub(1))
            .map(|a| a.private_key_hex()),
    );
    let files: Vec<tempfile::NamedTempFile> = keys
        .iter()
        .map(|key| {
            let file = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(file.path(), key).unwrap();
            file
        })
        .collect();
    let config = RailConfig {
        network: chain.network(),
        rpc_urls,
        confirmations: 1,
        receipt_timeout_seconds,
        signers: files
            .iter()
            .map(|f| SignerSource::File {
                file: f.path().to_owned(),
            })
            .collect(),
        assets: vec![AssetConfig {
            address: format!("{:#x}", token.address),
            name: token.name.clone(),
            version: token.version.clone(),
            decimals: token.decimals,
            symbol: Some(token.symbol.clone()),
            currency: "USD".to_owned(),
        }],
        erc6492_factories: vec![],
        ..Default::default()
    };
    (config, files)
}

pub async fn tenant_with_key(store: &Arc<dyn Store>, name: &str, role: Role) -> (TenantId, String) {
    let tenant = store
        .create_tenant(NewTenant::new(
            TenantName::parse(name).unwrap(),
            TenantKind::Merchant,
        ))
        .await
        .unwrap();
    let (record, token) = mint_api_key(Some(tenant.id), role, "facilitator test").unwrap();
    store.insert_api_key(record).await.unwrap();
    (tenant.id, token.expose().to_owned())
}

impl Fixture {
    pub async fn start(setup: Setup) -> Self {
        let devnet = devnet(setup.mining, setup.signers).await;
        let (store, guard) = open_store(setup.backend).await;
        let rpc_urls = setup
            .rpc_urls
            .clone()
            .unwrap_or_else(|| vec![devnet.chains()[0].rpc_url().to_owned()]);
        let (mut rail, key_files) = rail_config(
            &devnet,
            rpc_urls,
            setup.signers,
            setup.receipt_timeout_seconds,
        );
        rail.auth_capture = setup.auth_capture.clone();
        let rails = Rails::open(&[rail], fast_rpc())
            .await
            .expect("open the rail");
        drop(key_files);
        let (tenant, key) = tenant_with_key(&store, "Merchant", Role::ResourceServer).await;
        let mut config = setup.config;
        if setup.anonymous {
            config.allow_anonymous = true;
            config.anonymous_tenant = Some(tenant.to_string());
        }
        let facilitator =
            Arc::new(Facilitator::new(store.clone(), Arc::new(rails), config).unwrap());
        let router = purser_http::layers::apply(
            purser_facilitator::router(FacilitatorState {
                facilitator: facilitator.clone(),
                authenticator: Arc::new(Authenticator::new(store.clone())),
                registry: Some(Arc::new(purser_registry::Registry::new(
                    store.clone(),
                    store.clone(),
                    Default::default(),
                ))),
                on_settled: None,
            }),
            Default::default(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        let merchant = devnet.accounts().payers[3].address();
        Self {
            devnet,
            store,
            tenant,
            base,
            key,
            client: purser_testkit::http_client(),
            merchant,
            auth_capture: setup.auth_capture.clone(),
            server,
            _guard: guard,
        }
    }

    pub fn chain(&self) -> &DevnetChain {
        &self.devnet.chains()[0]
    }

    pub fn payer(&self, index: usize) -> &TestAccount {
        &self.devnet.accounts().payers[index]
    }

    /// POSTs `body` to `/facilitator/<path>` with the fixture's key.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_as(Some(&self.key), path, body).await
    }

    pub async fn post_as(&self, key: Option<&str>, path: &str, body: &Value) -> (u16, Value) {
        let mut request = self
            .client
            .post(format!("{}/facilitator/{path}", self.base))
            .json(body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.expect("reach the facilitator");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn token_balance(&self, owner: Address) -> U256 {
        self.chain().balance_of(owner).await.unwrap()
    }

    /// The merchant's posted receivable in the ledger.
    /// The tenant's network fees (gas) on every chain, posted.
    pub async fn network_fees(&self) -> Amount {
        self.store
            .account_balances(TenantScope::trusted(self.tenant))
            .await
            .unwrap()
            .into_iter()
            .filter(|b| b.account.kind == AccountKind::NetworkFees)
            .map(|b| b.debits_posted)
            .fold(Amount::ZERO, |sum, fee| sum.checked_add(fee).unwrap())
    }

    pub async fn ledger_receivable(&self) -> Amount {
        self.store
            .account_balances(TenantScope::trusted(self.tenant))
            .await
            .unwrap()
            .into_iter()
            .find(|b| b.account.kind == AccountKind::MerchantReceivable)
            .and_then(|b| b.posted_credit_balance())
            .unwrap_or(Amount::ZERO)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A facilitator over the fixture's store whose rail uses `rpc_urls`, as a second process
/// (or the same process after a restart) would have.
pub async fn facilitator_with(
    fixture: &Fixture,
    rpc_urls: Vec<String>,
    receipt_timeout_seconds: u64,
    config: FacilitatorConfig,
) -> Arc<Facilitator> {
    let (mut rail, _keys) = rail_config(&fixture.devnet, rpc_urls, 1, receipt_timeout_seconds);
    rail.auth_capture = fixture.auth_capture.clone();
    let rails = Rails::open(&[rail], fast_rpc()).await.unwrap();
    // These tests run the reconciler by hand, right after the state it should act on.
    let config = FacilitatorConfig {
        reconcile_min_age_ms: 0,
        ..config
    };
    Arc::new(Facilitator::new(fixture.store.clone(), Arc::new(rails), config).unwrap())
}

/// Quick failover for tests: a dead endpoint costs a fraction of a second, not seconds.
pub fn fast_rpc() -> RpcPolicy {
    RpcPolicy {
        attempt_timeout: std::time::Duration::from_millis(1_500),
        rounds: 2,
        backoff: std::time::Duration::from_millis(100),
    }
}

pub use purser_devnet::payment::{Payment, now, random_nonce};

impl Fixture {
    /// `value` from `payer` to the fixture's merchant.
    pub fn payment(&self, payer: &TestAccount, value: u128) -> Payment {
        Payment::new(self.chain(), payer, self.merchant, value)
    }
}
