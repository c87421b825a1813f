//! `purser-bench --suite resource-servers`: one route sold three ways, beside a direct call to
//! the upstream that answers it, in one run on one anvil chain:
//!
//! - **direct**: `GET /data` on the upstream itself (an axum app answering the same JSON for
//!   every request), the baseline every "added" latency is measured over;
//! - **gateway**: Purser's gateway in front of that upstream, the route priced by a registry
//!   resource (tenant and `resource_server` key made with the CLI, payout address and resource
//!   through GraphQL with a `tenant_admin` key);
//! - **native**: an axum app with `purser-axum`'s paywall on `GET /data` (an `ExactPrice`),
//!   verifying and settling through Purser's facilitator with the `resource_server` key;
//! - **express**: an @x402/express app (the reference SDK's `paymentMiddleware` with
//!   `ExactEvmScheme`) whose `HTTPFacilitatorClient` points at Purser's facilitator with the
//!   same key.
//!
//! Every server answers the same body, for the same price, on the same token. What is measured,
//! path by path (see [`PathKind`]): an unpriced route, the challenge (no payment, a 402) and the
//! paid path (a fresh EIP-3009 payment per request, signed for the requirements of the target's
//! own 402 as SDK clients sign them, verified and settled on anvil through Purser). Each paid
//! phase must raise that target's merchant balance by exactly the sum settled.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use anyhow::{Context, anyhow, bail, ensure};
use purser_devnet::payment::{Payment, now, random_nonce};
use purser_devnet::{ANVIL_VERSION, Devnet, TestAccount};
use purser_x402::PaymentRequired;
use purser_x402::header::{
    PAYMENT_REQUIRED, PAYMENT_RESPONSE, PAYMENT_SIGNATURE, decode_payment_required,
    decode_payment_response, encode_json,
};
use serde_json::{Value, json};
use tokio::process::Command;

use crate::servers::{BODY, ChildServer, FREE_PATH, PAID_PATH};
use crate::stats::{PhaseResult, cpu_time, ms};
use crate::targets::{PurserSetup, PurserStorage, Target, free_port};
use crate::{Args, load, merchant};

/// What a phase asks of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// A route without a price: what the server costs before payments come in.
    Unpriced,
    /// No payment: a 402 with `PAYMENT-REQUIRED`.
    Challenge,
    /// A fresh payment per request: verified, the handler run, settled on chain, 200 with a
    /// successful `PAYMENT-RESPONSE`.
    Paid,
    /// A payer that paid before comes back with the session token its sign-in earned
    /// (`X-Purser-Session`): the grant is looked up and counted, no payment, 200 without a
    /// settlement. Only the gateway has entitlements; the others have no such path.
    Entitled,
}

impl PathKind {
    /// In order: the paid phases make the grants the entitled ones use.
    const ALL: [PathKind; 4] = [
        PathKind::Unpriced,
        PathKind::Challenge,
        PathKind::Paid,
        PathKind::Entitled,
    ];

    fn name(self) -> &'static str {
        match self {
            PathKind::Unpriced => "unpriced",
            PathKind::Challenge => "challenge (402)",
            PathKind::Paid => "paid",
            PathKind::Entitled => "entitled (session)",
        }
    }

    fn requests(self, args: &Args) -> usize {
        match self {
            PathKind::Unpriced => args.unpriced_requests,
            PathKind::Challenge => args.challenge_requests,
            PathKind::Paid => args.paid_requests,
            PathKind::Entitled => args.entitled_requests,
        }
    }
}

/// Which server a phase measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Direct,
    Gateway,
    Native,
    Express,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Direct => "direct",
            Kind::Gateway => "gateway",
            Kind::Native => "native",
            Kind::Express => "express",
        }
    }

    /// The path this server is asked on for `path`; `None` when it has no such route. The
    /// direct call is the same plain request in every group, the baseline of that group. The
    /// gateway prices every route it proxies, so it has no unpriced one.
    fn route(self, path: PathKind) -> Option<&'static str> {
        match (self, path) {
            (Kind::Direct, _) => Some(PAID_PATH),
            (Kind::Gateway, PathKind::Unpriced) => None,
            (_, PathKind::Unpriced) => Some(FREE_PATH),
            (_, PathKind::Challenge | PathKind::Paid) => Some(PAID_PATH),
            (Kind::Gateway, PathKind::Entitled) => Some(PAID_PATH),
            (_, PathKind::Entitled) => None,
        }
    }

    /// What the request must get back: a 402 when it is not paid for, otherwise the body.
    fn expects(self, path: PathKind) -> PathKind {
        match self {
            Kind::Direct => PathKind::Unpriced,
            _ => path,
        }
    }
}

