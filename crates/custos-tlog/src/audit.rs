//! Audit: replay every entry of the log, recompute the tree, check every
//! author signature, the role rule and the checkpoint's cosignatures, and
//! count statements by type. Statements that pass go to an [`AuditSink`],
//! such as the lawful-access figures of `custos-verify`.
//!
//! # Security meaning
//! An audit that passes shows that the checkpoint the log serves commits to
//! exactly the entries it serves, that every entry is a canonical statement
//! signed by a participant allowed to publish it, and how many witnesses
//! vouch for the checkpoint. It trusts the manifest it is given.
//!
//! # Streaming
//! [`Replay`] takes entries one at a time and keeps only the roots of the
//! complete subtrees ([`StreamingRoot`]) and a bounded list of bad entries,
//! so a log of any size replays in constant memory (apart from what the
//! sink keeps). Author keys are decompressed once, when the replay starts.

use std::collections::{BTreeMap, HashMap};

use custos_wire::manifest::{Manifest, Participant};
use custos_wire::statement::{STATEMENT_SIGNING_LABEL, SignedStatement, Statement, StatementKind};
use ed25519_dalek::{Signature, VerifyingKey};
use serde::Serialize;

use crate::merkle::StreamingRoot;
use crate::verifier::{TrustPolicy, VerifiedCheckpoint, VerifyError};

/// Most bad entries listed one by one in a report (all are counted).
pub const MAX_BAD_ENTRIES_LISTED: usize = 1_000;

/// Entries fetched from the log per request while streaming (16 tiles).
pub const FETCH_CHUNK: u64 = 4_096;

/// One entry the audit refused.
#[derive(Debug, Clone, Serialize)]
pub struct BadEntry {
    /// Index.
    pub index: u64,
    /// Why.
    pub reason: String,
}

/// The audit's findings.
#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    /// Log origin.
    pub origin: String,
    /// Checkpoint size.
    pub tree_size: u64,
    /// Checkpoint root, base64.
    pub root_hash: String,
    /// Whether the replayed entries hash to the checkpoint root.
    pub root_matches: bool,
    /// Witnesses whose cosignatures verified.
    pub witnesses: Vec<String>,
    /// Cosignatures required by the manifest.
    pub witness_quorum: usize,
    /// Whether the checkpoint verified with its quorum (else why not).
    pub checkpoint_error: Option<String>,
    /// Valid statements by type.
    pub counts: BTreeMap<String, u64>,
    /// Entries that failed decoding, signature or role checks (the first
    /// [`MAX_BAD_ENTRIES_LISTED`]).
    pub bad_entries: Vec<BadEntry>,
    /// How many entries failed, listed or not.
    pub bad_entry_count: u64,
    /// SHA-256 of the manifest used, hex (compare out of band).
    pub manifest_hash: String,
}

impl AuditReport {
    /// Whether everything checked out.
    pub fn ok(&self) -> bool {
        self.root_matches && self.checkpoint_error.is_none() && self.bad_entry_count == 0
    }
}

/// Why an audit could not run (a failed check is a finding in the
/// [`AuditReport`], not an error).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The manifest or the checkpoint's log signature does not verify.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// The entries or the manifest cannot be processed.
    #[error("cannot replay the log: {0}")]
    Malformed(String),
}

/// Receives every statement that passed the audit's checks, in log order.
pub trait AuditSink {
    /// Statement `index`, by `author` (a manifest participant whose role
    /// may publish it), with a valid author signature.
    fn statement(&mut self, index: u64, author: &Participant, statement: &Statement);
}

/// The sink that keeps nothing (an integrity-only audit).
impl AuditSink for () {
    fn statement(&mut self, _: u64, _: &Participant, _: &Statement) {}
}

