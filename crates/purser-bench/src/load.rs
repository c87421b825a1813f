//! The load generator: a fixed number of workers send pre-built requests (pre-signed bodies or
//! headers), one at a time each, until they run out, timing every request.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::stats::PhaseResult;

/// How many failure messages a phase keeps for the report.
const KEPT_FAILURES: usize = 5;
/// The longest one request may take (a settle waits for its receipt).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(90);

/// Which endpoint a phase hits, and so what a successful answer looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Verify,
    Settle,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::Verify => "verify",
            Operation::Settle => "settle",
        }
    }

    /// `Ok` when the answer is a success; otherwise why not.
    fn judge(self, status: u16, body: &[u8]) -> Result<(), String> {
        let json: Value = serde_json::from_slice(body).map_err(|_| {
            format!(
                "HTTP {status}, not JSON: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            )
        })?;
        let (flag, reason, message) = match self {
            Operation::Verify => ("isValid", "invalidReason", "invalidMessage"),
            Operation::Settle => ("success", "errorReason", "errorMessage"),
        };
        if status == 200 && json[flag] == Value::Bool(true) {
            return Ok(());
        }
        Err(format!(
            "HTTP {status}: {} {}",
            json[reason].as_str().unwrap_or(""),
            // Not an x402 answer (an error envelope, say): show it whole, shortened.
            json[message]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| json.to_string().chars().take(200).collect())
        ))
    }
}

/// Sends every body in `bodies` to `url` with `concurrency` requests in flight.
pub async fn run(
    client: &reqwest::Client,
    operation: Operation,
    url: &str,
    bearer: &str,
    bodies: Vec<Vec<u8>>,
    concurrency: usize,
) -> PhaseResult {
    let client = client.clone();
    let url: Arc<str> = url.into();
    let bearer: Arc<str> = bearer.into();
    drive(
        bodies,
        concurrency,
        move |body| {
            let (client, url, bearer) = (client.clone(), url.clone(), bearer.clone());
            async move { send(&client, &url, &bearer, body).await }
        },
        move |(status, answer)| operation.judge(status, &answer),
    )
    .await
}

/// Runs `request` once per job with `concurrency` in flight (each worker takes the next job
/// when its last one is answered), timing each from its start until it has read the whole
/// answer; then `judge` says whether that answer is a success (`Ok`) or why not, outside the
/// timing.
pub async fn drive<J, A, F, Fut, G>(
    jobs: Vec<J>,
    concurrency: usize,
    request: F,
    judge: G,
) -> PhaseResult
where
    J: Clone + Send + Sync + 'static,
    A: Send + 'static,
    F: Fn(J) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<A, String>> + Send,
    G: Fn(A) -> Result<(), String> + Clone + Send + 'static,
{
    let jobs = Arc::new(jobs);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let jobs = jobs.clone();
            let next = next.clone();
            let request = request.clone();
            let judge = judge.clone();
            tokio::spawn(async move {
                let mut samples = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    let job = job.clone();
                    let sent = Instant::now();
                    let answer = request(job).await;
                    let latency = sent.elapsed();
                    samples.push((latency, answer.and_then(&judge)));
                }
                samples
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(jobs.len());
    let mut ok = 0;
    let mut failures = Vec::new();
    for worker in futures::future::join_all(workers).await {
        for (latency, outcome) in worker.expect("a load worker panicked") {
            latencies.push(latency);
            match outcome {
                Ok(()) => ok += 1,
                Err(why) if failures.len() < KEPT_FAILURES => failures.push(why),
                Err(_) => {}
            }
        }
    }
    PhaseResult::new(latencies, ok, started.elapsed(), failures)
}

async fn send(
    client: &reqwest::Client,
    url: &str,
    bearer: &str,
    body: Vec<u8>,
) -> Result<(u16, Vec<u8>), String> {
    exchange(
        client
            .post(url)
            .bearer_auth(bearer)
            .header("content-type", "application/json")
            .body(body),
    )
    .await
}

/// Sends `request` and reads its whole answer: the status and the body.
pub async fn exchange(request: reqwest::RequestBuilder) -> Result<(u16, Vec<u8>), String> {
    let response = request
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status().as_u16();
    let answer = response
        .bytes()
        .await
        .map_err(|e| format!("reading the answer failed: {e}"))?;
    Ok((status, answer.to_vec()))
}
