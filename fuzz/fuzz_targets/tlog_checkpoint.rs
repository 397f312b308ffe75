//! Checkpoint notes: parsing and verification never panic.
#![no_main]
use custos_tlog::TrustPolicy;
use custos_tlog::checkpoint::parse_checkpoint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_checkpoint(data);
    let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key();
    let w = ed25519_dalek::SigningKey::from_bytes(&[2; 32]).verifying_key();
    if let Ok(p) = TrustPolicy::new("example.com/log", key, &[("w.example".into(), w)], 1) {
        let _ = p.verify_checkpoint(data);
    }
});
