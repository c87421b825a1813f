//! `purser-bench --suite routing`: what the settlement router costs a 402, and how close its
//! estimates come to what settlements cost, on a devnet of three kinds of chain.
//!
//! What one run does:
//!
//! 1. starts a devnet of Base Sepolia (`op-stack`: the L1Block and GasPriceOracle stand-ins),
//!    Arbitrum Sepolia (`arbitrum`: NodeInterface) and Ethereum Sepolia (`ethereum`, with the
//!    ETH/USD feed), automining;
//! 2. prepares two `purser serve` from the devnet's `purser.toml`, each on a SQLite database of
//!    its own: **routed** (the router quoting every 500 ms) and **unrouted** (`[router] enabled
//!    = false`); in each, through GraphQL, a merchant with a payout address on every chain and
//!    a resource payable on all three, listed dearest first;
//! 3. **challenge latency**: `GET /v1/resources/{id}/payment-required` (what the gateway's proxy,
//!    its delegated checks and the native layer answer with), the two servers taking turns in
//!    `--slices` slices at each `--concurrency`; every answer must list the three networks, and
//!    the routed one must list them cheapest first;
//! 4. **estimation error**: `--settlements` payments settled through the routed server's
//!    facilitator, one per chain per round; before each round every chain's fees take a random
//!    step (base fee, and the L1 fee where the kind has one) and the harness waits for the
//!    router's next quote. Then, from GraphQL, each settlement's estimate (the router's quote
//!    kept with it when its transaction was signed) against its receipt.
//!
//! anvil charges a devnet transaction gas used × effective gas price and nothing for L1 data
//! (ARCHITECTURE.md, on anvil's OP mode), so what a receipt can check is the execution part of
//! each estimate: execution gas × (base fee + tip). The L1 part is reported beside it, as the
//! share of the estimate no devnet receipt can confirm.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use purser_devnet::payment::Payment;
use purser_devnet::{
    Devnet, DevnetChain, DevnetChainSpec, DevnetOptions, FeeKind, FeeLevels, Mining,
};
use serde_json::{Value, json};

use crate::resource_servers::graphql;
use crate::stats::{PhaseResult, ms};
use crate::targets::{PurserSetup, PurserStorage, Target};
use crate::{Args, load, workspace_root};

const GWEI: u128 = 1_000_000_000;
/// Where the merchants are paid.
const PAY_TO: &str = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C";
/// The routed server's quote interval; the harness waits a little longer after moving fees.
const QUOTE_INTERVAL_MS: u64 = 500;
/// Settlements per rail left out of the steady-state figures: the router's execution gas
/// starts at the configured `settlement_gas` and follows the rail's receipts from there.
const WARM_SETTLEMENTS: usize = 3;
/// The router's table in the devnet's `purser.toml`.
const ROUTER: &str = "\n[router]\n";

