//! Proof verification with hostile sizes, indexes and hashes never panics.
#![no_main]
use custos_tlog::{Hash, check_inclusion, verify_consistency};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 16 {
        return;
    }
    let (sizes, rest) = data.split_at(16);
    let old = u64::from_be_bytes(sizes[..8].try_into().unwrap());
    let size = u64::from_be_bytes(sizes[8..].try_into().unwrap());
    let hashes: Vec<Hash> = rest
        .chunks_exact(32)
        .map(|c| Hash(c.try_into().unwrap()))
        .collect();
    if hashes.len() < 2 {
        return;
    }
    let _ = verify_consistency(old, hashes[0], size, hashes[1], &hashes[2..]);
    let _ = check_inclusion(size, hashes[0], old, hashes[1], &hashes[2..]);
});
