//! Criterion: 1,000 envelopes accepted by the service (one pipelined
//! WebSocket, grouped commits, durably stored) against a same-run baseline
//! of raw SQLite: the same rows (item + mailbox row) inserted in one
//! transaction on the same pragmas (WAL, synchronous=FULL).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "benchmark driver, not service code"
)]

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use criterion::{Criterion, criterion_group, criterion_main};
use custos_wire::envelope::{Envelope, EnvelopeHeader};
use custos_wire::frames::{ClientFrame, ItemKind, ServerFrame};
use custos_wire::{ChainId, ConversationId};
use ed25519_dalek::{Signer, SigningKey};
use futures_util::{SinkExt, StreamExt};
use rand::RngCore;
use serde_json::{Value, json};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, QueryBuilder, Sqlite, SqliteConnection};
use tokio_tungstenite::tungstenite::Message;

const N: usize = 1000;
const CT: usize = 256;

fn envelope(conv: ConversationId, day: u32, n: u64) -> Vec<u8> {
    let mut ct = vec![0u8; CT];
    rand::rngs::OsRng.fill_bytes(&mut ct);
    ct[..8].copy_from_slice(&n.to_be_bytes());
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

async fn post(http: &reqwest::Client, url: String, token: &str, body: Value) -> Value {
    let r = http
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    r.json().await.unwrap()
}

async fn account(http: &reqwest::Client, base: &str, name: &str) -> (String, SigningKey) {
    let key = SigningKey::from_bytes(&[name.len() as u8; 32]);
    post(
        http,
        format!("{base}/v1/accounts"),
        "",
        json!({"name": name, "identity_key": B64.encode(key.verifying_key().as_bytes())}),
    )
    .await;
    let ch = post(
        http,
        format!("{base}/v1/auth/challenge"),
        "",
        json!({"name": name}),
    )
    .await;
    let c: [u8; 32] = B64
        .decode(ch["challenge"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let sig = key.sign(&custos_server::challenge_message(name, &c));
    let s = post(http, format!("{base}/v1/auth/session"), "", json!({"name": name, "challenge": ch["challenge"], "signature": B64.encode(sig.to_bytes())})).await;
    (s["token"].as_str().unwrap().to_owned(), key)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();

    // The service, in process, with one sender and one recipient.
    let (mut ws, conv, day) = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut config = custos_server::ServerConfig::new(tmp.path().join("server"));
        // No rate, connection or storage limit: the benchmark fills mailboxes on purpose.
        config.limits = custos_server::Limits::relaxed();
        config.limits.ws_max_in_flight = N;
        tokio::spawn(custos_server::serve(
            listener,
            config,
            custos_clock::system(),
            std::future::pending(),
        ));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let http = reqwest::Client::new();
        let (a, ka) = account(&http, &base, "alice").await;
        let (_, kb) = account(&http, &base, "bob").await;
        let conv = ConversationId([3; 16]);
        let (create, commit) =
            custos_deploy::mls_fixture::two_member_group(&conv, ("alice", &ka), ("bob", &kb));
        post(&http, format!("{base}/v1/conversations"), &a, create).await;
        post(
            &http,
            format!("{base}/v1/conversations/{conv}/commits"),
            &a,
            commit,
        )
        .await;
        let (ws, _) = tokio_tungstenite::connect_async(ws_request(&base, &a))
            .await
            .unwrap();
        (
            ws,
            conv,
            custos_clock::Clock::today(&custos_clock::SystemClock),
        )
    });

    // The baseline: raw SQLite, same pragmas, same rows.
    let mut raw = rt.block_on(async {
        let opts = SqliteConnectOptions::new()
            .filename(tmp.path().join("raw.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        let mut conn = SqliteConnection::connect_with(&opts).await.unwrap();
        sqlx::raw_sql(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, body BLOB NOT NULL);
             CREATE TABLE mailbox (device_id INTEGER, seq INTEGER, item_id INTEGER, PRIMARY KEY (device_id, seq)) WITHOUT ROWID;",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn
    });

    let mut group = c.benchmark_group("accept_1000_envelopes");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    let mut n = 0u64;
    group.bench_function("service_ws_grouped_commit", |b| {
        b.iter(|| {
            rt.block_on(async {
                for _ in 0..N {
                    n += 1;
                    let frame = ClientFrame::Submit {
                        request_id: n,
                        kind: ItemKind::Envelope,
                        conversation: conv,
                        body: envelope(conv, day, n),
                    };
                    ws.send(Message::Binary(frame.encode().unwrap().into()))
                        .await
                        .unwrap();
                }
                let mut accepted = 0;
                while accepted < N {
                    let Some(Ok(Message::Binary(b))) = ws.next().await else {
                        panic!("socket closed")
                    };
                    match ServerFrame::decode(&b).unwrap() {
                        ServerFrame::Accepted { .. } => accepted += 1,
                        ServerFrame::Refused { reason, .. } => panic!("{reason}"),
                        ServerFrame::Delivery(_) => {}
                    }
                }
            })
        })
    });
    let mut id = 0i64;
    group.bench_function("raw_sqlite_one_transaction", |b| {
        b.iter(|| {
            rt.block_on(async {
                let bodies: Vec<Vec<u8>> = (0..N).map(|i| envelope(conv, day, i as u64)).collect();
                let mut tx = raw.begin().await.unwrap();
                for chunk in bodies.chunks(200) {
                    let mut qb = QueryBuilder::<Sqlite>::new("INSERT INTO items (id, body) ");
                    qb.push_values(chunk, |mut r, body| {
                        id += 1;
                        r.push_bind(id).push_bind(body.clone());
                    });
                    qb.build().execute(&mut *tx).await.unwrap();
                    let mut qb = QueryBuilder::<Sqlite>::new(
                        "INSERT INTO mailbox (device_id, seq, item_id) ",
                    );
                    let first = id - chunk.len() as i64;
                    qb.push_values(1..=chunk.len() as i64, |mut r, k| {
                        r.push_bind(2i64).push_bind(first + k).push_bind(first + k);
                    });
                    qb.build().execute(&mut *tx).await.unwrap();
                }
                tx.commit().await.unwrap();
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

/// The WebSocket upgrade request, with the token in the `Authorization` header.
fn ws_request(
    base: &str,
    token: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut req = format!("{}/v1/ws", base.replace("http", "ws"))
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}
