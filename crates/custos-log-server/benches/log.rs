//! Benchmarks of the transparency log, each with a baseline measured in the
//! same run (results in BENCHMARKS.md):
//! - durable append throughput with batching, through HTTP from a client on
//!   the same machine, and through the storage layer alone (baseline: one
//!   fsync, one SHA-256 of an entry);
//! - inclusion-proof verification at 1M entries (baseline: one node hash);
//! - witness cosigning latency over HTTP (baseline: one fsync).
//!
//! The HTTP benchmarks also print the process CPU time (client and server
//! together, all threads) per entry over the timed part: on a shared machine
//! that figure moves less than wall-clock throughput, and `cores / CPU per
//! entry` bounds what the same code can reach on idle cores.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "benchmark harness: a failure aborts the run"
)]

use std::cell::Cell;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cpu_time::ProcessTime;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use custos_bench::CpuTime;
use custos_log_server::LogConfig;
use custos_log_server::admission::Admission;
use custos_log_server::storage::{LogStore, StorePaths};
use custos_tlog::checkpoint::sign_checkpoint;
use custos_tlog::keys::LogVerifier;
use custos_tlog::witness_api::AddCheckpoint;
use custos_tlog::{
    ALG_COSIGNATURE_V1, ALG_ED25519, LogClient, NamedKey, Tree, TrustPolicy, verify_inclusion,
};
use custos_wire::manifest::{Manifest, Participant, Policy, Role};
use custos_wire::statement::{DayKeyErasure, SignedStatement, Statement};
use custos_witness_server::WitnessConfig;
use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};

const ORIGIN: &str = "log.bench.test";

fn log_key() -> NamedKey {
    NamedKey::from_seed(ORIGIN, ALG_ED25519, &[1; 32]).unwrap()
}

fn entries(custodian: &SigningKey, start: u32, n: u32) -> Vec<Vec<u8>> {
    (start..start + n)
        .map(|day| {
            let st = Statement::DayKeyErasure(DayKeyErasure {
                day,
                custodian: "custodian.bench".into(),
                erased_at: 1_795_000_000,
            });
            SignedStatement::sign(&st, custodian)
                .unwrap()
                .encode()
                .unwrap()
        })
        .collect()
}

/// Process CPU time and entries over the timed parts of one benchmark.
#[derive(Default)]
struct CpuMeter {
    cpu: Cell<Duration>,
    wall: Cell<Duration>,
    entries: Cell<u64>,
}

impl CpuMeter {
    fn add(&self, cpu: Duration, wall: Duration, entries: u64) {
        self.cpu.set(self.cpu.get() + cpu);
        self.wall.set(self.wall.get() + wall);
        self.entries.set(self.entries.get() + entries);
    }

    fn report(&self, name: &str) {
        let n = self.entries.get().max(1) as f64;
        let cpu_us = self.cpu.get().as_secs_f64() * 1e6 / n;
        let cores = self.cpu.get().as_secs_f64() / self.wall.get().as_secs_f64().max(1e-9);
        println!(
            "{name}: process CPU {cpu_us:.1} µs per entry, {cores:.2} cores busy on average; \
             bound on 2 idle cores: {:.1}k entries/s",
            2e3 / cpu_us
        );
    }
}

fn bench_manifest(custodian: &SigningKey) -> Manifest {
    // One witness, not running: the bench measures the log alone and checks
    // checkpoints with a log-only policy.
    Manifest::new(
        1,
        1,
        Policy::default(),
        vec![
            Participant {
                name: ORIGIN.into(),
                role: Role::Log,
                jurisdiction: "EU".into(),
                endpoint: None,
                public_key: hex::encode(log_key().verifying_key().to_bytes()),
            },
            Participant {
                name: "witness.bench".into(),
                role: Role::Witness,
                jurisdiction: "EU".into(),
                endpoint: None,
                public_key: hex::encode(
                    SigningKey::from_bytes(&[2; 32]).verifying_key().to_bytes(),
                ),
            },
            Participant {
                name: "custodian.bench".into(),
                role: Role::Custodian,
                jurisdiction: "EU".into(),
                endpoint: None,
                public_key: hex::encode(custodian.verifying_key().to_bytes()),
            },
        ],
    )
    .unwrap()
}

