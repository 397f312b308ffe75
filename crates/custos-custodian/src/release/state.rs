//! The custodian's persisted release state: what survives a restart.
//!
//! # Durability
//! The state is one JSON file, replaced atomically (write a temporary file,
//! fsync, rename, fsync the directory). A crash before the rename leaves the
//! previous state; after it, the new one. The release path persists a
//! `KeyRelease` as *pending* before it submits it to the log, and records its
//! log index once the log acknowledged it, so a restart neither forgets a
//! logged release (the pending record is found in the log again by its
//! bytes) nor hands out shares for an unlogged one (shares are returned only
//! once the statement is proven in a witnessed checkpoint). The last-seen
//! checkpoint is kept beside it by the log verifier (`checkpoint` file).
//!
//! # A lost or older file
//! The file is a cache of what the log proves, plus what the log cannot
//! know yet (pending releases, warrants learnt from requests). At every
//! start the release path re-reads the whole log, re-hashed against a
//! witnessed checkpoint, and merges into this state every own `KeyRelease`
//! (so the quota used is counted again and no release is logged twice),
//! every revocation and every own `DayKeyErasure`. `seen_size` only grows:
//! a log whose witnessed checkpoint is smaller than a size this custodian
//! already saw is refused.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ReleaseRefusal;

/// One release this custodian logged or is about to log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    /// The signed `KeyRelease` statement, hex.
    pub statement: String,
    /// Its index in the log, once the log acknowledged it.
    pub index: Option<u64>,
    /// The warrant commitment, hex.
    pub warrant: String,
}

/// A warrant this custodian learnt from a release request whose
/// commitment it found in the log: what it needs to unseal it later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownWarrant {
    /// The commitment salt, hex.
    pub salt: String,
    /// The encoded, court-signed warrant, hex.
    pub warrant: String,
}

/// Everything the release path must not forget across restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseState {
    /// Log entries scanned since this process started (the whole log is
    /// re-read at every start).
    pub scanned: u64,
    /// The largest witnessed log size this custodian has seen; never lowered.
    #[serde(default)]
    pub seen_size: u64,
    /// Commitments (hex) of warrants their court revoked.
    pub revoked: BTreeSet<String>,
    /// Per authority, per month (`year * 12 + month - 1`), the warrants (hex
    /// commitments) released under.
    pub quota: BTreeMap<String, BTreeMap<u32, BTreeSet<String>>>,
    /// Releases by request hash (hex).
    pub releases: BTreeMap<String, ReleaseRecord>,
    /// Days whose `DayKeyErasure` by this custodian is in the log: their
    /// shares are never used again, whatever the share store says.
    #[serde(default)]
    pub erased: BTreeSet<u32>,
    /// Warrants learnt from requests, by commitment (hex), kept to unseal
    /// them when their embargo ends.
    #[serde(default)]
    pub warrants: BTreeMap<String, KnownWarrant>,
}

/// The state file and its in-memory copy.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    state: ReleaseState,
}

impl StateFile {
    /// Opens (or starts) the state at `path`.
    pub fn open(path: &Path) -> Result<Self, ReleaseRefusal> {
        let state = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| ReleaseRefusal::Internal(format!("release state: {e}")))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ReleaseState::default(),
            Err(e) => return Err(ReleaseRefusal::Internal(format!("release state: {e}"))),
        };
        Ok(Self {
            path: path.to_path_buf(),
            state,
        })
    }

    /// The current state.
    pub fn get(&self) -> &ReleaseState {
        &self.state
    }

    /// Applies `change` and makes the result durable before returning; on a
    /// failed write the in-memory state is left unchanged.
    pub fn update(&mut self, change: impl FnOnce(&mut ReleaseState)) -> Result<(), ReleaseRefusal> {
        let mut next = self.state.clone();
        change(&mut next);
        let bytes = serde_json::to_vec_pretty(&next)
            .map_err(|e| ReleaseRefusal::Internal(format!("release state: {e}")))?;
        // Commit point: after this rename the new state survives a crash.
        custos_durable::write_atomic(&self.path, &bytes)
            .map_err(|e| ReleaseRefusal::Internal(format!("release state: {e}")))?;
        self.state = next;
        Ok(())
    }
}

/// The month index `year * 12 + (month - 1)` of a UTC day number.
pub fn month_of_day(day: u32) -> u32 {
    // Civil calendar from days since 1970-01-01 (proleptic Gregorian).
    let z = i64::from(day) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    u32::try_from(year * 12 + month - 1).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_follow_the_calendar() {
        // 1970-01-01 is day 0; 2024-02-29 is day 19782; 2024-03-01 is 19783.
        assert_eq!(month_of_day(0), 1970 * 12);
        assert_eq!(month_of_day(19_782), 2024 * 12 + 1);
        assert_eq!(month_of_day(19_783), 2024 * 12 + 2);
        assert_eq!(month_of_day(19_723), 2024 * 12);
        assert_eq!(month_of_day(19_722), 2023 * 12 + 11);
    }

    #[test]
    fn state_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("release-state.json");
        let mut s = StateFile::open(&path).unwrap();
        s.update(|st| {
            st.scanned = 5;
            st.revoked.insert("ab".into());
        })
        .unwrap();
        let again = StateFile::open(&path).unwrap();
        assert_eq!(again.get(), s.get());
        assert_eq!(again.get().scanned, 5);
    }
}
