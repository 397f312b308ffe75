//! `TilePath::parse`: never panics; accepted paths are canonical.
#![no_main]
use custos_tlog::merkle::TilePath;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(p) = TilePath::parse(s) {
            assert_eq!(p.to_path(), s);
        }
    }
});
