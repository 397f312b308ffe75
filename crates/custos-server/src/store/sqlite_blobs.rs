//! [`BlobStore`] on SQLite: the SQL of `delivery::blobs`, moved unchanged.
//! The quota check and the row are one `BEGIN IMMEDIATE` transaction. With
//! blob files ([`SqliteStore::with_blob_files`]) the body is written and
//! fsynced as its own file before the row (with an empty `body`) commits,
//! and removed again if the row is not stored; without, the body is in the
//! row.

use async_trait::async_trait;
use sqlx::SqliteConnection;

use super::sqlite::SqliteStore;
use super::{BlobStore, BlobStored, NewBlob, blob_fits};

async fn usage(conn: &mut SqliteConnection, owner: i64) -> Result<(u64, u64), sqlx::Error> {
    let (count, bytes): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM blobs WHERE owner = ?")
            .bind(owner)
            .fetch_one(&mut *conn)
            .await?;
    Ok((
        u64::try_from(count).unwrap_or(0),
        u64::try_from(bytes).unwrap_or(0),
    ))
}

impl SqliteStore {
    /// The quota check and the row, in one write transaction, so that two
    /// uploads at once cannot both pass the quota. An empty `body` says the
    /// body is in its file.
    async fn insert_blob_row(
        &self,
        blob: &NewBlob<'_>,
        body: &[u8],
        quota: crate::Quota,
    ) -> Result<BlobStored, sqlx::Error> {
        let len = u64::try_from(blob.body.len()).unwrap_or(u64::MAX);
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let limited = quota.items > 0 || quota.bytes > 0;
        if limited && !blob_fits(quota, usage(&mut tx, blob.owner).await?, len) {
            return Ok(BlobStored::OverQuota);
        }
        sqlx::query(
            "INSERT INTO blobs (locator, owner, size, created_at, expires_at, body) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(blob.locator)
        .bind(blob.owner)
        .bind(i64::try_from(len).unwrap_or(i64::MAX))
        .bind(blob.created_at)
        .bind(blob.expires_at)
        .bind(body)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(BlobStored::Stored)
    }
}

#[async_trait]
impl BlobStore for SqliteStore {
    async fn blob_usage(&self, owner: i64) -> Result<(u64, u64), sqlx::Error> {
        usage(&mut *self.pool().acquire().await?, owner).await
    }

    async fn store_blob(
        &self,
        blob: NewBlob<'_>,
        quota: crate::Quota,
    ) -> Result<BlobStored, sqlx::Error> {
        let Some(files) = self.blob_files() else {
            let body = blob.body.clone();
            return self.insert_blob_row(&blob, &body, quota).await;
        };
        files
            .write(blob.locator, blob.body.clone())
            .await
            .map_err(sqlx::Error::Io)?;
        let stored = self.insert_blob_row(&blob, &[], quota).await;
        if !matches!(stored, Ok(BlobStored::Stored)) {
            files.remove(vec![blob.locator.to_owned()]).await;
        }
        stored
    }

    async fn blob_body(
        &self,
        locator: &str,
        unexpired_at: Option<i64>,
    ) -> Result<Option<Vec<u8>>, sqlx::Error> {
        let row: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT body FROM blobs WHERE locator = ? AND expires_at > ?")
                .bind(locator)
                .bind(unexpired_at.unwrap_or(i64::MIN))
                .fetch_optional(self.pool())
                .await?;
        match (row, self.blob_files()) {
            (None, _) => Ok(None),
            (Some(body), _) if !body.is_empty() => Ok(Some(body)),
            // The sweep may delete the file between the row read and this
            // one: then the blob has just expired.
            (Some(_), Some(files)) => files.read(locator).await.map_err(sqlx::Error::Io),
            (Some(_), None) => Ok(None),
        }
    }
}
