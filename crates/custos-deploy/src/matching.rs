//! Known-content detection in a test or demo deployment: two test
//! organisations, a test list of PDQ hashes of synthetic pictures, the
//! provider's blinded table and secret (`DIR/matching/`), the manifest's
//! `[matching]` section, and the table's statements in the log.
//!
//! No real abuse material exists anywhere in the project: the listed hashes
//! are of pictures that `custos_media::synthetic` draws.

use std::path::Path;

use custos_psi::{
    ListEntry, ListedHash, ProviderSecret, TableParams, build_table, entry_commitment, sign_entry,
};
use custos_server::matching::MatchingService;
use custos_wire::manifest::{Matching, Organisation};
use ed25519_dalek::SigningKey;
use rand_core::{OsRng, RngCore as _};

use crate::error::DeployError;

/// What a deployment matches against, and how.
#[derive(Debug, Clone)]
pub struct MatchingSpec {
    /// The manifest's threshold `T`.
    pub threshold: u16,
    /// The manifest's synthetic rate, per million.
    pub synthetic_rate_ppm: u32,
    /// PDQ hashes on the test list (each listed with both signatures).
    pub listed: Vec<[u8; 32]>,
    /// A fault to inject, for the refusal tests.
    pub fault: TableFault,
}

/// A table the devices must refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFault {
    /// None: the table as the provider's tooling builds and logs it.
    None,
    /// The service serves a table whose root is not in the log (it logs
    /// another table's).
    Unlogged,
    /// Entry 0 carries organisation A's signature twice (one source only);
    /// the table is logged all the same.
    OneSource,
}

/// The matching material of a deployment.
pub(crate) struct MatchingKeys {
    pub org_a: SigningKey,
    pub org_b: SigningKey,
    pub secret: [u8; 32],
    /// The table the service serves.
    pub table: Vec<u8>,
}

fn read32(path: &Path) -> Result<Option<[u8; 32]>, DeployError> {
    match std::fs::read(path) {
        Ok(b) => Ok(<[u8; 32]>::try_from(b.as_slice()).ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(DeployError::io("reading matching keys")(e)),
    }
}

impl MatchingKeys {
    /// Loads `DIR/matching/` or makes it: organisation keys, the provider's
    /// secret, and the table of `spec.listed`.
    pub(crate) fn load_or_make(dir: &Path, spec: &MatchingSpec) -> Result<Self, DeployError> {
        let m = dir.join("matching");
        if let (Some(a), Some(b), Some(s), Ok(table)) = (
            read32(&m.join("org-a.key"))?,
            read32(&m.join("org-b.key"))?,
            read32(&m.join("provider-secret"))?,
            std::fs::read(m.join("table.bin")),
        ) {
            return Ok(Self {
                org_a: SigningKey::from_bytes(&a),
                org_b: SigningKey::from_bytes(&b),
                secret: s,
                table,
            });
        }
        std::fs::create_dir_all(&m).map_err(DeployError::io("creating DIR/matching"))?;
        let org_a = SigningKey::generate(&mut OsRng);
        let org_b = SigningKey::generate(&mut OsRng);
        let secret = ProviderSecret::generate(&mut OsRng);
        let mut salt = [0u8; 32];
        OsRng.fill_bytes(&mut salt);
        let listed: Vec<ListedHash> = spec
            .listed
            .iter()
            .map(|h| {
                let c = entry_commitment(&salt, h);
                ListedHash {
                    hash: *h,
                    entry: ListEntry {
                        commitment: c,
                        sig_a: sign_entry(&org_a, &c),
                        sig_b: sign_entry(&org_b, &c),
                    },
                }
            })
            .collect();
        let orgs = (
            org_a.verifying_key().to_bytes(),
            org_b.verifying_key().to_bytes(),
        );
        let build = || {
            build_table(
                &secret,
                TableParams::default(),
                (&orgs.0, &orgs.1),
                &salt,
                &listed,
                &mut OsRng,
            )
            .map_err(|e| DeployError::Usage(format!("building the test table: {e}")))
        };
        let mut table = build()?.encode();
        if spec.fault == TableFault::OneSource {
            // Entry 0's second signature replaced by the first (A's).
            let e0 = 1 + 1 + 1 + 32 + 32 + 32 + 32 + 4;
            let sig_a: Vec<u8> = table.get(e0 + 32..e0 + 96).unwrap_or_default().to_vec();
            if let Some(b) = table.get_mut(e0 + 96..e0 + 160) {
                b.copy_from_slice(&sig_a);
            }
        }
        let save = |name: &str, bytes: &[u8]| {
            custos_durable::write_atomic(&m.join(name), bytes)
                .map_err(DeployError::io("writing matching keys"))
        };
        save("org-a.key", &org_a.to_bytes())?;
        save("org-b.key", &org_b.to_bytes())?;
        save("provider-secret", &secret.expose_bytes())?;
        save("table.bin", &table)?;
        Ok(Self {
            org_a,
            org_b,
            secret: secret.expose_bytes(),
            table,
        })
    }

    /// The manifest's `[matching]` section.
    pub(crate) fn section(&self, spec: &MatchingSpec) -> Matching {
        let org = |name: &str, k: &SigningKey| Organisation {
            name: name.into(),
            jurisdiction: "EU".into(),
            public_key: hex::encode(k.verifying_key().to_bytes()),
        };
        Matching {
            enabled: true,
            threshold: spec.threshold,
            synthetic_rate_ppm: spec.synthetic_rate_ppm,
            organisations: vec![
                org("hotline-a.test", &self.org_a),
                org("hotline-b.test", &self.org_b),
            ],
        }
    }

    /// The service's matching state.
    pub(crate) fn service(&self, matching: &Matching) -> Result<MatchingService, DeployError> {
        MatchingService::new(self.table.clone(), &self.secret, matching, 0)
            .map_err(|e| DeployError::Usage(format!("matching: {e}")))
    }
}
