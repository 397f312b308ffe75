//! Threshold identity keys: secret shares, partial keys (partial BLS
//! signatures), their verification and their Lagrange combination.
//!
//! Custodian `i` (1-based) holds `s_i = f(i)` for the day's secret polynomial
//! `f` of degree `t - 1`, with master secret `f(0)` that no one holds. Its
//! partial key for an identity is `s_i·Q_id`; its verification key is
//! `s_i·G2`, published in the [`DayKey`](crate::DayKey). Any `t` verified
//! partial keys interpolate to `f(0)·Q_id`, the identity key; fewer reveal
//! nothing about it.

use std::fmt;
use std::sync::OnceLock;

use blstrs::{Bls12, G1Affine, G1Projective, G2Affine, G2Prepared, G2Projective, Scalar};
use ff::Field;
use group::prime::PrimeCurveAffine;
use group::{Curve, Group};
use pairing::{MillerLoopResult, MultiMillerLoop};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::capsule::EscrowIdentity;
use crate::point::{G1_LEN, SCALAR_LEN, decode_g1, decode_scalar};
use crate::{DecodeError, ThresholdError};

/// Largest number of custodians a day key may have.
pub const MAX_CUSTODIANS: usize = 64;

/// One custodian's share of a day's master secret.
///
/// Security: this is the only secret a custodian holds for a day. It is
/// stored as bytes that are zeroized when the share is dropped; [`erase`]
/// makes the erasure explicit at the point where the custodian's policy
/// demands it. Its `Debug` output never shows the secret.
///
/// [`erase`]: SecretShare::erase
pub struct SecretShare {
    index: u32,
    secret: Zeroizing<[u8; SCALAR_LEN]>,
}

impl SecretShare {
    /// Length of [`SecretShare::to_bytes`]: index (4) and scalar (32).
    pub const LEN: usize = 4 + SCALAR_LEN;

    pub(crate) fn from_scalar(index: u32, scalar: &Scalar) -> Self {
        Self {
            index,
            secret: Zeroizing::new(scalar.to_bytes_be()),
        }
    }

    /// The custodian's index, `1..=n`: the point at which the share
    /// evaluates the day's polynomial.
    pub fn index(&self) -> u32 {
        self.index
    }

    fn scalar(&self) -> Scalar {
        // The bytes were produced from a reduced non-zero scalar, so this
        // always succeeds; zero would only yield partial keys that fail
        // verification, never a wrong accepted one.
        Option::from(Scalar::from_bytes_be(&self.secret)).unwrap_or(Scalar::ZERO)
    }

    /// This share's verification key `s_i·G2`.
    pub fn verification_key(&self) -> G2Affine {
        (G2Projective::generator() * self.scalar()).to_affine()
    }

    /// The verification key, compressed (96 bytes), as the day key lists it.
    pub fn verification_key_bytes(&self) -> [u8; crate::point::G2_LEN] {
        self.verification_key().to_compressed()
    }

    /// The partial identity key `s_i·H1(id)` for one conversation-day.
    ///
    /// Security: releasing it gives away nothing about other identities; `t`
    /// of them for the same identity open that identity's capsules.
    pub fn extract(&self, identity: &EscrowIdentity) -> PartialKey {
        let point = (G1Projective::from(*identity.point()) * self.scalar()).to_affine();
        PartialKey {
            index: self.index,
            point,
        }
    }

    /// Destroys the share, overwriting its secret in memory.
    ///
    /// After this the custodian can no longer contribute to any identity key
    /// of this day. Dropping a share has the same effect; `erase` says so at
    /// the call site.
    pub fn erase(self) {
        drop(self);
    }

    /// Encodes the share for storage: index (u32 BE) then the scalar (32
    /// bytes BE). The result zeroizes itself when dropped.
    pub fn to_bytes(&self) -> Zeroizing<[u8; Self::LEN]> {
        let mut out = Zeroizing::new([0u8; Self::LEN]);
        let (head, tail) = out.split_at_mut(4);
        head.copy_from_slice(&self.index.to_be_bytes());
        tail.copy_from_slice(self.secret.as_ref());
        out
    }

