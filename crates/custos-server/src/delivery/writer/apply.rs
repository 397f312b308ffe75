//! Applying operations inside the writer's transaction: routing and replay
//! checks, bulk inserts of items and mailbox rows, bulk acks, conversation
//! registration and ordered commits.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use custos_wire::ConversationId;
use custos_wire::frames::{ItemKind, MAX_TAG_LEN};
use sqlx::sqlite::SqliteConnection;
use sqlx::{QueryBuilder, Sqlite};

use super::{CommitDone, CommitReq, Deferred, NewItem, Op, Reply, Staged};
use crate::abuse::policy::TagInput;
use crate::delivery::membership::{self, Conv};
use crate::delivery::public_state::{self, GroupState};
use crate::delivery::quota::Usage;
use crate::error::HttpRefusal;
use crate::refusal::{ConversationRefusal, SubmitRefusal};
use openmls::prelude::ContentType;

/// The conversation as this batch sees it: staged changes, then the cache,
/// then the database.
async fn conv_of(
    conn: &mut SqliteConnection,
    st: &mut Staged<'_>,
    id: &ConversationId,
) -> Result<Option<Conv>, sqlx::Error> {
    if let Some(c) = st.convs.get(id) {
        return Ok(Some(c.clone()));
    }
    if let Some(c) = st.cache.get(id) {
        return Ok(Some(c.clone()));
    }
    let loaded = membership::load(conn, id).await?;
    if let Some(c) = &loaded {
        st.cache.insert(*id, c.clone());
    }
    Ok(loaded)
}

pub(super) async fn route_submit(
    conn: &mut SqliteConnection,
    st: &mut Staged<'_>,
    item: &NewItem,
) -> Result<Result<Vec<i64>, HttpRefusal>, sqlx::Error> {
    let id = &item.conversation;
    // The hot path looks the conversation up by reference, without a clone.
    if !st.convs.contains_key(id) && st.cache.get(id).is_none() {
        match membership::load(conn, id).await? {
            Some(c) => st.cache.insert(*id, c),
            None => return Ok(Err(unknown_conversation(id))),
        }
    }
    let Some(conv) = st.convs.get(id).or_else(|| st.cache.get(id)) else {
        return Ok(Err(unknown_conversation(id)));
    };
    if !conv.is_member(item.sender_account) {
        return Ok(Err(not_member(id)));
    }
    if let Some(epoch) = item.epoch
        && epoch != conv.epoch
    {
        return Ok(Err(ConversationRefusal::StaleEpoch {
            sent: epoch,
            current: conv.epoch,
        }
        .into()));
    }
    let recipients = conv.devices_except(item.sender_device);
    if let Err(e) = st
        .usage
        .admit(&item.sender_name, item.body.len(), &recipients)
    {
        return Ok(Err(e.into()));
    }
    if item.kind == ItemKind::Proposal
        && let Err(e) = queue_proposal(conn, item).await?
    {
        st.usage
            .release(&item.sender_name, item.body.len(), &recipients);
        return Ok(Err(e));
    }
    Ok(Ok(recipients))
}

/// Answers a routed submission with `err`, giving back its reserved quota.
fn refuse(usage: &mut Usage, s: Checked, err: HttpRefusal) {
    usage.release(&s.0.sender_name, s.0.body.len(), &s.1);
    drop(s.2.send(Err(err)));
}

fn unknown_conversation(id: &ConversationId) -> HttpRefusal {
    ConversationRefusal::UnknownConversation(*id).into()
}

