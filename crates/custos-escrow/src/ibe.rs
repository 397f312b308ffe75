//! Boneh–Franklin identity-based encryption, FullIdent (Fujisaki–Okamoto),
//! over BLS12-381 in drand tlock's layout.
//!
//! * Master secret `s`, master public key `P = s·G2` in G2.
//! * Identity point `Q_id = H1(id)` in G1 (RFC 9380 hash-to-curve), identity
//!   key `d_id = s·Q_id`: exactly a BLS signature on `id` ("min-sig" layout).
//! * Encryption of an `N`-byte block `M` with random `σ` (`N` bytes):
//!   `r = H3(σ, M)`, `U = r·G2`, `V = σ ⊕ H2(e(Q_id, P)^r)`, `W = M ⊕ H4(σ)`.
//! * Decryption: `σ = V ⊕ H2(e(d_id, U))`, `M = W ⊕ H4(σ)`, then the
//!   Fujisaki–Okamoto check `U = H3(σ, M)·G2`, which rejects every tampered or
//!   mis-keyed ciphertext.
//!
//! A [`Suite`] fixes the block size `N` and the domain-separation tags, so the
//! same code serves Custos ([`CUSTOS_V1`]) and drand's networks
//! ([`DRAND_QUICKNET`], [`DRAND_FASTNET`]); the tests decrypt real drand
//! ciphertexts with published beacon signatures.
//!
//! H2, H3 and H4 follow drand's definitions (kyber `encrypt/ibe`): `H2` is
//! SHA-256 over the tag and the target-group element serialised as twelve
//! big-endian base-field coefficients from the highest tower coefficient
//! down; `H3` hashes `tag || σ || M` with SHA-256, then rehashes it with a
//! little-endian 16-bit counter until the result, top bit cleared, is a
//! reduced scalar; `H4` is SHA-256 over the tag and `σ`. `H2` and `H4` are
//! truncated to `N` bytes.

use blstrs::{
    Bls12, Fp, Fp12, G1Affine, G1Projective, G2Affine, G2Prepared, G2Projective, Gt, Scalar,
};
use group::Curve;
use group::prime::PrimeCurveAffine;
use pairing::{MillerLoopResult, MultiMillerLoop};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::fixed_base;
use crate::point::{G2_LEN, decode_g2};
use crate::{DecodeError, OpenError};

/// Parameters of one instantiation of the scheme: block size `N` (1 to 32
/// bytes) and domain-separation tags.
///
/// Two suites with different tags give unrelated identity keys and
/// ciphertexts, so a key or ciphertext of one deployment is useless in
/// another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suite<const N: usize> {
    /// Human-readable name, for diagnostics only.
    pub name: &'static str,
    /// RFC 9380 domain-separation tag for hashing identities to G1.
    pub h1_dst: &'static [u8],
    /// Prefix hashed before the target-group element in `H2`.
    pub h2_tag: &'static [u8],
    /// Prefix hashed before `σ || M` in `H3`.
    pub h3_tag: &'static [u8],
    /// Prefix hashed before `σ` in `H4`.
    pub h4_tag: &'static [u8],
}

/// Custos escrow: 32-byte blocks (a chain root key `CK_0`) and
/// `custos/escrow/v1/…` tags.
pub const CUSTOS_V1: Suite<32> = Suite {
    name: "custos/escrow/v1",
    h1_dst: b"custos/escrow/v1/h1:BLS12381G1_XMD:SHA-256_SSWU_RO_",
    h2_tag: b"custos/escrow/v1/h2",
    h3_tag: b"custos/escrow/v1/h3",
    h4_tag: b"custos/escrow/v1/h4",
};

/// drand quicknet (`bls-unchained-g1-rfc9380`) as used by tlock to wrap a
/// 16-byte age file key. The identity is `SHA-256(round as u64 BE)`.
pub const DRAND_QUICKNET: Suite<16> = Suite {
    name: "drand quicknet (bls-unchained-g1-rfc9380)",
    h1_dst: b"BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_NUL_",
    h2_tag: b"IBE-H2",
    h3_tag: b"IBE-H3",
    h4_tag: b"IBE-H4",
};

/// drand fastnet (`bls-unchained-on-g1`), which hashed to G1 with the G2
/// tag; otherwise as [`DRAND_QUICKNET`].
pub const DRAND_FASTNET: Suite<16> = Suite {
    name: "drand fastnet (bls-unchained-on-g1)",
    h1_dst: b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_NUL_",
    h2_tag: b"IBE-H2",
    h3_tag: b"IBE-H3",
    h4_tag: b"IBE-H4",
};

