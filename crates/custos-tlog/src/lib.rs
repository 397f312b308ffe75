//! The Custos transparency log: an append-only, witnessed log of signed
//! statements that nobody can fork or rewrite unnoticed.
//!
//! # What this crate provides
//! - [`merkle`]: RFC 9162 hashing and proofs (through `tlog_tiles`), C2SP tile paths.
//! - [`checkpoint`], [`keys`]: C2SP checkpoints in signed notes, log keys, and
//!   C2SP `cosignature/v1` [`keys::CosignatureSigner`]/[`keys::CosignatureVerifier`].
//! - [`storage`], [`server`]: the log server with batched, fsync'd sequencing
//!   and the C2SP tlog-tiles read API; [`admission`] checks statements
//!   against the manifest; [`witnessing`] gathers cosignatures.
//! - [`witness`]: the C2SP tlog-witness server.
//! - [`verifier`], [`client`]: the verifying client used by custodians,
//!   clients, the delivery server and [`audit`].
//!
//! # Guarantees
//! - An entry is acknowledged only once it and a checkpoint covering it are
//!   durable; the log never serves two inconsistent checkpoints, across
//!   crashes and restarts (see [`storage`] for the durable steps).
//! - The log admits only canonical statements whose author signature verifies
//!   and whose author's manifest role may publish their type.
//! - A witness cosigns only checkpoints consistent with the last one it
//!   cosigned, checking and storing atomically.
//! - A [`verifier::Verifier`] accepts only checkpoints with the log signature,
//!   a quorum of witness cosignatures, and consistency with its last one.
//! - Request handlers never panic on request bytes; refusals are JSON errors.
//!
//! # Not guaranteed
//! The log sees every statement (they are public by design). A log that
//! colludes with a quorum of witnesses can show a split view; witnesses must
//! be independent. The log's availability is not protected.
#![forbid(unsafe_code)]

pub mod admission;
pub mod audit;
pub mod checkpoint;
pub mod client;
pub mod http;
pub mod keys;
pub mod merkle;
pub mod proof_json;
pub mod server;
pub mod storage;
pub mod verifier;
pub mod witness;
pub mod witnessing;

pub use client::{ClientError, LogClient, Submission};
pub use keys::{ALG_COSIGNATURE_V1, ALG_ED25519, NamedKey};
pub use merkle::{Hash, Tree};
pub use server::{LogConfig, LogHandle, open_log, spawn_log};
pub use verifier::{
    InclusionVerified, TrustPolicy, VerifiedCheckpoint, Verifier, VerifyError, check_inclusion,
    verify_consistency, verify_inclusion,
};
pub use witness::{WitnessConfig, spawn_witness, witness_router};
