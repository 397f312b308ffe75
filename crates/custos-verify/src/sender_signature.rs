//! The rule that decides whether a sender's envelope signature is valid,
//! one envelope at a time or many at once.
//!
//! The rule is Ed25519 (RFC 8032 signing) verified by ZIP-215's rules, as
//! `ed25519-zebra` implements them: `s` must be canonical (below the group
//! order), `R` and `A` must decode to curve points, and the cofactored
//! equation `[8][s]B = [8]R + [8][k]A` must hold. On top of ZIP-215 the
//! sender key must not be of small order ([`SenderKey::from_bytes`]), since
//! anyone can make a signature that verifies under such a key.
//!
//! # Why this rule and not `verify_strict`
//! The rule must give the same answer whether envelopes are checked one by
//! one (a device receiving) or in a batch (an authority or a court checking
//! 100,000 kept envelopes): evidence must say exactly what the recipients'
//! devices said. ZIP-215's cofactored equation has that property; the
//! cofactorless `verify_strict` has no batch form that agrees with it
//! (a small-order error term passes a random-weight batch with probability
//! up to one half). `docs/design/0013-envelope-signatures.md` gives the
//! reasoning and the security argument.
//!
//! # Guarantees
//! - [`verify`] and [`SignatureBatch::verify`] accept exactly the same
//!   signatures, except with probability at most 2⁻¹²⁸ over the batch's own
//!   random weights (drawn from the operating system).
//! - Every signature `verify_strict` accepts, this rule accepts. The only
//!   signatures this rule accepts beyond it need the signer's private key to
//!   make (a torsion component added to `R` by the signer), so attribution
//!   to the sender's key is unchanged.
//! - A sender key of small order is refused before any signature is looked at.

use ed25519_dalek::VerifyingKey;

/// Why a sender key cannot be used to check signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SenderKeyError {
    /// The 32 bytes are not the encoding of a curve point.
    #[error("the sender key is not an Ed25519 point")]
    NotAPoint,
    /// The key is of small order: signatures under it prove nothing.
    #[error("the sender key is of small order (weak)")]
    Weak,
}

/// The signature does not verify under the sender key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the envelope signature does not verify under the sender key")]
pub struct BadSenderSignature;

/// A sender's Ed25519 key, decoded and checked once (not of small order),
/// ready to check any number of signatures.
#[derive(Clone)]
pub struct SenderKey {
    bytes: [u8; 32],
    key: ed25519_zebra::VerificationKey,
}

impl std::fmt::Debug for SenderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SenderKey")
            .field(&hex::encode(self.bytes))
            .finish()
    }
}

impl SenderKey {
    /// Decodes a sender key and refuses one of small order.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, SenderKeyError> {
        let point = VerifyingKey::from_bytes(bytes).map_err(|_| SenderKeyError::NotAPoint)?;
        if point.is_weak() {
            return Err(SenderKeyError::Weak);
        }
        let key = ed25519_zebra::VerificationKey::try_from(*bytes)
            .map_err(|_| SenderKeyError::NotAPoint)?;
        Ok(Self { bytes: *bytes, key })
    }

    /// The key's 32-byte encoding, as the sender registered it.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.bytes
    }
}

impl TryFrom<&VerifyingKey> for SenderKey {
    type Error = SenderKeyError;

    fn try_from(key: &VerifyingKey) -> Result<Self, Self::Error> {
        Self::from_bytes(key.as_bytes())
    }
}

/// Sender keys decoded once and kept, so that checking many envelopes of
/// the same senders does not decode (and check) their keys again; at most
/// [`SenderKeyCache::CAPACITY`] keys, forgotten all at once when full.
#[derive(Debug, Default)]
pub struct SenderKeyCache {
    keys: std::collections::HashMap<[u8; 32], SenderKey>,
}