/// The checkpoint `note` checked with the log's signature alone (to learn its
/// size even when the witness quorum is missing).
pub fn log_signed(manifest: &Manifest, note: &[u8]) -> Result<VerifiedCheckpoint, AuditError> {
    let log = manifest
        .log()
        .ok_or_else(|| VerifyError::Policy("manifest has no log".into()))?;
    let key = log
        .verifying_key()
        .map_err(|e| VerifyError::Policy(e.to_string()))?;
    Ok(TrustPolicy::new(&log.name, key, &[], 0)?.verify_checkpoint(note)?)
}

/// A replay in progress: push entries in log order, then
/// [`Replay::finish`] against the checkpoint.
#[derive(Debug)]
pub struct Replay<'m> {
    manifest: &'m Manifest,
    authors: HashMap<[u8; 32], (VerifyingKey, &'m Participant)>,
    root: StreamingRoot,
    counts: BTreeMap<StatementKind, u64>,
    bad_entries: Vec<BadEntry>,
    bad_entry_count: u64,
}

impl<'m> Replay<'m> {
    /// A replay under `manifest`; participants whose key does not parse
    /// are left out (their statements are then bad entries).
    pub fn new(manifest: &'m Manifest) -> Self {
        let authors = manifest
            .participants
            .iter()
            .filter_map(|p| {
                let key = p.verifying_key().ok()?;
                Some((key.to_bytes(), (key, p)))
            })
            .collect();
        Self {
            manifest,
            authors,
            root: StreamingRoot::new(),
            counts: StatementKind::ALL.iter().map(|k| (*k, 0)).collect(),
            bad_entries: Vec::new(),
            bad_entry_count: 0,
        }
    }

    /// Entries replayed so far.
    pub fn size(&self) -> u64 {
        self.root.size()
    }

    /// The entries refused so far (the first [`MAX_BAD_ENTRIES_LISTED`])
    /// and how many were refused in all.
    pub fn bad_entries(&self) -> (&[BadEntry], u64) {
        (&self.bad_entries, self.bad_entry_count)
    }

    /// Replays the next entry: hashes it into the tree, checks it, and
    /// hands a valid statement to `sink`.
    pub fn push<S: AuditSink + ?Sized>(&mut self, entry: &[u8], sink: &mut S) {
        let index = self.root.size();
        self.root.push_entry(entry);
        match self.check(entry) {
            Ok((author, statement)) => {
                *self.counts.entry(statement.kind()).or_default() += 1;
                sink.statement(index, author, &statement);
            }
            Err(reason) => {
                self.bad_entry_count += 1;
                if self.bad_entries.len() < MAX_BAD_ENTRIES_LISTED {
                    self.bad_entries.push(BadEntry { index, reason });
                }
            }
        }
    }

