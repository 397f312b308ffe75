//! `akd`'s own storage conformance suite against [`SqliteDirectory`], then
//! a directory on it: publish, look up, history, audit, each proof checked
//! with the device-side verifier, and the directory reopened from disk.

use custos_keydir::{KeyDirectory, SqliteDirectory, VrfSecret, verify_audit};
use custos_verify::keydir::{verify_history, verify_lookup};
use sqlx::SqlitePool;

/// The directory's own file at `path`, as the service opens it.
pub(crate) async fn pool(path: &std::path::Path) -> SqlitePool {
    custos_keydir::sqlite::open_file(path).await.unwrap()
}

/// A directory on a new SQLite file at `path` with alice and bob published
/// in epoch 1; its VRF secret, to open the file again; epoch 1's root.
async fn alice_and_bob_published(
    path: &std::path::Path,
) -> (KeyDirectory, VrfSecret, custos_verify::keydir::EpochRoot) {
    let vrf = VrfSecret::generate();
    let kd = KeyDirectory::open(SqliteDirectory::new(pool(path).await), vrf.clone())
        .await
        .unwrap();
    let r1 = kd
        .publish(&[("alice".into(), [1; 32]), ("bob".into(), [2; 32])])
        .await
        .unwrap();
    (kd, vrf, r1)
}

#[tokio::test]
async fn akd_storage_conformance_suite_passes_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteDirectory::new(pool(&dir.path().join("kd.db")).await);
    akd::storage::tests::run_test_cases_for_storage_impl(db).await;
}

#[tokio::test]
async fn proofs_from_sqlite_verify_on_the_device_side_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kd.db");
    let (kd, vrf, r1) = alice_and_bob_published(&path).await;
    let vrf_pk = kd.vrf_public_key();
    assert_eq!(r1.epoch, 1);
    let p = kd.lookup("bob").await.unwrap();
    assert_eq!(p.root, r1);
    let v = verify_lookup(&vrf_pk, &p.root, "bob", &p.proof).unwrap();
    assert_eq!(v.key(), &[2; 32]);
    // The same proof does not prove alice's name, nor under another VRF key.
    assert!(verify_lookup(&vrf_pk, &p.root, "alice", &p.proof).is_err());
    let other = VrfSecret::generate().public_key();
    assert!(verify_lookup(&other, &p.root, "bob", &p.proof).is_err());

    let r2 = kd.publish(&[("bob".into(), [3; 32])]).await.unwrap();
    assert_eq!(r2.epoch, 2);
    let h = kd.history("bob").await.unwrap();
    let versions = verify_history(&vrf_pk, &h.root, "bob", &h.proof).unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0].key, hex::encode([3; 32]));
    assert_eq!(versions[1].key, hex::encode([2; 32]));
    let audit = kd.audit(1, 2).await.unwrap();
    verify_audit(&[r1, r2], &audit).await.unwrap();
    let mut wrong = r2;
    wrong.root_hash[0] ^= 1;
    assert!(verify_audit(&[r1, wrong], &audit).await.is_err());
    drop(kd);

    // Reopened from the file: the same epoch, root and proofs.
    let kd = KeyDirectory::open(SqliteDirectory::new(pool(&path).await), vrf)
        .await
        .unwrap();
    assert_eq!(kd.current().await.unwrap(), r2);
    let p = kd.lookup("alice").await.unwrap();
    assert_eq!(
        verify_lookup(&vrf_pk, &p.root, "alice", &p.proof)
            .unwrap()
            .key(),
        &[1; 32]
    );
}

/// Every byte of a lookup proof flipped in turn is refused. This found that `akd_core` 0.13 leaves the topmost parent label
/// of a Merkle path unbound (custos-verify now requires the root's label).
#[tokio::test]
async fn no_single_flipped_byte_of_a_lookup_proof_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let kd = KeyDirectory::open(
        SqliteDirectory::new(pool(&dir.path().join("kd.db")).await),
        VrfSecret::generate(),
    )
    .await
    .unwrap();
    kd.publish(&[("alice".into(), [1; 32])]).await.unwrap();
    kd.publish(&[("bob".into(), [2; 32])]).await.unwrap();
    let p = kd.lookup("bob").await.unwrap();
    let vrf = kd.vrf_public_key();
    verify_lookup(&vrf, &p.root, "bob", &p.proof).unwrap();
    let accepted: Vec<usize> = (0..p.proof.len())
        .filter(|&i| {
            let mut bad = p.proof.clone();
            if let Some(b) = bad.get_mut(i) {
                *b ^= 1;
            }
            verify_lookup(&vrf, &p.root, "bob", &bad).is_ok()
        })
        .collect();
    assert!(accepted.is_empty(), "flips accepted at {accepted:?}");
}

