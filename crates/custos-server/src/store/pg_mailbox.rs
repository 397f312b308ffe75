//! Items and mailboxes on PostgreSQL, for several servers at once.
//!
//! # Guarantees
//! - **Durable before answered.** [`PgStore::store_items`] stores a whole
//!   batch in one transaction and returns only after `COMMIT`.
//! - **Per-device order without gaps.** Each device has its own counter
//!   (`devices.next_seq`), advanced in the batch's transaction after the
//!   batch has locked its devices' rows in id order (so two batches never
//!   deadlock). A batch touching a device waits for any other batch holding
//!   it, so a device's rows commit in seq order: a reader that has seen
//!   seq `n` never later finds a row below `n` appear.
//! - **Replays refused on every server.** An item with a hash is stored
//!   only if `INSERT INTO seen … ON CONFLICT DO NOTHING` adds its hash, in
//!   the same transaction (a replay within one batch is refused too).
//! - **Wake-ups, never truth.** The batch's transaction issues `NOTIFY
//!   custos_mailbox` with the devices it wrote to; PostgreSQL delivers it
//!   only after the commit, to every server's [`MailboxWakeups`]. A lost
//!   notification costs latency only: readers read from their durable
//!   cursor ([`PgStore::mailbox_after`]), and a listener that lost its
//!   connection reports [`Wake::All`].

use custos_wire::ConversationId;
use sqlx::PgConnection;
use sqlx::postgres::PgListener;

use super::postgres::PgStore;

/// The notification channel of mailbox wake-ups.
pub const MAILBOX_CHANNEL: &str = "custos_mailbox";
/// Longest payload sent: past it a batch wakes every device (`*`).
/// PostgreSQL's limit is 8000 bytes.
const MAX_PAYLOAD: usize = 7000;

/// One item to store, with the devices whose mailboxes get it.
#[derive(Debug, Clone)]
pub struct PgNewItem {
    /// Item kind (the wire's `ItemKind` byte).
    pub kind: i16,
    /// Its conversation.
    pub conversation: ConversationId,
    /// The sending account's name.
    pub sender: String,
    /// Server time of acceptance, ms.
    pub server_time: i64,
    /// Deleted at this time (ms) even if not acked; the replay hash is kept
    /// until then too.
    pub expires_at: i64,
    /// SHA-256 of the body for replay refusal; `None` for items ordered
    /// otherwise (commits and Welcomes, by epoch).
    pub hash: Option<[u8; 32]>,
    /// The delivery tag (empty for none).
    pub tag: Vec<u8>,
    /// The ciphertext.
    pub body: Vec<u8>,
    /// Recipient devices.
    pub recipients: Vec<i64>,
}

/// What became of one item of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredItem {
    /// Stored: its id and its `(device, seq)` mailbox rows.
    Stored {
        /// The item's id.
        item_id: i64,
        /// One row per recipient device.
        rows: Vec<(i64, i64)>,
    },
    /// Its hash was seen before (on any server): not stored.
    Replay,
}

/// A mailbox row with its item, as a device reads it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MailboxEntry {
    /// Position in the device's mailbox.
    pub seq: i64,
    /// The item's id.
    pub item_id: i64,
    /// Item kind.
    pub kind: i16,
    /// Server time of acceptance, ms.
    pub server_time: i64,
    /// The item's conversation.
    pub conversation: Vec<u8>,
    /// The sender's account name.
    pub sender: String,
    /// The delivery tag.
    pub tag: Vec<u8>,
    /// The ciphertext.
    pub body: Vec<u8>,
}

/// Which devices a wake-up concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    /// These devices have new rows.
    Devices(Vec<i64>),
    /// Any device may have new rows (a large batch, or notifications may have
    /// been lost while the listener reconnected).
    All,
}

/// A server's wake-up listener (one dedicated connection).
#[derive(Debug)]
pub struct MailboxWakeups {
    listener: PgListener,
}

impl MailboxWakeups {
    /// The next wake-up. Reconnects by itself after a lost connection and
    /// then answers [`Wake::All`].
    ///
    /// # Errors
    /// When PostgreSQL cannot be reached again.
    pub async fn next(&mut self) -> Result<Wake, sqlx::Error> {
        let Some(n) = self.listener.try_recv().await? else {
            return Ok(Wake::All);
        };
        let payload = n.payload();
        if payload == "*" {
            return Ok(Wake::All);
        }
        // Sent by `store_items` only; anything unparsable wakes everyone.
        let devices: Result<Vec<i64>, _> = payload.split(',').map(str::parse).collect();
        Ok(devices.map_or(Wake::All, Wake::Devices))
    }
}

