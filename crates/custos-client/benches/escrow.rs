//! Escrow's added cost per message: one capsule per chain, sealed by the
//! sender and recomputed by every recipient, against the envelope round trip
//! (seal + sign, verify + open, 1 KiB) measured in the same run. Per message
//! at 100 messages per chain = capsule / 100. Time is the benchmark thread's
//! CPU time, so that other processes on a shared machine are not counted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use custos_bench::CpuTime;
use custos_client::chain::{ChainKey, ReceivingChain, SendingChain};
use custos_client::daykeys::{DayKeyEscrow, DayKeys};
use custos_client::escrow::EscrowPolicy;
use custos_client::seal::{open, seal, text_payload};
use custos_wire::manifest::{Manifest, Participant, Policy, Role};
use custos_wire::{ChainId, ConversationId};

/// A manifest with 5 custodians (t = 3), and the day keys it accepts.
fn day_keys(day: u32) -> Arc<DayKeys> {
    let p = |name: String, role: Role, seed: u8| Participant {
        name,
        role,
        jurisdiction: "EU".into(),
        endpoint: None,
        public_key: hex::encode(
            ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
                .verifying_key()
                .to_bytes(),
        ),
    };
    let mut ps = vec![
        p("log".into(), Role::Log, 1),
        p("witness".into(), Role::Witness, 2),
    ];
    for i in 0..5u8 {
        ps.push(p(format!("custodian-{i}"), Role::Custodian, 10 + i));
    }
    let m = Manifest::new(1, 3, Policy::default(), ps).unwrap();
    let keys = DayKeys::for_manifest(&m).unwrap();
    let (key, _) =
        custos_escrow::dangerous::trusted_deal(day, 5, 3, &mut rand_core::OsRng).unwrap();
    keys.insert(key);
    Arc::new(keys)
}

fn bench(c: &mut Criterion<CpuTime>) {
    let body = "x".repeat(1024);
    let conv = ConversationId([7; 16]);
    let day = 20_000;
    let mut id = ChainId {
        epoch: 1,
        sender_leaf: 0,
        day,
        seq: 0,
    };
    let root = ChainKey::random();
    let mut s = SendingChain::new(conv, id, root.clone());
    let mut r = ReceivingChain::new(conv, id, root);
    let sk = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    let vk = custos_verify::sender_signature::SenderKey::try_from(&sk.verifying_key()).unwrap();

    let mut g = c.benchmark_group("escrow_per_chain_1KiB");
    // Baseline: one message's round trip.
    g.bench_function("baseline_envelope_round_trip", |b| {
        b.iter(|| {
            let payload = text_payload(&body, 1);
            let sealed = seal(&mut s, &sk, "alice", &payload).unwrap();
            black_box(open(&sealed.bytes, &mut r, &vk, "alice").unwrap());
        })
    });

    // The device's policy, with its per-conversation-day cache warm (the
    // cost of a chain after the first of the day in that conversation).
    let keys = day_keys(day);
    let escrow = DayKeyEscrow::new(Arc::clone(&keys));
    let ck0 = [9u8; 32];
    let (kind, capsule) = escrow.seal(&conv, &id, &ck0).unwrap();
    g.bench_function("sender_capsule_per_chain", |b| {
        b.iter(|| {
            id.seq = id.seq.wrapping_add(1);
            black_box(escrow.seal(&conv, black_box(&id), &ck0).unwrap())
        })
    });
    id.seq = 0;
    g.bench_function("recipient_capsule_check_per_chain", |b| {
        b.iter(|| {
            escrow
                .verify(&conv, &id, black_box(&ck0), kind, black_box(&capsule))
                .unwrap()
        })
    });
    // The first chain of a conversation-day: the cache is cold.
    let mut n = 0u8;
    g.bench_function("sender_capsule_first_chain_of_the_day", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            let fresh = DayKeyEscrow::new(Arc::clone(&keys));
            black_box(fresh.seal(&ConversationId([n; 16]), &id, &ck0).unwrap())
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = bench
}
criterion_main!(benches);
