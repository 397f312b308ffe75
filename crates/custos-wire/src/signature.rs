//! The one Ed25519 verification every Custos signature goes through.
//!
//! `ed25519-dalek`'s `verify_strict` refuses small-order keys and `R`
//! values, and it refuses an `s` that is not reduced modulo the group order
//! ℓ, unless some crate in the build turns on its `legacy_compatibility`
//! feature. `akd_core` (the key directory's verifier) does, and Cargo unifies
//! features across the workspace, so in every Custos binary
//! `verify_strict` alone would accept `s + ℓ`: a second, valid-looking
//! encoding of each signature. [`verify_strict`] checks that `s` is
//! canonical itself, whatever the features, then calls `verify_strict`.
//! `clippy.toml` forbids calling `ed25519-dalek`'s methods directly.
//!
//! # Security meaning
//! Every signature has exactly one accepted encoding: nobody without the
//! private key can make a second signature for a signed statement, release,
//! warrant, tag or checkpoint, so a signature's bytes can serve as its
//! identity (log leaves, replay sets) without aliasing.

use ed25519_dalek::{Signature, SignatureError, VerifyingKey};

/// Verifies `signature` over `message` under `key` by RFC 8032's strict
/// rules: `s` canonical (`s < ℓ`), `A` and `R` not of small order, and the
/// cofactorless equation. Refuses everything else.
pub fn verify_strict(
    key: &VerifyingKey,
    message: &[u8],
    signature: &Signature,
) -> Result<(), SignatureError> {
    if !s_is_canonical(signature.s_bytes()) {
        return Err(SignatureError::new());
    }
    #[allow(clippy::disallowed_methods)]
    key.verify_strict(message, signature)
}

/// Whether `s` (little-endian) is below the group order ℓ.
fn s_is_canonical(s: &[u8; 32]) -> bool {
    bool::from(curve25519_dalek::Scalar::from_canonical_bytes(*s).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer as _, SigningKey};

    /// ℓ = 2^252 + 27742317777372353535851937790883648493, little-endian.
    const ELL: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x10,
    ];

    fn add_ell(sig: &[u8; 64]) -> [u8; 64] {
        let mut out = *sig;
        let mut carry = 0u16;
        for (b, l) in out[32..].iter_mut().zip(ELL) {
            let v = u16::from(*b) + u16::from(l) + carry;
            *b = v.to_le_bytes()[0];
            carry = v >> 8;
        }
        assert_eq!(carry, 0);
        out
    }

    #[test]
    fn a_good_signature_verifies() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let sig = key.sign(b"m");
        assert!(verify_strict(&key.verifying_key(), b"m", &sig).is_ok());
        assert!(verify_strict(&key.verifying_key(), b"n", &sig).is_err());
    }

    /// Fails if `s + ℓ` is accepted: the case `legacy_compatibility` opens.
    #[test]
    fn an_unreduced_s_is_refused_whatever_the_features() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let sig = key.sign(b"m").to_bytes();
        let malleated = Signature::from_bytes(&add_ell(&sig));
        assert!(verify_strict(&key.verifying_key(), b"m", &malleated).is_err());
    }

    #[test]
    fn the_group_order_itself_is_not_canonical() {
        assert!(!s_is_canonical(&ELL));
        let mut below = ELL;
        below[0] -= 1;
        assert!(s_is_canonical(&below));
    }
}
