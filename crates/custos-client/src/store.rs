//! The device's own state in SQLite: settings, chains, buffered items and
//! message history. (MLS state lives in its own file, see [`crate::mls`].)
//!
//! # Durability
//! Every write is a SQLite transaction in WAL mode with `synchronous=FULL`,
//! so it is on disk when the call returns; inside a
//! [`Store::transaction`], writes are on disk, all together, when it
//! commits. A sending chain is saved before the envelope it encrypted
//! leaves the device, so a crash can never make the device reuse a message
//! key or nonce. The one exception is [`Store::unsynced_transaction`], for what
//! the device followed of the log: it survives a crash of the process, and
//! a power loss can undo it only together with everything written after
//! it, so the device reads those log entries again.
//!
//! # Secrets at rest
//! Chain keys and history are stored in clear in the device's home directory
//! (mode 0700), as every messenger stores its history; full-disk encryption
//! of the device is out of scope. `secure_delete` is on, so what is deleted
//! (used and expired keys, purged history) is overwritten in the file.

use std::collections::BTreeMap;
use std::path::Path;

use custos_wire::frames::{Delivery, ItemKind};
use custos_wire::{ChainId, ConversationId};
use rusqlite::{Connection, OptionalExtension, params};

use crate::chain::{ChainKey, MessageKey, ReceivingChain, SendingChain};

/// A SQLite error from the device store.
#[derive(Debug, thiserror::Error)]
#[error("device store: {0}")]
pub struct StoreError(#[from] rusqlite::Error);

/// A stored message, received or sent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoredMessage {
    /// Message id (hex of the SHA-256 of the envelope).
    pub id: String,
    /// Conversation id (hex).
    pub conversation: String,
    /// Sender's account name.
    pub sender: String,
    /// Text body.
    pub text: String,
    /// Sender's clock, Unix ms.
    pub sent_at: u64,
    /// Service's acceptance time, Unix ms (0 for our own messages).
    pub server_time: u64,
    /// Position in the conversation's arrival order on this device.
    pub position: i64,
    /// Paths of the message's attachments saved on this device (filled by
    /// `receive`; empty elsewhere).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<String>,
    /// Attachments that could not be fetched or did not match what the
    /// message commits to, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachment_errors: Vec<String>,
}

/// Whether a stored message was received or sent by this device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From another member: waits for [`Store::take_unshown`].
    Incoming,
    /// Sent by this device: stored as already shown.
    Outgoing,
}

/// One row of the message history, as [`Store::insert_message`] writes it.
#[derive(Debug, Clone, Copy)]
pub struct NewMessage<'a> {
    /// Message id: the SHA-256 of the envelope.
    pub id: &'a [u8; 32],
    /// Its conversation.
    pub conversation: &'a ConversationId,
    /// Sender's account name (from the MLS credential, or this device's).
    pub sender: &'a str,
    /// Text body.
    pub text: &'a str,
    /// Sender's clock, Unix ms.
    pub sent_at: u64,
    /// Service's acceptance time, Unix ms.
    pub server_time: u64,
    /// The envelope as delivered or sent, kept for reports.
    pub envelope: &'a [u8],
    /// The encoded plaintext payload, kept for reports.
    pub payload: &'a [u8],
    /// The service's delivery tag, kept for reports.
    pub tag: &'a [u8],
    /// Received or sent.
    pub direction: Direction,
}

/// A receiving chain and who owns it.
#[derive(Debug, Clone)]
pub struct ReceivingChainRecord {
    /// The ratchet state.
    pub chain: ReceivingChain,
    /// Account name of the sender (from the MLS credential).
    pub sender: String,
    /// The sender's roster signature key.
    pub sender_key: [u8; 32],
}

/// A stored message's envelope, encoded payload and delivery tag.
pub type MessageMaterial = (Vec<u8>, Vec<u8>, Vec<u8>);

