//! The delivery writer on PostgreSQL: one batching writer per server
//! process, any number of processes on one database (design note 0019).
//!
//! It takes the same [`Op`]s as the SQLite writer, through the same
//! [`WriterHandle`], so the HTTP and WebSocket code does not know which
//! backend runs. What the SQLite writer keeps in memory (the conversation
//! cache, the mailbox counter, the durable watermark) is read here from
//! the database inside each batch's transaction, because another server may
//! have changed it a moment ago.
//!
//! # Commit point
//! A batch of submissions and acks is one transaction: the conversations
//! it routes to are read `FOR SHARE` (in id order), so a commit changing
//! one of their rosters on any server waits for the batch, or the batch
//! sees its result; then the replay hashes, the device counters (in id
//! order) and the rows ([`pg_mailbox::store_items_in`]); then the acks
//! ([`pg_mailbox::ack_rows_in`]); then `COMMIT`. PostgreSQL's `COMMIT`
//! returns once the batch is durable (`synchronous_commit = on`), and only
//! then are the operations answered and the items pushed; the wake-up of
//! other servers (`NOTIFY`) is delivered by PostgreSQL on commit too. If
//! `COMMIT` or any statement fails, the whole batch is answered with the
//! failure (`503 database_unavailable` when PostgreSQL cannot be reached)
//! and nothing of it was stored; the writer keeps no state to reset.
//!
//! A commit (and a proposal, which changes the public state) is its own
//! transaction under the conversation's `FOR UPDATE` lock
//! ([`PgStore::lock_conversation`]): two servers committing one epoch are
//! ordered by that lock and the loser is answered `409 stale_epoch`. Locks
//! are always taken in the order conversations, replay hashes, devices,
//! items, so batches on different servers never deadlock.
//!
//! # Quotas
//! The storage quotas are checked against counters every server shares
//! (`store::pg_usage`), read at the batch's start and changed at its end;
//! servers committing at once may together pass a quota by what each
//! admitted in that batch. Commits and Welcomes are counted, and checked
//! against the sender quota only, as on SQLite.
//!
//! # Suspensions
//! Each batch reads the suspensions of its senders in its transaction
//! (`store::pg_moderation::suspensions_in`), so a suspension committed on
//! any server refuses the sender's next batch everywhere.
//!
//! # Interceptions
//! Each batch reads the interception holds of its conversations in its
//! transaction, after their `FOR SHARE` locks, and keeps its items of held
//! conversation-days with them; an interception locks its target
//! conversations `FOR UPDATE` before it is stored, so every item of a held
//! day accepted by any server is kept exactly once (`lawful::pg_holds`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use custos_wire::ConversationId;
use custos_wire::frames::{ItemKind, MAX_TAG_LEN};
use openmls::prelude::ContentType;
use sqlx::PgConnection;
use tokio::sync::{mpsc, watch};

use super::{
    CommitDone, CommitReq, NewItem, Op, Reply, SweepReport, WriterHandle, next_batch, push_all,
};
use crate::abuse::franking::Suspension;
use crate::abuse::policy::{AdmitRefusal, DeliveryPolicy, TagInput};
use crate::config::Quota;
use crate::delivery::mailbox::Hub;
use crate::delivery::membership::{self, Conv, Member};
use crate::delivery::public_state::{self, GroupState};
use crate::error::HttpRefusal;
use crate::lawful::pg_holds;
use crate::refusal::LimitRefusal;
use crate::refusal::{ConversationRefusal, RequestRefusal, SubmitRefusal};
use crate::store::pg_conversations::Locked;
use crate::store::pg_mailbox::{self, PgNewItem, StoredItem};
use crate::store::pg_moderation;
use crate::store::pg_usage::{self, Held, UsageDelta};
use crate::store::postgres::PgStore;

/// Rows a retention round deletes at most (per table).
const SWEEP_ROUND: i64 = 1000;

