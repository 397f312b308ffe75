//! The evidence bundle: what an authority recovered under a warrant, with
//! everything needed to re-check it offline, trusting neither the authority
//! nor the provider (format: `docs/spec/evidence.md`).
//!
//! # Guarantees
//! [`verify_evidence`] accepts a bundle only if, with nothing but the bundle
//! and the manifest (whose hash the verifier may pin):
//! - the checkpoint has the log's signature and the witness quorum;
//! - the warrant is court-signed and its commitment logged
//!   ([`crate::warrant::verify_logged_warrant`]);
//! - each day key was published by at least `t` custodians in entries
//!   included in the checkpoint, and the franking key by the provider;
//! - every identity key is inside the warrant and verifies as a BLS
//!   signature under its day key;
//! - re-opening every kept item ([`crate::intercepted::open_kept`]) gives
//!   exactly the bundle's messages, checks included.
//!
//! Any altered byte fails one of these, and the error says which part.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use custos_escrow::{DayKey, EscrowIdentity, IdentityKey};
use custos_tlog::{Hash, TrustPolicy, VerifiedCheckpoint, verify_inclusion};
use custos_wire::frames::ItemKind;
use custos_wire::interception::LoggedWarrant;
use custos_wire::manifest::{Manifest, Role};
use custos_wire::statement::{SignedStatement, Statement};
use custos_wire::warrant::Warrant;
use custos_wire::{ChainId, ConversationId};
use serde::{Deserialize, Serialize};

use crate::intercepted::{KeptItem, MessageChecks, Opened, RecoveredMessage, open_kept};
use crate::warrant::{WarrantRefusal, verify_logged_warrant};

/// The bundle's `format` field.
pub const EVIDENCE_FORMAT: &str = "custos-evidence";
/// The bundle's `version` field.
pub const EVIDENCE_VERSION: u32 = 1;

/// A log entry with its inclusion proof in the bundle's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggedEntry {
    /// The entry (an encoded signed statement), base64.
    pub entry: String,
    /// Its index in the log.
    pub index: u64,
    /// Its inclusion proof in the bundle's checkpoint, base64 hashes.
    pub inclusion_proof: Vec<String>,
}

/// The warrant and its log proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarrantEvidence {
    /// The encoded court-signed warrant, base64.
    pub warrant: String,
    /// The commitment's salt, hex.
    pub salt: String,
    /// The authority's commitment statement, base64.
    pub commitment_entry: String,
    /// Its index in the log.
    pub commitment_index: u64,
    /// A witnessed checkpoint that includes it, as text.
    pub checkpoint: String,
    /// The inclusion proof, base64 hashes.
    pub inclusion_proof: Vec<String>,
}

/// One released conversation-day identity key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityKeyEvidence {
    /// The conversation, hex.
    pub conversation: String,
    /// The UTC day.
    pub day: u32,
    /// The key (compressed G1), base64.
    pub key: String,
}

/// One item as the provider kept it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemEvidence {
    /// The provider's id of the kept copy.
    pub id: u64,
    /// 1 envelope, 2 chain announcement.
    pub kind: u8,
    /// The conversation, hex.
    pub conversation: String,
    /// The chain's UTC day.
    pub day: u32,
    /// The sender account.
    pub sender: String,
    /// The sender's identity key, hex.
    pub sender_key: String,
    /// Acceptance time, Unix ms.
    pub server_time: u64,
    /// The delivery tag, base64.
    pub tag: String,
    /// The item's bytes, base64.
    pub body: String,
}

/// One recovered message, as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageEvidence {
    /// The kept envelope's id.
    pub item: u64,
    /// The conversation, hex.
    pub conversation: String,
    /// The chain id (`ChainId` encoding), hex.
    pub chain: String,
    /// Generation in the chain.
    pub generation: u32,
    /// The sender account.
    pub sender: String,
    /// Acceptance time, Unix ms.
    pub server_time: u64,
    /// The sender's own time stamp, Unix ms.
    pub sent_at: u64,
    /// The content, as UTF-8 text (lossy for other content).
    pub text: String,
    /// The content bytes, base64.
    pub body: String,
    /// Which checks passed.
    pub checks: MessageChecks,
}

