//! Statements: the typed, canonical entries of the Custos transparency log.
//!
//! Every log entry is a [`SignedStatement`]: a [`Statement`] encoded in its one
//! canonical form, the Ed25519 public key of its author, and the author's
//! signature over `custos/v1/statement || statement bytes`. The log admits a
//! statement only if the author is a participant of the deployment manifest
//! whose role may publish that statement type (see
//! [`crate::manifest::Role::may_publish`]).
//!
//! # Security meaning
//! A statement in a log checkpoint that enough witnesses cosigned is public and
//! permanent: every auditor sees the same statement. The author signature
//! binds the statement to a manifest participant, so no one (the log
//! included) can publish in a custodian's, court's or provider's name.
//!
//! Wire format: `docs/spec/statements.md`. Decoders reject any non-canonical
//! input, so `encode(decode(b)) == b` for every accepted `b`.

mod body;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use crate::WireError;
use crate::codec::{Reader, Writer};

pub use body::{
    DayKeyErasure, EmbargoExtension, EscrowDayKey, HashListRoot, Interception, KeyDirectoryEpoch,
    KeyPurpose, KeyRelease, MAX_NAME_LEN, MAX_RECOVERY_LEN, ManifestPublication, MatchingCases,
    MatchingPolicy, ParticipantKey, ProviderFrankingKey, StatementKind, WarrantCommitment,
    WarrantRevocation, WarrantUnsealing, warrant_commitment,
};

/// Version byte of the statement and signed-statement encodings.
pub const STATEMENT_VERSION: u8 = 1;

/// Domain-separation label prefixed to the statement bytes before signing.
pub const STATEMENT_SIGNING_LABEL: &[u8] = b"custos/v1/statement";

/// Largest encoded [`Statement`], in bytes. With the signed wrapper the entry
/// stays below the 65,535-byte bound of a C2SP tlog-tiles entry bundle.
pub const MAX_STATEMENT_LEN: usize = 60_000;

/// Largest encoded [`SignedStatement`] (version, key, length, statement, signature).
pub const MAX_SIGNED_STATEMENT_LEN: usize = 1 + 32 + 2 + MAX_STATEMENT_LEN + 64;

/// One typed log statement. Each variant's fields are listed in
/// `docs/spec/statements.md`; the meaning of each is on its struct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    /// A participant publishes one of its public keys.
    ParticipantKey(ParticipantKey),
    /// Custodians publish the public part of a day's escrow key.
    EscrowDayKey(EscrowDayKey),
    /// An authority commits to a court-signed warrant before any key is released.
    WarrantCommitment(WarrantCommitment),
    /// A custodian records that it released key shares under a warrant.
    KeyRelease(KeyRelease),
    /// The provider records that it keeps envelopes under a warrant.
    Interception(Interception),
    /// The warrant itself, published when its embargo ends.
    WarrantUnsealing(WarrantUnsealing),
    /// A court extends a warrant's embargo.
    EmbargoExtension(EmbargoExtension),
    /// A custodian records that it erased its share of a day key.
    DayKeyErasure(DayKeyErasure),
    /// The provider publishes the key that signs delivery tags.
    ProviderFrankingKey(ProviderFrankingKey),
    /// A court revokes a warrant.
    WarrantRevocation(WarrantRevocation),
    /// The log publishes the hash of the deployment manifest.
    ManifestPublication(ManifestPublication),
    /// The provider publishes the root of one key-directory epoch.
    KeyDirectoryEpoch(KeyDirectoryEpoch),
    /// The provider publishes the root of its blinded hash table (kind 13).
    HashListRoot(HashListRoot),
    /// The provider publishes its matching policy (kind 14).
    MatchingPolicy(MatchingPolicy),
    /// The provider publishes its matching figures (kind 15).
    MatchingCases(MatchingCases),
}

