//! `custos server` killed with SIGKILL while clients submit: after a restart
//! on the same directory every acknowledged item is still there.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

use crate::common;

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use custos_wire::envelope::{Envelope, EnvelopeHeader};
use custos_wire::frames::{ClientFrame, ItemKind, ServerFrame, decode_delivery_batch};
use custos_wire::{ChainId, ConversationId};
use ed25519_dalek::{Signer, SigningKey};
use rand::RngCore;
use serde_json::{Value, json};

fn start(dir: &std::path::Path) -> (Child, String) {
    let (child, addr) = common::spawn_listening(
        Command::new(env!("CARGO_BIN_EXE_custos"))
            .args([
                "server",
                "--listen",
                "127.0.0.1:0",
                "--ip-rate",
                "0",
                "--account-rate",
                "0",
            ])
            .arg("--data")
            .arg(dir)
            .env("RUST_LOG", "warn")
            .stderr(Stdio::inherit()),
    );
    (child, format!("http://{addr}"))
}

struct User {
    name: String,
    key: SigningKey,
    token: String,
}

async fn post(http: &reqwest::Client, url: String, token: &str, body: Value) -> (u16, Value) {
    let r = http
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn login(http: &reqwest::Client, base: &str, u: &mut User) {
    let (_, ch) = post(
        http,
        format!("{base}/v1/auth/challenge"),
        "",
        json!({"name": u.name}),
    )
    .await;
    let c: [u8; 32] = B64
        .decode(ch["challenge"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let sig = u.key.sign(&custos_server::challenge_message(&u.name, &c));
    let (st, s) = post(
        http,
        format!("{base}/v1/auth/session"),
        "",
        json!({"name": u.name, "challenge": ch["challenge"], "signature": B64.encode(sig.to_bytes())}),
    )
    .await;
    assert_eq!(st, 200, "{s}");
    u.token = s["token"].as_str().unwrap().to_owned();
}

async fn register(http: &reqwest::Client, base: &str, name: &str) -> User {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    let mut u = User {
        name: name.into(),
        key: SigningKey::from_bytes(&seed),
        token: String::new(),
    };
    let (st, _) = post(
        http,
        format!("{base}/v1/accounts"),
        "",
        json!({"name": name, "identity_key": B64.encode(u.key.verifying_key().as_bytes())}),
    )
    .await;
    assert_eq!(st, 201);
    login(http, base, &mut u).await;
    u
}

fn envelope(conv: ConversationId) -> Vec<u8> {
    let mut ct = vec![0u8; 300];
    rand::rngs::OsRng.fill_bytes(&mut ct);
    let day = custos_clock::Clock::today(&custos_clock::SystemClock);
    Envelope {
        header: EnvelopeHeader {
            conversation: conv,
            chain: ChainId {
                epoch: 1,
                sender_leaf: 0,
                day,
                seq: 0,
            },
            generation: 0,
            franking_commitment: [0; 32],
        },
        ciphertext: ct,
        signature: [1; 64],
    }
    .encode()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_nothing_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, base) = start(tmp.path());
    let http = reqwest::Client::new();
    let alice = register(&http, &base, "alice").await;
    let mut bob = register(&http, &base, "bob").await;
    let mut id = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut id);
    let conv = ConversationId(id);
    let (create, commit) = custos_deploy::mls_fixture::two_member_group(
        &conv,
        ("alice", &alice.key),
        ("bob", &bob.key),
    );
    assert_eq!(
        post(
            &http,
            format!("{base}/v1/conversations"),
            &alice.token,
            create
        )
        .await
        .0,
        201
    );
    let (st, _) = post(
        &http,
        format!("{base}/v1/conversations/{conv}/commits"),
        &alice.token,
        commit,
    )
    .await;
    assert_eq!(st, 200);

    // 16 concurrent submitters; each records what was acknowledged.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (http, base, token, tx) = (http.clone(), base.clone(), alice.token.clone(), tx.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let body = envelope(conv);
                let frame = ClientFrame::Submit {
                    request_id: 1,
                    kind: ItemKind::Envelope,
                    conversation: conv,
                    body: body.clone(),
                };
                let r = http
                    .post(format!("{base}/v1/conversations/{conv}/items"))
                    .bearer_auth(&token)
                    .body(frame.encode().unwrap())
                    .send()
                    .await;
                let Ok(r) = r else { return };
                if r.status() != 200 {
                    return;
                }
                let Ok(bytes) = r.bytes().await else { return };
                if matches!(
                    ServerFrame::decode(&bytes),
                    Ok(ServerFrame::Accepted { .. })
                ) && tx.send(body).is_err()
                {
                    return;
                }
            }
        }));
    }
    drop(tx);
    let mut accepted = Vec::new();
    while accepted.len() < 400 {
        accepted.push(rx.recv().await.unwrap());
    }
    // SIGKILL, mid-stream.
    child.kill().unwrap();
    child.wait().unwrap();
    for t in tasks {
        let _ = t.await;
    }
    while let Some(b) = rx.recv().await {
        accepted.push(b);
    }

    let (mut child, base) = start(tmp.path());
    login(&http, &base, &mut bob).await;
    let mut stored = HashSet::new();
    let mut after = 0u64;
    loop {
        let r = http
            .get(format!("{base}/v1/mailbox?after={after}&limit=1000"))
            .bearer_auth(&bob.token)
            .send()
            .await
            .unwrap();
        let page = decode_delivery_batch(&r.bytes().await.unwrap()).unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        stored.extend(page.into_iter().map(|d| d.body));
    }
    let lost = accepted.iter().filter(|b| !stored.contains(*b)).count();
    assert_eq!(
        lost,
        0,
        "{lost} of {} acknowledged items lost",
        accepted.len()
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
