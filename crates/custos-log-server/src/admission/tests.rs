use super::*;
use curve25519_dalek::constants::ED25519_BASEPOINT_POINT as B;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity as _;
use custos_wire::manifest::{Participant, Policy};
use custos_wire::statement::{DayKeyErasure, ProviderFrankingKey};
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _};
use proptest::prelude::*;
use sha2::{Digest as _, Sha512};

/// ℓ, little-endian: the order of the prime-order subgroup.
const ELL: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

fn signer(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// The reference: `custos_wire::signature::verify_strict` (ed25519-dalek's
/// `verify_strict` with the canonical-`s` check that no feature can turn off).
fn reference(key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    VerifyingKey::from_bytes(key).is_ok_and(|k| {
        custos_wire::signature::verify_strict(&k, msg, &Signature::from_bytes(sig)).is_ok()
    })
}

fn prepared(key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    AuthorKey::from_bytes(key).is_some_and(|k| k.verify_strict(&[msg], sig))
}

fn hash_to_scalar(parts: &[&[u8]]) -> Scalar {
    let mut h = Sha512::new();
    for p in parts {
        h.update(p);
    }
    Scalar::from_bytes_mod_order_wide(&h.finalize().into())
}

/// A signature by `key`'s holder whose `R` carries the small-order component
/// `t`: `R = [r]B + T`, `s = r + k·a`. It satisfies the cofactored equation
/// `[8]([s]B − [k]A − R) = 0` that batch verification checks, but not the
/// strict one.
fn sign_with_torsion(key: &SigningKey, msg: &[u8], t: EdwardsPoint) -> [u8; 64] {
    let r = hash_to_scalar(&[b"test nonce", msg]);
    let r_bytes = (r * B + t).compress().to_bytes();
    let a_bytes = key.verifying_key().to_bytes();
    let k = hash_to_scalar(&[&r_bytes, &a_bytes, msg]);
    let s = r + k * key.to_scalar();
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&r_bytes);
    sig[32..].copy_from_slice(s.as_bytes());
    sig
}

