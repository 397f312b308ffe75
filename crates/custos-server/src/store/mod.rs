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
//! PostgreSQL, conversations also have their commit-ordering primitives
//! ([`pg_conversations`]), which the service does not use yet: the single
//! writer (items, mailboxes, commits) runs on SQLite only
//! ([`crate::delivery::writer`]), so `custos server` cannot yet run on
//! PostgreSQL.

pub mod pg_challenges;
pub mod pg_conversations;
pub mod pg_mailbox;
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
    /// caller checks the expiry against its clock).
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
pub trait Store: AccountStore + KeyPackageStore + ModerationStore + BlobStore {}

impl<T: AccountStore + KeyPackageStore + ModerationStore + BlobStore> Store for T {}

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
