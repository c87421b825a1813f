//! Finding (or installing) the pinned anvil, starting it, and reading what it prints.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::B256;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::{DevnetAccounts, DevnetChainSpec, DevnetError, DevnetOptions, TestAccount};

/// The anvil release the devnet runs (foundry's, from npm).
pub const ANVIL_VERSION: &str = "1.7.1";
/// The npm package shipping it (a static linux x86-64 binary at `bin/anvil`).
pub const ANVIL_NPM_PACKAGE: &str = "@foundry-rs/anvil-linux-amd64";

/// Where `tests/interop`'s `npm ci` puts anvil, relative to the repository.
const ANVIL_IN_REPO: &str = "tests/interop/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil";
/// How long an anvil may take to listen.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How many lines of an attached anvil's output are kept for error messages.
const OUTPUT_TAIL_LINES: usize = 40;

/// Finds the anvil binary: `$PURSER_ANVIL` if set; else the one `npm ci` installed under
/// `tests/interop/node_modules` of `repo_root` (or, with no root given, of the current directory
/// or an ancestor); else the per-user cache (`$XDG_CACHE_HOME/purser/anvil/<version>/anvil` or
/// `~/.cache/…`), installing [`ANVIL_NPM_PACKAGE`]@[`ANVIL_VERSION`] there with npm when absent.
pub async fn locate_anvil(repo_root: Option<&Path>) -> Result<PathBuf, DevnetError> {
    if let Some(path) = std::env::var_os("PURSER_ANVIL") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(DevnetError::AnvilUnavailable(format!(
                "PURSER_ANVIL is {}, which is not a file",
                path.display()
            )))
        };
    }
    let candidates: Vec<PathBuf> = match repo_root {
        Some(root) => vec![root.join(ANVIL_IN_REPO)],
        None => std::env::current_dir()
            .map(|dir| dir.ancestors().map(|d| d.join(ANVIL_IN_REPO)).collect())
            .unwrap_or_default(),
    };
    if let Some(found) = candidates.into_iter().find(|p| p.is_file()) {
        // Absolute and without `..`, as devnet.json records it.
        return Ok(found.canonicalize().unwrap_or(found));
    }
    cached_anvil().await
}

/// The cache folder for this anvil version.
fn cache_dir() -> Result<PathBuf, DevnetError> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .ok_or_else(|| {
            DevnetError::AnvilUnavailable(
                "neither XDG_CACHE_HOME nor HOME is set, so there is no cache to install anvil \
                 into; set PURSER_ANVIL to an anvil binary"
                    .to_owned(),
            )
        })?;
    Ok(base.join("purser").join("anvil").join(ANVIL_VERSION))
}

/// The cached anvil, installed with npm on first use. One install at a time per process;
/// concurrent processes each install into their own staging folder and rename into place.
async fn cached_anvil() -> Result<PathBuf, DevnetError> {
    static INSTALL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let dir = cache_dir()?;
    let binary = dir.join("anvil");
    if binary.is_file() {
        return Ok(binary);
    }
    let _installing = INSTALL.lock().await;
    if binary.is_file() {
        return Ok(binary);
    }
    if !(cfg!(target_os = "linux") && cfg!(target_arch = "x86_64")) {
        return Err(DevnetError::AnvilUnavailable(format!(
            "{ANVIL_NPM_PACKAGE} is built for linux x86-64 only; set PURSER_ANVIL to an anvil \
             {ANVIL_VERSION} binary for this machine"
        )));
    }
    std::fs::create_dir_all(&dir).map_err(DevnetError::io(format!(
        "cannot create the anvil cache {}",
        dir.display()
    )))?;
    let unique = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    );
    let staging = dir.join(format!(".install-{unique}"));
    let result = install_with_npm(&staging, &dir.join(format!(".anvil-{unique}")), &binary).await;
    let _ = std::fs::remove_dir_all(&staging);
    result.map(|()| binary)
}

