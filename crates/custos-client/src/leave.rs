//! Leaving a conversation.
//!
//! MLS does not let a member commit its own removal (RFC 9420 §12.4): the
//! leaver sends a Remove proposal for its own leaf, as an encrypted MLS
//! `PrivateMessage`, and a remaining member commits it.
//!
//! - The service accepts the proposal only for the conversation's current
//!   epoch, in order with commits (`409 stale_epoch` otherwise), so a
//!   proposal is never silently overtaken by a commit sequenced before it.
//! - From the moment it leaves, the device stops sending to the
//!   conversation and drops its messages unread; it still processes commits,
//!   so that it sees its own removal. If a commit that does not remove it
//!   lands first (a member committed something else before receiving the
//!   proposal), it proposes again in the new epoch on its next receive.
//! - Members accept only a member's proposal to remove itself; any other
//!   proposal is refused. Every member that holds the proposal tries to
//!   commit it after its next sync; the service lets one commit win and the
//!   others find the proposal already applied. Any other commit a member
//!   makes (add, remove, self-update) carries pending proposals too.
//!
//! Until a remaining member commits, the leaver's leaf stays in the tree;
//! the leaver has however stopped reading, and the removal commit starts a
//! new epoch whose secrets it never learns.

use custos_wire::ConversationId;
use custos_wire::frames::ItemKind;
use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::*;

use crate::api::ApiError;
use crate::conversation::COMMIT_ATTEMPTS;
use crate::device::{Device, DeviceError, MlsError, mls};
use crate::receive::Outcome;
use crate::refusal::ProposalRefusal;

fn leaving_key(conv: &ConversationId) -> String {
    format!("leaving/{}", conv.to_hex())
}

/// Store key of the conversations that may need settling (a pending
/// removal proposal, or this device's own leave): 16-byte ids, concatenated.
/// Absent in a store made before it existed: then every conversation is
/// looked at once.
const UNSETTLED: &str = "leave/unsettled";

impl Device {
    /// Leaves a conversation: sends a proposal to remove this device, which
    /// a remaining member commits. From now on this device neither sends to
    /// nor reads the conversation.
    pub async fn leave_conversation(&mut self, conv: &ConversationId) -> Result<(), DeviceError> {
        for _ in 0..COMMIT_ATTEMPTS {
            let mut group = self.group(conv)?;
            let epoch = group.epoch().as_u64();
            let proposal = group
                .leave_group(&self.provider, &self.identity)
                .map_err(mls(MlsError::Leave))?;
            let bytes = proposal
                .tls_serialize_detached()
                .map_err(mls(MlsError::Encode))?;
            match self.api.submit(conv, ItemKind::Proposal, bytes).await {
                Ok(_) => {
                    self.store.set(&leaving_key(conv), &epoch.to_be_bytes())?;
                    self.mark_unsettled(conv)?;
                    return Ok(());
                }
                Err(e) => {
                    // The proposal was not accepted: forget it, so that it is
                    // not mistaken for one the others hold.
                    group
                        .clear_pending_proposals(openmls_traits::OpenMlsProvider::storage(
                            &self.provider,
                        ))
                        .map_err(mls(MlsError::Merge))?;
                    match e {
                        ApiError::Refused { status: 409, .. } => {
                            self.sync().await?;
                        }
                        e => return Err(e.into()),
                    }
                }
            }
        }
        Err(DeviceError::CommitContention)
    }

    /// Whether this device has left `conv` and waits for the removal commit.
    pub fn is_leaving(&self, conv: &ConversationId) -> Result<bool, DeviceError> {
        Ok(self.leaving_epoch(conv)?.is_some())
    }

    fn leaving_epoch(&self, conv: &ConversationId) -> Result<Option<u64>, DeviceError> {
        Ok(self
            .store
            .get(&leaving_key(conv))?
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map(u64::from_be_bytes))
    }

    pub(crate) fn forget_leaving(&self, conv: &ConversationId) -> Result<(), DeviceError> {
        self.store.delete(&leaving_key(conv))?;
        Ok(())
    }

