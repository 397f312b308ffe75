//! Conversation routing state: epoch and members (with their devices).
//!
//! The members are derived from the conversation's public MLS state, which
//! changes only with commits the service has verified
//! ([`crate::delivery::public_state`]); clients still check every sender
//! against their own MLS roster. The writer
//! ([`crate::delivery::writer`]) is the only code that changes it, and keeps a cache.

use std::collections::HashMap;

use custos_wire::ConversationId;
use sqlx::sqlite::SqliteConnection;
use sqlx::{QueryBuilder, Sqlite};

use crate::delivery::public_state::Leaf;

/// A member account and its devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    pub account_id: i64,
    pub devices: Vec<i64>,
}

/// A conversation's epoch and members, sorted by account id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Conv {
    pub epoch: u64,
    pub members: Vec<Member>,
}

impl Conv {
    pub fn is_member(&self, account_id: i64) -> bool {
        self.members
            .binary_search_by_key(&account_id, |m| m.account_id)
            .is_ok()
    }

    /// Every member device except `device`.
    pub fn devices_except(&self, device: i64) -> Vec<i64> {
        self.members
            .iter()
            .flat_map(|m| m.devices.iter().copied())
            .filter(|d| *d != device)
            .collect()
    }
}

/// Bounded cache of conversations; cleared when full (entries reload on use).
#[derive(Debug, Default)]
pub(crate) struct ConvCache {
    map: HashMap<ConversationId, Conv>,
}

const CACHE_MAX: usize = 200_000;

impl ConvCache {
    pub fn get(&self, id: &ConversationId) -> Option<&Conv> {
        self.map.get(id)
    }

    pub fn insert(&mut self, id: ConversationId, conv: Conv) {
        if self.map.len() >= CACHE_MAX {
            self.map.clear();
        }
        self.map.insert(id, conv);
    }

    pub fn merge(&mut self, staged: HashMap<ConversationId, Conv>) {
        for (id, conv) in staged {
            self.insert(id, conv);
        }
    }

    pub fn clear(&mut self) {
        self.map.clear();
    }
}

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Loads a conversation from the database.
pub(crate) async fn load(
    conn: &mut SqliteConnection,
    id: &ConversationId,
) -> Result<Option<Conv>, sqlx::Error> {
    let epoch: Option<i64> = sqlx::query_scalar("SELECT epoch FROM conversations WHERE id = ?")
        .bind(id.0.to_vec())
        .fetch_optional(&mut *conn)
        .await?;
    let Some(epoch) = epoch else {
        return Ok(None);
    };
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT m.account_id, d.id FROM members m JOIN devices d ON d.account_id = m.account_id \
         WHERE m.conversation = ? ORDER BY m.account_id, d.id",
    )
    .bind(id.0.to_vec())
    .fetch_all(&mut *conn)
    .await?;
    Ok(Some(Conv {
        epoch: u64_of(epoch),
        members: group(rows),
    }))
}

pub(crate) fn group(rows: Vec<(i64, i64)>) -> Vec<Member> {
    let mut members: Vec<Member> = Vec::new();
    for (account_id, device) in rows {
        match members.last_mut() {
            Some(m) if m.account_id == account_id => m.devices.push(device),
            _ => members.push(Member {
                account_id,
                devices: vec![device],
            }),
        }
    }
    members
}

/// The stored public MLS state of a conversation, if it has one.
pub(crate) async fn load_state(
    conn: &mut SqliteConnection,
    id: &ConversationId,
) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar("SELECT state FROM group_states WHERE conversation = ?")
        .bind(id.0.to_vec())
        .fetch_optional(&mut *conn)
        .await
}

pub(crate) async fn write_state(
    conn: &mut SqliteConnection,
    id: &ConversationId,
    state: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO group_states (conversation, state) VALUES (?, ?) \
         ON CONFLICT(conversation) DO UPDATE SET state = excluded.state",
    )
    .bind(id.0.to_vec())
    .bind(state.to_vec())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Registers a conversation at epoch 0 with the members its verified
