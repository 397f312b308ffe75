//! A custodian's long-term keys and their key file.
//!
//! One file holds three 32-byte secrets:
//! - the **Ed25519 signing key** whose public half is the custodian's key in
//!   the deployment manifest: it signs log statements, DKG messages and the
//!   DKG's own acknowledgements and logs;
//! - the **HPKE seed** from which the X25519 key pair of DHKEM(X25519,
//!   HKDF-SHA256) is derived (RFC 9180 `DeriveKeyPair`): peers seal DKG
//!   private messages to its public half, which the custodian publishes in
//!   the log as a `ParticipantKey` with purpose `Hpke`;
//! - the **storage key**, from which the at-rest keys of the share files are
//!   derived. It lives in the key file, not under `--data`, so the data
//!   directory alone reveals no share.
//!
//! The file is JSON (`version`, `name`, three hex strings), written with mode
//! 0600 through a durable atomic write. Secrets are held in zeroizing buffers
//! and never printed.

use std::path::Path;

use ed25519_dalek::SigningKey;
use hpke::kem::X25519HkdfSha256;
use hpke::{Kem as _, Serializable as _};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

/// Version of the key file format.
pub const KEY_FILE_VERSION: u32 = 1;

/// Why a key file could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The file could not be read or written.
    #[error("cannot access the key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a custodian key file of this version.
    #[error("{path} is not a custodian key file of version {KEY_FILE_VERSION}: {reason}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The name is not usable in a manifest.
    #[error("custodian name `{0}` must be 1 to 128 bytes without spaces or '+'")]
    BadName(String),
}

/// A custodian's secret keys. `Debug` shows only the public halves.
pub struct CustodianKey {
    name: String,
    signing: Zeroizing<[u8; 32]>,
    hpke_seed: Zeroizing<[u8; 32]>,
    storage: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for CustodianKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustodianKey")
            .field("name", &self.name)
            .field("public_key", &hex::encode(self.public_key()))
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    version: u32,
    name: String,
    signing_key: String,
    hpke_seed: String,
    storage_key: String,
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        self.signing_key.zeroize();
        self.hpke_seed.zeroize();
        self.storage_key.zeroize();
    }
}

impl CustodianKey {
    /// Fresh keys from the operating system's RNG.
    pub fn generate(name: &str) -> Result<Self, KeyFileError> {
        check_name(name)?;
        let mut k = Self {
            name: name.to_owned(),
            signing: Zeroizing::new([0; 32]),
            hpke_seed: Zeroizing::new([0; 32]),
            storage: Zeroizing::new([0; 32]),
        };
        OsRng.fill_bytes(k.signing.as_mut());
        OsRng.fill_bytes(k.hpke_seed.as_mut());
        OsRng.fill_bytes(k.storage.as_mut());
        Ok(k)
    }

