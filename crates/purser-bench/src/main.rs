//! `purser-bench`: x402 throughput and latency against local anvil chains, in five suites.
//!
//! - `--suite facilitators` (the default): `/verify` and `/settle`, Purser beside a peer
//!   facilitator from crates.io, in one run on one chain (below).
//! - `--suite resource-servers`: one paid route behind Purser's gateway, behind the native axum
//!   layer and behind @x402/express with Purser as its facilitator, beside a direct call to the
//!   upstream (see `resource_servers`).
//! - `--suite entitlements`: `POST /v1/entitlements/check`, cached and cold, and credit
//!   reservations, on Purser alone with no chain (see `entitlements`).
//! - `--suite metering`: usage-event ingestion over `POST /v1/events` and through the store
//!   alone, and usage queries over a bulk-loaded table, no chain (see `metering`).
//! - `--suite routing`: a 402 with the settlement router on and off, and the router's estimates
//!   against settlement receipts, on a devnet of three kinds of chain (see `routing`).
//!
//! What one run of the facilitator suite does:
//!
//! 1. starts a devnet of one chain (anvil, automine, chain id 84532) with Purser's EIP-3009
//!    token and `--payers` funded payer accounts (one more account is the peer's signer);
//! 2. starts Purser (`purser --config … serve`, SQLite by default or a fresh PostgreSQL database
//!    with `--postgres`, after `purser tenant create` and `purser key create --role
//!    resource-server` on the same configuration) and the peer (`facilitator serve`, qntx's, with
//!    its own signer key and bearer auth), both on the devnet's chain;
//! 3. warms both up, then for each operation and concurrency measures Purser and the peer in
//!    turn (alternating which goes first), each with its own freshly signed payments (distinct
//!    payers and nonces, signed as SDK clients sign them), and checks every answer: a verify must
//!    say `isValid`, a settle `success`, and each settle phase must raise its merchant's token
//!    balance by exactly the sum settled;
//! 4. prints a Markdown table: requests per second, p50 and p99 latency, and Purser / peer
//!    ratios.
//!
//! Timings are client-side (request sent to answer read) on the same machine as anvil and both
//! servers, so they share its cores with the load generator.

mod entitlements;
mod load;
mod metering;
mod resource_servers;
mod routing;
mod rpc_count;
mod servers;
mod stats;
mod targets;
mod wire;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy::primitives::{Address, U256, keccak256};
use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use purser_devnet::payment::Payment;
use purser_devnet::{ANVIL_VERSION, Devnet, DevnetChainSpec, DevnetOptions, Mining, TestAccount};

use crate::load::Operation;
use crate::stats::{PhaseResult, cpu_time, ms};
use crate::targets::{PurserStorage, Target};

