//! The key directory room (docs/design/0016-key-transparency.md): every
//! account's identity key in the provider's auditable key directory
//! (`custos-keydir`), published in epochs whose roots go into the
//! transparency log, and the proofs devices and auditors ask for.
//!
//! # Publishing
//! `register` queues the new account's key in `kd_pending` in the same
//! transaction that creates the account. Every [`KeyDirectoryConfig::interval`]
//! the publisher takes at most [`KeyDirectoryConfig::max_changes`] queued
//! keys (oldest first), publishes them as one epoch, records the epoch's
//! root in `kd_epochs` and removes them from the queue (one transaction),
//! then signs a `key_directory_epoch` statement with the provider's
//! statement key and waits until a witnessed checkpoint includes it.
//! While it publishes and logs, proofs wait (a lock), so that a device is
//! not shown an epoch that is not in the log yet.
//!
//! # Crashes
//! `akd` commits an epoch in one SQLite transaction (see
//! `custos_keydir::sqlite`). A crash after it and before the `kd_epochs`
//! row leaves the directory one epoch ahead of `kd_epochs`: the next round
//! records that epoch's root (the directory's latest) before anything else,
//! and keys still queued for it are published again (a second version of
//! the same key, visible as such in the key's history). An epoch recorded
//! but not yet logged is logged by the next round.

pub(crate) mod handlers;
pub mod log_check;

use std::sync::Arc;
use std::time::Duration;

use custos_clock::SharedClock;
use custos_keydir::{
    KeyDirectory, KeyDirectoryError, PgDirectory, Proven, SqliteDirectory, VrfSecret,
};
use custos_tlog::{LogClient, TrustPolicy};
use custos_verify::keydir::EpochRoot;
use custos_wire::manifest::Role;
use custos_wire::statement::{KeyDirectoryEpoch, SignedStatement, Statement};
use sqlx::SqlitePool;
use tokio::sync::{RwLock, watch};

use crate::abuse::franking_log::{FrankingLogConfig, log_and_prove};

/// Default time between two epochs.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Default largest number of key changes in one epoch.
pub const DEFAULT_MAX_CHANGES: usize = 10_000;

/// How the service runs its key directory.
#[derive(Clone)]
pub struct KeyDirectoryConfig {
    /// The directory's VRF secret (its public key is in the manifest).
    pub vrf: VrfSecret,
    /// Time between two epochs (real time).
    pub interval: Duration,
    /// Largest number of key changes in one epoch.
    pub max_changes: usize,
}

impl KeyDirectoryConfig {
    /// A directory with the default interval and batch size.
    pub fn new(vrf: VrfSecret) -> Self {
        Self {
            vrf,
            interval: DEFAULT_INTERVAL,
            max_changes: DEFAULT_MAX_CHANGES,
        }
    }
}

impl std::fmt::Debug for KeyDirectoryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyDirectoryConfig")
            .field("vrf_public", &hex::encode(self.vrf.public_key()))
            .field("interval", &self.interval)
            .field("max_changes", &self.max_changes)
            .finish()
    }
}

