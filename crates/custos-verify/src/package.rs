//! The report package: what escalation exports for a clearinghouse or a
//! court, and its verification with public information only.
//!
//! The format is documented in `docs/spec/report-package.md`. Every binary
//! field is standard base64; ids and commitments are lowercase hex.
//!
//! # Security meaning
//! [`verify_package`] trusts nothing in the package except what it checks:
//! every message goes through [`crate::report::verify_message`] under the
//! package's franking public key, and the stated commitment and text must be
//! the ones verified. The franking key itself is trusted only through the
//! transparency log: the package carries the provider's signed
//! `provider_franking_key` statement, the log checkpoint (log signature and
//! witness cosignatures) and the entry's inclusion proof, and the verifier
//! checks them under a [`TrustPolicy`] (the log's public key, the witness
//! keys and the quorum), which is public. A package made by a service that
//! publishes its key in no log, or before its key was logged, says so
//! ([`FrankingKeyLogProof::NoLog`], [`FrankingKeyLogProof::Pending`]); it
//! then verifies only as [`FrankingKeyStatus::Unproven`]: it proves that
//! *some* key signed the tags, not that the service did.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use custos_tlog::{TrustPolicy, VerifyError};
use custos_wire::report::{Report, ReportedMessage};
use custos_wire::statement::{SignedStatement, Statement, StatementError, StatementKind};
use custos_wire::{ConversationId, WireError};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::report::{ReportRefusal, SenderKeys, VerifiedMessage, VerifiedReport, verify_message};
use crate::sender_signature::SenderKey;

/// Format name of version 3 of the package (version 1 had no log proof,
/// version 2 no sender keys).
pub const PACKAGE_FORMAT: &str = "custos-report-package/v3";

/// What the package says about the franking key's place in the
/// transparency log. Tagged by `status` in JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "status", rename_all = "snake_case", deny_unknown_fields)]
pub enum FrankingKeyLogProof {
    /// The service publishes its franking key in no transparency log.
    NoLog,
    /// A log is configured, but the key's inclusion in a witnessed
    /// checkpoint was not yet proven when the package was made.
    Pending,
    /// The key's log statement and the proof that the log holds it.
    Logged(LogProof),
}

/// The log proof of the franking key: the provider's signed statement as
/// the log stores it, its index, a checkpoint that covers it and the
/// RFC 9162 inclusion proof against that checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LogProof {
    /// The log entry: the encoded `SignedStatement` (a
    /// `provider_franking_key` statement signed by the provider), base64.
    pub statement: String,
    /// Index of the entry in the log.
    pub index: u64,
    /// The checkpoint note (C2SP signed note: the log's signature and the
    /// witnesses' cosignatures), as text.
    pub checkpoint: String,
    /// Inclusion proof of the entry in that checkpoint, base64 hashes.
    pub inclusion_proof: Vec<String>,
}

/// A franking key whose log proof verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedKey {
    /// The franking public key the statement publishes.
    pub public_key: [u8; 32],
    /// The provider the statement names.
    pub provider: String,
    /// The statement's author key (the log admits it only from a manifest
    /// participant whose role may publish franking keys).
    pub author: [u8; 32],
    /// From when the key signs tags, Unix seconds.
    pub valid_from: u64,
    /// The log's origin.
    pub origin: String,
    /// Index of the statement in the log.
    pub index: u64,
    /// Size of the checkpoint the inclusion was proven against.
    pub tree_size: u64,
    /// Witnesses whose cosignatures on that checkpoint verified.
    pub witnesses: Vec<String>,
}

