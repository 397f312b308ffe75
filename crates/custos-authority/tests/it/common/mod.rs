//! A whole lawful-access deployment on loopback: a log, 2 witnesses
//! (quorum 2), 5 custodians (threshold 3) serving `POST /v1/release`, a
//! court and an authority, on a simulated clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers: a failure is a test failure"
)]
#![allow(dead_code, reason = "each test binary uses part of the helpers")]

use std::sync::Arc;
use std::time::Duration;

use custos_authority::court::{WarrantOrder, sign_warrant};
use custos_authority::keys::HpkeKeyPair;
use custos_clock::SimulatedClock;
use custos_custodian::release::{MemoryShares, Releaser, ReleaserConfig, http::router};
use custos_escrow::{DayKey, SecretShare};
use custos_log_server::LogConfig;
use custos_tlog::{ALG_COSIGNATURE_V1, ALG_ED25519, LogClient, NamedKey, TrustPolicy, Verifier};
use custos_wire::ConversationId;
use custos_wire::manifest::{Manifest, Participant, Policy, Role};
use custos_wire::statement::{EscrowDayKey, SignedStatement, Statement};
use custos_wire::warrant::Warrant;
use custos_witness_server::WitnessConfig;
use ed25519_dalek::SigningKey;
use tokio::net::TcpListener;

pub const ORIGIN: &str = "log.custos.test";
pub const COURT: &str = "court.test";
pub const AUTHORITY: &str = "police.test";
pub const N: usize = 5;
pub const T: usize = 3;
/// Day 20422 (2025-11-30), 12:00 UTC.
pub const START_MS: u64 = 20_422 * 86_400_000 + 12 * 3_600_000;
pub const TODAY: u32 = 20_422;

pub struct Net {
    pub dir: tempfile::TempDir,
    pub clock: SimulatedClock,
    pub manifest: Manifest,
    pub log: LogClient,
    pub log_url: String,
    pub court: SigningKey,
    pub authority: SigningKey,
    pub hpke: HpkeKeyPair,
    pub custodian_keys: Vec<SigningKey>,
    pub shares: Vec<Arc<MemoryShares>>,
    pub releasers: Vec<Arc<Releaser<Arc<MemoryShares>>>>,
    pub day_keys: std::collections::BTreeMap<u32, DayKey>,
    pub witness_urls: Vec<String>,
}

pub fn custodian_name(i: usize) -> String {
    format!("custodian-{}.test", i + 1)
}

fn participant(
    name: &str,
    role: Role,
    key: &ed25519_dalek::VerifyingKey,
    endpoint: Option<String>,
) -> Participant {
    Participant {
        name: name.into(),
        role,
        jurisdiction: "EU".into(),
        endpoint,
        public_key: hex::encode(key.to_bytes()),
    }
}

pub fn log_key() -> NamedKey {
    NamedKey::from_seed(ORIGIN, ALG_ED25519, &[1; 32]).unwrap()
}

pub fn witness_key(i: usize) -> NamedKey {
    NamedKey::from_seed(
        &format!("witness-{i}.test"),
        ALG_COSIGNATURE_V1,
        &[10 + i as u8; 32],
    )
    .unwrap()
}

