//! The rows of known-content detection ([`super::MatchingStore`]): safety
//! vouchers, threshold attempts, the review queue and its figures, as both
//! backends store them (design notes 0017, 0019 and 0020).

use async_trait::async_trait;
use serde::Serialize;

/// The columns of [`CaseRow`], for both backends (no parameters).
macro_rules! case_select {
    () => {
        "SELECT c.id, a.name AS account, c.opened_at, c.status, c.decided_at, \
     c.moderator, (SELECT COUNT(*) FROM psi_matches m WHERE m.case_id = c.id) AS matches \
     FROM psi_cases c JOIN accounts a ON a.id = c.account"
    };
}
pub(crate) use case_select;

/// A checked voucher to store ([`super::MatchingStore::store_vouchers`]).
/// Its bytes are not kept: a voucher that did not open can never open
/// later (the check is deterministic), and one that opened is kept as its
/// share, which holds everything the service can ever read of it.
#[derive(Debug, Clone, Copy)]
pub struct NewVoucher<'a> {
    /// The uploading account: the voucher counts toward its threshold.
    pub account: i64,
    /// The blob it came with (stored only when `account` owns the blob).
    pub locator: &'a str,
    /// The outer-opened share, when the voucher opened (real or synthetic:
    /// the service cannot tell them apart).
    pub share: Option<&'a [u8]>,
    /// When it arrived (ms, service clock).
    pub received_at: i64,
}

/// What became of one voucher of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoucherStored {
    /// Committed.
    Stored,
    /// No blob of that locator belongs to the account: nothing written.
    UnknownBlob,
    /// The blob already has a voucher: nothing written.
    Duplicate,
}

/// What a reconstruction attempt may do now
/// ([`super::MatchingStore::claim_attempt`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Nothing to try: fewer than `T` opened shares, or (on PostgreSQL) no
    /// share arrived since the account's last attempt.
    NotDue,
    /// The account's last attempt (by any server) was at `last_at` (ms):
    /// the next may be one period after it.
    Wait {
        /// The last attempt's time (ms, service clock).
        last_at: u64,
    },
    /// Another server is claiming an attempt for this account right now:
    /// look again shortly.
    Busy,
    /// Try these opened shares (`(voucher id, share bytes)`, by id); the
    /// attempt is recorded, so no other server tries them this period.
    Try(Vec<(i64, Vec<u8>)>),
}

/// A real voucher's opened inner layer, to record as a match.
#[derive(Debug, Clone, Copy)]
pub struct NewMatch<'a> {
    /// The voucher.
    pub voucher: i64,
    /// The picture's PDQ hash.
    pub hash: &'a [u8],
    /// Its 32x32 grey derivative.
    pub derivative: &'a [u8],
}

/// A case in the review queue, as moderators list it (the JSON fields are
/// the API's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct CaseRow {
    /// The case id.
    pub id: i64,
    /// The account whose vouchers matched.
    pub account: String,
    /// When the threshold was reached (ms).
    pub opened_at: i64,
    /// `pending`, `confirmed` or `dismissed`.
    pub status: String,
    /// When a moderator decided it (ms).
    pub decided_at: Option<i64>,
    /// The deciding moderator.
    pub moderator: Option<String>,
    /// How many matched pictures it holds.
    pub matches: i64,
}

/// One matched picture of a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchRow {
    /// The picture's PDQ hash.
    pub hash: Vec<u8>,
    /// Its 32x32 grey derivative.
    pub derivative: Vec<u8>,
    /// When its voucher arrived (ms).
    pub received_at: i64,
    /// The blob the voucher came with.
    pub locator: String,
}

/// The public figures of matching since the service began: accounts past
/// the threshold, cases opened, confirmed, dismissed. Each only grows
/// (no row they count is ever deleted).
pub type Figures = [u32; 4];

/// Counts as figures (a count past `u32::MAX` reads as `u32::MAX`).
pub(crate) fn figures_of(counts: [i64; 4]) -> Figures {
    counts.map(|n| u32::try_from(n).unwrap_or(u32::MAX))
}

/// One server's turn to log the matching figures
/// ([`super::MatchingStore::figures_turn`]): the totals read under the
/// turn, and what was last logged. It ends with [`FiguresTurn::logged`]
/// or [`FiguresTurn::release`] (dropping it also ends it, later).
#[async_trait]
pub trait FiguresTurn: Send {
    /// The totals read under this turn: at least those of every earlier
    /// turn's, since the counted rows are never deleted.
    fn totals(&self) -> Figures;

    /// The figures last logged by any server and their `as_of` (Unix
    /// seconds), when the backend keeps them (PostgreSQL); `None` on
    /// SQLite, whose one process remembers its own.
    fn last_logged(&self) -> Option<(Figures, u64)>;

    /// Records `figures` as logged with `as_of` and ends the turn (durable
    /// on return).
    async fn logged(self: Box<Self>, figures: Figures, as_of: u64) -> Result<(), sqlx::Error>;

    /// Ends the turn without recording anything (nothing to log, or the
    /// log did not take the statement).
    async fn release(self: Box<Self>) -> Result<(), sqlx::Error>;
}
