//! Opening what a provider kept under a warrant, with every check a court
//! or a defence would want, and nothing outside the warrant.
//!
//! [`open_kept`] takes the kept items (chain announcements with their escrow
//! capsules, and envelopes with their delivery tags), the conversation-day
//! identity keys the custodians released, the day keys and the provider's
//! franking key from the log. It opens each capsule with its
//! conversation-day's key, checks the capsule's provenance (the recovered
//! `CK_0` re-seals to the very capsule under the logged day key), derives
//! the chain keys, and opens each envelope, checking the sender's envelope
//! signature, the franking commitment and the provider's delivery tag.
//!
//! # Guarantees
//! - Items of a conversation-day outside the warrant are neither opened nor
//!   returned: they are counted in [`Opened::outside_warrant`].
//! - Every message says which checks passed; a message whose envelope does
//!   not open is reported with the reason, never silently dropped.
//! - No I/O: the same function runs at the authority and in an offline
//!   evidence verifier, and gives the same answer.

use std::collections::BTreeMap;

use custos_escrow::{Capsule, DayKey, IdentityKey};
use custos_wire::announcement::ChainAnnouncement;
use custos_wire::envelope::peek_header;
use custos_wire::frames::ItemKind;
use custos_wire::tag::{Received, VerifiedRoots, verify_tag_remembering};
use custos_wire::warrant::Warrant;
use custos_wire::{ChainId, ConversationId};
use ed25519_dalek::VerifyingKey;

use crate::chain::{ChainKey, ReceivingChain};
use crate::seal;
use crate::sender_signature::{SenderKeyCache, SignatureBatch};

/// One item the provider kept, as it stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptItem {
    /// The provider's id of the kept copy (ascending in storage order).
    pub id: u64,
    /// Envelope or chain announcement.
    pub kind: ItemKind,
    /// The conversation.
    pub conversation: ConversationId,
    /// The UTC day of the item's chain.
    pub day: u32,
    /// The sender account, as the provider recorded it.
    pub sender: String,
    /// The sender account's identity key, as the provider recorded it.
    pub sender_key: [u8; 32],
    /// When the provider accepted it, Unix ms.
    pub server_time: u64,
    /// The delivery tag (envelopes).
    pub tag: Vec<u8>,
    /// The item's bytes.
    pub body: Vec<u8>,
}

/// Which checks an opened message passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MessageChecks {
    /// The sender's Ed25519 envelope signature verifies under the sender key.
    pub envelope_signature: bool,
    /// The franking commitment matches the decrypted payload.
    pub franking_commitment: bool,
    /// The provider's delivery tag verifies under its logged franking key.
    pub delivery_tag: bool,
    /// The chain's capsule re-seals from the recovered chain key under the
    /// logged day key for this conversation-day.
    pub escrow_provenance: bool,
}

/// A message recovered under the warrant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredMessage {
    /// The kept envelope's id.
    pub item: u64,
    /// The conversation.
    pub conversation: ConversationId,
    /// The chain it was sent on.
    pub chain: ChainId,
    /// Its generation in the chain.
    pub generation: u32,
    /// The sender account.
    pub sender: String,
    /// When the provider accepted it, Unix ms.
    pub server_time: u64,
    /// When the sender's device says it sent it, Unix ms.
    pub sent_at: u64,
    /// The payload body (text for text messages).
    pub body: Vec<u8>,
    /// Which checks passed.
    pub checks: MessageChecks,
}

/// Why a kept item inside the warrant was not opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenFailure {
    /// The item's bytes do not decode.
    #[error("item {0} does not decode")]
    Malformed(u64),
    /// No identity key was released for the item's conversation-day.
    #[error("item {0}: no identity key for its conversation-day")]
    NoKey(u64),
    /// The capsule does not open with the conversation-day's key.
    #[error("item {0}: the capsule does not open with the released key")]
    CapsuleDoesNotOpen(u64),
    /// An envelope of a chain whose announcement was not kept.
    #[error("item {0}: no announcement of its chain was kept")]
    UnknownChain(u64),
    /// The envelope does not open under its chain.
    #[error("item {item}: the envelope does not open: {reason}")]
    Envelope {
        /// The item.
        item: u64,
        /// Why.
        reason: String,
    },
}

