//! The report package: what escalation exports for a clearinghouse or a
//! court, and its verification with public information only.
//!
//! The format is documented in `docs/spec/report-package.md`. Every binary
//! field is standard base64; ids and commitments are lowercase hex.
//!
//! # Security meaning
//! [`verify_package`] trusts nothing in the package except what it checks:
//! every message goes through [`crate::report::verify_message`] under the
//! package's franking public key, the stated commitment and text must be the
//! ones verified, and, when the caller gives the key it obtained
//! independently (from the transparency log), the package's key must be that
//! key. Without an independently obtained key, a valid package proves only
//! that *some* key signed the tags; `franking_key_log_proof` is where the
//! log's inclusion proof of the key goes once the log is deployed.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use custos_wire::ConversationId;
use custos_wire::report::ReportedMessage;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::report::{ReportRefusal, VerifiedMessage, verify_message};

/// Format name of version 1 of the package.
pub const PACKAGE_FORMAT: &str = "custos-report-package/v1";

/// One message of a package, with its evidence.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PackageMessage {
    /// Conversation id, hex.
    pub conversation: String,
    /// Sender account, as the delivery tag names it.
    pub sender: String,
    /// Service acceptance time, Unix ms.
    pub server_time: u64,
    /// The message text as the recipient saw it.
    pub text: String,
    /// The envelope as delivered, base64.
    pub envelope: String,
    /// The decrypted payload exactly as encoded, base64.
    pub payload: String,
    /// The revealed franking key, base64.
    pub franking_key: String,
    /// The envelope header's franking commitment, hex.
    pub commitment: String,
    /// The delivery tag, base64.
    pub tag: String,
}

/// The escalation package (`custos-report-package/v1`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReportPackage {
    /// Always [`PACKAGE_FORMAT`].
    pub format: String,
    /// The service's report id.
    pub report_id: i64,
    /// Reporter account.
    pub reporter: String,
    /// The reporter's reason.
    pub reason: String,
    /// When the service received the report, Unix ms.
    pub reported_at: u64,
    /// Moderator who escalated.
    pub escalated_by: String,
    /// When, Unix ms.
    pub escalated_at: u64,
    /// The service's Ed25519 franking public key, base64.
    pub franking_public_key: String,
    /// Inclusion proof of the franking key in the transparency log; `null`
    /// until the log is deployed (see the module docs).
    pub franking_key_log_proof: Option<serde_json::Value>,
    /// The reported message.
    pub message: PackageMessage,
    /// Context messages the reporter revealed.
    pub context: Vec<PackageMessage>,
}

/// Why a package does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PackageError {
    /// Not JSON of the documented shape.
    #[error("not a report package: {0}")]
    Format(String),
    /// A field is not the documented encoding.
    #[error("field `{0}` is not valid base64/hex of the right length")]
    Field(&'static str),
    /// The package's key is not the independently obtained one.
    #[error("the package's franking key is not the service's published key")]
    UnpublishedKey,
    /// The stated commitment is not the envelope's.
    #[error("the stated commitment is not the envelope header's")]
    StatedCommitment,
    /// The stated text or sender is not what the evidence proves.
    #[error("the stated text, sender or time is not what the evidence proves")]
    StatedContent,
    /// A message's evidence does not verify.
    #[error("message evidence refused: {0}")]
    Evidence(#[from] ReportRefusal),
}

/// A package whose every message verified.
#[derive(Debug, Clone)]
pub struct VerifiedPackage {
    /// The reported message.
    pub message: VerifiedMessage,
    /// The context messages.
    pub context: Vec<VerifiedMessage>,
    /// Whether the franking key was matched against an independently
    /// obtained key (`trusted_key` given).
    pub key_matched_published: bool,
}

/// Verifies a package with public information only. `trusted_key` is the
/// franking key as published in the transparency log, if the caller has it.
pub fn verify_package(
    json: &str,
    trusted_key: Option<&[u8; 32]>,
) -> Result<VerifiedPackage, PackageError> {
    let p: ReportPackage =
        serde_json::from_str(json).map_err(|e| PackageError::Format(e.to_string()))?;
    if p.format != PACKAGE_FORMAT {
        return Err(PackageError::Format(format!(
            "format is {:?}, expected {PACKAGE_FORMAT:?}",
            p.format
        )));
    }
    let key_bytes: [u8; 32] = b64_fixed("franking_public_key", &p.franking_public_key)?;
    if let Some(t) = trusted_key
        && *t != key_bytes
    {
        return Err(PackageError::UnpublishedKey);
    }
    let key = VerifyingKey::from_bytes(&key_bytes)
        .map_err(|_| PackageError::Field("franking_public_key"))?;
    let message = verify_one(&p.message, &key)?;
    let mut context = Vec::with_capacity(p.context.len());
    for m in &p.context {
        let v = verify_one(m, &key)?;
        if v.conversation != message.conversation {
            return Err(ReportRefusal::ConversationMismatch.into());
        }
        context.push(v);
    }
    Ok(VerifiedPackage {
        message,
        context,
        key_matched_published: trusted_key.is_some(),
    })
}

/// Builds a package message from a verified reported message.
pub fn package_message(m: &ReportedMessage, v: &VerifiedMessage) -> PackageMessage {
    PackageMessage {
        conversation: v.conversation.to_string(),
        sender: v.sender.clone(),
        server_time: v.server_time,
        text: v.text.clone(),
        envelope: B64.encode(&m.envelope),
        payload: B64.encode(&m.payload),
        franking_key: B64.encode(m.franking_key),
        commitment: hex::encode(v.commitment),
        tag: B64.encode(&m.tag),
    }
}

fn verify_one(m: &PackageMessage, key: &VerifyingKey) -> Result<VerifiedMessage, PackageError> {
    let reported = ReportedMessage {
        conversation: ConversationId::from_hex(&m.conversation)
            .map_err(|_| PackageError::Field("conversation"))?,
        sender: m.sender.clone(),
        server_time: m.server_time,
        franking_key: b64_fixed("franking_key", &m.franking_key)?,
        envelope: b64("envelope", &m.envelope)?,
        payload: b64("payload", &m.payload)?,
        tag: b64("tag", &m.tag)?,
    };
    let v = verify_message(&reported, key)?;
    let mut stated = [0u8; 32];
    hex::decode_to_slice(&m.commitment, &mut stated)
        .map_err(|_| PackageError::Field("commitment"))?;
    if stated != v.commitment {
        return Err(PackageError::StatedCommitment);
    }
    if m.text != v.text {
        return Err(PackageError::StatedContent);
    }
    Ok(v)
}

fn b64(field: &'static str, s: &str) -> Result<Vec<u8>, PackageError> {
    B64.decode(s).map_err(|_| PackageError::Field(field))
}

fn b64_fixed(field: &'static str, s: &str) -> Result<[u8; 32], PackageError> {
    b64(field, s)?
        .as_slice()
        .try_into()
        .map_err(|_| PackageError::Field(field))
}
