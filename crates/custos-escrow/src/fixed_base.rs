//! Constant-time fixed-base multiplication `r·G2` with a precomputed table.
//!
//! Sealing, verifying and opening a capsule each compute `U = r·G2` for a
//! secret `r` (it determines `σ` and so `CK_0`). The generator is fixed, so a
//! table of `d·16^i·G2` for every 4-bit window `i` and digit `d` turns the
//! multiplication into 64 mixed additions. Every lookup reads all 16
//! entries of its window and keeps one with constant-time selection, so
//! neither memory access nor timing depends on `r`.

use std::sync::OnceLock;

use blstrs::{G2Affine, G2Projective, Scalar};
use group::prime::PrimeCurveAffine;
use group::{Curve, Group};
use subtle::{ConditionallySelectable, ConstantTimeEq};

const WINDOW_BITS: usize = 4;
const DIGITS: usize = 1 << WINDOW_BITS;
const WINDOWS: usize = 256 / WINDOW_BITS;

/// `table[i][d] = d·16^i·G2`, with `table[i][0]` the identity.
fn table() -> &'static Vec<[G2Affine; DIGITS]> {
    static TABLE: OnceLock<Vec<[G2Affine; DIGITS]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut projective = Vec::with_capacity(WINDOWS * DIGITS);
        let mut base = G2Projective::generator();
        for _ in 0..WINDOWS {
            let mut acc = G2Projective::identity();
            for _ in 0..DIGITS {
                projective.push(acc);
                acc += base;
            }
            // base = 16 · base
            for _ in 0..WINDOW_BITS {
                base = base.double();
            }
        }
        let mut affine = vec![G2Affine::identity(); projective.len()];
        G2Projective::batch_normalize(&projective, &mut affine);
        affine
            .chunks_exact(DIGITS)
            .map(|c| {
                let mut row = [G2Affine::identity(); DIGITS];
                row.copy_from_slice(c);
                row
            })
            .collect()
    })
}

/// `r·G2` in constant time.
pub(crate) fn mul_generator(r: &Scalar) -> G2Projective {
    let bytes = r.to_bytes_le();
    let mut acc = G2Projective::identity();
    for (i, row) in table().iter().enumerate() {
        let byte = bytes.get(i / 2).copied().unwrap_or(0);
        let digit = if i % 2 == 0 { byte & 0x0f } else { byte >> 4 };
        let mut chosen = G2Affine::identity();
        for (d, entry) in row.iter().enumerate() {
            let hit = (d as u8).ct_eq(&digit);
            chosen = G2Affine::conditional_select(&chosen, entry, hit);
        }
        acc = acc.add_mixed(&chosen);
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use ff::Field;
    use rand_core::OsRng;

    #[test]
    fn matches_variable_base_multiplication() {
        for r in [
            Scalar::ZERO,
            Scalar::ONE,
            -Scalar::ONE,
            Scalar::from(16u64),
            Scalar::random(OsRng),
        ] {
            assert_eq!(mul_generator(&r), G2Projective::generator() * r);
        }
    }
}
