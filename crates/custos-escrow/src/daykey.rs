//! The public key material of one day: master public key, custodians'
//! verification keys and threshold, with a canonical encoding.

use std::sync::Arc;

use blstrs::{G2Affine, G2Prepared, G2Projective, Scalar};
use group::Curve;
use rand_core::{CryptoRng, RngCore};

use crate::capsule::EscrowIdentity;
use crate::point::{G2_LEN, decode_g2};
use crate::threshold::{self, BatchItem, IdentityKey, MAX_CUSTODIANS, PartialKey, lagrange_at};
use crate::{DecodeError, ThresholdError};

/// Version byte of the [`DayKey`] encoding.
pub const DAY_KEY_VERSION: u8 = 1;

/// The public key of one UTC day (`day = unix_seconds / 86400`): the master
/// public key `P = s·G2`, the verification keys `s_i·G2` of the `n`
/// custodians and the threshold `t`.
///
/// Security: a `DayKey` is always consistent. Construction and decoding
/// check that the verification keys lie on one polynomial of degree `t - 1`
/// whose value at zero is `P`, so any `t` verified partial keys combine to
/// the identity key under `P`. It holds no secret.
#[derive(Clone)]
pub struct DayKey {
    day: u32,
    threshold: u16,
    master: G2Affine,
    verification_keys: Vec<G2Affine>,
    master_prepared: Arc<G2Prepared>,
}

impl std::fmt::Debug for DayKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DayKey")
            .field("day", &self.day)
            .field("threshold", &self.threshold)
            .field("custodians", &self.verification_keys.len())
            .field("master", &self.master)
            .finish_non_exhaustive()
    }
}

impl PartialEq for DayKey {
    fn eq(&self, other: &Self) -> bool {
        self.day == other.day
            && self.threshold == other.threshold
            && self.master == other.master
            && self.verification_keys == other.verification_keys
    }
}

impl Eq for DayKey {}

impl DayKey {
    /// Builds a day key, checking `1 <= t <= n <= 64`, that no key is the
    /// identity, and that the keys are consistent (see the type's docs).
    pub fn new(
        day: u32,
        threshold: u16,
        master: G2Affine,
        verification_keys: Vec<G2Affine>,
    ) -> Result<Self, DecodeError> {
        const WHAT: &str = "day key";
        let n = verification_keys.len();
        if n == 0 || n > MAX_CUSTODIANS {
            return Err(DecodeError::InvalidValue {
                what: WHAT,
                reason: "number of custodians must be in 1..=64",
            });
        }
        if threshold == 0 || usize::from(threshold) > n {
            return Err(DecodeError::InvalidValue {
                what: WHAT,
                reason: "threshold must be in 1..=n",
            });
        }
        let all = std::iter::once(&master).chain(verification_keys.iter());
        if all
            .into_iter()
            .any(|p| bool::from(group::prime::PrimeCurveAffine::is_identity(p)))
        {
            return Err(DecodeError::IdentityPoint { what: WHAT });
        }
        let t = usize::from(threshold);
        let xs: Vec<u32> = (1..=t as u32).collect();
        let base: Vec<G2Projective> = verification_keys
            .iter()
            .take(t)
            .map(G2Projective::from)
            .collect();
        let at = |x: &Scalar| -> Result<G2Affine, DecodeError> {
            let l = lagrange_at(&xs, x).map_err(|_| DecodeError::InvalidValue {
                what: WHAT,
                reason: "internal interpolation error",
            })?;
            Ok(G2Projective::multi_exp(&base, &l).to_affine())
        };
        let inconsistent = DecodeError::InvalidValue {
            what: WHAT,
            reason: "verification keys do not interpolate to the master key",
        };
        if at(&Scalar::from(0u64))? != master {
            return Err(inconsistent);
        }
        for (j, vk) in verification_keys.iter().enumerate().skip(t) {
            if at(&Scalar::from(j as u64 + 1))? != *vk {
                return Err(inconsistent);
            }
        }
        Ok(Self {
            day,
            threshold,
            master,
            verification_keys,
            master_prepared: Arc::new(G2Prepared::from(master)),
        })
    }

