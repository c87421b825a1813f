//! A counting JSON-RPC proxy for `--count-rpc` runs: each facilitator talks to anvil through
//! its own, which tallies the methods it forwards. HTTP/1.1 with `Content-Length` bodies only
//! (what alloy's clients send and anvil answers); it adds a loopback hop, so runs that count
//! calls are diagnostic, not the recorded timings.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

pub type Counts = BTreeMap<String, u64>;

/// A proxy in front of one node: its URL and what went through it.
#[derive(Clone)]
pub struct RpcCounter {
    pub url: String,
    counts: Arc<Mutex<Counts>>,
}

impl RpcCounter {
    /// Listens on a free loopback port and forwards to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> anyhow::Result<Self> {
        let upstream = upstream
            .strip_prefix("http://")
            .context("the node's URL is not http://")?
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let counts = Arc::new(Mutex::new(Counts::new()));
        let tally = counts.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let tally = tally.clone();
                tokio::spawn(async move {
                    if let Err(e) = relay(client, &upstream, &tally).await {
                        eprintln!("      rpc proxy: {e:#}");
                    }
                });
            }
        });
        Ok(Self { url, counts })
    }

    pub fn snapshot(&self) -> Counts {
        self.counts.lock().expect("counts lock").clone()
    }
}

/// What was counted between two snapshots.
pub fn difference(before: &Counts, after: &Counts) -> Counts {
    after
        .iter()
        .map(|(method, n)| (method.clone(), n - before.get(method).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

async fn relay(client: TcpStream, upstream: &str, tally: &Mutex<Counts>) -> anyhow::Result<()> {
    let node = TcpStream::connect(upstream).await?;
    node.set_nodelay(true)?;
    client.set_nodelay(true)?;
    let (client_read, mut client_write) = client.into_split();
    let (node_read, mut node_write) = node.into_split();
    let mut client_read = BufReader::new(client_read);
    let mut node_read = BufReader::new(node_read);
    loop {
        let Some(request) = read_message(&mut client_read).await? else {
            return Ok(());
        };
        count(&request.body, tally);
        node_write.write_all(&request.bytes()).await?;
        let Some(response) = read_message(&mut node_read).await? else {
            bail!("the node closed the connection");
        };
        client_write.write_all(&response.bytes()).await?;
    }
}

struct Message {
    head: Vec<u8>,
    body: Vec<u8>,
}

impl Message {
    fn bytes(&self) -> Vec<u8> {
        let mut all = self.head.clone();
        all.extend_from_slice(&self.body);
        all
    }
}

/// One HTTP/1.1 message (head and `Content-Length` body); `None` at a clean end of stream.
async fn read_message<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
) -> anyhow::Result<Option<Message>> {
    let mut head = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            if head.is_empty() {
                return Ok(None);
            }
            bail!("the stream ended inside a message head");
        }
        let text = String::from_utf8_lossy(&line).to_ascii_lowercase();
        if let Some(value) = text.strip_prefix("content-length:") {
            length = value.trim().parse().context("a bad Content-Length")?;
        }
        if text.starts_with("transfer-encoding:") && text.contains("chunked") {
            bail!("chunked bodies are not supported");
        }
        head.extend_from_slice(&line);
        if line == b"\r\n" {
            break;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await?;
    Ok(Some(Message { head, body }))
}

fn count(body: &[u8], tally: &Mutex<Counts>) {
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let calls = match &json {
        Value::Array(batch) => batch.iter().collect(),
        single => vec![single],
    };
    let mut tally = tally.lock().expect("counts lock");
    for call in calls {
        if let Some(method) = call["method"].as_str() {
            *tally.entry(method.to_owned()).or_default() += 1;
        }
    }
}
