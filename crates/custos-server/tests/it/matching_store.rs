//! Known-content detection behind the storage seam (`store::MatchingStore`):
//! one contract run on both backends, and what two servers on one
//! PostgreSQL must settle: one voucher per blob when both store it, one
//! reconstruction attempt per new share and period whichever servers claim
//! it, one pending case when both open it, and the figures' turn held by
//! one server at a time.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

use std::sync::Arc;

use axum::body::Bytes;
use custos_server::Quota;
use custos_server::store::matching::{Attempt, NewMatch, NewVoucher, VoucherStored};
use custos_server::store::postgres::PgStore;
use custos_server::store::sqlite::SqliteStore;
use custos_server::store::{MatchingStore, NewBlob, Registered, Store};

use crate::store::{KEY, two_servers};

const PERIOD: u64 = 60_000;

fn locator(i: u32) -> String {
    format!("{i:064x}")
}

async fn account(store: &dyn Store, name: &str) -> i64 {
    match store.register(name, &KEY, 1, false).await.unwrap() {
        Registered::Created { account_id, .. } => account_id,
        Registered::NameTaken => panic!("{name} is new"),
    }
}

/// Blobs `ids` of `owner`.
async fn blobs(store: &dyn Store, owner: i64, ids: impl IntoIterator<Item = u32>) {
    for i in ids {
        let l = locator(i);
        store
            .store_blob(
                NewBlob {
                    locator: &l,
                    owner,
                    body: Bytes::from_static(b"ciphertext"),
                    created_at: 1,
                    expires_at: i64::MAX,
                },
                Quota { items: 0, bytes: 0 },
            )
            .await
            .unwrap();
    }
}

fn voucher<'a>(account: i64, locator: &'a str, share: Option<&'a [u8]>) -> NewVoucher<'a> {
    NewVoucher {
        account,
        locator,
        share,
        received_at: 500,
    }
}

/// Stores one voucher of `account` for blob `i`, opened with `share`.
async fn one(store: &dyn Store, account: i64, i: u32, share: Option<&[u8]>) -> VoucherStored {
    let l = locator(i);
    store
        .store_vouchers(&[voucher(account, &l, share)])
        .await
        .unwrap()[0]
}

fn m(voucher: i64, hash: u8) -> NewMatch<'static> {
    static HASHES: [[u8; 32]; 4] = [[0; 32], [1; 32], [2; 32], [3; 32]];
    NewMatch {
        voucher,
        hash: &HASHES[usize::from(hash)],
        derivative: &[9; 1024],
    }
}

/// The ids of the shares an attempt would try.
fn tried(a: Attempt) -> Vec<i64> {
    match a {
        Attempt::Try(rows) => rows.into_iter().map(|(id, _)| id).collect(),
        other => panic!("expected an attempt, got {other:?}"),
    }
}

