//! The storage seam of the delivery service (design note 0019): what the
//! HTTP handlers need from the database, as traits by concern, with one
//! implementation per backend ([`sqlite::SqliteStore`] for one machine,
//! [`postgres::PgStore`] for several servers on one PostgreSQL).
//!
//! # Contract (every backend, every method)
//! - **Durable on return.** A call that writes returns `Ok` only after its
//!   transaction has committed; an error means nothing of it was written.
//! - **Atomic.** Each call is one transaction: a concurrent caller (in this
//!   process or, on PostgreSQL, in another server) sees all of it or none.
//! - **Concurrent.** Calls may run at once from any task; the backend
//!   serialises what must be serialised (one name per account, the
//!   KeyPackage quota per account, one claimer per KeyPackage).
//!
//! The handlers stay backend-free: they check input, call the store, and
//! turn its typed outcomes into refusals.
//!
//! Behind the traits so far: accounts, sessions and KeyPackages. On
//! PostgreSQL, conversations, items and mailboxes have their primitives
//! ([`pg_conversations`], [`pg_mailbox`]), which the PostgreSQL writer
//! (`delivery::writer::pg`) calls inside its transactions; on SQLite the
//! single writer keeps its own SQL.

pub mod pg_challenges;
pub mod pg_conversations;
pub mod pg_mailbox;
pub mod pg_usage;
pub mod postgres;
pub mod sqlite;

use async_trait::async_trait;

/// A session as stored: the device and account it opens, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// SHA-256 of the token, as stored (compared in constant time by the caller).
    pub token_hash: Vec<u8>,
    /// Expiry in ms on the service's clock; the caller refuses it from then on.
    pub expires_at: i64,
    /// The device the session authenticates.
    pub device_id: i64,
    /// That device's account.
    pub account_id: i64,
    /// That account's name.
    pub name: String,
}

/// The outcome of a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    /// The account and its first device were created (ids given).
    Created {
        /// New account id.
        account_id: i64,
        /// Its first device.
        device_id: i64,
    },
    /// The name belongs to another account; nothing was written.
    NameTaken,
}

/// The outcome of a KeyPackage upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uploaded {
    /// Every package was stored (the last-resort one replacing the old).
    Stored,
    /// Storing them would pass the quota; nothing was written.
    OverQuota {
        /// Ordinary packages the account holds now.
        stored: i64,
    },
}

/// Accounts, devices and sessions.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Creates the account `name` with `identity_key` and its first device,
    /// in one transaction. With `queue_directory` the key is queued for the
    /// key directory's next epoch in that same transaction, so a registered
    /// account is never missing from the directory.
    async fn register(
        &self,
        name: &str,
        identity_key: &[u8; 32],
        now: i64,
        queue_directory: bool,
    ) -> Result<Registered, sqlx::Error>;

    /// The account id of `name`, if it exists.
    async fn account_id(&self, name: &str) -> Result<Option<i64>, sqlx::Error>;

    /// The identity key of `name` and its first device: what a login
    /// signature is checked against, and the device the session opens.
    async fn login_key(&self, name: &str) -> Result<Option<(Vec<u8>, i64)>, sqlx::Error>;

    /// Stores a session (only the token's SHA-256) for `device_id`.
    async fn open_session(
        &self,
        token_hash: &[u8; 32],
        device_id: i64,
        expires_at: i64,
    ) -> Result<(), sqlx::Error>;

    /// The session whose token hashes to `token_hash`, expired or not (the
    /// caller checks the expiry against its clock). A session row never
    /// changes once opened and is deleted only once expired: each server
    /// keeps the rows it has read (`delivery::session_cache`), so a store
    /// that revoked sessions early would have to tell every server.
    async fn session(&self, token_hash: &[u8; 32]) -> Result<Option<SessionRow>, sqlx::Error>;
}

