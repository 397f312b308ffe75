#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

use ed25519_dalek::{Signer, SigningKey};
use proptest::prelude::*;

use super::*;

fn fields(sender: &str, i: u64) -> TagFields {
    TagFields {
        franking_commitment: [0x11; 32],
        conversation: ConversationId([0x22; 16]),
        sender: sender.into(),
        server_time: 1_795_000_000_000 + i,
        envelope_hash: Sha256::digest(i.to_be_bytes()).into(),
    }
}

fn v1_sample() -> DeliveryTag {
    DeliveryTag::V1(DeliveryTagV1 {
        fields: fields("alice", 0),
        signature: [0x44; 64],
    })
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

fn signed_batch(n: u64) -> Vec<DeliveryTagV2> {
    let k = key();
    build_batch(77, (0..n).map(|i| fields("alice", i)).collect(), |m| {
        k.sign(m).to_bytes()
    })
    .unwrap()
}

fn envelope_for(i: u64) -> Vec<u8> {
    // verify_tag hashes the envelope; the fields above use SHA-256(i), so
    // the "envelope" of leaf i is i's big-endian bytes.
    i.to_be_bytes().to_vec()
}

fn received<'a>(f: &'a TagFields, envelope: &'a [u8]) -> Received<'a> {
    Received {
        conversation: f.conversation,
        sender: &f.sender,
        server_time: f.server_time,
        franking_commitment: &f.franking_commitment,
        envelope,
    }
}

#[test]
fn a_remembered_batch_root_spares_only_the_identical_signature() {
    let k = key().verifying_key();
    let batch = signed_batch(5);
    let mut roots = VerifiedRoots::new();
    for (i, t) in batch.iter().enumerate() {
        let env = envelope_for(i as u64);
        let bytes = DeliveryTag::V2(t.clone()).encode().unwrap();
        verify_tag_remembering(&k, &bytes, &received(&t.fields, &env), &mut roots).unwrap();
    }
    // After the whole batch verified: a changed signature, a changed batch
    // id, a changed path and another key are each checked in full, and fail.
    let env = envelope_for(1);
    let mut bad_sig = batch[1].clone();
    bad_sig.signature[10] ^= 1;
    let mut bad_id = batch[1].clone();
    bad_id.batch_id += 1;
    let mut bad_path = batch[1].clone();
    bad_path.path[0][0] ^= 1;
    for t in [bad_sig, bad_id, bad_path] {
        let bytes = DeliveryTag::V2(t.clone()).encode().unwrap();
        assert_eq!(
            verify_tag_remembering(&k, &bytes, &received(&t.fields, &env), &mut roots),
            Err(TagRefusal::BadRootSignature)
        );
    }
    let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
    let bytes = DeliveryTag::V2(batch[1].clone()).encode().unwrap();
    assert_eq!(
        verify_tag_remembering(
            &other,
            &bytes,
            &received(&batch[1].fields, &env),
            &mut roots
        ),
        Err(TagRefusal::BadRootSignature)
    );
}

#[test]
fn v1_round_trip_and_refusals() {
    let t = v1_sample();
    let bytes = t.encode().unwrap();
    assert_eq!(DeliveryTag::decode(&bytes).unwrap(), t);
    assert_eq!(bytes.len(), MAX_DELIVERY_TAG_V1_LEN - 59);
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(matches!(
        DeliveryTag::decode(&trailing),
        Err(WireError::TrailingBytes { count: 1 })
    ));
    let mut v3 = bytes.clone();
    v3[0] = 3;
    assert!(matches!(
        DeliveryTag::decode(&v3),
        Err(WireError::UnsupportedVersion { version: 3, .. })
    ));
    let mut upper = bytes.clone();
    upper[1 + 32 + 16 + 1] = b'A';
    assert!(DeliveryTag::decode(&upper).is_err());
    for n in 0..bytes.len() {
        assert!(DeliveryTag::decode(&bytes[..n]).is_err());
    }
}

#[test]
fn v1_signed_bytes_are_label_then_encoding_without_signature() {
    let DeliveryTag::V1(t) = v1_sample() else {
        panic!("v1 sample")
    };
    let bytes = DeliveryTag::V1(t.clone()).encode().unwrap();
    let signed = t.signed_bytes().unwrap();
    assert_eq!(&signed[..TAG_SIGNATURE_LABEL.len()], TAG_SIGNATURE_LABEL);
    assert_eq!(
        &signed[TAG_SIGNATURE_LABEL.len()..],
        &bytes[..bytes.len() - 64]
    );
}

#[test]
fn v2_leaf_hash_and_root_message_are_as_specified() {
    let f = fields("bob", 3);
    let mut w = Writer::new();
    f.write(&mut w).unwrap();
    let mut pre = vec![0u8];
    pre.extend_from_slice(b"custos/v2/delivery-tag");
    pre.extend_from_slice(w.as_slice());
    assert_eq!(
        f.leaf_hash().unwrap(),
        <[u8; 32]>::from(Sha256::digest(&pre))
    );
    let msg = root_signed_bytes(0x0102, 5, &[9; 32]);
    let mut want = b"custos/v2/delivery-tag-root".to_vec();
    want.extend_from_slice(&0x0102u64.to_be_bytes());
    want.extend_from_slice(&5u16.to_be_bytes());
    want.extend_from_slice(&[9; 32]);
    assert_eq!(msg, want);
}

#[test]
fn v2_round_trip_bounds_and_verification_of_every_leaf() {
    for n in [1u64, 2, 3, 7, 64, 65, 512] {
        let tags = signed_batch(n);
        assert_eq!(tags.len() as u64, n);
        for (i, t) in tags.into_iter().enumerate() {
            let tag = DeliveryTag::V2(t);
            let bytes = tag.encode().unwrap();
            assert!(bytes.len() <= MAX_DELIVERY_TAG_V2_LEN);
            assert!(bytes.len() <= crate::frames::MAX_TAG_LEN);
            assert_eq!(DeliveryTag::decode(&bytes).unwrap(), tag);
            let env = envelope_for(i as u64);
            let v = verify_tag(
                &key().verifying_key(),
                &bytes,
                &received(tag.fields(), &env),
            )
            .unwrap();
            assert_eq!(v.version, TAG_V2);
            assert_eq!(
                v.batch,
                Some(BatchPosition {
                    batch_id: 77,
                    batch_size: n as u16,
                    leaf_index: i as u16
                })
            );
        }
    }
    // The largest tag: 64-byte sender, 9-hash path.
    let k = key();
    let name = "a".repeat(64);
    let big = build_batch(1, (0..512).map(|i| fields(&name, i)).collect(), |m| {
        k.sign(m).to_bytes()
    })
    .unwrap();
    let longest = big
        .into_iter()
        .map(|t| DeliveryTag::V2(t).encode().unwrap().len())
        .max();
    assert_eq!(longest, Some(MAX_DELIVERY_TAG_V2_LEN));
    assert!(build_batch(1, vec![], |_| [0; 64]).is_err());
    assert!(build_batch(1, (0..513).map(|i| fields("a", i)).collect(), |_| [0; 64]).is_err());
}

#[test]
fn v2_refuses_impossible_positions() {
    let t = signed_batch(5).remove(4);
    let bytes = DeliveryTag::V2(t.clone()).encode().unwrap();
    let at = bytes.len() - 64 - 32 * t.path.len() - 4;
    let with = |size: u16, index: u16| {
        let mut b = bytes.clone();
        b[at..at + 2].copy_from_slice(&size.to_be_bytes());
        b[at + 2..at + 4].copy_from_slice(&index.to_be_bytes());
        DeliveryTag::decode(&b)
    };
    assert!(with(5, 4).is_ok());
    assert!(matches!(
        with(0, 0),
        Err(WireError::InvalidValue {
            field: "batch_size",
            ..
        })
    ));
    assert!(matches!(
        with(513, 4),
        Err(WireError::InvalidValue {
            field: "batch_size",
            ..
        })
    ));
    assert!(matches!(
        with(5, 5),
        Err(WireError::InvalidValue {
            field: "leaf_index",
            ..
        })
    ));
    // Size 8 wants a 3-hash path where the tag has 1: the signature bytes
    // are read as path and the tag ends early.
    assert!(matches!(with(8, 4), Err(WireError::Truncated { .. })));
    // Encoding refuses a path of the wrong length.
    let mut wrong = t;
    wrong.path.push([0; 32]);
    assert!(DeliveryTag::V2(wrong).encode().is_err());
}

/// Every single-byte change of a v2 tag fails, with the reason of the
/// region the byte is in.
#[test]
fn every_single_byte_change_of_a_v2_tag_fails_for_its_reason() {
    let tags = signed_batch(37);
    let vk = key().verifying_key();
    for i in [0usize, 5, 31, 32, 36] {
        let t = tags[i].clone();
        let env = envelope_for(i as u64);
        let good = DeliveryTag::V2(t.clone()).encode().unwrap();
        let f = t.fields.clone();
        verify_tag(&vk, &good, &received(&f, &env)).unwrap();
        let name_end = 1 + 32 + 16 + 1 + f.sender.len();
        let pos_start = name_end + 8 + 32;
        let path_start = pos_start + 8 + 2 + 2;
        let sig_start = good.len() - 64;
        for at in 0..good.len() {
            for flip in [0x01u8, 0x80] {
                let mut bad = good.clone();
                bad[at] ^= flip;
                let err = verify_tag(&vk, &bad, &received(&f, &env)).unwrap_err();
                let ok = match at {
                    0 => matches!(
                        err,
                        TagRefusal::Malformed(WireError::UnsupportedVersion { .. })
                    ),
                    1..=32 => err == TagRefusal::CommitmentMismatch,
                    33..=48 => err == TagRefusal::ConversationMismatch,
                    // Sender length and name: refused as malformed, or as
                    // another sender.
                    49 => matches!(err, TagRefusal::Malformed(_)),
                    a if a < name_end => {
                        err == TagRefusal::SenderMismatch || matches!(err, TagRefusal::Malformed(_))
                    }
                    a if a < name_end + 8 => err == TagRefusal::TimeMismatch,
                    a if a < pos_start => err == TagRefusal::EnvelopeHashMismatch,
                    // Batch id: the root is signed for another id.
                    a if a < pos_start + 8 => err == TagRefusal::BadRootSignature,
                    // Size and index: impossible position (malformed), a path
                    // of another length (malformed), or another root.
                    a if a < path_start => {
                        err == TagRefusal::BadRootSignature
                            || matches!(err, TagRefusal::Malformed(_))
                    }
                    a if a < sig_start => err == TagRefusal::BadRootSignature,
                    _ => err == TagRefusal::BadRootSignature,
                };
                assert!(ok, "leaf {i}, byte {at} ^ {flip:#x}: {err:?}");
            }
        }
    }
}

#[test]
fn v1_tags_still_verify_and_fail_for_their_reasons() {
    let k = key();
    let f = fields("carol", 9);
    let sig = k.sign(&f.signed_bytes_v1().unwrap()).to_bytes();
    let bytes = DeliveryTag::V1(DeliveryTagV1 {
        fields: f.clone(),
        signature: sig,
    })
    .encode()
    .unwrap();
    let env = envelope_for(9);
    let v = verify_tag(&k.verifying_key(), &bytes, &received(&f, &env)).unwrap();
    assert_eq!((v.version, v.batch), (TAG_V1, None));
    let mut bad = bytes.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(
        verify_tag(&k.verifying_key(), &bad, &received(&f, &env)),
        Err(TagRefusal::BadSignature)
    );
    assert_eq!(
        verify_tag(&k.verifying_key(), &[], &received(&f, &env)),
        Err(TagRefusal::Missing)
    );
    let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
    assert_eq!(
        verify_tag(&other, &bytes, &received(&f, &env)),
        Err(TagRefusal::BadSignature)
    );
}

#[test]
fn a_v2_tag_does_not_verify_under_another_key_or_for_another_envelope() {
    let t = signed_batch(4).remove(2);
    let bytes = DeliveryTag::V2(t.clone()).encode().unwrap();
    let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
    let env = envelope_for(2);
    assert_eq!(
        verify_tag(&other, &bytes, &received(&t.fields, &env)),
        Err(TagRefusal::BadRootSignature)
    );
    let env3 = envelope_for(3);
    assert_eq!(
        verify_tag(&key().verifying_key(), &bytes, &received(&t.fields, &env3)),
        Err(TagRefusal::EnvelopeHashMismatch)
    );
}

fn arb_fields() -> impl Strategy<Value = TagFields> {
    (
        any::<[u8; 32]>(),
        any::<[u8; 16]>(),
        "[a-z0-9._-]{1,64}",
        any::<u64>(),
        any::<[u8; 32]>(),
    )
        .prop_map(|(c, conv, sender, time, h)| TagFields {
            franking_commitment: c,
            conversation: ConversationId(conv),
            sender,
            server_time: time,
            envelope_hash: h,
        })
}

fn arb_v2() -> impl Strategy<Value = DeliveryTagV2> {
    (1u16..=MAX_TAG_BATCH)
        .prop_flat_map(|size| (Just(size), 0..size))
        .prop_flat_map(|(size, index)| {
            let n = merkle::path_len(u64::from(index), u64::from(size)).unwrap_or(0);
            (
                arb_fields(),
                any::<u64>(),
                Just(size),
                Just(index),
                proptest::collection::vec(any::<[u8; 32]>(), n),
                proptest::array::uniform32(any::<u8>()),
                proptest::array::uniform32(any::<u8>()),
            )
        })
        .prop_map(|(fields, batch_id, batch_size, leaf_index, path, s1, s2)| {
            let mut signature = [0u8; 64];
            signature[..32].copy_from_slice(&s1);
            signature[32..].copy_from_slice(&s2);
            DeliveryTagV2 {
                fields,
                batch_id,
                batch_size,
                leaf_index,
                path,
                signature,
            }
        })
}

proptest! {
    #[test]
    fn v2_round_trips(t in arb_v2()) {
        let tag = DeliveryTag::V2(t);
        let bytes = tag.encode().unwrap();
        prop_assert!(bytes.len() <= MAX_DELIVERY_TAG_LEN);
        prop_assert_eq!(DeliveryTag::decode(&bytes).unwrap(), tag);
    }

    #[test]
    fn decode_never_panics_and_accepts_only_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(t) = DeliveryTag::decode(&bytes) {
            prop_assert_eq!(t.encode().unwrap(), bytes);
        }
    }
}