/// What [`open_kept`] recovered.
#[derive(Debug, Default)]
pub struct Opened {
    /// The messages, in the order the provider kept them.
    pub messages: Vec<RecoveredMessage>,
    /// Items inside the warrant that could not be opened, and why.
    pub failures: Vec<OpenFailure>,
    /// Items outside the warrant: not opened.
    pub outside_warrant: usize,
}

/// The chains opened so far: their receiving state, whether the capsule's
/// provenance checked, and the sender the announcement was kept with.
type Chains = BTreeMap<(ConversationId, ChainId), (ReceivingChain, bool, String)>;

/// The released identity keys, by conversation-day.
pub type IdentityKeys = BTreeMap<(ConversationId, u32), IdentityKey>;

/// Opens `items` under `warrant`; see the module docs.
///
/// The envelope signatures are checked in one batch
/// ([`crate::sender_signature::SignatureBatch`]), which gives the same
/// verdict as checking each alone. If the batch fails, everything is opened
/// again with each signature checked before its envelope is decrypted, so
/// that the result is exactly what checking one by one gives (a forged
/// envelope never burns the key of a genuine one).
pub fn open_kept(
    warrant: &Warrant,
    items: &[KeptItem],
    keys: &IdentityKeys,
    day_keys: &BTreeMap<u32, DayKey>,
    franking_key: &VerifyingKey,
) -> Opened {
    let mut sender_keys = SenderKeyCache::new();
    let mut batch = SignatureBatch::new();
    let opened = open_all(
        warrant,
        items,
        keys,
        day_keys,
        franking_key,
        &mut sender_keys,
        Some(&mut batch),
    );
    if batch.verify() {
        return opened;
    }
    open_all(
        warrant,
        items,
        keys,
        day_keys,
        franking_key,
        &mut sender_keys,
        None,
    )
}

/// [`open_kept`]'s one pass: each envelope's signature is queued in `batch`
/// when there is one, and checked before decryption otherwise.
fn open_all(
    warrant: &Warrant,
    items: &[KeptItem],
    keys: &IdentityKeys,
    day_keys: &BTreeMap<u32, DayKey>,
    franking_key: &VerifyingKey,
    sender_keys: &mut SenderKeyCache,
    mut batch: Option<&mut SignatureBatch>,
) -> Opened {
    let mut out = Opened::default();
    let mut chains: Chains = BTreeMap::new();
    let mut roots = VerifiedRoots::new();
    // Announcements first: a chain's announcement may have been kept after
    // its envelopes (remembered from earlier in the day).
    let mut sorted: Vec<&KeptItem> = items.iter().collect();
    sorted.sort_by_key(|i| (i.kind != ItemKind::Announcement, i.id));
    for item in sorted {
        if !warrant.fields().covers(&item.conversation, item.day) {
            out.outside_warrant += 1;
            continue;
        }
        match item.kind {
            ItemKind::Announcement => match open_announcement(item, keys, day_keys) {
                Ok((a, ck0, provenance)) => {
                    chains.insert(
                        (a.conversation, a.chain),
                        (
                            ReceivingChain::new(a.conversation, a.chain, ChainKey::from_bytes(ck0)),
                            provenance,
                            item.sender.clone(),
                        ),
                    );
                }
                Err(f) => out.failures.push(f),
            },
            ItemKind::Envelope => {
                let checks = EnvelopeChecks {
                    franking_key,
                    roots: &mut roots,
                    sender_keys,
                    batch: batch.as_deref_mut(),
                };
                match open_envelope(item, &mut chains, checks) {
                    Ok(m) => out.messages.push(m),
                    Err(f) => out.failures.push(f),
                }
            }
            _ => {}
        }
    }
    out
}