/// A batch's items column by column, for one `INSERT … UNNEST`.
#[derive(Default)]
struct ItemColumns<'a> {
    id: Vec<i64>,
    kind: Vec<i16>,
    expires_at: Vec<i64>,
    server_time: Vec<i64>,
    conversation: Vec<&'a [u8]>,
    sender: Vec<&'a str>,
    tag: Vec<&'a [u8]>,
    body: Vec<&'a [u8]>,
}

impl<'a> ItemColumns<'a> {
    fn push(&mut self, id: i64, item: &'a PgNewItem) {
        self.id.push(id);
        self.kind.push(item.kind);
        self.expires_at.push(item.expires_at);
        self.server_time.push(item.server_time);
        self.conversation.push(item.conversation.0.as_slice());
        self.sender.push(&item.sender);
        self.tag.push(&item.tag);
        self.body.push(&item.body);
    }
}

impl PgStore {
    /// Stores a batch of items and their mailbox rows in one transaction,
    /// answering per item; durable when this returns `Ok`.
    ///
    /// # Errors
    /// When the database fails: nothing of the batch is stored.
    pub async fn store_items(&self, items: &[PgNewItem]) -> Result<Vec<StoredItem>, sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        let out = store_items_in(&mut tx, items).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Up to `limit` rows of `device`'s mailbox after `after` (its durable
    /// cursor), in seq order.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn mailbox_after(
        &self,
        device: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<MailboxEntry>, sqlx::Error> {
        sqlx::query_as(
            "SELECT m.seq, m.item_id, i.kind, i.server_time, i.conversation, i.sender, i.tag, i.body \
             FROM mailbox m JOIN items i ON i.id = m.item_id \
             WHERE m.device_id = $1 AND m.seq > $2 ORDER BY m.seq LIMIT $3",
        )
        .bind(device)
        .bind(after)
        .bind(limit)
        .fetch_all(self.pool())
        .await
    }

    /// Acks `seqs` of `device`'s mailbox: removes those rows, and each item
    /// that no mailbox holds any more; the number of rows removed.
    ///
    /// # Errors
    /// When the database fails (nothing is removed).
    pub async fn ack(&self, device: i64, seqs: &[i64]) -> Result<u64, sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        // Several servers may ack the last rows of one item at once. Each
        // first locks the items it touches (in id order), so the second
        // sees the first's deletions and removes the item: none is left
        // behind held by no mailbox.
        let touched: Vec<i64> = sqlx::query_scalar(
            "SELECT DISTINCT item_id FROM mailbox WHERE device_id = $1 AND seq = ANY($2)",
        )
        .bind(device)
        .bind(seqs)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query("SELECT id FROM items WHERE id = ANY($1) ORDER BY id FOR UPDATE")
            .bind(&touched)
            .execute(&mut *tx)
            .await?;
        let items: Vec<i64> = sqlx::query_scalar(
            "DELETE FROM mailbox WHERE device_id = $1 AND seq = ANY($2) RETURNING item_id",
        )
        .bind(device)
        .bind(seqs)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM items i WHERE i.id = ANY($1) \
             AND NOT EXISTS (SELECT 1 FROM mailbox m WHERE m.item_id = i.id)",
        )
        .bind(&items)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(u64::try_from(items.len()).unwrap_or(u64::MAX))
    }

    /// Starts listening for mailbox wake-ups on a dedicated connection.
    ///
    /// # Errors
    /// When PostgreSQL cannot be reached.
    pub async fn wakeups(&self) -> Result<MailboxWakeups, sqlx::Error> {
        let mut listener = PgListener::connect_with(self.pool()).await?;
        listener.listen(MAILBOX_CHANNEL).await?;
        Ok(MailboxWakeups { listener })
    }
}

