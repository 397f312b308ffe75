//! The evidence bundle, from its JSON bytes to `verify_evidence`, as
//! `custos evidence verify` runs it on a file from anyone: never panics, and
//! a bundle that parses serializes back to a bundle that parses the same.
//! Seed the corpus with the `evidence.json` of `custos demo` so that
//! mutations reach the checks past the JSON parser.
#![no_main]
use custos_verify::evidence::{EvidenceBundle, verify_evidence};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(bundle) = serde_json::from_slice::<EvidenceBundle>(data) else {
        return;
    };
    let again = serde_json::to_vec(&bundle).expect("a parsed bundle serializes");
    let reparsed: EvidenceBundle = serde_json::from_slice(&again).expect("and parses again");
    assert_eq!(reparsed, bundle);
    let _ = verify_evidence(&bundle, None);
    let _ = verify_evidence(&bundle, Some(&[0u8; 32]));
});
