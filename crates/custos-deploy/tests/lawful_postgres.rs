//! Lawful access on PostgreSQL with two delivery servers on one database
//! (design note 0019, "Interception holds across servers"): a warrant
//! registered through one server keeps what either server accepts, the
//! authority fetches the same items from either, and senders on the other
//! server during the registration lose nothing. Real servers, real
//! devices, the deployment's log, witnesses and custodians, on loopback.
//! Without PostgreSQL the tests print SKIPPED (`CUSTOS_REQUIRE_POSTGRES=1`
//! makes that a failure).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed step must fail the test"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use custos_authority::submit::SubmittedWarrant;
use custos_clock::MILLIS_PER_DAY;
use custos_deploy::{
    CustodianMode, DeliveryService, Deployment, DeploymentSpec, ServerBackend, ServerSpec,
};
use custos_verify::intercepted::KeptItem;
use custos_wire::ConversationId;
use custos_wire::frames::ItemKind;
use custos_wire::release::ConversationDay;

/// Day 20,480 at 09:00 UTC.
const DAY: u32 = 20_480;
const START_MS: u64 = DAY as u64 * MILLIS_PER_DAY + 9 * 3_600_000;

/// The reference deployment, its delivery service on PostgreSQL.
fn spec(clock: &custos_clock::SimulatedClock) -> DeploymentSpec {
    DeploymentSpec::new("test", clock.shared())
        .custodians(5, 3, CustodianMode::services(1))
        .with_server(ServerSpec {
            backend: ServerBackend::Postgres,
            ..ServerSpec::unlimited()
        })
}

/// The deployment (server A) and a second server (B) on its database, with
/// the day keys of `DAY` and the next day published; `None` without
/// PostgreSQL.
async fn two_servers(
    dir: &std::path::Path,
    clock: &custos_clock::SimulatedClock,
) -> Option<(Deployment, DeliveryService)> {
    if custos_deploy::postgres::skip_without_postgres() {
        return None;
    }
    let mut d = Deployment::start(dir, spec(clock)).await.unwrap();
    let b = d.start_another_server(2).await.unwrap();
    d.wait_day_keys(DAY..=DAY + 1).await.unwrap();
    Some((d, b))
}

fn commitment_of(submitted: &SubmittedWarrant) -> [u8; 32] {
    hex::decode(&submitted.commitment)
        .unwrap()
        .try_into()
        .unwrap()
}

/// Everything kept under `submitted`, fetched by its authority from the
/// server at `url`.
async fn kept_on(d: &Deployment, url: &str, submitted: &SubmittedWarrant) -> Vec<KeptItem> {
    // The simulated clock stands still while the pages are fetched.
    let now = d.now_secs();
    custos_authority::intercept::fetch_kept(
        url,
        &commitment_of(submitted),
        &d.keys().authority,
        move || now,
    )
    .await
    .unwrap()
}

/// The authority's view of kept items, for comparing two servers' answers.
fn summary(items: &[KeptItem]) -> Vec<(u64, u64, ItemKind, Vec<u8>)> {
    items
        .iter()
        .map(|i| (i.id, i.server_time, i.kind, i.body.clone()))
        .collect()
}

/// Decrypts what is kept under `submitted` for `conv` on `DAY` (custodians'
/// keys collected, checks of the delivery tag and escrow included) and
/// answers the texts, sorted; every message must pass every check.
async fn opened_texts(
    d: &Deployment,
    submitted: &SubmittedWarrant,
    conv: ConversationId,
) -> Vec<String> {
    let requested = vec![ConversationDay {
        conversation: conv,
        day: DAY,
    }];
    let collected = d.collect(submitted, requested).await.unwrap();
    let (_, opened) = d.decrypt(submitted, &collected).await.unwrap();
    assert!(opened.failures.is_empty(), "{:?}", opened.failures);
    assert_eq!(
        opened.outside_warrant, 0,
        "nothing kept outside the warrant"
    );
    for m in &opened.messages {
        assert!(
            m.checks.envelope_signature
                && m.checks.franking_commitment
                && m.checks.delivery_tag
                && m.checks.escrow_provenance,
            "{m:?}"
        );
    }
    let mut texts: Vec<String> = opened
        .messages
        .iter()
        .map(|m| String::from_utf8(m.body.clone()).unwrap())
        .collect();
    texts.sort();
    texts
}

