//! Mailboxes: the push hub for connected devices, HTTP fetch and ack.
//!
//! Every stored item has one mailbox row per recipient device, numbered by a
//! `seq` that strictly increases per device (it comes from one service-wide
//! counter, so it is not dense). A row is deleted when its device acks it;
//! the item is deleted when its last row is (see [`crate::delivery::retention`] for
//! the TTL).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use custos_wire::ConversationId;
use custos_wire::frames::{Delivery, ItemKind, MAX_ACKS, encode_delivery_batch};
use serde::Deserialize;
use sqlx::sqlite::SqliteConnection;
use sqlx::{QueryBuilder, Sqlite, SqlitePool};
use tokio::sync::mpsc;

use crate::delivery::auth::Authed;
use crate::delivery::quota::Usage;
use crate::delivery::writer::Op;
use crate::error::HttpRefusal;
use crate::refusal::{MailboxRefusal, RequestRefusal};
use crate::state::{AppState, JsonBody};

/// Most items in one pushed backlog page or HTTP fetch.
pub const MAX_FETCH: u32 = 1000;
/// Frames buffered for one WebSocket before it is considered lagging (it
/// then refetches from the database).
pub const PUSH_QUEUE: usize = 512;

/// A frame queued for a connection: its seq and encoded `ServerFrame`.
pub(crate) type Push = (u64, Bytes);

struct Sub {
    id: u64,
    tx: mpsc::Sender<Push>,
}

/// Connected devices and their push queues.
#[derive(Default)]
pub(crate) struct Hub {
    subs: Mutex<HashMap<i64, Vec<Sub>>>,
    next_id: AtomicU64,
    /// Every mailbox row with a seq below this is durable (its batch was
    /// fsynced); reads never hand out a row at or above it.
    durable_below: AtomicI64,
}

impl Hub {
    /// The first mailbox seq that may not be durable yet.
    pub fn durable_below(&self) -> i64 {
        self.durable_below.load(Ordering::Acquire)
    }

    /// Records that every seq below `seq` is durable.
    pub fn set_durable_below(&self, seq: i64) {
        self.durable_below.fetch_max(seq, Ordering::AcqRel);
    }

    /// Registers a connection of `device`; items stored from now on are
    /// queued on the returned receiver. If the queue overflows, the hub drops
    /// it (the receiver then ends) and the connection must refetch.
    pub fn subscribe(&self, device: i64) -> (u64, mpsc::Receiver<Push>) {
        let (tx, rx) = mpsc::channel(PUSH_QUEUE);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut subs) = self.subs.lock() {
            subs.entry(device).or_default().push(Sub { id, tx });
        }
        (id, rx)
    }

    /// Removes a connection.
    pub fn unsubscribe(&self, device: i64, id: u64) {
        if let Ok(mut subs) = self.subs.lock()
            && let Some(list) = subs.get_mut(&device)
        {
            list.retain(|s| s.id != id);
            if list.is_empty() {
                subs.remove(&device);
            }
        }
    }

    /// Whether `device` has a connection now.
    pub fn is_connected(&self, device: i64) -> bool {
        self.subs
            .lock()
            .map(|s| s.contains_key(&device))
            .unwrap_or(false)
    }

    /// Wakes the connections of `devices` (PostgreSQL: another server
    /// stored rows for them): each then reads its mailbox from its cursor.
    /// A wake-up is a hint only; a queue too full for it is dropped, and its
    /// connection catches up from the database all the same.
    pub fn wake(&self, devices: &[i64]) {
        let frames = devices.iter().map(|d| (*d, 0, Bytes::new())).collect();
        self.deliver(frames);
    }

    /// Wakes every connection (wake-ups may have been lost).
    pub fn wake_all(&self) {
        let devices: Vec<i64> = self
            .subs
            .lock()
            .map(|s| s.keys().copied().collect())
            .unwrap_or_default();
        self.wake(&devices);
    }

    /// Queues frames; drops the queues that are full or closed.
    pub fn deliver(&self, frames: Vec<(i64, u64, Bytes)>) {
        let Ok(mut subs) = self.subs.lock() else {
            return;
        };
        for (device, seq, bytes) in frames {
            let Some(list) = subs.get_mut(&device) else {
                continue;
            };
            list.retain(|s| s.tx.try_send((seq, bytes.clone())).is_ok());
            if list.is_empty() {
                subs.remove(&device);
            }
        }
    }
}

