//! Crate-level properties of threshold keys and capsules (DESIGN.md §3,
//! issue "what must be shown").

use blstrs::{G1Projective, G2Projective, Scalar};
use ff::Field;
use group::{Curve, Group};
use rand_core::OsRng;

use crate::threshold::{self, deal};
use crate::*;

const CONV_A: [u8; 16] = [0xaa; 16];
const CONV_B: [u8; 16] = [0xbb; 16];
const DAY: u32 = 20_418;

fn day_key_with_secret(day: u32, s: &Scalar) -> (DayKey, Vec<SecretShare>) {
    let shares = deal(s, 5, 3, &mut OsRng);
    let master = (G2Projective::generator() * s).to_affine();
    let vks = shares.iter().map(SecretShare::verification_key).collect();
    (DayKey::new(day, 3, master, vks).unwrap(), shares)
}

fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
    (0u32..(1 << n))
        .filter(|m| m.count_ones() as usize == k)
        .map(|m| (0..n).filter(|i| m & (1 << i) != 0).collect())
        .collect()
}

#[test]
fn every_three_of_five_yields_the_master_identity_key() {
    let s = Scalar::random(OsRng);
    let (dk, shares) = day_key_with_secret(DAY, &s);
    let id = EscrowIdentity::new(&CONV_A, DAY);
    let expected = (G1Projective::from(*id.point()) * s).to_affine();
    let all = subsets(5, 3);
    assert_eq!(all.len(), 10);
    for subset in all {
        let partials: Vec<PartialKey> = subset.iter().map(|i| shares[*i].extract(&id)).collect();
        let verified: Vec<_> = partials
            .iter()
            .map(|p| dk.verify_partial(&id, p).unwrap())
            .collect();
        assert_eq!(
            dk.combine(&id, &verified).unwrap().point(),
            &expected,
            "subset {subset:?}"
        );
    }
}

#[test]
fn no_two_of_five_open_a_capsule() {
    let (dk, shares) = day_key_with_secret(DAY, &Scalar::random(OsRng));
    let id = EscrowIdentity::new(&CONV_A, DAY);
    let capsule = seal(&dk, &CONV_A, DAY, b"chain-1", &[1u8; 32]).unwrap();
    for subset in subsets(5, 2) {
        let partials: Vec<PartialKey> = subset.iter().map(|i| shares[*i].extract(&id)).collect();
        assert_eq!(
            dk.verify_and_combine(&id, &partials, &mut OsRng),
            Err(ThresholdError::NotEnoughPartials {
                found: 2,
                threshold: 3
            })
        );
        // Interpolating the two as if the threshold were 2 gives a key that opens nothing.
        let forced = threshold::combine(&partials, 2).unwrap();
        assert_eq!(
            open(&capsule, &forced),
            Err(OpenError::FoCheckFailed),
            "subset {subset:?}"
        );
    }
}

#[test]
fn keys_are_bound_to_one_conversation_and_one_day() {
    let s = Scalar::random(OsRng);
    let (dk, shares) = day_key_with_secret(DAY, &s);
    let (dk_next, _) = day_key_with_secret(DAY + 1, &Scalar::random(OsRng));
    let ck0 = [42u8; 32];
    let capsule_a = seal(&dk, &CONV_A, DAY, b"c", &ck0).unwrap();
    let capsule_b = seal(&dk, &CONV_B, DAY, b"c", &ck0).unwrap();
    let capsule_next = seal(&dk_next, &CONV_A, DAY + 1, b"c", &ck0).unwrap();
    let id_a = EscrowIdentity::new(&CONV_A, DAY);
    let key_a = dk
        .verify_and_combine(
            &id_a,
            &shares
                .iter()
                .take(3)
                .map(|sh| sh.extract(&id_a))
                .collect::<Vec<_>>(),
            &mut OsRng,
        )
        .unwrap();
    assert_eq!(*open(&capsule_a, &key_a).unwrap(), ck0);
    assert_eq!(open(&capsule_b, &key_a), Err(OpenError::FoCheckFailed));
    assert_eq!(open(&capsule_next, &key_a), Err(OpenError::FoCheckFailed));
    // Even under the same master secret, day D's key does not open day D+1.
    let (dk_same_secret_next, _) = day_key_with_secret(DAY + 1, &s);
    let capsule_same_next = seal(&dk_same_secret_next, &CONV_A, DAY + 1, b"c", &ck0).unwrap();
    assert_eq!(
        open(&capsule_same_next, &key_a),
        Err(OpenError::FoCheckFailed)
    );
}