/// Benchmarks x402 on one anvil chain: `/verify` and `/settle`, Purser beside a peer facilitator
/// (`--suite facilitators`); or a paid route behind Purser's gateway, the native axum layer and
/// @x402/express, beside a direct call (`--suite resource-servers`); or, with no chain, Purser's
/// entitlement check (`--suite entitlements`) or its metering (`--suite metering`).
#[derive(Debug, Parser)]
#[command(name = "purser-bench")]
struct Args {
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Suite::Facilitators)]
    suite: Suite,
    /// The `purser` binary (build it with `cargo build --release -p purser`).
    #[arg(long, value_name = "FILE", default_value_os_t = default_purser())]
    purser: PathBuf,
    /// The peer's binary: `facilitator` from crates.io (qntx/facilitator).
    #[arg(long, value_name = "FILE", default_value_os_t = default_peer())]
    peer: PathBuf,
    /// Measure Purser alone.
    #[arg(long)]
    no_peer: bool,
    /// Purser on a fresh PostgreSQL database on the server at `DATABASE_URL` (default
    /// `postgres://postgres@127.0.0.1:5432/test`) instead of the embedded SQLite.
    #[arg(long)]
    postgres: bool,
    /// Purser's coordination on the Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`,
    /// under a key prefix of the run's own) instead of in its process.
    #[arg(long)]
    redis: bool,
    /// Purser's `[rate_limits]`: `enforced` counts every request against limits set above
    /// any load the harness makes (what a production instance pays for them), `off` disables
    /// them, `absent` writes no table, for a `purser` older than rate limits (which then also
    /// serves without migrating: the harness migrates the database with its own, newer, list).
    #[arg(long, value_enum, default_value_t = RateLimits::Enforced)]
    rate_limits: RateLimits,
    /// Measured `/verify` requests per target and concurrency (facilitators).
    #[arg(long, default_value_t = 2_000)]
    verify_requests: usize,
    /// Measured `/settle` requests per target and concurrency (facilitators).
    #[arg(long, default_value_t = 200)]
    settle_requests: usize,
    /// Measured requests to an unpriced route per server and concurrency (resource-servers;
    /// 0 leaves the path out).
    #[arg(long, default_value_t = 2_000)]
    unpriced_requests: usize,
    /// Measured requests without payment, answered 402, per server and concurrency
    /// (resource-servers; 0 leaves the path out).
    #[arg(long, default_value_t = 2_000)]
    challenge_requests: usize,
    /// Measured paid requests per server and concurrency (resource-servers; 0 leaves the path
    /// out).
    #[arg(long, default_value_t = 400)]
    paid_requests: usize,
    /// Measured requests of a payer that paid before, signed in with its session token, per
    /// server and concurrency (resource-servers; 0 leaves the path out).
    #[arg(long, default_value_t = 2_000)]
    entitled_requests: usize,
    /// Each server's requests of a group are sent in this many slices, the servers taking turns
    /// slice by slice, so that none meets the chain older than the others (resource-servers).
    #[arg(long, default_value_t = 4)]
    slices: usize,
    /// node, for the @x402/express server (resource-servers).
    #[arg(long, value_name = "FILE", default_value = "node")]
    node: PathBuf,
    /// The @x402/express server's script, next to its installed SDK (resource-servers).
    #[arg(long, value_name = "FILE", default_value_os_t = workspace_root().join("tests/interop/bench-express.mjs"))]
    express_script: PathBuf,
    /// Requests in flight, one phase per value.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1usize, 16])]
    concurrency: Vec<usize>,
    /// Unmeasured requests per target first: `/verify`, or unpriced and challenge requests
    /// (settles and paid requests warm up with a tenth as many); for entitlements, the credit
    /// cycles before the measured ones (every wallet's grant is checked once regardless).
    #[arg(long, default_value_t = 200)]
    warmup: usize,
    /// Payments settled to compare the router's estimates with receipts (routing).
    #[arg(long, default_value_t = 90)]
    settlements: usize,
    /// Funded payer accounts the payments come from, round-robin.
    #[arg(long, default_value_t = 32)]
    payers: usize,
    /// Atomic units of each payment (the token has 6 decimals).
    #[arg(long, default_value_t = 10_000)]
    value: u128,
    /// Keep the run's files (configurations, logs, databases) here instead of a temporary folder.
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// Put a counting proxy between each facilitator and anvil and report the JSON-RPC calls
    /// per request (a diagnostic: the proxy's hop adds latency).
    #[arg(long)]
    count_rpc: bool,
    /// Wallets with a grant and credit, one session token each; requests rotate through them
    /// (entitlements).
    #[arg(long, default_value_t = 1_000)]
    wallets: usize,
    /// Measured cached grant checks per concurrency (entitlements).
    #[arg(long, default_value_t = 100_000)]
    cached_requests: usize,
    /// Measured `GET /healthz` requests per concurrency of the cached checks, the ceiling of the
    /// same client and middleware (entitlements; 0 leaves them out).
    #[arg(long, default_value_t = 100_000)]
    ceiling_requests: usize,
    /// Measured grant checks per concurrency with `cache_ttl_ms = 0` (entitlements; 0 leaves
    /// them out).
    #[arg(long, default_value_t = 20_000)]
    cold_requests: usize,
    /// Measured credit cycles (a check reserving `--reserve`, then its commit) per concurrency
    /// (entitlements; 0 leaves them out).
    #[arg(long, default_value_t = 5_000)]
    credit_requests: usize,
    /// Concurrencies of the cached checks (entitlements).
    #[arg(long, value_delimiter = ',', default_values_t = vec![1usize, 16, 64])]
    cached_concurrency: Vec<usize>,
    /// Concurrencies of the cold checks (entitlements).
    #[arg(long, value_delimiter = ',', default_values_t = vec![1usize, 16])]
    cold_concurrency: Vec<usize>,
    /// Concurrencies of the credit cycles (entitlements).
    #[arg(long, value_delimiter = ',', default_values_t = vec![1usize, 16])]
    credit_concurrency: Vec<usize>,
    /// Atomic units each credit check reserves and each commit spends (entitlements).
    #[arg(long, default_value_t = 10)]
    reserve: u128,
    /// The load generator's HTTP client (entitlements).
    #[arg(long, value_enum, default_value_t = entitlements::ClientKind::Raw)]
    client: entitlements::ClientKind,
    /// Also write every request's latency here, as CSV.
    #[arg(long, value_name = "FILE")]
    samples: Option<PathBuf>,
    /// The metering suite's options.
    #[command(flatten)]
    metering: metering::MeteringArgs,
    /// The servers the resource-server suite starts as child processes of the harness.
    #[command(subcommand)]
    serve: Option<Serve>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RateLimits {
    Enforced,
    Off,
    Absent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Suite {
    /// `/verify` and `/settle`: Purser beside a peer facilitator.
    Facilitators,
    /// A paid route behind the gateway, the native layer and @x402/express, beside a direct
    /// call to its upstream.
    ResourceServers,
    /// `POST /v1/entitlements/check` (cached, cold, credit reservations), no chain.
    Entitlements,
    /// `POST /v1/events` and the store's ingestion, and usage queries over a bulk load, no
    /// chain.
    Metering,
    /// The settlement router: a 402 with routing on and off, and its estimates against
    /// receipts, on a devnet of three kinds of chain.
    Routing,
}

/// Internal: the resource-server suite runs these in child processes of its own.
#[derive(Debug, Subcommand)]
enum Serve {
    /// The upstream: the same JSON for every request.
    #[command(hide = true)]
    ServeUpstream {
        #[arg(long)]
        listen: String,
    },
    /// An axum app with purser-axum's paywall on `GET /data`.
    #[command(hide = true)]
    ServeNative(servers::NativeArgs),
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `purser` in the release folder of `CARGO_TARGET_DIR` (relative to the workspace, as cargo
/// reads it) or of the workspace's `target`.
fn default_purser() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || workspace_root().join("target"),
        |dir| workspace_root().join(dir),
    );
    target.join("release/purser")
}

fn default_peer() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache/purser/peers/facilitator/bin/facilitator")
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    targets::set_shared_config(shared_config(&args), args.rate_limits != RateLimits::Absent);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match (&args.serve, args.suite) {
        (Some(Serve::ServeUpstream { listen }), _) => {
            runtime.block_on(servers::serve_upstream(listen))
        }
        (Some(Serve::ServeNative(native)), _) => runtime.block_on(servers::serve_native(native)),
        (None, Suite::Facilitators) => runtime.block_on(run(args)),
        (None, Suite::ResourceServers) => runtime.block_on(resource_servers::run(args)),
        (None, Suite::Entitlements) => runtime.block_on(entitlements::run(args)),
        (None, Suite::Metering) => runtime.block_on(metering::run(args)),
        (None, Suite::Routing) => runtime.block_on(routing::run(args)),
    }
}