/// A server under test and the processes whose CPU its requests cost.
struct Server {
    kind: Kind,
    base: String,
    /// The process the client talks to.
    front: Option<u32>,
    /// Purser, when it is not the front (it verifies and settles for the native and express
    /// apps).
    facilitator: Option<u32>,
    /// The upstream, when the request goes through it.
    upstream: Option<u32>,
    /// Where its paid requests' money goes; `None` when nothing is paid.
    pay_to: Option<Address>,
}

struct Measured {
    server: Kind,
    path: PathKind,
    concurrency: usize,
    result: PhaseResult,
    /// For paid phases: (how much the merchant's balance rose, what the successes add up to).
    chain_check: Option<(U256, U256)>,
    /// CPU used during the phase: front, facilitator, upstream, anvil, load generator.
    cpu: [Option<Duration>; 5],
}

impl Measured {
    /// The slices of one server's phase as one.
    fn merge(parts: Vec<Measured>) -> Measured {
        let first = &parts[0];
        let (server, path, concurrency) = (first.server, first.path, first.concurrency);
        let mut chain_check = None;
        let mut cpu = [Some(Duration::ZERO); 5];
        let mut results = Vec::new();
        for part in parts {
            chain_check = match (chain_check, part.chain_check) {
                (None, check) => check,
                (Some((rose, expected)), Some((r, e))) => Some((rose + r, expected + e)),
                (Some(sum), None) => Some(sum),
            };
            for (total, used) in cpu.iter_mut().zip(part.cpu) {
                *total = total.zip(used).map(|(t, u)| t + u);
            }
            results.push(part.result);
        }
        Measured {
            server,
            path,
            concurrency,
            result: PhaseResult::merge(results),
            chain_check,
            cpu,
        }
    }

    fn print(&self) {
        let result = &self.result;
        eprintln!(
            "  {:<8} {:<15} c={:<3} {:>5} req  {:>8.1} req/s  p50 {:>8} ms  p99 {:>8} ms  failed {}",
            self.server.name(),
            self.path.name(),
            self.concurrency,
            result.requests,
            result.throughput(),
            ms(result.p50()),
            ms(result.p99()),
            result.failed(),
        );
        for failure in &result.failures {
            eprintln!("      failure: {failure}");
        }
    }
}

struct Running {
    purser: Target,
    /// The gateway's base URL (Purser's second listener).
    gateway: String,
    upstream: ChildServer,
    native: ChildServer,
    express: ChildServer,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if !args.purser.is_file() {
        bail!(
            "no purser binary at {} (cargo build --release -p purser)",
            args.purser.display()
        );
    }
    if !args.express_script.is_file() {
        bail!("no express script at {}", args.express_script.display());
    }
    if !args
        .express_script
        .with_file_name("node_modules/@x402/express")
        .is_dir()
    {
        bail!(
            "the x402 SDK is not installed next to {}: cd tests/interop && npm ci",
            args.express_script.display()
        );
    }
    let (dir, _scratch) = crate::run_dir(&args)?;
    let devnet = crate::start_devnet(&args, &dir).await?;
    let devnet_dir = dir.join("devnet");
    let payers = &devnet.accounts().payers[..args.payers];
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

    let running = start_servers(&args, &dir, &devnet, &devnet_dir, &storage, &client).await?;
    let chain = &devnet.chains()[0];
    let anvil_pid = chain.pid();
    let purser_pid = running.purser.pid();
    let upstream_pid = running.upstream.pid();
    let servers = [
        Server {
            kind: Kind::Direct,
            base: running.upstream.url.clone(),
            front: upstream_pid,
            facilitator: None,
            upstream: None,
            pay_to: None,
        },
        Server {
            kind: Kind::Gateway,
            base: running.gateway.clone(),
            front: purser_pid,
            facilitator: None,
            upstream: upstream_pid,
            pay_to: Some(merchant("gateway")),
        },
        Server {
            kind: Kind::Native,
            base: running.native.url.clone(),
            front: running.native.pid(),
            facilitator: purser_pid,
            upstream: None,
            pay_to: Some(merchant("native")),
        },
        Server {
            kind: Kind::Express,
            base: running.express.url.clone(),
            front: running.express.pid(),
            facilitator: purser_pid,
            upstream: None,
            pay_to: Some(merchant("express")),
        },
    ];