    /// The UTC day this key belongs to.
    pub fn day(&self) -> u32 {
        self.day
    }

    /// Number of partial keys needed to form an identity key.
    pub fn threshold(&self) -> usize {
        usize::from(self.threshold)
    }

    /// Number of custodians.
    pub fn custodians(&self) -> usize {
        self.verification_keys.len()
    }

    /// The master public key `P`.
    pub fn master(&self) -> &G2Affine {
        &self.master
    }

    /// The master public key prepared for pairings (cached).
    pub(crate) fn master_prepared(&self) -> &Arc<G2Prepared> {
        &self.master_prepared
    }

    /// The verification key of custodian `index` (1-based), if it exists.
    pub fn verification_key(&self, index: u32) -> Option<&G2Affine> {
        let i = usize::try_from(index).ok()?.checked_sub(1)?;
        self.verification_keys.get(i)
    }

    /// All verification keys, custodian 1 first.
    pub fn verification_keys(&self) -> &[G2Affine] {
        &self.verification_keys
    }

    /// The master public key `P`, compressed (96 bytes).
    pub fn master_bytes(&self) -> [u8; G2_LEN] {
        self.master.to_compressed()
    }

    /// The verification key of custodian `index` (1-based), compressed
    /// (96 bytes), if it exists.
    pub fn verification_key_bytes(&self, index: u32) -> Option<[u8; G2_LEN]> {
        self.verification_key(index).map(G2Affine::to_compressed)
    }

    /// Checks one partial key with a pairing against its custodian's
    /// verification key. Security: a partial key that passes is exactly
    /// `s_i·H1(id)` for this custodian and identity; the returned
    /// [`VerifiedPartial`] is what [`DayKey::combine`] takes.
    pub fn verify_partial(
        &self,
        identity: &EscrowIdentity,
        partial: &PartialKey,
    ) -> Result<VerifiedPartial, ThresholdError> {
        let vk = self.vk_for(partial.index)?;
        if threshold::verify_one(vk, identity.point(), partial) {
            Ok(VerifiedPartial::new(self, identity, partial))
        } else {
            Err(ThresholdError::InvalidPartial {
                index: partial.index,
            })
        }
    }

    /// Whether `key` is this day's identity key for `identity`: a BLS
    /// signature check, `e(key, G2) = e(H1(identity), master)`. Anyone can
    /// run it with public values, so released evidence proves that its keys
    /// are the conversation-days' keys without trusting who combined them.
    pub fn verify_identity_key(&self, identity: &EscrowIdentity, key: &IdentityKey) -> bool {
        threshold::verify_point(&self.master, identity.point(), key.point())
    }

    /// Checks many partial keys for one identity at once (random linear
    /// combination and one multi-pairing); on failure the error lists the
    /// custodians whose keys are wrong. `rng` must be a cryptographic RNG.
    /// Returns the partial keys as [`VerifiedPartial`]s, in the same order.
    pub fn verify_partials<R: RngCore + CryptoRng>(
        &self,
        identity: &EscrowIdentity,
        partials: &[PartialKey],
        rng: &mut R,
    ) -> Result<Vec<VerifiedPartial>, ThresholdError> {
        if partials.is_empty() {
            return Err(ThresholdError::Empty);
        }
        let mut items = Vec::with_capacity(partials.len());
        for p in partials {
            items.push(BatchItem {
                vk: self.vk_for(p.index)?,
                q_id: identity.point(),
                partial: p,
            });
        }
        threshold::verify_batch(&items, rng).map_err(|bad| ThresholdError::InvalidPartials {
            indices: bad
                .iter()
                .filter_map(|pos| partials.get(*pos).map(|p| p.index))
                .collect(),
        })?;
        Ok(partials
            .iter()
            .map(|p| VerifiedPartial::new(self, identity, p))
            .collect())
    }

