//! [`InterceptionStore`] on SQLite: the reads of `lawful::intercept` and
//! `lawful::recover`, moved unchanged.

use async_trait::async_trait;

use super::sqlite::SqliteStore;
use super::{InterceptionStore, KeptItem};

/// A kept item's columns, in [`KeptItem`]'s order.
pub(crate) type KeptRow = (
    i64,
    i64,
    Vec<u8>,
    i64,
    String,
    Vec<u8>,
    i64,
    Vec<u8>,
    Vec<u8>,
);

pub(crate) fn kept(row: KeptRow) -> KeptItem {
    let (id, kind, conversation, day, sender, sender_key, server_time, tag, body) = row;
    KeptItem {
        id,
        kind,
        conversation,
        day,
        sender,
        sender_key,
        server_time,
        tag,
        body,
    }
}

#[async_trait]
impl InterceptionStore for SqliteStore {
    async fn interception_log_index(
        &self,
        commitment: &[u8; 32],
    ) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar::<_, i64>("SELECT log_index FROM interceptions WHERE commitment = ?")
            .bind(commitment.as_slice())
            .fetch_optional(self.pool())
            .await
    }

    async fn interception_authority_key(
        &self,
        commitment: &[u8; 32],
    ) -> Result<Option<Vec<u8>>, sqlx::Error> {
        sqlx::query_scalar("SELECT authority_key FROM interceptions WHERE commitment = ?")
            .bind(commitment.as_slice())
            .fetch_optional(self.pool())
            .await
    }

    async fn kept_items(
        &self,
        commitment: &[u8; 32],
        after: i64,
        limit: i64,
    ) -> Result<Vec<KeptItem>, sqlx::Error> {
        let rows: Vec<KeptRow> = sqlx::query_as(
            "SELECT id, kind, conversation, day, sender, sender_key, server_time, tag, body \
             FROM kept_items WHERE commitment = ? AND id > ? ORDER BY id LIMIT ?",
        )
        .bind(commitment.as_slice())
        .bind(after)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(kept).collect())
    }
}
