//! Verification of reports with public information only: the report and
//! the service's public franking key.
//!
//! # Security meaning
//! [`verify_report`] returns a [`VerifiedReport`] only if, for the reported
//! message and every context message:
//! 1. the claimed conversation equals the envelope header's and the tag's;
//! 2. the claimed sender and time equal the tag's;
//! 3. the tag's franking commitment equals the envelope header's;
//! 4. the tag's envelope hash is the SHA-256 of the revealed envelope;
//! 5. the tag's Ed25519 signature verifies (strictly) under the franking key:
//!    for v1 over its fields, for v2 over the batch root its leaf, index and
//!    Merkle path lead to (checks 1–5 are the shared
//!    [`custos_wire::tag::verify_tag`], which the recipient's client runs too);
//! 6. the revealed franking key is the one inside the revealed payload;
//! 7. `HMAC-SHA256(k_f, "custos/v1/franking" || conversation || sender || payload)`
//!    equals the header's commitment (constant-time comparison);
//! 8. the envelope's Ed25519 signature, which covers the header and so the
//!    franking commitment, verifies (strictly) under the sender account's
//!    identity key, as the verifier knows it ([`SenderKeys`]).
//!
//! A reporter therefore cannot attribute to a sender a payload the sender
//! did not commit to in an envelope the service accepted from them (no
//! framing), and check 8 makes the proof rest on the sender's own key too:
//! the provider alone cannot make a message that verifies as the sender's, and a sender cannot deny a payload the recipient could open
//! (the recipient's client refuses envelopes whose commitment does not open).
//! Each failed check has its own [`ReportRefusal`] variant and code.

use custos_wire::envelope::{Envelope, peek_header};
use custos_wire::payload::Payload;
use custos_wire::report::{Report, ReportedMessage};
use custos_wire::tag::{Received, TagRefusal, verify_tag};
use custos_wire::{ConversationId, WireError};
use ed25519_dalek::VerifyingKey;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::sender_signature::SenderKey;

/// Domain-separation label of the franking commitment (same as the client's).
pub const FRANKING_LABEL: &[u8] = b"custos/v1/franking";

/// Why a report (or a package) does not verify. Each variant is one check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReportRefusal {
    /// The report bytes do not decode.
    #[error("the report does not decode: {0}")]
    Malformed(WireError),
    /// The revealed envelope does not decode.
    #[error("the revealed envelope does not decode: {0}")]
    MalformedEnvelope(WireError),
    /// The revealed payload does not decode.
    #[error("the revealed payload does not decode: {0}")]
    MalformedPayload(WireError),
    /// The message has no delivery tag.
    #[error(
        "the message carries no delivery tag; only messages delivered with a tag can be reported"
    )]
    MissingTag,
    /// The delivery tag does not decode.
    #[error("the delivery tag does not decode: {0}")]
    MalformedTag(WireError),
    /// Claimed conversation, envelope header and tag disagree.
    #[error("the conversation differs between the claim, the envelope header and the delivery tag")]
    ConversationMismatch,
    /// The claimed sender is not the tag's.
    #[error("the claimed sender is not the account the delivery tag names")]
    SenderMismatch,
    /// The claimed time is not the tag's.
    #[error("the claimed time is not the delivery tag's acceptance time")]
    TimeMismatch,
    /// The tag and the envelope header carry different commitments.
    #[error("the delivery tag's franking commitment differs from the envelope header's")]
    CommitmentMismatch,
    /// The tag was issued for another envelope.
    #[error("the delivery tag was issued for another envelope (SHA-256 differs)")]
    EnvelopeHashMismatch,
    /// The tag's signature does not verify under the franking key (v1).
    #[error("the delivery tag's signature does not verify under the service's franking key")]
    BadTagSignature,
    /// The batch root that a v2 tag's leaf, index and path lead to is not
    /// signed for its batch id and size under the franking key.
    #[error(
        "the delivery tag's batch root (from its leaf, index and Merkle path) is not signed for its batch under the service's franking key"
    )]
    BadTagRootSignature,
    /// The revealed franking key is not the one inside the payload.
    #[error("the revealed franking key is not the one inside the payload")]
    FrankingKeyMismatch,
    /// The commitment does not open to this payload under this key.
    #[error("the franking commitment does not open to the revealed payload")]
    FrankingMismatch,
    /// The reporter is not a recipient of the message: not a member of its
    /// conversation, or its sender. Checked by the service after the
    /// evidence, so a leaked message cannot be reported by outsiders.
    #[error(
        "only a recipient of the message can report it: the reporting account is not a member of the conversation, or is its sender"
    )]
    NotARecipient,
    /// The verifier knows no identity key for the sender account.
    #[error("no identity key is known for the sender account {0}")]
    UnknownSender(String),
    /// The envelope's signature does not verify under the sender's identity
    /// key: the sender's device did not sign these bytes.
    #[error(
        "the envelope's signature does not verify under the sender's identity key: the sender's device did not send these bytes"
    )]
    BadEnvelopeSignature,
    /// The delivery tag fails a check of the wire crate's verifier that
    /// this version does not know by name; its own code is kept.
    #[error("the delivery tag is refused: {0}")]
    Tag(TagRefusal),
}

