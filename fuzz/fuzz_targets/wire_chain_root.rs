//! Chain root v1 (the secret inside an announcement's MLS message): decode arbitrary bytes; anything accepted must re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = custos_wire::announcement::ChainRoot::decode(data) {
        let again = Ok::<_, custos_wire::WireError>(value.encode()).expect("an accepted value must encode");
        assert_eq!(again.as_slice(), data, "non-canonical input accepted");
    }
});