/// A FullIdent ciphertext `(U, V, W)` for an `N`-byte block.
///
/// Its encoding is `U (96 bytes, compressed G2) || V (N) || W (N)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ciphertext<const N: usize> {
    /// `U = r·G2`.
    pub u: G2Affine,
    /// `V = σ ⊕ H2(e(Q_id, P)^r)`.
    pub v: [u8; N],
    /// `W = M ⊕ H4(σ)`.
    pub w: [u8; N],
}

impl<const N: usize> Ciphertext<N> {
    /// Length of the encoding: `96 + 2N`.
    pub const LEN: usize = G2_LEN + 2 * N;

    /// Canonical encoding `U || V || W`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        out.extend_from_slice(&self.u.to_compressed());
        out.extend_from_slice(&self.v);
        out.extend_from_slice(&self.w);
        out
    }

    /// Decodes `U || V || W`, rejecting a wrong length and any `U` that is
    /// malformed, outside the subgroup, the identity or non-canonical.
    ///
    /// Decoding does not authenticate: only [`Suite::decrypt`] does.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        const WHAT: &str = "ciphertext";
        if bytes.len() != Self::LEN {
            return Err(DecodeError::WrongLength {
                what: WHAT,
                expected: Self::LEN,
                found: bytes.len(),
            });
        }
        let (u, rest) = bytes.split_at(G2_LEN);
        let (v, w) = rest.split_at(N);
        let u = decode_g2(u, "ciphertext U")?;
        let v: [u8; N] = v.try_into().map_err(|_| DecodeError::WrongLength {
            what: WHAT,
            expected: Self::LEN,
            found: bytes.len(),
        })?;
        let w: [u8; N] = w.try_into().map_err(|_| DecodeError::WrongLength {
            what: WHAT,
            expected: Self::LEN,
            found: bytes.len(),
        })?;
        Ok(Self { u, v, w })
    }
}

impl<const N: usize> Suite<N> {
    const VALID_BLOCK: () = assert!(N > 0 && N <= 32, "block size must be 1..=32 bytes");

    /// `Q_id = H1(id)`: the identity hashed to G1 with this suite's tag.
    ///
    /// The identity key for `id` is the BLS signature `s·Q_id`.
    pub fn hash_identity(&self, id: &[u8]) -> G1Affine {
        G1Projective::hash_to_curve(id, self.h1_dst, &[]).to_affine()
    }

    /// Encrypts `msg` to `id` under the master public key, with fresh
    /// randomness from `rng` (which must be a cryptographic RNG).
    ///
    /// Fails with [`OpenError::IdentityKey`] if the master key is the group
    /// identity, under which anyone could decrypt.
    pub fn encrypt<R: RngCore + CryptoRng>(
        &self,
        master: &G2Affine,
        id: &[u8],
        msg: &[u8; N],
        rng: &mut R,
    ) -> Result<Ciphertext<N>, OpenError> {
        if bool::from(master.is_identity()) {
            return Err(OpenError::IdentityKey);
        }
        let mut sigma = Zeroizing::new([0u8; N]);
        rng.fill_bytes(sigma.as_mut());
        let q_id = self.hash_identity(id);
        Ok(self.encrypt_with_sigma(&G2Prepared::from(*master), &q_id, msg, &sigma))
    }

    /// Deterministic core of encryption: `σ` is given by the caller, and
    /// the master key (which the caller has checked is not the identity) is
    /// prepared for the Miller loop.
    ///
    /// Security: `σ` must be secret and unpredictable to anyone who does not
    /// know `msg`, and never reused with another message; Custos derives it
    /// from a uniformly random chain root key. The master key is taken
    /// prepared for the Miller loop and `Q_id` already hashed, so that a
    /// caller sealing many capsules for one identity hashes once.
    pub(crate) fn encrypt_with_sigma(
        &self,
        master: &G2Prepared,
        q_id: &G1Affine,
        msg: &[u8; N],
        sigma: &[u8; N],
    ) -> Ciphertext<N> {
        let () = Self::VALID_BLOCK;
        let r = self.h3(sigma, msg);
        let u = fixed_base::mul_generator(&r).to_affine();
        // e(Q_id, P)^r = e(r·Q_id, P): one G1 multiplication and a Miller
        // loop against the prepared master key.
        let rq = (G1Projective::from(*q_id) * r).to_affine();
        let gt = Bls12::multi_miller_loop(&[(&rq, master)]).final_exponentiation();
        let mask = self.h2(&gt);
        let v = xor(sigma, &mask);
        let pad = self.h4(sigma);
        let w = xor(msg, &pad);
        Ciphertext { u, v, w }
    }