impl SenderKeyCache {
    /// How many keys the cache holds at most.
    pub const CAPACITY: usize = 4096;

    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The decoded key for `bytes`, decoding (and refusing a weak key) on
    /// first use. A refused key is not remembered.
    pub fn get(&mut self, bytes: &[u8; 32]) -> Result<&SenderKey, SenderKeyError> {
        if !self.keys.contains_key(bytes) {
            if self.keys.len() >= Self::CAPACITY {
                self.keys.clear();
            }
            self.keys.insert(*bytes, SenderKey::from_bytes(bytes)?);
        }
        self.keys.get(bytes).ok_or(SenderKeyError::NotAPoint)
    }
}

/// Checks one signature over `signed` under `key` by the rule of this module.
pub fn verify(
    key: &SenderKey,
    signed: &[u8],
    signature: &[u8; 64],
) -> Result<(), BadSenderSignature> {
    key.key
        .verify(&ed25519_zebra::Signature::from_bytes(signature), signed)
        .map_err(|_| BadSenderSignature)
}

/// Many signatures checked at once by the rule of this module; about four
/// times cheaper per signature than [`verify`] when senders sign many
/// envelopes each (terms of one key are combined).
#[derive(Default)]
pub struct SignatureBatch {
    inner: ed25519_zebra::batch::Verifier,
    len: usize,
}

