//! Checks that a warrant is genuine and logged, for any party that acts on
//! one without trusting the authority that presents it: the provider before
//! it keeps a conversation's items, and anyone re-checking evidence.
//!
//! # Guarantees
//! [`VerifiedWarrant`] is built only by [`verify_logged_warrant`], after:
//! the court is a manifest court and its signature verifies; the commitment
//! entry is a `WarrantCommitment` signed by the warrant's authority, the salt
//! and warrant bytes open it, and its public fields are the warrant's; the
//! checkpoint carries the log's signature and the witness quorum; the entry
//! is included in it; and the warrant is within the manifest's policy.
//! Expiry and revocation depend on the caller's clock and its view of the
//! log, and are the caller's separate checks ([`check_not_expired`]).
//!
//! Each check is also a function of its own ([`check_court`],
//! [`authority_key`], [`check_commitment`], [`check_checkpoint`],
//! [`check_inclusion`], [`check_policy`]) for a party that runs them one at
//! a time with its own proof values: the custodian before a release.

use custos_tlog::{Hash, TrustPolicy, VerifiedCheckpoint, verify_inclusion};
use custos_wire::interception::LoggedWarrant;
use custos_wire::manifest::{Manifest, Policy, Role};
use custos_wire::statement::{SignedStatement, Statement, warrant_commitment};
use custos_wire::warrant::Warrant;
use ed25519_dalek::VerifyingKey;

/// Why a presented warrant is not acted on. Each failed check has its own
/// variant and wire code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WarrantRefusal {
    /// The warrant bytes do not decode.
    #[error("the warrant does not decode: {0}")]
    Malformed(String),
    /// The warrant's court is not a court of the manifest.
    #[error("court `{0}` is not a court of the manifest")]
    UnknownCourt(String),
    /// The court's signature on the warrant does not verify.
    #[error("the court's signature on the warrant does not verify")]
    BadCourtSignature,
    /// The warrant's authority is not an authority of the manifest.
    #[error("authority `{0}` is not an authority of the manifest")]
    UnknownAuthority(String),
    /// The request is not signed by the warrant's authority.
    #[error("the request is not signed by the warrant's authority")]
    BadRequestSignature,
    /// The logged entry is not the authority's commitment to this warrant.
    #[error("the commitment does not match: {0}")]
    CommitmentMismatch(&'static str),
    /// The checkpoint lacks the log's signature or the witness quorum.
    #[error("the checkpoint is not witnessed: {0}")]
    CheckpointNotWitnessed(String),
    /// The commitment entry is not in the checkpoint.
    #[error("the commitment is not in the log")]
    CommitmentNotInLog,
    /// The warrant exceeds the manifest's policy.
    #[error("{what} {value} is over the policy's {max}")]
    OverPolicy {
        /// Which limit.
        what: &'static str,
        /// The warrant's value.
        value: u64,
        /// The limit.
        max: u64,
    },
    /// The warrant is past its not-after time.
    #[error("the warrant expired at {not_after}")]
    Expired {
        /// Its not-after, Unix seconds.
        not_after: u64,
    },
    /// The court revoked the warrant in the log.
    #[error("the court revoked the warrant")]
    Revoked,
}

impl WarrantRefusal {
    /// The stable wire code of the refusal.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed_warrant",
            Self::UnknownCourt(_) => "unknown_court",
            Self::BadCourtSignature => "bad_court_signature",
            Self::UnknownAuthority(_) => "unknown_authority",
            Self::BadRequestSignature => "bad_request_signature",
            Self::CommitmentMismatch(_) => "commitment_mismatch",
            Self::CheckpointNotWitnessed(_) => "checkpoint_not_witnessed",
            Self::CommitmentNotInLog => "commitment_not_in_log",
            Self::OverPolicy { .. } => "over_policy",
            Self::Expired { .. } => "warrant_expired",
            Self::Revoked => "warrant_revoked",
        }
    }
}

/// A warrant that passed every check of [`verify_logged_warrant`].
#[derive(Debug, Clone)]
pub struct VerifiedWarrant {
    warrant: Warrant,
    commitment: [u8; 32],
    authority_key: VerifyingKey,
    checkpoint: VerifiedCheckpoint,
}

impl VerifiedWarrant {
    /// The warrant.
    pub fn warrant(&self) -> &Warrant {
        &self.warrant
    }

    /// Its logged commitment: the warrant's public identifier.
    pub fn commitment(&self) -> &[u8; 32] {
        &self.commitment
    }

    /// The manifest key of the warrant's authority.
    pub fn authority_key(&self) -> &VerifyingKey {
        &self.authority_key
    }

    /// The witnessed checkpoint that includes the commitment.
    pub fn checkpoint(&self) -> &VerifiedCheckpoint {
        &self.checkpoint
    }
}

fn key_of(manifest: &Manifest, name: &str, role: Role) -> Option<VerifyingKey> {
    manifest
        .participant(name)
        .filter(|p| p.role == role)
        .and_then(|p| p.verifying_key().ok())
}

