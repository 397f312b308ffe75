//! The whole path a user runs per message, with escrow on and off, and
//! escrow's own work in the same run.
//!
//! Two devices (alice, bob) in one conversation of a loopback deployment:
//! the log with two witnesses, the delivery service (durable SQLite, its
//! franking key in the log), and with escrow five custodians (t = 3) whose
//! day key is in the log. Per iteration, untimed: alice commits an update
//! (a new epoch, so her next message starts a new chain) and bob processes
//! it. Timed:
//! - **sender**: alice sends 100 text messages of 1 KiB: the first announces
//!   a new chain (MLS-encrypted root; with escrow, its capsule), each is
//!   sealed, signed, submitted over HTTP and acknowledged once stored;
//! - **recipient**: bob's `receive` fetches the 101 items, opens the
//!   announcement (with escrow, recomputes the capsule), checks every
//!   envelope's signature, franking commitment and delivery tag, stores the
//!   messages and acknowledges them.
//!
//! Escrow's own work is one capsule per chain for each side, measured on the
//! same day key and conversation (warm per-conversation-day context, as for
//! every chain after a conversation's first of the day). Its share per
//! message is `capsule / 100` over the per-message whole path. Wall time
//! throughout: the path includes the services' threads and I/O.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "benchmark harness"
)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use custos_client::Device;
use custos_client::daykeys::{DayKeyEscrow, DayKeys};
use custos_client::escrow::EscrowPolicy;
use custos_deploy::{CustodianMode, Deployment, DeploymentSpec};
use custos_escrow::DayKey;
use custos_wire::{ChainId, ConversationId};
use tokio::runtime::Runtime;

/// Messages per chain, as the goal states it.
const PER_CHAIN: usize = 100;

struct Pair {
    _dir: tempfile::TempDir,
    _deployment: Deployment,
    alice: Device,
    bob: Device,
    conv: ConversationId,
    day_key: Option<DayKey>,
    body: String,
}

async fn pair(escrow: bool) -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let clock = custos_clock::system();
    let spec = DeploymentSpec::new("bench", clock.clone());
    let spec = if escrow {
        spec.custodians(5, 3, CustodianMode::KeysOnly)
    } else {
        spec.custodians(0, 0, CustodianMode::KeysOnly)
    };
    let deployment = Deployment::start(dir.path(), spec).await.unwrap();
    let day_key = if escrow {
        let today = clock.today();
        // Today and tomorrow, in case the run crosses midnight.
        let (key, _) = deployment
            .publish_dealt_day(today, &[0, 1, 2, 3, 4])
            .await
            .unwrap();
        deployment
            .publish_dealt_day(today + 1, &[0, 1, 2, 3, 4])
            .await
            .unwrap();
        Some(key)
    } else {
        None
    };
    let mut alice = deployment.register("alice").await.unwrap();
    let mut bob = deployment.register("bob").await.unwrap();
    let conv = alice.create_conversation(&["bob".into()]).await.unwrap();
    bob.receive(None).await.unwrap();
    let mut pair = Pair {
        _dir: dir,
        _deployment: deployment,
        alice,
        bob,
        conv,
        day_key,
        body: "x".repeat(1024),
    };
    // One full cycle so that every cache and connection is warm.
    pair.cycle().await;
    pair
}

impl Pair {
    /// One new chain of [`PER_CHAIN`] messages from alice to bob; returns
    /// the sender's and the recipient's time.
    async fn cycle(&mut self) -> (Duration, Duration) {
        self.alice.self_update(&self.conv).await.unwrap();
        assert!(self.bob.receive(None).await.unwrap().is_empty());

        let start = Instant::now();
        for _ in 0..PER_CHAIN {
            self.alice.send_text(&self.conv, &self.body).await.unwrap();
        }
        let sender = start.elapsed();

        let start = Instant::now();
        let got = self.bob.receive(None).await.unwrap();
        let recipient = start.elapsed();
        assert_eq!(got.len(), PER_CHAIN);
        let refused = self.bob.take_refusals();
        assert!(refused.is_empty(), "{refused:?}");
        (sender, recipient)
    }
}

fn whole_path(c: &mut Criterion, rt: &Runtime, escrow: bool) {
    let label = if escrow { "escrow" } else { "no_escrow" };
    let mut p = rt.block_on(pair(escrow));
    let mut g = c.benchmark_group("round_trip_100_per_chain_1KiB");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(30));
    g.bench_function(format!("{label}/sender_100_messages"), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| rt.block_on(p.cycle()).0)
                .sum::<Duration>()
        })
    });
    g.bench_function(format!("{label}/recipient_100_messages"), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| rt.block_on(p.cycle()).1)
                .sum::<Duration>()
        })
    });
    g.finish();

    if let Some(key) = p.day_key.take() {
        escrow_work(c, &p.alice, p.conv, key);
    }
}

/// One capsule sealed (sender) and recomputed (recipient), under the
/// deployment's day key, with the device's policy.
fn escrow_work(c: &mut Criterion, alice: &Device, conv: ConversationId, key: DayKey) {
    let manifest = alice.pinned_manifest().unwrap();
    let keys = Arc::new(DayKeys::for_manifest(manifest).unwrap());
    let day = key.day();
    keys.insert(key);
    let escrow = DayKeyEscrow::new(keys);
    let mut id = ChainId {
        epoch: 1,
        sender_leaf: 0,
        day,
        seq: 0,
    };
    let ck0 = [9u8; 32];
    let (kind, capsule) = escrow.seal(&conv, &id, &ck0).unwrap();
    let mut g = c.benchmark_group("round_trip_100_per_chain_1KiB");
    g.bench_function("escrow_work/sender_capsule_per_chain", |b| {
        b.iter(|| {
            id.epoch = id.epoch.wrapping_add(1);
            black_box(escrow.seal(&conv, black_box(&id), &ck0).unwrap())
        })
    });
    id.epoch = 1;
    g.bench_function("escrow_work/recipient_capsule_check_per_chain", |b| {
        b.iter(|| {
            escrow
                .verify(&conv, &id, black_box(&ck0), kind, black_box(&capsule))
                .unwrap()
        })
    });
    g.finish();
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    whole_path(c, &rt, false);
    whole_path(c, &rt, true);
}

criterion_group!(benches, bench);
criterion_main!(benches);
