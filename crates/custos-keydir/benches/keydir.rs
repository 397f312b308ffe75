//! Criterion: the key directory's figures (issue 12).
//!
//! - `lookup_verify`: a device verifying one lookup proof (CPU time),
//!   against a same-run baseline of one Ed25519 signature verification.
//! - `publish`: one epoch of `KD_CHANGES` new keys on a SQLite directory
//!   that already holds `KD_ACCOUNTS` accounts (wall time: `akd` runs on
//!   the runtime's workers), against a same-run baseline of inserting the
//!   same number of rows into SQLite in one transaction. The directory is
//!   in its own file as the service keeps it
//!   (`custos_keydir::sqlite::open_file`), and as the service's publisher
//!   does, the WAL is copied in after each epoch, untimed;
//! - `checkpoint_after_publish`: that copy, timed alone (after an untimed
//!   epoch each).
//! - `service_lookup_many_8_first_time`: the service's batch lookup of 8
//!   accounts none of whose proofs it has made before (a directory handle
//!   with a fresh VRF memo and an empty node cache, as after a restart),
//!   wall time; compared with a run of the code before a change.
//! - Printed, not timed: the lookup proof's size and the tree depth at
//!   `KD_ACCOUNTS` accounts, and the storage per account.
//!
//! `KD_ACCOUNTS` (default 20,000) and `KD_CHANGES` (default 1,000) size
//! the directory; the 1,000,000 / 10,000 are set the same way.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "benchmark driver, not service code"
)]

use std::time::{Duration, Instant};

use criterion::{BatchSize, criterion_group, criterion_main};
use custos_keydir::{KeyDirectory, SqliteDirectory, VrfSecret};
use custos_verify::keydir::verify_lookup;
use ed25519_dalek::{Signer, SigningKey};
use sqlx::SqlitePool;

/// The service binary's allocator (`custos`'s `main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn pool(path: &std::path::Path) -> SqlitePool {
    let pool = custos_keydir::sqlite::open_file(path).await.unwrap();
    sqlx::query(
        "CREATE TABLE bench_rows (key BLOB PRIMARY KEY, record BLOB NOT NULL) WITHOUT ROWID",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool
}

fn changes(from: usize, n: usize) -> Vec<(String, [u8; 32])> {
    (from..from + n)
        .map(|i| {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&(i as u64).to_be_bytes());
            (format!("user{i}"), k)
        })
        .collect()
}

/// The benches' runtime: two workers, as the machine has two cores.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The next 8 account names from `first` on (wrapping at `accounts`),
/// none asked for before in this run until it wraps.
fn next_eight(first: &mut usize, accounts: usize) -> Vec<String> {
    let names = (*first..*first + 8)
        .map(|i| format!("user{}", i % accounts))
        .collect();
    *first += 8;
    names
}

