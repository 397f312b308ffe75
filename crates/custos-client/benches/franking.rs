//! Franking's cost to the sender (fresh key + commitment) and to the
//! recipient (commitment check), and the recipient's delivery-tag check,
//! each against the envelope round trip (seal + sign, verify + open, 1 KiB)
//! measured in the same run. Time is the benchmark thread's CPU time, so
//! that other processes on a shared machine are not counted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use custos_bench::CpuTime;
use custos_client::chain::{ChainKey, ReceivingChain, SendingChain};
use custos_client::franking;
use custos_client::seal::{open, seal, text_payload};
use custos_wire::envelope::peek_header;
use custos_wire::tag::{DeliveryTag, TagFields};
use custos_wire::{ChainId, ConversationId};
use ed25519_dalek::Signer as _;
use sha2::{Digest, Sha256};

fn bench(c: &mut Criterion<CpuTime>) {
    let body = "x".repeat(1024);
    let conv = ConversationId([7; 16]);
    let id = ChainId {
        epoch: 1,
        sender_leaf: 0,
        day: 20_000,
        seq: 0,
    };
    let root = ChainKey::random();
    let mut s = SendingChain::new(conv, id, root.clone());
    let mut r = ReceivingChain::new(conv, id, root);
    let sk = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    let vk = custos_verify::sender_signature::SenderKey::try_from(&sk.verifying_key()).unwrap();

    let mut g = c.benchmark_group("franking_1KiB");
    // Baseline: the whole round trip, franking included.
    g.bench_function("baseline_envelope_round_trip", |b| {
        b.iter(|| {
            let payload = text_payload(&body, 1);
            let sealed = seal(&mut s, &sk, "alice", &payload).unwrap();
            black_box(open(&sealed.bytes, &mut r, &vk, "alice").unwrap());
        })
    });

    let payload = text_payload(&body, 1);
    let plaintext = payload.encode().unwrap();
    g.bench_function("sender_fresh_key_and_commit", |b| {
        b.iter(|| {
            let k = franking::fresh_key();
            black_box(franking::commit(&k, &conv, "alice", black_box(&plaintext)))
        })
    });
    let commitment = franking::commit(&payload.franking_key, &conv, "alice", &plaintext);
    g.bench_function("recipient_check", |b| {
        b.iter(|| {
            assert!(franking::verify(
                black_box(&commitment),
                &payload.franking_key,
                &conv,
                "alice",
                black_box(&plaintext)
            ))
        })
    });

    // The recipient's delivery-tag check (SHA-256 of the envelope, the
    // v2 path walk and one strict Ed25519 verification), for comparison: not
    // franking itself.
    let sealed = seal(&mut s, &sk, "alice", &payload).unwrap();
    let header = peek_header(&sealed.bytes).unwrap();
    let service = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let fields = TagFields {
        franking_commitment: header.franking_commitment,
        conversation: conv,
        sender: "alice".into(),
        server_time: 1_795_000_000_000,
        envelope_hash: Sha256::digest(&sealed.bytes).into(),
    };
    // A v2 tag from a full batch of 512 (9-hash path), the longest check.
    let mut batch = vec![fields.clone(); 512];
    for (i, f) in batch.iter_mut().enumerate().skip(1) {
        f.server_time += i as u64;
    }
    let tags = custos_wire::tag::build_batch(1, batch, |m| service.sign(m).to_bytes()).unwrap();
    let tag = DeliveryTag::V2(tags.into_iter().next().unwrap())
        .encode()
        .unwrap();
    let pinned = service.verifying_key();
    // The first tag of a batch: its root's signature is checked.
    g.bench_function("recipient_tag_check", |b| {
        b.iter(|| {
            custos_client::report::check_tag(
                &pinned,
                black_box(&tag),
                &header,
                &sealed.bytes,
                "alice",
                1_795_000_000_000,
                &mut custos_wire::tag::VerifiedRoots::new(),
            )
            .unwrap()
        })
    });
    // Every other tag of that batch: the root's signature verified before.
    let mut roots = custos_wire::tag::VerifiedRoots::new();
    g.bench_function("recipient_tag_check_batch_root_known", |b| {
        b.iter(|| {
            custos_client::report::check_tag(
                &pinned,
                black_box(&tag),
                &header,
                &sealed.bytes,
                "alice",
                1_795_000_000_000,
                &mut roots,
            )
            .unwrap()
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
