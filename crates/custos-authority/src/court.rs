//! The court's tools: sign a warrant, extend its embargo, revoke it.

use custos_tlog::{LogClient, Verifier};
use custos_wire::ConversationId;
use custos_wire::statement::{EmbargoExtension, SignedStatement, Statement, WarrantRevocation};
use custos_wire::warrant::{Warrant, WarrantFields};
use ed25519_dalek::SigningKey;
use rand_core::{OsRng, RngCore as _};

use crate::{AuthorityError, log_and_wait};

/// What a court orders; [`sign_warrant`] adds a random id and signs.
#[derive(Debug, Clone)]
pub struct WarrantOrder {
    /// The court's manifest name.
    pub court: String,
    /// The authority's manifest name.
    pub authority: String,
    /// The authority's HPKE public key.
    pub authority_hpke_key: [u8; 32],
    /// Legal basis.
    pub legal_basis: String,
    /// Target conversations (any order; sorted and deduplicated here).
    pub targets: Vec<ConversationId>,
    /// First and last UTC day.
    pub days: (u32, u32),
    /// Issue time, not-after and embargo end, Unix seconds.
    pub issued_at: u64,
    /// After this no release.
    pub not_after: u64,
    /// Sealed until this time.
    pub embargo_until: u64,
}

/// Signs a warrant for `order` with the court's key. The format's bounds
/// are checked here; the custodians check the deployment's policy.
pub fn sign_warrant(
    order: WarrantOrder,
    court_key: &SigningKey,
) -> Result<Warrant, AuthorityError> {
    let mut targets = order.targets;
    targets.sort();
    targets.dedup();
    let mut id = [0u8; 16];
    OsRng.fill_bytes(&mut id);
    Ok(Warrant::sign(
        WarrantFields {
            id,
            court: order.court,
            authority: order.authority,
            legal_basis: order.legal_basis,
            targets,
            first_day: order.days.0,
            last_day: order.days.1,
            issued_at: order.issued_at,
            not_after: order.not_after,
            embargo_until: order.embargo_until,
            authority_hpke_key: order.authority_hpke_key,
        },
        court_key,
    )?)
}

/// Logs a court-signed revocation of the warrant with `commitment` and
/// waits for the witness quorum; returns its log index.
pub async fn revoke(
    log: &LogClient,
    verifier: &mut Verifier,
    court: &str,
    court_key: &SigningKey,
    commitment: [u8; 32],
    now: u64,
) -> Result<u64, AuthorityError> {
    let st = Statement::WarrantRevocation(WarrantRevocation {
        warrant: commitment,
        court: court.to_owned(),
        revoked_at: now,
    });
    log_and_wait(log, verifier, &SignedStatement::sign(&st, court_key)?).await
}

/// Logs a court-signed embargo extension and waits for the witness quorum;
/// returns its log index.
pub async fn extend_embargo(
    log: &LogClient,
    verifier: &mut Verifier,
    court: &str,
    court_key: &SigningKey,
    commitment: [u8; 32],
    embargo_until: u64,
    now: u64,
) -> Result<u64, AuthorityError> {
    let st = Statement::EmbargoExtension(EmbargoExtension {
        warrant: commitment,
        court: court.to_owned(),
        embargo_until,
        issued_at: now,
    });
    log_and_wait(log, verifier, &SignedStatement::sign(&st, court_key)?).await
}
