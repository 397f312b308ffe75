//! The Custos transparency log server: admission of signed statements,
//! batched durable sequencing, the C2SP tlog-tiles read API and witness
//! cosigning. Verification lives in `custos-tlog`, which this crate uses to
//! sign and check checkpoints.
//!
//! # What this crate provides
//! - [`storage`]: the crash-safe files of the log behind a storage seam,
//!   and the rule that the log never signs a smaller size than before.
//! - [`server`]: the HTTP API and the single sequencer.
//! - [`admission`]: statements checked against the manifest.
//! - [`witnessing`]: cosignatures gathered from the manifest's witnesses.
//!
//! # Guarantees
//! - An entry is acknowledged only once it and a checkpoint covering it are
//!   durable; the log never serves two inconsistent checkpoints, never
//!   shrinks and never forks, across crashes, restarts and restored data
//!   directories (see [`storage`] for the durable steps).
//! - The log admits only canonical statements whose author signature verifies
//!   and whose author's manifest role may publish their type.
//! - Request handlers never panic on request bytes; refusals are JSON errors.
//!
//! # Not guaranteed
//! The log's availability is not protected; a log that colludes with a
//! quorum of witnesses can show a split view.
#![forbid(unsafe_code)]

pub mod admission;
pub mod server;
pub mod storage;
pub mod witnessing;

pub use server::{
    LogConfig, LogHandle, open_log, publish_manifest_in_process, spawn_log, spawn_log_tls,
};
