//! The log's follow answer: decode arbitrary bytes; anything accepted must re-encode to the same bytes.
#![no_main]

use custos_tlog::follow_answer::FollowAnswer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = FollowAnswer::decode(data) {
        let again = value.encode().expect("an accepted value must encode");
        assert_eq!(again.as_slice(), data, "non-canonical input accepted");
    }
});