/// What every `purser` the run starts is configured with besides its own settings: its
/// coordination and its rate limits.
fn shared_config(args: &Args) -> String {
    let mut toml = String::new();
    if args.redis {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let prefix = format!("purser-bench-{}:", std::process::id());
        toml.push_str(&format!(
            "[coordination]\nredis_url = {url:?}\nkey_prefix = {prefix:?}\n\n"
        ));
    }
    match args.rate_limits {
        // One a microsecond, the most a limit may be: never reached by this harness, so every
        // request is counted (in leases) and none refused.
        RateLimits::Enforced => toml.push_str(
            "[rate_limits]\nper_address_per_minute = 60000000\nper_key_per_minute = 60000000\n\
             per_tenant_per_minute = 60000000\n\n",
        ),
        RateLimits::Off => toml.push_str("[rate_limits]\nenabled = false\n\n"),
        RateLimits::Absent => {}
    }
    toml
}

/// The devnet of one chain (anvil, automine, chain id 84532) with Purser's EIP-3009 token,
/// `--payers` funded payers and one more funded account, its files in `dir/devnet`.
async fn start_devnet(args: &Args, dir: &Path) -> anyhow::Result<Devnet> {
    eprintln!("starting the devnet (one anvil chain, automine)");
    let devnet = Devnet::start(DevnetOptions {
        chains: vec![DevnetChainSpec::base_sepolia()],
        payer_accounts: args.payers + 1,
        canonical_usdc: false,
        mining: Mining::Auto,
        repo_root: Some(workspace_root()),
        ..DevnetOptions::default()
    })
    .await
    .context("starting the devnet")?;
    devnet.write_files(&dir.join("devnet"))?;
    Ok(devnet)
}

