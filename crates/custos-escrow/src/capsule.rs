//! Escrow capsules: the chain root key `CK_0` of a sender chain, encrypted
//! to the identity of its conversation-day under that day's master key.
//!
//! A capsule is deterministic: `σ` is derived from `CK_0` and the chain, so
//! every recipient, who knows `CK_0`, recomputes the capsule and rejects the
//! chain if the sender's differs. A sender therefore cannot leave escrow out
//! or corrupt it without every honest recipient refusing its messages.

use std::sync::Arc;

use blstrs::{G1Affine, G2Prepared};
use hkdf::Hkdf;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::ibe::{CUSTOS_V1, Ciphertext};
use crate::threshold::IdentityKey;
use crate::{CapsuleError, DayKey, DecodeError, MAX_CHAIN_ID_LEN, OpenError};

/// Prefix of every escrow identity; it carries the format version.
pub const IDENTITY_PREFIX: &[u8; 16] = b"custos/escrow/v1";

/// Salt of the KDF that derives `σ` from `CK_0`.
const SIGMA_SALT: &[u8] = b"custos/escrow/v1/sigma";

/// The identity of one conversation on one UTC day, hashed to G1.
///
/// Its bytes are `"custos/escrow/v1" || conversation (16) || day (u32 BE)`.
/// An identity key for it opens that conversation on that day only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EscrowIdentity {
    conversation: [u8; 16],
    day: u32,
    point: G1Affine,
}

impl EscrowIdentity {
    /// Length of [`EscrowIdentity::to_bytes`].
    pub const LEN: usize = 16 + 16 + 4;

    /// Hashes the identity of `conversation` on `day` (RFC 9380, Custos tag).
    pub fn new(conversation: &[u8; 16], day: u32) -> Self {
        let mut id = Self {
            conversation: *conversation,
            day,
            point: G1Affine::default(),
        };
        id.point = CUSTOS_V1.hash_identity(&id.to_bytes());
        id
    }

    /// The identity string that is hashed.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        let (prefix, rest) = out.split_at_mut(16);
        prefix.copy_from_slice(IDENTITY_PREFIX);
        let (conv, day) = rest.split_at_mut(16);
        conv.copy_from_slice(&self.conversation);
        day.copy_from_slice(&self.day.to_be_bytes());
        out
    }

    /// The conversation id.
    pub fn conversation(&self) -> &[u8; 16] {
        &self.conversation
    }

    /// The UTC day.
    pub fn day(&self) -> u32 {
        self.day
    }

    /// `Q_id = H1(identity)`.
    pub fn point(&self) -> &G1Affine {
        &self.point
    }
}

/// An escrow capsule: a FullIdent ciphertext of `CK_0`, 160 bytes
/// `U (96, compressed G2) || V (32) || W (32)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capsule(Ciphertext<32>);

impl Capsule {
    /// Length of the encoding.
    pub const LEN: usize = 160;

    /// Canonical encoding.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        let (u, rest) = out.split_at_mut(96);
        u.copy_from_slice(&self.0.u.to_compressed());
        let (v, w) = rest.split_at_mut(32);
        v.copy_from_slice(&self.0.v);
        w.copy_from_slice(&self.0.w);
        out
    }

    /// Decodes 160 bytes, rejecting a wrong length and a `U` that is
    /// malformed, outside the subgroup, the identity or non-canonical.
    /// Decoding does not authenticate the capsule: [`verify`] and [`open`] do.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() != Self::LEN {
            return Err(DecodeError::WrongLength {
                what: "capsule",
                expected: Self::LEN,
                found: bytes.len(),
            });
        }
        Ciphertext::<32>::from_bytes(bytes).map(Self)
    }
}

/// Everything that sealing and verifying capsules for one conversation-day
/// needs, computed once: the hashed identity and the prepared master key.
///
/// A sender and its recipients keep one per conversation-day; each capsule
/// then costs one G1 and one G2 multiplication and one Miller loop.
#[derive(Clone)]
pub struct SealContext {
    identity: EscrowIdentity,
    master: Arc<G2Prepared>,
}

