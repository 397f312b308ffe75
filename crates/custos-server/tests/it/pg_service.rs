//! The delivery service on PostgreSQL with two real servers on one
//! database (`custos_server::serve` twice, each with its own pool, data
//! folder and clock): messaging with clients spread across both servers,
//! pushes crossing servers, logins across servers, commits racing on both
//! servers, and PostgreSQL restarted under load. Without PostgreSQL the
//! tests print SKIPPED (`CUSTOS_REQUIRE_POSTGRES=1` makes that a failure).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use custos_clock::dangerous;
use custos_deploy::postgres::TestPostgres;
use custos_wire::frames::{ClientFrame, ItemKind, ServerFrame};
use ed25519_dalek::Signer;
use reqwest::StatusCode;
use serde_json::json;

use crate::common::{
    START_MS, TestServer, User, envelope, next_delivery, next_frame, send_frame, test_config, today,
};

/// A PostgreSQL cluster and two servers on it.
pub(crate) struct Cluster {
    pub pg: TestPostgres,
    pub a: TestServer,
    pub b: TestServer,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

/// A server on the PostgreSQL database `url`, its data folder `dir`.
pub(crate) async fn pg_server(dir: &Path, url: &str) -> TestServer {
    let config = test_config(dir).with_database(url);
    TestServer::start_with(config, dangerous::simulated(START_MS)).await
}

/// Two servers on one fresh PostgreSQL; `None` (SKIPPED) without it.
pub(crate) async fn cluster(dir: &Path) -> Option<Cluster> {
    let pg = TestPostgres::start(&dir.join("pg")).unwrap()?;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = pg_server(da.path(), &pg.url()).await;
    let b = pg_server(db.path(), &pg.url()).await;
    Some(Cluster {
        pg,
        a,
        b,
        _dirs: (da, db),
    })
}

/// The same user, now talking to `server` (the session is the database's).
fn via(u: &User, server: &TestServer) -> User {
    User {
        name: u.name.clone(),
        key: u.key.clone(),
        token: u.token.clone(),
        base: server.url.clone(),
        http: reqwest::Client::new(),
        mls: u.mls.clone(),
    }
}

async fn ready(server: &TestServer) -> StatusCode {
    reqwest::get(format!("{}/readyz", server.url))
        .await
        .map(|r| r.status())
        .unwrap_or(StatusCode::BAD_GATEWAY)
}

/// Messaging with the members spread over both servers: registrations,
/// logins, a group created and changed through A, envelopes sent through
/// A pushed live to a WebSocket on B and the other way round, HTTP fetch
/// and ack on the other server, replays refused across servers.
#[tokio::test]
async fn messaging_with_clients_on_two_servers() {
    let dir = tempfile::tempdir().unwrap();
    let Some(c) = cluster(dir.path()).await else {
        return;
    };
    let alice = User::register(&c.a, "alice").await;
    let bob = User::register(&c.b, "bob").await;
    let carol = User::register(&c.a, "carol").await;
    // A name taken on A is taken on B.
    let (st, body) = via(&carol, &c.b)
        .post_json(
            "/v1/accounts",
            json!({"name": "alice", "identity_key": B64.encode([9u8; 32])}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    // Bob's WebSocket is on B before anything is sent.
    let mut bob_ws = bob.ws().await;
    let conv = alice.group_with(&[&bob]).await;
    let welcome = next_delivery(&mut bob_ws).await;
    assert_eq!(welcome.kind, ItemKind::Welcome);
    let (st, body, _) = alice.change(&conv, &[&carol], &[], &[&bob]).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let commit = next_delivery(&mut bob_ws).await;
    assert_eq!(commit.kind, ItemKind::Commit);
    assert!(commit.seq > welcome.seq);
    // Twenty envelopes through A, pushed in order to Bob on B.
    let mut sent = Vec::new();
    for i in 0..20u8 {
        let env = envelope(&conv, today(), &[i; 40]);
        alice
            .submit(&conv, ItemKind::Envelope, env.clone())
            .await
            .unwrap();
        sent.push(env);
    }
    let mut last = commit.seq;
    for env in &sent {
        let d = next_delivery(&mut bob_ws).await;
        assert_eq!(d.body, *env, "in order, each once");
        assert_eq!(d.seq, last + 1, "a device's seqs are dense on PostgreSQL");
        last = d.seq;
    }
    // Pushes cross servers on the wake-up, not on the WebSocket's slow
    // poll (2 s): each of ten envelopes sent through A reaches B at once.
    for i in 0..10u8 {
        let env = envelope(&conv, today(), &[i; 41]);
        alice
            .submit(&conv, ItemKind::Envelope, env.clone())
            .await
            .unwrap();
        let d = tokio::time::timeout(Duration::from_millis(1000), next_delivery(&mut bob_ws))
            .await
            .expect("a push crossing servers waited for the poll");
        assert_eq!(d.body, env);
        last = d.seq;
    }
    // A replay is refused by the other server.
    let (st, body) = via(&alice, &c.b)
        .submit(&conv, ItemKind::Envelope, sent[0].clone())
        .await
        .unwrap_err();
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("duplicate"))
    );
    // Bob submits over his WebSocket on B; Carol fetches it on A.
    let env = envelope(&conv, today(), b"from bob over B");
    send_frame(
        &mut bob_ws,
        &ClientFrame::Submit {
            request_id: 5,
            kind: ItemKind::Envelope,
            conversation: conv,
            body: env.clone(),
        },
    )
    .await;
    match next_frame(&mut bob_ws).await {
        ServerFrame::Accepted { request_id: 5, .. } => {}
        other => panic!("expected Accepted, got {other:?}"),
    }
    let carol_got = carol.fetch(0).await;
    assert_eq!(carol_got.last().unwrap().body, env);
    // Bob acks everything over B; Alice's copy to Carol is untouched.
    let seqs: Vec<u64> = (welcome.seq..=last).collect();
    assert_eq!(via(&bob, &c.a).ack(&seqs).await, seqs.len() as u64);
    assert!(bob.fetch(0).await.is_empty());
    assert_eq!(carol.fetch(0).await.len(), carol_got.len());
    // The list of conversations is the same on both servers.
    let (_, on_a) = bob.get_json("/v1/conversations").await;
    let (_, on_b) = via(&bob, &c.a).get_json("/v1/conversations").await;
    assert_eq!(on_a, on_b);
    assert_eq!(
        on_a["conversations"][0]["members"],
        json!(["alice", "bob", "carol"])
    );
    // Moderation is served on PostgreSQL (here without franking, so it
    // answers that it takes no reports), the same on both servers.
    let (st, stats_a) = bob.get_json("/v1/moderation/stats").await;
    assert_eq!(
        (st, stats_a["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("franking_disabled"))
    );
    let (_, stats_b) = via(&bob, &c.a).get_json("/v1/moderation/stats").await;
    assert_eq!(stats_a, stats_b);
    assert_eq!(ready(&c.a).await, StatusCode::OK);
    c.a.stop().await;
    c.b.stop().await;
}

/// A login challenge issued by A is answered on B (the key is the
/// deployment's), and that answer, replayed to A, is refused.
#[tokio::test]
async fn a_login_answer_is_spent_on_every_server() {
    let dir = tempfile::tempdir().unwrap();
    let Some(c) = cluster(dir.path()).await else {
        return;
    };
    let alice = User::register(&c.a, "alice").await;
    let (st, ch) = alice
        .post_json("/v1/auth/challenge", json!({"name": "alice"}))
        .await;
    assert_eq!(st, StatusCode::OK);
    let challenge: [u8; 32] = B64
        .decode(ch["challenge"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let sig = alice
        .key
        .sign(&custos_server::challenge_message("alice", &challenge));
    let answer = json!({"name": "alice", "challenge": ch["challenge"],
                        "signature": B64.encode(sig.to_bytes())});
    let (st, body) = via(&alice, &c.b)
        .post_json("/v1/auth/session", answer.clone())
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (st, body) = alice.post_json("/v1/auth/session", answer).await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    c.a.stop().await;
    c.b.stop().await;
}

/// A session opened on A is accepted on B, and once each server has used
/// it (and keeps it, `delivery::session_cache`), each refuses it from its
/// expiry on, as a database read would.
#[tokio::test]
async fn a_session_works_on_every_server_until_it_expires_on_each() {
    let dir = tempfile::tempdir().unwrap();
    let Some(c) = cluster(dir.path()).await else {
        return;
    };
    let alice = User::register(&c.a, "alice").await;
    let on_b = via(&alice, &c.b);
    for _ in 0..2 {
        assert_eq!(alice.get_json("/v1/conversations").await.0, StatusCode::OK);
        assert_eq!(on_b.get_json("/v1/conversations").await.0, StatusCode::OK);
    }
    let unknown = User {
        token: "00".repeat(32),
        ..via(&alice, &c.b)
    };
    let (st, body) = unknown.get_json("/v1/conversations").await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    // One millisecond before the expiry both accept it; at the expiry
    // both refuse it.
    let ttl = custos_server::SESSION_TTL_MS;
    c.a.clock.advance_millis(ttl - 1);
    c.b.clock.advance_millis(ttl - 1);
    assert_eq!(alice.get_json("/v1/conversations").await.0, StatusCode::OK);
    assert_eq!(on_b.get_json("/v1/conversations").await.0, StatusCode::OK);
    c.a.clock.advance_millis(1);
    c.b.clock.advance_millis(1);
    for user in [&alice, &on_b] {
        let (st, body) = user.get_json("/v1/conversations").await;
        assert_eq!(
            (st, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("unauthorized")),
            "an expired session is refused by every server that kept it"
        );
    }
    c.a.stop().await;
    c.b.stop().await;
}

/// Alice commits through A and Bob through B, for the same epoch, five
/// epochs in a row: exactly one wins each epoch, the other is told `409
/// stale_epoch` with the new epoch, follows the winner, and everyone ends
/// on one epoch (a later commit by anyone applies).
#[tokio::test]
async fn commits_racing_on_two_servers_one_wins_each_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let Some(c) = cluster(dir.path()).await else {
        return;
    };
    let alice = User::register(&c.a, "alice").await;
    let bob = User::register(&c.b, "bob").await;
    let conv = alice.group_with(&[&bob]).await;
    for round in 0..5u64 {
        let epoch = 1 + round;
        let sa = alice.mls.self_update(&conv);
        let sb = bob.mls.self_update(&conv);
        let (ra, rb) = tokio::join!(alice.commit(&conv, &sa), bob.commit(&conv, &sb));
        let mut statuses = [ra.0, rb.0];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::CONFLICT],
            "{ra:?} {rb:?}"
        );
        let (winner, loser) = if ra.0 == StatusCode::OK {
            (&ra.1, &rb.1)
        } else {
            (&rb.1, &ra.1)
        };
        assert_eq!(winner["epoch"], epoch + 1);
        assert_eq!(loser["error"], "stale_epoch");
        assert_eq!(loser["current_epoch"], epoch + 1);
        alice.mls.settle_own(&conv, ra.0 == StatusCode::OK);
        bob.mls.settle_own(&conv, rb.0 == StatusCode::OK);
        if ra.0 == StatusCode::OK {
            bob.mls.follow(&conv, &sa);
        } else {
            alice.mls.follow(&conv, &sb);
        }
        assert_eq!(alice.mls.epoch(&conv), epoch + 1);
        assert_eq!(bob.mls.epoch(&conv), epoch + 1);
    }
    // No one is on a fork: a commit by either, through either server, applies.
    let (st, body, _) = via(&bob, &c.a).change(&conv, &[], &[], &[&alice]).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (_, list) = alice.get_json("/v1/conversations").await;
    assert_eq!(list["conversations"][0]["epoch"], 7);
    c.a.stop().await;
    c.b.stop().await;
}

/// PostgreSQL stopped under load (four senders through both servers):
/// both servers report not ready and refuse writes with `503
/// database_unavailable`; once it is back they are ready again by
/// themselves, and every message accepted before, during or after is
/// delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut c) = cluster(dir.path()).await else {
        return;
    };
    let alice = User::register(&c.a, "alice").await;
    let bob = User::register(&c.b, "bob").await;
    let conv = alice.group_with(&[&bob]).await;
    let accepted = Arc::new(Mutex::new(HashSet::new()));
    let refusals = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for t in 0..4u8 {
        let who = via(&alice, if t % 2 == 0 { &c.a } else { &c.b });
        let (accepted, refusals, stop) = (accepted.clone(), refusals.clone(), stop.clone());
        senders.push(tokio::spawn(async move {
            let mut i = 0u32;
            while !stop.load(Ordering::Acquire) {
                i += 1;
                let env = envelope(&conv, today(), &[&[t], &i.to_be_bytes()[..]].concat());
                match who.submit(&conv, ItemKind::Envelope, env.clone()).await {
                    Ok(_) => {
                        accepted.lock().unwrap().insert(env);
                    }
                    Err((st, body)) => refusals.lock().unwrap().push((st, body)),
                }
            }
        }));
    }
    let count = |m: &Mutex<HashSet<Vec<u8>>>| m.lock().unwrap().len();
    while count(&accepted) < 40 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.pg.stop().unwrap();
    let before = count(&accepted);
    assert_eq!(ready(&c.a).await, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready(&c.b).await, StatusCode::SERVICE_UNAVAILABLE);
    while refusals.lock().unwrap().len() < 4 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.pg.restart().unwrap();
    // Back by itself, within a few seconds.
    let mut up = false;
    for _ in 0..100 {
        if ready(&c.a).await == StatusCode::OK && ready(&c.b).await == StatusCode::OK {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the servers did not become ready again");
    while count(&accepted) < before + 40 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Release);
    for s in senders {
        s.await.unwrap();
    }
    for (st, body) in refusals.lock().unwrap().iter() {
        assert_eq!(
            (*st, body["error"].as_str()),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Some("database_unavailable")
            ),
            "{body}"
        );
    }
    let accepted = accepted.lock().unwrap().clone();
    let got: Vec<Vec<u8>> = bob
        .fetch(0)
        .await
        .into_iter()
        .filter(|d| d.kind == ItemKind::Envelope)
        .map(|d| d.body)
        .collect();
    let distinct: HashSet<Vec<u8>> = got.iter().cloned().collect();
    assert_eq!(distinct.len(), got.len(), "nothing stored twice");
    assert!(
        accepted.is_subset(&distinct),
        "an accepted message was lost"
    );
    c.a.stop().await;
    c.b.stop().await;
}

