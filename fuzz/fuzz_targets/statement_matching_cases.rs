//! Statement kind 15 (`MatchingCases`, the provider's matching figures)
//! through `Statement::decode`: never panics; whatever it accepts re-encodes
//! byte for byte and never has more cases decided than opened.
#![no_main]
use custos_wire::statement::Statement;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Statement version 1, type 15, then the fuzzer's fields.
    let mut bytes = vec![1u8, 15];
    bytes.extend_from_slice(data);
    if let Ok(statement) = Statement::decode(&bytes) {
        let Statement::MatchingCases(c) = &statement else {
            panic!("type 15 decoded as another type");
        };
        assert!(
            u64::from(c.cases_confirmed) + u64::from(c.cases_dismissed)
                <= u64::from(c.cases_opened)
        );
        assert_eq!(statement.encode().expect("accepted statements encode"), bytes);
    }
});
