//! Restarts with items queued lose nothing acknowledged, and the data
//! directory never holds plaintext.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

use crate::common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use custos_clock::dangerous;
use custos_wire::frames::{ClientFrame, ItemKind, ServerFrame};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// Submits envelopes over a WebSocket as fast as it can, pipelined, and
/// reports the bodies that were answered `Accepted`, until the socket dies.
async fn submit_until_closed(
    mut ws: Ws,
    conv: custos_wire::ConversationId,
    accepted_tx: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
) {
    let mut sent = std::collections::HashMap::new();
    let mut next_id = 1u64;
    loop {
        // Keep up to 64 submissions in flight.
        while sent.len() < 64 {
            let body = envelope(&conv, today(), &random_bytes(200));
            let frame = ClientFrame::Submit {
                request_id: next_id,
                kind: ItemKind::Envelope,
                conversation: conv,
                body: body.clone(),
            };
            if ws
                .send(Message::Binary(frame.encode().unwrap().into()))
                .await
                .is_err()
            {
                return;
            }
            sent.insert(next_id, body);
            next_id += 1;
        }
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => match ServerFrame::decode(&b).unwrap() {
                ServerFrame::Accepted { request_id, .. } => {
                    let body = sent.remove(&request_id).unwrap();
                    if accepted_tx.send(body).is_err() {
                        return;
                    }
                }
                ServerFrame::Refused {
                    request_id, status, ..
                } => {
                    assert!(status >= 500, "refused {status}");
                    sent.remove(&request_id);
                }
                ServerFrame::Delivery(_) => {}
            },
            Ok(Some(Ok(_))) => {}
            _ => return,
        }
    }
}

async fn restart_keeps_every_acknowledged_item(graceful: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let clock = dangerous::simulated(START_MS);
    let server = TestServer::start_with(test_config(tmp.path()), clock.clone()).await;
    let alice = User::register(&server, "alice").await;
    let bob = User::register(&server, "bob").await;
    let conv = alice.group_with(&[&bob]).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let submitter = tokio::spawn(submit_until_closed(alice.ws().await, conv, tx));
    let mut accepted = Vec::new();
    while accepted.len() < 300 {
        accepted.push(rx.recv().await.unwrap());
    }
    // Stop mid-stream, with submissions in flight.
    if graceful {
        drop(server.stop().await);
    } else {
        drop(server.abort().await);
    }
    let _ = submitter.await;
    while let Ok(body) = rx.try_recv() {
        accepted.push(body);
    }
    // Restart on the same directory (waiting for the old writer's lock).
    let server = tokio::time::timeout(
        Duration::from_secs(10),
        TestServer::start_with(test_config(tmp.path()), clock.clone()),
    )
    .await
    .expect("restart within 10 s");
    let mut bob = User {
        base: server.url.clone(),
        http: reqwest::Client::new(),
        ..bob
    };
    bob.login().await;
    let mut stored = HashSet::new();
    let mut after = 0;
    loop {
        let page = bob.fetch(after).await;
        if page.is_empty() {
            break;
        }
        after = page.last().unwrap().seq;
        stored.extend(
            page.into_iter()
                .filter(|d| d.kind == ItemKind::Envelope)
                .map(|d| d.body),
        );
    }
    let missing = accepted.iter().filter(|b| !stored.contains(*b)).count();
    assert_eq!(
        missing,
        0,
        "{missing} of {} acknowledged items lost",
        accepted.len()
    );
    // The restarted service keeps numbering after the old seqs.
    let alice = User {
        base: server.url.clone(),
        http: reqwest::Client::new(),
        ..alice
    };
    let mut alice = alice;
    alice.login().await;
    alice
        .submit(
            &conv,
            ItemKind::Envelope,
            envelope(&conv, today(), b"after restart"),
        )
        .await
        .unwrap();
    let newest = bob.fetch(after).await;
    assert_eq!(newest.len(), 1);
    assert!(newest[0].seq > after);
    drop(server.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_with_items_in_flight_loses_nothing_acknowledged() {
    restart_keeps_every_acknowledged_item(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_with_items_in_flight_loses_nothing_acknowledged() {
    restart_keeps_every_acknowledged_item(true).await;
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn dir_contains(dir: &std::path::Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let p = e.unwrap().path();
        p.is_file() && contains(&std::fs::read(&p).unwrap(), needle)
    })
}

#[tokio::test]
async fn the_data_directory_never_holds_the_plaintext() {
    let server = TestServer::start().await;
    let alice = User::register(&server, "alice").await;
    let bob = User::register(&server, "bob").await;
    let conv = alice.group_with(&[&bob]).await;
    // What a client would encrypt; only the ciphertext (here a one-time pad)
    // ever reaches the service.
    let marker = b"PLAINTEXT-MARKER-7f3c2a: meet at the usual place at nine";
    let mut ciphertexts = Vec::new();
    for _ in 0..20 {
        let pad = random_bytes(marker.len());
        let ct: Vec<u8> = marker.iter().zip(&pad).map(|(m, k)| m ^ k).collect();
        alice
            .submit(&conv, ItemKind::Envelope, envelope(&conv, today(), &ct))
            .await
            .unwrap();
        ciphertexts.push(ct);
    }
    // Bob acks half of them (those rows are deleted; the rest stay).
    let got = bob.fetch(0).await;
    let half: Vec<u64> = got.iter().take(12).map(|d| d.seq).collect();
    bob.ack(&half).await;
    let dir = server.dir.clone();
    assert!(!dir_contains(&dir, marker), "plaintext found while running");
    // The search works: an unacked ciphertext is there.
    assert!(
        dir_contains(&dir, ciphertexts.last().unwrap()),
        "ciphertext not found: search broken"
    );
    let tmp = server.stop().await;
    assert!(!dir_contains(&dir, marker), "plaintext found after stop");
    drop(tmp);
}