#[test]
fn tampered_u_v_or_w_is_rejected() {
    let (dk, shares) = day_key_with_secret(DAY, &Scalar::random(OsRng));
    let id = EscrowIdentity::new(&CONV_A, DAY);
    let key = dk
        .verify_and_combine(
            &id,
            &shares[2..]
                .iter()
                .map(|sh| sh.extract(&id))
                .collect::<Vec<_>>(),
            &mut OsRng,
        )
        .unwrap();
    let ck0 = [7u8; 32];
    let capsule = seal(&dk, &CONV_A, DAY, b"chain", &ck0).unwrap();
    let bytes = capsule.to_bytes();
    // U: replace with another valid point.
    let mut u_tampered = bytes;
    let other_u = (G2Projective::generator() * Scalar::from(3u64))
        .to_affine()
        .to_compressed();
    u_tampered[..96].copy_from_slice(&other_u);
    for (name, tampered) in [
        ("U", u_tampered),
        ("V", flip(bytes, 100)),
        ("W", flip(bytes, 159)),
    ] {
        let c = Capsule::from_bytes(&tampered).unwrap();
        assert_eq!(open(&c, &key), Err(OpenError::FoCheckFailed), "{name}");
        assert_eq!(
            verify(&c, &dk, &CONV_A, DAY, b"chain", &ck0),
            Err(CapsuleError::Mismatch),
            "{name}"
        );
    }
    // A bit flip inside U's x coordinate gives, overwhelmingly, no valid
    // point: decoding fails with a typed error; if it ever decodes, the
    // FO check rejects it.
    for i in [1usize, 10, 47, 95] {
        match Capsule::from_bytes(&flip(bytes, i)) {
            Ok(c) => assert_eq!(open(&c, &key), Err(OpenError::FoCheckFailed)),
            Err(e) => assert!(matches!(
                e,
                DecodeError::MalformedPoint { .. } | DecodeError::NotInSubgroup { .. }
            )),
        }
    }
}

fn flip(mut b: [u8; 160], i: usize) -> [u8; 160] {
    b[i] ^= 1;
    b
}

#[test]
fn seal_is_deterministic_and_verify_binds_chain_and_root_key() {
    let (dk, _) = day_key_with_secret(DAY, &Scalar::random(OsRng));
    let ck0 = [9u8; 32];
    let c1 = seal(&dk, &CONV_A, DAY, b"chain-x", &ck0).unwrap();
    let c2 = seal(&dk, &CONV_A, DAY, b"chain-x", &ck0).unwrap();
    assert_eq!(c1, c2);
    verify(&c1, &dk, &CONV_A, DAY, b"chain-x", &ck0).unwrap();
    assert_eq!(
        verify(&c1, &dk, &CONV_A, DAY, b"chain-y", &ck0),
        Err(CapsuleError::Mismatch)
    );
    assert_eq!(
        verify(&c1, &dk, &CONV_A, DAY, b"chain-x", &[8u8; 32]),
        Err(CapsuleError::Mismatch)
    );
    assert_eq!(
        verify(&c1, &dk, &CONV_B, DAY, b"chain-x", &ck0),
        Err(CapsuleError::Mismatch)
    );
    assert_ne!(seal(&dk, &CONV_A, DAY, b"chain-y", &ck0).unwrap(), c1);
    assert_eq!(
        seal(&dk, &CONV_A, DAY, &[0u8; 65], &ck0),
        Err(CapsuleError::ChainIdTooLong { found: 65, max: 64 })
    );
    assert!(seal(&dk, &CONV_A, DAY, &[0u8; 64], &ck0).is_ok());
    assert_eq!(
        seal(&dk, &CONV_A, DAY + 1, b"c", &ck0),
        Err(CapsuleError::DayMismatch {
            requested: DAY + 1,
            key_day: DAY
        })
    );
    let ctx = SealContext::new(&dk, &CONV_A, DAY).unwrap();
    assert_eq!(ctx.seal(b"chain-x", &ck0).unwrap(), c1);
    ctx.verify(&c1, b"chain-x", &ck0).unwrap();
}

