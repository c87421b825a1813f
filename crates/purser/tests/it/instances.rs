//! Two `purser serve` processes sharing PostgreSQL and Redis, as a production deployment runs
//! them: each answers entitlement checks from its own memory, and what one changes every other
//! sees within a bounded time.
//!
//! - a grant revoked through one instance's GraphQL stops admitting on the other at once (by
//!   the announcement over Redis pub/sub: well inside the cache TTL);
//! - a grant revoked behind Purser's back (no announcement) stops admitting within the cache
//!   TTL, and was answered from memory until then;
//! - a grant of N uses admits N requests across both instances, and credit held on one is gone
//!   on the other (until the hold, never resolved, times out and returns);
//! - uses of unlimited grants, counted in memory, reach the database.

use std::sync::Arc;
use std::time::{Duration, Instant};

use purser_domain::auth::{Role, TenantScope, mint_api_key};
use purser_domain::credits::CreditKey;
use purser_domain::entitlement::{GrantScope, NewGrant};
use purser_domain::id::{ResourceId, TenantId};
use purser_domain::money::Amount;
use purser_domain::repo::Store;
use purser_domain::tenant::{NewTenant, TenantKind, TenantName};
use purser_entitlement::{SessionConfig, SessionKeys, Sessions};
use purser_registry::{AssetCatalog, AssetInfo, Registry};
use purser_store_postgres::{PgStore, PgStoreOptions};
use purser_testkit::postgres::TestDatabase;
use serde_json::{Value, json};

use crate::cli::Server;

const NETWORK: &str = "eip155:84532";
const USDC: &str = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";
/// How long each instance answers a wallet's grants from memory, in this test.
const TTL: Duration = Duration::from_secs(3);

fn wallet(n: u8) -> String {
    format!("0x{}", format!("{n:02x}").repeat(20))
}

struct Fixture {
    store: Arc<dyn Store>,
    tenant: TenantId,
    resource: ResourceId,
    /// A `resource_server` key, for checks.
    checker: String,
    /// A `tenant_admin` key, for GraphQL.
    admin: String,
    sessions: Sessions,
    a: Server,
    b: Server,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
    _database: TestDatabase,
}