/// The whole bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceBundle {
    /// Always [`EVIDENCE_FORMAT`].
    pub format: String,
    /// Always [`EVIDENCE_VERSION`].
    pub version: u32,
    /// The deployment manifest (TOML): the trust root.
    pub manifest: String,
    /// A witnessed checkpoint that includes every entry below, as text.
    pub checkpoint: String,
    /// The warrant and its log proof.
    pub warrant: WarrantEvidence,
    /// The custodians' day-key statements for the days of the evidence.
    pub day_keys: Vec<LoggedEntry>,
    /// The provider's franking-key statement.
    pub franking_key: LoggedEntry,
    /// The released identity keys.
    pub identity_keys: Vec<IdentityKeyEvidence>,
    /// The kept items.
    pub items: Vec<ItemEvidence>,
    /// The recovered messages.
    pub messages: Vec<MessageEvidence>,
}

/// Why a bundle does not verify, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvidenceError {
    /// Not a bundle of this format and version.
    #[error("not a custos-evidence v1 bundle")]
    Format,
    /// The manifest does not parse, or its hash is not the pinned one.
    #[error("manifest: {0}")]
    Manifest(String),
    /// The checkpoint lacks the log signature or the witness quorum.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// A field does not decode.
    #[error("{field} does not decode")]
    Field {
        /// Which field (e.g. `items[3].body`).
        field: String,
    },
    /// The warrant does not verify.
    #[error("warrant: {0}")]
    Warrant(#[from] WarrantRefusal),
    /// A log entry is not in the checkpoint, or not what it must be.
    #[error("{what}: {reason}")]
    Entry {
        /// Which entry (e.g. `day_keys[2]`).
        what: String,
        /// Why.
        reason: &'static str,
    },
    /// A day has no key published by `t` custodians.
    #[error("day {0}: no day key published by t custodians")]
    DayKey(u32),
    /// An identity key is outside the warrant or does not verify.
    #[error("identity_keys[{index}]: {reason}")]
    IdentityKey {
        /// Its position.
        index: usize,
        /// Why.
        reason: &'static str,
    },
    /// The messages differ from what the items give.
    #[error("messages[{index}]: {reason}")]
    Message {
        /// Position in the bundle's messages.
        index: usize,
        /// What differs.
        reason: String,
    },
}

fn field(name: impl Into<String>) -> EvidenceError {
    EvidenceError::Field { field: name.into() }
}

fn b64(s: &str, name: &str) -> Result<Vec<u8>, EvidenceError> {
    B64.decode(s).map_err(|_| field(name))
}

fn hash_list(list: &[String], name: &str) -> Result<Vec<Hash>, EvidenceError> {
    list.iter()
        .map(|h| b64(h, name)?.try_into().map(Hash).map_err(|_| field(name)))
        .collect()
}

/// A bundle that passed [`verify_evidence`].
#[derive(Debug)]
pub struct VerifiedEvidence {
    /// The warrant.
    pub warrant: Warrant,
    /// Its logged commitment.
    pub commitment: [u8; 32],
    /// The messages, as re-derived.
    pub opened: Opened,
    /// The log checkpoint everything was checked against.
    pub checkpoint: VerifiedCheckpoint,
}

