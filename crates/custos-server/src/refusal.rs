//! What the service refuses, by operation: one `#[non_exhaustive]` enum per
//! operation, whose variants are the causes. Each refusal has an HTTP
//! status and a wire code, the `error` field of the JSON body (and of a
//! WebSocket `Refused` frame), generated from the variant's name in
//! snake case by [`Refusal::code`]; the message (the `Display` text) says
//! how to fix it. `docs/spec/delivery-api.md` lists the codes.
//!
//! Handlers return these enums and `?` turns them into an
//! [`HttpRefusal`](crate::HttpRefusal), the answer on the wire.

use axum::http::StatusCode;
use custos_verify::report::ReportRefusal;
use custos_wire::{ConversationId, WireError};

use crate::abuse::policy::AdmitRefusal;

/// A refusal of the delivery API: its HTTP status and its wire code.
pub trait Refusal: std::error::Error {
    /// The HTTP status (4xx: the client's fault; 5xx: the service's).
    fn status(&self) -> StatusCode;
    /// The stable machine-readable code, e.g. `stale_epoch`.
    fn code(&self) -> &'static str;
    /// For a stale commit or proposal: the conversation's current epoch.
    fn current_epoch(&self) -> Option<u64> {
        None
    }
    /// For a rate limit: seconds to wait (sent as `Retry-After`).
    fn retry_after(&self) -> Option<u64> {
        None
    }
}

/// Refusals any endpoint may give: the request's shape, authentication,
/// limits, and faults of the service itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
#[non_exhaustive]
pub enum RequestRefusal {
    /// The body could not be read.
    #[error("the body could not be read: {0}")]
    BadBody(String),
    /// The body is not JSON of the documented shape.
    #[error("invalid JSON body: {0}; see docs/spec/delivery-api.md for the fields")]
    BadJson(String),
    /// A field is not standard base64.
    #[error("`{field}` is not base64")]
    BadBase64 {
        /// The field.
        field: &'static str,
    },
    /// The query string is not the documented one.
    #[error("bad query string: {0}")]
    BadQuery(String),
    /// A path parameter is not of the documented form.
    #[error("bad path parameter: {0}")]
    BadPath(String),
    /// The body or a field is larger than the service takes.
    #[error("{0}")]
    TooLarge(String),
    /// A binary encoding does not decode, or is not canonical.
    #[error("{what} does not decode: {detail}")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
        /// Why it does not decode.
        detail: String,
    },
    /// No such endpoint.
    #[error("no such endpoint; see docs/spec/delivery-api.md")]
    NoRoute,
    /// The endpoint does not take that method.
    #[error("this endpoint does not take that method; see docs/spec/delivery-api.md")]
    MethodNotAllowed,
    /// A WebSocket endpoint was called without the upgrade.
    #[error("{0}")]
    NotWebsocket(String),
    /// No valid session, or a login that failed.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Too many requests from this address or account.
    #[error("too many requests; retry after {retry_after} s")]
    RateLimited {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// The service failed (the detail is logged, not sent).
    #[error("the service failed; try again later")]
    Internal,
    /// The service is shutting down.
    #[error("the service is shutting down; retry shortly")]
    Unavailable,
    /// The database does not answer (PostgreSQL restarting, the network to
    /// it down): nothing of the request was written; retry shortly, on this
    /// server or another.
    #[error("the database does not answer; nothing was written; retry shortly")]
    DatabaseUnavailable,
}

impl RequestRefusal {
    /// A malformed, non-canonical or out-of-bounds encoding (400). Callers
    /// check the actual size first, so that 413 means the input really is
    /// too large rather than that a length field claims so.
    pub fn wire(what: &'static str, err: &WireError) -> Self {
        Self::Malformed {
            what,
            detail: err.to_string(),
        }
    }
}

impl Refusal for RequestRefusal {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadBody(_)
            | Self::BadJson(_)
            | Self::BadBase64 { .. }
            | Self::BadQuery(_)
            | Self::BadPath(_)
            | Self::Malformed { .. }
            | Self::NotWebsocket(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NoRoute => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable | Self::DatabaseUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
    fn code(&self) -> &'static str {
        self.into()
    }
    fn retry_after(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after } => Some(*retry_after),
            Self::DatabaseUnavailable => Some(1),
            _ => None,
        }
    }
}