/// The residual `[s]B − [k]A − R` of a signature (zero when it is strictly valid).
fn residual(key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> EdwardsPoint {
    let a = CompressedEdwardsY(*key).decompress().unwrap();
    let r = CompressedEdwardsY(sig[..32].try_into().unwrap())
        .decompress()
        .unwrap();
    let s = Scalar::from_canonical_bytes(sig[32..].try_into().unwrap()).unwrap();
    let k = hash_to_scalar(&[&sig[..32], key, msg]);
    s * B - k * a - r
}

/// The small-order component of a point: `P − [8⁻¹ mod ℓ]([8]P)`.
fn torsion_of(p: EdwardsPoint) -> EdwardsPoint {
    p - Scalar::from(8u64).invert() * p.mul_by_cofactor()
}

/// `[2^n]P`.
fn doubled(p: EdwardsPoint, n: u32) -> EdwardsPoint {
    (0..n).fold(p, |q, _| q + q)
}

/// A point of order 8 (the torsion subgroup is cyclic of order 8).
fn order_8_point() -> EdwardsPoint {
    (0u8..=255)
        .filter_map(|i| CompressedEdwardsY([i; 32]).decompress())
        .map(torsion_of)
        .find(|t| !doubled(*t, 2).is_identity())
        .unwrap()
}

#[test]
fn valid_signatures_are_accepted() {
    for seed in 1..=8 {
        let key = signer(seed);
        let msg = [seed; 100];
        let sig = key.sign(&msg).to_bytes();
        let a = key.verifying_key().to_bytes();
        assert!(reference(&a, &msg, &sig));
        assert!(prepared(&a, &msg, &sig));
        // The message may be given in parts.
        let k = AuthorKey::from_bytes(&a).unwrap();
        assert!(k.verify_strict(&[&msg[..10], &msg[10..]], &sig));
        assert!(!k.verify_strict(&[&msg[..10]], &sig));
    }
}

#[test]
fn mixed_order_r_passes_the_batch_equation_but_is_refused() {
    let key = signer(3);
    let a = key.verifying_key().to_bytes();
    let t8 = order_8_point();
    for (name, t) in [
        ("order 2", doubled(t8, 2)),
        ("order 4", doubled(t8, 1)),
        ("order 8", t8),
    ] {
        let msg = format!("custos/v1/statement torsion {name}").into_bytes();
        let sig = sign_with_torsion(&key, &msg, t);
        let res = residual(&a, &msg, &sig);
        assert!(!res.is_identity(), "{name}: strict equation must fail");
        assert!(
            res.mul_by_cofactor().is_identity(),
            "{name}: cofactored (batch) equation must hold"
        );
        assert!(!reference(&a, &msg, &sig), "{name}: verify_strict refuses");
        assert!(!prepared(&a, &msg, &sig), "{name}: admission refuses");
    }
    // Control: the same construction without torsion is a valid signature.
    let msg = b"control";
    let sig = sign_with_torsion(&key, msg, EdwardsPoint::default());
    assert!(reference(&a, msg, &sig) && prepared(&a, msg, &sig));
}

#[test]
// ed25519-dalek's lax `verify` shows what the strict rule refuses.
#[allow(clippy::disallowed_methods)]
fn small_order_key_is_refused_even_when_the_equation_holds() {
    // A = a point of order 4, s = 0: the equation R = −[k]A holds for one R
    // of the four multiples of A; look for a message where it does.
    let a_point = doubled(order_8_point(), 1);
    let a = a_point.compress().to_bytes();
    let multiples: Vec<EdwardsPoint> = (0u64..4).map(|i| Scalar::from(i) * a_point).collect();
    let mut found = 0;
    for i in 0u32..64 {
        let msg = i.to_be_bytes();
        for r in &multiples {
            let r_bytes = r.compress().to_bytes();
            let k = hash_to_scalar(&[&r_bytes, &a, &msg]);
            if -(k * a_point) != *r {
                continue;
            }
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&r_bytes);
            // Non-strict verification accepts this forgery by anyone...
            let vk = VerifyingKey::from_bytes(&a).unwrap();
            assert!(vk.verify(&msg, &Signature::from_bytes(&sig)).is_ok());
            // ...strict verification does not.
            assert!(!reference(&a, &msg, &sig));
            assert!(!prepared(&a, &msg, &sig));
            found += 1;
        }
    }
    assert!(found > 0, "no message gave a weak-key forgery");

    // A valid key whose holder signs with R = identity (s = k·a): the
    // equation holds exactly, but R has small order.
    let key = signer(7);
    let a = key.verifying_key().to_bytes();
    let msg = b"identity R";
    let r_bytes = EdwardsPoint::default().compress().to_bytes();
    let k = hash_to_scalar(&[&r_bytes, &a, msg]);
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&r_bytes);
    sig[32..].copy_from_slice((k * key.to_scalar()).as_bytes());
    assert!(residual(&a, msg, &sig).is_identity());
    let vk = VerifyingKey::from_bytes(&a).unwrap();
    assert!(vk.verify(msg, &Signature::from_bytes(&sig)).is_ok());
    assert!(!reference(&a, msg, &sig));
    assert!(!prepared(&a, msg, &sig));
}

