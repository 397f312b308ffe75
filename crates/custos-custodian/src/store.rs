//! The share store: one encrypted file per day, a persisted state, erasure.
//!
//! # Layout under `--data`
//! - `shares/DAY.share`: `version (1) || nonce (12) || AES-256-GCM(share)`.
//!   The key is HKDF-SHA256 of the key file's storage secret with salt
//!   `custos/v1/custodian/share-at-rest` and info `public key || day`, so
//!   the data directory alone opens nothing and each day has its own key.
//!   The associated data binds the version and the day.
//! - `days/DAY.daykey`: the public day key (not secret).
//! - `state.json`: per day, `live`, `erased` or `missed`, whether the day
//!   key and the erasure were logged, and the DKG transcript hash.
//!
//! # Commit points and crashes
//! - Storing a share: share file, day-key file, then `state.json` (the
//!   commit point). A crash before it leaves an orphan share file, which
//!   [`ShareStore::open`] erases; the day is then generated again.
//! - Erasing (the service's order, `docs/design/0011-erasure-logged-first.md`):
//!   [`ShareStore::begin_erasure`] records `erasing` (from then on the share
//!   is never read again, so nothing is released for the day, but its file
//!   stays); the service logs `DayKeyErasure` and waits for a witnessed
//!   checkpoint; only then [`ShareStore::finish_erasure`] overwrites,
//!   fsyncs and unlinks the file, fsyncs its directory, and records
//!   `erased` (logged). A crash before the statement is logged leaves an
//!   `erasing` day whose file [`ShareStore::open`] keeps; the service logs
//!   and erases it at its next tick.
//! - [`ShareStore::erase`] (erase now, log later) is kept for tools and for
//!   states written before that order; it records `erased` (not logged)
//!   first, then erases the file; [`ShareStore::open`] erases the file of
//!   any such day.
//!
//! `erased` is never undone: a day once erased answers [`ShareLookup::Erased`]
//! forever, across restarts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use custos_escrow::{DayKey, SecretShare};
use hkdf::Hkdf;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::keys::CustodianKey;

/// Version byte of a share file.
pub const SHARE_FILE_VERSION: u8 = 1;
const AT_REST_SALT: &[u8] = b"custos/v1/custodian/share-at-rest";
const AAD_LABEL: &[u8] = b"custos/v1/custodian/share";
const NONCE_LEN: usize = 12;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file could not be read or written.
    #[error("share store I/O on {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is corrupt or was encrypted under another key file.
    #[error("share store file {path} is corrupt or belongs to another key: {reason}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The operation does not apply to the day's current state.
    #[error("day {day} is {state}; cannot {action}")]
    WrongState {
        /// The day.
        day: u32,
        /// Its state.
        state: &'static str,
        /// What was attempted.
        action: &'static str,
    },
    /// The store's lock was poisoned by a panic elsewhere.
    #[error("share store lock poisoned")]
    Poisoned,
}

/// What the store knows about one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum DayStatus {
    /// The share is held (encrypted at rest).
    Live {
        /// Whether this custodian's `EscrowDayKey` for the day is in the log.
        published: bool,
    },
    /// The erasure has begun: the share is never used again, and its file
    /// is destroyed once the `DayKeyErasure` is in the log.
    Erasing,
    /// The share was erased.
    Erased {
        /// Whether the `DayKeyErasure` is in the log.
        logged: bool,
    },
    /// The other custodians generated the day without this one (it was
    /// down); it holds no share of the day.
    Missed,
}

impl DayStatus {
    /// A short name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Live { .. } => "live",
            Self::Erasing => "erasing",
            Self::Erased { .. } => "erased",
            Self::Missed => "missed",
        }
    }
}