    let mut bench = Bench {
        args: &args,
        devnet: &devnet,
        payers,
        client: client.clone(),
        next_payer: 0,
        anvil_pid,
    };
    eprintln!("warming up");
    for server in &servers {
        bench.warm_up(server).await?;
    }
    let mut measured = Vec::new();
    let mut round = 0usize;
    for path in PathKind::ALL {
        if path.requests(&args) == 0 {
            continue;
        }
        for &concurrency in &args.concurrency {
            eprintln!("{} at concurrency {concurrency}", path.name());
            let group: Vec<&Server> = servers
                .iter()
                .filter(|s| s.kind.route(path).is_some())
                .collect();
            let requests = path.requests(&args);
            let slices = args.slices.clamp(1, requests);
            let mut parts: Vec<Vec<Measured>> = group.iter().map(|_| Vec::new()).collect();
            for slice in 0..slices {
                let count = requests / slices + usize::from(slice < requests % slices);
                // Take turns slice by slice, starting with another server each time and
                // alternating the direction, so that none always meets the chain older (anvil
                // spends more per transaction as its chain grows) or the machine busier.
                let mut order: Vec<usize> = (0..group.len()).collect();
                order.rotate_left(slice % group.len());
                if round % 2 == 1 {
                    order.reverse();
                }
                round += 1;
                for i in order {
                    parts[i].push(bench.phase(group[i], path, concurrency, count).await?);
                }
            }
            for part in parts {
                let merged = Measured::merge(part);
                merged.print();
                measured.push(merged);
            }
        }
    }

    if let Some(path) = &args.samples {
        let mut csv = String::from("target,path,concurrency,latency_ms\n");
        for m in &measured {
            for latency in &m.result.latencies {
                let _ = writeln!(
                    csv,
                    "{},{},{},{:.3}",
                    m.server.name(),
                    m.path.name(),
                    m.concurrency,
                    latency.as_secs_f64() * 1_000.0
                );
            }
        }
        std::fs::write(path, csv).with_context(|| format!("writing {}", path.display()))?;
    }
    let express_version = sdk_version(&args);
    println!(
        "{}",
        report(
            &args,
            &running.purser.version,
            &express_version,
            &devnet,
            &measured
        )
    );

    running.purser.stop().await;
    running.upstream.stop().await;
    running.native.stop().await;
    running.express.stop().await;
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
            "{failures} failed request(s), {mismatches} paid phase(s) whose balance did not add up"
        );
    }
    Ok(())
}

/// Starts the upstream, Purser (set up, then serving with the gateway route), the native app
/// and the express app.
async fn start_servers(
    args: &Args,
    dir: &std::path::Path,
    devnet: &Devnet,
    devnet_dir: &std::path::Path,
    storage: &PurserStorage,
    client: &reqwest::Client,
) -> anyhow::Result<Running> {
    let chain = &devnet.chains()[0];
    let token = chain.token();
    let me = std::env::current_exe().context("finding the harness's own binary")?;

    let upstream_port = free_port()?;
    let mut command = Command::new(&me);
    command.args([
        "serve-upstream",
        "--listen",
        &format!("127.0.0.1:{upstream_port}"),
    ]);
    let upstream = ChildServer::start(
        command,
        format!("http://127.0.0.1:{upstream_port}"),
        PAID_PATH,
        &dir.join("upstream.log"),
        client,
    )
    .await
    .context("the upstream")?;
    eprintln!(
        "  upstream at {}, log {}",
        upstream.url,
        upstream.log.display()
    );

    eprintln!("setting up Purser ({})", args.purser.display());
    let setup = PurserSetup::prepare(&args.purser, dir, devnet, devnet_dir, storage, None).await?;
    let admin_key = setup
        .create_key("tenant-admin", "purser-bench setup")
        .await?;
    let gateway_port = free_port()?;
    let gateway = format!("http://127.0.0.1:{gateway_port}");
    // The resource is made through GraphQL, which needs Purser serving; the gateway route
    // names the resource, so Purser serves a second time with it.
    let purser = setup.serve(client, "").await?;
    let resource = register_resource(
        client,
        &setup.url(),
        &admin_key,
        &chain.network(),
        merchant("gateway"),
        &format!("{gateway}{PAID_PATH}"),
        args.value,
    )
    .await;
    purser.stop().await;
    let resource = resource?;
    let purser = setup
        .serve(
            client,
            &format!(
                "[gateway]\nlisten = \"127.0.0.1:{gateway_port}\"\n\n\
                 [[gateway.routes]]\npath = \"{PAID_PATH}\"\nupstream = \"{}\"\n\
                 resource = \"{resource}\"\ntimeout_seconds = 30\n",
                upstream.url
            ),
        )
        .await?;
    eprintln!(
        "  Purser ({}) at {}, gateway at {gateway} (resource {resource}), log {}",
        purser.version,
        setup.url(),
        purser.log.display()
    );

    let facilitator = format!("{}/facilitator", setup.url());
    let native_port = free_port()?;
    let mut command = Command::new(&me);
    command
        .args([
            "serve-native",
            "--listen",
            &format!("127.0.0.1:{native_port}"),
            "--facilitator",
            &facilitator,
            "--network",
            &chain.network(),
            "--asset",
            &token.address.to_checksum(None),
            "--amount",
            &args.value.to_string(),
            "--pay-to",
            &merchant("native").to_checksum(None),
            "--token-name",
            &token.name,
            "--token-version",
            &token.version,
        ])
        .env("PURSER_API_KEY", &setup.key);
    let native = ChildServer::start(
        command,
        format!("http://127.0.0.1:{native_port}"),
        FREE_PATH,
        &dir.join("native.log"),
        client,
    )
    .await
    .context("the native layer's app")?;
    eprintln!(
        "  native layer at {}, log {}",
        native.url,
        native.log.display()
    );

    let express_port = free_port()?;
    let mut command = Command::new(&args.node);
    command
        .arg(&args.express_script)
        .current_dir(args.express_script.parent().unwrap_or(dir))
        .env("PURSER_FACILITATOR_URL", &facilitator)
        .env("PURSER_API_KEY", &setup.key)
        .env("X402_NETWORK", chain.network())
        .env("X402_ASSET", token.address.to_checksum(None))
        .env("X402_ASSET_NAME", &token.name)
        .env("X402_ASSET_VERSION", &token.version)
        .env("X402_PAY_TO", merchant("express").to_checksum(None))
        .env("X402_AMOUNT", args.value.to_string())
        .env("BENCH_BODY", BODY)
        .env("BENCH_LISTEN_PORT", express_port.to_string())
        .env("NODE_ENV", "production");
    let express = ChildServer::start(
        command,
        format!("http://127.0.0.1:{express_port}"),
        FREE_PATH,
        &dir.join("express.log"),
        client,
    )
    .await
    .context("the express app")?;
    eprintln!(
        "  express at {}, log {}",
        express.url,
        express.log.display()
    );
    Ok(Running {
        purser,
        gateway,
        upstream,
        native,
        express,
    })
}