/// The mailbox quota holds across servers: Bob's mailbox takes three
/// items, sent through A and B alternately; the fourth is refused `429
/// mailbox_full` on either server; once Bob acks one (on the other server),
/// one more fits.
#[tokio::test]
async fn the_mailbox_quota_is_shared_by_both_servers() {
    let dir = tempfile::tempdir().unwrap();
    let Some(pg) = TestPostgres::start(&dir.path().join("pg")).unwrap() else {
        return;
    };
    let start = |d: &Path| {
        let mut config = test_config(d).with_database(pg.url());
        config.limits.mailbox_quota = custos_server::Quota { items: 3, bytes: 0 };
        TestServer::start_with(config, dangerous::simulated(START_MS))
    };
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(da.path()).await;
    let b = start(db.path()).await;
    let alice = User::register(&a, "alice").await;
    let bob = User::register(&b, "bob").await;
    let conv = alice.group_with(&[&bob]).await;
    // The Welcome holds one place of three.
    let via_b = via(&alice, &b);
    for (i, who) in [&alice, &via_b].into_iter().enumerate() {
        let env = envelope(&conv, today(), &[i as u8; 16]);
        who.submit(&conv, ItemKind::Envelope, env).await.unwrap();
    }
    for who in [&alice, &via_b] {
        let (st, body) = who
            .submit(&conv, ItemKind::Envelope, envelope(&conv, today(), b"full"))
            .await
            .unwrap_err();
        assert_eq!(
            (st, body["error"].as_str()),
            (StatusCode::TOO_MANY_REQUESTS, Some("mailbox_full")),
            "{body}"
        );
    }
    let held = bob.fetch(0).await;
    assert_eq!(held.len(), 3);
    assert_eq!(via(&bob, &a).ack(&[held[0].seq]).await, 1);
    via_b
        .submit(
            &conv,
            ItemKind::Envelope,
            envelope(&conv, today(), b"fits again"),
        )
        .await
        .unwrap();
    a.stop().await;
    b.stop().await;
}