/// The answer to "give me the share of day D".
#[derive(Debug)]
pub enum ShareLookup {
    /// The share, decrypted.
    Live(SecretShare),
    /// Erased: no one can get it from this custodian, ever.
    Erased,
    /// This custodian holds no share of the day (not generated, or missed).
    Unknown,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    days: BTreeMap<u32, DayRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DayRecord {
    #[serde(flatten)]
    status: DayStatus,
    #[serde(default)]
    transcript: String,
}

/// The encrypted share store of one custodian. Safe to share between
/// threads; every method that changes state is durable on return.
#[derive(Debug)]
pub struct ShareStore {
    dir: PathBuf,
    key: Zeroizing<[u8; 32]>,
    public_key: [u8; 32],
    state: Mutex<StateFile>,
}

impl ShareStore {
    /// Opens (or creates) the store under `data`, and finishes any erasure
    /// or share write that a crash interrupted.
    pub fn open(data: &Path, key: &CustodianKey) -> Result<Self, StoreError> {
        for sub in ["shares", "days"] {
            let p = data.join(sub);
            std::fs::create_dir_all(&p).map_err(io(&p))?;
        }
        let state_path = data.join("state.json");
        let state = match std::fs::read(&state_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|_| StoreError::Corrupt {
                path: state_path.display().to_string(),
                reason: "state.json is not valid",
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StateFile {
                version: 1,
                days: BTreeMap::new(),
            },
            Err(e) => return Err(io(&state_path)(e)),
        };
        let store = Self {
            dir: data.to_owned(),
            key: Zeroizing::new(*key.storage_secret()),
            public_key: key.public_key(),
            state: Mutex::new(state),
        };
        store.recover()?;
        Ok(store)
    }

    /// Opens the store of a running service to read it (tools and tests):
    /// finishes no interrupted work, so it never races the service's own
    /// writes. Do not change state through it.
    pub fn inspect(data: &Path, key: &CustodianKey) -> Result<Self, StoreError> {
        let state_path = data.join("state.json");
        let bytes = std::fs::read(&state_path).map_err(io(&state_path))?;
        let state = serde_json::from_slice(&bytes).map_err(|_| StoreError::Corrupt {
            path: state_path.display().to_string(),
            reason: "state.json is not valid",
        })?;
        Ok(Self {
            dir: data.to_owned(),
            key: Zeroizing::new(*key.storage_secret()),
            public_key: key.public_key(),
            state: Mutex::new(state),
        })
    }

    /// Erases every share file whose day is neither `live` nor `erasing` (an
    /// interrupted erasure, or a share written just before a crash).
    fn recover(&self) -> Result<(), StoreError> {
        let shares = self.dir.join("shares");
        let entries = std::fs::read_dir(&shares).map_err(io(&shares))?;
        let state = self.state.lock().map_err(|_| StoreError::Poisoned)?;
        for entry in entries {
            let path = entry.map_err(io(&shares))?.path();
            let day = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u32>().ok());
            let live = day
                .and_then(|d| state.days.get(&d))
                .is_some_and(|r| matches!(r.status, DayStatus::Live { .. } | DayStatus::Erasing));
            if !live {
                custos_durable::erase_file(&path).map_err(io(&path))?;
            }
        }
        Ok(())
    }

    /// The status of `day`, if the store knows it.
    pub fn status(&self, day: u32) -> Result<Option<DayStatus>, StoreError> {
        let state = self.state.lock().map_err(|_| StoreError::Poisoned)?;
        Ok(state.days.get(&day).map(|r| r.status))
    }

    /// Every known day with its status and transcript hash (hex).
    pub fn days(&self) -> Result<Vec<(u32, DayStatus, String)>, StoreError> {
        let state = self.state.lock().map_err(|_| StoreError::Poisoned)?;
        Ok(state
            .days
            .iter()
            .map(|(d, r)| (*d, r.status, r.transcript.clone()))
            .collect())
    }

