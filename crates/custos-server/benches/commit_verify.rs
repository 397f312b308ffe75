//! What verifying a commit costs the service, against
//! storing it unchecked, in the same run.
//!
//! - `store_unchecked`: what the writer did per commit before: one SQLite
//!   transaction that inserts the commit item and its mailbox rows and
//!   bumps the epoch (WAL, `synchronous = NORMAL`: the fsync is the
//!   writer's shared one and is not counted on either side).
//! - `verify_and_store`: the same, plus what the writer now does: load the
//!   stored public state, parse and verify the commit against it (openmls
//!   `PublicGroup`), merge it, read the roster, encode the state and write
//!   it in the same transaction.
//!
//! Each iteration applies the same self-update commit to the same stored
//! state (epoch 1), for groups of 2 and 16 members. Time is the benchmark
//! thread's CPU time (SQLite runs in the thread with rusqlite).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use custos_bench::CpuTime;
use custos_deploy::mls_fixture::{CS, Key, credential};
use custos_server::delivery::public_state::{GroupState, parse_handshake};
use custos_wire::ConversationId;
use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::*;
use openmls_rust_crypto::OpenMlsRustCrypto;

/// A group of `n` members at epoch 1 as the service stores it, and the
/// creator's self-update commit for epoch 1.
fn fixture(n: usize) -> (ConversationId, Vec<u8>, Vec<u8>) {
    let conv = ConversationId([n as u8; 16]);
    let provider = OpenMlsRustCrypto::default();
    let key = Key(ed25519_dalek::SigningKey::from_bytes(&[1; 32]));
    let mut group = MlsGroup::builder()
        .with_group_id(GroupId::from_slice(&conv.0))
        .ciphersuite(CS)
        .use_ratchet_tree_extension(true)
        .with_wire_format_policy(PURE_PLAINTEXT_WIRE_FORMAT_POLICY)
        .build(&provider, &key, credential("m0", &key))
        .unwrap();
    let info = group
        .export_group_info(provider.crypto(), &key, false)
        .unwrap()
        .tls_serialize_detached()
        .unwrap();
    let tree = group
        .export_ratchet_tree()
        .tls_serialize_detached()
        .unwrap();
    let mut state = GroupState::create(&conv, &info, &tree).unwrap();
    let others: Vec<KeyPackage> = (1..n)
        .map(|i| {
            let p = OpenMlsRustCrypto::default();
            let k = Key(ed25519_dalek::SigningKey::from_bytes(&[i as u8 + 1; 32]));
            KeyPackage::builder()
                .build(CS, &p, &k, credential(&format!("m{i}"), &k))
                .unwrap()
                .key_package()
                .clone()
        })
        .collect();
    let (add, _, _) = group.add_members(&provider, &key, &others).unwrap();
    group.merge_pending_commit(&provider).unwrap();
    let add = add.tls_serialize_detached().unwrap();
    state
        .apply_commit(
            parse_handshake(&add, &conv, ContentType::Commit).unwrap(),
            "m0",
        )
        .unwrap();
    let update = group
        .self_update(&provider, &key, LeafNodeParameters::default())
        .unwrap();
    let (commit, _, _) = update.into_messages();
    (
        conv,
        state.encode().unwrap(),
        commit.tls_serialize_detached().unwrap(),
    )
}

fn open_db(conv: &ConversationId, state: &[u8]) -> rusqlite::Connection {
    let db = rusqlite::Connection::open_in_memory().unwrap();
    db.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE conversations (id BLOB PRIMARY KEY, epoch INTEGER NOT NULL) WITHOUT ROWID;
         CREATE TABLE group_states (conversation BLOB PRIMARY KEY, state BLOB NOT NULL) WITHOUT ROWID;
         CREATE TABLE items (id INTEGER PRIMARY KEY, conversation BLOB NOT NULL, body BLOB NOT NULL);
         CREATE TABLE mailbox (device_id INTEGER NOT NULL, seq INTEGER NOT NULL,
             item_id INTEGER NOT NULL, PRIMARY KEY (device_id, seq)) WITHOUT ROWID;",
    )
    .unwrap();
    db.execute(
        "INSERT INTO conversations (id, epoch) VALUES (?1, 1)",
        (conv.0.to_vec(),),
    )
    .unwrap();
    db.execute(
        "INSERT INTO group_states (conversation, state) VALUES (?1, ?2)",
        (conv.0.to_vec(), state.to_vec()),
    )
    .unwrap();
    db
}

/// The unchecked write: the commit item, one mailbox row per other member,
/// the epoch bump.
fn store(
    tx: &rusqlite::Transaction<'_>,
    conv: &ConversationId,
    commit: &[u8],
    n: usize,
    id: &mut i64,
) {
    *id += 1;
    tx.execute(
        "INSERT INTO items (id, conversation, body) VALUES (?1, ?2, ?3)",
        (*id, conv.0.to_vec(), commit.to_vec()),
    )
    .unwrap();
    for d in 1..n {
        tx.execute(
            "INSERT INTO mailbox (device_id, seq, item_id) VALUES (?1, ?2, ?3)",
            (d as i64, *id, *id),
        )
        .unwrap();
    }
    tx.execute(
        "UPDATE conversations SET epoch = 1 WHERE id = ?1",
        (conv.0.to_vec(),),
    )
    .unwrap();
}

fn bench(c: &mut Criterion<CpuTime>) {
    let mut g = c.benchmark_group("commit_on_the_service");
    for n in [2usize, 16] {
        let (conv, state, commit) = fixture(n);
        let mut db = open_db(&conv, &state);
        let mut id = 0i64;
        g.bench_function(BenchmarkId::new("store_unchecked", n), |b| {
            b.iter(|| {
                let tx = db.transaction().unwrap();
                store(&tx, &conv, black_box(&commit), n, &mut id);
                tx.commit().unwrap();
            });
        });
        g.bench_function(BenchmarkId::new("verify_and_store", n), |b| {
            b.iter(|| {
                let tx = db.transaction().unwrap();
                let blob: Vec<u8> = tx
                    .query_row(
                        "SELECT state FROM group_states WHERE conversation = ?1",
                        (conv.0.to_vec(),),
                        |r| r.get(0),
                    )
                    .unwrap();
                let mut st = GroupState::decode(&conv, &blob).unwrap();
                let h = parse_handshake(black_box(&commit), &conv, ContentType::Commit).unwrap();
                st.apply_commit(h, "m0").unwrap();
                black_box(st.roster().unwrap());
                store(&tx, &conv, &commit, n, &mut id);
                // The state stays at epoch 1, so the next iteration applies
                // the same commit again; the write costs what the real one does.
                let _ = st.encode().unwrap();
                tx.execute(
                    "UPDATE group_states SET state = ?2 WHERE conversation = ?1",
                    (conv.0.to_vec(), blob),
                )
                .unwrap();
                tx.commit().unwrap();
            });
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = bench
}
criterion_main!(benches);