#[test]
fn partial_key_verification_single_and_batched() {
    let (dk, shares) = day_key_with_secret(DAY, &Scalar::random(OsRng));
    let id = EscrowIdentity::new(&CONV_A, DAY);
    let other = EscrowIdentity::new(&CONV_B, DAY);
    let mut partials: Vec<PartialKey> = shares.iter().map(|s| s.extract(&id)).collect();
    dk.verify_partials(&id, &partials, &mut OsRng).unwrap();
    // A partial key for another identity, and one under another index.
    let wrong_id = shares[1].extract(&other);
    assert_eq!(
        dk.verify_partial(&id, &wrong_id),
        Err(ThresholdError::InvalidPartial { index: 2 })
    );
    let mut swapped = partials[0];
    swapped.index = 4;
    assert_eq!(
        dk.verify_partial(&id, &swapped),
        Err(ThresholdError::InvalidPartial { index: 4 })
    );
    partials[1] = wrong_id;
    partials[3].point =
        (G1Projective::from(partials[3].point) + G1Projective::generator()).to_affine();
    assert_eq!(
        dk.verify_partials(&id, &partials, &mut OsRng),
        Err(ThresholdError::InvalidPartials {
            indices: vec![2, 4]
        })
    );
    let stranger = PartialKey {
        index: 6,
        point: partials[0].point,
    };
    assert_eq!(
        dk.verify_partial(&id, &stranger),
        Err(ThresholdError::UnknownIndex { index: 6, n: 5 })
    );
    assert_eq!(
        dk.verify_partials(&id, &[], &mut OsRng),
        Err(ThresholdError::Empty)
    );
    let dup = [partials[0], partials[0], partials[2]];
    assert_eq!(
        dk.verify_and_combine(&id, &dup, &mut OsRng),
        Err(ThresholdError::DuplicateIndex { index: 1 })
    );
}

#[test]
fn day_key_encoding_round_trips_and_rejects_bad_input() {
    let (dk, _) = day_key_with_secret(DAY, &Scalar::random(OsRng));
    let bytes = dk.to_bytes();
    assert_eq!(bytes.len(), 9 + 96 * 6);
    assert_eq!(DayKey::from_bytes(&bytes).unwrap(), dk);
    let mut v2 = bytes.clone();
    v2[0] = 2;
    assert!(matches!(
        DayKey::from_bytes(&v2),
        Err(DecodeError::UnsupportedVersion { found: 2, .. })
    ));
    assert!(matches!(
        DayKey::from_bytes(&bytes[..bytes.len() - 1]),
        Err(DecodeError::WrongLength { .. })
    ));
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(
        DayKey::from_bytes(&long),
        Err(DecodeError::WrongLength { .. })
    ));
    // Swapping two verification keys breaks consistency.
    let mut swapped = bytes.clone();
    let (a, b) = (9 + 96 * 4, 9 + 96 * 5);
    let tmp = swapped[a..a + 96].to_vec();
    swapped.copy_within(b..b + 96, a);
    swapped[b..b + 96].copy_from_slice(&tmp);
    assert!(matches!(
        DayKey::from_bytes(&swapped),
        Err(DecodeError::InvalidValue { .. })
    ));
    // Threshold out of range.
    let mut t0 = bytes.clone();
    t0[5..7].copy_from_slice(&0u16.to_be_bytes());
    assert!(matches!(
        DayKey::from_bytes(&t0),
        Err(DecodeError::InvalidValue { .. })
    ));
    let mut t6 = bytes;
    t6[5..7].copy_from_slice(&6u16.to_be_bytes());
    assert!(matches!(
        DayKey::from_bytes(&t6),
        Err(DecodeError::InvalidValue { .. })
    ));
}

