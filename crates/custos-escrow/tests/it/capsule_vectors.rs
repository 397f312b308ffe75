//! Capsule test vectors (docs/spec/escrow-capsule.md): one file per case in
//! `vectors/capsule/`, each with its expected outcome, run by one harness.
//!
//! The vectors use a fixed day key (fixed polynomial, see `fixed_day_key`)
//! so that anyone can reproduce them; `generate` rewrites them (run with
//! `cargo test -p custos-escrow --test it capsule_vectors -- --ignored`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test and benchmark code: a panic is a failed test, not a service crash"
)]

use custos_vectors::Vector;
use std::path::PathBuf;

use blstrs::{G1Projective, G2Affine, G2Projective, Scalar};
use custos_escrow::{
    Capsule, CapsuleError, DayKey, DecodeError, EscrowIdentity, IdentityKey, OpenError, open, seal,
    verify,
};
use group::{Curve, Group};
use sha2::{Digest, Sha256};

const DAY: u32 = 20_418;
const CONVERSATION: [u8; 16] = *b"conversation-001";
const CHAIN_ID: &[u8] = b"chain: epoch 7, leaf 2, seq 0";

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/capsule")
}

/// A reproducible scalar below the group order: SHA-256 of a label, read
/// as four little-endian limbs with the top limb cut to 60 bits.
fn fixed_scalar(label: &str) -> Scalar {
    let h = Sha256::digest(label.as_bytes());
    let mut limbs = [0u64; 4];
    for (i, limb) in limbs.iter_mut().enumerate() {
        *limb = u64::from_le_bytes(h[i * 8..i * 8 + 8].try_into().unwrap());
    }
    limbs[3] &= 0x0fff_ffff_ffff_ffff;
    Option::from(Scalar::from_u64s_le(&limbs)).unwrap()
}

/// Day key of the polynomial `f(x) = s + a1·x + a2·x²`, 5 custodians, t = 3.
fn fixed_day_key() -> (DayKey, Scalar) {
    let coeffs = [
        fixed_scalar("custos vector s"),
        fixed_scalar("custos vector a1"),
        fixed_scalar("custos vector a2"),
    ];
    let f = |x: u64| {
        coeffs
            .iter()
            .rev()
            .fold(Scalar::from(0u64), |acc, c| acc * Scalar::from(x) + c)
    };
    let g = |s: Scalar| (G2Projective::generator() * s).to_affine();
    let vks: Vec<G2Affine> = (1..=5).map(|i| g(f(i))).collect();
    (DayKey::new(DAY, 3, g(coeffs[0]), vks).unwrap(), coeffs[0])
}

fn ck0() -> [u8; 32] {
    Sha256::digest(b"custos vector CK_0").into()
}

fn off_subgroup_u() -> [u8; 96] {
    for x in 0u8..=255 {
        let mut b = [0u8; 96];
        b[0] = 0x80;
        b[95] = x;
        if let Some(p) = Option::<G2Affine>::from(G2Affine::from_compressed_unchecked(&b))
            && !bool::from(p.is_torsion_free())
        {
            return b;
        }
    }
    panic!("no off-subgroup point found")
}

fn cases() -> Vec<(&'static str, &'static str, Vec<u8>, &'static str)> {
    let (dk, _) = fixed_day_key();
    let good = seal(&dk, &CONVERSATION, DAY, CHAIN_ID, &ck0())
        .unwrap()
        .to_bytes();
    let with = |range: std::ops::Range<usize>, bytes: &[u8]| {
        let mut c = good.to_vec();
        c[range].copy_from_slice(bytes);
        c
    };
    let other_u = (G2Projective::generator() * Scalar::from(2u64))
        .to_affine()
        .to_compressed();
    let mut identity_u = [0u8; 96];
    identity_u[0] = 0xc0;
    let mut flip_v = good.to_vec();
    flip_v[96] ^= 0x01;
    let mut flip_w = good.to_vec();
    flip_w[159] ^= 0x80;
    let mut no_flag = good.to_vec();
    no_flag[0] &= 0x7f;
    vec![
        (
            "valid",
            "a capsule sealed with the fixed day key",
            good.to_vec(),
            "ok",
        ),
        (
            "tampered-u",
            "U replaced by another valid point",
            with(0..96, &other_u),
            "fo-check-failed",
        ),
        (
            "tampered-v",
            "one bit of V flipped",
            flip_v,
            "fo-check-failed",
        ),
        (
            "tampered-w",
            "one bit of W flipped",
            flip_w,
            "fo-check-failed",
        ),
        (
            "u-not-in-subgroup",
            "U on the curve, outside the subgroup",
            with(0..96, &off_subgroup_u()),
            "not-in-subgroup",
        ),
        (
            "u-identity",
            "U is the point at infinity",
            with(0..96, &identity_u),
            "identity-point",
        ),
        (
            "u-uncompressed-flag",
            "U without the compression flag",
            no_flag,
            "malformed-point",
        ),
        (
            "u-garbage",
            "U is all 0xff",
            with(0..96, &[0xff; 96]),
            "malformed-point",
        ),
        (
            "truncated",
            "159 bytes",
            good[..159].to_vec(),
            "wrong-length",
        ),
        (
            "extended",
            "161 bytes",
            [&good[..], &[0u8]].concat(),
            "wrong-length",
        ),
    ]
}

