//! Key files of courts and authorities: secrets on disk with mode 0600,
//! never on the command line.

use std::path::Path;

use ed25519_dalek::SigningKey;
use hpke::kem::X25519HkdfSha256;
use hpke::{Kem as _, Serializable as _};
use rand_core::{OsRng, RngCore as _};
use zeroize::Zeroizing;

use crate::AuthorityError;

/// An authority's HPKE key pair (X25519), derived from a 32-byte secret seed
/// with RFC 9180 `DeriveKeyPair`.
pub struct HpkeKeyPair {
    seed: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for HpkeKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HpkeKeyPair")
            .field("public", &hex::encode(self.public_key()))
            .finish_non_exhaustive()
    }
}

impl HpkeKeyPair {
    /// A fresh key pair from the OS RNG.
    pub fn generate() -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(seed.as_mut());
        Self { seed }
    }

    /// The key pair of `seed` (exposes nothing).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self {
            seed: Zeroizing::new(seed),
        }
    }

    /// The public key that goes into warrants.
    pub fn public_key(&self) -> [u8; 32] {
        let (_, pk) = X25519HkdfSha256::derive_keypair(self.seed.as_ref());
        let mut out = [0u8; 32];
        out.copy_from_slice(pk.to_bytes().as_slice());
        out
    }

    /// The private key, for opening sealed shares.
    pub(crate) fn private_key(&self) -> <X25519HkdfSha256 as hpke::Kem>::PrivateKey {
        X25519HkdfSha256::derive_keypair(self.seed.as_ref()).0
    }

    /// The secret seed, for writing the key file.
    pub fn expose_seed(&self) -> &[u8; 32] {
        &self.seed
    }
}

/// Writes `secret` as hex to a new file readable by its owner only (0600);
/// refuses to overwrite an existing file.
pub fn write_secret(path: &Path, secret: &[u8]) -> Result<(), AuthorityError> {
    let text = Zeroizing::new(hex::encode(secret) + "\n");
    custos_durable::write_new(path, text.as_bytes())
        .map_err(|e| AuthorityError::KeyFile(format!("{}: {e}", path.display())))
}

/// Reads a 32-byte secret written by [`write_secret`].
pub fn read_secret(path: &Path) -> Result<Zeroizing<[u8; 32]>, AuthorityError> {
    let bad = |why: &str| AuthorityError::KeyFile(format!("{}: {why}", path.display()));
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| bad(&e.to_string()))?);
    let mut out = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text.trim(), out.as_mut()).map_err(|_| bad("expected 64 hex digits"))?;
    Ok(out)
}

/// Reads an Ed25519 signing key file.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, AuthorityError> {
    Ok(SigningKey::from_bytes(&*read_secret(path)?))
}

/// A fresh Ed25519 signing key from the OS RNG.
pub fn generate_signing_key() -> SigningKey {
    SigningKey::generate(&mut OsRng)
}
