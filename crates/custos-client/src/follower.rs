//! A log follower: reads the transparency log's statements in order, and
//! hands on only those it could verify.
//!
//! # Guarantees
//! - Every poll first takes the log's checkpoint through a
//!   [`custos_tlog::Verifier`] built from the pinned manifest: the log's
//!   signature, the manifest's witness quorum, and consistency with the last
//!   checkpoint this device accepted (persisted before the poll returns, or
//!   by the caller with what it made of the poll: [`LogFollower::with_last`]).
//! - Every statement handed on is entry `index` of that checkpoint (an
//!   inclusion proof verified against it), carries a valid author signature,
//!   and its author is a participant of the pinned manifest whose role may
//!   publish its type.
//! - The caller owns the cursor (the number of entries already consumed) and
//!   persists it after it has stored what it made of the statements, so a
//!   crash in between replays entries rather than skipping them.
//!
//! # Not guaranteed
//! Entries whose kind the follower was not asked for are read but neither
//! proven nor handed on. A log can withhold entries until its witnesses
//! cosign a checkpoint that contains them; it cannot show this device a
//! history that the witnesses did not see.

use std::path::Path;

use futures_util::{StreamExt as _, TryStreamExt as _};

use custos_tlog::{
    ClientError, InclusionVerified, LogClient, TrustPolicy, VerifiedCheckpoint, Verifier,
    VerifyError, verify_inclusion,
};
use custos_wire::manifest::{Manifest, Participant, Role};
use custos_wire::statement::{SignedStatement, Statement, StatementKind};

