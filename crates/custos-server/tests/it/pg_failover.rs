//! `kill -9` of one of two servers on one PostgreSQL, under load: the
//! killed server runs in its own process (this test binary started again,
//! running only [`child_server_process`]), so that the kill is a real
//! `SIGKILL` in the middle of its batches. Without PostgreSQL the test
//! prints SKIPPED (`CUSTOS_REQUIRE_POSTGRES=1` makes that a failure).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

use std::collections::{HashMap, HashSet};
use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use custos_clock::dangerous;
use custos_deploy::postgres::TestPostgres;
use custos_wire::frames::{ClientFrame, ItemKind, ServerFrame};
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{START_MS, User, Ws, envelope, test_config, today, ws_request};
use crate::pg_service::pg_server;

/// Set for the child process: `<database url> <data dir>`.
const CHILD_ENV: &str = "CUSTOS_TEST_CHILD_SERVER";
/// The line the child prints once it listens.
const LISTENING: &str = "CUSTOS_CHILD_LISTENING ";

/// Not a test of its own: the body of the server process that
/// [`kill_9_of_one_server_under_load`] starts and kills. Without
/// [`CHILD_ENV`] it does nothing.
#[test]
fn child_server_process() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (url, dir) = spec.split_once(' ').unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let config = test_config(std::path::Path::new(dir)).with_database(url);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{LISTENING}{}", listener.local_addr().unwrap());
        let clock = dangerous::simulated(START_MS).shared();
        custos_server::serve(listener, config, clock, std::future::pending())
            .await
            .unwrap();
    });
}

/// A server in a process of its own.
struct ChildServer {
    url: String,
    child: Child,
}

