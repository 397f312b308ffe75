//! The ristretto255 draws and the hash to the group that vouchers and
//! tables share, on curve25519-dalek 5.
//!
//! curve25519-dalek 5 picks its AVX-512 IFMA backend at run time when the
//! build sets `--cfg curve25519_dalek_backend="avx512"` (the workspace's
//! `.cargo/config.toml` does, on x86-64), falling back to AVX2 or its
//! portable code on other CPUs: the service's check of a voucher is four
//! constant-time variable-base multiplications, about twice as fast on a
//! CPU with IFMA. Its random draws take `rand_core` 0.10, which the rest
//! of the project does not use, so the draws here are written out as
//! dalek 4 wrote them (64 uniform bytes reduced or mapped), with the
//! project's `rand_core` 0.6 generators.

use curve25519_dalek_5::ristretto::RistrettoPoint;
use curve25519_dalek_5::scalar::Scalar;
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha512};
use zeroize::Zeroize;

/// A uniformly random scalar: 64 bytes from `rng`, reduced modulo the
/// group order (bias below 2^-250). A secret when the caller keeps it one;
/// the wide buffer is zeroized.
pub(crate) fn random_scalar<R: RngCore + CryptoRng>(rng: &mut R) -> Scalar {
    let mut wide = [0u8; 64];
    rng.fill_bytes(&mut wide);
    let s = Scalar::from_bytes_mod_order_wide(&wide);
    wide.zeroize();
    s
}

/// A uniformly random group element with unknown discrete logarithm
/// (Elligator twice on 64 bytes from `rng`): filler buckets and the points
/// of synthetic slots that must not open.
pub(crate) fn random_point<R: RngCore + CryptoRng>(rng: &mut R) -> RistrettoPoint {
    let mut wide = [0u8; 64];
    rng.fill_bytes(&mut wide);
    RistrettoPoint::from_uniform_bytes(&wide)
}

/// ristretto255 hash-to-group of `parts` (concatenated): SHA-512 of the
/// input, then Elligator twice on the 64 bytes, as RFC 9496's
/// hash-to-group with SHA-512. The caller's first part is its
/// domain-separation label.
pub(crate) fn hash_to_group(parts: &[&[u8]]) -> RistrettoPoint {
    let mut h = Sha512::new();
    for p in parts {
        h.update(p);
    }
    let wide: [u8; 64] = h.finalize().into();
    RistrettoPoint::from_uniform_bytes(&wide)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `hash_to_group` is dalek's `hash_from_bytes::<Sha512>` of the
    /// concatenation (RFC 9496, Appendix A.3 test vector: the first
    /// input; the vector's source: RFC 9496, Appendix A.3).
    #[test]
    fn hash_to_group_is_rfc_9496_hash_to_group() {
        let input = b"Ristretto is traditionally a short shot of espresso coffee";
        let p = hash_to_group(&[&input[..10], &input[10..]]);
        assert_eq!(
            hex::encode(p.compress().to_bytes()),
            "3066f82a1a747d45120d1740f14358531a8f04bbffe6a819f86dfe50f44a0a46"
        );
    }
}