/// Refusals of registration (`POST /v1/accounts`) and login
/// (`POST /v1/auth/challenge`, `POST /v1/auth/session`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
#[non_exhaustive]
pub enum AccountRefusal {
    /// Not a valid account name.
    #[error("an account name is 1-64 characters of a-z, 0-9, '.', '_' or '-'")]
    BadName,
    /// The identity key is not an Ed25519 public key.
    #[error("identity_key {0}")]
    BadKey(&'static str),
    /// The name is registered already.
    #[error("the name `{0}` is taken; choose another")]
    NameTaken(String),
    /// No such account.
    #[error("no account named `{0}`; register first")]
    UnknownAccount(String),
    /// The challenge is not 32 bytes.
    #[error("challenge must be 32 bytes")]
    BadChallenge,
    /// The signature is not 64 bytes.
    #[error("signature must be 64 bytes")]
    BadSignature,
}

impl Refusal for AccountRefusal {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadName | Self::BadKey(_) | Self::BadChallenge | Self::BadSignature => {
                StatusCode::BAD_REQUEST
            }
            Self::NameTaken(_) => StatusCode::CONFLICT,
            Self::UnknownAccount(_) => StatusCode::NOT_FOUND,
        }
    }
    fn code(&self) -> &'static str {
        self.into()
    }
}

/// Refusals of the KeyPackage endpoints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
#[non_exhaustive]
pub enum KeyPackageRefusal {
    /// More packages in one call than the service takes.
    #[error("at most {0} KeyPackages per call; upload them in several calls")]
    TooMany(usize),
    /// Nothing to upload, or an empty package.
    #[error("{0}")]
    Empty(&'static str),
    /// The account stores as many unclaimed packages as it may.
    #[error(
        "at most {max} unclaimed KeyPackages per account; {stored} are stored; upload more once some are claimed"
    )]
    KeyPackageQuota {
        /// The limit.
        max: u64,
        /// Stored now.
        stored: i64,
    },
    /// `account` is not an account name.
    #[error("`account` is not an account name")]
    BadName,
    /// The account has no package to claim.
    #[error("`{0}` has no KeyPackage (unknown account, or it uploaded none)")]
    NoKeyPackage(String),
}

impl Refusal for KeyPackageRefusal {
    fn status(&self) -> StatusCode {
        match self {
            Self::TooMany(_) | Self::Empty(_) | Self::BadName => StatusCode::BAD_REQUEST,
            Self::KeyPackageQuota { .. } => StatusCode::CONFLICT,
            Self::NoKeyPackage(_) => StatusCode::NOT_FOUND,
        }
    }
    fn code(&self) -> &'static str {
        self.into()
    }
}

/// Refusals of conversation operations: creation, commits, and the
/// membership and epoch checks every item and commit passes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
#[non_exhaustive]
pub enum ConversationRefusal {
    /// Not a conversation id.
    #[error("a conversation id is 32 lowercase hex digits")]
    BadConversation,
    /// The commit would make the group larger than the service allows.
    #[error("a conversation has at most {0} members")]
    BadMembers(usize),
    /// An empty commit or Welcome.
    #[error("commit and Welcome must not be empty")]
    Empty,
    /// A listed member is not an account name.
    #[error("`{0}` is not an account name")]
    BadName(String),
    /// A member is listed twice.
    #[error("a member is listed twice")]
    DuplicateMember,
    /// Listed members that have no account.
    #[error("no such account: {}", .0.join(", "))]
    UnknownAccount(Vec<String>),
    /// The id is taken.
    #[error("conversation {0} already exists; pick a fresh random id")]
    ConversationExists(ConversationId),
    /// No such conversation.
    #[error("conversation {0} is not registered; create it first")]
    UnknownConversation(ConversationId),
    /// The caller is not a member.
    #[error("you are not a member of conversation {0}")]
    NotMember(ConversationId),
    /// Another commit won this epoch.
    #[error(
        "commit for epoch {sent} refused: the conversation is at epoch {current}; \
         fetch and apply the winning commit, then retry"
    )]
    StaleEpoch {
        /// The epoch sent.
        sent: u64,
        /// The conversation's epoch.
        current: u64,
    },
    /// The commit adds members without a Welcome.
    #[error("the commit adds members but carries no Welcome for them")]
    WelcomeRequired,
    /// A Welcome with a commit that adds nobody.
    #[error("the commit carries a Welcome but adds no member")]
    UnexpectedWelcome,
    /// The commit is not an MLS `PublicMessage` commit that applies to the
    /// conversation's public state at its epoch (membership comes only from
    /// verified commits).
    #[error("invalid commit: {0}")]
    InvalidCommit(String),
    /// The group state uploaded at creation does not verify, or its roster
    /// names accounts that do not exist or keys that are not theirs.
    #[error("invalid group state: {0}")]
    InvalidGroupState(String),
    /// The proposal is not an MLS `PublicMessage` of a member removing
    /// itself that verifies against the conversation's public state.
    #[error("invalid proposal: {0}")]
    InvalidProposal(String),
}

