//! Catalog search over 100,000 listed resources, on PostgreSQL and on SQLite: seeds the
//! catalog through the repositories, serves the discovery routes on a local port, and measures
//! `GET /facilitator/discovery/search` (and one `/resources` listing) from an HTTP client at
//! concurrency 1 and 8: latency p50/p99 and requests per second.
//!
//! `cargo bench -p purser-registry --bench catalog -- [--resources N] [--requests N] [--sqlite-only | --postgres-only]`
//! (PostgreSQL at `DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/test`.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use purser_domain::auth::Authenticator;
use purser_domain::id::{ResourceId, TenantId};
use purser_domain::money::Amount;
use purser_domain::registry::{
    Accept, NewResource, PriceSpec, ResourceKind, ResourceMetadata, ResourceOrigin, ResourceStatus,
    VersionSpec,
};
use purser_domain::repo::Store;
use purser_domain::tenant::{NewTenant, TenantKind, TenantName};
use purser_registry::discovery::{DiscoveryState, router};
use purser_registry::{AssetCatalog, Registry};

const ADJECTIVES: &[&str] = &[
    "fast",
    "global",
    "hourly",
    "realtime",
    "historical",
    "premium",
    "open",
    "secure",
    "daily",
    "regional",
    "bulk",
    "streaming",
    "verified",
    "private",
    "public",
    "smart",
    "precise",
    "live",
    "annual",
    "batch",
];
const NOUNS: &[&str] = &[
    "weather",
    "forecast",
    "stock",
    "quote",
    "translation",
    "geocoding",
    "image",
    "caption",
    "search",
    "news",
    "sentiment",
    "embedding",
    "summary",
    "transcript",
    "invoice",
    "shipping",
    "flight",
    "hotel",
    "crypto",
    "price",
    "map",
    "route",
    "traffic",
    "census",
    "patent",
    "court",
    "recipe",
    "nutrition",
    "genome",
    "protein",
    "satellite",
    "radar",
    "earthquake",
    "tide",
    "energy",
    "carbon",
    "payroll",
    "tax",
    "exchange",
    "rate",
];
const FIELDS: &[&str] = &[
    "city",
    "ticker",
    "text",
    "language",
    "latitude",
    "longitude",
    "date",
    "currency",
    "query",
    "limit",
    "region",
    "postcode",
    "airport",
    "symbol",
    "model",
    "sequence",
];

/// A small deterministic generator, so every run seeds the same catalog.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.next() % items.len()]
    }
}

fn resource(tenant: TenantId, i: usize, rng: &mut Lcg) -> NewResource {
    let (a, n1, n2) = (rng.pick(ADJECTIVES), rng.pick(NOUNS), rng.pick(NOUNS));
    let fields = format!("{} {}", rng.pick(FIELDS), rng.pick(FIELDS));
    let network = if i.is_multiple_of(4) {
        "eip155:84532"
    } else {
        "eip155:8453"
    };
    let amount = Amount::from_atomic(1_000 + (i as u128 % 50) * 100);
    NewResource {
        id: ResourceId::new(),
        tenant_id: tenant,
        origin: ResourceOrigin::Merchant,
        kind: if i.is_multiple_of(10) {
            ResourceKind::Mcp
        } else {
            ResourceKind::Http
        },
        url: format!("https://api{}.example.com/{n1}/{i}", i % 97),
        method: (!i.is_multiple_of(10)).then(|| "GET".to_owned()),
        tool: (i.is_multiple_of(10)).then(|| format!("{n1}_{i}")),
        metadata: ResourceMetadata {
            name: format!("{a} {n1} API"),
            description: format!("The {a} {n1} and {n2} data for agents, resource number {i}."),
            mime_type: Some("application/json".into()),
            service_name: Some(format!("{n2} service")),
            tags: vec![n1.to_owned(), n2.to_owned()],
            icon_url: None,
        },
        status: ResourceStatus::Published,
        spec: VersionSpec {
            price: PriceSpec::Atomic { amount },
            accepts: vec![Accept {
                scheme: "exact".into(),
                network: network.into(),
                asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e".into(),
                amount,
                pay_to: format!("0x{:040x}", i % 500 + 1),
                eip712_name: "USDC".into(),
                eip712_version: "2".into(),
                extra: None,
            }],
            max_timeout_seconds: 60,
            input_schema: None,
            output_schema: None,
            input_example: None,
            output_example: None,
            body_type: None,
            bazaar: None,
            repeat_access: None,
            escrow: None,
        },
        search_fields: fields,
        at: Utc::now(),
    }
}

