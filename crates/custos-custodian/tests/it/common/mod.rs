//! The test kit's deployment for the custodian tests: a log with two
//! witnesses (quorum 2), five custodian services (t = 3) on 127.0.0.1:0, a
//! simulated clock, and a log reader. The manifest names a fault-injecting
//! proxy ([`custos_deploy::proxy`]) as the log's endpoint; it forwards
//! everything unless a test switches a fault on.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: a failure is a test failure"
)]
#![allow(
    dead_code,
    reason = "the tests and the benchmark each use part of the helpers"
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use custos_clock::SimulatedClock;
use custos_custodian::logview::LogView;
use custos_custodian::{CustodianKey, ShareLookup, ShareStore, Timing};
use custos_deploy::{CustodianMode, Deployment, DeploymentSpec, Names};
use custos_escrow::SecretShare;
use custos_wire::manifest::{Manifest, Policy};

/// The participant names' domain.
pub const DOMAIN: &str = "custodian.test";
pub const ORIGIN: &str = "log.custodian.test";
pub const COURT: &str = "court.custodian.test";
pub const AUTHORITY: &str = "police.custodian.test";
pub const N: usize = 5;
pub const T: usize = 3;
/// 2026-02-01 00:00 UTC plus one hour, in milliseconds.
pub const START_MILLIS: u64 = 20_485 * 86_400_000 + 3_600_000;

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub clock: SimulatedClock,
    pub manifest: Manifest,
    pub addrs: Vec<std::net::SocketAddr>,
    /// The faults of the proxy in front of the log.
    pub log_faults: std::sync::Arc<custos_deploy::proxy::Faults>,
    pub deployment: Deployment,
}

pub fn fast_timing() -> Timing {
    Timing {
        phase_timeout: Duration::from_secs(3),
        peer_wait: Duration::from_secs(30),
        tick: Duration::from_millis(150),
        witness_timeout: Duration::from_secs(10),
    }
}

/// The name of custodian `i` (counted from 0).
pub fn custodian_name(i: usize) -> String {
    Names::new(DOMAIN).custodian(i)
}

impl Cluster {
    /// Starts the log, its witnesses and the custodians whose index is in
    /// `up` (the others have an endpoint in the manifest but do not run).
    pub async fn start(up: &[usize], days_ahead: u32, timing: Timing) -> Self {
        Self::start_with(up, days_ahead, timing, Policy::default()).await
    }

    /// As [`Cluster::start`], with the manifest's `policy`.
    pub async fn start_with(up: &[usize], days_ahead: u32, timing: Timing, policy: Policy) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = custos_clock::dangerous::simulated(START_MILLIS);
        let mode = CustodianMode::Services {
            days_ahead,
            timing,
            down: (0..N).filter(|i| !up.contains(i)).collect(),
            monthly_quota: custos_custodian::release::DEFAULT_MONTHLY_QUOTA,
        };
        let spec = DeploymentSpec::new(DOMAIN, clock.shared())
            .custodians(N, T, mode)
            .with_policy(policy)
            .without_server()
            .with_log_proxy();
        let deployment = Deployment::start(&dir.path().join("deploy"), spec)
            .await
            .unwrap();
        Self {
            clock,
            manifest: deployment.manifest().clone(),
            addrs: deployment.custodians().iter().map(|c| c.addr()).collect(),
            log_faults: deployment.log_proxy().unwrap().faults.clone(),
            deployment,
            dir,
        }
    }

    pub fn data(&self, i: usize) -> PathBuf {
        self.deployment.custodian_data(i)
    }

    pub fn key(&self, i: usize) -> CustodianKey {
        self.deployment.custodian_key(i).unwrap()
    }

    /// The manifest court's signing key.
    pub fn court_key(&self) -> ed25519_dalek::SigningKey {
        self.deployment.keys().court.clone()
    }

    /// The manifest authority's signing key.
    pub fn authority_key(&self) -> ed25519_dalek::SigningKey {
        self.deployment.keys().authority.clone()
    }

    /// Stops custodian `i` (its data stays).
    pub async fn stop(&mut self, i: usize) {
        self.deployment.stop_custodian(i).await.unwrap();
    }

    /// (Re)starts custodian `i` on its manifest address.
    pub async fn restart(&mut self, i: usize) {
        self.deployment.start_custodian(i).await.unwrap();
    }

    pub fn view(&self) -> LogView {
        LogView::new(&self.manifest).unwrap()
    }

    /// Waits until `cond` holds on a fresh view of the log.
    pub async fn wait_log(
        &self,
        what: &str,
        secs: u64,
        cond: impl Fn(&LogView) -> bool,
    ) -> LogView {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut view = self.view();
        loop {
            if view.refresh().await.is_ok() && cond(&view) {
                return view;
            }
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The share of `day` that custodian `i` holds (read from its store
    /// with its key file, as the release handler does).
    pub fn share(&self, i: usize, day: u32) -> ShareLookup {
        let store = ShareStore::inspect(&self.data(i), &self.key(i)).unwrap();
        store.share(day).unwrap()
    }

    pub fn live_share(&self, i: usize, day: u32) -> SecretShare {
        match self.share(i, day) {
            ShareLookup::Live(s) => s,
            other => panic!("custodian {i} day {day}: expected a live share, got {other:?}"),
        }
    }

    pub fn public_key(&self, i: usize) -> [u8; 32] {
        self.key(i).public_key()
    }
}

/// Every byte of every file under `dir`, concatenated.
pub fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(all_bytes(&p));
        } else {
            out.extend(std::fs::read(&p).unwrap());
        }
    }
    out
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
