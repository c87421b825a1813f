//! `purser-bench --suite entitlements`: Purser's entitlement check, `POST
//! /v1/entitlements/check`, over HTTP against a real `purser serve`, with no chain at all.
//!
//! What one run does:
//!
//! 1. writes Purser's configuration without rails (SQLite by default, a fresh PostgreSQL
//!    database with `--postgres`), creates the tenant and its `resource_server` key with the CLI,
//!    and generates the Ed25519 key session tokens are signed with (`[sessions] keys`);
//! 2. opens the same database from the harness and, through the registry, publishes two
//!    resources: one with repeat access (no end, no use limit), one without (its callers pay from
//!    prepaid credit); then gives each of `--wallets` wallets a grant of the first and credit on
//!    the asset of the second;
//! 3. serves Purser as configured by default (`[entitlements] cache_ttl_ms` 5,000: a wallet's
//!    grants answered from memory), signs one session token per wallet, checks every wallet once
//!    (unmeasured: each token verified once and each wallet's grants read), then measures at each
//!    concurrency `GET /healthz` (the ceiling: the same client and middleware, no work) and the
//!    cached grant check; then credit cycles: a check with `reserve` for a resource without
//!    repeat access (the wallet's credit held), then the commit of the reservation, each timed;
//! 4. serves Purser again with `cache_ttl_ms = 0` (every check reads the database) and measures
//!    the cold grant check;
//! 5. checks the ledger: the wallets' credit fell by exactly what was committed and nothing is
//!    still held.
//!
//! Every answer is judged: a grant check must allow by `grant` for the wallet asked about, a
//! credit check must allow by `credit` with a pending reservation of the amount asked, a commit
//! must answer the reservation committed. Anything else is a failure, and the run fails.
//!
//! The load generator runs in this process on the same cores as Purser (and PostgreSQL). By
//! default it is [`crate::wire`]'s minimal keep-alive client, one connection per worker, with
//! every request encoded before the phase; `--client reqwest` uses reqwest instead, for
//! comparison.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::ValueEnum;
use futures::{StreamExt, TryStreamExt};
use purser_domain::auth::TenantScope;
use purser_domain::credits::CreditKey;
use purser_domain::entitlement::{GrantScope, NewGrant, RepeatAccess};
use purser_domain::id::{ResourceId, TenantId};
use purser_domain::money::Amount;
use purser_domain::registry::{PriceSpec, ResourceKind};
use purser_domain::repo::Store;
use purser_entitlement::{SessionConfig, SessionKeys, Sessions};
use purser_registry::{AcceptDraft, AssetCatalog, AssetInfo, Registry, ResourceDraft};
use purser_store_postgres::{PgStore, PgStoreOptions};
use purser_store_sqlite::{SqliteStore, SqliteStoreOptions};
use serde::Deserialize;
use serde_json::json;

use crate::stats::{PhaseResult, cpu_time};
use crate::targets::{PurserSetup, PurserStorage, sqlite_data_dir};
use crate::{Args, load, wire};

/// The network the resources are priced on and the session tokens name.
const NETWORK: &str = "eip155:84532";
/// USDC on Base Sepolia: the resources' asset (no chain is asked about it).
const USDC: &str = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";
/// Where both resources pay out.
const PAY_TO: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
/// Each wallet's prepaid credit, in atomic units: far more than a run reserves.
const CREDIT: u128 = 1_000_000_000_000;
/// How many failure messages a phase keeps for the report.
const KEPT_FAILURES: usize = 5;
/// What `GET /healthz` answers.
const HEALTHY: &[u8] = br#"{"status":"ok"}"#;

/// The HTTP client the load generator uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClientKind {
    /// One keep-alive HTTP/1.1 connection per worker, requests encoded before the phase (see
    /// `wire.rs`): the least CPU per request.
    Raw,
    /// reqwest with a connection pool, as the other suites use.
    Reqwest,
}

impl ClientKind {
    fn describe(self) -> &'static str {
        match self {
            ClientKind::Raw => {
                "a minimal keep-alive HTTP/1.1 client (`wire.rs`): one connection per worker, every request encoded before the phase and written in one write, answers read by Content-Length"
            }
            ClientKind::Reqwest => "reqwest 0.13 with a keep-alive pool",
        }
    }
}

/// What a phase measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// `GET /healthz`: the same client, listener and middleware, no work; the ceiling.
    Ceiling,
    /// A grant check with the default configuration: the wallet's grants from memory.
    Cached,
    /// A grant check with `cache_ttl_ms = 0`: the grants read from the database every time.
    Cold,
    /// A check with `reserve` for a resource without repeat access: the credit held.
    Reserve,
    /// The commit of that reservation, right after it.
    Commit,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Ceiling => "GET /healthz (ceiling)",
            Phase::Cached => "grant, cached",
            Phase::Cold => "grant, cold (cache_ttl_ms = 0)",
            Phase::Reserve => "credit: check + reserve",
            Phase::Commit => "credit: commit",
        }
    }
}

/// What a request must be answered, to count as a success.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    /// `GET /healthz`: 200 `{"status":"ok"}`.
    Healthy,
    /// Allowed by a grant, for this wallet.
    Grant { wallet: Arc<str> },
    /// Allowed on credit, for this wallet: a pending reservation of `amount`.
    Credit { wallet: Arc<str>, amount: Arc<str> },
    /// The reservation committed for `amount`.
    Committed { amount: Arc<str> },
}