/// KeyPackages: stored opaquely, claimed one at a time.
#[async_trait]
pub trait KeyPackageStore: Send + Sync {
    /// Stores `packages` (and replaces the last-resort package with
    /// `last_resort`) for `account_id`, unless the account would then hold
    /// more than `max_stored` ordinary packages. Concurrent uploads of one
    /// account cannot together pass the quota.
    async fn upload_key_packages(
        &self,
        account_id: i64,
        packages: &[Vec<u8>],
        last_resort: Option<&[u8]>,
        max_stored: u64,
    ) -> Result<Uploaded, sqlx::Error>;

    /// Hands out the oldest ordinary package of `account` (deleted as it is
    /// handed out: two claimers never get the same one), else its
    /// last-resort package (kept); `Some((data, last_resort))`.
    async fn claim_key_package(
        &self,
        account: &str,
    ) -> Result<Option<(Vec<u8>, bool)>, sqlx::Error>;

    /// The number of unclaimed ordinary packages of `account_id`.
    async fn count_key_packages(&self, account_id: i64) -> Result<i64, sqlx::Error>;
}

/// Everything the handlers need from the database: one object per service,
/// shared by every request.
pub trait Store:
    AccountStore
    + KeyPackageStore
    + ModerationStore
    + BlobStore
    + InterceptionStore
    + DirectoryStore
    + MatchingStore
{
}

impl<T> Store for T where
    T: AccountStore
        + KeyPackageStore
        + ModerationStore
        + BlobStore
        + InterceptionStore
        + DirectoryStore
        + MatchingStore
{
}

pub mod moderation;
pub mod pg_moderation;
pub mod sqlite_moderation;

/// Reports, moderators' decisions and suspensions ([`moderation`]).
///
/// Beyond the module's contract: two identical reports at once store one;
/// decisions on one report are serialised (its status and its sender's
/// suspension are those of the last decision recorded); a suspension is
/// committed before the call returns, so a send checked after that (on any
/// server, through [`ModerationStore::suspension`] or, inside a batch's
/// transaction on PostgreSQL, [`pg_moderation::suspensions_in`]) is refused.
#[async_trait]
pub trait ModerationStore: Send + Sync {
    /// Whether `account_id` is a member (routing list) of `conversation`.
    async fn is_member(&self, conversation: &[u8], account_id: i64) -> Result<bool, sqlx::Error>;

    /// The identity keys of the accounts `names` that exist (`(name, key)`).
    async fn identity_keys(&self, names: &[String]) -> Result<Vec<(String, Vec<u8>)>, sqlx::Error>;

    /// The identity key of account `account_id`, if it exists.
    async fn identity_key_of(&self, account_id: i64) -> Result<Option<Vec<u8>>, sqlx::Error>;

    /// The id and status of `reporter`'s stored report of the same message
    /// (read only; [`ModerationStore::queue_report`] checks again).
    async fn earlier_report(
        &self,
        report: &moderation::NewReport<'_>,
    ) -> Result<Option<(i64, String)>, sqlx::Error>;

    /// Queues a verified report as `open`, unless its reporter reported the
    /// same message before: the check and the insert are one transaction.
    async fn queue_report(
        &self,
        report: &moderation::NewReport<'_>,
    ) -> Result<moderation::Queued, sqlx::Error>;

    /// Counts a refused report (only its time, reporter and code are kept).
    async fn record_report_refusal(
        &self,
        received_at: i64,
        reporter: &str,
        code: &str,
    ) -> Result<(), sqlx::Error>;

    /// Up to 1000 reports by id, the open ones only unless `all`; their
    /// `report` bytes are left empty.
    async fn list_reports(&self, all: bool) -> Result<Vec<moderation::StoredReport>, sqlx::Error>;

    /// Report `id` with its encoded report.
    async fn report(&self, id: i64) -> Result<Option<moderation::StoredReport>, sqlx::Error>;

    /// The decisions on report `id`, in the order they were recorded.
    async fn actions(&self, report_id: i64) -> Result<Vec<moderation::ActionRecord>, sqlx::Error>;

