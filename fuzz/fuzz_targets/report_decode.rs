//! Report v1 decoder: never panics; whatever it accepts re-encodes to the
//! same bytes (canonical form).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = custos_wire::report::Report::decode(data) {
        let again = report.encode().expect("a decoded report encodes");
        assert_eq!(&again[..], data, "non-canonical report accepted");
    }
});
