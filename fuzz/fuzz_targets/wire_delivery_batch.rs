//! Delivery batch (HTTP fetch): decode arbitrary bytes; anything accepted must re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = custos_wire::frames::decode_delivery_batch(data) {
        let again = custos_wire::frames::encode_delivery_batch(&value).expect("an accepted value must encode");
        assert_eq!(again.as_slice(), data, "non-canonical input accepted");
    }
});
