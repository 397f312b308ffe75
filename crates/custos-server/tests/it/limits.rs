//! Each quota and abuse limit refuses with a clear 429
//! JSON error on a real service on loopback.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use custos_server::WindowLimit;
use ed25519_dalek::SigningKey;
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;
use custos_wire::ConversationId;

fn per_hour(max: u32) -> WindowLimit {
    WindowLimit::per_hour(max)
}

async fn start(
    configure: impl FnOnce(&mut custos_server::ServerConfig),
) -> (TestServer, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = test_config(tmp.path());
    configure(&mut config);
    let server = TestServer::start_with(config, custos_clock::dangerous::simulated(START_MS)).await;
    (server, tmp)
}

/// Registers `name` with a fresh key: the status, the JSON body and the
/// `Retry-After` header.
async fn try_register(server: &TestServer, name: &str) -> (StatusCode, Value, Option<u64>) {
    let key = SigningKey::from_bytes(&random_bytes(32).try_into().unwrap());
    let r = reqwest::Client::new()
        .post(format!("{}/v1/accounts", server.url))
        .json(&json!({"name": name, "identity_key": B64.encode(key.verifying_key().as_bytes())}))
        .send()
        .await
        .unwrap();
    let st = r.status();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (st, r.json().await.unwrap_or(Value::Null), retry)
}

#[tokio::test]
async fn registrations_are_limited_per_network_prefix() {
    let (server, _tmp) = start(|c| c.limits.registrations_per_prefix = per_hour(3)).await;
    for i in 0..3 {
        let (st, body, _) = try_register(&server, &format!("user{i}")).await;
        assert_eq!(st, StatusCode::CREATED, "{body}");
    }
    let (st, body, retry) = try_register(&server, "user3").await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"], "registration_limited");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("from your network"),
        "{body}"
    );
    assert!(retry.is_some_and(|s| (1..=3600).contains(&s)), "{retry:?}");
    server.stop().await;
}

#[tokio::test]
async fn registrations_are_limited_service_wide() {
    let (server, _tmp) = start(|c| c.limits.registrations_global = per_hour(2)).await;
    for i in 0..2 {
        assert_eq!(
            try_register(&server, &format!("user{i}")).await.0,
            StatusCode::CREATED
        );
    }
    let (st, body, retry) = try_register(&server, "user2").await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"], "registration_limited");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("on this service"),
        "{body}"
    );
    assert!(retry.is_some());
    server.stop().await;
}

/// Opens a WebSocket, or returns the refusal's status and body.
async fn try_ws(user: &User) -> Result<Ws, (StatusCode, Value)> {
    match tokio_tungstenite::connect_async(ws_request(&user.base, &user.token)).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let status = resp.status();
            let body = resp
                .body()
                .as_ref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            Err((StatusCode::from_u16(status.as_u16()).unwrap(), body))
        }
        Err(e) => panic!("WebSocket failed: {e}"),
    }
}

/// Waits until `user` may open a WebSocket again (the service has seen a
/// close), within 5 s.
async fn ws_when_free(user: &User) -> Ws {
    for _ in 0..500 {
        if let Ok(ws) = try_ws(user).await {
            return ws;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the connection slot was never released");
}

#[tokio::test]
async fn websocket_connections_are_capped_per_account_and_in_total() {
    let (server, _tmp) = start(|c| {
        c.limits.ws_max_per_account = 2;
        c.limits.ws_max_total = 3;
    })
    .await;
    let alice = User::register(&server, "alice").await;
    let bob = User::register(&server, "bob").await;
    let a1 = try_ws(&alice).await.unwrap();
    let _a2 = try_ws(&alice).await.unwrap();
    let (st, body) = try_ws(&alice).await.unwrap_err();
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("too_many_connections"))
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("for your account"),
        "{body}"
    );
    let _b1 = try_ws(&bob).await.unwrap();
    let (st, body) = try_ws(&bob).await.unwrap_err();
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("on this service"),
        "{body}"
    );
    // Closing one frees its slot.
    drop(a1);
    let _b2 = ws_when_free(&bob).await;
    server.stop().await;
}