impl Refusal for ConversationRefusal {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadConversation
            | Self::BadMembers(_)
            | Self::Empty
            | Self::BadName(_)
            | Self::DuplicateMember
            | Self::WelcomeRequired
            | Self::UnexpectedWelcome
            | Self::InvalidCommit(_)
            | Self::InvalidGroupState(_)
            | Self::InvalidProposal(_) => StatusCode::BAD_REQUEST,
            Self::UnknownAccount(_) | Self::UnknownConversation(_) => StatusCode::NOT_FOUND,
            Self::NotMember(_) => StatusCode::FORBIDDEN,
            Self::ConversationExists(_) | Self::StaleEpoch { .. } => StatusCode::CONFLICT,
        }
    }
    fn code(&self) -> &'static str {
        self.into()
    }
    fn current_epoch(&self) -> Option<u64> {
        match self {
            Self::StaleEpoch { current, .. } => Some(*current),
            _ => None,
        }
    }
}

/// Refusals of an item submission (HTTP or WebSocket), before membership.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
#[non_exhaustive]
pub enum SubmitRefusal {
    /// Not a Submit frame.
    #[error("expected a Submit frame; acks go to POST /v1/mailbox/ack")]
    WrongFrame,
    /// The item's kind does not fit its body or endpoint.
    #[error("{0}")]
    WrongKind(&'static str),
    /// The item names another conversation.
    #[error("{0}")]
    ConversationMismatch(String),
    /// The chain's day is not today, nor yesterday within the grace after
    /// midnight.
    #[error(
        "the chain is for day {day}; the service accepts only today's chains ({today}), \
         and yesterday's within the grace after midnight: start a new chain for today"
    )]
    WrongDay {
        /// The chain's day.
        day: u32,
        /// Today on the service clock.
        today: u32,
    },
    /// The same item was accepted before.
    #[error("this exact item was already accepted; it is not stored twice")]
    Duplicate,
    /// The delivery policy refuses the sender (code: the policy's, e.g.
    /// `suspended`).
    #[error("{0}")]
    Policy(AdmitRefusal),
}

impl Refusal for SubmitRefusal {
    fn status(&self) -> StatusCode {
        match self {
            Self::WrongFrame | Self::WrongKind(_) | Self::ConversationMismatch(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::WrongDay { .. } => StatusCode::BAD_REQUEST,
            Self::Duplicate => StatusCode::CONFLICT,
            Self::Policy(_) => StatusCode::FORBIDDEN,
        }
    }
    fn code(&self) -> &'static str {
        match self {
            Self::Policy(r) => r.code(),
            other => other.into(),
        }
    }
}

/// Refusals of the mailbox (`GET /v1/mailbox`, `POST /v1/mailbox/ack`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
#[non_exhaustive]
pub enum MailboxRefusal {
    /// `limit` out of range.
    #[error("limit must be between 1 and {0}")]
    BadLimit(u32),
    /// Too few or too many seqs to acknowledge.
    #[error("acknowledge between 1 and {0} seqs per call")]
    BadAck(usize),
}

