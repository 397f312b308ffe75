//! Writes seed inputs for the `server_mls_public_state` fuzz target into
//! the folder given as the first argument: a real two-member group's
//! GroupInfo and ratchet tree (mode 1), its adding commit alone (mode 0),
//! and the stored state with that commit (mode 2), so the fuzzer starts from
//! messages that parse and mutates them.
//!
//! `cargo run -p custos-deploy --example fuzz_seeds -- fuzz/seeds/server_mls_public_state`
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "developer tool")]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use custos_server::delivery::public_state::GroupState;
use custos_wire::ConversationId;
use ed25519_dalek::SigningKey;

/// The conversation id the fuzz target uses.
const CONV: ConversationId = ConversationId([7; 16]);

fn seed(mode: u8, first: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut out = vec![mode];
    out.extend_from_slice(&u32::try_from(first.len()).unwrap().to_be_bytes());
    out.extend_from_slice(first);
    out.extend_from_slice(rest);
    out
}

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: fuzz_seeds DIR"));
    std::fs::create_dir_all(&dir).unwrap();
    let (create, commit) = custos_deploy::mls_fixture::two_member_group(
        &CONV,
        ("alice", &SigningKey::from_bytes(&[1; 32])),
        ("bob", &SigningKey::from_bytes(&[2; 32])),
    );
    let field = |v: &serde_json::Value, k: &str| B64.decode(v[k].as_str().unwrap()).unwrap();
    let info = field(&create, "group_info");
    let tree = field(&create, "ratchet_tree");
    let commit = field(&commit, "commit");
    let state = GroupState::create(&CONV, &info, &tree)
        .unwrap()
        .encode()
        .unwrap();
    std::fs::write(dir.join("create"), seed(1, &info, &tree)).unwrap();
    std::fs::write(dir.join("commit"), seed(0, &commit, &[])).unwrap();
    std::fs::write(dir.join("state-commit"), seed(2, &state, &commit)).unwrap();
    println!("seeds written to {}", dir.display());
}