/// Sets the tenant's payout address and publishes the gateway's resource through GraphQL;
/// answers the resource's id.
async fn register_resource(
    client: &reqwest::Client,
    purser: &str,
    admin_key: &str,
    network: &str,
    pay_to: Address,
    url: &str,
    amount: u128,
) -> anyhow::Result<String> {
    graphql(
        client,
        purser,
        admin_key,
        "mutation($network: String!, $address: String!) { \
         setPayoutAddress(input: { network: $network, address: $address }) { address } }",
        json!({ "network": network, "address": pay_to.to_checksum(None) }),
    )
    .await?;
    let created = graphql(
        client,
        purser,
        admin_key,
        "mutation($input: CreateResourceInput!) { createResource(input: $input) { id status } }",
        json!({ "input": {
            "type": "HTTP",
            "url": url,
            "method": "GET",
            "name": "purser-bench data",
            "description": "The resource-server benchmark's route",
            "mimeType": "application/json",
            "price": { "amount": amount.to_string() },
            "accepts": [{ "network": network }],
            "maxTimeoutSeconds": 60,
            // A payment buys its payer a day of repeat access: the entitled path.
            "repeatAccess": { "durationSeconds": 86_400 },
            "publish": true,
        }}),
    )
    .await?;
    created["createResource"]["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("createResource answered no id: {created}"))
}

/// A GraphQL request to the Purser at `purser` with `key`: the answer's `data`, or its errors.
pub(crate) async fn graphql(
    client: &reqwest::Client,
    purser: &str,
    key: &str,
    query: &str,
    variables: Value,
) -> anyhow::Result<Value> {
    let answer: Value = client
        .post(format!("{purser}/graphql"))
        .bearer_auth(key)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await?
        .json()
        .await?;
    if let Some(errors) = answer.get("errors") {
        bail!("GraphQL answered errors: {errors}");
    }
    Ok(answer["data"].clone())
}

/// One request of a phase: the header to send (`PAYMENT-SIGNATURE`, or `X-Purser-Session`), if
/// any.
type Job = Option<(&'static str, Arc<str>)>;

/// Where a signed-in payer's session token goes.
const SESSION_HEADER: &str = "x-purser-session";

struct Bench<'a> {
    args: &'a Args,
    devnet: &'a Devnet,
    payers: &'a [TestAccount],
    client: reqwest::Client,
    next_payer: usize,
    anvil_pid: u32,
}

impl Bench<'_> {
    /// The server's 402 for its priced route, decoded.
    async fn payment_required(&self, server: &Server) -> anyhow::Result<PaymentRequired> {
        let url = format!("{}{PAID_PATH}", server.base);
        let response = self.client.get(&url).send().await?;
        ensure!(
            response.status() == 402,
            "GET {url} without payment answered {}",
            response.status()
        );
        let header = response
            .headers()
            .get(PAYMENT_REQUIRED)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| anyhow!("the 402 of {url} has no {PAYMENT_REQUIRED}"))?;
        Ok(decode_payment_required(header)?)
    }

    /// `count` `PAYMENT-SIGNATURE` headers, each a fresh payment for the first requirements the
    /// server's own 402 offers, with `resource`, `accepted` and `extensions` echoed from that
    /// 402 as SDK clients do.
    async fn payments(&mut self, server: &Server, count: usize) -> anyhow::Result<Vec<Job>> {
        let required = self.payment_required(server).await?;
        let offer = required
            .accepts
            .first()
            .ok_or_else(|| anyhow!("{} offers no way to pay", server.kind.name()))?
            .clone();
        let chain = &self.devnet.chains()[0];
        let asset: Address = offer.asset.parse()?;
        ensure!(
            asset == chain.token().address,
            "{} asks for token {asset}, not the devnet's",
            server.kind.name()
        );
        let pay_to: Address = offer.pay_to.parse()?;
        ensure!(
            Some(pay_to) == server.pay_to,
            "{} asks to pay {pay_to}, not its merchant",
            server.kind.name()
        );
        let value = offer.amount.atomic();
        Ok((0..count)
            .map(|_| {
                let payer = &self.payers[self.next_payer % self.payers.len()];
                self.next_payer += 1;
                let payment = Payment {
                    // Valid for an hour rather than the SDK's `maxTimeoutSeconds`: a slow
                    // phase must not see its last authorizations expire before it sends them.
                    valid_before: now() + 3_600,
                    nonce: random_nonce(),
                    ..Payment::new(chain, payer, pay_to, value)
                };
                let payload = payment.payload_answering(payer, chain.chain_id(), &required, &offer);
                Some((PAYMENT_SIGNATURE, Arc::from(encode_json(&payload))))
            })
            .collect())
    }

    async fn jobs(
        &mut self,
        server: &Server,
        path: PathKind,
        count: usize,
    ) -> anyhow::Result<Vec<Job>> {
        match server.kind.expects(path) {
            PathKind::Paid => self.payments(server, count).await,
            PathKind::Entitled => {
                let session: Arc<str> = self.session(server).await?.into();
                Ok(vec![Some((SESSION_HEADER, session)); count])
            }
            PathKind::Unpriced | PathKind::Challenge => Ok(vec![None; count]),
        }
    }

    /// A session token of the first payer, who paid while warming up: it answers the 402's
    /// sign-in challenge (Sign-In-With-X, EIP-191) and keeps the token the answer carries.
    async fn session(&self, server: &Server) -> anyhow::Result<String> {
        let required = self.payment_required(server).await?;
        let offer: purser_x402::siwx::SiwxOffer = serde_json::from_value(
            required
                .extensions
                .as_ref()
                .and_then(|e| e.get(purser_x402::siwx::EXTENSION))
                .cloned()
                .ok_or_else(|| anyhow!("{} offers no sign-in", server.kind.name()))?,
        )?;
        let payer = &self.payers[0];
        let chain = offer
            .supported_chains
            .first()
            .ok_or_else(|| anyhow!("the sign-in offer names no chain"))?;
        let payload = purser_entitlement::siwx::answer(&offer, chain, &payer.signer())?;
        let url = format!("{}{PAID_PATH}", server.base);
        let answer = self
            .client
            .get(&url)
            .header("sign-in-with-x", purser_x402::siwx::encode(&payload))
            .send()
            .await?;
        ensure!(
            answer.status() == 200,
            "signing in at {url} answered {}",
            answer.status()
        );
        answer
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("the sign-in at {url} answered no session token"))
    }

    /// Sends `jobs` to the server's route for `path`.
    async fn load(
        &self,
        server: &Server,
        path: PathKind,
        jobs: Vec<Job>,
        concurrency: usize,
    ) -> PhaseResult {
        let route = server.kind.route(path).expect("a measured route");
        let url: Arc<str> = format!("{}{route}", server.base).into();
        let expects = server.kind.expects(path);
        let client = self.client.clone();
        load::drive(
            jobs,
            concurrency,
            move |payment: Job| {
                let (client, url) = (client.clone(), url.clone());
                async move {
                    let mut request = client.get(&*url);
                    if let Some((name, value)) = payment {
                        request = request.header(name, &*value);
                    }
                    let response = request
                        .send()
                        .await
                        .map_err(|e| format!("request failed: {e}"))?;
                    let status = response.status().as_u16();
                    let headers = response.headers().clone();
                    let body = response
                        .bytes()
                        .await
                        .map_err(|e| format!("reading the answer failed: {e}"))?;
                    Ok((status, headers, body))
                }
            },
            move |(status, headers, body)| judge(expects, status, &headers, &body),
        )
        .await
    }

    /// One measured slice of a phase; for paid ones, also the on-chain check.
    async fn phase(
        &mut self,
        server: &Server,
        path: PathKind,
        concurrency: usize,
        requests: usize,
    ) -> anyhow::Result<Measured> {
        let jobs = self.jobs(server, path, requests).await?;
        let paid = server.kind.expects(path) == PathKind::Paid;
        let pay_to = server.pay_to.filter(|_| paid);
        let before = match pay_to {
            Some(owner) => Some(self.balance(owner).await?),
            None => None,
        };
        let processes = [
            server.front,
            server.facilitator,
            server.upstream,
            Some(self.anvil_pid),
            Some(std::process::id()),
        ];
        let cpu_before = processes.map(|pid| pid.and_then(cpu_time));
        let result = self.load(server, path, jobs, concurrency).await;
        let cpu_after = processes.map(|pid| pid.and_then(cpu_time));
        let cpu = std::array::from_fn(|i| match (cpu_before[i], cpu_after[i]) {
            (Some(b), Some(a)) => Some(a.saturating_sub(b)),
            _ => None,
        });
        let chain_check = match (pay_to, before) {
            (Some(owner), Some(before)) => {
                let after = self.balance(owner).await?;
                Some((
                    after - before,
                    U256::from(self.args.value) * U256::from(result.ok),
                ))
            }
            _ => None,
        };
        Ok(Measured {
            server: server.kind,
            path,
            concurrency,
            result,
            chain_check,
            cpu,
        })
    }

    async fn balance(&self, owner: Address) -> anyhow::Result<U256> {
        Ok(self.devnet.chains()[0].balance_of(owner).await?)
    }

    /// Unmeasured traffic first: connections, caches, the JIT, the database's first pages.
    async fn warm_up(&mut self, server: &Server) -> anyhow::Result<()> {
        let warmup = self.args.warmup;
        if warmup == 0 {
            return Ok(());
        }
        let mut summary = Vec::new();
        for path in PathKind::ALL {
            if server.kind.route(path).is_none()
                || (server.kind == Kind::Direct && path != PathKind::Unpriced)
            {
                continue;
            }
            let count = match path {
                PathKind::Paid => (warmup / 10).max(1),
                _ => warmup,
            };
            let jobs = self.jobs(server, path, count).await?;
            let result = self.load(server, path, jobs, 4).await;
            if let Some(failure) = result.failures.first() {
                bail!(
                    "{} fails on the {} path while warming up: {failure}",
                    server.kind.name(),
                    path.name()
                );
            }
            summary.push(format!("{} {}/{}", path.name(), result.ok, result.requests));
        }
        eprintln!("  warmed up {}: {}", server.kind.name(), summary.join(", "));
        Ok(())
    }
}