/// A suspension committed in the database (as a moderator's decision on
/// any server commits it) refuses the sender's next send on both servers
/// at once, although neither server's own policy knows of it; when it
/// ends, sends are accepted again.
#[tokio::test]
async fn a_suspension_takes_effect_on_every_server_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let Some(c) = cluster(dir.path()).await else {
        return;
    };
    let alice = User::register(&c.a, "alice").await;
    let bob = User::register(&c.b, "bob").await;
    let conv = alice.group_with(&[&bob]).await;
    alice
        .submit(
            &conv,
            ItemKind::Envelope,
            envelope(&conv, today(), b"before"),
        )
        .await
        .unwrap();
    let until = START_MS + 60_000;
    c.pg.psql(
        custos_deploy::postgres::DATABASE,
        &format!(
            "INSERT INTO reports (received_at, reporter, conversation, sender, server_time, \
                 reason, report, status) VALUES (0, 'bob', '\\x00', 'alice', 0, 'spam', '\\x00', \
                 'resolved'); \
                 INSERT INTO suspensions (account, until, report_id, since) \
                 SELECT 'alice', {until}, id, 0 FROM reports"
        ),
    )
    .unwrap();
    for server in [&c.a, &c.b] {
        let (st, body) = via(&alice, server)
            .submit(
                &conv,
                ItemKind::Envelope,
                envelope(&conv, today(), b"during"),
            )
            .await
            .unwrap_err();
        assert_eq!(
            (st, body["error"].as_str()),
            (StatusCode::FORBIDDEN, Some("suspended")),
            "{body}"
        );
    }
    // Bob is not suspended.
    bob.submit(&conv, ItemKind::Envelope, envelope(&conv, today(), b"bob"))
        .await
        .unwrap();
    c.a.clock.advance_millis(61_000);
    alice
        .submit(
            &conv,
            ItemKind::Envelope,
            envelope(&conv, today(), b"after"),
        )
        .await
        .unwrap();
    c.a.stop().await;
    c.b.stop().await;
}

