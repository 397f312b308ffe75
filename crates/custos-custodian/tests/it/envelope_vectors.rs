//! DKG envelope test vectors (docs/spec/custodian-dkg.md): one file per
//! case in `vectors/dkg-envelope/`, each with its expected outcome, run by
//! one harness.
//!
//! The custodian keys are derived from fixed labels, so anyone can
//! reproduce them. Broadcast envelopes are deterministic (Ed25519) and are
//! also re-encoded and compared; sealed ones carry a random HPKE key and are
//! only opened. `generate` rewrites the files (run with
//! `cargo test -p custos-custodian --test it envelope_vectors -- --ignored`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a failed test"
)]

use custos_vectors::Vector;
use std::path::PathBuf;

use custos_custodian::CustodianKey;
use custos_custodian::net::envelope::{self, EnvelopeError};
use custos_escrow::dkg::Phase;
use ed25519_dalek::Signer as _;
use sha2::{Digest, Sha256};

const DAY: u32 = 20_500;
const SIGNING_LABEL: &[u8] = b"custos/v1/dkg-envelope";

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/dkg-envelope")
}

/// Custodian `who` ("a", "b", "c" are custodians; "d" is not).
fn key(who: &str) -> CustodianKey {
    let secret = |what: &str| -> [u8; 32] {
        Sha256::digest(format!("custos vector custodian {who} {what}")).into()
    };
    CustodianKey::from_secrets(
        &format!("custodian-{who}.test"),
        secret("signing"),
        secret("hpke"),
        secret("storage"),
    )
    .unwrap()
}

fn is_custodian(pk: &[u8; 32]) -> bool {
    ["a", "b", "c"].iter().any(|w| key(w).public_key() == *pk)
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Deal => "deal",
        Phase::Ack => "ack",
        Phase::Log => "log",
    }
}

fn outcome(e: &EnvelopeError) -> &'static str {
    match e {
        EnvelopeError::Malformed(_) => "malformed",
        EnvelopeError::UnknownSender => "unknown_sender",
        EnvelopeError::NotForMe => "not_for_me",
        EnvelopeError::BadSignature => "bad_signature",
        EnvelopeError::Unseal => "unseal",
        EnvelopeError::Seal => "seal",
        _ => "other",
    }
}

/// Re-signs the body of `env` (everything but its signature) with `from`.
fn resign(from: &CustodianKey, body: &[u8]) -> Vec<u8> {
    let mut signed = SIGNING_LABEL.to_vec();
    signed.extend_from_slice(body);
    let sig = from.signing_key().sign(&signed);
    let mut out = body.to_vec();
    out.extend_from_slice(&sig.to_bytes());
    out
}

fn body(env: &[u8]) -> Vec<u8> {
    env[..env.len() - 64].to_vec()
}

/// Offset of the payload length in an envelope (`sealed`: with `enc`).
fn len_at(sealed: bool) -> usize {
    1 + 4 + 1 + 32 + 32 + 1 + if sealed { 32 } else { 0 }
}

struct Case {
    name: &'static str,
    comment: &'static str,
    recipient: &'static str,
    envelope: Vec<u8>,
    expect: &'static str,
    from: &'static str,
    phase: Phase,
    payload: &'static [u8],
}

