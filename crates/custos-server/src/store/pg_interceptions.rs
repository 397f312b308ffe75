//! [`InterceptionStore`] on PostgreSQL (migration 12: the interception
//! tables, the same as SQLite's version 3). Reads of committed rows only:
//! the rows are written by the writer's holds in the transaction that stores
//! the items they keep, so any server answers an authority with every kept
//! item acknowledged on any server.

use async_trait::async_trait;

use super::postgres::PgStore;
use super::sqlite_interceptions::{KeptRow, kept};
use super::{InterceptionStore, KeptItem};

#[async_trait]
impl InterceptionStore for PgStore {
    async fn interception_log_index(
        &self,
        commitment: &[u8; 32],
    ) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar("SELECT log_index FROM interceptions WHERE commitment = $1")
            .bind(commitment.as_slice())
            .fetch_optional(self.pool())
            .await
    }

    async fn interception_authority_key(
        &self,
        commitment: &[u8; 32],
    ) -> Result<Option<Vec<u8>>, sqlx::Error> {
        sqlx::query_scalar("SELECT authority_key FROM interceptions WHERE commitment = $1")
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
            "SELECT id, kind::bigint, conversation, day, sender, sender_key, server_time, tag, \
             body FROM kept_items WHERE commitment = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(commitment.as_slice())
        .bind(after)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(kept).collect())
    }
}

/// An item to keep under a warrant ([`keep_in`]).
#[derive(Debug, Clone)]
pub struct NewKept<'a> {
    /// The stored item's id (kept once per warrant).
    pub item_id: i64,
    /// Its item kind (wire code).
    pub kind: i16,
    /// Its conversation.
    pub conversation: &'a [u8],
    /// The chain's day.
    pub day: i64,
    /// Its sender's account name.
    pub sender: &'a str,
    /// That sender's identity key now.
    pub sender_key: &'a [u8],
    /// The service's acceptance time (ms).
    pub server_time: i64,
    /// Its delivery tag.
    pub tag: &'a [u8],
    /// The item's body.
    pub body: &'a [u8],
    /// When it goes (ms).
    pub keep_until: i64,
}

/// Keeps `items` under warrant `commitment` on `conn` (the batch's open
/// transaction, which stores the items themselves): what the PostgreSQL
/// writer's holds call. Answers how many were new (an item is kept once per
/// warrant).
///
/// The interception's row is locked first (`FOR NO KEY UPDATE`, held to
/// the commit), so the kept items of one warrant take their ids and commit
/// in the same order on every server: an authority following its cursor
/// (`id > after`) never passes an id that commits later, which with ids
/// drawn by two servers at once it otherwise could. An interception no
/// longer there (swept once its keeping ended) keeps nothing: answers 0.
///
/// # Errors
/// When the database fails (the batch must then fail as a whole).
pub async fn keep_in(
    conn: &mut sqlx::PgConnection,
    commitment: &[u8; 32],
    items: &[NewKept<'_>],
) -> Result<u64, sqlx::Error> {
    let held: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM interceptions WHERE commitment = $1 FOR NO KEY UPDATE")
            .bind(commitment.as_slice())
            .fetch_optional(&mut *conn)
            .await?;
    if held.is_none() {
        // Swept meanwhile (its keeping ended): nothing is kept under it.
        return Ok(0);
    }
    let mut kept = 0;
    for i in items {
        kept += sqlx::query(
            "INSERT INTO kept_items (commitment, item_id, kind, conversation, day, sender, \
             sender_key, server_time, tag, body, keep_until) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (commitment, item_id) DO NOTHING",
        )
        .bind(commitment.as_slice())
        .bind(i.item_id)
        .bind(i.kind)
        .bind(i.conversation)
        .bind(i.day)
        .bind(i.sender)
        .bind(i.sender_key)
        .bind(i.server_time)
        .bind(i.tag)
        .bind(i.body)
        .bind(i.keep_until)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    }
    Ok(kept)
}
