//! Property tests: encodings round-trip, decoders never panic, sealing and
//! opening agree.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test and benchmark code: a panic is a failed test, not a service crash"
)]

use blstrs::{G1Projective, Scalar};
use custos_escrow::ibe::{CUSTOS_V1, Ciphertext};
use custos_escrow::{
    Capsule, DayKey, EscrowIdentity, IdentityKey, PartialKey, SecretShare, dangerous, open, seal,
    verify,
};
use group::{Curve, Group};
use proptest::prelude::*;
use proptest::sample::Index;
use rand_core::OsRng;

fn small() -> ProptestConfig {
    ProptestConfig {
        cases: 12,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(small())]

    #[test]
    fn capsule_seal_open_and_encoding_round_trip(
        conversation in any::<[u8; 16]>(),
        day in any::<u32>(),
        chain_id in proptest::collection::vec(any::<u8>(), 0..=64),
        ck0 in any::<[u8; 32]>(),
        pick in 0usize..3,
    ) {
        let (dk, shares) = dangerous::trusted_deal(day, 5, 3, &mut OsRng).unwrap();
        let capsule = seal(&dk, &conversation, day, &chain_id, &ck0).unwrap();
        let bytes = capsule.to_bytes();
        prop_assert_eq!(Capsule::from_bytes(&bytes).unwrap(), capsule);
        prop_assert!(verify(&capsule, &dk, &conversation, day, &chain_id, &ck0).is_ok());
        let id = EscrowIdentity::new(&conversation, day);
        let partials: Vec<PartialKey> = shares[pick..pick + 3].iter().map(|s| s.extract(&id)).collect();
        let key = dk.verify_and_combine(&id, &partials, &mut OsRng).unwrap();
        prop_assert_eq!(IdentityKey::from_bytes(&key.to_bytes()).unwrap(), key);
        prop_assert_eq!(*open(&capsule, &key).unwrap(), ck0);
    }

    #[test]
    fn day_key_round_trips(n in 1usize..=7, t_seed in any::<usize>(), day in any::<u32>()) {
        let t = 1 + t_seed % n;
        let (dk, shares) = dangerous::trusted_deal(day, n, t, &mut OsRng).unwrap();
        prop_assert_eq!(DayKey::from_bytes(&dk.to_bytes()).unwrap(), dk.clone());
        for s in &shares {
            let bytes = s.to_bytes();
            let back = SecretShare::from_bytes(bytes.as_ref()).unwrap();
            prop_assert_eq!(back.index(), s.index());
            prop_assert_eq!(back.verification_key(), s.verification_key());
            prop_assert_eq!(dk.verification_key(s.index()), Some(&s.verification_key()));
        }
    }

    #[test]
    fn partial_key_round_trips(index in 1u32..=64, k in any::<u64>()) {
        let point = (G1Projective::generator() * Scalar::from(k.max(1))).to_affine();
        let p = PartialKey { index, point };
        prop_assert_eq!(PartialKey::from_bytes(&p.to_bytes()).unwrap(), p);
    }

    #[test]
    fn ibe_round_trips(msg in any::<[u8; 32]>(), id in proptest::collection::vec(any::<u8>(), 0..100)) {
        let s = Scalar::from(0x1234_5678_9abc_def0u64);
        let master = (blstrs::G2Projective::generator() * s).to_affine();
        let ct = CUSTOS_V1.encrypt(&master, &id, &msg, &mut OsRng).unwrap();
        prop_assert_eq!(Ciphertext::<32>::from_bytes(&ct.to_bytes()).unwrap(), ct);
        let key = (G1Projective::from(CUSTOS_V1.hash_identity(&id)) * s).to_affine();
        prop_assert_eq!(*CUSTOS_V1.decrypt(&key, &ct).unwrap(), msg);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn decoders_return_errors_not_panics(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
        // Any outcome is fine except a panic; accepted values re-encode to the input.
        if let Ok(c) = Capsule::from_bytes(&bytes) { prop_assert_eq!(&c.to_bytes()[..], &bytes[..]); }
        if let Ok(d) = DayKey::from_bytes(&bytes) { prop_assert_eq!(d.to_bytes(), bytes.clone()); }
        if let Ok(p) = PartialKey::from_bytes(&bytes) { prop_assert_eq!(&p.to_bytes()[..], &bytes[..]); }
        if let Ok(k) = IdentityKey::from_bytes(&bytes) { prop_assert_eq!(&k.to_bytes()[..], &bytes[..]); }
        if let Ok(s) = SecretShare::from_bytes(&bytes) { prop_assert_eq!(&s.to_bytes()[..], &bytes[..]); }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// One changed byte in a valid encoding is either rejected or yields a
    /// value that re-encodes to exactly the changed bytes (no two encodings
    /// of one value).
    #[test]
    fn mutated_encodings_stay_canonical(pos in any::<Index>(), xor in 1u8..=255) {
        let (dk, shares) = dangerous::trusted_deal(3, 3, 2, &mut OsRng).unwrap();
        let id = EscrowIdentity::new(&[1u8; 16], 3);
        let capsule = seal(&dk, &[1u8; 16], 3, b"c", &[2u8; 32]).unwrap().to_bytes().to_vec();
        let partial = shares[0].extract(&id).to_bytes().to_vec();
        for (kind, mut bytes) in [("capsule", capsule), ("day key", dk.to_bytes()), ("partial", partial)] {
            let i = pos.index(bytes.len());
            bytes[i] ^= xor;
            let reencoded = match kind {
                "capsule" => Capsule::from_bytes(&bytes).map(|c| c.to_bytes().to_vec()).ok(),
                "day key" => DayKey::from_bytes(&bytes).map(|d| d.to_bytes()).ok(),
                _ => PartialKey::from_bytes(&bytes).map(|p| p.to_bytes().to_vec()).ok(),
            };
            if let Some(r) = reencoded {
                prop_assert_eq!(r, bytes);
            }
        }
    }
}