#[test]
fn trusted_deal_produces_a_working_day_key() {
    let (dk, shares) = dangerous::trusted_deal(DAY, 5, 3, &mut OsRng).unwrap();
    let id = EscrowIdentity::new(&CONV_A, DAY);
    let capsule = seal(&dk, &CONV_A, DAY, b"c", &[3u8; 32]).unwrap();
    let key = dk
        .verify_and_combine(
            &id,
            &shares[1..4]
                .iter()
                .map(|s| s.extract(&id))
                .collect::<Vec<_>>(),
            &mut OsRng,
        )
        .unwrap();
    assert_eq!(*open(&capsule, &key).unwrap(), [3u8; 32]);
    for s in shares {
        s.erase();
    }
}

#[test]
fn batch_across_identities_and_days_names_bad_positions() {
    let (dk1, sh1) = day_key_with_secret(DAY, &Scalar::random(OsRng));
    let (dk2, sh2) = day_key_with_secret(DAY + 1, &Scalar::random(OsRng));
    let ids = [
        EscrowIdentity::new(&CONV_A, DAY),
        EscrowIdentity::new(&CONV_B, DAY),
        EscrowIdentity::new(&CONV_A, DAY + 1),
    ];
    let mut partials = Vec::new();
    for (dk, shares, id) in [
        (&dk1, &sh1, &ids[0]),
        (&dk1, &sh1, &ids[1]),
        (&dk2, &sh2, &ids[2]),
    ] {
        for s in shares.iter().take(3) {
            partials.push((dk, id, s.extract(id)));
        }
    }
    let checks: Vec<PartialCheck<'_>> = partials
        .iter()
        .map(|(dk, id, p)| PartialCheck {
            day_key: dk,
            identity: id,
            partial: p,
        })
        .collect();
    let verified = verify_partials_batch(&checks, &mut OsRng).unwrap();
    assert_eq!(verified.len(), checks.len());
    // The batch's verified keys combine per identity.
    let key = dk1.combine(&ids[0], &verified[..3]).unwrap();
    assert_eq!(
        dk1.combine(&ids[1], &verified[..3]),
        Err(ThresholdError::NotVerifiedFor { index: 1 })
    );
    assert_eq!(
        key,
        dk1.verify_and_combine(
            &ids[0],
            &[
                *verified[0].partial(),
                *verified[1].partial(),
                *verified[2].partial()
            ],
            &mut OsRng
        )
        .unwrap()
    );
    // Swap in a partial key for the wrong identity at position 4.
    let wrong = sh1[1].extract(&ids[0]);
    let mut bad = checks.clone();
    bad[4].partial = &wrong;
    assert_eq!(
        verify_partials_batch(&bad, &mut OsRng),
        Err(ThresholdError::InvalidBatchItems { positions: vec![4] })
    );
    let mut wrong_day = checks.clone();
    wrong_day[0].day_key = &dk2;
    assert_eq!(
        verify_partials_batch(&wrong_day, &mut OsRng),
        Err(ThresholdError::DayMismatch { position: 0 })
    );
    assert_eq!(
        verify_partials_batch(&[], &mut OsRng),
        Err(ThresholdError::Empty)
    );
}

