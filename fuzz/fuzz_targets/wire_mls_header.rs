//! The MLS PrivateMessage clear-header reader: arbitrary bytes never panic, and
//! an accepted header's group id lies inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = custos_wire::mls_header::peek_private_message(data) {
        assert!(h.group_id.len() <= custos_wire::mls_header::MAX_GROUP_ID_LEN);
        assert!(h.group_id.len() + 13 <= data.len());
    }
});