fn render(name: &str, description: &str, capsule: &[u8], expect: &str) -> Vector {
    let (dk, s) = fixed_day_key();
    let id = EscrowIdentity::new(&CONVERSATION, DAY);
    let identity_key = (G1Projective::from(*id.point()) * s)
        .to_affine()
        .to_compressed();
    Vector::new(&format!("{name}.vector"), description)
        .with_hex("day_key", &dk.to_bytes())
        .with_hex("conversation", &CONVERSATION)
        .with("day", DAY.to_string())
        .with_hex("chain_id", CHAIN_ID)
        .with_hex("ck0", &ck0())
        .with_hex("identity_key", &identity_key)
        .with_hex("capsule", capsule)
        .with("expect", expect)
}

#[test]
#[ignore = "rewrites the checked-in vectors"]
fn generate() {
    std::fs::create_dir_all(dir()).unwrap();
    for (name, description, capsule, expect) in cases() {
        custos_vectors::write(&dir(), &render(name, description, &capsule, expect)).unwrap();
    }
}

#[test]
fn checked_in_vectors_match_expected_outcomes() {
    let mut count = 0;
    for v in custos_vectors::read_dir(&dir()).unwrap() {
        count += 1;
        let name = v.name.clone();
        let hexf = |k: &str| v.hex(k).unwrap();
        let dk = DayKey::from_bytes(&hexf("day_key")).unwrap();
        let conversation: [u8; 16] = hexf("conversation").try_into().unwrap();
        let day: u32 = v.field("day").unwrap().parse().unwrap();
        let chain_id = hexf("chain_id");
        let ck0: [u8; 32] = hexf("ck0").try_into().unwrap();
        let key = IdentityKey::from_bytes(&hexf("identity_key")).unwrap();
        let decoded = Capsule::from_bytes(&hexf("capsule"));
        match v.field("expect").unwrap() {
            "ok" => {
                let c = decoded.unwrap();
                assert_eq!(
                    seal(&dk, &conversation, day, &chain_id, &ck0).unwrap(),
                    c,
                    "{name}"
                );
                verify(&c, &dk, &conversation, day, &chain_id, &ck0).unwrap();
                assert_eq!(*open(&c, &key).unwrap(), ck0, "{name}");
            }
            "fo-check-failed" => {
                let c = decoded.unwrap();
                assert_eq!(open(&c, &key), Err(OpenError::FoCheckFailed), "{name}");
                assert_eq!(
                    verify(&c, &dk, &conversation, day, &chain_id, &ck0),
                    Err(CapsuleError::Mismatch),
                    "{name}"
                );
            }
            "not-in-subgroup" => assert!(
                matches!(decoded, Err(DecodeError::NotInSubgroup { .. })),
                "{name}"
            ),
            "identity-point" => assert!(
                matches!(decoded, Err(DecodeError::IdentityPoint { .. })),
                "{name}"
            ),
            "malformed-point" => assert!(
                matches!(decoded, Err(DecodeError::MalformedPoint { .. })),
                "{name}"
            ),
            "wrong-length" => assert!(
                matches!(decoded, Err(DecodeError::WrongLength { .. })),
                "{name}"
            ),
            other => panic!("{name}: unknown expectation {other}"),
        }
    }
    assert_eq!(count, cases().len(), "every case has a checked-in vector");
}

#[test]
fn checked_in_vectors_are_what_the_code_produces() {
    for (name, description, capsule, expect) in cases() {
        let on_disk = custos_vectors::read(&dir().join(format!("{name}.vector"))).unwrap();
        assert_eq!(
            on_disk,
            render(name, description, &capsule, expect),
            "{name} changed: the encoding is not stable"
        );
    }
}