impl SignatureBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one signature over `signed` under `key`. The message is hashed
    /// now; the batch keeps no reference to it.
    pub fn queue(&mut self, key: &SenderKey, signed: &[u8], signature: &[u8; 64]) {
        let key_bytes = ed25519_zebra::VerificationKeyBytes::from(key.bytes);
        let signature = ed25519_zebra::Signature::from_bytes(signature);
        self.inner.queue((key_bytes, signature, signed));
        self.len += 1;
    }

    /// How many signatures are queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no signature is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when every queued signature is valid (an empty batch is valid).
    /// False when at least one is not; the batch does not say which, so a
    /// caller that needs to know checks them one by one with [`verify`].
    pub fn verify(self) -> bool {
        if self.len == 0 {
            return true;
        }
        self.inner.verify(rand_core::OsRng).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
    use curve25519_dalek::scalar::Scalar;
    use ed25519_dalek::{Signer as _, SigningKey};
    use sha2::{Digest as _, Sha512};

    fn signer(seed: u8) -> (SigningKey, SenderKey) {
        let sk = SigningKey::from_bytes(&[seed; 32]);
        let key = SenderKey::try_from(&sk.verifying_key()).unwrap();
        (sk, key)
    }

    /// A signature whose `R` carries a torsion component of order 8: only
    /// the holder of the private key can make one. `verify_strict` refuses
    /// it; the cofactored rule accepts it, alone and in a batch alike.
    fn torsioned_signature(sk: &SigningKey, msg: &[u8]) -> [u8; 64] {
        let a = sk.to_scalar();
        let r = Scalar::from_bytes_mod_order([7; 32]);
        let big_r = ED25519_BASEPOINT_POINT * r + EIGHT_TORSION[1];
        let r_bytes = big_r.compress().to_bytes();
        let k = Scalar::from_hash(
            Sha512::new()
                .chain_update(r_bytes)
                .chain_update(sk.verifying_key().as_bytes())
                .chain_update(msg),
        );
        let s = r + k * a;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&r_bytes);
        sig[32..].copy_from_slice(s.as_bytes());
        sig
    }

    #[test]
    fn a_genuine_signature_verifies_alone_and_in_a_batch() {
        let (sk, key) = signer(1);
        let sig = sk.sign(b"hello").to_bytes();
        assert_eq!(verify(&key, b"hello", &sig), Ok(()));
        let mut batch = SignatureBatch::new();
        batch.queue(&key, b"hello", &sig);
        assert!(batch.verify());
    }

    #[test]
    fn a_changed_message_or_signature_fails_alone_and_in_a_batch() {
        let (sk, key) = signer(2);
        let sig = sk.sign(b"hello").to_bytes();
        assert_eq!(verify(&key, b"hellO", &sig), Err(BadSenderSignature));
        for i in [0, 31, 32, 63] {
            let mut bad = sig;
            bad[i] ^= 1;
            assert!(verify(&key, b"hello", &bad).is_err(), "byte {i}");
            let mut batch = SignatureBatch::new();
            batch.queue(&key, b"hello", &sig);
            batch.queue(&key, b"hello", &bad);
            assert!(!batch.verify(), "byte {i}");
        }
    }

    #[test]
    fn a_non_canonical_s_is_refused() {
        let (sk, key) = signer(3);
        let mut sig = sk.sign(b"m").to_bytes();
        // s + l: the same scalar, not canonically encoded.
        // l, the order of the base point (RFC 8032, section 5.1), little-endian.
        let l: [u8; 32] =
            hex::decode("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")
                .unwrap()
                .try_into()
                .unwrap();
        let s = Scalar::from_canonical_bytes(sig[32..].try_into().unwrap()).unwrap();
        let mut wide = [0u8; 33];
        let mut carry = 0u16;
        for i in 0..32 {
            let v = u16::from(s.as_bytes()[i]) + u16::from(l[i]) + carry;
            wide[i] = v as u8;
            carry = v >> 8;
        }
        wide[32] = carry as u8;
        assert_eq!(wide[32], 0, "s + l fits in 32 bytes for this s");
        sig[32..].copy_from_slice(&wide[..32]);
        assert!(verify(&key, b"m", &sig).is_err());
        let mut batch = SignatureBatch::new();
        batch.queue(&key, b"m", &sig);
        assert!(!batch.verify());
    }

    #[test]
    fn single_and_batch_agree_on_a_torsioned_r() {
        let (sk, key) = signer(4);
        let sig = torsioned_signature(&sk, b"m");
        let strict = custos_wire::signature::verify_strict(
            &sk.verifying_key(),
            b"m",
            &ed25519_dalek::Signature::from_bytes(&sig),
        );
        assert!(strict.is_err(), "verify_strict refuses a torsioned R");
        assert_eq!(verify(&key, b"m", &sig), Ok(()));
        // Many times, so a batch with unlucky weights would show.
        for _ in 0..32 {
            let mut batch = SignatureBatch::new();
            batch.queue(&key, b"m", &sig);
            batch.queue(&key, b"other", &sk.sign(b"other").to_bytes());
            assert!(batch.verify());
        }
    }

    #[test]
    fn a_torsioned_r_under_the_wrong_message_fails_every_batch() {
        let (sk, key) = signer(5);
        let sig = torsioned_signature(&sk, b"m");
        assert!(verify(&key, b"not m", &sig).is_err());
        for _ in 0..32 {
            let mut batch = SignatureBatch::new();
            batch.queue(&key, b"not m", &sig);
            assert!(!batch.verify());
        }
    }

    #[test]
    fn small_order_keys_are_refused() {
        for point in EIGHT_TORSION {
            let bytes = point.compress().to_bytes();
            assert!(
                matches!(
                    SenderKey::from_bytes(&bytes),
                    Err(SenderKeyError::Weak | SenderKeyError::NotAPoint)
                ),
                "{}",
                hex::encode(bytes)
            );
        }
        assert_eq!(
            SenderKey::from_bytes(&[0; 32]).unwrap_err(),
            SenderKeyError::Weak
        );
    }

    #[test]
    fn the_cache_gives_the_decoded_key_and_refuses_a_weak_one() {
        let (_, key) = signer(6);
        let mut cache = SenderKeyCache::new();
        assert_eq!(
            cache.get(&key.to_bytes()).unwrap().to_bytes(),
            key.to_bytes()
        );
        assert_eq!(cache.get(&[0; 32]).unwrap_err(), SenderKeyError::Weak);
        assert_eq!(cache.keys.len(), 1);
    }

    #[test]
    fn an_empty_batch_is_valid() {
        assert!(SignatureBatch::new().verify());
    }
}