    /// Decrypts with the identity key `d_id` (a BLS signature on the
    /// identity, or a combination of `t` partial keys).
    ///
    /// Returns [`OpenError::FoCheckFailed`] unless the ciphertext is exactly
    /// one that encryption to this key's identity produces: a wrong key, a
    /// wrong identity or any change to `U`, `V` or `W` is rejected. The
    /// identity point as a key is refused ([`OpenError::IdentityKey`]): it
    /// would accept ciphertexts crafted by anyone.
    pub fn decrypt(
        &self,
        identity_key: &G1Affine,
        ct: &Ciphertext<N>,
    ) -> Result<Zeroizing<[u8; N]>, OpenError> {
        let () = Self::VALID_BLOCK;
        if bool::from(identity_key.is_identity()) {
            return Err(OpenError::IdentityKey);
        }
        let gt = blstrs::pairing(identity_key, &ct.u);
        let mask = self.h2(&gt);
        let sigma = Zeroizing::new(xor(&ct.v, &mask));
        let pad = self.h4(&sigma);
        let msg = Zeroizing::new(xor(&ct.w, &pad));
        let r = self.h3(&sigma, &msg);
        let expected = fixed_base::mul_generator(&r);
        if expected != G2Projective::from(ct.u) {
            return Err(OpenError::FoCheckFailed);
        }
        Ok(msg)
    }

    /// `H2(g) = SHA-256(tag || ser(g))[..N]`, with drand's serialisation.
    fn h2(&self, gt: &Gt) -> Zeroizing<[u8; N]> {
        let bytes = gt_to_bytes(gt);
        let digest: [u8; 32] = Sha256::new()
            .chain_update(self.h2_tag)
            .chain_update(bytes.as_slice())
            .finalize()
            .into();
        Zeroizing::new(truncate(&digest))
    }

    /// `H3(σ, M)`: drand's rejection sampling into the scalar field.
    fn h3(&self, sigma: &[u8; N], msg: &[u8; N]) -> Scalar {
        let seed: Zeroizing<[u8; 32]> = Zeroizing::new(
            Sha256::new()
                .chain_update(self.h3_tag)
                .chain_update(sigma)
                .chain_update(msg)
                .finalize()
                .into(),
        );
        let mut last = Zeroizing::new([0u8; 32]);
        for i in 1u16..u16::MAX {
            *last = Sha256::new()
                .chain_update(i.to_le_bytes())
                .chain_update(seed.as_ref())
                .finalize()
                .into();
            if let Some(first) = last.first_mut() {
                *first >>= 1;
            }
            if let Some(s) = Option::<Scalar>::from(Scalar::from_bytes_be(&last)) {
                return s;
            }
        }
        // Unreachable in practice: each try succeeds with probability > 0.9.
        // Reduce the last candidate so the function stays total.
        reduce_be(&last)
    }

    /// `H4(σ) = SHA-256(tag || σ)[..N]`.
    fn h4(&self, sigma: &[u8; N]) -> Zeroizing<[u8; N]> {
        let digest: Zeroizing<[u8; 32]> = Zeroizing::new(
            Sha256::new()
                .chain_update(self.h4_tag)
                .chain_update(sigma)
                .finalize()
                .into(),
        );
        Zeroizing::new(truncate(&digest))
    }
}

/// Serialises a target-group element as drand does: the twelve base-field
/// coefficients, each 48 bytes big-endian, from `c1.c2.c1` down to `c0.c0.c0`.
fn gt_to_bytes(gt: &Gt) -> Zeroizing<Vec<u8>> {
    let f: Fp12 = (*gt).into();
    let mut coeffs: Vec<Fp> = Vec::with_capacity(12);
    for c6 in [f.c0(), f.c1()] {
        for c2 in [c6.c0(), c6.c1(), c6.c2()] {
            coeffs.push(c2.c0());
            coeffs.push(c2.c1());
        }
    }
    let mut out = Zeroizing::new(Vec::with_capacity(576));
    for c in coeffs.iter().rev() {
        out.extend_from_slice(&c.to_bytes_be());
    }
    out
}

fn truncate<const N: usize>(digest: &[u8; 32]) -> [u8; N] {
    let mut out = [0u8; N];
    for (o, d) in out.iter_mut().zip(digest.iter()) {
        *o = *d;
    }
    out
}

fn xor<const N: usize>(a: &[u8; N], b: &[u8; N]) -> [u8; N] {
    let mut out = [0u8; N];
    for ((o, x), y) in out.iter_mut().zip(a.iter()).zip(b.iter()) {
        *o = x ^ y;
    }
    out
}