/// A warrant registered through server A keeps the held conversation-day's
/// items accepted by A and by B, and nothing of another conversation or
/// another day; presenting it again (to A, then to B) starts nothing new
/// and keeps nothing twice; the authority fetches the same items from
/// either server and opens exactly the warranted messages; at keep-until
/// the sweep deletes it all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warrant_registered_on_one_server_keeps_what_both_servers_accept() {
    let dir = tempfile::tempdir().unwrap();
    let clock = custos_clock::dangerous::simulated(START_MS);
    let Some((mut d, b)) = two_servers(dir.path(), &clock).await else {
        return;
    };
    let mut alice = d.register("alice").await.unwrap();
    let mut bob = d.register_on("bob", &b.url).await.unwrap();
    let mut carol = d.register_on("carol", &b.url).await.unwrap();
    let conv = alice.create_conversation(&["bob".into()]).await.unwrap();
    let other = carol.create_conversation(&["bob".into()]).await.unwrap();
    // Bob (on B) reads and acks the first message, which carried alice's
    // chain announcement; the second waits in his mailbox.
    alice.send_text(&conv, "before, read").await.unwrap();
    assert_eq!(bob.receive(None).await.unwrap().len(), 1);
    alice.send_text(&conv, "before, unread").await.unwrap();

    let warrant = d.sign_warrant(&[conv], DAY, DAY).unwrap();
    let submitted = d.submit_warrant(&warrant).await.unwrap();
    // Through A: the unread envelope and the remembered announcement.
    let started = d.intercept(&submitted).await.unwrap();
    assert_eq!(started.kept, 2);
    let again = d.intercept(&submitted).await.unwrap();
    assert_eq!(again.log_index, started.log_index);
    let mut verifier = d.verifier("authority").unwrap();
    let via_b = custos_authority::intercept::intercept(
        d.manifest(),
        d.log(),
        &mut verifier,
        &submitted,
        &d.keys().authority,
        &b.url,
        d.now_secs(),
    )
    .await
    .unwrap();
    assert_eq!(
        (via_b.log_index, via_b.kept),
        (started.log_index, 0),
        "server B knows the interception A registered"
    );
    assert_eq!(kept_on(&d, &b.url, &submitted).await.len(), 2);

    // After the warrant: bob sends through B, alice through A; carol's
    // conversation is not warranted.
    assert_eq!(bob.receive(None).await.unwrap().len(), 1);
    bob.send_text(&conv, "from bob, through B").await.unwrap();
    alice
        .send_text(&conv, "from alice, through A")
        .await
        .unwrap();
    carol
        .send_text(&other, "another conversation")
        .await
        .unwrap();
    assert_eq!(alice.receive(None).await.unwrap().len(), 1);
    assert_eq!(bob.receive(None).await.unwrap().len(), 2);
    // The next day is outside the warrant, on both servers.
    clock.advance_millis(15 * 3_600_000 + 30 * 60_000);
    alice.send_text(&conv, "the next day, A").await.unwrap();
    bob.send_text(&conv, "the next day, B").await.unwrap();
    assert_eq!(alice.receive(None).await.unwrap().len(), 1);
    assert_eq!(bob.receive(None).await.unwrap().len(), 1);

    let on_a = kept_on(&d, d.server_url().unwrap(), &submitted).await;
    let on_b = kept_on(&d, &b.url, &submitted).await;
    assert_eq!(
        summary(&on_a),
        summary(&on_b),
        "both servers serve the same"
    );
    assert!(
        on_a.iter().all(|k| k.conversation == conv && k.day == DAY),
        "only the warranted conversation-day"
    );
    let senders: BTreeSet<&str> = on_a.iter().map(|k| k.sender.as_str()).collect();
    assert_eq!(senders, BTreeSet::from(["alice", "bob"]));
    let ids: BTreeSet<u64> = on_a.iter().map(|k| k.id).collect();
    assert_eq!(ids.len(), on_a.len(), "nothing kept twice");
    assert_eq!(
        opened_texts(&d, &submitted, conv).await,
        [
            "before, unread",
            "from alice, through A",
            "from bob, through B"
        ]
    );
    for device in [&mut alice, &mut bob, &mut carol] {
        let refused = device.take_refusals();
        assert!(refused.is_empty(), "{refused:?}");
    }

    // Past keep-until (not-after, 7 days, plus the grace, 7 days) the
    // retention sweep deletes the interception, its targets, its copies
    // and the remembered announcements; neither server serves it.
    clock.advance_millis(15 * MILLIS_PER_DAY);
    let count = |d: &mut Deployment, table: &str| -> u64 {
        d.postgres_mut()
            .unwrap()
            .psql(
                custos_deploy::postgres::DATABASE,
                &format!("SELECT count(*) FROM {table}"),
            )
            .unwrap()
            .parse()
            .unwrap()
    };
    let mut swept = false;
    for _ in 0..200 {
        if count(&mut d, "interceptions") == 0 {
            swept = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(swept, "the interception is swept at keep-until");
    for table in ["kept_items", "interception_targets", "recent_announcements"] {
        assert_eq!(count(&mut d, table), 0, "{table}");
    }
    for url in [d.server_url().unwrap().to_owned(), b.url.clone()] {
        let now = d.now_secs();
        match custos_authority::intercept::fetch_kept(
            &url,
            &commitment_of(&submitted),
            &d.keys().authority,
            move || now,
        )
        .await
        {
            Err(custos_authority::InterceptError::Refused { code, .. }) => {
                assert_eq!(code, "not_authorised")
            }
            other => panic!("a swept interception must not be served: {other:?}"),
        }
    }
    b.stop().await.unwrap();
    d.shutdown().await.unwrap();
}

/// `psql` of the test cluster (the newest under `/usr/lib/postgresql`, or
/// on `PATH`).
fn psql() -> std::path::PathBuf {
    let mut found: Vec<std::path::PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin").join("psql"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| "psql".into())
}

/// Does what a send batch does first, on a connection of its own: locks
/// `conv`'s row `FOR SHARE`; then holds it until an interception's
/// transaction waits for it (`FOR UPDATE`, seen in `pg_stat_activity`),
/// and one second more, while other batches keep storing; then commits.
/// An error if no interception waited within 60 s.
fn hold_like_a_batch(url: &str, conv: &ConversationId) -> Result<(), String> {
    let lock = format!(
        "SELECT 1 FROM conversations WHERE id = '\\x{}'::bytea FOR SHARE",
        hex::encode(conv.0)
    );
    let wait = "DO $$ BEGIN FOR i IN 1..1200 LOOP PERFORM pg_stat_clear_snapshot(); \
        IF EXISTS (SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
        AND query LIKE '%conversations WHERE id = ANY($1) ORDER BY id FOR UPDATE%') \
        THEN RETURN; END IF; PERFORM pg_sleep(0.05); END LOOP; \
        RAISE EXCEPTION 'no interception waited for the batch''s lock'; END $$";
    let out = std::process::Command::new(psql())
        .arg(url)
        .args(["-v", "ON_ERROR_STOP=1", "-At", "-c", "BEGIN", "-c", &lock])
        .args(["-c", wait, "-c", "SELECT pg_sleep(1)", "-c", "COMMIT"])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Three devices keep sending to the held conversation, two through B and
/// one through A, while the warrant is registered through A, and a batch
/// holding the conversation's lock makes the registration wait (items
/// committed meanwhile must be copied by it): every message acknowledged
/// before, during or after the registration (none is read, so all are
/// still stored) is kept exactly once, whichever server took it, and
/// opens. Lost from the database, the interception is rebuilt from the
/// log when a server starts, with the same copies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_on_both_servers_while_a_warrant_registers_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = custos_clock::dangerous::simulated(START_MS);
    let Some((mut d, b)) = two_servers(dir.path(), &clock).await else {
        return;
    };
    let mut alice = d.register("alice").await.unwrap();
    let mut bob = d.register_on("bob", &b.url).await.unwrap();
    let mut carol = d.register_on("carol", &b.url).await.unwrap();
    let conv = alice
        .create_conversation(&["bob".into(), "carol".into()])
        .await
        .unwrap();
    // Bob and carol join from the Welcome; from then on nobody reads.
    for device in [&mut bob, &mut carol] {
        device.receive(None).await.unwrap();
    }
    let warrant = d.sign_warrant(&[conv], DAY, DAY).unwrap();
    let submitted = d.submit_warrant(&warrant).await.unwrap();

    let registered = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for (name, mut device) in [("alice", alice), ("bob", bob), ("carol", carol)] {
        let registered = registered.clone();
        senders.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            let mut after = 0;
            // Until five messages were acknowledged after the registration.
            while after < 5 {
                let done = registered.load(Ordering::SeqCst);
                let text = format!("{name} {}", sent.len());
                device.send_text(&conv, &text).await.unwrap();
                sent.push(text);
                if done {
                    after += 1;
                }
            }
            (device, sent)
        }));
    }
    // Each sender is under way before the registration starts, and a
    // long "batch" holds the conversation's row `FOR SHARE` until the
    // registration waits for it, then a second more.
    let url = d.postgres_mut().unwrap().url();
    let batch = std::thread::spawn(move || hold_like_a_batch(&url, &conv));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let started = d.intercept(&submitted).await.unwrap();
    registered.store(true, Ordering::SeqCst);
    let waited = batch.join().unwrap();
    assert!(waited.is_ok(), "{waited:?}");
    let mut all_sent = Vec::new();
    let mut devices = Vec::new();
    for s in senders {
        let (device, sent) = s.await.unwrap();
        all_sent.extend(sent);
        devices.push(device);
    }
    assert!(started.kept > 0, "some messages were stored before");

    let kept = kept_on(&d, &b.url, &submitted).await;
    let envelopes: Vec<&KeptItem> = kept
        .iter()
        .filter(|k| k.kind == ItemKind::Envelope)
        .collect();
    let mut per_body: BTreeMap<&[u8], usize> = BTreeMap::new();
    for e in &envelopes {
        *per_body.entry(e.body.as_slice()).or_default() += 1;
    }
    assert!(per_body.values().all(|n| *n == 1), "each kept exactly once");
    assert_eq!(
        envelopes.len(),
        all_sent.len(),
        "every acknowledged message is kept"
    );
    all_sent.sort();
    assert_eq!(opened_texts(&d, &submitted, conv).await, all_sent);
    assert_eq!(
        summary(&kept_on(&d, d.server_url().unwrap(), &submitted).await),
        summary(&kept)
    );

    // The database loses the interception (restored from an older
    // backup): server A, restarted, rebuilds it from its statement in the
    // log and copies again what is still stored; presenting the warrant
    // again then logs and copies nothing.
    d.postgres_mut()
        .unwrap()
        .psql(
            custos_deploy::postgres::DATABASE,
            "DELETE FROM kept_items; DELETE FROM interception_targets; \
             DELETE FROM interceptions",
        )
        .unwrap();
    d.restart_server().await.unwrap();
    let again = d.intercept(&submitted).await.unwrap();
    assert_eq!(
        (again.log_index, again.kept),
        (started.log_index, 0),
        "rebuilt at start"
    );
    let bodies = |items: &[KeptItem]| -> BTreeSet<Vec<u8>> {
        items.iter().map(|k| k.body.clone()).collect()
    };
    assert_eq!(
        bodies(&kept_on(&d, &b.url, &submitted).await),
        bodies(&kept),
        "every copy is back"
    );
    b.stop().await.unwrap();
    d.shutdown().await.unwrap();
}
