//! Files sent with messages, end to end on a real delivery service: the
//! service stores only ciphertext, recipients save exactly what was
//! committed, and the service's limits on blobs answer with their codes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use custos_client::Device;
use custos_client::api::ApiError;
use custos_deploy::{CustodianMode, Deployment, DeploymentSpec, ServerSpec};
use tempfile::TempDir;

use crate::kit::{deployment, user};

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every file under `dir`, at any depth.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else if path.is_file() {
            files.push(path);
        }
    }
    files
}

/// The file that holds blob `locator`'s body on the service.
fn blob_file(d: &Deployment, locator: &str) -> std::path::PathBuf {
    d.server().unwrap().data.join("blobs").join(locator)
}

/// Whether the deployment's service runs on PostgreSQL (the test suites'
/// `CUSTOS_TEST_BACKEND=postgres`), where blob bodies are in the database.
fn on_postgres() -> bool {
    custos_deploy::ServerBackend::from_test_env() == custos_deploy::ServerBackend::Postgres
}

/// Flips one bit of byte `index` (clamped to the last) of the one blob the
/// service stores, as a malicious service could: in its file on SQLite, in
/// its row on PostgreSQL.
async fn flip_a_bit_of_the_only_blob(d: &Deployment, index: usize) {
    if on_postgres() {
        let at = format!("LEAST({}, length(body) - 1)", index.min(i32::MAX as usize));
        let changed = d
            .edit_service_database(
                &format!("UPDATE blobs SET body = set_byte(body, {at}, get_byte(body, {at}) # 1)"),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(changed, 1);
        return;
    }
    let db = d.server().unwrap().data.join(custos_server::db::DB_FILE);
    let locator: String = rusqlite::Connection::open(db)
        .unwrap()
        .query_row("SELECT locator FROM blobs", [], |r| r.get(0))
        .unwrap();
    let file = blob_file(d, &locator);
    let mut body = std::fs::read(&file).unwrap();
    let index = index.min(body.len() - 1);
    body[index] ^= 1;
    std::fs::write(&file, body).unwrap();
}

fn refused_code(e: ApiError) -> (u16, String) {
    match e {
        ApiError::Refused { status, code, .. } => (status, code),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_travel_encrypted_and_arrive_as_sent() {
    let dir = TempDir::new().unwrap();
    let d = deployment(&dir, ServerSpec::unlimited()).await;
    let mut alice = user(&dir, &d, "alice").await;
    let mut bob = user(&dir, &d, "bob").await;
    let conv = alice.create_conversation(&["bob".into()]).await.unwrap();

    let marker = b"PLAINTEXT-MARKER-that-the-service-must-never-hold";
    let mut picture = marker.to_vec();
    picture.extend((0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    let note = b"a short note".to_vec();
    alice
        .send_with_attachments(&conv, "two files", &[picture.clone(), note.clone()])
        .await
        .unwrap();

    let got = bob.receive(None).await.unwrap();
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.text, "two files");
    assert!(m.attachment_errors.is_empty(), "{:?}", m.attachment_errors);
    assert_eq!(m.attachments.len(), 2);
    assert_eq!(std::fs::read(&m.attachments[0]).unwrap(), picture);
    assert_eq!(std::fs::read(&m.attachments[1]).unwrap(), note);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&m.attachments[0])
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The service's files (database, its log, blob bodies; on PostgreSQL
    // the cluster's files, write-ahead log included) hold the ciphertext
    // only.
    let data = d.server().unwrap().data.clone();
    let mut files = files_under(&data);
    if on_postgres() {
        files.extend(files_under(&d.dir().join("postgres")));
        assert!(
            files.iter().any(|f| f.to_string_lossy().contains("pg_wal")),
            "the cluster's files are scanned"
        );
    } else {
        assert!(
            files.iter().any(|f| f.starts_with(data.join("blobs"))),
            "the bodies are files of their own"
        );
    }
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !contains(&bytes, marker),
            "{} holds plaintext",
            path.display()
        );
    }
    d.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_changed_on_the_service_is_not_saved_and_the_message_says_why() {
    let dir = TempDir::new().unwrap();
    let d = deployment(&dir, ServerSpec::unlimited()).await;
    let mut alice = user(&dir, &d, "alice").await;
    let mut bob = user(&dir, &d, "bob").await;
    let conv = alice.create_conversation(&["bob".into()]).await.unwrap();
    alice
        .send_with_attachments(&conv, "a file", &[b"original bytes".to_vec()])
        .await
        .unwrap();

    // A malicious service flips one bit of the stored blob.
    flip_a_bit_of_the_only_blob(&d, 0).await;

    let got = bob.receive(None).await.unwrap();
    assert_eq!(got[0].text, "a file");
    assert!(got[0].attachments.is_empty());
    assert_eq!(got[0].attachment_errors.len(), 1);
    assert!(
        got[0].attachment_errors[0].contains("does not decrypt"),
        "{:?}",
        got[0].attachment_errors
    );
    d.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_limits_answer_with_their_codes() {
    let dir = TempDir::new().unwrap();
    let server = ServerSpec {
        configure: |c| {
            (ServerSpec::unlimited().configure)(c);
            c.limits.max_blob_len = 1000;
            c.limits.blob_quota = custos_server::Quota { items: 2, bytes: 0 };
        },
        ..ServerSpec::unlimited()
    };
    let d = deployment(&dir, server).await;
    let alice = user(&dir, &d, "alice").await;
    let api = alice.api();

    assert_eq!(
        refused_code(api.upload_blob(vec![0; 1001]).await.unwrap_err()),
        (413, "blob_too_large".into())
    );
    assert_eq!(
        refused_code(api.upload_blob(Vec::new()).await.unwrap_err()),
        (400, "empty".into())
    );
    let first = api.upload_blob(vec![1; 1000]).await.unwrap();
    assert_eq!(first.len(), 64, "32 random bytes in hex");
    let second = api.upload_blob(vec![2; 10]).await.unwrap();
    assert_ne!(first, second);
    assert_eq!(
        refused_code(api.upload_blob(vec![3; 10]).await.unwrap_err()),
        (429, "blob_quota".into())
    );
    assert_eq!(api.download_blob(&first).await.unwrap(), vec![1; 1000]);
    assert_eq!(
        refused_code(api.download_blob(&"0".repeat(64)).await.unwrap_err()),
        (404, "unknown_blob".into())
    );
    assert_eq!(
        refused_code(api.download_blob("abcd").await.unwrap_err()),
        (400, "bad_locator".into())
    );
    d.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_are_deleted_after_the_item_retention() {
    if on_postgres() {
        // PostgreSQL's sweep has its own contract test (`blob_store`).
        eprintln!("SKIPPED on PostgreSQL: counts rows and files of the SQLite store");
        return;
    }
    let dir = TempDir::new().unwrap();
    let clock = custos_clock::dangerous::simulated(20_500 * 86_400_000);
    let spec = DeploymentSpec::new("test", clock.shared())
        .custodians(0, 0, CustodianMode::KeysOnly)
        .with_server(ServerSpec::unlimited());
    let d = Deployment::start(&dir.path().join("deploy"), spec)
        .await
        .unwrap();
    let alice = Device::register(
        &dir.path().join("alice"),
        d.server_url().unwrap(),
        "alice",
        clock.shared(),
    )
    .await
    .unwrap();
    let locator = alice.api().upload_blob(vec![7; 100]).await.unwrap();
    let db = d.server().unwrap().data.join(custos_server::db::DB_FILE);
    let count = || -> i64 {
        rusqlite::Connection::open(&db)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM blobs", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(count(), 1);
    assert!(blob_file(&d, &locator).exists());
    // Past the 30-day retention, the sweep (every 50 ms here) deletes it.
    clock.advance_millis(31 * 86_400_000);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while count() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the blob was not swept"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Its body goes once the row's deletion has committed.
    while blob_file(&d, &locator).exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the blob's file was not deleted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // A fresh session (the old one expired with the jump) finds nothing.
    drop(alice);
    let alice = Device::open(&dir.path().join("alice"), clock.shared())
        .await
        .unwrap();
    assert_eq!(
        refused_code(alice.api().download_blob(&locator).await.unwrap_err()),
        (404, "unknown_blob".into())
    );
    d.shutdown().await.unwrap();
}

/// A blob's body is on disk before its upload is answered; at a restart the
/// service keeps every acknowledged blob (including rows from before the
/// file store, whose body is in the database) and deletes files that no row
/// names: a write interrupted before its rename, or one before its commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_acknowledged_blobs_and_drops_unreferenced_files() {
    if on_postgres() {
        // On PostgreSQL a body commits with its row: there are no files.
        eprintln!("SKIPPED on PostgreSQL: checks the SQLite store's body files");
        return;
    }
    let dir = TempDir::new().unwrap();
    let mut d = deployment(&dir, ServerSpec::unlimited()).await;
    let alice = user(&dir, &d, "alice").await;
    let kept = alice.api().upload_blob(vec![5; 4000]).await.unwrap();
    assert_eq!(std::fs::read(blob_file(&d, &kept)).unwrap(), vec![5; 4000]);

    let data = d.server().unwrap().data.clone();
    let interrupted = data.join("blobs").join(format!("{}.tmp", "a".repeat(64)));
    let uncommitted = data.join("blobs").join("b".repeat(64));
    std::fs::write(&interrupted, b"half a body").unwrap();
    std::fs::write(&uncommitted, b"a body whose row never committed").unwrap();
    // A row written before bodies were files keeps its body in the database.
    let old = "c".repeat(64);
    rusqlite::Connection::open(data.join(custos_server::db::DB_FILE))
        .unwrap()
        .execute(
            "INSERT INTO blobs (locator, owner, size, created_at, expires_at, body) \
             SELECT ?1, owner, 3, created_at, expires_at, X'010203' FROM blobs",
            [&old],
        )
        .unwrap();

    d.restart_server().await.unwrap();
    assert!(!interrupted.exists(), "an interrupted write is removed");
    assert!(!uncommitted.exists(), "a file no row names is removed");
    assert_eq!(
        alice.api().download_blob(&kept).await.unwrap(),
        vec![5; 4000]
    );
    assert_eq!(
        alice.api().download_blob(&old).await.unwrap(),
        vec![1, 2, 3]
    );
    d.shutdown().await.unwrap();
}

/// A report reveals the message's payload, with each attachment's key: a
/// moderator sees the very file the sender committed to, and nothing for an
/// index the message does not have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reported_attachment_is_shown_to_a_moderator_as_committed() {
    let dir = TempDir::new().unwrap();
    let d = deployment(&dir, ServerSpec::unlimited()).await;
    let mut alice = user(&dir, &d, "alice").await;
    let mut bob = user(&dir, &d, "bob").await;
    let moderator = user(&dir, &d, "mod").await;
    d.add_moderator("mod").await.unwrap();
    let conv = alice.create_conversation(&["bob".into()]).await.unwrap();
    let file = b"an abusive picture, as bytes".to_vec();
    alice
        .send_with_attachments(&conv, "look", std::slice::from_ref(&file))
        .await
        .unwrap();
    let got = bob.receive(None).await.unwrap();
    let report = bob.report(&conv, &got[0].id, "abuse", 0).await.unwrap();

    let shown = moderator
        .api()
        .moderation_attachment(report, 0)
        .await
        .unwrap();
    assert_eq!(shown, file);
    assert_eq!(
        refused_code(
            moderator
                .api()
                .moderation_attachment(report, 1)
                .await
                .unwrap_err()
        ),
        (404, "no_attachment".into())
    );
    assert_eq!(
        refused_code(
            bob.api()
                .moderation_attachment(report, 0)
                .await
                .unwrap_err()
        ),
        (403, "not_moderator".into())
    );

    // A body changed on disk does not open under the committed key, and a
    // body that is gone is said to be gone: both `410`, never other bytes.
    for damage in ["changed", "gone"] {
        if damage == "changed" {
            flip_a_bit_of_the_only_blob(&d, usize::MAX).await;
        } else {
            d.edit_service_database("DELETE FROM blobs", &[])
                .await
                .unwrap();
        }
        let e = moderator
            .api()
            .moderation_attachment(report, 0)
            .await
            .unwrap_err();
        assert_eq!(
            refused_code(e),
            (410, "attachment_unavailable".into()),
            "{damage}"
        );
    }
    d.shutdown().await.unwrap();
}
