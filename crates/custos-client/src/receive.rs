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

use custos_wire::envelope::peek_header;
use custos_wire::frames::{Delivery, ItemKind, ServerFrame};
use futures_util::StreamExt as _;
use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::*;

use crate::device::{Device, DeviceError, MlsError, mls};
use crate::keydir::RosterCheck;
use crate::mls::join_config;
use crate::refusal::{CommitRefusal, EnvelopeRefusal, Refusal, RefusedItem, WelcomeRefusal};
use crate::report::TagCheckError;
use crate::seal::{message_id, open};
use crate::store::{Direction, NewMessage, StoredMessage};

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
    Refused(Refusal),
}

macro_rules! refused_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Outcome {
            fn from(r: $t) -> Self {
                Outcome::Refused(r.into())
            }
        }
    )*};
}
refused_from!(
    crate::refusal::WelcomeRefusal,
    crate::refusal::CommitRefusal,
    crate::refusal::ProposalRefusal,
    crate::refusal::AnnouncementRefusal,
    EnvelopeRefusal
);

/// How long a buffered item is retried before it is given up on.
const MAX_BUFFERED_ATTEMPTS: u32 = 10_000;
const FETCH_LIMIT: u32 = 500;
/// Most refusals kept for [`Device::take_refusals`].
const MAX_REFUSALS_KEPT: usize = 1000;

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
                outcomes.push(self.process_delivery(d).await?);
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
        // Day keys first, so that today's chains can be checked.
        self.follow_log().await?;
        // Self-monitoring: a key for this account that this device did not
        // make is an alert ([`Device::key_alerts`]).
        self.check_own_keys().await?;
        self.sync().await?;
        // The mailbox is read to its end: chains past their day can go.
        self.expire_day_chains(self.day_grace_secs())?;
        self.settle_leaves().await?;
        if let Some(wait) = wait {
            self.listen(wait).await?;
            self.settle_leaves().await?;
        }
        self.replenish_key_packages().await?;
        let mut messages = self.store.take_unshown()?;
        self.save_attachments(&mut messages).await?;
        Ok(messages)
    }

    /// The items refused since the last call (in [`Device::sync`],
    /// [`Device::listen`] or [`Device::process_delivery`]), for reporting;
    /// escrow violations name their sender.
    pub fn take_refusals(&mut self) -> Vec<RefusedItem> {
        std::mem::take(&mut self.refused)
    }

    fn note_refusal(&mut self, d: &Delivery, reason: &Refusal) {
        // Bounded: a caller that never takes them keeps the most recent ones.
        if self.refused.len() >= MAX_REFUSALS_KEPT {
            self.refused.remove(0);
        }
        self.refused.push(RefusedItem::new(d, reason));
    }

    /// Listens on the mailbox WebSocket for `wait`, processing pushed items.
    /// Self-monitoring runs on a schedule meanwhile: every
    /// [`crate::keydir::OWN_KEYS_CHECK_INTERVAL`] (or the interval set with
    /// [`Device::set_own_keys_check_interval`]) the device checks its own
    /// key history, as [`Device::receive`] does when it starts.
    pub async fn listen(&mut self, wait: Duration) -> Result<Vec<Outcome>, DeviceError> {
        let mut ws = self.api.connect_ws().await?;
        let deadline = tokio::time::Instant::now() + wait;
        let mut next_check = tokio::time::Instant::now() + self.own_keys_check_interval;
        let mut outcomes = Vec::new();
        loop {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                break;
            }
            if now >= next_check {
                self.check_own_keys().await?;
                next_check = tokio::time::Instant::now() + self.own_keys_check_interval;
            }
            let next = tokio::time::timeout_at(deadline.min(next_check), ws.next()).await;
            let frame = match next {
                // The deadline or the next check: the loop decides which.
                Err(_) => continue,
                Ok(None) => break,
                Ok(Some(frame)) => frame,
            };
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
            outcomes.push(self.process_delivery(d).await?);
            self.set_cursor(seq)?;
            self.api.ack(&[seq]).await?;
        }
        Ok(outcomes)
    }

    /// Processes one mailbox item, then retries buffered items it may have
    /// unblocked. Errors are local failures (storage) and failures to reach
    /// the key directory or the log (the item is then not acknowledged and
    /// comes again); anything wrong with the item itself is an
    /// [`Outcome::Refused`]. With a key directory in the manifest, Welcomes
    /// and commits that add members wait for lookup proofs of the members'
    /// keys (see [`crate::keydir`]).
    pub async fn process_delivery(&mut self, d: Delivery) -> Result<Outcome, DeviceError> {
        let outcome = self.process_one(&d).await?;
        match &outcome {
            Outcome::Buffered => {
                if !self.store.buffer(&d)? {
                    return Ok(Outcome::Refused(Refusal::BufferFull));
                }
            }
            Outcome::Refused(reason) => {
                self.note_refusal(&d, reason);
                tracing::warn!(seq = d.seq, kind = ?d.kind, sender = %d.sender, code = reason.code(), %reason, "refused mailbox item");
            }
            _ => self.retry_buffered().await?,
        }
        Ok(outcome)
    }

    async fn retry_buffered(&mut self) -> Result<(), DeviceError> {
        let mut progress = true;
        let mut rounds = 0u32;
        while progress && rounds < MAX_BUFFERED_ATTEMPTS {
            progress = false;
            rounds += 1;
            for d in self.store.buffered()? {
                match self.process_one(&d).await? {
                    Outcome::Buffered => {}
                    outcome => {
                        if let Outcome::Refused(reason) = &outcome {
                            self.note_refusal(&d, reason);
                        }
                        self.store.unbuffer(d.seq)?;
                        progress = true;
                    }
                }
            }
        }
        Ok(())
    }

    async fn process_one(&mut self, d: &Delivery) -> Result<Outcome, DeviceError> {
        if matches!(d.kind, ItemKind::Envelope | ItemKind::Announcement)
            && self.is_leaving(&d.conversation)?
        {
            return Ok(Outcome::Left);
        }
        match d.kind {
            ItemKind::Proposal => self.process_proposal(d),
            ItemKind::Welcome => self.process_welcome(d).await,
            ItemKind::Commit => self.process_commit(d).await,
            ItemKind::Announcement => self.process_announcement(d),
            ItemKind::Envelope => self.process_envelope(d),
        }
    }

    /// Joins from a Welcome in one transaction of the MLS store: the
    /// KeyPackage openmls consumes while staging, and the group it writes,
    /// are on disk together once every check passed, or not at all. A
    /// refused Welcome, an error, or a device killed (or its future
    /// dropped) part-way leaves the MLS state as it was, KeyPackage
    /// included, so the Welcome, delivered again, can still be joined.
    async fn process_welcome(&mut self, d: &Delivery) -> Result<Outcome, DeviceError> {
        let transaction = self
            .provider
            .storage()
            .begin()
            .map_err(crate::mls::ProviderError::from)?;
        let outcome = self.join_from_welcome(d).await?;
        if outcome == Outcome::Joined {
            transaction
                .commit(self.provider.storage())
                .map_err(crate::mls::ProviderError::from)?;
        }
        Ok(outcome)
    }

    async fn join_from_welcome(&mut self, d: &Delivery) -> Result<Outcome, DeviceError> {
        let Ok(msg) = MlsMessageIn::tls_deserialize_exact(d.body.as_slice()) else {
            return Ok(WelcomeRefusal::Malformed.into());
        };
        let MlsMessageBodyIn::Welcome(welcome) = msg.extract() else {
            return Ok(WelcomeRefusal::NotAWelcome.into());
        };
        self.join(welcome, d).await
    }

    async fn join(&mut self, welcome: Welcome, d: &Delivery) -> Result<Outcome, DeviceError> {
        let processed =
            match ProcessedWelcome::new_from_welcome(&self.provider, &join_config(), welcome) {
                Ok(p) => p,
                Err(e) => return Ok(WelcomeRefusal::Mls(e.to_string()).into()),
            };
        // The roster's lookups go out before its tree is verified, for the
        // accounts the unverified tree names; their answer is used only if
        // the verified roster asks for exactly those accounts.
        let own_key = self.identity.public_bytes();
        let guessed: Vec<(String, Vec<u8>)> = processed
            .unverified_group_info()
            .extensions()
            .ratchet_tree()
            .map(|t| {
                t.ratchet_tree()
                    .leaves()
                    .filter(|l| l.signature_key().as_slice() != own_key.as_slice())
                    .map(|l| {
                        (
                            leaf_account(l.credential()),
                            l.signature_key().as_slice().to_vec(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let vrf = self.key_directory_vrf()?;
        let guessed_accounts = self.roster_to_look_up(&guessed).unwrap_or_default();
        let mut looking_up = vrf
            .filter(|_| !guessed_accounts.is_empty())
            .map(|vrf| self.spawn_roster_check(vrf, guessed_accounts.clone()));
        // Once the service answered: if it names a new epoch, the log is
        // polled to its root while the Welcome is staged and the group
        // written (taken into the store below, on this connection).
        let early_answer = looking_up.as_mut().and_then(RosterCheck::take_answer);
        let prefetch = match early_answer {
            Some(answered) => self.prefetch_for(guessed_accounts.clone(), answered)?,
            None => None,
        };
        let staged = match processed.into_staged_welcome(&self.provider, None) {
            Ok(s) => s,
            Err(e) => return Ok(WelcomeRefusal::Mls(e.to_string()).into()),
        };
        // Every other member of the roster must carry its account's key in
        // the key directory before this device joins (no ghost members).
        let own = staged.own_leaf_index();
        let members: Vec<(String, Vec<u8>)> = staged
            .members()
            .filter(|m| m.index != own)
            .map(|m| (leaf_account(&m.credential), m.signature_key))
            .collect();
        let accounts = match self.roster_to_look_up(&members) {
            Ok(a) => a,
            Err(DeviceError::KeyDirectory(r)) => return Ok(WelcomeRefusal::MemberKey(r).into()),
            Err(e) => return Err(e),
        };
        if accounts != guessed_accounts {
            // The tree named other accounts than the verified roster: the
            // early lookups are dropped (aborted) and the roster's sent.
            looking_up = vrf
                .filter(|_| !accounts.is_empty())
                .map(|vrf| self.spawn_roster_check(vrf, accounts.clone()));
        }
        let Ok(id) = <[u8; 16]>::try_from(staged.group_context().group_id().as_slice()) else {
            return Ok(WelcomeRefusal::BadGroupId.into());
        };
        let conv = custos_wire::ConversationId(id);
        if conv != d.conversation {
            return Ok(WelcomeRefusal::ConversationMismatch.into());
        }
        // Whether the device holds nothing of this conversation yet (the
        // record of an earlier join cut short aside).
        let fresh = self.load_group(&conv)?.is_none() && !self.store.has_receiving_chains(&conv)?;
        // openmls writes the group into this join's transaction, which a
        // refusal rolls back.
        let group = match staged.into_group(&self.provider) {
            Ok(g) => g,
            Err(e) => return Ok(WelcomeRefusal::Mls(e.to_string()).into()),
        };
        if let Some(prefetch) = prefetch {
            self.take_prefetched(prefetch).await;
        }
        // The device's own records of the conversation go before the MLS
        // commit: should it not happen, the Welcome is delivered again and
        // joined again, and these writes are idempotent. For a conversation
        // the device held nothing of, they are written while the proofs
        // are checked, and taken back if the join is refused; a device
        // killed meanwhile keeps a record with no group, which every reader
        // skips and the Welcome, delivered again, writes or takes back.
        if fresh {
            self.record_joined(&conv, &group)?;
        }
        let checked = match looking_up {
            Some(check) => match check.finish().await {
                Ok(roster) => self.accept_roster(&members, &accounts, roster).await,
                Err(e) => Err(e),
            },
            None => Ok(()),
        };
        if let Err(e) = checked {
            if fresh {
                self.forget_unjoined(&conv)?;
            }
            return match e {
                DeviceError::KeyDirectory(r) => Ok(WelcomeRefusal::MemberKey(r).into()),
                e => Err(e),
            };
        }
        if !fresh {
            self.record_joined(&conv, &group)?;
        }
        Ok(Outcome::Joined)
    }

    /// The device's own records of a conversation it joined with `group`.
    fn record_joined(
        &mut self,
        conv: &custos_wire::ConversationId,
        group: &MlsGroup,
    ) -> Result<(), DeviceError> {
        self.store.add_conversation(conv, self.clock.now_millis())?;
        self.after_epoch_change(conv, group)
    }

    pub(crate) fn protocol_message(&self, bytes: &[u8]) -> Option<ProtocolMessage> {
        MlsMessageIn::tls_deserialize_exact(bytes)
            .ok()?
            .try_into_protocol_message()
            .ok()
    }

    async fn process_commit(&mut self, d: &Delivery) -> Result<Outcome, DeviceError> {
        let Some(pm) = self.protocol_message(&d.body) else {
            return Ok(CommitRefusal::Malformed.into());
        };
        let Some(mut group) = self.load_group(&d.conversation)? else {
            return Ok(CommitRefusal::UnknownConversation.into());
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
                .map_err(mls(MlsError::Merge))?;
        }
        let processed = match group.process_message(&self.provider, pm) {
            Ok(p) => p,
            Err(e) => return Ok(CommitRefusal::Mls(e.to_string()).into()),
        };
        match processed.into_content() {
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                // Every key the commit brings into the roster must be its
                // account's key in the key directory, before it is applied.
                match self.check_roster_keys(&gained_keys(&group, &staged)).await {
                    Ok(()) => {}
                    Err(DeviceError::KeyDirectory(r)) => {
                        return Ok(CommitRefusal::MemberKey(r).into());
                    }
                    Err(e) => return Err(e),
                }
                let removed = staged.self_removed();
                // The new epoch's state is written whole or not at all: a
                // device killed part-way processes the commit again.
                openmls_traits::OpenMlsProvider::storage(&self.provider).atomically(|| {
                    group
                        .merge_staged_commit(&self.provider, *staged)
                        .map_err(mls(MlsError::Merge))
                })?;
                if removed {
                    self.store.remove_conversation(&d.conversation)?;
                    self.forget_leaving(&d.conversation)?;
                    return Ok(Outcome::Removed);
                }
                self.after_epoch_change(&d.conversation, &group)?;
                Ok(Outcome::CommitApplied)
            }
            _ => Ok(CommitRefusal::NotACommit.into()),
        }
    }

    fn process_envelope(&mut self, d: &Delivery) -> Result<Outcome, DeviceError> {
        let header = match peek_header(&d.body) {
            Ok(h) => h,
            Err(e) => return Ok(EnvelopeRefusal::Malformed(e).into()),
        };
        if header.conversation != d.conversation {
            return Ok(EnvelopeRefusal::ConversationMismatch.into());
        }
        let id = message_id(&d.body);
        if self.store.has_message(&id)? {
            return Ok(Outcome::Duplicate);
        }
        let pinned = match self.pinned_franking {
            crate::report::PinnedFranking::None => None,
            crate::report::PinnedFranking::Key(k) => Some(k),
            crate::report::PinnedFranking::Invalid => {
                return Ok(EnvelopeRefusal::Tag(TagCheckError::InvalidPinnedKey).into());
            }
        };
        if let Some(pinned) = pinned
            && let Err(e) = crate::report::check_tag(
                &pinned,
                &d.tag,
                &header,
                &d.body,
                &d.sender,
                d.server_time,
                &mut self.tag_roots,
            )
        {
            return Ok(EnvelopeRefusal::Tag(e).into());
        }
        // One day key opens one day: an envelope accepted after its chain's
        // day plus the grace would be readable with the wrong day's key.
        let grace_secs = self.day_grace_secs();
        if !delivered_within_day(header.chain.day, d.server_time, grace_secs) {
            return Ok(EnvelopeRefusal::OutsideChainDay {
                day: header.chain.day,
                server_time: d.server_time,
                grace_secs,
            }
            .into());
        }
        if let Some(refusal) = self.expired_chain(&header, &d.sender)? {
            return Ok(refusal.into());
        }
        let Some(mut rec) = self
            .store
            .receiving_chain(&header.conversation, &header.chain)?
        else {
            return Ok(Outcome::Buffered);
        };
        if rec.sender != d.sender {
            return Ok(EnvelopeRefusal::SenderMismatch.into());
        }
        let Ok(key) = self.sender_keys.get(&rec.sender_key).cloned() else {
            return Ok(EnvelopeRefusal::BadSenderKey.into());
        };
        let opened = match open(&d.body, &mut rec.chain, &key, &rec.sender) {
            Ok(o) => o,
            Err(e) => return Ok(EnvelopeRefusal::Open(e).into()),
        };
        let plaintext = opened.payload.encode()?;
        let text = opened.payload.text().unwrap_or_default().to_owned();
        // Chain state and message land together in the caller's order:
        // the message first, so a crash in between replays into `Duplicate`.
        self.store.insert_message(&NewMessage {
            id: &id,
            conversation: &header.conversation,
            sender: &rec.sender,
            text: &text,
            sent_at: opened.payload.sent_at,
            server_time: d.server_time,
            envelope: &d.body,
            payload: &plaintext,
            tag: &d.tag,
            direction: Direction::Incoming,
        })?;
        self.store.save_receiving_chain(&rec)?;
        Ok(Outcome::Message)
    }

    /// The day grace of the pinned manifest, or the default without one.
    fn day_grace_secs(&self) -> u64 {
        u64::from(
            self.pin
                .as_ref()
                .map(|p| p.manifest().policy.day_grace_secs)
                .unwrap_or(custos_wire::manifest::DEFAULT_DAY_GRACE_SECS),
        )
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

/// A leaf's account name, or its credential rendered for an error message
/// when it names no valid account (the directory then has no key for it).
fn leaf_account(credential: &Credential) -> String {
    crate::mls::credential_name(credential).unwrap_or_else(|| {
        BasicCredential::try_from(credential.clone())
            .map(|b| String::from_utf8_lossy(b.identity()).into_owned())
            .unwrap_or_else(|_| "(not a basic credential)".to_owned())
    })
}

/// The `(account, signature key)` pairs a staged commit brings into the
/// roster that it does not hold now: added members, and new leaves of
/// existing members (update proposals and the committer's update path).
fn gained_keys(group: &MlsGroup, staged: &StagedCommit) -> Vec<(String, Vec<u8>)> {
    let current: Vec<(String, Vec<u8>)> = group
        .members()
        .map(|m| (leaf_account(&m.credential), m.signature_key))
        .collect();
    let pair = |leaf: &LeafNode| {
        (
            leaf_account(leaf.credential()),
            leaf.signature_key().as_slice().to_vec(),
        )
    };
    let mut pairs: Vec<(String, Vec<u8>)> = staged
        .add_proposals()
        .map(|a| pair(a.add_proposal().key_package().leaf_node()))
        .collect();
    pairs.extend(
        staged
            .update_proposals()
            .map(|u| pair(u.update_proposal().leaf_node())),
    );
    pairs.extend(staged.update_path_leaf_node().map(pair));
    let mut gained: Vec<(String, Vec<u8>)> = Vec::new();
    for p in pairs {
        if !current.contains(&p) && !gained.contains(&p) {
            gained.push(p);
        }
    }
    gained
}

/// Whether an envelope of a chain of `day` accepted by the service at
/// `server_time_ms` lies within that day plus `grace_secs` after midnight.
pub fn delivered_within_day(day: u32, server_time_ms: u64, grace_secs: u64) -> bool {
    let start = u64::from(day).saturating_mul(86_400_000);
    let end = start
        .saturating_add(86_400_000)
        .saturating_add(grace_secs.saturating_mul(1000));
    server_time_ms >= start && server_time_ms < end
}

#[cfg(test)]
mod tests {
    use super::delivered_within_day;

    #[test]
    fn an_envelope_counts_for_its_day_plus_the_grace_only() {
        let day = 20_000u32;
        let start = u64::from(day) * 86_400_000;
        assert!(!delivered_within_day(day, start - 1, 600));
        assert!(delivered_within_day(day, start, 600));
        assert!(delivered_within_day(day, start + 86_400_000 + 599_999, 600));
        assert!(!delivered_within_day(
            day,
            start + 86_400_000 + 600_000,
            600
        ));
        assert!(!delivered_within_day(day, start + 86_400_000, 0));
    }
}
