//! `custos_custodian::net::envelope::open` on arbitrary bytes: never panics;
//! whatever it accepts is within the format's bounds, and a clear envelope it
//! accepts is a log broadcast. Every sender counts as a custodian here, so the
//! signature and HPKE paths run too (a fuzzer rarely gets past the signature;
//! the checked-in vectors cover those paths).
#![no_main]
use std::sync::OnceLock;

use custos_custodian::CustodianKey;
use custos_custodian::net::envelope::{self, MAX_ENVELOPE, MAX_PAYLOAD};
use custos_escrow::dkg::Phase;
use libfuzzer_sys::fuzz_target;

fn key() -> &'static CustodianKey {
    static KEY: OnceLock<CustodianKey> = OnceLock::new();
    KEY.get_or_init(|| {
        CustodianKey::from_secrets("custodian-fuzz.test", [1; 32], [2; 32], [3; 32]).expect("key")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(opened) = envelope::open(key(), data, |_| true) {
        assert!(data.len() <= MAX_ENVELOPE);
        assert!(opened.payload.len() <= MAX_PAYLOAD);
        if opened.phase == Phase::Log {
            assert!(opened.payload.len() + 64 < data.len());
        }
    }
});