/// Verifies `bundle` offline (module docs). With `manifest_hash`, the
/// bundle's manifest must hash to it (SHA-256 of its TOML text).
pub fn verify_evidence(
    bundle: &EvidenceBundle,
    manifest_hash: Option<&[u8; 32]>,
) -> Result<VerifiedEvidence, EvidenceError> {
    if bundle.format != EVIDENCE_FORMAT || bundle.version != EVIDENCE_VERSION {
        return Err(EvidenceError::Format);
    }
    let manifest = Manifest::from_toml(&bundle.manifest)
        .map_err(|e| EvidenceError::Manifest(e.to_string()))?;
    if let Some(pinned) = manifest_hash {
        let hash = manifest
            .hash()
            .map_err(|e| EvidenceError::Manifest(e.to_string()))?;
        if &hash != pinned {
            return Err(EvidenceError::Manifest(
                "its hash is not the one given".into(),
            ));
        }
    }
    let trust = TrustPolicy::from_manifest(&manifest)
        .map_err(|e| EvidenceError::Manifest(e.to_string()))?;
    let checkpoint = trust
        .verify_checkpoint(bundle.checkpoint.as_bytes())
        .map_err(|e| EvidenceError::Checkpoint(e.to_string()))?;

    let w = &bundle.warrant;
    let logged = LoggedWarrant {
        warrant: b64(&w.warrant, "warrant.warrant")?,
        salt: hex::decode(&w.salt)
            .ok()
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| field("warrant.salt"))?,
        commitment_entry: b64(&w.commitment_entry, "warrant.commitment_entry")?,
        commitment_index: w.commitment_index,
        checkpoint: w.checkpoint.as_bytes().to_vec(),
        inclusion_proof: hash_list(&w.inclusion_proof, "warrant.inclusion_proof")?
            .into_iter()
            .map(|h| h.0)
            .collect(),
    };
    let verified = verify_logged_warrant(&manifest, &trust, &logged)?;
    let warrant = verified.warrant().clone();

    let day_keys = proven_day_keys(&manifest, &checkpoint, &bundle.day_keys)?;
    let franking = proven_franking_key(&manifest, &checkpoint, &bundle.franking_key)?;
    let keys = checked_identity_keys(&warrant, &day_keys, &bundle.identity_keys)?;
    let items = bundle
        .items
        .iter()
        .enumerate()
        .map(|(i, item)| kept_item(item, i))
        .collect::<Result<Vec<_>, _>>()?;
    for item in &items {
        if !day_keys.contains_key(&item.day)
            && warrant.fields().covers(&item.conversation, item.day)
        {
            return Err(EvidenceError::DayKey(item.day));
        }
    }
    let opened = open_kept(&warrant, &items, &keys, &day_keys, &franking);
    compare_messages(&opened.messages, &bundle.messages)?;
    Ok(VerifiedEvidence {
        commitment: *verified.commitment(),
        warrant,
        opened,
        checkpoint,
    })
}

fn included(
    checkpoint: &VerifiedCheckpoint,
    e: &LoggedEntry,
    what: &str,
) -> Result<(SignedStatement, Statement, Vec<u8>), EvidenceError> {
    let entry = b64(&e.entry, &format!("{what}.entry"))?;
    let proof = hash_list(&e.inclusion_proof, &format!("{what}.inclusion_proof"))?;
    verify_inclusion(checkpoint, e.index, &entry, &proof).map_err(|_| EvidenceError::Entry {
        what: what.to_owned(),
        reason: "not included in the checkpoint",
    })?;
    let signed = SignedStatement::decode(&entry).map_err(|_| field(format!("{what}.entry")))?;
    let statement = signed.verify().map_err(|_| EvidenceError::Entry {
        what: what.to_owned(),
        reason: "its signature does not verify",
    })?;
    Ok((signed, statement, entry))
}

fn proven_day_keys(
    manifest: &Manifest,
    checkpoint: &VerifiedCheckpoint,
    entries: &[LoggedEntry],
) -> Result<BTreeMap<u32, DayKey>, EvidenceError> {
    let mut votes: BTreeMap<(u32, Vec<u8>), BTreeSet<[u8; 32]>> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        let what = format!("day_keys[{i}]");
        let (signed, statement, _) = included(checkpoint, e, &what)?;
        let by_custodian = manifest
            .participant_by_key(signed.author())
            .is_some_and(|p| p.role == Role::Custodian);
        let Statement::EscrowDayKey(k) = statement else {
            return Err(EvidenceError::Entry {
                what,
                reason: "not a day-key statement",
            });
        };
        if !by_custodian {
            return Err(EvidenceError::Entry {
                what,
                reason: "not signed by a custodian of the manifest",
            });
        }
        votes
            .entry((k.day, k.day_key))
            .or_default()
            .insert(*signed.author());
    }
    let mut out = BTreeMap::new();
    for ((day, bytes), who) in votes {
        if who.len() >= manifest.custodian_threshold
            && let Ok(key) = DayKey::from_bytes(&bytes)
            && key.day() == day
        {
            out.insert(day, key);
        }
    }
    Ok(out)
}

fn proven_franking_key(
    manifest: &Manifest,
    checkpoint: &VerifiedCheckpoint,
    e: &LoggedEntry,
) -> Result<ed25519_dalek::VerifyingKey, EvidenceError> {
    let what = "franking_key";
    let (signed, statement, _) = included(checkpoint, e, what)?;
    let by_provider = manifest
        .participant_by_key(signed.author())
        .is_some_and(|p| p.role == Role::Provider);
    match statement {
        Statement::ProviderFrankingKey(k) if by_provider => {
            ed25519_dalek::VerifyingKey::from_bytes(&k.public_key).map_err(|_| field(what))
        }
        _ => Err(EvidenceError::Entry {
            what: what.into(),
            reason: "not the provider's franking-key statement",
        }),
    }
}