#[test]
fn batch_grouped_by_custodian_detects_a_bad_key() {
    // Six identities from three custodians: fewer custodians than
    // identities, so the batch groups by verification key.
    let (dk, shares) = day_key_with_secret(DAY, &Scalar::random(OsRng));
    let ids: Vec<EscrowIdentity> = (0u8..6)
        .map(|i| EscrowIdentity::new(&[i; 16], DAY))
        .collect();
    let partials: Vec<(usize, PartialKey)> = ids
        .iter()
        .enumerate()
        .flat_map(|(i, id)| shares.iter().take(3).map(move |s| (i, s.extract(id))))
        .collect();
    let checks: Vec<PartialCheck<'_>> = partials
        .iter()
        .map(|(i, p)| PartialCheck {
            day_key: &dk,
            identity: &ids[*i],
            partial: p,
        })
        .collect();
    verify_partials_batch(&checks, &mut OsRng).unwrap();
    let swapped = shares[2].extract(&ids[0]);
    let mut bad = checks.clone();
    bad[7].partial = &swapped; // identity 2, custodian 2 slot, wrong key
    assert_eq!(
        verify_partials_batch(&bad, &mut OsRng),
        Err(ThresholdError::InvalidBatchItems { positions: vec![7] })
    );
}

#[test]
fn only_verified_partials_for_this_identity_and_day_key_combine() {
    let (dk, shares) = day_key_with_secret(DAY, &Scalar::random(OsRng));
    let (other_dk, other_shares) = day_key_with_secret(DAY, &Scalar::random(OsRng));
    let id = EscrowIdentity::new(&CONV_A, DAY);
    let other_id = EscrowIdentity::new(&CONV_B, DAY);
    let capsule = seal(&dk, &CONV_A, DAY, b"chain", &[9u8; 32]).unwrap();

    // A wrong partial key among raw ones: no key comes out.
    let mut raw: Vec<PartialKey> = shares.iter().take(3).map(|s| s.extract(&id)).collect();
    raw[1].point = (G1Projective::from(raw[1].point) + G1Projective::generator()).to_affine();
    assert_eq!(
        dk.verify_and_combine(&id, &raw, &mut OsRng),
        Err(ThresholdError::InvalidPartials { indices: vec![2] })
    );
    assert_eq!(
        dk.verify_partial(&id, &raw[1]),
        Err(ThresholdError::InvalidPartial { index: 2 })
    );

    // Keys verified for another conversation do not combine for this one.
    let for_other = dk
        .verify_partials(
            &other_id,
            &shares
                .iter()
                .take(3)
                .map(|s| s.extract(&other_id))
                .collect::<Vec<_>>(),
            &mut OsRng,
        )
        .unwrap();
    assert_eq!(
        dk.combine(&id, &for_other),
        Err(ThresholdError::NotVerifiedFor { index: 1 })
    );

    // Keys verified under another day key of the same day do not combine.
    let under_other_dk = other_dk
        .verify_partials(
            &id,
            &other_shares
                .iter()
                .take(3)
                .map(|s| s.extract(&id))
                .collect::<Vec<_>>(),
            &mut OsRng,
        )
        .unwrap();
    assert_eq!(
        dk.combine(&id, &under_other_dk),
        Err(ThresholdError::NotVerifiedFor { index: 1 })
    );

    // Verified keys for this identity open the capsule.
    let good = dk
        .verify_partials(
            &id,
            &shares
                .iter()
                .skip(2)
                .map(|s| s.extract(&id))
                .collect::<Vec<_>>(),
            &mut OsRng,
        )
        .unwrap();
    assert_eq!(good[0].index(), 3);
    assert_eq!(good[0].identity(), &id);
    let key = dk.combine(&id, &good).unwrap();
    assert_eq!(*open(&capsule, &key).unwrap(), [9u8; 32]);
    assert_eq!(
        dk.verification_key_bytes(3),
        Some(shares[2].verification_key_bytes())
    );
    assert_eq!(dk.verification_key_bytes(6), None);
    assert_eq!(
        DayKey::from_bytes(&dk.to_bytes()).unwrap().master_bytes(),
        dk.master_bytes()
    );
}
