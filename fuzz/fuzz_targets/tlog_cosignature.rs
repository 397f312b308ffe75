//! Cosignature verification with hostile signature bytes never panics and
//! never accepts.
#![no_main]
use custos_tlog::keys::CosignatureVerifier;
use libfuzzer_sys::fuzz_target;
use signed_note::Verifier as _;

fuzz_target!(|data: &[u8]| {
    let key = ed25519_dalek::SigningKey::from_bytes(&[2; 32]).verifying_key();
    let v = CosignatureVerifier::new("w.example", key);
    let (msg, sig) = data.split_at(data.len() / 2);
    let _ = CosignatureVerifier::timestamp(sig);
    assert!(!v.verify(msg, sig));
});