impl ReportRefusal {
    /// Stable machine-readable code (the `error` of a 422 answer).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed_report",
            Self::MalformedEnvelope(_) => "malformed_envelope",
            Self::MalformedPayload(_) => "malformed_payload",
            Self::MissingTag => "missing_tag",
            Self::MalformedTag(_) => "malformed_tag",
            Self::ConversationMismatch => "conversation_mismatch",
            Self::SenderMismatch => "sender_mismatch",
            Self::TimeMismatch => "time_mismatch",
            Self::CommitmentMismatch => "commitment_mismatch",
            Self::EnvelopeHashMismatch => "envelope_hash_mismatch",
            Self::BadTagSignature => "bad_tag_signature",
            Self::BadTagRootSignature => "bad_tag_root_signature",
            Self::FrankingKeyMismatch => "franking_key_mismatch",
            Self::FrankingMismatch => "franking_mismatch",
            Self::NotARecipient => "not_a_recipient",
            Self::UnknownSender(_) => "unknown_sender",
            Self::BadEnvelopeSignature => "bad_envelope_signature",
            Self::Tag(t) => t.code(),
        }
    }
}

/// One message that passed every check of [`verify_message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedMessage {
    /// Conversation it was delivered in.
    pub conversation: ConversationId,
    /// Account the service accepted it from.
    pub sender: String,
    /// Acceptance time, Unix ms.
    pub server_time: u64,
    /// The franking commitment.
    pub commitment: [u8; 32],
    /// The message text (empty for a non-text body).
    pub text: String,
    /// SHA-256 of each attachment's plaintext, as committed.
    pub attachment_sha256: Vec<[u8; 32]>,
    /// The sender's identity key the envelope signature verified under.
    pub sender_key: [u8; 32],
}

/// The identity keys of sender accounts, by account name, as the verifier
/// knows them: the service from its accounts, a package verifier from the
/// package (which, until key transparency, is the provider's statement).
pub type SenderKeys = std::collections::BTreeMap<String, SenderKey>;

impl VerifiedMessage {
    /// Whether `plaintext` is attachment `index` of this message as the
    /// sender committed to it (SHA-256 inside the franked payload; constant
    /// time). AES-GCM blobs can open to two plaintexts under two keys, so a
    /// revealed attachment counts only if it passes this check.
    pub fn attachment_matches(&self, index: usize, plaintext: &[u8]) -> bool {
        let hash: [u8; 32] = Sha256::digest(plaintext).into();
        self.attachment_sha256
            .get(index)
            .is_some_and(|c| bool::from(c.ct_eq(&hash)))
    }
}

/// A report all of whose messages verified. Only [`verify_report`] builds it.
#[derive(Debug, Clone)]
pub struct VerifiedReport {
    /// The reported message.
    pub message: VerifiedMessage,
    /// The context messages, in the reporter's order.
    pub context: Vec<VerifiedMessage>,
    _checked: Checked,
}

/// Proof that [`verify_report`] ran; not constructible elsewhere.
#[derive(Debug, Clone, Copy)]
struct Checked;

/// Checks a report (the message and every context message, all of the same
/// conversation) against the franking public key and the senders' identity
/// keys. See the module docs.
pub fn verify_report(
    report: &Report,
    franking_key: &VerifyingKey,
    senders: &SenderKeys,
) -> Result<VerifiedReport, ReportRefusal> {
    let message = verify_message(&report.message, franking_key, senders)?;
    let mut context = Vec::with_capacity(report.context.len());
    for m in &report.context {
        let v = verify_message(m, franking_key, senders)?;
        if v.conversation != message.conversation {
            return Err(ReportRefusal::ConversationMismatch);
        }
        context.push(v);
    }
    Ok(VerifiedReport {
        message,
        context,
        _checked: Checked,
    })
}

