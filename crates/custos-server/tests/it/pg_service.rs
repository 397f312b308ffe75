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
    START_MS, TestServer, User, envelope, next_delivery, next_frame, random_bytes, send_frame,
    test_config, today,
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
    // Endpoints not yet on PostgreSQL refuse plainly.
    let (st, body) = bob.get_json("/v1/moderation/stats").await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("not_on_this_backend"))
    );
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

/// PostgreSQL stopped under load: both servers report not ready and refuse
/// writes with `503 database_unavailable`; once it is back they are ready
/// again by themselves, and every message accepted before, during or after
/// is delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut c) = cluster(dir.path()).await else {
        return;
    };
    let alice = User::register(&c.a, "alice").await;
    let bob = User::register(&c.b, "bob").await;
    let conv = alice.group_with(&[&bob]).await;
    let via_b = via(&alice, &c.b);
    let mut accepted = HashSet::new();
    let mut refused = 0;
    for i in 0..30u32 {
        if i == 10 {
            c.pg.stop().unwrap();
            assert_eq!(ready(&c.a).await, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(ready(&c.b).await, StatusCode::SERVICE_UNAVAILABLE);
        }
        if i == 20 {
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
        }
        let who = if i % 2 == 0 { &alice } else { &via_b };
        let env = envelope(&conv, today(), &random_bytes(32));
        match who.submit(&conv, ItemKind::Envelope, env.clone()).await {
            Ok(_) => {
                accepted.insert(env);
            }
            Err((st, body)) => {
                assert!((10..20).contains(&i), "refused at {i}: {st} {body}");
                assert_eq!(
                    (st, body["error"].as_str()),
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        Some("database_unavailable")
                    ),
                    "{body}"
                );
                refused += 1;
            }
        }
    }
    assert_eq!(
        refused, 10,
        "every write while PostgreSQL was down is refused"
    );
    let got: Vec<Vec<u8>> = bob
        .fetch(0)
        .await
        .into_iter()
        .filter(|d| d.kind == ItemKind::Envelope)
        .map(|d| d.body)
        .collect();
    assert_eq!(got.len(), accepted.len(), "each accepted message once");
    assert_eq!(got.into_iter().collect::<HashSet<_>>(), accepted);
    c.a.stop().await;
    c.b.stop().await;
}
