//! The delivery API end to end against a real service on loopback.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

use crate::common;

use std::time::Duration;

use common::*;
use custos_clock::MILLIS_PER_DAY;
use custos_wire::frames::{ClientFrame, ItemKind, ServerFrame};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn register_and_authenticate() {
    let server = TestServer::start().await;
    let alice = User::register(&server, "alice").await;
    // The name is taken now.
    let (st, body) = alice
        .post_json(
            "/v1/accounts",
            json!({"name": "alice", "identity_key": "O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik="}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(body["error"], "name_taken");
    // The token works; a wrong one does not.
    let (st, _) = alice.get_json("/v1/conversations").await;
    assert_eq!(st, StatusCode::OK);
    let mut bad = User {
        token: "00".repeat(32),
        ..alice
    };
    let (st, body) = bad.get_json("/v1/conversations").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "unauthorized");
    // Logging in again gives a fresh working token.
    bad.login().await;
    assert_eq!(bad.get_json("/v1/conversations").await.0, StatusCode::OK);
    // A token expires after 24 h on the service clock.
    server.clock.advance_millis(24 * 3600 * 1000 + 1);
    assert_eq!(
        bad.get_json("/v1/conversations").await.0,
        StatusCode::UNAUTHORIZED
    );
    server.stop().await;
}

#[tokio::test]
async fn challenge_is_single_use_and_bound_to_the_key() {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;
    use ed25519_dalek::Signer;
    let server = TestServer::start().await;
    let alice = User::register(&server, "alice").await;
    let mallory = User::register(&server, "mallory").await;
    let (_, ch) = alice
        .post_json("/v1/auth/challenge", json!({"name": "alice"}))
        .await;
    let c: [u8; 32] = B64
        .decode(ch["challenge"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    // Signed by the wrong key: refused, and the challenge is spent.
    let sig = mallory
        .key
        .sign(&custos_server::challenge_message("alice", &c));
    let req = json!({"name": "alice", "challenge": ch["challenge"], "signature": B64.encode(sig.to_bytes())});
    let (st, body) = alice.post_json("/v1/auth/session", req).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");
    let sig = alice
        .key
        .sign(&custos_server::challenge_message("alice", &c));
    let req = json!({"name": "alice", "challenge": ch["challenge"], "signature": B64.encode(sig.to_bytes())});
    assert_eq!(
        alice.post_json("/v1/auth/session", req).await.0,
        StatusCode::UNAUTHORIZED
    );
    // An expired challenge is refused.
    let (_, ch) = alice
        .post_json("/v1/auth/challenge", json!({"name": "alice"}))
        .await;
    let c: [u8; 32] = B64
        .decode(ch["challenge"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    server
        .clock
        .advance_millis(custos_server::CHALLENGE_TTL_MS + 1);
    let sig = alice
        .key
        .sign(&custos_server::challenge_message("alice", &c));
    let req = json!({"name": "alice", "challenge": ch["challenge"], "signature": B64.encode(sig.to_bytes())});
    assert_eq!(
        alice.post_json("/v1/auth/session", req).await.0,
        StatusCode::UNAUTHORIZED
    );
    server.stop().await;
}

#[tokio::test]
async fn key_packages_are_claimed_in_order_then_last_resort() {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;
    let server = TestServer::start().await;
    let alice = User::register(&server, "alice").await;
    let bob = User::register(&server, "bob").await;
    // None yet.
    let (st, body) = bob
        .post_json("/v1/key-packages/claim", json!({"account": "alice"}))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "no_key_package");
    let kps: Vec<String> = (0..3).map(|i| B64.encode(format!("kp-{i}"))).collect();
    let (st, body) = alice
        .post_json(
            "/v1/key-packages",
            json!({"key_packages": kps, "last_resort": B64.encode("kp-lr")}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["stored"], 4);
    assert_eq!(
        alice.get_json("/v1/key-packages/count").await.1["remaining"],
        3
    );
    for i in 0..3 {
        let (st, body) = bob
            .post_json("/v1/key-packages/claim", json!({"account": "alice"}))
            .await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(body["key_package"], B64.encode(format!("kp-{i}")));
        assert_eq!(body["last_resort"], false);
    }
    for _ in 0..2 {
        let (_, body) = bob
            .post_json("/v1/key-packages/claim", json!({"account": "alice"}))
            .await;
        assert_eq!(body["key_package"], B64.encode("kp-lr"));
        assert_eq!(body["last_resort"], true);
    }
    assert_eq!(
        alice.get_json("/v1/key-packages/count").await.1["remaining"],
        0
    );
    // A new last resort replaces the old one.
    alice
        .post_json(
            "/v1/key-packages",
            json!({"key_packages": [], "last_resort": B64.encode("kp-lr2")}),
        )
        .await;
    let (_, body) = bob
        .post_json("/v1/key-packages/claim", json!({"account": "alice"}))
        .await;
    assert_eq!(body["key_package"], B64.encode("kp-lr2"));
    // Too many in one call.
    let many: Vec<String> = (0..101).map(|i| B64.encode(format!("x{i}"))).collect();
    let (st, _) = alice
        .post_json("/v1/key-packages", json!({"key_packages": many}))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    server.stop().await;
}

#[tokio::test]
async fn racing_commits_one_wins_one_is_stale() {
    let server = TestServer::start().await;
    let alice = User::register(&server, "alice").await;
    let bob = User::register(&server, "bob").await;
    let carol = User::register(&server, "carol").await;
    let conv = alice.group_with(&[&bob]).await;
    // Both members commit for epoch 1 at once.
    let sa = alice.mls.self_update(&conv);
    let sb = bob.mls.self_update(&conv);
    let (a, b) = tokio::join!(alice.commit(&conv, &sa), bob.commit(&conv, &sb));
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::CONFLICT],
        "{a:?} {b:?}"
    );
    let loser = if a.0 == StatusCode::CONFLICT {
        &a.1
    } else {
        &b.1
    };
    assert_eq!(loser["error"], "stale_epoch");
    assert_eq!(loser["current_epoch"], 2);
    let winner = if a.0 == StatusCode::OK { &a.1 } else { &b.1 };
    assert_eq!(winner["epoch"], 2);
    // The loser drops its commit and processes the winner's.
    alice.mls.settle_own(&conv, a.0 == StatusCode::OK);
    bob.mls.settle_own(&conv, b.0 == StatusCode::OK);
    if a.0 == StatusCode::OK {
        bob.mls.follow(&conv, &sa);
    } else {
        alice.mls.follow(&conv, &sb);
    }
    // A non-member cannot commit; an old epoch is stale.
    let (st, body) = carol.commit(&conv, &sa).await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_member"))
    );
    let (st, body) = alice.commit(&conv, &sa).await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(body["current_epoch"], 2);
    let (st, body, _) = alice.change(&conv, &[&carol], &[], &[&bob]).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (_, list) = carol.get_json("/v1/conversations").await;
    assert_eq!(list["conversations"][0]["epoch"], 3);
    assert_eq!(
        list["conversations"][0]["members"],
        json!(["alice", "bob", "carol"])
    );
    server.stop().await;
}

#[tokio::test]
async fn commit_and_welcome_are_delivered_to_the_right_devices() {
    let server = TestServer::start().await;
    let alice = User::register(&server, "alice").await;
    let bob = User::register(&server, "bob").await;
    let carol = User::register(&server, "carol").await;
    let conv = alice.group_with(&[&bob]).await;
    // Bob, added, gets only the Welcome (he joins at the new epoch and
    // never sees the commit that added him); Alice (the committer) nothing.
    let got = bob.fetch(0).await;
    let kinds: Vec<_> = got.iter().map(|d| (d.kind, d.sender.clone())).collect();
    assert_eq!(kinds, vec![(ItemKind::Welcome, "alice".to_owned())]);
    assert!(alice.fetch(0).await.is_empty());
    // Adding Carol: the commit goes to Bob, the Welcome only to Carol.
    let (st, body, _) = alice.change(&conv, &[&carol], &[], &[&bob]).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let last = got.last().unwrap().seq;
    let bob_new: Vec<_> = bob.fetch(last).await.into_iter().map(|d| d.kind).collect();
    assert_eq!(bob_new, vec![ItemKind::Commit]);
    let carol_got: Vec<_> = carol.fetch(0).await.into_iter().map(|d| d.kind).collect();
    assert_eq!(carol_got, vec![ItemKind::Welcome]);
    // Removing Bob: Bob still gets that commit, then no more messages.
    let (st, body, removal) = alice.change(&conv, &[], &["bob"], &[&bob, &carol]).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let removed = bob.fetch(0).await;
    assert_eq!(removed.last().unwrap().body, removal.commit);
    let env = envelope(&conv, today(), &random_bytes(64));
    let (st, body) = bob
        .submit(&conv, ItemKind::Envelope, env)
        .await
        .unwrap_err();
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_member"))
    );
    alice
        .submit(
            &conv,
            ItemKind::Envelope,
            envelope(&conv, today(), b"after"),
        )
        .await
        .unwrap();
    assert_eq!(bob.fetch(0).await.len(), removed.len());
    // Adding without a Welcome is refused, and so is a Welcome with a
    // commit that adds nobody.
    let add_bob = alice.mls.stage(&conv, &[&bob.mls], &[]);
    let (st, body) = alice
        .commit_raw(&conv, add_bob.epoch, &add_bob.commit, None)
        .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("welcome_required"))
    );
    alice.mls.settle_own(&conv, false);
    let update = alice.mls.self_update(&conv);
    let (st, body) = alice
        .commit_raw(&conv, update.epoch, &update.commit, Some(b"w"))
        .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unexpected_welcome"))
    );
    alice.mls.settle_own(&conv, false);
    server.stop().await;
}

