//! The device identity: one Ed25519 key that is both the account's identity
//! key and the MLS credential (leaf signature) key.
//!
//! # Security meaning
//! Every KeyPackage, MLS commit and envelope this device produces is signed
//! with this key, so the roster entry a recipient checks an envelope against
//! is the same key the delivery service authenticated, and the one a key
//! transparency log will vouch for. The secret is kept in a file readable only
//! by its owner, zeroized in memory on drop, and never logged.

use std::path::Path;

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use openmls::prelude::SignatureScheme;
use openmls_traits::signatures::{Signer, SignerError};
use zeroize::Zeroizing;

/// An Ed25519 identity and MLS signing key. Secret; zeroized on drop.
pub struct Identity {
    key: SigningKey,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("public", &hex::encode(self.public_bytes()))
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// A fresh identity from the OS generator.
    pub fn generate() -> Self {
        Self {
            key: SigningKey::generate(&mut rand_core::OsRng),
        }
    }

    /// Loads the 32-byte secret seed from `path`.
    pub fn load(path: &Path) -> std::io::Result<Self> {
        let bytes = Zeroizing::new(std::fs::read(path)?);
        let seed: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "identity key file must hold exactly 32 bytes",
            )
        })?;
        let seed = Zeroizing::new(seed);
        Ok(Self {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// Writes the secret seed to `path`: created with mode 0600, never over
    /// an existing file, durable on return ([`custos_durable::write_new`]).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        custos_durable::write_new(path, self.key.as_bytes())
    }

    /// The public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The 32-byte public key.
    pub fn public_bytes(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The signing key, for envelope signatures.
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// Signs `msg` (which must start with a domain-separation label).
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }
}

impl Signer for Identity {
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignerError> {
        Ok(self.key.sign(payload).to_bytes().to_vec())
    }

    fn signature_scheme(&self) -> SignatureScheme {
        SignatureScheme::ED25519
    }
}
