//! Admission of signed statements: canonical form, strict author signature,
//! manifest participant, role rule.
//!
//! # Guarantees
//! [`Admission::admit`] accepts a statement exactly when
//! [`SignedStatement::decode`] accepts its bytes,
//! [`SignedStatement::verify`] accepts its signature (strict Ed25519, as
//! `ed25519-dalek`'s `verify_strict`), its author is a participant of the
//! manifest, and that participant's role may publish its type. Each refusal
//! is an [`AdmissionError`] naming the first check that failed, in that
//! order, so a submitter always learns which of its statements is bad and why.
//!
//! # Prepared author keys
//! Statements can only come from manifest participants, and the manifest is
//! fixed while the log runs, so [`Admission::new`] parses (decompresses)
//! each participant's key once ([`AuthorKey`]); the per-statement check is
//! `ed25519-dalek`'s own `verify_strict` with that prepared key. An earlier
//! version verified with curve arithmetic of its own to skip the
//! decompression of `R` as well (about 20 % of the check); it was replaced
//! by the library's verification, because signature verification is a
//! primitive this project does not write itself.
//!
//! Ed25519 batch verification is deliberately not used: a batch equation
//! also accepts an `R` carrying a small-order component that `verify_strict`
//! refuses (the author can make such signatures), and ruling that out
//! exactly costs a scalar multiplication per signature, more than the batch
//! saves (design record 0004).

use std::collections::HashMap;

use custos_wire::WireError;
use custos_wire::manifest::{Manifest, Role};
use custos_wire::statement::{
    STATEMENT_SIGNING_LABEL, SignedStatement, Statement, StatementError, StatementKind,
};
use ed25519_dalek::{Signature, VerifyingKey};

/// Why a statement was refused. Nothing about the log changes on a refusal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdmissionError {
    /// The bytes are not one canonical `SignedStatement`.
    #[error("{0}; the body must be one canonical SignedStatement (docs/spec/statements.md)")]
    Malformed(WireError),
    /// The author key or signature is invalid (strict Ed25519).
    #[error(transparent)]
    Signature(StatementError),
    /// The author key is not a manifest participant's.
    #[error("the author key is not a participant of the deployment manifest")]
    UnknownAuthor,
    /// The author's role may not publish this statement type.
    #[error("participant `{name}` has role {role:?}, which may not publish {} statements", kind.name())]
    RoleNotAllowed {
        /// The participant's name in the manifest.
        name: String,
        /// Its role.
        role: Role,
        /// The refused statement type.
        kind: StatementKind,
    },
}

/// The admission rules of one manifest, with its participants' keys prepared.
#[derive(Debug)]
pub struct Admission {
    authors: HashMap<[u8; 32], Author>,
}

#[derive(Debug)]
struct Author {
    name: String,
    role: Role,
    key: AuthorKey,
}

impl Admission {
    /// Prepares the keys of every participant of `manifest`.
    pub fn new(manifest: &Manifest) -> Self {
        let authors = manifest
            .participants
            .iter()
            .filter_map(|p| {
                let bytes = p.verifying_key().ok()?.to_bytes();
                let key = AuthorKey::from_bytes(&bytes)?;
                Some((
                    bytes,
                    Author {
                        name: p.name.clone(),
                        role: p.role,
                        key,
                    },
                ))
            })
            .collect();
        Self { authors }
    }

    /// Checks one encoded statement; see the module docs for what acceptance means.
    pub fn admit(&self, bytes: &[u8]) -> Result<Statement, AdmissionError> {
        let signed = SignedStatement::decode(bytes).map_err(AdmissionError::Malformed)?;
        let Some(author) = self.authors.get(signed.author()) else {
            // Not a participant: the reference check gives the same error
            // precedence as for participants (a bad signature first).
            signed.verify().map_err(signature_error)?;
            return Err(AdmissionError::UnknownAuthor);
        };
        if !author.key.verify_strict(
            &[STATEMENT_SIGNING_LABEL, signed.statement_bytes()],
            signed.signature(),
        ) {
            return Err(AdmissionError::Signature(StatementError::BadSignature));
        }
        let statement = Statement::decode(signed.statement_bytes())
            .map_err(|e| signature_error(StatementError::Wire(e)))?;
        let kind = statement.kind();
        if !author.role.may_publish(kind) {
            return Err(AdmissionError::RoleNotAllowed {
                name: author.name.clone(),
                role: author.role,
                kind,
            });
        }
        Ok(statement)
    }
}

fn signature_error(e: StatementError) -> AdmissionError {
    match e {
        StatementError::Wire(w) => AdmissionError::Malformed(w),
        other => AdmissionError::Signature(other),
    }
}

/// An Ed25519 public key parsed once, for repeated strict verification.
#[derive(Debug, Clone)]
pub struct AuthorKey {
    key: VerifyingKey,
}

impl AuthorKey {
    /// Parses `bytes`; `None` if they encode no curve point.
    pub fn from_bytes(bytes: &[u8; 32]) -> Option<Self> {
        VerifyingKey::from_bytes(bytes).ok().map(|key| Self { key })
    }

    /// Strict Ed25519 verification (`ed25519-dalek`'s `verify_strict`: a
    /// canonical `s`, and neither the key nor `R` of small order) of
    /// `signature` over the concatenation of `message`.
    pub fn verify_strict(&self, message: &[&[u8]], signature: &[u8; 64]) -> bool {
        let message = message.concat();
        custos_wire::signature::verify_strict(
            &self.key,
            &message,
            &Signature::from_bytes(signature),
        )
        .is_ok()
    }
}

#[cfg(test)]
mod tests;