fn not_member(id: &ConversationId) -> HttpRefusal {
    ConversationRefusal::NotMember(*id).into()
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

const SEEN_CHUNK: usize = 500;
const ITEM_CHUNK: usize = 200;
const MAILBOX_CHUNK: usize = 1000;

/// Bulk-inserts the checked submissions: replay check, items, mailbox rows.
pub(super) async fn flush_submits(
    conn: &mut SqliteConnection,
    st: &mut Staged<'_>,
) -> Result<(), sqlx::Error> {
    if st.submits.is_empty() {
        return Ok(());
    }
    let submits = std::mem::take(&mut st.submits);
    // Duplicates within the batch, then against every hash still remembered.
    let mut in_batch = HashSet::with_capacity(submits.len());
    let mut unique = Vec::with_capacity(submits.len());
    for s in submits {
        match s.0.hash {
            Some(h) if !in_batch.insert(h) => refuse(st.usage, s, duplicate()),
            _ => unique.push(s),
        }
    }
    let mut fresh: HashSet<Vec<u8>> = HashSet::with_capacity(unique.len());
    for chunk in unique.chunks(SEEN_CHUNK) {
        let rows: Vec<_> = chunk
            .iter()
            .filter_map(|s| s.0.hash.map(|h| (h, s.0.expires_at)))
            .collect();
        if rows.is_empty() {
            continue;
        }
        let mut qb = QueryBuilder::<Sqlite>::new("INSERT INTO seen (hash, expires_at) ");
        qb.push_values(rows, |mut b, (h, exp)| {
            b.push_bind(h.to_vec()).push_bind(to_i64(exp));
        });
        qb.push(" ON CONFLICT(hash) DO NOTHING RETURNING hash");
        let got: Vec<Vec<u8>> = qb.build_query_scalar().fetch_all(&mut *conn).await?;
        fresh.extend(got);
    }
    let mut accepted = Vec::with_capacity(unique.len());
    for s in unique {
        match s.0.hash {
            Some(h) if !fresh.contains(h.as_slice()) => refuse(st.usage, s, duplicate()),
            _ => accepted.push(s),
        }
    }
    let accepted = tag_accepted(st, accepted);
    // Items with no recipient (a conversation of one) are accepted but not stored.
    let mut stored = Vec::with_capacity(accepted.len());
    let mut mailbox: Vec<(i64, i64, i64)> = Vec::new();
    for (item, recipients, reply) in accepted {
        st.deferred.push(Deferred::Tag(reply, item.tag.clone()));
        if recipients.is_empty() {
            continue;
        }
        let id = st.counters.next_item;
        st.counters.next_item = id.saturating_add(1);
        let mut rows = Vec::with_capacity(recipients.len());
        for device in recipients {
            let seq = st.counters.next_seq;
            st.counters.next_seq = seq.saturating_add(1);
            rows.push((device, seq));
            mailbox.push((device, seq, id));
        }
        stored.push((id, Arc::new(item), rows));
    }
    for chunk in stored.chunks(ITEM_CHUNK) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT INTO items (id, kind, expires_at, server_time, conversation, sender, tag, body) ",
        );
        qb.push_values(chunk, |mut b, (id, item, _)| {
            bind_item(&mut b, *id, item);
        });
        qb.build().execute(&mut *conn).await?;
    }
    insert_mailbox(conn, &mailbox).await?;
    st.holds.keep_stored(conn, &stored).await?;
    for (_, item, rows) in stored {
        st.pushes.push((item, rows));
    }
    Ok(())
}

type Checked = (NewItem, Vec<i64>, Reply<Vec<u8>>);

/// Issues the delivery tags of the accepted submissions, all in one call of
/// the policy (one signature per tag batch), before anything is inserted.
/// A submission whose tag cannot be delivered is answered 500 and dropped.
fn tag_accepted(st: &mut Staged<'_>, accepted: Vec<Checked>) -> Vec<Checked> {
    if accepted.is_empty() {
        return accepted;
    }
    let no_hash = [0u8; 32];
    let tags = {
        let inputs: Vec<TagInput<'_>> = accepted
            .iter()
            .map(|(item, _, _)| TagInput {
                kind: item.kind,
                conversation: item.conversation,
                sender: &item.sender_name,
                server_time: item.server_time,
                // Submissions always carry their hash (only commits and
                // Welcomes have none, and they do not come here).
                item_hash: item.hash.as_ref().unwrap_or(&no_hash),
                franking_commitment: item.franking_commitment.as_ref(),
            })
            .collect();
        st.policy.tag_batch(&inputs)
    };
    if tags.len() != accepted.len() {
        let e = HttpRefusal::internal(
            "delivery policy",
            "tag_batch returned another number of tags than items",
        );
        for s in accepted {
            refuse(st.usage, s, e.clone());
        }
        return Vec::new();
    }
    let mut out = Vec::with_capacity(accepted.len());
    for ((mut item, recipients, reply), tag) in accepted.into_iter().zip(tags) {
        if tag.len() > MAX_TAG_LEN {
            let e = HttpRefusal::internal("delivery policy", "tag longer than MAX_TAG_LEN");
            refuse(st.usage, (item, recipients, reply), e);
            continue;
        }
        item.tag = tag;
        out.push((item, recipients, reply));
    }
    out
}

