//! [`DirectoryStore`] on SQLite: the SQL of `directory`, moved unchanged.

use async_trait::async_trait;

use super::sqlite::SqliteStore;
use super::{DirectoryStore, EpochRow};

#[async_trait]
impl DirectoryStore for SqliteStore {
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
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "INSERT OR IGNORE INTO kd_epochs (epoch, root_hash, changes, published_at, log_index) \
             VALUES (?, ?, ?, ?, NULL)",
        )
        .bind(epoch.epoch)
        .bind(epoch.root_hash.as_slice())
        .bind(epoch.changes)
        .bind(epoch.published_at)
        .execute(&mut *tx)
        .await?;
        for a in published {
            sqlx::query("DELETE FROM kd_pending WHERE account = ?")
                .bind(a)
                .execute(&mut *tx)
                .await?;
        }
        // The commit point: the epoch's root is recorded and its keys leave
        // the queue together.
        tx.commit().await
    }

    async fn kd_pending(&self, limit: i64) -> Result<Vec<(String, Vec<u8>)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT account, identity_key FROM kd_pending ORDER BY queued_at, account LIMIT ?",
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
        sqlx::query("UPDATE kd_epochs SET log_index = ? WHERE epoch = ?")
            .bind(log_index)
            .bind(epoch)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn kd_epoch_root(&self, epoch: i64) -> Result<Option<Vec<u8>>, sqlx::Error> {
        sqlx::query_scalar("SELECT root_hash FROM kd_epochs WHERE epoch = ?")
            .bind(epoch)
            .fetch_optional(self.pool())
            .await
    }
}

pub(crate) fn epoch_row(
    (epoch, root_hash, changes, published_at): (i64, Vec<u8>, i64, i64),
) -> EpochRow {
    EpochRow {
        epoch,
        root_hash,
        changes,
        published_at,
    }
}
