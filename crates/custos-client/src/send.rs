//! Sending: chain management and envelope submission.

use custos_wire::ConversationId;
use custos_wire::announcement::{ChainAnnouncement, ChainRoot, EscrowKind};
use custos_wire::frames::ItemKind;
use openmls::prelude::tls_codec::Serialize as _;

use crate::api::ApiError;
use crate::chain::{ChainKey, SendingChain};
use crate::device::{Device, DeviceError, MlsError, mls};
use crate::seal::{seal, text_payload};
use crate::store::{Direction, NewMessage};

/// What the sender learns when a message is accepted.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SentMessage {
    /// Message id (hex).
    pub id: String,
    /// Conversation id (hex).
    pub conversation: String,
    /// The service's acceptance time, Unix ms.
    pub server_time: u64,
}

impl Device {
    /// Sends a text message. Returns once the service has stored it durably.
    pub async fn send_text(
        &mut self,
        conv: &ConversationId,
        text: &str,
    ) -> Result<SentMessage, DeviceError> {
        let payload = text_payload(text, self.clock.now_millis());
        self.send_payload(conv, payload, text).await
    }

    /// Seals `payload` (whose text is `text`) on the conversation's sending
    /// chain, submits it and stores it as sent.
    pub(crate) async fn send_payload(
        &mut self,
        conv: &ConversationId,
        payload: custos_wire::payload::Payload,
        text: &str,
    ) -> Result<SentMessage, DeviceError> {
        if self.is_leaving(conv)? {
            return Err(DeviceError::Left(conv.to_hex()));
        }
        // A member who asked to leave must not read what is sent from now on:
        // commit its removal before sending.
        if self.may_be_unsettled(conv)? {
            self.commit_pending_proposals(conv).await?;
        }
        self.self_update_if_due(conv).await?;
        // A verified contact whose key changed gets nothing until accepted.
        self.check_verified_contacts(&self.group(conv)?)?;
        let mut chain = self.current_chain(conv).await?;
        let sealed = seal(
            &mut chain,
            self.identity.signing_key(),
            &self.name,
            &payload,
        )?;
        // Write-ahead: the advanced chain is on disk before the ciphertext
        // leaves, so a crash can never make this device reuse a key or nonce.
        self.store.save_sending_chain(&chain)?;
        let (server_time, tag) = self
            .api
            .submit(conv, ItemKind::Envelope, sealed.bytes.clone())
            .await?;
        let plaintext = payload.encode()?;
        self.store.insert_message(&NewMessage {
            id: &sealed.message_id,
            conversation: conv,
            sender: &self.name,
            text,
            sent_at: payload.sent_at,
            server_time,
            envelope: &sealed.bytes,
            payload: &plaintext,
            tag: &tag,
            direction: Direction::Outgoing,
        })?;
        Ok(SentMessage {
            id: hex::encode(sealed.message_id),
            conversation: conv.to_hex(),
            server_time,
        })
    }

    /// The sending chain for this conversation's current epoch and today,
    /// announcing a new one over MLS if needed.
    async fn current_chain(&mut self, conv: &ConversationId) -> Result<SendingChain, DeviceError> {
        let mut group = self.group(conv)?;
        let epoch = group.epoch().as_u64();
        let leaf = group.own_leaf_index().u32();
        let day = self.clock.today();
        let previous = self.store.sending_chain(conv)?;
        let same_slot =
            |c: &SendingChain| c.id.epoch == epoch && c.id.sender_leaf == leaf && c.id.day == day;
        if let Some(c) = previous
            .as_ref()
            .filter(|c| same_slot(c) && c.next_generation < u32::MAX)
        {
            self.ensure_announced(conv, &c.id).await?;
            return Ok(c.clone());
        }
        let seq = match &previous {
            Some(c) if same_slot(c) => c.id.seq.saturating_add(1),
            _ => 0,
        };
        let id = custos_wire::ChainId {
            epoch,
            sender_leaf: leaf,
            day,
            seq,
        };
        // With escrow, a chain can only start once today's day key is known.
        self.ensure_day_key(day).await?;
        let root = ChainKey::random();
        let (escrow_kind, escrow_capsule) = match &self.escrow {
            Some(policy) => policy
                .seal(conv, &id, root.expose())
                .map_err(DeviceError::Escrow)?,
            None => (EscrowKind::None, Vec::new()),
        };
        let inner = ChainRoot {
            chain: id,
            ck0: *root.expose(),
        };
        let mls = group
            .create_message(&self.provider, &self.identity, &inner.encode())
            .map_err(mls(MlsError::CreateMessage))?
            .tls_serialize_detached()
            .map_err(mls(MlsError::Encode))?;
        let announcement = ChainAnnouncement {
            conversation: *conv,
            chain: id,
            escrow_kind,
            escrow_capsule,
            mls_message: mls,
        }
        .encode()?;
        // Write-ahead, in this order: the announcement, then the chain. The
        // chain is used only once the service has acknowledged its
        // announcement; until then every attempt resends the very same
        // bytes, and a later root in this slot gets the next `seq`, so no
        // chain id is ever announced with two roots.
        self.store
            .set(&pending_announcement_key(conv), &announcement)?;
        let chain = SendingChain::new(*conv, id, root);
        self.store.save_sending_chain(&chain)?;
        self.ensure_announced(conv, &id).await?;
        Ok(chain)
    }

    /// Sends the announcement of chain `id` again if the service has not
    /// acknowledged it yet. A `duplicate` refusal means the service stored it
    /// before (its answer was lost): that is an acknowledgement too. A
    /// pending announcement of another chain was never sent (the process
    /// stopped before the chain was saved) and is dropped.
    async fn ensure_announced(
        &mut self,
        conv: &ConversationId,
        id: &custos_wire::ChainId,
    ) -> Result<(), DeviceError> {
        let key = pending_announcement_key(conv);
        let Some(bytes) = self.store.get(&key)? else {
            return Ok(());
        };
        let ours = ChainAnnouncement::decode(&bytes).is_ok_and(|a| a.chain == *id);
        if ours {
            match self.api.submit(conv, ItemKind::Announcement, bytes).await {
                Ok(_) => {}
                Err(ApiError::Refused { code, .. }) if code == DUPLICATE_CODE => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.store.delete(&key)?;
        Ok(())
    }
}

/// The service's refusal code for an item it already stored.
const DUPLICATE_CODE: &str = "duplicate";

/// Store key of a chain announcement not yet acknowledged by the service.
fn pending_announcement_key(conv: &ConversationId) -> String {
    format!("announce/pending/{}", conv.to_hex())
}
