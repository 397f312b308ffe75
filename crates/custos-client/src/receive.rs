//! The receive pipeline: every mailbox item is processed in mailbox order,
//! and each one ends as exactly one [`Outcome`].
//!
//! - Items that arrive before what they depend on (an envelope before its
//!   chain announcement, an announcement from an epoch not reached yet) are
//!   buffered (bounded) and retried after every step that can unblock them.
//! - Duplicates are recognised by message id and by the deleted message key.
//! - A commit that races ours: ours is cleared when the service's winner
//!   arrives (see [`crate::conversation`]).
//! - Anything that fails a check is refused and never becomes a message.

use std::time::Duration;

use custos_wire::announcement::{ChainAnnouncement, ChainRoot, EscrowKind};
use custos_wire::envelope::peek_header;
use custos_wire::frames::{Delivery, ItemKind, ServerFrame};
use ed25519_dalek::VerifyingKey;
use futures_util::StreamExt as _;
use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::*;

use crate::chain::{ChainKey, ReceivingChain};
use crate::device::{Device, DeviceError, mls_err};
use crate::mls::{MAX_PAST_EPOCHS, credential_name, join_config};
use crate::seal::{message_id, open};
use crate::store::{ReceivingChainRecord, StoredMessage};

/// What became of one mailbox item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A message was decrypted, verified and stored.
    Message,
    /// A Welcome was accepted: this device joined a conversation.
    Joined,
    /// A commit was applied.
    CommitApplied,
    /// A commit removed this device from the conversation.
    Removed,
    /// A chain announcement was accepted.
    ChainAccepted,
    /// A member's proposal to remove itself was accepted, to be committed.
    ProposalQueued,
    /// The item belongs to a conversation this device has left; dropped unread.
    Left,
    /// The item waits for something it depends on.
    Buffered,
    /// The item was already processed.
    Duplicate,
    /// The item failed a check and was dropped.
    Refused(String),
}

/// How long a buffered item is retried before it is given up on.
const MAX_BUFFERED_ATTEMPTS: u32 = 10_000;
const FETCH_LIMIT: u32 = 500;

impl Device {
    /// Fetches and processes everything in the mailbox, acknowledging each
    /// item once its outcome is stored. Returns the outcomes in order.
    pub async fn sync(&mut self) -> Result<Vec<Outcome>, DeviceError> {
        let mut outcomes = Vec::new();
        loop {
            let after = self.cursor()?;
            let items = self.api.fetch(after, FETCH_LIMIT).await?;
            if items.is_empty() {
                return Ok(outcomes);
            }
            let mut seqs = Vec::with_capacity(items.len());
            for d in items {
                seqs.push(d.seq);
                let seq = d.seq;
                outcomes.push(self.process_delivery(d)?);
                self.set_cursor(seq)?;
            }
            self.api.ack(&seqs).await?;
        }
    }

    /// Processes the mailbox, then (if `wait` is set) keeps listening on the
    /// WebSocket until `wait` has passed. Returns messages not shown before.
    pub async fn receive(
        &mut self,
        wait: Option<Duration>,
    ) -> Result<Vec<StoredMessage>, DeviceError> {
        self.sync().await?;
        self.settle_leaves().await?;
        if let Some(wait) = wait {
            self.listen(wait).await?;
            self.settle_leaves().await?;
        }
        self.replenish_key_packages().await?;
        Ok(self.store.take_unshown()?)
    }

    /// Listens on the mailbox WebSocket for `wait`, processing pushed items.
    pub async fn listen(&mut self, wait: Duration) -> Result<Vec<Outcome>, DeviceError> {
        let (mut ws, _) = tokio_tungstenite::connect_async(self.api.ws_url())
            .await
            .map_err(|e| crate::api::ApiError::Transport(e.to_string()))?;
        let deadline = tokio::time::Instant::now() + wait;
        let mut outcomes = Vec::new();
        loop {
            let next = tokio::time::timeout_at(deadline, ws.next()).await;
            let Ok(Some(frame)) = next else { break };
            let frame = frame.map_err(|e| crate::api::ApiError::Transport(e.to_string()))?;
            let tokio_tungstenite::tungstenite::Message::Binary(bytes) = frame else {
                continue;
            };
            let Ok(ServerFrame::Delivery(d)) = ServerFrame::decode(&bytes) else {
                continue;
            };
            let seq = d.seq;
            if seq <= self.cursor()? {
                continue;
            }
            outcomes.push(self.process_delivery(d)?);
            self.set_cursor(seq)?;
            self.api.ack(&[seq]).await?;
        }
        Ok(outcomes)
    }