/// One Purser of the run, with its merchant's resource.
struct Server {
    name: &'static str,
    target: Target,
    url: String,
    admin_key: String,
    resource: String,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if !args.purser.is_file() {
        bail!(
            "no purser binary at {} (cargo build --release -p purser)",
            args.purser.display()
        );
    }
    let (dir, _scratch) = crate::run_dir(&args)?;
    eprintln!("starting the devnet (Base, Arbitrum and Ethereum Sepolia stand-ins, automine)");
    let devnet = Devnet::start(DevnetOptions {
        chains: vec![
            DevnetChainSpec::base_sepolia(),
            DevnetChainSpec::arbitrum_sepolia(),
            DevnetChainSpec::ethereum_sepolia(),
        ],
        payer_accounts: args.payers,
        canonical_usdc: false,
        mining: Mining::Auto,
        repo_root: Some(workspace_root()),
        ..DevnetOptions::default()
    })
    .await
    .context("starting the devnet")?;
    let devnet_dir = dir.join("devnet");
    devnet.write_files(&devnet_dir)?;
    let rails = std::fs::read_to_string(devnet_dir.join("purser.toml"))
        .context("reading the devnet's purser.toml")?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency.iter().copied().max().unwrap_or(1).max(16))
        .timeout(load::REQUEST_TIMEOUT)
        .build()?;

    let mut servers = Vec::new();
    for (name, router) in [
        (
            "routed",
            format!("quote_interval_ms = {QUOTE_INTERVAL_MS}\n"),
        ),
        ("unrouted", "enabled = false\n".to_owned()),
    ] {
        let home = dir.join(name);
        std::fs::create_dir_all(&home)?;
        // The devnet's configuration has a `[router]` table already: the run's keys join it.
        ensure!(
            rails.contains(ROUTER),
            "the devnet's purser.toml has no {ROUTER} table"
        );
        let rails = rails.replacen(ROUTER, &format!("{ROUTER}\n{router}"), 1);
        let setup = PurserSetup::prepare_with_rails(
            &args.purser,
            &home,
            &rails,
            &PurserStorage::Sqlite,
            None,
        )
        .await?;
        let admin_key = setup.create_key("tenant-admin", "bench merchant").await?;
        let target = setup.serve(&client, "").await?;
        let url = setup.url();
        let resource = onboard(&client, &url, &admin_key, &setup.tenant, devnet.chains()).await?;
        servers.push(Server {
            name,
            target,
            url,
            admin_key,
            resource,
        });
    }
    // The routed server offers the cheapest first once every rail is quoted.
    let cheapest = wait_for_quotes(&client, &servers[0]).await?;
    eprintln!("  the router's order: {}", cheapest.join(", "));

    eprintln!("challenge latency, the two servers taking turns:");
    let mut latency = Vec::new();
    for &concurrency in &args.concurrency {
        let mut parts: Vec<Vec<PhaseResult>> = vec![Vec::new(), Vec::new()];
        let slice = (args.challenge_requests / args.slices.max(1)).max(1);
        for _ in 0..args.slices.max(1) {
            for (i, server) in servers.iter().enumerate() {
                let expected = if i == 0 { Some(cheapest.clone()) } else { None };
                parts[i].push(challenges(&client, server, slice, concurrency, expected).await);
            }
        }
        for (server, parts) in servers.iter().zip(parts) {
            let result = PhaseResult::merge(parts);
            eprintln!(
                "  {:<9} c={concurrency:<3} {:>6} req {:>9.1} req/s  p50 {} ms  p99 {} ms  failed {}",
                server.name,
                result.requests,
                result.throughput(),
                ms(result.p50()),
                ms(result.p99()),
                result.failed()
            );
            for failure in &result.failures {
                eprintln!("      failure: {failure}");
            }
            ensure!(result.failed() == 0, "{} failed challenges", server.name);
            latency.push((server.name, concurrency, result));
        }
    }

    eprintln!(
        "estimation error: {} settlements through the routed server, fees moving between rounds",
        args.settlements
    );
    let routed = &servers[0];
    settle_rounds(&args, &client, &devnet, routed).await?;
    let samples = estimates(&client, routed).await?;
    report(&args, &latency, &samples);
    for server in servers {
        server.target.stop().await;
    }
    drop(devnet);
    Ok(())
}

/// A payout address on every chain and a resource payable on all three, dearest listed
/// first: its id.
async fn onboard(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    tenant: &str,
    chains: &[DevnetChain],
) -> anyhow::Result<String> {
    for chain in chains {
        graphql(
            client,
            url,
            key,
            "mutation($t: ID!, $n: String!, $a: String!) {
                setPayoutAddress(input: { tenantId: $t, network: $n, address: $a }) { address } }",
            json!({ "t": tenant, "n": chain.network(), "a": PAY_TO }),
        )
        .await?;
    }
    let accepts: Vec<Value> = chains
        .iter()
        .rev()
        .map(|c| json!({ "network": c.network() }))
        .collect();
    let created = graphql(
        client,
        url,
        key,
        "mutation($input: CreateResourceInput!) { createResource(input: $input) { id } }",
        json!({ "input": {
            "tenantId": tenant,
            "type": "HTTP",
            "url": "https://api.example.com/routed",
            "method": "GET",
            "name": "Routed",
            "description": "A resource payable on three chains",
            "price": { "amount": "10000" },
            "accepts": accepts,
            "publish": true,
        }}),
    )
    .await?;
    created["createResource"]["id"]
        .as_str()
        .map(str::to_owned)
        .context("createResource answered no id")
}