/// Why the log could not be followed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FollowError {
    /// The log could not be reached or answered something malformed.
    #[error("transparency log: {0}")]
    Log(#[from] ClientError),
    /// A checkpoint or proof did not verify, or the state file failed.
    #[error("transparency log: {0}")]
    Verify(#[from] VerifyError),
}

/// A statement proven to be in a witnessed checkpoint, by a manifest participant.
#[derive(Debug, Clone)]
pub struct LoggedStatement {
    /// Its index in the log.
    pub index: u64,
    /// The author's manifest name.
    pub author: String,
    /// The author's manifest role.
    pub role: Role,
    /// The statement.
    pub statement: Statement,
    /// The inclusion proof that was checked.
    pub proof: InclusionVerified,
}

/// The result of one poll.
#[derive(Debug, Clone)]
pub struct Followed {
    /// The statements of the asked-for kinds, in log order.
    pub statements: Vec<LoggedStatement>,
    /// The cursor to persist once they are processed (the checkpoint's size).
    pub next_cursor: u64,
    /// The witnessed checkpoint they were proven against.
    pub checkpoint: VerifiedCheckpoint,
}

/// Follows one log under the trust policy of a pinned manifest.
#[derive(Debug)]
pub struct LogFollower {
    client: LogClient,
    verifier: Verifier,
    manifest: Manifest,
    kinds: Vec<StatementKind>,
}

/// Most entries read per poll, so that one poll stays bounded.
pub const MAX_ENTRIES_PER_POLL: u64 = 4096;

/// An entry whose checks passed, before its inclusion proof.
struct Unproven {
    index: u64,
    author: String,
    role: Role,
    statement: Statement,
    bytes: Vec<u8>,
    /// Its inclusion proof, if the poll's round fetched it (not verified).
    proof: Option<Vec<custos_tlog::Hash>>,
}

/// Inclusion proofs a poll asks the log for at once, and the most new
/// entries whose proofs come in the poll's first round.
const INCLUSION_PROOFS_AT_ONCE: usize = 8;

impl LogFollower {
    /// A follower of the log at `url`, trusting what `manifest` says (log
    /// key, witnesses, quorum, participants), with its last checkpoint kept
    /// in `state` (created on first poll), handing on statements of `kinds`.
    pub fn open(
        url: &str,
        manifest: &Manifest,
        state: &Path,
        kinds: &[StatementKind],
    ) -> Result<Self, FollowError> {
        let policy = TrustPolicy::from_manifest(manifest)?;
        Ok(Self::with_verifier(
            LogClient::new(url)?,
            manifest,
            Verifier::open(policy, state)?,
            kinds,
        ))
    }

    /// As [`LogFollower::open`], but the last accepted checkpoint is `last`
    /// (a note the caller kept), and the caller persists
    /// [`Followed::checkpoint`] itself, with what it made of the poll and
    /// before it acts on it ([`Verifier::with_last`]).
    pub fn with_last(
        url: &str,
        manifest: &Manifest,
        last: Option<&[u8]>,
        kinds: &[StatementKind],
    ) -> Result<Self, FollowError> {
        Self::with_last_on(LogClient::new(url)?, manifest, last, kinds)
    }

    /// As [`LogFollower::with_last`], through `client` (a client kept
    /// between rounds keeps its connections to the log).
    pub fn with_last_on(
        client: LogClient,
        manifest: &Manifest,
        last: Option<&[u8]>,
        kinds: &[StatementKind],
    ) -> Result<Self, FollowError> {
        let policy = TrustPolicy::from_manifest(manifest)?;
        Ok(Self::with_verifier(
            client,
            manifest,
            Verifier::with_last(policy, last)?,
            kinds,
        ))
    }

    fn with_verifier(
        client: LogClient,
        manifest: &Manifest,
        verifier: Verifier,
        kinds: &[StatementKind],
    ) -> Self {
        Self {
            client,
            verifier,
            manifest: manifest.clone(),
            kinds: kinds.to_vec(),
        }
    }

    /// The note of the last checkpoint this follower accepted, if any.
    pub fn last_note(&self) -> Option<&[u8]> {
        self.verifier.last().map(VerifiedCheckpoint::note)
    }

    /// Reads the entries after `cursor` (at most [`MAX_ENTRIES_PER_POLL`])
    /// up to the newest witnessed checkpoint, and returns the verified
    /// statements of the asked-for kinds.
    pub async fn poll(&mut self, cursor: u64) -> Result<Followed, FollowError> {
        // A few new entries (the usual case) come with their inclusion
        // proofs in the same round.
        let round = self
            .client
            .update_and_read(
                &mut self.verifier,
                cursor,
                MAX_ENTRIES_PER_POLL,
                INCLUSION_PROOFS_AT_ONCE as u64,
            )
            .await?;
        let checkpoint = round.checkpoint;
        let end = cursor.saturating_add(u64::try_from(round.entries.len()).unwrap_or(u64::MAX));
        let mut fetched = round.inclusion_proofs.map(Vec::into_iter);
        // The entries' checks, then their inclusion proofs, a few at a time.
        let mut wanted = Vec::new();
        for (index, bytes) in (cursor..end).zip(round.entries) {
            let proof = fetched.as_mut().and_then(Iterator::next);
            if let Some((statement, author)) = self.check_entry(&bytes) {
                wanted.push(Unproven {
                    index,
                    author: author.name.clone(),
                    role: author.role,
                    statement,
                    bytes,
                    proof,
                });
            }
        }
        let statements = futures_util::stream::iter(wanted)
            .map(|entry| self.prove(&checkpoint, entry))
            .buffered(INCLUSION_PROOFS_AT_ONCE)
            .try_collect()
            .await?;
        Ok(Followed {
            statements,
            next_cursor: end.max(cursor),
            checkpoint,
        })
    }

    /// The checks of one entry; `None` for entries not asked for or not
    /// valid statements of a manifest participant (the log should not have
    /// admitted them; they are skipped, never trusted).
    fn check_entry(&self, bytes: &[u8]) -> Option<(Statement, &Participant)> {
        let signed = SignedStatement::decode(bytes).ok()?;
        let statement = signed.verify().ok()?;
        if !self.kinds.contains(&statement.kind()) {
            return None;
        }
        let author = self.manifest.participant_by_key(signed.author())?;
        author
            .role
            .may_publish(statement.kind())
            .then_some((statement, author))
    }

    /// Proves `entry` included in `checkpoint`, with the proof fetched
    /// with it or else one fetched now.
    async fn prove(
        &self,
        checkpoint: &VerifiedCheckpoint,
        entry: Unproven,
    ) -> Result<LoggedStatement, FollowError> {
        let proof = match entry.proof {
            Some(proof) => proof,
            None => {
                self.client
                    .inclusion_proof(entry.index, checkpoint.size())
                    .await?
            }
        };
        let proof = verify_inclusion(checkpoint, entry.index, &entry.bytes, &proof)?;
        Ok(LoggedStatement {
            index: entry.index,
            author: entry.author,
            role: entry.role,
            statement: entry.statement,
            proof,
        })
    }
}
