//! Attachment blobs of 10 MiB on loopback (goal: at least 200 MiB/s each
//! way), against a baseline measured in the same run.
//!
//! - `upload_10MiB`: a device's `Api::upload_blob` to the delivery service
//!   of a loopback deployment: HTTP, session check, quota check, the body
//!   written to its own file and fsynced (and the directory), then the row
//!   in one SQLite write transaction (`synchronous = FULL`), all before the
//!   answer.
//! - `download_10MiB`: `Api::download_blob` of a stored blob.
//! - `baseline_file_write_10MiB`: the storage floor, the same 10 MiB
//!   written to a new file and fsynced, on the same disk, without any HTTP.
//! - `baseline_sqlite_insert_10MiB`: the same 10 MiB inserted into a SQLite
//!   table in WAL mode with `synchronous = FULL` (how bodies were stored
//!   before they were files).
//!
//! Wall time; throughput in bytes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "benchmark harness"
)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use custos_deploy::{CustodianMode, Deployment, DeploymentSpec, ServerSpec};

const SIZE: usize = 10 << 20;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spec = DeploymentSpec::new("bench", custos_clock::system())
        .custodians(0, 0, CustodianMode::KeysOnly)
        .with_server(ServerSpec::unlimited());
    let deployment = rt
        .block_on(Deployment::start(&dir.path().join("deploy"), spec))
        .unwrap();
    let alice = rt.block_on(deployment.register("alice")).unwrap();
    let blob: Vec<u8> = (0..SIZE).map(|i| (i * 31 % 251) as u8).collect();
    let stored = rt.block_on(alice.api().upload_blob(blob.clone())).unwrap();

    let mut g = c.benchmark_group("blobs");
    g.sample_size(20);
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.bench_function("upload_10MiB", |b| {
        b.iter(|| rt.block_on(alice.api().upload_blob(blob.clone())).unwrap())
    });
    g.bench_function("download_10MiB", |b| {
        b.iter(|| {
            let got = rt.block_on(alice.api().download_blob(&stored)).unwrap();
            assert_eq!(got.len(), SIZE);
        })
    });
    let mut n = 0u64;
    g.bench_function("baseline_file_write_10MiB", |b| {
        b.iter(|| {
            use std::io::Write as _;
            n += 1;
            let path = dir.path().join(format!("baseline-{n}"));
            let mut f = std::fs::File::create_new(&path).unwrap();
            f.write_all(&blob).unwrap();
            f.sync_all().unwrap();
            drop(f);
            std::fs::remove_file(path).unwrap();
        })
    });
    let db = rusqlite::Connection::open(dir.path().join("baseline.db")).unwrap();
    db.pragma_update(None, "journal_mode", "WAL").unwrap();
    db.pragma_update(None, "synchronous", "FULL").unwrap();
    db.execute_batch("CREATE TABLE blobs (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        .unwrap();
    g.bench_function("baseline_sqlite_insert_10MiB", |b| {
        b.iter(|| {
            db.execute("INSERT INTO blobs (body) VALUES (?1)", [&blob])
                .unwrap()
        })
    });
    g.finish();
    rt.block_on(deployment.shutdown()).unwrap();
}

criterion_group!(benches, bench);
criterion_main!(benches);
