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
//! fixed while the log runs, so [`Admission::new`] decompresses each
//! participant's key once ([`AuthorKey`]). The per-statement check then
//! costs one SHA-512 and one double-base scalar multiplication: it skips the
//! two point decompressions (author key and `R`) that `verify_strict` does
//! on every call, and accepts exactly the same signatures (see
//! [`AuthorKey::verify_strict`], and the differential tests below).
//!
//! Ed25519 batch verification is deliberately not used: a batch equation
//! also accepts an `R` carrying a small-order component that `verify_strict`
//! refuses (the author can make such signatures), and ruling that out
//! exactly costs a scalar multiplication per signature, more than the batch
//! saves (design record 0004).

use std::collections::HashMap;

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use custos_wire::WireError;
use custos_wire::manifest::{Manifest, Role};
use custos_wire::statement::{
    STATEMENT_SIGNING_LABEL, SignedStatement, Statement, StatementError, StatementKind,
};
use sha2::{Digest as _, Sha512};

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

/// An Ed25519 public key decompressed once, for repeated strict verification.
#[derive(Debug, Clone)]
pub struct AuthorKey {
    /// The key's encoding exactly as the manifest gives it (hashed into `k`).
    bytes: [u8; 32],
    /// The negated key point, `-A`.
    minus_a: EdwardsPoint,
    /// Whether `A` has small order; strict verification refuses every
    /// signature under such a key.
    small_order: bool,
}

impl AuthorKey {
    /// Decompresses `bytes`; `None` if they encode no curve point.
    pub fn from_bytes(bytes: &[u8; 32]) -> Option<Self> {
        let a = CompressedEdwardsY(*bytes).decompress()?;
        Some(Self {
            bytes: *bytes,
            minus_a: -a,
            small_order: a.is_small_order(),
        })
    }

    /// Strict Ed25519 verification of `signature` over the concatenation of
    /// `message`; accepts exactly what `ed25519-dalek`'s `verify_strict`
    /// accepts for this key:
    /// - `s` must be canonical (`s < ℓ`), and `A` must not have small order;
    /// - with `k = SHA-512(R_bytes || A_bytes || M) mod ℓ` and
    ///   `R' = [s]B − [k]A`, the canonical encoding of `R'` must equal
    ///   `R_bytes` byte for byte, and `R'` must not have small order.
    ///
    /// `verify_strict` instead decompresses `R_bytes` to `R` and requires
    /// `R` not of small order and `encode(R') == R_bytes`. The two agree:
    /// if `encode(R') == R_bytes` then `R_bytes` decompresses to `R'` itself
    /// (decompression inverts the canonical encoding), so `R = R'`; and a
    /// non-canonical or invalid `R_bytes` never equals a canonical encoding.
    pub fn verify_strict(&self, message: &[&[u8]], signature: &[u8; 64]) -> bool {
        let (r_bytes, s_bytes) = signature.split_at(32);
        let Ok(s_bytes) = <[u8; 32]>::try_from(s_bytes) else {
            return false;
        };
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else {
            return false;
        };
        if self.small_order {
            return false;
        }
        let mut h = Sha512::new();
        h.update(r_bytes);
        h.update(self.bytes);
        for part in message {
            h.update(part);
        }
        let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
        let r = EdwardsPoint::vartime_double_scalar_mul_basepoint(&k, &self.minus_a, &s);
        r.compress().as_bytes().as_slice() == r_bytes && !r.is_small_order()
    }
}

#[cfg(test)]
mod tests;
