//! Receiving one message costs the same whatever the number of
//! conversations a device is in.
//!
//! Two devices of a loopback deployment (log, two witnesses, the delivery
//! service; no custodians). Bob is in 1, then in 1,000 conversations with
//! alice. Per iteration alice sends one message in one of them (untimed),
//! then bob's whole `receive` is timed: following the log, fetching,
//! opening and checking the envelope, storing it, acknowledging it, settling
//! pending removals and topping up KeyPackages. Wall time.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "benchmark harness"
)]

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use custos_client::Device;
use custos_deploy::{CustodianMode, Deployment, DeploymentSpec};
use custos_wire::ConversationId;
use tokio::runtime::Runtime;

struct Pair {
    _dir: tempfile::TempDir,
    _deployment: Deployment,
    alice: Device,
    bob: Device,
    conv: ConversationId,
}

async fn pair(conversations: usize) -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let spec = DeploymentSpec::new("bench", custos_clock::system()).custodians(
        0,
        0,
        CustodianMode::KeysOnly,
    );
    let deployment = Deployment::start(dir.path(), spec).await.unwrap();
    let mut alice = deployment.register("alice").await.unwrap();
    let mut bob = deployment.register("bob").await.unwrap();
    let mut conv = None;
    for i in 0..conversations {
        let c = alice.create_conversation(&["bob".into()]).await.unwrap();
        conv.get_or_insert(c);
        if i % 50 == 49 {
            bob.receive(None).await.unwrap();
        }
    }
    bob.receive(None).await.unwrap();
    let mut pair = Pair {
        _dir: dir,
        _deployment: deployment,
        alice,
        bob,
        conv: conv.unwrap(),
    };
    pair.once().await;
    pair
}

impl Pair {
    /// One message from alice; returns bob's receive time.
    async fn once(&mut self) -> Duration {
        self.alice.send_text(&self.conv, "hello").await.unwrap();
        let start = Instant::now();
        let got = self.bob.receive(None).await.unwrap();
        let took = start.elapsed();
        assert_eq!(got.len(), 1);
        took
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("receive_one_message");
    g.sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(15));
    for n in [1usize, 1000] {
        let mut p = rt.block_on(pair(n));
        g.bench_function(format!("{n}_conversations"), |b| {
            b.iter_custom(|iters| run(&rt, &mut p, iters))
        });
    }
    g.finish();
}

fn run(rt: &Runtime, p: &mut Pair, iters: u64) -> Duration {
    (0..iters).map(|_| rt.block_on(p.once())).sum()
}

criterion_group!(benches, bench);
criterion_main!(benches);