/// Deletes the rows of every ack gathered so far, in one statement per
/// chunk; each ack is answered with the number of its own rows deleted (a
/// row acked twice in a batch counts for the first ack).
pub(super) async fn flush_acks(
    conn: &mut SqliteConnection,
    st: &mut Staged<'_>,
) -> Result<(), sqlx::Error> {
    if st.acks.is_empty() {
        return Ok(());
    }
    let acks = std::mem::take(&mut st.acks);
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
    let deleted = crate::delivery::mailbox::apply_acks(conn, &rows, st.usage).await?;
    let mut counts = vec![0u64; acks.len()];
    for key in deleted {
        if let Some(c) = owner.get(&key).and_then(|i| counts.get_mut(*i)) {
            *c += 1;
        }
    }
    for ((_, _, reply), n) in acks.into_iter().zip(counts) {
        st.deferred.push(Deferred::Count(reply, n));
    }
    Ok(())
}

fn bind_item(
    b: &mut sqlx::query_builder::Separated<'_, Sqlite, &'static str>,
    id: i64,
    item: &NewItem,
) {
    b.push_bind(id)
        .push_bind(i64::from(item.kind.to_byte()))
        .push_bind(to_i64(item.expires_at))
        .push_bind(to_i64(item.server_time))
        .push_bind(item.conversation.0.to_vec())
        .push_bind(item.sender_name.to_string())
        .push_bind(item.tag.clone())
        .push_bind(item.body.to_vec());
}