fn baselines(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let mut f = std::fs::File::create(tmp.path().join("f")).unwrap();
    let mut g = c.benchmark_group("baseline");
    g.bench_function("fsync_one_small_write", |b| {
        b.iter(|| {
            f.write_all(&[0u8; 128]).unwrap();
            f.sync_data().unwrap();
        })
    });
    let entry = entries(&SigningKey::from_bytes(&[3; 32]), 0, 1).remove(0);
    g.throughput(Throughput::Elements(1));
    g.bench_function("sha256_of_one_entry", |b| {
        b.iter(|| Sha256::digest(std::hint::black_box(&entry)))
    });
    let signed = SignedStatement::decode(&entry).unwrap();
    g.bench_function("ed25519_verify_one_statement", |b| {
        b.iter(|| std::hint::black_box(&signed).verify().unwrap())
    });
    g.bench_function("sha256_node_hash", |b| {
        let left = [1u8; 32];
        let right = [2u8; 32];
        b.iter(|| {
            let mut h = Sha256::new();
            h.update([1u8]);
            h.update(std::hint::black_box(left));
            h.update(right);
            h.finalize()
        })
    });
    g.finish();
}

/// Per-statement admission cost in thread CPU time: the reference strict
/// check (`SignedStatement::verify`, ed25519-dalek `verify_strict`) against
/// what the log runs (`Admission::admit`: decoding, the same strict check
/// with the author key prepared once, the role rule).
fn admission_cpu(c: &mut Criterion<CpuTime>) {
    let custodian = SigningKey::from_bytes(&[3; 32]);
    let entry = entries(&custodian, 0, 1).remove(0);
    let signed = SignedStatement::decode(&entry).unwrap();
    let admission = Admission::new(&bench_manifest(&custodian));
    let mut g = c.benchmark_group("cpu");
    g.throughput(Throughput::Elements(1));
    g.bench_function("verify_strict_one_statement", |b| {
        b.iter(|| std::hint::black_box(&signed).verify().unwrap())
    });
    g.bench_function("admission_of_one_statement", |b| {
        b.iter(|| admission.admit(std::hint::black_box(&entry)).unwrap())
    });
    g.finish();
}

fn append(c: &mut Criterion) {
    let custodian = SigningKey::from_bytes(&[3; 32]);
    let mut g = c.benchmark_group("append");
    g.sample_size(10).measurement_time(Duration::from_secs(15));

    // Storage layer alone: batches of 256, each batch fsync'd and committed.
    let tmp = tempfile::tempdir().unwrap();
    let key = log_key();
    let mut store = LogStore::open(
        &StorePaths {
            data: tmp.path().join("data"),
            signed_size: tmp.path().join("log.signed-size"),
        },
        ORIGIN,
        key.log_signer().unwrap(),
        LogVerifier::new(ORIGIN, key.verifying_key()),
    )
    .unwrap();
    let batch = entries(&custodian, 0, 256);
    g.throughput(Throughput::Elements(256));
    g.bench_function("storage_batch_256", |b| {
        b.iter(|| store.append_batch(&batch).unwrap())
    });

    // Through HTTP: concurrent clients on this machine, server batching.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let manifest = bench_manifest(&custodian);
    let url = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let h = custos_log_server::spawn_log(
            listener,
            LogConfig {
                data: tmp.path().join("data"),
                signed_size: tmp.path().join("log.signed-size"),
                key: log_key(),
                manifest,
                clock: custos_clock::system(),
                max_batch: 4096,
            },
        )
        .await
        .unwrap();
        format!("http://{}", h.addr)
    });
    let client = LogClient::new(&url).unwrap();
    let meter = CpuMeter::default();
    const PER_ITER: u32 = 4096;
    const CONCURRENCY: usize = 256;
    let mut next_day = 0u32;
    g.throughput(Throughput::Elements(u64::from(PER_ITER)));
    g.bench_function(
        BenchmarkId::new("http_durable", format!("{CONCURRENCY}_concurrent")),
        |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let work = Arc::new(entries(&custodian, next_day, PER_ITER));
                    next_day += PER_ITER;
                    let cpu = ProcessTime::now();
                    let start = Instant::now();
                    rt.block_on(async {
                        let mut tasks = Vec::new();
                        for w in 0..CONCURRENCY {
                            let client = client.clone();
                            let work = Arc::clone(&work);
                            tasks.push(tokio::spawn(async move {
                                for e in work.iter().skip(w).step_by(CONCURRENCY) {
                                    client.submit_raw(e.clone()).await.unwrap();
                                }
                            }));
                        }
                        for t in tasks {
                            t.await.unwrap();
                        }
                    });
                    let wall = start.elapsed();
                    meter.add(cpu.elapsed(), wall, u64::from(PER_ITER));
                    total += wall;
                }
                total
            })
        },
    );
    meter.report("append/http_durable");
    let meter = CpuMeter::default();
    // Through HTTP with client-side batching: 64 statements per request.
    const PER_REQUEST: usize = 64;
    const BATCH_CONCURRENCY: usize = 16;
    g.bench_function(
        BenchmarkId::new(
            "http_durable_batched_requests",
            format!("{PER_REQUEST}_per_request_{BATCH_CONCURRENCY}_concurrent"),
        ),
        |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let work: Arc<Vec<SignedStatement>> = Arc::new(
                        entries(&custodian, next_day, PER_ITER)
                            .iter()
                            .map(|e| SignedStatement::decode(e).unwrap())
                            .collect(),
                    );
                    next_day += PER_ITER;
                    let cpu = ProcessTime::now();
                    let start = Instant::now();
                    rt.block_on(async {
                        let mut tasks = Vec::new();
                        for w in 0..BATCH_CONCURRENCY {
                            let client = client.clone();
                            let work = Arc::clone(&work);
                            tasks.push(tokio::spawn(async move {
                                let chunks: Vec<_> = work.chunks(PER_REQUEST).collect();
                                for chunk in chunks.iter().skip(w).step_by(BATCH_CONCURRENCY) {
                                    client.submit_batch(chunk).await.unwrap();
                                }
                            }));
                        }
                        for t in tasks {
                            t.await.unwrap();
                        }
                    });
                    let wall = start.elapsed();
                    meter.add(cpu.elapsed(), wall, u64::from(PER_ITER));
                    total += wall;
                }
                total
            })
        },
    );
    meter.report("append/http_durable_batched_requests");
    g.finish();
}

