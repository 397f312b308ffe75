//! [`SqliteStore`]: the store on this service's SQLite database (one
//! machine). Writes outside the single writer take `BEGIN IMMEDIATE`, so
//! they are serialised against each other and against the writer; each
//! commits with `synchronous = FULL` ([`crate::db`]).

use async_trait::async_trait;
use sqlx::SqlitePool;

use super::{AccountStore, KeyPackageStore, Registered, SessionRow, Uploaded};

/// The store on SQLite: the pool of [`crate::db::Database`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Where blob bodies go; without it they are stored in the row (as
    /// before the file store, and still served from there).
    blob_files: Option<crate::delivery::blob_files::BlobFiles>,
}

impl SqliteStore {
    /// A store on `pool` (an open, migrated database).
    pub fn new(pool: SqlitePool) -> Self {
        Self {
            pool,
            blob_files: None,
        }
    }

    /// The same store, writing blob bodies as files in `files`.
    pub(crate) fn with_blob_files(self, files: crate::delivery::blob_files::BlobFiles) -> Self {
        Self {
            blob_files: Some(files),
            ..self
        }
    }

    /// The same store, writing blob bodies as files under `data_dir`
    /// (`<data_dir>/blobs/<locator>`, as the service does).
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn with_blob_dir(self, data_dir: &std::path::Path) -> std::io::Result<Self> {
        Ok(self.with_blob_files(crate::delivery::blob_files::BlobFiles::open(data_dir)?))
    }

    /// The blob body files, if bodies are stored as files.
    pub(crate) fn blob_files(&self) -> Option<&crate::delivery::blob_files::BlobFiles> {
        self.blob_files.as_ref()
    }

    /// The pool (the other concerns' implementations use it).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

#[async_trait]
impl AccountStore for SqliteStore {
    async fn register(
        &self,
        name: &str,
        identity_key: &[u8; 32],
        now: i64,
        queue_directory: bool,
    ) -> Result<Registered, sqlx::Error> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let inserted = sqlx::query(
            "INSERT INTO accounts (name, identity_key, created_at) VALUES (?, ?, ?) \
             ON CONFLICT(name) DO NOTHING",
        )
        .bind(name)
        .bind(identity_key.as_slice())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Ok(Registered::NameTaken);
        }
        let account_id = inserted.last_insert_rowid();
        let device = sqlx::query("INSERT INTO devices (account_id, created_at) VALUES (?, ?)")
            .bind(account_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if queue_directory {
            crate::directory::queue_key(&mut tx, name, identity_key, now).await?;
        }
        tx.commit().await?;
        Ok(Registered::Created {
            account_id,
            device_id: device.last_insert_rowid(),
        })
    }

    async fn account_id(&self, name: &str) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar("SELECT id FROM accounts WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
    }

    async fn login_key(&self, name: &str) -> Result<Option<(Vec<u8>, i64)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT a.identity_key, d.id FROM accounts a JOIN devices d ON d.account_id = a.id \
             WHERE a.name = ? ORDER BY d.id LIMIT 1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
    }

    async fn open_session(
        &self,
        token_hash: &[u8; 32],
        device_id: i64,
        expires_at: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO sessions (token_hash, device_id, expires_at) VALUES (?, ?, ?)")
            .bind(token_hash.as_slice())
            .bind(device_id)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn session(&self, token_hash: &[u8; 32]) -> Result<Option<SessionRow>, sqlx::Error> {
        let row: Option<(Vec<u8>, i64, i64, i64, String)> = sqlx::query_as(
            "SELECT s.token_hash, s.expires_at, d.id, a.id, a.name FROM sessions s \
             JOIN devices d ON d.id = s.device_id JOIN accounts a ON a.id = d.account_id \
             WHERE s.token_hash = ?",
        )
        .bind(token_hash.as_slice())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(
            |(token_hash, expires_at, device_id, account_id, name)| SessionRow {
                token_hash,
                expires_at,
                device_id,
                account_id,
                name,
            },
        ))
    }
}

#[async_trait]
impl KeyPackageStore for SqliteStore {
    async fn upload_key_packages(
        &self,
        account_id: i64,
        packages: &[Vec<u8>],
        last_resort: Option<&[u8]>,
        max_stored: u64,
    ) -> Result<Uploaded, sqlx::Error> {
        // BEGIN IMMEDIATE: the count and the inserts cannot interleave with
        // another upload of the same account.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let stored: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM key_packages WHERE account_id = ? AND last_resort = 0",
        )
        .bind(account_id)
        .fetch_one(&mut *tx)
        .await?;
        let after = u64::try_from(stored)
            .unwrap_or(0)
            .saturating_add(u64::try_from(packages.len()).unwrap_or(u64::MAX));
        if after > max_stored {
            return Ok(Uploaded::OverQuota { stored });
        }
        for kp in packages {
            sqlx::query(
                "INSERT INTO key_packages (account_id, last_resort, data) VALUES (?, 0, ?)",
            )
            .bind(account_id)
            .bind(kp.as_slice())
            .execute(&mut *tx)
            .await?;
        }
        if let Some(lr) = last_resort {
            sqlx::query("DELETE FROM key_packages WHERE account_id = ? AND last_resort = 1")
                .bind(account_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO key_packages (account_id, last_resort, data) VALUES (?, 1, ?)",
            )
            .bind(account_id)
            .bind(lr)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Uploaded::Stored)
    }

    async fn claim_key_package(
        &self,
        account: &str,
    ) -> Result<Option<(Vec<u8>, bool)>, sqlx::Error> {
        // One statement: atomic even with concurrent claimers.
        let ordinary: Option<Vec<u8>> = sqlx::query_scalar(
            "DELETE FROM key_packages WHERE id = (SELECT k.id FROM key_packages k \
             JOIN accounts a ON a.id = k.account_id WHERE a.name = ? AND k.last_resort = 0 \
             ORDER BY k.id LIMIT 1) RETURNING data",
        )
        .bind(account)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(d) = ordinary {
            return Ok(Some((d, false)));
        }
        let lr: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT k.data FROM key_packages k JOIN accounts a ON a.id = k.account_id \
             WHERE a.name = ? AND k.last_resort = 1",
        )
        .bind(account)
        .fetch_optional(&self.pool)
        .await?;
        Ok(lr.map(|d| (d, true)))
    }

    async fn count_key_packages(&self, account_id: i64) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM key_packages WHERE account_id = ? AND last_resort = 0",
        )
        .bind(account_id)
        .fetch_one(&self.pool)
        .await
    }
}