impl Fixture {
    async fn start() -> Self {
        let database = TestDatabase::create().await;
        let pg = PgStore::connect(database.url(), &PgStoreOptions::default())
            .await
            .unwrap();
        pg.migrate().await.unwrap();
        let store: Arc<dyn Store> = Arc::new(pg);
        let tenant = store
            .create_tenant(NewTenant::new(
                TenantName::parse("Two instances").unwrap(),
                TenantKind::Merchant,
            ))
            .await
            .unwrap()
            .id;
        let key = |role| {
            let (record, token) = mint_api_key(Some(tenant), role, "test").unwrap();
            (record, token.expose().to_owned())
        };
        let (checker_record, checker) = key(Role::ResourceServer);
        let (admin_record, admin) = key(Role::TenantAdmin);
        store.insert_api_key(checker_record).await.unwrap();
        store.insert_api_key(admin_record).await.unwrap();

        let registry = Registry::new(
            store.clone(),
            store.clone(),
            AssetCatalog::new([AssetInfo {
                network: NETWORK.into(),
                address: USDC.into(),
                decimals: 6,
                eip712_name: "USDC".into(),
                eip712_version: "2".into(),
                symbol: Some("USDC".into()),
            }]),
        );
        let scope = TenantScope::trusted(tenant);
        registry
            .set_payout_address(scope, NETWORK, "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266")
            .await
            .unwrap();
        let resource = registry
            .create_resource(
                scope,
                purser_registry::ResourceDraft {
                    kind: purser_domain::registry::ResourceKind::Http,
                    url: "https://api.example.com/reports/:id".into(),
                    method: Some("GET".into()),
                    tool: None,
                    name: "Reports".into(),
                    description: "Reports, paid once per wallet".into(),
                    mime_type: None,
                    service_name: None,
                    tags: vec![],
                    icon_url: None,
                    input_schema: None,
                    output_schema: None,
                    input_example: None,
                    output_example: None,
                    body_type: None,
                    price: purser_domain::registry::PriceSpec::Usd { usd: "0.01".into() },
                    accepts: vec![purser_registry::AcceptDraft {
                        network: NETWORK.into(),
                        ..Default::default()
                    }],
                    max_timeout_seconds: None,
                    repeat_access: Some(purser_domain::entitlement::RepeatAccess {
                        group: None,
                        duration_seconds: None,
                        uses: None,
                    }),
                    escrow: None,
                },
                true,
            )
            .await
            .unwrap()
            .id;

        // Both instances sign and verify session tokens with the same key, as they must.
        let dir = tempfile::tempdir().unwrap();
        let pem = SessionKeys::generate_pem().unwrap();
        let key_path = dir.path().join("session.pem");
        std::fs::write(&key_path, pem).unwrap();
        let prefix = format!("purser-test-{}:", purser_domain::id::TenantId::new());
        let config = dir.path().join("purser.toml");
        std::fs::write(
            &config,
            format!(
                "[storage]\ndatabase_url = {url:?}\n\n\
                 [coordination]\nredis_url = {redis:?}\nkey_prefix = {prefix:?}\n\n\
                 [sessions]\nkeys = [{key:?}]\n\n\
                 [entitlements]\ncache_ttl_ms = {ttl}\nreservation_timeout_seconds = 1\n\n\
                 [registry]\nprobe = false\n",
                url = database.url(),
                redis = purser_testkit::redis_url(),
                key = key_path.to_str().unwrap(),
                ttl = TTL.as_millis(),
            ),
        )
        .unwrap();
        let sessions = Sessions::new(
            SessionKeys::from_files(&[&key_path]).unwrap(),
            SessionConfig::default(),
        );
        let args = ["--config", config.to_str().unwrap()];
        let a = Server::start_with(dir.path(), &args, &[]);
        let b = Server::start_with(dir.path(), &args, &[]);
        Self {
            store,
            tenant,
            resource,
            checker,
            admin,
            sessions,
            a,
            b,
            client: purser_testkit::http_client(),
            _dir: dir,
            _database: database,
        }
    }

    fn scope(&self) -> TenantScope {
        TenantScope::trusted(self.tenant)
    }

    fn session(&self, wallet: &str) -> String {
        self.sessions
            .issue(self.tenant, wallet, NETWORK, purser_domain::time::now())
            .unwrap()
            .0
    }

    /// A grant of `wallet` for the resource, made directly in the database.
    async fn grant(&self, wallet: &str, uses: Option<u32>) -> purser_domain::id::GrantId {
        self.store
            .create_grant(NewGrant {
                tenant_id: self.tenant,
                scope: GrantScope::Resource(self.resource),
                wallet: wallet.to_owned(),
                settlement_id: None,
                expires_at: None,
                uses_allowed: uses,
            })
            .await
            .unwrap()
            .id
    }

