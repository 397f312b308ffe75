//! Delivery tag decoder (v1 and v2): never panics; accepted input is canonical.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tag) = custos_wire::tag::DeliveryTag::decode(data) {
        let again = tag.encode().expect("a decoded tag encodes");
        assert_eq!(again, data, "non-canonical tag accepted");
    }
});