    /// Combines `t` verified partial keys with distinct indices into the
    /// identity key of `identity` (Lagrange interpolation; extra keys beyond
    /// the first `t` are ignored).
    ///
    /// Security: only partial keys verified for this identity under this
    /// day key are accepted ([`ThresholdError::NotVerifiedFor`] otherwise),
    /// so the result is the identity key whenever it is returned.
    pub fn combine(
        &self,
        identity: &EscrowIdentity,
        partials: &[VerifiedPartial],
    ) -> Result<IdentityKey, ThresholdError> {
        let mut keys = Vec::with_capacity(partials.len());
        for p in partials {
            if p.identity != *identity || p.master != self.master {
                return Err(ThresholdError::NotVerifiedFor {
                    index: p.partial.index,
                });
            }
            keys.push(p.partial);
        }
        threshold::combine(&keys, self.threshold())
    }

    /// Verifies `partials` for `identity` (batched, as
    /// [`DayKey::verify_partials`]) and combines them: the one call for a
    /// holder of raw partial keys. Any wrong partial key is an error; no key
    /// is returned from unverified input.
    pub fn verify_and_combine<R: RngCore + CryptoRng>(
        &self,
        identity: &EscrowIdentity,
        partials: &[PartialKey],
        rng: &mut R,
    ) -> Result<IdentityKey, ThresholdError> {
        let verified = self.verify_partials(identity, partials, rng)?;
        self.combine(identity, &verified)
    }

    fn vk_for(&self, index: u32) -> Result<&G2Affine, ThresholdError> {
        self.verification_key(index)
            .ok_or(ThresholdError::UnknownIndex {
                index,
                n: self.custodians(),
            })
    }

    /// Canonical encoding: version (1), day (u32 BE), threshold (u16 BE),
    /// n (u16 BE), master key (96), then n verification keys (96 each).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(9 + G2_LEN * (1 + self.verification_keys.len()));
        out.push(DAY_KEY_VERSION);
        out.extend_from_slice(&self.day.to_be_bytes());
        out.extend_from_slice(&self.threshold.to_be_bytes());
        out.extend_from_slice(&(self.verification_keys.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.master.to_compressed());
        for vk in &self.verification_keys {
            out.extend_from_slice(&vk.to_compressed());
        }
        out
    }

    /// Decodes [`DayKey::to_bytes`]. Rejects an unknown version, a length
    /// that does not match `n`, out-of-range `t` or `n`, any malformed,
    /// off-subgroup, identity or non-canonical point, and inconsistent keys.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        const WHAT: &str = "day key";
        let mut r = custos_wire::codec::Reader::new(bytes);
        let short = |_| DecodeError::WrongLength {
            what: WHAT,
            expected: 9 + G2_LEN * 2,
            found: bytes.len(),
        };
        let version = r.u8().map_err(short)?;
        if version != DAY_KEY_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                what: WHAT,
                found: version,
                supported: DAY_KEY_VERSION,
            });
        }
        let day = r.u32().map_err(short)?;
        let threshold = r.u16().map_err(short)?;
        let n = usize::from(r.u16().map_err(short)?);
        if n == 0 || n > MAX_CUSTODIANS {
            return Err(DecodeError::InvalidValue {
                what: WHAT,
                reason: "number of custodians must be in 1..=64",
            });
        }
        let expected = 9 + G2_LEN * (1 + n);
        if bytes.len() != expected {
            return Err(DecodeError::WrongLength {
                what: WHAT,
                expected,
                found: bytes.len(),
            });
        }
        let wrong = |_| DecodeError::WrongLength {
            what: WHAT,
            expected,
            found: bytes.len(),
        };
        let master = decode_g2(r.take(G2_LEN).map_err(wrong)?, "day key master")?;
        let mut vks = Vec::with_capacity(n);
        for _ in 0..n {
            vks.push(decode_g2(
                r.take(G2_LEN).map_err(wrong)?,
                "day key verification key",
            )?);
        }
        r.finish().map_err(wrong)?;
        Self::new(day, threshold, master, vks)
    }
}