/// Interprets 32 big-endian bytes as an integer and reduces it mod the group order.
fn reduce_be(bytes: &[u8; 32]) -> Scalar {
    let base = Scalar::from(256u64);
    bytes.iter().fold(Scalar::from(0u64), |acc, b| {
        acc * base + Scalar::from(u64::from(*b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ff::Field;
    use group::Group;
    use rand_core::OsRng;

    fn keypair() -> (Scalar, G2Affine) {
        let s = Scalar::random(OsRng);
        (s, (G2Projective::generator() * s).to_affine())
    }

    fn extract<const N: usize>(suite: &Suite<N>, s: &Scalar, id: &[u8]) -> G1Affine {
        (G1Projective::from(suite.hash_identity(id)) * s).to_affine()
    }

    #[test]
    fn round_trip_custos_and_drand_block_sizes() {
        let (s, p) = keypair();
        let msg = [7u8; 32];
        let ct = CUSTOS_V1.encrypt(&p, b"id", &msg, &mut OsRng).unwrap();
        assert_eq!(
            *CUSTOS_V1
                .decrypt(&extract(&CUSTOS_V1, &s, b"id"), &ct)
                .unwrap(),
            msg
        );
        let msg16 = [9u8; 16];
        let ct16 = DRAND_QUICKNET
            .encrypt(&p, b"id", &msg16, &mut OsRng)
            .unwrap();
        assert_eq!(
            *DRAND_QUICKNET
                .decrypt(&extract(&DRAND_QUICKNET, &s, b"id"), &ct16)
                .unwrap(),
            msg16
        );
    }

    #[test]
    fn wrong_identity_or_suite_fails_fo_check() {
        let (s, p) = keypair();
        let ct = CUSTOS_V1
            .encrypt(&p, b"alice", &[1u8; 32], &mut OsRng)
            .unwrap();
        let wrong = extract(&CUSTOS_V1, &s, b"bob");
        assert_eq!(
            CUSTOS_V1.decrypt(&wrong, &ct),
            Err(OpenError::FoCheckFailed)
        );
        let ct16 = DRAND_QUICKNET
            .encrypt(&p, b"alice", &[1u8; 16], &mut OsRng)
            .unwrap();
        let other_suite = extract(&DRAND_FASTNET, &s, b"alice");
        assert_eq!(
            DRAND_QUICKNET.decrypt(&other_suite, &ct16),
            Err(OpenError::FoCheckFailed)
        );
    }

    #[test]
    fn every_tampered_byte_is_rejected() {
        let (s, p) = keypair();
        let d = extract(&CUSTOS_V1, &s, b"id");
        let ct = CUSTOS_V1
            .encrypt(&p, b"id", &[3u8; 32], &mut OsRng)
            .unwrap();
        let mut bad_v = ct;
        bad_v.v[5] ^= 1;
        assert_eq!(CUSTOS_V1.decrypt(&d, &bad_v), Err(OpenError::FoCheckFailed));
        let mut bad_w = ct;
        bad_w.w[31] ^= 0x80;
        assert_eq!(CUSTOS_V1.decrypt(&d, &bad_w), Err(OpenError::FoCheckFailed));
        let mut bad_u = ct;
        bad_u.u = (G2Projective::from(ct.u) + G2Projective::generator()).to_affine();
        assert_eq!(CUSTOS_V1.decrypt(&d, &bad_u), Err(OpenError::FoCheckFailed));
    }

    #[test]
    fn identity_keys_are_refused() {
        let (_, p) = keypair();
        assert_eq!(
            CUSTOS_V1.encrypt(&G2Affine::identity(), b"id", &[0u8; 32], &mut OsRng),
            Err(OpenError::IdentityKey)
        );
        let ct = CUSTOS_V1
            .encrypt(&p, b"id", &[0u8; 32], &mut OsRng)
            .unwrap();
        assert_eq!(
            CUSTOS_V1.decrypt(&G1Affine::identity(), &ct),
            Err(OpenError::IdentityKey)
        );
    }

    #[test]
    fn ciphertext_encoding_round_trips_and_rejects_bad_lengths() {
        let (_, p) = keypair();
        let ct = CUSTOS_V1
            .encrypt(&p, b"id", &[0u8; 32], &mut OsRng)
            .unwrap();
        let bytes = ct.to_bytes();
        assert_eq!(bytes.len(), 160);
        assert_eq!(Ciphertext::<32>::from_bytes(&bytes).unwrap(), ct);
        assert!(matches!(
            Ciphertext::<32>::from_bytes(&bytes[..159]),
            Err(DecodeError::WrongLength {
                expected: 160,
                found: 159,
                ..
            })
        ));
    }

    #[test]
    fn reduce_matches_field_for_small_and_large_values() {
        let mut b = [0u8; 32];
        b[31] = 5;
        assert_eq!(reduce_be(&b), Scalar::from(5u64));
        let r_minus_one = (-Scalar::ONE).to_bytes_be();
        assert_eq!(reduce_be(&r_minus_one), -Scalar::ONE);
    }
}
