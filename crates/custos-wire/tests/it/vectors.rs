//! Runs every vector under `vectors/`: each names its format and expected
//! outcome. An `ok` vector must decode and re-encode byte for byte; any other
//! must be refused with the named `WireError` variant.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

use std::path::Path;

use custos_wire::WireError;
use custos_wire::announcement::{ChainAnnouncement, ChainRoot};
use custos_wire::envelope::Envelope;
use custos_wire::frames::{ClientFrame, ServerFrame, decode_delivery_batch, encode_delivery_batch};
use custos_wire::interception::InterceptionRequest;
use custos_wire::mls_header::peek_private_message;
use custos_wire::payload::Payload;
use custos_wire::release::{ReleaseRequest, ReleaseResponse, ReleasedShares};
use custos_wire::report::Report;
use custos_wire::tag::{DeliveryTag, Received, TAG_SIGNATURE_LABEL, TagRefusal, verify_tag};
use custos_wire::warrant::Warrant;

/// Decodes with the named format's decoder and re-encodes.
fn round_trip(format: &str, bytes: &[u8]) -> Result<Vec<u8>, WireError> {
    Ok(match format {
        "envelope" => Envelope::decode(bytes)?.encode()?,
        "announcement" => ChainAnnouncement::decode(bytes)?.encode()?,
        "chain_root" => ChainRoot::decode(bytes)?.encode().to_vec(),
        "payload" => Payload::decode(bytes)?.encode()?.to_vec(),
        "client_frame" => ClientFrame::decode(bytes)?.encode()?,
        "server_frame" => ServerFrame::decode(bytes)?.encode()?,
        "delivery_batch" => encode_delivery_batch(&decode_delivery_batch(bytes)?)?,
        "delivery_tag" => DeliveryTag::decode(bytes)?.encode()?,
        "report" => Report::decode(bytes)?.encode()?.to_vec(),
        "warrant" => Warrant::decode(bytes)?.encode()?,
        "release_request" => ReleaseRequest::decode(bytes)?.encode()?,
        "interception_request" => InterceptionRequest::decode(bytes)?.encode()?,
        "release_response" => ReleaseResponse::decode(bytes)?.encode()?,
        "released_shares" => ReleasedShares::decode(bytes)?.encode()?,
        // A peek at MLS's own framing, not a Custos encoding: nothing to re-encode.
        "mls_header" => peek_private_message(bytes).map(|_| bytes.to_vec())?,
        other => panic!("unknown format {other}"),
    })
}

fn vectors_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors")
}

fn vector_bytes(name: &str) -> Vec<u8> {
    custos_vectors::read(&vectors_dir().join(name))
        .unwrap()
        .hex("bytes")
        .unwrap()
}

/// The signed tag vector was signed by an independent Ed25519
/// implementation (Python `cryptography`) over the label and the fields:
/// our signed bytes are the same, and the signature verifies strictly.
#[test]
fn signed_tag_vector_verifies_under_its_key() {
    let bytes = vector_bytes("delivery_tag-ok-signed.vector");
    let DeliveryTag::V1(tag) = DeliveryTag::decode(&bytes).unwrap() else {
        panic!("the signed vector is a v1 tag")
    };
    let signed = tag.signed_bytes().unwrap();
    assert_eq!(&signed[..TAG_SIGNATURE_LABEL.len()], TAG_SIGNATURE_LABEL);
    assert_eq!(
        &signed[TAG_SIGNATURE_LABEL.len()..],
        &bytes[..bytes.len() - 64]
    );
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
    let sig = ed25519_dalek::Signature::from_bytes(&tag.signature);
    custos_wire::signature::verify_strict(&key, &signed, &sig).unwrap();
    // Any single changed byte of the fields breaks it.
    for i in 0..bytes.len() - 64 {
        let mut bad = bytes.clone();
        bad[i] ^= 1;
        if let Ok(DeliveryTag::V1(t)) = DeliveryTag::decode(&bad) {
            assert!(
                custos_wire::signature::verify_strict(&key, &t.signed_bytes().unwrap(), &sig)
                    .is_err(),
                "byte {i}"
            );
        }
    }
    // The report vector carries the same tag.
    let report = Report::decode(&vector_bytes("report-ok-empty-reason-signed-tag.vector")).unwrap();
    assert_eq!(report.message.tag, bytes);
    assert!(report.reason.is_empty() && report.context.is_empty());
}

