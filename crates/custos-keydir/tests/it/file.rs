//! The directory's own file (`custos_keydir::sqlite::open_file`): no
//! automatic checkpoints, and nothing lost for it.

use std::path::Path;

use custos_keydir::{KeyDirectory, SqliteDirectory, VrfSecret};
use custos_verify::keydir::{EpochRoot, verify_lookup};

use crate::conformance::pool;

const SEED: [u8; 32] = [4; 32];

/// The directory file at `path`, opened as the service opens it, and the
/// directory on it (VRF seed [`SEED`]).
async fn directory_at(path: &Path) -> (sqlx::SqlitePool, KeyDirectory) {
    let pool = pool(path).await;
    let kd = KeyDirectory::open(
        SqliteDirectory::new(pool.clone()),
        VrfSecret::from_bytes(SEED),
    )
    .await
    .unwrap();
    (pool, kd)
}

/// Copies the database file at `from` (and its WAL when `with_wal`) into a
/// new directory, as a crash would leave them, and opens the directory
/// there: its latest epoch, and the directory.
async fn reopen_copy(from: &Path, with_wal: bool) -> (EpochRoot, KeyDirectory, tempfile::TempDir) {
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(from, copy.path().join("kd.db")).unwrap();
    if with_wal {
        let mut wal = from.as_os_str().to_owned();
        wal.push("-wal");
        std::fs::copy(wal, copy.path().join("kd.db-wal")).unwrap();
    }
    let (_, kd) = directory_at(&copy.path().join("kd.db")).await;
    (kd.current().await.unwrap(), kd, copy)
}

/// An epoch's commit leaves its pages in the WAL, not in the main file (no
/// automatic checkpoint); the files as a crash would leave them right then
/// open at that epoch with its proofs; and the publisher's checkpoint
/// copies the epoch into the main file.
#[tokio::test]
async fn an_epoch_is_durable_before_its_checkpoint_and_copied_in_by_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kd.db");
    let (live, kd) = directory_at(&path).await;
    let root = kd
        .publish(&[("alice".into(), [1; 32]), ("bob".into(), [2; 32])])
        .await
        .unwrap();
    assert_eq!(root.epoch, 1);

    let (main_only, ..) = reopen_copy(&path, false).await;
    assert_eq!(main_only.epoch, 0, "the epoch's commit ran a checkpoint");

    let (crashed, reopened, _copy) = reopen_copy(&path, true).await;
    assert_eq!(crashed, root);
    let proven = reopened.lookup("bob").await.unwrap();
    assert_eq!(proven.root, root);
    let key = verify_lookup(&kd.vrf_public_key(), &root, "bob", &proven.proof).unwrap();
    assert_eq!(key.key(), &[2; 32]);

    assert!(SqliteDirectory::new(live).checkpoint().await.unwrap());
    let (main_only, ..) = reopen_copy(&path, false).await;
    assert_eq!(main_only, root, "the checkpoint left the epoch in the WAL");
    assert_eq!(kd.current().await.unwrap(), root);
}

/// A file written before row keys (tree-node rows under `akd`'s ids, layout
/// 0) is moved to row keys when opened: the same epoch, and the same proof
/// bytes for every account.
#[tokio::test]
async fn a_file_of_akd_ids_is_reordered_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kd.db");
    let (live, kd) = directory_at(&path).await;
    let changes: Vec<(String, [u8; 32])> =
        (0..50u8).map(|i| (format!("user{i}"), [i; 32])).collect();
    kd.publish(&changes).await.unwrap();
    let root = kd.publish(&[("user7".into(), [99; 32])]).await.unwrap();
    let mut proofs = Vec::new();
    for (account, _) in &changes {
        proofs.push(kd.lookup(account).await.unwrap().proof);
    }
    drop(kd);
    // Back to `akd`'s ids ([2, length, value]) and layout 0, as an older
    // build left the rows.
    sqlx::raw_sql(
        "CREATE TABLE by_akd_id (key BLOB PRIMARY KEY, record BLOB NOT NULL) WITHOUT ROWID; \
         INSERT INTO by_akd_id SELECT CASE WHEN length(key) = 37 AND substr(key, 1, 1) = X'02' \
             THEN CAST(X'02' || substr(key, 34, 4) || substr(key, 2, 32) AS BLOB) ELSE key END, record \
             FROM kd_records; \
         DELETE FROM kd_records; \
         INSERT INTO kd_records SELECT key, record FROM by_akd_id; \
         DROP TABLE by_akd_id; \
         PRAGMA user_version = 0;",
    )
    .execute(&live)
    .await
    .unwrap();
    live.close().await;

    let (_, reopened) = directory_at(&path).await;
    assert_eq!(reopened.current().await.unwrap(), root);
    for ((account, _), proof) in changes.iter().zip(proofs) {
        assert_eq!(
            reopened.lookup(account).await.unwrap().proof,
            proof,
            "{account}"
        );
    }
}

/// A directory file cut short (a bad copy, a full disk) is refused when it
/// is opened, with a message that says so, instead of answering lookups
/// from a tree with pages missing: cut in half (SQLite finds it corrupt)
/// or by its last page only (its schema still reads).
#[tokio::test]
async fn a_truncated_file_is_refused_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kd.db");
    let (pool, kd) = directory_at(&path).await;
    let changes: Vec<(String, [u8; 32])> = (0..2_000u32)
        .map(|i| {
            let mut key = [0; 32];
            key[..4].copy_from_slice(&i.to_be_bytes());
            (format!("user{i}"), key)
        })
        .collect();
    kd.publish(&changes).await.unwrap();
    assert!(
        SqliteDirectory::new(pool.clone())
            .checkpoint()
            .await
            .unwrap()
    );
    drop(kd);
    pool.close().await;
    let whole = std::fs::metadata(&path).unwrap().len();

    for cut in [whole / 2, whole - 4096] {
        let copy = tempfile::tempdir().unwrap();
        let cut_path = copy.path().join("kd.db");
        std::fs::copy(&path, &cut_path).unwrap();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&cut_path)
            .unwrap();
        file.set_len(cut).unwrap();
        drop(file);
        let err = custos_keydir::sqlite::open_file(&cut_path)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("is damaged"), "cut to {cut} of {whole}: {err}");
        assert!(err.contains("kd.db"), "{err}");
    }
    // The whole file still opens.
    custos_keydir::sqlite::open_file(&path).await.unwrap();
}
