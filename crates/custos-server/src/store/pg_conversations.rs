//! Conversations on PostgreSQL: one commit per epoch across servers.
//!
//! A commit takes the conversation's row with `SELECT … FOR UPDATE` in its
//! own transaction ([`PgStore::lock_conversation`]) and checks the epoch it
//! commits in against the locked row. A second server committing the same
//! epoch waits on that lock; once the first has committed, it reads the new
//! epoch and is answered [`Locked::Stale`] (the service's `409
//! stale_epoch`). So exactly one commit wins each epoch, and the public MLS
//! state, the epoch and the member rows change together or not at all.
//!
//! Dropping a [`LockedConversation`] without [`LockedConversation::commit`]
//! rolls its transaction back and releases the lock.

use custos_wire::ConversationId;
use sqlx::{Postgres, Transaction};

use super::pg_mailbox::{PgNewItem, StoredItem, store_items_in};
use super::postgres::PgStore;

/// The class of the transaction advisory locks taken by [`lock_creations`]
/// (`pg_advisory_xact_lock(class, key)`; the two-key space is apart from
/// the one-key locks used elsewhere).
const CREATION_LOCK_CLASS: i32 = 0x4375_0013;

/// Takes, on `conn` (an open transaction, until its end), the creation
/// lock of each conversation id of `ids`, in key order: what a
/// conversation's creation and an interception of it both take first, so
/// that a conversation an interception targets is created either before
/// the interception locks its targets' rows or after it has committed
/// (`crate::lawful::pg_holds`). The key is the id's first four bytes: two
/// ids sharing them only wait for each other.
///
/// # Errors
/// When the database fails.
pub async fn lock_creations(
    conn: &mut sqlx::PgConnection,
    ids: &[[u8; 16]],
) -> Result<(), sqlx::Error> {
    let mut keys: Vec<i32> = ids
        .iter()
        .map(|id| {
            let [a, b, c, d, ..] = *id;
            i32::from_be_bytes([a, b, c, d])
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        sqlx::query("SELECT 1 FROM pg_advisory_xact_lock($1, $2)")
            .bind(CREATION_LOCK_CLASS)
            .bind(key)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// A conversation's row, locked for one commit, and what was stored with it.
#[derive(Debug)]
pub struct LockedConversation {
    tx: Transaction<'static, Postgres>,
    id: ConversationId,
    /// The current epoch (the one the commit is made in).
    pub epoch: u64,
    /// The member accounts, sorted.
    pub members: Vec<i64>,
    /// The public MLS state at `epoch`, which the caller verifies the commit
    /// against while it holds the lock.
    pub state: Vec<u8>,
    /// Storage held by items stored with the commit, added at its end.
    usage: super::pg_usage::UsageDelta,
}

/// The outcome of [`PgStore::lock_conversation`].
#[derive(Debug)]
pub enum Locked {
    /// No such conversation.
    Unknown,
    /// The conversation is at another epoch than the commit's: the commit
    /// lost (or is late); nothing is held.
    Stale {
        /// The conversation's epoch now.
        current: u64,
    },
    /// The row is locked at the commit's epoch; the caller verifies, then
    /// commits or drops.
    Held(LockedConversation),
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// An account a roster leaf names, with one of its devices.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RosterAccount {
    /// The account id.
    pub account_id: i64,
    /// Its name.
    pub name: String,
    /// Its identity key, which the leaf's signature key must equal.
    pub identity_key: Vec<u8>,
    /// One of its devices (an account has a row per device).
    pub device_id: i64,
}

impl PgStore {
    /// The accounts named by a verified roster's leaves, one row per device,
    /// sorted by account then device: what the caller checks each leaf
    /// against (name exists, key matches) before it admits a roster, as
    /// `delivery::membership::resolve_roster` does on SQLite.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn roster_accounts(
        &self,
        names: &[String],
    ) -> Result<Vec<RosterAccount>, sqlx::Error> {
        sqlx::query_as(
            "SELECT a.id AS account_id, a.name, a.identity_key, d.id AS device_id \
             FROM accounts a JOIN devices d ON d.account_id = a.id \
             WHERE a.name = ANY($1) ORDER BY a.id, d.id",
        )
        .bind(names)
        .fetch_all(self.pool())
        .await
    }

    /// The conversations `account_id` is a member of, as `(id, epoch,
    /// member name)` rows sorted by conversation then name (the caller's
    /// `GET /v1/conversations`).
    ///
    /// # Errors
    /// When the database fails.
    pub async fn conversations_of(
        &self,
        account_id: i64,
    ) -> Result<Vec<(Vec<u8>, i64, String)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT c.id, c.epoch, a.name FROM members mine \
             JOIN conversations c ON c.id = mine.conversation \
             JOIN members m ON m.conversation = c.id JOIN accounts a ON a.id = m.account_id \
             WHERE mine.account_id = $1 ORDER BY c.id, a.name",
        )
        .bind(account_id)
        .fetch_all(self.pool())
        .await
    }

    /// Registers a conversation at epoch 0 with `members` and its public MLS
    /// `state`, in one transaction; `false` (nothing written) when the id is
    /// taken, on this server or another.
    ///
    /// # Errors
    /// When the database fails (nothing is written).
    pub async fn create_conversation(
        &self,
        id: &ConversationId,
        members: &[i64],
        state: &[u8],
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        // An interception of this id registering meanwhile either commits
        // before the row exists or waits for it (`lock_creations`).
        lock_creations(&mut tx, std::slice::from_ref(&id.0)).await?;
        let created = sqlx::query(
            "INSERT INTO conversations (id, epoch, created_at) VALUES ($1, 0, $2) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id.0.as_slice())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if created.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO members (conversation, account_id) SELECT $1, UNNEST($2::bigint[])",
        )
        .bind(id.0.as_slice())
        .bind(members)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO group_states (conversation, state) VALUES ($1, $2)")
            .bind(id.0.as_slice())
            .bind(state)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Locks conversation `id` for a commit made in epoch `sent` (waiting
    /// for a commit in progress on any server to finish first).
    ///
    /// # Errors
    /// When the database fails (nothing is held).
    pub async fn lock_conversation(
        &self,
        id: &ConversationId,
        sent: u64,
    ) -> Result<Locked, sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        let epoch: Option<i64> =
            sqlx::query_scalar("SELECT epoch FROM conversations WHERE id = $1 FOR UPDATE")
                .bind(id.0.as_slice())
                .fetch_optional(&mut *tx)
                .await?;
        let Some(epoch) = epoch else {
            return Ok(Locked::Unknown);
        };
        let epoch = u64::try_from(epoch).unwrap_or(0);
        if epoch != sent {
            return Ok(Locked::Stale { current: epoch });
        }
        let members: Vec<i64> = sqlx::query_scalar(
            "SELECT account_id FROM members WHERE conversation = $1 ORDER BY account_id",
        )
        .bind(id.0.as_slice())
        .fetch_all(&mut *tx)
        .await?;
        let state: Vec<u8> =
            sqlx::query_scalar("SELECT state FROM group_states WHERE conversation = $1")
                .bind(id.0.as_slice())
                .fetch_one(&mut *tx)
                .await?;
        Ok(Locked::Held(LockedConversation {
            tx,
            id: *id,
            epoch,
            members,
            state,
            usage: Default::default(),
        }))
    }
}

impl LockedConversation {
    /// [`PgStore::roster_accounts`] read under this lock, in its transaction.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn roster_accounts(
        &mut self,
        names: &[String],
    ) -> Result<Vec<RosterAccount>, sqlx::Error> {
        sqlx::query_as(
            "SELECT a.id AS account_id, a.name, a.identity_key, d.id AS device_id \
             FROM accounts a JOIN devices d ON d.account_id = a.id \
             WHERE a.name = ANY($1) ORDER BY a.id, d.id",
        )
        .bind(names)
        .fetch_all(&mut *self.tx)
        .await
    }

    /// The transaction holding the lock, for reads the caller makes under it.
    pub fn conn(&mut self) -> &mut sqlx::PgConnection {
        &mut self.tx
    }

    /// The devices of `accounts` (the members before the commit), sorted.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn devices_of(&mut self, accounts: &[i64]) -> Result<Vec<i64>, sqlx::Error> {
        sqlx::query_scalar("SELECT id FROM devices WHERE account_id = ANY($1) ORDER BY id")
            .bind(accounts)
            .fetch_all(&mut *self.tx)
            .await
    }

    /// As [`LockedConversation::commit`], and stores `items` (the commit and
    /// its Welcome) in the same transaction, so the new epoch and the
    /// messages announcing it are durable together or not at all.
    ///
    /// # Errors
    /// When the database fails: nothing is written.
    pub async fn commit_with(
        mut self,
        members: &[i64],
        state: &[u8],
        items: &[PgNewItem],
    ) -> Result<(u64, Vec<StoredItem>), sqlx::Error> {
        let stored = store_items_in(&mut self.tx, items).await?;
        let mut usage = super::pg_usage::UsageDelta::default();
        super::pg_usage::add_stored(&mut usage, items, &stored);
        self.usage = usage;
        let epoch = self.commit(members, state).await?;
        Ok((epoch, stored))
    }

    /// Writes a new public `state` at the same epoch (a queued proposal)
    /// and stores `items` (the proposal) in the same transaction.
    ///
    /// # Errors
    /// When the database fails: nothing is written.
    pub async fn store_with(
        mut self,
        state: &[u8],
        items: &[PgNewItem],
    ) -> Result<Vec<StoredItem>, sqlx::Error> {
        sqlx::query("UPDATE group_states SET state = $1 WHERE conversation = $2")
            .bind(state)
            .bind(self.id.0.as_slice())
            .execute(&mut *self.tx)
            .await?;
        let stored = store_items_in(&mut self.tx, items).await?;
        let mut usage = super::pg_usage::UsageDelta::default();
        super::pg_usage::add_stored(&mut usage, items, &stored);
        // Last: the storage counters, in key order (see `pg_usage`).
        super::pg_usage::apply(&mut self.tx, &usage).await?;
        self.tx.commit().await?;
        Ok(stored)
    }

    /// Writes the commit's result: epoch `epoch + 1`, the new `members` and
    /// the merged public `state`; durable when this returns `Ok`.
    ///
    /// # Errors
    /// When the database fails: nothing of the commit is written, and the
    /// epoch stays for another commit to win.
    pub async fn commit(mut self, members: &[i64], state: &[u8]) -> Result<u64, sqlx::Error> {
        let next = self.epoch.saturating_add(1);
        let id = self.id.0.as_slice();
        sqlx::query("UPDATE conversations SET epoch = $1 WHERE id = $2")
            .bind(to_i64(next))
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query("UPDATE group_states SET state = $1 WHERE conversation = $2")
            .bind(state)
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query(
            "DELETE FROM members WHERE conversation = $1 AND NOT (account_id = ANY($2::bigint[]))",
        )
        .bind(id)
        .bind(members)
        .execute(&mut *self.tx)
        .await?;
        sqlx::query(
            "INSERT INTO members (conversation, account_id) SELECT $1, UNNEST($2::bigint[]) \
             ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(members)
        .execute(&mut *self.tx)
        .await?;
        // Last: the storage counters, in key order (see `pg_usage`).
        super::pg_usage::apply(&mut self.tx, &self.usage).await?;
        self.tx.commit().await?;
        Ok(next)
    }
}