async fn install_with_npm(
    staging: &Path,
    partial: &Path,
    binary: &Path,
) -> Result<(), DevnetError> {
    let package = format!("{ANVIL_NPM_PACKAGE}@{ANVIL_VERSION}");
    tracing::info!(%package, into = %binary.display(), "installing anvil with npm");
    let output = tokio::process::Command::new("npm")
        .arg("install")
        .arg("--prefix")
        .arg(staging)
        .args([
            "--no-save",
            "--no-package-lock",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ])
        .arg(&package)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| {
            DevnetError::AnvilUnavailable(if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "it is not installed and npm, needed to install it, is not either: install \
                     Node.js 20 or newer with npm (Debian: `apt-get install nodejs npm`), run \
                     `npm ci` in tests/interop, or set PURSER_ANVIL to an anvil {ANVIL_VERSION} \
                     binary"
                )
            } else {
                format!("cannot run npm: {e}")
            })
        })?;
    if !output.status.success() {
        return Err(DevnetError::AnvilUnavailable(format!(
            "`npm install {package}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let installed = staging
        .join("node_modules")
        .join(ANVIL_NPM_PACKAGE)
        .join("bin/anvil");
    std::fs::copy(&installed, partial).map_err(DevnetError::io(format!(
        "cannot copy {} into the cache",
        installed.display()
    )))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(partial, std::fs::Permissions::from_mode(0o755))
        .map_err(DevnetError::io("cannot make the cached anvil executable"))?;
    std::fs::rename(partial, binary).map_err(DevnetError::io(format!(
        "cannot move anvil into {}",
        binary.display()
    )))
}

/// The command-line arguments for one chain.
pub(crate) fn anvil_args(spec: &DevnetChainSpec, options: &DevnetOptions) -> Vec<String> {
    vec![
        "--host".to_owned(),
        "127.0.0.1".to_owned(),
        // anvil binds a free port and prints it ("Listening on 127.0.0.1:<port>").
        "--port".to_owned(),
        "0".to_owned(),
        "--chain-id".to_owned(),
        spec.chain_id.to_string(),
        "--base-fee".to_owned(),
        spec.base_fee_wei.to_string(),
        "--accounts".to_owned(),
        options.anvil_accounts().to_string(),
        "--mnemonic".to_owned(),
        options.mnemonic.clone(),
        // The output is parsed: no colour codes.
        "--color".to_owned(),
        "never".to_owned(),
    ]
}

/// A started anvil: where it listens and what it printed until then.
pub(crate) struct Started {
    pub rpc_url: String,
    pub pid: u32,
    /// Its output up to "Listening on", which lists the accounts' keys.
    pub banner: String,
    /// The process, when this devnet owns it (killed on drop).
    pub attached: Option<AttachedAnvil>,
}

/// An anvil child process that dies with its owner.
pub(crate) struct AttachedAnvil {
    // Held for `kill_on_drop`.
    _child: tokio::process::Child,
}

type OutputTail = Arc<Mutex<VecDeque<String>>>;

fn remember(tail: &OutputTail, line: String) {
    let mut tail = tail.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if tail.len() == OUTPUT_TAIL_LINES {
        tail.pop_front();
    }
    tail.push_back(line);
}

fn shown(tail: &OutputTail) -> String {
    let tail = tail.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if tail.is_empty() {
        "no output".to_owned()
    } else {
        format!("output: {}", Vec::from(tail.clone()).join("\n"))
    }
}

/// Drains a stream of an attached anvil into the tail kept for messages, so the pipe never
/// fills.
fn drain(stream: impl AsyncRead + Unpin + Send + 'static, tail: OutputTail, chain_id: u64) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::trace!(target: "anvil", chain_id, "{line}");
            remember(&tail, line);
        }
    });
}

