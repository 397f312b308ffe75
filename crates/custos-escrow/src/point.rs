//! Strict decoding of compressed BLS12-381 points and scalars.
//!
//! The encodings are those of the BLS12-381 "zcash" serialisation used by
//! drand, blst and the IETF BLS drafts: 48 bytes for G1, 96 bytes for G2,
//! big-endian, with the three flag bits in the first byte. These functions
//! accept exactly one encoding per point: the input must decode, lie on the
//! curve, lie in the prime-order subgroup, not be the identity, and re-encode
//! to the same bytes.

use blstrs::{G1Affine, G2Affine, Scalar};
use group::prime::PrimeCurveAffine;

use crate::DecodeError;

/// Length of a compressed G1 point (identity keys, partial keys).
pub const G1_LEN: usize = 48;
/// Length of a compressed G2 point (master and verification keys, capsule U).
pub const G2_LEN: usize = 96;
/// Length of a big-endian scalar.
pub const SCALAR_LEN: usize = 32;

/// Decodes a compressed G1 point, rejecting malformed, off-subgroup,
/// identity and non-canonical encodings.
///
/// `what` names the field in the error. Security: a point accepted here is a
/// non-trivial element of the prime-order group G1, so no small-subgroup or
/// identity-key attack can pass through it.
pub fn decode_g1(bytes: &[u8], what: &'static str) -> Result<G1Affine, DecodeError> {
    let arr: &[u8; G1_LEN] = bytes.try_into().map_err(|_| DecodeError::WrongLength {
        what,
        expected: G1_LEN,
        found: bytes.len(),
    })?;
    let point: G1Affine = Option::from(G1Affine::from_compressed_unchecked(arr))
        .ok_or(DecodeError::MalformedPoint { what })?;
    if !bool::from(point.is_on_curve()) {
        return Err(DecodeError::MalformedPoint { what });
    }
    if bool::from(point.is_identity()) {
        return Err(DecodeError::IdentityPoint { what });
    }
    if !bool::from(point.is_torsion_free()) {
        return Err(DecodeError::NotInSubgroup { what });
    }
    if &point.to_compressed() != arr {
        return Err(DecodeError::MalformedPoint { what });
    }
    Ok(point)
}

/// Decodes a compressed G2 point, rejecting malformed, off-subgroup,
/// identity and non-canonical encodings.
///
/// `what` names the field in the error. Security: as [`decode_g1`], for G2.
pub fn decode_g2(bytes: &[u8], what: &'static str) -> Result<G2Affine, DecodeError> {
    let arr: &[u8; G2_LEN] = bytes.try_into().map_err(|_| DecodeError::WrongLength {
        what,
        expected: G2_LEN,
        found: bytes.len(),
    })?;
    let point: G2Affine = Option::from(G2Affine::from_compressed_unchecked(arr))
        .ok_or(DecodeError::MalformedPoint { what })?;
    if !bool::from(point.is_on_curve()) {
        return Err(DecodeError::MalformedPoint { what });
    }
    if bool::from(point.is_identity()) {
        return Err(DecodeError::IdentityPoint { what });
    }
    if !bool::from(point.is_torsion_free()) {
        return Err(DecodeError::NotInSubgroup { what });
    }
    if &point.to_compressed() != arr {
        return Err(DecodeError::MalformedPoint { what });
    }
    Ok(point)
}