fn cases() -> Vec<Case> {
    let (a, b) = (key("a"), key("b"));
    let deal = envelope::seal(
        &a,
        DAY,
        Phase::Deal,
        &b.public_key(),
        &b.hpke_public_key(),
        b"dealing",
    )
    .unwrap();
    let ack = envelope::seal(
        &b,
        DAY,
        Phase::Ack,
        &a.public_key(),
        &a.hpke_public_key(),
        b"ack",
    )
    .unwrap();
    let log = envelope::broadcast(&a, DAY, b"dealer log").unwrap();
    let edit = |env: &[u8], at: usize, f: &dyn Fn(&mut u8)| {
        let mut b = body(env);
        f(&mut b[at]);
        resign(&a, &b)
    };
    let mut trailing = body(&log);
    trailing.push(0);
    let mut long_len = body(&log);
    let at = len_at(false);
    long_len[at..at + 4].copy_from_slice(&(65_537u32).to_be_bytes());
    let mut sig_flipped = log.clone();
    let last = sig_flipped.len() - 1;
    sig_flipped[last] ^= 1;
    let mut tampered_ct = body(&deal);
    let at = len_at(true) + 4;
    tampered_ct[at] ^= 1;
    let ok = |name, comment, recipient, envelope, from, phase, payload| Case {
        name,
        comment,
        recipient,
        envelope,
        expect: "ok",
        from,
        phase,
        payload,
    };
    let err = |name, comment, recipient, envelope, expect| Case {
        name,
        comment,
        recipient,
        envelope,
        expect,
        from: "a",
        phase: Phase::Log,
        payload: b"",
    };
    vec![
        ok(
            "broadcast-log",
            "a dealer log broadcast in the clear by custodian a",
            "c",
            log.clone(),
            "a",
            Phase::Log,
            b"dealer log",
        ),
        ok(
            "sealed-deal",
            "a dealing sealed by custodian a to custodian b",
            "b",
            deal.clone(),
            "a",
            Phase::Deal,
            b"dealing",
        ),
        ok(
            "sealed-ack",
            "an acknowledgement sealed by custodian b to custodian a",
            "a",
            ack,
            "b",
            Phase::Ack,
            b"ack",
        ),
        err(
            "not-for-me",
            "the dealing for b, presented to c",
            "c",
            deal.clone(),
            "not_for_me",
        ),
        err(
            "unknown-sender",
            "a log from d, which is not a custodian",
            "a",
            envelope::broadcast(&key("d"), DAY, b"dealer log").unwrap(),
            "unknown_sender",
        ),
        err(
            "bad-signature",
            "the log with one signature bit flipped",
            "c",
            sig_flipped,
            "bad_signature",
        ),
        err(
            "unknown-version",
            "version 2, re-signed",
            "c",
            edit(&log, 0, &|v| *v = 2),
            "malformed",
        ),
        err(
            "unknown-phase",
            "phase 4, re-signed",
            "c",
            edit(&log, 5, &|v| *v = 4),
            "malformed",
        ),
        err(
            "unknown-mode",
            "mode 2, re-signed",
            "c",
            edit(&log, 70, &|v| *v = 2),
            "malformed",
        ),
        err(
            "phase-mode-mismatch",
            "a broadcast in the clear that says it is a dealing, re-signed",
            "c",
            edit(&log, 5, &|v| *v = 1),
            "malformed",
        ),
        err(
            "trailing-bytes",
            "one byte after the signature's place, re-signed",
            "c",
            resign(&a, &trailing),
            "malformed",
        ),
        err(
            "payload-too-long",
            "a payload length of 65,537, re-signed",
            "c",
            resign(&a, &long_len),
            "malformed",
        ),
        err(
            "truncated",
            "shorter than a signature",
            "c",
            log[..40].to_vec(),
            "malformed",
        ),
        err(
            "tampered-ciphertext",
            "the dealing with one ciphertext bit flipped, re-signed by a",
            "b",
            resign(&a, &tampered_ct),
            "unseal",
        ),
    ]
}

fn render(c: &Case) -> Vector {
    let mut v = Vector::new(&format!("{}.vector", c.name), c.comment)
        .with("recipient", c.recipient)
        .with_hex("envelope", &c.envelope);
    if c.expect == "ok" {
        v = v
            .with("day", DAY.to_string())
            .with("phase", phase_name(c.phase))
            .with("from", c.from)
            .with_hex("payload", c.payload);
    }
    v.with("expect", c.expect)
}

#[test]
#[ignore = "rewrites the checked-in vectors"]
fn generate() {
    std::fs::create_dir_all(dir()).unwrap();
    for c in cases() {
        custos_vectors::write(&dir(), &render(&c)).unwrap();
    }
}

#[test]
fn every_vector_gives_its_expected_outcome() {
    let mut seen = 0;
    for v in custos_vectors::read_dir(&dir()).unwrap() {
        let name = v.name.clone();
        let f = |k: &str| v.field(k).unwrap();
        let recipient = key(f("recipient"));
        let env = v.hex("envelope").unwrap();
        let got = envelope::open(&recipient, &env, is_custodian);
        match f("expect") {
            "ok" => {
                let o = got.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(o.day.to_string(), f("day"), "{name}");
                assert_eq!(phase_name(o.phase), f("phase"), "{name}");
                assert_eq!(o.from, key(f("from")).public_key(), "{name}");
                assert_eq!(hex::encode(o.payload.as_slice()), f("payload"), "{name}");
                if o.phase == Phase::Log {
                    // Canonical and deterministic: the sender re-encodes it
                    // to the same bytes.
                    let again = envelope::broadcast(&key(f("from")), o.day, &o.payload).unwrap();
                    assert_eq!(again, env, "{name}");
                }
            }
            expected => {
                let e = got.err().unwrap_or_else(|| panic!("{name}: accepted"));
                assert_eq!(outcome(&e), expected, "{name}: {e}");
            }
        }
        seen += 1;
    }
    assert_eq!(seen, cases().len());
}