    async fn check(&self, server: &Server, body: Value) -> Value {
        let response = self
            .client
            .post(format!("{}/v1/entitlements/check", server.base))
            .bearer_auth(&self.checker)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    async fn check_session(&self, server: &Server, wallet: &str) -> Value {
        self.check(
            server,
            json!({ "resource": self.resource.to_string(), "session": self.session(wallet) }),
        )
        .await
    }

    /// Checks on `server` until the answer is a denial, answering how long that took.
    async fn until_denied(&self, server: &Server, wallet: &str, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let answer = self.check_session(server, wallet).await;
            if answer["decision"] == "deny" {
                assert_eq!(answer["reason"], "no_entitlement", "{answer}");
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "still admitted after {within:?}: {answer}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_see_each_others_changes_within_a_bounded_time() {
    let fx = Fixture::start().await;

    // Revoked through A's GraphQL: B, which had just read the grant into memory, stops
    // admitting on the announcement, long before its cache would have expired.
    let alice = wallet(0xa1);
    let grant = fx.grant(&alice, None).await;
    for server in [&fx.a, &fx.b] {
        let answer = fx.check_session(server, &alice).await;
        assert_eq!(answer["decision"], "allow", "{answer}");
        assert_eq!(answer["reason"], "grant");
        assert_eq!(answer["grant"]["id"], grant.to_string());
    }
    let revoked = fx
        .client
        .post(format!("{}/graphql", fx.a.base))
        .bearer_auth(&fx.admin)
        .json(&json!({
            "query": "mutation($id: ID!) { revokeGrant(id: $id) { id revokedAt } }",
            "variables": { "id": grant.to_string() },
        }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert!(
        revoked["data"]["revokeGrant"]["revokedAt"].is_string(),
        "{revoked}"
    );
    let seen_after = fx.until_denied(&fx.b, &alice, TTL).await;
    assert!(
        seen_after < Duration::from_secs(1),
        "B saw the revocation after {seen_after:?}, not by the announcement"
    );
    let answer = fx.check_session(&fx.a, &alice).await;
    assert_eq!(answer["decision"], "deny", "A itself: {answer}");

    // Revoked behind Purser's back: B keeps answering from memory, then reads the database
    // again within the TTL.
    let bob = wallet(0xb0);
    let grant = fx.grant(&bob, None).await;
    assert_eq!(fx.check_session(&fx.b, &bob).await["decision"], "allow");
    let revoked_at = Instant::now();
    fx.store
        .revoke_grant(fx.scope(), grant, purser_domain::time::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        fx.check_session(&fx.b, &bob).await["decision"],
        "allow",
        "answered from memory, as the TTL allows"
    );
    fx.until_denied(&fx.b, &bob, TTL + Duration::from_secs(1))
        .await;
    assert!(revoked_at.elapsed() <= TTL + Duration::from_secs(1));

    // A grant of three uses: three admissions across both instances, whatever the order.
    let carol = wallet(0xc0);
    let limited = fx.grant(&carol, Some(3)).await;
    let mut admitted = 0;
    for round in 0..8 {
        let server = if round % 2 == 0 { &fx.a } else { &fx.b };
        if fx.check_session(server, &carol).await["decision"] == "allow" {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 3);
    let stored = fx
        .store
        .find_grant(fx.scope(), limited)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.uses_count, 3);

    // Credit held on A is gone on B: the balance lives in the database alone.
    let dave = wallet(0xd0);
    let key = CreditKey::new(&dave, NETWORK, &USDC.to_ascii_lowercase()).unwrap();
    fx.store
        .top_up(fx.scope(), &key, Amount::from_atomic(10_000), None)
        .await
        .unwrap();
    let reserve = |server| {
        fx.check(
            server,
            json!({
                "resource": fx.resource.to_string(),
                "session": fx.session(&dave),
                "reserve": "10000",
            }),
        )
    };
    let held = reserve(&fx.a).await;
    assert_eq!(held["decision"], "allow", "{held}");
    assert_eq!(held["reason"], "credit");
    let refused = reserve(&fx.b).await;
    assert_eq!(refused["decision"], "deny", "{refused}");
    assert_eq!(refused["reason"], "insufficient_credit");
    // Nobody resolves the hold: after the reservation timeout (1 s here) it returns to the
    // payer.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let balance = fx.store.credit_balance(fx.scope(), &key).await.unwrap();
        if balance.available == Amount::from_atomic(10_000) {
            assert_eq!(balance.reserved, Amount::ZERO);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the hold was never released: {balance:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let id: purser_domain::id::CreditReservationId =
        held["reservation"]["id"].as_str().unwrap().parse().unwrap();
    let released = fx
        .store
        .find_credit_reservation(fx.scope(), id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        released.state,
        purser_domain::credits::CreditReservationState::Released
    );

    // Uses of an unlimited grant are counted in memory on each instance and reach the
    // database within the flush interval.
    let erin = wallet(0xe0);
    let unlimited = fx.grant(&erin, None).await;
    for server in [&fx.a, &fx.b, &fx.a, &fx.b, &fx.b] {
        assert_eq!(fx.check_session(server, &erin).await["decision"], "allow");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let uses = fx
            .store
            .find_grant(fx.scope(), unlimited)
            .await
            .unwrap()
            .unwrap()
            .uses_count;
        if uses == 5 {
            break;
        }
        assert!(Instant::now() < deadline, "{uses} of 5 uses recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let logs = fx.b.terminate();
    assert!(!logs.contains(&fx.checker), "a key in the logs");
    fx.a.terminate();
}
