//! The delivery service's MLS public-state parsers on arbitrary bytes:
//! `parse_handshake` (commits and proposals from clients), `GroupState::create`
//! (a creator's GroupInfo and ratchet tree) and `GroupState::decode` (the
//! stored state, then a handshake applied to it). None may panic; whatever
//! `create` accepts is at epoch 0 and re-encodes to a blob that decodes.
//!
//! Input: a mode byte, a u32 (big-endian) length, the first part, the rest.
#![no_main]
use custos_server::delivery::public_state::{GroupState, parse_handshake};
use custos_wire::ConversationId;
use libfuzzer_sys::fuzz_target;
use openmls::prelude::ContentType;

const CONV: ConversationId = ConversationId([7; 16]);

fn split(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&mode, rest) = data.split_first()?;
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let rest = rest.get(4..)?;
    let first = rest.get(..len.min(rest.len()))?;
    Some((mode, first, &rest[first.len()..]))
}

/// `GroupState::decode` contains a panic inside openmls's storage (a
/// corrupt stored value) and returns an error, as the service needs; but
/// libfuzzer-sys's panic hook aborts at the panic itself, caught or not.
/// This hook only prints, so a contained panic is the error it is; a panic
/// that escapes the input still aborts (libfuzzer-sys checks each input
/// with `catch_unwind`) and is reported as a crash.
fn contained_panics_are_errors() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| eprintln!("panic (contained?): {info}")));
    });
}

fuzz_target!(|data: &[u8]| {
    contained_panics_are_errors();
    let Some((mode, a, b)) = split(data) else {
        return;
    };
    match mode % 4 {
        0 => {
            let _ = parse_handshake(a, &CONV, ContentType::Commit);
            let _ = parse_handshake(b, &CONV, ContentType::Proposal);
        }
        1 => {
            if let Ok(state) = GroupState::create(&CONV, a, b) {
                assert_eq!(state.epoch(), 0);
                let blob = state.encode().expect("encode");
                GroupState::decode(&CONV, &blob).expect("a state it made decodes");
            }
        }
        2 => {
            if let Ok(mut state) = GroupState::decode(&CONV, a) {
                if let Ok(commit) = parse_handshake(b, &CONV, ContentType::Commit) {
                    let _ = state.apply_commit(commit, "alice");
                }
            }
        }
        _ => {
            if let Ok(mut state) = GroupState::decode(&CONV, a) {
                let _ = state.roster();
                if let Ok(proposal) = parse_handshake(b, &CONV, ContentType::Proposal) {
                    let _ = state.queue_proposal(proposal, "alice");
                }
            }
        }
    }
});
