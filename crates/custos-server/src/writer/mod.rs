//! The single writer: every mutation of mailboxes, conversations and items
//! goes through one task that folds many operations into one SQLite
//! transaction, so that one fsync serves many messages (grouped commit).
//!
//! # Commit point
//! A batch is: `BEGIN IMMEDIATE`; apply each operation in arrival order;
//! write the `counters` row; `COMMIT` (which, with `synchronous = FULL`,
//! returns only after the WAL is fsynced, see [`crate::db`]). Only then are
//! the operations answered (`Accepted`, 200) and the new items pushed to
//! connected devices. If the process dies before `COMMIT` returns, nothing of
//! the batch was acknowledged and nothing of it is on disk; if it dies after,
//! everything acknowledged is on disk. If `COMMIT` fails, every operation of
//! the batch is answered 500 and the in-memory state (counters and the
//! conversation cache) is reset to what is on disk.
//!
//! The writer owns the mailbox sequence counter and the conversation cache
//! (epoch and routing), which is why operations that touch them must come
//! here rather than write to the database directly.
//!
//! # Delivery tags
//! Submissions that pass the membership and replay checks are tagged here,
//! all at once per flush, by [`DeliveryPolicy::tag_batch`] (with franking on:
//! one Ed25519 signature per tag batch of up to 512 envelopes over a Merkle
//! root, a path per envelope). The tag is inserted with its item in the
//! batch's transaction and answered in `Accepted` only after `COMMIT`; tags of
//! a batch whose commit fails are never released. Commits and Welcomes are
//! not tagged.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::StatusCode;
use custos_wire::ConversationId;
use custos_wire::frames::{Delivery, ItemKind, ServerFrame};
use sqlx::Connection;
use sqlx::sqlite::SqliteConnection;
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::ApiError;
use crate::mailbox::Hub;
use crate::policy::DeliveryPolicy;
use crate::routing::{Conv, ConvCache};

mod apply;
use apply::{apply_other, flush_acks, flush_submits, route_submit};

/// An item to store and deliver.
#[derive(Debug)]
pub(crate) struct NewItem {
    pub kind: ItemKind,
    pub conversation: ConversationId,
    pub sender_account: i64,
    pub sender_device: i64,
    pub sender_name: Arc<str>,
    pub server_time: u64,
    pub expires_at: u64,
    /// SHA-256 of `body`; `None` for commits and Welcomes (ordered by epoch).
    pub hash: Option<[u8; 32]>,
    /// For an MLS proposal: the epoch it was made in, which must be the
    /// conversation's current epoch when the writer orders it.
    pub epoch: Option<u64>,
    /// The envelope header's franking commitment (envelopes only), which
    /// the delivery tag binds.
    pub franking_commitment: Option<[u8; 32]>,
    /// The delivery tag: set by the writer for submissions, empty for none.
    pub tag: Vec<u8>,
    pub body: Bytes,
}

/// A commit request, checked for form by the route.
#[derive(Debug)]
pub(crate) struct CommitReq {
    pub epoch: u64,
    pub members: Vec<String>,
    pub commit: NewItem,
    pub welcome: Option<NewItem>,
}

/// What a successful commit returns.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CommitDone {
    pub epoch: u64,
    pub item_id: i64,
}

/// What a retention sweep removed.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SweepReport {
    pub items: u64,
    pub mailbox_rows: u64,
}

/// A stored item and its `(device, seq)` mailbox rows.
type StoredItem = (Arc<NewItem>, Vec<(i64, i64)>);

type Reply<T> = oneshot::Sender<Result<T, ApiError>>;

/// One operation for the writer.
#[derive(Debug)]
pub(crate) enum Op {
    /// A submission; answered with its delivery tag (empty for none).
    Submit {
        item: NewItem,
        reply: Reply<Vec<u8>>,
    },
    Ack {
        device_id: i64,
        seqs: Vec<u64>,
        reply: Option<Reply<u64>>,
    },
    CreateConversation {
        conversation: ConversationId,
        account_id: i64,
        now: u64,
        reply: Reply<()>,
    },
    Commit {
        req: Box<CommitReq>,
        reply: Reply<CommitDone>,
    },
    Sweep {
        now: u64,
        reply: Option<Reply<SweepReport>>,
    },
}

/// Sends operations to the writer.
#[derive(Debug, Clone)]
pub(crate) struct WriterHandle {
    tx: mpsc::Sender<Op>,
}

impl WriterHandle {
    /// Queues `op`, waiting if the queue is full (back-pressure).
    pub async fn send(&self, op: Op) -> Result<(), ApiError> {
        self.tx.send(op).await.map_err(|_| ApiError::unavailable())
    }

    /// Queues an operation built around a fresh reply channel and waits for
    /// the answer.
    pub async fn call<T>(&self, build: impl FnOnce(Reply<T>) -> Op) -> Result<T, ApiError> {
        let (tx, rx) = oneshot::channel();
        self.send(build(tx)).await?;
        rx.await.map_err(|_| ApiError::unavailable())?
    }
}