/// `akd`'s conformance suite against [`custos_keydir::PgDirectory`] on a
/// real PostgreSQL (skipped, said, without one), then a directory published
/// through one server's pool whose proofs another server's directory, on
/// its own pool and opened before the publication, serves at the new epoch
/// and the device verifies.
#[tokio::test]
async fn akd_storage_conformance_suite_passes_on_postgres() {
    use custos_keydir::PgDirectory;
    use sqlx::postgres::PgPoolOptions;
    let dir = tempfile::tempdir().unwrap();
    let Some(pg) = custos_deploy::postgres::TestPostgres::start(&dir.path().join("pg")).unwrap()
    else {
        return;
    };
    let connect = || async {
        PgPoolOptions::new()
            .max_connections(4)
            .connect(&pg.url())
            .await
            .unwrap()
    };
    let pool = connect().await;
    PgDirectory::create_schema(&pool).await.unwrap();
    PgDirectory::create_schema(&pool).await.unwrap();
    akd::storage::tests::run_test_cases_for_storage_impl(PgDirectory::new(pool.clone())).await;
    sqlx::query("TRUNCATE kd_records, kd_values")
        .execute(&pool)
        .await
        .unwrap();

    let vrf = VrfSecret::generate();
    let a = KeyDirectory::open_shared(PgDirectory::new(pool), vrf.clone())
        .await
        .unwrap();
    // Another server's directory, open before the epochs are published.
    let other = PgDirectory::new(connect().await);
    let b = KeyDirectory::open_shared(other.clone(), vrf).await.unwrap();
    assert_eq!(b.current().await.unwrap().epoch, 0);
    let vrf_pk = a.vrf_public_key();
    let r1 = a
        .publish(&[("alice".into(), [1; 32]), ("bob".into(), [2; 32])])
        .await
        .unwrap();
    let r2 = a.publish(&[("bob".into(), [3; 32])]).await.unwrap();
    assert_eq!((r1.epoch, r2.epoch), (1, 2));
    assert!(other.stored_bytes().await.unwrap() > 0);
    assert_eq!(
        b.current().await.unwrap(),
        r2,
        "the other server sees the epochs published since it opened"
    );
    let p = b.lookup("bob").await.unwrap();
    assert_eq!(
        verify_lookup(&vrf_pk, &p.root, "bob", &p.proof)
            .unwrap()
            .key(),
        &[3; 32]
    );
    let h = b.history("bob").await.unwrap();
    assert_eq!(
        verify_history(&vrf_pk, &h.root, "bob", &h.proof)
            .unwrap()
            .len(),
        2
    );
    let audit = b.audit(1, 2).await.unwrap();
    verify_audit(&[r1, r2], &audit).await.unwrap();
}

/// A proof kept for the latest epoch is the one `akd` makes again (byte for
/// byte, one and batched), and a publish retires it: the next lookup is at
/// the new epoch with the new key, never the kept one.
#[tokio::test]
async fn kept_proofs_equal_fresh_ones_and_a_publish_retires_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kd.db");
    let (kd, vrf, r1) = alice_and_bob_published(&path).await;
    let vrf_pk = kd.vrf_public_key();
    let first = kd.lookup("bob").await.unwrap();
    let again = kd.lookup("bob").await.unwrap();
    assert_eq!((again.proof.clone(), again.root), (first.proof.clone(), r1));
    // A directory without kept proofs (as several servers open it) makes
    // the same bytes.
    let shared = KeyDirectory::open_shared(SqliteDirectory::new(pool(&path).await), vrf)
        .await
        .unwrap();
    assert_eq!(shared.lookup("bob").await.unwrap().proof, first.proof);
    let names = ["alice".to_owned(), "bob".to_owned()];
    let (batch, at) = kd.lookup_many(&names).await.unwrap();
    assert_eq!(at, r1);
    assert_eq!(batch[1], first.proof);
    let (kept_batch, kept_at) = kd.lookup_many(&names).await.unwrap();
    assert_eq!((kept_batch, kept_at), (batch.clone(), r1));
    assert_eq!(shared.lookup_many(&names).await.unwrap().0, batch);

    // bob's key changes: no kept proof of epoch 1 is answered any more.
    let r2 = kd.publish(&[("bob".into(), [3; 32])]).await.unwrap();
    let now = kd.lookup("bob").await.unwrap();
    assert_eq!(now.root, r2);
    assert_eq!(
        verify_lookup(&vrf_pk, &now.root, "bob", &now.proof)
            .unwrap()
            .key(),
        &[3; 32]
    );
    let (batch, at) = kd.lookup_many(&names).await.unwrap();
    assert_eq!(at, r2);
    assert_eq!(batch[1], now.proof);
}

