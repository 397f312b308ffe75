//! Capsule decoder, and opening of whatever decodes with a fixed key: never
//! panics; accepted capsules re-encode to the input.
#![no_main]
use std::sync::OnceLock;

use custos_escrow::{Capsule, EscrowIdentity, IdentityKey, dangerous, open};
use libfuzzer_sys::fuzz_target;
use rand_core::OsRng;

fn key() -> &'static IdentityKey {
    static KEY: OnceLock<IdentityKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let (dk, shares) = dangerous::trusted_deal(1, 3, 2, &mut OsRng).expect("deal");
        let id = EscrowIdentity::new(&[0u8; 16], 1);
        let partials: Vec<_> = shares.iter().map(|s| s.extract(&id)).collect();
        dk.combine(&partials).expect("combine")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = Capsule::from_bytes(data) {
        assert_eq!(&c.to_bytes()[..], data);
        // A random capsule must not open (FO check), and must not panic.
        assert!(open(&c, key()).is_err());
    }
});
