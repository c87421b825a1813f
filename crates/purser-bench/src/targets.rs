//! The facilitators under test, each a child process on a loopback port: Purser (the release
//! `purser` binary) and the peer (`facilitator` from crates.io, qntx's, built on r402).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use purser_devnet::{Devnet, TestAccount};
use tokio::process::{Child, Command};

use crate::rpc_count::RpcCounter;

/// How long a facilitator may take to answer its health route.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running facilitator: where to POST, with which bearer token.
pub struct Target {
    pub name: String,
    /// The version string, for the report.
    pub version: String,
    /// `…/verify` and `…/settle` are `{base}/verify` and `{base}/settle`.
    pub base: String,
    pub bearer: String,
    pub log: PathBuf,
    /// The counting proxy between it and anvil, in `--count-rpc` runs.
    pub rpc: Option<RpcCounter>,
    child: Child,
}

impl Target {
    pub fn verify_url(&self) -> String {
        format!("{}/verify", self.base)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn settle_url(&self) -> String {
        format!("{}/settle", self.base)
    }

    /// Stops the process (SIGKILL; everything it holds lives in the run's temporary folder).
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Runs `program args…` to completion and returns the last line it printed.
async fn last_line(program: &Path, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {}", program.display()))?;
    if !output.status.success() {
        bail!(
            "{} {} failed ({}): {}",
            program.display(),
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stdout = String::from_utf8(output.stdout)?;
    stdout
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_owned())
        .with_context(|| format!("{} {} printed nothing", program.display(), args.join(" ")))
}

/// Polls `url` until it answers 200.
pub async fn wait_healthy(
    client: &reqwest::Client,
    url: &str,
    child: &mut Child,
    log: &Path,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "exited ({status}) before answering {url}; its log:\n{}",
                tail(log)
            );
        }
        if let Ok(response) = client.get(url).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        if started.elapsed() > START_TIMEOUT {
            bail!(
                "did not answer {url} within {START_TIMEOUT:?}; its log:\n{}",
                tail(log)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// The folder of the embedded SQLite database of a run whose files are in `dir`.
pub fn sqlite_data_dir(dir: &Path) -> PathBuf {
    dir.join("purser-data")
}

/// Configuration shared by every `purser` of the run (coordination, rate limits, and whether
/// it migrates when it starts serving), set once.
static SHARED_CONFIG: std::sync::OnceLock<(String, bool)> = std::sync::OnceLock::new();

/// Sets what every `purser` the run starts is configured with besides its own settings:
/// `toml` tables, and whether `serve` migrates (a `purser` older than the harness must not:
/// the harness migrated the database with its own, longer, list).
pub fn set_shared_config(toml: String, migrate_on_start: bool) {
    let _ = SHARED_CONFIG.set((toml, migrate_on_start));
}

/// Where Purser keeps its data for the run.
pub enum PurserStorage {
    /// The embedded default: SQLite in the run's folder.
    Sqlite,
    /// A PostgreSQL database URL (a fresh database, made for the run).
    Postgres(String),
}

/// Writes Purser's configuration (the devnet's rails from `purser.toml`, plus server, storage
/// and logging), creates a tenant and a `resource_server` key with the CLI, and serves.
pub async fn start_purser(
    binary: &Path,
    dir: &Path,
    devnet: &Devnet,
    devnet_dir: &Path,
    storage: &PurserStorage,
    rpc: Option<RpcCounter>,
    client: &reqwest::Client,
) -> anyhow::Result<Target> {
    let setup = PurserSetup::prepare(binary, dir, devnet, devnet_dir, storage, rpc).await?;
    setup.serve(client, "").await
}

/// Purser's configuration written and its tenant and keys made, before it serves.
pub struct PurserSetup {
    binary: PathBuf,
    dir: PathBuf,
    /// The configuration as written by `prepare`, without what `serve` appends.
    base_config: String,
    config: PathBuf,
    port: u16,
    pub tenant: String,
    /// The tenant's `resource_server` key.
    pub key: String,
    rpc: Option<RpcCounter>,
}

impl PurserSetup {
    /// Writes the configuration and creates the tenant and its `resource_server` key with the
    /// CLI (`purser tenant create`, `purser key create`).
    pub async fn prepare(
        binary: &Path,
        dir: &Path,
        devnet: &Devnet,
        devnet_dir: &Path,
        storage: &PurserStorage,
        rpc: Option<RpcCounter>,
    ) -> anyhow::Result<Self> {
        let mut rails = std::fs::read_to_string(devnet_dir.join("purser.toml"))
            .context("reading the devnet's purser.toml")?;
        if let Some(proxy) = &rpc {
            let node = &devnet.chains()[0];
            rails = rails.replace(node.rpc_url(), &proxy.url);
        }
        Self::prepare_with_rails(binary, dir, &rails, storage, rpc).await
    }

    /// [`PurserSetup::prepare`] with `rails` as the configuration's `[[rails]]` tables: empty
    /// for a Purser that settles nothing (the entitlement suite needs no chain).
    pub async fn prepare_with_rails(
        binary: &Path,
        dir: &Path,
        rails: &str,
        storage: &PurserStorage,
        rpc: Option<RpcCounter>,
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let (shared, migrate_on_start) = SHARED_CONFIG
            .get()
            .map_or(("", true), |(toml, migrate)| (toml.as_str(), *migrate));
        let mut storage_toml = match storage {
            PurserStorage::Sqlite => {
                format!("data_dir = {:?}\n", sqlite_data_dir(dir).to_string_lossy())
            }
            PurserStorage::Postgres(url) => format!("database_url = {url:?}\n"),
        };
        if !migrate_on_start {
            storage_toml.push_str("migrate_on_start = false\n");
        }
        let config = dir.join("purser-bench.toml");
        // Rails need a price of their gas for the settlement router; a devnet configuration
        // without a feed gets ETH at a fixed price.
        let router = if rails.contains("[[rails]]") && !rails.contains("[[router.price_feeds]]") {
            "\n[[router.price_feeds]]\ngas_token = \"ETH\"\ncurrency = \"USD\"\nfixed = \"3000\"\n"
        } else {
            ""
        };
        let base_config = format!(
            "# Written by purser-bench.\n\
             [server]\nlisten = \"127.0.0.1:{port}\"\n\n\
             [storage]\n{storage_toml}\n\
             [telemetry]\nlog_filter = \"info\"\n\n\
             {shared}\
             {rails}{router}"
        );
        std::fs::write(&config, &base_config)?;
        std::fs::write(dir.join("purser.log"), "")?;
        let mut setup = Self {
            binary: binary.to_owned(),
            dir: dir.to_owned(),
            base_config,
            config,
            port,
            tenant: String::new(),
            key: String::new(),
            rpc,
        };
        setup.tenant = setup
            .cli(&["tenant", "create", "--name", "Bench Merchant"])
            .await?;
        setup.key = setup.create_key("resource-server", "purser-bench").await?;
        Ok(setup)
    }

    /// Runs `purser --config … args…` and answers the last line it printed.
    async fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let config = self.config.to_string_lossy().into_owned();
        let mut all = vec!["--config", config.as_str()];
        all.extend_from_slice(args);
        last_line(&self.binary, &all).await
    }

    /// A key of the tenant with `role` (`tenant-admin`, `resource-server`, …): its secret.
    pub async fn create_key(&self, role: &str, name: &str) -> anyhow::Result<String> {
        self.cli(&[
            "key",
            "create",
            "--tenant",
            &self.tenant,
            "--role",
            role,
            "--name",
            name,
        ])
        .await
    }

    /// Purser's own base URL (GraphQL at `{url}/graphql`, the facilitator at
    /// `{url}/facilitator`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Serves with `extra` TOML appended to the configuration (a `[gateway]` section, say);
    /// the process logs to `purser.log` in the run's folder, after what earlier runs wrote.
    pub async fn serve(&self, client: &reqwest::Client, extra: &str) -> anyhow::Result<Target> {
        std::fs::write(&self.config, format!("{}\n{extra}", self.base_config))?;
        let config_arg = self.config.to_string_lossy().into_owned();
        let version = last_line(&self.binary, &["--version"]).await?;
        let log = self.dir.join("purser.log");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let mut child = Command::new(&self.binary)
            .args(["--config", &config_arg, "serve"])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        let base = self.url();
        wait_healthy(client, &format!("{base}/healthz"), &mut child, &log)
            .await
            .context("Purser")?;
        Ok(Target {
            name: "Purser".to_owned(),
            version,
            base: format!("{base}/facilitator"),
            bearer: self.key.clone(),
            log,
            rpc: self.rpc.clone(),
            child,
        })
    }
}

/// Writes the peer's TOML configuration (one network: the devnet chain, the `exact` scheme, a
/// signer of its own from the environment, bearer auth as Purser has) and serves.
pub async fn start_peer(
    binary: &Path,
    dir: &Path,
    devnet: &Devnet,
    signer: &TestAccount,
    rpc: Option<RpcCounter>,
    client: &reqwest::Client,
) -> anyhow::Result<Target> {
    let chain = &devnet.chains()[0];
    let rpc_url = rpc
        .as_ref()
        .map_or_else(|| chain.rpc_url().to_owned(), |proxy| proxy.url.clone());
    let port = free_port()?;
    let config = dir.join("facilitator.toml");
    std::fs::write(
        &config,
        format!(
            "# Written by purser-bench for the `facilitator` crate (r402).\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\nverify_timeout = \"30s\"\nsettle_timeout = \"45s\"\n\n\
             [http.auth]\nbearer_env = \"FACILITATOR_API_TOKEN\"\n\n\
             [log]\nlevel = \"info\"\nformat = \"compact\"\n\n\
             [signer.bench]\nsource = \"env\"\nenv = \"FACILITATOR_EVM_KEY\"\n\n\
             [scheme.evm]\nclock_skew_secs = 6\neip6492_allowed_factories = []\n\n\
             [network.\"{network}\"]\nrpc = [\"{rpc}\"]\nsigners = [\"bench\"]\nschemes = [\"exact\"]\n\
             eip1559 = true\nflashblocks = false\nreceipt_timeout_secs = 30\n",
            network = chain.network(),
            rpc = rpc_url,
        ),
    )?;
    let token = "peer-bench-token-0123456789abcdef".to_owned();
    let version = last_line(binary, &["--version"])
        .await
        .unwrap_or_else(|_| "facilitator (version unknown)".to_owned());
    let log = dir.join("facilitator.log");
    let log_file = std::fs::File::create(&log)?;
    let mut child = Command::new(binary)
        .args(["--config", &config.to_string_lossy(), "serve"])
        .env("FACILITATOR_EVM_KEY", signer.private_key_hex())
        .env("FACILITATOR_API_TOKEN", &token)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(client, &format!("{base}/readyz"), &mut child, &log)
        .await
        .context("the peer facilitator")?;
    Ok(Target {
        name: "facilitator".to_owned(),
        version,
        base,
        bearer: token,
        log,
        rpc,
        child,
    })
}
