//! The deployment manifest as the device's trust root.
//!
//! # Security meaning
//! A device pins one manifest when it registers, and every later check (the
//! log's key, the witnesses and their quorum, the custodians whose day keys
//! it accepts, their threshold, the day grace) uses that pinned copy, kept
//! in its home directory. The manifest is pinned only if:
//! - it is the one the operator gave (`--manifest FILE`), or the log serves a
//!   manifest whose SHA-256 equals the hash the operator gave out of band
//!   (compared in constant time); and
//! - the log published that hash ([`custos_wire::statement::ManifestPublication`],
//!   signed by the log key the manifest names) in a checkpoint with the
//!   manifest's witness quorum (checked by [`crate::logsync`]).
//!
//! A manifest that is replaced later is not followed silently: the device
//! keeps its pinned copy and reports other published hashes.

use std::path::{Path, PathBuf};

use custos_tlog::{ClientError, LogClient};
use custos_wire::manifest::{Manifest, ManifestError};
use subtle::ConstantTimeEq as _;

/// File in the device's home that holds the pinned manifest.
pub const MANIFEST_FILE: &str = "manifest.toml";

/// Why a manifest could not be pinned or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PinError {
    /// The manifest is not valid.
    #[error("the manifest is not valid: {0}")]
    Manifest(#[from] ManifestError),
    /// The log could not be asked for its manifest.
    #[error("cannot fetch the manifest from the log: {0}")]
    Fetch(#[from] ClientError),
    /// The log serves another manifest than the operator's hash names.
    #[error(
        "the log serves a manifest with SHA-256 {found}, not the {expected} you were given; \
         do not register against this log until the operator confirms the hash"
    )]
    HashMismatch {
        /// The hash given by the operator (hex).
        expected: String,
        /// The hash of the served manifest (hex).
        found: String,
    },
    /// The log holds no witnessed publication of this manifest's hash.
    #[error(
        "the log has not published manifest {hash} under the log key it names, in a checkpoint \
         with the witness quorum; check that this is the deployment's manifest and that the \
         log and its witnesses are running"
    )]
    NotPublished {
        /// The manifest's SHA-256 (hex).
        hash: String,
    },
    /// The pinned copy could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// A manifest chosen for pinning, and the log it names.
#[derive(Debug, Clone)]
pub struct ManifestPin {
    manifest: Manifest,
    log_url: String,
    /// The log's client, made on first use and shared by clones.
    log: std::sync::Arc<std::sync::OnceLock<LogClient>>,
    /// The follower of the last round, kept for the next (shared by clones).
    follower: std::sync::Arc<std::sync::Mutex<Option<crate::follower::LogFollower>>>,
}

impl ManifestPin {
    /// The manifest in `text` (given by the operator), for the log at `log_url`.
    pub fn from_toml(log_url: &str, text: &str) -> Result<Self, PinError> {
        Ok(Self {
            manifest: Manifest::from_toml(text)?,
            log_url: log_url.to_owned(),
            log: Default::default(),
            follower: Default::default(),
        })
    }

    /// The manifest the log at `log_url` serves, if its SHA-256 is `expected`.
    pub async fn fetch(log_url: &str, expected: &[u8; 32]) -> Result<Self, PinError> {
        let text = LogClient::new(log_url)?.manifest().await?;
        let manifest = Manifest::from_toml(&text)?;
        let found = manifest.hash()?;
        if !bool::from(found.ct_eq(expected)) {
            return Err(PinError::HashMismatch {
                expected: hex::encode(expected),
                found: hex::encode(found),
            });
        }
        Ok(Self {
            manifest,
            log_url: log_url.to_owned(),
            log: Default::default(),
            follower: Default::default(),
        })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The log's URL.
    pub fn log_url(&self) -> &str {
        &self.log_url
    }

    /// The log's HTTP client, made once and shared by every clone of this
    /// pin, so that its connections to the log are kept between rounds.
    pub(crate) fn log_client(&self) -> Result<LogClient, PinError> {
        if let Some(client) = self.log.get() {
            return Ok(client.clone());
        }
        let client = LogClient::new(&self.log_url)?;
        Ok(self.log.get_or_init(|| client).clone())
    }

    /// The follower kept by [`ManifestPin::keep_follower`], if its last
    /// accepted checkpoint is `last` (the one the device store holds):
    /// the same follower a new one made from `last` would be, without
    /// verifying again the checkpoint this process verified.
    pub(crate) fn kept_follower(
        &self,
        last: Option<&[u8]>,
    ) -> Option<crate::follower::LogFollower> {
        let kept = self.follower.lock().ok()?.take()?;
        (kept.last_note() == last).then_some(kept)
    }

    /// Keeps `follower` for the next round.
    pub(crate) fn keep_follower(&self, follower: crate::follower::LogFollower) {
        if let Ok(mut kept) = self.follower.lock() {
            *kept = Some(follower);
        }
    }

    /// Writes the pinned copy into `home`, durably.
    pub(crate) fn save(&self, home: &Path) -> Result<(), PinError> {
        let path = home.join(MANIFEST_FILE);
        let text = self.manifest.to_toml()?;
        custos_durable::write_atomic(&path, text.as_bytes()).map_err(|source| PinError::Io {
            path: path.clone(),
            source,
        })
    }

    /// Loads the pinned copy from `home`, if there is one.
    pub(crate) fn load(home: &Path, log_url: Option<String>) -> Result<Option<Self>, PinError> {
        let path = home.join(MANIFEST_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(PinError::Io { path, source }),
        };
        let manifest = Manifest::from_toml(&text)?;
        Ok(Some(Self {
            manifest,
            log_url: log_url.unwrap_or_default(),
            log: Default::default(),
            follower: Default::default(),
        }))
    }
}
