//! The PostgreSQL mailbox store with two servers on one database (two
//! `PgStore`s, as two `custos server` processes would hold): items durably
//! committed per second, in batches as a writer would flush them, and the
//! wake-up latency across servers (store on A returned → B's listener woke).
//!
//! Store level only: no HTTP, no WebSockets, no MLS. It bounds what the
//! PostgreSQL backend can do on this machine; the service's end-to-end
//! figure comes from the load bench once the writer runs on PostgreSQL.
//!
//! `cargo bench -p custos-server --bench pg_store` (needs PostgreSQL's
//! binaries; says SKIPPED otherwise). `PG_BENCH_SECS` sets the phase length.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "benchmark driver, not service code"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use custos_deploy::postgres::TestPostgres;
use custos_server::store::AccountStore;
use custos_server::store::Registered;
use custos_server::store::pg_mailbox::{PgNewItem, Wake};
use custos_server::store::postgres::PgStore;
use custos_wire::ConversationId;

const DEVICES: usize = 200;
const BODY: usize = 256;

fn batch(writer: usize, n: u64, size: usize, devs: &[i64]) -> Vec<PgNewItem> {
    (0..size)
        .map(|i| {
            let k = n.wrapping_mul(1000).wrapping_add(i as u64);
            let mut body = vec![0u8; BODY];
            body[..8].copy_from_slice(&k.to_be_bytes());
            body[8] = writer as u8;
            let a = (k as usize).wrapping_mul(7) % devs.len();
            let b = (a + 1) % devs.len();
            PgNewItem {
                kind: 1,
                conversation: ConversationId([1; 16]),
                sender: "bench".into(),
                server_time: 1,
                expires_at: i64::MAX,
                hash: Some(
                    sha2::Digest::finalize({
                        let mut h = <sha2::Sha256 as sha2::Digest>::new();
                        sha2::Digest::update(&mut h, &body);
                        h
                    })
                    .into(),
                ),
                tag: Vec::new(),
                body,
                recipients: vec![devs[a], devs[b]],
            }
        })
        .collect()
}

async fn throughput(stores: &[Arc<PgStore>], devs: &[i64], writers: usize, size: usize, secs: u64) {
    let done = Arc::new(AtomicU64::new(0));
    let commits = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let s = stores[w % stores.len()].clone();
        let devs = devs.to_vec();
        let (done, commits) = (done.clone(), commits.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = (w as u64) << 32 | u64::from(size as u32) << 20;
            while Instant::now() < stop {
                let items = batch(w, n, size, &devs);
                n += 1;
                s.store_items(&items).await.unwrap();
                done.fetch_add(size as u64, Ordering::Relaxed);
                commits.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let took = start.elapsed().as_secs_f64();
    println!(
        "servers {} writers {writers:>2} batch {size:>4}: {:>8.0} items/s durably committed, {:>6.0} commits/s",
        stores.len(),
        done.load(Ordering::Relaxed) as f64 / took,
        commits.load(Ordering::Relaxed) as f64 / took,
    );
}

async fn wake_latency(a: &PgStore, b: &PgStore, devs: &[i64]) {
    let mut wakeups = b.wakeups().await.unwrap();
    let mut lat = Vec::new();
    for n in 0..300u64 {
        let items = batch(99, (1 << 40) + n, 1, devs);
        a.store_items(&items).await.unwrap();
        let returned = Instant::now();
        loop {
            match wakeups.next().await.unwrap() {
                Wake::Devices(d) if d.contains(&items[0].recipients[0]) => break,
                Wake::All => break,
                Wake::Devices(_) => {}
            }
        }
        lat.push(returned.elapsed());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    lat.sort_unstable();
    println!(
        "wake-up across servers after the commit returned: p50 {:?}, p99 {:?}",
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100]
    );
}

fn main() {
    let secs: u64 = std::env::var("PG_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().unwrap();
    let Some(pg) = TestPostgres::start(&dir.path().join("pg")).unwrap() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = pg.url();
        let a = Arc::new(PgStore::connect(&url, 16).await.unwrap());
        let b = Arc::new(PgStore::connect(&url, 16).await.unwrap());
        let mut devs = Vec::new();
        for i in 0..DEVICES {
            let Registered::Created { device_id, .. } = a
                .register(&format!("d{i}"), &[7; 32], 1, false)
                .await
                .unwrap()
            else {
                panic!("new");
            };
            devs.push(device_id);
        }
        wake_latency(&a, &b, &devs).await;
        for (servers, writers, size) in [(1, 4, 256), (2, 4, 256), (2, 8, 256), (2, 8, 64)] {
            let stores: Vec<Arc<PgStore>> = [a.clone(), b.clone()][..servers].to_vec();
            throughput(&stores, &devs, writers, size, secs).await;
        }
    });
    drop(pg);
}
