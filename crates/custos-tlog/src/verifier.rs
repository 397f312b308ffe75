//! The verifying client: checkpoints with a witness quorum, inclusion and
//! consistency proofs, and a persisted last checkpoint.
//!
//! # Guarantees
//! - A [`VerifiedCheckpoint`] can only come from [`TrustPolicy::verify_checkpoint`]
//!   or [`Verifier::update_checkpoint`]: it carries a valid log signature and
//!   valid cosignatures from at least `quorum` distinct configured witnesses.
//! - [`Verifier::update_checkpoint`] accepts a checkpoint only if it is
//!   consistent with the last one it accepted (a verified consistency proof,
//!   or the same root at the same size), and persists it durably before
//!   returning; a smaller or conflicting checkpoint is refused.
//! - An [`InclusionVerified`] can only come from [`verify_inclusion`].
//!
//! # Not guaranteed
//! A quorum of colluding witnesses and the log can still show a split view;
//! choose witnesses that are independent of each other and of the log.

use std::path::{Path, PathBuf};

use custos_durable::write_atomic;
use custos_wire::manifest::{Manifest, Role};
use ed25519_dalek::VerifyingKey;
use signed_note::{Verifier as _, VerifierList};

use crate::checkpoint::parse_checkpoint;
use crate::keys::{CosignatureVerifier, LogVerifier};
use crate::merkle::{Hash, MAX_PROOF_HASHES};

/// Why a checkpoint or proof was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Malformed note or checkpoint.
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    /// Not this log's origin.
    #[error("checkpoint origin is `{found}`, expected `{expected}`")]
    WrongOrigin {
        /// Origin in the checkpoint.
        found: String,
        /// Expected origin.
        expected: String,
    },
    /// Missing or bad log signature, or a bad signature from a known key.
    #[error("checkpoint signatures do not verify: {0}")]
    Signature(String),
    /// Fewer witness cosignatures than required.
    #[error("checkpoint has {got} valid witness cosignatures, {need} required")]
    Quorum {
        /// Valid cosignatures.
        got: usize,
        /// Required.
        need: usize,
    },
    /// Older than the last accepted checkpoint.
    #[error("checkpoint size {got} is below the last accepted size {last}")]
    Rollback {
        /// Offered size.
        got: u64,
        /// Last accepted size.
        last: u64,
    },
    /// Not consistent with the last accepted checkpoint: a fork.
    #[error(
        "checkpoint of size {size} is not consistent with the last accepted one of size {last}: possible split view"
    )]
    Inconsistent {
        /// Offered size.
        size: u64,
        /// Last accepted size.
        last: u64,
    },
    /// An inclusion proof failed.
    #[error(
        "inclusion proof for entry {index} does not verify against the checkpoint of size {size}"
    )]
    Inclusion {
        /// Entry index.
        index: u64,
        /// Checkpoint size.
        size: u64,
    },
    /// Manifest lacks keys needed for the policy.
    #[error("trust policy: {0}")]
    Policy(String),
    /// Persisting the last checkpoint failed.
    #[error("cannot persist the last checkpoint: {0}")]
    Storage(String),
}

/// Which log and witnesses a verifier trusts, and how many witnesses it needs.
#[derive(Debug, Clone)]
pub struct TrustPolicy {
    origin: String,
    log: LogVerifier,
    witnesses: Vec<CosignatureVerifier>,
    quorum: usize,
}

impl TrustPolicy {
    /// A policy for log `origin` with `log_key`, witnesses `(name, key)`, and
    /// `quorum` required cosignatures.
    pub fn new(
        origin: &str,
        log_key: VerifyingKey,
        witnesses: &[(String, VerifyingKey)],
        quorum: usize,
    ) -> Result<Self, VerifyError> {
        if quorum > witnesses.len() {
            return Err(VerifyError::Policy(format!(
                "quorum {quorum} exceeds the {} configured witnesses",
                witnesses.len()
            )));
        }
        Ok(Self {
            origin: origin.to_owned(),
            log: LogVerifier::new(origin, log_key),
            witnesses: witnesses
                .iter()
                .map(|(n, k)| CosignatureVerifier::new(n, *k))
                .collect(),
            quorum,
        })
    }