/// [`PgStore::store_items`] inside the caller's transaction (the delivery
/// writer's batch): nothing is durable, and no wake-up is delivered, until
/// the caller commits. The caller must take its locks in the documented
/// order (conversations, then this: replay hashes, then devices in id
/// order), so that batches on different servers never deadlock.
///
/// # Errors
/// When the database fails; the caller rolls back.
pub async fn store_items_in(
    conn: &mut PgConnection,
    items: &[PgNewItem],
) -> Result<Vec<StoredItem>, sqlx::Error> {
    // The replay set first, in one statement, in hash order: two batches
    // holding the same hashes (a replay racing on two servers) wait on
    // each other in one order and never deadlock. Duplicates within the
    // batch are inserted once; the first item with a hash gets it.
    let mut by_hash: Vec<(Vec<u8>, i64)> = items
        .iter()
        .filter_map(|i| i.hash.map(|h| (h.to_vec(), i.expires_at)))
        .collect();
    by_hash.sort_unstable();
    let (hashes, expiries): (Vec<Vec<u8>>, Vec<i64>) = by_hash.into_iter().unzip();
    let mut fresh: std::collections::HashSet<Vec<u8>> = if hashes.is_empty() {
        Default::default()
    } else {
        sqlx::query_scalar::<_, Vec<u8>>(
            "INSERT INTO seen (hash, expires_at) \
             SELECT h, e FROM UNNEST($1::bytea[], $2::bigint[]) WITH ORDINALITY AS t(h, e, n) \
             ORDER BY n ON CONFLICT DO NOTHING RETURNING hash",
        )
        .bind(&hashes)
        .bind(&expiries)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .collect()
    };
    // `remove`: a second item with the same hash is a replay.
    let admitted: Vec<bool> = items
        .iter()
        .map(|i| i.hash.is_none_or(|h| fresh.remove(h.as_slice())))
        .collect();
    let n = admitted.iter().filter(|a| **a).count();
    // Ids drawn first, so that each item's id is known without relying
    // on the order of `RETURNING`; then every item in one statement.
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT nextval(pg_get_serial_sequence('items', 'id')) FROM generate_series(1, $1)",
    )
    .bind(i64::try_from(n).unwrap_or(i64::MAX))
    .fetch_all(&mut *conn)
    .await?;
    let mut next_id = ids.into_iter();
    let mut stored: Vec<Option<i64>> = Vec::with_capacity(items.len());
    let mut cols = ItemColumns::default();
    for (item, ok) in items.iter().zip(&admitted) {
        let id = if *ok { next_id.next() } else { None };
        if let Some(id) = id {
            cols.push(id, item);
        }
        stored.push(id);
    }
    if !cols.id.is_empty() {
        sqlx::query(
            "INSERT INTO items (id, kind, expires_at, server_time, conversation, sender, tag, body) \
             OVERRIDING SYSTEM VALUE SELECT * FROM UNNEST($1::bigint[], $2::smallint[], \
             $3::bigint[], $4::bigint[], $5::bytea[], $6::text[], $7::bytea[], $8::bytea[])",
        )
        .bind(&cols.id)
        .bind(&cols.kind)
        .bind(&cols.expires_at)
        .bind(&cols.server_time)
        .bind(&cols.conversation)
        .bind(&cols.sender)
        .bind(&cols.tag)
        .bind(&cols.body)
        .execute(&mut *conn)
        .await?;
    }
    // Rows per device, in batch order.
    let mut per_device: std::collections::BTreeMap<i64, i64> = Default::default();
    for (item, id) in items.iter().zip(&stored) {
        if id.is_some() {
            for d in &item.recipients {
                *per_device.entry(*d).or_default() += 1;
            }
        }
    }
    let devices: Vec<i64> = per_device.keys().copied().collect();
    let counts: Vec<i64> = per_device.values().copied().collect();
    // Lock in id order (no deadlock between batches), then advance.
    sqlx::query("SELECT id FROM devices WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(&devices)
        .execute(&mut *conn)
        .await?;
    let ends: Vec<(i64, i64)> = sqlx::query_as(
        "UPDATE devices SET next_seq = devices.next_seq + x.n \
         FROM UNNEST($1::bigint[], $2::bigint[]) AS x(d, n) \
         WHERE devices.id = x.d RETURNING devices.id, devices.next_seq",
    )
    .bind(&devices)
    .bind(&counts)
    .fetch_all(&mut *conn)
    .await?;
    // Each device's first seq of this batch.
    let mut next: std::collections::BTreeMap<i64, i64> = ends
        .into_iter()
        .map(|(d, end)| (d, end - per_device.get(&d).copied().unwrap_or(0)))
        .collect();
    let (mut row_devices, mut row_seqs, mut row_items) = (Vec::new(), Vec::new(), Vec::new());
    let mut out = Vec::with_capacity(items.len());
    for (item, id) in items.iter().zip(&stored) {
        let Some(id) = *id else {
            out.push(StoredItem::Replay);
            continue;
        };
        let mut rows = Vec::with_capacity(item.recipients.len());
        for d in &item.recipients {
            // A device that does not exist has no counter: no row.
            if let Some(seq) = next.get_mut(d) {
                rows.push((*d, *seq));
                row_devices.push(*d);
                row_seqs.push(*seq);
                row_items.push(id);
                *seq += 1;
            }
        }
        out.push(StoredItem::Stored { item_id: id, rows });
    }
    sqlx::query(
        "INSERT INTO mailbox (device_id, seq, item_id) \
         SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[])",
    )
    .bind(&row_devices)
    .bind(&row_seqs)
    .bind(&row_items)
    .execute(&mut *conn)
    .await?;
    if !devices.is_empty() {
        let mut payload = devices
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        if payload.len() > MAX_PAYLOAD {
            payload = "*".into();
        }
        // Delivered by PostgreSQL only once this transaction commits.
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(MAILBOX_CHANNEL)
            .bind(payload)
            .execute(&mut *conn)
            .await?;
    }
    Ok(out)
}