    /// The report: the replayed entries against the checkpoint `note`.
    pub fn finish(self, note: &[u8]) -> Result<AuditReport, AuditError> {
        let policy = TrustPolicy::from_manifest(self.manifest)?;
        let log_only = log_signed(self.manifest, note)?;
        let (witnesses, checkpoint_error) = match policy.verify_checkpoint(note) {
            Ok(cp) => (cp.witnesses().to_vec(), None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        let size = log_only.size();
        let root_matches = self.root.size() == size && self.root.root() == log_only.hash();
        Ok(AuditReport {
            origin: policy.origin().to_owned(),
            tree_size: size,
            root_hash: log_only.hash().to_string(),
            root_matches,
            witnesses,
            witness_quorum: self.manifest.witness_quorum,
            checkpoint_error,
            counts: self
                .counts
                .into_iter()
                .map(|(k, n)| (k.name().to_owned(), n))
                .collect(),
            bad_entries: self.bad_entries,
            bad_entry_count: self.bad_entry_count,
            manifest_hash: hex::encode(
                self.manifest
                    .hash()
                    .map_err(|e| AuditError::Malformed(e.to_string()))?,
            ),
        })
    }

    /// Canonical form, manifest participant, strict signature, role rule.
    fn check(&self, entry: &[u8]) -> Result<(&'m Participant, Statement), String> {
        let signed = SignedStatement::decode(entry).map_err(|e| e.to_string())?;
        let (key, author) = self
            .authors
            .get(signed.author())
            .ok_or("author is not a manifest participant")?;
        let mut message =
            Vec::with_capacity(STATEMENT_SIGNING_LABEL.len() + signed.statement_bytes().len());
        message.extend_from_slice(STATEMENT_SIGNING_LABEL);
        message.extend_from_slice(signed.statement_bytes());
        custos_wire::signature::verify_strict(
            key,
            &message,
            &Signature::from_bytes(signed.signature()),
        )
        .map_err(|_| "author signature does not verify".to_owned())?;
        let statement = Statement::decode(signed.statement_bytes()).map_err(|e| e.to_string())?;
        let kind = statement.kind();
        if !author.role.may_publish(kind) {
            return Err(format!("{:?} may not publish {}", author.role, kind.name()));
        }
        Ok((*author, statement))
    }
}

/// Replays `entries` (the first entries of the log) against the checkpoint
/// `note` under `manifest`, calling `progress(checked, total)` after each
/// entry (for a progress bar; it sees no entry content).
pub fn replay(
    manifest: &Manifest,
    note: &[u8],
    entries: &[Vec<u8>],
    progress: impl FnMut(u64, u64),
) -> Result<AuditReport, AuditError> {
    replay_into(manifest, note, entries, &mut (), progress)
}

/// [`replay`], handing every valid statement to `sink`.
pub fn replay_into<S: AuditSink + ?Sized>(
    manifest: &Manifest,
    note: &[u8],
    entries: &[Vec<u8>],
    sink: &mut S,
    mut progress: impl FnMut(u64, u64),
) -> Result<AuditReport, AuditError> {
    let size = log_signed(manifest, note)?.size();
    let mut replay = Replay::new(manifest);
    for entry in entries {
        replay.push(entry, sink);
        progress(replay.size(), size);
    }
    replay.finish(note)
}

/// Runs the audit against the log behind `client` under `manifest`.
#[cfg(feature = "client")]
pub async fn audit(
    client: &crate::client::LogClient,
    manifest: &Manifest,
) -> Result<AuditReport, crate::client::ClientError> {
    audit_streaming(client, manifest, &mut (), |_, _| {}).await
}

/// [`audit`], calling `progress(checked, total)` after each entry is
/// replayed and checked (for a progress bar; it sees no entry content).
#[cfg(feature = "client")]
pub async fn audit_with_progress(
    client: &crate::client::LogClient,
    manifest: &Manifest,
    progress: impl FnMut(u64, u64),
) -> Result<AuditReport, crate::client::ClientError> {
    audit_streaming(client, manifest, &mut (), progress).await
}

/// The audit of the checkpoint the log serves now, streaming: entries are
/// fetched [`FETCH_CHUNK`] at a time through entry bundles, replayed and
/// handed to `sink`, and dropped; `progress(checked, total)` is called
/// after each entry.
#[cfg(feature = "client")]
pub async fn audit_streaming<S: AuditSink + ?Sized>(
    client: &crate::client::LogClient,
    manifest: &Manifest,
    sink: &mut S,
    mut progress: impl FnMut(u64, u64),
) -> Result<AuditReport, crate::client::ClientError> {
    let note = client.checkpoint().await?;
    let size = log_signed(manifest, &note)?.size();
    let mut replay = Replay::new(manifest);
    while replay.size() < size {
        let end = replay.size().saturating_add(FETCH_CHUNK).min(size);
        let entries = client.entries(replay.size(), end).await?;
        if entries.is_empty() {
            return Err(crate::client::ClientError::Malformed(
                "the log served no entries below its checkpoint size".into(),
            ));
        }
        for entry in &entries {
            replay.push(entry, sink);
            progress(replay.size(), size);
        }
    }
    Ok(replay.finish(&note)?)
}