/// The v2 vector's path and root were computed by the recursive RFC 6962
/// definitions in Python and its root signed by Python `cryptography`: the
/// shared verifier accepts it, and refuses it for another envelope or key.
#[test]
fn signed_v2_tag_vector_verifies_under_its_key() {
    let bytes = vector_bytes("delivery_tag-ok-v2-signed.vector");
    let DeliveryTag::V2(tag) = DeliveryTag::decode(&bytes).unwrap() else {
        panic!("the v2 vector is a v2 tag")
    };
    assert_eq!((tag.batch_id, tag.batch_size, tag.leaf_index), (9, 5, 4));
    assert_eq!(tag.path.len(), 1);
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
    // The generator's envelope hash of leaf i is SHA-256(u64 i).
    let envelope = 4u64.to_be_bytes();
    let f = &tag.fields;
    let received = Received {
        conversation: f.conversation,
        sender: &f.sender,
        server_time: f.server_time,
        franking_commitment: &f.franking_commitment,
        envelope: &envelope,
    };
    let v = verify_tag(&key, &bytes, &received).unwrap();
    assert_eq!(v.batch.map(|b| b.leaf_index), Some(4));
    let other_envelope = 3u64.to_be_bytes();
    assert_eq!(
        verify_tag(
            &key,
            &bytes,
            &Received {
                envelope: &other_envelope,
                ..received
            }
        ),
        Err(TagRefusal::EnvelopeHashMismatch)
    );
    let other_key = ed25519_dalek::SigningKey::from_bytes(&[8; 32]).verifying_key();
    assert_eq!(
        verify_tag(&other_key, &bytes, &received),
        Err(TagRefusal::BadRootSignature)
    );
    let report = Report::decode(&vector_bytes("report-ok-v2-signed-tag.vector")).unwrap();
    assert_eq!(report.message.tag, bytes);
}

fn variant(e: &WireError) -> String {
    let dbg = format!("{e:?}");
    dbg.split([' ', '{', '(']).next().unwrap().to_owned()
}

#[test]
fn every_vector_has_its_expected_outcome() {
    let vectors = custos_vectors::read_dir(&vectors_dir()).unwrap();
    assert!(vectors.len() >= 30, "vectors missing: {}", vectors.len());
    let mut formats = std::collections::BTreeSet::new();
    for v in &vectors {
        let (format, expect) = (v.field("format").unwrap(), v.field("expect").unwrap());
        let bytes = v.hex("bytes").unwrap();
        let name = &v.name;
        match (expect, round_trip(format, &bytes)) {
            ("ok", Ok(again)) => assert_eq!(again, bytes, "{name}: re-encoding differs"),
            ("ok", Err(e)) => panic!("{name}: expected ok, got {e}"),
            (want, Ok(_)) => panic!("{name}: expected {want}, but it decoded"),
            (want, Err(e)) => assert_eq!(variant(&e), want, "{name}: {e}"),
        }
        formats.insert(format.to_owned());
    }
    let want: std::collections::BTreeSet<String> = [
        "envelope",
        "announcement",
        "chain_root",
        "payload",
        "client_frame",
        "server_frame",
        "delivery_batch",
        "delivery_tag",
        "report",
        "mls_header",
        "warrant",
        "release_request",
        "interception_request",
        "release_response",
        "released_shares",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(formats, want, "every format has vectors");
}

#[test]
fn mls_header_vector_reads_group_epoch_and_type() {
    let bytes = vector_bytes("mls_header-ok-proposal.vector");
    let h = peek_private_message(&bytes).unwrap();
    let conv: Vec<u8> = (0x10..0x20).collect();
    assert_eq!(
        (h.group_id, h.epoch, h.content_type),
        (conv.as_slice(), 7, 2)
    );
}

/// The signed warrant and request vectors were signed by an independent
/// Ed25519 implementation (Python `cryptography`) over the labels of the
/// spec: the court and authority signatures verify here.
#[test]
fn signed_warrant_and_request_vectors_verify() {
    let court = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
    for name in ["warrant-ok-signed.vector", "warrant-ok-limits.vector"] {
        let w = Warrant::decode(&vector_bytes(name)).unwrap();
        w.verify(&court).unwrap();
    }
    let w = Warrant::decode(&vector_bytes("warrant-ok-limits.vector")).unwrap();
    assert_eq!((w.fields().targets.len(), w.fields().days()), (16, 31));
    let authority = ed25519_dalek::SigningKey::from_bytes(&[4; 32]).verifying_key();
    let req = ReleaseRequest::decode(&vector_bytes("release_request-ok-signed.vector")).unwrap();
    req.verify(&authority).unwrap();
    assert!(req.verify(&court).is_err());
    Warrant::decode(&req.fields().warrant)
        .unwrap()
        .verify(&court)
        .unwrap();
    let req = InterceptionRequest::decode(&vector_bytes("interception_request-ok-signed.vector"))
        .unwrap();
    req.verify(&authority).unwrap();
    assert_eq!(req.fields().provider, "provider.test");
    Warrant::decode(&req.fields().logged.warrant)
        .unwrap()
        .verify(&court)
        .unwrap();
}