/// A stored message as a report reveals it.
#[derive(Debug)]
pub struct ReportMaterial {
    /// Conversation id bytes.
    pub conversation: Vec<u8>,
    /// Sender account.
    pub sender: String,
    /// Service acceptance time, Unix ms.
    pub server_time: u64,
    /// The envelope as delivered.
    pub envelope: Vec<u8>,
    /// The encoded payload (secret until reported).
    pub payload: zeroize::Zeroizing<Vec<u8>>,
    /// The delivery tag.
    pub tag: Vec<u8>,
}

/// The device store.
#[derive(Debug)]
pub struct Store {
    /// The connection; modules with tables of their own (notices) query it.
    pub(crate) conn: Connection,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS conversations (
    id BLOB PRIMARY KEY, created_at INTEGER NOT NULL, last_update_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sending_chains (
    conversation BLOB PRIMARY KEY, epoch INTEGER NOT NULL, leaf INTEGER NOT NULL,
    day INTEGER NOT NULL, seq INTEGER NOT NULL, next_gen INTEGER NOT NULL, ck BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS receiving_chains (
    conversation BLOB NOT NULL, epoch INTEGER NOT NULL, leaf INTEGER NOT NULL,
    day INTEGER NOT NULL, seq INTEGER NOT NULL, next_gen INTEGER NOT NULL, ck BLOB NOT NULL,
    skipped BLOB NOT NULL, sender TEXT NOT NULL, sender_key BLOB NOT NULL,
    PRIMARY KEY (conversation, epoch, leaf, day, seq));
CREATE TABLE IF NOT EXISTS pending (
    seq INTEGER PRIMARY KEY, kind INTEGER NOT NULL, conversation BLOB NOT NULL,
    sender TEXT NOT NULL, server_time INTEGER NOT NULL, body BLOB NOT NULL, tag BLOB NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS messages (
    position INTEGER PRIMARY KEY AUTOINCREMENT, id BLOB NOT NULL UNIQUE,
    conversation BLOB NOT NULL, sender TEXT NOT NULL, text TEXT NOT NULL,
    sent_at INTEGER NOT NULL, server_time INTEGER NOT NULL, envelope BLOB NOT NULL,
    payload BLOB NOT NULL, tag BLOB NOT NULL, outgoing INTEGER NOT NULL, shown INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS conversation_history (id BLOB PRIMARY KEY);
CREATE TABLE IF NOT EXISTS warrant_commitments (
    commitment BLOB PRIMARY KEY, log_index INTEGER NOT NULL, statement BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS unsealed_warrants (
    commitment BLOB PRIMARY KEY, log_index INTEGER NOT NULL, unsealed_at INTEGER NOT NULL,
    warrant BLOB NOT NULL, shown INTEGER NOT NULL);
";

/// A transaction of [`Store::unsynced_transaction`]: committed with
/// [`UnsyncedTransaction::commit`]; dropped, rolled back. Either way the
/// store syncs every commit again afterwards.
pub(crate) struct UnsyncedTransaction<'a> {
    store: &'a Store,
    tx: Option<rusqlite::Transaction<'a>>,
}

impl UnsyncedTransaction<'_> {
    /// Commits without waiting for the disk.
    pub(crate) fn commit(mut self) -> Result<(), StoreError> {
        let committed = self.tx.take().map_or(Ok(()), rusqlite::Transaction::commit);
        let restored = self.store.sync_every_commit();
        committed?;
        restored
    }
}

impl Drop for UnsyncedTransaction<'_> {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            drop(tx);
            if let Err(e) = self.store.sync_every_commit() {
                tracing::error!(error = %e, "device store: could not restore synced commits");
            }
        }
    }
}

/// Most items kept waiting for their chain announcement or epoch.
pub const MAX_PENDING: i64 = 10_000;

/// How long a write waits for another connection's transaction to end.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl Store {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // Deleted rows (used chain keys, expired chains, purged history) are
        // overwritten on disk, not only unlinked.
        conn.pragma_update(None, "secure_delete", "ON")?;
        // A second connection beside the first reads the log's state while
        // the device polls the log (`Device::prefetch_for`), and other
        // processes may open the store: a write that meets another's open
        // transaction waits for it instead of failing.
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self { conn })
    }

    /// Opens a write transaction on the store's connection. Every write
    /// made through this store until it ends (the store's own methods and
    /// the queries of modules with tables of their own) belongs to it: on
    /// [`rusqlite::Transaction::commit`] they reach the disk together, with
    /// one sync; dropped uncommitted (an error, a panic, a cancelled
    /// future), none of them happened. Transactions do not nest: opening a
    /// second one before the first ends fails. Hold it across no `.await`.
    pub(crate) fn transaction(&self) -> Result<rusqlite::Transaction<'_>, StoreError> {
        Ok(rusqlite::Transaction::new_unchecked(
            &self.conn,
            rusqlite::TransactionBehavior::Immediate,
        )?)
    }

    /// Opens a write transaction (as [`Store::transaction`]) whose commit
    /// does not wait for the disk, for state the device can take again from
    /// elsewhere (what it followed of the log). The commit is atomic and
    /// survives the process being killed (its pages are in the WAL file); a
    /// power loss may undo it until a later commit of this store syncs. Every
    /// ordinary commit syncs the whole WAL file, so an unsynced commit is on
    /// disk before, or together with, anything written after it: a power
    /// loss drops only a suffix of commits, never one from the middle.
    pub(crate) fn unsynced_transaction(&self) -> Result<UnsyncedTransaction<'_>, StoreError> {
        // SQLite refuses to change the level inside a transaction.
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        match self.transaction() {
            Ok(tx) => Ok(UnsyncedTransaction {
                store: self,
                tx: Some(tx),
            }),
            Err(e) => {
                self.sync_every_commit()?;
                Err(e)
            }
        }
    }

    /// Back to a sync per commit (the store's level).
    fn sync_every_commit(&self) -> Result<(), StoreError> {
        Ok(self.conn.pragma_update(None, "synchronous", "FULL")?)
    }

    /// Reads a setting.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// Reads a text setting.
    pub fn get_str(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.get(key)?.and_then(|v| String::from_utf8(v).ok()))
    }

    /// Writes a setting.
    pub fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// Deletes a setting.
    pub fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM meta WHERE key = ?1", [key])?;
        Ok(())
    }

    /// Records a conversation this device is in.
    pub fn add_conversation(&self, id: &ConversationId, now_ms: u64) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT OR IGNORE INTO conversations (id, created_at, last_update_ms) VALUES (?1, ?2, ?2)",
            params![id.0.as_slice(), to_i64(now_ms)],
        )?;
        self.conn.execute(
            "INSERT OR IGNORE INTO conversation_history (id) VALUES (?1)",
            [id.0.as_slice()],
        )?;
        Ok(())
    }

    /// Every conversation this device is or was in (for notices): those it
    /// is in, those it ever joined, and those it holds messages of.
    pub fn conversations_ever(
        &self,
    ) -> Result<std::collections::BTreeSet<ConversationId>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id FROM conversations UNION SELECT id FROM conversation_history
             UNION SELECT conversation FROM messages",
        )?;
        let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = std::collections::BTreeSet::new();
        for row in rows {
            if let Ok(id) = <[u8; 16]>::try_from(row?.as_slice()) {
                out.insert(ConversationId(id));
            }
        }
        Ok(out)
    }

    /// Forgets a conversation (after leaving or being removed).
    pub fn remove_conversation(&self, id: &ConversationId) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM conversations WHERE id = ?1", [id.0.as_slice()])?;
        self.conn.execute(
            "DELETE FROM sending_chains WHERE conversation = ?1",
            [id.0.as_slice()],
        )?;
        Ok(())
    }

    /// Whether the device holds a receiving chain in `id`.
    pub(crate) fn has_receiving_chains(&self, id: &ConversationId) -> Result<bool, StoreError> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM receiving_chains WHERE conversation = ?1)",
            [id.0.as_slice()],
            |r| r.get(0),
        )?)
    }

    /// Every conversation this device is in.
    pub fn conversations(&self) -> Result<Vec<ConversationId>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM conversations ORDER BY created_at, id")?;
        let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for row in rows {
            if let Ok(id) = <[u8; 16]>::try_from(row?.as_slice()) {
                out.push(ConversationId(id));
            }
        }
        Ok(out)
    }

    /// When this device last committed a self-update in `id` (Unix ms).
    pub fn last_update(&self, id: &ConversationId) -> Result<Option<u64>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT last_update_ms FROM conversations WHERE id = ?1",
                [id.0.as_slice()],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .map(from_i64))
    }

    /// Records a self-update.
    pub fn set_last_update(&self, id: &ConversationId, now_ms: u64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE conversations SET last_update_ms = ?2 WHERE id = ?1",
            params![id.0.as_slice(), to_i64(now_ms)],
        )?;
        Ok(())
    }

    /// The current sending chain of a conversation.
    pub fn sending_chain(&self, conv: &ConversationId) -> Result<Option<SendingChain>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT epoch, leaf, day, seq, next_gen, ck FROM sending_chains WHERE conversation = ?1",
                [conv.0.as_slice()],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, Vec<u8>>(5)?,
                    ))
                },
            )
            .optional()?
            .and_then(|(epoch, leaf, day, seq, next_gen, ck)| {
                Some(SendingChain {
                    conversation: *conv,
                    id: ChainId {
                        epoch: from_i64(epoch),
                        sender_leaf: u32::try_from(leaf).ok()?,
                        day: u32::try_from(day).ok()?,
                        seq: u32::try_from(seq).ok()?,
                    },
                    next_generation: u32::try_from(next_gen).ok()?,
                    chain_key: ChainKey::from_bytes(ck.as_slice().try_into().ok()?),
                })
            }))
    }

    /// Saves (replaces) the sending chain of its conversation. Durable on return.
    pub fn save_sending_chain(&self, chain: &SendingChain) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO sending_chains (conversation, epoch, leaf, day, seq, next_gen, ck)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(conversation) DO UPDATE SET epoch = excluded.epoch, leaf = excluded.leaf,
               day = excluded.day, seq = excluded.seq, next_gen = excluded.next_gen, ck = excluded.ck",
            params![
                chain.conversation.0.as_slice(),
                to_i64(chain.id.epoch),
                chain.id.sender_leaf,
                chain.id.day,
                chain.id.seq,
                chain.next_generation,
                chain.chain_key.expose().as_slice()
            ],
        )?;
        Ok(())
    }

    /// Forgets the sending chain of a conversation.
    pub fn clear_sending_chain(&self, conv: &ConversationId) -> Result<(), StoreError> {
        self.conn.execute(
            "DELETE FROM sending_chains WHERE conversation = ?1",
            [conv.0.as_slice()],
        )?;
        Ok(())
    }

    /// A receiving chain by id.
    pub fn receiving_chain(
        &self,
        conv: &ConversationId,
        id: &ChainId,
    ) -> Result<Option<ReceivingChainRecord>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT next_gen, ck, skipped, sender, sender_key FROM receiving_chains
                 WHERE conversation = ?1 AND epoch = ?2 AND leaf = ?3 AND day = ?4 AND seq = ?5",
                params![
                    conv.0.as_slice(),
                    to_i64(id.epoch),
                    id.sender_leaf,
                    id.day,
                    id.seq
                ],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Vec<u8>>(4)?,
                    ))
                },
            )
            .optional()?
            .and_then(|(next_gen, ck, skipped, sender, sender_key)| {
                Some(ReceivingChainRecord {
                    chain: ReceivingChain {
                        conversation: *conv,
                        id: *id,
                        next_generation: u32::try_from(next_gen).ok()?,
                        chain_key: ChainKey::from_bytes(ck.as_slice().try_into().ok()?),
                        skipped: decode_skipped(&skipped)?,
                    },
                    sender,
                    sender_key: sender_key.as_slice().try_into().ok()?,
                })
            }))
    }

    /// Saves a receiving chain. Durable on return.
    pub fn save_receiving_chain(&self, rec: &ReceivingChainRecord) -> Result<(), StoreError> {
        let c = &rec.chain;
        self.conn.execute(
            "INSERT INTO receiving_chains
               (conversation, epoch, leaf, day, seq, next_gen, ck, skipped, sender, sender_key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT(conversation, epoch, leaf, day, seq) DO UPDATE SET
               next_gen = excluded.next_gen, ck = excluded.ck, skipped = excluded.skipped",
            params![
                c.conversation.0.as_slice(),
                to_i64(c.id.epoch),
                c.id.sender_leaf,
                c.id.day,
                c.id.seq,
                c.next_generation,
                c.chain_key.expose().as_slice(),
                encode_skipped(&c.skipped),
                rec.sender,
                rec.sender_key.as_slice()
            ],
        )?;
        Ok(())
    }

    /// Keeps an item that cannot be processed yet (its chain or epoch is not
    /// known). Returns false if the buffer is full and the item was dropped.
    pub fn buffer(&self, d: &Delivery) -> Result<bool, StoreError> {
        let count: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM pending", [], |r| r.get(0))?;
        if count >= MAX_PENDING {
            return Ok(false);
        }
        self.conn.execute(
            "INSERT OR IGNORE INTO pending (seq, kind, conversation, sender, server_time, body, tag)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                to_i64(d.seq),
                d.kind.to_byte(),
                d.conversation.0.as_slice(),
                d.sender,
                to_i64(d.server_time),
                d.body,
                d.tag
            ],
        )?;
        Ok(true)
    }

    /// Buffered items, oldest first.
    pub fn buffered(&self) -> Result<Vec<Delivery>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, kind, conversation, sender, server_time, body, tag FROM pending ORDER BY seq",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, u8>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Vec<u8>>(5)?,
                r.get::<_, Vec<u8>>(6)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, kind, conv, sender, server_time, body, tag) = row?;
            let (Ok(kind), Ok(conv)) = (
                ItemKind::from_byte(kind),
                <[u8; 16]>::try_from(conv.as_slice()),
            ) else {
                continue;
            };
            out.push(Delivery {
                seq: from_i64(seq),
                kind,
                conversation: ConversationId(conv),
                sender,
                server_time: from_i64(server_time),
                body,
                tag,
            });
        }
        Ok(out)
    }

    /// Drops a buffered item (processed, or given up on).
    pub fn unbuffer(&self, seq: u64) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM pending WHERE seq = ?1", [to_i64(seq)])?;
        Ok(())
    }

    /// Stores a message. Returns false if a message with that id is already
    /// stored (a duplicate delivery).
    pub fn insert_message(&self, m: &NewMessage<'_>) -> Result<bool, StoreError> {
        // A device's own message needs no showing: it is stored as shown.
        let outgoing = m.direction == Direction::Outgoing;
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO messages
               (id, conversation, sender, text, sent_at, server_time, envelope, payload, tag, outgoing, shown)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
            params![
                m.id.as_slice(),
                m.conversation.0.as_slice(),
                m.sender,
                m.text,
                to_i64(m.sent_at),
                to_i64(m.server_time),
                m.envelope,
                m.payload,
                m.tag,
                outgoing
            ],
        )?;
        Ok(n == 1)
    }

    /// Whether a message id is already stored.
    pub fn has_message(&self, id: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM messages WHERE id = ?1",
                [id.as_slice()],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Received messages not yet shown to the user, in arrival order; marks them shown.
    pub fn take_unshown(&self) -> Result<Vec<StoredMessage>, StoreError> {
        let out = self.query_messages("WHERE shown = 0", [])?;
        self.conn
            .execute("UPDATE messages SET shown = 1 WHERE shown = 0", [])?;
        Ok(out)
    }

    /// Every message of a conversation, in arrival order.
    pub fn history(&self, conv: &ConversationId) -> Result<Vec<StoredMessage>, StoreError> {
        self.query_messages("WHERE conversation = ?1", [conv.0.as_slice()])
    }

    /// The envelope, payload and tag of a stored message, for reports.
    pub fn message_material(&self, id: &[u8; 32]) -> Result<Option<MessageMaterial>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT envelope, payload, tag FROM messages WHERE id = ?1",
                [id.as_slice()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?)
    }

    /// Everything a report reveals about a stored message: conversation,
    /// sender, service time, envelope, encoded payload and tag.
    pub fn report_material(&self, id: &[u8; 32]) -> Result<Option<ReportMaterial>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT conversation, sender, server_time, envelope, payload, tag FROM messages WHERE id = ?1",
                [id.as_slice()],
                |r| {
                    Ok(ReportMaterial {
                        conversation: r.get(0)?,
                        sender: r.get(1)?,
                        server_time: from_i64(r.get(2)?),
                        envelope: r.get(3)?,
                        payload: zeroize::Zeroizing::new(r.get(4)?),
                        tag: r.get(5)?,
                    })
                },
            )
            .optional()?)
    }

    fn query_messages<P: rusqlite::Params>(
        &self,
        filter: &str,
        p: P,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let sql = format!(
            "SELECT id, conversation, sender, text, sent_at, server_time, position FROM messages {filter} ORDER BY position"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(p, |r| {
            Ok(StoredMessage {
                id: hex::encode(r.get::<_, Vec<u8>>(0)?),
                conversation: hex::encode(r.get::<_, Vec<u8>>(1)?),
                sender: r.get(2)?,
                text: r.get(3)?,
                sent_at: from_i64(r.get(4)?),
                server_time: from_i64(r.get(5)?),
                position: r.get(6)?,
                attachments: Vec::new(),
                attachment_errors: Vec::new(),
            })
        })?;
        rows.collect::<Result<Vec<_>, _>>().map_err(StoreError)
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn from_i64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn encode_skipped(skipped: &BTreeMap<u32, MessageKey>) -> Vec<u8> {
    let mut out = Vec::with_capacity(skipped.len() * 48);
    for (g, k) in skipped {
        out.extend_from_slice(&g.to_be_bytes());
        out.extend_from_slice(&k.key);
        out.extend_from_slice(&k.nonce);
    }
    out
}

fn decode_skipped(bytes: &[u8]) -> Option<BTreeMap<u32, MessageKey>> {
    if !bytes.len().is_multiple_of(48) {
        return None;
    }
    let mut out = BTreeMap::new();
    for chunk in bytes.chunks_exact(48) {
        let (g, rest) = chunk.split_at(4);
        let (key, nonce) = rest.split_at(32);
        out.insert(
            u32::from_be_bytes(g.try_into().ok()?),
            MessageKey {
                key: key.try_into().ok()?,
                nonce: nonce.try_into().ok()?,
            },
        );
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test")]

    use super::Store;

    fn synchronous(store: &Store) -> i64 {
        store
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn an_unsynced_commit_is_kept_and_later_commits_sync_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let store = Store::open(&path).unwrap();
        assert_eq!(synchronous(&store), 2, "FULL");
        let tx = store.unsynced_transaction().unwrap();
        assert_eq!(synchronous(&store), 1, "NORMAL inside");
        store.set("log/cursor", b"7").unwrap();
        tx.commit().unwrap();
        assert_eq!(synchronous(&store), 2, "FULL after the commit");
        store.set("other", b"x").unwrap();
        drop(store);
        // Closed without a sync of its own: the commit is in the file.
        let store = Store::open(&path).unwrap();
        assert_eq!(store.get("log/cursor").unwrap().as_deref(), Some(&b"7"[..]));
    }

    #[test]
    fn a_dropped_unsynced_transaction_writes_nothing_and_commits_sync_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store.db")).unwrap();
        {
            let _tx = store.unsynced_transaction().unwrap();
            store.set("log/cursor", b"7").unwrap();
        }
        assert_eq!(store.get("log/cursor").unwrap(), None);
        assert_eq!(synchronous(&store), 2, "FULL after the rollback");
        // A second one while one is open is refused, and leaves FULL.
        let tx = store.transaction().unwrap();
        assert!(store.unsynced_transaction().is_err());
        tx.commit().unwrap();
        assert_eq!(synchronous(&store), 2);
    }
}
