//! `AddCheckpoint::parse`: never panics; accepted bodies re-encode byte for byte.
#![no_main]
use custos_tlog::witness_api::AddCheckpoint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(req) = AddCheckpoint::parse(data) {
        assert_eq!(req.encode(), data);
    }
});