async fn insert_mailbox(
    conn: &mut SqliteConnection,
    rows: &[(i64, i64, i64)],
) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(MAILBOX_CHUNK) {
        let mut qb = QueryBuilder::<Sqlite>::new("INSERT INTO mailbox (device_id, seq, item_id) ");
        qb.push_values(chunk, |mut b, (d, s, i)| {
            b.push_bind(*d).push_bind(*s).push_bind(*i);
        });
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

fn duplicate() -> HttpRefusal {
    SubmitRefusal::Duplicate.into()
}

/// Stores one item for `recipients` (used by commits and Welcomes).
async fn store_one(
    conn: &mut SqliteConnection,
    st: &mut Staged<'_>,
    item: NewItem,
    recipients: Vec<i64>,
) -> Result<i64, sqlx::Error> {
    let id = st.counters.next_item;
    st.counters.next_item = id.saturating_add(1);
    if recipients.is_empty() {
        return Ok(id);
    }
    st.usage
        .stored(&item.sender_name, item.body.len(), &recipients);
    let mut qb = QueryBuilder::<Sqlite>::new(
        "INSERT INTO items (id, kind, expires_at, server_time, conversation, sender, tag, body) ",
    );
    qb.push_values([&item], |mut b, item| bind_item(&mut b, id, item));
    qb.build().execute(&mut *conn).await?;
    let mut rows = Vec::with_capacity(recipients.len());
    let mut mailbox = Vec::with_capacity(recipients.len());
    for device in recipients {
        let seq = st.counters.next_seq;
        st.counters.next_seq = seq.saturating_add(1);
        rows.push((device, seq));
        mailbox.push((device, seq, id));
    }
    insert_mailbox(conn, &mailbox).await?;
    st.pushes.push((Arc::new(item), rows));
    Ok(id)
}

pub(super) async fn apply_other(
    conn: &mut SqliteConnection,
    st: &mut Staged<'_>,
    op: Op,
) -> Result<(), sqlx::Error> {
    match op {
        Op::Submit { .. } => {}
        Op::Ack {
            device_id,
            seqs,
            reply,
        } => {
            st.acks.push((device_id, seqs, reply));
            flush_acks(conn, st).await?;
        }
        Op::CreateConversation {
            conversation,
            account_id,
            state,
            now,
            reply,
        } => match create(conn, st, conversation, account_id, &state, now).await? {
            Ok(()) => st.deferred.push(Deferred::Unit(reply)),
            Err(e) => drop(reply.send(Err(e))),
        },
        Op::Commit { req, reply } => match commit(conn, st, *req).await? {
            Ok(done) => st.deferred.push(Deferred::Commit(reply, done)),
            Err(e) => drop(reply.send(Err(e))),
        },
        Op::Sweep { now, reply } => {
            let report = crate::delivery::retention::sweep(conn, to_i64(now), st.usage).await?;
            crate::lawful::holds::sweep(conn, to_i64(now)).await?;
            st.holds.prune(now);
            st.deferred.push(Deferred::Sweep(reply, report));
        }
        Op::Intercept { new, reply } => {
            let kept = st.holds.intercept(conn, *new).await?;
            st.deferred.push(Deferred::Kept(reply, kept));
        }
    }
    Ok(())
}

/// Registers a conversation from its creator's verified public state: the
/// members are the accounts its leaves name, and the creator must be one.
async fn create(
    conn: &mut SqliteConnection,
    st: &mut Staged<'_>,
    conversation: ConversationId,
    account_id: i64,
    state: &GroupState,
    now: u64,
) -> Result<Result<(), HttpRefusal>, sqlx::Error> {
    if conv_of(conn, st, &conversation).await?.is_some() {
        return Ok(Err(
            ConversationRefusal::ConversationExists(conversation).into()
        ));
    }
    let invalid =
        |why: String| -> HttpRefusal { ConversationRefusal::InvalidGroupState(why).into() };
    let leaves = match state.roster() {
        Ok(l) => l,
        Err(why) => return Ok(Err(invalid(why))),
    };
    let members = match membership::resolve_roster(conn, &leaves).await? {
        Ok(m) => m,
        Err(why) => return Ok(Err(invalid(why))),
    };
    if !members.iter().any(|m| m.account_id == account_id) {
        return Ok(Err(invalid(
            "the creator is not a member of the group it uploads".into(),
        )));
    }
    let blob = match state.encode() {
        Ok(b) => b,
        Err(e) => return Ok(Err(HttpRefusal::internal("encode group state", e))),
    };
    let conv = membership::create(conn, &conversation, members, &blob, to_i64(now)).await?;
    st.convs.insert(conversation, conv);
    Ok(Ok(()))
}

/// Loads a conversation's public state inside the batch's transaction (so a
/// commit sees the one staged before it in the same batch).
async fn state_of(
    conn: &mut SqliteConnection,
    conversation: &ConversationId,
    missing: impl FnOnce() -> ConversationRefusal,
) -> Result<Result<GroupState, HttpRefusal>, sqlx::Error> {
    let Some(blob) = membership::load_state(conn, conversation).await? else {
        return Ok(Err(missing().into()));
    };
    Ok(GroupState::decode(conversation, &blob)
        .map_err(|e| HttpRefusal::internal("stored group state", e)))
}

/// Verifies a member's proposal against the conversation's public state and
/// queues it there, in the batch's transaction.
async fn queue_proposal(
    conn: &mut SqliteConnection,
    item: &NewItem,
) -> Result<Result<(), HttpRefusal>, sqlx::Error> {
    let id = &item.conversation;
    let mut state = match state_of(conn, id, || {
        ConversationRefusal::InvalidProposal(
            "the conversation has no public MLS state on the service".into(),
        )
    })
    .await?
    {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    let queued = public_state::parse_handshake(&item.body, id, ContentType::Proposal)
        .and_then(|h| state.queue_proposal(h, &item.sender_name));
    if let Err(e) = queued {
        return Ok(Err(e.into()));
    }
    match state.encode() {
        Ok(blob) => {
            membership::write_state(conn, id, &blob).await?;
            Ok(Ok(()))
        }
        Err(e) => Ok(Err(HttpRefusal::internal("encode group state", e))),
    }
}

/// Applies a commit: membership and epoch checks, then the commit is
/// verified against the stored public state and merged; the new members and
/// epoch are read from the merged state, and written with it.
async fn commit(
    conn: &mut SqliteConnection,
    st: &mut Staged<'_>,
    req: CommitReq,
) -> Result<Result<CommitDone, HttpRefusal>, sqlx::Error> {
    let conversation = req.commit.conversation;
    let Some(conv) = conv_of(conn, st, &conversation).await? else {
        return Ok(Err(unknown_conversation(&conversation)));
    };
    if !conv.is_member(req.commit.sender_account) {
        return Ok(Err(not_member(&conversation)));
    }
    let invalid = |why: String| -> HttpRefusal { ConversationRefusal::InvalidCommit(why).into() };
    if req.epoch != req.handshake.epoch {
        return Ok(Err(invalid(format!(
            "the request says epoch {} but the commit is for epoch {}",
            req.epoch, req.handshake.epoch
        ))));
    }
    if req.epoch != conv.epoch {
        return Ok(Err(ConversationRefusal::StaleEpoch {
            sent: req.epoch,
            current: conv.epoch,
        }
        .into()));
    }
    let bytes = req.commit.body.len() + req.welcome.as_ref().map_or(0, |w| w.body.len());
    if let Err(e) = st.usage.admit_commit(&req.commit.sender_name, bytes) {
        return Ok(Err(e.into()));
    }
    let mut state = match state_of(conn, &conversation, || {
        ConversationRefusal::InvalidCommit(
            "the conversation has no public MLS state on the service; create it again".into(),
        )
    })
    .await?
    {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    if state.epoch() != conv.epoch {
        return Ok(Err(HttpRefusal::internal(
            "group state",
            "stored public state and epoch disagree",
        )));
    }
    if let Err(e) = state.apply_commit(req.handshake, &req.commit.sender_name) {
        return Ok(Err(e.into()));
    }
    let leaves = match state.roster() {
        Ok(l) => l,
        Err(why) => return Ok(Err(invalid(why))),
    };
    let new_members = match membership::resolve_roster(conn, &leaves).await? {
        Ok(m) => m,
        Err(why) => return Ok(Err(invalid(why))),
    };
    if new_members.len() > req.max_members {
        return Ok(Err(ConversationRefusal::BadMembers(req.max_members).into()));
    }
    let added: Vec<_> = new_members
        .iter()
        .filter(|m| !conv.is_member(m.account_id))
        .cloned()
        .collect();
    match (&req.welcome, added.is_empty()) {
        (None, false) => {
            return Ok(Err(ConversationRefusal::WelcomeRequired.into()));
        }
        (Some(_), true) => {
            return Ok(Err(ConversationRefusal::UnexpectedWelcome.into()));
        }
        _ => {}
    }
    let blob = match state.encode() {
        Ok(b) => b,
        Err(e) => return Ok(Err(HttpRefusal::internal("encode group state", e))),
    };
    let next = Conv {
        epoch: state.epoch(),
        members: new_members,
    };
    membership::store_commit(conn, &conversation, &conv, &next, &blob).await?;
    // The commit goes to every device of the members before it (removed
    // members included, so they learn of their removal), except the
    // committing device; new members join from the Welcome alone, at the
    // new epoch, and never see the commit that added them.
    let mut recipients: Vec<i64> = conv
        .members
        .iter()
        .flat_map(|m| m.devices.iter().copied())
        .filter(|d| *d != req.commit.sender_device)
        .collect();
    recipients.sort_unstable();
    recipients.dedup();
    let welcome_to: Vec<i64> = added
        .iter()
        .flat_map(|m| m.devices.iter().copied())
        .collect();
    let item_id = store_one(conn, st, req.commit, recipients).await?;
    if let Some(w) = req.welcome {
        store_one(conn, st, w, welcome_to).await?;
    }
    let epoch = next.epoch;
    st.convs.insert(conversation, next);
    Ok(Ok(CommitDone { epoch, item_id }))
}