/// Starts anvil as a child of this process, killed when the returned handle is dropped.
pub(crate) async fn spawn_attached(
    anvil: &Path,
    spec: &DevnetChainSpec,
    options: &DevnetOptions,
) -> Result<Started, DevnetError> {
    let chain_id = spec.chain_id;
    let fail = |message: String| DevnetError::AnvilStart { chain_id, message };
    let mut child = tokio::process::Command::new(anvil)
        .args(anvil_args(spec, options))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(format!("cannot run {}: {e}", anvil.display())))?;
    let pid = child.id().unwrap_or_default();
    let tail: OutputTail = Arc::default();
    if let Some(stderr) = child.stderr.take() {
        drain(stderr, tail.clone(), chain_id);
    }
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| fail("no stdout".to_owned()))?;
    let mut lines = BufReader::new(stdout).lines();
    let mut banner = String::new();
    let read_banner = async {
        while let Some(line) = lines.next_line().await? {
            banner.push_str(&line);
            banner.push('\n');
            if let Some(address) = listening_address(&line) {
                return Ok::<_, std::io::Error>(Some(address.to_owned()));
            }
        }
        Ok(None)
    };
    let address = match tokio::time::timeout(STARTUP_TIMEOUT, read_banner).await {
        Ok(Ok(Some(address))) => address,
        Ok(Ok(None)) => {
            // Give the stderr drain a moment to collect why it exited.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let status = child.try_wait().ok().flatten();
            return Err(fail(format!(
                "it exited ({}) before listening; {}",
                status.map_or("still running".to_owned(), |s| s.to_string()),
                shown(&tail)
            )));
        }
        Ok(Err(e)) => return Err(fail(format!("cannot read its output: {e}"))),
        Err(_) => {
            return Err(fail(format!(
                "it did not listen within {} s; {}",
                STARTUP_TIMEOUT.as_secs(),
                shown(&tail)
            )));
        }
    };
    drain(lines.into_inner().into_inner(), tail, chain_id);
    Ok(Started {
        rpc_url: format!("http://{address}"),
        pid,
        banner,
        attached: Some(AttachedAnvil { _child: child }),
    })
}