/// `Ok` when the answer is what `expects` calls for; otherwise why not.
fn judge(
    expects: PathKind,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) -> Result<(), String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let shown = || String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    match expects {
        PathKind::Challenge => {
            if status != 402 {
                return Err(format!("HTTP {status}, not 402: {}", shown()));
            }
            let required = header(PAYMENT_REQUIRED)
                .ok_or_else(|| format!("a 402 without {PAYMENT_REQUIRED}"))?;
            let required = decode_payment_required(required)
                .map_err(|e| format!("{PAYMENT_REQUIRED} does not decode: {e}"))?;
            if required.accepts.is_empty() {
                return Err("a 402 that accepts no payment".to_owned());
            }
            Ok(())
        }
        PathKind::Unpriced | PathKind::Paid | PathKind::Entitled => {
            if status != 200 {
                let reason = header(PAYMENT_REQUIRED)
                    .and_then(|h| decode_payment_required(h).ok())
                    .and_then(|r| r.error)
                    .unwrap_or_default();
                return Err(format!("HTTP {status} {reason}: {}", shown()));
            }
            if body != BODY.as_bytes() {
                return Err(format!("another body: {}", shown()));
            }
            if expects == PathKind::Entitled && header(PAYMENT_RESPONSE).is_some() {
                return Err("an entitled request was settled".to_owned());
            }
            if expects == PathKind::Paid {
                let settled = header(PAYMENT_RESPONSE)
                    .ok_or_else(|| format!("a paid 200 without {PAYMENT_RESPONSE}"))?;
                let settled = decode_payment_response(settled)
                    .map_err(|e| format!("{PAYMENT_RESPONSE} does not decode: {e}"))?;
                if !settled.success {
                    return Err(format!(
                        "{PAYMENT_RESPONSE} says the settlement failed: {:?} {:?}",
                        settled.error_reason, settled.error_message
                    ));
                }
            }
            Ok(())
        }
    }
}

