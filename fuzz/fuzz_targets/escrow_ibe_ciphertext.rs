//! Generic IBE ciphertext decoder at drand's and Custos's block sizes.
#![no_main]
use custos_escrow::ibe::Ciphertext;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = Ciphertext::<16>::from_bytes(data) {
        assert_eq!(c.to_bytes(), data);
    }
    if let Ok(c) = Ciphertext::<32>::from_bytes(data) {
        assert_eq!(c.to_bytes(), data);
    }
});
