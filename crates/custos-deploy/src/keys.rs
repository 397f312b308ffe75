//! Every secret key of a deployment, generated from OS randomness and kept
//! in files under `DIR/keys/` (mode 0600, written durably, never
//! overwritten), in the formats the `custos` commands read:
//!
//! | file | key | read by |
//! |---|---|---|
//! | `log.key` | log checkpoint key (note key) | `custos log serve --key` |
//! | `witness-N.key` | witness cosignature key | `custos witness serve --key` |
//! | `custodian-N.key` | custodian keys (signing, DKG HPKE, storage) | `custos custodian serve --key` |
//! | `provider.key` | provider statement key (note key) | `custos server --provider-key` |
//! | `court.key` | court signing key | `custos court sign-warrant --key` |
//! | `authority/signing.key`, `authority/hpke.key` | authority keys | `custos authority ... --key --hpke-key` |

use std::path::{Path, PathBuf};

use custos_authority::keys::{HpkeKeyPair, read_secret, write_secret};
use custos_custodian::CustodianKey;
use custos_tlog::{ALG_COSIGNATURE_V1, ALG_ED25519, NamedKey};
use ed25519_dalek::SigningKey;

use crate::error::DeployError;
use crate::names::Names;

/// The secret keys of every party of a local deployment. A real deployment
/// never holds them in one place; this one exists for `custos up`, the demo
/// and tests, where one machine plays every party.
pub struct DeploymentKeys {
    /// The log's checkpoint key; its name is the log's origin.
    pub log: NamedKey,
    /// One cosignature key per witness.
    pub witnesses: Vec<NamedKey>,
    /// One key set per custodian.
    pub custodians: Vec<CustodianKey>,
    /// The provider's statement key (publishes its franking key in the log).
    pub provider: NamedKey,
    /// The court's warrant signing key.
    pub court: SigningKey,
    /// The authority's request signing key.
    pub authority: SigningKey,
    /// The authority's HPKE key, to which custodians seal released shares.
    pub authority_hpke: HpkeKeyPair,
}

impl std::fmt::Debug for DeploymentKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeploymentKeys")
            .field("log", &self.log.name())
            .field("witnesses", &self.witnesses.len())
            .field("custodians", &self.custodians.len())
            .finish_non_exhaustive()
    }
}

/// Where the key files of a deployment in `dir` live.
#[derive(Debug, Clone)]
pub struct KeyPaths {
    dir: PathBuf,
}

impl KeyPaths {
    /// The key files under `deployment_dir/keys`.
    pub fn new(deployment_dir: &Path) -> Self {
        Self {
            dir: deployment_dir.join("keys"),
        }
    }

    /// The log's key file.
    pub fn log(&self) -> PathBuf {
        self.dir.join("log.key")
    }

    /// Witness `i`'s key file.
    pub fn witness(&self, i: usize) -> PathBuf {
        self.dir.join(format!("witness-{}.key", i + 1))
    }

    /// Custodian `i`'s key file.
    pub fn custodian(&self, i: usize) -> PathBuf {
        self.dir.join(format!("custodian-{}.key", i + 1))
    }

    /// The provider's statement key file.
    pub fn provider(&self) -> PathBuf {
        self.dir.join("provider.key")
    }

    /// The court's key file.
    pub fn court(&self) -> PathBuf {
        self.dir.join("court.key")
    }

    /// The authority's signing key file.
    pub fn authority(&self) -> PathBuf {
        self.dir.join("authority").join("signing.key")
    }

    /// The authority's HPKE key file.
    pub fn authority_hpke(&self) -> PathBuf {
        self.dir.join("authority").join("hpke.key")
    }
}

impl DeploymentKeys {
    /// Fresh keys from OS randomness for `witnesses` witnesses and
    /// `custodians` custodians.
    pub fn generate(
        names: &Names,
        witnesses: usize,
        custodians: usize,
    ) -> Result<Self, DeployError> {
        let note = |name: String, alg| {
            NamedKey::generate(&name, alg).map_err(|e| DeployError::key(&name)(e.to_string()))
        };
        Ok(Self {
            log: note(names.log(), ALG_ED25519)?,
            witnesses: (0..witnesses)
                .map(|i| note(names.witness(i), ALG_COSIGNATURE_V1))
                .collect::<Result<_, _>>()?,
            custodians: (0..custodians)
                .map(|i| {
                    let name = names.custodian(i);
                    CustodianKey::generate(&name)
                        .map_err(|e| DeployError::key(&name)(e.to_string()))
                })
                .collect::<Result<_, _>>()?,
            provider: note(names.provider(), ALG_ED25519)?,
            court: SigningKey::generate(&mut rand_core::OsRng),
            authority: SigningKey::generate(&mut rand_core::OsRng),
            authority_hpke: HpkeKeyPair::generate(),
        })
    }

    /// Writes every key under `paths` (files must not exist yet).
    pub fn save(&self, paths: &KeyPaths) -> Result<(), DeployError> {
        std::fs::create_dir_all(paths.dir.join("authority"))
            .map_err(DeployError::io("creating the key directory"))?;
        let note = |key: &NamedKey, path: PathBuf| {
            key.write_file(&path)
                .map_err(|e| DeployError::key(key.name())(e.to_string()))
        };
        note(&self.log, paths.log())?;
        for (i, w) in self.witnesses.iter().enumerate() {
            note(w, paths.witness(i))?;
        }
        for (i, c) in self.custodians.iter().enumerate() {
            c.save(&paths.custodian(i))
                .map_err(|e| DeployError::key(c.name())(e.to_string()))?;
        }
        note(&self.provider, paths.provider())?;
        let secret = |name: &str, bytes: &[u8], path: PathBuf| {
            write_secret(&path, bytes).map_err(|e| DeployError::key(name)(e.to_string()))
        };
        secret("court", self.court.as_bytes(), paths.court())?;
        secret("authority", self.authority.as_bytes(), paths.authority())?;
        secret(
            "authority hpke",
            self.authority_hpke.expose_seed(),
            paths.authority_hpke(),
        )
    }

    /// Reads the keys that [`DeploymentKeys::save`] wrote.
    pub fn load(
        paths: &KeyPaths,
        witnesses: usize,
        custodians: usize,
    ) -> Result<Self, DeployError> {
        let note = |path: PathBuf, alg| {
            NamedKey::read_file(&path, alg)
                .map_err(|e| DeployError::key(&path.display().to_string())(e.to_string()))
        };
        let secret = |path: PathBuf| {
            read_secret(&path)
                .map_err(|e| DeployError::key(&path.display().to_string())(e.to_string()))
        };
        Ok(Self {
            log: note(paths.log(), ALG_ED25519)?,
            witnesses: (0..witnesses)
                .map(|i| note(paths.witness(i), ALG_COSIGNATURE_V1))
                .collect::<Result<_, _>>()?,
            custodians: (0..custodians)
                .map(|i| {
                    let path = paths.custodian(i);
                    CustodianKey::load(&path)
                        .map_err(|e| DeployError::key(&path.display().to_string())(e.to_string()))
                })
                .collect::<Result<_, _>>()?,
            provider: note(paths.provider(), ALG_ED25519)?,
            court: SigningKey::from_bytes(&*secret(paths.court())?),
            authority: SigningKey::from_bytes(&*secret(paths.authority())?),
            authority_hpke: HpkeKeyPair::from_seed(*secret(paths.authority_hpke())?),
        })
    }
}