impl std::fmt::Debug for SealContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealContext")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl SealContext {
    /// Prepares sealing for `conversation` on `day` under `day_key`, which
    /// must be that day's key.
    pub fn new(day_key: &DayKey, conversation: &[u8; 16], day: u32) -> Result<Self, CapsuleError> {
        if day != day_key.day() {
            return Err(CapsuleError::DayMismatch {
                requested: day,
                key_day: day_key.day(),
            });
        }
        Ok(Self {
            identity: EscrowIdentity::new(conversation, day),
            master: Arc::clone(day_key.master_prepared()),
        })
    }

    /// The identity capsules are sealed to.
    pub fn identity(&self) -> &EscrowIdentity {
        &self.identity
    }

    /// Seals `ck0` for the chain `chain_id` (opaque, at most
    /// [`MAX_CHAIN_ID_LEN`] bytes). Deterministic: the same inputs always
    /// give the same capsule.
    pub fn seal(&self, chain_id: &[u8], ck0: &[u8; 32]) -> Result<Capsule, CapsuleError> {
        let sigma = derive_sigma(&self.identity, chain_id, ck0)?;
        Ok(Capsule(CUSTOS_V1.encrypt_with_sigma(
            &self.master,
            self.identity.point(),
            ck0,
            &sigma,
        )))
    }

    /// Recomputes the capsule of `ck0` and `chain_id` and compares it with
    /// `capsule` in constant time. [`CapsuleError::Mismatch`] means the
    /// sender's escrow is missing or wrong: reject the chain.
    pub fn verify(
        &self,
        capsule: &Capsule,
        chain_id: &[u8],
        ck0: &[u8; 32],
    ) -> Result<(), CapsuleError> {
        let expected = self.seal(chain_id, ck0)?;
        if bool::from(expected.to_bytes().ct_eq(&capsule.to_bytes())) {
            Ok(())
        } else {
            Err(CapsuleError::Mismatch)
        }
    }
}

/// Seals the chain root key `ck0` of chain `chain_id` in `conversation` on
/// `day`, under that day's key. See [`SealContext::seal`].
pub fn seal(
    day_key: &DayKey,
    conversation: &[u8; 16],
    day: u32,
    chain_id: &[u8],
    ck0: &[u8; 32],
) -> Result<Capsule, CapsuleError> {
    SealContext::new(day_key, conversation, day)?.seal(chain_id, ck0)
}

/// Checks that `capsule` is the one `ck0` determines. See
/// [`SealContext::verify`].
pub fn verify(
    capsule: &Capsule,
    day_key: &DayKey,
    conversation: &[u8; 16],
    day: u32,
    chain_id: &[u8],
    ck0: &[u8; 32],
) -> Result<(), CapsuleError> {
    SealContext::new(day_key, conversation, day)?.verify(capsule, chain_id, ck0)
}

/// Opens a capsule with the identity key of its conversation-day and
/// returns `CK_0`, which zeroizes itself when dropped.
///
/// [`OpenError::FoCheckFailed`] means the key is not that capsule's
/// conversation-day key, or the capsule was altered. Opening does not check
/// that the capsule belongs to a given chain id: an authority that needs
/// this provenance calls [`verify`] with the recovered `CK_0`.
pub fn open(
    capsule: &Capsule,
    identity_key: &IdentityKey,
) -> Result<Zeroizing<[u8; 32]>, OpenError> {
    CUSTOS_V1.decrypt(identity_key.point(), &capsule.0)
}

/// `σ = HKDF-SHA256(ikm = CK_0, salt = "custos/escrow/v1/sigma",
/// info = identity (36) || len(chain_id) (1) || chain_id)`.
fn derive_sigma(
    identity: &EscrowIdentity,
    chain_id: &[u8],
    ck0: &[u8; 32],
) -> Result<Zeroizing<[u8; 32]>, CapsuleError> {
    let len = u8::try_from(chain_id.len())
        .ok()
        .filter(|l| usize::from(*l) <= MAX_CHAIN_ID_LEN)
        .ok_or(CapsuleError::ChainIdTooLong {
            found: chain_id.len(),
            max: MAX_CHAIN_ID_LEN,
        })?;
    let mut info = Vec::with_capacity(EscrowIdentity::LEN + 1 + chain_id.len());
    info.extend_from_slice(&identity.to_bytes());
    info.push(len);
    info.extend_from_slice(chain_id);
    let mut sigma = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(SIGMA_SALT), ck0)
        .expand(&info, sigma.as_mut())
        .map_err(|_| CapsuleError::ChainIdTooLong {
            found: chain_id.len(),
            max: MAX_CHAIN_ID_LEN,
        })?;
    Ok(sigma)
}
