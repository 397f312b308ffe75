//! Key transparency (docs/design/0016-key-transparency.md) against a real
//! deployment on loopback whose manifest names the provider's key
//! directory. The malicious service is played by editing the service's own
//! database (a substituted KeyPackage, a key queued behind an account's
//! back) and by restoring an old copy of it (a rollback, then a split view).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use std::future::Future as _;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use custos_client::Device;
use custos_client::device::DeviceError;
use custos_client::keydir::KeyDirRefusal;
use custos_client::receive::Outcome;
use custos_client::refusal::{CommitRefusal, Refusal, WelcomeRefusal};
use custos_deploy::{CustodianMode, Deployment, DeploymentSpec, ServerSpec};
use custos_wire::frames::ItemKind;
use custos_wire::statement::{KeyDirectoryEpoch, SignedStatement, Statement};
use ed25519_dalek::SigningKey;
use tempfile::TempDir;

async fn deployment(dir: &TempDir) -> Deployment {
    let spec = DeploymentSpec::new("kt", custos_clock::system())
        .custodians(0, 0, CustodianMode::KeysOnly)
        .with_key_directory(Duration::from_millis(100))
        .with_server(ServerSpec::unlimited());
    Deployment::start(&dir.path().join("deploy"), spec)
        .await
        .unwrap()
}

/// The provider edits its own storage (either backend): `sql` with `blob`
/// bound to `$1`. Answers the rows changed.
async fn edit(d: &Deployment, sql: &str, blob: &[u8]) -> u64 {
    d.edit_service_database(sql, &[blob]).await.unwrap()
}

/// The service hands out a KeyPackage of `ghost` under bob's name and
/// says that key is bob's.
async fn substitute_bob(d: &Deployment, ghost: &SigningKey) {
    edit(
        d,
        "UPDATE key_packages SET data = $1 \
         WHERE account_id = (SELECT id FROM accounts WHERE name = 'bob')",
        &custos_deploy::mls_fixture::key_package("bob", ghost),
    )
    .await;
    edit(
        d,
        "UPDATE accounts SET identity_key = $1 WHERE name = 'bob'",
        &ghost.verifying_key().to_bytes(),
    )
    .await;
}

fn keydir_refusal(e: DeviceError) -> KeyDirRefusal {
    match e {
        DeviceError::KeyDirectory(r) => r,
        other => panic!("expected a key-directory refusal, got {other}"),
    }
}

/// The directory's latest epoch, as its lookup for `account` shows it (the
/// service answers only once the epoch is logged).
async fn epoch_of(d: &Device, account: &str) -> u64 {
    d.api().key_directory_lookup(account).await.unwrap().epoch
}

