//! `InterceptionRequest::decode`: never panics; whatever it accepts re-encodes byte for byte.
#![no_main]
use custos_wire::interception::InterceptionRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = InterceptionRequest::decode(data) {
        assert_eq!(v.encode().expect("accepted values encode"), data);
    }
});
