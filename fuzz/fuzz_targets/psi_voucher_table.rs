//! Safety vouchers and blinded tables (custos-psi): hostile bytes never
//! panic; whatever decodes re-encodes to the same bytes (canonical form).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = custos_psi::Voucher::decode(data) {
        assert_eq!(v.encode(), data);
    }
    if let Ok(t) = custos_psi::BlindedTable::decode(data) {
        assert_eq!(t.encode(), data);
    }
});