    /// Keys from given secrets (for test vectors and tools that derive keys
    /// elsewhere). Secrets chosen by anyone else than this custodian give
    /// that party its keys: use [`CustodianKey::generate`] for a real one.
    pub fn from_secrets(
        name: &str,
        signing: [u8; 32],
        hpke_seed: [u8; 32],
        storage: [u8; 32],
    ) -> Result<Self, KeyFileError> {
        check_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            signing: Zeroizing::new(signing),
            hpke_seed: Zeroizing::new(hpke_seed),
            storage: Zeroizing::new(storage),
        })
    }

    /// Writes the key file (mode 0600, durable atomic write). Refuses to
    /// overwrite an existing file, so a key cannot be lost by mistake.
    pub fn save(&self, path: &Path) -> Result<(), KeyFileError> {
        let io = |source| KeyFileError::Io {
            path: path.display().to_string(),
            source,
        };
        if path.exists() {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "refusing to overwrite an existing key file",
            )));
        }
        let file = KeyFile {
            version: KEY_FILE_VERSION,
            name: self.name.clone(),
            signing_key: hex::encode(self.signing.as_ref()),
            hpke_seed: hex::encode(self.hpke_seed.as_ref()),
            storage_key: hex::encode(self.storage.as_ref()),
        };
        let text =
            Zeroizing::new(
                serde_json::to_vec_pretty(&file).map_err(|e| KeyFileError::Format {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?,
            );
        custos_durable::write_atomic(path, &text).map_err(io)
    }

    /// Reads a key file written by [`CustodianKey::save`].
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let shown = path.display().to_string();
        let text = Zeroizing::new(std::fs::read(path).map_err(|source| KeyFileError::Io {
            path: shown.clone(),
            source,
        })?);
        let format = |reason: String| KeyFileError::Format {
            path: shown.clone(),
            reason,
        };
        let file: KeyFile = serde_json::from_slice(&text).map_err(|e| format(e.to_string()))?;
        if file.version != KEY_FILE_VERSION {
            return Err(format(format!("version {}", file.version)));
        }
        check_name(&file.name)?;
        Ok(Self {
            name: file.name.clone(),
            signing: secret32(&file.signing_key).ok_or_else(|| format("signing_key".into()))?,
            hpke_seed: secret32(&file.hpke_seed).ok_or_else(|| format("hpke_seed".into()))?,
            storage: secret32(&file.storage_key).ok_or_else(|| format("storage_key".into()))?,
        })
    }

    /// The custodian's name, as in the manifest.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Ed25519 public key that goes in the manifest.
    pub fn public_key(&self) -> [u8; 32] {
        self.signing_key().verifying_key().to_bytes()
    }

    /// The Ed25519 signing key.
    pub fn signing_key(&self) -> SigningKey {
        SigningKey::from_bytes(&self.signing)
    }

    /// The 32-byte Ed25519 seed, as the DKG takes it.
    pub fn signing_seed(&self) -> &[u8; 32] {
        &self.signing
    }

    /// The X25519 HPKE public key that peers seal DKG messages to.
    pub fn hpke_public_key(&self) -> [u8; 32] {
        let (_, pk) = X25519HkdfSha256::derive_keypair(self.hpke_seed.as_ref());
        let mut out = [0u8; 32];
        out.copy_from_slice(&pk.to_bytes());
        out
    }

    /// The X25519 HPKE private key.
    pub(crate) fn hpke_private_key(&self) -> <X25519HkdfSha256 as hpke::Kem>::PrivateKey {
        X25519HkdfSha256::derive_keypair(self.hpke_seed.as_ref()).0
    }

    /// The secret from which share-file keys are derived.
    pub(crate) fn storage_secret(&self) -> &[u8; 32] {
        &self.storage
    }
}

fn check_name(name: &str) -> Result<(), KeyFileError> {
    if name.is_empty()
        || name.len() > 128
        || name.chars().any(char::is_whitespace)
        || name.contains('+')
    {
        return Err(KeyFileError::BadName(name.to_owned()));
    }
    Ok(())
}

fn secret32(hex_text: &str) -> Option<Zeroizing<[u8; 32]>> {
    let bytes = Zeroizing::new(hex::decode(hex_text).ok()?);
    let mut out = Zeroizing::new([0u8; 32]);
    if bytes.len() != 32 {
        return None;
    }
    out.copy_from_slice(&bytes);
    Some(out)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn key_file_round_trips_with_mode_0600_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c1.key");
        let k = CustodianKey::generate("c1.test").unwrap();
        k.save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let back = CustodianKey::load(&path).unwrap();
        assert_eq!(back.name(), "c1.test");
        assert_eq!(back.public_key(), k.public_key());
        assert_eq!(back.hpke_public_key(), k.hpke_public_key());
        assert_eq!(back.storage_secret(), k.storage_secret());
        assert!(k.save(&path).is_err());
        assert!(!format!("{k:?}").contains(&hex::encode(k.signing_seed())));
        assert!(CustodianKey::generate("bad name").is_err());
    }
}
