//! Partial key, identity key and secret share decoders: never panic;
//! accepted values re-encode to the input.
#![no_main]
use custos_escrow::{IdentityKey, PartialKey, SecretShare};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = PartialKey::from_bytes(data) {
        assert_eq!(&p.to_bytes()[..], data);
    }
    if let Ok(k) = IdentityKey::from_bytes(data) {
        assert_eq!(&k.to_bytes()[..], data);
    }
    if let Ok(s) = SecretShare::from_bytes(data) {
        assert_eq!(&s.to_bytes()[..], data);
    }
});
