//! Verifying the Custos transparency log: an append-only, witnessed log of
//! signed statements that nobody can fork or rewrite unnoticed.
//!
//! This crate holds every check that a device, custodian, authority, court or
//! auditor runs on the log, and no server: it has no network I/O and does not
//! depend on an HTTP server or a database. The log server lives in
//! `custos-log-server`, the witness in `custos-witness-server`. The HTTP
//! `LogClient` is behind the non-default cargo feature `client`.
//!
//! # What this crate provides
//! - [`merkle`]: RFC 9162 hashing and proofs (through `tlog_tiles`), C2SP tile paths.
//! - [`checkpoint`], [`keys`]: C2SP checkpoints in signed notes, log keys, and
//!   C2SP `cosignature/v1` [`keys::CosignatureSigner`]/[`keys::CosignatureVerifier`].
//! - [`verifier`]: the [`TrustPolicy`] (log key, witnesses, quorum) and the
//!   [`Verifier`] that remembers its last checkpoint.
//! - [`audit`]: replaying every entry against a checkpoint and the manifest.
//! - [`log_api`], [`witness_api`], [`proof_json`], [`follow_answer`]: the
//!   log's and the witness's request and answer formats, shared with the
//!   servers.
//! - [`signed_size`]: the log's record of the largest size it signed.
//! - `client` (feature `client`): the HTTP client of the log.
//!
//! # Guarantees
//! - A [`Verifier`] accepts only checkpoints with the log signature, a
//!   quorum of witness cosignatures, and consistency with its last one, and
//!   stores its last checkpoint durably (`custos-durable`) before returning.
//! - Parsers accept only canonical, bounded input and never panic on it.
//!
//! # Not guaranteed
//! The log sees every statement (they are public by design). A log that
//! colludes with a quorum of witnesses can show a split view; witnesses must
//! be independent.
#![forbid(unsafe_code)]

pub mod audit;
pub mod checkpoint;
#[cfg(feature = "client")]
pub mod client;
pub mod follow_answer;
pub mod keys;
pub mod log_api;
pub mod merkle;
pub mod proof_json;
pub mod signed_size;
pub mod verifier;
pub mod witness_api;

#[cfg(feature = "client")]
pub use client::{ClientError, LogClient, ReadRound, Submission};
pub use keys::{ALG_COSIGNATURE_V1, ALG_ED25519, NamedKey};
pub use merkle::{Hash, StreamingRoot, Tree};
pub use verifier::{
    InclusionVerified, TrustPolicy, VerifiedCheckpoint, Verifier, VerifyError, check_inclusion,
    verify_consistency, verify_inclusion,
};
