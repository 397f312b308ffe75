//! Blobs behind the storage seam (`store::BlobStore`): one contract run on
//! SQLite (bodies as files, and in the row) and PostgreSQL (bodies in the
//! row), and what two servers on one PostgreSQL must settle: uploads racing
//! against one quota, a blob stored on A served by B, and sweepers on both
//! servers deleting each expired blob once and nothing live.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

use axum::body::Bytes;
use custos_server::Quota;
use custos_server::store::sqlite::SqliteStore;
use custos_server::store::{BlobStore, BlobStored, NewBlob, Registered, Store};

use crate::store::{KEY, two_servers};

fn locator(i: u32) -> String {
    format!("{i:064x}")
}

fn blob<'a>(locator: &'a str, owner: i64, body: &[u8], expires_at: i64) -> NewBlob<'a> {
    NewBlob {
        locator,
        owner,
        body: Bytes::copy_from_slice(body),
        created_at: 1,
        expires_at,
    }
}

async fn owner(store: &dyn Store, name: &str) -> i64 {
    match store.register(name, &KEY, 1, false).await.unwrap() {
        Registered::Created { account_id, .. } => account_id,
        Registered::NameTaken => panic!("{name} is new"),
    }
}

/// The contract every backend keeps.
async fn contract(store: &dyn Store) {
    let alice = owner(store, "alice").await;
    let quota = Quota {
        items: 2,
        bytes: 25,
    };
    assert_eq!(store.blob_usage(alice).await.unwrap(), (0, 0));
    let (l1, l2, l3) = (locator(1), locator(2), locator(3));
    assert_eq!(
        store
            .store_blob(blob(&l1, alice, &[1; 10], 1000), quota)
            .await
            .unwrap(),
        BlobStored::Stored
    );
    assert_eq!(store.blob_usage(alice).await.unwrap(), (1, 10));
    assert_eq!(
        store
            .store_blob(blob(&l2, alice, &[2; 20], 1000), quota)
            .await
            .unwrap(),
        BlobStored::OverQuota,
        "10 + 20 bytes pass 25"
    );
    assert_eq!(store.blob_body(&l2, None).await.unwrap(), None);
    assert_eq!(
        store
            .store_blob(blob(&l2, alice, &[2; 15], 2000), quota)
            .await
            .unwrap(),
        BlobStored::Stored
    );
    assert_eq!(
        store
            .store_blob(blob(&l3, alice, &[3; 1], 1000), quota)
            .await
            .unwrap(),
        BlobStored::OverQuota,
        "a third blob passes 2 items"
    );
    assert_eq!(store.blob_usage(alice).await.unwrap(), (2, 25));
    assert_eq!(store.blob_body(&l1, None).await.unwrap(), Some(vec![1; 10]));
    assert_eq!(
        store.blob_body(&l1, Some(999)).await.unwrap(),
        Some(vec![1; 10])
    );
    assert_eq!(
        store.blob_body(&l1, Some(1000)).await.unwrap(),
        None,
        "expired at its expiry"
    );
    assert_eq!(
        store.blob_body(&l2, Some(1000)).await.unwrap(),
        Some(vec![2; 15])
    );
    assert_eq!(store.blob_body(&l3, None).await.unwrap(), None);
    // Another account has its own quota.
    let bob = owner(store, "bob").await;
    assert_eq!(
        store
            .store_blob(blob(&l3, bob, &[3; 25], 1000), quota)
            .await
            .unwrap(),
        BlobStored::Stored
    );
    // No quota: no limit.
    let none = Quota { items: 0, bytes: 0 };
    for i in 10..14 {
        let l = locator(i);
        assert_eq!(
            store
                .store_blob(blob(&l, bob, &[4; 100], 1000), none)
                .await
                .unwrap(),
            BlobStored::Stored
        );
    }
}

#[tokio::test]
async fn the_sqlite_blob_store_keeps_the_contract_with_files_and_in_rows() {
    let dir = tempfile::tempdir().unwrap();
    let db = custos_server::db::open(&dir.path().join("files"))
        .await
        .unwrap();
    let store = SqliteStore::new(db.pool.clone())
        .with_blob_dir(&dir.path().join("files"))
        .unwrap();
    contract(&store).await;
    // Bodies are files, written only for stored blobs; the rows are empty.
    let mut files: Vec<String> = std::fs::read_dir(dir.path().join("files").join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    let mut expected: Vec<String> = [1, 2, 3, 10, 11, 12, 13].map(locator).to_vec();
    expected.sort();
    assert_eq!(files, expected, "no file for a refused upload");
    let in_rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM blobs WHERE length(body) > 0")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(in_rows, 0);

    let db = custos_server::db::open(&dir.path().join("rows"))
        .await
        .unwrap();
    contract(&SqliteStore::new(db.pool.clone())).await;
}

#[tokio::test]
async fn the_postgres_blob_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_pg, a, _b)) = two_servers(dir.path()).await else {
        return;
    };
    contract(a.as_ref()).await;
}

/// Two servers: uploads of one account racing on both never pass its quota
/// together; a blob stored through A is served by B; four sweepers on two
/// servers delete every expired blob once and nothing live.
#[tokio::test]
async fn two_postgres_servers_share_blobs_quota_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_pg, a, b)) = two_servers(dir.path()).await else {
        return;
    };
    let servers = [a.clone(), b.clone()];
    let carol = owner(a.as_ref(), "carol").await;
    let quota = Quota {
        items: 0,
        bytes: 35,
    };
    for round in 0..4u32 {
        let mut tasks = Vec::new();
        for i in 0..6u32 {
            let s = servers[usize::try_from(i).unwrap() % 2].clone();
            tasks.push(tokio::spawn(async move {
                let l = locator(round * 100 + i);
                s.store_blob(blob(&l, carol, &[7; 10], 1000), quota)
                    .await
                    .unwrap()
            }));
        }
        let mut stored = 0;
        for t in tasks {
            if t.await.unwrap() == BlobStored::Stored {
                stored += 1;
            }
        }
        let expected = if round == 0 { 3 } else { 0 };
        assert_eq!(stored, expected, "round {round}: only what fits is stored");
        assert_eq!(b.blob_usage(carol).await.unwrap(), (3, 30));
    }
    for i in 0..6 {
        assert_eq!(
            b.blob_body(&locator(i), None).await.unwrap(),
            a.blob_body(&locator(i), None).await.unwrap(),
            "both servers serve the same blobs"
        );
    }
    let dave = owner(a.as_ref(), "dave").await;
    let none = Quota { items: 0, bytes: 0 };
    for i in 0..50u32 {
        let l = locator(1000 + i);
        let expires = if i % 5 == 0 { 10_000 } else { 100 };
        servers[usize::try_from(i).unwrap() % 2]
            .store_blob(blob(&l, dave, &i.to_be_bytes(), expires), none)
            .await
            .unwrap();
    }
    assert_eq!(
        b.blob_body(&locator(1001), None).await.unwrap(),
        Some(1u32.to_be_bytes().to_vec()),
        "stored through B's peer, served by B: the body is in the database"
    );
    let mut tasks = Vec::new();
    for i in 0..4 {
        let s = servers[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            s.sweep_blobs(5_000, 3).await.unwrap()
        }));
    }
    let mut swept = 0;
    for t in tasks {
        swept += t.await.unwrap();
    }
    assert_eq!(swept, 40 + 3, "each expired blob deleted once");
    for i in 0..50u32 {
        assert_eq!(
            a.blob_body(&locator(1000 + i), None)
                .await
                .unwrap()
                .is_some(),
            i % 5 == 0,
            "blob {i}: live ones stay"
        );
    }
}