impl Refusal for MailboxRefusal {
    fn status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }
    fn code(&self) -> &'static str {
        self.into()
    }
}

/// Refusals of reports and moderation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
#[non_exhaustive]
pub enum ModerationRefusal {
    /// The service issues no delivery tags.
    #[error("this service issues no delivery tags, so it takes no reports")]
    FrankingDisabled,
    /// The caller is not a moderator.
    #[error(
        "this account is not a moderator; an operator adds it with `custos moderate add-moderator`"
    )]
    NotModerator,
    /// No such report.
    #[error("no report {0}")]
    NoReport(i64),
    /// Not a moderation action.
    #[error("action is one of dismiss, warn, suspend, escalate")]
    BadAction,
    /// The report's evidence does not verify (code: the failed check's).
    #[error("report refused: {0}")]
    Report(ReportRefusal),
    /// The reported message has no attachment at this index.
    #[error("the reported message has no attachment {0}")]
    NoAttachment(usize),
    /// The attachment's blob is gone (expired) or does not open to what the
    /// message commits to.
    #[error("the attachment cannot be shown: {0}")]
    AttachmentUnavailable(String),
}

impl Refusal for ModerationRefusal {
    fn status(&self) -> StatusCode {
        match self {
            Self::FrankingDisabled | Self::NoReport(_) | Self::NoAttachment(_) => {
                StatusCode::NOT_FOUND
            }
            Self::AttachmentUnavailable(_) => StatusCode::GONE,
            Self::NotModerator => StatusCode::FORBIDDEN,
            Self::BadAction => StatusCode::BAD_REQUEST,
            Self::Report(_) => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
    fn code(&self) -> &'static str {
        match self {
            Self::Report(r) => r.code(),
            other => other.into(),
        }
    }
}

/// Refusals by the service's quotas and abuse limits:
/// all `429`, with `Retry-After` where waiting helps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
#[non_exhaustive]
pub enum LimitRefusal {
    /// A recipient's mailbox holds as much unacknowledged data as it may.
    #[error(
        "a recipient's mailbox is full ({items} items, {bytes} bytes waiting); \
         retry once they fetch and acknowledge"
    )]
    MailboxFull {
        /// Items waiting for that device.
        items: u64,
        /// Bytes waiting for that device.
        bytes: u64,
    },
    /// The sender's own unacknowledged items reached its quota.
    #[error(
        "you have {items} items ({bytes} bytes) that recipients have not acknowledged yet, \
         your quota; retry once they fetch them"
    )]
    SenderQuota {
        /// The sender's held items.
        items: u64,
        /// Their bytes.
        bytes: u64,
    },
    /// Too many registrations from this network or service-wide.
    #[error("too many registrations {scope}; retry after {retry_after} s")]
    RegistrationLimited {
        /// "from your network" or "on this service".
        scope: &'static str,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// Too many reports from this account or network.
    #[error("too many reports {scope}; retry after {retry_after} s")]
    ReportLimited {
        /// "from your account" or "from your network".
        scope: &'static str,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// Too many open WebSocket connections.
    #[error("too many WebSocket connections {scope}; close one or retry later")]
    TooManyConnections {
        /// "for your account" or "on this service".
        scope: &'static str,
    },
}

impl Refusal for LimitRefusal {
    fn status(&self) -> StatusCode {
        StatusCode::TOO_MANY_REQUESTS
    }
    fn code(&self) -> &'static str {
        self.into()
    }
    fn retry_after(&self) -> Option<u64> {
        match self {
            Self::RegistrationLimited { retry_after, .. }
            | Self::ReportLimited { retry_after, .. } => Some(*retry_after),
            Self::MailboxFull { .. } | Self::SenderQuota { .. } => Some(60),
            Self::TooManyConnections { .. } => Some(10),
        }
    }
}