    /// Stores the share and public key of a freshly generated day. Durable on
    /// return; the day is then `live` and not yet published.
    pub fn put(
        &self,
        day: u32,
        share: &SecretShare,
        day_key: &DayKey,
        transcript: &[u8; 32],
    ) -> Result<(), StoreError> {
        let mut state = self.state.lock().map_err(|_| StoreError::Poisoned)?;
        if let Some(r) = state.days.get(&day) {
            return Err(StoreError::WrongState {
                day,
                state: r.status.name(),
                action: "store a new share",
            });
        }
        let plain = share.to_bytes();
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher(day)
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_ref(),
                    aad: &aad(day),
                },
            )
            .map_err(|_| StoreError::Corrupt {
                path: self.share_path(day).display().to_string(),
                reason: "encryption failed",
            })?;
        let mut file = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        file.push(SHARE_FILE_VERSION);
        file.extend_from_slice(&nonce);
        file.extend_from_slice(&sealed);
        let share_path = self.share_path(day);
        custos_durable::write_atomic(&share_path, &file).map_err(io(&share_path))?;
        let key_path = self.day_key_path(day);
        custos_durable::write_atomic(&key_path, &day_key.to_bytes()).map_err(io(&key_path))?;
        state.days.insert(
            day,
            DayRecord {
                status: DayStatus::Live { published: false },
                transcript: hex::encode(transcript),
            },
        );
        // Commit point: the day is live once state.json names it.
        self.persist(&state)
    }

    /// The share of `day`, decrypted, or why there is none.
    pub fn share(&self, day: u32) -> Result<ShareLookup, StoreError> {
        let state = self.state.lock().map_err(|_| StoreError::Poisoned)?;
        match state.days.get(&day).map(|r| r.status) {
            Some(DayStatus::Erased { .. } | DayStatus::Erasing) => return Ok(ShareLookup::Erased),
            Some(DayStatus::Live { .. }) => {}
            Some(DayStatus::Missed) | None => return Ok(ShareLookup::Unknown),
        }
        let path = self.share_path(day);
        let corrupt = |reason| StoreError::Corrupt {
            path: path.display().to_string(),
            reason,
        };
        let file = std::fs::read(&path).map_err(io(&path))?;
        let (version, rest) = file.split_first().ok_or(corrupt("empty"))?;
        if *version != SHARE_FILE_VERSION {
            return Err(corrupt("unknown version"));
        }
        let (nonce, sealed) = rest
            .split_at_checked(NONCE_LEN)
            .ok_or(corrupt("too short"))?;
        let plain = Zeroizing::new(
            self.cipher(day)
                .decrypt(
                    Nonce::from_slice(nonce),
                    Payload {
                        msg: sealed,
                        aad: &aad(day),
                    },
                )
                .map_err(|_| corrupt("does not decrypt under this key file"))?,
        );
        let share = SecretShare::from_bytes(&plain).map_err(|_| corrupt("not a share"))?;
        Ok(ShareLookup::Live(share))
    }

    /// The public day key of `day`, if this custodian generated it.
    pub fn day_key(&self, day: u32) -> Result<Option<DayKey>, StoreError> {
        let path = self.day_key_path(day);
        match std::fs::read(&path) {
            Ok(bytes) => DayKey::from_bytes(&bytes)
                .map(Some)
                .map_err(|_| StoreError::Corrupt {
                    path: path.display().to_string(),
                    reason: "not a day key",
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Records that this custodian's `EscrowDayKey` for `day` is logged.
    pub fn mark_published(&self, day: u32) -> Result<(), StoreError> {
        self.transition(day, "mark published", |s| match s {
            DayStatus::Live { .. } => Some(DayStatus::Live { published: true }),
            _ => None,
        })
    }

    /// Records that the day was generated without this custodian.
    pub fn mark_missed(&self, day: u32) -> Result<(), StoreError> {
        let mut state = self.state.lock().map_err(|_| StoreError::Poisoned)?;
        if state.days.contains_key(&day) {
            return Ok(());
        }
        state.days.insert(
            day,
            DayRecord {
                status: DayStatus::Missed,
                transcript: String::new(),
            },
        );
        self.persist(&state)
    }

    /// Erases the share of `day`: records `erased` (durably, so the share is
    /// never read again), then overwrites, fsyncs and unlinks its file and
    /// fsyncs the directory. Idempotent.
    pub fn erase(&self, day: u32) -> Result<(), StoreError> {
        {
            let mut state = self.state.lock().map_err(|_| StoreError::Poisoned)?;
            let Some(record) = state.days.get_mut(&day) else {
                return Err(StoreError::WrongState {
                    day,
                    state: "unknown",
                    action: "erase",
                });
            };
            if let DayStatus::Live { .. } | DayStatus::Erasing = record.status {
                record.status = DayStatus::Erased { logged: false };
                self.persist(&state)?;
            }
        }
        let path = self.share_path(day);
        custos_durable::erase_file(&path).map_err(io(&path))
    }

    /// Begins the erasure of `day`: records `erasing` durably, so the share
    /// is never read again; its file stays until [`Self::finish_erasure`].
    /// Idempotent.
    pub fn begin_erasure(&self, day: u32) -> Result<(), StoreError> {
        self.transition(day, "begin the erasure", |s| match s {
            DayStatus::Live { .. } | DayStatus::Erasing => Some(DayStatus::Erasing),
            _ => None,
        })
    }

    /// Ends the erasure of `day` once its `DayKeyErasure` is in the log:
    /// overwrites, fsyncs and unlinks the share file, fsyncs its directory,
    /// then records `erased` (logged). Idempotent.
    pub fn finish_erasure(&self, day: u32) -> Result<(), StoreError> {
        match self.status(day)? {
            Some(DayStatus::Erasing | DayStatus::Erased { .. }) => {}
            other => {
                return Err(StoreError::WrongState {
                    day,
                    state: other.map_or("unknown", |s| s.name()),
                    action: "finish the erasure",
                });
            }
        }
        let path = self.share_path(day);
        custos_durable::erase_file(&path).map_err(io(&path))?;
        self.transition(day, "finish the erasure", |s| match s {
            DayStatus::Erasing | DayStatus::Erased { .. } => {
                Some(DayStatus::Erased { logged: true })
            }
            _ => None,
        })
    }

    /// Records that the `DayKeyErasure` of `day` is logged.
    pub fn mark_erasure_logged(&self, day: u32) -> Result<(), StoreError> {
        self.transition(day, "mark the erasure logged", |s| match s {
            DayStatus::Erased { .. } => Some(DayStatus::Erased { logged: true }),
            _ => None,
        })
    }

    fn transition(
        &self,
        day: u32,
        action: &'static str,
        f: impl Fn(DayStatus) -> Option<DayStatus>,
    ) -> Result<(), StoreError> {
        let mut state = self.state.lock().map_err(|_| StoreError::Poisoned)?;
        let record = state.days.get_mut(&day).ok_or(StoreError::WrongState {
            day,
            state: "unknown",
            action,
        })?;
        let next = f(record.status).ok_or(StoreError::WrongState {
            day,
            state: record.status.name(),
            action,
        })?;
        if next == record.status {
            return Ok(());
        }
        record.status = next;
        self.persist(&state)
    }

    fn persist(&self, state: &StateFile) -> Result<(), StoreError> {
        let path = self.dir.join("state.json");
        let bytes = serde_json::to_vec_pretty(state).map_err(|_| StoreError::Corrupt {
            path: path.display().to_string(),
            reason: "cannot encode state",
        })?;
        custos_durable::write_atomic(&path, &bytes).map_err(io(&path))
    }

    fn cipher(&self, day: u32) -> Aes256Gcm {
        let hk = Hkdf::<Sha256>::new(Some(AT_REST_SALT), self.key.as_ref());
        let mut info = Vec::with_capacity(36);
        info.extend_from_slice(&self.public_key);
        info.extend_from_slice(&day.to_be_bytes());
        let mut okm = Zeroizing::new([0u8; 32]);
        // 32 bytes is always a valid HKDF-SHA256 output length.
        let _ = hk.expand(&info, okm.as_mut());
        Aes256Gcm::new(okm.as_ref().into())
    }

    fn share_path(&self, day: u32) -> PathBuf {
        self.dir.join("shares").join(format!("{day}.share"))
    }

    fn day_key_path(&self, day: u32) -> PathBuf {
        self.dir.join("days").join(format!("{day}.daykey"))
    }
}

fn aad(day: u32) -> Vec<u8> {
    let mut a = Vec::with_capacity(AAD_LABEL.len() + 5);
    a.extend_from_slice(AAD_LABEL);
    a.push(SHARE_FILE_VERSION);
    a.extend_from_slice(&day.to_be_bytes());
    a
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests;
