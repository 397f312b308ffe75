//! The one check of a delivery tag against what was received, shared by the
//! recipient's client, the service's report verifier and the escalation
//! package verifier.

use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

use super::{DeliveryTag, TagFields, root_signed_bytes};
use crate::{ConversationId, WireError};

/// What the verifier holds and the tag must name.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    /// The conversation the envelope was delivered in (its header's).
    pub conversation: ConversationId,
    /// The sender account the service reported (or the report claims).
    pub sender: &'a str,
    /// The acceptance time the service reported (or the report claims).
    pub server_time: u64,
    /// The envelope header's franking commitment.
    pub franking_commitment: &'a [u8; 32],
    /// The envelope exactly as received.
    pub envelope: &'a [u8],
}

/// Why a tag does not verify. Each variant is one check, in the order
/// [`verify_tag`] makes them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TagRefusal {
    /// There is no tag.
    #[error("the message carries no delivery tag")]
    Missing,
    /// The tag does not decode (version, bounds, position, length).
    #[error("the delivery tag does not decode: {0}")]
    Malformed(WireError),
    /// The tag names another conversation.
    #[error("the delivery tag names another conversation")]
    ConversationMismatch,
    /// The tag names another sender.
    #[error("the delivery tag names another sender")]
    SenderMismatch,
    /// The tag names another acceptance time.
    #[error("the delivery tag names another acceptance time")]
    TimeMismatch,
    /// The tag carries another franking commitment than the envelope header.
    #[error("the delivery tag's franking commitment differs from the envelope header's")]
    CommitmentMismatch,
    /// The tag was issued for another envelope.
    #[error("the delivery tag was issued for another envelope (SHA-256 differs)")]
    EnvelopeHashMismatch,
    /// v1: the signature over the fields does not verify.
    #[error("the delivery tag's signature does not verify under the service's franking key")]
    BadSignature,
    /// v2: the root recomputed from the leaf, its index and its path is not
    /// signed for this batch id and size (a changed path, index, size, batch
    /// id or signature all end here).
    #[error(
        "the delivery tag's batch root (from its leaf, index and path) is not signed for this batch under the service's franking key"
    )]
    BadRootSignature,
}

impl TagRefusal {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "missing_tag",
            Self::Malformed(_) => "malformed_tag",
            Self::ConversationMismatch => "conversation_mismatch",
            Self::SenderMismatch => "sender_mismatch",
            Self::TimeMismatch => "time_mismatch",
            Self::CommitmentMismatch => "commitment_mismatch",
            Self::EnvelopeHashMismatch => "envelope_hash_mismatch",
            Self::BadSignature => "bad_tag_signature",
            Self::BadRootSignature => "bad_tag_root_signature",
        }
    }
}

/// Where a verified v2 tag sits in its signed batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPosition {
    /// The batch number the service signed.
    pub batch_id: u64,
    /// Leaves in the batch.
    pub batch_size: u16,
    /// This leaf's index.
    pub leaf_index: u16,
}

/// A tag that passed [`verify_tag`]; only that function builds one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedTag {
    /// The tag's version.
    pub version: u8,
    /// What the service vouched for.
    pub fields: TagFields,
    /// For v2, the signed batch it belongs to.
    pub batch: Option<BatchPosition>,
    _checked: Checked,
}

/// Proof that [`verify_tag`] ran; not constructible elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Checked;

/// Most batch-root signatures a [`VerifiedRoots`] remembers; past it, it
/// starts afresh.
const MAX_VERIFIED_ROOTS: usize = 4096;

/// The v2 batch-root signatures a verifier has already checked, so that the
/// other tags of a batch cost only their leaf and path hashes.
///
/// # Security meaning
/// It remembers the exact triple that passed `verify_strict`: the franking
/// key, the signed bytes (label, batch id, batch size, root) and the
/// signature. A tag is spared the signature check only if its recomputed
/// root, batch id, size, signature and the key are byte for byte a triple
/// that verified before; anything else is checked in full. Memory is
/// bounded ([`MAX_VERIFIED_ROOTS`] triples).
#[derive(Debug, Default)]
pub struct VerifiedRoots {
    seen: std::collections::HashSet<Vec<u8>>,
}

impl VerifiedRoots {
    /// An empty memo.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Checks `tag` (v1 or v2) against what was received, under the service's
/// franking key `key`. Order: present, decodes, conversation, sender, time,
/// commitment, SHA-256 of the envelope, then the signature (v1: over the
/// fields; v2: over the batch root the leaf and path lead to). Signatures
/// are checked with `verify_strict` (no malleable or small-order forms).
pub fn verify_tag(
    key: &VerifyingKey,
    tag: &[u8],
    received: &Received<'_>,
) -> Result<VerifiedTag, TagRefusal> {
    verify_tag_remembering(key, tag, received, &mut VerifiedRoots::new())
}

/// [`verify_tag`], sparing the signature check of a v2 batch root that
/// `roots` saw verify (see [`VerifiedRoots`]) and remembering the roots it
/// verifies.
pub fn verify_tag_remembering(
    key: &VerifyingKey,
    tag: &[u8],
    received: &Received<'_>,
    roots: &mut VerifiedRoots,
) -> Result<VerifiedTag, TagRefusal> {
    if tag.is_empty() {
        return Err(TagRefusal::Missing);
    }
    let tag = DeliveryTag::decode(tag).map_err(TagRefusal::Malformed)?;
    let f = tag.fields();
    if f.conversation != received.conversation {
        return Err(TagRefusal::ConversationMismatch);
    }
    if f.sender != received.sender {
        return Err(TagRefusal::SenderMismatch);
    }
    if f.server_time != received.server_time {
        return Err(TagRefusal::TimeMismatch);
    }
    if &f.franking_commitment != received.franking_commitment {
        return Err(TagRefusal::CommitmentMismatch);
    }
    let hash: [u8; 32] = Sha256::digest(received.envelope).into();
    if hash != f.envelope_hash {
        return Err(TagRefusal::EnvelopeHashMismatch);
    }
    let (fields, batch) = match tag {
        DeliveryTag::V1(t) => {
            let msg = t.signed_bytes().map_err(TagRefusal::Malformed)?;
            crate::signature::verify_strict(key, &msg, &Signature::from_bytes(&t.signature))
                .map_err(|_| TagRefusal::BadSignature)?;
            (t.fields, None)
        }
        DeliveryTag::V2(t) => {
            let root = t
                .root()
                .map_err(TagRefusal::Malformed)?
                .ok_or(TagRefusal::BadRootSignature)?;
            let msg = root_signed_bytes(t.batch_id, t.batch_size, &root);
            let mut triple = Vec::with_capacity(32 + msg.len() + t.signature.len());
            triple.extend_from_slice(key.as_bytes());
            triple.extend_from_slice(&msg);
            triple.extend_from_slice(&t.signature);
            if !roots.seen.contains(&triple) {
                crate::signature::verify_strict(key, &msg, &Signature::from_bytes(&t.signature))
                    .map_err(|_| TagRefusal::BadRootSignature)?;
                if roots.seen.len() >= MAX_VERIFIED_ROOTS {
                    roots.seen.clear();
                }
                roots.seen.insert(triple);
            }
            let pos = BatchPosition {
                batch_id: t.batch_id,
                batch_size: t.batch_size,
                leaf_index: t.leaf_index,
            };
            (t.fields, Some(pos))
        }
    };
    Ok(VerifiedTag {
        version: if batch.is_some() { 2 } else { 1 },
        fields,
        batch,
        _checked: Checked,
    })
}
