//! Adding a member, the whole path a user runs, with the key directory and
//! without it, in the same run (issue 12: "≤ 1.2× today's cost").
//!
//! Loopback deployments that differ only in the key directory (the
//! log with two witnesses, the delivery service on durable SQLite, no
//! custodians): in one the manifest names the provider's directory and
//! every device checks keys against it; in the other it does not, which is
//! the cost before issue 12. With the directory, cold (every check looks
//! the key up: `Device::set_verified_key_ttl(0)`) and warm (the default: a
//! key proven in the last minute is reused, and every iteration here adds
//! the same people).
//!
//! Per iteration, untimed: alice creates a conversation with `others`
//! members (0 or 6, who never read their mailboxes). Timed:
//! - **adder**: `alice.add_members(conv, ["bob"])`: claims bob's
//!   KeyPackage, validates it, (with the directory: looks bob up and
//!   verifies the lookup proof against the logged root), builds the commit
//!   and Welcome, submits them (the service verifies the commit and stores
//!   it durably) and merges;
//! - **joiner**: `bob.sync()`: fetches the Welcome, stages it, (with the
//!   directory: checks every other roster member's key, one lookup each),
//!   joins and acknowledges.
//!
//! A fourth set-up, in the paired run only: **cold after a publish**, as
//! cold, but before each round (untimed) a new account registers, so the
//! directory publishes an epoch: every lookup of the round is the first of
//! its account at that epoch (the service keeps no proof of it yet, and the
//! device follows the log to the new root). This is what adding someone
//! costs while accounts keep registering.
//!
//! After criterion's figures, a paired run: the three set-ups in turn,
//! round after round, medians and ratios printed (on a shared machine the
//! load drifts between criterion's benchmarks; the paired ratios do not
//! depend on it).
//!
//! Wall time: the path includes the service's threads, SQLite's fsyncs and
//! the HTTP rounds on loopback.
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
use custos_client::{Device, Outcome};
use custos_deploy::{CustodianMode, Deployment, DeploymentSpec, ServerSpec};
use tokio::runtime::Runtime;

/// The `custos` binary's allocator (its `main.rs`): devices and the
/// service run with it, with the directory and without.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Setup {
    _dir: tempfile::TempDir,
    deployment: Deployment,
    /// Publish an epoch (register an account) before each timed round.
    publish_first: bool,
    registered: usize,
    alice: Device,
    bob: Device,
    others: Vec<String>,
}

/// Which cost is measured.
#[derive(Clone, Copy)]
enum Mode {
    /// No key directory in the manifest: the cost before issue 12.
    Without,
    /// Every check looks the key up and verifies a proof (no key proven
    /// before is reused).
    Cold,
    /// The device's default: a key proven in the last minute is not looked
    /// up again (here every iteration adds the same people).
    Warm,
    /// Cold, and an epoch published before each round.
    ColdAfterPublish,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Self::Without => "no_key_directory",
            Self::Cold => "key_directory_cold",
            Self::Warm => "key_directory_warm",
            Self::ColdAfterPublish => "key_directory_cold_after_publish",
        }
    }
}

async fn setup(mode: Mode, others: usize) -> Setup {
    let key_directory = !matches!(mode, Mode::Without);
    let dir = tempfile::tempdir().unwrap();
    let spec = DeploymentSpec::new("bench", custos_clock::system())
        .custodians(0, 0, CustodianMode::KeysOnly)
        .with_server(ServerSpec::unlimited());
    // A short interval, so that registration (which waits until its key is
    // published) is quick; no key changes during the run, so no epoch is
    // published then and the interval does not enter the figures.
    let spec = if key_directory {
        spec.with_key_directory(Duration::from_millis(100))
    } else {
        spec
    };
    let deployment = Deployment::start(dir.path(), spec).await.unwrap();
    let mut alice = deployment.register("alice").await.unwrap();
    let mut bob = deployment.register("bob").await.unwrap();
    if matches!(mode, Mode::Cold | Mode::ColdAfterPublish) {
        alice.set_verified_key_ttl(Duration::ZERO);
        bob.set_verified_key_ttl(Duration::ZERO);
    }
    let mut names = Vec::new();
    for i in 0..others {
        let name = format!("member{i}");
        deployment.register(&name).await.unwrap();
        names.push(name);
    }
    let mut s = Setup {
        _dir: dir,
        deployment,
        publish_first: matches!(mode, Mode::ColdAfterPublish),
        registered: 0,
        alice,
        bob,
        others: names,
    };
    // One cycle so that every cache and connection is warm.
    s.cycle().await;
    s
}

