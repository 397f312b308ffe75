//! Key files and verifier keys: parsing never panics.
#![no_main]
use custos_tlog::keys::{NamedKey, parse_vkey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(k) = NamedKey::parse(s) {
            assert_eq!(NamedKey::parse(&k.private_text()).expect("round trip").vkey(), k.vkey());
        }
        let _ = parse_vkey(s, 0x01);
        let _ = parse_vkey(s, 0x04);
    }
});
