//! A whole lawful-access deployment on loopback, from the test kit: a log,
//! 2 witnesses (quorum 2), a court, an authority and 5 custodians
//! (threshold 3) that are keys in the manifest; each custodian's endpoint
//! serves the release API (`POST /v1/release`) of a [`Releaser`] over
//! shares dealt by the test, on a simulated clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers: a failure is a test failure"
)]
#![allow(
    dead_code,
    reason = "the tests and the benchmark each use part of the helpers"
)]

use std::sync::Arc;
use std::time::Duration;

use custos_authority::court::{WarrantOrder, sign_warrant};
use custos_authority::keys::HpkeKeyPair;
use custos_clock::SimulatedClock;
use custos_custodian::release::{MemoryShares, Releaser, ReleaserConfig, http::router};
use custos_deploy::{CustodianMode, Deployment, DeploymentSpec};
use custos_escrow::{DayKey, SecretShare};
use custos_tlog::{LogClient, NamedKey, TrustPolicy, Verifier};
use custos_wire::ConversationId;
use custos_wire::manifest::{Manifest, Participant, Policy, Role};
use custos_wire::statement::{EscrowDayKey, SignedStatement, Statement};
use custos_wire::warrant::Warrant;
use ed25519_dalek::SigningKey;

pub const ORIGIN: &str = "log.test";
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
    /// The log, the witnesses and every key; they stop when it drops.
    pub deployment: Deployment,
}

/// The kit's name of custodian `i`.
pub fn custodian_name(i: usize) -> String {
    custos_deploy::Names::new("test").custodian(i)
}

impl Net {
    /// Starts everything; custodians hold shares of days `TODAY-3..=TODAY+2`,
    /// and every custodian has logged each day's key.
    pub async fn start(policy: Policy, quota: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = custos_clock::dangerous::simulated(START_MS);
        let mut spec = DeploymentSpec::new("test", clock.shared())
            .custodians(N, T, CustodianMode::KeysOnly)
            .with_policy(policy)
            .without_server();
        // A second court of the manifest, whose warrants the first court's
        // key does not sign.
        spec.extra_participants.push(Participant {
            name: "rogue-court.test".into(),
            role: Role::Court,
            jurisdiction: "EU".into(),
            endpoint: None,
            public_key: hex::encode(SigningKey::from_bytes(&[4; 32]).verifying_key().to_bytes()),
        });
        let mut deployment = Deployment::start(&dir.path().join("deploy"), spec)
            .await
            .unwrap();
        let keys = deployment.keys();
        let (court, authority) = (keys.court.clone(), keys.authority.clone());
        let custodian_keys: Vec<SigningKey> =
            keys.custodians.iter().map(|c| c.signing_key()).collect();
        let manifest = deployment.manifest().clone();
        let log = deployment.log().clone();
        let log_url = deployment.log_url().to_owned();

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
        for (i, key) in custodian_keys.iter().enumerate() {
            let l = deployment.take_custodian_listener(i).unwrap();
            let r = Arc::new(
                Releaser::open(
                    ReleaserConfig {
                        manifest: manifest.clone(),
                        name: custodian_name(i),
                        signing_key: key.clone(),
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
            witness_urls: deployment.witness_urls().to_vec(),
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
            deployment,
        }
    }

    /// The log's checkpoint key.
    pub fn log_key(&self) -> &NamedKey {
        &self.deployment.keys().log
    }

    /// Witness `i`'s cosignature key.
    pub fn witness_key(&self, i: usize) -> &NamedKey {
        &self.deployment.keys().witnesses[i]
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