    /// Processes one mailbox item, then retries buffered items it may have
    /// unblocked. Errors are only local failures (storage); anything wrong
    /// with the item itself is an [`Outcome::Refused`].
    pub fn process_delivery(&mut self, d: Delivery) -> Result<Outcome, DeviceError> {
        let outcome = self.process_one(&d)?;
        match &outcome {
            Outcome::Buffered => {
                if !self.store.buffer(&d)? {
                    return Ok(Outcome::Refused("too many items waiting; dropped".into()));
                }
            }
            Outcome::Refused(reason) => {
                tracing::warn!(seq = d.seq, kind = ?d.kind, sender = %d.sender, %reason, "refused mailbox item");
            }
            _ => self.retry_buffered()?,
        }
        Ok(outcome)
    }

    fn retry_buffered(&mut self) -> Result<(), DeviceError> {
        let mut progress = true;
        let mut rounds = 0u32;
        while progress && rounds < MAX_BUFFERED_ATTEMPTS {
            progress = false;
            rounds += 1;
            for d in self.store.buffered()? {
                match self.process_one(&d)? {
                    Outcome::Buffered => {}
                    _ => {
                        self.store.unbuffer(d.seq)?;
                        progress = true;
                    }
                }
            }
        }
        Ok(())
    }

    fn process_one(&mut self, d: &Delivery) -> Result<Outcome, DeviceError> {
        if matches!(d.kind, ItemKind::Envelope | ItemKind::Announcement)
            && self.is_leaving(&d.conversation)?
        {
            return Ok(Outcome::Left);
        }
        match d.kind {
            ItemKind::Proposal => self.process_proposal(d),
            ItemKind::Welcome => self.process_welcome(d),
            ItemKind::Commit => self.process_commit(d),
            ItemKind::Announcement => self.process_announcement(d),
            ItemKind::Envelope => self.process_envelope(d),
        }
    }

    fn process_welcome(&mut self, d: &Delivery) -> Result<Outcome, DeviceError> {
        let Ok(msg) = MlsMessageIn::tls_deserialize_exact(d.body.as_slice()) else {
            return Ok(Outcome::Refused("Welcome does not parse".into()));
        };
        let MlsMessageBodyIn::Welcome(welcome) = msg.extract() else {
            return Ok(Outcome::Refused("item is not a Welcome".into()));
        };
        let staged =
            match StagedWelcome::new_from_welcome(&self.provider, &join_config(), welcome, None) {
                Ok(s) => s,
                Err(e) => return Ok(Outcome::Refused(format!("Welcome refused: {e}"))),
            };
        let group = match staged.into_group(&self.provider) {
            Ok(g) => g,
            Err(e) => return Ok(Outcome::Refused(format!("Welcome refused: {e}"))),
        };
        let conv = group.group_id().as_slice();
        let Ok(id) = <[u8; 16]>::try_from(conv) else {
            return Ok(Outcome::Refused("group id is not a conversation id".into()));
        };
        let conv = custos_wire::ConversationId(id);
        if conv != d.conversation {
            return Ok(Outcome::Refused(
                "Welcome is for another conversation".into(),
            ));
        }
        self.store
            .add_conversation(&conv, self.clock.now_millis())?;
        Ok(Outcome::Joined)
    }

    pub(crate) fn protocol_message(&self, bytes: &[u8]) -> Option<ProtocolMessage> {
        MlsMessageIn::tls_deserialize_exact(bytes)
            .ok()?
            .try_into_protocol_message()
            .ok()
    }

