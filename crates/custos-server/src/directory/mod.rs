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

use std::sync::Arc;
use std::time::Duration;

use custos_clock::SharedClock;
use custos_keydir::{KeyDirectory, SqliteDirectory, VrfSecret};
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
}

/// The running directory, shared by the publisher and the handlers.
pub(crate) struct DirectoryService {
    pub dir: KeyDirectory,
    /// Held for writing while an epoch is published and logged.
    pub lock: RwLock<()>,
    pub pool: SqlitePool,
}

impl DirectoryService {
    pub(crate) async fn open(
        pool: SqlitePool,
        config: &KeyDirectoryConfig,
    ) -> Result<Arc<Self>, PublishEpochError> {
        let dir =
            KeyDirectory::open(SqliteDirectory::new(pool.clone()), config.vrf.clone()).await?;
        Ok(Arc::new(Self {
            dir,
            lock: RwLock::new(()),
            pool,
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

/// One round of the publisher: records and logs what an earlier round left
/// undone, then publishes and logs one epoch of queued keys, if any.
/// Returns the epoch published in this round.
pub(crate) async fn publish_round(
    svc: &DirectoryService,
    config: &KeyDirectoryConfig,
    log: &FrankingLogConfig,
    clock: &SharedClock,
) -> Result<Option<EpochRoot>, PublishEpochError> {
    let _guard = svc.lock.write().await;
    let current = svc.dir.current().await?;
    let recorded: Option<i64> = sqlx::query_scalar("SELECT MAX(epoch) FROM kd_epochs")
        .fetch_one(&svc.pool)
        .await?;
    let recorded = recorded.and_then(|e| u64::try_from(e).ok()).unwrap_or(0);
    if current.epoch > recorded {
        record_epoch(&svc.pool, &current, 0, clock, &[]).await?;
    }
    log_unlogged(svc, log).await?;
    let pending: Vec<(String, Vec<u8>)> = sqlx::query_as(
        "SELECT account, identity_key FROM kd_pending ORDER BY queued_at, account LIMIT ?",
    )
    .bind(i64::try_from(config.max_changes).unwrap_or(i64::MAX))
    .fetch_all(&svc.pool)
    .await?;
    let changes: Vec<(String, [u8; 32])> = pending
        .into_iter()
        .filter_map(|(a, k)| Some((a, <[u8; 32]>::try_from(k.as_slice()).ok()?)))
        .collect();
    if changes.is_empty() {
        return Ok(None);
    }
    let root = svc.dir.publish(&changes).await?;
    let names: Vec<&str> = changes.iter().map(|(a, _)| a.as_str()).collect();
    record_epoch(
        &svc.pool,
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
    Ok(Some(root))
}

async fn record_epoch(
    pool: &SqlitePool,
    root: &EpochRoot,
    changes: u32,
    clock: &SharedClock,
    published: &[&str],
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::query(
        "INSERT OR IGNORE INTO kd_epochs (epoch, root_hash, changes, published_at, log_index) \
         VALUES (?, ?, ?, ?, NULL)",
    )
    .bind(i64::try_from(root.epoch).unwrap_or(i64::MAX))
    .bind(root.root_hash.as_slice())
    .bind(i64::from(changes))
    .bind(i64::try_from(clock.now_millis() / 1000).unwrap_or(i64::MAX))
    .execute(&mut *tx)
    .await?;
    for a in published {
        sqlx::query("DELETE FROM kd_pending WHERE account = ?")
            .bind(a)
            .execute(&mut *tx)
            .await?;
    }
    // The commit point: the epoch's root is recorded and its keys leave the
    // queue together.
    tx.commit().await
}

async fn log_unlogged(
    svc: &DirectoryService,
    log: &FrankingLogConfig,
) -> Result<(), PublishEpochError> {
    let rows: Vec<(i64, Vec<u8>, i64, i64)> = sqlx::query_as(
        "SELECT epoch, root_hash, changes, published_at FROM kd_epochs \
         WHERE log_index IS NULL ORDER BY epoch",
    )
    .fetch_all(&svc.pool)
    .await?;
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
    for (epoch, root_hash, changes, published_at) in rows {
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
        sqlx::query("UPDATE kd_epochs SET log_index = ? WHERE epoch = ?")
            .bind(i64::try_from(included.index).unwrap_or(i64::MAX))
            .bind(epoch)
            .execute(&svc.pool)
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
        if let Err(e) = publish_round(&svc, &config, &log, &clock).await {
            tracing::warn!(%e, "key directory epoch not published; retrying");
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
