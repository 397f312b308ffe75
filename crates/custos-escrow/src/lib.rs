//! Escrow cryptography of Custos (DESIGN.md §3): threshold Boneh–Franklin
//! identity-based encryption with daily keys, distributed key generation and
//! escrow capsules. No I/O: custodians, clients and authorities call it.
//!
//! # Guarantees
//! - **Standard construction.** [`ibe`] is BF-IBE FullIdent with the
//!   Fujisaki–Okamoto transform in drand tlock's layout (identity keys in G1,
//!   master key in G2, RFC 9380 hash-to-curve). The tests decrypt real drand
//!   fastnet and quicknet ciphertexts with published beacon signatures.
//! - **Threshold.** A custodian's partial key is a partial BLS signature,
//!   checked by pairing against its verification key, singly or in batches.
//!   `t` verified partial keys combine to the identity key; `t - 1` do not
//!   open anything. [`DayKey::combine`] takes only [`VerifiedPartial`]s,
//!   which only the verification functions build.
//! - **One key per conversation-day.** An identity key opens the capsules of
//!   one conversation on one UTC day ([`EscrowIdentity`]) and nothing else.
//! - **Capsules are deterministic and checked.** [`seal`] derives its
//!   randomness from `CK_0` and the chain id; [`verify`] recomputes and
//!   compares in constant time, so recipients reject a sender that omits or
//!   corrupts escrow. [`open`] rejects any altered capsule.
//! - **No one holds a day's master secret.** [`dkg`] runs a Joint-Feldman DKG
//!   with public complaints (acks and reveals), through commonware's
//!   maintained implementation, over an abstract bytes-in/bytes-out transport.
//! - **Secrets are wiped.** [`SecretShare`] zeroizes on drop and has an
//!   explicit [`SecretShare::erase`]; recovered `CK_0` is returned zeroizing.
//! - **Hostile bytes never panic.** Every decoder returns a typed
//!   [`DecodeError`] (wrong length, malformed point, not in subgroup,
//!   identity point, bad version or value) and accepts only canonical input.
//!
//! # Not guaranteed here
//! - Who may release partial keys (warrants, logging) is the custodians'
//!   policy, not this crate's. `t` colluding custodians can open live days.
//! - The DKG assumes authenticated, private point-to-point delivery and an
//!   agreed set of dealer logs (a broadcast, e.g. the transparency log); the
//!   transport provides them.
//! - Scalars briefly copied on the stack during arithmetic are not wiped:
//!   `blstrs` scalars are plain `Copy` values.
#![forbid(unsafe_code)]

mod capsule;
mod daykey;
pub mod dkg;
mod error;
mod fixed_base;
pub mod ibe;
pub mod point;
mod threshold;

#[cfg(test)]
mod tests;

pub use capsule::{Capsule, EscrowIdentity, IDENTITY_PREFIX, SealContext, open, seal, verify};
pub use daykey::{DAY_KEY_VERSION, DayKey, PartialCheck, VerifiedPartial, verify_partials_batch};
pub use error::{CapsuleError, DecodeError, OpenError, ThresholdError};
pub use threshold::{IdentityKey, MAX_CUSTODIANS, PartialKey, SecretShare};

/// The BLS12-381 types of `blstrs` that appear in this crate's public API
/// (day keys, identity points, ciphertexts), re-exported so that callers use
/// the exact version this crate pins instead of pinning `blstrs` themselves.
/// Most callers need only the byte encodings (`to_bytes`, `from_bytes`,
/// [`DayKey::master_bytes`], [`DayKey::verification_key_bytes`]).
pub mod curve {
    pub use blstrs::{G1Affine, G2Affine, Scalar};
}

/// Longest chain id accepted by [`seal`] and [`verify`], in bytes. The
/// messaging layer defines the chain id's encoding; this crate treats it as
/// opaque bytes.
pub const MAX_CHAIN_ID_LEN: usize = 64;

/// Operations that create key material without a distributed key
/// generation. For tests, benchmarks and local demos only.
pub mod dangerous {
    use blstrs::{G2Projective, Scalar};
    use ff::Field;
    use group::{Curve, Group};
    use rand_core::{CryptoRng, RngCore};

    use crate::{DayKey, DecodeError, SecretShare, threshold};

    /// Deals a day key with a trusted dealer: draws a master secret, shares
    /// it among `n` custodians with threshold `t`, and forgets it.
    ///
    /// Security: the dealer momentarily holds the master secret, which the
    /// design forbids in deployments; use [`crate::dkg`] there.
    pub fn trusted_deal<R: RngCore + CryptoRng>(
        day: u32,
        n: usize,
        t: usize,
        rng: &mut R,
    ) -> Result<(DayKey, Vec<SecretShare>), DecodeError> {
        let threshold = u16::try_from(t).map_err(|_| DecodeError::InvalidValue {
            what: "day key",
            reason: "threshold must be in 1..=n",
        })?;
        let secret = Scalar::random(&mut *rng);
        let master = (G2Projective::generator() * secret).to_affine();
        let shares = threshold::deal(&secret, n, t, rng);
        let vks = shares.iter().map(SecretShare::verification_key).collect();
        Ok((DayKey::new(day, threshold, master, vks)?, shares))
    }
}