#[derive(Debug, Clone, Copy)]
struct Counters {
    next_seq: i64,
    next_item: i64,
}

/// Starts the writer task on `conn`. It holds `lock` (the data directory
/// lock) until it has closed the connection. It stops when every handle is
/// dropped, or when `shutdown` turns true, after committing what was queued.
pub(crate) fn spawn(
    mut conn: SqliteConnection,
    lock: std::fs::File,
    hub: Arc<Hub>,
    policy: Arc<dyn DeliveryPolicy>,
    max_batch: usize,
    mut shutdown: watch::Receiver<bool>,
) -> (WriterHandle, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Op>(max_batch.saturating_mul(4).max(64));
    let task = tokio::spawn(async move {
        let mut counters = match load_counters(&mut conn).await {
            Ok(c) => c,
            Err(err) => {
                tracing::error!(%err, "writer cannot read its counters; stopping");
                return;
            }
        };
        let mut cache = ConvCache::default();
        let mut stopping = false;
        let mut stats = BatchStats::new();
        loop {
            let mut ops = Vec::with_capacity(64);
            if !stopping {
                tokio::select! {
                    op = rx.recv() => match op {
                        Some(op) => ops.push(op),
                        None => break,
                    },
                    _ = shutdown.changed() => stopping = true,
                }
                if *shutdown.borrow() {
                    stopping = true;
                }
            }
            while ops.len() < max_batch {
                match rx.try_recv() {
                    Ok(op) => ops.push(op),
                    Err(_) => break,
                }
            }
            if ops.is_empty() {
                if stopping {
                    break;
                }
                continue;
            }
            let n = ops.len();
            let started = std::time::Instant::now();
            let commit = run_batch(
                &mut conn,
                &mut counters,
                &mut cache,
                &hub,
                policy.as_ref(),
                ops,
            )
            .await;
            stats.record(n, started.elapsed(), commit);
        }
        rx.close();
        let _ = conn.close().await;
        drop(lock);
        tracing::debug!("writer stopped");
    });
    (WriterHandle { tx }, task)
}

/// Batch sizes and durations, logged at debug level every 5 s.
struct BatchStats {
    since: std::time::Instant,
    batches: u64,
    ops: u64,
    busy: std::time::Duration,
    commit: std::time::Duration,
}

impl BatchStats {
    fn new() -> Self {
        Self {
            since: std::time::Instant::now(),
            batches: 0,
            ops: 0,
            busy: std::time::Duration::ZERO,
            commit: std::time::Duration::ZERO,
        }
    }

    fn record(&mut self, ops: usize, took: std::time::Duration, commit: std::time::Duration) {
        self.batches += 1;
        self.commit += commit;
        self.ops += u64::try_from(ops).unwrap_or(0);
        self.busy += took;
        let window = self.since.elapsed();
        if window.as_secs() >= 5 {
            tracing::debug!(
                batches = self.batches,
                ops = self.ops,
                ops_per_batch = self.ops / self.batches.max(1),
                busy_ms = self.busy.as_millis(),
                commit_ms = self.commit.as_millis(),
                window_ms = window.as_millis(),
                "writer batches"
            );
            *self = Self::new();
        }
    }
}

async fn load_counters(conn: &mut SqliteConnection) -> Result<Counters, sqlx::Error> {
    let (next_seq, next_item): (i64, i64) =
        sqlx::query_as("SELECT next_seq, next_item FROM counters WHERE id = 1")
            .fetch_one(conn)
            .await?;
    Ok(Counters {
        next_seq,
        next_item,
    })
}

/// Answers held until the batch commits.
enum Deferred {
    Unit(Reply<()>),
    Tag(Reply<Vec<u8>>, Vec<u8>),
    Count(Option<Reply<u64>>, u64),
    Commit(Reply<CommitDone>, CommitDone),
    Sweep(Option<Reply<SweepReport>>, SweepReport),
}

impl Deferred {
    fn answer(self, failure: Option<&ApiError>) {
        match (self, failure) {
            (Deferred::Unit(r), None) => drop(r.send(Ok(()))),
            (Deferred::Unit(r), Some(e)) => drop(r.send(Err(e.clone()))),
            (Deferred::Tag(r, t), f) => drop(r.send(f.map_or(Ok(t), |e| Err(e.clone())))),
            (Deferred::Count(r, n), f) => {
                if let Some(r) = r {
                    drop(r.send(f.map_or(Ok(n), |e| Err(e.clone()))));
                }
            }
            (Deferred::Commit(r, d), f) => drop(r.send(f.map_or(Ok(d), |e| Err(e.clone())))),
            (Deferred::Sweep(r, s), f) => {
                if let Some(r) = r {
                    drop(r.send(f.map_or(Ok(s), |e| Err(e.clone()))));
                }
            }
        }
    }
}