/// Refusals of attachment blobs (`POST /v1/blobs`, `GET /v1/blobs/{locator}`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
#[non_exhaustive]
pub enum BlobRefusal {
    /// An empty body.
    #[error("the blob is empty; send the encrypted attachment as the body")]
    Empty,
    /// Over the service's largest blob.
    #[error("the blob is larger than this service's limit of {0} bytes")]
    BlobTooLarge(u64),
    /// The account's stored blobs reached its quota.
    #[error(
        "your stored blobs reached your quota ({items} blobs or {bytes} bytes); retry once older ones expire"
    )]
    BlobQuota {
        /// Blobs allowed (0: no limit).
        items: u64,
        /// Bytes allowed (0: no limit).
        bytes: u64,
    },
    /// The locator is not 64 lower-case hex digits.
    #[error("a blob locator is 64 lower-case hex digits")]
    BadLocator,
    /// No such blob (never stored, or expired).
    #[error("no blob with this locator (never stored, or expired)")]
    UnknownBlob,
}

impl Refusal for BlobRefusal {
    fn status(&self) -> StatusCode {
        match self {
            Self::Empty | Self::BadLocator => StatusCode::BAD_REQUEST,
            Self::BlobTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BlobQuota { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::UnknownBlob => StatusCode::NOT_FOUND,
        }
    }
    fn code(&self) -> &'static str {
        self.into()
    }
}

/// Refusals of the key directory (`/v1/key-directory/...`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
#[non_exhaustive]
pub enum KeyDirectoryRefusal {
    /// This service runs no key directory.
    #[error("this service runs no key directory (the manifest names none)")]
    NoKeyDirectory,
    /// The account has no key in the directory yet.
    #[error("`{0}` has no key in the directory yet; new keys appear with the next epoch")]
    NotInDirectory(String),
    /// The audit range is empty, reversed, or beyond the latest epoch.
    #[error("audit range {from}..{to} is not within 1..={latest} with from < to")]
    BadRange {
        /// First epoch asked for.
        from: u64,
        /// Last epoch asked for.
        to: u64,
        /// The latest epoch.
        latest: u64,
    },
    /// The directory failed; retry.
    #[error("the key directory failed: {0}; retry later")]
    Unavailable(String),
    /// A batch lookup names no account, too many, or one twice.
    #[error("a batch lookup names 1 to {max} distinct accounts; this one named {asked}")]
    BadBatch {
        /// Accounts named (with repeats).
        asked: usize,
        /// Most accounts per batch.
        max: usize,
    },
}

impl Refusal for KeyDirectoryRefusal {
    fn status(&self) -> StatusCode {
        match self {
            Self::NoKeyDirectory | Self::NotInDirectory(_) => StatusCode::NOT_FOUND,
            Self::BadRange { .. } | Self::BadBatch { .. } => StatusCode::BAD_REQUEST,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
    fn code(&self) -> &'static str {
        self.into()
    }
}

/// Why a safety voucher or a matching request was refused
/// ([`crate::abuse::matching`]). A refused voucher is not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
#[non_exhaustive]
pub enum MatchingRefusal {
    /// This service does not match pictures.
    #[error("this service does not match pictures (no [matching] in its manifest)")]
    MatchingOff,
    /// The voucher bytes are not a canonical voucher.
    #[error("bad voucher: {0}")]
    BadVoucher(String),
    /// The voucher was made against another table.
    #[error("{0}")]
    WrongTable(String),
    /// The blob is not this account's, or does not exist.
    #[error("no blob of yours with this locator: upload the blob first")]
    UnknownBlob,
    /// The blob already has a voucher.
    #[error("this blob already has a voucher")]
    DuplicateVoucher,
    /// No such case.
    #[error("no matching case with this id")]
    UnknownCase,
    /// The case was already decided.
    #[error("this case was already decided")]
    CaseDecided,
    /// Unknown decision.
    #[error("the decision must be `confirm` or `dismiss`")]
    BadDecision,
}

impl Refusal for MatchingRefusal {
    fn status(&self) -> StatusCode {
        match self {
            Self::MatchingOff | Self::UnknownBlob | Self::UnknownCase => StatusCode::NOT_FOUND,
            Self::BadVoucher(_) | Self::BadDecision => StatusCode::BAD_REQUEST,
            Self::WrongTable(_) | Self::DuplicateVoucher | Self::CaseDecided => {
                StatusCode::CONFLICT
            }
        }
    }
    fn code(&self) -> &'static str {
        self.into()
    }
}