    /// The policy the deployment manifest states: its log, its witnesses and
    /// its `witness_quorum`.
    pub fn from_manifest(m: &Manifest) -> Result<Self, VerifyError> {
        let log = m
            .log()
            .ok_or_else(|| VerifyError::Policy("manifest has no log".into()))?;
        let key = log
            .verifying_key()
            .map_err(|e| VerifyError::Policy(e.to_string()))?;
        let mut witnesses = Vec::new();
        for w in m.with_role(Role::Witness) {
            let k = w
                .verifying_key()
                .map_err(|e| VerifyError::Policy(e.to_string()))?;
            witnesses.push((w.name.clone(), k));
        }
        Self::new(&log.name, key, &witnesses, m.witness_quorum)
    }

    /// The log origin.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Checks the log signature and the witness quorum of a checkpoint note.
    pub fn verify_checkpoint(&self, note: &[u8]) -> Result<VerifiedCheckpoint, VerifyError> {
        let parsed = parse_checkpoint(note).map_err(|e| VerifyError::Malformed(e.to_string()))?;
        let origin = parsed.checkpoint.origin();
        if origin != self.origin {
            return Err(VerifyError::WrongOrigin {
                found: origin.to_owned(),
                expected: self.origin.clone(),
            });
        }
        let mut list: Vec<Box<dyn signed_note::Verifier>> = vec![Box::new(self.log.clone())];
        for w in &self.witnesses {
            list.push(Box::new(w.clone()));
        }
        let (verified, _unknown) = parsed
            .note
            .verify(&VerifierList::new(list))
            .map_err(|e| VerifyError::Signature(e.to_string()))?;
        let log_signed = verified
            .iter()
            .any(|s| s.name() == self.log.name() && s.id() == self.log.key_id());
        if !log_signed {
            return Err(VerifyError::Signature("no signature by the log key".into()));
        }
        let mut witnesses: Vec<String> = Vec::new();
        for w in &self.witnesses {
            let found = verified
                .iter()
                .any(|s| s.name() == w.name() && s.id() == w.key_id());
            if found && !witnesses.iter().any(|n| n == w.name()) {
                witnesses.push(w.name().to_owned());
            }
        }
        if witnesses.len() < self.quorum {
            return Err(VerifyError::Quorum {
                got: witnesses.len(),
                need: self.quorum,
            });
        }
        Ok(VerifiedCheckpoint {
            size: parsed.checkpoint.size(),
            hash: *parsed.checkpoint.hash(),
            note: note.to_vec(),
            witnesses,
        })
    }
}

/// A checkpoint whose log signature and witness quorum were verified.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedCheckpoint {
    size: u64,
    hash: Hash,
    note: Vec<u8>,
    witnesses: Vec<String>,
}

impl VerifiedCheckpoint {
    /// Tree size.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// Root hash.
    pub fn hash(&self) -> Hash {
        self.hash
    }
    /// The note as received.
    pub fn note(&self) -> &[u8] {
        &self.note
    }
    /// Witnesses whose cosignatures verified.
    pub fn witnesses(&self) -> &[String] {
        &self.witnesses
    }
}

/// Proof that an entry is in a verified checkpoint; only [`verify_inclusion`] makes one.
#[derive(Debug, Clone, PartialEq)]
pub struct InclusionVerified {
    index: u64,
    size: u64,
}

impl InclusionVerified {
    /// The entry's index.
    pub fn index(&self) -> u64 {
        self.index
    }
    /// Size of the checkpoint it was proven against.
    pub fn size(&self) -> u64 {
        self.size
    }
}

/// Verifies that `entry` is entry `index` of the tree `checkpoint` commits to.
pub fn verify_inclusion(
    checkpoint: &VerifiedCheckpoint,
    index: u64,
    entry: &[u8],
    proof: &[Hash],
) -> Result<InclusionVerified, VerifyError> {
    let err = VerifyError::Inclusion {
        index,
        size: checkpoint.size,
    };
    if !check_inclusion(
        checkpoint.size,
        checkpoint.hash,
        index,
        tlog_tiles::record_hash(entry),
        proof,
    ) {
        return Err(err);
    }
    Ok(InclusionVerified {
        index,
        size: checkpoint.size,
    })
}

/// Whether `proof` shows that `leaf` (an RFC 6962 leaf hash) is entry
/// `index` of the tree of `size` entries with root `root`. Prefer
/// [`verify_inclusion`], which only accepts a verified checkpoint.
pub fn check_inclusion(size: u64, root: Hash, index: u64, leaf: Hash, proof: &[Hash]) -> bool {
    index < size
        && proof.len() <= MAX_PROOF_HASHES
        && tlog_tiles::check_record(&proof.to_vec(), size, root, index, leaf).is_ok()
}