#[tokio::test]
async fn idle_websockets_are_pinged_and_closed_when_they_do_not_answer() {
    let (server, _tmp) = start(|c| {
        c.limits.ws_ping_interval = Duration::from_millis(200);
        c.limits.ws_max_per_account = 1;
    })
    .await;
    let alice = User::register(&server, "alice").await;
    let bob = User::register(&server, "bob").await;

    // Alice reads her socket, so her WebSocket library answers the pings:
    // she stays connected, idle, for as long as the rest of the test.
    let mut live = alice.ws().await;
    let alice_reads = tokio::spawn(async move {
        let mut pings = 0;
        loop {
            match live.next().await {
                Some(Ok(Message::Ping(_))) => pings += 1,
                Some(Ok(Message::Binary(b))) => {
                    return (pings, custos_wire::frames::ServerFrame::decode(&b).unwrap());
                }
                other => panic!("a live connection was ended: {other:?}"),
            }
        }
    });

    // Bob connects and never reads: no pong, so the service closes it
    // after two intervals, and his slot is free again.
    let mut dead = bob.ws().await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut closed = false;
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(2), dead.next()).await {
        match msg {
            Ok(Message::Ping(_)) => {}
            Ok(Message::Close(_)) | Err(_) => {
                closed = true;
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(closed, "an unanswered connection must be closed");
    let _again = ws_when_free(&bob).await;
    // Alice's connection, idle but answering, is still served.
    bob.group_with(&[&alice]).await;
    let (pings, frame) = tokio::time::timeout(Duration::from_secs(5), alice_reads)
        .await
        .unwrap()
        .unwrap();
    assert!(pings >= 4, "{pings} pings at 200 ms");
    assert!(matches!(frame, custos_wire::frames::ServerFrame::Delivery(d) if d.sender == "bob"));
    server.stop().await;
}

/// Fetches and acknowledges everything in `user`'s mailbox.
async fn drain(user: &User) {
    let seqs: Vec<u64> = user.fetch(0).await.iter().map(|d| d.seq).collect();
    if !seqs.is_empty() {
        user.ack(&seqs).await;
    }
}

fn refusal(
    r: Result<custos_wire::frames::ServerFrame, (StatusCode, Value)>,
) -> (StatusCode, String) {
    let (st, body) = r.expect_err("expected a refusal");
    (st, body["error"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn a_full_mailbox_refuses_every_sender_until_it_is_acknowledged() {
    use custos_wire::frames::ItemKind;
    let (server, _tmp) = start(|c| {
        c.limits.mailbox_quota = custos_server::Quota { items: 3, bytes: 0 };
    })
    .await;
    let alice = User::register(&server, "alice").await;
    let bob = User::register(&server, "bob").await;
    let carol = User::register(&server, "carol").await;
    let conv = alice.group_with(&[&bob, &carol]).await;
    drain(&bob).await;
    drain(&carol).await;
    // Carol acknowledges as she goes; Bob is offline.
    for i in 0..3u8 {
        alice
            .submit(
                &conv,
                ItemKind::Envelope,
                envelope(&conv, today(), &[i; 100]),
            )
            .await
            .unwrap();
        drain(&carol).await;
    }
    let refused = alice
        .submit(
            &conv,
            ItemKind::Envelope,
            envelope(&conv, today(), &[9; 100]),
        )
        .await;
    assert_eq!(
        refusal(refused),
        (StatusCode::TOO_MANY_REQUESTS, "mailbox_full".into())
    );
    // Whoever sends: Carol too.
    let refused = carol
        .submit(
            &conv,
            ItemKind::Envelope,
            envelope(&conv, today(), &[8; 100]),
        )
        .await;
    assert_eq!(refusal(refused).1, "mailbox_full");
    // A commit is not blocked by a full mailbox (Bob can still be removed).
    let (st, body, _) = alice.change(&conv, &[], &[], &[&bob, &carol]).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    // Bob fetches and acknowledges: the mailbox takes items again.
    drain(&bob).await;
    alice
        .submit(
            &conv,
            ItemKind::Envelope,
            envelope(&conv, today(), &[9; 100]),
        )
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn a_sender_quota_holds_across_restarts_and_frees_with_acks_and_expiry() {
    use custos_wire::frames::ItemKind;
    let tmp = tempfile::tempdir().unwrap();
    let mut config = test_config(tmp.path());
    let one = envelope(&ConversationId([0; 16]), today(), &[0; 1000]).len() as u64;
    config.limits.sender_quota = custos_server::Quota {
        items: 0,
        bytes: 3 * one,
    };
    let clock = custos_clock::dangerous::simulated(START_MS);
    let server = TestServer::start_with(config.clone(), clock.clone()).await;
    let alice = User::register(&server, "alice").await;
    let bob = User::register(&server, "bob").await;
    let conv = alice.group_with(&[&bob]).await;
    drain(&bob).await;
    let send = |day: u32, fill: u8| {
        let alice = &alice;
        async move {
            alice
                .submit(
                    &conv,
                    ItemKind::Envelope,
                    envelope(&conv, day, &[fill; 1000]),
                )
                .await
        }
    };
    for i in 0..3 {
        send(today(), i).await.unwrap();
    }
    assert_eq!(
        refusal(send(today(), 3).await),
        (StatusCode::TOO_MANY_REQUESTS, "sender_quota".into())
    );
    // The usage is rebuilt from the database at start.
    server.stop().await;
    let server = TestServer::start_with(config.clone(), clock.clone()).await;
    let mut alice = alice;
    let mut bob = bob;
    alice.base = server.url.clone();
    bob.base = server.url.clone();
    let send = |day: u32, fill: u8| {
        let alice = &alice;
        async move {
            alice
                .submit(
                    &conv,
                    ItemKind::Envelope,
                    envelope(&conv, day, &[fill; 1000]),
                )
                .await
        }
    };
    assert_eq!(refusal(send(today(), 4).await).1, "sender_quota");
    // Acknowledged items no longer count.
    drain(&bob).await;
    for i in 5..8 {
        send(today(), i).await.unwrap();
    }
    assert_eq!(refusal(send(today(), 8).await).1, "sender_quota");
    // Nor do expired ones: after the retention TTL the sweep deletes them.
    clock.advance_days(31);
    alice.login().await;
    let later = today() + 31;
    let mut freed = false;
    for _ in 0..200 {
        let r = alice
            .submit(
                &conv,
                ItemKind::Envelope,
                envelope(&conv, later, &[9; 1000]),
            )
            .await;
        if r.is_ok() {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(freed, "expired items must leave the quota");
    server.stop().await;
}
