//! `Manifest::from_toml`: never panics; an accepted manifest round-trips.
#![no_main]
use custos_wire::manifest::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(m) = Manifest::from_toml(text) {
            let again = Manifest::from_toml(&m.to_toml().expect("valid manifests encode"));
            assert_eq!(again.expect("round trip"), m);
        }
    }
});
