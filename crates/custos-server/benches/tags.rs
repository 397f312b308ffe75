//! The delivery tag's cost to the service per message: tag v1, one Ed25519
//! signature per envelope (what the service did before v2), against tag v2
//! as the writer issues it: `FrankingPolicy::tag_batch` over a writer batch
//! of N envelopes (fields, leaf hashes, one tree and one signature per tag
//! batch of at most 512, path extraction and encoding per message; 4096 is
//! eight tag batches). Batched figures are per message. Time is the
//! benchmark thread's CPU time.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use custos_bench::CpuTime;
use custos_server::FrankingPolicy;
use custos_server::policy::{DeliveryPolicy, TagInput};
use custos_wire::ConversationId;
use custos_wire::frames::ItemKind;
use custos_wire::tag::{DeliveryTag, DeliveryTagV1, TagFields};
use ed25519_dalek::Signer as _;
use sha2::{Digest, Sha256};

fn bench(c: &mut Criterion<CpuTime>) {
    let clock = custos_clock::system();
    let policy = FrankingPolicy::from_seed(&[7; 32], clock);
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let mut g = c.benchmark_group("delivery_tag_per_message");
    g.throughput(Throughput::Elements(1));
    let commitment = [0x11; 32];
    // Tag v1 per envelope: sign the fields and encode.
    g.bench_function("single_signature_v1", |b| {
        b.iter(|| {
            let fields = TagFields {
                franking_commitment: commitment,
                conversation: ConversationId([0x22; 16]),
                sender: "alice".into(),
                server_time: 1_795_000_000_000,
                envelope_hash: black_box([0x33; 32]),
            };
            let signature = key.sign(&fields.signed_bytes_v1().unwrap()).to_bytes();
            black_box(
                DeliveryTag::V1(DeliveryTagV1 { fields, signature })
                    .encode()
                    .unwrap(),
            )
        })
    });
    // Baseline primitive: SHA-256 of a 1 KiB envelope, which the service
    // computes anyway (replay table), for scale.
    let envelope = vec![0x5a; 1024];
    g.bench_function("baseline_sha256_1KiB_envelope", |b| {
        b.iter(|| black_box(Sha256::digest(black_box(&envelope))))
    });
    // Tag v2 as the writer issues it, per writer batch of n envelopes.
    for n in [1usize, 64, 512, 4096] {
        let hashes: Vec<[u8; 32]> = (0..n as u64)
            .map(|i| Sha256::digest(i.to_be_bytes()).into())
            .collect();
        let inputs: Vec<TagInput<'_>> = hashes
            .iter()
            .enumerate()
            .map(|(i, h)| TagInput {
                kind: ItemKind::Envelope,
                conversation: ConversationId([0x22; 16]),
                sender: "alice",
                server_time: 1_795_000_000_000 + i as u64,
                item_hash: h,
                franking_commitment: Some(&commitment),
            })
            .collect();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("tag_batch_v2", n), &inputs, |b, inputs| {
            b.iter(|| black_box(policy.tag_batch(black_box(inputs))))
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
