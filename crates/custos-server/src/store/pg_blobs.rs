//! [`BlobStore`] on PostgreSQL (migration 11).
//!
//! # How the guarantees hold across servers
//! - Row and body together: the body is `bytea` in the row, so the `COMMIT`
//!   that makes the blob visible makes its body durable with it, and any
//!   server can serve it.
//! - The quota per account: an upload locks its owner's account row
//!   (`FOR UPDATE`) before it sums the owner's blobs, so uploads of one
//!   account on several servers run one after the other.
//! - Retention ([`PgStore::sweep_blobs`]): expired blobs are deleted in
//!   small rounds chosen `FOR UPDATE SKIP LOCKED`, so several servers sweep
//!   at once without waiting on one another or deleting a row twice.

use async_trait::async_trait;
use sqlx::PgConnection;

use super::postgres::PgStore;
use super::{BlobStore, BlobStored, NewBlob, blob_fits};

async fn usage(conn: &mut PgConnection, owner: i64) -> Result<(u64, u64), sqlx::Error> {
    let (count, bytes): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COALESCE(SUM(size), 0)::bigint FROM blobs WHERE owner = $1",
    )
    .bind(owner)
    .fetch_one(&mut *conn)
    .await?;
    Ok((
        u64::try_from(count).unwrap_or(0),
        u64::try_from(bytes).unwrap_or(0),
    ))
}

impl PgStore {
    /// Deletes blobs expired at `now` (ms), in rounds of at most `limit`
    /// rows each chosen `FOR UPDATE SKIP LOCKED`; answers how many went.
    /// Any number of servers may sweep at once.
    ///
    /// # Errors
    /// When the database fails (rounds already committed stay deleted).
    pub async fn sweep_blobs(&self, now: i64, limit: i64) -> Result<u64, sqlx::Error> {
        let mut total = 0u64;
        loop {
            let gone = sqlx::query(
                "DELETE FROM blobs WHERE locator IN (SELECT locator FROM blobs \
                 WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
            )
            .bind(now)
            .bind(limit)
            .execute(self.pool())
            .await?
            .rows_affected();
            total = total.saturating_add(gone);
            if gone < u64::try_from(limit).unwrap_or(0) || gone == 0 {
                return Ok(total);
            }
        }
    }
}

#[async_trait]
impl BlobStore for PgStore {
    async fn blob_usage(&self, owner: i64) -> Result<(u64, u64), sqlx::Error> {
        usage(&mut *self.pool().acquire().await?, owner).await
    }

    async fn store_blob(
        &self,
        blob: NewBlob<'_>,
        quota: crate::Quota,
    ) -> Result<BlobStored, sqlx::Error> {
        let len = u64::try_from(blob.body.len()).unwrap_or(u64::MAX);
        let mut tx = self.pool().begin().await?;
        // The owner's row lock serialises its uploads across servers: the
        // sum below cannot be overtaken by another upload.
        sqlx::query("SELECT id FROM accounts WHERE id = $1 FOR UPDATE")
            .bind(blob.owner)
            .execute(&mut *tx)
            .await?;
        let limited = quota.items > 0 || quota.bytes > 0;
        if limited && !blob_fits(quota, usage(&mut tx, blob.owner).await?, len) {
            return Ok(BlobStored::OverQuota);
        }
        sqlx::query(
            "INSERT INTO blobs (locator, owner, size, created_at, expires_at, body) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(blob.locator)
        .bind(blob.owner)
        .bind(i64::try_from(len).unwrap_or(i64::MAX))
        .bind(blob.created_at)
        .bind(blob.expires_at)
        .bind(blob.body.as_ref())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(BlobStored::Stored)
    }

    async fn blob_body(
        &self,
        locator: &str,
        unexpired_at: Option<i64>,
    ) -> Result<Option<Vec<u8>>, sqlx::Error> {
        sqlx::query_scalar("SELECT body FROM blobs WHERE locator = $1 AND expires_at > $2")
            .bind(locator)
            .bind(unexpired_at.unwrap_or(i64::MIN))
            .fetch_optional(self.pool())
            .await
    }
}
