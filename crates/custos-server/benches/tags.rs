//! The delivery tag's cost to the service per message: one Ed25519
//! signature per envelope (tag v1, what the service does) against a Merkle
//! root signed once per writer batch with an inclusion path per message (a
//! candidate tag v2, simulated here: leaf and node hashes as RFC 6962, root
//! signed, path copied out per message). Batched figures are per message,
//! tree building and path extraction included. Time is the benchmark
//! thread's CPU time.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::hint::black_box;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use custos_server::FrankingPolicy;
use custos_server::policy::{DeliveryPolicy, TagInput};
use custos_wire::ConversationId;
use custos_wire::frames::ItemKind;
use custos_wire::tag::TagFields;
use ed25519_dalek::Signer as _;
use sha2::{Digest, Sha256};

/// Thread CPU time as a criterion measurement (wall-time formatting).
struct CpuTime {
    wall: WallTime,
}

impl Measurement for CpuTime {
    type Intermediate = cpu_time::ThreadTime;
    type Value = std::time::Duration;
    fn start(&self) -> Self::Intermediate {
        cpu_time::ThreadTime::now()
    }
    fn end(&self, i: Self::Intermediate) -> Self::Value {
        i.elapsed()
    }
    fn add(&self, v1: &Self::Value, v2: &Self::Value) -> Self::Value {
        *v1 + *v2
    }
    fn zero(&self) -> Self::Value {
        std::time::Duration::ZERO
    }
    fn to_f64(&self, value: &Self::Value) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        self.wall.formatter()
    }
}

fn fields(i: u64) -> TagFields {
    TagFields {
        franking_commitment: [0x11; 32],
        conversation: ConversationId([0x22; 16]),
        sender: "alice".into(),
        server_time: 1_795_000_000_000 + i,
        envelope_hash: Sha256::digest(i.to_be_bytes()).into(),
    }
}

fn node(l: &[u8; 32], r: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(l);
    h.update(r);
    h.finalize().into()
}

/// One batch of a Merkle-tag scheme: leaf hashes, the tree, one signature
/// over the root, and an encoded tag (fields, index, path, signature) per
/// message. `n` is a power of two.
fn merkle_batch(key: &ed25519_dalek::SigningKey, batch: &[TagFields]) -> Vec<Vec<u8>> {
    let mut levels: Vec<Vec<[u8; 32]>> = vec![
        batch
            .iter()
            .map(|f| {
                let mut h = Sha256::new();
                h.update([0u8]);
                h.update(f.signed_bytes().unwrap());
                h.finalize().into()
            })
            .collect(),
    ];
    while levels.last().unwrap().len() > 1 {
        let next = levels
            .last()
            .unwrap()
            .chunks(2)
            .map(|p| node(&p[0], &p[1]))
            .collect();
        levels.push(next);
    }
    let root = levels.last().unwrap()[0];
    let mut msg = b"custos/v2/delivery-tag-root".to_vec();
    msg.extend_from_slice(&root);
    let sig = key.sign(&msg).to_bytes();
    batch
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let depth = levels.len() - 1;
            let mut tag = Vec::with_capacity(160 + 4 + 32 * depth + 64);
            tag.extend_from_slice(&f.signed_bytes().unwrap());
            tag.extend_from_slice(&(i as u32).to_be_bytes());
            let mut idx = i;
            for level in &levels[..depth] {
                tag.extend_from_slice(&level[idx ^ 1]);
                idx >>= 1;
            }
            tag.extend_from_slice(&sig);
            tag
        })
        .collect()
}

fn bench(c: &mut Criterion<CpuTime>) {
    let clock = custos_clock::system();
    let policy = FrankingPolicy::from_seed(&[7; 32], clock);
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let mut g = c.benchmark_group("delivery_tag_per_message");
    g.throughput(Throughput::Elements(1));
    let hash = [0x33; 32];
    let commitment = [0x11; 32];
    // What the service does per envelope today (tag v1): sign and encode.
    g.bench_function("single_signature_v1", |b| {
        b.iter(|| {
            black_box(policy.tag(&TagInput {
                kind: ItemKind::Envelope,
                conversation: ConversationId([0x22; 16]),
                sender: "alice",
                server_time: 1_795_000_000_000,
                item_hash: black_box(&hash),
                franking_commitment: Some(&commitment),
            }))
        })
    });
    // Baseline primitive: SHA-256 of a 1 KiB envelope, which the service
    // computes anyway (replay table), for scale.
    let envelope = vec![0x5a; 1024];
    g.bench_function("baseline_sha256_1KiB_envelope", |b| {
        b.iter(|| black_box(Sha256::digest(black_box(&envelope))))
    });
    for n in [64usize, 512, 4096] {
        let batch: Vec<TagFields> = (0..n as u64).map(fields).collect();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("merkle_batch", n), &batch, |b, batch| {
            b.iter(|| black_box(merkle_batch(&key, batch)))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime { wall: WallTime });
    targets = bench
}
criterion_main!(benches);