fn checked_identity_keys(
    warrant: &Warrant,
    day_keys: &BTreeMap<u32, DayKey>,
    list: &[IdentityKeyEvidence],
) -> Result<crate::intercepted::IdentityKeys, EvidenceError> {
    let mut out = BTreeMap::new();
    for (index, k) in list.iter().enumerate() {
        let bad = |reason| EvidenceError::IdentityKey { index, reason };
        let conversation = ConversationId(
            hex::decode(&k.conversation)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| field(format!("identity_keys[{index}].conversation")))?,
        );
        if !warrant.fields().covers(&conversation, k.day) {
            return Err(bad("outside the warrant"));
        }
        let key = IdentityKey::from_bytes(&b64(&k.key, &format!("identity_keys[{index}].key"))?)
            .map_err(|_| field(format!("identity_keys[{index}].key")))?;
        let day_key = day_keys.get(&k.day).ok_or(bad("no logged day key"))?;
        if !day_key.verify_identity_key(&EscrowIdentity::new(&conversation.0, k.day), &key) {
            return Err(bad("does not verify under the day key"));
        }
        out.insert((conversation, k.day), key);
    }
    Ok(out)
}

fn kept_item(item: &ItemEvidence, i: usize) -> Result<KeptItem, EvidenceError> {
    let name = |f: &str| format!("items[{i}].{f}");
    Ok(KeptItem {
        id: item.id,
        kind: ItemKind::from_byte(item.kind).map_err(|_| field(name("kind")))?,
        conversation: ConversationId(
            hex::decode(&item.conversation)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| field(name("conversation")))?,
        ),
        day: item.day,
        sender: item.sender.clone(),
        sender_key: hex::decode(&item.sender_key)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| field(name("sender_key")))?,
        server_time: item.server_time,
        tag: b64(&item.tag, &name("tag"))?,
        body: b64(&item.body, &name("body"))?,
    })
}

/// The report form of a recovered message.
pub fn message_evidence(m: &RecoveredMessage) -> MessageEvidence {
    MessageEvidence {
        item: m.item,
        conversation: m.conversation.to_hex(),
        chain: hex::encode(chain_bytes(&m.chain)),
        generation: m.generation,
        sender: m.sender.clone(),
        server_time: m.server_time,
        sent_at: m.sent_at,
        text: String::from_utf8_lossy(&m.body).into_owned(),
        body: B64.encode(&m.body),
        checks: m.checks,
    }
}

/// The chain id's own encoding (epoch, sender leaf, day, seq).
fn chain_bytes(chain: &ChainId) -> Vec<u8> {
    let mut out = Vec::with_capacity(ChainId::LEN);
    out.extend_from_slice(&chain.epoch.to_be_bytes());
    out.extend_from_slice(&chain.sender_leaf.to_be_bytes());
    out.extend_from_slice(&chain.day.to_be_bytes());
    out.extend_from_slice(&chain.seq.to_be_bytes());
    out
}

/// The report form of a kept item.
pub fn item_evidence(k: &KeptItem) -> ItemEvidence {
    ItemEvidence {
        id: k.id,
        kind: k.kind.to_byte(),
        conversation: k.conversation.to_hex(),
        day: k.day,
        sender: k.sender.clone(),
        sender_key: hex::encode(k.sender_key),
        server_time: k.server_time,
        tag: B64.encode(&k.tag),
        body: B64.encode(&k.body),
    }
}

fn compare_messages(
    derived: &[RecoveredMessage],
    claimed: &[MessageEvidence],
) -> Result<(), EvidenceError> {
    for (index, (d, c)) in derived.iter().zip(claimed).enumerate() {
        let d = message_evidence(d);
        if &d != c {
            let reason = if d.text != c.text || d.body != c.body {
                "the content differs from what the kept items give".to_owned()
            } else if d.checks != c.checks {
                format!("the checks claimed differ: derived {:?}", d.checks)
            } else {
                "a field differs from what the kept items give".to_owned()
            };
            return Err(EvidenceError::Message { index, reason });
        }
    }
    if derived.len() != claimed.len() {
        return Err(EvidenceError::Message {
            index: derived.len().min(claimed.len()),
            reason: format!(
                "the kept items give {} messages, the bundle claims {}",
                derived.len(),
                claimed.len()
            ),
        });
    }
    Ok(())
}
