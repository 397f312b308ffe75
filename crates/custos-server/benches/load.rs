//! Load generator for the delivery service: starts a release server in a
//! child process (this same binary with `--serve DIR`), drives N WebSocket
//! clients in pairs of one-to-one conversations, and reports accepted and
//! delivered messages per second, send-to-push latency, and the server's
//! memory per idle WebSocket.
//!
//! `cargo bench -p custos-server --bench load -- [--clients N] [--seconds S]
//!  [--rate R] [--idle N] [--size BYTES] [--window W] [--tags]`
//!
//! `--tags` switches delivery tags on (v2: the writer signs one Merkle root
//! per tag batch of up to 512 envelopes with the service's franking key), as
//! a deployment with abuse reporting runs.
//!
//! Cluster mode (issue 13): `--postgres` runs the servers on a PostgreSQL
//! the bench starts itself (the test kit's `TestPostgres`, the
//! distribution's binaries, default settings: `synchronous_commit = on`),
//! `--servers N` starts N servers on it and spreads the clients across them
//! (client `i` on server `i mod N`, so with two servers every push crosses
//! servers: each pair's two members sit on different servers), and
//! `--matrix` runs SQLite with one server, PostgreSQL with one server and
//! PostgreSQL with two servers one after the other in the same run and
//! prints each as a ratio to the first. With PostgreSQL the report adds the
//! database's commit rate (`pg_stat_database.xact_commit` over the
//! measured window; PostgreSQL flushes these counters about once a second,
//! so it is approximate).
//!
//! Every item is durably committed before it is acknowledged (the server is
//! the normal one: WAL, synchronous=FULL, grouped commits).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    clippy::too_many_arguments,
    clippy::collapsible_if,
    reason = "benchmark driver, not service code: a failed step aborts the run"
)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use custos_deploy::postgres::TestPostgres;
use custos_wire::envelope::{Envelope, EnvelopeHeader};
use custos_wire::frames::{ClientFrame, ItemKind, ServerFrame};
use custos_wire::{ChainId, ConversationId};
use ed25519_dalek::{Signer, SigningKey};
use futures_util::{SinkExt, StreamExt};
use rand::RngCore;
use serde_json::{Value, json};
use tokio::sync::{Mutex, Semaphore, mpsc};
use tokio_tungstenite::tungstenite::Message;

struct Args {
    clients: usize,
    seconds: u64,
    rate: u64,
    idle: usize,
    size: usize,
    window: usize,
    /// Delivery tags on: the service tags every envelope (v2, batched).
    tags: bool,
    /// Servers to start (on one PostgreSQL when more than one).
    servers: usize,
    /// Store in PostgreSQL instead of SQLite.
    postgres: bool,
    /// Run SQLite ×1, PostgreSQL ×1 and PostgreSQL ×2 in turn.
    matrix: bool,
}

/// The child's `--serve DIR [--database URL]`, and the driver's options.
fn parse_args() -> (Option<(String, Option<String>)>, Args) {
    let mut a = Args {
        clients: 100,
        seconds: 5,
        rate: 10_000,
        idle: 10_000,
        size: 256,
        window: 64,
        tags: false,
        servers: 1,
        postgres: false,
        matrix: false,
    };
    let mut serve = None;
    let mut database = None;
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_default();
        match k.as_str() {
            "--serve" => serve = Some(v()),
            "--clients" => a.clients = v().parse().unwrap(),
            "--seconds" => a.seconds = v().parse().unwrap(),
            "--rate" => a.rate = v().parse().unwrap(),
            "--idle" => a.idle = v().parse().unwrap(),
            "--size" => a.size = v().parse().unwrap(),
            "--window" => a.window = v().parse().unwrap(),
            "--tags" => a.tags = true,
            "--servers" => a.servers = v().parse().unwrap(),
            "--postgres" => a.postgres = true,
            "--matrix" => a.matrix = true,
            "--database" => database = Some(v()),
            _ => {} // cargo bench passes `--bench`
        }
    }
    (serve.map(|dir| (dir, database)), a)
}

