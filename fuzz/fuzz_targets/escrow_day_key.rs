//! Day key decoder: never panics; accepted keys re-encode to the input.
#![no_main]
use custos_escrow::DayKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(k) = DayKey::from_bytes(data) {
        assert_eq!(k.to_bytes(), data);
    }
});