    /// Decodes [`SecretShare::to_bytes`]: rejects a wrong length, an index
    /// outside `1..=MAX_CUSTODIANS`, and a zero or unreduced scalar.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        const WHAT: &str = "secret share";
        if bytes.len() != Self::LEN {
            return Err(DecodeError::WrongLength {
                what: WHAT,
                expected: Self::LEN,
                found: bytes.len(),
            });
        }
        let (idx, scalar) = bytes.split_at(4);
        let index = decode_index(idx, WHAT)?;
        let mut secret = Zeroizing::new([0u8; SCALAR_LEN]);
        secret.copy_from_slice(scalar);
        decode_scalar(&secret, WHAT)?;
        Ok(Self { index, secret })
    }
}

impl fmt::Debug for SecretShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretShare")
            .field("index", &self.index)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A custodian's partial identity key: a partial BLS signature
/// `s_i·H1(id)` on one conversation-day identity.
///
/// A partial key is not secret on its own, but `t` of them for one identity
/// open that identity's capsules, so custodians release them only under a
/// logged warrant, sealed to the authority. `Debug` shows only the index.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PartialKey {
    /// The custodian's index, `1..=n`.
    pub index: u32,
    /// The point `s_i·Q_id` in G1.
    pub point: G1Affine,
}

impl PartialKey {
    /// Length of the encoding: index (4) and compressed G1 point (48).
    pub const LEN: usize = 4 + G1_LEN;

    /// Canonical encoding: index (u32 BE) then the compressed point.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        let (head, tail) = out.split_at_mut(4);
        head.copy_from_slice(&self.index.to_be_bytes());
        tail.copy_from_slice(&self.point.to_compressed());
        out
    }

    /// Decodes [`PartialKey::to_bytes`]: rejects a wrong length, an index
    /// outside `1..=MAX_CUSTODIANS`, and a malformed, off-subgroup, identity
    /// or non-canonical point. Decoding does not verify the key: use
    /// [`DayKey::verify_partial`](crate::DayKey::verify_partial).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        const WHAT: &str = "partial key";
        if bytes.len() != Self::LEN {
            return Err(DecodeError::WrongLength {
                what: WHAT,
                expected: Self::LEN,
                found: bytes.len(),
            });
        }
        let (idx, point) = bytes.split_at(4);
        Ok(Self {
            index: decode_index(idx, WHAT)?,
            point: decode_g1(point, "partial key point")?,
        })
    }
}

/// The identity key of one conversation-day: `s·H1(id)` for the day's
/// master secret `s`, a BLS signature on the identity.
///
/// Security: it opens every capsule of that conversation on that day and
/// nothing else. Its `Debug` output never shows the key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IdentityKey(pub(crate) G1Affine);

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdentityKey(<redacted>)")
    }
}

impl fmt::Debug for PartialKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartialKey")
            .field("index", &self.index)
            .field("point", &"<redacted>")
            .finish()
    }
}

impl IdentityKey {
    /// Length of the encoding (a compressed G1 point).
    pub const LEN: usize = G1_LEN;

    /// The key as a G1 point.
    pub fn point(&self) -> &G1Affine {
        &self.0
    }

    /// Canonical encoding: the compressed G1 point.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        self.0.to_compressed()
    }

    /// Decodes a compressed G1 point, with the checks of
    /// [`decode_g1`](crate::point::decode_g1).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_g1(bytes, "identity key").map(Self)
    }
}

/// One item of a batched verification: a custodian's verification key, the
/// identity point and the partial key claimed for it.
pub(crate) struct BatchItem<'a> {
    pub vk: &'a G2Affine,
    pub q_id: &'a G1Affine,
    pub partial: &'a PartialKey,
}

fn neg_g2_prepared() -> &'static G2Prepared {
    static NEG_G2: OnceLock<G2Prepared> = OnceLock::new();
    NEG_G2.get_or_init(|| G2Prepared::from(-G2Affine::generator()))
}

/// Single pairing check `e(σ_i, G2) = e(Q_id, vk_i)`.
pub(crate) fn verify_one(vk: &G2Affine, q_id: &G1Affine, partial: &PartialKey) -> bool {
    verify_point(vk, q_id, &partial.point)
}

