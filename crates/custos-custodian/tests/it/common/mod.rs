//! A deployment on loopback for the custodian tests: a log with two
//! witnesses (quorum 2), five custodians (t = 3) on 127.0.0.1:0, a
//! simulated clock, and a log reader. The manifest names a fault-injecting
//! proxy ([`proxy`]) as the log's endpoint; it forwards everything unless a
//! test switches a fault on.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: a failure is a test failure"
)]
#![allow(dead_code, reason = "each test binary uses part of the helpers")]

pub mod proxy;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use custos_clock::SimulatedClock;
use custos_custodian::logview::LogView;
use custos_custodian::{
    CustodianConfig, CustodianHandle, CustodianKey, ShareLookup, ShareStore, Timing,
    spawn_custodian,
};
use custos_escrow::SecretShare;
use custos_log_server::LogConfig;
use custos_tlog::{ALG_COSIGNATURE_V1, ALG_ED25519, NamedKey};
use custos_wire::manifest::{Manifest, Participant, Policy, Role};
use custos_witness_server::WitnessConfig;
use tokio::net::TcpListener;

pub const ORIGIN: &str = "log.custodian.test";
pub const COURT: &str = "court.custodian.test";
pub const AUTHORITY: &str = "authority.custodian.test";
pub const N: usize = 5;
pub const T: usize = 3;
/// 2026-02-01 00:00 UTC plus one hour, in milliseconds.
pub const START_MILLIS: u64 = 20_485 * 86_400_000 + 3_600_000;

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub clock: SimulatedClock,
    pub manifest: Manifest,
    pub addrs: Vec<std::net::SocketAddr>,
    pub custodians: Vec<Option<CustodianHandle>>,
    pub timing: Timing,
    pub days_ahead: u32,
    /// The faults of the proxy in front of the log.
    pub log_faults: std::sync::Arc<proxy::Faults>,
    _log: custos_log_server::LogHandle,
}

pub fn fast_timing() -> Timing {
    Timing {
        phase_timeout: Duration::from_secs(3),
        peer_wait: Duration::from_secs(30),
        tick: Duration::from_millis(150),
        witness_timeout: Duration::from_secs(10),
    }
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
        let log_key = NamedKey::generate(ORIGIN, ALG_ED25519).unwrap();
        let participant =
            |name: &str, role: Role, key: [u8; 32], endpoint: Option<String>| Participant {
                name: name.into(),
                role,
                jurisdiction: format!("J-{name}"),
                endpoint,
                public_key: hex::encode(key),
            };
        let log_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = format!("http://{}", log_listener.local_addr().unwrap());
        let proxy_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let log_url = format!("http://{}", proxy_listener.local_addr().unwrap());
        let mut ps = vec![participant(
            ORIGIN,
            Role::Log,
            log_key.verifying_key().to_bytes(),
            Some(log_url),
        )];
        for i in 0..2 {
            let wkey =
                NamedKey::generate(&format!("witness-{i}.test"), ALG_COSIGNATURE_V1).unwrap();
            let (wname, wpublic) = (wkey.name().to_owned(), wkey.verifying_key().to_bytes());
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = custos_witness_server::spawn_witness(
                listener,
                WitnessConfig {
                    data: dir.path().join(format!("witness-{i}")),
                    key: wkey,
                    logs: vec![(ORIGIN.to_owned(), log_key.verifying_key())],
                    clock: clock.shared(),
                },
            )
            .await
            .unwrap();
            ps.push(participant(
                &wname,
                Role::Witness,
                wpublic,
                Some(format!("http://{addr}")),
            ));
        }
        ps.push(participant(
            COURT,
            Role::Court,
            court_key().verifying_key().to_bytes(),
            None,
        ));
        ps.push(participant(
            AUTHORITY,
            Role::Authority,
            authority_key().verifying_key().to_bytes(),
            None,
        ));
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        std::fs::create_dir_all(dir.path().join("keys")).unwrap();
        for i in 0..N {
            let key = CustodianKey::generate(&format!("custodian-{i}.test")).unwrap();
            key.save(&key_path(dir.path(), i)).unwrap();
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            ps.push(participant(
                key.name(),
                Role::Custodian,
                key.public_key(),
                Some(format!("http://{addr}")),
            ));
            listeners.push(Some(listener));
            addrs.push(addr);
        }
        let manifest = Manifest::new(2, T, policy, ps).unwrap();
        let log = custos_log_server::spawn_log(
            log_listener,
            LogConfig {
                data: dir.path().join("log"),
                signed_size: dir.path().join("log.signed-size"),
                key: log_key,
                manifest: manifest.clone(),
                clock: clock.shared(),
                max_batch: 256,
            },
        )
        .await
        .unwrap();
        let proxy = proxy::spawn_proxy_on(proxy_listener, &upstream).await;
        let mut cluster = Self {
            dir,
            clock,
            manifest,
            addrs,
            custodians: (0..N).map(|_| None).collect(),
            timing,
            days_ahead,
            log_faults: proxy.faults,
            _log: log,
        };
        for (i, listener) in listeners.into_iter().enumerate() {
            if up.contains(&i) {
                cluster.spawn(i, listener.unwrap()).await;
            }
            // The others' listeners are dropped: connections are refused.
        }
        cluster
    }

    pub fn data(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("custodian-{i}"))
    }

    pub fn key(&self, i: usize) -> CustodianKey {
        CustodianKey::load(&key_path(self.dir.path(), i)).unwrap()
    }

    async fn spawn(&mut self, i: usize, listener: TcpListener) {
        let handle = spawn_custodian(
            listener,
            CustodianConfig {
                data: self.data(i),
                key: self.key(i),
                manifest: self.manifest.clone(),
                clock: self.clock.shared(),
                days_ahead: self.days_ahead,
                timing: self.timing,
                monthly_quota: custos_custodian::release::DEFAULT_MONTHLY_QUOTA,
            },
        )
        .await
        .unwrap();
        self.custodians[i] = Some(handle);
    }

    /// Stops custodian `i` (its data stays).
    pub async fn stop(&mut self, i: usize) {
        if let Some(h) = self.custodians[i].take() {
            h.abort();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    /// (Re)starts custodian `i` on its manifest address.
    pub async fn restart(&mut self, i: usize) {
        self.stop(i).await;
        let listener = TcpListener::bind(self.addrs[i]).await.unwrap();
        self.spawn(i, listener).await;
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

/// The manifest court's signing key.
pub fn court_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[2; 32])
}

/// The manifest authority's signing key.
pub fn authority_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[3; 32])
}

fn key_path(dir: &Path, i: usize) -> PathBuf {
    dir.join("keys").join(format!("custodian-{i}.key"))
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