/// Starts the PostgreSQL writer of this server. It stops when every handle
/// is dropped, or when `shutdown` turns true, after answering what was
/// queued.
pub(crate) fn spawn(
    store: PgStore,
    hub: Arc<Hub>,
    policy: Arc<dyn DeliveryPolicy>,
    limits: &crate::config::Limits,
    mut shutdown: watch::Receiver<bool>,
) -> (WriterHandle, tokio::task::JoinHandle<()>) {
    // Row locks are held for the batch's transaction: smaller batches than
    // on SQLite keep other servers' waits short.
    let max_batch = limits.max_batch.clamp(1, 512);
    let quotas = Quotas {
        mailbox: limits.mailbox_quota,
        sender: limits.sender_quota,
    };
    let (tx, mut rx) = mpsc::channel::<Op>(max_batch.saturating_mul(4).max(64));
    let task = tokio::spawn(async move {
        let mut stopping = false;
        while let Some(ops) = next_batch(&mut rx, &mut shutdown, &mut stopping, max_batch).await {
            run_batch(&store, &hub, policy.as_ref(), &quotas, ops).await;
        }
        rx.close();
        tracing::debug!("PostgreSQL writer stopped");
    });
    (WriterHandle { tx }, task)
}

/// A submission routed to its recipients, waiting for the batch's insert.
type Routed = (NewItem, Vec<i64>, Reply<Vec<u8>>);
/// An ack waiting for the batch's delete.
type PendingAck = (i64, Vec<u64>, Option<Reply<u64>>);

/// Runs `ops` in arrival order: runs of submissions and acks share one
/// transaction; commits, proposals, creations and sweeps each have their
/// own, after the run before them has committed.
async fn run_batch(
    store: &PgStore,
    hub: &Hub,
    policy: &dyn DeliveryPolicy,
    quotas: &Quotas,
    ops: Vec<Op>,
) {
    let mut submits: Vec<(NewItem, Reply<Vec<u8>>)> = Vec::new();
    let mut acks: Vec<PendingAck> = Vec::new();
    for op in ops {
        match op {
            Op::Submit { item, reply } if item.kind != ItemKind::Proposal => {
                submits.push((item, reply));
            }
            Op::Ack {
                device_id,
                seqs,
                reply,
            } => acks.push((device_id, seqs, reply)),
            other => {
                flush(
                    store,
                    hub,
                    policy,
                    quotas,
                    std::mem::take(&mut submits),
                    std::mem::take(&mut acks),
                )
                .await;
                apply_other(store, hub, policy, quotas, other).await;
            }
        }
    }
    flush(store, hub, policy, quotas, submits, acks).await;
}

fn refusal_of(err: sqlx::Error) -> HttpRefusal {
    refusal_of_ref(&err)
}

/// Stores a run of submissions and acks in one transaction and answers
/// them after `COMMIT`.
async fn flush(
    store: &PgStore,
    hub: &Hub,
    policy: &dyn DeliveryPolicy,
    quotas: &Quotas,
    submits: Vec<(NewItem, Reply<Vec<u8>>)>,
    acks: Vec<PendingAck>,
) {
    if submits.is_empty() && acks.is_empty() {
        return;
    }
    let mut tagged: Vec<Routed> = Vec::new();
    let result = flush_tx(store, policy, quotas, submits, &acks, &mut tagged).await;
    match result {
        Ok((stored, counts)) => {
            let mut pushes = Vec::new();
            for ((item, _, reply), outcome) in tagged.into_iter().zip(stored) {
                match outcome {
                    StoredItem::Replay => drop(reply.send(Err(SubmitRefusal::Duplicate.into()))),
                    StoredItem::Stored { rows, .. } => {
                        let tag = item.tag.clone();
                        pushes.push((Arc::new(item), rows));
                        drop(reply.send(Ok(tag)));
                    }
                }
            }
            for ((_, _, reply), n) in acks.into_iter().zip(counts) {
                if let Some(r) = reply {
                    drop(r.send(Ok(n)));
                }
            }
            push_all(hub, pushes);
        }
        Err(err) => {
            let failure = refusal_of(err);
            for (_, _, reply) in tagged {
                drop(reply.send(Err(failure.clone())));
            }
            for (_, _, reply) in acks {
                if let Some(r) = reply {
                    drop(r.send(Err(failure.clone())));
                }
            }
        }
    }
}