/// `e(σ, G2) = e(q, pk)`: `σ` is the BLS signature of the point `q` under
/// `pk` (a partial key under a custodian's verification key, or an identity
/// key under a day's master key).
pub(crate) fn verify_point(pk: &G2Affine, q_id: &G1Affine, sigma: &G1Affine) -> bool {
    let pk = G2Prepared::from(*pk);
    let ml = Bls12::multi_miller_loop(&[(sigma, neg_g2_prepared()), (q_id, &pk)]);
    bool::from(ml.final_exponentiation().is_identity())
}

/// Batched check by random linear combination: with random non-zero 64-bit
/// `ρ_i`, `e(Σ ρ_i σ_i, G2) = Π_q e(q, Σ_{i: q_i = q} ρ_i vk_i)`, one
/// multi-pairing with one term per distinct identity, or equivalently
/// `Π_vk e(Σ_{i: vk_i = vk} ρ_i q_i, vk)` with one term per custodian when
/// that is fewer. A batch containing a
/// wrong key passes with probability at most `2^-64` (the bound used for BLS
/// batch verification by Ethereum clients on blst); the sums are computed
/// in variable time, which is safe because every input is public and `ρ` is
/// fresh per call. On failure each item is checked alone, so the error names
/// exactly the bad custodians.
///
/// Returns the positions (in `items`) of the wrong partial keys, if any.
pub(crate) fn verify_batch<R: RngCore + CryptoRng>(
    items: &[BatchItem<'_>],
    rng: &mut R,
) -> Result<(), Vec<usize>> {
    let rhos: Vec<u64> = items.iter().map(|_| rng.next_u64() | 1).collect();
    let sigmas: Vec<G1Projective> = items
        .iter()
        .map(|it| G1Projective::from(it.partial.point))
        .collect();
    let agg = msm_u64(&sigmas, &rhos).to_affine();
    // One pairing term per distinct identity (Σ ρ_i vk_i on the G2 side) or
    // per distinct verification key (Σ ρ_i Q_i on the cheaper G1 side),
    // whichever gives fewer terms: many conversation-days released by a few
    // custodians group by custodian.
    let distinct_ids = count_distinct(items.iter().map(|it| it.q_id));
    let distinct_vks = count_distinct(items.iter().map(|it| it.vk));
    let prepared: Vec<(G1Affine, G2Prepared)> = if distinct_vks < distinct_ids {
        let mut groups: Vec<(&G2Affine, Vec<G1Projective>, Vec<u64>)> = Vec::new();
        for (it, rho) in items.iter().zip(rhos.iter()) {
            let q = G1Projective::from(*it.q_id);
            match groups.iter_mut().find(|(vk, _, _)| *vk == it.vk) {
                Some((_, qs, rs)) => {
                    qs.push(q);
                    rs.push(*rho);
                }
                None => groups.push((it.vk, vec![q], vec![*rho])),
            }
        }
        groups
            .iter()
            .map(|(vk, qs, rs)| (msm_u64(qs, rs).to_affine(), G2Prepared::from(**vk)))
            .collect()
    } else {
        let mut groups: Vec<(&G1Affine, Vec<G2Projective>, Vec<u64>)> = Vec::new();
        for (it, rho) in items.iter().zip(rhos.iter()) {
            let vk = G2Projective::from(*it.vk);
            match groups.iter_mut().find(|(q, _, _)| *q == it.q_id) {
                Some((_, vks, rs)) => {
                    vks.push(vk);
                    rs.push(*rho);
                }
                None => groups.push((it.q_id, vec![vk], vec![*rho])),
            }
        }
        groups
            .iter()
            .map(|(q, vks, rs)| (**q, G2Prepared::from(msm_u64(vks, rs).to_affine())))
            .collect()
    };
    let mut terms: Vec<(&G1Affine, &G2Prepared)> = Vec::with_capacity(prepared.len() + 1);
    terms.push((&agg, neg_g2_prepared()));
    terms.extend(prepared.iter().map(|(q, p)| (q, p)));
    if bool::from(
        Bls12::multi_miller_loop(&terms)
            .final_exponentiation()
            .is_identity(),
    ) {
        return Ok(());
    }
    let bad: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, it)| !verify_one(it.vk, it.q_id, it.partial))
        .map(|(pos, _)| pos)
        .collect();
    if bad.is_empty() {
        // Only possible if the random combination itself was unlucky.
        return Ok(());
    }
    Err(bad)
}

