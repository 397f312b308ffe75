//! What the custodian reads from and writes to the transparency log.
//!
//! Reading: the view follows the log from a checkpoint that the manifest's
//! trust policy accepts (log signature and witness quorum), re-hashes every
//! entry it reads against that checkpoint's root ([`VerifiedLog`]: an entry
//! that the log altered is never indexed), and indexes the
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
use crate::verified::{EntriesError, VerifiedLog};

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
    /// The entries served do not match the witnessed checkpoint.
    #[error(transparent)]
    Entries(#[from] EntriesError),
    /// The statement was not witnessed in time.
    #[error("entry {0} is not yet in a witnessed checkpoint; retry later")]
    NotWitnessed(u64),
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
    log: VerifiedLog,
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
            log: VerifiedLog::new(),
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
        // Nothing is indexed unless every entry up to the checkpoint hashes
        // to its witnessed root.
        let entries = self.log.advance(&self.client, &cp).await?;
        for (_, entry) in entries {
            self.index(&entry);
        }
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

    /// Signs and submits `statement`, then follows the log until the entry
    /// is in a witnessed checkpoint (re-hashed like every entry), or
    /// `timeout` (real time) passes. Returns its log index.
    pub async fn publish_witnessed(
        &mut self,
        key: &CustodianKey,
        statement: &Statement,
        timeout: std::time::Duration,
    ) -> Result<u64, LogError> {
        let signed = SignedStatement::sign(statement, &key.signing_key())?;
        let bytes = signed.encode()?;
        let index = self.client.submit(&signed).await?.index;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.refresh().await?;
            if self.log.holds(index, &bytes) {
                return Ok(index);
            }
            if self.log.size() > index {
                return Err(LogError::Verify(format!(
                    "entry {index} is not the statement this custodian submitted"
                )));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(LogError::NotWitnessed(index));
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
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