/// The contract every backend keeps (threshold 2).
async fn contract(store: &dyn Store) {
    let alice = account(store, "alice").await;
    let bob = account(store, "bob").await;
    blobs(store, alice, 1..=6).await;
    blobs(store, bob, [7]).await;
    assert!(!store.matching_closed());

    // A batch: stored, not opened, another's blob, one blob twice, no blob.
    let (l1, l2, l7, l99) = (locator(1), locator(2), locator(7), locator(99));
    let got = store
        .store_vouchers(&[
            voucher(alice, &l1, Some(b"share-1")),
            voucher(alice, &l2, None),
            voucher(alice, &l7, Some(b"x")),
            voucher(alice, &l1, Some(b"again")),
            voucher(alice, &l99, None),
        ])
        .await
        .unwrap();
    assert_eq!(
        got,
        [
            VoucherStored::Stored,
            VoucherStored::Stored,
            VoucherStored::UnknownBlob,
            VoucherStored::Duplicate,
            VoucherStored::UnknownBlob
        ]
    );
    assert_eq!(one(store, alice, 1, None).await, VoucherStored::Duplicate);
    assert_eq!(one(store, bob, 7, None).await, VoucherStored::Stored);

    // Below the threshold: nothing to try, nothing owed.
    assert_eq!(
        store.claim_attempt(alice, 1_000, PERIOD, 2).await.unwrap(),
        Attempt::NotDue
    );
    assert!(store.owed_accounts(2).await.unwrap().is_empty());
    assert_eq!(
        one(store, alice, 3, Some(b"share-3")).await,
        VoucherStored::Stored
    );
    assert_eq!(store.owed_accounts(2).await.unwrap(), [alice]);
    let Attempt::Try(rows) = store.claim_attempt(alice, 1_000, PERIOD, 2).await.unwrap() else {
        panic!("two opened shares: an attempt");
    };
    assert_eq!(
        rows.iter().map(|(_, s)| s.as_slice()).collect::<Vec<_>>(),
        [b"share-1".as_slice(), b"share-3"],
        "the opened shares, by id"
    );
    let (v1, v3) = (rows[0].0, rows[1].0);
    assert!(v1 < v3);

    // The threshold: key, case and matches together.
    assert_eq!(store.inner_key(alice).await.unwrap(), None);
    assert_eq!(store.matching_figures().await.unwrap(), [0, 0, 0, 0]);
    let case = store
        .record_threshold(alice, &[4; 32], 2_000, &[m(v1, 1), m(v3, 3)])
        .await
        .unwrap();
    assert_eq!(store.inner_key(alice).await.unwrap(), Some(vec![4; 32]));
    assert!(
        store.owed_accounts(2).await.unwrap().is_empty(),
        "every opened voucher matched"
    );
    let listed = store.list_cases().await.unwrap();
    assert_eq!(listed.len(), 1);
    let c = &listed[0];
    assert_eq!(
        (c.id, c.account.as_str(), c.opened_at, c.status.as_str()),
        (case, "alice", 2_000, "pending")
    );
    assert_eq!(
        (c.decided_at, c.moderator.as_deref(), c.matches),
        (None, None, 2)
    );
    assert_eq!(store.case(case).await.unwrap().as_ref(), Some(c));
    assert_eq!(store.case(case + 100).await.unwrap(), None);
    let seen = store.case_matches(case).await.unwrap();
    assert_eq!(
        seen.iter()
            .map(|m| (m.hash[0], m.locator.clone(), m.received_at))
            .collect::<Vec<_>>(),
        [(1, l1.clone(), 500), (3, locator(3), 500)]
    );
    assert_eq!(seen[0].derivative, vec![9; 1024]);

    // Past the threshold: a new opened voucher is owed, joins the case once.
    assert_eq!(
        one(store, alice, 4, Some(b"share-4")).await,
        VoucherStored::Stored
    );
    assert_eq!(store.owed_accounts(2).await.unwrap(), [alice]);
    let rest = store.unmatched_shares(alice, 0).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].1, b"share-4");
    assert!(
        store
            .unmatched_shares(alice, rest[0].0)
            .await
            .unwrap()
            .is_empty()
    );
    for _ in 0..2 {
        let again = store
            .add_matches(alice, 3_000, &[m(rest[0].0, 2), m(v1, 0)])
            .await
            .unwrap();
        assert_eq!(again, case, "the pending case");
    }
    assert_eq!(store.case(case).await.unwrap().unwrap().matches, 3);
    assert_eq!(
        store.case_matches(case).await.unwrap()[0].hash[0],
        1,
        "a matched voucher is left as it is"
    );
    // A key recorded again is kept.
    store
        .record_threshold(alice, &[5; 32], 4_000, &[])
        .await
        .unwrap();
    assert_eq!(store.inner_key(alice).await.unwrap(), Some(vec![4; 32]));

    // Decisions: once.
    assert_eq!(store.matching_figures().await.unwrap(), [1, 1, 0, 0]);
    assert!(
        store
            .decide_case(case, "confirmed", 5_000, "mod", "seen")
            .await
            .unwrap()
    );
    assert!(
        !store
            .decide_case(case, "dismissed", 6_000, "mod2", "")
            .await
            .unwrap()
    );
    assert!(
        !store
            .decide_case(case + 100, "dismissed", 6_000, "mod2", "")
            .await
            .unwrap()
    );
    let c = store.case(case).await.unwrap().unwrap();
    assert_eq!(
        (c.status.as_str(), c.decided_at, c.moderator.as_deref()),
        ("confirmed", Some(5_000), Some("mod"))
    );
    assert_eq!(store.matching_figures().await.unwrap(), [1, 1, 1, 0]);
    // A match after the decision opens a new case.
    assert_eq!(
        one(store, alice, 5, Some(b"share-5")).await,
        VoucherStored::Stored
    );
    let v5 = store.unmatched_shares(alice, 0).await.unwrap()[0].0;
    let second = store.add_matches(alice, 7_000, &[m(v5, 2)]).await.unwrap();
    assert_ne!(second, case);
    assert!(
        store
            .decide_case(second, "dismissed", 8_000, "mod", "")
            .await
            .unwrap()
    );
    assert_eq!(store.matching_figures().await.unwrap(), [1, 2, 1, 1]);
    assert_eq!(store.list_cases().await.unwrap().len(), 2);

    // A figures turn reads the totals.
    let turn = store.figures_turn().await.unwrap().unwrap();
    assert_eq!(turn.totals(), [1, 2, 1, 1]);
    let remembered = turn.last_logged();
    turn.logged([1, 2, 1, 1], 77).await.unwrap();
    let turn = store.figures_turn().await.unwrap().unwrap();
    match remembered {
        // SQLite: one process remembers what it logged.
        None => assert_eq!(turn.last_logged(), None),
        // PostgreSQL: every server reads what any logged.
        Some(first) => {
            assert_eq!(first, ([0; 4], 0));
            assert_eq!(turn.last_logged(), Some(([1, 2, 1, 1], 77)));
        }
    }
    turn.release().await.unwrap();
}

