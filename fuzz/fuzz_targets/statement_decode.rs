//! `Statement::decode`: never panics; whatever it accepts re-encodes byte for byte.
#![no_main]
use custos_wire::statement::Statement;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = Statement::decode(data) {
        assert_eq!(s.encode().expect("accepted statements encode"), data);
    }
});