/// The transaction of [`flush`]: routes, tags and stores the submissions
/// (those still waiting for the outcome are in `pending`, answered by the
/// caller), deletes the acked rows, commits.
async fn flush_tx(
    store: &PgStore,
    policy: &dyn DeliveryPolicy,
    quotas: &Quotas,
    submits: Vec<(NewItem, Reply<Vec<u8>>)>,
    acks: &[PendingAck],
    pending: &mut Vec<Routed>,
) -> Result<(Vec<StoredItem>, Vec<u64>), sqlx::Error> {
    let mut tx = match store.pool().begin().await {
        Ok(tx) => tx,
        Err(e) => {
            let failure = refusal_of_ref(&e);
            for (_, reply) in submits {
                drop(reply.send(Err(failure.clone())));
            }
            return Err(e);
        }
    };
    route(&mut tx, submits, pending).await?;
    if !pending.is_empty() {
        let routed = std::mem::take(pending);
        *pending = refuse_suspended(&mut tx, routed).await?;
    }
    if quotas.enabled() {
        let routed = std::mem::take(pending);
        *pending = admit(&mut tx, quotas, routed).await?;
    }
    *pending = tag(policy, std::mem::take(pending));
    let items: Vec<PgNewItem> = pending
        .iter()
        .map(|(item, recipients, _)| pg_item(item, recipients))
        .collect();
    let stored = pg_mailbox::store_items_in(&mut tx, &items).await?;
    // Copies for the interceptions holding these conversation-days, read in
    // this transaction after the conversations' locks (`lawful::pg_holds`).
    let just_stored: Vec<(i64, &NewItem)> = pending
        .iter()
        .zip(&stored)
        .filter_map(|((item, _, _), s)| match s {
            StoredItem::Stored { item_id, .. } => Some((*item_id, item)),
            StoredItem::Replay => None,
        })
        .collect();
    pg_holds::keep_stored(&mut tx, &just_stored).await?;
    let mut usage = UsageDelta::default();
    pg_usage::add_stored(&mut usage, &items, &stored);
    let counts = apply_acks(&mut tx, acks, &mut usage).await?;
    // Last lock of the batch: the storage counters, in key order.
    pg_usage::apply(&mut tx, &usage).await?;
    // Commit point: durable once this returns (synchronous_commit on); the
    // NOTIFY of the batch is delivered to every server from here on.
    tx.commit().await?;
    Ok((stored, counts))
}

/// Reads the conversations of `submits` `FOR SHARE` (in id order) with
/// their members' devices, refuses what does not route (unknown
/// conversation, sender not a member), and moves the rest to `routed`
/// with its recipients. On a database error, the submissions not yet moved
/// are answered with it and the error is returned (the caller answers
/// `routed`).
async fn route(
    conn: &mut PgConnection,
    submits: Vec<(NewItem, Reply<Vec<u8>>)>,
    routed: &mut Vec<Routed>,
) -> Result<(), sqlx::Error> {
    if submits.is_empty() {
        return Ok(());
    }
    let convs = match load_convs(conn, submits.iter().map(|(i, _)| i.conversation)).await {
        Ok(c) => c,
        Err(e) => {
            let failure = refusal_of_ref(&e);
            for (_, reply) in submits {
                drop(reply.send(Err(failure.clone())));
            }
            return Err(e);
        }
    };
    for (item, reply) in submits {
        let id = item.conversation;
        let Some(conv) = convs.get(&id) else {
            drop(reply.send(Err(ConversationRefusal::UnknownConversation(id).into())));
            continue;
        };
        if !conv.is_member(item.sender_account) {
            drop(reply.send(Err(ConversationRefusal::NotMember(id).into())));
            continue;
        }
        let recipients = conv.devices_except(item.sender_device);
        routed.push((item, recipients, reply));
    }
    Ok(())
}

fn refusal_of_ref(err: &sqlx::Error) -> HttpRefusal {
    if crate::error::database_unreachable(err) {
        RequestRefusal::DatabaseUnavailable.into()
    } else {
        HttpRefusal::internal("writer batch failed", err)
    }
}

