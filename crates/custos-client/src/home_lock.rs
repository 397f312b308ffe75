//! One process at a time per home directory.
//!
//! # Security meaning
//! A device's sending chain derives each message's AEAD key and nonce from
//! the chain key, then saves the advanced chain. Two processes on one home
//! directory that read the same chain key would seal two messages under the
//! same key and nonce. Every [`crate::Device`] therefore holds an exclusive
//! advisory lock on `HOME/lock` (`flock`, released by the kernel when the
//! process exits, even after `kill -9`) for as long as it lives; a second
//! process waits for it up to a bound, then gives up with a clear error.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Name of the lock file inside the home directory.
pub const LOCK_FILE: &str = "lock";

/// How long [`HomeLock::acquire`] waits for another process to finish.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(30);

/// Why the home directory could not be locked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HomeLockError {
    /// Another process kept the home directory for longer than the wait.
    #[error(
        "{0} is in use by another custos process; wait for it to finish (a `receive --wait` holds it until it returns)"
    )]
    Busy(PathBuf),
    /// The lock file could not be opened or locked.
    #[error("{path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// An exclusive lock on a home directory, released on drop.
#[derive(Debug)]
pub struct HomeLock {
    // Held for its lock; closing the file releases it.
    _file: File,
}

impl HomeLock {
    /// Locks `home` exclusively, waiting up to `wait` for another holder
    /// (polling, without blocking the async runtime).
    pub async fn acquire(home: &Path, wait: Duration) -> Result<Self, HomeLockError> {
        let path = home.join(LOCK_FILE);
        let io = |source| HomeLockError::Io {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        let deadline = Instant::now() + wait;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Self { _file: file }),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(HomeLockError::Busy(home.to_owned()));
                }
                Err(TryLockError::Error(e)) => return Err(io(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn second_holder_waits_then_gives_up_and_gets_it_once_released() {
        let dir = tempfile::tempdir().unwrap();
        let first = HomeLock::acquire(dir.path(), Duration::ZERO).await.unwrap();
        let busy = HomeLock::acquire(dir.path(), Duration::from_millis(100)).await;
        assert!(matches!(busy, Err(HomeLockError::Busy(_))));
        drop(first);
        HomeLock::acquire(dir.path(), Duration::ZERO).await.unwrap();
    }

    #[tokio::test]
    async fn a_waiting_holder_gets_the_lock_when_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = HomeLock::acquire(dir.path(), Duration::ZERO).await.unwrap();
        let home = dir.path().to_owned();
        let waiter =
            tokio::spawn(async move { HomeLock::acquire(&home, Duration::from_secs(10)).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiter.is_finished(), "the second holder must wait");
        drop(first);
        waiter.await.unwrap().unwrap();
    }
}
