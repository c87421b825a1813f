//! The settlement router replayed over a day of fees: 10,000 payments on four rails, each routed
//! by `purser_router::policy::order` on the quote the router held when the 402 was written, and
//! charged what its rail cost when the payment settled. Compared with the hindsight-optimal rail
//! per payment, with always using one rail, and with the first offer of unordered lists.
//!
//! `cargo bench -p purser-router --bench replay` (reads `benches/fee-trace.csv`, made by
//! `benches/make_fee_trace.py`; the fee models below follow `purser_chain::fees`).

use std::time::Instant;

use purser_domain::money::Amount;
use purser_domain::routing::RoutingPolicy;
use purser_router::policy::{Standing, order};

const PAYMENTS: usize = 10_000;
/// Execution gas of one settlement (an EIP-3009 transfer between funded accounts).
const GAS: u128 = 65_000;
/// The settlement's calldata (`transferWithAuthorization` with v, r, s) in bytes.
const CALLDATA: u128 = 292;
/// The signed transaction's FastLZ-compressed size (random nonce and signature compress little).
const FASTLZ_SIZE: i128 = 330;
/// The router's quotes are this old at most (its refresh interval), and a payment settles this
/// long after its 402 (signing, then a block).
const QUOTE_INTERVAL_S: u64 = 2;
const SETTLE_AFTER_S: u64 = 6;
const ETH_USD: f64 = 3_000.0;
const RAILS: [&str; 4] = ["base", "optimism", "arbitrum", "ethereum"];

#[derive(Clone, Copy)]
struct Row {
    eth: u128,
    blob: u128,
    base_l2: u128,
    op_l2: u128,
    arb_l2: u128,
    arb_l1: u128,
}

/// The OP Stack's Fjord L1 fee for a transaction of `FASTLZ_SIZE` compressed bytes.
fn fjord_l1_fee(
    l1_base_fee: u128,
    blob_base_fee: u128,
    base_scalar: u128,
    blob_scalar: u128,
) -> u128 {
    let size = (-42_585_600 + 836_500 * FASTLZ_SIZE).max(100_000_000) as u128;
    let scaled = base_scalar * 16 * l1_base_fee + blob_scalar * blob_base_fee;
    size * scaled / 1_000_000_000_000
}

/// What settling one payment costs on each rail, in wei. `padded`: the quote (Arbitrum's L1
/// component padded by a tenth, as the router quotes it), or what is charged.
fn costs(row: &Row, padded: bool) -> [u128; 4] {
    let op_tip = 1_000_000; // 0.001 gwei
    let base = GAS * (row.base_l2 + op_tip) + fjord_l1_fee(row.eth, row.blob, 2_269, 1_055_762);
    let optimism = GAS * (row.op_l2 + op_tip) + fjord_l1_fee(row.eth, row.blob, 5_227, 1_014_213);
    let mut l1_gas = 16 * (CALLDATA + 140) * row.arb_l1 / row.arb_l2;
    if padded {
        l1_gas = l1_gas * 1_100 / 1_000;
    }
    let arbitrum = (GAS + l1_gas) * row.arb_l2;
    let ethereum = GAS * (row.eth + 100_000_000); // a 0.1 gwei tip
    [base, optimism, arbitrum, ethereum]
}

fn read_trace() -> Vec<(u64, Row)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/fee-trace.csv");
    let text = std::fs::read_to_string(path).expect("benches/fee-trace.csv");
    text.lines()
        .skip(1)
        .map(|line| {
            let v: Vec<u128> = line
                .split(',')
                .map(|f| f.parse().expect("a number"))
                .collect();
            (
                v[0] as u64,
                Row {
                    eth: v[1],
                    blob: v[2],
                    base_l2: v[3],
                    op_l2: v[4],
                    arb_l2: v[5],
                    arb_l1: v[6],
                },
            )
        })
        .collect()
}

/// The trace's row in force at `t` seconds.
fn at(trace: &[(u64, Row)], t: u64) -> Row {
    let i = trace
        .partition_point(|(start, _)| *start <= t)
        .saturating_sub(1);
    trace[i].1
}

