//! Court and authority tools of Custos (DESIGN.md §4): warrants signed by a
//! court, their public commitments in the transparency log, and the
//! collection, verification and combination of custodians' key shares.
//!
//! # Security meaning
//! An authority can open a conversation-day only with `t` partial keys that
//! custodians released under a warrant whose commitment is in the log; this
//! crate checks every partial key against the day key published in the log
//! before it combines them, and keeps the combined identity keys encrypted.
#![forbid(unsafe_code)]

pub mod collect;
pub mod court;
pub mod dates;
mod error;
pub mod evidence;
pub mod intercept;
pub mod keys;
pub mod store;
pub mod submit;

use std::time::Duration;

use custos_tlog::{ClientError, LogClient, Verifier};
use custos_wire::statement::SignedStatement;

pub use error::{AuthorityError, CollectError, InterceptError};

/// How long to wait for the witness quorum on a logged statement.
pub const WITNESS_TIMEOUT: Duration = Duration::from_secs(30);

/// Submits a signed statement and waits until a checkpoint with the
/// manifest's witness quorum includes it (checked by `verifier`, which also
/// checks consistency with the last checkpoint it saw). Returns its index.
pub async fn log_and_wait(
    log: &LogClient,
    verifier: &mut Verifier,
    statement: &SignedStatement,
) -> Result<u64, AuthorityError> {
    let sub = log.submit(statement).await?;
    let bytes = statement.encode()?;
    let deadline = tokio::time::Instant::now() + WITNESS_TIMEOUT;
    loop {
        match log.prove_included(verifier, sub.index, &bytes).await {
            Ok(_) => return Ok(sub.index),
            Err(ClientError::NotYetWitnessed { .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(ClientError::NotYetWitnessed { .. }) => {
                return Err(AuthorityError::NotWitnessed(sub.index));
            }
            Err(e) => return Err(e.into()),
        }
    }
}