/// Checks one revealed message; see the module docs for the order.
pub fn verify_message(
    m: &ReportedMessage,
    franking_key: &VerifyingKey,
    senders: &SenderKeys,
) -> Result<VerifiedMessage, ReportRefusal> {
    let header = peek_header(&m.envelope).map_err(ReportRefusal::MalformedEnvelope)?;
    if m.conversation != header.conversation {
        return Err(ReportRefusal::ConversationMismatch);
    }
    let tag = verify_tag(
        franking_key,
        &m.tag,
        &Received {
            conversation: m.conversation,
            sender: &m.sender,
            server_time: m.server_time,
            franking_commitment: &header.franking_commitment,
            envelope: &m.envelope,
        },
    )
    .map_err(ReportRefusal::from)?;
    let f = &tag.fields;
    let payload = Payload::decode(&m.payload).map_err(ReportRefusal::MalformedPayload)?;
    if !bool::from(m.franking_key.ct_eq(&payload.franking_key)) {
        return Err(ReportRefusal::FrankingKeyMismatch);
    }
    if !franking_opens(
        &header.franking_commitment,
        &m.franking_key,
        &header.conversation,
        &f.sender,
        &m.payload,
    ) {
        return Err(ReportRefusal::FrankingMismatch);
    }
    let sender_key = senders
        .get(&f.sender)
        .ok_or_else(|| ReportRefusal::UnknownSender(f.sender.clone()))?;
    let envelope = Envelope::decode(&m.envelope).map_err(ReportRefusal::MalformedEnvelope)?;
    let signed = Envelope::signed_bytes(&envelope.header, &envelope.ciphertext)
        .map_err(ReportRefusal::MalformedEnvelope)?;
    crate::sender_signature::verify(sender_key, &signed, &envelope.signature)
        .map_err(|_| ReportRefusal::BadEnvelopeSignature)?;
    Ok(VerifiedMessage {
        conversation: header.conversation,
        sender: f.sender.clone(),
        server_time: f.server_time,
        commitment: header.franking_commitment,
        text: payload.text().unwrap_or_default().to_owned(),
        attachment_sha256: payload
            .attachments
            .iter()
            .map(|a| a.plaintext_sha256)
            .collect(),
        sender_key: sender_key.to_bytes(),
    })
}

impl From<TagRefusal> for ReportRefusal {
    fn from(e: TagRefusal) -> Self {
        match e {
            TagRefusal::Missing => Self::MissingTag,
            TagRefusal::Malformed(w) => Self::MalformedTag(w),
            TagRefusal::ConversationMismatch => Self::ConversationMismatch,
            TagRefusal::SenderMismatch => Self::SenderMismatch,
            TagRefusal::TimeMismatch => Self::TimeMismatch,
            TagRefusal::CommitmentMismatch => Self::CommitmentMismatch,
            TagRefusal::EnvelopeHashMismatch => Self::EnvelopeHashMismatch,
            TagRefusal::BadSignature => Self::BadTagSignature,
            TagRefusal::BadRootSignature => Self::BadTagRootSignature,
            // A refusal added to the wire crate later: keep it and its code.
            other => Self::Tag(other),
        }
    }
}

/// Whether `commitment` opens to `payload` (constant-time comparison).
/// Same construction as `custos_client::franking::verify`.
pub fn franking_opens(
    commitment: &[u8; 32],
    franking_key: &[u8; 32],
    conversation: &ConversationId,
    sender: &str,
    payload: &[u8],
) -> bool {
    let mut block = zeroize::Zeroizing::new([0u8; 64]);
    for (b, k) in block.iter_mut().zip(franking_key) {
        *b = *k;
    }
    let mut m = <Hmac<Sha256> as hmac::digest::KeyInit>::new(&(*block).into());
    m.update(FRANKING_LABEL);
    m.update(&conversation.0);
    let Ok(len) = u8::try_from(sender.len()) else {
        return false;
    };
    m.update(&[len]);
    m.update(sender.as_bytes());
    m.update(payload);
    m.verify_slice(commitment).is_ok()
}
