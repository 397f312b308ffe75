//! Compressed G1 and G2 point decoders: never panic, and accept only
//! canonical encodings.
#![no_main]
use custos_escrow::point::{decode_g1, decode_g2};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = decode_g1(data, "fuzz") {
        assert_eq!(&p.to_compressed()[..], data);
    }
    if let Ok(p) = decode_g2(data, "fuzz") {
        assert_eq!(&p.to_compressed()[..], data);
    }
    // Also exercise the exact lengths with the fuzzer's bytes.
    let mut g1 = [0u8; 48];
    let mut g2 = [0u8; 96];
    for (d, s) in g1.iter_mut().zip(data) {
        *d = *s;
    }
    for (d, s) in g2.iter_mut().zip(data) {
        *d = *s;
    }
    let _ = decode_g1(&g1, "fuzz");
    let _ = decode_g2(&g2, "fuzz");
});
