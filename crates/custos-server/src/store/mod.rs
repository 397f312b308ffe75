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
pub trait Store: AccountStore + KeyPackageStore {}

impl<T: AccountStore + KeyPackageStore> Store for T {}
