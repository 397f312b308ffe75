//! The single writer: every mutation of mailboxes, conversations and items
//! goes through one task that folds many operations into one SQLite
//! transaction, so that one fsync serves many messages (grouped commit).
//!
//! # Commit point
//! A batch is: `BEGIN IMMEDIATE`; apply each operation in arrival order;
//! write the `counters` row; `COMMIT`. The writer's connection runs with
//! `synchronous = NORMAL`, so `COMMIT` appends the batch to the WAL without
//! waiting for the disk; the batch then goes to the *syncer*, which fsyncs
//! the WAL file (one fsync for every batch committed since the last one) and
//! only then answers the batch's operations (`Accepted`, 200), pushes its
//! items and raises the durable watermark below which readers may hand out
//! mailbox rows ([`crate::delivery::mailbox::Hub::durable_below`]). So the writer
//! applies the next batch while the disk works, and nothing is acknowledged
//! or delivered before it is on disk: if the process or the machine dies
//! before the fsync returns, nothing of those batches was acknowledged. If
//! `COMMIT` fails, every operation of the batch is answered 500 and the
//! in-memory state (counters and the conversation cache) is reset to what is
//! on disk. If an fsync fails, its batches are answered 500 and the writer
//! refuses everything from then on (503): after a failed fsync the kernel
//! may have dropped the pages, so only a restart, which replays the WAL, is
//! safe.
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
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Bytes;
use axum::http::StatusCode;
use custos_wire::ConversationId;
use custos_wire::frames::{Delivery, ItemKind, ServerFrame};
use sqlx::Connection;
use sqlx::sqlite::SqliteConnection;
use tokio::sync::{mpsc, oneshot, watch};

use crate::abuse::policy::DeliveryPolicy;
use crate::delivery::mailbox::Hub;
use crate::delivery::membership::{Conv, ConvCache};
use crate::delivery::quota::Usage;
use crate::error::HttpRefusal;
use crate::lawful::holds::Holds;

mod apply;
pub(crate) mod pg;
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

/// A commit request, checked for form by the route: the commit parses as
/// an MLS `PublicMessage` commit of the conversation; the writer verifies it
/// against the stored public state.
#[derive(Debug)]
pub(crate) struct CommitReq {
    /// The epoch the committer says it commits in; must be the commit's own.
    pub epoch: u64,
    pub handshake: crate::delivery::public_state::Handshake,
    /// Most members a conversation may have (the service's limit).
    pub max_members: usize,
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
#[derive(Debug, Clone, Default)]
pub(crate) struct SweepReport {
    pub items: u64,
    pub mailbox_rows: u64,
    /// Locators of expired blobs whose bodies are files, to delete once
    /// the deletion of their rows has committed.
    pub expired_blob_files: Vec<String>,
}

/// A stored item and its `(device, seq)` mailbox rows.
type StoredItem = (Arc<NewItem>, Vec<(i64, i64)>);

type Reply<T> = oneshot::Sender<Result<T, HttpRefusal>>;

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
        /// The verified public state the creator uploaded.
        state: Box<crate::delivery::public_state::GroupState>,
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
    /// A checked, logged interception; answered with how many items that
    /// were already stored it keeps.
    Intercept {
        new: Box<crate::lawful::holds::NewInterception>,
        reply: Reply<u64>,
    },
}

impl Op {
    /// Answers the operation with `err` without applying it.
    fn refuse(self, err: &HttpRefusal) {
        match self {
            Op::Submit { reply, .. } => drop(reply.send(Err(err.clone()))),
            Op::Ack { reply, .. } => {
                if let Some(r) = reply {
                    drop(r.send(Err(err.clone())));
                }
            }
            Op::CreateConversation { reply, .. } => drop(reply.send(Err(err.clone()))),
            Op::Commit { reply, .. } => drop(reply.send(Err(err.clone()))),
            Op::Sweep { reply, .. } => {
                if let Some(r) = reply {
                    drop(r.send(Err(err.clone())));
                }
            }
            Op::Intercept { reply, .. } => drop(reply.send(Err(err.clone()))),
        }
    }
}