/// The fields of an answer that are judged; the rest is skipped unread.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer<'a> {
    #[serde(borrow, default)]
    decision: Option<&'a str>,
    #[serde(borrow, default)]
    reason: Option<&'a str>,
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    wallet: Option<&'a str>,
    #[serde(borrow, default)]
    grant: Option<GrantAnswer<'a>>,
    #[serde(borrow, default)]
    reservation: Option<ReservationAnswer<'a>>,
    /// A commit answers the reservation itself: its state and what was committed.
    #[serde(borrow, default)]
    state: Option<&'a str>,
    #[serde(borrow, default)]
    committed_amount: Option<&'a str>,
}

#[derive(Debug, Deserialize)]
struct GrantAnswer<'a> {
    #[serde(borrow)]
    id: &'a str,
}

#[derive(Debug, Deserialize)]
struct ReservationAnswer<'a> {
    #[serde(borrow, default)]
    id: Option<&'a str>,
    #[serde(borrow, default)]
    amount: Option<&'a str>,
    #[serde(borrow, default)]
    state: Option<&'a str>,
}

/// `Ok` when the answer is what `expect` calls for (with the reservation's id, for a credit
/// check); otherwise why not.
fn judge(expect: &Expect, status: u16, body: &[u8]) -> Result<Option<String>, String> {
    let shown = || String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    if status != 200 {
        return Err(format!("HTTP {status}: {}", shown()));
    }
    if *expect == Expect::Healthy {
        return if body == HEALTHY {
            Ok(None)
        } else {
            Err(format!("another health answer: {}", shown()))
        };
    }
    let answer: Answer<'_> = serde_json::from_slice(body)
        .map_err(|e| format!("not an entitlement answer ({e}): {}", shown()))?;
    let allowed = |reason: &str, wallet: &str| {
        if answer.decision == Some("allow") && answer.reason == Some(reason) {
            if answer.wallet == Some(wallet) {
                return Ok(());
            }
            return Err(format!(
                "allowed for {:?}, not {wallet}",
                answer.wallet.unwrap_or_default()
            ));
        }
        Err(format!(
            "{} {}: {}",
            answer.decision.unwrap_or("(no decision)"),
            answer.reason.unwrap_or("(no reason)"),
            answer.message.as_deref().unwrap_or_default()
        ))
    };
    match expect {
        Expect::Healthy => unreachable!("judged above"),
        Expect::Grant { wallet } => {
            allowed("grant", wallet)?;
            if answer.grant.is_none_or(|g| g.id.is_empty()) {
                return Err(format!("allowed by a grant without its id: {}", shown()));
            }
            Ok(None)
        }
        Expect::Credit { wallet, amount } => {
            allowed("credit", wallet)?;
            let held = answer
                .reservation
                .ok_or_else(|| format!("allowed on credit without a reservation: {}", shown()))?;
            match (held.id, held.amount, held.state) {
                (Some(id), Some(a), Some("pending")) if a == &**amount && !id.is_empty() => {
                    Ok(Some(id.to_owned()))
                }
                _ => Err(format!(
                    "not a pending reservation of {amount}: {}",
                    shown()
                )),
            }
        }
        Expect::Committed { amount } => {
            if answer.state == Some("committed") && answer.committed_amount == Some(&**amount) {
                Ok(None)
            } else {
                Err(format!("not committed for {amount}: {}", shown()))
            }
        }
    }
}

/// One request, ready to send.
#[derive(Debug, Clone)]
struct Call {
    method: &'static str,
    path: Arc<str>,
    body: Arc<[u8]>,
    /// With the tenant's `resource_server` key.
    authenticated: bool,
    /// The whole request as [`ClientKind::Raw`] writes it.
    wire: Arc<[u8]>,
    expect: Expect,
}

/// Purser's address and key, and how to talk to it.
#[derive(Clone)]
struct Endpoint {
    addr: SocketAddr,
    base: Arc<str>,
    bearer: Arc<str>,
    kind: ClientKind,
    reqwest: reqwest::Client,
}

impl Endpoint {
    fn new(base: &str, bearer: &str, kind: ClientKind, pool: usize) -> anyhow::Result<Self> {
        let addr = base
            .strip_prefix("http://")
            .and_then(|a| a.parse().ok())
            .with_context(|| format!("{base} is not http://<ip>:<port>"))?;
        let reqwest = reqwest::Client::builder()
            .pool_max_idle_per_host(pool)
            .timeout(load::REQUEST_TIMEOUT)
            .build()?;
        Ok(Self {
            addr,
            base: base.into(),
            bearer: bearer.into(),
            kind,
            reqwest,
        })
    }

    fn call(
        &self,
        method: &'static str,
        path: String,
        body: Vec<u8>,
        authenticated: bool,
        expect: Expect,
    ) -> Call {
        let authorization = format!("Bearer {}", self.bearer);
        let mut headers = Vec::new();
        if authenticated {
            headers.push(("authorization", authorization.as_str()));
        }
        if !body.is_empty() {
            headers.push(("content-type", "application/json"));
        }
        let wire = wire::encode(method, &path, &self.addr.to_string(), &headers, &body);
        Call {
            method,
            path: path.into(),
            body: body.into(),
            authenticated,
            wire: wire.into(),
            expect,
        }
    }