fn count_distinct<'a, T: PartialEq + 'a>(items: impl Iterator<Item = &'a T>) -> usize {
    let mut seen: Vec<&T> = Vec::new();
    for it in items {
        if !seen.contains(&it) {
            seen.push(it);
        }
    }
    seen.len()
}

/// `Σ s_i·P_i` for 64-bit scalars, variable time (public inputs only):
/// interleaved signed 4-bit windows (digits in `-8..=7`, tables of
/// `P..8P`), 68 shared doublings.
fn msm_u64<G: Group>(points: &[G], scalars: &[u64]) -> G {
    let tables: Vec<[G; 8]> = points
        .iter()
        .map(|p| {
            let mut t = [*p; 8];
            let mut acc = *p;
            for slot in t.iter_mut().skip(1) {
                acc += p;
                *slot = acc;
            }
            t
        })
        .collect();
    let digits: Vec<[i8; 17]> = scalars.iter().map(|s| signed_digits(*s)).collect();
    let mut acc = G::identity();
    for w in (0..17usize).rev() {
        for _ in 0..4 {
            acc = acc.double();
        }
        for (t, d) in tables.iter().zip(digits.iter()) {
            let digit = d.get(w).copied().unwrap_or(0);
            let entry = t.get(usize::from(digit.unsigned_abs()).wrapping_sub(1));
            match (digit.signum(), entry) {
                (1, Some(p)) => acc += p,
                (-1, Some(p)) => acc -= p,
                _ => {}
            }
        }
    }
    acc
}

/// Recodes `s` as `Σ d_i 16^i` with `d_i` in `-8..=7` (the last digit 0 or 1).
fn signed_digits(s: u64) -> [i8; 17] {
    let mut out = [0i8; 17];
    let mut carry = 0u64;
    for (i, d) in out.iter_mut().enumerate().take(16) {
        let nibble = ((s >> (4 * i)) & 0xf) + carry;
        if nibble >= 8 {
            *d = nibble as i8 - 16;
            carry = 1;
        } else {
            *d = nibble as i8;
            carry = 0;
        }
    }
    if let Some(last) = out.last_mut() {
        *last = carry as i8;
    }
    out
}

/// Combines the first `threshold` partial keys (distinct indices) by
/// Lagrange interpolation at zero.
pub(crate) fn combine(
    partials: &[PartialKey],
    threshold: usize,
) -> Result<IdentityKey, ThresholdError> {
    if partials.len() < threshold {
        return Err(ThresholdError::NotEnoughPartials {
            found: partials.len(),
            threshold,
        });
    }
    let chosen = partials.get(..threshold).unwrap_or(partials);
    let xs: Vec<u32> = chosen.iter().map(|p| p.index).collect();
    let lambdas = lagrange_at(&xs, &Scalar::ZERO)?;
    let points: Vec<G1Projective> = chosen.iter().map(|p| G1Projective::from(p.point)).collect();
    Ok(IdentityKey(
        G1Projective::multi_exp(&points, &lambdas).to_affine(),
    ))
}

/// Lagrange coefficients `λ_i(x) = Π_{j≠i} (x - x_j) / (x_i - x_j)` for the
/// distinct non-zero indices `xs`.
pub(crate) fn lagrange_at(xs: &[u32], x: &Scalar) -> Result<Vec<Scalar>, ThresholdError> {
    for (i, a) in xs.iter().enumerate() {
        if xs.iter().skip(i + 1).any(|b| b == a) {
            return Err(ThresholdError::DuplicateIndex { index: *a });
        }
    }
    let fx: Vec<Scalar> = xs.iter().map(|v| Scalar::from(u64::from(*v))).collect();
    let mut out = Vec::with_capacity(xs.len());
    for (i, xi) in fx.iter().enumerate() {
        let mut num = Scalar::ONE;
        let mut den = Scalar::ONE;
        for (j, xj) in fx.iter().enumerate() {
            if i != j {
                num *= *x - xj;
                den *= *xi - xj;
            }
        }
        let inv: Option<Scalar> = den.invert().into();
        let index = xs.get(i).copied().unwrap_or(0);
        out.push(num * inv.ok_or(ThresholdError::DuplicateIndex { index })?);
    }
    Ok(out)
}