/// Acks many `(device, seq)` mailbox rows at once, inside the caller's
/// transaction (the delivery writer's batch): removes those rows and each
/// item no mailbox holds any more; returns the rows removed. As
/// [`PgStore::ack`], the touched items are locked in id order first, so two
/// servers acking the last rows of one item never leave it behind.
///
/// # Errors
/// When the database fails; the caller rolls back.
pub async fn ack_rows_in(
    conn: &mut PgConnection,
    rows: &[(i64, i64)],
) -> Result<Vec<(i64, i64)>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let (devices, seqs): (Vec<i64>, Vec<i64>) = rows.iter().copied().unzip();
    sqlx::query(
        "SELECT id FROM items WHERE id IN (SELECT m.item_id FROM mailbox m \
         JOIN UNNEST($1::bigint[], $2::bigint[]) AS x(d, s) ON m.device_id = x.d AND m.seq = x.s) \
         ORDER BY id FOR UPDATE",
    )
    .bind(&devices)
    .bind(&seqs)
    .execute(&mut *conn)
    .await?;
    let deleted: Vec<(i64, i64, i64)> = sqlx::query_as(
        "DELETE FROM mailbox m USING UNNEST($1::bigint[], $2::bigint[]) AS x(d, s) \
         WHERE m.device_id = x.d AND m.seq = x.s RETURNING m.device_id, m.seq, m.item_id",
    )
    .bind(&devices)
    .bind(&seqs)
    .fetch_all(&mut *conn)
    .await?;
    let mut items: Vec<i64> = deleted.iter().map(|r| r.2).collect();
    items.sort_unstable();
    items.dedup();
    sqlx::query(
        "DELETE FROM items i WHERE i.id = ANY($1) \
         AND NOT EXISTS (SELECT 1 FROM mailbox m WHERE m.item_id = i.id)",
    )
    .bind(&items)
    .execute(&mut *conn)
    .await?;
    Ok(deleted.into_iter().map(|(d, s, _)| (d, s)).collect())
}

/// What one round of [`PgStore::sweep_expired`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PgSwept {
    /// Expired items (with their mailbox rows).
    pub items: u64,
    /// Expired replay hashes.
    pub seen: u64,
    /// Expired sessions.
    pub sessions: u64,
}

impl PgSwept {
    /// Whether a table had `limit` rows to delete (the caller runs another
    /// round).
    pub fn more(&self, limit: i64) -> bool {
        let limit = u64::try_from(limit).unwrap_or(0);
        self.items >= limit || self.seen >= limit || self.sessions >= limit
    }
}

impl PgStore {
    /// One round of retention: at most `limit` expired items (with their
    /// mailbox rows), replay hashes and sessions each, as of `now` (ms).
    /// Any server may run it at any time: rows another sweep (or an ack)
    /// holds are skipped (`FOR UPDATE SKIP LOCKED`), so sweepers never wait
    /// on each other, and each row is deleted once.
    ///
    /// # Errors
    /// When the database fails (that round deleted nothing).
    pub async fn sweep_expired(&self, now: i64, limit: i64) -> Result<PgSwept, sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        // Both deletions see the same snapshot; the foreign key from the
        // mailbox is checked at the end of the statement, by which time the
        // rows are gone.
        let items: Vec<i64> = sqlx::query_scalar(
            "WITH doomed AS (SELECT id FROM items WHERE expires_at <= $1 ORDER BY id LIMIT $2 \
             FOR UPDATE SKIP LOCKED), \
             rows AS (DELETE FROM mailbox WHERE item_id IN (SELECT id FROM doomed)) \
             DELETE FROM items WHERE id IN (SELECT id FROM doomed) RETURNING id",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let seen = sqlx::query(
            "DELETE FROM seen WHERE ctid IN (SELECT ctid FROM seen WHERE expires_at <= $1 \
             LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(now)
        .bind(limit)
        .execute(&mut *tx)
        .await?;
        let sessions = sqlx::query(
            "DELETE FROM sessions WHERE ctid IN (SELECT ctid FROM sessions WHERE expires_at <= $1 \
             LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(now)
        .bind(limit)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(PgSwept {
            items: u64::try_from(items.len()).unwrap_or(u64::MAX),
            seen: seen.rows_affected(),
            sessions: sessions.rows_affected(),
        })
    }
}