#[tokio::test]
async fn websocket_pushes_backlog_then_live_and_takes_submissions() {
    let server = TestServer::start().await;
    let alice = User::register(&server, "alice").await;
    let bob = User::register(&server, "bob").await;
    let conv = alice.group_with(&[&bob]).await;
    // Two envelopes stored while Bob is offline.
    for i in 0..2u8 {
        let accepted = alice
            .submit(
                &conv,
                ItemKind::Envelope,
                envelope(&conv, today(), &[i; 40]),
            )
            .await
            .unwrap();
        assert!(matches!(
            accepted,
            ServerFrame::Accepted { request_id: 7, .. }
        ));
    }
    let mut ws = bob.ws().await;
    let backlog: Vec<_> = [
        next_delivery(&mut ws).await,
        next_delivery(&mut ws).await,
        next_delivery(&mut ws).await,
    ]
    .into_iter()
    .map(|d| d.kind)
    .collect();
    assert_eq!(
        backlog,
        vec![ItemKind::Welcome, ItemKind::Envelope, ItemKind::Envelope]
    );
    // Live: Alice submits over her own WebSocket; Bob gets it pushed.
    let mut aws = alice.ws().await;
    let env = envelope(&conv, today(), b"live message");
    send_frame(
        &mut aws,
        &ClientFrame::Submit {
            request_id: 99,
            kind: ItemKind::Envelope,
            conversation: conv,
            body: env.clone(),
        },
    )
    .await;
    match next_frame(&mut aws).await {
        ServerFrame::Accepted {
            request_id,
            server_time,
            tag,
        } => {
            assert_eq!(request_id, 99);
            assert_eq!(server_time, START_MS);
            assert!(tag.is_empty());
        }
        other => panic!("{other:?}"),
    }
    let d = next_delivery(&mut ws).await;
    assert_eq!(
        (d.kind, d.body.as_slice(), d.sender.as_str()),
        (ItemKind::Envelope, env.as_slice(), "alice")
    );
    // A malformed frame is refused with request id 0; the socket stays open.
    use futures_util::SinkExt;
    aws.send(tokio_tungstenite::tungstenite::Message::Binary(
        vec![1, 9, 9].into(),
    ))
    .await
    .unwrap();
    match next_frame(&mut aws).await {
        ServerFrame::Refused {
            request_id: 0,
            status: 400,
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    // A duplicate over WS is refused 409 with its request id.
    send_frame(
        &mut aws,
        &ClientFrame::Submit {
            request_id: 100,
            kind: ItemKind::Envelope,
            conversation: conv,
            body: env,
        },
    )
    .await;
    match next_frame(&mut aws).await {
        ServerFrame::Refused {
            request_id: 100,
            status: 409,
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    // Ack everything over WS; the mailbox is then empty.
    let seqs: Vec<u64> = bob.fetch(0).await.iter().map(|d| d.seq).collect();
    assert_eq!(seqs.len(), 4);
    send_frame(&mut ws, &ClientFrame::Ack { seqs }).await;
    let mut empty = false;
    for _ in 0..100 {
        if bob.fetch(0).await.is_empty() {
            empty = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(empty, "acked items are gone");
    server.stop().await;
}

#[tokio::test]
async fn http_fetch_and_ack_delete_when_every_recipient_acked() {
    let server = TestServer::start().await;
    let alice = User::register(&server, "alice").await;
    let bob = User::register(&server, "bob").await;
    let carol = User::register(&server, "carol").await;
    let conv = alice.group_with(&[&bob, &carol]).await;
    alice
        .submit(&conv, ItemKind::Envelope, envelope(&conv, today(), b"m1"))
        .await
        .unwrap();
    let b = bob.fetch(0).await;
    let c = carol.fetch(0).await;
    assert_eq!(b.last().unwrap().body, c.last().unwrap().body);
    // fetch `after` skips what was seen; `limit` bounds it.
    assert_eq!(bob.fetch(b[0].seq).await.len(), b.len() - 1);
    let (st, _) = bob.get_json("/v1/mailbox?limit=0").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    // Bob acks: Carol still has it (one recipient left).
    assert_eq!(
        bob.ack(&b.iter().map(|d| d.seq).collect::<Vec<_>>()).await,
        2
    );
    assert!(bob.fetch(0).await.is_empty());
    assert_eq!(carol.fetch(0).await.len(), 2);
    // Acking someone else's seq does nothing.
    assert_eq!(bob.ack(&[c[1].seq]).await, 0);
    assert_eq!(
        carol
            .ack(&c.iter().map(|d| d.seq).collect::<Vec<_>>())
            .await,
        2
    );
    assert!(carol.fetch(0).await.is_empty());
    // The item rows are gone from the database.
    let items = count_items(&server).await;
    assert_eq!(items, 0);
    // A replay of the acked envelope is still refused.
    let (st, body) = alice
        .submit(&conv, ItemKind::Envelope, b.last().unwrap().body.clone())
        .await
        .unwrap_err();
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("duplicate"))
    );
    server.stop().await;
}

async fn count_items(server: &TestServer) -> i64 {
    if let Some(url) = server.database_url() {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM items")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        return n;
    }
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(server.dir.join(custos_server::db::DB_FILE))
        .read_only(true);
    let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM items")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

#[tokio::test]
async fn retention_deletes_unacked_items_after_the_ttl() {
    let server = TestServer::start().await;
    let alice = User::register(&server, "alice").await;
    let bob = User::register(&server, "bob").await;
    let conv = alice.group_with(&[&bob]).await;
    alice
        .submit(&conv, ItemKind::Envelope, envelope(&conv, today(), b"old"))
        .await
        .unwrap();
    assert_eq!(bob.fetch(0).await.len(), 2);
    // 29 days later it is still there.
    server.clock.advance_days(29);
    tokio::time::sleep(Duration::from_millis(200)).await;
    bob_relogin_and_count(&server, &bob, 2).await;
    // Past 30 days the sweeper deletes it.
    server.clock.advance_days(1);
    server.clock.advance_millis(1);
    let mut gone = false;
    for _ in 0..100 {
        if count_items(&server).await == 0 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(gone, "expired items deleted");
    bob_relogin_and_count(&server, &bob, 0).await;
    server.stop().await;
}

async fn bob_relogin_and_count(server: &TestServer, bob: &User, n: usize) {
    let mut b = User {
        name: bob.name.clone(),
        key: bob.key.clone(),
        mls: bob.mls.clone(),
        token: String::new(),
        base: server.url.clone(),
        http: reqwest::Client::new(),
    };
    b.login().await;
    assert_eq!(b.fetch(0).await.len(), n);
}

#[tokio::test]
async fn chain_day_must_be_today_or_yesterday_within_the_grace() {
    let server = TestServer::start().await;
    let mut alice = User::register(&server, "alice").await;
    let bob = User::register(&server, "bob").await;
    let conv = alice.group_with(&[&bob]).await;
    let t = today();
    // At noon: only today's chains.
    alice
        .submit(&conv, ItemKind::Envelope, envelope(&conv, t, b"a"))
        .await
        .unwrap();
    for day in [t - 1, t - 2, t + 1, 0, u32::MAX] {
        let (st, body) = alice
            .submit(&conv, ItemKind::Envelope, envelope(&conv, day, b"c"))
            .await
            .unwrap_err();
        assert_eq!(
            (st, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("wrong_day")),
            "day {day}"
        );
    }
    // Five minutes after midnight: yesterday's chain is still accepted (the
    // default grace is ten minutes), and so is the new day's.
    server
        .clock
        .advance_millis(MILLIS_PER_DAY / 2 + 5 * 60 * 1000);
    alice.login().await; // the session lasted 24 h
    alice
        .submit(&conv, ItemKind::Envelope, envelope(&conv, t, b"b"))
        .await
        .unwrap();
    alice
        .submit(&conv, ItemKind::Envelope, envelope(&conv, t + 1, b"e"))
        .await
        .unwrap();
    // Eleven minutes after midnight: yesterday's chain is refused.
    server.clock.advance_millis(6 * 60 * 1000);
    let (st, body) = alice
        .submit(&conv, ItemKind::Envelope, envelope(&conv, t, b"d"))
        .await
        .unwrap_err();
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("wrong_day"))
    );
    server.stop().await;
}
