//! Interceptions on PostgreSQL, for any number of servers on one database:
//! the interception's transaction, the copies every send batch takes of
//! the items of held conversation-days, and their sweep. The semantics are
//! those of the SQLite writer's [`super::holds`]: from an interception's
//! commit on, every envelope and chain announcement of a held
//! conversation-day is copied into `kept_items` in the transaction that
//! stores it; the interception itself copies the items of its
//! conversation-days still stored, and the remembered announcements
//! (`recent_announcements`, acked ones included).
//!
//! # No gap across servers
//! No server keeps holds in memory: each send batch reads the holds of its
//! conversations from the database inside its own transaction
//! ([`keep_stored`]: one indexed query, `interception_targets` by
//! conversation joined to `interceptions` still in force). What makes that
//! read race-free is the conversation row lock:
//!
//! - A send batch locks the rows of its conversations `FOR SHARE` (in id
//!   order) before anything else, and reads the holds in a later statement.
//! - The interception ([`intercept`]) locks the rows of its target
//!   conversations `FOR UPDATE` (in id order) before it inserts anything or
//!   reads any item.
//!
//! The two locks conflict, so for each target conversation one of them
//! waits for the other's commit. If the batch locked first, it commits
//! before the interception's later statements take their snapshots (each
//! statement sees what committed before it began, at `READ COMMITTED`): its
//! items are already stored, and the interception copies them (and its
//! announcements, remembered in the same batch). If the interception
//! locked first, the batch's lock waits for the interception's commit and
//! its read of the holds, a later statement, sees the interception: the
//! batch copies its own items. An item of a held day is therefore kept
//! exactly once (`UNIQUE (commitment, item_id)`), whichever server stored
//! it and whichever registered the interception.
//!
//! A target conversation that does not exist yet has no row to lock: its
//! creation and the interception both take a transaction advisory lock on
//! the conversation's id first ([`lock_creations`]), so the conversation is
//! either created before the interception takes its row lock or only after
//! the interception has committed, when every batch of it sees the hold.
//!
//! Locks are taken in the order advisory locks, conversations, interception
//! rows (in commitment order, [`keep_in`]), so interceptions, batches and
//! the sweep never wait on one another in a cycle.
//!
//! Liveness, not safety: PostgreSQL lets a new `FOR SHARE` locker join the
//! share lockers already holding a row even while a `FOR UPDATE` waits, so
//! an interception waits until the batches of its conversations on all
//! servers leave a gap (they do between batches; batches are short). What
//! is stored meanwhile is copied by the interception.
//!
//! # Durability
//! The interception, its targets and its copies commit together, and the
//! writer answers only after `COMMIT`; a batch's copies commit with its
//! items. A failure rolls back both.

use std::collections::{BTreeMap, HashMap};

use custos_wire::frames::ItemKind;
use sqlx::PgConnection;

use super::holds::{NewInterception, item_day};
use crate::delivery::writer::NewItem;
use crate::store::pg_conversations::lock_creations;
use crate::store::pg_interceptions::{NewKept, keep_in};
use crate::store::postgres::PgStore;

/// Milliseconds in a day.
const MS_PER_DAY: u64 = 86_400_000;
/// Expired interceptions one sweep deletes at most (the rest go next time).
const SWEEP_INTERCEPTIONS: i64 = 64;

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A row of a batch's holds query: commitment, first day, last day,
/// keep-until, target conversation.
type HoldRow = (Vec<u8>, i64, i64, i64, Vec<u8>);

/// One interception in force over some of a batch's conversations.
struct PgHold {
    first: i64,
    last: i64,
    keep_until: i64,
    /// Those of the batch's conversations it targets.
    targets: Vec<Vec<u8>>,
}

impl PgHold {
    fn holds(&self, conversation: &[u8; 16]) -> bool {
        self.targets.iter().any(|t| t.as_slice() == conversation)
    }
}

/// An item a batch just stored: its id, the item, its chain's day.
struct Dated<'a> {
    id: i64,
    item: &'a NewItem,
    day: u32,
}