/// The conversations `ids` with their epoch and members' devices, each
/// row read `FOR SHARE` in id order.
async fn load_convs(
    conn: &mut PgConnection,
    ids: impl Iterator<Item = ConversationId>,
) -> Result<HashMap<ConversationId, Conv>, sqlx::Error> {
    let mut ids: Vec<[u8; 16]> = ids.map(|c| c.0).collect();
    ids.sort_unstable();
    ids.dedup();
    let keys: Vec<&[u8]> = ids.iter().map(|i| i.as_slice()).collect();
    let epochs: Vec<(Vec<u8>, i64)> = sqlx::query_as(
        "SELECT id, epoch FROM conversations WHERE id = ANY($1) ORDER BY id FOR SHARE",
    )
    .bind(&keys)
    .fetch_all(&mut *conn)
    .await?;
    let rows: Vec<(Vec<u8>, i64, i64)> = sqlx::query_as(
        "SELECT m.conversation, m.account_id, d.id FROM members m \
         JOIN devices d ON d.account_id = m.account_id \
         WHERE m.conversation = ANY($1) ORDER BY m.conversation, m.account_id, d.id",
    )
    .bind(&keys)
    .fetch_all(&mut *conn)
    .await?;
    let mut grouped: BTreeMap<Vec<u8>, Vec<(i64, i64)>> = BTreeMap::new();
    for (conv, account, device) in rows {
        grouped.entry(conv).or_default().push((account, device));
    }
    let mut out = HashMap::with_capacity(epochs.len());
    for (id, epoch) in epochs {
        let Ok(key) = <[u8; 16]>::try_from(id.as_slice()) else {
            continue;
        };
        let members = membership::group(grouped.remove(&id).unwrap_or_default());
        out.insert(
            ConversationId(key),
            Conv {
                epoch: u64::try_from(epoch).unwrap_or(0),
                members,
            },
        );
    }
    Ok(out)
}