impl Statement {
    /// The statement's type, used for the role rule and for audit counts.
    pub fn kind(&self) -> StatementKind {
        match self {
            Self::ParticipantKey(_) => StatementKind::ParticipantKey,
            Self::EscrowDayKey(_) => StatementKind::EscrowDayKey,
            Self::WarrantCommitment(_) => StatementKind::WarrantCommitment,
            Self::KeyRelease(_) => StatementKind::KeyRelease,
            Self::Interception(_) => StatementKind::Interception,
            Self::WarrantUnsealing(_) => StatementKind::WarrantUnsealing,
            Self::EmbargoExtension(_) => StatementKind::EmbargoExtension,
            Self::DayKeyErasure(_) => StatementKind::DayKeyErasure,
            Self::ProviderFrankingKey(_) => StatementKind::ProviderFrankingKey,
            Self::WarrantRevocation(_) => StatementKind::WarrantRevocation,
            Self::ManifestPublication(_) => StatementKind::ManifestPublication,
            Self::KeyDirectoryEpoch(_) => StatementKind::KeyDirectoryEpoch,
            Self::HashListRoot(_) => StatementKind::HashListRoot,
            Self::MatchingPolicy(_) => StatementKind::MatchingPolicy,
            Self::MatchingCases(_) => StatementKind::MatchingCases,
        }
    }

    /// The canonical encoding: version, type tag, then the type's fields.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let mut w = Writer::with_capacity(256);
        w.u8(STATEMENT_VERSION).u8(self.kind().tag());
        match self {
            Self::ParticipantKey(s) => s.write(&mut w)?,
            Self::EscrowDayKey(s) => s.write(&mut w)?,
            Self::WarrantCommitment(s) => s.write(&mut w)?,
            Self::KeyRelease(s) => s.write(&mut w)?,
            Self::Interception(s) => s.write(&mut w)?,
            Self::WarrantUnsealing(s) => s.write(&mut w)?,
            Self::EmbargoExtension(s) => s.write(&mut w)?,
            Self::DayKeyErasure(s) => s.write(&mut w)?,
            Self::ProviderFrankingKey(s) => s.write(&mut w)?,
            Self::WarrantRevocation(s) => s.write(&mut w)?,
            Self::ManifestPublication(s) => s.write(&mut w)?,
            Self::KeyDirectoryEpoch(s) => s.write(&mut w)?,
            Self::HashListRoot(s) => s.write(&mut w)?,
            Self::MatchingPolicy(s) => s.write(&mut w)?,
            Self::MatchingCases(s) => s.write(&mut w)?,
        }
        let bytes = w.into_bytes();
        if bytes.len() > MAX_STATEMENT_LEN {
            return Err(WireError::TooLong {
                field: "statement",
                max: MAX_STATEMENT_LEN,
            });
        }
        Ok(bytes)
    }

    /// Decodes one statement, refusing unknown versions and types, bad bounds,
    /// trailing bytes and any other non-canonical form.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        if bytes.len() > MAX_STATEMENT_LEN {
            return Err(WireError::TooLong {
                field: "statement",
                max: MAX_STATEMENT_LEN,
            });
        }
        let mut r = Reader::new(bytes);
        let version = r.field("version").u8()?;
        if version != STATEMENT_VERSION {
            return Err(WireError::UnsupportedVersion {
                format: "statement",
                version,
                supported: STATEMENT_VERSION,
            });
        }
        let kind = StatementKind::from_tag(r.field("type").u8()?)?;
        let statement = match kind {
            StatementKind::ParticipantKey => Self::ParticipantKey(ParticipantKey::read(&mut r)?),
            StatementKind::EscrowDayKey => Self::EscrowDayKey(EscrowDayKey::read(&mut r)?),
            StatementKind::WarrantCommitment => {
                Self::WarrantCommitment(WarrantCommitment::read(&mut r)?)
            }
            StatementKind::KeyRelease => Self::KeyRelease(KeyRelease::read(&mut r)?),
            StatementKind::Interception => Self::Interception(Interception::read(&mut r)?),
            StatementKind::WarrantUnsealing => {
                Self::WarrantUnsealing(WarrantUnsealing::read(&mut r)?)
            }
            StatementKind::EmbargoExtension => {
                Self::EmbargoExtension(EmbargoExtension::read(&mut r)?)
            }
            StatementKind::DayKeyErasure => Self::DayKeyErasure(DayKeyErasure::read(&mut r)?),
            StatementKind::ProviderFrankingKey => {
                Self::ProviderFrankingKey(ProviderFrankingKey::read(&mut r)?)
            }
            StatementKind::WarrantRevocation => {
                Self::WarrantRevocation(WarrantRevocation::read(&mut r)?)
            }
            StatementKind::ManifestPublication => {
                Self::ManifestPublication(ManifestPublication::read(&mut r)?)
            }
            StatementKind::KeyDirectoryEpoch => {
                Self::KeyDirectoryEpoch(KeyDirectoryEpoch::read(&mut r)?)
            }
            StatementKind::HashListRoot => Self::HashListRoot(HashListRoot::read(&mut r)?),
            StatementKind::MatchingPolicy => Self::MatchingPolicy(MatchingPolicy::read(&mut r)?),
            StatementKind::MatchingCases => Self::MatchingCases(MatchingCases::read(&mut r)?),
        };
        r.finish()?;
        Ok(statement)
    }
}