#[tokio::test]
async fn the_sqlite_matching_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let db = custos_server::db::open(dir.path()).await.unwrap();
    let store = SqliteStore::new(db.pool.clone());
    contract(&store).await;
    // One process: the period and the new-share rule are the worker's
    // memory, so a claim always answers the shares.
    let carol = account(&store, "carol").await;
    blobs(&store, carol, 10..12).await;
    for i in 10..12 {
        one(&store, carol, i, Some(b"s")).await;
    }
    for _ in 0..2 {
        assert_eq!(
            tried(store.claim_attempt(carol, 1, PERIOD, 2).await.unwrap()).len(),
            2
        );
    }
}

#[tokio::test]
async fn the_postgres_matching_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_pg, a, _b)) = two_servers(dir.path()).await else {
        return;
    };
    contract(a.as_ref()).await;
}

/// The attempt rules in the database: an account is tried again only when
/// a share arrived since its last attempt (by either server), and no sooner
/// than one period after it, whichever server asks.
#[tokio::test]
async fn two_postgres_servers_share_the_attempt_rules() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_pg, a, b)) = two_servers(dir.path()).await else {
        return;
    };
    let carol = account(a.as_ref(), "carol").await;
    blobs(a.as_ref(), carol, 0..10).await;
    for i in 0..3 {
        one(
            if i % 2 == 0 { a.as_ref() } else { b.as_ref() },
            carol,
            i,
            Some(b"s"),
        )
        .await;
    }
    assert_eq!(
        tried(a.claim_attempt(carol, 1_000, PERIOD, 3).await.unwrap()).len(),
        3
    );
    // No new share: nothing, on either server, even after the period.
    assert_eq!(
        b.claim_attempt(carol, 1_001, PERIOD, 3).await.unwrap(),
        Attempt::NotDue
    );
    assert_eq!(
        a.claim_attempt(carol, 1_000 + PERIOD, PERIOD, 3)
            .await
            .unwrap(),
        Attempt::NotDue
    );
    // A new share through B: wait for A's period, then one attempt.
    one(b.as_ref(), carol, 3, Some(b"s")).await;
    assert_eq!(
        b.claim_attempt(carol, 2_000, PERIOD, 3).await.unwrap(),
        Attempt::Wait { last_at: 1_000 }
    );
    assert_eq!(
        tried(
            b.claim_attempt(carol, 1_000 + PERIOD, PERIOD, 3)
                .await
                .unwrap()
        )
        .len(),
        4
    );
    assert_eq!(
        a.claim_attempt(carol, 1_000 + 2 * PERIOD, PERIOD, 3)
            .await
            .unwrap(),
        Attempt::NotDue
    );

    // Claims racing on both servers: one attempt per new share and period.
    let servers: [Arc<PgStore>; 2] = [a.clone(), b.clone()];
    let mut now = 10 * PERIOD;
    for round in 4..10 {
        one(a.as_ref(), carol, round, Some(b"s")).await;
        now += PERIOD;
        let mut tasks = Vec::new();
        for i in 0..8 {
            let s = servers[i % 2].clone();
            tasks.push(tokio::spawn(async move {
                s.claim_attempt(carol, now, PERIOD, 3).await.unwrap()
            }));
        }
        let mut tries = 0;
        for t in tasks {
            match t.await.unwrap() {
                Attempt::Try(rows) => {
                    assert_eq!(rows.len(), usize::try_from(round).unwrap() + 1);
                    tries += 1;
                }
                Attempt::NotDue | Attempt::Busy | Attempt::Wait { .. } => {}
            }
        }
        assert_eq!(tries, 1, "round {round}: one server tries");
    }
}

