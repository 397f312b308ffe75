//! Mailboxes on PostgreSQL with two servers (two `PgStore`s on one
//! database): per-device order with no gap a reader could skip, replay
//! refusal across servers, wake-ups crossing servers, acks from both.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

use std::collections::HashSet;
use std::time::Duration;

use custos_server::store::AccountStore;
use custos_server::store::Registered;
use custos_server::store::pg_mailbox::{PgNewItem, StoredItem, Wake};
use custos_wire::ConversationId;
use sha2::{Digest, Sha256};

use crate::store::{KEY, two_servers};

fn item(body: &[u8], recipients: &[i64], hashed: bool) -> PgNewItem {
    PgNewItem {
        kind: 1,
        conversation: ConversationId([5; 16]),
        sender: "s".into(),
        server_time: 1,
        expires_at: 1_000,
        hash: hashed.then(|| Sha256::digest(body).into()),
        tag: Vec::new(),
        body: body.to_vec(),
        recipients: recipients.to_vec(),
    }
}

async fn devices(store: &custos_server::store::postgres::PgStore, n: usize) -> Vec<i64> {
    let mut out = Vec::new();
    for i in 0..n {
        let Registered::Created { device_id, .. } = store
            .register(&format!("dev{i}"), &KEY, 1, false)
            .await
            .unwrap()
        else {
            panic!("new account");
        };
        out.push(device_id);
    }
    out
}

/// Ten writers (five per server) store batches for overlapping sets of
/// devices while a reader follows one device's cursor: the reader never
/// meets a gap (so it never skips a row that commits later), and every
/// device ends with seqs 1..=n holding each of its items once.
#[tokio::test]
async fn mailbox_order_holds_across_two_servers() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_pg, a, b)) = two_servers(dir.path()).await else {
        return;
    };
    let devs = devices(&a, 3).await;
    let reader = {
        let b = b.clone();
        let d0 = devs[0];
        tokio::spawn(async move {
            let mut cursor = 0i64;
            let mut seen = 0;
            // Writers store 10 × 8 × 2 items for devs[0] (every batch has two).
            while seen < 160 {
                for row in b.mailbox_after(d0, cursor, 1000).await.unwrap() {
                    assert_eq!(row.seq, cursor + 1, "a gap the reader would skip");
                    cursor = row.seq;
                    seen += 1;
                }
                tokio::task::yield_now().await;
            }
            cursor
        })
    };
    let mut writers = Vec::new();
    for w in 0..10 {
        let s = if w % 2 == 0 { a.clone() } else { b.clone() };
        let devs = devs.clone();
        writers.push(tokio::spawn(async move {
            for batch in 0..8 {
                // Alternate device order within batches: locking is by id.
                let to = if batch % 2 == 0 {
                    vec![devs[0], devs[1 + (w % 2)]]
                } else {
                    vec![devs[1 + (w % 2)], devs[0]]
                };
                let items = vec![
                    item(format!("{w}-{batch}-x").as_bytes(), &to, true),
                    item(format!("{w}-{batch}-y").as_bytes(), &to, true),
                ];
                let out = s.store_items(&items).await.unwrap();
                assert!(out.iter().all(|o| matches!(o, StoredItem::Stored { .. })));
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(30), reader)
            .await
            .unwrap()
            .unwrap(),
        160
    );
    for (d, expected) in [(devs[0], 160), (devs[1], 80), (devs[2], 80)] {
        let rows = a.mailbox_after(d, 0, 10_000).await.unwrap();
        let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (1..=expected).collect::<Vec<_>>());
        let bodies: HashSet<_> = rows.iter().map(|r| r.body.clone()).collect();
        assert_eq!(bodies.len(), rows.len(), "each item once per device");
    }
}

/// A body accepted through one server is refused as a replay through the
/// other, and within one batch; unhashed items (commits) are not checked.
#[tokio::test]
async fn replays_are_refused_across_servers() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_pg, a, b)) = two_servers(dir.path()).await else {
        return;
    };
    let devs = devices(&a, 2).await;
    let first = a.store_items(&[item(b"once", &devs, true)]).await.unwrap();
    assert!(matches!(first[0], StoredItem::Stored { .. }));
    let again = b
        .store_items(&[
            item(b"once", &devs, true),
            item(b"twice", &devs, true),
            item(b"twice", &devs, true),
            item(b"commit", &devs, false),
            item(b"commit", &devs, false),
        ])
        .await
        .unwrap();
    assert_eq!(again[0], StoredItem::Replay, "seen on the other server");
    assert!(matches!(again[1], StoredItem::Stored { .. }));
    assert_eq!(again[2], StoredItem::Replay, "seen earlier in the batch");
    assert!(matches!(again[3], StoredItem::Stored { .. }));
    assert!(matches!(again[4], StoredItem::Stored { .. }));
    // The replay took no seq: the device's mailbox has no hole.
    let seqs: Vec<i64> = b
        .mailbox_after(devs[1], 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
}