/// Issues the delivery tags of the routed submissions in one call of the
/// policy; a submission whose tag cannot be delivered is answered 500.
fn tag(policy: &dyn DeliveryPolicy, routed: Vec<Routed>) -> Vec<Routed> {
    if routed.is_empty() {
        return routed;
    }
    let no_hash = [0u8; 32];
    let tags = {
        let inputs: Vec<TagInput<'_>> = routed
            .iter()
            .map(|(item, _, _)| TagInput {
                kind: item.kind,
                conversation: item.conversation,
                sender: &item.sender_name,
                server_time: item.server_time,
                item_hash: item.hash.as_ref().unwrap_or(&no_hash),
                franking_commitment: item.franking_commitment.as_ref(),
            })
            .collect();
        policy.tag_batch(&inputs)
    };
    if tags.len() != routed.len() {
        let e = HttpRefusal::internal(
            "delivery policy",
            "tag_batch returned another number of tags than items",
        );
        for (_, _, reply) in routed {
            drop(reply.send(Err(e.clone())));
        }
        return Vec::new();
    }
    let mut out = Vec::with_capacity(routed.len());
    for ((mut item, recipients, reply), tag) in routed.into_iter().zip(tags) {
        if tag.len() > MAX_TAG_LEN {
            let e = HttpRefusal::internal("delivery policy", "tag longer than MAX_TAG_LEN");
            drop(reply.send(Err(e)));
            continue;
        }
        item.tag = tag;
        out.push((item, recipients, reply));
    }
    out
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The store's form of an item for `recipients`.
fn pg_item(item: &NewItem, recipients: &[i64]) -> PgNewItem {
    PgNewItem {
        kind: i16::from(item.kind.to_byte()),
        conversation: item.conversation,
        sender: item.sender_name.to_string(),
        server_time: to_i64(item.server_time),
        expires_at: to_i64(item.expires_at),
        hash: item.hash,
        tag: item.tag.clone(),
        body: item.body.to_vec(),
        recipients: recipients.to_vec(),
    }
}

/// Deletes the rows of every ack in one statement; each ack is answered
/// with the number of its own rows deleted (a row acked twice in a batch
/// counts for the first ack).
async fn apply_acks(
    conn: &mut PgConnection,
    acks: &[PendingAck],
    usage: &mut UsageDelta,
) -> Result<Vec<u64>, sqlx::Error> {
    if acks.is_empty() {
        return Ok(Vec::new());
    }
    let mut owner: HashMap<(i64, i64), usize> = HashMap::new();
    let mut rows = Vec::new();
    for (i, (device, seqs, _)) in acks.iter().enumerate() {
        for s in seqs {
            if let Ok(s) = i64::try_from(*s)
                && !owner.contains_key(&(*device, s))
            {
                owner.insert((*device, s), i);
                rows.push((*device, s));
            }
        }
    }
    let acked = pg_mailbox::ack_rows_in(conn, &rows).await?;
    merge(usage, acked.usage);
    let mut counts = vec![0u64; acks.len()];
    for key in acked.rows {
        if let Some(c) = owner.get(&key).and_then(|i| counts.get_mut(*i)) {
            *c += 1;
        }
    }
    Ok(counts)
}

/// The storage quotas (`delivery::quota`), enforced on this backend from
/// the shared counters of `store::pg_usage`.
struct Quotas {
    mailbox: Quota,
    sender: Quota,
}

impl Quotas {
    fn enabled(&self) -> bool {
        self.mailbox != Quota::UNLIMITED || self.sender != Quota::UNLIMITED
    }
}

fn fits(q: &Quota, h: Held, bytes: i64) -> bool {
    let items = u64::try_from(h.items.saturating_add(1)).unwrap_or(0);
    let total = u64::try_from(h.bytes.saturating_add(bytes)).unwrap_or(0);
    (q.items == 0 || items <= q.items) && (q.bytes == 0 || total <= q.bytes)
}

fn held_u64(h: Held) -> (u64, u64) {
    (
        u64::try_from(h.items).unwrap_or(0),
        u64::try_from(h.bytes).unwrap_or(0),
    )
}

/// Checks each routed submission, in order, against both quotas as the
/// counters stood at the batch's start plus what the batch admitted before
/// it (as the SQLite writer's `Usage::admit`); refuses the ones that would
/// pass one, whole (`429 sender_quota` or `mailbox_full`).
async fn admit(
    conn: &mut PgConnection,
    quotas: &Quotas,
    routed: Vec<Routed>,
) -> Result<Vec<Routed>, sqlx::Error> {
    let mut devices: Vec<i64> = routed.iter().flat_map(|r| r.1.iter().copied()).collect();
    devices.sort_unstable();
    devices.dedup();
    let mut senders: Vec<String> = routed.iter().map(|r| r.0.sender_name.to_string()).collect();
    senders.sort_unstable();
    senders.dedup();
    let (mut per_device, mut per_sender) = match pg_usage::held(conn, &devices, &senders).await {
        Ok(held) => held,
        Err(e) => return Err(answer_failed(routed, e)),
    };
    let mut out = Vec::with_capacity(routed.len());
    for (item, recipients, reply) in routed {
        if recipients.is_empty() {
            out.push((item, recipients, reply));
            continue;
        }
        let bytes = i64::try_from(item.body.len()).unwrap_or(i64::MAX);
        let sent = per_sender
            .get(item.sender_name.as_ref())
            .copied()
            .unwrap_or_default();
        if !fits(&quotas.sender, sent, bytes) {
            let (items, bytes) = held_u64(sent);
            drop(reply.send(Err(LimitRefusal::SenderQuota { items, bytes }.into())));
            continue;
        }
        let full = recipients.iter().find_map(|d| {
            let h = per_device.get(d).copied().unwrap_or_default();
            (!fits(&quotas.mailbox, h, bytes)).then_some(h)
        });
        if let Some(h) = full {
            let (items, bytes) = held_u64(h);
            drop(reply.send(Err(LimitRefusal::MailboxFull { items, bytes }.into())));
            continue;
        }
        let s = per_sender.entry(item.sender_name.to_string()).or_default();
        s.items += 1;
        s.bytes += bytes;
        for d in &recipients {
            let h = per_device.entry(*d).or_default();
            h.items += 1;
            h.bytes += bytes;
        }
        out.push((item, recipients, reply));
    }
    Ok(out)
}

/// Answers every submission of `routed` with the database failure `e`
/// (nothing of the batch is stored), and gives `e` back to return.
fn answer_failed(routed: Vec<Routed>, e: sqlx::Error) -> sqlx::Error {
    let failure = refusal_of_ref(&e);
    for (_, _, reply) in routed {
        drop(reply.send(Err(failure.clone())));
    }
    e
}

/// Refuses the submissions of senders suspended at their acceptance time,
/// as read in the batch's transaction: a suspension a moderator committed
/// on any server before this batch began refuses them here (`403
/// suspended`), whatever this process's policy remembers.
async fn refuse_suspended(
    conn: &mut PgConnection,
    routed: Vec<Routed>,
) -> Result<Vec<Routed>, sqlx::Error> {
    let mut senders: Vec<String> = routed.iter().map(|r| r.0.sender_name.to_string()).collect();
    senders.sort_unstable();
    senders.dedup();
    let earliest = routed.iter().map(|r| r.0.server_time).min().unwrap_or(0);
    let suspended = match pg_moderation::suspensions_in(conn, &senders, to_i64(earliest)).await {
        Ok(s) => s,
        Err(e) => return Err(answer_failed(routed, e)),
    };
    if suspended.is_empty() {
        return Ok(routed);
    }
    let mut out = Vec::with_capacity(routed.len());
    for (item, recipients, reply) in routed {
        let until = match suspended.get(item.sender_name.as_ref()) {
            None => None,
            Some(Suspension::Permanent) => Some(None),
            Some(Suspension::Until(t)) if *t > item.server_time => Some(Some(*t)),
            Some(Suspension::Until(_)) => None,
        };
        match until {
            None => out.push((item, recipients, reply)),
            Some(until) => {
                let refusal = AdmitRefusal::Suspended {
                    account: item.sender_name.to_string(),
                    until,
                };
                drop(reply.send(Err(SubmitRefusal::Policy(refusal).into())));
            }
        }
    }
    Ok(out)
}

fn merge(into: &mut UsageDelta, from: UsageDelta) {
    for (d, h) in from.devices {
        let e = into.devices.entry(d).or_default();
        e.items += h.items;
        e.bytes += h.bytes;
    }
    for (k, h) in from.senders {
        let e = into.senders.entry(k).or_default();
        e.items += h.items;
        e.bytes += h.bytes;
    }
}

/// Applies an operation that has its own transaction.
async fn apply_other(
    store: &PgStore,
    hub: &Hub,
    policy: &dyn DeliveryPolicy,
    quotas: &Quotas,
    op: Op,
) {
    match op {
        Op::Submit { item, reply } => {
            let out = proposal(store, hub, policy, item).await;
            drop(reply.send(out));
        }
        Op::Ack { .. } => {}
        Op::CreateConversation {
            conversation,
            account_id,
            state,
            now,
            reply,
        } => {
            let out = create(store, conversation, account_id, &state, now).await;
            drop(reply.send(out));
        }
        Op::Commit { req, reply } => {
            let out = commit(store, hub, quotas, *req).await;
            drop(reply.send(out));
        }
        Op::Sweep { now, reply } => {
            let out = sweep(store, now).await;
            if let Some(r) = reply {
                drop(r.send(out));
            }
        }
        Op::Intercept { new, reply } => {
            let out = pg_holds::intercept(store, &new).await.map_err(refusal_of);
            drop(reply.send(out));
        }
    }
}

/// Registers a conversation from its creator's verified public state (as
/// on SQLite); the id is taken once across servers.
async fn create(
    store: &PgStore,
    conversation: ConversationId,
    account_id: i64,
    state: &GroupState,
    now: u64,
) -> Result<(), HttpRefusal> {
    let invalid =
        |why: String| -> HttpRefusal { ConversationRefusal::InvalidGroupState(why).into() };
    let leaves = state.roster().map_err(invalid)?;
    let names: Vec<String> = leaves.iter().map(|l| l.name.clone()).collect();
    let rows = store.roster_accounts(&names).await?;
    let rows = rows
        .into_iter()
        .map(|r| (r.account_id, r.name, r.identity_key, r.device_id))
        .collect();
    let members = membership::admit_roster(&leaves, rows).map_err(invalid)?;
    if !members.iter().any(|m| m.account_id == account_id) {
        return Err(invalid(
            "the creator is not a member of the group it uploads".into(),
        ));
    }
    let blob = state
        .encode()
        .map_err(|e| HttpRefusal::internal("encode group state", e))?;
    let ids: Vec<i64> = members.iter().map(|m| m.account_id).collect();
    if store
        .create_conversation(&conversation, &ids, &blob, to_i64(now))
        .await?
    {
        Ok(())
    } else {
        Err(ConversationRefusal::ConversationExists(conversation).into())
    }
}

/// Whether `account` is a member of `conversation` now (for the order of
/// refusals: a non-member is told so before it is told its epoch is stale).
async fn is_member(
    store: &PgStore,
    conversation: &ConversationId,
    account: i64,
) -> Result<bool, sqlx::Error> {
    let row: Option<i64> = sqlx::query_scalar(
        "SELECT account_id FROM members WHERE conversation = $1 AND account_id = $2",
    )
    .bind(conversation.0.as_slice())
    .bind(account)
    .fetch_optional(store.pool())
    .await?;
    Ok(row.is_some())
}

/// Applies a commit under the conversation's lock: the same checks and
/// verification as on SQLite, then the new epoch, state, members, the
/// commit and its Welcome in one transaction.
async fn commit(
    store: &PgStore,
    hub: &Hub,
    quotas: &Quotas,
    req: CommitReq,
) -> Result<CommitDone, HttpRefusal> {
    let conversation = req.commit.conversation;
    let invalid = |why: String| -> HttpRefusal { ConversationRefusal::InvalidCommit(why).into() };
    let mut locked = match store.lock_conversation(&conversation, req.epoch).await? {
        Locked::Unknown => {
            return Err(ConversationRefusal::UnknownConversation(conversation).into());
        }
        Locked::Stale { current } => {
            if !is_member(store, &conversation, req.commit.sender_account).await? {
                return Err(ConversationRefusal::NotMember(conversation).into());
            }
            if req.epoch != req.handshake.epoch {
                return Err(invalid(format!(
                    "the request says epoch {} but the commit is for epoch {}",
                    req.epoch, req.handshake.epoch
                )));
            }
            return Err(ConversationRefusal::StaleEpoch {
                sent: req.epoch,
                current,
            }
            .into());
        }
        Locked::Held(l) => l,
    };
    if locked
        .members
        .binary_search(&req.commit.sender_account)
        .is_err()
    {
        return Err(ConversationRefusal::NotMember(conversation).into());
    }
    if req.epoch != req.handshake.epoch {
        return Err(invalid(format!(
            "the request says epoch {} but the commit is for epoch {}",
            req.epoch, req.handshake.epoch
        )));
    }
    if quotas.enabled() {
        // As on SQLite: the sender quota applies to commits and Welcomes (a
        // full mailbox does not block them).
        let bytes = req.commit.body.len() + req.welcome.as_ref().map_or(0, |w| w.body.len());
        let sender = req.commit.sender_name.to_string();
        let (_, held) = pg_usage::held(locked.conn(), &[], std::slice::from_ref(&sender)).await?;
        let sent = held.get(&sender).copied().unwrap_or_default();
        if !fits(
            &quotas.sender,
            sent,
            i64::try_from(bytes).unwrap_or(i64::MAX),
        ) {
            let (items, bytes) = held_u64(sent);
            return Err(LimitRefusal::SenderQuota { items, bytes }.into());
        }
    }
    let mut state = GroupState::decode(&conversation, &locked.state)
        .map_err(|e| HttpRefusal::internal("stored group state", e))?;
    if state.epoch() != locked.epoch {
        return Err(HttpRefusal::internal(
            "group state",
            "stored public state and epoch disagree",
        ));
    }
    state.apply_commit(req.handshake, &req.commit.sender_name)?;
    let leaves = state.roster().map_err(invalid)?;
    let names: Vec<String> = leaves.iter().map(|l| l.name.clone()).collect();
    let rows = locked
        .roster_accounts(&names)
        .await?
        .into_iter()
        .map(|r| (r.account_id, r.name, r.identity_key, r.device_id))
        .collect();
    let new_members: Vec<Member> = membership::admit_roster(&leaves, rows).map_err(invalid)?;
    if new_members.len() > req.max_members {
        return Err(ConversationRefusal::BadMembers(req.max_members).into());
    }
    let old = locked.members.clone();
    let added: Vec<&Member> = new_members
        .iter()
        .filter(|m| old.binary_search(&m.account_id).is_err())
        .collect();
    match (&req.welcome, added.is_empty()) {
        (None, false) => return Err(ConversationRefusal::WelcomeRequired.into()),
        (Some(_), true) => return Err(ConversationRefusal::UnexpectedWelcome.into()),
        _ => {}
    }
    let blob = state
        .encode()
        .map_err(|e| HttpRefusal::internal("encode group state", e))?;
    // As on SQLite: the commit goes to every device of the members before
    // it (removed ones included), except the committing device; new
    // members join from the Welcome alone.
    let recipients: Vec<i64> = locked
        .devices_of(&old)
        .await?
        .into_iter()
        .filter(|d| *d != req.commit.sender_device)
        .collect();
    let welcome_to: Vec<i64> = added
        .iter()
        .flat_map(|m| m.devices.iter().copied())
        .collect();
    let mut items = vec![pg_item(&req.commit, &recipients)];
    if let Some(w) = &req.welcome {
        items.push(pg_item(w, &welcome_to));
    }
    let member_ids: Vec<i64> = new_members.iter().map(|m| m.account_id).collect();
    let (epoch, stored) = locked.commit_with(&member_ids, &blob, &items).await?;
    let mut pushes = Vec::new();
    let mut item_id = 0;
    let mut outcomes = stored.into_iter();
    if let Some(StoredItem::Stored { item_id: id, rows }) = outcomes.next() {
        item_id = id;
        pushes.push((Arc::new(req.commit), rows));
    }
    if let (Some(w), Some(StoredItem::Stored { rows, .. })) = (req.welcome, outcomes.next()) {
        pushes.push((Arc::new(w), rows));
    }
    push_all(hub, pushes);
    Ok(CommitDone { epoch, item_id })
}

/// Verifies a member's proposal against the public state and queues it
/// there, storing the proposal for the other members, in one transaction
/// under the conversation's lock.
async fn proposal(
    store: &PgStore,
    hub: &Hub,
    policy: &dyn DeliveryPolicy,
    item: NewItem,
) -> Result<Vec<u8>, HttpRefusal> {
    let id = item.conversation;
    let sent = item.epoch.unwrap_or(u64::MAX);
    let locked = match store.lock_conversation(&id, sent).await? {
        Locked::Unknown => return Err(ConversationRefusal::UnknownConversation(id).into()),
        Locked::Stale { current } => {
            if !is_member(store, &id, item.sender_account).await? {
                return Err(ConversationRefusal::NotMember(id).into());
            }
            return Err(ConversationRefusal::StaleEpoch { sent, current }.into());
        }
        Locked::Held(l) => l,
    };
    if locked.members.binary_search(&item.sender_account).is_err() {
        return Err(ConversationRefusal::NotMember(id).into());
    }
    let mut state = GroupState::decode(&id, &locked.state)
        .map_err(|e| HttpRefusal::internal("stored group state", e))?;
    public_state::parse_handshake(&item.body, &id, ContentType::Proposal)
        .and_then(|h| state.queue_proposal(h, &item.sender_name))
        .map_err(HttpRefusal::from)?;
    let blob = state
        .encode()
        .map_err(|e| HttpRefusal::internal("encode group state", e))?;
    let mut locked = locked;
    let members = locked.members.clone();
    let recipients: Vec<i64> = locked
        .devices_of(&members)
        .await?
        .into_iter()
        .filter(|d| *d != item.sender_device)
        .collect();
    let (sink, _answer) = tokio::sync::oneshot::channel();
    let mut tagged = tag(policy, vec![(item, recipients, sink)]);
    let Some((item, recipients, _)) = tagged.pop() else {
        return Err(HttpRefusal::internal("delivery policy", "no tag issued"));
    };
    let stored = locked
        .store_with(&blob, &[pg_item(&item, &recipients)])
        .await?;
    match stored.into_iter().next() {
        Some(StoredItem::Stored { rows, .. }) => {
            let tag = item.tag.clone();
            push_all(hub, vec![(Arc::new(item), rows)]);
            Ok(tag)
        }
        _ => Err(SubmitRefusal::Duplicate.into()),
    }
}

/// Retention on PostgreSQL: rounds of expired items, replay hashes,
/// sessions and spent login answers, each round skipping rows another
/// server's sweep holds; then ended interceptions and their kept copies.
async fn sweep(store: &PgStore, now: u64) -> Result<SweepReport, HttpRefusal> {
    let now = to_i64(now);
    let mut report = SweepReport::default();
    loop {
        let round = store.sweep_expired(now, SWEEP_ROUND).await?;
        report.items = report.items.saturating_add(round.items);
        if !round.more(SWEEP_ROUND) {
            break;
        }
    }
    while store.sweep_challenges(now, SWEEP_ROUND).await? >= u64::try_from(SWEEP_ROUND).unwrap_or(0)
    {
    }
    store.sweep_blobs(now, SWEEP_ROUND).await?;
    pg_holds::sweep(store, now, SWEEP_ROUND).await?;
    Ok(report)
}
