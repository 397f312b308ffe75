//! The storage seam (`custos_server::store`): one contract run against both
//! backends, and the races that PostgreSQL must settle between two servers
//! (two `PgStore`s with their own pools on one database, as two
//! `custos server` processes have). The PostgreSQL tests start a real
//! cluster with the test kit; without PostgreSQL they print SKIPPED
//! (`CUSTOS_REQUIRE_POSTGRES=1` makes that a failure).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

use std::collections::HashSet;
use std::sync::Arc;

use custos_deploy::postgres::TestPostgres;
use custos_server::store::pg_conversations::Locked;
use custos_server::store::postgres::PgStore;
use custos_server::store::sqlite::SqliteStore;
use custos_server::store::{AccountStore, KeyPackageStore, Registered, Store, Uploaded};

pub(crate) const KEY: [u8; 32] = [7; 32];

/// The contract every backend keeps, step by step.
async fn contract(store: &dyn Store) {
    let Registered::Created {
        account_id,
        device_id,
    } = store.register("alice", &KEY, 1, false).await.unwrap()
    else {
        panic!("a new name is registered");
    };
    assert_eq!(
        store.register("alice", &[8; 32], 2, false).await.unwrap(),
        Registered::NameTaken
    );
    assert_eq!(store.account_id("alice").await.unwrap(), Some(account_id));
    assert_eq!(store.account_id("nobody").await.unwrap(), None);
    assert_eq!(
        store.login_key("alice").await.unwrap(),
        Some((KEY.to_vec(), device_id)),
        "the first registration's key stays"
    );
    assert_eq!(store.login_key("nobody").await.unwrap(), None);

    let hash = [3u8; 32];
    assert_eq!(store.session(&hash).await.unwrap(), None);
    store.open_session(&hash, device_id, 99).await.unwrap();
    let s = store.session(&hash).await.unwrap().unwrap();
    assert_eq!(
        (
            s.token_hash,
            s.expires_at,
            s.device_id,
            s.account_id,
            s.name
        ),
        (hash.to_vec(), 99, device_id, account_id, "alice".to_owned())
    );

    let kps: Vec<Vec<u8>> = (1u8..=3).map(|i| vec![i; 10]).collect();
    assert_eq!(
        store
            .upload_key_packages(account_id, &kps, Some(b"lr-1"), 4)
            .await
            .unwrap(),
        Uploaded::Stored
    );
    assert_eq!(
        store
            .upload_key_packages(account_id, &kps[..2], None, 4)
            .await
            .unwrap(),
        Uploaded::OverQuota { stored: 3 },
        "3 + 2 passes a quota of 4; nothing is stored"
    );
    assert_eq!(store.count_key_packages(account_id).await.unwrap(), 3);
    // A new last-resort package replaces the old one.
    store
        .upload_key_packages(account_id, &[], Some(b"lr-2"), 4)
        .await
        .unwrap();
    for expected in &kps {
        assert_eq!(
            store.claim_key_package("alice").await.unwrap(),
            Some((expected.clone(), false)),
            "oldest first"
        );
    }
    assert_eq!(store.count_key_packages(account_id).await.unwrap(), 0);
    for _ in 0..2 {
        assert_eq!(
            store.claim_key_package("alice").await.unwrap(),
            Some((b"lr-2".to_vec(), true)),
            "the last-resort package is handed out and kept"
        );
    }
    assert_eq!(store.claim_key_package("nobody").await.unwrap(), None);
}

#[tokio::test]
async fn the_sqlite_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let db = custos_server::db::open(dir.path()).await.unwrap();
    contract(&SqliteStore::new(db.pool.clone())).await;
}

/// A cluster and two stores on it, or `None` (skipped, said) without PostgreSQL.
pub(crate) async fn two_servers(
    dir: &std::path::Path,
) -> Option<(TestPostgres, Arc<PgStore>, Arc<PgStore>)> {
    let pg = TestPostgres::start(&dir.join("pg")).unwrap()?;
    let url = pg.url();
    // Both start at once: the migrator's lock lets one migrate, the other wait.
    let (a, b) = tokio::join!(PgStore::connect(&url, 8), PgStore::connect(&url, 8));
    Some((pg, Arc::new(a.unwrap()), Arc::new(b.unwrap())))
}

#[tokio::test]
async fn the_postgres_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_pg, a, _b)) = two_servers(dir.path()).await else {
        return;
    };
    contract(a.as_ref()).await;
}