/// Keeps, on `conn` (a send batch's open transaction, which already holds
/// its conversations `FOR SHARE` and has stored `stored`: item id, item),
/// a copy of every envelope and chain announcement of a held
/// conversation-day, under each interception in force that holds it, and
/// remembers every announcement until the end of the day after its chain's
/// day. Items with id 0 (stored for no device) are skipped, as on SQLite.
///
/// # Errors
/// When the database fails: the batch must then fail as a whole, or an
/// item of a held day could be stored without its copy.
pub(crate) async fn keep_stored(
    conn: &mut PgConnection,
    stored: &[(i64, &NewItem)],
) -> Result<(), sqlx::Error> {
    let held_kind = |k: ItemKind| matches!(k, ItemKind::Envelope | ItemKind::Announcement);
    let candidates: Vec<(i64, &NewItem)> = stored
        .iter()
        .filter(|(id, item)| *id != 0 && held_kind(item.kind))
        .copied()
        .collect();
    if candidates.is_empty() {
        return Ok(());
    }
    // Only announcements are decoded when nothing is held.
    let announced = dated(
        candidates
            .iter()
            .filter(|(_, item)| item.kind == ItemKind::Announcement),
    );
    remember_announcements(conn, &announced).await?;
    let mut convs: Vec<&[u8]> = candidates
        .iter()
        .map(|(_, item)| item.conversation.0.as_slice())
        .collect();
    convs.sort_unstable();
    convs.dedup();
    let earliest = candidates
        .iter()
        .map(|(_, item)| item.server_time)
        .min()
        .unwrap_or(0);
    let rows: Vec<HoldRow> = sqlx::query_as(
        "SELECT i.commitment, i.first_day, i.last_day, i.keep_until, t.conversation \
         FROM interception_targets t JOIN interceptions i ON i.commitment = t.commitment \
         WHERE t.conversation = ANY($1) AND i.keep_until > $2",
    )
    .bind(&convs)
    .bind(i64_of(earliest))
    .fetch_all(&mut *conn)
    .await?;
    if rows.is_empty() {
        return Ok(());
    }
    // By commitment, in order: the interception rows are locked in that
    // order by `keep_in`, the same on every server.
    let mut holds: BTreeMap<Vec<u8>, PgHold> = BTreeMap::new();
    for (commitment, first, last, keep_until, conversation) in rows {
        holds
            .entry(commitment)
            .or_insert_with(|| PgHold {
                first,
                last,
                keep_until,
                targets: Vec::new(),
            })
            .targets
            .push(conversation);
    }
    let targeted = |item: &NewItem| holds.values().any(|h| h.holds(&item.conversation.0));
    let in_held = dated(candidates.iter().filter(|(_, item)| targeted(item)));
    let keys = sender_keys(conn, &in_held).await?;
    for (commitment, hold) in &holds {
        let Ok(commitment) = <[u8; 32]>::try_from(commitment.as_slice()) else {
            continue;
        };
        let mut kept = Vec::new();
        for d in &in_held {
            let day = i64::from(d.day);
            if day < hold.first || day > hold.last || !hold.holds(&d.item.conversation.0) {
                continue;
            }
            let sender_key = keys
                .get(&d.item.sender_account)
                .ok_or(sqlx::Error::RowNotFound)?;
            kept.push(NewKept {
                item_id: d.id,
                kind: i16::from(d.item.kind.to_byte()),
                conversation: d.item.conversation.0.as_slice(),
                day,
                sender: &d.item.sender_name,
                sender_key,
                server_time: i64_of(d.item.server_time),
                tag: &d.item.tag,
                body: &d.item.body,
                keep_until: hold.keep_until,
            });
        }
        if !kept.is_empty() {
            keep_in(conn, &commitment, &kept).await?;
        }
    }
    Ok(())
}

/// The items of `items` (id, item) with their chain's day; those whose
/// body does not decode have none and are left out.
fn dated<'a, 'b>(items: impl Iterator<Item = &'b (i64, &'a NewItem)>) -> Vec<Dated<'a>>
where
    'a: 'b,
{
    items
        .filter_map(|(id, item)| {
            item_day(item.kind, &item.body).map(|day| Dated { id: *id, item, day })
        })
        .collect()
}

