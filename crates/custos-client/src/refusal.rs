//! Why the receive pipeline refused a mailbox item: one enum per kind of
//! item, each variant one check, each with a stable [`Refusal::code`] for
//! machine-readable output.
//!
//! A refused item never becomes a message and leaves the device's state as
//! it was. Refusals name what failed, never a secret.

use crate::escrow::EscrowError;
use crate::report::TagCheckError;
use crate::seal::SealError;

/// Why a mailbox item was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// A Welcome was refused.
    #[error("Welcome refused: {0}")]
    Welcome(#[from] WelcomeRefusal),
    /// A commit was refused.
    #[error("commit refused: {0}")]
    Commit(#[from] CommitRefusal),
    /// A proposal was refused.
    #[error("proposal refused: {0}")]
    Proposal(#[from] ProposalRefusal),
    /// A chain announcement was refused.
    #[error("chain announcement refused: {0}")]
    Announcement(#[from] AnnouncementRefusal),
    /// An envelope was refused.
    #[error("envelope refused: {0}")]
    Envelope(#[from] EnvelopeRefusal),
    /// Too many items wait for something they depend on; this one was dropped.
    #[error("too many items waiting; dropped")]
    BufferFull,
}

impl Refusal {
    /// Stable machine-readable code, e.g. `escrow_violation`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Welcome(r) => r.code(),
            Self::Commit(r) => r.code(),
            Self::Proposal(r) => r.code(),
            Self::Announcement(r) => r.code(),
            Self::Envelope(r) => r.code(),
            Self::BufferFull => "buffer_full",
        }
    }

    /// If this refusal is an escrow violation, the sender it names.
    pub fn escrow_violator(&self) -> Option<&str> {
        match self {
            Self::Announcement(AnnouncementRefusal::EscrowViolation { sender, .. }) => Some(sender),
            _ => None,
        }
    }
}

/// A refused mailbox item, as reported to the user (`custos receive`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RefusedItem {
    /// Mailbox sequence number.
    pub seq: u64,
    /// Conversation id (hex).
    pub conversation: String,
    /// The sender the service reported.
    pub reported_sender: String,
    /// [`Refusal::code`].
    pub code: &'static str,
    /// What failed, in words.
    pub reason: String,
    /// For an escrow violation, the sender MLS authenticated.
    pub escrow_violator: Option<String>,
}

impl RefusedItem {
    /// The report of `refusal` for mailbox item `d`.
    pub fn new(d: &custos_wire::frames::Delivery, refusal: &Refusal) -> Self {
        Self {
            seq: d.seq,
            conversation: d.conversation.to_hex(),
            reported_sender: d.sender.clone(),
            code: refusal.code(),
            reason: refusal.to_string(),
            escrow_violator: refusal.escrow_violator().map(str::to_owned),
        }
    }
}

/// Why a Welcome was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WelcomeRefusal {
    /// The bytes are not an MLS message.
    #[error("does not parse")]
    Malformed,
    /// The MLS message is not a Welcome.
    #[error("the item is not a Welcome")]
    NotAWelcome,
    /// openmls refused to join with it.
    #[error("MLS refused it: {0}")]
    Mls(String),
    /// The group id is not a 16-byte conversation id.
    #[error("the group id is not a conversation id")]
    BadGroupId,
    /// The group is another conversation than the one the item was delivered in.
    #[error("it is for another conversation")]
    ConversationMismatch,
    /// A member of the group's roster carries a key that the key directory
    /// does not prove for its account (a ghost member, or a proof that
    /// failed): the device did not join.
    #[error("{0}")]
    MemberKey(crate::keydir::KeyDirRefusal),
}

impl WelcomeRefusal {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed => "welcome_malformed",
            Self::NotAWelcome => "welcome_wrong_type",
            Self::Mls(_) => "welcome_mls",
            Self::BadGroupId => "welcome_bad_group_id",
            Self::ConversationMismatch => "welcome_conversation_mismatch",
            Self::MemberKey(_) => "welcome_member_key",
        }
    }
}