/// Starts anvil so that it outlives this process: through `sh`, which puts it in the
/// background and exits, so anvil is re-parented (and reaped) away from us; in a process group
/// of its own, so a terminal's Ctrl-C does not reach it; its output appended to `log`; and
/// marked with `PURSER_DEVNET_DIR=<dir>` in its environment, which [`is_devnet_anvil`] checks
/// before anything signals it.
pub(crate) async fn spawn_detached(
    anvil: &Path,
    spec: &DevnetChainSpec,
    options: &DevnetOptions,
    dir: &Path,
) -> Result<Started, DevnetError> {
    let chain_id = spec.chain_id;
    let fail = |message: String| DevnetError::AnvilStart { chain_id, message };
    let log = dir.join(format!("anvil-{chain_id}.log"));
    std::fs::File::create(&log)
        .map_err(DevnetError::io(format!("cannot create {}", log.display())))?;
    let output = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(r#""$0" "$@" >>"$PURSER_DEVNET_LOG" 2>&1 </dev/null & echo $!"#)
        .arg(anvil)
        .args(anvil_args(spec, options))
        .env("PURSER_DEVNET_LOG", &log)
        .env(DEVNET_MARKER, dir)
        .process_group(0)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| fail(format!("cannot run sh: {e}")))?;
    let pid: u32 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .map_err(|_| {
            fail(format!(
                "sh did not report a pid ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        })?;
    // Killed if this future is dropped (or fails) before anvil listens.
    let mut guard = KillOnDrop {
        dir: dir.to_owned(),
        pids: vec![pid],
    };
    let started = std::time::Instant::now();
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(address) = text.lines().find_map(listening_address) {
            guard.pids.clear();
            return Ok(Started {
                rpc_url: format!("http://{address}"),
                pid,
                banner: text,
                attached: None,
            });
        }
        let tail = || {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(OUTPUT_TAIL_LINES)..].join("\n")
        };
        if !process_alive(pid) {
            return Err(fail(format!(
                "it exited before listening; {}: {}",
                log.display(),
                tail()
            )));
        }
        if started.elapsed() > STARTUP_TIMEOUT {
            return Err(fail(format!(
                "it did not listen within {} s; {}: {}",
                STARTUP_TIMEOUT.as_secs(),
                log.display(),
                tail()
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// SIGKILLs the anvil processes of a devnet being started unless they were handed over.
pub(crate) struct KillOnDrop {
    pub dir: PathBuf,
    pub pids: Vec<u32>,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for pid in &self.pids {
            if is_devnet_anvil(*pid, &self.dir) {
                let _ = signal(*pid, rustix::process::Signal::KILL);
            }
        }
    }
}
/// The environment variable marking a detached anvil with its devnet folder.
const DEVNET_MARKER: &str = "PURSER_DEVNET_DIR";

/// Whether `pid` runs (and is not a zombie).
pub(crate) fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may contain spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Whether `pid` is an anvil that [`spawn_detached`] started for the devnet in `dir`: its
/// program is called `anvil` and its environment carries the folder's marker. Nothing else is
/// ever signalled, whatever a `devnet.json` says.
pub(crate) fn is_devnet_anvil(pid: u32, dir: &Path) -> bool {
    let program_is_anvil = std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
        cmdline
            .split(|b| *b == 0)
            .next()
            .and_then(|argv0| std::str::from_utf8(argv0).ok())
            .is_some_and(|argv0| Path::new(argv0).file_name() == Some("anvil".as_ref()))
    });
    let marker = format!("{DEVNET_MARKER}={}", dir.display());
    let marked = std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| {
        environ
            .split(|b| *b == 0)
            .any(|entry| entry == marker.as_bytes())
    });
    program_is_anvil && marked && process_alive(pid)
}

pub(crate) fn signal(pid: u32, signal: rustix::process::Signal) -> std::io::Result<()> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| std::io::Error::other("bad pid"))?;
    rustix::process::kill_process(pid, signal).map_err(std::io::Error::from)
}

/// `127.0.0.1:<port>` from anvil's "Listening on 127.0.0.1:<port>".
fn listening_address(line: &str) -> Option<&str> {
    line.trim()
        .strip_prefix("Listening on ")
        .map(str::trim)
        .filter(|a| {
            a.rsplit_once(':')
                .is_some_and(|(_, port)| port.parse::<u16>().is_ok())
        })
}

/// The private keys anvil lists under "Private Keys", in account order.
fn private_keys(banner: &str) -> Vec<B256> {
    banner
        .lines()
        .skip_while(|line| line.trim() != "Private Keys")
        .skip(1)
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('='))
        .map_while(|line| {
            let (index, key) = line.split_once(' ')?;
            index.strip_prefix('(')?.strip_suffix(')')?;
            key.trim().parse::<B256>().ok()
        })
        .collect()
}

/// The devnet's accounts from an anvil's banner: account 0 deploys, 1 signs settlements, the
/// rest pay.
pub(crate) fn accounts_from_banner(
    banner: &str,
    chain_id: u64,
    options: &DevnetOptions,
) -> Result<DevnetAccounts, DevnetError> {
    let keys = private_keys(banner);
    if keys.len() != options.anvil_accounts() {
        return Err(DevnetError::AnvilStart {
            chain_id,
            message: format!(
                "expected {} private keys in its output, found {}",
                options.anvil_accounts(),
                keys.len()
            ),
        });
    }
    let mut accounts = keys
        .into_iter()
        .map(TestAccount::from_private_key)
        .collect::<Result<Vec<_>, _>>()?
        .into_iter();
    let (Some(deployer), Some(settlement_signer)) = (accounts.next(), accounts.next()) else {
        unreachable!("at least two accounts were checked for");
    };
    Ok(DevnetAccounts {
        deployer,
        settlement_signer,
        payers: accounts.collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BANNER: &str = "\
Available Accounts
==================

(0) 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266 (10000.000000000000000000 ETH)
(1) 0x70997970C51812dc3A010C7d01b50e0d17dc79C8 (10000.000000000000000000 ETH)
(2) 0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC (10000.000000000000000000 ETH)

Private Keys
==================

(0) 0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
(1) 0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
(2) 0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a

Wallet
==================
Mnemonic:          test test test test test test test test test test test junk

Listening on 127.0.0.1:37375
";

    #[test]
    fn the_banner_gives_keys_and_address() {
        let options = DevnetOptions {
            payer_accounts: 1,
            ..DevnetOptions::default()
        };
        let accounts = accounts_from_banner(BANNER, 1, &options).unwrap();
        assert_eq!(
            accounts.deployer.address().to_string(),
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
        );
        assert_eq!(
            accounts.settlement_signer.address().to_string(),
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
        );
        assert_eq!(
            accounts.payers[0].address().to_string(),
            "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
        );
        let options = DevnetOptions {
            payer_accounts: 2,
            ..DevnetOptions::default()
        };
        assert!(accounts_from_banner(BANNER, 1, &options).is_err());
        assert_eq!(
            BANNER.lines().find_map(listening_address),
            Some("127.0.0.1:37375")
        );
        assert_eq!(listening_address("Listening on nowhere"), None);
    }

    #[test]
    fn only_live_processes_are_alive() {
        assert!(process_alive(std::process::id()));
        assert!(!process_alive(u32::MAX));
        // This test binary is not an anvil of any devnet.
        assert!(!is_devnet_anvil(std::process::id(), Path::new("/")));
    }
}
