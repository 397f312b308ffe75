//! Shared setup for the integration tests: keys, a manifest, and real
//! servers on 127.0.0.1:0.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: a failure is a test failure"
)]
#![allow(dead_code, reason = "each test binary uses part of the helpers")]

use custos_log_server::LogConfig;
use custos_tlog::{ALG_COSIGNATURE_V1, ALG_ED25519, NamedKey};
use custos_wire::manifest::{Manifest, Participant, Policy, Role};
use custos_wire::statement::{
    DayKeyErasure, KeyRelease, ProviderFrankingKey, SignedStatement, Statement, WarrantCommitment,
};
use custos_witness_server::WitnessConfig;
use ed25519_dalek::SigningKey;

pub const ORIGIN: &str = "log.custos.test";

pub struct Deployment {
    pub log_key_seed: [u8; 32],
    pub witness_seeds: Vec<[u8; 32]>,
    pub custodian: SigningKey,
    pub authority: SigningKey,
    pub provider: SigningKey,
    pub outsider: SigningKey,
}

impl Deployment {
    pub fn new(witnesses: usize) -> Self {
        Self {
            log_key_seed: [1; 32],
            witness_seeds: (0..witnesses).map(|i| [10 + i as u8; 32]).collect(),
            custodian: SigningKey::from_bytes(&[3; 32]),
            authority: SigningKey::from_bytes(&[4; 32]),
            provider: SigningKey::from_bytes(&[5; 32]),
            outsider: SigningKey::from_bytes(&[6; 32]),
        }
    }

    pub fn log_key(&self) -> NamedKey {
        NamedKey::from_seed(ORIGIN, ALG_ED25519, &self.log_key_seed).unwrap()
    }

    pub fn witness_key(&self, i: usize) -> NamedKey {
        NamedKey::from_seed(
            &format!("witness-{i}.test"),
            ALG_COSIGNATURE_V1,
            &self.witness_seeds[i],
        )
        .unwrap()
    }

    pub fn manifest(&self, witness_urls: &[String], quorum: usize) -> Manifest {
        let p = |name: &str,
                 role: Role,
                 key: &ed25519_dalek::VerifyingKey,
                 endpoint: Option<String>| {
            Participant {
                name: name.into(),
                role,
                jurisdiction: "EU".into(),
                endpoint,
                public_key: hex::encode(key.to_bytes()),
            }
        };
        let mut ps = vec![
            p(ORIGIN, Role::Log, &self.log_key().verifying_key(), None),
            p(
                "custodian-1.test",
                Role::Custodian,
                &self.custodian.verifying_key(),
                None,
            ),
            p(
                "police.test",
                Role::Authority,
                &self.authority.verifying_key(),
                None,
            ),
            p(
                "provider.test",
                Role::Provider,
                &self.provider.verifying_key(),
                None,
            ),
        ];
        for (i, url) in witness_urls.iter().enumerate() {
            let k = self.witness_key(i);
            ps.push(p(
                k.name(),
                Role::Witness,
                &k.verifying_key(),
                Some(url.clone()),
            ));
        }
        // A manifest needs a witness quorum of at least 1. Tests of the
        // log's own API run without witnesses: they name one that is not
        // running, and check checkpoints with [`Deployment::log_only_policy`].
        let quorum = if witness_urls.is_empty() {
            let offline =
                NamedKey::from_seed("witness-offline.test", ALG_COSIGNATURE_V1, &[9; 32]).unwrap();
            ps.push(p(
                offline.name(),
                Role::Witness,
                &offline.verifying_key(),
                None,
            ));
            quorum.max(1)
        } else {
            quorum
        };
        Manifest::new(quorum, 1, Policy::default(), ps).unwrap()
    }

    /// A policy that checks only the log's signature: for tests of the
    /// log's API, proofs and crash safety, which do not test witnessing.
    pub fn log_only_policy(&self) -> custos_tlog::TrustPolicy {
        custos_tlog::TrustPolicy::new(ORIGIN, self.log_key().verifying_key(), &[], 0).unwrap()
    }

    /// Starts the witnesses, then the log; returns (log URL, witness URLs).
    pub async fn start(
        &self,
        dir: &std::path::Path,
        quorum: usize,
    ) -> (String, Vec<String>, Manifest) {
        let urls = self.start_witnesses(dir).await;
        let manifest = self.manifest(&urls, quorum);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let handle = custos_log_server::spawn_log(
            listener,
            LogConfig {
                data: dir.join("log"),
                signed_size: dir.join("log.signed-size"),
                key: self.log_key(),
                manifest: manifest.clone(),
                clock: custos_clock::system(),
                max_batch: 256,
            },
        )
        .await
        .unwrap();
        (format!("http://{}", handle.addr), urls, manifest)
    }

    /// Starts only the witnesses; returns their URLs.
    pub async fn start_witnesses(&self, dir: &std::path::Path) -> Vec<String> {
        let mut urls = Vec::new();
        for i in 0..self.witness_seeds.len() {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = custos_witness_server::spawn_witness(
                listener,
                WitnessConfig {
                    data: dir.join(format!("witness-{i}")),
                    key: self.witness_key(i),
                    logs: vec![(ORIGIN.to_owned(), self.log_key().verifying_key())],
                    clock: custos_clock::system(),
                },
            )
            .await
            .unwrap();
            urls.push(format!("http://{addr}"));
        }
        urls
    }
}

pub fn release(custodian: &SigningKey, n: u16) -> SignedStatement {
    let st = Statement::KeyRelease(KeyRelease {
        warrant: [7; 32],
        custodian: "custodian-1.test".into(),
        conversation_days: n,
        request_hash: [8; 32],
        released_at: 1_795_000_000,
    });
    SignedStatement::sign(&st, custodian).unwrap()
}

pub fn erasure(custodian: &SigningKey, day: u32) -> SignedStatement {
    let st = Statement::DayKeyErasure(DayKeyErasure {
        day,
        custodian: "custodian-1.test".into(),
        erased_at: 1_795_000_000,
    });
    SignedStatement::sign(&st, custodian).unwrap()
}

pub fn commitment(authority: &SigningKey) -> SignedStatement {
    let st = Statement::WarrantCommitment(WarrantCommitment {
        commitment: [9; 32],
        court: "court.test".into(),
        authority: "police.test".into(),
        issued_at: 1,
        embargo_until: 2,
        targets: 1,
        days: 1,
        court_signature: vec![0; 64],
    });
    SignedStatement::sign(&st, authority).unwrap()
}

pub fn franking(provider: &SigningKey) -> SignedStatement {
    let st = Statement::ProviderFrankingKey(ProviderFrankingKey {
        provider: "provider.test".into(),
        public_key: [1; 32],
        valid_from: 0,
    });
    SignedStatement::sign(&st, provider).unwrap()
}
