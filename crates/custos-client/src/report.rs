//! Delivery tags and reports, on the device side.
//!
//! # Security meaning
//! At registration the device fetches the service's franking public key
//! (`GET /v1/franking-key`) and pins it in its store. From then on every
//! envelope must arrive with a delivery tag that verifies under the pinned
//! key and names exactly this envelope (SHA-256), its header's commitment
//! and conversation, the sender the service reports, and the delivery time;
//! otherwise it is refused, because a message without a valid tag could not
//! be reported. The tag is kept with the message. A report reveals only the
//! messages the user chooses: the reported one and up to `context`
//! neighbours of the same conversation.

use std::collections::BTreeMap;

use custos_verify::package::ReportPackage;
use custos_wire::ConversationId;
use custos_wire::envelope::EnvelopeHeader;
use custos_wire::moderation::{Action, ReportStatus};
use custos_wire::payload::Payload;
use custos_wire::report::{MAX_CONTEXT, Report, ReportedMessage};
use custos_wire::tag::{Received, TagRefusal, VerifiedRoots, VerifiedTag, verify_tag_remembering};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::api::{Api, ApiError, check, parse, transport};
use crate::device::{Device, DeviceError};

/// Store key of the pinned franking public key.
pub const PINNED_FRANKING_KEY: &str = "franking_key";

/// Checks a delivery tag (v1 or v2) against what the device received,
/// under the pinned franking key: the shared verifier
/// [`custos_wire::tag::verify_tag`], the same one the service's report
/// verifier and the package verifier run. `Err` says which check failed.
/// `roots` remembers batch roots whose signature verified, so the other
/// tags of a batch cost only their path hashes.
pub fn check_tag(
    pinned: &VerifyingKey,
    tag: &[u8],
    header: &EnvelopeHeader,
    envelope: &[u8],
    sender: &str,
    server_time: u64,
    roots: &mut VerifiedRoots,
) -> Result<VerifiedTag, TagCheckError> {
    let received = Received {
        conversation: header.conversation,
        sender,
        server_time,
        franking_commitment: &header.franking_commitment,
        envelope,
    };
    Ok(verify_tag_remembering(pinned, tag, &received, roots)?)
}

/// The franking key pinned at registration, decoded once when the device
/// opens (it never changes after registration).
#[derive(Debug, Clone, Copy)]
pub enum PinnedFranking {
    /// The service issues no delivery tags.
    None,
    /// The pinned key.
    Key(VerifyingKey),
    /// The stored bytes are not an Ed25519 key (a damaged store): every
    /// envelope is refused until the device registers again.
    Invalid,
}

impl PinnedFranking {
    /// Decodes what the store holds under [`PINNED_FRANKING_KEY`].
    pub fn from_stored(bytes: Option<Vec<u8>>) -> Self {
        match bytes {
            None => Self::None,
            Some(b) => <[u8; 32]>::try_from(b.as_slice())
                .ok()
                .and_then(|k| VerifyingKey::from_bytes(&k).ok())
                .map_or(Self::Invalid, Self::Key),
        }
    }
}

/// Why a received envelope's delivery tag is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TagCheckError {
    /// The pinned franking key is not a valid Ed25519 key (the store is
    /// damaged): re-register to pin the service's key again.
    #[error("the pinned franking key is not a valid Ed25519 key; re-register the device")]
    InvalidPinnedKey,
    /// The tag fails one check of the shared verifier.
    #[error("delivery tag refused ({code}): {0}", code = .0.code())]
    Tag(#[from] TagRefusal),
}