fn main() {
    let (serve, args) = parse_args();
    if let Some((dir, database)) = serve {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let tags = args.tags;
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            println!("listening on {}", listener.local_addr().unwrap());
            let mut config = custos_server::ServerConfig::new(&dir);
            if let Some(url) = database {
                config = config.with_database(url);
            }
            if tags {
                let policy = custos_server::FrankingPolicy::open(
                    std::path::Path::new(&dir),
                    custos_clock::system(),
                )
                .unwrap();
                config = config.with_franking(Arc::new(policy));
            }
            // No rate, connection or storage limit: the benchmark fills mailboxes on purpose.
            config.limits = custos_server::Limits::relaxed();
            let stop = async {
                let mut line = String::new();
                // Stops when the driver closes our stdin.
                let _ = tokio::task::spawn_blocking(move || std::io::stdin().read_line(&mut line))
                    .await;
            };
            custos_server::serve(listener, config, custos_clock::system(), stop)
                .await
                .unwrap();
        });
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(drive(args));
}

struct Server {
    child: std::process::Child,
    base: String,
    _tmp: tempfile::TempDir,
}

fn start_server(tags: bool, database: Option<&str>) -> Server {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("--serve")
        .arg(tmp.path())
        .args(tags.then_some("--tags"))
        .args(
            database
                .map(|url| ["--database", url])
                .into_iter()
                .flatten(),
        )
        .env(
            "RUST_LOG",
            std::env::var("SERVER_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    Server {
        child,
        base: format!("http://{addr}"),
        _tmp: tmp,
    }
}

fn proc_stat(pid: u32) -> (u64, u64) {
    // (rss KiB, utime+stime ticks)
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (rss, ticks)
}

async fn post(http: &reqwest::Client, url: String, token: &str, body: Value) -> Value {
    let r = http
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    r.json().await.unwrap()
}

async fn account(http: &reqwest::Client, base: &str, name: &str) -> (String, SigningKey) {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    let key = SigningKey::from_bytes(&seed);
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

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    delivered: AtomicU64,
    refused: AtomicU64,
}

struct Phase {
    measuring: AtomicBool,
    stop: AtomicBool,
    start: Instant,
}

/// One client: submits to its conversation, records latency of what it receives.
#[allow(clippy::too_many_arguments, reason = "benchmark driver: one call site")]
async fn client(
    base: String,
    token: String,
    conv: ConversationId,
    rate_per_client: f64,
    window: usize,
    size: usize,
    phase: Arc<Phase>,
    counters: Arc<Counters>,
    latencies: Arc<Mutex<Vec<u32>>>,
    ready: Arc<tokio::sync::Barrier>,
) {
    let (ws, _) = tokio_tungstenite::connect_async(ws_request(&base, &token))
        .await
        .unwrap();
    let (mut sink, mut stream) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(1024);
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            if sink.send(m).await.is_err() {
                break;
            }
        }
    });
    let permits = Arc::new(Semaphore::new(window));
    let reader = {
        let (permits, phase, counters, latencies, out_tx) = (
            permits.clone(),
            phase.clone(),
            counters.clone(),
            latencies.clone(),
            out_tx.clone(),
        );
        tokio::spawn(async move {
            let mut local = Vec::new();
            let mut acks = Vec::new();
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Binary(b) = msg else { continue };
                match ServerFrame::decode(&b) {
                    Ok(ServerFrame::Accepted { .. }) => {
                        permits.add_permits(1);
                        if phase.measuring.load(Ordering::Relaxed) {
                            counters.accepted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(ServerFrame::Refused { .. }) => {
                        permits.add_permits(1);
                        counters.refused.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(ServerFrame::Delivery(d)) => {
                        acks.push(d.seq);
                        if d.kind == ItemKind::Envelope
                            && phase.measuring.load(Ordering::Relaxed)
                            && let Ok(env) = Envelope::decode(&d.body)
                        {
                            let sent = u64::from_be_bytes(env.ciphertext[..8].try_into().unwrap());
                            let now = phase.start.elapsed().as_micros() as u64;
                            local.push(now.saturating_sub(sent) as u32);
                            counters.delivered.fetch_add(1, Ordering::Relaxed);
                        }
                        if acks.len() >= 64 {
                            let frame = ClientFrame::Ack {
                                seqs: std::mem::take(&mut acks),
                            }
                            .encode()
                            .unwrap();
                            let _ = out_tx.try_send(Message::Binary(frame.into()));
                        }
                    }
                    Err(_) => {}
                }
            }
            latencies.lock().await.extend(local);
        })
    };
    ready.wait().await;
    let day = custos_clock::Clock::today(&custos_clock::SystemClock);
    let mut n: u64 = 0;
    let mut pad = vec![0u8; size.max(16)];
    rand::rngs::OsRng.fill_bytes(&mut pad);
    let interval = if rate_per_client > 0.0 {
        Some(Duration::from_secs_f64(1.0 / rate_per_client))
    } else {
        None
    };
    let mut tick = interval.map(|i| {
        let mut t = tokio::time::interval(i);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        t
    });
    while !phase.stop.load(Ordering::Relaxed) {
        if let Some(t) = tick.as_mut() {
            t.tick().await;
        }
        let Ok(Ok(p)) =
            tokio::time::timeout(Duration::from_millis(200), permits.clone().acquire_owned()).await
        else {
            continue;
        };
        p.forget();
        n += 1;
        let now = phase.start.elapsed().as_micros() as u64;
        pad[..8].copy_from_slice(&now.to_be_bytes());
        pad[8..16].copy_from_slice(&n.to_be_bytes());
        let env = Envelope {
            header: EnvelopeHeader {
                conversation: conv,
                chain: ChainId {
                    epoch: 1,
                    sender_leaf: 0,
                    day,
                    seq: 0,
                },
                generation: u32::try_from(n).unwrap_or(u32::MAX),
                franking_commitment: [0; 32],
            },
            ciphertext: pad.clone(),
            signature: [7; 64],
        };
        let frame = ClientFrame::Submit {
            request_id: n,
            kind: ItemKind::Envelope,
            conversation: conv,
            body: env.encode().unwrap(),
        };
        if out_tx
            .send(Message::Binary(frame.encode().unwrap().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    // Let the last pushes arrive, then close.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = out_tx.send(Message::Close(None)).await;
    drop(out_tx);
    let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
    writer.abort();
}

struct Report {
    accepted: f64,
    delivered: f64,
    p50: f64,
    p99: f64,
    server_cpu: f64,
    driver_cpu: f64,
    refused: u64,
    /// PostgreSQL commits per second over the window (PostgreSQL runs).
    pg_commits: Option<f64>,
}

/// One client of the run: its session token, conversation and server.
struct User {
    token: String,
    conv: ConversationId,
    base: String,
}

/// PostgreSQL's committed transactions so far on the service's database.
fn pg_commits(pg: &TestPostgres) -> u64 {
    pg.psql(
        "postgres",
        &format!(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = '{}'",
            custos_deploy::postgres::DATABASE
        ),
    )
    .unwrap()
    .parse()
    .unwrap()
}

/// Summed CPU ticks of the server processes.
fn servers_cpu(pids: &[u32]) -> u64 {
    pids.iter().map(|p| proc_stat(*p).1).sum()
}

async fn run_phase(
    users: &[User],
    args: &Args,
    rate: u64,
    pids: &[u32],
    pg: Option<&TestPostgres>,
) -> Report {
    let phase = Arc::new(Phase {
        measuring: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        start: Instant::now(),
    });
    let counters = Arc::new(Counters::default());
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let ready = Arc::new(tokio::sync::Barrier::new(users.len() + 1));
    let per_client = if rate == 0 {
        0.0
    } else {
        rate as f64 / users.len() as f64
    };
    let mut tasks = Vec::new();
    for u in users {
        tasks.push(tokio::spawn(client(
            u.base.clone(),
            u.token.clone(),
            u.conv,
            per_client,
            args.window,
            args.size,
            phase.clone(),
            counters.clone(),
            latencies.clone(),
            ready.clone(),
        )));
    }
    ready.wait().await;
    // Warm up 1 s, then measure.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu0 = servers_cpu(pids);
    let (_, own0) = proc_stat(std::process::id());
    let commits0 = pg.map(pg_commits);
    phase.measuring.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    phase.measuring.store(false, Ordering::Relaxed);
    let secs = t0.elapsed().as_secs_f64();
    let cpu1 = servers_cpu(pids);
    let (_, own1) = proc_stat(std::process::id());
    let commits1 = pg.map(pg_commits);
    phase.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let mut l = latencies.lock().await.clone();
    l.sort_unstable();
    let pct = |p: f64| {
        if l.is_empty() {
            0.0
        } else {
            l[((l.len() - 1) as f64 * p) as usize] as f64 / 1000.0
        }
    };
    Report {
        accepted: counters.accepted.load(Ordering::Relaxed) as f64 / secs,
        delivered: counters.delivered.load(Ordering::Relaxed) as f64 / secs,
        p50: pct(0.50),
        p99: pct(0.99),
        server_cpu: (cpu1 - cpu0) as f64 / 100.0 / secs * 100.0,
        driver_cpu: (own1 - own0) as f64 / 100.0 / secs * 100.0,
        refused: counters.refused.load(Ordering::Relaxed),
        pg_commits: commits0
            .zip(commits1)
            .map(|(a, b)| b.saturating_sub(a) as f64 / secs),
    }
}

/// Accounts in pairs, one conversation per pair, created through the first
/// server; user `i` then connects to server `i mod N`.
async fn make_users(http: &reqwest::Client, bases: &[String], clients: usize) -> Vec<User> {
    let base = &bases[0];
    let mut users = Vec::new();
    for i in 0..clients / 2 {
        let (an, bn) = (format!("a{i}"), format!("b{i}"));
        let (a, ka) = account(http, base, &an).await;
        let (b, kb) = account(http, base, &bn).await;
        let mut id = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id);
        let conv = ConversationId(id);
        let (create, commit) =
            custos_deploy::mls_fixture::two_member_group(&conv, (&an, &ka), (&bn, &kb));
        post(http, format!("{base}/v1/conversations"), &a, create).await;
        post(
            http,
            format!("{base}/v1/conversations/{conv}/commits"),
            &a,
            commit,
        )
        .await;
        for token in [a, b] {
            let base = bases[users.len() % bases.len()].clone();
            users.push(User { token, conv, base });
        }
    }
    users
}

fn print_report(what: &str, r: &Report) {
    let commits = r
        .pg_commits
        .map(|c| format!(", PostgreSQL {c:.0} commits/s"))
        .unwrap_or_default();
    println!(
        "{what}: accepted {:.0} msg/s, delivered {:.0} msg/s, send->push p50 {:.1} ms p99 {:.1} ms, servers CPU {:.0}%, load generator CPU {:.0}%{commits}, refused {}",
        r.accepted, r.delivered, r.p50, r.p99, r.server_cpu, r.driver_cpu, r.refused
    );
}

/// A set-up of the matrix: the backend and the number of servers.
struct Cluster {
    _pg_dir: Option<tempfile::TempDir>,
    pg: Option<TestPostgres>,
    servers: Vec<Server>,
}

impl Cluster {
    fn start(args: &Args, postgres: bool, servers: usize) -> Cluster {
        let (pg_dir, pg) = if postgres {
            let dir = tempfile::tempdir().unwrap();
            let pg = TestPostgres::start(&dir.path().join("pg"))
                .unwrap()
                .expect("PostgreSQL is not installed: cluster runs need it");
            (Some(dir), Some(pg))
        } else {
            (None, None)
        };
        let url = pg.as_ref().map(TestPostgres::url);
        let servers = (0..servers.max(1))
            .map(|_| start_server(args.tags, url.as_deref()))
            .collect();
        Cluster {
            _pg_dir: pg_dir,
            pg,
            servers,
        }
    }

    fn bases(&self) -> Vec<String> {
        self.servers.iter().map(|s| s.base.clone()).collect()
    }

    fn pids(&self) -> Vec<u32> {
        self.servers.iter().map(|s| s.child.id()).collect()
    }

    fn stop(mut self) {
        for s in &mut self.servers {
            drop(s.child.stdin.take());
            let _ = s.child.wait();
        }
        if let Some(pg) = self.pg.as_mut() {
            let _ = pg.stop();
        }
    }
}

/// SQLite ×1, PostgreSQL ×1, PostgreSQL ×2 in turn, each at full speed and
/// at the offered rate, as ratios to SQLite ×1 of the same run.
async fn matrix(args: Args) {
    let http = reqwest::Client::new();
    println!(
        "delivery service cluster matrix: {} WebSocket clients in {} one-to-one conversations, {} B ciphertext, 2 cores shared with the load generator and PostgreSQL",
        args.clients,
        args.clients / 2,
        args.size
    );
    let mut rows = Vec::new();
    for (label, postgres, servers) in [
        ("SQLite, 1 server", false, 1),
        ("PostgreSQL, 1 server", true, 1),
        ("PostgreSQL, 2 servers", true, 2),
    ] {
        let cluster = Cluster::start(&args, postgres, servers);
        let users = make_users(&http, &cluster.bases(), args.clients).await;
        let max = run_phase(&users, &args, 0, &cluster.pids(), cluster.pg.as_ref()).await;
        print_report(&format!("{label}, max throughput"), &max);
        let at = run_phase(
            &users,
            &args,
            args.rate,
            &cluster.pids(),
            cluster.pg.as_ref(),
        )
        .await;
        print_report(&format!("{label}, at {} msg/s offered", args.rate), &at);
        rows.push((label, max, at));
        cluster.stop();
    }
    let base = rows[0].1.accepted.max(1.0);
    for (label, max, at) in &rows {
        println!(
            "JSON {}",
            json!({
                "setup": label, "max_accepted_per_s": max.accepted.round(),
                "ratio_to_sqlite": (max.accepted / base * 100.0).round() / 100.0,
                "max_p99_ms": max.p99, "offered_rate": args.rate,
                "accepted_per_s": at.accepted.round(), "p50_ms": at.p50, "p99_ms": at.p99,
                "pg_commits_per_s": max.pg_commits.map(f64::round),
            })
        );
    }
}

async fn drive(args: Args) {
    if args.matrix {
        return matrix(args).await;
    }
    let cluster = Cluster::start(&args, args.postgres, args.servers);
    let pids = cluster.pids();
    let pid = pids[0];
    let bases = cluster.bases();
    let base = bases[0].clone();
    let http = reqwest::Client::new();
    let users = make_users(&http, &bases, args.clients).await;
    println!(
        "delivery service load test: {} WebSocket clients in {} one-to-one conversations on {} server(s) ({}), {} B ciphertext, 2 cores shared with the load generator",
        users.len(),
        users.len() / 2,
        bases.len(),
        if args.postgres {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        args.size
    );
    let max = run_phase(&users, &args, 0, &pids, cluster.pg.as_ref()).await;
    print_report(
        &format!("max throughput (window {} per client)", args.window),
        &max,
    );
    let at = run_phase(&users, &args, args.rate, &pids, cluster.pg.as_ref()).await;
    print_report(&format!("at {} msg/s offered", args.rate), &at);
    // Idle connections.
    if args.idle > 0 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        // Fresh accounts with empty mailboxes, several connections each.
        let mut idle_tokens = Vec::new();
        for i in 0..100 {
            idle_tokens.push(account(&http, &base, &format!("idle{i}")).await.0);
        }
        let (rss0, _) = proc_stat(pid);
        let mut conns = Vec::with_capacity(args.idle);
        for i in 0..args.idle {
            let token = &idle_tokens[i % idle_tokens.len()];
            match tokio_tungstenite::connect_async(ws_request(&base, token)).await {
                Ok((ws, _)) => conns.push(ws),
                Err(e) => {
                    println!("idle connection {i} failed: {e}");
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (rss1, _) = proc_stat(pid);
        let n = conns.len().max(1);
        println!(
            "idle WebSockets: {} connections, server RSS {} KiB -> {} KiB, {:.1} KiB per connection",
            conns.len(),
            rss0,
            rss1,
            (rss1.saturating_sub(rss0)) as f64 / n as f64
        );
        println!(
            "JSON {}",
            json!({
                "max_accepted_per_s": max.accepted.round(), "max_delivered_per_s": max.delivered.round(),
                "max_p50_ms": max.p50, "max_p99_ms": max.p99,
                "offered_rate": args.rate, "accepted_per_s": at.accepted.round(), "delivered_per_s": at.delivered.round(),
                "p50_ms": at.p50, "p99_ms": at.p99,
                "idle_connections": conns.len(), "rss_per_idle_kib": (rss1.saturating_sub(rss0)) as f64 / n as f64,
            })
        );
        drop(conns);
    }
    cluster.stop();
}

/// The WebSocket upgrade request, with the token in the `Authorization` header.
fn ws_request(
    base: &str,
    token: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut req = format!("{}/v1/ws", base.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}