/// Why a commit was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommitRefusal {
    /// The bytes are not an MLS protocol message.
    #[error("does not parse")]
    Malformed,
    /// This device is not in the conversation.
    #[error("it is for a conversation this device is not in")]
    UnknownConversation,
    /// openmls refused it.
    #[error("MLS refused it: {0}")]
    Mls(String),
    /// The message holds no commit.
    #[error("the item holds no commit")]
    NotACommit,
    /// A member the commit adds (or a key it gives a member) is not that
    /// account's key in the key directory: the commit was not applied.
    #[error("{0}")]
    MemberKey(crate::keydir::KeyDirRefusal),
}

impl CommitRefusal {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed => "commit_malformed",
            Self::UnknownConversation => "commit_unknown_conversation",
            Self::Mls(_) => "commit_mls",
            Self::NotACommit => "commit_wrong_type",
            Self::MemberKey(_) => "commit_member_key",
        }
    }
}

/// Why a proposal was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProposalRefusal {
    /// The bytes are not an MLS protocol message.
    #[error("does not parse")]
    Malformed,
    /// This device is not in the conversation.
    #[error("it is for a conversation this device is not in")]
    UnknownConversation,
    /// A commit overtook it; the leaver proposes again.
    #[error("it is from a past epoch")]
    PastEpoch,
    /// openmls refused it.
    #[error("MLS refused it: {0}")]
    Mls(String),
    /// Not sent by a member.
    #[error("it was not sent by a member")]
    NotFromMember,
    /// The message holds no proposal.
    #[error("the item holds no proposal")]
    NotAProposal,
    /// Only a member's removal of itself may be proposed.
    #[error("only a member's removal of itself may be proposed")]
    NotSelfRemoval,
}

impl ProposalRefusal {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed => "proposal_malformed",
            Self::UnknownConversation => "proposal_unknown_conversation",
            Self::PastEpoch => "proposal_past_epoch",
            Self::Mls(_) => "proposal_mls",
            Self::NotFromMember => "proposal_not_from_member",
            Self::NotAProposal => "proposal_wrong_type",
            Self::NotSelfRemoval => "proposal_not_self_removal",
        }
    }
}

/// Why a chain announcement was refused. Grouped by the step that refuses:
/// the outer announcement, the MLS message, the binding of the chain to the
/// MLS sender, and the escrow check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnnouncementRefusal {
    // --- the outer announcement ---
    /// The announcement is not canonical.
    #[error("malformed: {0}")]
    Malformed(custos_wire::WireError),
    /// It names another conversation than the one it was delivered in.
    #[error("it names another conversation")]
    ConversationMismatch,
    /// The chain's day is not yesterday, today or tomorrow (device clock).
    #[error("chain day {day} is not yesterday, today or tomorrow (today is {today})")]
    DayOutOfRange {
        /// The chain's day.
        day: u32,
        /// The device's today.
        today: u32,
    },
    // --- the MLS message ---
    /// The MLS message does not parse.
    #[error("its MLS message does not parse")]
    MlsMalformed,
    /// The MLS message is from an epoch whose secrets are gone.
    #[error("it is from an epoch too old to decrypt")]
    EpochTooOld,
    /// openmls refused the message.
    #[error("MLS refused it: {0}")]
    Mls(String),
    /// Not sent by a member.
    #[error("it was not sent by a member")]
    NotFromMember,
    /// The MLS message is not an application message.
    #[error("it holds no application message")]
    NotApplication,
    /// The chain root inside is not canonical.
    #[error("its chain root is malformed: {0}")]
    RootMalformed(custos_wire::WireError),
    // --- chain binding ---
    /// The chain id does not match the MLS sender's leaf and epoch.
    #[error("the chain id does not match the MLS sender and epoch")]
    ChainMismatch,
    /// The MLS credential is not a Custos account name.
    #[error("the sender credential is not a Custos account")]
    BadCredential,
    /// The service reported another sender than MLS authenticated.
    #[error("the service-reported sender differs from the MLS sender")]
    SenderMismatch,
    /// The sender's leaf no longer holds its credential.
    #[error("the sender is no longer in the roster")]
    NotInRoster,
    /// The roster key is not an Ed25519 key.
    #[error("the sender key is not Ed25519")]
    BadSenderKey,
    // --- escrow ---
    /// The capsule is missing, wrong, or cannot be checked: the sender
    /// broke the deployment's escrow rule, or no day key is known here.
    #[error("escrow violation by {sender}: {reason}")]
    EscrowViolation {
        /// The account that sent the chain (authenticated by MLS).
        sender: String,
        /// What is wrong with its escrow.
        reason: EscrowError,
    },
}