/// Reads up to `limit` items of `device` with seq > `after`, oldest first,
/// among the durable ones (seq below `durable_below`): an item committed but
/// not yet fsynced is never handed out.
pub(crate) async fn fetch(
    pool: &SqlitePool,
    device: i64,
    after: u64,
    durable_below: i64,
    limit: u32,
) -> Result<Vec<Delivery>, HttpRefusal> {
    type Row = (i64, i64, Vec<u8>, String, i64, Vec<u8>, Vec<u8>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT m.seq, i.kind, i.conversation, i.sender, i.server_time, i.body, i.tag \
         FROM mailbox m JOIN items i ON i.id = m.item_id \
         WHERE m.device_id = ? AND m.seq > ? AND m.seq < ? ORDER BY m.seq LIMIT ?",
    )
    .bind(device)
    .bind(i64::try_from(after).unwrap_or(i64::MAX))
    .bind(durable_below)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(seq, kind, conv, sender, time, body, tag)| {
            let conversation = <[u8; 16]>::try_from(conv.as_slice())
                .map_err(|_| HttpRefusal::internal("stored item", "bad conversation id"))?;
            Ok(Delivery {
                seq: u64::try_from(seq).unwrap_or(0),
                kind: u8::try_from(kind)
                    .ok()
                    .and_then(|k| ItemKind::from_byte(k).ok())
                    .ok_or_else(|| HttpRefusal::internal("stored item", "bad kind"))?,
                conversation: ConversationId(conversation),
                sender,
                server_time: u64::try_from(time).unwrap_or(0),
                body,
                tag,
            })
        })
        .collect()
}

/// Reads up to `limit` items of `device` after `after` on the configured
/// backend: on SQLite among the durable rows ([`fetch`]); on PostgreSQL
/// every committed row is durable, and a device's rows commit in seq
/// order, so the cursor alone is enough.
pub(crate) async fn fetch_for(
    state: &AppState,
    device: i64,
    after: u64,
    limit: u32,
) -> Result<Vec<Delivery>, HttpRefusal> {
    let Some(pg) = &state.pg else {
        let durable = state.hub.durable_below();
        return fetch(&state.pool, device, after, durable, limit).await;
    };
    let rows = pg
        .mailbox_after(
            device,
            i64::try_from(after).unwrap_or(i64::MAX),
            i64::from(limit),
        )
        .await?;
    rows.into_iter()
        .map(|r| {
            let conversation = <[u8; 16]>::try_from(r.conversation.as_slice())
                .map_err(|_| HttpRefusal::internal("stored item", "bad conversation id"))?;
            Ok(Delivery {
                seq: u64::try_from(r.seq).unwrap_or(0),
                kind: u8::try_from(r.kind)
                    .ok()
                    .and_then(|k| ItemKind::from_byte(k).ok())
                    .ok_or_else(|| HttpRefusal::internal("stored item", "bad kind"))?,
                conversation: ConversationId(conversation),
                sender: r.sender,
                server_time: u64::try_from(r.server_time).unwrap_or(0),
                body: r.body,
                tag: r.tag,
            })
        })
        .collect()
}