/// Two servers register one name at once, many times over: exactly one
/// account per name; KeyPackages claimed through both servers at once are
/// each handed out once; uploads racing on both servers never pass the quota.
#[tokio::test]
async fn two_postgres_servers_settle_the_races() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_pg, a, b)) = two_servers(dir.path()).await else {
        return;
    };
    let servers = [a.clone(), b.clone()];

    for round in 0..10 {
        let name = format!("race{round}");
        let mut tasks = Vec::new();
        for i in 0..6 {
            let s = servers[i % 2].clone();
            let name = name.clone();
            tasks.push(tokio::spawn(async move {
                s.register(&name, &KEY, 1, false).await.unwrap()
            }));
        }
        let mut created = 0;
        for t in tasks {
            if matches!(t.await.unwrap(), Registered::Created { .. }) {
                created += 1;
            }
        }
        assert_eq!(created, 1, "exactly one registration of {name} wins");
    }

    let Registered::Created { account_id, .. } = a.register("bob", &KEY, 1, false).await.unwrap()
    else {
        panic!("bob is new");
    };
    let kps: Vec<Vec<u8>> = (0u16..40).map(|i| i.to_be_bytes().to_vec()).collect();
    a.upload_key_packages(account_id, &kps, Some(b"last"), 1000)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let s = servers[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            s.claim_key_package("bob").await.unwrap().unwrap()
        }));
    }
    let mut ordinary = HashSet::new();
    let mut last_resort = 0;
    for t in tasks {
        let (data, lr) = t.await.unwrap();
        if lr {
            assert_eq!(data, b"last");
            last_resort += 1;
        } else {
            assert!(ordinary.insert(data), "a KeyPackage was handed out twice");
        }
    }
    assert_eq!(ordinary.len(), 40, "every package handed out once");
    assert_eq!(last_resort, 10);

    // Quota 10, empty account: six uploads of 3 race on both servers; at
    // most 3 fit (9), and the count never passes 10.
    let mut tasks = Vec::new();
    for i in 0..6 {
        let s = servers[i % 2].clone();
        let kps = kps[..3].to_vec();
        tasks.push(tokio::spawn(async move {
            s.upload_key_packages(account_id, &kps, None, 10)
                .await
                .unwrap()
        }));
    }
    let mut stored = 0;
    for t in tasks {
        if t.await.unwrap() == Uploaded::Stored {
            stored += 1;
        }
    }
    assert_eq!(stored, 3, "exactly the uploads that fit are stored");
    assert_eq!(b.count_key_packages(account_id).await.unwrap(), 9);
}

/// A database migrated by a newer build (a migration this build lacks) is
/// refused at start, not used half-understood.
#[tokio::test]
async fn a_postgres_database_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let Some((pg, a, _b)) = two_servers(dir.path()).await else {
        return;
    };
    drop(a);
    pg.psql(
        custos_deploy::postgres::DATABASE,
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', true, '\\x00', 0)",
    )
    .unwrap();
    let err = PgStore::connect(&pg.url(), 2).await.unwrap_err();
    assert!(err.to_string().contains("9999"), "{err}");
}

