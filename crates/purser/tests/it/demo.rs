//! `purser demo`, the README's first command, as a newcomer runs it: the binary walks an agent
//! through discovery, the 402, payment and settlement, then keeps serving until SIGTERM. The
//! test reads what it printed and checks it against the chain and the running services.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use alloy::primitives::{Address, B256};
use alloy::providers::{Provider, ProviderBuilder};
use serde_json::Value;

use crate::cli::purser;

/// Kills the demo (and with it its anvil) should the test fail half-way.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The value after `label` on the first line that holds it.
fn after<'a>(lines: &'a [String], label: &str) -> &'a str {
    lines
        .iter()
        .find_map(|l| l.split_once(label).map(|(_, rest)| rest.trim()))
        .unwrap_or_else(|| panic!("no line holds {label:?}:\n{}", lines.join("\n")))
}

fn first_word(text: &str) -> &str {
    text.split_whitespace().next().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_walks_an_agent_through_payment_and_keeps_serving() {
    purser_chain::rails::ensure_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let mut child = purser(
        dir.path(),
        &[
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--gateway-listen",
            "127.0.0.1:0",
        ],
        &[],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("start purser demo");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let demo = Demo(child);
    let (lines_tx, lines_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            text.push_str(&line);
            text.push('\n');
        }
        text
    });

    // Read until the demo says it keeps serving.
    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines_rx.recv_timeout(left) {
            Ok(line) => {
                let done = line.contains("press Ctrl-C");
                lines.push(line);
                if done {
                    break;
                }
            }
            Err(_) => {
                drop(demo);
                panic!(
                    "the demo did not reach the point where it keeps serving:\n{}\n--- stderr ---\n{}",
                    lines.join("\n"),
                    errors.join().unwrap_or_default()
                );
            }
        }
    }
    let shown = lines.join("\n");

    // The steps, in order.
    let order: Vec<usize> = [
        "] chain",
        "] purser",
        "] merchant",
        "] discovery",
        "] challenge",
        "] routing",
        "] payment",
        "] settlement",
        "] replay",
        "] sign-in",
        "] metering",
    ]
    .iter()
    .map(|step| {
        lines
            .iter()
            .position(|l| l.contains(step))
            .unwrap_or_else(|| panic!("no step {step:?}:\n{shown}"))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{shown}");

    // Three rails; the router offered Base first, then, after the demo's L1 fee spike on Base,
    // Arbitrum; the agent paid the first offer, on Arbitrum.
    let (base, arbitrum) = ("eip155:84532", "eip155:421614");
    let first_offer = |heading: &str| -> String {
        let at = lines
            .iter()
            .position(|l| l.contains(heading))
            .unwrap_or_else(|| panic!("no {heading:?}:\n{shown}"));
        lines[at + 1].trim().to_owned()
    };
    assert!(
        first_offer("in the settlement router's order")
            .starts_with(&format!("1. {base} (op-stack)")),
        "{shown}"
    );
    assert!(
        first_offer("the same 402 now offers:").starts_with(&format!("1. {arbitrum} (arbitrum)")),
        "{shown}"
    );
    let paid_on = after(&lines, "success, transaction ")
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_owned();
    assert_eq!(paid_on, arbitrum, "{shown}");
    assert!(
        after(&lines, "took the first offer: ").contains(&format!(" on {arbitrum}, ")),
        "{shown}"
    );
    let rpc_url = first_word(after(&lines, &format!("({paid_on}) at ")))
        .trim_end_matches(':')
        .to_owned();
    // The router's estimate is kept beside what the receipt says.
    assert!(
        after(&lines, "its gas: the router estimated ").contains(" wei of ETH, the receipt says "),
        "{shown}"
    );
    let merchant: Address = first_word(after(&lines, "payout address "))
        .parse()
        .unwrap();
    let gateway = first_word(after(&lines, "gateway at ")).to_owned();
    let purser_api = first_word(after(&lines, "API at ")).to_owned();
    let transaction: B256 = first_word(after(&lines, "success, transaction "))
        .parse()
        .unwrap();
    assert!(
        after(&lines, "-> 402 Payment Required").is_empty(),
        "{shown}"
    );
    assert!(
        after(&lines, "with PAYMENT-SIGNATURE -> 200 OK").contains("\"city\":\"lisbon\""),
        "{shown}"
    );
    assert!(
        after(&lines, "again -> ").starts_with("409 payment_already_used"),
        "{shown}"
    );
    // Repeat access: signed in, the agent got the API again without paying.
    assert!(
        after(&lines, "SIGN-IN-WITH-X -> ").starts_with("200 "),
        "{shown}"
    );
    assert!(
        after(&lines, "(merchant balance +").starts_with("0 USDC"),
        "{shown}"
    );
    // Metering: both forecasts (paid, then signed in) were reported by the API, the payment
    // was metered by Purser itself, and one forecast past the free one costs $0.002.
    assert!(
        after(&lines, "`forecasts` counts ").starts_with("2 for 0x"),
        "{shown}"
    );
    assert!(
        after(&lines, "`paid-requests` sums ").starts_with("10000 atomic units on eip155:"),
        "{shown}"
    );
    assert!(
        after(&lines, "ratedUsage): ").starts_with("2 forecasts, 1 billable"),
        "{shown}"
    );
    assert!(
        after(&lines, "after the free one, $").starts_with("0.002 = 2000 atomic units"),
        "{shown}"
    );

    // The ledger: the settlement and the payout, both posted, for the price; and what the
    // settlement transaction cost in gas, exactly as its receipt says.
    let ledger: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("atomic units  debit"))
        .collect();
    assert_eq!(ledger.len(), 2, "{shown}");
    let gas: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("wei of gas    debit"))
        .collect();
    assert_eq!(gas.len(), 1, "{shown}");
    let words: Vec<&str> = gas[0].split_whitespace().collect();
    assert_eq!(words[0], "network_fee", "{shown}");
    assert!(words[1].parse::<u128>().unwrap() > 0, "{shown}");
    assert_eq!(words[6], "network_fees", "{shown}");
    assert_eq!(words.last(), Some(&"posted"), "{shown}");
    for (line, code) in ledger.iter().zip(["settlement", "payout"]) {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words[0], code, "{line}");
        assert_eq!(words[1], "10000", "{line}");
        assert_eq!(words.last(), Some(&"posted"), "{line}");
    }

    // What it printed is what happened: the transaction is on the devnet, which still runs.
    let provider = ProviderBuilder::new().connect_http(rpc_url.parse().unwrap());
    let receipt = provider
        .get_transaction_receipt(transaction)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{transaction} is not on the chain\n{shown}"));
    assert!(receipt.status());
    assert_eq!(
        receipt.block_number.unwrap().to_string(),
        first_word(after(&lines, "mined in block ")).trim_end_matches(';')
    );
    let transfer_to_merchant = receipt
        .inner
        .logs()
        .iter()
        .any(|log| log.topics().len() == 3 && log.topics()[2] == merchant.into_word());
    assert!(
        transfer_to_merchant,
        "no Transfer to {merchant} in {receipt:?}"
    );
    assert!(
        after(&lines, "the merchant's balance rose by ").starts_with("0.01 USDC"),
        "{shown}"
    );

    // And it keeps serving: the gateway challenges, the catalog lists the API.
    let unpaid = reqwest::get(format!("{gateway}/weather/paris"))
        .await
        .unwrap();
    assert_eq!(unpaid.status(), 402);
    assert!(unpaid.headers().contains_key("payment-required"));
    let found: Value = reqwest::get(format!(
        "{purser_api}/facilitator/discovery/search?query=weather"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        found["resources"][0]["metadata"]["name"],
        "Weather forecast"
    );

    // SIGTERM stops it cleanly.
    let mut demo = demo;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &demo.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exited = tokio::task::spawn_blocking(move || {
        let status = demo.0.wait();
        (demo, status)
    });
    let (_demo, status) = tokio::time::timeout(Duration::from_secs(30), exited)
        .await
        .expect("the demo stops within 30 s of SIGTERM")
        .unwrap();
    assert!(status.unwrap().success());
    let _ = errors.join();
    // Its anvil went with it.
    assert!(provider.get_block_number().await.is_err());
}
