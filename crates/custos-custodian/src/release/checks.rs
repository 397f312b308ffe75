//! The independent checks of a release request, each returning a proof
//! value that only it can build (DESIGN.md §4 step 3).
//!
//! Every proof type has a private field, so code outside this module cannot
//! make one; [`WarrantChecked`] can only be assembled from all of them, and
//! the sealing function takes `&WarrantChecked`. Each check stands alone: it
//! neither trusts nor skips another check's result.
//!
//! The checks of the warrant itself (court, authority, commitment,
//! checkpoint, inclusion, policy, expiry) are the ones every party runs,
//! from [`custos_verify::warrant`]; this module adds what only a custodian
//! checks: the request's addressee and signature, consistency with the last
//! checkpoint it saw, the requested days, revocation and quota.

use custos_clock::Clock;
use custos_tlog::{Hash, TrustPolicy, VerifiedCheckpoint, verify_consistency};
use custos_verify::warrant as verify;
use custos_wire::manifest::{Manifest, Policy};
use custos_wire::release::{ConversationDay, ReleaseRequest};
use custos_wire::warrant::Warrant;

use super::ReleaseRefusal;

/// The warrant's court is a manifest court and its signature verifies.
#[derive(Debug)]
pub struct CourtSignatureChecked(());
/// The request is signed by the manifest authority the warrant names.
#[derive(Debug)]
pub struct RequestSignatureChecked(());
/// The logged entry is the authority's commitment to exactly this warrant.
#[derive(Debug)]
pub struct CommitmentChecked(());
/// The checkpoint has the witness quorum and is consistent with the last seen.
#[derive(Debug)]
pub struct CheckpointChecked(VerifiedCheckpoint);
/// The commitment entry is included in the checked checkpoint.
#[derive(Debug)]
pub struct InclusionChecked(());
/// The warrant is within the deployment's policy limits.
#[derive(Debug)]
pub struct PolicyChecked(());
/// The warrant is not past its not-after time.
#[derive(Debug)]
pub struct NotExpired(());
/// No revocation of the warrant by its court is in the log.
#[derive(Debug)]
pub struct NotRevoked(());
/// Every requested conversation-day is inside the warrant and has started.
#[derive(Debug)]
pub struct RequestWithinWarrant(());
/// The authority has quota left for this warrant this month.
#[derive(Debug)]
pub struct QuotaChecked(());

/// Every check passed: the only key to [`super::seal`].
#[derive(Debug)]
pub struct WarrantChecked(());

impl WarrantChecked {
    /// Assembles the proof that every check passed.
    #[allow(
        clippy::too_many_arguments,
        reason = "one proof value per independent check"
    )]
    pub fn assemble(
        _court: &CourtSignatureChecked,
        _request: &RequestSignatureChecked,
        _commitment: &CommitmentChecked,
        _checkpoint: &CheckpointChecked,
        _inclusion: &InclusionChecked,
        _policy: &PolicyChecked,
        _expiry: &NotExpired,
        _revocation: &NotRevoked,
        _within: &RequestWithinWarrant,
        _quota: &QuotaChecked,
    ) -> Self {
        Self(())
    }
}

impl CheckpointChecked {
    /// The checkpoint that passed.
    pub fn checkpoint(&self) -> &VerifiedCheckpoint {
        &self.0
    }
}

/// The court is a manifest court, and its signature on the warrant verifies.
pub fn check_court(
    manifest: &Manifest,
    warrant: &Warrant,
) -> Result<CourtSignatureChecked, ReleaseRefusal> {
    verify::check_court(manifest, warrant)?;
    Ok(CourtSignatureChecked(()))
}

/// The warrant's authority is a manifest authority, and it signed the request.
pub fn check_request_signature(
    manifest: &Manifest,
    warrant: &Warrant,
    request: &ReleaseRequest,
) -> Result<RequestSignatureChecked, ReleaseRefusal> {
    let key = verify::authority_key(manifest, warrant)?;
    request
        .verify(&key)
        .map_err(|_| ReleaseRefusal::BadRequestSignature)?;
    Ok(RequestSignatureChecked(()))
}