/// One partial key in a batch that spans identities and days: the day key
/// of the custodian that produced it, the identity, and the key.
#[derive(Debug, Clone, Copy)]
pub struct PartialCheck<'a> {
    /// The day key the partial key belongs to.
    pub day_key: &'a DayKey,
    /// The conversation-day identity it is for.
    pub identity: &'a EscrowIdentity,
    /// The partial key.
    pub partial: &'a PartialKey,
}

/// Checks partial keys for many conversation-days at once (an authority
/// holding the release for a whole warrant): one random linear combination
/// and one multi-pairing with one term per distinct identity. On failure,
/// [`ThresholdError::InvalidBatchItems`] gives the positions of the wrong
/// keys in `checks`. `rng` must be a cryptographic RNG. Returns the partial
/// keys as [`VerifiedPartial`]s, in the order of `checks`.
pub fn verify_partials_batch<R: RngCore + CryptoRng>(
    checks: &[PartialCheck<'_>],
    rng: &mut R,
) -> Result<Vec<VerifiedPartial>, ThresholdError> {
    if checks.is_empty() {
        return Err(ThresholdError::Empty);
    }
    if let Some(position) = checks
        .iter()
        .position(|c| c.identity.day() != c.day_key.day())
    {
        return Err(ThresholdError::DayMismatch { position });
    }
    let mut items = Vec::with_capacity(checks.len());
    for c in checks {
        items.push(BatchItem {
            vk: c.day_key.vk_for(c.partial.index)?,
            q_id: c.identity.point(),
            partial: c.partial,
        });
    }
    threshold::verify_batch(&items, rng)
        .map_err(|positions| ThresholdError::InvalidBatchItems { positions })?;
    Ok(checks
        .iter()
        .map(|c| VerifiedPartial::new(c.day_key, c.identity, c.partial))
        .collect())
}

/// A partial key that passed its pairing check for one conversation-day
/// identity under one day key.
///
/// Security: only [`DayKey::verify_partial`], [`DayKey::verify_partials`]
/// and [`verify_partials_batch`] build it (its fields are private), and
/// [`DayKey::combine`] takes nothing else, so an identity key cannot be
/// combined from unverified partial keys. `Debug` shows only the index.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VerifiedPartial {
    partial: PartialKey,
    identity: EscrowIdentity,
    master: G2Affine,
}

impl VerifiedPartial {
    fn new(day_key: &DayKey, identity: &EscrowIdentity, partial: &PartialKey) -> Self {
        Self {
            partial: *partial,
            identity: *identity,
            master: day_key.master,
        }
    }

    /// The custodian's index, `1..=n`.
    pub fn index(&self) -> u32 {
        self.partial.index
    }

    /// The partial key itself (for storing or forwarding; it must be
    /// verified again after decoding).
    pub fn partial(&self) -> &PartialKey {
        &self.partial
    }

    /// The conversation-day identity it was verified for.
    pub fn identity(&self) -> &EscrowIdentity {
        &self.identity
    }
}

impl std::fmt::Debug for VerifiedPartial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedPartial")
            .field("index", &self.partial.index)
            .field("day", &self.identity.day())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod identity_key_tests {
    use super::*;

    #[test]
    fn a_combined_identity_key_verifies_under_its_day_key_only() {
        let mut rng = rand_core::OsRng;
        let (key, shares) = crate::dangerous::trusted_deal(20_000, 5, 3, &mut rng).unwrap();
        let (other, _) = crate::dangerous::trusted_deal(20_000, 5, 3, &mut rng).unwrap();
        let id = EscrowIdentity::new(&[1; 16], 20_000);
        let partials: Vec<PartialKey> = shares.iter().take(3).map(|s| s.extract(&id)).collect();
        let identity_key = key.verify_and_combine(&id, &partials, &mut rng).unwrap();
        assert!(key.verify_identity_key(&id, &identity_key));
        assert!(!other.verify_identity_key(&id, &identity_key));
        let next_day = EscrowIdentity::new(&[1; 16], 20_001);
        assert!(!key.verify_identity_key(&next_day, &identity_key));
        let other_conv = EscrowIdentity::new(&[2; 16], 20_000);
        assert!(!key.verify_identity_key(&other_conv, &identity_key));
    }
}