    fn process_commit(&mut self, d: &Delivery) -> Result<Outcome, DeviceError> {
        let Some(pm) = self.protocol_message(&d.body) else {
            return Ok(Outcome::Refused("commit does not parse".into()));
        };
        let Some(mut group) = self.load_group(&d.conversation)? else {
            return Ok(Outcome::Refused(
                "commit for a conversation this device is not in".into(),
            ));
        };
        if !group.is_active() {
            return Ok(Outcome::Duplicate);
        }
        let (theirs, ours) = (pm.epoch().as_u64(), group.epoch().as_u64());
        if theirs < ours {
            return Ok(Outcome::Duplicate);
        }
        if theirs > ours {
            return Ok(Outcome::Buffered);
        }
        if group.pending_commit().is_some() {
            // The service ordered another member's commit first: ours lost.
            group
                .clear_pending_commit(openmls_traits::OpenMlsProvider::storage(&self.provider))
                .map_err(mls_err)?;
        }
        let processed = match group.process_message(&self.provider, pm) {
            Ok(p) => p,
            Err(e) => return Ok(Outcome::Refused(format!("commit refused: {e}"))),
        };
        match processed.into_content() {
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                let removed = staged.self_removed();
                group
                    .merge_staged_commit(&self.provider, *staged)
                    .map_err(mls_err)?;
                if removed {
                    self.store.remove_conversation(&d.conversation)?;
                    self.forget_leaving(&d.conversation)?;
                    return Ok(Outcome::Removed);
                }
                Ok(Outcome::CommitApplied)
            }
            _ => Ok(Outcome::Refused("commit item holds no commit".into())),
        }
    }

    fn process_announcement(&mut self, d: &Delivery) -> Result<Outcome, DeviceError> {
        let ann = match ChainAnnouncement::decode(&d.body) {
            Ok(a) => a,
            Err(e) => return Ok(Outcome::Refused(format!("announcement: {e}"))),
        };
        if ann.conversation != d.conversation {
            return Ok(Outcome::Refused(
                "announcement names another conversation".into(),
            ));
        }
        if self
            .store
            .receiving_chain(&ann.conversation, &ann.chain)?
            .is_some()
        {
            // A replayed announcement must never reset a chain's state.
            return Ok(Outcome::Duplicate);
        }
        let today = self.clock.today();
        if ann.chain.day > today.saturating_add(1) || ann.chain.day.saturating_add(1) < today {
            return Ok(Outcome::Refused(
                "chain day is not yesterday, today or tomorrow".into(),
            ));
        }
        let Some(mut group) = self.load_group(&ann.conversation)? else {
            return Ok(Outcome::Buffered);
        };
        let Some(pm) = self.protocol_message(&ann.mls_message) else {
            return Ok(Outcome::Refused(
                "announcement MLS message does not parse".into(),
            ));
        };
        let (theirs, ours) = (pm.epoch().as_u64(), group.epoch().as_u64());
        if theirs > ours {
            return Ok(Outcome::Buffered);
        }
        if theirs.saturating_add(MAX_PAST_EPOCHS as u64) < ours {
            return Ok(Outcome::Refused(
                "announcement from an epoch too old to decrypt".into(),
            ));
        }
        let processed = match group.process_message(&self.provider, pm) {
            Ok(p) => p,
            Err(e) => {
                return Ok(Outcome::Refused(format!(
                    "announcement refused by MLS: {e}"
                )));
            }
        };
        let Sender::Member(leaf) = *processed.sender() else {
            return Ok(Outcome::Refused("announcement not sent by a member".into()));
        };
        let credential = processed.credential().clone();
        let epoch = processed.epoch().as_u64();
        let ProcessedMessageContent::ApplicationMessage(app) = processed.into_content() else {
            return Ok(Outcome::Refused(
                "announcement holds no application message".into(),
            ));
        };
        let bytes = zeroize::Zeroizing::new(app.into_bytes());
        let root = match ChainRoot::decode(&bytes) {
            Ok(r) => r,
            Err(e) => return Ok(Outcome::Refused(format!("chain root: {e}"))),
        };
        if root.chain != ann.chain
            || leaf.u32() != ann.chain.sender_leaf
            || epoch != ann.chain.epoch
        {
            return Ok(Outcome::Refused(
                "chain id does not match the MLS sender and epoch".into(),
            ));
        }
        let Some(sender) = credential_name(&credential) else {
            return Ok(Outcome::Refused(
                "sender credential is not a Custos account".into(),
            ));
        };
        if sender != d.sender {
            return Ok(Outcome::Refused(
                "service-reported sender differs from the MLS sender".into(),
            ));
        }
        // The roster key of the sender's leaf; the credential must match the
        // message's, so a leaf reused by someone else is not confused.
        let Some(member) = group.member_at(leaf).filter(|m| m.credential == credential) else {
            return Ok(Outcome::Refused("sender is no longer in the roster".into()));
        };
        let Ok(sender_key) = <[u8; 32]>::try_from(member.signature_key.as_slice()) else {
            return Ok(Outcome::Refused("sender key is not Ed25519".into()));
        };
        match &self.escrow {
            Some(policy) => {
                if let Err(e) = policy.verify(
                    &ann.conversation,
                    &ann.chain,
                    &root.ck0,
                    ann.escrow_kind,
                    &ann.escrow_capsule,
                ) {
                    return Ok(Outcome::Refused(format!("escrow capsule refused: {e}")));
                }
            }
            None if ann.escrow_kind != EscrowKind::None => {
                return Ok(Outcome::Refused(
                    "capsule present but this device has no escrow policy".into(),
                ));
            }
            None => {}
        }
        self.store.save_receiving_chain(&ReceivingChainRecord {
            chain: ReceivingChain::new(ann.conversation, ann.chain, ChainKey::from_bytes(root.ck0)),
            sender,
            sender_key,
        })?;
        Ok(Outcome::ChainAccepted)
    }

    fn process_envelope(&mut self, d: &Delivery) -> Result<Outcome, DeviceError> {
        let header = match peek_header(&d.body) {
            Ok(h) => h,
            Err(e) => return Ok(Outcome::Refused(format!("envelope: {e}"))),
        };
        if header.conversation != d.conversation {
            return Ok(Outcome::Refused(
                "envelope names another conversation".into(),
            ));
        }
        let id = message_id(&d.body);
        if self.store.has_message(&id)? {
            return Ok(Outcome::Duplicate);
        }
        let Some(mut rec) = self
            .store
            .receiving_chain(&header.conversation, &header.chain)?
        else {
            return Ok(Outcome::Buffered);
        };
        if rec.sender != d.sender {
            return Ok(Outcome::Refused(
                "service-reported sender differs from the chain's sender".into(),
            ));
        }
        let Ok(key) = VerifyingKey::from_bytes(&rec.sender_key) else {
            return Ok(Outcome::Refused(
                "sender key is not a valid Ed25519 key".into(),
            ));
        };
        if let Some(pinned) = self.pinned_franking_key()?
            && let Err(e) = crate::report::check_tag(
                &pinned,
                &d.tag,
                &header,
                &d.body,
                &d.sender,
                d.server_time,
            )
        {
            return Ok(Outcome::Refused(e.to_string()));
        }
        let opened = match open(&d.body, &mut rec.chain, &key, &rec.sender) {
            Ok(o) => o,
            Err(e) => return Ok(Outcome::Refused(e.to_string())),
        };
        let plaintext = opened.payload.encode()?;
        let text = opened.payload.text().unwrap_or_default().to_owned();
        // Chain state and message land together in the caller's order:
        // the message first, so a crash in between replays into `Duplicate`.
        self.store.insert_message(
            &id,
            &header.conversation,
            &rec.sender,
            &text,
            opened.payload.sent_at,
            d.server_time,
            &d.body,
            &plaintext,
            &d.tag,
            false,
        )?;
        self.store.save_receiving_chain(&rec)?;
        Ok(Outcome::Message)
    }

    fn cursor(&self) -> Result<u64, DeviceError> {
        Ok(self
            .store
            .get("cursor")?
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    fn set_cursor(&self, seq: u64) -> Result<(), DeviceError> {
        Ok(self.store.set("cursor", &seq.to_be_bytes())?)
    }
}
