//! Interception reads behind the storage seam (`store::InterceptionStore`):
//! one contract on both backends, and on one PostgreSQL two servers keeping
//! items under one warrant while an authority follows its cursor through
//! either server: every kept item is fetched once, none is skipped.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

use std::collections::HashSet;
use std::time::Duration;

use custos_server::store::pg_interceptions::{NewKept, keep_in};
use custos_server::store::sqlite::SqliteStore;
use custos_server::store::{InterceptionStore, Store};

use crate::store::two_servers;

const WARRANT: [u8; 32] = [4; 32];

/// The contract, once the interception `WARRANT` (log index 17, authority
/// key `[9; 32]`) holds items 100, 101 and 102 (item `n`: body `[n]`).
async fn contract(store: &dyn Store) {
    assert_eq!(
        store.interception_log_index(&WARRANT).await.unwrap(),
        Some(17)
    );
    assert_eq!(store.interception_log_index(&[5; 32]).await.unwrap(), None);
    assert_eq!(
        store.interception_authority_key(&WARRANT).await.unwrap(),
        Some(vec![9; 32])
    );
    assert_eq!(
        store.interception_authority_key(&[5; 32]).await.unwrap(),
        None
    );
    let all = store.kept_items(&WARRANT, 0, 10).await.unwrap();
    assert_eq!(
        all.iter().map(|k| k.body[0]).collect::<Vec<_>>(),
        [100, 101, 102]
    );
    let k = &all[0];
    assert_eq!(
        (
            k.kind,
            k.conversation.as_slice(),
            k.day,
            k.sender.as_str(),
            k.sender_key.as_slice(),
            k.server_time,
            k.tag.as_slice()
        ),
        (
            1,
            [6u8; 16].as_slice(),
            20_000,
            "alice",
            [8u8; 32].as_slice(),
            5,
            [7u8; 4].as_slice()
        )
    );
    let page = store.kept_items(&WARRANT, all[0].id, 1).await.unwrap();
    assert_eq!(page, all[1..2], "after the cursor, at most the limit");
    assert!(
        store
            .kept_items(&WARRANT, all[2].id, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.kept_items(&[5; 32], 0, 10).await.unwrap().is_empty());
}

const INTERCEPTION: &str = "INSERT INTO interceptions (commitment, authority, authority_key, \
     first_day, last_day, not_after, keep_until, log_index, started_at) \
     VALUES ($1, 'police', $2, 1, 2, 3, 4, 17, 5)";

fn kept(n: u8) -> NewKept<'static> {
    let body: &'static [u8] = Box::leak(Box::new([n]));
    NewKept {
        item_id: i64::from(n),
        kind: 1,
        conversation: &[6; 16],
        day: 20_000,
        sender: "alice",
        sender_key: &[8; 32],
        server_time: 5,
        tag: &[7; 4],
        body,
        keep_until: 9,
    }
}

#[tokio::test]
async fn the_sqlite_interception_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let db = custos_server::db::open(dir.path()).await.unwrap();
    sqlx::query(INTERCEPTION)
        .bind(WARRANT.as_slice())
        .bind([9u8; 32].as_slice())
        .execute(&db.pool)
        .await
        .unwrap();
    for n in 100..=102u8 {
        let k = kept(n);
        sqlx::query(
            "INSERT INTO kept_items (commitment, item_id, kind, conversation, day, sender, \
             sender_key, server_time, tag, body, keep_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(WARRANT.as_slice())
        .bind(k.item_id)
        .bind(k.kind)
        .bind(k.conversation)
        .bind(k.day)
        .bind(k.sender)
        .bind(k.sender_key)
        .bind(k.server_time)
        .bind(k.tag)
        .bind(k.body)
        .bind(k.keep_until)
        .execute(&db.pool)
        .await
        .unwrap();
    }
    contract(&SqliteStore::new(db.pool.clone())).await;
}

#[tokio::test]
async fn the_postgres_interception_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_pg, a, _b)) = two_servers(dir.path()).await else {
        return;
    };
    sqlx::query(INTERCEPTION)
        .bind(WARRANT.as_slice())
        .bind([9u8; 32].as_slice())
        .execute(a.pool())
        .await
        .unwrap();
    let mut tx = a.pool().begin().await.unwrap();
    let items: Vec<NewKept<'_>> = (100..=102u8).map(kept).collect();
    assert_eq!(keep_in(&mut tx, &WARRANT, &items).await.unwrap(), 3);
    assert_eq!(
        keep_in(&mut tx, &WARRANT, &items[..1]).await.unwrap(),
        0,
        "an item is kept once per warrant"
    );
    tx.commit().await.unwrap();
    contract(a.as_ref()).await;
}

/// Writers on two servers keep items under one warrant, each holding its
/// transaction open a moment after drawing ids, while an authority pages
/// through both servers with its cursor: it fetches every item once (fails
/// without the interception row's lock in `keep_in`: an id drawn earlier
/// commits after a later one the authority has passed).
#[tokio::test]
async fn an_authority_following_its_cursor_misses_no_item_kept_on_two_servers() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_pg, a, b)) = two_servers(dir.path()).await else {
        return;
    };
    sqlx::query(INTERCEPTION)
        .bind(WARRANT.as_slice())
        .bind([9u8; 32].as_slice())
        .execute(a.pool())
        .await
        .unwrap();
    let servers = [a.clone(), b.clone()];
    let mut writers = Vec::new();
    for w in 0..4u8 {
        let s = servers[usize::from(w) % 2].clone();
        writers.push(tokio::spawn(async move {
            for n in 0..12u8 {
                let item = w * 50 + n;
                let mut tx = s.pool().begin().await.unwrap();
                keep_in(&mut tx, &WARRANT, &[kept(item)]).await.unwrap();
                tokio::time::sleep(Duration::from_millis(u64::from((item % 3) * 3))).await;
                tx.commit().await.unwrap();
            }
        }));
    }
    let reader = {
        let servers = servers.clone();
        tokio::spawn(async move {
            let mut after = 0;
            let mut seen = Vec::new();
            for round in 0.. {
                let page = servers[round % 2]
                    .kept_items(&WARRANT, after, 5)
                    .await
                    .unwrap();
                if let Some(last) = page.last() {
                    after = last.id;
                }
                seen.extend(page.into_iter().map(|k| k.body[0]));
                if seen.len() >= 48 || round > 5_000 {
                    return seen;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            seen
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    let seen = reader.await.unwrap();
    let unique: HashSet<u8> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "each item fetched once");
    assert_eq!(seen.len(), 48, "every kept item fetched: none skipped");
}
