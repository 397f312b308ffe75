//! The errors of the court and authority tools, one enum for each operation.

/// Why a court or authority operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorityError {
    /// A key file is missing, unreadable, malformed, or already exists.
    #[error("key file {0}")]
    KeyFile(String),
    /// A warrant or statement could not be built or decoded.
    #[error("malformed warrant or statement: {0}")]
    Wire(#[from] custos_wire::WireError),
    /// The manifest does not name the participant as needed.
    #[error("manifest: {0}")]
    Manifest(String),
    /// The log refused or could not be reached.
    #[error("log: {0}")]
    Log(#[from] custos_tlog::ClientError),
    /// The entry was not witnessed in time.
    #[error("the log did not witness entry {0} in time; run the command again")]
    NotWitnessed(u64),
    /// A local file could not be read or written.
    #[error("file {0}")]
    File(String),
}

/// Why collecting shares under a warrant failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CollectError {
    /// Setup, log or file failure.
    #[error(transparent)]
    Setup(#[from] AuthorityError),
    /// Fewer than `t` custodians released valid shares for a conversation-day.
    #[error(
        "only {got} valid shares for conversation {conversation} day {day}, {need} needed; refusals: {refusals}"
    )]
    NotEnoughShares {
        /// Conversation (hex).
        conversation: String,
        /// Day.
        day: u32,
        /// Valid shares received.
        got: usize,
        /// Threshold.
        need: usize,
        /// What the custodians that refused said.
        refusals: String,
    },
    /// No day key published by at least `t` custodians is in the log for a day.
    #[error("no day key for day {0} published by enough custodians is in the log")]
    NoDayKey(u32),
    /// Combining verified shares failed (an internal inconsistency).
    #[error("combining shares failed: {0}")]
    Combine(String),
}

/// Why an interception could not be started, or its kept items fetched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InterceptError {
    /// Setup, log or file failure.
    #[error(transparent)]
    Setup(#[from] AuthorityError),
    /// The provider could not be reached.
    #[error("the provider could not be reached: {0}")]
    Unreachable(String),
    /// The provider refused, with its code and message.
    #[error("the provider refused ({code}): {message}")]
    Refused {
        /// The provider's refusal code, e.g. `commitment_not_in_log`.
        code: String,
        /// Its message.
        message: String,
    },
    /// The provider's answer is not the documented one.
    #[error("the provider's answer is malformed: {0}")]
    BadAnswer(String),
}