/// What checking one envelope needs besides the envelope and its chain.
struct EnvelopeChecks<'a> {
    franking_key: &'a VerifyingKey,
    roots: &'a mut VerifiedRoots,
    sender_keys: &'a mut SenderKeyCache,
    batch: Option<&'a mut SignatureBatch>,
}

fn open_announcement(
    item: &KeptItem,
    keys: &IdentityKeys,
    day_keys: &BTreeMap<u32, DayKey>,
) -> Result<(ChainAnnouncement, [u8; 32], bool), OpenFailure> {
    let a = ChainAnnouncement::decode(&item.body).map_err(|_| OpenFailure::Malformed(item.id))?;
    if a.conversation != item.conversation || a.chain.day != item.day {
        return Err(OpenFailure::Malformed(item.id));
    }
    let key = keys
        .get(&(a.conversation, a.chain.day))
        .ok_or(OpenFailure::NoKey(item.id))?;
    let capsule =
        Capsule::from_bytes(&a.escrow_capsule).map_err(|_| OpenFailure::Malformed(item.id))?;
    let ck0 =
        custos_escrow::open(&capsule, key).map_err(|_| OpenFailure::CapsuleDoesNotOpen(item.id))?;
    let provenance = day_keys.get(&a.chain.day).is_some_and(|dk| {
        custos_escrow::verify(
            &capsule,
            dk,
            &a.conversation.0,
            a.chain.day,
            &a.chain.qualified(&a.conversation),
            &ck0,
        )
        .is_ok()
    });
    Ok((a, *ck0, provenance))
}

fn open_envelope(
    item: &KeptItem,
    chains: &mut Chains,
    checks: EnvelopeChecks<'_>,
) -> Result<RecoveredMessage, OpenFailure> {
    let header = peek_header(&item.body).map_err(|_| OpenFailure::Malformed(item.id))?;
    let (chain, provenance, announced_by) = chains
        .get_mut(&(header.conversation, header.chain))
        .ok_or(OpenFailure::UnknownChain(item.id))?;
    if *announced_by != item.sender {
        return Err(OpenFailure::Envelope {
            item: item.id,
            reason: "its sender is not the sender of its chain's announcement".into(),
        });
    }
    let sender_key =
        checks
            .sender_keys
            .get(&item.sender_key)
            .map_err(|e| OpenFailure::Envelope {
                item: item.id,
                reason: e.to_string(),
            })?;
    // Both check the franking commitment; `seal::open` checks the envelope
    // signature too, and the other queues it in the batch.
    let mut opened = match checks.batch {
        Some(batch) => {
            seal::open_queuing_signature(&item.body, chain, sender_key, &item.sender, batch)
        }
        None => seal::open(&item.body, chain, sender_key, &item.sender),
    }
    .map_err(|e| OpenFailure::Envelope {
        item: item.id,
        reason: e.to_string(),
    })?;
    let (franking_key, roots) = (checks.franking_key, checks.roots);
    let delivery_tag = verify_tag_remembering(
        franking_key,
        &item.tag,
        &Received {
            conversation: header.conversation,
            sender: &item.sender,
            server_time: item.server_time,
            franking_commitment: &header.franking_commitment,
            envelope: &item.body,
        },
        roots,
    )
    .is_ok();
    Ok(RecoveredMessage {
        item: item.id,
        conversation: header.conversation,
        chain: header.chain,
        generation: header.generation,
        sender: item.sender.clone(),
        server_time: item.server_time,
        sent_at: opened.payload.sent_at,
        body: std::mem::take(&mut opened.payload.body),
        checks: MessageChecks {
            envelope_signature: true,
            franking_commitment: true,
            delivery_tag,
            escrow_provenance: *provenance,
        },
    })
}