/// The identity keys of the senders of `dated`, by account id.
async fn sender_keys(
    conn: &mut PgConnection,
    dated: &[Dated<'_>],
) -> Result<HashMap<i64, Vec<u8>>, sqlx::Error> {
    let mut ids: Vec<i64> = dated.iter().map(|d| d.item.sender_account).collect();
    ids.sort_unstable();
    ids.dedup();
    let rows: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT id, identity_key FROM accounts WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await?;
    Ok(rows.into_iter().collect())
}

/// Remembers every just-stored chain announcement until the end of the day
/// after its chain's day, acked or not (the schema's `recent_announcements`),
/// so that an interception starting later that day can still open the
/// chains announced earlier.
async fn remember_announcements(
    conn: &mut PgConnection,
    announced: &[Dated<'_>],
) -> Result<(), sqlx::Error> {
    let ann = announced;
    if ann.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = ann.iter().map(|d| d.id).collect();
    let convs: Vec<&[u8]> = ann
        .iter()
        .map(|d| d.item.conversation.0.as_slice())
        .collect();
    let days: Vec<i64> = ann.iter().map(|d| i64::from(d.day)).collect();
    let senders: Vec<&str> = ann.iter().map(|d| d.item.sender_name.as_ref()).collect();
    let times: Vec<i64> = ann.iter().map(|d| i64_of(d.item.server_time)).collect();
    let bodies: Vec<&[u8]> = ann.iter().map(|d| d.item.body.as_ref()).collect();
    let until: Vec<i64> = ann
        .iter()
        .map(|d| i64_of((u64::from(d.day) + 2).saturating_mul(MS_PER_DAY)))
        .collect();
    sqlx::query(
        "INSERT INTO recent_announcements (item_id, conversation, day, sender, server_time, \
         body, keep_until) SELECT * FROM UNNEST($1::bigint[], $2::bytea[], $3::bigint[], \
         $4::text[], $5::bigint[], $6::bytea[], $7::bigint[]) ON CONFLICT (item_id) DO NOTHING",
    )
    .bind(&ids)
    .bind(&convs)
    .bind(&days)
    .bind(&senders)
    .bind(&times)
    .bind(&bodies)
    .bind(&until)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A stored item or remembered announcement that [`intercept`] copies.
#[derive(sqlx::FromRow)]
struct Found {
    id: i64,
    kind: i16,
    conversation: Vec<u8>,
    /// The chain's day (0 until decoded, for a stored item).
    day: i64,
    sender: String,
    sender_key: Vec<u8>,
    server_time: i64,
    tag: Vec<u8>,
    body: Vec<u8>,
}

/// Applies a new interception in one transaction: its row and targets, a
/// copy of every envelope and announcement of its conversation-days still
/// stored, and of the remembered announcements of those days; answered
/// (with how many copies are new) only after `COMMIT`. See the module docs
/// for why no item accepted on any server meanwhile is missed. Applying it
/// again (the same commitment) adds nothing twice.
///
/// # Errors
/// When the database fails; nothing of the interception is then stored.
pub(crate) async fn intercept(store: &PgStore, new: &NewInterception) -> Result<u64, sqlx::Error> {
    let h = &new.hold;
    let mut targets: Vec<[u8; 16]> = new.targets.iter().map(|t| t.0).collect();
    targets.sort_unstable();
    targets.dedup();
    let keys: Vec<&[u8]> = targets.iter().map(|t| t.as_slice()).collect();
    let mut tx = store.pool().begin().await?;
    lock_creations(&mut tx, &targets).await?;
    // The commit point's precondition: every batch that locked one of these
    // conversations has committed, and none can lock one until we commit.
    sqlx::query("SELECT id FROM conversations WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(&keys)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO interceptions (commitment, authority, authority_key, first_day, last_day, \
         not_after, keep_until, log_index, started_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (commitment) DO NOTHING",
    )
    .bind(h.commitment.as_slice())
    .bind(&new.authority)
    .bind(new.authority_key.as_slice())
    .bind(i64::from(h.first_day))
    .bind(i64::from(h.last_day))
    .bind(i64_of(new.not_after))
    .bind(i64_of(h.keep_until))
    .bind(i64_of(new.log_index))
    .bind(i64_of(new.started_at))
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO interception_targets (commitment, conversation) \
         SELECT $1, UNNEST($2::bytea[]) ON CONFLICT DO NOTHING",
    )
    .bind(h.commitment.as_slice())
    .bind(&keys)
    .execute(&mut *tx)
    .await?;
    let kinds = [
        i16::from(ItemKind::Envelope.to_byte()),
        i16::from(ItemKind::Announcement.to_byte()),
    ];
    let stored: Vec<Found> = sqlx::query_as(
        "SELECT i.id, i.kind, i.conversation, 0::bigint AS day, i.sender, \
         a.identity_key AS sender_key, i.server_time, i.tag, i.body \
         FROM items i JOIN accounts a ON a.name = i.sender \
         WHERE i.conversation = ANY($1) AND i.kind = ANY($2) ORDER BY i.id",
    )
    .bind(&keys)
    .bind(kinds.as_slice())
    .fetch_all(&mut *tx)
    .await?;
    let remembered: Vec<Found> = sqlx::query_as(
        "SELECT r.item_id AS id, $4::smallint AS kind, r.conversation, r.day, r.sender, \
         a.identity_key AS sender_key, r.server_time, ''::bytea AS tag, r.body \
         FROM recent_announcements r \
         JOIN accounts a ON a.name = r.sender \
         WHERE r.conversation = ANY($1) AND r.day BETWEEN $2 AND $3 ORDER BY r.item_id",
    )
    .bind(&keys)
    .bind(i64::from(h.first_day))
    .bind(i64::from(h.last_day))
    .bind(i16::from(ItemKind::Announcement.to_byte()))
    .fetch_all(&mut *tx)
    .await?;
    let mut copies = Vec::with_capacity(stored.len() + remembered.len());
    for mut c in stored {
        let day = u8::try_from(c.kind)
            .ok()
            .and_then(|b| ItemKind::from_byte(b).ok())
            .and_then(|kind| item_day(kind, &c.body));
        if let Some(day) = day.filter(|d| (h.first_day..=h.last_day).contains(d)) {
            c.day = i64::from(day);
            copies.push(c);
        }
    }
    copies.extend(remembered);
    let kept: Vec<NewKept<'_>> = copies
        .iter()
        .map(|c| NewKept {
            item_id: c.id,
            kind: c.kind,
            conversation: &c.conversation,
            day: c.day,
            sender: &c.sender,
            sender_key: &c.sender_key,
            server_time: c.server_time,
            tag: &c.tag,
            body: &c.body,
            keep_until: i64_of(h.keep_until),
        })
        .collect();
    let n = keep_in(&mut tx, &h.commitment, &kept).await?;
    tx.commit().await?;
    Ok(n)
}

/// Deletes the remembered announcements whose keeping ended at `now` (ms),
/// and the interceptions whose keeping ended, with their targets and kept
/// copies, each interception in its own transaction under its row's lock.
/// An interception another server's sweep or a batch holds is skipped and
/// goes at a later sweep.
///
/// # Errors
/// When the database fails; what was deleted before stays deleted.
pub(crate) async fn sweep(store: &PgStore, now: i64, round: i64) -> Result<(), sqlx::Error> {
    loop {
        let gone = sqlx::query(
            "DELETE FROM recent_announcements WHERE item_id IN (SELECT item_id FROM \
             recent_announcements WHERE keep_until <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(now)
        .bind(round)
        .execute(store.pool())
        .await?
        .rows_affected();
        if gone < u64::try_from(round).unwrap_or(0) {
            break;
        }
    }
    let expired: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT commitment FROM interceptions WHERE keep_until <= $1 ORDER BY commitment LIMIT $2",
    )
    .bind(now)
    .bind(SWEEP_INTERCEPTIONS)
    .fetch_all(store.pool())
    .await?;
    for commitment in expired {
        let mut tx = store.pool().begin().await?;
        let held: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM interceptions WHERE commitment = $1 AND keep_until <= $2 \
             FOR UPDATE SKIP LOCKED",
        )
        .bind(&commitment)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if held.is_none() {
            continue;
        }
        for delete in [
            "DELETE FROM kept_items WHERE commitment = $1",
            "DELETE FROM interception_targets WHERE commitment = $1",
            "DELETE FROM interceptions WHERE commitment = $1",
        ] {
            sqlx::query(delete)
                .bind(&commitment)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
    Ok(())
}
