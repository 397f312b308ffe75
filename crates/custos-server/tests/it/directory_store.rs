//! The key directory's queue behind registration, on both backends: a key
//! registered with the directory on is queued in the same transaction as
//! the account (never an account without its queued key, never a key
//! queued for a name that another registration won), also when two
//! PostgreSQL servers race to register one name.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

use custos_server::store::sqlite::SqliteStore;
use custos_server::store::{AccountStore, Registered, Store};

use crate::store::two_servers;

/// Registers dana (queued) and erin (not queued), then dana again with
/// another key (refused, queue unchanged).
async fn contract(store: &dyn Store) {
    assert!(matches!(
        store.register("dana", &[1; 32], 10, true).await.unwrap(),
        Registered::Created { .. }
    ));
    assert!(matches!(
        store.register("erin", &[2; 32], 11, false).await.unwrap(),
        Registered::Created { .. }
    ));
    assert_eq!(
        store.register("dana", &[3; 32], 12, true).await.unwrap(),
        Registered::NameTaken
    );
}

#[tokio::test]
async fn the_sqlite_store_queues_directory_keys_with_the_account() {
    let dir = tempfile::tempdir().unwrap();
    let db = custos_server::db::open(dir.path()).await.unwrap();
    contract(&SqliteStore::new(db.pool.clone())).await;
    let pending: Vec<(String, Vec<u8>, i64)> =
        sqlx::query_as("SELECT account, identity_key, queued_at FROM kd_pending")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(pending, [("dana".to_owned(), vec![1; 32], 10)]);
}

#[tokio::test]
async fn the_postgres_store_queues_directory_keys_with_the_account() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_pg, a, b)) = two_servers(dir.path()).await else {
        return;
    };
    contract(a.as_ref()).await;
    let pending: Vec<(String, Vec<u8>, i64)> =
        sqlx::query_as("SELECT account, identity_key, queued_at FROM kd_pending")
            .fetch_all(b.pool())
            .await
            .unwrap();
    assert_eq!(pending, [("dana".to_owned(), vec![1; 32], 10)]);

    // Two servers race registrations of one name with different keys: the
    // queued key is the winner's.
    let servers = [a.clone(), b.clone()];
    for round in 0..5u8 {
        let name = format!("race{round}");
        let mut tasks = Vec::new();
        for i in 0..6u8 {
            let s = servers[usize::from(i) % 2].clone();
            let name = name.clone();
            tasks.push(tokio::spawn(async move {
                (i, s.register(&name, &[i; 32], 20, true).await.unwrap())
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            if let (i, Registered::Created { .. }) = t.await.unwrap() {
                winners.push(i);
            }
        }
        assert_eq!(winners.len(), 1);
        let queued: Vec<Vec<u8>> =
            sqlx::query_scalar("SELECT identity_key FROM kd_pending WHERE account = $1")
                .bind(&name)
                .fetch_all(a.pool())
                .await
                .unwrap();
        assert_eq!(queued, [vec![winners[0]; 32]], "the winner's key is queued");
        assert_eq!(
            a.login_key(&name).await.unwrap().unwrap().0,
            vec![winners[0]; 32]
        );
    }
}

/// The directory's bookkeeping on a backend whose queue holds dana's key.
async fn bookkeeping(store: &dyn Store) {
    use custos_server::store::EpochRow;
    assert_eq!(store.kd_recorded_epoch().await.unwrap(), None);
    assert_eq!(
        store.kd_pending(10).await.unwrap(),
        [("dana".to_owned(), vec![1; 32])]
    );
    let e1 = EpochRow {
        epoch: 1,
        root_hash: vec![5; 32],
        changes: 1,
        published_at: 100,
    };
    store.kd_record_epoch(&e1, &["dana".into()]).await.unwrap();
    assert!(
        store.kd_pending(10).await.unwrap().is_empty(),
        "published keys leave the queue with the epoch"
    );
    // Recording an epoch again keeps the first record.
    let again = EpochRow {
        root_hash: vec![6; 32],
        ..e1.clone()
    };
    store.kd_record_epoch(&again, &[]).await.unwrap();
    assert_eq!(store.kd_recorded_epoch().await.unwrap(), Some(1));
    assert_eq!(store.kd_unlogged().await.unwrap(), [e1]);
    store.kd_set_log_index(1, 42).await.unwrap();
    assert!(store.kd_unlogged().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_directory_bookkeeping_keeps_the_contract_on_both_backends() {
    let dir = tempfile::tempdir().unwrap();
    let db = custos_server::db::open(&dir.path().join("sqlite"))
        .await
        .unwrap();
    let sqlite = SqliteStore::new(db.pool.clone());
    contract(&sqlite).await;
    bookkeeping(&sqlite).await;
    let Some((_pg, a, b)) = two_servers(dir.path()).await else {
        return;
    };
    contract(a.as_ref()).await;
    bookkeeping(b.as_ref()).await;
    // One publisher at a time across servers; the lock goes with its
    // transaction.
    let held = a.try_publisher_lock().await.unwrap().expect("free");
    assert!(b.try_publisher_lock().await.unwrap().is_none());
    assert!(a.try_publisher_lock().await.unwrap().is_none());
    // Ended explicitly: a dropped transaction's ROLLBACK is only queued on
    // its connection, so the lock would leave a moment later (harmless for
    // a publisher whose next round is seconds away, racy for this check).
    held.rollback().await.unwrap();
    assert!(b.try_publisher_lock().await.unwrap().is_some());
}
