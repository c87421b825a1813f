//! `up` and `down`: a devnet whose anvil processes outlive the caller, recorded in a folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::process::Signal;

use crate::anvil::{self, KillOnDrop, is_devnet_anvil, process_alive};
use crate::chain::DevnetChain;
use crate::files::{self, CONFIG_FILE, DevnetManifest, MANIFEST_FILE, signer_key_file};
use crate::{DevnetError, DevnetOptions, locate_anvil};

/// How long `down` waits after SIGTERM before SIGKILL.
const TERMINATE_GRACE: Duration = Duration::from_secs(5);
/// How long it waits after SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// Starts a devnet in `dir` (created if needed) whose anvil processes keep running after this
/// process exits, and writes `devnet.json`, `purser.toml`, `signer-<chain id>.key` and
/// `anvil-<chain id>.log` there. Answers what `devnet.json` holds.
///
/// When `dir` already has a running devnet with the same chain ids, that devnet is answered
/// unchanged (so `up` is idempotent); with other chain ids, `up` fails and asks for `down`
/// first. What is left of a devnet that is no longer (wholly) running is stopped and replaced.
pub async fn up(dir: &Path, options: DevnetOptions) -> Result<DevnetManifest, DevnetError> {
    options.validate()?;
    std::fs::create_dir_all(dir)
        .map_err(DevnetError::io(format!("cannot create {}", dir.display())))?;
    let dir = dir
        .canonicalize()
        .map_err(DevnetError::io(format!("cannot resolve {}", dir.display())))?;
    if let Some(existing) = DevnetManifest::read_optional(&dir)? {
        if running(&dir, &existing).await {
            let wanted: Vec<u64> = options.chains.iter().map(|c| c.chain_id).collect();
            let have: Vec<u64> = existing.chains.iter().map(|c| c.chain_id).collect();
            if wanted == have {
                return Ok(existing);
            }
            return Err(DevnetError::State {
                dir,
                message: format!(
                    "a devnet of chains {have:?} is running here; stop it (`down`) before \
                     starting chains {wanted:?}"
                ),
            });
        }
        down(&dir).await?;
    }

    let anvil = match &options.anvil {
        Some(path) => path.clone(),
        None => locate_anvil(options.repo_root.as_deref()).await?,
    };
    let spawned = futures::future::join_all(
        options
            .chains
            .iter()
            .map(|spec| anvil::spawn_detached(&anvil, spec, &options, &dir)),
    )
    .await;
    // Kills what was started if this future panics or is dropped before the devnet is
    // recorded (a failure is cleaned up more gently below).
    let mut guard = KillOnDrop {
        dir: dir.clone(),
        pids: spawned.iter().flatten().map(|s| s.pid).collect(),
    };
    let result = async {
        let started = spawned.into_iter().collect::<Result<Vec<_>, _>>()?;
        let accounts = Arc::new(anvil::accounts_from_banner(
            &started[0].banner,
            options.chains[0].chain_id,
            &options,
        )?);
        let chains = futures::future::try_join_all(started.into_iter().zip(&options.chains).map(
            |(started, spec)| {
                DevnetChain::set_up(spec.clone(), started, accounts.clone(), &options)
            },
        ))
        .await?;
        let manifest = DevnetManifest::new(&anvil, &options, &accounts, &chains, true);
        files::write_all(&dir, &manifest, &options)?;
        Ok(manifest)
    }
    .await;
    let pids = std::mem::take(&mut guard.pids);
    if result.is_err() {
        // Leave nothing running behind a failed start.
        stop(&dir, &pids).await;
    }
    result
}

/// What `down` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DownOutcome {
    /// Anvil processes that exited on SIGTERM.
    pub terminated: usize,
    /// Those that needed SIGKILL.
    pub killed: usize,
}

/// Stops the devnet `up` started in `dir` (SIGTERM, then SIGKILL after a grace period) and
/// removes `devnet.json`, `purser.toml` and the key files, keeping the anvil logs. Doing so
/// when nothing runs (or `dir` does not exist) is not an error. Only processes that are an
/// anvil started for this very folder are ever signalled.
pub async fn down(dir: &Path) -> Result<DownOutcome, DevnetError> {
    let dir = match dir.canonicalize() {
        Ok(dir) => dir,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(DownOutcome::default()),
        Err(e) => return Err(DevnetError::io(format!("cannot resolve {}", dir.display()))(e)),
    };
    let Some(manifest) = DevnetManifest::read_optional(&dir)? else {
        return Ok(DownOutcome::default());
    };
    let pids: Vec<u32> = manifest.chains.iter().filter_map(|c| c.pid).collect();
    let outcome = stop(&dir, &pids).await;
    let still_running: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|pid| is_devnet_anvil(*pid, &dir))
        .collect();
    if !still_running.is_empty() {
        return Err(DevnetError::State {
            dir,
            message: format!("anvil processes {still_running:?} survived SIGKILL"),
        });
    }
    let mut files: Vec<PathBuf> = manifest
        .chains
        .iter()
        .map(|c| signer_key_file(&dir, c.chain_id))
        .collect();
    files.push(dir.join(CONFIG_FILE));
    // The manifest goes last: while it exists, `down` can be run again.
    files.push(dir.join(MANIFEST_FILE));
    for file in files {
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(DevnetError::io(format!("cannot remove {}", file.display()))(e)),
        }
    }
    Ok(outcome)
}

/// Whether every chain of the manifest has its anvil running and answering.
async fn running(dir: &Path, manifest: &DevnetManifest) -> bool {
    let mut all = true;
    for chain in &manifest.chains {
        let alive = chain.pid.is_some_and(|pid| is_devnet_anvil(pid, dir));
        all &= alive && answers_chain_id(&chain.rpc_url, chain.chain_id).await;
    }
    all
}

async fn answers_chain_id(rpc_url: &str, chain_id: u64) -> bool {
    use alloy::providers::Provider;
    let Ok(url) = rpc_url.parse() else {
        return false;
    };
    let provider = crate::chain::http_provider(url, None);
    matches!(
        tokio::time::timeout(Duration::from_secs(2), provider.get_chain_id()).await,
        Ok(Ok(answered)) if answered == chain_id
    )
}

/// SIGTERM to each of `pids` that is this folder's anvil, SIGKILL to those still there after
/// the grace period.
async fn stop(dir: &Path, pids: &[u32]) -> DownOutcome {
    let ours: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|pid| is_devnet_anvil(*pid, dir))
        .collect();
    for pid in &ours {
        let _ = anvil::signal(*pid, Signal::TERM);
    }
    let remaining = wait_for_exit(&ours, TERMINATE_GRACE).await;
    for pid in &remaining {
        tracing::warn!(pid, "anvil did not exit on SIGTERM; killing it");
        let _ = anvil::signal(*pid, Signal::KILL);
    }
    wait_for_exit(&remaining, KILL_GRACE).await;
    DownOutcome {
        terminated: ours.len() - remaining.len(),
        killed: remaining.len(),
    }
}

/// Waits until none of `pids` is alive, or the time is up; answers those still alive.
async fn wait_for_exit(pids: &[u32], within: Duration) -> Vec<u32> {
    let started = Instant::now();
    loop {
        let alive: Vec<u32> = pids
            .iter()
            .copied()
            .filter(|pid| process_alive(*pid))
            .collect();
        if alive.is_empty() || started.elapsed() >= within {
            return alive;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
