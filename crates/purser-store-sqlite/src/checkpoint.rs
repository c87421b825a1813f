//! Keeps the write-ahead log bounded under sustained writes.
//!
//! SQLite's automatic checkpoint runs in the connection that commits, without the write lock:
//! while another writer is already waiting, it appends new frames before the checkpoint has
//! copied the old ones, so the log is never found fully copied at the start of a write, never
//! restarted, and grows without end (8 GB of log for a 676 MB database after two million usage
//! events loaded by four writers). Here a task of the store's own, on a connection of its own,
//! looks at the log's size every second and, past a limit, runs `wal_checkpoint(TRUNCATE)`:
//! that takes the write lock, copies every frame, and empties the log. Its connection's busy
//! timeout is short, so writers wait on it at most that long plus the copy; when it cannot get
//! the lock in time it tries again a second later.

use std::path::PathBuf;
use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, SqliteConnection};
use tokio::task::JoinHandle;

/// How often the log's size is looked at.
const INTERVAL: Duration = Duration::from_secs(1);

/// How long the checkpoint waits for the write lock, and then for readers of older snapshots.
const BUSY_TIMEOUT: Duration = Duration::from_millis(500);

/// Stops the task when the last handle to the store is dropped.
pub(crate) struct Checkpointer(JoinHandle<()>);

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Checkpointer {
    /// Starts the task for the database `connect` opens, or nothing for a database without a
    /// file (in memory).
    pub(crate) async fn start(
        connect: &SqliteConnectOptions,
        limit_bytes: u64,
    ) -> sqlx::Result<Option<Self>> {
        let file = connect.get_filename();
        if file.as_os_str().is_empty() || file.to_string_lossy().starts_with(':') {
            return Ok(None);
        }
        let mut log = file.as_os_str().to_owned();
        log.push("-wal");
        let connection = connect.clone().busy_timeout(BUSY_TIMEOUT).connect().await?;
        Ok(Some(Self(tokio::spawn(run(
            connection,
            PathBuf::from(log),
            limit_bytes,
        )))))
    }
}

async fn run(mut connection: SqliteConnection, log: PathBuf, limit_bytes: u64) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let size = std::fs::metadata(&log).map_or(0, |meta| meta.len());
        if size <= limit_bytes {
            continue;
        }
        // (busy, frames in the log, frames copied): busy when the lock or a reader was not
        // had in time; the next tick tries again.
        match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&mut connection)
            .await
        {
            Ok((0, _, _)) => {
                tracing::debug!(size, "SQLite write-ahead log checkpointed and emptied")
            }
            Ok((_, frames, copied)) => {
                tracing::debug!(size, frames, copied, "SQLite checkpoint busy; trying again")
            }
            Err(error) => {
                tracing::warn!("checkpointing the SQLite write-ahead log failed: {error}")
            }
        }
    }
}
