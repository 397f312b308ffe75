//! `SignedStatement::decode` and `verify`: never panic; accepted input is canonical.
#![no_main]
use custos_wire::statement::SignedStatement;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = SignedStatement::decode(data) {
        assert_eq!(s.encode().expect("accepted statements encode"), data);
        let _ = s.verify();
    }
});