/// The state a batch builds before it commits.
struct Staged<'a> {
    counters: Counters,
    cache: &'a mut ConvCache,
    /// Issues the delivery tags of each flush of submissions.
    policy: &'a dyn DeliveryPolicy,
    /// Conversations changed in this batch (applied to the cache on commit).
    convs: HashMap<ConversationId, Conv>,
    deferred: Vec<Deferred>,
    /// Stored items to push after commit, with their `(device, seq)` rows.
    pushes: Vec<StoredItem>,
    /// Submissions checked and waiting for the bulk insert.
    submits: Vec<(NewItem, Vec<i64>, Reply<Vec<u8>>)>,
    /// Acks waiting for the bulk delete.
    acks: Vec<(i64, Vec<u64>, Option<Reply<u64>>)>,
    /// How long `COMMIT` took.
    commit_time: std::time::Duration,
}

/// Runs one batch; returns how long its `COMMIT` took.
async fn run_batch(
    conn: &mut SqliteConnection,
    counters: &mut Counters,
    cache: &mut ConvCache,
    hub: &Hub,
    policy: &dyn DeliveryPolicy,
    ops: Vec<Op>,
) -> std::time::Duration {
    let mut staged = Staged {
        counters: *counters,
        cache,
        policy,
        convs: HashMap::new(),
        deferred: Vec::with_capacity(ops.len()),
        pushes: Vec::new(),
        submits: Vec::new(),
        acks: Vec::new(),
        commit_time: std::time::Duration::ZERO,
    };
    let result = apply_all(conn, &mut staged, ops).await;
    let Staged {
        counters: new_counters,
        cache,
        policy: _,
        convs,
        deferred,
        pushes,
        submits,
        acks,
        commit_time,
    } = staged;
    match result {
        Ok(()) => {
            *counters = new_counters;
            cache.merge(convs);
            for d in deferred {
                d.answer(None);
            }
            push_all(hub, pushes);
        }
        Err(err) => {
            let failure = ApiError::internal("writer batch failed", &err);
            cache.clear();
            for d in deferred {
                d.answer(Some(&failure));
            }
            for (_, _, reply) in submits {
                drop(reply.send(Err(failure.clone())));
            }
            for (_, _, reply) in acks {
                if let Some(r) = reply {
                    drop(r.send(Err(failure.clone())));
                }
            }
        }
    }
    commit_time
}

async fn apply_all(
    conn: &mut SqliteConnection,
    st: &mut Staged<'_>,
    ops: Vec<Op>,
) -> Result<(), sqlx::Error> {
    let before = st.counters;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    for op in ops {
        match op {
            Op::Submit { item, reply } => match route_submit(&mut tx, st, &item).await? {
                Ok(recipients) => st.submits.push((item, recipients, reply)),
                Err(e) => drop(reply.send(Err(e))),
            },
            // Acks commute with submissions (a client can only ack seqs it
            // was pushed, i.e. committed ones), so they are folded together.
            Op::Ack {
                device_id,
                seqs,
                reply,
            } => st.acks.push((device_id, seqs, reply)),
            other => {
                flush_submits(&mut tx, st).await?;
                flush_acks(&mut tx, st).await?;
                apply_other(&mut tx, st, other).await?;
            }
        }
    }
    flush_submits(&mut tx, st).await?;
    flush_acks(&mut tx, st).await?;
    if st.counters.next_seq != before.next_seq || st.counters.next_item != before.next_item {
        sqlx::query("UPDATE counters SET next_seq = ?, next_item = ? WHERE id = 1")
            .bind(st.counters.next_seq)
            .bind(st.counters.next_item)
            .execute(&mut *tx)
            .await?;
    }
    // Commit point: durable once this returns (WAL fsynced, synchronous=FULL).
    let started = std::time::Instant::now();
    tx.commit().await?;
    st.commit_time = started.elapsed();
    Ok(())
}

/// Encodes and pushes every stored item to its connected recipients.
fn push_all(hub: &Hub, pushes: Vec<StoredItem>) {
    if pushes.is_empty() {
        return;
    }
    let mut frames = Vec::new();
    for (item, rows) in pushes {
        for (device, seq) in rows {
            if !hub.is_connected(device) {
                continue;
            }
            let seq = u64::try_from(seq).unwrap_or(0);
            match delivery_frame(seq, &item) {
                Ok(bytes) => frames.push((device, seq, bytes)),
                Err(status) => tracing::error!(%status, "cannot encode a stored item"),
            }
        }
    }
    hub.deliver(frames);
}

/// The encoded `ServerFrame::Delivery` of a stored item at `seq`.
pub(crate) fn delivery_frame(seq: u64, item: &NewItem) -> Result<Bytes, StatusCode> {
    delivery_frame_of(Delivery {
        seq,
        kind: item.kind,
        conversation: item.conversation,
        sender: item.sender_name.to_string(),
        server_time: item.server_time,
        body: item.body.to_vec(),
        tag: item.tag.clone(),
    })
}

/// Encodes a delivery as a `ServerFrame`.
pub(crate) fn delivery_frame_of(d: Delivery) -> Result<Bytes, StatusCode> {
    ServerFrame::Delivery(d)
        .encode()
        .map(Bytes::from)
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)
}
