//! Interceptions in force, as the single writer applies them: which
//! conversation-days are kept, and the copies it takes.
//!
//! # Durability
//! An interception and the copies of the items already stored are written
//! in one writer transaction; from the commit on, every envelope and chain
//! announcement of a held conversation-day is copied into `kept_items` in
//! the same transaction that stores it. So no item of a held day can be
//! acked or expire between "accepted" and "kept", and a crash keeps either
//! both or neither. Kept copies leave with the retention sweep at
//! `keep_until` (the warrant's not-after plus the grace), never earlier.

use std::collections::HashMap;
use std::sync::Arc;

use custos_wire::ConversationId;
use custos_wire::announcement::ChainAnnouncement;
use custos_wire::envelope::Envelope;
use custos_wire::frames::ItemKind;
use sqlx::Row as _;
use sqlx::sqlite::SqliteConnection;

use crate::delivery::writer::NewItem;

/// One interception's hold on its target conversations.
#[derive(Debug, Clone)]
pub(crate) struct Hold {
    /// The warrant's logged commitment.
    pub commitment: [u8; 32],
    /// First warranted UTC day.
    pub first_day: u32,
    /// Last warranted UTC day.
    pub last_day: u32,
    /// When kept copies are deleted, Unix ms.
    pub keep_until: u64,
}

/// A new interception, checked and logged, for the writer to apply.
#[derive(Debug, Clone)]
pub(crate) struct NewInterception {
    pub hold: Hold,
    pub authority: String,
    pub authority_key: [u8; 32],
    pub targets: Vec<ConversationId>,
    pub not_after: u64,
    pub log_index: u64,
    pub started_at: u64,
}

/// A just-stored item: its id, the item, its `(device, seq)` mailbox rows.
pub(crate) type StoredRow = (i64, Arc<NewItem>, Vec<(i64, i64)>);

