//! Round trips of every wire format: `decode(encode(v)) == v` for generated
//! values, and `encode(decode(b)) == b` for any bytes a decoder accepts.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

use custos_wire::announcement::{ChainAnnouncement, ChainRoot, EscrowKind};
use custos_wire::envelope::{Envelope, EnvelopeHeader, peek_header};
use custos_wire::frames::{
    ClientFrame, Delivery, ItemKind, ServerFrame, decode_delivery_batch, encode_delivery_batch,
};
use custos_wire::payload::{Attachment, ContentType, Payload};
use custos_wire::{ChainId, ConversationId};
use proptest::prelude::*;

fn conv() -> impl Strategy<Value = ConversationId> {
    any::<[u8; 16]>().prop_map(ConversationId)
}

fn chain() -> impl Strategy<Value = ChainId> {
    (any::<u64>(), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(
        |(epoch, sender_leaf, day, seq)| ChainId {
            epoch,
            sender_leaf,
            day,
            seq,
        },
    )
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn name() -> impl Strategy<Value = String> {
    "[a-z0-9._-]{1,64}"
}

fn kind() -> impl Strategy<Value = ItemKind> {
    prop_oneof![
        Just(ItemKind::Envelope),
        Just(ItemKind::Announcement),
        Just(ItemKind::Commit),
        Just(ItemKind::Welcome),
        Just(ItemKind::Proposal)
    ]
}

fn envelope() -> impl Strategy<Value = Envelope> {
    (
        conv(),
        chain(),
        any::<u32>(),
        any::<[u8; 32]>(),
        bytes(2048),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
    )
        .prop_map(
            |(conversation, chain, generation, franking_commitment, ciphertext, s1, s2)| {
                let mut signature = [0u8; 64];
                signature[..32].copy_from_slice(&s1);
                signature[32..].copy_from_slice(&s2);
                Envelope {
                    header: EnvelopeHeader {
                        conversation,
                        chain,
                        generation,
                        franking_commitment,
                    },
                    ciphertext,
                    signature,
                }
            },
        )
}

fn announcement() -> impl Strategy<Value = ChainAnnouncement> {
    (conv(), chain(), any::<bool>(), bytes(4096)).prop_map(
        |(conversation, chain, escrow, mls_message)| ChainAnnouncement {
            conversation,
            chain,
            escrow_kind: if escrow {
                EscrowKind::BfIbeV1
            } else {
                EscrowKind::None
            },
            escrow_capsule: if escrow { vec![0x5a; 160] } else { vec![] },
            mls_message,
        },
    )
}

fn payload() -> impl Strategy<Value = Payload> {
    let attachment = (
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        any::<u64>(),
        "[ -~]{0,64}",
    )
        .prop_map(|(key, plaintext_sha256, size, locator)| Attachment {
            key,
            plaintext_sha256,
            size,
            locator,
        });
    (
        any::<u64>(),
        any::<[u8; 32]>(),
        ".{0,200}",
        proptest::collection::vec(attachment, 0..=8),
    )
        .prop_map(|(sent_at, franking_key, text, attachments)| Payload {
            content_type: ContentType::Text,
            sent_at,
            franking_key,
            body: text.into_bytes(),
            attachments,
        })
}

fn delivery() -> impl Strategy<Value = Delivery> {
    (
        any::<u64>(),
        kind(),
        conv(),
        name(),
        any::<u64>(),
        bytes(1024),
        bytes(128),
    )
        .prop_map(
            |(seq, kind, conversation, sender, server_time, body, tag)| Delivery {
                seq,
                kind,
                conversation,
                sender,
                server_time,
                body,
                tag,
            },
        )
}

fn client_frame() -> impl Strategy<Value = ClientFrame> {
    prop_oneof![
        (any::<u64>(), kind(), conv(), bytes(1024)).prop_map(
            |(request_id, kind, conversation, body)| {
                ClientFrame::Submit {
                    request_id,
                    kind,
                    conversation,
                    body,
                }
            }
        ),
        proptest::collection::vec(any::<u64>(), 1..=1024)
            .prop_map(|seqs| ClientFrame::Ack { seqs }),
    ]
}

fn server_frame() -> impl Strategy<Value = ServerFrame> {
    prop_oneof![
        delivery().prop_map(ServerFrame::Delivery),
        (any::<u64>(), any::<u64>(), bytes(2048)).prop_map(|(request_id, server_time, tag)| {
            ServerFrame::Accepted {
                request_id,
                server_time,
                tag,
            }
        }),
        (any::<u64>(), any::<u16>(), ".{0,100}").prop_map(|(request_id, status, reason)| {
            ServerFrame::Refused {
                request_id,
                status,
                reason,
            }
        }),
    ]
}

/// Bytes that decode must re-encode identically.
fn canonical<T>(
    bytes: &[u8],
    decode: impl Fn(&[u8]) -> Result<T, custos_wire::WireError>,
    encode: impl Fn(&T) -> Vec<u8>,
) {
    if let Ok(v) = decode(bytes) {
        assert_eq!(encode(&v), bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn envelope_round_trips(e in envelope()) {
        let b = e.encode().unwrap();
        prop_assert_eq!(Envelope::decode(&b).unwrap(), e.clone());
        prop_assert_eq!(peek_header(&b).unwrap(), e.header);
        // The signed bytes are the label then everything but the signature.
        let signed = Envelope::signed_bytes(&e.header, &e.ciphertext).unwrap();
        prop_assert_eq!(&signed[custos_wire::envelope::ENVELOPE_SIGNATURE_LABEL.len()..], &b[..b.len() - 64]);
    }

    #[test]
    fn announcement_round_trips(a in announcement()) {
        let b = a.encode().unwrap();
        prop_assert_eq!(ChainAnnouncement::decode(&b).unwrap(), a);
    }

    #[test]
    fn chain_root_round_trips(chain in chain(), ck0 in any::<[u8; 32]>()) {
        let r = ChainRoot { chain, ck0 };
        prop_assert_eq!(ChainRoot::decode(&r.encode()).unwrap(), r);
    }

    #[test]
    fn payload_round_trips(p in payload()) {
        let b = p.encode().unwrap();
        prop_assert_eq!(Payload::decode(&b).unwrap(), p);
    }

    #[test]
    fn client_frame_round_trips(f in client_frame()) {
        prop_assert_eq!(ClientFrame::decode(&f.encode().unwrap()).unwrap(), f);
    }

    #[test]
    fn server_frame_round_trips(f in server_frame()) {
        prop_assert_eq!(ServerFrame::decode(&f.encode().unwrap()).unwrap(), f);
    }

    #[test]
    fn delivery_batch_round_trips(ds in proptest::collection::vec(delivery(), 0..8)) {
        prop_assert_eq!(decode_delivery_batch(&encode_delivery_batch(&ds).unwrap()).unwrap(), ds);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_accepted_bytes_are_canonical(b in bytes(512), first in 0u8..4) {
        let mut b = b;
        if let Some(x) = b.first_mut() { *x = first; }
        canonical(&b, Envelope::decode, |v| v.encode().unwrap());
        canonical(&b, ChainAnnouncement::decode, |v| v.encode().unwrap());
        canonical(&b, ChainRoot::decode, |v| v.encode().to_vec());
        canonical(&b, Payload::decode, |v| v.encode().unwrap().to_vec());
        canonical(&b, ClientFrame::decode, |v| v.encode().unwrap());
        canonical(&b, ServerFrame::decode, |v| v.encode().unwrap());
        canonical(&b, decode_delivery_batch, |v| encode_delivery_batch(v).unwrap());
    }

    #[test]
    fn mutated_encodings_decode_canonically_or_fail(e in envelope(), f in server_frame(), pos in any::<usize>(), bit in 0u8..8) {
        for mut b in [e.encode().unwrap(), f.encode().unwrap()] {
            let i = pos % b.len();
            b[i] ^= 1 << bit;
            canonical(&b, Envelope::decode, |v| v.encode().unwrap());
            canonical(&b, ServerFrame::decode, |v| v.encode().unwrap());
        }
    }
}