/// public state names, and stores that state.
pub(crate) async fn create(
    conn: &mut SqliteConnection,
    id: &ConversationId,
    members: Vec<Member>,
    state: &[u8],
    now: i64,
) -> Result<Conv, sqlx::Error> {
    sqlx::query("INSERT INTO conversations (id, epoch, created_at) VALUES (?, 0, ?)")
        .bind(id.0.to_vec())
        .bind(now)
        .execute(&mut *conn)
        .await?;
    for m in &members {
        sqlx::query("INSERT INTO members (conversation, account_id) VALUES (?, ?)")
            .bind(id.0.to_vec())
            .bind(m.account_id)
            .execute(&mut *conn)
            .await?;
    }
    write_state(conn, id, state).await?;
    Ok(Conv { epoch: 0, members })
}

/// Resolves the leaves of a verified roster to member accounts: each leaf
/// must name an existing account and carry that account's identity key as
/// its signature key (so a leaf is that account's own device, never a
/// stranger's key under someone's name). Several leaves of one account
/// count once. The error says which leaf failed.
pub(crate) async fn resolve_roster(
    conn: &mut SqliteConnection,
    leaves: &[Leaf],
) -> Result<Result<Vec<Member>, String>, sqlx::Error> {
    if leaves.is_empty() {
        return Ok(Err("the group has no member".into()));
    }
    let mut qb = QueryBuilder::<Sqlite>::new(
        "SELECT a.id, a.name, a.identity_key, d.id FROM accounts a \
         JOIN devices d ON d.account_id = a.id WHERE a.name IN (",
    );
    let mut sep = qb.separated(", ");
    for l in leaves {
        sep.push_bind(l.name.clone());
    }
    qb.push(") ORDER BY a.id, d.id");
    let rows: Vec<(i64, String, Vec<u8>, i64)> = qb.build_query_as().fetch_all(&mut *conn).await?;
    Ok(admit_roster(leaves, rows))
}

/// The pure part of [`resolve_roster`], shared by both backends: `rows`
/// are `(account id, name, identity key, device id)` of the accounts the
/// leaves name, sorted by account then device. Every leaf must name one of
/// them and carry its identity key; the error says which leaf failed.
pub(crate) fn admit_roster(
    leaves: &[Leaf],
    rows: Vec<(i64, String, Vec<u8>, i64)>,
) -> Result<Vec<Member>, String> {
    if leaves.is_empty() {
        return Err("the group has no member".into());
    }
    for l in leaves {
        match rows.iter().find(|r| r.1 == l.name) {
            None => return Err(format!("no such account: {}", l.name)),
            Some(r) if r.2 != l.signature_key => {
                return Err(format!(
                    "the leaf of {} does not carry that account's identity key",
                    l.name
                ));
            }
            Some(_) => {}
        }
    }
    Ok(group(rows.into_iter().map(|(a, _, _, d)| (a, d)).collect()))
}

/// Writes the epoch bump, the member changes and the new public state of a
/// verified commit (in the writer's transaction: all or nothing).
pub(crate) async fn store_commit(
    conn: &mut SqliteConnection,
    id: &ConversationId,
    old: &Conv,
    new: &Conv,
    state: &[u8],
) -> Result<(), sqlx::Error> {
    write_state(conn, id, state).await?;
    sqlx::query("UPDATE conversations SET epoch = ? WHERE id = ?")
        .bind(i64::try_from(new.epoch).unwrap_or(i64::MAX))
        .bind(id.0.to_vec())
        .execute(&mut *conn)
        .await?;
    for m in &old.members {
        if !new.is_member(m.account_id) {
            sqlx::query("DELETE FROM members WHERE conversation = ? AND account_id = ?")
                .bind(id.0.to_vec())
                .bind(m.account_id)
                .execute(&mut *conn)
                .await?;
        }
    }
    for m in &new.members {
        if !old.is_member(m.account_id) {
            sqlx::query("INSERT INTO members (conversation, account_id) VALUES (?, ?)")
                .bind(id.0.to_vec())
                .bind(m.account_id)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}