/// The run's folder: `--work-dir` (kept afterwards), or a temporary one that lives as long as
/// the guard answered beside it.
fn run_dir(args: &Args) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
    match &args.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            Ok((dir.canonicalize()?, None))
        }
        None => {
            let scratch = tempfile::tempdir()?;
            Ok((scratch.path().to_owned(), Some(scratch)))
        }
    }
}

/// The workspace's commit, for reports.
fn commit() -> String {
    std::process::Command::new("git")
        .args([
            "-C",
            &workspace_root().to_string_lossy(),
            "rev-parse",
            "--short=12",
            "HEAD",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// One merchant per target, so each target's settlements can be counted on chain.
fn merchant(target: &str) -> Address {
    Address::from_word(keccak256(format!("purser-bench merchant {target}")))
}

struct Bench<'a> {
    args: &'a Args,
    devnet: &'a Devnet,
    payers: &'a [TestAccount],
    client: reqwest::Client,
    next_payer: usize,
}

impl Bench<'_> {
    /// `count` freshly signed payments to `pay_to`, as `/verify` or `/settle` bodies.
    fn bodies(&mut self, count: usize, pay_to: Address) -> Vec<Vec<u8>> {
        let chain = &self.devnet.chains()[0];
        (0..count)
            .map(|_| {
                let payer = &self.payers[self.next_payer % self.payers.len()];
                self.next_payer += 1;
                let mut payment = Payment::new(chain, payer, pay_to, self.args.value);
                // Valid for an hour rather than the SDK's usual minutes: a slow phase must not
                // see its last authorizations expire before it reaches them.
                payment.valid_before = purser_devnet::payment::now() + 3_600;
                serde_json::to_vec(&payment.body(payer, chain.chain_id()))
                    .expect("a body serializes")
            })
            .collect()
    }

    async fn balance(&self, owner: Address) -> anyhow::Result<U256> {
        Ok(self.devnet.chains()[0].balance_of(owner).await?)
    }

    /// One measured phase; for settles, also the on-chain check.
    async fn phase(
        &mut self,
        target: &Target,
        operation: Operation,
        requests: usize,
        concurrency: usize,
    ) -> anyhow::Result<Measured> {
        let pay_to = merchant(&target.name);
        let bodies = self.bodies(requests, pay_to);
        let before = self.balance(pay_to).await?;
        let processes = [
            target.pid(),
            Some(self.devnet.chains()[0].pid()),
            Some(std::process::id()),
        ];
        let cpu_before = processes.map(|pid| pid.and_then(cpu_time));
        let rpc_before = target.rpc.as_ref().map(|proxy| proxy.snapshot());
        let url = match operation {
            Operation::Verify => target.verify_url(),
            Operation::Settle => target.settle_url(),
        };
        let result = load::run(
            &self.client,
            operation,
            &url,
            &target.bearer,
            bodies,
            concurrency,
        )
        .await;
        let cpu_after = processes.map(|pid| pid.and_then(cpu_time));
        let rpc = target
            .rpc
            .as_ref()
            .zip(rpc_before)
            .map(|(proxy, before)| rpc_count::difference(&before, &proxy.snapshot()));
        let cpu = std::array::from_fn(|i| match (cpu_before[i], cpu_after[i]) {
            (Some(b), Some(a)) => Some(a.saturating_sub(b)),
            _ => None,
        });
        let mut chain_check = None;
        if operation == Operation::Settle {
            let after = self.balance(pay_to).await?;
            let expected = U256::from(self.args.value) * U256::from(result.ok);
            let rose = after - before;
            chain_check = Some((rose, expected));
        }
        eprintln!(
            "  {:<11} {:<6} c={:<3} {:>5} req  {:>8.1} req/s  p50 {:>8} ms  p99 {:>8} ms  failed {}",
            target.name,
            operation.name(),
            concurrency,
            result.requests,
            result.throughput(),
            ms(result.p50()),
            ms(result.p99()),
            result.failed(),
        );
        for failure in &result.failures {
            eprintln!("      failure: {failure}");
        }
        Ok(Measured {
            target: target.name.clone(),
            operation,
            concurrency,
            result,
            chain_check,
            cpu,
            rpc,
        })
    }

    /// Unmeasured traffic first: connections, caches, the database's first pages.
    async fn warm_up(&mut self, target: &Target) -> anyhow::Result<()> {
        let warmup = self.args.warmup;
        if warmup == 0 {
            return Ok(());
        }
        let verify = self.bodies(warmup, merchant(&target.name));
        let result = load::run(
            &self.client,
            Operation::Verify,
            &target.verify_url(),
            &target.bearer,
            verify,
            16,
        )
        .await;
        let settle = self.bodies((warmup / 10).max(1), merchant(&target.name));
        let settled = load::run(
            &self.client,
            Operation::Settle,
            &target.settle_url(),
            &target.bearer,
            settle,
            4,
        )
        .await;
        eprintln!(
            "  warmed up {}: {}/{} verified, {}/{} settled",
            target.name, result.ok, result.requests, settled.ok, settled.requests
        );
        if let Some(failure) = result.failures.first().or(settled.failures.first()) {
            bail!("{} fails while warming up: {failure}", target.name);
        }
        Ok(())
    }
}

struct Measured {
    target: String,
    operation: Operation,
    concurrency: usize,
    result: PhaseResult,
    /// For settles: (how much the merchant's balance rose, what the successes add up to).
    chain_check: Option<(U256, U256)>,
    /// CPU time used during the phase by the target, anvil and this harness.
    cpu: [Option<Duration>; 3],
    /// JSON-RPC calls made during the phase, by method (`--count-rpc`).
    rpc: Option<rpc_count::Counts>,
}

async fn run(args: Args) -> anyhow::Result<()> {
    if !args.purser.is_file() {
        bail!(
            "no purser binary at {} (cargo build --release -p purser)",
            args.purser.display()
        );
    }
    if !args.no_peer && !args.peer.is_file() {
        bail!(
            "no peer binary at {}: cargo install facilitator --locked --no-default-features \
             --features evm --root ~/.cache/purser/peers/facilitator, or pass --no-peer",
            args.peer.display()
        );
    }
    let (dir, _scratch) = run_dir(&args)?;

    let devnet = start_devnet(&args, &dir).await?;
    let devnet_dir = dir.join("devnet");
    let all_payers = &devnet.accounts().payers;
    // The last funded account signs the peer's settlements and never pays.
    let (payers, peer_signer) = all_payers.split_at(args.payers);
    let peer_signer = &peer_signer[0];

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency.iter().copied().max().unwrap_or(1).max(16))
        .timeout(load::REQUEST_TIMEOUT)
        .build()?;

    let database = if args.postgres {
        Some(purser_testkit::postgres::TestDatabase::create().await)
    } else {
        None
    };
    let storage = match &database {
        Some(db) => PurserStorage::Postgres(db.url().to_owned()),
        None => PurserStorage::Sqlite,
    };
    let counter = || async {
        if args.count_rpc {
            rpc_count::RpcCounter::start(devnet.chains()[0].rpc_url())
                .await
                .map(Some)
        } else {
            Ok(None)
        }
    };
    eprintln!("starting Purser ({})", args.purser.display());
    let purser = targets::start_purser(
        &args.purser,
        &dir,
        &devnet,
        &devnet_dir,
        &storage,
        counter().await?,
        &client,
    )
    .await?;
    let peer = if args.no_peer {
        None
    } else {
        eprintln!("starting the peer ({})", args.peer.display());
        Some(
            targets::start_peer(
                &args.peer,
                &dir,
                &devnet,
                peer_signer,
                counter().await?,
                &client,
            )
            .await?,
        )
    };
    let mut all = vec![&purser];
    all.extend(peer.as_ref());
    for target in &all {
        eprintln!(
            "  {} ({}) at {}, log {}",
            target.name,
            target.version,
            target.base,
            target.log.display()
        );
    }

    let mut bench = Bench {
        args: &args,
        devnet: &devnet,
        payers,
        client: client.clone(),
        next_payer: 0,
    };
    eprintln!("warming up");
    for target in &all {
        bench.warm_up(target).await?;
    }
    let mut measured = Vec::new();
    let mut round = 0usize;
    for (operation, requests) in [
        (Operation::Verify, args.verify_requests),
        (Operation::Settle, args.settle_requests),
    ] {
        for &concurrency in &args.concurrency {
            eprintln!("{} at concurrency {concurrency}", operation.name());
            // Alternate who goes first, so neither always meets the chain in the same state.
            let mut order = all.clone();
            if round % 2 == 1 {
                order.reverse();
            }
            round += 1;
            for target in order {
                measured.push(
                    bench
                        .phase(target, operation, requests, concurrency)
                        .await?,
                );
            }
        }
    }

    if let Some(path) = &args.samples {
        let mut csv = String::from("target,operation,concurrency,latency_ms\n");
        for m in &measured {
            for latency in &m.result.latencies {
                let _ = writeln!(
                    csv,
                    "{},{},{},{:.3}",
                    m.target,
                    m.operation.name(),
                    m.concurrency,
                    latency.as_secs_f64() * 1_000.0
                );
            }
        }
        std::fs::write(path, csv).with_context(|| format!("writing {}", path.display()))?;
    }
    let anvil = devnet.manifest().anvil;
    let report = report(&args, &purser, peer.as_ref(), &anvil, &measured);
    println!("{report}");

    purser.stop().await;
    if let Some(peer) = peer {
        peer.stop().await;
    }
    drop(database);
    let failures: usize = measured.iter().map(|m| m.result.failed()).sum();
    let mismatches = measured
        .iter()
        .filter(|m| {
            m.chain_check
                .is_some_and(|(rose, expected)| rose != expected)
        })
        .count();
    if failures > 0 || mismatches > 0 {
        bail!(
            "{failures} failed request(s), {mismatches} settle phase(s) whose balance did not add up"
        );
    }
    Ok(())
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "–".to_owned()
    }
}