/// Why a signed statement was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatementError {
    /// The bytes are not a canonical signed statement.
    #[error("malformed statement: {0}")]
    Wire(#[from] WireError),
    /// The author key is not a valid Ed25519 public key.
    #[error("author key is not a valid Ed25519 public key")]
    BadAuthorKey,
    /// The signature does not verify under the author key.
    #[error(
        "author signature does not verify; sign `custos/v1/statement` || statement bytes with the author key"
    )]
    BadSignature,
}

/// A statement with its author's key and Ed25519 signature; the unit the log
/// stores, one per entry.
///
/// Construct with [`SignedStatement::sign`] or [`SignedStatement::decode`];
/// [`SignedStatement::verify`] checks the signature and returns the typed
/// statement. Holding a `SignedStatement` does not mean its signature is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedStatement {
    author: [u8; 32],
    statement: Vec<u8>,
    signature: [u8; 64],
}

impl SignedStatement {
    /// Encodes and signs `statement` with the author's key.
    pub fn sign(statement: &Statement, key: &SigningKey) -> Result<Self, WireError> {
        let bytes = statement.encode()?;
        let signature = key.sign(&signing_message(&bytes)).to_bytes();
        Ok(Self {
            author: key.verifying_key().to_bytes(),
            statement: bytes,
            signature,
        })
    }

    /// Assembles a signed statement from parts (for example a signature made by
    /// a hardware key). Nothing is checked until [`SignedStatement::verify`].
    pub fn from_parts(author: [u8; 32], statement: Vec<u8>, signature: [u8; 64]) -> Self {
        Self {
            author,
            statement,
            signature,
        }
    }

    /// The author's Ed25519 public key, as claimed (checked by `verify`).
    pub fn author(&self) -> &[u8; 32] {
        &self.author
    }

    /// The exact statement bytes that were signed.
    pub fn statement_bytes(&self) -> &[u8] {
        &self.statement
    }

    /// The author's signature.
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// Checks the author signature (strict Ed25519) over the exact statement
    /// bytes, then decodes them. Only a statement returned here may be trusted
    /// to come from [`Self::author`].
    pub fn verify(&self) -> Result<Statement, StatementError> {
        let key =
            VerifyingKey::from_bytes(&self.author).map_err(|_| StatementError::BadAuthorKey)?;
        crate::signature::verify_strict(
            &key,
            &signing_message(&self.statement),
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| StatementError::BadSignature)?;
        Ok(Statement::decode(&self.statement)?)
    }

    /// The canonical encoding: version, author key, u16-length statement, signature.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let mut w = Writer::with_capacity(self.statement.len() + 100);
        w.u8(STATEMENT_VERSION).raw(&self.author);
        w.bytes16("statement", &self.statement, MAX_STATEMENT_LEN)?;
        w.raw(&self.signature);
        Ok(w.into_bytes())
    }

    /// Decodes the wrapper and checks that the inner statement is itself
    /// canonical. Does not check the signature.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        if bytes.len() > MAX_SIGNED_STATEMENT_LEN {
            return Err(WireError::TooLong {
                field: "signed statement",
                max: MAX_SIGNED_STATEMENT_LEN,
            });
        }
        let mut r = Reader::new(bytes);
        let version = r.field("version").u8()?;
        if version != STATEMENT_VERSION {
            return Err(WireError::UnsupportedVersion {
                format: "signed statement",
                version,
                supported: STATEMENT_VERSION,
            });
        }
        let author = r.field("author").array::<32>()?;
        let statement = r.field("statement").bytes16(MAX_STATEMENT_LEN)?.to_vec();
        let signature = r.field("signature").array::<64>()?;
        r.finish()?;
        Statement::decode(&statement)?;
        Ok(Self {
            author,
            statement,
            signature,
        })
    }
}

fn signing_message(statement: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(STATEMENT_SIGNING_LABEL.len() + statement.len());
    msg.extend_from_slice(STATEMENT_SIGNING_LABEL);
    msg.extend_from_slice(statement);
    msg
}

#[cfg(test)]
mod tests;