/// The networks of a payment-required answer, in order.
fn offered(body: &Value) -> Vec<String> {
    body["paymentRequired"]["accepts"]
        .as_array()
        .map(|accepts| {
            accepts
                .iter()
                .filter_map(|a| a["network"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until the router has quoted every rail: the networks, cheapest first.
async fn wait_for_quotes(client: &reqwest::Client, server: &Server) -> anyhow::Result<Vec<String>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let quotes = graphql(
            client,
            &server.url,
            &server.admin_key,
            "{ railQuotes { network healthy cost { total } } }",
            json!({}),
        )
        .await?;
        let mut rails: Vec<(u128, String)> = quotes["railQuotes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|q| q["healthy"] == true)
            .filter_map(|q| {
                let total = q["cost"]["total"].as_str()?.parse().ok()?;
                Some((total, q["network"].as_str()?.to_owned()))
            })
            .collect();
        if rails.len() == 3 {
            rails.sort();
            return Ok(rails.into_iter().map(|(_, network)| network).collect());
        }
        ensure!(
            Instant::now() < deadline,
            "the router did not quote every rail within 30 s: {quotes}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `count` challenges of `server`'s resource with `concurrency` in flight; each must list the
/// three networks, in `expected` order when given.
async fn challenges(
    client: &reqwest::Client,
    server: &Server,
    count: usize,
    concurrency: usize,
    expected: Option<Vec<String>>,
) -> PhaseResult {
    let url = format!(
        "{}/v1/resources/{}/payment-required",
        server.url, server.resource
    );
    let client = client.clone();
    load::drive(
        vec![(); count],
        concurrency,
        move |()| {
            let (client, url) = (client.clone(), url.clone());
            async move { load::exchange(client.get(&url)).await }
        },
        move |(status, body): (u16, Vec<u8>)| {
            if status != 200 {
                return Err(format!("answered {status}"));
            }
            let body: Value =
                serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))?;
            let networks = offered(&body);
            if networks.len() != 3 {
                return Err(format!("offers {networks:?}, not three networks"));
            }
            match &expected {
                Some(order) if *order != networks => {
                    Err(format!("offers {networks:?}, not {order:?}"))
                }
                _ => Ok(()),
            }
        },
    )
    .await
}

/// A small deterministic generator for the fee walk (xorshift64*), so that runs repeat.
struct Walk(u64);

impl Walk {
    /// A factor in [0.7, 1.43): one step of a multiplicative random walk.
    fn step(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let unit = (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
        0.7 * (1.43f64 / 0.7).powf(unit)
    }

    fn next(&mut self, value: u128, low: u128, high: u128) -> u128 {
        ((value as f64 * self.step()) as u128).clamp(low, high)
    }
}

/// Each chain's fee levels for the next round, a random step from `levels`.
fn stepped(kind: FeeKind, levels: &FeeLevels, walk: &mut Walk) -> FeeLevels {
    let base = levels.base_fee_wei.unwrap_or(GWEI);
    match kind {
        FeeKind::OpStack => FeeLevels {
            base_fee_wei: Some(walk.next(base, GWEI / 200, GWEI / 20)),
            l1_base_fee_wei: Some(walk.next(
                levels.l1_base_fee_wei.unwrap_or(GWEI),
                GWEI / 2,
                50 * GWEI,
            )),
            ..FeeLevels::default()
        },
        FeeKind::Arbitrum => FeeLevels {
            base_fee_wei: Some(walk.next(base, GWEI / 100, GWEI / 2)),
            l1_base_fee_wei: Some(walk.next(
                levels.l1_base_fee_wei.unwrap_or(GWEI / 10),
                GWEI / 20,
                50 * GWEI,
            )),
            ..FeeLevels::default()
        },
        FeeKind::Ethereum => FeeLevels {
            base_fee_wei: Some(walk.next(base, 2 * GWEI, 80 * GWEI)),
            ..FeeLevels::default()
        },
    }
}

/// Rounds of one settlement per chain, every chain's fees stepped before each round.
async fn settle_rounds(
    args: &Args,
    client: &reqwest::Client,
    devnet: &Devnet,
    routed: &Server,
) -> anyhow::Result<()> {
    let chains = devnet.chains();
    let payers = &devnet.accounts().payers;
    let mut walk = Walk(0x9E37_79B9_7F4A_7C15);
    let mut levels = Vec::new();
    for chain in chains {
        levels.push(chain.fee_levels().await?);
    }
    let rounds = args.settlements.div_ceil(chains.len());
    let pay_to = PAY_TO.parse()?;
    let url = routed.target.settle_url();
    let started = Instant::now();
    for round in 0..rounds {
        for (chain, levels) in chains.iter().zip(levels.iter_mut()) {
            let next = stepped(chain.fee_kind(), levels, &mut walk);
            chain.set_fees(&next).await?;
            *levels = chain.fee_levels().await?;
        }
        // The router's next quote sees the new levels.
        tokio::time::sleep(Duration::from_millis(QUOTE_INTERVAL_MS + 300)).await;
        let settles = chains.iter().enumerate().map(|(i, chain)| {
            let payer = &payers[(round * chains.len() + i) % payers.len()];
            let mut payment = Payment::new(chain, payer, pay_to, 10_000);
            payment.valid_before = purser_devnet::payment::now() + 3_600;
            let body = payment.body(payer, chain.chain_id());
            let (client, url, key) = (client.clone(), url.clone(), routed.target.bearer.clone());
            async move {
                let answer: Value = client
                    .post(&url)
                    .bearer_auth(key)
                    .json(&body)
                    .send()
                    .await?
                    .json()
                    .await?;
                ensure!(answer["success"] == true, "a settlement failed: {answer}");
                anyhow::Ok(())
            }
        });
        futures::future::try_join_all(settles).await?;
    }
    eprintln!(
        "  {} settlements in {:.1} s",
        rounds * chains.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One settlement's estimate against its receipt, in wei.
struct Sample {
    network: String,
    /// Its place among the rail's settlements, from 0.
    nth: usize,
    estimated_execution: u128,
    estimated_l1: u128,
    estimated_gas: u64,
    estimated_fee_per_gas: u128,
    actual_execution: u128,
    gas_used: u128,
    effective_gas_price: u128,
}

impl Sample {
    /// (estimate − actual) / actual of the execution part.
    fn execution_error(&self) -> f64 {
        ratio(self.estimated_execution, self.actual_execution)
    }

    fn gas_error(&self) -> f64 {
        ratio(u128::from(self.estimated_gas), self.gas_used)
    }

    fn price_error(&self) -> f64 {
        ratio(self.estimated_fee_per_gas, self.effective_gas_price)
    }

    /// The L1 part's share of the whole estimate.
    fn l1_share(&self) -> f64 {
        self.estimated_l1 as f64 / (self.estimated_execution + self.estimated_l1).max(1) as f64
    }
}

fn ratio(estimated: u128, actual: u128) -> f64 {
    (estimated as f64 - actual as f64) / (actual.max(1)) as f64
}

/// Every confirmed settlement of the routed server, oldest first, with its estimate's parts
/// from its route decision.
async fn estimates(client: &reqwest::Client, routed: &Server) -> anyhow::Result<Vec<Sample>> {
    let mut nodes = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = graphql(
            client,
            &routed.url,
            &routed.admin_key,
            "query($after: String) { settlements(first: 100, after: $after) {
                edges { node { network status createdAt estimatedNetworkCost routeDecision
                    networkCost { gasUsed effectiveGasPrice l1Fee total } } }
                pageInfo { hasNextPage endCursor } } }",
            json!({ "after": after }),
        )
        .await?;
        let connection = &page["settlements"];
        nodes.extend(
            connection["edges"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| e["node"].clone()),
        );
        if connection["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = connection["pageInfo"]["endCursor"]
            .as_str()
            .map(str::to_owned);
    }
    nodes.sort_by(|a, b| a["createdAt"].as_str().cmp(&b["createdAt"].as_str()));
    let mut seen = std::collections::HashMap::<String, usize>::new();
    let mut samples = Vec::new();
    let number = |v: &Value| -> anyhow::Result<u128> {
        match v {
            Value::String(s) => Ok(s.parse()?),
            Value::Number(n) => n.as_u64().map(u128::from).context("a negative number"),
            other => bail!("{other} is not a number"),
        }
    };
    for node in nodes {
        ensure!(
            node["status"] == "CONFIRMED",
            "a settlement is not confirmed: {node}"
        );
        let network = node["network"].as_str().unwrap_or_default().to_owned();
        let decision = match &node["routeDecision"] {
            Value::String(text) => serde_json::from_str(text)?,
            Value::Null => bail!("a settlement without a route decision: {node}"),
            object => object.clone(),
        };
        let rail = decision["rails"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["network"] == network.as_str())
            .context("the decision has no quote of the settlement's rail")?;
        let cost = &rail["cost"];
        let actual = &node["networkCost"];
        let gas_used = number(&actual["gasUsed"])?;
        let effective_gas_price = number(&actual["effectiveGasPrice"])?;
        let nth = seen.entry(network.clone()).or_default();
        samples.push(Sample {
            network,
            nth: *nth,
            estimated_execution: number(&cost["executionFee"])?,
            estimated_l1: number(&cost["l1Fee"])? + number(&cost["operatorFee"])?,
            estimated_gas: u64::try_from(number(&cost["executionGas"])?)?,
            estimated_fee_per_gas: number(&cost["baseFeePerGas"])?
                + number(&cost["priorityFeePerGas"])?,
            actual_execution: gas_used * effective_gas_price,
            gas_used,
            effective_gas_price,
        });
        *nth += 1;
    }
    Ok(samples)
}

/// The `p`-th percentile of `values` (nearest rank).
fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * values.len() as f64 - 1e-9).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

fn pct(x: f64) -> String {
    format!("{:+.2}%", x * 100.0)
}

fn report(args: &Args, latency: &[(&str, usize, PhaseResult)], samples: &[Sample]) {
    println!("\n## Routing on the request path, and estimation error\n");
    println!(
        "purser-bench --suite routing (commit {}), {} challenge requests per server and \
         concurrency in {} slices, {} settlements.\n",
        crate::commit(),
        args.challenge_requests,
        args.slices,
        args.settlements
    );
    println!("| server | c | req/s | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|");
    for (name, concurrency, result) in latency {
        println!(
            "| {name} | {concurrency} | {:.1} | {} | {} |",
            result.throughput(),
            ms(result.p50()),
            ms(result.p99())
        );
    }
    println!(
        "\nEstimate − receipt, relative to the receipt (execution part: gas × (base fee + tip)); \
         steady state leaves out each rail's first {WARM_SETTLEMENTS}:\n"
    );
    println!(
        "| rail | settlements | execution p50 | execution p99 (abs) | gas p50 | fee per gas p50 | \
         steady execution p50 | steady p99 (abs) | L1 share of the estimate, p50 |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut networks: Vec<&str> = samples.iter().map(|s| s.network.as_str()).collect();
    networks.sort_unstable();
    networks.dedup();
    for network in networks.into_iter().map(Some).chain([None]) {
        let of: Vec<&Sample> = samples
            .iter()
            .filter(|s| network.is_none_or(|n| s.network == n))
            .collect();
        let steady: Vec<&Sample> = of
            .iter()
            .copied()
            .filter(|s| s.nth >= WARM_SETTLEMENTS)
            .collect();
        let column = |set: &[&Sample], f: fn(&Sample) -> f64| -> Vec<f64> {
            set.iter().map(|s| f(s)).collect()
        };
        let abs = |mut v: Vec<f64>| -> Vec<f64> {
            v.iter_mut().for_each(|x| *x = x.abs());
            v
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.3}% |",
            network.unwrap_or("all"),
            of.len(),
            pct(percentile(&mut column(&of, Sample::execution_error), 50.0)),
            pct(percentile(
                &mut abs(column(&of, Sample::execution_error)),
                99.0
            )),
            pct(percentile(&mut column(&of, Sample::gas_error), 50.0)),
            pct(percentile(&mut column(&of, Sample::price_error), 50.0)),
            pct(percentile(
                &mut column(&steady, Sample::execution_error),
                50.0
            )),
            pct(percentile(
                &mut abs(column(&steady, Sample::execution_error)),
                99.0
            )),
            percentile(&mut column(&of, Sample::l1_share), 50.0) * 100.0,
        );
    }
}