impl Api {
    /// The service's franking public key, or `None` if it issues no tags.
    pub async fn franking_key(&self) -> Result<Option<[u8; 32]>, ApiError> {
        #[derive(serde::Deserialize)]
        struct Key {
            public_key: String,
        }
        let k: Key = match self.get("/v1/franking-key").await {
            Ok(b) => parse(b)?,
            Err(ApiError::Refused { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&k.public_key)
            .map_err(|_| ApiError::BadResponse("franking key is not base64".into()))?;
        let key = <[u8; 32]>::try_from(raw.as_slice())
            .map_err(|_| ApiError::BadResponse("franking key is not 32 bytes".into()))?;
        Ok(Some(key))
    }

    /// Submits an encoded report; returns the report id.
    pub async fn submit_report(&self, report: &[u8]) -> Result<i64, ApiError> {
        #[derive(serde::Deserialize)]
        struct Created {
            report_id: i64,
        }
        let resp = self
            .auth(self.http.post(format!("{}/v1/reports", self.base())))
            .header("content-type", "application/octet-stream")
            .body(report.to_vec())
            .send()
            .await
            .map_err(transport)?;
        let c: Created = parse(check(resp).await?)?;
        Ok(c.report_id)
    }

    /// Moderation queue (`all` includes resolved reports). Moderators only.
    pub async fn moderation_list(&self, all: bool) -> Result<ReportQueue, ApiError> {
        let q = if all { "?status=all" } else { "" };
        parse(self.get(&format!("/v1/moderation/reports{q}")).await?)
    }

    /// One report with its verified messages and actions. Moderators only.
    pub async fn moderation_show(&self, id: i64) -> Result<ReportDetail, ApiError> {
        parse(self.get(&format!("/v1/moderation/reports/{id}")).await?)
    }

    /// Takes `action` on a report; for [`Action::Suspend`],
    /// `suspend_seconds` `None` suspends permanently. For
    /// [`Action::Escalate`] the answer carries the package.
    pub async fn moderation_resolve(
        &self,
        id: i64,
        action: Action,
        note: &str,
        suspend_seconds: Option<u64>,
    ) -> Result<Resolution, ApiError> {
        parse(
            self.post_json(
                &format!("/v1/moderation/reports/{id}/resolve"),
                &serde_json::json!({
                    "action": action, "note": note, "suspend_seconds": suspend_seconds,
                }),
            )
            .await?,
        )
    }

    /// An attachment of a report's message, opened by the service with the
    /// key the report revealed and checked against the sender's commitment.
    pub async fn moderation_attachment(&self, id: i64, index: usize) -> Result<Vec<u8>, ApiError> {
        self.get(&format!("/v1/moderation/reports/{id}/attachments/{index}"))
            .await
    }

    /// The service's published moderation figures.
    pub async fn moderation_stats(&self) -> Result<ModerationStats, ApiError> {
        parse(self.get("/v1/moderation/stats").await?)
    }
}

/// The moderation queue (`GET /v1/moderation/reports`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportQueue {
    /// Reports, oldest first.
    pub reports: Vec<ReportSummary>,
}

/// One report in the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportSummary {
    /// The service's report id.
    pub id: i64,
    /// When the service received it, Unix ms.
    pub received_at: i64,
    /// Reporter account.
    pub reporter: String,
    /// Conversation id, hex.
    pub conversation_hex: String,
    /// Sender account, as the delivery tag names it.
    pub sender: String,
    /// When the service accepted the reported message, Unix ms.
    pub server_time: i64,
    /// The reporter's reason.
    pub reason: String,
    /// Where the report stands.
    pub status: ReportStatus,
}

/// One verified message of a report, as moderators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShownMessage {
    /// Sender account.
    pub sender: String,
    /// Acceptance time, Unix ms.
    pub server_time: u64,
    /// The text.
    pub text: String,
    /// The franking commitment, hex.
    pub commitment: String,
    /// SHA-256 of each attachment's plaintext, hex.
    pub attachments_sha256: Vec<String>,
}

/// One recorded moderation action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// What was done.
    pub action: Action,
    /// By whom.
    pub moderator: String,
    /// The moderator's note.
    pub note: String,
    /// For a suspension: until when, Unix ms; `None` is permanent.
    pub suspended_until: Option<i64>,
    /// When, Unix ms.
    pub taken_at: i64,
}