/// Every hold in force, by conversation.
#[derive(Debug, Default)]
pub(crate) struct Holds {
    by_conversation: HashMap<ConversationId, Vec<Hold>>,
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Holds {
    /// The holds stored in the database that are still in force at `now_ms`.
    pub async fn load(conn: &mut SqliteConnection, now_ms: u64) -> Result<Self, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT i.commitment, i.first_day, i.last_day, i.keep_until, t.conversation \
             FROM interceptions i JOIN interception_targets t ON t.commitment = i.commitment \
             WHERE i.keep_until > ?",
        )
        .bind(i64_of(now_ms))
        .fetch_all(conn)
        .await?;
        let mut holds = Self::default();
        for row in rows {
            let commitment: Vec<u8> = row.try_get(0)?;
            let conversation: Vec<u8> = row.try_get(4)?;
            let (Ok(commitment), Ok(conversation)) = (
                <[u8; 32]>::try_from(commitment.as_slice()),
                <[u8; 16]>::try_from(conversation.as_slice()),
            ) else {
                continue;
            };
            let hold = Hold {
                commitment,
                first_day: u32::try_from(row.try_get::<i64, _>(1)?).unwrap_or(0),
                last_day: u32::try_from(row.try_get::<i64, _>(2)?).unwrap_or(0),
                keep_until: u64_of(row.try_get(3)?),
            };
            holds.add(&[ConversationId(conversation)], hold);
        }
        Ok(holds)
    }

    fn add(&mut self, targets: &[ConversationId], hold: Hold) {
        for t in targets {
            let list = self.by_conversation.entry(*t).or_default();
            if !list.iter().any(|h| h.commitment == hold.commitment) {
                list.push(hold.clone());
            }
        }
    }

    /// Drops the holds whose keeping ended at or before `now_ms`.
    pub fn prune(&mut self, now_ms: u64) {
        self.by_conversation.retain(|_, list| {
            list.retain(|h| h.keep_until > now_ms);
            !list.is_empty()
        });
    }

    fn covering(&self, conversation: &ConversationId, day: u32) -> Vec<&Hold> {
        self.by_conversation
            .get(conversation)
            .map(|list| {
                list.iter()
                    .filter(|h| (h.first_day..=h.last_day).contains(&day))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Copies every just-stored item of a held conversation-day (`stored`:
    /// item id, item).
    pub async fn keep_stored(
        &self,
        conn: &mut SqliteConnection,
        stored: &[StoredRow],
    ) -> Result<(), sqlx::Error> {
        remember_announcements(conn, stored).await?;
        if self.by_conversation.is_empty() {
            return Ok(());
        }
        for (id, item, _) in stored {
            if !self.by_conversation.contains_key(&item.conversation) {
                continue;
            }
            let Some(day) = item_day(item.kind, &item.body) else {
                continue;
            };
            for hold in self.covering(&item.conversation, day) {
                let sender_key: Vec<u8> =
                    sqlx::query_scalar("SELECT identity_key FROM accounts WHERE id = ?")
                        .bind(item.sender_account)
                        .fetch_one(&mut *conn)
                        .await?;
                insert_kept(
                    conn,
                    hold,
                    &Kept {
                        item_id: *id,
                        kind: item.kind.to_byte(),
                        conversation: item.conversation,
                        day,
                        sender: item.sender_name.to_string(),
                        sender_key,
                        server_time: item.server_time,
                        tag: item.tag.clone(),
                        body: item.body.to_vec(),
                    },
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Applies a new interception: its rows, copies of the items of its
    /// conversation-days still stored, and its hold. Returns how many items
    /// were already stored and are now kept. Applying it twice is harmless.
    pub async fn intercept(
        &mut self,
        conn: &mut SqliteConnection,
        new: NewInterception,
    ) -> Result<u64, sqlx::Error> {
        let h = &new.hold;
        sqlx::query(
            "INSERT OR IGNORE INTO interceptions (commitment, authority, authority_key, first_day, \
             last_day, not_after, keep_until, log_index, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(h.commitment.to_vec())
        .bind(&new.authority)
        .bind(new.authority_key.to_vec())
        .bind(i64::from(h.first_day))
        .bind(i64::from(h.last_day))
        .bind(i64_of(new.not_after))
        .bind(i64_of(h.keep_until))
        .bind(i64_of(new.log_index))
        .bind(i64_of(new.started_at))
        .execute(&mut *conn)
        .await?;
        let mut kept = 0;
        for t in &new.targets {
            sqlx::query(
                "INSERT OR IGNORE INTO interception_targets (commitment, conversation) VALUES (?, ?)",
            )
            .bind(h.commitment.to_vec())
            .bind(t.0.to_vec())
            .execute(&mut *conn)
            .await?;
            let rows = sqlx::query(
                "SELECT i.id, i.kind, i.server_time, i.sender, i.tag, i.body, a.identity_key \
                 FROM items i JOIN accounts a ON a.name = i.sender \
                 WHERE i.conversation = ? AND i.kind IN (?, ?) ORDER BY i.id",
            )
            .bind(t.0.to_vec())
            .bind(i64::from(ItemKind::Envelope.to_byte()))
            .bind(i64::from(ItemKind::Announcement.to_byte()))
            .fetch_all(&mut *conn)
            .await?;
            for row in rows {
                let kind: i64 = row.try_get(1)?;
                let body: Vec<u8> = row.try_get(5)?;
                let Some(kind) = u8::try_from(kind)
                    .ok()
                    .and_then(|b| ItemKind::from_byte(b).ok())
                else {
                    continue;
                };
                let Some(day) = item_day(kind, &body) else {
                    continue;
                };
                if !(h.first_day..=h.last_day).contains(&day) {
                    continue;
                }
                kept += insert_kept(
                    conn,
                    h,
                    &Kept {
                        item_id: row.try_get(0)?,
                        kind: kind.to_byte(),
                        conversation: *t,
                        day,
                        sender: row.try_get(3)?,
                        sender_key: row.try_get(6)?,
                        server_time: u64_of(row.try_get(2)?),
                        tag: row.try_get(4)?,
                        body,
                    },
                )
                .await?;
            }
        }
        kept += keep_recent_announcements(conn, &new).await?;
        self.add(&new.targets, new.hold);
        Ok(kept)
    }
}

/// Milliseconds in a day.
const MS_PER_DAY: u64 = 86_400_000;

/// Remembers every just-stored chain announcement until the end of the day
/// after its chain's day (see the schema).
async fn remember_announcements(
    conn: &mut SqliteConnection,
    stored: &[StoredRow],
) -> Result<(), sqlx::Error> {
    for (id, item, _) in stored {
        if item.kind != ItemKind::Announcement {
            continue;
        }
        let Some(day) = item_day(item.kind, &item.body) else {
            continue;
        };
        let keep_until = (u64::from(day) + 2).saturating_mul(MS_PER_DAY);
        sqlx::query(
            "INSERT OR IGNORE INTO recent_announcements (item_id, conversation, day, sender, \
             server_time, body, keep_until) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(*id)
        .bind(item.conversation.0.to_vec())
        .bind(i64::from(day))
        .bind(item.sender_name.to_string())
        .bind(i64_of(item.server_time))
        .bind(item.body.to_vec())
        .bind(i64_of(keep_until))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Keeps the remembered announcements of a new interception's
/// conversation-days (those already acked included).
async fn keep_recent_announcements(
    conn: &mut SqliteConnection,
    new: &NewInterception,
) -> Result<u64, sqlx::Error> {
    let h = &new.hold;
    let mut kept = 0;
    for t in &new.targets {
        let rows = sqlx::query(
            "SELECT r.item_id, r.day, r.sender, r.server_time, r.body, a.identity_key \
             FROM recent_announcements r JOIN accounts a ON a.name = r.sender \
             WHERE r.conversation = ? AND r.day BETWEEN ? AND ? ORDER BY r.item_id",
        )
        .bind(t.0.to_vec())
        .bind(i64::from(h.first_day))
        .bind(i64::from(h.last_day))
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            kept += insert_kept(
                conn,
                h,
                &Kept {
                    item_id: row.try_get(0)?,
                    kind: ItemKind::Announcement.to_byte(),
                    conversation: *t,
                    day: u32::try_from(row.try_get::<i64, _>(1)?).unwrap_or(0),
                    sender: row.try_get(2)?,
                    sender_key: row.try_get(5)?,
                    server_time: u64_of(row.try_get(3)?),
                    tag: Vec::new(),
                    body: row.try_get(4)?,
                },
            )
            .await?;
        }
    }
    Ok(kept)
}

/// One kept copy.
struct Kept {
    item_id: i64,
    kind: u8,
    conversation: ConversationId,
    day: u32,
    sender: String,
    sender_key: Vec<u8>,
    server_time: u64,
    tag: Vec<u8>,
    body: Vec<u8>,
}

async fn insert_kept(
    conn: &mut SqliteConnection,
    hold: &Hold,
    k: &Kept,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "INSERT OR IGNORE INTO kept_items (commitment, item_id, kind, conversation, day, sender, \
         sender_key, server_time, tag, body, keep_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(hold.commitment.to_vec())
    .bind(k.item_id)
    .bind(i64::from(k.kind))
    .bind(k.conversation.0.to_vec())
    .bind(i64::from(k.day))
    .bind(&k.sender)
    .bind(&k.sender_key)
    .bind(i64_of(k.server_time))
    .bind(&k.tag)
    .bind(&k.body)
    .bind(i64_of(hold.keep_until))
    .execute(conn)
    .await?
    .rows_affected())
}

/// The UTC day of the chain an envelope or announcement belongs to; `None`
/// for other kinds or bytes that do not decode.
pub(crate) fn item_day(kind: ItemKind, body: &[u8]) -> Option<u32> {
    match kind {
        ItemKind::Envelope => Envelope::decode(body).ok().map(|e| e.header.chain.day),
        ItemKind::Announcement => ChainAnnouncement::decode(body).ok().map(|a| a.chain.day),
        _ => None,
    }
}

/// Deletes kept copies and interceptions whose keeping ended at `now_ms`.
pub(crate) async fn sweep(conn: &mut SqliteConnection, now_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM recent_announcements WHERE keep_until <= ?")
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM kept_items WHERE keep_until <= ?")
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "DELETE FROM interception_targets WHERE commitment IN \
         (SELECT commitment FROM interceptions WHERE keep_until <= ?)",
    )
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM interceptions WHERE keep_until <= ?")
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