/// A small deterministic generator (xorshift64*), so runs are repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn usd(wei: u128) -> f64 {
    wei as f64 / 1e18 * ETH_USD
}

fn main() {
    let trace = read_trace();
    let day = trace.last().map(|(t, _)| *t).unwrap_or(0);
    let mut rng = Rng(402);
    // Ten merchants' resources, each listing the four rails in an order of its own.
    let listings: Vec<[usize; 4]> = (0..10)
        .map(|_| {
            let mut list = [0, 1, 2, 3];
            for i in (1..4).rev() {
                list.swap(i, rng.below(i as u64 + 1) as usize);
            }
            list
        })
        .collect();
    let policy = RoutingPolicy::default();
    let amounts = [Amount::from_atomic(1_000_000); 4];
    let mut routed = 0u128;
    let mut optimal = 0u128;
    let mut always = [0u128; 4];
    let mut first_offer = 0u128;
    let mut routed_optimal = 0usize;
    let mut estimate_error = Vec::with_capacity(PAYMENTS);
    let mut route_nanos = 0u128;
    for _ in 0..PAYMENTS {
        let t = QUOTE_INTERVAL_S + rng.below(day - QUOTE_INTERVAL_S - SETTLE_AFTER_S);
        // The quote the router held: up to one interval old.
        let quoted_at = t - rng.below(QUOTE_INTERVAL_S + 1);
        let quotes = costs(&at(&trace, quoted_at), true);
        let charged = costs(&at(&trace, t + SETTLE_AFTER_S), false);
        let listing = listings[rng.below(listings.len() as u64) as usize];
        // The merchant's order, as the 402 would list it before routing.
        let standings: Vec<Standing> = listing
            .iter()
            .map(|&rail| Standing::Quoted {
                cost: quotes[rail],
                time_ms: 2_000,
            })
            .collect();
        let started = Instant::now();
        let choice = order(&policy, &amounts, &standings).order[0];
        route_nanos += started.elapsed().as_nanos();
        let chosen = listing[choice];
        routed += charged[chosen];
        let best = *charged.iter().min().expect("four rails");
        optimal += best;
        routed_optimal += usize::from(charged[chosen] == best);
        for (rail, total) in always.iter_mut().enumerate() {
            *total += charged[rail];
        }
        first_offer += charged[listing[0]];
        estimate_error
            .push((quotes[chosen] as f64 - charged[chosen] as f64) / charged[chosen] as f64);
    }
    estimate_error.sort_by(f64::total_cmp);
    let percentile = |p: f64| estimate_error[((estimate_error.len() - 1) as f64 * p) as usize];
    println!(
        "replay: {PAYMENTS} payments over {} s of fees ({} rows), quotes up to {QUOTE_INTERVAL_S} s old, settled {SETTLE_AFTER_S} s after the 402",
        day,
        trace.len()
    );
    println!("| choice | total cost (USD) | per payment (USD) | against optimal |");
    println!("|---|---:|---:|---:|");
    let line = |name: &str, wei: u128| {
        println!(
            "| {name} | {:.2} | {:.6} | {:.2}% |",
            usd(wei),
            usd(wei) / PAYMENTS as f64,
            (wei as f64 / optimal as f64 - 1.0) * 100.0
        );
    };
    line("hindsight optimal", optimal);
    line("Purser (cheapest, on its quotes)", routed);
    line("first offer of an unordered list", first_offer);
    for (rail, total) in RAILS.iter().zip(always) {
        line(&format!("always {rail}"), total);
    }
    println!(
        "Purser chose the cheapest rail for {routed_optimal} of {PAYMENTS} payments; \
         estimate error on the chosen rail ((quote - charged) / charged): p50 {:+.2}%, p99 {:+.2}%, \
         max {:+.2}%",
        percentile(0.5) * 100.0,
        percentile(0.99) * 100.0,
        estimate_error.last().copied().unwrap_or_default() * 100.0
    );
    println!(
        "ordering four offers: {:.0} ns per 402 (policy::order, mean over {PAYMENTS})",
        route_nanos as f64 / PAYMENTS as f64
    );
}