/// After a publish, the proofs devices asked for at the epoch before are
/// made again at the new epoch (`renew_proofs`), once: byte for byte what
/// a fresh lookup makes, with the new key of an account that changed, and
/// only for the accounts that were asked for.
#[tokio::test]
async fn a_publish_renews_once_the_proofs_asked_for_at_the_epoch_before() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kd.db");
    let (kd, vrf, r1) = alice_and_bob_published(&path).await;
    assert_eq!(kd.lookup("bob").await.unwrap().root, r1);
    // Nothing published since: nothing to renew.
    assert_eq!(kd.renew_proofs().await, 0);
    let r2 = kd.publish(&[("bob".into(), [3; 32])]).await.unwrap();
    assert_eq!(kd.renew_proofs().await, 1, "bob's, not alice's");
    assert_eq!(kd.renew_proofs().await, 0, "once");
    let renewed = kd.lookup("bob").await.unwrap();
    assert_eq!(renewed.root, r2);
    let shared = KeyDirectory::open_shared(SqliteDirectory::new(pool(&path).await), vrf)
        .await
        .unwrap();
    assert_eq!(renewed.proof, shared.lookup("bob").await.unwrap().proof);
    assert_eq!(
        verify_lookup(&kd.vrf_public_key(), &r2, "bob", &renewed.proof)
            .unwrap()
            .key(),
        &[3; 32]
    );
    // A shared directory keeps no proofs and renews none.
    assert_eq!(shared.renew_proofs().await, 0);
    // Bob was asked for at r2 (above): renewed at r3. Nobody asks at r3:
    // the proof only the renewal made is not renewed at r4.
    kd.publish(&[("carol".into(), [4; 32])]).await.unwrap();
    assert_eq!(kd.renew_proofs().await, 1);
    kd.publish(&[("dave".into(), [5; 32])]).await.unwrap();
    assert_eq!(kd.renew_proofs().await, 0, "asked for by nobody");
}

/// More accounts than the renewal's first batch: every one is renewed
/// (batches growing from `RENEW_FIRST_BATCH`), each proof byte for byte a
/// fresh lookup's and valid against the new root.
#[tokio::test]
async fn a_renewal_in_growing_batches_makes_every_asked_proof() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kd.db");
    let vrf = VrfSecret::generate();
    let kd = KeyDirectory::open(SqliteDirectory::new(pool(&path).await), vrf.clone())
        .await
        .unwrap();
    let n = custos_keydir::RENEW_FIRST_BATCH * 3 + 1;
    let accounts: Vec<String> = (0..n).map(|i| format!("user{i}")).collect();
    let changes: Vec<(String, [u8; 32])> = accounts
        .iter()
        .zip(0u8..)
        .map(|(a, i)| (a.clone(), [i; 32]))
        .collect();
    kd.publish(&changes).await.unwrap();
    kd.lookup_many(&accounts).await.unwrap();
    let r2 = kd.publish(&[("newcomer".into(), [200; 32])]).await.unwrap();
    assert_eq!(kd.renew_proofs().await, n);
    let shared = KeyDirectory::open_shared(SqliteDirectory::new(pool(&path).await), vrf)
        .await
        .unwrap();
    for (account, (_, key)) in accounts.iter().zip(&changes) {
        let renewed = kd.lookup(account).await.unwrap();
        assert_eq!(renewed.root, r2);
        assert_eq!(renewed.proof, shared.lookup(account).await.unwrap().proof);
        let verified = verify_lookup(&kd.vrf_public_key(), &r2, account, &renewed.proof).unwrap();
        assert_eq!(verified.key(), key);
    }
}

/// A directory other processes share answers every request from the
/// records as committed: after another handle publishes, its next lookups,
/// batch lookups and histories are at the new epoch with the new key,
/// never from nodes an earlier request read.
#[tokio::test]
async fn a_shared_directory_sees_the_epoch_another_handle_published() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kd.db");
    let (owner, vrf, r1) = alice_and_bob_published(&path).await;
    let shared = KeyDirectory::open_shared(SqliteDirectory::new(pool(&path).await), vrf)
        .await
        .unwrap();
    let vrf_pk = shared.vrf_public_key();
    let names = ["alice".to_owned(), "bob".to_owned()];
    assert_eq!(shared.lookup("bob").await.unwrap().root, r1);
    assert_eq!(shared.lookup_many(&names).await.unwrap().1, r1);

    let r2 = owner.publish(&[("bob".into(), [7; 32])]).await.unwrap();
    let one = shared.lookup("bob").await.unwrap();
    assert_eq!(one.root, r2);
    assert_eq!(
        verify_lookup(&vrf_pk, &r2, "bob", &one.proof)
            .unwrap()
            .key(),
        &[7; 32]
    );
    let (batch, at) = shared.lookup_many(&names).await.unwrap();
    assert_eq!(at, r2);
    assert_eq!(batch[1], one.proof);
    assert_eq!(batch[1], owner.lookup("bob").await.unwrap().proof);
    assert_eq!(shared.history("bob").await.unwrap().root, r2);
}
