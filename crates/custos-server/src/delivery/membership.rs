//! Conversation routing state: epoch and members (with their devices).
//!
//! This is routing information, not security: the service cannot read MLS
//! state, and clients check every sender against the MLS roster. The writer
//! ([`crate::delivery::writer`]) is the only code that changes it, and keeps a cache.

use std::collections::HashMap;

use custos_wire::ConversationId;
use custos_wire::ids::validate_account_name;
use sqlx::sqlite::SqliteConnection;
use sqlx::{QueryBuilder, Sqlite};

use crate::refusal::ConversationRefusal;

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

fn group(rows: Vec<(i64, i64)>) -> Vec<Member> {
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

/// Registers a conversation of one member at epoch 0.
pub(crate) async fn create(
    conn: &mut SqliteConnection,
    id: &ConversationId,
    account_id: i64,
    now: i64,
) -> Result<Conv, sqlx::Error> {
    sqlx::query("INSERT INTO conversations (id, epoch, created_at) VALUES (?, 0, ?)")
        .bind(id.0.to_vec())
        .bind(now)
        .execute(&mut *conn)
        .await?;
    sqlx::query("INSERT INTO members (conversation, account_id) VALUES (?, ?)")
        .bind(id.0.to_vec())
        .bind(account_id)
        .execute(&mut *conn)
        .await?;
    let devices: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM devices WHERE account_id = ? ORDER BY id")
            .bind(account_id)
            .fetch_all(&mut *conn)
            .await?;
    Ok(Conv {
        epoch: 0,
        members: vec![Member {
            account_id,
            devices,
        }],
    })
}

/// Resolves account names to members; refuses unknown, invalid or repeated
/// names.
pub(crate) async fn resolve(
    conn: &mut SqliteConnection,
    names: &[String],
) -> Result<Result<Vec<Member>, ConversationRefusal>, sqlx::Error> {
    for n in names {
        if validate_account_name(n).is_err() {
            return Ok(Err(ConversationRefusal::BadName(
                n.escape_debug().to_string(),
            )));
        }
    }
    let mut qb = QueryBuilder::<Sqlite>::new(
        "SELECT a.id, a.name, d.id FROM accounts a JOIN devices d ON d.account_id = a.id \
         WHERE a.name IN (",
    );
    let mut sep = qb.separated(", ");
    for n in names {
        sep.push_bind(n.clone());
    }
    qb.push(") ORDER BY a.id, d.id");
    let rows: Vec<(i64, String, i64)> = qb.build_query_as().fetch_all(&mut *conn).await?;
    let mut found: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    found.dedup();
    if found.len() != names.len() {
        let missing: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|n| !found.contains(n))
            .collect();
        return Ok(Err(if missing.is_empty() {
            ConversationRefusal::DuplicateMember
        } else {
            ConversationRefusal::UnknownAccount(missing.into_iter().map(str::to_owned).collect())
        }));
    }
    Ok(Ok(group(
        rows.into_iter().map(|(a, _, d)| (a, d)).collect(),
    )))
}

/// Writes the epoch bump and the member changes of a commit.
pub(crate) async fn store_commit(
    conn: &mut SqliteConnection,
    id: &ConversationId,
    old: &Conv,
    new: &Conv,
) -> Result<(), sqlx::Error> {
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