    /// Records a decision, the report's new status and, for a suspension,
    /// the sender's suspension, in one transaction (durable before the
    /// suspension is in force anywhere).
    async fn record_decision(
        &self,
        decision: &moderation::Decision<'_>,
        sender: &str,
    ) -> Result<(), sqlx::Error>;

    /// Every stored suspension (`account`, `until`; `None` = permanent),
    /// expired or not.
    async fn suspensions(&self) -> Result<Vec<(String, Option<i64>)>, sqlx::Error>;

    /// The suspension of `account` in force at `now` (ms), if any.
    async fn suspension(
        &self,
        account: &str,
        now: i64,
    ) -> Result<Option<crate::abuse::franking::Suspension>, sqlx::Error>;

    /// The published figures.
    async fn moderation_stats(&self) -> Result<moderation::ModerationStats, sqlx::Error>;
}

pub mod pg_blobs;
pub mod sqlite_blobs;

/// A blob to store ([`BlobStore::store_blob`]).
#[derive(Debug, Clone)]
pub struct NewBlob<'a> {
    /// Its locator (64 lower-case hex digits, from the OS generator).
    pub locator: &'a str,
    /// The uploading account, charged for it.
    pub owner: i64,
    /// The (encrypted) body; never empty.
    pub body: axum::body::Bytes,
    /// Upload time (ms).
    pub created_at: i64,
    /// When retention deletes it (ms).
    pub expires_at: i64,
}

/// The outcome of [`BlobStore::store_blob`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobStored {
    /// The row and its body are durable.
    Stored,
    /// One more blob would take the owner past its quota; nothing is kept.
    OverQuota,
}

/// Attachment blobs: bodies the service stores and serves but cannot read.
///
/// Beyond the module's contract: a blob is served only once its row and
/// its body are both durable (on SQLite the body is a fsynced file written
/// before the row commits, [`crate::delivery::blob_files`]; on PostgreSQL
/// it is `bytea` in the row, committed together, since a file on one server
/// is not on another); the quota check and the insert are one transaction
/// per owner, so uploads at once (on any server) cannot pass it together.
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// The blobs `owner` holds: `(count, bytes)`.
    async fn blob_usage(&self, owner: i64) -> Result<(u64, u64), sqlx::Error>;

    /// Stores `blob` unless the owner would then hold more than
    /// `quota` (a zero field is no limit).
    async fn store_blob(
        &self,
        blob: NewBlob<'_>,
        quota: crate::Quota,
    ) -> Result<BlobStored, sqlx::Error>;

    /// The body of blob `locator`, or `None` when there is none or, with
    /// `unexpired_at` (ms), when it has expired by then.
    async fn blob_body(
        &self,
        locator: &str,
        unexpired_at: Option<i64>,
    ) -> Result<Option<Vec<u8>>, sqlx::Error>;
}

/// Whether one more blob of `len` bytes fits `quota` next to `(count, bytes)`.
pub(crate) fn blob_fits(quota: crate::Quota, (count, bytes): (u64, u64), len: u64) -> bool {
    !((quota.items > 0 && count.saturating_add(1) > quota.items)
        || (quota.bytes > 0 && bytes.saturating_add(len) > quota.bytes))
}

pub mod pg_interceptions;
pub mod sqlite_interceptions;

/// An item kept under a warrant, as the authority fetches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptItem {
    /// Its id in the kept list (the authority's cursor).
    pub id: i64,
    /// Its item kind (wire code).
    pub kind: i64,
    /// Its conversation.
    pub conversation: Vec<u8>,
    /// The chain's day it belongs to.
    pub day: i64,
    /// Its sender's account name.
    pub sender: String,
    /// That sender's identity key when the item was kept.
    pub sender_key: Vec<u8>,
    /// The service's acceptance time (ms).
    pub server_time: i64,
    /// Its delivery tag.
    pub tag: Vec<u8>,
    /// The item's body (ciphertext).
    pub body: Vec<u8>,
}