/// Deletes the acked `(device, seq)` rows and every item left without rows,
/// subtracting them from `usage`. Returns the rows deleted. Runs inside the
/// writer's transaction; the writer folds every ack of a batch into one call.
pub(crate) async fn apply_acks(
    conn: &mut SqliteConnection,
    rows: &[(i64, i64)],
    usage: &mut Usage,
) -> Result<Vec<(i64, i64)>, sqlx::Error> {
    // The item's size only when quotas are on: it costs a lookup per row.
    let size = if usage.enabled() {
        "(SELECT length(body) FROM items WHERE items.id = mailbox.item_id)"
    } else {
        "0"
    };
    let mut deleted = Vec::new();
    let mut items = Vec::new();
    for chunk in rows.chunks(ACK_CHUNK) {
        let mut qb =
            QueryBuilder::<Sqlite>::new("DELETE FROM mailbox WHERE (device_id, seq) IN (VALUES ");
        let mut sep = qb.separated(", ");
        for (d, s) in chunk {
            sep.push("(");
            sep.push_bind_unseparated(*d);
            sep.push_unseparated(", ");
            sep.push_bind_unseparated(*s);
            sep.push_unseparated(")");
        }
        qb.push(") RETURNING device_id, seq, item_id, ");
        qb.push(size);
        let got: Vec<(i64, i64, i64, Option<i64>)> =
            qb.build_query_as().fetch_all(&mut *conn).await?;
        for (d, s, i, len) in got {
            deleted.push((d, s));
            items.push(i);
            usage.row_deleted(d, u64_of(len));
        }
    }
    items.sort_unstable();
    items.dedup();
    for chunk in items.chunks(ACK_CHUNK) {
        let mut qb = QueryBuilder::<Sqlite>::new("DELETE FROM items WHERE id IN (");
        let mut sep = qb.separated(", ");
        for i in chunk {
            sep.push_bind(*i);
        }
        qb.push(") AND NOT EXISTS (SELECT 1 FROM mailbox m WHERE m.item_id = items.id)");
        qb.push(" RETURNING sender, length(body)");
        let gone: Vec<(String, Option<i64>)> = qb.build_query_as().fetch_all(&mut *conn).await?;
        for (sender, len) in gone {
            usage.item_deleted(&sender, u64_of(len));
        }
    }
    Ok(deleted)
}

const ACK_CHUNK: usize = 500;

fn u64_of(len: Option<i64>) -> u64 {
    len.and_then(|l| u64::try_from(l).ok()).unwrap_or(0)
}

/// Query of `GET /v1/mailbox`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FetchQuery {
    #[serde(default)]
    after: u64,
    #[serde(default = "default_limit")]
    limit: u32,
}

fn default_limit() -> u32 {
    MAX_FETCH
}

/// `GET /v1/mailbox?after=SEQ&limit=N`.
pub(crate) async fn get_mailbox(
    State(state): State<AppState>,
    auth: Authed,
    query: Result<Query<FetchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, HttpRefusal> {
    let Query(q) = query.map_err(|e| RequestRefusal::BadQuery(e.body_text()))?;
    if q.limit == 0 || q.limit > MAX_FETCH {
        return Err(MailboxRefusal::BadLimit(MAX_FETCH).into());
    }
    let items = fetch_for(&state, auth.device_id, q.after, q.limit).await?;
    let body = encode_delivery_batch(&items).map_err(|e| HttpRefusal::internal("fetch", e))?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], body))
}

/// Body of `POST /v1/mailbox/ack`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AckBody {
    seqs: Vec<u64>,
}

/// `POST /v1/mailbox/ack`.
pub(crate) async fn post_ack(
    State(state): State<AppState>,
    auth: Authed,
    JsonBody(body): JsonBody<AckBody>,
) -> Result<impl IntoResponse, HttpRefusal> {
    if body.seqs.is_empty() || body.seqs.len() > MAX_ACKS {
        return Err(MailboxRefusal::BadAck(MAX_ACKS).into());
    }
    let device_id = auth.device_id;
    let acked = state
        .writer
        .call(|reply| Op::Ack {
            device_id,
            seqs: body.seqs,
            reply: Some(reply),
        })
        .await?;
    Ok(axum::Json(serde_json::json!({ "acked": acked })))
}