    /// Processes a proposal item: only a member's proposal to remove itself
    /// is accepted, and kept until a commit covers it.
    pub(crate) fn process_proposal(
        &mut self,
        d: &custos_wire::frames::Delivery,
    ) -> Result<Outcome, DeviceError> {
        let Some(pm) = self.protocol_message(&d.body) else {
            return Ok(ProposalRefusal::Malformed.into());
        };
        let Some(mut group) = self.load_group(&d.conversation)? else {
            return Ok(ProposalRefusal::UnknownConversation.into());
        };
        if !group.is_active() {
            return Ok(Outcome::Duplicate);
        }
        let (theirs, ours) = (pm.epoch().as_u64(), group.epoch().as_u64());
        if theirs < ours {
            // A commit overtook it; the leaver proposes again.
            return Ok(ProposalRefusal::PastEpoch.into());
        }
        if theirs > ours {
            return Ok(Outcome::Buffered);
        }
        let processed = match group.process_message(&self.provider, pm) {
            Ok(p) => p,
            Err(e) => return Ok(ProposalRefusal::Mls(e.to_string()).into()),
        };
        let Sender::Member(sender_leaf) = *processed.sender() else {
            return Ok(ProposalRefusal::NotFromMember.into());
        };
        let ProcessedMessageContent::ProposalMessage(queued) = processed.into_content() else {
            return Ok(ProposalRefusal::NotAProposal.into());
        };
        let own_removal = matches!(
            queued.proposal(),
            Proposal::Remove(r) if r.removed() == sender_leaf
        );
        if !own_removal {
            return Ok(ProposalRefusal::NotSelfRemoval.into());
        }
        group
            .store_pending_proposal(
                openmls_traits::OpenMlsProvider::storage(&self.provider),
                *queued,
            )
            .map_err(mls(MlsError::Merge))?;
        self.mark_unsettled(&d.conversation)?;
        Ok(Outcome::ProposalQueued)
    }

    /// The conversations that may need settling; `None` for a store made
    /// before the list existed.
    fn unsettled(&self) -> Result<Option<Vec<ConversationId>>, DeviceError> {
        Ok(self.store.get(UNSETTLED)?.map(|bytes| {
            bytes
                .chunks_exact(16)
                .filter_map(|c| <[u8; 16]>::try_from(c).ok().map(ConversationId))
                .collect()
        }))
    }

    fn save_unsettled(&self, convs: &[ConversationId]) -> Result<(), DeviceError> {
        let bytes: Vec<u8> = convs.iter().flat_map(|c| c.0).collect();
        self.store.set(UNSETTLED, &bytes)?;
        Ok(())
    }

    /// Notes that `conv` holds a pending removal or this device's leave.
    pub(crate) fn mark_unsettled(&self, conv: &ConversationId) -> Result<(), DeviceError> {
        let mut convs = self.unsettled()?.unwrap_or_default();
        if !convs.contains(conv) {
            convs.push(*conv);
            self.save_unsettled(&convs)?;
        }
        Ok(())
    }

    /// Whether `conv` may hold a pending removal to commit before sending.
    pub(crate) fn may_be_unsettled(&self, conv: &ConversationId) -> Result<bool, DeviceError> {
        Ok(self.unsettled()?.is_none_or(|c| c.contains(conv)))
    }

    /// After a sync: commits the members' pending removals of themselves,
    /// and proposes this device's own removal again where a commit overtook
    /// it.
    ///
    /// Only conversations noted as unsettled are looked at, so a receive
    /// costs the same with one conversation as with a thousand.
    pub(crate) async fn settle_leaves(&mut self) -> Result<(), DeviceError> {
        let candidates = match self.unsettled()? {
            Some(convs) => convs,
            None => self.store.conversations()?,
        };
        for conv in candidates {
            // Unmarked first: anything that marks it again meanwhile (a
            // proposal received during a commit's retry) stays marked.
            self.unmark_settled(&conv)?;
            let Some(group) = self.load_group(&conv)? else {
                continue;
            };
            if !group.is_active() {
                continue;
            }
            match self.leaving_epoch(&conv)? {
                Some(proposed_in) if group.epoch().as_u64() > proposed_in => {
                    self.leave_conversation(&conv).await?;
                }
                Some(_) => self.mark_unsettled(&conv)?,
                None if group.has_pending_proposals() => {
                    self.commit_pending_proposals(&conv).await?;
                    if self
                        .load_group(&conv)?
                        .is_some_and(|g| g.has_pending_proposals())
                    {
                        self.mark_unsettled(&conv)?;
                    }
                }
                None => {}
            }
        }
        Ok(())
    }

    fn unmark_settled(&self, conv: &ConversationId) -> Result<(), DeviceError> {
        let mut convs = self.unsettled()?.unwrap_or_default();
        convs.retain(|c| c != conv);
        self.save_unsettled(&convs)
    }
}
