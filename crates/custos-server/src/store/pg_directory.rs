//! [`DirectoryStore`] on PostgreSQL (migration 13). Any server may read
//! the queue and the epochs; one publishes at a time
//! ([`PgStore::try_publisher_lock`]).

use async_trait::async_trait;

use super::postgres::PgStore;
use super::sqlite_directory::epoch_row;
use super::{DirectoryStore, EpochRow};

/// The advisory lock key of the key directory's publisher.
const PUBLISHER_LOCK: i64 = 0x6375_7374_6b64; // "custkd"

impl PgStore {
    /// Takes the key directory's publisher lock, if no other server holds
    /// it: a transaction holding `pg_try_advisory_xact_lock`, released when
    /// it ends (dropped, or the connection lost). `None`: another server is
    /// publishing; skip this round.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn try_publisher_lock(
        &self,
    ) -> Result<Option<sqlx::Transaction<'static, sqlx::Postgres>>, sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(PUBLISHER_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        Ok(got.then_some(tx))
    }
}

#[async_trait]
impl DirectoryStore for PgStore {
    async fn kd_recorded_epoch(&self) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar("SELECT MAX(epoch) FROM kd_epochs")
            .fetch_one(self.pool())
            .await
    }

    async fn kd_record_epoch(
        &self,
        epoch: &EpochRow,
        published: &[String],
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO kd_epochs (epoch, root_hash, changes, published_at, log_index) \
             VALUES ($1, $2, $3, $4, NULL) ON CONFLICT (epoch) DO NOTHING",
        )
        .bind(epoch.epoch)
        .bind(epoch.root_hash.as_slice())
        .bind(epoch.changes)
        .bind(epoch.published_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM kd_pending WHERE account = ANY($1)")
            .bind(published)
            .execute(&mut *tx)
            .await?;
        // The commit point: the epoch's root is recorded and its keys leave
        // the queue together.
        tx.commit().await
    }

    async fn kd_pending(&self, limit: i64) -> Result<Vec<(String, Vec<u8>)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT account, identity_key FROM kd_pending ORDER BY queued_at, account LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await
    }

    async fn kd_unlogged(&self) -> Result<Vec<EpochRow>, sqlx::Error> {
        let rows: Vec<(i64, Vec<u8>, i64, i64)> = sqlx::query_as(
            "SELECT epoch, root_hash, changes, published_at FROM kd_epochs \
             WHERE log_index IS NULL ORDER BY epoch",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(epoch_row).collect())
    }

    async fn kd_set_log_index(&self, epoch: i64, log_index: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE kd_epochs SET log_index = $1 WHERE epoch = $2")
            .bind(log_index)
            .bind(epoch)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn kd_epoch_root(&self, epoch: i64) -> Result<Option<Vec<u8>>, sqlx::Error> {
        sqlx::query_scalar("SELECT root_hash FROM kd_epochs WHERE epoch = $1")
            .bind(epoch)
            .fetch_optional(self.pool())
            .await
    }
}