/// The @x402/express version installed next to the script, for the report.
fn sdk_version(args: &Args) -> String {
    let manifest = args
        .express_script
        .with_file_name("node_modules/@x402/express/package.json");
    std::fs::read_to_string(manifest)
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .and_then(|json| json["version"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn report(
    args: &Args,
    purser_version: &str,
    express_version: &str,
    devnet: &Devnet,
    measured: &[Measured],
) -> String {
    let mut out = String::new();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let node = std::process::Command::new(&args.node)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let _ = writeln!(out, "purser-bench --suite resource-servers: {cores} cores");
    let _ = writeln!(
        out,
        "- Purser: {purser_version} (commit {}), storage {}; the native layer: purser-axum at the same commit",
        crate::commit(),
        if args.postgres {
            "PostgreSQL"
        } else {
            "SQLite (embedded)"
        }
    );
    let _ = writeln!(
        out,
        "- express: @x402/express {express_version} on node {node}, facilitator: Purser"
    );
    let _ = writeln!(
        out,
        "- anvil {ANVIL_VERSION} ({}), one chain (84532), automine",
        devnet.manifest().anvil.display()
    );
    let _ = writeln!(
        out,
        "- per server and concurrency: {} unpriced, {} challenge, {} paid requests of {} units and {} entitled ones (the gateway only: a payer's session token), each in {} slices taken in turns, after {} unpriced, challenge and entitled and {} paid warm-up requests",
        args.unpriced_requests,
        args.challenge_requests,
        args.paid_requests,
        args.value,
        args.entitled_requests,
        args.slices,
        args.warmup,
        (args.warmup / 10).max(1)
    );
    let _ = writeln!(out);
    let find = |kind: Kind, path: PathKind, c: usize| {
        measured
            .iter()
            .find(|m| m.server == kind && m.path == path && m.concurrency == c)
    };
    let _ = writeln!(
        out,
        "| path | concurrency | server | req/s | p50 ms | p99 ms | added p50 ms | added p99 ms | failures |"
    );
    let _ = writeln!(out, "|---|---:|---|---:|---:|---:|---:|---:|---:|");
    for path in PathKind::ALL {
        for &c in &args.concurrency {
            let direct = find(Kind::Direct, path, c);
            for kind in [Kind::Direct, Kind::Gateway, Kind::Native, Kind::Express] {
                let Some(m) = find(kind, path, c) else {
                    continue;
                };
                let added = |of: fn(&PhaseResult) -> Duration| match direct {
                    Some(d) if kind != Kind::Direct => {
                        let delta = of(&m.result).as_secs_f64() - of(&d.result).as_secs_f64();
                        format!("{:.2}", delta * 1_000.0)
                    }
                    _ => "–".to_owned(),
                };
                let _ = writeln!(
                    out,
                    "| {} | {c} | {} | {:.1} | {} | {} | {} | {} | {} |",
                    path.name(),
                    kind.name(),
                    m.result.throughput(),
                    ms(m.result.p50()),
                    ms(m.result.p99()),
                    added(PhaseResult::p50),
                    added(PhaseResult::p99),
                    m.result.failed(),
                );
            }
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Added latency is the server's percentile minus the direct call's, in the same group. \
         The gateway prices every route it proxies, so it has no unpriced row."
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| path | concurrency | gateway / express req/s | p50 | p99 | native / express req/s | p50 | p99 |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for path in PathKind::ALL {
        for &c in &args.concurrency {
            let Some(express) = find(Kind::Express, path, c) else {
                continue;
            };
            let ratios = |kind: Kind| match find(kind, path, c) {
                Some(m) => [
                    crate::ratio(m.result.throughput(), express.result.throughput()),
                    crate::ratio(
                        m.result.p50().as_secs_f64(),
                        express.result.p50().as_secs_f64(),
                    ),
                    crate::ratio(
                        m.result.p99().as_secs_f64(),
                        express.result.p99().as_secs_f64(),
                    ),
                ],
                None => ["–".to_owned(), "–".to_owned(), "–".to_owned()],
            };
            let [gr, g50, g99] = ratios(Kind::Gateway);
            let [nr, n50, n99] = ratios(Kind::Native);
            let _ = writeln!(
                out,
                "| {} | {c} | {gr} | {g50} | {g99} | {nr} | {n50} | {n99} |",
                path.name()
            );
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Above 1: more throughput, or a higher latency, than @x402/express."
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "CPU time per request (ms; user + system, from /proc, 10 ms resolution over the phase; \
         \"server\" is the process the client talks to, \"Purser\" its facilitator when that is \
         another process):"
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| path | concurrency | server | server ms | Purser ms | upstream ms | anvil ms | load generator ms |"
    );
    let _ = writeln!(out, "|---|---:|---|---:|---:|---:|---:|---:|");
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
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            m.path.name(),
            m.concurrency,
            m.server.name(),
            per_request(m.cpu[0]),
            per_request(m.cpu[1]),
            per_request(m.cpu[2]),
            per_request(m.cpu[3]),
            per_request(m.cpu[4]),
        );
    }
    let _ = writeln!(out);
    for m in measured {
        if let Some((rose, expected)) = m.chain_check {
            let _ = writeln!(
                out,
                "- paid {} c={}: {} of {} succeeded; merchant balance rose {rose}, expected {expected} ({})",
                m.server.name(),
                m.concurrency,
                m.result.ok,
                m.result.requests,
                if rose == expected { "ok" } else { "MISMATCH" }
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use purser_x402::header::encode_json;
    use reqwest::header::{HeaderMap, HeaderValue};

    use super::*;

    fn headers(name: &'static str, value: &Value) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(&encode_json(value)).unwrap());
        headers
    }

    fn required(accepts: Value) -> Value {
        json!({ "x402Version": 2, "resource": { "url": "http://x/data" }, "accepts": accepts })
    }

    fn settled(success: bool) -> Value {
        json!({ "success": success, "transaction": "0xab", "network": "eip155:84532" })
    }

    #[test]
    fn a_challenge_is_a_402_that_offers_a_way_to_pay() {
        let offer = json!([{ "scheme": "exact", "network": "eip155:84532", "amount": "1",
            "asset": "0x0000000000000000000000000000000000000001",
            "payTo": "0x0000000000000000000000000000000000000002", "maxTimeoutSeconds": 60 }]);
        let with = headers("payment-required", &required(offer));
        assert_eq!(judge(PathKind::Challenge, 402, &with, b"{}"), Ok(()));
        assert!(judge(PathKind::Challenge, 200, &with, b"{}").is_err());
        assert!(judge(PathKind::Challenge, 402, &HeaderMap::new(), b"{}").is_err());
        let empty = headers("payment-required", &required(json!([])));
        assert!(judge(PathKind::Challenge, 402, &empty, b"{}").is_err());
    }

    #[test]
    fn a_paid_answer_is_the_body_with_a_successful_settlement() {
        let body = BODY.as_bytes();
        let paid = headers("payment-response", &settled(true));
        assert_eq!(judge(PathKind::Paid, 200, &paid, body), Ok(()));
        assert!(judge(PathKind::Paid, 200, &paid, b"{}").is_err());
        assert!(judge(PathKind::Paid, 200, &HeaderMap::new(), body).is_err());
        let failed = headers("payment-response", &settled(false));
        assert!(judge(PathKind::Paid, 200, &failed, body).is_err());
        assert!(judge(PathKind::Paid, 402, &paid, body).is_err());
    }

    #[test]
    fn an_entitled_answer_is_the_body_without_a_settlement() {
        let body = BODY.as_bytes();
        assert_eq!(
            judge(PathKind::Entitled, 200, &HeaderMap::new(), body),
            Ok(())
        );
        let paid = headers(PAYMENT_RESPONSE, &settled(true));
        assert!(judge(PathKind::Entitled, 200, &paid, body).is_err());
        assert!(judge(PathKind::Entitled, 402, &HeaderMap::new(), body).is_err());
    }

    #[test]
    fn an_unpriced_answer_is_the_body() {
        assert_eq!(
            judge(PathKind::Unpriced, 200, &HeaderMap::new(), BODY.as_bytes()),
            Ok(())
        );
        assert!(judge(PathKind::Unpriced, 200, &HeaderMap::new(), b"{}").is_err());
        assert!(judge(PathKind::Unpriced, 404, &HeaderMap::new(), BODY.as_bytes()).is_err());
    }

    #[test]
    fn every_server_but_the_gateway_has_an_unpriced_route_and_the_direct_call_is_plain() {
        assert_eq!(Kind::Gateway.route(PathKind::Unpriced), None);
        assert_eq!(Kind::Native.route(PathKind::Unpriced), Some(FREE_PATH));
        assert_eq!(Kind::Express.route(PathKind::Paid), Some(PAID_PATH));
        assert_eq!(Kind::Gateway.route(PathKind::Entitled), Some(PAID_PATH));
        assert_eq!(Kind::Native.route(PathKind::Entitled), None);
        assert_eq!(Kind::Express.route(PathKind::Entitled), None);
        for path in PathKind::ALL {
            assert_eq!(Kind::Direct.route(path), Some(PAID_PATH));
            assert_eq!(Kind::Direct.expects(path), PathKind::Unpriced);
        }
    }
}