impl AnnouncementRefusal {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "announcement_malformed",
            Self::ConversationMismatch => "announcement_conversation_mismatch",
            Self::DayOutOfRange { .. } => "announcement_day_out_of_range",
            Self::MlsMalformed => "announcement_mls_malformed",
            Self::EpochTooOld => "announcement_epoch_too_old",
            Self::Mls(_) => "announcement_mls",
            Self::NotFromMember => "announcement_not_from_member",
            Self::NotApplication => "announcement_wrong_type",
            Self::RootMalformed(_) => "announcement_root_malformed",
            Self::ChainMismatch => "announcement_chain_mismatch",
            Self::BadCredential => "announcement_bad_credential",
            Self::SenderMismatch => "announcement_sender_mismatch",
            Self::NotInRoster => "announcement_not_in_roster",
            Self::BadSenderKey => "announcement_bad_sender_key",
            Self::EscrowViolation { .. } => "escrow_violation",
        }
    }
}

/// Why an envelope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeRefusal {
    /// The header is not canonical.
    #[error("malformed: {0}")]
    Malformed(custos_wire::WireError),
    /// It names another conversation than the one it was delivered in.
    #[error("it names another conversation")]
    ConversationMismatch,
    /// The service reported another sender than the chain's.
    #[error("the service-reported sender differs from the chain's sender")]
    SenderMismatch,
    /// The stored sender key is not an Ed25519 key.
    #[error("the sender key is not a valid Ed25519 key")]
    BadSenderKey,
    /// The service delivered it outside its chain's day plus the grace, so
    /// that day's key would not cover when it was really sent.
    #[error(
        "delivered at {server_time} ms, outside its chain's day {day} plus the {grace_secs} s grace"
    )]
    OutsideChainDay {
        /// The chain's day.
        day: u32,
        /// The service's acceptance time, Unix ms (from the checked delivery tag).
        server_time: u64,
        /// The grace after midnight, seconds.
        grace_secs: u64,
    },
    /// The delivery tag does not verify under the pinned franking key.
    #[error(transparent)]
    Tag(#[from] TagCheckError),
    /// Opening failed: signature, chain key, decryption or franking.
    #[error(transparent)]
    Open(#[from] SealError),
    /// The sender was removed from the conversation at `epoch`, and the
    /// envelope is on a chain from before.
    #[error("{sender} was removed at epoch {epoch}; its earlier chains are closed")]
    SenderRemoved {
        /// The removed member.
        sender: String,
        /// The epoch the removal started.
        epoch: u64,
    },
    /// The envelope's chain is of an epoch too far behind the conversation's.
    #[error("its chain's epoch {epoch} is too far behind the conversation's epoch {current}")]
    ChainExpired {
        /// The chain's epoch.
        epoch: u64,
        /// The conversation's epoch on this device.
        current: u64,
    },
}

impl EnvelopeRefusal {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "envelope_malformed",
            Self::ConversationMismatch => "envelope_conversation_mismatch",
            Self::SenderMismatch => "envelope_sender_mismatch",
            Self::BadSenderKey => "envelope_bad_sender_key",
            Self::OutsideChainDay { .. } => "envelope_outside_chain_day",
            Self::Tag(TagCheckError::Tag(t)) => t.code(),
            Self::Tag(_) => "invalid_pinned_key",
            Self::Open(e) => e.code(),
            Self::SenderRemoved { .. } => "envelope_sender_removed",
            Self::ChainExpired { .. } => "envelope_chain_expired",
        }
    }
}