impl ChildServer {
    #[allow(
        clippy::zombie_processes,
        reason = "the child is killed and waited for by kill_9 or Drop"
    )]
    async fn start(url: &str, dir: &std::path::Path) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "pg_failover::child_server_process",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, format!("{url} {}", dir.display()))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let addr = tokio::task::spawn_blocking(move || {
            let mut lines = std::io::BufReader::new(stdout).lines();
            loop {
                let line = lines.next().expect("the child server exited").unwrap();
                // libtest prints the test's name on the same line first.
                if let Some((_, addr)) = line.split_once(LISTENING) {
                    // Keep draining so the child never blocks on its stdout.
                    std::thread::spawn(move || lines.for_each(drop));
                    return addr.to_owned();
                }
            }
        })
        .await
        .unwrap();
        let url = format!("http://{addr}");
        let http = reqwest::Client::new();
        for _ in 0..500 {
            if let Ok(r) = http.get(format!("{url}/readyz")).send().await
                && r.status() == StatusCode::OK
            {
                return Self { url, child };
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the child server did not become ready");
    }

    /// `SIGKILL`, as `kill -9` does.
    fn kill_9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn as_user_on(u: &User, base: &str) -> User {
    User {
        name: u.name.clone(),
        key: u.key.clone(),
        token: u.token.clone(),
        base: base.to_owned(),
        http: reqwest::Client::new(),
        mls: u.mls.clone(),
    }
}

/// Submits without panicking on a dead server: `Ok(true)` accepted,
/// `Ok(false)` refused as a replay (stored before), `Err` anything else.
async fn try_submit(
    u: &User,
    conv: &custos_wire::ConversationId,
    body: &[u8],
) -> Result<bool, String> {
    let frame = ClientFrame::Submit {
        request_id: 1,
        kind: ItemKind::Envelope,
        conversation: *conv,
        body: body.to_vec(),
    }
    .encode()
    .unwrap();
    let r = u
        .http
        .post(format!("{}/v1/conversations/{conv}/items", u.base))
        .bearer_auth(&u.token)
        .body(frame)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    match r.status() {
        StatusCode::OK => Ok(true),
        StatusCode::CONFLICT => Ok(false),
        other => Err(format!("{other}")),
    }
}

/// Four senders push envelopes through server B while Bob listens on B;
/// B is killed with `SIGKILL` mid-stream. Senders retry what was not
/// answered through A (a retry of an envelope B had stored is refused as
/// a replay, so nothing is stored twice); Bob reconnects to A and carries
/// on from what he acked. Every envelope a server accepted is delivered,
/// each under one seq, and Bob's application sees each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_one_server_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let Some(pg) = TestPostgres::start(&dir.path().join("pg")).unwrap() else {
        return;
    };
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = pg_server(da.path(), &pg.url()).await;
    let mut b = ChildServer::start(&pg.url(), db.path()).await;
    let alice = User::register(&a, "alice").await;
    let bob = User::register(&a, "bob").await;
    let conv = alice.group_with(&[&bob]).await;

    let killed = Arc::new(AtomicBool::new(false));
    // Envelopes some server acknowledged (accepted, or refused as a replay
    // of one it had stored).
    let settled = Arc::new(Mutex::new(HashSet::<Vec<u8>>::new()));
    let mut senders = Vec::new();
    for t in 0..4u8 {
        let on_a = as_user_on(&alice, &a.url);
        let on_b = as_user_on(&alice, &b.url);
        let (killed, settled) = (killed.clone(), settled.clone());
        senders.push(tokio::spawn(async move {
            for i in 0..40u8 {
                let env = envelope(&conv, today(), &[t, i, 7, 7]);
                let mut first = true;
                loop {
                    let via = if first && !killed.load(Ordering::Acquire) {
                        &on_b
                    } else {
                        &on_a
                    };
                    first = false;
                    match try_submit(via, &conv, &env).await {
                        Ok(_) => {
                            settled.lock().unwrap().insert(env.clone());
                            break;
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            }
        }));
    }
    // Bob on B: acks what he gets; B dies under him and he moves to A.
    let mut ws = tokio_tungstenite::connect_async(ws_request(&b.url, &bob.token))
        .await
        .unwrap()
        .0;
    let mut seen_seq: HashMap<u64, Vec<u8>> = HashMap::new();
    let mut app: Vec<Vec<u8>> = Vec::new();
    let mut last = 0u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut moved = false;
    loop {
        if !killed.load(Ordering::Acquire) && app.len() >= 30 {
            b.kill_9();
            killed.store(true, Ordering::Release);
        }
        let done = senders.iter().all(|s| s.is_finished());
        if done {
            let want = settled.lock().unwrap().clone();
            let have: HashSet<Vec<u8>> = app.iter().cloned().collect();
            if want.is_subset(&have) {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every acknowledged envelope arrived"
        );
        match next_message(&mut ws).await {
            Next::Frame(ServerFrame::Delivery(d)) => {
                if let Some(body) = seen_seq.get(&d.seq) {
                    assert_eq!(*body, d.body, "one seq, one item");
                }
                seen_seq.insert(d.seq, d.body.clone());
                // The application: each seq once, in order.
                if d.seq > last {
                    last = d.seq;
                    if d.kind == ItemKind::Envelope {
                        app.push(d.body);
                    }
                    // Lost if the server has just died: the row is then
                    // delivered again, under the same seq.
                    let ack = ClientFrame::Ack { seqs: vec![d.seq] }.encode().unwrap();
                    let _ = ws.send(Message::Binary(ack.into())).await;
                }
            }
            Next::Frame(_) | Next::Idle => {}
            Next::Closed if killed.load(Ordering::Acquire) => {
                // B is gone: reconnect to A and carry on.
                moved = true;
                ws = tokio_tungstenite::connect_async(ws_request(&a.url, &bob.token))
                    .await
                    .unwrap()
                    .0;
            }
            Next::Closed => panic!("Bob's connection ended while B was alive"),
        }
    }
    for s in senders {
        s.await.unwrap();
    }
    assert!(moved, "Bob's connection to B ended with B");
    let unique: HashSet<&Vec<u8>> = app.iter().collect();
    assert_eq!(
        unique.len(),
        app.len(),
        "nothing delivered twice to the application"
    );
    let stored: Vec<&Vec<u8>> = seen_seq.values().collect();
    let distinct: HashSet<&Vec<u8>> = stored.iter().copied().collect();
    assert_eq!(distinct.len(), stored.len(), "no envelope stored twice");
    assert_eq!(settled.lock().unwrap().len(), 160);
    a.stop().await;
}

/// What came on a WebSocket.
enum Next {
    Frame(ServerFrame),
    /// Nothing for a while (the caller checks its deadline).
    Idle,
    /// The connection ended.
    Closed,
}

async fn next_message(ws: &mut Ws) -> Next {
    loop {
        match tokio::time::timeout(Duration::from_millis(500), ws.next()).await {
            Err(_) => return Next::Idle,
            Ok(Some(Ok(Message::Binary(b)))) => {
                return Next::Frame(ServerFrame::decode(&b).unwrap());
            }
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(_) => return Next::Closed,
        }
    }
}
