//! Test vectors of the log's follow answer (`custos_tlog::follow_answer`):
//! one file per case in `vectors/follow/`, each with its expected outcome,
//! checked by one harness. `generate` rewrites them from the cases below
//! (`cargo test -p custos-tlog --test follow_vectors -- --ignored`); the
//! files are data, for any other implementation of the format.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

use std::path::PathBuf;

use custos_tlog::Hash;
use custos_tlog::follow_answer::FollowAnswer;
use custos_vectors::Vector;
use custos_wire::WireError;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors/follow")
}

/// A checkpoint note as the log serves it (its signature is not checked by
/// the decoder; a follower checks it through its `Verifier`).
const NOTE: &[u8] = b"custos.test/log\n2\nqBbmQOyx4a2Ax3Ft1JtXt8Nfl3SHbfPVBXwCJDAXmlQ=\n\n\xe2\x80\x94 custos.test/log AAAAAQ==\n";

fn h(b: u8) -> Hash {
    Hash([b; 32])
}

fn good() -> FollowAnswer {
    FollowAnswer {
        checkpoint: NOTE.to_vec(),
        consistency: vec![h(1)],
        entries: vec![b"entry one".to_vec(), b"entry two".to_vec()],
        inclusion: Some(vec![vec![h(2)], vec![h(3)]]),
    }
}

/// The name, what it shows, its bytes and the expected outcome.
fn cases() -> Vec<(&'static str, &'static str, Vec<u8>, &'static str)> {
    let good_bytes = good().encode().unwrap();
    let nothing_new = FollowAnswer {
        checkpoint: NOTE.to_vec(),
        consistency: vec![],
        entries: vec![],
        inclusion: None,
    }
    .encode()
    .unwrap();
    let unproven = FollowAnswer {
        inclusion: None,
        ..good()
    }
    .encode()
    .unwrap();
    let with_byte = |at: usize, v: u8| {
        let mut b = good_bytes.clone();
        b[at] = v;
        b
    };
    // Offsets in the good answer: version, u16 note length, the note, then
    // the consistency proof's count.
    let proof_count_at = 1 + 2 + NOTE.len();
    let entries_at = proof_count_at + 1 + 32;
    let flag_at = entries_at + 2 + (2 + 9) * 2;
    let mut trailing = good_bytes.clone();
    trailing.push(0);
    let mut over_entries = vec![1];
    over_entries.extend_from_slice(&(NOTE.len() as u16).to_be_bytes());
    over_entries.extend_from_slice(NOTE);
    over_entries.push(0);
    over_entries.extend_from_slice(&257u16.to_be_bytes());
    vec![
        (
            "ok-two-entries-proven",
            "two entries with a consistency proof and one inclusion proof each",
            good_bytes.clone(),
            "ok",
        ),
        (
            "ok-nothing-new",
            "the checkpoint alone: no proof, no entries, no inclusion proofs",
            nothing_new,
            "ok",
        ),
        (
            "ok-entries-unproven",
            "two entries without inclusion proofs (flag 0)",
            unproven,
            "ok",
        ),
        (
            "err-version-2",
            "an unknown version",
            with_byte(0, 2),
            "unsupported-version",
        ),
        (
            "err-consistency-over-bound",
            "a consistency proof of 65 hashes (at most 64)",
            with_byte(proof_count_at, 65),
            "too-long",
        ),
        (
            "err-entries-over-bound",
            "257 entries (at most 256)",
            over_entries,
            "too-long",
        ),
        (
            "err-flag-2",
            "an inclusion-proof flag other than 0 or 1",
            with_byte(flag_at, 2),
            "invalid-value",
        ),
        (
            "err-trailing-byte",
            "one byte after the end",
            trailing,
            "trailing-bytes",
        ),
        (
            "err-truncated",
            "the last inclusion proof cut short",
            good_bytes[..good_bytes.len() - 1].to_vec(),
            "truncated",
        ),
    ]
}

fn outcome(bytes: &[u8]) -> &'static str {
    match FollowAnswer::decode(bytes) {
        Ok(a) => {
            assert_eq!(a.encode().unwrap(), bytes, "not canonical");
            "ok"
        }
        Err(WireError::UnsupportedVersion { .. }) => "unsupported-version",
        Err(WireError::TooLong { .. }) => "too-long",
        Err(WireError::InvalidValue { .. }) => "invalid-value",
        Err(WireError::TrailingBytes { .. }) => "trailing-bytes",
        Err(WireError::Truncated { .. }) => "truncated",
        Err(e) => panic!("unexpected refusal {e:?}"),
    }
}

#[test]
fn every_follow_answer_vector_has_its_outcome() {
    let vectors = custos_vectors::read_dir(&dir()).unwrap();
    assert_eq!(vectors.len(), cases().len());
    for v in &vectors {
        let bytes = v.hex("bytes").unwrap();
        assert_eq!(outcome(&bytes), v.field("expect").unwrap(), "{}", v.name);
    }
    // The good vector holds what it says.
    let ok = custos_vectors::read(&dir().join("ok-two-entries-proven.vector")).unwrap();
    assert_eq!(
        FollowAnswer::decode(&ok.hex("bytes").unwrap()).unwrap(),
        good()
    );
}

#[test]
#[ignore = "rewrites the vector files"]
fn generate() {
    std::fs::create_dir_all(dir()).unwrap();
    for (name, comment, bytes, expect) in cases() {
        assert_eq!(outcome(&bytes), expect, "{name}");
        let v = Vector::new(&format!("{name}.vector"), comment)
            .with("format", "log_follow_answer")
            .with_hex("bytes", &bytes)
            .with("expect", expect);
        custos_vectors::write(&dir(), &v).unwrap();
    }
}