fn report(
    args: &Args,
    purser: &Target,
    peer: Option<&Target>,
    anvil: &Path,
    measured: &[Measured],
) -> String {
    let mut out = String::new();
    let commit = commit();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = writeln!(out, "purser-bench: {cores} cores");
    let _ = writeln!(
        out,
        "- Purser: {} (commit {commit}), storage {}",
        purser.version,
        if args.postgres {
            "PostgreSQL"
        } else {
            "SQLite (embedded)"
        }
    );
    if let Some(peer) = peer {
        let _ = writeln!(
            out,
            "- peer: {} (crates.io `facilitator`, r402)",
            peer.version
        );
    }
    let _ = writeln!(
        out,
        "- anvil {ANVIL_VERSION} ({}), one chain (84532), automine",
        anvil.display()
    );
    let _ = writeln!(
        out,
        "- {} verify and {} settle requests per target and concurrency, after {} verify and {} settle warm-up requests",
        args.verify_requests,
        args.settle_requests,
        args.warmup,
        (args.warmup / 10).max(1)
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| operation | concurrency | Purser req/s | peer req/s | ratio | Purser p50 ms | peer p50 ms | ratio | Purser p99 ms | peer p99 ms | ratio | failures (Purser / peer) |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    let find = |name: &str, op: Operation, c: usize| {
        measured
            .iter()
            .find(|m| m.target == name && m.operation == op && m.concurrency == c)
    };
    for op in [Operation::Verify, Operation::Settle] {
        for &c in &args.concurrency {
            let Some(p) = find(&purser.name, op, c) else {
                continue;
            };
            let q = peer.and_then(|peer| find(&peer.name, op, c));
            let dash = || "–".to_owned();
            let (pr, pp50, pp99) = (p.result.throughput(), p.result.p50(), p.result.p99());
            let _ = writeln!(
                out,
                "| /{} | {c} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} |",
                op.name(),
                pr,
                q.map_or_else(dash, |q| format!("{:.1}", q.result.throughput())),
                q.map_or_else(dash, |q| ratio(pr, q.result.throughput())),
                ms(pp50),
                q.map_or_else(dash, |q| ms(q.result.p50())),
                q.map_or_else(dash, |q| ratio(
                    pp50.as_secs_f64(),
                    q.result.p50().as_secs_f64()
                )),
                ms(pp99),
                q.map_or_else(dash, |q| ms(q.result.p99())),
                q.map_or_else(dash, |q| ratio(
                    pp99.as_secs_f64(),
                    q.result.p99().as_secs_f64()
                )),
                p.result.failed(),
                q.map_or_else(dash, |q| q.result.failed().to_string()),
            );
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Ratios are Purser / peer: above 1 means Purser has more throughput, or higher latency."
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "CPU time per request (ms; user + system, from /proc, 10 ms resolution over the phase):"
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| operation | concurrency | target | server | anvil | load generator |"
    );
    let _ = writeln!(out, "|---|---:|---|---:|---:|---:|");
    for m in measured {
        let per_request = |cpu: Option<Duration>| {
            cpu.map_or_else(
                || "–".to_owned(),
                |cpu| {
                    format!(
                        "{:.3}",
                        cpu.as_secs_f64() * 1_000.0 / m.result.requests.max(1) as f64
                    )
                },
            )
        };
        let _ = writeln!(
            out,
            "| /{} | {} | {} | {} | {} | {} |",
            m.operation.name(),
            m.concurrency,
            m.target,
            per_request(m.cpu[0]),
            per_request(m.cpu[1]),
            per_request(m.cpu[2]),
        );
    }
    if measured.iter().any(|m| m.rpc.is_some()) {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "JSON-RPC calls per request (through the counting proxy):"
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "| operation | concurrency | target | calls | by method |"
        );
        let _ = writeln!(out, "|---|---:|---|---:|---|");
        for m in measured {
            let Some(rpc) = &m.rpc else { continue };
            let n = m.result.requests.max(1) as f64;
            let total: u64 = rpc.values().sum();
            let by_method: Vec<String> = rpc
                .iter()
                .map(|(method, calls)| format!("{method} {:.2}", *calls as f64 / n))
                .collect();
            let _ = writeln!(
                out,
                "| /{} | {} | {} | {:.2} | {} |",
                m.operation.name(),
                m.concurrency,
                m.target,
                total as f64 / n,
                by_method.join(", ")
            );
        }
    }
    let _ = writeln!(out);
    for m in measured {
        if let Some((rose, expected)) = m.chain_check {
            let _ = writeln!(
                out,
                "- settle {} c={}: {} of {} succeeded; merchant balance rose {rose}, expected {expected} ({})",
                m.target,
                m.concurrency,
                m.result.ok,
                m.result.requests,
                if rose == expected { "ok" } else { "MISMATCH" }
            );
        }
    }
    out
}