    fn connection(&self) -> Connection {
        match self.kind {
            ClientKind::Raw => Connection::Raw(wire::Connection::new(self.addr)),
            ClientKind::Reqwest => Connection::Reqwest {
                endpoint: self.clone(),
                last: Vec::new(),
            },
        }
    }
}

/// One worker's way to Purser.
enum Connection {
    Raw(wire::Connection),
    Reqwest { endpoint: Endpoint, last: Vec<u8> },
}

impl Connection {
    async fn connect(&mut self) -> Result<(), String> {
        match self {
            Connection::Raw(connection) => connection.connect().await,
            Connection::Reqwest { .. } => Ok(()),
        }
    }

    /// Sends `call` and reads the whole answer.
    async fn send(&mut self, call: &Call) -> Result<(u16, &[u8]), String> {
        match self {
            Connection::Raw(connection) => connection.send(&call.wire).await,
            Connection::Reqwest { endpoint, last } => {
                let url = format!("{}{}", endpoint.base, call.path);
                let mut request = match call.method {
                    "GET" => endpoint.reqwest.get(url),
                    _ => endpoint
                        .reqwest
                        .post(url)
                        .header("content-type", "application/json")
                        .body(call.body.to_vec()),
                };
                if call.authenticated {
                    request = request.bearer_auth(&endpoint.bearer);
                }
                let (status, body) = load::exchange(request).await?;
                *last = body;
                Ok((status, last.as_slice()))
            }
        }
    }
}

/// One request's latency and whether it succeeded.
type Sample = (Duration, Result<(), String>);

fn phase_result(samples: Vec<Sample>, wall: Duration) -> PhaseResult {
    let mut latencies = Vec::with_capacity(samples.len());
    let mut ok = 0;
    let mut failures = Vec::new();
    for (latency, outcome) in samples {
        latencies.push(latency);
        match outcome {
            Ok(()) => ok += 1,
            Err(why) if failures.len() < KEPT_FAILURES => failures.push(why),
            Err(_) => {}
        }
    }
    PhaseResult::new(latencies, ok, wall, failures)
}

/// Sends every call in `jobs` with `concurrency` workers, each on a connection of its own opened
/// before the clock starts, each taking the next call when its last one is answered. With
/// `commit`, every reservation a call makes is committed for that amount at once, on the same
/// connection, timed on its own. Answers: the calls' result and, with `commit`, the commits'.
async fn drive(
    endpoint: &Endpoint,
    jobs: Vec<Call>,
    concurrency: usize,
    commit: Option<Arc<str>>,
) -> anyhow::Result<(PhaseResult, Option<PhaseResult>)> {
    let jobs = Arc::new(jobs);
    let next = Arc::new(AtomicUsize::new(0));
    let workers = concurrency.max(1);
    let ready = Arc::new(tokio::sync::Barrier::new(workers + 1));
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (jobs, next, ready) = (jobs.clone(), next.clone(), ready.clone());
            let (endpoint, commit) = (endpoint.clone(), commit.clone());
            tokio::spawn(async move {
                let mut connection = endpoint.connection();
                let connected = connection.connect().await;
                ready.wait().await;
                connected?;
                let mut calls: Vec<Sample> = Vec::new();
                let mut commits: Vec<Sample> = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(call) = jobs.get(i) else { break };
                    let sent = Instant::now();
                    let answer = connection.send(call).await;
                    let latency = sent.elapsed();
                    let judged =
                        answer.and_then(|(status, body)| judge(&call.expect, status, body));
                    let reservation = judged.as_ref().ok().cloned().flatten();
                    calls.push((latency, judged.map(|_| ())));
                    if let (Some(id), Some(amount)) = (reservation, &commit) {
                        let call = endpoint.call(
                            "POST",
                            format!("/v1/entitlements/reservations/{id}/commit"),
                            serde_json::to_vec(&json!({ "amount": &**amount }))
                                .expect("a body serializes"),
                            true,
                            Expect::Committed {
                                amount: amount.clone(),
                            },
                        );
                        let sent = Instant::now();
                        let answer = connection.send(&call).await;
                        let latency = sent.elapsed();
                        let judged =
                            answer.and_then(|(status, body)| judge(&call.expect, status, body));
                        commits.push((latency, judged.map(|_| ())));
                    }
                }
                Ok::<_, String>((calls, commits))
            })
        })
        .collect();
    ready.wait().await;
    let started = Instant::now();
    let mut calls = Vec::with_capacity(jobs.len());
    let mut commits = Vec::new();
    let mut broken = None;
    for worker in futures::future::join_all(handles).await {
        match worker.context("a load worker panicked")? {
            Ok((c, m)) => {
                calls.extend(c);
                commits.extend(m);
            }
            Err(why) => broken = Some(why),
        }
    }
    let wall = started.elapsed();
    if let Some(why) = broken {
        bail!("a load worker could not connect: {why}");
    }
    Ok((
        phase_result(calls, wall),
        commit.map(|_| phase_result(commits, wall)),
    ))
}

/// `count` calls taken from `calls` in turn.
fn rotate(calls: &[Call], count: usize) -> Vec<Call> {
    (0..count).map(|i| calls[i % calls.len()].clone()).collect()
}