/// Whether `proof` shows that the tree (`old_size`, `old_hash`) is a prefix of
/// (`size`, `hash`).
pub fn verify_consistency(
    old_size: u64,
    old_hash: Hash,
    size: u64,
    hash: Hash,
    proof: &[Hash],
) -> bool {
    if old_size > size || proof.len() > MAX_PROOF_HASHES {
        return false;
    }
    if old_size == size {
        return old_hash == hash && proof.is_empty();
    }
    if old_size == 0 {
        return proof.is_empty();
    }
    tlog_tiles::check_tree(&proof.to_vec(), size, hash, old_size, old_hash).is_ok()
}

/// A verifier with memory: the last checkpoint it accepted, persisted in a
/// file ([`Verifier::open`]) or by its caller ([`Verifier::with_last`]).
#[derive(Debug)]
pub struct Verifier {
    policy: TrustPolicy,
    /// Where each accepted checkpoint is written; `None`: the caller keeps it.
    path: Option<PathBuf>,
    last: Option<VerifiedCheckpoint>,
}

impl Verifier {
    /// Opens the verifier state at `path` (created on first update); a stored
    /// checkpoint is verified again under `policy`.
    pub fn open(policy: TrustPolicy, path: &Path) -> Result<Self, VerifyError> {
        let last = match std::fs::read(path) {
            Ok(bytes) => Some(policy.verify_checkpoint(&bytes)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(VerifyError::Storage(e.to_string())),
        };
        Ok(Self {
            policy,
            path: Some(path.to_path_buf()),
            last,
        })
    }

    /// A verifier whose last accepted checkpoint is `last` (verified again
    /// under `policy`), kept by the caller instead of a file: an update
    /// writes nothing, and the caller must persist the accepted
    /// [`VerifiedCheckpoint::note`] before it acts on anything proven
    /// against it (for instance in the same database transaction), and give
    /// it back here next time. A caller that loses it falls back to an
    /// older checkpoint and is then protected only from there on.
    pub fn with_last(policy: TrustPolicy, last: Option<&[u8]>) -> Result<Self, VerifyError> {
        let last = last
            .map(|note| policy.verify_checkpoint(note))
            .transpose()?;
        Ok(Self {
            policy,
            path: None,
            last,
        })
    }

    /// The trust policy.
    pub fn policy(&self) -> &TrustPolicy {
        &self.policy
    }

    /// The last accepted checkpoint.
    pub fn last(&self) -> Option<&VerifiedCheckpoint> {
        self.last.as_ref()
    }

    /// Verifies `note` (signature and quorum) and its consistency with the
    /// last accepted checkpoint (`proof` from the last size to the new one),
    /// then persists it as the new last checkpoint (in the file of
    /// [`Verifier::open`]; a [`Verifier::with_last`] caller persists it).
    pub fn update_checkpoint(
        &mut self,
        note: &[u8],
        proof: &[Hash],
    ) -> Result<VerifiedCheckpoint, VerifyError> {
        let new = self.policy.verify_checkpoint(note)?;
        self.accept_checkpoint(new, proof)
    }

    /// As [`Verifier::update_checkpoint`], for a checkpoint that this
    /// verifier's own policy verified ([`Verifier::policy`]; crate-private
    /// so that no checkpoint verified under another policy gets in):
    /// checks its consistency with the last accepted one and persists it.
    pub(crate) fn accept_checkpoint(
        &mut self,
        new: VerifiedCheckpoint,
        proof: &[Hash],
    ) -> Result<VerifiedCheckpoint, VerifyError> {
        if let Some(last) = &self.last {
            if new.size < last.size {
                return Err(VerifyError::Rollback {
                    got: new.size,
                    last: last.size,
                });
            }
            let proof = if new.size == last.size {
                &[][..]
            } else {
                proof
            };
            if !verify_consistency(last.size, last.hash, new.size, new.hash, proof) {
                return Err(VerifyError::Inconsistent {
                    size: new.size,
                    last: last.size,
                });
            }
        }
        if let Some(path) = &self.path {
            write_atomic(path, &new.note).map_err(|e| VerifyError::Storage(e.to_string()))?;
        }
        self.last = Some(new.clone());
        Ok(new)
    }
}