/// Reads of lawful interceptions ([`crate::lawful`]): which warrants the
/// service intercepts under and what it kept. The interceptions and their
/// kept items are written by the writer's holds (`lawful::holds`), in the
/// transaction that stores the items; these calls only read committed rows,
/// so an authority fetching through any server sees every kept item that
/// was acknowledged to its sender.
#[async_trait]
pub trait InterceptionStore: Send + Sync {
    /// The log index of the interception under warrant `commitment`, if
    /// the service intercepts under it.
    async fn interception_log_index(
        &self,
        commitment: &[u8; 32],
    ) -> Result<Option<i64>, sqlx::Error>;

    /// The authority key a fetch under `commitment` must be signed with.
    async fn interception_authority_key(
        &self,
        commitment: &[u8; 32],
    ) -> Result<Option<Vec<u8>>, sqlx::Error>;

    /// Up to `limit` items kept under `commitment` with an id above
    /// `after`, by id.
    async fn kept_items(
        &self,
        commitment: &[u8; 32],
        after: i64,
        limit: i64,
    ) -> Result<Vec<KeptItem>, sqlx::Error>;
}

pub mod pg_directory;
pub mod sqlite_directory;

/// A published key-directory epoch as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochRow {
    /// The epoch.
    pub epoch: i64,
    /// Its root hash.
    pub root_hash: Vec<u8>,
    /// The key changes it published.
    pub changes: i64,
    /// When it was published (Unix seconds).
    pub published_at: i64,
}

/// The key directory's bookkeeping beside `akd`'s own records
/// ([`crate::directory`]): keys queued for the next epoch, and every
/// published epoch's root with its log index once logged.
#[async_trait]
pub trait DirectoryStore: Send + Sync {
    /// The latest recorded epoch, if any.
    async fn kd_recorded_epoch(&self) -> Result<Option<i64>, sqlx::Error>;

    /// Records `epoch` (kept if already recorded) and removes the
    /// `published` accounts from the queue, in one transaction: the root is
    /// recorded and its keys leave the queue together.
    async fn kd_record_epoch(
        &self,
        epoch: &EpochRow,
        published: &[String],
    ) -> Result<(), sqlx::Error>;

    /// Up to `limit` queued `(account, identity_key)`, oldest first.
    async fn kd_pending(&self, limit: i64) -> Result<Vec<(String, Vec<u8>)>, sqlx::Error>;

    /// The recorded epochs not yet logged, by epoch.
    async fn kd_unlogged(&self) -> Result<Vec<EpochRow>, sqlx::Error>;

    /// Records that `epoch`'s root is at `log_index` in the log.
    async fn kd_set_log_index(&self, epoch: i64, log_index: i64) -> Result<(), sqlx::Error>;

    /// The recorded root of `epoch`, if recorded.
    async fn kd_epoch_root(&self, epoch: i64) -> Result<Option<Vec<u8>>, sqlx::Error>;
}

pub mod matching;
pub mod pg_matching;
pub mod sqlite_matching;