fn inclusion(c: &mut Criterion) {
    const N: u64 = 1_000_000;
    let mut tree = Tree::new();
    for i in 0..N {
        tree.append_entry(&i.to_be_bytes()).unwrap();
    }
    let key = log_key();
    let note =
        sign_checkpoint(&key.log_signer().unwrap(), ORIGIN, N, tree.root(N).unwrap()).unwrap();
    let cp = TrustPolicy::new(ORIGIN, key.verifying_key(), &[], 0)
        .unwrap()
        .verify_checkpoint(&note)
        .unwrap();
    let index = 777_777u64;
    let proof = tree.inclusion_proof(index, N).unwrap();
    let entry = index.to_be_bytes();
    println!(
        "inclusion proof at {N} entries: {} hashes, {} bytes",
        proof.len(),
        proof.len() * 32
    );
    let mut g = c.benchmark_group("inclusion");
    g.bench_function("verify_at_1M", |b| {
        b.iter(|| verify_inclusion(&cp, index, std::hint::black_box(&entry), &proof).unwrap())
    });
    g.finish();
}

fn witness(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let url = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = custos_witness_server::spawn_witness(
            listener,
            WitnessConfig {
                data: tmp.path().to_path_buf(),
                key: NamedKey::from_seed("witness.bench", ALG_COSIGNATURE_V1, &[2; 32]).unwrap(),
                logs: vec![(ORIGIN.to_owned(), log_key().verifying_key())],
                clock: custos_clock::system(),
            },
        )
        .await
        .unwrap();
        format!("http://{addr}/add-checkpoint")
    });
    let http = reqwest::Client::new();
    let signer = log_key().log_signer().unwrap();
    let mut tree = Tree::new();
    for i in 0..1000u32 {
        tree.append_entry(&i.to_be_bytes()).unwrap();
    }
    let mut old = 0u64;
    let mut g = c.benchmark_group("witness");
    g.bench_function("cosign_http_roundtrip", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                tree.append_entry(&tree.size().to_be_bytes()).unwrap();
                let size = tree.size();
                let req = AddCheckpoint {
                    old,
                    proof: tree.consistency_proof(old, size).unwrap(),
                    checkpoint: sign_checkpoint(&signer, ORIGIN, size, tree.root(size).unwrap())
                        .unwrap(),
                };
                let body = req.encode();
                let start = Instant::now();
                let status = rt
                    .block_on(async { http.post(&url).body(body).send().await.unwrap().status() });
                total += start.elapsed();
                assert_eq!(status, 200);
                old = size;
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, baselines, inclusion, witness, append);
criterion_group! {
    name = cpu_benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = admission_cpu
}
criterion_main!(benches, cpu_benches);
