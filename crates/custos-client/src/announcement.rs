//! Receiving a chain announcement, in three steps, each consuming the
//! previous one's value, so a later step cannot run without the earlier
//! checks:
//!
//! 1. [`Device::open_announcement`]: the outer announcement is canonical and
//!    for this conversation and a plausible day; its MLS application message
//!    opens in the group (MLS authenticates the sender and gives forward
//!    secrecy and post-compromise security).
//! 2. [`bind_chain`]: the chain id inside is the one outside, and matches the
//!    MLS sender's leaf and epoch; the sender's account and roster key are
//!    taken from MLS, never from the service's word.
//! 3. [`Device::check_escrow`]: the capsule is exactly the one the chain's
//!    root determines under the day's key (or absent, in a deployment
//!    without escrow). A failure names the sender as an escrow violator.
//!
//! Only then is the receiving chain stored.

use custos_wire::announcement::{ChainAnnouncement, ChainRoot, EscrowKind};
use custos_wire::frames::Delivery;
use openmls::prelude::*;
use zeroize::Zeroizing;

use crate::chain::{ChainKey, ReceivingChain};
use crate::device::{Device, DeviceError};
use crate::escrow::EscrowError;
use crate::mls::{MAX_PAST_EPOCHS, credential_name};
use crate::receive::Outcome;
use crate::refusal::AnnouncementRefusal as R;
use crate::store::ReceivingChainRecord;

/// Step 1's result: an announcement whose MLS message opened.
struct Opened {
    ann: ChainAnnouncement,
    group: MlsGroup,
    leaf: LeafNodeIndex,
    credential: Credential,
    epoch: u64,
    root_bytes: Zeroizing<Vec<u8>>,
}

/// Step 2's result: a chain bound to its authenticated sender.
struct Bound {
    ann: ChainAnnouncement,
    root: ChainRoot,
    sender: String,
    sender_key: [u8; 32],
}

/// Step 3's result: a chain whose escrow is as the deployment requires.
struct EscrowChecked(Bound);

/// What a step gives: the next state, or the item's outcome (refused,
/// buffered or duplicate).
type Step<T> = Result<Result<T, Outcome>, DeviceError>;

impl Device {
    pub(crate) fn process_announcement(&mut self, d: &Delivery) -> Result<Outcome, DeviceError> {
        let opened = match self.open_announcement(d)? {
            Ok(o) => o,
            Err(outcome) => return Ok(outcome),
        };
        let bound = match bind_chain(opened, &d.sender) {
            Ok(b) => b,
            Err(r) => return Ok(r.into()),
        };
        let checked = match self.check_escrow(bound) {
            Ok(c) => c,
            // The day's key is not known here yet: wait for the log, never
            // refuse an honest chain for this device's lag.
            Err(R::EscrowViolation {
                reason: EscrowError::NoDayKey { .. },
                ..
            }) => return Ok(Outcome::Buffered),
            Err(r) => return Ok(r.into()),
        };
        let EscrowChecked(b) = checked;
        self.store.save_receiving_chain(&ReceivingChainRecord {
            chain: ReceivingChain::new(
                b.ann.conversation,
                b.ann.chain,
                ChainKey::from_bytes(b.root.ck0),
            ),
            sender: b.sender,
            sender_key: b.sender_key,
        })?;
        Ok(Outcome::ChainAccepted)
    }

    /// Step 1: decode the announcement and open its MLS message.
    fn open_announcement(&mut self, d: &Delivery) -> Step<Opened> {
        let ann = match ChainAnnouncement::decode(&d.body) {
            Ok(a) => a,
            Err(e) => return Ok(Err(R::Malformed(e).into())),
        };
        if ann.conversation != d.conversation {
            return Ok(Err(R::ConversationMismatch.into()));
        }
        if self
            .store
            .receiving_chain(&ann.conversation, &ann.chain)?
            .is_some()
        {
            // A replayed announcement must never reset a chain's state.
            return Ok(Err(Outcome::Duplicate));
        }
        let today = self.clock.today();
        let day = ann.chain.day;
        if day > today.saturating_add(1) || day.saturating_add(1) < today {
            return Ok(Err(R::DayOutOfRange { day, today }.into()));
        }
        let Some(mut group) = self.load_group(&ann.conversation)? else {
            return Ok(Err(Outcome::Buffered));
        };
        let Some(pm) = self.protocol_message(&ann.mls_message) else {
            return Ok(Err(R::MlsMalformed.into()));
        };
        let (theirs, ours) = (pm.epoch().as_u64(), group.epoch().as_u64());
        if theirs > ours {
            return Ok(Err(Outcome::Buffered));
        }
        if theirs.saturating_add(MAX_PAST_EPOCHS as u64) < ours {
            return Ok(Err(R::EpochTooOld.into()));
        }
        let processed = match group.process_message(&self.provider, pm) {
            Ok(p) => p,
            Err(e) => return Ok(Err(R::Mls(e.to_string()).into())),
        };
        let Sender::Member(leaf) = *processed.sender() else {
            return Ok(Err(R::NotFromMember.into()));
        };
        let credential = processed.credential().clone();
        let epoch = processed.epoch().as_u64();
        let ProcessedMessageContent::ApplicationMessage(app) = processed.into_content() else {
            return Ok(Err(R::NotApplication.into()));
        };
        Ok(Ok(Opened {
            ann,
            group,
            leaf,
            credential,
            epoch,
            root_bytes: Zeroizing::new(app.into_bytes()),
        }))
    }

    /// Step 3: the capsule must be exactly what the chain root determines.
    fn check_escrow(&self, b: Bound) -> Result<EscrowChecked, R> {
        let result = match &self.escrow {
            Some(policy) => policy.verify(
                &b.ann.conversation,
                &b.ann.chain,
                &b.root.ck0,
                b.ann.escrow_kind,
                &b.ann.escrow_capsule,
            ),
            None if b.ann.escrow_kind != EscrowKind::None => Err(EscrowError::UnexpectedCapsule),
            None => Ok(()),
        };
        match result {
            Ok(()) => Ok(EscrowChecked(b)),
            Err(reason) => Err(R::EscrowViolation {
                sender: b.sender,
                reason,
            }),
        }
    }
}

/// Step 2: bind the chain to the MLS-authenticated sender and its roster key.
fn bind_chain(o: Opened, reported_sender: &str) -> Result<Bound, R> {
    let root = ChainRoot::decode(&o.root_bytes).map_err(R::RootMalformed)?;
    if root.chain != o.ann.chain
        || o.leaf.u32() != o.ann.chain.sender_leaf
        || o.epoch != o.ann.chain.epoch
    {
        return Err(R::ChainMismatch);
    }
    let sender = credential_name(&o.credential).ok_or(R::BadCredential)?;
    if sender != reported_sender {
        return Err(R::SenderMismatch);
    }
    // The roster key of the sender's leaf; the credential must match the
    // message's, so a leaf reused by someone else is not confused.
    let member = o
        .group
        .member_at(o.leaf)
        .filter(|m| m.credential == o.credential)
        .ok_or(R::NotInRoster)?;
    let sender_key =
        <[u8; 32]>::try_from(member.signature_key.as_slice()).map_err(|_| R::BadSenderKey)?;
    Ok(Bound {
        ann: o.ann,
        root,
        sender,
        sender_key,
    })
}