impl Net {
    /// Starts everything; custodians hold shares of days `TODAY-3..=TODAY+2`,
    /// and every custodian has logged each day's key.
    pub async fn start(policy: Policy, quota: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = custos_clock::dangerous::simulated(START_MS);
        let court = SigningKey::from_bytes(&[2; 32]);
        let authority = SigningKey::from_bytes(&[3; 32]);
        let custodian_keys: Vec<SigningKey> = (0..N)
            .map(|i| SigningKey::from_bytes(&[20 + i as u8; 32]))
            .collect();

        let mut witness_urls = Vec::new();
        for i in 0..2 {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = custos_witness_server::spawn_witness(
                l,
                WitnessConfig {
                    data: dir.path().join(format!("witness-{i}")),
                    key: witness_key(i),
                    logs: vec![(ORIGIN.to_owned(), log_key().verifying_key())],
                    clock: custos_clock::system(),
                },
            )
            .await
            .unwrap();
            witness_urls.push(format!("http://{addr}"));
        }
        let mut listeners = Vec::new();
        for _ in 0..N {
            listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
        }
        let mut ps = vec![
            participant(ORIGIN, Role::Log, &log_key().verifying_key(), None),
            participant(COURT, Role::Court, &court.verifying_key(), None),
            participant(AUTHORITY, Role::Authority, &authority.verifying_key(), None),
            participant(
                "rogue-court.test",
                Role::Court,
                &SigningKey::from_bytes(&[4; 32]).verifying_key(),
                None,
            ),
        ];
        for (i, url) in witness_urls.iter().enumerate() {
            let k = witness_key(i);
            ps.push(participant(
                k.name(),
                Role::Witness,
                &k.verifying_key(),
                Some(url.clone()),
            ));
        }
        for (i, l) in listeners.iter().enumerate() {
            ps.push(participant(
                &custodian_name(i),
                Role::Custodian,
                &custodian_keys[i].verifying_key(),
                Some(format!("http://{}", l.local_addr().unwrap())),
            ));
        }
        let manifest = Manifest::new(2, T, policy, ps).unwrap();
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let handle = custos_log_server::spawn_log(
            l,
            LogConfig {
                data: dir.path().join("log"),
                signed_size: dir.path().join("log.signed-size"),
                key: log_key(),
                manifest: manifest.clone(),
                clock: custos_clock::system(),
                max_batch: 256,
            },
        )
        .await
        .unwrap();
        let log_url = format!("http://{}", handle.addr);
        std::mem::forget(handle);
        let log = LogClient::new(&log_url).unwrap();

        // Day keys, dealt for the test and logged by every custodian.
        let mut rng = rand_core::OsRng;
        let shares: Vec<Arc<MemoryShares>> =
            (0..N).map(|_| Arc::new(MemoryShares::new())).collect();
        let mut day_keys = std::collections::BTreeMap::new();
        let mut statements = Vec::new();
        for day in TODAY - 3..=TODAY + 2 {
            let (dk, ss): (DayKey, Vec<SecretShare>) =
                custos_escrow::dangerous::trusted_deal(day, N, T, &mut rng).unwrap();
            for (i, s) in ss.iter().enumerate() {
                shares[i].insert(day, s);
                let st = Statement::EscrowDayKey(EscrowDayKey {
                    day,
                    threshold: T as u8,
                    custodians: N as u8,
                    day_key: dk.to_bytes(),
                });
                statements.push(SignedStatement::sign(&st, &custodian_keys[i]).unwrap());
            }
            day_keys.insert(day, dk);
        }
        log.submit_batch(&statements).await.unwrap();

        let mut releasers = Vec::new();
        for (i, l) in listeners.into_iter().enumerate() {
            let r = Arc::new(
                Releaser::open(
                    ReleaserConfig {
                        manifest: manifest.clone(),
                        name: custodian_name(i),
                        signing_key: custodian_keys[i].clone(),
                        log: log.clone(),
                        data: dir.path().join(format!("custodian-{i}")),
                        clock: clock.shared(),
                        monthly_quota: quota,
                        witness_timeout: Duration::from_secs(20),
                    },
                    Arc::clone(&shares[i]),
                )
                .unwrap(),
            );
            let app = router(Arc::clone(&r));
            tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
            releasers.push(r);
        }
        Self {
            dir,
            clock,
            manifest,
            log,
            log_url,
            court,
            authority,
            hpke: HpkeKeyPair::from_seed([9; 32]),
            custodian_keys,
            shares,
            releasers,
            day_keys,
            witness_urls,
        }
    }

    /// The configuration of custodian `i` with its state under `data`.
    pub fn releaser_config(
        &self,
        i: usize,
        data: std::path::PathBuf,
        log: LogClient,
    ) -> ReleaserConfig {
        ReleaserConfig {
            manifest: self.manifest.clone(),
            name: custodian_name(i),
            signing_key: self.custodian_keys[i].clone(),
            log,
            data,
            clock: self.clock.shared(),
            monthly_quota: 10,
            witness_timeout: Duration::from_secs(20),
        }
    }

    pub fn verifier(&self, name: &str) -> Verifier {
        Verifier::open(
            TrustPolicy::from_manifest(&self.manifest).unwrap(),
            &self.dir.path().join(format!("verifier-{name}")),
        )
        .unwrap()
    }

    pub fn now(&self) -> u64 {
        self.clock.now_millis() / 1000
    }

    /// A warrant for `targets` on days `first..=last`, signed by the court.
    pub fn warrant(&self, targets: &[u8], first: u32, last: u32) -> Warrant {
        let now = self.now();
        sign_warrant(
            WarrantOrder {
                court: COURT.into(),
                authority: AUTHORITY.into(),
                authority_hpke_key: self.hpke.public_key(),
                legal_basis: "test".into(),
                targets: targets.iter().map(|b| ConversationId([*b; 16])).collect(),
                days: (first, last),
                issued_at: now,
                not_after: now + 7 * 86_400,
                embargo_until: now + 30 * 86_400,
            },
            &self.court,
        )
        .unwrap()
    }
}

use custos_clock::Clock as _;
