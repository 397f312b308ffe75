//! Audit: replay every entry of the log, recompute the tree, check every
//! author signature, the role rule and the checkpoint's cosignatures, and
//! count statements by type. The lawful-access and dashboard issues extend
//! the report.
//!
//! # Security meaning
//! An audit that passes shows that the checkpoint the log serves commits to
//! exactly the entries it serves, that every entry is a canonical statement
//! signed by a participant allowed to publish it, and how many witnesses
//! vouch for the checkpoint. It trusts the manifest it is given.

use std::collections::BTreeMap;

use custos_wire::manifest::Manifest;
use custos_wire::statement::{SignedStatement, StatementKind};
use serde::Serialize;

use crate::merkle::Tree;
use crate::verifier::{TrustPolicy, VerifiedCheckpoint, VerifyError};

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
    /// Entries that failed decoding, signature or role checks.
    pub bad_entries: Vec<BadEntry>,
    /// SHA-256 of the manifest used, hex (compare out of band).
    pub manifest_hash: String,
}

impl AuditReport {
    /// Whether everything checked out.
    pub fn ok(&self) -> bool {
        self.root_matches && self.checkpoint_error.is_none() && self.bad_entries.is_empty()
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

/// Replays `entries` (the first entries of the log) against the checkpoint
/// `note` under `manifest`, calling `progress(checked, total)` after each
/// entry (for a progress bar; it sees no entry content).
pub fn replay(
    manifest: &Manifest,
    note: &[u8],
    entries: &[Vec<u8>],
    mut progress: impl FnMut(u64, u64),
) -> Result<AuditReport, AuditError> {
    let policy = TrustPolicy::from_manifest(manifest)?;
    let log_only = log_signed(manifest, note)?;
    let (witnesses, checkpoint_error) = match policy.verify_checkpoint(note) {
        Ok(cp) => (cp.witnesses().to_vec(), None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let size = log_only.size();
    let mut tree = Tree::new();
    let mut counts: BTreeMap<String, u64> = StatementKind::ALL
        .iter()
        .map(|k| (k.name().to_owned(), 0))
        .collect();
    let mut bad_entries = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let index = i as u64;
        tree.append_entry(entry)
            .map_err(|e| AuditError::Malformed(e.to_string()))?;
        match check_entry(manifest, entry) {
            Ok(kind) => *counts.entry(kind.name().to_owned()).or_default() += 1,
            Err(reason) => bad_entries.push(BadEntry { index, reason }),
        }
        progress(index.saturating_add(1), size);
    }
    let root_matches = tree.size() == size
        && tree
            .root(size)
            .map(|r| r == log_only.hash())
            .unwrap_or(false);
    Ok(AuditReport {
        origin: policy.origin().to_owned(),
        tree_size: size,
        root_hash: log_only.hash().to_string(),
        root_matches,
        witnesses,
        witness_quorum: manifest.witness_quorum,
        checkpoint_error,
        counts,
        bad_entries,
        manifest_hash: hex::encode(
            manifest
                .hash()
                .map_err(|e| AuditError::Malformed(e.to_string()))?,
        ),
    })
}

/// Runs the audit against the log behind `client` under `manifest`.
#[cfg(feature = "client")]
pub async fn audit(
    client: &crate::client::LogClient,
    manifest: &Manifest,
) -> Result<AuditReport, crate::client::ClientError> {
    audit_with_progress(client, manifest, |_, _| {}).await
}

/// [`audit`], calling `progress(checked, total)` after each entry is
/// replayed and checked (for a progress bar; it sees no entry content).
#[cfg(feature = "client")]
pub async fn audit_with_progress(
    client: &crate::client::LogClient,
    manifest: &Manifest,
    progress: impl FnMut(u64, u64),
) -> Result<AuditReport, crate::client::ClientError> {
    let note = client.checkpoint().await?;
    let size = log_signed(manifest, &note)?.size();
    let entries = client.entries(0, size).await?;
    Ok(replay(manifest, &note, &entries, progress)?)
}

fn check_entry(manifest: &Manifest, entry: &[u8]) -> Result<StatementKind, String> {
    let signed = SignedStatement::decode(entry).map_err(|e| e.to_string())?;
    let statement = signed.verify().map_err(|e| e.to_string())?;
    let author = manifest
        .participant_by_key(signed.author())
        .ok_or("author is not a manifest participant")?;
    let kind = statement.kind();
    if !author.role.may_publish(kind) {
        return Err(format!("{:?} may not publish {}", author.role, kind.name()));
    }
    Ok(kind)
}