/// What the harness put in the database.
struct Seeded {
    /// Published with repeat access; every wallet holds an unlimited grant of it.
    grant_resource: ResourceId,
    /// Published without repeat access; every wallet has credit on its asset.
    credit_resource: ResourceId,
    wallets: Vec<String>,
}

/// The `n`-th wallet: `0x` and 40 lower-case hex digits.
fn wallet(n: usize) -> String {
    format!("0xbe4c{n:036x}")
}

async fn open_store(dir: &Path, storage: &PurserStorage) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match storage {
        PurserStorage::Sqlite => {
            let store =
                SqliteStore::open_dir(&sqlite_data_dir(dir), &SqliteStoreOptions::default())
                    .await?;
            store.migrate().await?;
            Arc::new(store)
        }
        PurserStorage::Postgres(url) => {
            let store = PgStore::connect(url, &PgStoreOptions::default()).await?;
            store.migrate().await?;
            Arc::new(store)
        }
    })
}

fn draft(name: &str, path: &str, repeat_access: bool) -> ResourceDraft {
    ResourceDraft {
        kind: ResourceKind::Http,
        url: format!("https://api.example.com/{path}"),
        method: Some("GET".into()),
        tool: None,
        name: name.into(),
        description: format!("purser-bench: {name}"),
        mime_type: None,
        service_name: None,
        tags: vec![],
        icon_url: None,
        input_schema: None,
        output_schema: None,
        input_example: None,
        output_example: None,
        body_type: None,
        price: PriceSpec::Usd { usd: "0.01".into() },
        accepts: vec![AcceptDraft {
            network: NETWORK.into(),
            ..Default::default()
        }],
        max_timeout_seconds: None,
        repeat_access: repeat_access.then_some(RepeatAccess {
            group: None,
            duration_seconds: None,
            uses: None,
        }),
        escrow: None,
    }
}

fn credit_key(wallet: &str) -> anyhow::Result<CreditKey> {
    Ok(CreditKey::new(wallet, NETWORK, &USDC.to_ascii_lowercase())?)
}

/// Publishes the two resources and gives every wallet its grant and its credit, in the database
/// Purser is configured with.
async fn seed(
    dir: &Path,
    storage: &PurserStorage,
    tenant: TenantId,
    wallets: usize,
) -> anyhow::Result<Seeded> {
    let store = open_store(dir, storage).await?;
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
    registry.set_payout_address(scope, NETWORK, PAY_TO).await?;
    let grant_resource = registry
        .create_resource(
            scope,
            draft("reports, repeat access", "reports/:id", true),
            true,
        )
        .await?
        .id;
    let credit_resource = registry
        .create_resource(
            scope,
            draft("completions, paid from credit", "completions", false),
            true,
        )
        .await?
        .id;
    let wallets: Vec<String> = (0..wallets).map(wallet).collect();
    futures::stream::iter(wallets.iter())
        .map(|wallet| {
            let store = store.clone();
            async move {
                store
                    .create_grant(NewGrant {
                        tenant_id: tenant,
                        scope: GrantScope::Resource(grant_resource),
                        wallet: wallet.clone(),
                        settlement_id: None,
                        expires_at: None,
                        uses_allowed: None,
                    })
                    .await?;
                store
                    .top_up(
                        scope,
                        &credit_key(wallet)?,
                        Amount::from_atomic(CREDIT),
                        None,
                    )
                    .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(Seeded {
        grant_resource,
        credit_resource,
        wallets,
    })
}

/// What the wallets' credit says after the run: (spent, still held), summed over the wallets.
async fn credit_spent(
    dir: &Path,
    storage: &PurserStorage,
    tenant: TenantId,
    wallets: &[String],
) -> anyhow::Result<(u128, u128)> {
    let store = open_store(dir, storage).await?;
    let scope = TenantScope::trusted(tenant);
    let (mut spent, mut held) = (0u128, 0u128);
    for wallet in wallets {
        let balance = store.credit_balance(scope, &credit_key(wallet)?).await?;
        let (available, reserved) = (balance.available.atomic(), balance.reserved.atomic());
        spent += CREDIT - available - reserved;
        held += reserved;
    }
    Ok((spent, held))
}

/// `[sessions]`, `[registry]` and, for the cold instance, `[entitlements]`.
fn config_extra(session_key: &Path, cache_ttl_ms: Option<u64>) -> String {
    let mut extra = format!(
        "[sessions]\nkeys = [{:?}]\n\n[registry]\nprobe = false\n",
        session_key.to_string_lossy()
    );
    if let Some(ttl) = cache_ttl_ms {
        let _ = write!(extra, "\n[entitlements]\ncache_ttl_ms = {ttl}\n");
    }
    extra
}

/// Every request a phase sends, per wallet.
struct Calls {
    health: Call,
    grant: Vec<Call>,
    credit: Vec<Call>,
}

fn calls(
    endpoint: &Endpoint,
    seeded: &Seeded,
    sessions: &Sessions,
    tenant: TenantId,
    reserve: &str,
) -> anyhow::Result<Calls> {
    let now = purser_domain::time::now();
    let mut grant = Vec::with_capacity(seeded.wallets.len());
    let mut credit = Vec::with_capacity(seeded.wallets.len());
    for wallet in &seeded.wallets {
        let (session, _) = sessions.issue(tenant, wallet, NETWORK, now)?;
        let who: Arc<str> = wallet.as_str().into();
        grant.push(endpoint.call(
            "POST",
            "/v1/entitlements/check".into(),
            serde_json::to_vec(&json!({
                "resource": seeded.grant_resource.to_string(),
                "session": session,
            }))?,
            true,
            Expect::Grant {
                wallet: who.clone(),
            },
        ));
        credit.push(endpoint.call(
            "POST",
            "/v1/entitlements/check".into(),
            serde_json::to_vec(&json!({
                "resource": seeded.credit_resource.to_string(),
                "session": session,
                "reserve": reserve,
            }))?,
            true,
            Expect::Credit {
                wallet: who,
                amount: reserve.into(),
            },
        ));
    }
    Ok(Calls {
        health: endpoint.call("GET", "/healthz".into(), Vec::new(), false, Expect::Healthy),
        grant,
        credit,
    })
}

/// CPU time used so far by every process named `postgres` (the server and its backends).
fn postgres_cpu() -> Option<Duration> {
    let mut total = None;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) else {
            continue;
        };
        if comm.trim() == "postgres"
            && let Some(cpu) = cpu_time(pid)
        {
            total = Some(total.unwrap_or(Duration::ZERO) + cpu);
        }
    }
    total
}

/// CPU time the whole machine has been busy so far (user, nice, system, irq, softirq and
/// steal over every core, from the first line of `/proc/stat`).
fn machine_busy() -> Option<Duration> {
    parse_machine_busy(&std::fs::read_to_string("/proc/stat").ok()?)
}

fn parse_machine_busy(stat: &str) -> Option<Duration> {
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is within user).
    let busy: u64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| ticks.get(i))
        .sum();
    Some(Duration::from_millis(busy * 10))
}