/// A report with its verified messages and actions
/// (`GET /v1/moderation/reports/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportDetail {
    /// The queue entry.
    pub report: ReportSummary,
    /// The reported message.
    pub message: ShownMessage,
    /// The revealed context messages.
    pub context: Vec<ShownMessage>,
    /// Actions taken, oldest first.
    pub actions: Vec<ActionRecord>,
}

/// The answer to a moderation action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    /// The report.
    pub report_id: i64,
    /// Its status now.
    pub status: ReportStatus,
    /// The reported sender.
    pub sender: String,
    /// For a suspension: until when, Unix ms; `None` is permanent (or no
    /// suspension).
    pub suspended_until: Option<u64>,
    /// For an escalation: the report package.
    pub package: Option<ReportPackage>,
}

/// The service's published moderation figures (`GET /v1/moderation/stats`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModerationStats {
    /// Reports received (verified and refused).
    pub reports_received: i64,
    /// Reports that verified and entered the queue.
    pub reports_verified: i64,
    /// Reports refused.
    pub reports_refused: i64,
    /// Refusals by the failed check's code.
    pub refused_by_reason: BTreeMap<String, i64>,
    /// Reports still open.
    pub reports_open: i64,
    /// Actions taken, by action.
    pub actions: BTreeMap<Action, i64>,
    /// Median time from receipt to first action, ms.
    pub median_time_to_action_ms: Option<i64>,
}

impl Device {
    /// The pinned franking public key, if the service issues tags.
    pub fn pinned_franking_key(&self) -> Result<Option<[u8; 32]>, DeviceError> {
        Ok(self
            .store
            .get(PINNED_FRANKING_KEY)?
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok()))
    }

    /// Builds a report of message `message_id` (hex) in `conv`, revealing
    /// it and up to `context` surrounding messages of the same conversation
    /// (nearest first, alternating before and after).
    pub fn build_report(
        &self,
        conv: &ConversationId,
        message_id: &str,
        reason: &str,
        context: usize,
    ) -> Result<Report, DeviceError> {
        let history = self.store.history(conv)?;
        let pos = history
            .iter()
            .position(|m| m.id == message_id)
            .ok_or_else(|| DeviceError::UnknownMessage(message_id.to_owned()))?;
        let message = self.reveal(message_id)?;
        let mut picked = Vec::new();
        let want = context.min(MAX_CONTEXT);
        let mut d = 1usize;
        while picked.len() < want && (d <= pos || pos + d < history.len()) {
            if let Some(i) = pos.checked_sub(d) {
                picked.push(i);
            }
            if picked.len() < want && pos + d < history.len() {
                picked.push(pos + d);
            }
            d += 1;
        }
        picked.sort_unstable();
        let mut ctx = Vec::with_capacity(picked.len());
        for i in picked {
            if let Some(m) = history.get(i) {
                ctx.push(self.reveal(&m.id)?);
            }
        }
        Ok(Report {
            reason: reason.to_owned(),
            message,
            context: ctx,
        })
    }

    /// Builds and submits a report; returns the service's report id.
    pub async fn report(
        &self,
        conv: &ConversationId,
        message_id: &str,
        reason: &str,
        context: usize,
    ) -> Result<i64, DeviceError> {
        let report = self.build_report(conv, message_id, reason, context)?;
        Ok(self.api.submit_report(&report.encode()?).await?)
    }

    fn reveal(&self, id_hex: &str) -> Result<ReportedMessage, DeviceError> {
        let unknown = || DeviceError::UnknownMessage(id_hex.to_owned());
        let mut id = [0u8; 32];
        hex::decode_to_slice(id_hex, &mut id).map_err(|_| unknown())?;
        let m = self.store.report_material(&id)?.ok_or_else(unknown)?;
        let payload = Payload::decode(&m.payload)?;
        Ok(ReportedMessage {
            conversation: ConversationId(
                m.conversation
                    .as_slice()
                    .try_into()
                    .map_err(|_| unknown())?,
            ),
            sender: m.sender,
            server_time: m.server_time,
            franking_key: payload.franking_key,
            envelope: m.envelope,
            payload: m.payload.to_vec(),
            tag: m.tag,
        })
    }
}