/// A store through server A wakes server B's listener with the devices
/// written to, only after the commit (the rows are readable when it wakes).
#[tokio::test]
async fn a_store_on_one_server_wakes_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_pg, a, b)) = two_servers(dir.path()).await else {
        return;
    };
    let devs = devices(&a, 2).await;
    let mut wakeups = b.wakeups().await.unwrap();
    a.store_items(&[item(b"ping", &devs, true)]).await.unwrap();
    let wake = tokio::time::timeout(Duration::from_secs(5), wakeups.next())
        .await
        .expect("woken within 5 s")
        .unwrap();
    let Wake::Devices(mut woken) = wake else {
        panic!("expected the devices, got {wake:?}");
    };
    woken.sort_unstable();
    assert_eq!(woken, devs);
    assert_eq!(b.mailbox_after(devs[0], 0, 10).await.unwrap().len(), 1);
}

/// Two recipients ack one item at once through different servers, many
/// times over: every item is removed with its last mailbox row.
#[tokio::test]
async fn concurrent_acks_on_two_servers_leave_no_item_behind() {
    let dir = tempfile::tempdir().unwrap();
    let Some((pg, a, b)) = two_servers(dir.path()).await else {
        return;
    };
    let devs = devices(&a, 2).await;
    let items: Vec<PgNewItem> = (0..30)
        .map(|i| item(format!("m{i}").as_bytes(), &devs, true))
        .collect();
    a.store_items(&items).await.unwrap();
    let mut acks = Vec::new();
    for seq in 1..=30i64 {
        for (s, d) in [(a.clone(), devs[0]), (b.clone(), devs[1])] {
            acks.push(tokio::spawn(async move { s.ack(d, &[seq]).await.unwrap() }));
        }
    }
    for t in acks {
        assert_eq!(t.await.unwrap(), 1);
    }
    assert_eq!(
        pg.psql(
            custos_deploy::postgres::DATABASE,
            "SELECT COUNT(*) FROM items"
        )
        .unwrap(),
        "0"
    );
}