/// The 1-minute load average, for the report.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

struct Measured {
    phase: Phase,
    concurrency: usize,
    result: PhaseResult,
    /// CPU used during the phase: Purser, the load generator (this process), PostgreSQL, and
    /// every other process of the machine.
    cpu: [Option<Duration>; 4],
}

/// The processes a phase's CPU is read from.
#[derive(Clone, Copy)]
struct Processes {
    purser: Option<u32>,
    postgres: bool,
}

impl Processes {
    /// CPU used so far: Purser, the load generator, PostgreSQL, the whole machine.
    fn cpu(self) -> [Option<Duration>; 4] {
        [
            self.purser.and_then(cpu_time),
            cpu_time(std::process::id()),
            if self.postgres { postgres_cpu() } else { None },
            machine_busy(),
        ]
    }
}

/// CPU used between two readings of [`Processes::cpu`], the last being the other processes'
/// (the machine's less the first three's).
fn cpu_used(before: [Option<Duration>; 4], after: [Option<Duration>; 4]) -> [Option<Duration>; 4] {
    let mut used: [Option<Duration>; 4] = std::array::from_fn(|i| match (before[i], after[i]) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b)),
        _ => None,
    });
    let ours: Duration = used[..3].iter().flatten().sum();
    used[3] = used[3].map(|machine| machine.saturating_sub(ours));
    used
}

fn ms3(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1_000.0)
}

fn print(m: &Measured) {
    let r = &m.result;
    eprintln!(
        "  {:<31} c={:<3} {:>6} req {:>9.1} req/s  p50 {} p99 {} p99.9 {} max {} ms  failed {}",
        m.phase.name(),
        m.concurrency,
        r.requests,
        r.throughput(),
        ms3(r.p50()),
        ms3(r.p99()),
        ms3(r.p999()),
        ms3(r.latencies.last().copied().unwrap_or_default()),
        r.failed(),
    );
    for failure in &r.failures {
        eprintln!("      failure: {failure}");
    }
}

/// One measured phase (with `commit`, two: the checks and their commits, which share the CPU
/// reading, reported on the checks).
async fn measure(
    endpoint: &Endpoint,
    processes: Processes,
    phase: Phase,
    jobs: Vec<Call>,
    concurrency: usize,
    commit: Option<Arc<str>>,
) -> anyhow::Result<Vec<Measured>> {
    let before = processes.cpu();
    let (result, commits) = drive(endpoint, jobs, concurrency, commit).await?;
    let cpu = cpu_used(before, processes.cpu());
    let mut measured = vec![Measured {
        phase,
        concurrency,
        result,
        cpu,
    }];
    if let Some(commits) = commits {
        measured.push(Measured {
            phase: Phase::Commit,
            concurrency,
            result: commits,
            cpu: [None; 4],
        });
    }
    for m in &measured {
        print(m);
    }
    Ok(measured)
}

