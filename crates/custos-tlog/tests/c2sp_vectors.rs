//! Our checkpoint, note, cosignature and witness-request encodings against
//! the examples of the C2SP specs (sources in `vectors/c2sp/SOURCES.md`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: a failure is a test failure"
)]

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use custos_tlog::checkpoint::{parse_checkpoint, verified_signers};
use custos_tlog::keys::{
    ALG_ED25519, CosignatureVerifier, LogVerifier, cosigned_message, key_id, parse_vkey,
};
use custos_tlog::witness_api::AddCheckpoint;
use signed_note::{Note, VerifierList};

fn vector(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/vectors/c2sp/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The signature lines of a note, decoded: (name, key id, signature bytes).
fn sig_lines(note: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
    let text = std::str::from_utf8(note).unwrap();
    let (_, sigs) = text.rsplit_once("\n\n").unwrap();
    sigs.lines()
        .map(|l| {
            let s = signed_note::Signature::from_bytes(l.as_bytes()).unwrap();
            (s.name().to_owned(), s.id(), s.signature().to_vec())
        })
        .collect()
}

#[test]
fn checkpoint_example() {
    let bytes = vector("checkpoint.note");
    let p = parse_checkpoint(&bytes).unwrap();
    assert_eq!(p.checkpoint.origin(), "example.com/behind-the-sofa");
    assert_eq!(p.checkpoint.size(), 20_852_163);
    assert_eq!(
        p.checkpoint.hash().to_string(),
        "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
    );
    assert_eq!(p.note.to_bytes(), bytes);
    assert_eq!(p.checkpoint.to_bytes(), p.note.text());
    let sigs = sig_lines(&bytes);
    assert_eq!(sigs.len(), 1);
    assert_eq!(sigs[0].0, "example.com/behind-the-sofa");
    assert_eq!(sigs[0].2.len(), 64);
}

#[test]
fn cosignature_example() {
    let bytes = vector("cosigned-checkpoint.note");
    let p = parse_checkpoint(&bytes).unwrap();
    assert_eq!(p.note.to_bytes(), bytes);
    let sigs = sig_lines(&bytes);
    let (name, id, sig) = &sigs[1];
    assert_eq!(name, "witness.example.com/w1");
    assert_eq!(*id, 0x8d66_cf3f);
    assert_eq!(CosignatureVerifier::timestamp(sig), Some(1_679_315_147));
    // The message a witness signs for that timestamp, exactly as in the spec.
    assert_eq!(
        cosigned_message(1_679_315_147, p.note.text()),
        vector("cosignature-message.txt")
    );
}

#[test]
fn signed_note_example() {
    let bytes = vector("signed-note.note");
    let note = Note::from_bytes(&bytes).unwrap();
    assert!(note.text().ends_with("ed è subito sera.\n".as_bytes()));
    assert!(
        std::str::from_utf8(note.text())
            .unwrap()
            .contains(":\n\ned")
    );
    assert_eq!(note.to_bytes(), bytes);
    let sigs = sig_lines(&bytes);
    assert_eq!(sigs.len(), 1);
    assert_eq!(sigs[0].0, "quasimodo.example/salvatore");
    assert_eq!(sigs[0].2.len(), 64);
}

#[test]
fn go_note_example_verifies_with_our_verifier() {
    let vkey = String::from_utf8(vector("peterneumann.vkey")).unwrap();
    let (name, key) = parse_vkey(&vkey, ALG_ED25519).unwrap();
    assert_eq!(name, "PeterNeumann");
    assert_eq!(key_id(&name, ALG_ED25519, &key), 0xc74f_20a3);
    let bytes = vector("peterneumann.note");
    let note = Note::from_bytes(&bytes).unwrap();
    let verified = verified_signers(
        &note,
        VerifierList::new(vec![Box::new(LogVerifier::new(&name, key))]),
    )
    .unwrap();
    assert_eq!(verified, vec!["PeterNeumann".to_string()]);
    // One flipped signature bit is refused.
    let text = String::from_utf8(bytes).unwrap();
    let (body, line) = text.rsplit_once("— PeterNeumann ").unwrap();
    let mut raw = BASE64_STANDARD.decode(line.trim_end()).unwrap();
    raw[10] ^= 1;
    let bad = format!("{body}— PeterNeumann {}\n", BASE64_STANDARD.encode(raw));
    let note = Note::from_bytes(bad.as_bytes()).unwrap();
    assert!(
        verified_signers(
            &note,
            VerifierList::new(vec![Box::new(LogVerifier::new(&name, key))])
        )
        .is_err()
    );
}

#[test]
fn witness_request_example() {
    let bytes = vector("witness-request.txt");
    let req = AddCheckpoint::parse(&bytes).unwrap();
    assert_eq!(req.old, 20_852_014);
    assert_eq!(req.proof.len(), 4);
    assert_eq!(
        req.proof[0].to_string(),
        "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw="
    );
    assert_eq!(req.encode(), bytes);
    assert_eq!(
        parse_checkpoint(&req.checkpoint).unwrap().checkpoint.size(),
        20_852_163
    );
}