async fn wait_epoch_above(d: &Device, account: &str, epoch: u64) -> u64 {
    for _ in 0..200 {
        let e = epoch_of(d, account).await;
        if e > epoch {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no epoch after {epoch}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_substituted_key_package_is_refused_before_anything_is_sent_to_it() {
    let dir = TempDir::new().unwrap();
    let d = deployment(&dir).await;
    let mut alice = d.register("alice").await.unwrap();
    let _bob = d.register("bob").await.unwrap();
    let _carol = d.register("carol").await.unwrap();
    // The service hands out its own KeyPackage under bob's name.
    let ghost = SigningKey::from_bytes(&[9; 32]);
    let kp = custos_deploy::mls_fixture::key_package("bob", &ghost);
    let changed = edit(
        &d,
        "UPDATE key_packages SET data = $1 \
         WHERE account_id = (SELECT id FROM accounts WHERE name = 'bob')",
        &kp,
    )
    .await;
    assert!(changed > 0);
    let conv = alice.create_conversation(&[]).await.unwrap();
    let err = alice
        .add_members(&conv, &["bob".to_owned()])
        .await
        .unwrap_err();
    let text = err.to_string();
    match keydir_refusal(err) {
        KeyDirRefusal::KeyMismatch {
            account, served, ..
        } => {
            assert_eq!(account, "bob");
            assert_eq!(served, hex::encode(ghost.verifying_key().to_bytes()));
        }
        other => panic!("wrong refusal: {other}"),
    }
    assert!(
        text.contains("`bob`") && text.contains("key directory"),
        "{text}"
    );
    // Nothing was committed: the conversation is still alice alone at epoch 0.
    let info = alice.conversations().unwrap();
    assert_eq!(info[0].members, vec!["alice".to_owned()]);
    assert_eq!(info[0].epoch, 0);
    // An honest KeyPackage passes the same check.
    alice
        .add_members(&conv, &["carol".to_owned()])
        .await
        .unwrap();
    assert_eq!(alice.conversations().unwrap()[0].members.len(), 2);
    d.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_added_behind_the_owners_back_is_reported_at_her_next_receive() {
    let dir = TempDir::new().unwrap();
    let d = deployment(&dir).await;
    let mut alice = d.register("alice").await.unwrap();
    alice.receive(None).await.unwrap();
    assert!(alice.key_alerts().unwrap().is_empty());
    let before = epoch_of(&alice, "alice").await;
    // The service publishes another key for alice.
    let ghost = SigningKey::from_bytes(&[7; 32]).verifying_key().to_bytes();
    edit(
        &d,
        "INSERT INTO kd_pending (account, identity_key, queued_at) VALUES ('alice', $1, 0)",
        &ghost,
    )
    .await;
    wait_epoch_above(&alice, "alice", before).await;
    alice.receive(None).await.unwrap();
    let alerts = alice.key_alerts().unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].account, "alice");
    assert_eq!(alerts[0].key, hex::encode(ghost));
    assert_eq!(alerts[0].version, 2);
    d.shutdown().await.unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_directory_is_refused_publishes_nothing_and_a_fork_is_a_split_view() {
    if custos_deploy::ServerBackend::from_test_env() == custos_deploy::ServerBackend::Postgres {
        // The rollback is played by restoring a copy of the SQLite folder.
        eprintln!("SKIPPED on PostgreSQL: restores a copy of the service's SQLite files");
        return;
    }
    let dir = TempDir::new().unwrap();
    let mut d = deployment(&dir).await;
    let mut alice = d.register("alice").await.unwrap();
    let _bob = d.register("bob").await.unwrap();
    let old_epoch = epoch_of(&alice, "bob").await;
    // The provider keeps a copy of its database at this epoch...
    let addr = d.stop_server().await.unwrap();
    let server = d.dir().join("server");
    let old = dir.path().join("server-old");
    copy_dir(&server, &old);
    d.start_server_on(addr).await.unwrap();
    // ...the directory moves on, and alice verifies the newer epoch...
    let _carol = d.register("carol").await.unwrap();
    alice.verify_account_key("carol").await.unwrap().unwrap();
    let seen = alice.key_directory_epoch().unwrap();
    assert!(seen > old_epoch);
    // ...then the provider restores the old copy: a rollback.
    let addr = d.stop_server().await.unwrap();
    let newer = dir.path().join("server-newer");
    copy_dir(&server, &newer);
    std::fs::remove_dir_all(&server).unwrap();
    copy_dir(&old, &server);
    d.start_server_on(addr).await.unwrap();
    let err = alice.verify_account_key("bob").await.unwrap_err();
    match keydir_refusal(err) {
        KeyDirRefusal::Rollback {
            account,
            epoch,
            last,
        } => {
            assert_eq!(account, "bob");
            assert_eq!(epoch, old_epoch);
            assert_eq!(last, seen);
        }
        other => panic!("wrong refusal: {other}"),
    }
    assert_eq!(alice.key_directory_epoch().unwrap(), seen);
    // The restored service does not go on from there: its next epoch would
    // sign a second root for an epoch the log already holds (a split view),
    // so the publisher compares its database with the log first and
    // publishes nothing (dave's key stays queued).
    let logged_before = logged_epochs(&d).await;
    assert!(logged_before.iter().any(|(e, _)| *e == seen));
    let waited = tokio::time::timeout(Duration::from_secs(3), d.register("dave")).await;
    assert!(waited.is_err(), "dave's key was published: {waited:?}");
    assert_eq!(logged_epochs(&d).await, logged_before);
    assert_eq!(epoch_of(&alice, "bob").await, old_epoch);
    // A provider that skipped that check and signed a second root for an
    // epoch is caught by every device through the log: two roots for one
    // epoch are a split view.
    let carol_at_seen = {
        d.stop_server().await.unwrap();
        std::fs::remove_dir_all(&server).unwrap();
        copy_dir(&newer, &server);
        d.start_server_on(addr).await.unwrap();
        alice.api().key_directory_lookup("carol").await.unwrap()
    };
    assert_eq!(carol_at_seen.epoch, seen);
    alice.verify_served("carol", &carol_at_seen).await.unwrap();
    let provider = d.keys().provider.name().to_owned();
    let forged = SignedStatement::sign(
        &Statement::KeyDirectoryEpoch(KeyDirectoryEpoch {
            provider,
            epoch: seen,
            root_hash: [0xab; 32],
            changes: 1,
            published_at: 0,
        }),
        d.keys().provider.signing_key(),
    )
    .unwrap();
    let index = d.log().submit(&forged).await.unwrap().index;
    d.wait_witnessed(index + 1).await.unwrap();
    alice.follow_log().await.unwrap();
    let err = alice
        .verify_served("carol", &carol_at_seen)
        .await
        .unwrap_err();
    assert!(matches!(keydir_refusal(err), KeyDirRefusal::SplitView { epoch, .. } if epoch == seen));
    d.shutdown().await.unwrap();
}

/// Every `key_directory_epoch` statement in the log, as (epoch, root).
async fn logged_epochs(d: &Deployment) -> Vec<(u64, [u8; 32])> {
    let policy = d.trust_policy().unwrap();
    let mut checkpoint = None;
    for _ in 0..100 {
        let note = d.log().checkpoint().await.unwrap();
        if let Ok(cp) = policy.verify_checkpoint(&note) {
            checkpoint = Some(cp);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let size = checkpoint.unwrap().size();
    d.log()
        .entries(0, size)
        .await
        .unwrap()
        .iter()
        .filter_map(|e| match SignedStatement::decode(e).ok()?.verify().ok()? {
            Statement::KeyDirectoryEpoch(k) => Some((k.epoch, k.root_hash)),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_corrupted_part_of_a_proof_is_refused_and_changes_nothing() {
    let dir = TempDir::new().unwrap();
    let d = deployment(&dir).await;
    let mut alice = d.register("alice").await.unwrap();
    let _bob = d.register("bob").await.unwrap();
    let good = alice.api().key_directory_lookup("bob").await.unwrap();
    let epoch_before = alice.key_directory_epoch().unwrap();
    let proof = B64.decode(&good.proof).unwrap();
    let mut refused = 0;
    // Every byte of the proof flipped in turn (every field of every
    // Merkle path, VRF proof, value, version, epoch and nonce).
    for i in 0..proof.len() {
        let mut bad = proof.clone();
        bad[i] ^= 0x01;
        let mut served = good.clone();
        served.proof = B64.encode(&bad);
        let err = alice.verify_served("bob", &served).await.unwrap_err();
        assert!(
            matches!(keydir_refusal(err), KeyDirRefusal::BadProof { ref account, .. } if account == "bob"),
            "byte {i}"
        );
        refused += 1;
    }
    // The served epoch and root.
    let mut served = good.clone();
    served.epoch -= 1;
    assert!(alice.verify_served("bob", &served).await.is_err());
    let mut served = good.clone();
    served.epoch += 1;
    assert!(matches!(
        keydir_refusal(alice.verify_served("bob", &served).await.unwrap_err()),
        KeyDirRefusal::EpochNotLogged { .. }
    ));
    let mut served = good.clone();
    served.root_hash = hex::encode([0u8; 32]);
    assert!(matches!(
        keydir_refusal(alice.verify_served("bob", &served).await.unwrap_err()),
        KeyDirRefusal::RootMismatch { .. }
    ));
    // A proof for bob is no proof for another account.
    assert!(alice.verify_served("alice", &good).await.is_err());
    assert!(refused > 500, "{refused}");
    // Nothing changed; the good proof still verifies.
    assert_eq!(alice.key_directory_epoch().unwrap(), epoch_before);
    assert!(alice.conversations().unwrap().is_empty());
    let k = alice.verify_served("bob", &good).await.unwrap().unwrap();
    assert_eq!(k.account(), "bob");
    d.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_contacts_new_key_blocks_sending_until_accepted() {
    let dir = TempDir::new().unwrap();
    let d = deployment(&dir).await;
    let mut alice = d.register("alice").await.unwrap();
    let mut bob = d.register("bob").await.unwrap();
    // Both sides compute the same safety code.
    let a = alice.verify_contact("bob", false).await.unwrap();
    let b = bob.verify_contact("alice", false).await.unwrap();
    assert_eq!(a.safety_code, b.safety_code);
    assert_eq!(a.key, hex::encode(bob.identity_key()));
    // The service now publishes a new key for bob and hands out a
    // KeyPackage with it: the directory vouches for it, so adding passes...
    let before = epoch_of(&alice, "bob").await;
    let ghost = SigningKey::from_bytes(&[5; 32]);
    edit(
        &d,
        "INSERT INTO kd_pending (account, identity_key, queued_at) VALUES ('bob', $1, 0)",
        &ghost.verifying_key().to_bytes(),
    )
    .await;
    wait_epoch_above(&alice, "bob", before).await;
    substitute_bob(&d, &ghost).await;
    let conv = alice
        .create_conversation(&["bob".to_owned()])
        .await
        .unwrap();
    // ...but alice verified bob's old key: sending is blocked, loudly.
    let err = alice.send_text(&conv, "hello?").await.unwrap_err();
    assert!(
        matches!(&err, DeviceError::ContactKeyChanged { contact, .. } if contact == "bob"),
        "{err}"
    );
    assert!(err.to_string().contains("--accept"), "{err}");
    let err = alice.verify_contact("bob", false).await.unwrap_err();
    assert!(
        matches!(err, DeviceError::ContactKeyChanged { .. }),
        "{err}"
    );
    // Accepting the new key (after comparing codes) unblocks sending.
    let accepted = alice.verify_contact("bob", true).await.unwrap();
    assert_eq!(accepted.replaced, Some(a.key));
    alice.send_text(&conv, "hello").await.unwrap();
    // And bob's own device reports the key it did not make.
    bob.receive(None).await.unwrap();
    assert_eq!(bob.key_alerts().unwrap().len(), 1);
    d.shutdown().await.unwrap();
}

/// Waits until `account`'s key is in a logged epoch of the directory.
async fn wait_published(d: &Device, account: &str) {
    for _ in 0..200 {
        if d.api().key_directory_lookup(account).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{account} never published");
}

fn member_key_refusal(outcome: &Outcome) -> &KeyDirRefusal {
    match outcome {
        Outcome::Refused(Refusal::Commit(CommitRefusal::MemberKey(r)))
        | Outcome::Refused(Refusal::Welcome(WelcomeRefusal::MemberKey(r))) => r,
        other => panic!("expected a member-key refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ghost_member_is_refused_by_every_receiving_device_naming_the_account() {
    let dir = TempDir::new().unwrap();
    let d = deployment(&dir).await;
    let mut carol = d.register("carol").await.unwrap();
    let mut dave = d.register("dave").await.unwrap();
    let _bob = d.register("bob").await.unwrap();
    // mallory's device is modified: it pins no manifest, so it checks no
    // key before it adds someone.
    let mut mallory = Device::register(
        &d.dir().join("users").join("mallory"),
        d.server_url().unwrap(),
        "mallory",
        custos_clock::system(),
    )
    .await
    .unwrap();
    wait_published(&carol, "mallory").await;
    let conv = carol
        .create_conversation(&["mallory".to_owned()])
        .await
        .unwrap();
    mallory.sync().await.unwrap();
    // The service colludes: it hands out its own KeyPackage under bob's
    // name and says that key is bob's (the directory still holds bob's).
    let ghost = SigningKey::from_bytes(&[11; 32]);
    let ghost_hex = hex::encode(ghost.verifying_key().to_bytes());
    substitute_bob(&d, &ghost).await;

    // 1. An incoming commit that adds the ghost: carol refuses it.
    mallory
        .add_members(&conv, &["bob".to_owned()])
        .await
        .unwrap();
    let outcomes = carol.sync().await.unwrap();
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    match member_key_refusal(&outcomes[0]) {
        KeyDirRefusal::MemberKeyMismatch {
            account,
            leaf,
            directory,
        } => {
            assert_eq!(account, "bob");
            assert_eq!(*leaf, ghost_hex);
            assert_eq!(*directory, hex::encode(_bob.identity_key()));
        }
        other => panic!("wrong refusal: {other}"),
    }
    let refused = carol.take_refusals();
    assert_eq!(refused[0].code, "commit_member_key");
    assert!(refused[0].reason.contains("`bob`"), "{}", refused[0].reason);
    assert!(refused[0].reason.contains("ghost"), "{}", refused[0].reason);
    // Nothing was applied: carol's roster and epoch are as before.
    let info = carol.conversations().unwrap();
    assert_eq!(info[0].epoch, 1);
    assert_eq!(
        info[0].members,
        vec!["carol".to_owned(), "mallory".to_owned()]
    );

    // 2. A Welcome whose roster holds the ghost: dave does not join.
    let conv2 = mallory
        .create_conversation(&["bob".to_owned(), "dave".to_owned()])
        .await
        .unwrap();
    let items = dave.api().fetch(0, 100).await.unwrap();
    let welcome = items
        .into_iter()
        .find(|i| i.kind == ItemKind::Welcome && i.conversation == conv2)
        .unwrap();
    let first = dave.process_delivery(welcome.clone()).await.unwrap();
    assert!(
        matches!(member_key_refusal(&first), KeyDirRefusal::MemberKeyMismatch { account, .. } if account == "bob"),
        "{first:?}"
    );
    assert!(dave.conversations().unwrap().is_empty());
    // Its records of the conversation, written while the proofs were
    // checked, were taken back with the refusal.
    let dave_store =
        custos_client::store::Store::open(&d.dir().join("users").join("dave").join("device.db"))
            .unwrap();
    assert!(dave_store.conversations().unwrap().is_empty());
    // The device is as it was: the same Welcome meets the same check
    // again (its KeyPackage was put back, not spent).
    let again = dave.process_delivery(welcome).await.unwrap();
    assert_eq!(again, first);
    dave.sync().await.unwrap();
    assert!(dave.conversations().unwrap().is_empty());
    assert_eq!(dave.take_refusals()[0].code, "welcome_member_key");

    // An honest Welcome (carol adds dave; the roster is carol and mallory,
    // both in the directory) passes the same checks.
    carol
        .create_conversation(&["dave".to_owned(), "mallory".to_owned()])
        .await
        .unwrap();
    let outcomes = dave.sync().await.unwrap();
    assert_eq!(outcomes, vec![Outcome::Joined]);
    d.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listening_device_checks_its_own_keys_on_a_schedule() {
    let dir = TempDir::new().unwrap();
    let d = deployment(&dir).await;
    let mut alice = d.register("alice").await.unwrap();
    alice.set_own_keys_check_interval(Duration::from_millis(200));
    let before = epoch_of(&alice, "alice").await;
    // alice's device keeps listening; meanwhile the service publishes
    // another key for her account.
    let ghost = SigningKey::from_bytes(&[13; 32]).verifying_key().to_bytes();
    let (received, ()) = tokio::join!(alice.receive(Some(Duration::from_secs(4))), async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        edit(
            &d,
            "INSERT INTO kd_pending (account, identity_key, queued_at) VALUES ('alice', $1, 0)",
            &ghost,
        )
        .await;
    });
    received.unwrap();
    // The check at the start of `receive` ran before the key existed: the
    // alert comes from a scheduled check while the device listened.
    let alerts = alice.key_alerts().unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].key, hex::encode(ghost));
    assert!(alerts[0].epoch > before);
    assert!(alice.own_keys_checked_at().unwrap().is_some());
    d.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_lookup_proves_each_account_and_refuses_bad_batches() {
    let dir = TempDir::new().unwrap();
    let d = deployment(&dir).await;
    let mut alice = d.register("alice").await.unwrap();
    let bob = d.register("bob").await.unwrap();
    let carol = d.register("carol").await.unwrap();
    wait_published(&alice, "bob").await;
    wait_published(&alice, "carol").await;
    let batch = alice
        .api()
        .key_directory_lookups(&["carol", "bob"])
        .await
        .unwrap();
    let names: Vec<&str> = batch.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(names, ["carol", "bob"]);
    assert_eq!(batch[0].1.epoch, batch[1].1.epoch);
    // Each proof verifies against the logged root, for that account's key.
    for ((account, proof), key) in batch.iter().zip([carol.identity_key(), bob.identity_key()]) {
        let verified = alice.verify_served(account, proof).await.unwrap().unwrap();
        assert_eq!(verified.key(), &key, "{account}");
    }
    // A proof moved to another account does not verify.
    let err = alice.verify_served("bob", &batch[0].1).await.unwrap_err();
    assert!(
        matches!(keydir_refusal(err), KeyDirRefusal::BadProof { ref account, .. } if account == "bob")
    );
    // Bad batches are refused with a typed code.
    let api = alice.api();
    let too_many: Vec<String> = (0..65).map(|i| format!("user{i}")).collect();
    let too_many: Vec<&str> = too_many.iter().map(String::as_str).collect();
    for bad in [vec![], vec!["bob", "bob"], too_many] {
        let err = api.key_directory_lookups(&bad).await.unwrap_err();
        assert_eq!(err.status(), Some(400), "{err}");
        assert!(
            err.to_string().contains("bad_batch") || format!("{err:?}").contains("bad_batch"),
            "{err:?}"
        );
    }
    let err = api
        .key_directory_lookups(&["bob", "zed"])
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert!(format!("{err:?}").contains("`zed`"), "{err:?}");
    d.shutdown().await.unwrap();
}

/// The device's store, opened beside the device (WAL: both connections see
/// each other's commits), as a disk that refuses writes is played.
fn device_db(d: &Deployment, account: &str) -> rusqlite::Connection {
    rusqlite::Connection::open(d.dir().join("users").join(account).join("device.db")).unwrap()
}

fn meta(db: &rusqlite::Connection, key: &str) -> Option<Vec<u8>> {
    use rusqlite::OptionalExtension as _;
    db.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
        .unwrap()
}

fn logged_roots_kept(db: &rusqlite::Connection) -> u64 {
    db.query_row(
        "SELECT COUNT(*) FROM meta WHERE key LIKE 'keydir/root/%'",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_of_the_log_is_stored_whole_or_not_at_all() {
    let dir = TempDir::new().unwrap();
    let d = deployment(&dir).await;
    let mut alice = d.register("alice").await.unwrap();
    alice.follow_log().await.unwrap();
    let db = device_db(&d, "alice");
    let cursor = meta(&db, "log/cursor").unwrap();
    let checkpoint = meta(&db, "log/checkpoint").unwrap();
    let roots = logged_roots_kept(&db);
    // The store refuses the cursor's write, which comes after the new
    // epoch's root in the same poll.
    db.execute_batch(
        "CREATE TRIGGER refuse_cursor_insert BEFORE INSERT ON meta WHEN NEW.key = 'log/cursor'
           BEGIN SELECT RAISE(ABORT, 'the disk refuses'); END;
         CREATE TRIGGER refuse_cursor_update BEFORE UPDATE ON meta WHEN NEW.key = 'log/cursor'
           BEGIN SELECT RAISE(ABORT, 'the disk refuses'); END;",
    )
    .unwrap();
    // Bob's registration returns once his key's epoch is logged and witnessed.
    let bob = d.register("bob").await.unwrap();
    let err = alice.follow_log().await.unwrap_err();
    assert!(err.to_string().contains("the disk refuses"), "{err}");
    // Neither the cursor, nor the root it would have covered, nor the
    // checkpoint that proved it is kept.
    assert_eq!(meta(&db, "log/cursor").unwrap(), cursor);
    assert_eq!(meta(&db, "log/checkpoint").unwrap(), checkpoint);
    assert_eq!(logged_roots_kept(&db), roots);
    // Once the disk takes writes again, the same entries are read again and
    // kept, and the new epoch's proofs verify.
    db.execute_batch("DROP TRIGGER refuse_cursor_insert; DROP TRIGGER refuse_cursor_update;")
        .unwrap();
    let synced = alice.follow_log().await.unwrap();
    assert!(synced.cursor > u64::from_be_bytes(cursor.try_into().unwrap()));
    assert!(logged_roots_kept(&db) > roots);
    assert_ne!(meta(&db, "log/checkpoint").unwrap(), checkpoint);
    let verified = alice.verify_account_key("bob").await.unwrap().unwrap();
    assert_eq!(verified.key(), &bob.identity_key());
    d.shutdown().await.unwrap();
}

/// A device made before the checkpoint moved into its store kept it in the
/// file `log-checkpoint` of its home: that file is read (and verified) once,
/// then the store holds the checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_devices_checkpoint_file_is_taken_into_the_store() {
    let dir = TempDir::new().unwrap();
    let d = deployment(&dir).await;
    let mut alice = d.register("alice").await.unwrap();
    alice.follow_log().await.unwrap();
    let db = device_db(&d, "alice");
    let note = meta(&db, "log/checkpoint").unwrap();
    let file = d
        .dir()
        .join("users")
        .join("alice")
        .join(custos_client::logsync::CHECKPOINT_FILE);
    // As an older device left it: the checkpoint in the file, not the store.
    db.execute("DELETE FROM meta WHERE key = 'log/checkpoint'", [])
        .unwrap();
    // The checkpoint's root hash (its third line) changed: no signature
    // holds any more.
    let mut forged = note.clone();
    let third_line = forged
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(1)
        .unwrap()
        .0
        + 1;
    forged[third_line] = if forged[third_line] == b'A' {
        b'B'
    } else {
        b'A'
    };
    std::fs::write(&file, &forged).unwrap();
    // A file whose checkpoint does not verify is refused, not skipped.
    alice.follow_log().await.unwrap_err();
    assert_eq!(meta(&db, "log/checkpoint"), None);
    std::fs::write(&file, &note).unwrap();
    d.register("bob").await.unwrap();
    alice.follow_log().await.unwrap();
    let kept = meta(&db, "log/checkpoint").unwrap();
    assert_ne!(
        kept, note,
        "the new checkpoint, consistent with the file's, is kept"
    );
    d.shutdown().await.unwrap();
}

/// A join abandoned part-way (the device's future dropped while it checks
/// the roster's keys, after openmls consumed the KeyPackage and staged the
/// group) leaves nothing behind: the same Welcome, processed again, is
/// joined. The runtime has one thread, so the first poll stops at the
/// first network wait.
#[tokio::test(flavor = "current_thread")]
async fn a_join_abandoned_during_the_roster_check_can_be_done_again() {
    let dir = TempDir::new().unwrap();
    let d = deployment(&dir).await;
    let mut alice = d.register("alice").await.unwrap();
    let mut bob = d.register("bob").await.unwrap();
    let _carol = d.register("carol").await.unwrap();
    let conv = alice
        .create_conversation(&["carol".to_owned()])
        .await
        .unwrap();
    alice.add_members(&conv, &["bob".to_owned()]).await.unwrap();
    let welcome = bob
        .api()
        .fetch(0, 100)
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.kind == ItemKind::Welcome)
        .unwrap();
    {
        let mut joining = std::pin::pin!(bob.process_delivery(welcome.clone()));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(joining.as_mut().poll(&mut cx).is_pending());
    }
    assert!(bob.conversations().unwrap().is_empty());
    assert_eq!(
        bob.process_delivery(welcome).await.unwrap(),
        Outcome::Joined
    );
    alice
        .send_text(&conv, "after the second try")
        .await
        .unwrap();
    let got = bob.receive(None).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].text, "after the second try");
    d.shutdown().await.unwrap();
}

/// A log that answers inclusion proofs for another entry than the one
/// asked is refused by the device's log follower, both when the proofs are
/// asked for one by one (a poll of many entries) and when they come in the
/// poll's first round (a few new entries, the usual case after a publish).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_proving_another_entry_is_refused_in_either_round() {
    use custos_client::follower::{FollowError, LogFollower};
    use custos_wire::statement::StatementKind;

    let dir = TempDir::new().unwrap();
    let d = deployment(&dir).await;
    let _alice = d.register("alice").await.unwrap();
    let proxy = custos_deploy::proxy::spawn_proxy(d.log_url())
        .await
        .unwrap();
    let kinds = [StatementKind::KeyDirectoryEpoch];
    let follower = || LogFollower::with_last(&proxy.url, d.manifest(), None, &kinds).unwrap();

    // Many entries, their proofs asked for after the round.
    proxy.faults.set_wrong_inclusion_proofs(true);
    let err = follower().poll(0).await.unwrap_err();
    assert!(matches!(err, FollowError::Verify(_)), "{err}");

    // The same log, honest, is followed to its end.
    proxy.faults.set_wrong_inclusion_proofs(false);
    let mut honest = follower();
    let mut cursor = 0;
    loop {
        let polled = honest.poll(cursor).await.unwrap();
        cursor = polled.next_cursor;
        if cursor >= polled.checkpoint.size() {
            break;
        }
    }
    // A few new entries (a new account's epoch): their proofs come in the
    // first round, and a wrong one is refused just the same.
    let _bob = d.register("bob").await.unwrap();
    let polled = honest.poll(cursor).await.unwrap();
    let new = polled.next_cursor - cursor;
    assert!((1..=8).contains(&new), "{new} new entries");
    assert!(!polled.statements.is_empty());
    proxy.faults.set_wrong_inclusion_proofs(true);
    let err = honest.poll(cursor).await.unwrap_err();
    assert!(matches!(err, FollowError::Verify(_)), "{err}");
    d.shutdown().await.unwrap();
}