/// Known-content detection ([`matching`]; design notes 0017 and 0020):
/// safety vouchers, the threshold step's reads and results, the review
/// queue and its public figures.
///
/// Beyond the module's contract:
/// - A voucher is stored only for a blob its account owns, once per blob,
///   whichever server takes it; a voucher stored by any server counts
///   toward its account's threshold everywhere.
/// - The same statements run for a voucher that opened and for one that
///   did not, and for a real share and a synthetic one: below the
///   threshold the tables hold the same for both (issue 15, test 3).
/// - An account's key, its case and its matches commit together; an
///   account has at most one pending case, however many servers open one
///   at once; a voucher is matched at most once.
/// - On PostgreSQL, [`MatchingStore::claim_attempt`] and
///   [`MatchingStore::figures_turn`] serialise the servers (see
///   [`pg_matching`]); on SQLite one process runs, and its threshold worker
///   and figures publisher keep the same rules in memory.
#[async_trait]
pub trait MatchingStore: Send + Sync {
    /// Stores `batch` in one transaction: per voucher, in order, whether it
    /// was stored or why not (a refused one writes nothing and does not
    /// disturb the others). Durable on return for every `Stored`.
    async fn store_vouchers(
        &self,
        batch: &[matching::NewVoucher<'_>],
    ) -> Result<Vec<matching::VoucherStored>, sqlx::Error>;

    /// Accounts that may be owed a threshold step: past the threshold with
    /// opened vouchers not matched, or with at least `threshold` opened
    /// vouchers not matched (looked at again after a restart).
    async fn owed_accounts(&self, threshold: u16) -> Result<Vec<i64>, sqlx::Error>;

    /// The inner key of `account`, once it is past the threshold.
    async fn inner_key(&self, account: i64) -> Result<Option<Vec<u8>>, sqlx::Error>;

    /// Claims a reconstruction attempt for `account` at `now` (ms): the
    /// opened shares to try, unless it has fewer than `threshold`. On
    /// PostgreSQL also unless no share arrived since the account's last
    /// attempt by any server, or that attempt was less than `period_ms`
    /// ago, or another server is claiming at this moment; a claim records
    /// its time and share count before it returns.
    async fn claim_attempt(
        &self,
        account: i64,
        now: u64,
        period_ms: u64,
        threshold: u16,
    ) -> Result<matching::Attempt, sqlx::Error>;

    /// `account`'s opened vouchers with an id above `after` that are not
    /// matched yet (`(id, share)`, by id).
    async fn unmatched_shares(
        &self,
        account: i64,
        after: i64,
    ) -> Result<Vec<(i64, Vec<u8>)>, sqlx::Error>;

    /// Records `account`'s reconstructed inner key at `at` (ms) with its
    /// pending case (opened unless one is) and `matches`, in one
    /// transaction; the case's id. A key already recorded is kept.
    async fn record_threshold(
        &self,
        account: i64,
        inner_key: &[u8; 32],
        at: i64,
        matches: &[matching::NewMatch<'_>],
    ) -> Result<i64, sqlx::Error>;

    /// Adds `matches` (vouchers opened past the threshold) to `account`'s
    /// pending case, opened at `at` unless one is, in one transaction; the
    /// case's id. A voucher already matched is left as it is.
    async fn add_matches(
        &self,
        account: i64,
        at: i64,
        matches: &[matching::NewMatch<'_>],
    ) -> Result<i64, sqlx::Error>;

    /// Every case, by id.
    async fn list_cases(&self) -> Result<Vec<matching::CaseRow>, sqlx::Error>;

    /// Case `id`.
    async fn case(&self, id: i64) -> Result<Option<matching::CaseRow>, sqlx::Error>;

    /// The matched pictures of case `id`, by voucher.
    async fn case_matches(&self, id: i64) -> Result<Vec<matching::MatchRow>, sqlx::Error>;

    /// Decides case `id` (`confirmed` or `dismissed`) if it is pending;
    /// whether it was (a case is decided once, whichever server is asked).
    async fn decide_case(
        &self,
        id: i64,
        status: &str,
        at: i64,
        moderator: &str,
        note: &str,
    ) -> Result<bool, sqlx::Error>;

    /// The public figures now.
    async fn matching_figures(&self) -> Result<matching::Figures, sqlx::Error>;

    /// This server's turn to log the figures, or `None` while another
    /// server holds it (PostgreSQL): while a turn is held no other server
    /// gets one, so the figures are logged one server at a time, in order.
    async fn figures_turn(&self) -> Result<Option<Box<dyn matching::FiguresTurn>>, sqlx::Error>;

    /// Whether the store is closed (the service is stopping): background
    /// steps stop, and what they owe is found again on the next start.
    fn matching_closed(&self) -> bool;
}