/// The sender quota holds across servers, for commits too: Alice may hold
/// two items (the Welcome and one envelope); her next envelope and her next
/// commit are refused `429 sender_quota` on the other server; once Bob
/// has acked them, her commit applies.
#[tokio::test]
async fn the_sender_quota_covers_commits_on_both_servers() {
    let dir = tempfile::tempdir().unwrap();
    let Some(pg) = TestPostgres::start(&dir.path().join("pg")).unwrap() else {
        return;
    };
    let start = |d: &Path| {
        let mut config = test_config(d).with_database(pg.url());
        config.limits.sender_quota = custos_server::Quota { items: 2, bytes: 0 };
        TestServer::start_with(config, dangerous::simulated(START_MS))
    };
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(da.path()).await;
    let b = start(db.path()).await;
    let alice = User::register(&a, "alice").await;
    let bob = User::register(&b, "bob").await;
    let conv = alice.group_with(&[&bob]).await;
    alice
        .submit(&conv, ItemKind::Envelope, envelope(&conv, today(), b"one"))
        .await
        .unwrap();
    let alice_b = via(&alice, &b);
    let (st, body) = alice_b
        .submit(&conv, ItemKind::Envelope, envelope(&conv, today(), b"two"))
        .await
        .unwrap_err();
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("sender_quota"))
    );
    let (st, body, _) = alice_b.change(&conv, &[], &[], &[&bob]).await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("sender_quota"))
    );
    let held: Vec<u64> = bob.fetch(0).await.iter().map(|d| d.seq).collect();
    assert_eq!(bob.ack(&held).await, 2);
    let (st, body, _) = alice_b.change(&conv, &[], &[], &[&bob]).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    a.stop().await;
    b.stop().await;
}