/// Two servers sweep at once, in small rounds, while the store holds
/// expired and live items: every expired item, hash and session goes once,
/// nothing live goes, and the sweepers never fail on each other.
#[tokio::test]
async fn two_servers_sweep_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let Some((pg, a, b)) = two_servers(dir.path()).await else {
        return;
    };
    let devs = devices(&a, 2).await;
    let mut items = Vec::new();
    for i in 0..120 {
        let mut it = item(format!("r{i}").as_bytes(), &devs, true);
        // Even ones expire at 500, odd ones live on.
        it.expires_at = if i % 2 == 0 { 500 } else { 5_000 };
        items.push(it);
    }
    a.store_items(&items).await.unwrap();
    a.open_session(&[1; 32], devs[0], 400).await.unwrap();
    a.open_session(&[2; 32], devs[0], 9_000).await.unwrap();
    let mut sweepers = Vec::new();
    for s in [a.clone(), b.clone(), a.clone(), b.clone()] {
        sweepers.push(tokio::spawn(async move {
            let mut total = custos_server::store::pg_mailbox::PgSwept::default();
            loop {
                let r = s.sweep_expired(1_000, 7).await.unwrap();
                total.items += r.items;
                total.seen += r.seen;
                total.sessions += r.sessions;
                if !r.more(7) {
                    break total;
                }
            }
        }));
    }
    let mut total = custos_server::store::pg_mailbox::PgSwept::default();
    for s in sweepers {
        let r = s.await.unwrap();
        total.items += r.items;
        total.seen += r.seen;
        total.sessions += r.sessions;
    }
    // A sweeper may stop early while another holds rows: finish the rest.
    let rest = a.sweep_expired(1_000, 1_000).await.unwrap();
    assert_eq!(
        total.items + rest.items,
        60,
        "each expired item deleted once"
    );
    assert_eq!(total.seen + rest.seen, 60);
    assert_eq!(total.sessions + rest.sessions, 1);
    let count = |sql: &str| pg.psql(custos_deploy::postgres::DATABASE, sql).unwrap();
    assert_eq!(count("SELECT COUNT(*) FROM items"), "60");
    assert_eq!(
        count("SELECT COUNT(*) FROM items WHERE expires_at <= 1000"),
        "0"
    );
    assert_eq!(count("SELECT COUNT(*) FROM mailbox"), "120");
    assert_eq!(count("SELECT COUNT(*) FROM sessions"), "1");
    // The live items are still readable, in order.
    let seqs: Vec<i64> = b
        .mailbox_after(devs[0], 0, 1000)
        .await
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(seqs, (1..=60).map(|i| i * 2).collect::<Vec<_>>());
}

/// The same envelopes replayed through both servers at once, in opposite
/// orders: no batch fails (no deadlock on the replay set), and each
/// envelope is stored exactly once.
#[tokio::test]
async fn racing_replays_in_opposite_orders_neither_deadlock_nor_double() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_pg, a, b)) = two_servers(dir.path()).await else {
        return;
    };
    let devs = devices(&a, 1).await;
    for round in 0..20 {
        let forward: Vec<PgNewItem> = (0..16)
            .map(|i| item(format!("{round}-{i}").as_bytes(), &devs, true))
            .collect();
        let mut backward = forward.clone();
        backward.reverse();
        let (x, y) = tokio::join!(
            tokio::spawn({
                let a = a.clone();
                async move { a.store_items(&forward).await.unwrap() }
            }),
            tokio::spawn({
                let b = b.clone();
                async move { b.store_items(&backward).await.unwrap() }
            })
        );
        let stored = x
            .unwrap()
            .iter()
            .chain(y.unwrap().iter())
            .filter(|s| matches!(s, StoredItem::Stored { .. }))
            .count();
        assert_eq!(stored, 16, "round {round}: each envelope stored once");
    }
    assert_eq!(a.mailbox_after(devs[0], 0, 1000).await.unwrap().len(), 320);
}

/// PostgreSQL restarts under a listening server: its listener reports
/// `Wake::All` (notifications may have been lost), then wakes again for
/// stores after the restart; what was committed before is still there.
#[tokio::test]
async fn a_listener_wakes_everyone_after_postgres_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let Some((mut pg, a, b)) = two_servers(dir.path()).await else {
        return;
    };
    let devs = devices(&a, 2).await;
    a.store_items(&[item(b"before", &devs, true)])
        .await
        .unwrap();
    let mut wakeups = b.wakeups().await.unwrap();
    pg.restart().unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), wakeups.next())
        .await
        .expect("the listener notices the restart")
        .unwrap();
    assert_eq!(first, Wake::All, "a lost connection wakes every device");
    // The pools replace their dead connections; the listener is back.
    let mut stored = false;
    for _ in 0..50 {
        if a.store_items(&[item(b"after", &devs, true)]).await.is_ok() {
            stored = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stored, "the store recovers by itself");
    let next = tokio::time::timeout(Duration::from_secs(10), wakeups.next())
        .await
        .expect("woken after the restart")
        .unwrap();
    assert!(
        matches!(&next, Wake::Devices(d) if d.len() == 2) || next == Wake::All,
        "{next:?}"
    );
    let bodies: Vec<Vec<u8>> = b
        .mailbox_after(devs[0], 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.body)
        .collect();
    assert_eq!(bodies, [b"before".to_vec(), b"after".to_vec()]);
}
