//! The report package (`custos-report-package/v3`), from its JSON text to
//! `verify_package`, as `custos moderate verify-package` runs it on a file
//! from anyone: never panics, whatever the bytes, and a package that
//! verifies names the sender whose key signed its envelope.
#![no_main]
use custos_tlog::TrustPolicy;
use custos_verify::package::verify_package;
use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let log = SigningKey::from_bytes(&[1; 32]).verifying_key();
    let witness = SigningKey::from_bytes(&[2; 32]).verifying_key();
    let policy = TrustPolicy::new("log.fuzz", log, &[("witness.fuzz".into(), witness)], 1)
        .expect("quorum 1 of 1 witness");
    if let Ok(v) = verify_package(text, &policy) {
        assert!(!v.message.sender.is_empty());
    }
});