/// Runs every check of the module docs on `logged`.
pub fn verify_logged_warrant(
    manifest: &Manifest,
    policy: &TrustPolicy,
    logged: &LoggedWarrant,
) -> Result<VerifiedWarrant, WarrantRefusal> {
    let warrant =
        Warrant::decode(&logged.warrant).map_err(|e| WarrantRefusal::Malformed(e.to_string()))?;
    check_court(manifest, &warrant)?;
    let authority_key = authority_key(manifest, &warrant)?;
    let commitment = check_commitment(
        manifest,
        &warrant,
        &logged.warrant,
        &logged.salt,
        &logged.commitment_entry,
    )?;
    let checkpoint = check_checkpoint(policy, &logged.checkpoint)?;
    check_inclusion(
        &checkpoint,
        logged.commitment_index,
        &logged.commitment_entry,
        &logged.inclusion_proof,
    )?;
    check_policy(&manifest.policy, &warrant)?;
    Ok(VerifiedWarrant {
        commitment,
        warrant,
        authority_key,
        checkpoint,
    })
}

/// The warrant's court is a court of the manifest and its signature on the
/// warrant verifies.
pub fn check_court(manifest: &Manifest, warrant: &Warrant) -> Result<(), WarrantRefusal> {
    let court = &warrant.fields().court;
    let key = key_of(manifest, court, Role::Court)
        .ok_or_else(|| WarrantRefusal::UnknownCourt(court.clone()))?;
    warrant
        .verify(&key)
        .map_err(|_| WarrantRefusal::BadCourtSignature)
}

/// The manifest key of the warrant's authority, which must be an authority
/// of the manifest: the key its requests and commitment are checked with.
pub fn authority_key(
    manifest: &Manifest,
    warrant: &Warrant,
) -> Result<VerifyingKey, WarrantRefusal> {
    let authority = &warrant.fields().authority;
    key_of(manifest, authority, Role::Authority)
        .ok_or_else(|| WarrantRefusal::UnknownAuthority(authority.clone()))
}

/// `entry` is a `WarrantCommitment` signed by the warrant's manifest
/// authority, `salt` and `warrant_bytes` open its commitment, and its public
/// fields are the warrant's. Returns the commitment.
pub fn check_commitment(
    manifest: &Manifest,
    warrant: &Warrant,
    warrant_bytes: &[u8],
    salt: &[u8; 32],
    entry: &[u8],
) -> Result<[u8; 32], WarrantRefusal> {
    use WarrantRefusal::CommitmentMismatch as M;
    let signed =
        SignedStatement::decode(entry).map_err(|_| M("the entry is not a signed statement"))?;
    let Statement::WarrantCommitment(c) = signed
        .verify()
        .map_err(|_| M("the entry's signature does not verify"))?
    else {
        return Err(M("the entry is not a warrant commitment"));
    };
    let w = warrant.fields();
    let author_ok = key_of(manifest, &w.authority, Role::Authority)
        .is_some_and(|k| k.as_bytes() == signed.author());
    if !author_ok {
        return Err(M("the entry is not signed by the warrant's authority"));
    }
    let opened = warrant_commitment(salt, warrant_bytes);
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        &opened[..],
        &c.commitment[..],
    )) {
        return Err(M("the salt and warrant do not open the commitment"));
    }
    let fields_match = c.court == w.court
        && c.authority == w.authority
        && c.issued_at == w.issued_at
        && c.embargo_until == w.embargo_until
        && usize::from(c.targets) == w.targets.len()
        && u32::from(c.days) == w.days()
        && c.court_signature == warrant.signature();
    if !fields_match {
        return Err(M("the commitment's public fields differ from the warrant"));
    }
    Ok(c.commitment)
}

/// The checkpoint `note` carries the log's signature and the witness quorum
/// of `policy`.
pub fn check_checkpoint(
    policy: &TrustPolicy,
    note: &[u8],
) -> Result<VerifiedCheckpoint, WarrantRefusal> {
    policy
        .verify_checkpoint(note)
        .map_err(|e| WarrantRefusal::CheckpointNotWitnessed(e.to_string()))
}

/// `entry` is at `index` in `checkpoint`, by the inclusion `proof`.
pub fn check_inclusion(
    checkpoint: &VerifiedCheckpoint,
    index: u64,
    entry: &[u8],
    proof: &[[u8; 32]],
) -> Result<(), WarrantRefusal> {
    let proof: Vec<Hash> = proof.iter().map(|h| Hash(*h)).collect();
    verify_inclusion(checkpoint, index, entry, &proof)
        .map(|_| ())
        .map_err(|_| WarrantRefusal::CommitmentNotInLog)
}

/// Targets, days and embargo are within the manifest's `limits`.
pub fn check_policy(limits: &Policy, warrant: &Warrant) -> Result<(), WarrantRefusal> {
    let w = warrant.fields();
    let embargo_days = w.embargo_until.saturating_sub(w.issued_at).div_ceil(86_400);
    for (what, value, max) in [
        (
            "targets",
            w.targets.len() as u64,
            u64::from(limits.max_targets),
        ),
        ("days", u64::from(w.days()), u64::from(limits.max_days)),
        (
            "embargo_days",
            embargo_days,
            u64::from(limits.max_embargo_days),
        ),
    ] {
        if value > max {
            return Err(WarrantRefusal::OverPolicy { what, value, max });
        }
    }
    Ok(())
}

/// The warrant is not past its not-after at `now_secs`.
pub fn check_not_expired(warrant: &Warrant, now_secs: u64) -> Result<(), WarrantRefusal> {
    let not_after = warrant.fields().not_after;
    if now_secs > not_after {
        return Err(WarrantRefusal::Expired { not_after });
    }
    Ok(())
}
