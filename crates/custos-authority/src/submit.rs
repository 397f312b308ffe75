//! The authority's public commitment to a warrant.

use custos_tlog::{LogClient, Verifier};
use custos_wire::statement::{SignedStatement, Statement, WarrantCommitment, warrant_commitment};
use custos_wire::warrant::Warrant;
use ed25519_dalek::SigningKey;
use rand_core::{OsRng, RngCore as _};
use serde::{Deserialize, Serialize};

use crate::{AuthorityError, log_and_wait};

/// A warrant whose commitment is in the log: what `collect` needs. Kept by
/// the authority (it holds the salt, which unseals the warrant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmittedWarrant {
    /// The encoded, court-signed warrant, hex.
    pub warrant: String,
    /// The commitment salt, hex.
    pub salt: String,
    /// The signed `WarrantCommitment` statement as logged, hex.
    pub entry: String,
    /// Its log index.
    pub index: u64,
    /// The commitment, hex.
    pub commitment: String,
}

impl SubmittedWarrant {
    /// The decoded warrant.
    pub fn warrant(&self) -> Result<Warrant, AuthorityError> {
        Ok(Warrant::decode(&unhex(&self.warrant)?)?)
    }
}

pub(crate) fn unhex(s: &str) -> Result<Vec<u8>, AuthorityError> {
    hex::decode(s).map_err(|_| AuthorityError::File("expected hex".into()))
}

/// The `WarrantCommitment` statement of `warrant` under `salt`.
pub fn commitment_statement(
    warrant: &Warrant,
    salt: &[u8; 32],
) -> Result<Statement, AuthorityError> {
    let bytes = warrant.encode()?;
    let f = warrant.fields();
    let n = |v: usize| u16::try_from(v).map_err(|_| AuthorityError::Manifest("count".into()));
    Ok(Statement::WarrantCommitment(WarrantCommitment {
        commitment: warrant_commitment(salt, &bytes),
        court: f.court.clone(),
        authority: f.authority.clone(),
        issued_at: f.issued_at,
        embargo_until: f.embargo_until,
        targets: n(f.targets.len())?,
        days: n(f.days() as usize)?,
        court_signature: warrant.signature().to_vec(),
    }))
}

/// Logs the commitment to `warrant` with a fresh salt, signed by the
/// authority, and waits until a checkpoint with the witness quorum
/// includes it.
pub async fn submit(
    log: &LogClient,
    verifier: &mut Verifier,
    warrant: &Warrant,
    authority_key: &SigningKey,
) -> Result<SubmittedWarrant, AuthorityError> {
    let mut salt = [0u8; 32];
    OsRng.fill_bytes(&mut salt);
    let st = commitment_statement(warrant, &salt)?;
    let Statement::WarrantCommitment(c) = &st else {
        return Err(AuthorityError::Manifest("commitment".into()));
    };
    let commitment = c.commitment;
    let signed = SignedStatement::sign(&st, authority_key)?;
    let index = log_and_wait(log, verifier, &signed).await?;
    Ok(SubmittedWarrant {
        warrant: hex::encode(warrant.encode()?),
        salt: hex::encode(salt),
        entry: hex::encode(signed.encode()?),
        index,
        commitment: hex::encode(commitment),
    })
}
