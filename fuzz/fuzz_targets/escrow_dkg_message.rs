//! DKG message handling (framing, commitments, shares, acks, logs) on
//! arbitrary bytes from an arbitrary sender: errors, never panics.
#![no_main]
use std::sync::{Mutex, OnceLock};

use custos_escrow::dkg::{Dealing, DkgConfig, public_key_of};
use libfuzzer_sys::fuzz_target;
use rand_core::OsRng;

fn state() -> &'static Mutex<Option<Dealing>> {
    static STATE: OnceLock<Mutex<Option<Dealing>>> = OnceLock::new();
    STATE.get_or_init(|| {
        let secrets: Vec<[u8; 32]> = (1u8..=5).map(|i| [i; 32]).collect();
        let publics: Vec<[u8; 32]> = secrets.iter().map(|s| public_key_of(s).expect("key")).collect();
        let config = DkgConfig::new(1, 3, &publics).expect("config");
        let (dealing, _) = Dealing::start(&config, &secrets[0], &mut OsRng).expect("start");
        Mutex::new(Some(dealing))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((from, msg)) = data.split_first() else { return };
    let mut guard = state().lock().expect("lock");
    if let Some(d) = guard.as_mut() {
        let _ = d.handle(u32::from(*from % 7), msg);
    }
});