/// Attachments on two servers: a blob uploaded through A is served by B
/// (its body is in the database, not in A's folder); uploads through both
/// servers at once never pass the account's quota together.
#[tokio::test]
async fn blobs_are_shared_by_two_servers() {
    let dir = tempfile::tempdir().unwrap();
    let pg = match TestPostgres::start(&dir.path().join("pg")).unwrap() {
        Some(pg) => pg,
        None => return,
    };
    let start = |d: std::path::PathBuf| {
        let mut config = test_config(&d).with_database(pg.url());
        config.limits.blob_quota = custos_server::Quota { items: 3, bytes: 0 };
        TestServer::start_with(config, dangerous::simulated(START_MS))
    };
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(da.path().to_path_buf()).await;
    let b = start(db.path().to_path_buf()).await;
    let alice = User::register(&a, "alice").await;
    let upload = |u: User, body: Vec<u8>| async move {
        let r = u
            .http
            .post(format!("{}/v1/blobs", u.base))
            .bearer_auth(&u.token)
            .body(body)
            .send()
            .await
            .unwrap();
        let st = r.status();
        (st, r.json::<serde_json::Value>().await.unwrap())
    };
    let (st, body) = upload(via(&alice, &a), vec![7; 300]).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    let locator = body["locator"].as_str().unwrap().to_owned();
    let got = reqwest::Client::new()
        .get(format!("{}/v1/blobs/{locator}", b.url))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.bytes().await.unwrap().to_vec(), vec![7; 300]);
    // Quota 3 items, 1 used: six uploads at once through both servers.
    let mut tasks = Vec::new();
    for i in 0..6u8 {
        let u = via(&alice, if i % 2 == 0 { &a } else { &b });
        tasks.push(tokio::spawn(upload(u, vec![i; 10])));
    }
    let mut created = 0;
    for t in tasks {
        let (st, body) = t.await.unwrap();
        match st {
            StatusCode::CREATED => created += 1,
            StatusCode::TOO_MANY_REQUESTS => assert_eq!(body["error"], "blob_quota"),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(created, 2, "only what fits the quota is stored");
    let _ = pg;
}