/// Sends operations to the writer.
#[derive(Debug, Clone)]
pub(crate) struct WriterHandle {
    tx: mpsc::Sender<Op>,
}

/// The writer loop's next batch: waits for one operation (or for shutdown),
/// then takes what else is already queued, up to `max_batch`. Once shutdown
/// is signalled it only drains the queue; `None` when the queue is empty
/// and shutdown signalled, or when every sender is gone.
pub(super) async fn next_batch(
    rx: &mut mpsc::Receiver<Op>,
    shutdown: &mut watch::Receiver<bool>,
    stopping: &mut bool,
    max_batch: usize,
) -> Option<Vec<Op>> {
    loop {
        let mut ops = Vec::with_capacity(64);
        if !*stopping {
            tokio::select! {
                op = rx.recv() => ops.push(op?),
                _ = shutdown.changed() => *stopping = true,
            }
            if *shutdown.borrow() {
                *stopping = true;
            }
        }
        while ops.len() < max_batch {
            match rx.try_recv() {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        if !ops.is_empty() {
            return Some(ops);
        }
        if *stopping {
            return None;
        }
    }
}

impl WriterHandle {
    /// Whether the writer task is still taking operations.
    pub fn is_running(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Queues `op`, waiting if the queue is full (back-pressure).
    pub async fn send(&self, op: Op) -> Result<(), HttpRefusal> {
        self.tx
            .send(op)
            .await
            .map_err(|_| HttpRefusal::unavailable())
    }

    /// Queues an operation built around a fresh reply channel and waits for
    /// the answer.
    pub async fn call<T>(&self, build: impl FnOnce(Reply<T>) -> Op) -> Result<T, HttpRefusal> {
        let (tx, rx) = oneshot::channel();
        self.send(build(tx)).await?;
        rx.await.map_err(|_| HttpRefusal::unavailable())?
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
pub(crate) async fn spawn(
    mut conn: SqliteConnection,
    lock: std::fs::File,
    wal: PathBuf,
    hub: Arc<Hub>,
    policy: Arc<dyn DeliveryPolicy>,
    limits: &crate::config::Limits,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(WriterHandle, tokio::task::JoinHandle<()>), sqlx::Error> {
    let mut counters = load_counters(&mut conn).await?;
    // Storage held per mailbox and per sender (`crate::delivery::quota`).
    let mut usage = Usage::load(&mut conn, limits.mailbox_quota, limits.sender_quota).await?;
    let max_batch = limits.max_batch.max(1);
    // Whatever an earlier run committed is made durable before anything is
    // read: from here on every row below `next_seq` may be handed out.
    sync_wal(wal.clone())
        .await
        .map_err(|e| sqlx::Error::Io(std::io::Error::other(e)))?;
    hub.set_durable_below(counters.next_seq);
    let (tx, mut rx) = mpsc::channel::<Op>(max_batch.saturating_mul(4).max(64));
    let failed = Arc::new(AtomicBool::new(false));
    let (sync_tx, sync_task) = spawn_syncer(wal, hub.clone(), failed.clone());
    // Every stored hold: one whose keeping ended goes with the next sweep,
    // on the injected clock.
    let mut holds = Holds::load(&mut conn, 0).await?;
    let task = tokio::spawn(async move {
        let mut cache = ConvCache::default();
        let mut stopping = false;
        let mut stats = BatchStats::new();
        while let Some(ops) = next_batch(&mut rx, &mut shutdown, &mut stopping, max_batch).await {
            if failed.load(Ordering::Acquire) {
                for op in ops {
                    op.refuse(&HttpRefusal::unavailable());
                }
                continue;
            }
            let n = ops.len();
            let started = std::time::Instant::now();
            let commit = run_batch(
                &mut conn,
                &mut counters,
                &mut cache,
                &mut holds,
                &mut usage,
                &sync_tx,
                policy.as_ref(),
                ops,
            )
            .await;
            stats.record(n, started.elapsed(), commit);
        }
        rx.close();
        // Every committed batch is synced and answered before the lock goes.
        drop(sync_tx);
        let _ = sync_task.await;
        let _ = conn.close().await;
        drop(lock);
        tracing::debug!("writer stopped");
    });
    Ok((WriterHandle { tx }, task))
}

/// A committed batch waiting for its fsync: its answers, its pushes, and the
/// mailbox seq below which everything is then durable.
struct Committed {
    deferred: Vec<Deferred>,
    pushes: Vec<StoredItem>,
    durable_below: i64,
}

/// fsyncs the WAL file (what `synchronous = FULL` would do inside `COMMIT`).
async fn sync_wal(wal: PathBuf) -> std::io::Result<()> {
    tokio::task::spawn_blocking(move || std::fs::File::open(&wal)?.sync_data())
        .await
        .map_err(std::io::Error::other)?
}

/// The syncer: fsyncs the WAL once for every run of committed batches, then
/// answers them, pushes their items and raises the durable watermark, in
/// commit order.
fn spawn_syncer(
    wal: PathBuf,
    hub: Arc<Hub>,
    failed: Arc<AtomicBool>,
) -> (
    mpsc::UnboundedSender<Committed>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Committed>();
    let task = tokio::spawn(async move {
        let mut run = Vec::new();
        while let Some(first) = rx.recv().await {
            run.push(first);
            while let Ok(more) = rx.try_recv() {
                run.push(more);
            }
            let synced = sync_wal(wal.clone()).await;
            let failure = match &synced {
                Ok(()) => None,
                Err(err) => {
                    tracing::error!(%err, "fsync of the WAL failed; refusing writes until restart");
                    failed.store(true, Ordering::Release);
                    Some(HttpRefusal::internal(
                        "fsync of the database log failed",
                        err,
                    ))
                }
            };
            for batch in run.drain(..) {
                for d in batch.deferred {
                    d.answer(failure.as_ref());
                }
                if failure.is_none() {
                    hub.set_durable_below(batch.durable_below);
                    push_all(&hub, batch.pushes);
                }
            }
        }
    });
    (tx, task)
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
    Kept(Reply<u64>, u64),
}

impl Deferred {
    fn answer(self, failure: Option<&HttpRefusal>) {
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
            (Deferred::Kept(r, n), f) => drop(r.send(f.map_or(Ok(n), |e| Err(e.clone())))),
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
    /// Interceptions in force (changed in place; reloaded if the batch fails).
    holds: &'a mut Holds,
    /// Storage quotas' usage (changed in place; reloaded if the batch fails).
    usage: &'a mut Usage,
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
#[allow(
    clippy::too_many_arguments,
    reason = "the writer's in-memory state, each part reset on its own when a batch fails"
)]
async fn run_batch(
    conn: &mut SqliteConnection,
    counters: &mut Counters,
    cache: &mut ConvCache,
    holds: &mut Holds,
    usage: &mut Usage,
    syncer: &mpsc::UnboundedSender<Committed>,
    policy: &dyn DeliveryPolicy,
    ops: Vec<Op>,
) -> std::time::Duration {
    let mut staged = Staged {
        counters: *counters,
        cache,
        holds,
        usage,
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
        holds,
        usage,
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
            let committed = Committed {
                deferred,
                pushes,
                durable_below: new_counters.next_seq,
            };
            if let Err(mpsc::error::SendError(c)) = syncer.send(committed) {
                // The syncer is gone (shutting down): nothing can be confirmed.
                for d in c.deferred {
                    d.answer(Some(&HttpRefusal::unavailable()));
                }
            }
        }
        Err(err) => {
            let failure = HttpRefusal::internal("writer batch failed", &err);
            cache.clear();
            // Holds added in the failed batch were rolled back with it.
            match Holds::load(conn, 0).await {
                Ok(h) => *holds = h,
                Err(e) => tracing::error!(%e, "cannot reload interceptions after a failed batch"),
            }
            if let Err(e) = usage.reload(conn).await {
                tracing::error!(%e, "cannot reload storage usage after a failed batch");
            }
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