/// The entry is a `WarrantCommitment` signed by the warrant's authority,
/// its commitment is opened by the salt and the warrant bytes, and its public
/// fields are the warrant's.
pub fn check_commitment(
    manifest: &Manifest,
    warrant: &Warrant,
    warrant_bytes: &[u8],
    request: &ReleaseRequest,
) -> Result<CommitmentChecked, ReleaseRefusal> {
    let f = request.fields();
    verify::check_commitment(
        manifest,
        warrant,
        warrant_bytes,
        &f.salt,
        &f.commitment_entry,
    )?;
    Ok(CommitmentChecked(()))
}

/// The checkpoint carries the log signature and the manifest's witness
/// quorum (`policy`), and is consistent with `last` (the last checkpoint this
/// custodian saw) by `proof`: from `last` to it when it is larger, from it to
/// `last` when smaller.
pub fn check_checkpoint(
    policy: &TrustPolicy,
    note: &[u8],
    last: Option<&VerifiedCheckpoint>,
    proof: &[Hash],
) -> Result<CheckpointChecked, ReleaseRefusal> {
    let cp = verify::check_checkpoint(policy, note)?;
    if let Some(last) = last {
        let consistent = if cp.size() >= last.size() {
            verify_consistency(last.size(), last.hash(), cp.size(), cp.hash(), proof)
        } else {
            verify_consistency(cp.size(), cp.hash(), last.size(), last.hash(), proof)
        };
        if !consistent {
            return Err(ReleaseRefusal::CheckpointInconsistent(format!(
                "size {} against the last seen size {}",
                cp.size(),
                last.size()
            )));
        }
    }
    Ok(CheckpointChecked(cp))
}

/// The commitment entry is at its index in the checked checkpoint.
pub fn check_inclusion(
    checkpoint: &CheckpointChecked,
    request: &ReleaseRequest,
) -> Result<InclusionChecked, ReleaseRefusal> {
    let f = request.fields();
    verify::check_inclusion(
        checkpoint.checkpoint(),
        f.commitment_index,
        &f.commitment_entry,
        &f.inclusion_proof,
    )?;
    Ok(InclusionChecked(()))
}

/// Targets, days and embargo are within the manifest's policy.
pub fn check_policy(policy: &Policy, warrant: &Warrant) -> Result<PolicyChecked, ReleaseRefusal> {
    verify::check_policy(policy, warrant)?;
    Ok(PolicyChecked(()))
}

/// The clock has not passed the warrant's not-after.
pub fn check_not_expired(
    clock: &dyn Clock,
    warrant: &Warrant,
) -> Result<NotExpired, ReleaseRefusal> {
    verify::check_not_expired(warrant, clock.now_secs())?;
    Ok(NotExpired(()))
}

/// The warrant's commitment is not among the revoked ones (the caller keeps
/// that set current with the log up to the checked checkpoint).
pub fn check_not_revoked(revoked: bool) -> Result<NotRevoked, ReleaseRefusal> {
    if revoked {
        return Err(ReleaseRefusal::WarrantRevoked);
    }
    Ok(NotRevoked(()))
}

/// Every requested conversation-day is covered by the warrant, and no
/// requested day lies after today.
pub fn check_within_warrant(
    clock: &dyn Clock,
    warrant: &Warrant,
    requested: &[ConversationDay],
) -> Result<RequestWithinWarrant, ReleaseRefusal> {
    let w = warrant.fields();
    if let Some(cd) = requested
        .iter()
        .find(|cd| !w.covers(&cd.conversation, cd.day))
    {
        return Err(ReleaseRefusal::OutsideWarrant {
            conversation: cd.conversation.to_hex(),
            day: cd.day,
        });
    }
    let today = clock.today();
    if let Some(cd) = requested.iter().find(|cd| cd.day > today) {
        return Err(ReleaseRefusal::DayNotStarted { day: cd.day });
    }
    Ok(RequestWithinWarrant(()))
}

/// The authority is below `quota` warrants this month, or this warrant is
/// already one of them.
pub fn check_quota(
    authority: &str,
    quota: u32,
    used_this_month: usize,
    already_counted: bool,
) -> Result<QuotaChecked, ReleaseRefusal> {
    if !already_counted && used_this_month >= quota as usize {
        return Err(ReleaseRefusal::QuotaSpent {
            authority: authority.to_owned(),
            quota,
        });
    }
    Ok(QuotaChecked(()))
}