/// Unmeasured: every wallet's grant check once (its token verified, its grants read), and the
/// health route, at `concurrency`; fails on any failure.
async fn warm_up(endpoint: &Endpoint, calls: &Calls, concurrency: usize) -> anyhow::Result<()> {
    let (grants, _) = drive(endpoint, calls.grant.clone(), concurrency, None).await?;
    let (health, _) = drive(
        endpoint,
        rotate(std::slice::from_ref(&calls.health), 1_000),
        concurrency,
        None,
    )
    .await?;
    eprintln!(
        "  warmed up: {}/{} wallets checked, {}/{} health",
        grants.ok, grants.requests, health.ok, health.requests
    );
    if let Some(failure) = grants.failures.first().or(health.failures.first()) {
        bail!("Purser fails while warming up: {failure}");
    }
    Ok(())
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if !args.purser.is_file() {
        bail!(
            "no purser binary at {} (cargo build --release -p purser)",
            args.purser.display()
        );
    }
    ensure!(args.wallets > 0, "--wallets must be at least 1");
    let load_at_start = load_average();
    let (dir, _scratch) = crate::run_dir(&args)?;
    let database = if args.postgres {
        Some(purser_testkit::postgres::TestDatabase::create().await)
    } else {
        None
    };
    let storage = match &database {
        Some(db) => PurserStorage::Postgres(db.url().to_owned()),
        None => PurserStorage::Sqlite,
    };
    let pool = args
        .cached_concurrency
        .iter()
        .chain(&args.cold_concurrency)
        .chain(&args.credit_concurrency)
        .copied()
        .max()
        .unwrap_or(1)
        .max(16);
    let setup_client = reqwest::Client::builder()
        .timeout(load::REQUEST_TIMEOUT)
        .build()?;

    let session_key = dir.join("session-key.pem");
    std::fs::write(&session_key, SessionKeys::generate_pem()?)?;
    eprintln!("setting up Purser ({})", args.purser.display());
    let setup = PurserSetup::prepare_with_rails(&args.purser, &dir, "", &storage, None).await?;
    let tenant: TenantId = setup
        .tenant
        .parse()
        .with_context(|| format!("`purser tenant create` printed {:?}", setup.tenant))?;
    eprintln!("seeding {} wallets (a grant and credit each)", args.wallets);
    let seeding = Instant::now();
    let seeded = seed(&dir, &storage, tenant, args.wallets).await?;
    eprintln!("  seeded in {:.1} s", seeding.elapsed().as_secs_f64());
    // Valid for the whole run, however long the slow phases take.
    let sessions = Sessions::new(
        SessionKeys::from_files(&[&session_key])?,
        SessionConfig {
            ttl: Duration::from_secs(4 * 3_600),
        },
    );
    let reserve: Arc<str> = args.reserve.to_string().into();
    let mut measured = Vec::new();
    let mut committed = 0usize;

    // The default configuration: grants answered from memory.
    let purser = setup
        .serve(&setup_client, &config_extra(&session_key, None))
        .await?;
    let version = purser.version.clone();
    eprintln!(
        "  Purser ({version}) at {}, log {}",
        setup.url(),
        purser.log.display()
    );
    let processes = Processes {
        purser: purser.pid(),
        postgres: args.postgres,
    };
    let endpoint = Endpoint::new(&setup.url(), &setup.key, args.client, pool)?;
    let all = calls(&endpoint, &seeded, &sessions, tenant, &reserve)?;
    eprintln!("warming up (cached)");
    warm_up(&endpoint, &all, pool).await?;
    for &c in &args.cached_concurrency {
        eprintln!("cached checks at concurrency {c}");
        if args.ceiling_requests > 0 {
            let jobs = rotate(std::slice::from_ref(&all.health), args.ceiling_requests);
            measured.extend(measure(&endpoint, processes, Phase::Ceiling, jobs, c, None).await?);
        }
        let jobs = rotate(&all.grant, args.cached_requests);
        measured.extend(measure(&endpoint, processes, Phase::Cached, jobs, c, None).await?);
    }
    if args.credit_requests > 0 {
        // The credit resource's first reads, outside the measure.
        let (warm, commits) = drive(
            &endpoint,
            rotate(&all.credit, args.warmup.max(1)),
            4,
            Some(reserve.clone()),
        )
        .await?;
        let commits = commits.expect("commits were asked for");
        committed += commits.ok;
        if let Some(failure) = warm.failures.first().or(commits.failures.first()) {
            bail!("credit checks fail while warming up: {failure}");
        }
        for &c in &args.credit_concurrency {
            eprintln!("credit cycles at concurrency {c}");
            let jobs = rotate(&all.credit, args.credit_requests);
            let phase = measure(
                &endpoint,
                processes,
                Phase::Reserve,
                jobs,
                c,
                Some(reserve.clone()),
            )
            .await?;
            committed += phase
                .iter()
                .filter(|m| m.phase == Phase::Commit)
                .map(|m| m.result.ok)
                .sum::<usize>();
            measured.extend(phase);
        }
    }
    purser.stop().await;

    // Every check reads the database.
    if args.cold_requests > 0 {
        let purser = setup
            .serve(&setup_client, &config_extra(&session_key, Some(0)))
            .await?;
        let processes = Processes {
            purser: purser.pid(),
            ..processes
        };
        let endpoint = Endpoint::new(&setup.url(), &setup.key, args.client, pool)?;
        eprintln!("warming up (cold: cache_ttl_ms = 0)");
        warm_up(&endpoint, &all, pool).await?;
        for &c in &args.cold_concurrency {
            eprintln!("cold checks at concurrency {c}");
            let jobs = rotate(&all.grant, args.cold_requests);
            measured.extend(measure(&endpoint, processes, Phase::Cold, jobs, c, None).await?);
        }
        purser.stop().await;
    }

    let (spent, held) = credit_spent(&dir, &storage, tenant, &seeded.wallets).await?;
    let expected = args.reserve * committed as u128;
    let ledger = (spent, expected, held);

    if let Some(path) = &args.samples {
        let mut csv = String::from("phase,concurrency,latency_ms\n");
        for m in &measured {
            for latency in &m.result.latencies {
                let _ = writeln!(
                    csv,
                    "{},{},{:.4}",
                    m.phase.name(),
                    m.concurrency,
                    latency.as_secs_f64() * 1_000.0
                );
            }
        }
        std::fs::write(path, csv).with_context(|| format!("writing {}", path.display()))?;
    }
    let loads = (load_at_start, load_average());
    println!("{}", report(&args, &version, &measured, ledger, loads));
    drop(database);

    let failures: usize = measured.iter().map(|m| m.result.failed()).sum();
    let ledger_wrong = spent != expected || held != 0;
    if failures > 0 || ledger_wrong {
        bail!(
            "{failures} failed request(s){}",
            if ledger_wrong {
                format!(
                    "; the credit does not add up: {spent} spent, {expected} committed, {held} still held"
                )
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

fn report(
    args: &Args,
    version: &str,
    measured: &[Measured],
    (spent, expected, held): (u128, u128, u128),
    (load_before, load_after): (String, String),
) -> String {
    let mut out = String::new();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = writeln!(
        out,
        "purser-bench --suite entitlements: {cores} cores, load average {load_before} before the run and {load_after} after"
    );
    let _ = writeln!(
        out,
        "- Purser: {version} (commit {}), storage {}, coordination in process, no rails, log level info",
        crate::commit(),
        if args.postgres {
            "PostgreSQL"
        } else {
            "SQLite (embedded)"
        }
    );
    let _ = writeln!(
        out,
        "- {} wallets, each with an unlimited grant of one resource and {CREDIT} units of credit for another; one session token per wallet; requests rotate through the wallets",
        args.wallets
    );
    let _ = writeln!(
        out,
        "- load generator: {}; in the harness's process (a {cores}-thread tokio runtime), on the same cores as Purser{}",
        args.client.describe(),
        if args.postgres { " and PostgreSQL" } else { "" }
    );
    let _ = writeln!(
        out,
        "- per concurrency: {} health and {} cached checks, {} cold checks, {} credit cycles (a check reserving {} units, then its commit)",
        args.ceiling_requests,
        args.cached_requests,
        args.cold_requests,
        args.credit_requests,
        args.reserve
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| phase | concurrency | requests | req/s | p50 ms | p99 ms | p99.9 ms | max ms | failures | Purser CPU µs/req | load generator CPU µs/req | PostgreSQL CPU µs/req | other processes, cores |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for m in measured {
        let r = &m.result;
        let per_request = |cpu: Option<Duration>| {
            cpu.map_or_else(
                || "–".to_owned(),
                |cpu| format!("{:.1}", cpu.as_secs_f64() * 1e6 / r.requests.max(1) as f64),
            )
        };
        let others = m.cpu[3].map_or_else(
            || "–".to_owned(),
            |cpu| format!("{:.2}", cpu.as_secs_f64() / r.wall.as_secs_f64().max(1e-9)),
        );
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {others} |",
            m.phase.name(),
            m.concurrency,
            r.requests,
            r.throughput(),
            ms3(r.p50()),
            ms3(r.p99()),
            ms3(r.p999()),
            ms3(r.latencies.last().copied().unwrap_or_default()),
            r.failed(),
            per_request(m.cpu[0]),
            per_request(m.cpu[1]),
            per_request(m.cpu[2]),
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Credit cycles: req/s counts cycles (a check and its commit, one after the other on one connection); CPU per cycle is on the check's row. CPU from /proc (10 ms resolution over the phase); \"other processes\" is the machine's busy time less Purser's, the load generator's and PostgreSQL's, in cores over the phase."
    );
    let _ = writeln!(
        out,
        "- credit ledger: the wallets' credit fell by {spent} units, the commits add up to {expected}; {held} still held ({})",
        if spent == expected && held == 0 {
            "ok"
        } else {
            "MISMATCH"
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant_answer(wallet: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "decision": "allow", "reason": "grant", "wallet": wallet,
            "grant": { "id": "0190f3a4-0000-7000-8000-000000000001", "expiresAt": null, "usesLeft": null },
            "session": null,
        }))
        .unwrap()
    }

    fn credit_answer(wallet: &str, amount: &str, state: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "decision": "allow", "reason": "credit", "wallet": wallet,
            "reservation": { "id": "r-1", "wallet": wallet, "network": NETWORK, "asset": USDC,
                "amount": amount, "state": state, "committedAmount": null },
            "session": null,
        }))
        .unwrap()
    }

    fn denial(reason: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "decision": "deny", "reason": reason, "message": "the wallet holds no grant \"here\"",
            "status": 402, "headers": { "payment-required": "e30=" }, "body": { "x402Version": 2 },
        }))
        .unwrap()
    }

    #[test]
    fn a_grant_check_must_allow_by_grant_for_the_wallet_asked_about() {
        let a = wallet(1);
        let expect = Expect::Grant {
            wallet: a.as_str().into(),
        };
        assert_eq!(judge(&expect, 200, &grant_answer(&a)), Ok(None));
        let other = judge(&expect, 200, &grant_answer(&wallet(2))).unwrap_err();
        assert!(other.contains("not 0x"), "{other}");
        let denied = judge(&expect, 200, &denial("no_entitlement")).unwrap_err();
        assert!(denied.starts_with("deny no_entitlement"), "{denied}");
        assert!(judge(&expect, 200, &credit_answer(&a, "10", "pending")).is_err());
        assert!(judge(&expect, 401, &grant_answer(&a)).is_err());
        assert!(judge(&expect, 200, b"not json").is_err());
        let no_grant = serde_json::to_vec(
            &json!({ "decision": "allow", "reason": "grant", "wallet": a, "session": null }),
        )
        .unwrap();
        assert!(judge(&expect, 200, &no_grant).is_err());
    }

    #[test]
    fn a_credit_check_must_hold_the_amount_and_answers_the_reservation() {
        let a = wallet(7);
        let expect = Expect::Credit {
            wallet: a.as_str().into(),
            amount: "10".into(),
        };
        assert_eq!(
            judge(&expect, 200, &credit_answer(&a, "10", "pending")),
            Ok(Some("r-1".to_owned()))
        );
        assert!(judge(&expect, 200, &credit_answer(&a, "11", "pending")).is_err());
        assert!(judge(&expect, 200, &credit_answer(&a, "10", "committed")).is_err());
        assert!(judge(&expect, 200, &grant_answer(&a)).is_err());
        let refused = judge(&expect, 200, &denial("insufficient_credit")).unwrap_err();
        assert!(refused.contains("insufficient_credit"), "{refused}");
    }

    #[test]
    fn a_commit_must_answer_the_reservation_committed_for_the_amount() {
        let expect = Expect::Committed {
            amount: "10".into(),
        };
        let committed = |state: &str, amount: Option<&str>| {
            serde_json::to_vec(&json!({
                "id": "r-1", "wallet": wallet(1), "network": NETWORK, "asset": USDC,
                "amount": "10", "state": state, "committedAmount": amount,
            }))
            .unwrap()
        };
        assert_eq!(
            judge(&expect, 200, &committed("committed", Some("10"))),
            Ok(None)
        );
        assert!(judge(&expect, 200, &committed("committed", Some("9"))).is_err());
        assert!(judge(&expect, 200, &committed("released", None)).is_err());
        let envelope = br#"{"error":{"code":"not_found","message":"no such reservation"}}"#;
        assert!(judge(&expect, 404, envelope).is_err());
    }

    #[test]
    fn health_is_judged_by_its_exact_body() {
        assert_eq!(judge(&Expect::Healthy, 200, HEALTHY), Ok(None));
        assert!(judge(&Expect::Healthy, 200, b"{}").is_err());
        assert!(judge(&Expect::Healthy, 503, HEALTHY).is_err());
    }

    #[test]
    fn machine_time_is_the_busy_columns_of_proc_stat() {
        let stat = "cpu  100 5 20 9000 7 1 2 3 40 0\ncpu0 50 2 10 4500 3 0 1 1 20 0\n";
        // user + nice + system + irq + softirq + steal = 131 ticks of 10 ms.
        assert_eq!(parse_machine_busy(stat), Some(Duration::from_millis(1_310)));
        assert_eq!(parse_machine_busy("intr 1 2 3"), None);
        let at = |ms: u64| Some(Duration::from_millis(ms));
        let used = cpu_used(
            [at(100), at(10), None, at(1_000)],
            [at(400), at(60), None, at(1_500)],
        );
        assert_eq!(used, [at(300), at(50), None, at(150)]);
    }

    #[test]
    fn wallets_are_distinct_lower_case_addresses() {
        for n in [0, 1, 999, usize::MAX] {
            let w = wallet(n);
            assert_eq!(w.len(), 42, "{w}");
            assert!(
                w[2..]
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            );
            assert!(credit_key(&w).is_ok());
        }
        assert_ne!(wallet(1), wallet(2));
    }

    #[test]
    fn the_cold_instance_turns_the_cache_off() {
        let key = Path::new("/tmp/k.pem");
        let cached = config_extra(key, None);
        assert!(cached.contains("keys = [\"/tmp/k.pem\"]"));
        assert!(cached.contains("probe = false"));
        assert!(!cached.contains("cache_ttl_ms"));
        assert!(config_extra(key, Some(0)).contains("[entitlements]\ncache_ttl_ms = 0\n"));
    }

    #[test]
    fn calls_rotate_through_the_wallets() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let endpoint = Endpoint::new("http://127.0.0.1:9", "key", ClientKind::Raw, 1).unwrap();
        let call =
            |n: usize| endpoint.call("GET", format!("/{n}"), Vec::new(), false, Expect::Healthy);
        let calls = [call(0), call(1), call(2)];
        let paths: Vec<String> = rotate(&calls, 7)
            .iter()
            .map(|c| c.path.to_string())
            .collect();
        assert_eq!(paths, ["/0", "/1", "/2", "/0", "/1", "/2", "/0"]);
        let post = endpoint.call("POST", "/x".into(), b"{}".to_vec(), true, Expect::Healthy);
        let wire = String::from_utf8(post.wire.to_vec()).unwrap();
        assert!(wire.contains("authorization: Bearer key\r\n"), "{wire}");
        assert!(wire.ends_with("content-length: 2\r\n\r\n{}"), "{wire}");
    }
}