impl Setup {
    /// One add of bob to a fresh conversation; returns the adder's and the
    /// joiner's time.
    async fn cycle(&mut self) -> (Duration, Duration) {
        if self.publish_first {
            // Returns once the new account's key is published.
            self.registered += 1;
            let name = format!("newcomer{}", self.registered);
            self.deployment.register(&name).await.unwrap();
        }
        let conv = self.alice.create_conversation(&self.others).await.unwrap();
        let bob = ["bob".to_owned()];
        let start = Instant::now();
        self.alice.add_members(&conv, &bob).await.unwrap();
        let adder = start.elapsed();
        let start = Instant::now();
        let outcomes = self.bob.sync().await.unwrap();
        let joiner = start.elapsed();
        assert_eq!(outcomes, vec![Outcome::Joined]);
        (adder, joiner)
    }
}

fn path(c: &mut Criterion, rt: &Runtime, mode: Mode, s: &mut Setup) {
    let label = mode.label();
    let mut g = c.benchmark_group(format!("add_member_to_{}", s.others.len() + 2));
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    g.bench_function(format!("{label}/adder"), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| rt.block_on(s.cycle()).0)
                .sum::<Duration>()
        })
    });
    g.bench_function(format!("{label}/joiner"), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| rt.block_on(s.cycle()).1)
                .sum::<Duration>()
        })
    });
    g.finish();
}

/// Rounds of the paired comparison.
const PAIRED_ROUNDS: usize = 40;

/// The three modes in turn, round after round (the order rotating), so
/// that the machine's load drifts over all of them alike; prints the
/// medians and their ratios to the run without the directory.
fn paired(rt: &Runtime, setups: &mut [(Mode, Setup)]) {
    let n = setups.len();
    let mut adder: Vec<Vec<Duration>> = vec![Vec::new(); n];
    let mut joiner: Vec<Vec<Duration>> = vec![Vec::new(); n];
    for round in 0..PAIRED_ROUNDS {
        for k in 0..n {
            let i = (round + k) % n;
            let (a, j) = rt.block_on(setups[i].1.cycle());
            adder[i].push(a);
            joiner[i].push(j);
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let size = setups[0].1.others.len() + 2;
    let base_a = median(&mut adder[0]);
    let base_j = median(&mut joiner[0]);
    for (i, (mode, _)) in setups.iter().enumerate() {
        let a = median(&mut adder[i]);
        let j = median(&mut joiner[i]);
        eprintln!(
            "paired, conversation of {size}, {}: adder {:.1} ms ({:.2}x), joiner {:.1} ms ({:.2}x)",
            mode.label(),
            a.as_secs_f64() * 1e3,
            a.as_secs_f64() / base_a.as_secs_f64(),
            j.as_secs_f64() * 1e3,
            j.as_secs_f64() / base_j.as_secs_f64(),
        );
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for others in [0, 6] {
        let mut setups: Vec<(Mode, Setup)> = [Mode::Without, Mode::Cold, Mode::Warm]
            .into_iter()
            .map(|m| (m, rt.block_on(setup(m, others))))
            .collect();
        for (mode, s) in &mut setups {
            path(c, &rt, *mode, s);
        }
        // Paired only: criterion would spend most of its time registering.
        setups.push((
            Mode::ColdAfterPublish,
            rt.block_on(setup(Mode::ColdAfterPublish, others)),
        ));
        paired(&rt, &mut setups);
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