/// Vouchers for one blob stored through both servers at once: one stored;
/// cases opened for one account through both at once: one pending case
/// holding every match; the figures' turn held by one server at a time, and
/// the next turn sees what the previous one logged.
#[tokio::test]
async fn two_postgres_servers_store_one_voucher_per_blob_and_open_one_case() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_pg, a, b)) = two_servers(dir.path()).await else {
        return;
    };
    let servers: [Arc<PgStore>; 2] = [a.clone(), b.clone()];
    let dave = account(a.as_ref(), "dave").await;
    blobs(a.as_ref(), dave, 0..40).await;
    let mut tasks = Vec::new();
    for i in 0..40u32 {
        for s in &servers {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let l = locator(i);
                s.store_vouchers(&[voucher(dave, &l, Some(b"s"))])
                    .await
                    .unwrap()[0]
            }));
        }
    }
    let mut stored = 0;
    for t in tasks {
        match t.await.unwrap() {
            VoucherStored::Stored => stored += 1,
            VoucherStored::Duplicate => {}
            VoucherStored::UnknownBlob => panic!("dave owns every blob"),
        }
    }
    assert_eq!(stored, 40, "one voucher per blob");
    let ids: Vec<i64> = a
        .unmatched_shares(dave, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids.len(), 40);

    // Both servers record the threshold and add matches at once.
    let mut tasks = Vec::new();
    for (i, chunk) in ids.chunks(5).enumerate() {
        let s = servers[i % 2].clone();
        let chunk = chunk.to_vec();
        tasks.push(tokio::spawn(async move {
            let matches: Vec<NewMatch<'_>> = chunk.iter().map(|v| m(*v, 1)).collect();
            if i < 2 {
                s.record_threshold(dave, &[1; 32], 10, &matches)
                    .await
                    .unwrap()
            } else {
                s.add_matches(dave, 10, &matches).await.unwrap()
            }
        }));
    }
    let mut cases = Vec::new();
    for t in tasks {
        cases.push(t.await.unwrap());
    }
    cases.dedup();
    assert_eq!(cases.len(), 1, "one pending case: {cases:?}");
    let listed = b.list_cases().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].matches, 40);
    assert_eq!(b.matching_figures().await.unwrap(), [1, 1, 0, 0]);

    // The figures' turn: while A holds it, B gets none.
    let turn = a.figures_turn().await.unwrap().unwrap();
    assert!(b.figures_turn().await.unwrap().is_none());
    assert_eq!(turn.totals(), [1, 1, 0, 0]);
    turn.logged([1, 1, 0, 0], 5).await.unwrap();
    let turn = b.figures_turn().await.unwrap().unwrap();
    assert_eq!(turn.last_logged(), Some(([1, 1, 0, 0], 5)));
    // A decision through A meanwhile is in B's next turn, not this one's
    // (read under the turn), and never below it.
    assert!(
        a.decide_case(cases[0], "confirmed", 20, "mod", "")
            .await
            .unwrap()
    );
    assert_eq!(turn.totals(), [1, 1, 0, 0]);
    turn.release().await.unwrap();
    let turn = b.figures_turn().await.unwrap().unwrap();
    assert_eq!(turn.totals(), [1, 1, 1, 0]);
    assert_eq!(turn.last_logged(), Some(([1, 1, 0, 0], 5)));
    turn.release().await.unwrap();
}