/// Why a log proof of a franking key does not verify. Each variant is one check.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyProofError {
    /// The statement field is not standard base64.
    #[error("the log entry is not base64; the package's `statement` field is damaged")]
    StatementNotBase64,
    /// The statement is not a canonical signed statement.
    #[error("the log entry is not a canonical signed statement: {0}")]
    MalformedStatement(#[source] WireError),
    /// The statement's author signature does not verify.
    #[error("the log entry's author signature does not verify: {0}")]
    BadStatementSignature(#[source] StatementError),
    /// The statement publishes something else than a franking key.
    #[error("the log entry is a `{}` statement, not `provider_franking_key`", .0.name())]
    NotAFrankingKey(StatementKind),
    /// The checkpoint is not signed by the trusted log with a witness quorum;
    /// check that the trust policy (log key, witnesses, quorum) is the
    /// deployment's.
    #[error("the checkpoint does not verify under the trust policy: {0}")]
    Checkpoint(#[source] VerifyError),
    /// The inclusion proof is malformed or does not verify.
    #[error("the inclusion proof of entry {index} does not verify against the checkpoint")]
    Inclusion {
        /// The entry's claimed index.
        index: u64,
    },
}

impl LogProof {
    /// Builds the proof of `entry` (an encoded signed statement) at `index`
    /// in the checkpoint `note`.
    pub fn new(entry: &[u8], index: u64, note: &[u8], proof: &[custos_tlog::Hash]) -> Self {
        Self {
            statement: B64.encode(entry),
            index,
            checkpoint: String::from_utf8_lossy(note).into_owned(),
            inclusion_proof: custos_tlog::proof_json::encode_proof(proof),
        }
    }

    /// Verifies the proof under `policy`: the checkpoint's log signature and
    /// witness quorum, the entry's inclusion, the statement's author
    /// signature and type. Returns the key the log vouches for.
    pub fn verify(&self, policy: &TrustPolicy) -> Result<LoggedKey, KeyProofError> {
        let entry = B64
            .decode(&self.statement)
            .map_err(|_| KeyProofError::StatementNotBase64)?;
        let signed = SignedStatement::decode(&entry).map_err(KeyProofError::MalformedStatement)?;
        let statement = signed
            .verify()
            .map_err(KeyProofError::BadStatementSignature)?;
        let Statement::ProviderFrankingKey(key) = statement else {
            return Err(KeyProofError::NotAFrankingKey(statement.kind()));
        };
        let cp = policy
            .verify_checkpoint(self.checkpoint.as_bytes())
            .map_err(KeyProofError::Checkpoint)?;
        let inclusion = || KeyProofError::Inclusion { index: self.index };
        let proof =
            custos_tlog::proof_json::decode_proof(&self.inclusion_proof).ok_or_else(inclusion)?;
        custos_tlog::verify_inclusion(&cp, self.index, &entry, &proof).map_err(|_| inclusion())?;
        Ok(LoggedKey {
            public_key: key.public_key,
            provider: key.provider,
            author: *signed.author(),
            valid_from: key.valid_from,
            origin: policy.origin().to_owned(),
            index: self.index,
            tree_size: cp.size(),
            witnesses: cp.witnesses().to_vec(),
        })
    }
}

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
    /// The sender account's Ed25519 identity key, base64: the envelope's
    /// signature must verify under it. Until key transparency, this is the
    /// provider's statement of the account's key.
    pub sender_key: String,
}

/// The escalation package ([`PACKAGE_FORMAT`]).
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
    /// The franking key's log proof, or why there is none.
    pub franking_key_log_proof: FrankingKeyLogProof,
    /// The reported message.
    pub message: PackageMessage,
    /// Context messages the reporter revealed.
    pub context: Vec<PackageMessage>,
}

/// Who escalated which report, and when: the package's header fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageHeader {
    /// The service's report id.
    pub report_id: i64,
    /// Reporter account.
    pub reporter: String,
    /// When the service received the report, Unix ms.
    pub reported_at: u64,
    /// Moderator who escalated.
    pub escalated_by: String,
    /// When, Unix ms.
    pub escalated_at: u64,
}

impl ReportPackage {
    /// Assembles the package of `report`, which `verified` proves under
    /// `franking_public_key`, with the key's log proof (or why there is
    /// none). The result verifies with [`verify_package`] whenever the log
    /// proof does.
    pub fn assemble(
        header: PackageHeader,
        franking_public_key: &[u8; 32],
        franking_key_log_proof: FrankingKeyLogProof,
        report: &Report,
        verified: &VerifiedReport,
    ) -> Self {
        Self {
            format: PACKAGE_FORMAT.into(),
            report_id: header.report_id,
            reporter: header.reporter,
            reason: report.reason.clone(),
            reported_at: header.reported_at,
            escalated_by: header.escalated_by,
            escalated_at: header.escalated_at,
            franking_public_key: B64.encode(franking_public_key),
            franking_key_log_proof,
            message: package_message(&report.message, &verified.message),
            context: report
                .context
                .iter()
                .zip(&verified.context)
                .map(|(m, v)| package_message(m, v))
                .collect(),
        }
    }
}