/// Why an epoch could not be published or logged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishEpochError {
    /// The directory failed.
    #[error(transparent)]
    Directory(#[from] custos_keydir::KeyDirectoryError),
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The log did not take or prove the statement.
    #[error(transparent)]
    Log(#[from] crate::abuse::franking_log::PublishError),
    /// The statement key is not the manifest's provider.
    #[error("the statement key is not a `provider` of the manifest")]
    NotAProvider,
    /// The database does not follow on from the epochs the log holds
    /// (restored from an older backup): nothing is published.
    #[error(transparent)]
    BehindLog(#[from] log_check::DirectoryBehindLog),
}

/// The directory on the service's backend.
pub(crate) enum AnyDirectory {
    /// On this service's SQLite (one process owns it: cached).
    Sqlite(KeyDirectory<SqliteDirectory>),
    /// On the shared PostgreSQL (uncached: other servers publish too).
    Pg(KeyDirectory<PgDirectory>),
}

impl AnyDirectory {
    pub(crate) async fn current(&self) -> Result<EpochRoot, KeyDirectoryError> {
        match self {
            Self::Sqlite(d) => d.current().await,
            Self::Pg(d) => d.current().await,
        }
    }

    pub(crate) async fn publish(
        &self,
        changes: &[(String, [u8; 32])],
    ) -> Result<EpochRoot, KeyDirectoryError> {
        match self {
            Self::Sqlite(d) => d.publish(changes).await,
            Self::Pg(d) => d.publish(changes).await,
        }
    }

    pub(crate) async fn lookup(&self, account: &str) -> Result<Proven, KeyDirectoryError> {
        match self {
            Self::Sqlite(d) => d.lookup(account).await,
            Self::Pg(d) => d.lookup(account).await,
        }
    }

    pub(crate) async fn lookup_many(
        &self,
        accounts: &[String],
    ) -> Result<(Vec<Vec<u8>>, EpochRoot), KeyDirectoryError> {
        match self {
            Self::Sqlite(d) => d.lookup_many(accounts).await,
            Self::Pg(d) => d.lookup_many(accounts).await,
        }
    }

    pub(crate) async fn history(&self, account: &str) -> Result<Proven, KeyDirectoryError> {
        match self {
            Self::Sqlite(d) => d.history(account).await,
            Self::Pg(d) => d.history(account).await,
        }
    }

    pub(crate) async fn audit(&self, from: u64, to: u64) -> Result<Vec<u8>, KeyDirectoryError> {
        match self {
            Self::Sqlite(d) => d.audit(from, to).await,
            Self::Pg(d) => d.audit(from, to).await,
        }
    }
}

/// The running directory, shared by the publisher and the handlers.
pub(crate) struct DirectoryService {
    pub dir: AnyDirectory,
    /// Held for writing while an epoch is published and logged (this
    /// process; across servers on PostgreSQL, the publisher lock).
    pub lock: RwLock<()>,
    /// The queue and the recorded epochs.
    pub store: Arc<dyn crate::store::Store>,
    /// On PostgreSQL, for the publisher lock between servers.
    pub pg: Option<crate::store::postgres::PgStore>,
    /// Whether this process has checked the database against the log
    /// ([`log_check`]); nothing is published before.
    pub log_checked: std::sync::atomic::AtomicBool,
    /// The directory's own SQLite file, whose WAL the publisher copies in
    /// after each epoch (`custos_keydir::sqlite::open_file`); none on
    /// PostgreSQL.
    pub file: Option<SqliteDirectory>,
}

impl DirectoryService {
    /// The directory in its own SQLite file (`keydir`), with its queue and
    /// recorded epochs in the service's database (`pool`).
    pub(crate) async fn open(
        pool: SqlitePool,
        keydir: SqlitePool,
        config: &KeyDirectoryConfig,
    ) -> Result<Arc<Self>, PublishEpochError> {
        let file = SqliteDirectory::new(keydir);
        let dir = KeyDirectory::open(file.clone(), config.vrf.clone()).await?;
        Ok(Arc::new(Self {
            dir: AnyDirectory::Sqlite(dir),
            lock: RwLock::new(()),
            store: Arc::new(crate::store::sqlite::SqliteStore::new(pool)),
            pg: None,
            log_checked: false.into(),
            file: Some(file),
        }))
    }

    /// After an epoch: copies the directory file's WAL into it, outside
    /// the lock, so that lookups go on meanwhile. A copy that could not
    /// finish (a reader held an older snapshot past the busy timeout) is
    /// finished after the next epoch; durability does not depend on it.
    pub(crate) async fn checkpoint(&self) {
        let Some(file) = &self.file else {
            return;
        };
        match file.checkpoint().await {
            Ok(true) => {}
            Ok(false) => tracing::info!("key directory: WAL copied in part (readers); next epoch"),
            Err(e) => tracing::warn!(%e, "key directory: WAL not copied; next epoch"),
        }
    }

    /// After an epoch is published: makes its lookup proofs of the
    /// accounts devices asked for at the epoch before
    /// ([`KeyDirectory::renew_proofs`]), so that their next lookups are
    /// answered without `akd` making them; at most `custos_keydir`'s
    /// kept-proof bound of accounts.
    ///
    /// Without the service's lock: it runs while the publisher, holding
    /// it, logs the epoch. It only reads the directory (whose own lock
    /// orders its reads after the publish) and fills the cache of proofs,
    /// which lookups read only once the lock is released, when the epoch
    /// is logged.
    async fn renew_proofs(&self) {
        let made = match &self.dir {
            AnyDirectory::Sqlite(d) => d.renew_proofs().await,
            AnyDirectory::Pg(d) => d.renew_proofs().await,
        };
        if made > 0 {
            tracing::debug!(made, "key directory: proofs made for the new epoch");
        }
    }

    /// The directory on PostgreSQL, shared by every server on it.
    pub(crate) async fn open_pg(
        pg: crate::store::postgres::PgStore,
        config: &KeyDirectoryConfig,
    ) -> Result<Arc<Self>, PublishEpochError> {
        let dir =
            KeyDirectory::open_shared(PgDirectory::new(pg.pool().clone()), config.vrf.clone())
                .await?;
        Ok(Arc::new(Self {
            dir: AnyDirectory::Pg(dir),
            lock: RwLock::new(()),
            store: Arc::new(pg.clone()),
            pg: Some(pg),
            log_checked: false.into(),
            file: None,
        }))
    }
}

/// Queues `account`'s key for the next epoch (inside the caller's
/// transaction, the one that creates the account).
pub(crate) async fn queue_key(
    tx: &mut sqlx::SqliteConnection,
    account: &str,
    key: &[u8; 32],
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT OR REPLACE INTO kd_pending (account, identity_key, queued_at) VALUES (?, ?, ?)",
    )
    .bind(account)
    .bind(key.as_slice())
    .bind(now)
    .execute(tx)
    .await?;
    Ok(())
}

/// An epoch that a round of the publisher published and logged.
pub(crate) struct Published {
    /// Its root.
    pub root: EpochRoot,
    /// The making of its proofs of the accounts asked for at the epoch
    /// before ([`DirectoryService::renew_proofs`]), started as soon as the
    /// epoch was published, while it was being logged; it may still be
    /// under way.
    pub renewal: tokio::task::JoinHandle<()>,
}

/// One round of the publisher: records and logs what an earlier round left
/// undone, then publishes and logs one epoch of queued keys, if any.
/// Returns the epoch published in this round.
pub(crate) async fn publish_round(
    svc: &Arc<DirectoryService>,
    config: &KeyDirectoryConfig,
    log: &FrankingLogConfig,
    clock: &SharedClock,
) -> Result<Option<Published>, PublishEpochError> {
    let _guard = svc.lock.write().await;
    // On PostgreSQL one server publishes at a time; the others skip the
    // round (the lock goes with this transaction, at the end of the round
    // or with a lost connection).
    let _publisher = match &svc.pg {
        Some(pg) => match pg.try_publisher_lock().await? {
            Some(tx) => Some(tx),
            None => return Ok(None),
        },
        None => None,
    };
    if !svc.log_checked.load(std::sync::atomic::Ordering::Acquire) {
        log_check::check(svc, log).await?;
        svc.log_checked
            .store(true, std::sync::atomic::Ordering::Release);
    }
    let current = svc.dir.current().await?;
    let recorded = svc.store.kd_recorded_epoch().await?;
    let recorded = recorded.and_then(|e| u64::try_from(e).ok()).unwrap_or(0);
    if current.epoch > recorded {
        record_epoch(svc, &current, 0, clock, &[]).await?;
    }
    log_unlogged(svc, log).await?;
    let pending = svc
        .store
        .kd_pending(i64::try_from(config.max_changes).unwrap_or(i64::MAX))
        .await?;
    let changes: Vec<(String, [u8; 32])> = pending
        .into_iter()
        .filter_map(|(a, k)| Some((a, <[u8; 32]>::try_from(k.as_slice()).ok()?)))
        .collect();
    if changes.is_empty() {
        return Ok(None);
    }
    let root = svc.dir.publish(&changes).await?;
    // The proofs devices will ask for again are made while the epoch is
    // logged (lookups wait for that), rather than after, racing them.
    let renewal = tokio::spawn({
        let svc = Arc::clone(svc);
        async move { svc.renew_proofs().await }
    });
    let names: Vec<String> = changes.iter().map(|(a, _)| a.clone()).collect();
    record_epoch(
        svc,
        &root,
        u32::try_from(changes.len()).unwrap_or(u32::MAX),
        clock,
        &names,
    )
    .await?;
    log_unlogged(svc, log).await?;
    tracing::info!(
        epoch = root.epoch,
        changes = changes.len(),
        "key directory epoch published"
    );
    Ok(Some(Published { root, renewal }))
}

async fn record_epoch(
    svc: &DirectoryService,
    root: &EpochRoot,
    changes: u32,
    clock: &SharedClock,
    published: &[String],
) -> Result<(), sqlx::Error> {
    let row = crate::store::EpochRow {
        epoch: i64::try_from(root.epoch).unwrap_or(i64::MAX),
        root_hash: root.root_hash.to_vec(),
        changes: i64::from(changes),
        published_at: i64::try_from(clock.now_millis() / 1000).unwrap_or(i64::MAX),
    };
    svc.store.kd_record_epoch(&row, published).await
}

async fn log_unlogged(
    svc: &DirectoryService,
    log: &FrankingLogConfig,
) -> Result<(), PublishEpochError> {
    let rows = svc.store.kd_unlogged().await?;
    if rows.is_empty() {
        return Ok(());
    }
    let trust = TrustPolicy::from_manifest(&log.manifest)
        .map_err(|e| crate::abuse::franking_log::PublishError::Policy(e.to_string()))?;
    let author = hex::encode(log.statement_key.verifying_key().to_bytes());
    let provider = log
        .manifest
        .with_role(Role::Provider)
        .find(|p| p.public_key.eq_ignore_ascii_case(&author))
        .ok_or(PublishEpochError::NotAProvider)?
        .name
        .clone();
    let client =
        LogClient::new(&log.log_url).map_err(crate::abuse::franking_log::PublishError::from)?;
    for crate::store::EpochRow {
        epoch,
        root_hash,
        changes,
        published_at,
    } in rows
    {
        let statement = SignedStatement::sign(
            &Statement::KeyDirectoryEpoch(KeyDirectoryEpoch {
                provider: provider.clone(),
                epoch: u64::try_from(epoch).unwrap_or(0),
                root_hash: root_hash.as_slice().try_into().unwrap_or([0; 32]),
                changes: u32::try_from(changes).unwrap_or(u32::MAX),
                published_at: u64::try_from(published_at).unwrap_or(0),
            }),
            &log.statement_key,
        )
        .map_err(crate::abuse::franking_log::PublishError::from)?;
        let included = log_and_prove(&client, &trust, &statement, log.witness_timeout).await?;
        svc.store
            .kd_set_log_index(epoch, i64::try_from(included.index).unwrap_or(i64::MAX))
            .await?;
    }
    Ok(())
}

/// The publisher: a round every `config.interval` until `stop`.
pub(crate) async fn run_publisher(
    svc: Arc<DirectoryService>,
    config: KeyDirectoryConfig,
    log: Arc<FrankingLogConfig>,
    clock: SharedClock,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match publish_round(&svc, &config, &log, &clock).await {
            Ok(Some(published)) => {
                // The WAL is copied in once the proofs are made: their
                // reads would hold it back.
                if let Err(e) = published.renewal.await {
                    tracing::warn!(%e, epoch = published.root.epoch, "key directory: proofs for the new epoch not made");
                }
                svc.checkpoint().await;
            }
            Ok(None) => {}
            Err(e @ PublishEpochError::BehindLog(_)) => {
                tracing::error!(%e, "key directory: nothing is published");
            }
            Err(e) => tracing::warn!(%e, "key directory epoch not published; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(config.interval) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}