/// Decodes a big-endian scalar that is reduced and non-zero.
pub(crate) fn decode_scalar(
    bytes: &[u8; SCALAR_LEN],
    what: &'static str,
) -> Result<Scalar, DecodeError> {
    let s: Scalar =
        Option::from(Scalar::from_bytes_be(bytes)).ok_or(DecodeError::InvalidScalar { what })?;
    if bool::from(ff::Field::is_zero(&s)) {
        return Err(DecodeError::InvalidScalar { what });
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use blstrs::{G1Projective, G2Projective};
    use group::{Curve, Group};

    #[test]
    fn generator_round_trips() {
        let g1 = G1Affine::generator();
        assert_eq!(decode_g1(&g1.to_compressed(), "g1").unwrap(), g1);
        let g2 = G2Affine::generator();
        assert_eq!(decode_g2(&g2.to_compressed(), "g2").unwrap(), g2);
    }

    #[test]
    fn rejects_identity() {
        let id1 = G1Projective::identity().to_affine().to_compressed();
        assert_eq!(
            decode_g1(&id1, "p"),
            Err(DecodeError::IdentityPoint { what: "p" })
        );
        let id2 = G2Projective::identity().to_affine().to_compressed();
        assert_eq!(
            decode_g2(&id2, "p"),
            Err(DecodeError::IdentityPoint { what: "p" })
        );
    }

    #[test]
    fn rejects_wrong_length() {
        assert_eq!(
            decode_g1(&[0u8; 47], "p"),
            Err(DecodeError::WrongLength {
                what: "p",
                expected: 48,
                found: 47
            })
        );
        assert_eq!(
            decode_g2(&[0u8; 97], "p"),
            Err(DecodeError::WrongLength {
                what: "p",
                expected: 96,
                found: 97
            })
        );
    }

    #[test]
    fn rejects_missing_compression_flag_and_garbage() {
        let mut b = G1Affine::generator().to_compressed();
        b[0] &= 0x7f; // clear the compression flag
        assert_eq!(
            decode_g1(&b, "p"),
            Err(DecodeError::MalformedPoint { what: "p" })
        );
        assert_eq!(
            decode_g1(&[0xffu8; 48], "p"),
            Err(DecodeError::MalformedPoint { what: "p" })
        );
        assert_eq!(
            decode_g2(&[0xffu8; 96], "p"),
            Err(DecodeError::MalformedPoint { what: "p" })
        );
        // Identity flag with a non-zero payload is not canonical.
        let mut inf = [0u8; 48];
        inf[0] = 0xc0;
        inf[47] = 1;
        assert_eq!(
            decode_g1(&inf, "p"),
            Err(DecodeError::MalformedPoint { what: "p" })
        );
    }

    #[test]
    fn rejects_point_outside_subgroup() {
        // Search x = 0, 1, 2, ... for a curve point; the cofactor of G1 is
        // large, so the first one found is outside the subgroup.
        let mut found = false;
        for x in 0u8..=255 {
            let mut b = [0u8; 48];
            b[0] = 0x80;
            b[47] = x;
            if let Some(p) = Option::<G1Affine>::from(G1Affine::from_compressed_unchecked(&b))
                && !bool::from(p.is_identity())
                && !bool::from(p.is_torsion_free())
            {
                assert_eq!(
                    decode_g1(&b, "p"),
                    Err(DecodeError::NotInSubgroup { what: "p" })
                );
                found = true;
                break;
            }
        }
        assert!(found, "no off-subgroup G1 point among small x");
        let mut found2 = false;
        for x in 0u8..=255 {
            let mut b = [0u8; 96];
            b[0] = 0x80;
            b[95] = x;
            if let Some(p) = Option::<G2Affine>::from(G2Affine::from_compressed_unchecked(&b))
                && !bool::from(p.is_identity())
                && !bool::from(p.is_torsion_free())
            {
                assert_eq!(
                    decode_g2(&b, "p"),
                    Err(DecodeError::NotInSubgroup { what: "p" })
                );
                found2 = true;
                break;
            }
        }
        assert!(found2, "no off-subgroup G2 point among small x");
    }

    #[test]
    fn scalar_rejects_zero_and_unreduced() {
        assert!(decode_scalar(&[0u8; 32], "s").is_err());
        assert!(decode_scalar(&[0xffu8; 32], "s").is_err());
        let mut one = [0u8; 32];
        one[31] = 1;
        assert_eq!(decode_scalar(&one, "s").unwrap(), Scalar::from(1u64));
    }
}
