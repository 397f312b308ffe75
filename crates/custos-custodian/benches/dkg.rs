//! One day's DKG among five custodians over HTTP on loopback, against the
//! same DKG run in memory (threads and queues, no HTTP, no HPKE, no log) in
//! the same run.
//!
//! The HTTP figure is end to end: the simulated clock moves to a new day,
//! every custodian's scheduler notices, the five run the DKG through their
//! HTTP endpoints (sealed, signed envelopes), store their shares durably and
//! publish their `EscrowDayKey`; the time ends when all five statements are
//! in a witnessed log checkpoint.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "benchmark harness"
)]

use std::collections::HashMap;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use custos_custodian::Timing;
use custos_custodian::logview::LogView;
use custos_deploy::{CustodianMode, Deployment, DeploymentSpec};
use custos_escrow::dkg::{self, DkgConfig, Phase, Transport};
use custos_wire::manifest::Policy;
use rand_core::{OsRng, RngCore};

type Queues = Arc<Mutex<HashMap<(u32, u8), Vec<(u32, Vec<u8>)>>>>;

struct MemTransport {
    me: u32,
    queues: Queues,
    barrier: Arc<Barrier>,
}

fn slot(p: Phase) -> u8 {
    match p {
        Phase::Deal => 1,
        Phase::Ack => 2,
        Phase::Log => 3,
    }
}

impl Transport for MemTransport {
    type Error = String;
    fn send(&mut self, to: u32, bytes: Vec<u8>) -> Result<(), String> {
        let phase = if bytes[1] == 1 { 1 } else { 2 };
        self.queues
            .lock()
            .unwrap()
            .entry((to, phase))
            .or_default()
            .push((self.me, bytes));
        Ok(())
    }
    fn broadcast(&mut self, bytes: Vec<u8>) -> Result<(), String> {
        let mut q = self.queues.lock().unwrap();
        for to in 1..=N as u32 {
            q.entry((to, 3)).or_default().push((self.me, bytes.clone()));
        }
        Ok(())
    }
    fn collect(&mut self, phase: Phase) -> Result<Vec<(u32, Vec<u8>)>, String> {
        self.barrier.wait();
        let got = self
            .queues
            .lock()
            .unwrap()
            .remove(&(self.me, slot(phase)))
            .unwrap_or_default();
        self.barrier.wait();
        Ok(got)
    }
}

fn in_memory_dkg(day: u32) {
    let secrets: Vec<[u8; 32]> = (0..N)
        .map(|_| {
            let mut k = [0u8; 32];
            OsRng.fill_bytes(&mut k);
            k
        })
        .collect();
    let publics: Vec<[u8; 32]> = secrets
        .iter()
        .map(|s| dkg::public_key_of(s).unwrap())
        .collect();
    let config = DkgConfig::new(day, T as u16, &publics).unwrap();
    let queues: Queues = Arc::default();
    let barrier = Arc::new(Barrier::new(N));
    let threads: Vec<_> = secrets
        .into_iter()
        .map(|s| {
            let config = config.clone();
            let mut t = MemTransport {
                me: config.index_of(&dkg::public_key_of(&s).unwrap()).unwrap(),
                queues: queues.clone(),
                barrier: barrier.clone(),
            };
            std::thread::spawn(move || dkg::run(&config, &s, &mut t, &mut OsRng).unwrap())
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Custodians of the deployment, and how many must agree on a day key.
const N: usize = 5;
const T: usize = 3;
/// 2026-02-01 00:00 UTC plus one hour, in milliseconds.
const START_MILLIS: u64 = 20_485 * 86_400_000 + 3_600_000;

/// Returns once all `N` custodians' `EscrowDayKey` of `day` are in a
/// witnessed checkpoint of the log.
async fn all_published(manifest: &custos_wire::manifest::Manifest, day: u32) {
    let mut view = LogView::new(manifest).unwrap();
    loop {
        view.refresh().await.unwrap();
        if view.day_key(day).is_some_and(|(_, who)| who.len() == N) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let timing = Timing {
        phase_timeout: Duration::from_secs(5),
        peer_wait: Duration::from_secs(30),
        tick: Duration::from_millis(20),
        witness_timeout: Duration::from_secs(10),
    };
    // A long grace keeps erasures out of the measured days.
    let policy = Policy {
        erasure_grace_days: 3650,
        ..Policy::default()
    };
    // The test kit's deployment as the custodian tests run it: the log
    // behind its (idle) fault proxy, two witnesses, five custodian services.
    let clock = custos_clock::dangerous::simulated(START_MILLIS);
    let spec = DeploymentSpec::new("custodian.test", clock.shared())
        .custodians(
            N,
            T,
            CustodianMode::Services {
                days_ahead: 0,
                timing,
                down: Vec::new(),
                monthly_quota: custos_custodian::release::DEFAULT_MONTHLY_QUOTA,
            },
        )
        .with_policy(policy)
        .without_server()
        .with_log_proxy();
    let dir = tempfile::tempdir().unwrap();
    let deployment = rt.block_on(Deployment::start(dir.path(), spec)).unwrap();
    let manifest = deployment.manifest().clone();
    let today = clock.shared().today();
    rt.block_on(all_published(&manifest, today));
    let mut g = c.benchmark_group("dkg_5_custodians");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.bench_function("in_memory_baseline", |b| {
        b.iter(|| in_memory_dkg(today));
    });
    g.bench_function("http_loopback_published", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                clock.advance_days(1);
                let day = clock.shared().today();
                let started = Instant::now();
                rt.block_on(all_published(&manifest, day));
                total += started.elapsed();
            }
            total
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