fn bench(c: &mut criterion::Criterion) {
    let accounts = env("KD_ACCOUNTS", 20_000);
    let per_epoch = env("KD_CHANGES", 1_000);
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kd.db");
    let secret = VrfSecret::generate();
    let (kd, pool) = rt.block_on(async {
        let pool = pool(&path).await;
        let kd = KeyDirectory::open(SqliteDirectory::new(pool.clone()), secret.clone())
            .await
            .unwrap();
        let started = Instant::now();
        let mut done = 0;
        while done < accounts {
            let n = 10_000.min(accounts - done);
            kd.publish(&changes(done, n)).await.unwrap();
            SqliteDirectory::new(pool.clone())
                .checkpoint()
                .await
                .unwrap();
            done += n;
        }
        eprintln!(
            "built a directory of {accounts} accounts in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        (kd, pool)
    });
    let vrf = kd.vrf_public_key();
    let proven = rt.block_on(kd.lookup("user1")).unwrap();
    let parsed = custos_verify::keydir::decode_lookup_proof(&proven.proof).unwrap();
    let depth = parsed.existence_proof.sibling_proofs.len();
    let bytes = rt
        .block_on(SqliteDirectory::new(pool.clone()).stored_bytes())
        .unwrap();
    eprintln!(
        "lookup proof at {accounts} accounts: {} bytes, existence path depth {depth}; \
         storage {:.0} bytes/account (row payload; file {} bytes)",
        proven.proof.len(),
        bytes as f64 / accounts as f64,
        std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
    );

    let mut g = c.benchmark_group("keydir_lookup_verify");
    g.bench_function("verify_lookup_proof", |b| {
        b.iter(|| verify_lookup(&vrf, &proven.root, "user1", &proven.proof).unwrap())
    });
    let key = SigningKey::from_bytes(&[3; 32]);
    let sig = key.sign(b"baseline");
    let vk = key.verifying_key();
    g.bench_function("baseline_ed25519_verify", |b| {
        b.iter(|| custos_wire::signature::verify_strict(&vk, b"baseline", &sig).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("keydir_service_lookup");
    let seed = *secret.expose();
    let mut first = 0usize;
    g.bench_function("service_lookup_many_8_first_time", |b| {
        b.iter_batched(
            || {
                let names = next_eight(&mut first, accounts);
                let fresh = rt
                    .block_on(KeyDirectory::open(
                        SqliteDirectory::new(pool.clone()),
                        VrfSecret::from_bytes(seed),
                    ))
                    .unwrap();
                (fresh, names)
            },
            |(fresh, names)| rt.block_on(fresh.lookup_many(&names)).unwrap(),
            BatchSize::PerIteration,
        )
    });
    // A server of several on one database (no proofs kept, no node cache
    // beyond one request): a batch lookup of 8 accounts not asked before.
    let shared = rt
        .block_on(KeyDirectory::open_shared(
            SqliteDirectory::new(pool.clone()),
            VrfSecret::from_bytes(seed),
        ))
        .unwrap();
    g.bench_function("shared_lookup_many_8", |b| {
        b.iter_batched(
            || next_eight(&mut first, accounts),
            |names| rt.block_on(shared.lookup_many(&names)).unwrap(),
            BatchSize::PerIteration,
        )
    });
    g.finish();

    let file = SqliteDirectory::new(pool.clone());
    let mut g = c.benchmark_group("keydir_publish");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    let mut next = accounts;
    g.bench_function(format!("publish_{per_epoch}_on_{accounts}"), |b| {
        b.iter_batched(
            || {
                // As the service's publisher: the last epoch's WAL copied
                // in before the next epoch.
                rt.block_on(file.checkpoint()).unwrap();
                let c = changes(next, per_epoch);
                next += per_epoch;
                c
            },
            |c| rt.block_on(kd.publish(&c)).unwrap(),
            BatchSize::PerIteration,
        )
    });
    g.bench_function(format!("checkpoint_after_publish_{per_epoch}"), |b| {
        b.iter_custom(|iters| {
            let mut copying = Duration::ZERO;
            for _ in 0..iters {
                let c = changes(next, per_epoch);
                next += per_epoch;
                rt.block_on(kd.publish(&c)).unwrap();
                let started = Instant::now();
                rt.block_on(file.checkpoint()).unwrap();
                copying += started.elapsed();
            }
            copying
        })
    });
    let mut row = 0u64;
    g.bench_function(format!("baseline_sqlite_insert_{per_epoch}"), |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut tx = pool.begin().await.unwrap();
                for _ in 0..per_epoch {
                    row += 1;
                    sqlx::query("INSERT INTO bench_rows (key, record) VALUES (?, ?)")
                        .bind(format!("baseline{row}").into_bytes())
                        .bind(vec![0u8; 200])
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                }
                tx.commit().await.unwrap();
            })
        })
    });
    g.finish();
}

/// On PostgreSQL (`KD_PG=1`; a cluster the test kit starts, skipped without
/// one): a batch lookup of 8 accounts not asked before on a directory
/// several servers share, against `akd` on the same storage without a node
/// cache (how a shared directory read before session 14), in the same run.
fn shared_on_postgres(c: &mut criterion::Criterion) {
    use akd::append_only_zks::AzksParallelismConfig;
    use custos_keydir::PgDirectory;
    use custos_verify::keydir::{DirectoryConfig, account_label};
    if std::env::var_os("KD_PG").is_none() {
        return;
    }
    let accounts = env("KD_ACCOUNTS", 20_000);
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let Some(pg) = custos_deploy::postgres::TestPostgres::start(&dir.path().join("pg")).unwrap()
    else {
        eprintln!("no PostgreSQL: skipped");
        return;
    };
    let seed = [9; 32];
    let (shared, uncached) = rt.block_on(async {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(8)
            .connect(&pg.url())
            .await
            .unwrap();
        PgDirectory::create_schema(&pool).await.unwrap();
        let shared =
            KeyDirectory::open_shared(PgDirectory::new(pool.clone()), VrfSecret::from_bytes(seed))
                .await
                .unwrap();
        let mut done = 0;
        while done < accounts {
            let n = 10_000.min(accounts - done);
            shared.publish(&changes(done, n)).await.unwrap();
            done += n;
        }
        let uncached = akd::Directory::<DirectoryConfig, _, _>::new(
            akd::storage::StorageManager::new_no_cache(PgDirectory::new(pool)),
            VrfSecret::from_bytes(seed),
            AzksParallelismConfig::default(),
        )
        .await
        .unwrap();
        (shared, uncached)
    });
    let mut first = 0usize;
    let mut next_names = move || next_eight(&mut first, accounts);
    let mut g = c.benchmark_group("keydir_postgres");
    g.sample_size(20);
    g.bench_function("shared_lookup_many_8", |b| {
        b.iter_batched(
            &mut next_names,
            |names| rt.block_on(shared.lookup_many(&names)).unwrap(),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("baseline_akd_without_node_cache_8", |b| {
        b.iter_batched(
            &mut next_names,
            |names| {
                let labels: Vec<_> = names.iter().map(|n| account_label(n)).collect();
                rt.block_on(uncached.batch_lookup(&labels)).unwrap()
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = criterion::Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = bench, shared_on_postgres
}
criterion_main!(benches);
