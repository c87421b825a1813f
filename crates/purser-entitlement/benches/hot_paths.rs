//! The cached hot paths of a request, timed in process: what the gateway's entitlement check
//! costs once a wallet's session token and grants are in memory (`Sessions::verify` of a
//! remembered token, then `GrantCache::admit` of an unlimited grant, and of a wallet with
//! nothing), and what API-key authentication costs once the key is in memory
//! (`Authenticator::authenticate`). The store (SQLite in a temporary folder) is read only to
//! fill the caches; every timed call is answered from memory.
//!
//! Each path runs on one thread, then on two threads at once over the same caches (the
//! machine's two cores, so contention on the caches shows). Figures are nanoseconds per call
//! (the median of five rounds) and calls per second across all threads.
//!
//! `cargo bench -p purser-entitlement --bench hot_paths -- [--calls N]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use purser_domain::auth::{Authenticator, Role, TenantScope, mint_api_key};
use purser_domain::entitlement::{GrantScope, NewGrant};
use purser_domain::id::ResourceId;
use purser_domain::repo::Store;
use purser_domain::tenant::{NewTenant, TenantKind, TenantName};
use purser_entitlement::{GrantCache, SessionConfig, SessionKeys, Sessions};
use purser_store_sqlite::{SqliteStore, SqliteStoreOptions};

const ROUNDS: usize = 5;
const GROUP: &str = "bench";

fn main() {
    let mut calls: u64 = 200_000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--calls" => calls = args.next().and_then(|n| n.parse().ok()).expect("--calls N"),
            // what `cargo bench` passes to every bench binary
            "--bench" => {}
            other => panic!("unknown argument {other:?}"),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fixture = runtime.block_on(Fixture::start(dir.path()));
    let fixture = Arc::new(fixture);
    println!("{calls} calls per thread and round, median of {ROUNDS} rounds");
    println!(
        "{:<44} {:>12} {:>16} {:>12} {:>16}",
        "path", "1 thread ns", "1 thread calls/s", "2 threads ns", "2 threads calls/s"
    );
    type Path = fn(&Fixture) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>>;
    let paths: [(&str, Path); 4] = [
        ("authenticate (key cached)", |f| {
            Box::pin(async move {
                f.authenticator.authenticate(&f.token).await.unwrap();
            })
        }),
        ("session verify (token remembered)", |f| {
            Box::pin(async move {
                f.sessions.verify(&f.session, Utc::now()).unwrap();
            })
        }),
        ("grant admit (unlimited grant cached)", |f| {
            Box::pin(async move {
                let grant = f
                    .grants
                    .admit(f.scope, &f.wallet, f.resource, Some(GROUP), Utc::now())
                    .await
                    .unwrap();
                assert!(grant.is_some());
            })
        }),
        ("grant admit (nothing, cached)", |f| {
            Box::pin(async move {
                let grant = f
                    .grants
                    .admit(f.scope, &f.stranger, f.resource, Some(GROUP), Utc::now())
                    .await
                    .unwrap();
                assert!(grant.is_none());
            })
        }),
    ];
    for (name, path) in paths {
        let one = measure(&fixture, path, calls, 1);
        let two = measure(&fixture, path, calls, 2);
        println!(
            "{name:<44} {:>12.0} {:>16.0} {:>12.0} {:>16.0}",
            one.0, one.1, two.0, two.1
        );
    }
    runtime.block_on(fixture.grants.flush_uses()).unwrap();
}

/// The median over rounds of (nanoseconds per call on one thread, calls per second across
/// `threads` threads), each thread calling `path` `calls` times on a runtime of its own.
fn measure(
    fixture: &Arc<Fixture>,
    path: fn(&Fixture) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>>,
    calls: u64,
    threads: usize,
) -> (f64, f64) {
    let mut rounds: Vec<(f64, f64)> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            let per_thread: Vec<Duration> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads)
                    .map(|_| {
                        let fixture = fixture.clone();
                        s.spawn(move || {
                            let runtime = tokio::runtime::Builder::new_current_thread()
                                .build()
                                .unwrap();
                            runtime.block_on(async {
                                let start = Instant::now();
                                for _ in 0..calls {
                                    path(&fixture).await;
                                }
                                start.elapsed()
                            })
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let wall = start.elapsed();
            let ns = per_thread.iter().map(Duration::as_nanos).sum::<u128>() as f64
                / (calls as f64 * threads as f64);
            let per_second = (calls as f64 * threads as f64) / wall.as_secs_f64();
            (ns, per_second)
        })
        .collect();
    rounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    rounds[ROUNDS / 2]
}

struct Fixture {
    authenticator: Authenticator,
    token: String,
    sessions: Sessions,
    session: String,
    grants: GrantCache,
    scope: TenantScope,
    wallet: String,
    stranger: String,
    resource: ResourceId,
    _store: Arc<dyn Store>,
}

impl Fixture {
    async fn start(dir: &std::path::Path) -> Self {
        let sqlite = SqliteStore::open_dir(dir, &SqliteStoreOptions::default())
            .await
            .unwrap();
        sqlite.migrate().await.unwrap();
        let store: Arc<dyn Store> = Arc::new(sqlite);
        let tenant = store
            .create_tenant(NewTenant::new(
                TenantName::parse("Hot paths").unwrap(),
                TenantKind::Merchant,
            ))
            .await
            .unwrap()
            .id;
        let (record, token) = mint_api_key(Some(tenant), Role::ResourceServer, "bench").unwrap();
        store.insert_api_key(record).await.unwrap();
        let token = token.expose().to_owned();
        // Checked far apart in time in production, so an hour here: no use is recorded while
        // timing.
        let authenticator = Authenticator::new(store.clone())
            .with_cache_ttl(Duration::from_secs(3600))
            .with_last_used_resolution(chrono::Duration::hours(1));
        authenticator.authenticate(&token).await.unwrap();

        let wallet = format!("0x{}", "ab".repeat(20));
        let stranger = format!("0x{}", "cd".repeat(20));
        // A group grant: a resource grant needs the resource in the registry, and the cached
        // path is the same.
        let resource = ResourceId::new();
        store
            .create_grant(NewGrant {
                tenant_id: tenant,
                scope: GrantScope::Group(GROUP.to_owned()),
                wallet: wallet.clone(),
                settlement_id: None,
                expires_at: None,
                uses_allowed: None,
            })
            .await
            .unwrap();
        let scope = TenantScope::trusted(tenant);
        let grants = GrantCache::new(store.clone(), Duration::from_secs(3600));
        let now = Utc::now();
        assert!(
            grants
                .admit(scope, &wallet, resource, Some(GROUP), now)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            grants
                .admit(scope, &stranger, resource, Some(GROUP), now)
                .await
                .unwrap()
                .is_none()
        );

        let sessions = Sessions::new(
            SessionKeys::generate().unwrap(),
            SessionConfig {
                ttl: Duration::from_secs(3600),
            },
        );
        let (session, _) = sessions
            .issue(tenant, &wallet, "eip155:84532", now)
            .unwrap();
        sessions.verify(&session, now).unwrap();
        Self {
            authenticator,
            token,
            sessions,
            session,
            grants,
            scope,
            wallet,
            stranger,
            resource,
            _store: store,
        }
    }
}