fn decode_index(bytes: &[u8], what: &'static str) -> Result<u32, DecodeError> {
    let arr: [u8; 4] = bytes.try_into().map_err(|_| DecodeError::WrongLength {
        what,
        expected: 4,
        found: bytes.len(),
    })?;
    let index = u32::from_be_bytes(arr);
    if index == 0 || index as usize > MAX_CUSTODIANS {
        return Err(DecodeError::InvalidValue {
            what,
            reason: "custodian index must be in 1..=64",
        });
    }
    Ok(index)
}

/// Deals shares of `secret` to `n` custodians with threshold `t`: used by
/// tests and by [`crate::dangerous`].
pub(crate) fn deal<R: RngCore + CryptoRng>(
    secret: &Scalar,
    n: usize,
    t: usize,
    rng: &mut R,
) -> Vec<SecretShare> {
    let mut coeffs = vec![*secret];
    coeffs.extend((1..t).map(|_| Scalar::random(&mut *rng)));
    (1..=n)
        .map(|i| {
            let x = Scalar::from(i as u64);
            let y = coeffs.iter().rev().fold(Scalar::ZERO, |acc, c| acc * x + c);
            SecretShare::from_scalar(i as u32, &y)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn lagrange_interpolates_constant_polynomial_term() {
        let s = Scalar::random(OsRng);
        let shares = deal(&s, 5, 3, &mut OsRng);
        let xs = [2u32, 4, 5];
        let l = lagrange_at(&xs, &Scalar::ZERO).unwrap();
        let rec: Scalar = xs
            .iter()
            .zip(l.iter())
            .map(|(x, li)| shares[*x as usize - 1].scalar() * li)
            .sum();
        assert_eq!(rec, s);
        assert_eq!(
            lagrange_at(&[1, 1], &Scalar::ZERO),
            Err(ThresholdError::DuplicateIndex { index: 1 })
        );
    }

    #[test]
    fn secret_share_bytes_round_trip_and_debug_is_redacted() {
        let share = SecretShare::from_scalar(3, &Scalar::from(42u64));
        let bytes = share.to_bytes();
        let back = SecretShare::from_bytes(bytes.as_ref()).unwrap();
        assert_eq!(back.index(), 3);
        assert_eq!(back.scalar(), Scalar::from(42u64));
        assert!(!format!("{share:?}").contains("42"));
        let mut zero_index = *bytes;
        zero_index[3] = 0;
        assert!(matches!(
            SecretShare::from_bytes(&zero_index),
            Err(DecodeError::InvalidValue { .. })
        ));
        share.erase();
    }

    #[test]
    fn small_msm_matches_scalar_multiplication() {
        let p = G1Projective::generator();
        let q = G1Projective::generator().double();
        for (a, b) in [
            (u64::MAX, 12345u64),
            (0, 1),
            (0x8888_8888_8888_8888, 0x7777_7777_7777_7777),
        ] {
            let got = msm_u64(&[p, q], &[a, b]);
            assert_eq!(
                got,
                p * Scalar::from(a) + q * Scalar::from(b),
                "{a:x} {b:x}"
            );
        }
        let g2 = G2Projective::generator();
        assert_eq!(
            msm_u64(&[g2], &[0xdead_beef]),
            g2 * Scalar::from(0xdead_beefu64)
        );
    }

    #[test]
    fn partial_key_rejects_bad_index() {
        let p = PartialKey {
            index: 65,
            point: G1Affine::generator(),
        };
        assert!(matches!(
            PartialKey::from_bytes(&p.to_bytes()),
            Err(DecodeError::InvalidValue { .. })
        ));
        let ok = PartialKey {
            index: 64,
            point: G1Affine::generator(),
        };
        assert_eq!(PartialKey::from_bytes(&ok.to_bytes()).unwrap(), ok);
    }
}