/// Why a package does not verify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PackageError {
    /// Not JSON of the documented shape.
    #[error("not a report package: {0}")]
    Format(String),
    /// A field is not the documented encoding.
    #[error("field `{0}` is not valid base64/hex of the right length")]
    Field(&'static str),
    /// The log proof does not verify.
    #[error("the franking key's log proof does not verify: {0}")]
    KeyProof(#[from] KeyProofError),
    /// The log vouches for another key than the one that signed the tags.
    #[error("the log publishes another franking key than the package's")]
    UnpublishedKey,
    /// A tag is older than the logged key's `valid_from`.
    #[error(
        "a delivery tag (server time {server_time} ms) predates the logged key's valid_from ({valid_from} s)"
    )]
    KeyNotYetValid {
        /// The tag's time, Unix ms.
        server_time: u64,
        /// The statement's `valid_from`, Unix seconds.
        valid_from: u64,
    },
    /// The caller required a logged key and the package has none.
    #[error(
        "the franking key is not proven by a transparency log ({0}); the tags only show that some key signed them"
    )]
    UnprovenKey(UnprovenReason),
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

/// Why a package's franking key is unproven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnprovenReason {
    /// The service publishes its key in no log.
    NoLog,
    /// The service's log had not yet proven the key's inclusion.
    Pending,
}

impl std::fmt::Display for UnprovenReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NoLog => "the service publishes its key in no log",
            Self::Pending => "the key's inclusion in the log was not yet proven",
        })
    }
}

/// What a verified package establishes about its franking key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrankingKeyStatus {
    /// The trusted log holds the provider's statement publishing this key.
    Logged(LoggedKey),
    /// No log proof: the tags verify under the package's own key only.
    Unproven(UnprovenReason),
}

/// A package whose every message verified.
#[derive(Debug, Clone)]
pub struct VerifiedPackage {
    /// The reported message.
    pub message: VerifiedMessage,
    /// The context messages.
    pub context: Vec<VerifiedMessage>,
    /// Whether the franking key is proven by the log.
    pub franking_key: FrankingKeyStatus,
}

impl VerifiedPackage {
    /// The logged key, or [`PackageError::UnprovenKey`]: what a verifier
    /// that needs attribution to the service (not just to some key) calls.
    pub fn require_logged(&self) -> Result<&LoggedKey, PackageError> {
        match &self.franking_key {
            FrankingKeyStatus::Logged(k) => Ok(k),
            FrankingKeyStatus::Unproven(r) => Err(PackageError::UnprovenKey(*r)),
        }
    }
}

/// Verifies a package with public information only: the package and the
/// trust policy of the transparency log (its key, its witnesses' keys and
/// the quorum). A package without a log proof verifies as
/// [`FrankingKeyStatus::Unproven`]; a log proof that is present and wrong
/// is an error.
pub fn verify_package(json: &str, policy: &TrustPolicy) -> Result<VerifiedPackage, PackageError> {
    let p: ReportPackage =
        serde_json::from_str(json).map_err(|e| PackageError::Format(e.to_string()))?;
    if p.format != PACKAGE_FORMAT {
        return Err(PackageError::Format(format!(
            "format is {:?}, expected {PACKAGE_FORMAT:?}",
            p.format
        )));
    }
    let key_bytes: [u8; 32] = b64_fixed("franking_public_key", &p.franking_public_key)?;
    let franking_key = match &p.franking_key_log_proof {
        FrankingKeyLogProof::NoLog => FrankingKeyStatus::Unproven(UnprovenReason::NoLog),
        FrankingKeyLogProof::Pending => FrankingKeyStatus::Unproven(UnprovenReason::Pending),
        FrankingKeyLogProof::Logged(proof) => {
            let logged = proof.verify(policy)?;
            if logged.public_key != key_bytes {
                return Err(PackageError::UnpublishedKey);
            }
            FrankingKeyStatus::Logged(logged)
        }
    };
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
    if let FrankingKeyStatus::Logged(k) = &franking_key {
        for m in std::iter::once(&message).chain(&context) {
            if m.server_time < k.valid_from.saturating_mul(1000) {
                return Err(PackageError::KeyNotYetValid {
                    server_time: m.server_time,
                    valid_from: k.valid_from,
                });
            }
        }
    }
    Ok(VerifiedPackage {
        message,
        context,
        franking_key,
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
        sender_key: B64.encode(v.sender_key),
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
    let sender_key = SenderKey::from_bytes(&b64_fixed("sender_key", &m.sender_key)?)
        .map_err(|_| PackageError::Field("sender_key"))?;
    let senders = SenderKeys::from([(m.sender.clone(), sender_key)]);
    let v = verify_message(&reported, key, &senders)?;
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
