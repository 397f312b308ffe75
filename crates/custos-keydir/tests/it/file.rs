//! The directory's own file (`custos_keydir::sqlite::open_file`): no
//! automatic checkpoints, and nothing lost for it.

use std::path::Path;

use custos_keydir::{KeyDirectory, SqliteDirectory, VrfSecret};
use custos_verify::keydir::{EpochRoot, verify_lookup};

use crate::conformance::pool;

const SEED: [u8; 32] = [4; 32];

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
    let kd = KeyDirectory::open(
        SqliteDirectory::new(pool(&copy.path().join("kd.db")).await),
        VrfSecret::from_bytes(SEED),
    )
    .await
    .unwrap();
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
    let live = pool(&path).await;
    let kd = KeyDirectory::open(
        SqliteDirectory::new(live.clone()),
        VrfSecret::from_bytes(SEED),
    )
    .await
    .unwrap();
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
