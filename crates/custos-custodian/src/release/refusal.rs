//! Every reason a custodian refuses a release, one variant each.

/// Why a custodian refused a release request. Each check of DESIGN.md §4
/// step 3 fails with its own variant; [`ReleaseRefusal::code`] is the stable
/// API code and [`ReleaseRefusal::status`] the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseRefusal {
    // The request itself.
    /// The bytes are not a canonical release request or warrant.
    #[error("malformed release request: {0}")]
    MalformedRequest(String),
    /// The request names another custodian.
    #[error(
        "the request is addressed to custodian `{0}`, not to this one; sign one request per custodian"
    )]
    WrongCustodian(String),

    // The court and the authority.
    /// The warrant's court is not a court of the manifest.
    #[error("court `{0}` is not a court of the deployment manifest")]
    UnknownCourt(String),
    /// The court signature on the warrant does not verify.
    #[error(
        "the court signature on the warrant does not verify: it was altered or not signed by the court's manifest key"
    )]
    BadCourtSignature,
    /// The warrant's authority is not an authority of the manifest.
    #[error("authority `{0}` is not an authority of the deployment manifest")]
    UnknownAuthority(String),
    /// The authority's signature on the request does not verify.
    #[error(
        "the request signature does not verify under the key of the authority the warrant names"
    )]
    BadRequestSignature,

    // The log.
    /// The salt and warrant do not open the logged commitment, or the entry
    /// is not the authority's commitment with the warrant's public fields.
    #[error("the commitment does not match the warrant: {0}")]
    CommitmentMismatch(&'static str),
    /// The checkpoint lacks the log signature or the witness quorum.
    #[error("the checkpoint is not witnessed as the manifest requires: {0}")]
    CheckpointNotWitnessed(String),
    /// The checkpoint is not consistent with the last one this custodian saw.
    #[error("the checkpoint is not consistent with the last one this custodian saw: {0}")]
    CheckpointInconsistent(String),
    /// The inclusion proof of the commitment does not verify.
    #[error(
        "the warrant commitment is not in the log: its inclusion proof does not verify against the checkpoint"
    )]
    CommitmentNotInLog,

    // Policy.
    /// Targets, days or embargo exceed the manifest's policy.
    #[error("the warrant's {what} ({value}) exceeds the policy limit of {max}")]
    OverPolicy {
        /// `targets`, `days` or `embargo_days`.
        what: &'static str,
        /// The warrant's value.
        value: u64,
        /// The limit.
        max: u64,
    },
    /// The authority has used its monthly quota of warrants.
    #[error("authority `{authority}` has used its quota of {quota} warrants this month")]
    QuotaSpent {
        /// The authority.
        authority: String,
        /// The quota.
        quota: u32,
    },
    /// The warrant is past its not-after time.
    #[error("the warrant expired at {not_after} (Unix seconds)")]
    WarrantExpired {
        /// The warrant's not-after.
        not_after: u64,
    },
    /// The court revoked the warrant in the log.
    #[error("the court revoked this warrant")]
    WarrantRevoked,
    /// A requested conversation-day is not covered by the warrant.
    #[error("conversation {conversation} on day {day} is outside the warrant")]
    OutsideWarrant {
        /// The conversation (hex).
        conversation: String,
        /// The day.
        day: u32,
    },
    /// A requested day has not started yet.
    #[error("day {day} has not started; a day's key is released no earlier than that day starts")]
    DayNotStarted {
        /// The day.
        day: u32,
    },
    /// This custodian erased its share of a requested day.
    #[error("the share of day {day} is erased; nobody can open that day any more")]
    DayErased {
        /// The day.
        day: u32,
    },
    /// This custodian never held a share of a requested day.
    #[error("this custodian holds no share of day {day}")]
    DayUnknown {
        /// The day.
        day: u32,
    },

    /// The log served entries that do not hash to its witnessed checkpoint,
    /// or a witnessed size below one this custodian already saw. Nothing was
    /// returned; the log's operator and the witnesses must be told.
    #[error("the log is inconsistent: {0}")]
    LogInconsistent(String),

    // Operation.
    /// The log could not be reached or did not witness the `KeyRelease` in time;
    /// nothing was returned. Retrying is safe.
    #[error("the log is unavailable or has not witnessed the release yet: {0}; retry later")]
    LogUnavailable(String),
    /// A local failure (storage, encoding); nothing was returned.
    #[error("internal custodian error: {0}")]
    Internal(String),
}

impl From<custos_verify::warrant::WarrantRefusal> for ReleaseRefusal {
    /// The same refusal under the custodian's code: every check of the
    /// warrant that all parties share keeps its code here.
    fn from(e: custos_verify::warrant::WarrantRefusal) -> Self {
        use custos_verify::warrant::WarrantRefusal as W;
        match e {
            W::Malformed(m) => Self::MalformedRequest(m),
            W::UnknownCourt(c) => Self::UnknownCourt(c),
            W::BadCourtSignature => Self::BadCourtSignature,
            W::UnknownAuthority(a) => Self::UnknownAuthority(a),
            W::BadRequestSignature => Self::BadRequestSignature,
            W::CommitmentMismatch(m) => Self::CommitmentMismatch(m),
            W::CheckpointNotWitnessed(m) => Self::CheckpointNotWitnessed(m),
            W::CommitmentNotInLog => Self::CommitmentNotInLog,
            W::OverPolicy { what, value, max } => Self::OverPolicy { what, value, max },
            W::Expired { not_after } => Self::WarrantExpired { not_after },
            W::Revoked => Self::WarrantRevoked,
            other => Self::Internal(other.to_string()),
        }
    }
}

impl ReleaseRefusal {
    /// The stable snake_case API code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedRequest(_) => "malformed_request",
            Self::WrongCustodian(_) => "wrong_custodian",
            Self::UnknownCourt(_) => "unknown_court",
            Self::BadCourtSignature => "bad_court_signature",
            Self::UnknownAuthority(_) => "unknown_authority",
            Self::BadRequestSignature => "bad_request_signature",
            Self::CommitmentMismatch(_) => "commitment_mismatch",
            Self::CheckpointNotWitnessed(_) => "checkpoint_not_witnessed",
            Self::CheckpointInconsistent(_) => "checkpoint_inconsistent",
            Self::CommitmentNotInLog => "commitment_not_in_log",
            Self::OverPolicy { .. } => "over_policy",
            Self::QuotaSpent { .. } => "quota_spent",
            Self::WarrantExpired { .. } => "warrant_expired",
            Self::WarrantRevoked => "warrant_revoked",
            Self::OutsideWarrant { .. } => "outside_warrant",
            Self::DayNotStarted { .. } => "day_not_started",
            Self::DayErased { .. } => "day_erased",
            Self::DayUnknown { .. } => "day_unknown",
            Self::LogUnavailable(_) => "log_unavailable",
            Self::LogInconsistent(_) => "log_inconsistent",
            Self::Internal(_) => "internal",
        }
    }

    /// The HTTP status of the refusal.
    pub fn status(&self) -> u16 {
        match self {
            Self::MalformedRequest(_) | Self::WrongCustodian(_) => 400,
            Self::CheckpointInconsistent(_) => 409,
            Self::DayErased { .. } => 410,
            Self::CheckpointNotWitnessed(_) | Self::CommitmentNotInLog => 422,
            Self::QuotaSpent { .. } => 429,
            Self::DayUnknown { .. } => 404,
            Self::LogUnavailable(_) => 503,
            Self::LogInconsistent(_) => 502,
            Self::Internal(_) => 500,
            _ => 403,
        }
    }
}
