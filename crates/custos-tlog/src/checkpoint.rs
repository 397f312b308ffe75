//! Checkpoints: C2SP tlog-checkpoint texts in C2SP signed notes.
//!
//! # Security meaning
//! A checkpoint is the log's signed claim "the tree of `size` entries has
//! root `hash`". Every served checkpoint must be consistent with every other
//! one; a checkpoint without a quorum of witness cosignatures proves nothing
//! about what other parties were shown.

use signed_note::{Note, Signer, VerifierList};
use tlog_tiles::Checkpoint;

use crate::merkle::Hash;

/// Largest checkpoint note this crate parses (a few signatures, generous).
pub const MAX_NOTE_LEN: usize = 16 * 1024;

/// Why a checkpoint note was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Not a well-formed signed note.
    #[error("malformed signed note")]
    MalformedNote,
    /// The note text is not a C2SP checkpoint.
    #[error("note text is not a C2SP checkpoint")]
    MalformedCheckpoint,
    /// Longer than [`MAX_NOTE_LEN`].
    #[error("checkpoint note longer than {MAX_NOTE_LEN} bytes")]
    TooLong,
    /// Signature checks failed (bad signature from a known key, or no known key).
    #[error("checkpoint signature check failed: {0}")]
    Signature(String),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(String),
}

/// The checkpoint note text for `origin`, `size`, `hash` (no extension lines).
pub fn checkpoint_text(origin: &str, size: u64, hash: Hash) -> Result<Vec<u8>, CheckpointError> {
    Ok(Checkpoint::new(origin, size, hash, "")
        .map_err(|_| CheckpointError::MalformedCheckpoint)?
        .to_bytes())
}

/// Signs a checkpoint with the log's signer; returns the note bytes.
pub fn sign_checkpoint(
    signer: &dyn Signer,
    origin: &str,
    size: u64,
    hash: Hash,
) -> Result<Vec<u8>, CheckpointError> {
    let text = checkpoint_text(origin, size, hash)?;
    let mut note = Note::new(&text, &[]).map_err(|_| CheckpointError::MalformedNote)?;
    note.add_sigs(&[signer])
        .map_err(|e| CheckpointError::Sign(e.to_string()))?;
    Ok(note.to_bytes())
}

/// A parsed (not yet trusted) checkpoint note.
#[derive(Debug)]
pub struct ParsedCheckpoint {
    /// The note.
    pub note: Note,
    /// Its checkpoint text.
    pub checkpoint: Checkpoint,
}

/// Parses a signed checkpoint note without checking signatures.
pub fn parse_checkpoint(bytes: &[u8]) -> Result<ParsedCheckpoint, CheckpointError> {
    if bytes.len() > MAX_NOTE_LEN {
        return Err(CheckpointError::TooLong);
    }
    let note = Note::from_bytes(bytes).map_err(|_| CheckpointError::MalformedNote)?;
    let checkpoint =
        Checkpoint::from_bytes(note.text()).map_err(|_| CheckpointError::MalformedCheckpoint)?;
    Ok(ParsedCheckpoint { note, checkpoint })
}

/// Verifies a note against known verifiers; returns the names of the keys
/// whose signatures verified. Any failing signature from a known key refuses
/// the whole note, as C2SP signed-note recommends.
pub fn verified_signers(
    note: &Note,
    verifiers: VerifierList,
) -> Result<Vec<String>, CheckpointError> {
    let (verified, _unknown) = note
        .verify(&verifiers)
        .map_err(|e| CheckpointError::Signature(e.to_string()))?;
    Ok(verified.iter().map(|s| s.name().to_owned()).collect())
}