/// Two servers race commits for one conversation, six at a time per epoch,
/// each holding the row a moment before it commits: exactly one wins each
/// epoch, every loser is told the epoch the winner made, and the stored
/// state and members are the winner's (no fork).
#[tokio::test]
async fn two_postgres_servers_commit_each_epoch_once() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_pg, a, b)) = two_servers(dir.path()).await else {
        return;
    };
    let mut ids = Vec::new();
    for name in ["m1", "m2", "m3"] {
        let Registered::Created { account_id, .. } =
            a.register(name, &KEY, 1, false).await.unwrap()
        else {
            panic!("{name} is new");
        };
        ids.push(account_id);
    }
    let roster = b
        .roster_accounts(&["m2".into(), "m1".into(), "nobody".into()])
        .await
        .unwrap();
    assert_eq!(
        roster
            .iter()
            .map(|r| (r.account_id, r.name.as_str(), r.identity_key.as_slice()))
            .collect::<Vec<_>>(),
        [
            (ids[0], "m1", KEY.as_slice()),
            (ids[1], "m2", KEY.as_slice())
        ],
        "existing names only, sorted by account"
    );
    let conv = custos_wire::ConversationId([9; 16]);
    assert!(
        a.create_conversation(&conv, &ids[..2], b"state-0", 1)
            .await
            .unwrap()
    );
    assert!(
        !b.create_conversation(&conv, &ids, b"other", 1)
            .await
            .unwrap(),
        "the id is taken, whichever server asks"
    );
    let servers = [a.clone(), b.clone()];
    for epoch in 0u64..6 {
        let mut tasks = Vec::new();
        for task in 0..6usize {
            let s = servers[task % 2].clone();
            let members = if task % 2 == 0 {
                ids.clone()
            } else {
                ids[..2].to_vec()
            };
            tasks.push(tokio::spawn(async move {
                match s.lock_conversation(&conv, epoch).await.unwrap() {
                    Locked::Held(l) => {
                        assert_eq!(l.epoch, epoch);
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        let state = format!("state-{}-{task}", epoch + 1).into_bytes();
                        let next = l.commit(&members, &state).await.unwrap();
                        assert_eq!(next, epoch + 1);
                        Some((members, state))
                    }
                    Locked::Stale { current } => {
                        assert_eq!(current, epoch + 1, "the loser learns the new epoch");
                        None
                    }
                    Locked::Unknown => panic!("the conversation exists"),
                }
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            if let Some(w) = t.await.unwrap() {
                winners.push(w);
            }
        }
        assert_eq!(winners.len(), 1, "exactly one commit wins epoch {epoch}");
        let (members, state) = winners.pop().unwrap();
        let Locked::Held(now) = b.lock_conversation(&conv, epoch + 1).await.unwrap() else {
            panic!("the conversation is at epoch {}", epoch + 1);
        };
        assert_eq!(now.state, state, "the winner's state is stored");
        assert_eq!(now.members, members, "the winner's members are stored");
    }
    assert!(matches!(
        a.lock_conversation(&conv, 2).await.unwrap(),
        Locked::Stale { current: 6 }
    ));
    assert!(matches!(
        a.lock_conversation(&custos_wire::ConversationId([1; 16]), 0)
            .await
            .unwrap(),
        Locked::Unknown
    ));
}

/// A login answer spent on one server is refused on the other; many
/// servers' attempts at one answer at once spend it once; an account's live
/// logins are bounded; expired answers are forgotten and swept.
#[tokio::test]
async fn a_login_answer_is_spent_once_across_servers() {
    use custos_server::store::pg_challenges::{MAX_LIVE_LOGINS, Spent};
    let dir = tempfile::tempdir().unwrap();
    let Some((_pg, a, b)) = two_servers(dir.path()).await else {
        return;
    };
    let Registered::Created { account_id, .. } = a.register("carol", &KEY, 1, false).await.unwrap()
    else {
        panic!("carol is new");
    };
    assert_eq!(
        a.spend_challenge(account_id, &[1; 16], 100, 10)
            .await
            .unwrap(),
        Spent::Fresh
    );
    assert_eq!(
        b.spend_challenge(account_id, &[1; 16], 100, 11)
            .await
            .unwrap(),
        Spent::Used,
        "the other server refuses the replayed answer"
    );
    let servers = [a.clone(), b.clone()];
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = servers[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            s.spend_challenge(account_id, &[2; 16], 100, 12)
                .await
                .unwrap()
        }));
    }
    let mut fresh = 0;
    for t in tasks {
        if t.await.unwrap() == Spent::Fresh {
            fresh += 1;
        }
    }
    assert_eq!(fresh, 1, "one answer, one session");
    for i in 2..MAX_LIVE_LOGINS {
        let mut tag = [0u8; 16];
        tag[..8].copy_from_slice(&i.to_be_bytes());
        tag[15] = 9;
        assert_eq!(
            servers[usize::try_from(i).unwrap() % 2]
                .spend_challenge(account_id, &tag, 100, 13)
                .await
                .unwrap(),
            Spent::Fresh
        );
    }
    assert_eq!(
        a.spend_challenge(account_id, &[3; 16], 100, 14)
            .await
            .unwrap(),
        Spent::TooManyLogins
    );
    // Once they expire, the account may log in again.
    assert_eq!(
        b.spend_challenge(account_id, &[3; 16], 300, 100)
            .await
            .unwrap(),
        Spent::Fresh
    );
    assert_eq!(b.sweep_challenges(400, 1000).await.unwrap(), 1);
}
