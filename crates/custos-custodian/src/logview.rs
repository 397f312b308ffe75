//! What the custodian reads from and writes to the transparency log.
//!
//! Reading: the view follows the log from a checkpoint that the manifest's
//! trust policy accepts (log signature and witness quorum), and indexes the
//! statements custodians care about: other custodians' HPKE keys
//! (`ParticipantKey`, purpose `Hpke`), and who published which
//! `EscrowDayKey` bytes for which day. A statement counts only if its
//! signature verifies and its author is the custodian of the manifest that
//! it names.
//!
//! Writing: statements are signed with the custodian's manifest key and
//! submitted; `submit` returns once the log holds them durably.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use custos_tlog::{LogClient, TrustPolicy};
use custos_wire::manifest::{Manifest, Role};
use custos_wire::statement::{KeyPurpose, SignedStatement, Statement};

use crate::keys::CustodianKey;

/// Why talking to the log failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The manifest names no usable log (no endpoint, or a bad key).
    #[error("the manifest's log is not usable: {0}")]
    Config(String),
    /// The log could not be reached or refused.
    #[error(transparent)]
    Client(#[from] custos_tlog::ClientError),
    /// The log's checkpoint did not verify under the manifest's policy.
    #[error("the log's checkpoint does not verify: {0}")]
    Verify(String),
    /// A statement could not be signed.
    #[error("cannot encode the statement: {0}")]
    Encode(#[from] custos_wire::WireError),
}

/// The custodian's index of the log.
#[derive(Debug)]
pub struct LogView {
    client: LogClient,
    policy: TrustPolicy,
    custodians: HashMap<[u8; 32], String>,
    cursor: u64,
    hpke: HashMap<[u8; 32], [u8; 32]>,
    day_keys: BTreeMap<u32, BTreeMap<Vec<u8>, BTreeSet<[u8; 32]>>>,
    erasures: BTreeMap<u32, BTreeSet<[u8; 32]>>,
}

impl LogView {
    /// A view of the manifest's log (at its `endpoint`).
    pub fn new(manifest: &Manifest) -> Result<Self, LogError> {
        let log = manifest
            .log()
            .ok_or_else(|| LogError::Config("no log participant".into()))?;
        let url = log
            .endpoint
            .as_deref()
            .ok_or_else(|| LogError::Config(format!("log `{}` has no endpoint", log.name)))?;
        let policy =
            TrustPolicy::from_manifest(manifest).map_err(|e| LogError::Config(e.to_string()))?;
        let mut custodians = HashMap::new();
        for p in manifest.with_role(Role::Custodian) {
            let k = p
                .verifying_key()
                .map_err(|e| LogError::Config(e.to_string()))?;
            custodians.insert(k.to_bytes(), p.name.clone());
        }
        Ok(Self {
            client: LogClient::new(url)?,
            policy,
            custodians,
            cursor: 0,
            hpke: HashMap::new(),
            day_keys: BTreeMap::new(),
            erasures: BTreeMap::new(),
        })
    }

    /// Reads the entries added since the last refresh, up to a checkpoint
    /// that the trust policy accepts.
    pub async fn refresh(&mut self) -> Result<(), LogError> {
        let note = self.client.checkpoint().await?;
        let cp = self
            .policy
            .verify_checkpoint(&note)
            .map_err(|e| LogError::Verify(e.to_string()))?;
        let size = cp.size();
        if size <= self.cursor {
            return Ok(());
        }
        let entries = self.client.entries(self.cursor, size).await?;
        for entry in entries {
            self.index(&entry);
        }
        self.cursor = size;
        Ok(())
    }

    fn index(&mut self, entry: &[u8]) {
        let Ok(signed) = SignedStatement::decode(entry) else {
            return;
        };
        let author = *signed.author();
        let Some(name) = self.custodians.get(&author) else {
            return;
        };
        let Ok(statement) = signed.verify() else {
            return;
        };
        match statement {
            Statement::ParticipantKey(k)
                if k.purpose == KeyPurpose::Hpke
                    && k.role == Role::Custodian
                    && &k.name == name =>
            {
                if let Ok(pk) = <[u8; 32]>::try_from(k.public_key.as_slice()) {
                    self.hpke.insert(author, pk);
                }
            }
            Statement::EscrowDayKey(d) => {
                self.day_keys
                    .entry(d.day)
                    .or_default()
                    .entry(d.day_key)
                    .or_default()
                    .insert(author);
            }
            Statement::DayKeyErasure(e) if &e.custodian == name => {
                self.erasures.entry(e.day).or_default().insert(author);
            }
            _ => {}
        }
    }

    /// The log client.
    pub fn client(&self) -> &LogClient {
        &self.client
    }

    /// The HPKE keys custodians published, by Ed25519 key.
    pub fn hpke_keys(&self) -> &HashMap<[u8; 32], [u8; 32]> {
        &self.hpke
    }

    /// For `day`: the day-key bytes that the most custodians published, and
    /// who published them.
    pub fn day_key(&self, day: u32) -> Option<(&[u8], &BTreeSet<[u8; 32]>)> {
        self.day_keys
            .get(&day)?
            .iter()
            .max_by_key(|(_, who)| who.len())
            .map(|(k, who)| (k.as_slice(), who))
    }

    /// Every custodian that published any `EscrowDayKey` for `day`.
    pub fn day_key_publishers(&self, day: u32) -> BTreeSet<[u8; 32]> {
        self.day_keys
            .get(&day)
            .map(|m| m.values().flatten().copied().collect())
            .unwrap_or_default()
    }

    /// Custodians that logged the erasure of their share of `day`.
    pub fn erasures(&self, day: u32) -> BTreeSet<[u8; 32]> {
        self.erasures.get(&day).cloned().unwrap_or_default()
    }

    /// Signs `statement` with the custodian's key and submits it.
    pub async fn publish(
        &self,
        key: &CustodianKey,
        statement: &Statement,
    ) -> Result<u64, LogError> {
        let signed = SignedStatement::sign(statement, &key.signing_key())?;
        Ok(self.client.submit(&signed).await?.index)
    }
}