async fn seed(store: &Arc<dyn Store>, count: usize) -> Duration {
    let started = Instant::now();
    let mut tenants = Vec::new();
    for t in 0..20 {
        let tenant = store
            .create_tenant(NewTenant::new(
                TenantName::parse(&format!("Bench merchant {t}")).unwrap(),
                TenantKind::Merchant,
            ))
            .await
            .unwrap();
        tenants.push(tenant.id);
    }
    let workers = 8;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers {
        let store = store.clone();
        let tenants = tenants.clone();
        tasks.spawn(async move {
            let mut rng = Lcg(w as u64 + 1);
            let mut i = w;
            while i < count {
                store
                    .create_resource(resource(tenants[i % tenants.len()], i, &mut rng))
                    .await
                    .unwrap();
                i += workers;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    started.elapsed()
}

struct Phase {
    label: String,
    latencies: Vec<Duration>,
    elapsed: Duration,
}

async fn measure(
    base: &str,
    label: &str,
    paths: &[String],
    requests: usize,
    concurrency: usize,
) -> Phase {
    let client = purser_testkit::http_client();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..concurrency {
        let client = client.clone();
        let urls: Vec<String> = paths.iter().map(|p| format!("{base}{p}")).collect();
        let share = requests / concurrency;
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(share);
            for r in 0..share {
                let url = &urls[(r + c) % urls.len()];
                let t = Instant::now();
                let response = client.get(url).send().await.unwrap();
                assert_eq!(response.status(), 200, "{url}");
                let body: serde_json::Value = response.json().await.unwrap();
                assert!(body.get("resources").or(body.get("items")).is_some());
                latencies.push(t.elapsed());
            }
            latencies
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done.unwrap());
    }
    latencies.sort();
    Phase {
        label: format!("{label} (concurrency {concurrency})"),
        latencies,
        elapsed: started.elapsed(),
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1e3
}

async fn bench(backend: &str, store: Arc<dyn Store>, resources: usize, requests: usize) {
    let seeded = seed(&store, resources).await;
    let registry = Arc::new(Registry::new(
        store.clone(),
        store.clone(),
        AssetCatalog::default(),
    ));
    let app = router(DiscoveryState {
        registry,
        authenticator: Arc::new(Authenticator::new(store.clone())),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let search = |q: &str| format!("/facilitator/discovery/search?query={q}&limit=20");
    let workloads: Vec<(&str, Vec<String>)> = vec![
        (
            "search, one word",
            NOUNS.iter().map(|n| search(n)).collect(),
        ),
        (
            "search, three words + network filter",
            NOUNS
                .iter()
                .zip(ADJECTIVES.iter().cycle())
                .map(|(n, a)| {
                    format!(
                        "{}&network=eip155%3A84532",
                        search(&format!("{a}+{n}+postcode"))
                    )
                })
                .collect(),
        ),
        (
            "search, second page",
            NOUNS
                .iter()
                .map(|n| format!("{}&cursor=bzoyMA", search(n)))
                .collect(),
        ),
        (
            "list, filtered by payTo",
            (1..=40)
                .map(|i| format!("/facilitator/discovery/resources?payTo=0x{i:040x}&limit=20"))
                .collect(),
        ),
    ];
    println!(
        "\n### {backend}: {resources} resources (seeded in {:.1} s)\n",
        seeded.as_secs_f64()
    );
    println!("| workload | requests | req/s | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|");
    for (label, paths) in &workloads {
        // Warm-up: every distinct request once.
        let _ = measure(&base, label, paths, paths.len(), 1).await;
        for concurrency in [1, 8] {
            let phase = measure(&base, label, paths, requests, concurrency).await;
            println!(
                "| {} | {} | {:.0} | {:.2} | {:.2} |",
                phase.label,
                phase.latencies.len(),
                phase.latencies.len() as f64 / phase.elapsed.as_secs_f64(),
                pct(&phase.latencies, 0.50),
                pct(&phase.latencies, 0.99),
            );
        }
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str, default: usize| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let resources = value("--resources", 100_000);
    let requests = value("--requests", 1_000);

    let dir = tempfile::tempdir().unwrap();
    if !args.iter().any(|a| a == "--postgres-only") {
        let sqlite = purser_store_sqlite::SqliteStore::open_dir(dir.path(), &Default::default())
            .await
            .unwrap();
        sqlite.migrate().await.unwrap();
        bench("SQLite", Arc::new(sqlite), resources, requests).await;
    }

    if !args.iter().any(|a| a == "--sqlite-only") {
        let database = purser_testkit::postgres::TestDatabase::create().await;
        let pg = purser_store_postgres::PgStore::connect(database.url(), &Default::default())
            .await
            .unwrap();
        pg.migrate().await.unwrap();
        bench("PostgreSQL", Arc::new(pg), resources, requests).await;
    }
}