#[test]
fn non_canonical_encodings_are_refused() {
    let key = signer(4);
    let a = key.verifying_key().to_bytes();
    let msg = b"non-canonical";
    let sig = key.sign(msg).to_bytes();

    // s + ℓ: the same point equation, but s is not reduced.
    let mut big = sig;
    let mut carry = 0u16;
    for (b, l) in big[32..].iter_mut().zip(ELL) {
        let v = u16::from(*b) + u16::from(l) + carry;
        *b = v as u8;
        carry = v >> 8;
    }
    assert_eq!(carry, 0);
    assert!(!reference(&a, msg, &big));
    assert!(!prepared(&a, msg, &big));

    // R encoded with y ≥ p (y = p + 1 encodes the identity non-canonically).
    let mut r_noncanonical = [0xff; 32];
    r_noncanonical[0] = 0xee;
    r_noncanonical[31] = 0x7f;
    assert!(CompressedEdwardsY(r_noncanonical).decompress().is_some());
    let mut bad_r = sig;
    bad_r[..32].copy_from_slice(&r_noncanonical);
    assert!(!reference(&a, msg, &bad_r));
    assert!(!prepared(&a, msg, &bad_r));

    // A key that is not a point is not prepared at all.
    let mut not_a_point = [0u8; 32];
    not_a_point[0] = 2;
    assert!(CompressedEdwardsY(not_a_point).decompress().is_none());
    assert!(AuthorKey::from_bytes(&not_a_point).is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any change to a valid signature, key or message is judged the same
    /// way by the prepared check and by `verify_strict`.
    #[test]
    fn agrees_with_verify_strict(
        seed in 1u8..16,
        msg in proptest::collection::vec(any::<u8>(), 0..200),
        target in 0usize..3,
        index in 0usize..64,
        flip in any::<u8>(),
    ) {
        let key = signer(seed);
        let mut a = key.verifying_key().to_bytes();
        let mut m = msg.clone();
        let mut sig = key.sign(&msg).to_bytes();
        match target {
            0 => sig[index] ^= flip,
            1 => a[index % 32] ^= flip,
            _ => if m.is_empty() { m.push(flip) } else { let i = index % m.len(); m[i] ^= flip },
        }
        prop_assert_eq!(prepared(&a, &m, &sig), reference(&a, &m, &sig));
        prop_assert_eq!(prepared(&a, &m, &sig), flip == 0);
    }
}

fn manifest(custodian: &SigningKey, provider: &SigningKey) -> Manifest {
    let p = |name: &str, role: Role, key: &SigningKey| Participant {
        name: name.into(),
        role,
        jurisdiction: "EU".into(),
        endpoint: None,
        public_key: hex::encode(key.verifying_key().to_bytes()),
    };
    Manifest::new(
        1,
        1,
        Policy::default(),
        vec![
            p("log.test", Role::Log, &signer(1)),
            p("witness.test", Role::Witness, &signer(2)),
            p("custodian.test", Role::Custodian, custodian),
            p("provider.test", Role::Provider, provider),
        ],
    )
    .unwrap()
}

fn erasure(day: u32) -> Statement {
    Statement::DayKeyErasure(DayKeyErasure {
        day,
        custodian: "custodian.test".into(),
        erased_at: 1_795_000_000,
    })
}

#[test]
fn admit_checks_signature_participant_and_role_in_order() {
    let (custodian, provider, outsider) = (signer(3), signer(5), signer(6));
    let admission = Admission::new(&manifest(&custodian, &provider));
    let good = SignedStatement::sign(&erasure(1), &custodian).unwrap();
    assert_eq!(
        admission.admit(&good.encode().unwrap()).unwrap(),
        erasure(1)
    );

    let franking = Statement::ProviderFrankingKey(ProviderFrankingKey {
        provider: "provider.test".into(),
        public_key: [9; 32],
        valid_from: 1_795_000_000,
    });
    let ok = SignedStatement::sign(&franking, &provider).unwrap();
    assert!(admission.admit(&ok.encode().unwrap()).is_ok());

    let wrong_role = SignedStatement::sign(&erasure(1), &provider).unwrap();
    assert!(matches!(
        admission.admit(&wrong_role.encode().unwrap()),
        Err(AdmissionError::RoleNotAllowed {
            role: Role::Provider,
            ..
        })
    ));

    let stranger = SignedStatement::sign(&erasure(1), &outsider).unwrap();
    assert!(matches!(
        admission.admit(&stranger.encode().unwrap()),
        Err(AdmissionError::UnknownAuthor)
    ));

    // A bad signature is reported first, for participants and strangers alike.
    for signed in [&good, &stranger] {
        let mut sig = *signed.signature();
        sig[40] ^= 1;
        let forged =
            SignedStatement::from_parts(*signed.author(), signed.statement_bytes().to_vec(), sig);
        assert!(matches!(
            admission.admit(&forged.encode().unwrap()),
            Err(AdmissionError::Signature(StatementError::BadSignature))
        ));
    }

    // A participant's signature with a small-order component in R.
    let bytes = erasure(2).encode().unwrap();
    let msg = [STATEMENT_SIGNING_LABEL, &bytes].concat();
    let sig = sign_with_torsion(&custodian, &msg, order_8_point());
    let torsion = SignedStatement::from_parts(custodian.verifying_key().to_bytes(), bytes, sig);
    assert!(matches!(
        admission.admit(&torsion.encode().unwrap()),
        Err(AdmissionError::Signature(StatementError::BadSignature))
    ));
    assert!(torsion.verify().is_err());

    let mut truncated = good.encode().unwrap();
    truncated.pop();
    assert!(matches!(
        admission.admit(&truncated),
        Err(AdmissionError::Malformed(_))
    ));
}
