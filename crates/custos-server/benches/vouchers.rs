//! Load test of the voucher route, the whole path: a release server in a
//! child process (this same binary with `--serve DIR`) with matching on,
//! and a load generator on the same machine posting vouchers to
//! `POST /v1/blobs/{locator}/voucher` over HTTP/1.1 on loopback (session
//! check, voucher decoding and the service's check, the grouped SQLite
//! insert with `synchronous = FULL`, the answer).
//!
//! `cargo bench -p custos-server --bench vouchers -- [--vouchers N]
//!  [--concurrency C] [--accounts A] [--batch K]`
//!
//! With `--batch K` (2 to 16) the vouchers are posted K to a request to
//! `POST /v1/vouchers` (the batch a device sends for a message with K
//! attachments), each request's vouchers of one account; after the
//! one-by-one run, in the same run and against the same server.
//!
//! Baseline, in the same run against the same server: the same route with
//! a malformed locator, which is refused right after the session check
//! (HTTP, routing, session lookup, the JSON refusal). The report gives
//! vouchers per second and the ratio to the baseline's requests per second.
//!
//! The load generator is as lean as a device's client: each worker keeps
//! one bare HTTP/1.1 connection (hyper's client connection, no pool, no
//! URL parsing per request), so that the service, not the generator, takes
//! the machine. Both share the 2 cores, so the report gives, per phase, the
//! CPU time of the server process and of the load generator per request
//! (`/proc/<pid>/stat`, before and after the phase): what the service
//! costs, apart from what measuring it costs.
//!
//! The vouchers are real (`custos_psi::make_voucher` against a table of
//! 1,000 listed hashes, 4 slots of 40 bits): 98 % do not match, 2 % are
//! synthetic and open (the manifest's default rate), spread over the
//! accounts so that none reaches the threshold (T = 10). A few hundred
//! distinct vouchers are made and each is posted for many blobs: the
//! service's work does not depend on it. The blobs' rows are put in the
//! database before the run (uploading 20,000 blobs is not what is measured).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "benchmark driver, not service code: a failed step aborts the run"
)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use axum::body::Bytes;
use axum::http::{HeaderValue, Request, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use custos_psi::{
    AccountKey, InnerPayload, ListEntry, ListedHash, ProviderSecret, TableParams, build_table,
    entry_commitment, make_voucher, sign_entry,
};
use custos_wire::manifest::{Matching, Organisation};
use ed25519_dalek::{Signer, SigningKey};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use rand::RngCore;
use rand_core::OsRng;
use serde_json::{Value, json};

const THRESHOLD: u16 = 10;

struct Args {
    vouchers: usize,
    concurrency: usize,
    accounts: usize,
    batch: usize,
}

fn parse_args() -> (Option<String>, Args) {
    let mut a = Args {
        vouchers: 20_000,
        concurrency: 64,
        accounts: 100,
        batch: 1,
    };
    let mut serve = None;
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_default();
        match k.as_str() {
            "--serve" => serve = Some(v()),
            "--vouchers" => a.vouchers = v().parse().unwrap(),
            "--concurrency" => a.concurrency = v().parse().unwrap(),
            "--accounts" => a.accounts = v().parse().unwrap(),
            "--batch" => a.batch = v().parse().unwrap(),
            _ => {} // cargo bench passes `--bench`
        }
    }
    (serve, a)
}

fn matching_section(dir: &Path) -> Matching {
    let org = |name: &str, file: &str| Organisation {
        name: name.into(),
        jurisdiction: "EU".into(),
        public_key: std::fs::read_to_string(dir.join(file)).unwrap(),
    };
    Matching {
        enabled: true,
        threshold: THRESHOLD,
        synthetic_rate_ppm: 20_000,
        organisations: vec![org("a.test", "org-a.pub"), org("b.test", "org-b.pub")],
    }
}

fn serve(dir: String) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let dir = Path::new(&dir);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let table = std::fs::read(dir.join("table.bin")).unwrap();
        let secret: [u8; 32] = std::fs::read(dir.join("secret"))
            .unwrap()
            .try_into()
            .unwrap();
        let service = custos_server::matching::MatchingService::new(
            table,
            &secret,
            &matching_section(dir),
            0,
        )
        .unwrap();
        let mut config = custos_server::ServerConfig::new(dir.join("data")).with_matching(service);
        config.limits = custos_server::Limits::relaxed();
        println!("listening on {}", listener.local_addr().unwrap());
        let stop = async {
            let mut line = String::new();
            // Stops when the driver closes our stdin.
            let _ =
                tokio::task::spawn_blocking(move || std::io::stdin().read_line(&mut line)).await;
        };
        custos_server::serve(listener, config, custos_clock::system(), stop)
            .await
            .unwrap();
    });
}

fn main() {
    let (serve_dir, args) = parse_args();
    if let Some(dir) = serve_dir {
        serve(dir);
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(drive(args));
}

/// The provider's material: organisation keys, secret, table of 1,000
/// listed hashes. Returns the table checked as a device checks it.
fn provider(dir: &Path) -> custos_psi::CheckedTable {
    let a = SigningKey::generate(&mut OsRng);
    let b = SigningKey::generate(&mut OsRng);
    let salt = [3; 32];
    let listed: Vec<ListedHash> = (0..1000)
        .map(|_| {
            let mut h = [0; 32];
            OsRng.fill_bytes(&mut h);
            let c = entry_commitment(&salt, &h);
            ListedHash {
                hash: h,
                entry: ListEntry {
                    commitment: c,
                    sig_a: sign_entry(&a, &c),
                    sig_b: sign_entry(&b, &c),
                },
            }
        })
        .collect();
    let orgs = (a.verifying_key().to_bytes(), b.verifying_key().to_bytes());
    let secret = ProviderSecret::generate(&mut OsRng);
    let table = build_table(
        &secret,
        TableParams::default(),
        (&orgs.0, &orgs.1),
        &salt,
        &listed,
        &mut OsRng,
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("table.bin"), table.encode()).unwrap();
    std::fs::write(dir.join("secret"), secret.expose_bytes()).unwrap();
    std::fs::write(dir.join("org-a.pub"), hex::encode(orgs.0)).unwrap();
    std::fs::write(dir.join("org-b.pub"), hex::encode(orgs.1)).unwrap();
    let logged = table.logged();
    table.check(&logged, (&orgs.0, &orgs.1)).unwrap()
}

struct Server {
    child: std::process::Child,
    base: String,
}

fn start_server(dir: &Path) -> Server {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("--serve")
        .arg(dir)
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
    }
}

async fn post(http: &reqwest::Client, url: String, body: Value) -> Value {
    let r = http.post(url).json(&body).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    r.json().await.unwrap()
}

async fn session(http: &reqwest::Client, base: &str, name: &str) -> String {
    let key = SigningKey::generate(&mut OsRng);
    post(
        http,
        format!("{base}/v1/accounts"),
        json!({"name": name, "identity_key": B64.encode(key.verifying_key().as_bytes())}),
    )
    .await;
    let ch = post(
        http,
        format!("{base}/v1/auth/challenge"),
        json!({"name": name}),
    )
    .await;
    let c: [u8; 32] = B64
        .decode(ch["challenge"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let sig = key.sign(&custos_server::challenge_message(name, &c));
    let s = post(
        http,
        format!("{base}/v1/auth/session"),
        json!({"name": name, "challenge": ch["challenge"], "signature": B64.encode(sig.to_bytes())}),
    )
    .await;
    s["token"].as_str().unwrap().to_owned()
}

/// One request to post: account index, locator, voucher index.
type Job = (usize, String, usize);

/// CPU time (user + system) a process has used so far, in seconds, from
/// `/proc/<pid>/stat` (fields 14 and 15, in clock ticks).
fn cpu_secs(pid: &str) -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let ticks = *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    });
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name (field 2) may hold spaces: count after its `)`.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let utime: f64 = fields[11].parse().unwrap();
    let stime: f64 = fields[12].parse().unwrap();
    (utime + stime) / ticks
}

/// CPU seconds of the server and of this load generator over one phase.
#[derive(Clone, Copy)]
struct Cpu {
    server: f64,
    generator: f64,
}

/// Runs `phase` and measures both processes' CPU time over it.
async fn measured<T>(server_pid: u32, phase: impl std::future::Future<Output = T>) -> (T, Cpu) {
    let pid = server_pid.to_string();
    let (s0, g0) = (cpu_secs(&pid), cpu_secs("self"));
    let out = phase.await;
    let (s1, g1) = (cpu_secs(&pid), cpu_secs("self"));
    (
        out,
        Cpu {
            server: s1 - s0,
            generator: g1 - g0,
        },
    )
}

/// What a load generator's worker needs to post: the server's address,
/// each account's `Authorization` value, the distinct vouchers.
struct Target {
    addr: String,
    host: HeaderValue,
    auth: Vec<HeaderValue>,
    vouchers: Vec<Bytes>,
}

/// One bare HTTP/1.1 connection to the server (keep-alive, no Nagle).
async fn connect(addr: &str) -> SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

/// Posts `body` to `path` as account `acct`; the answer's status, once its
/// body is read.
async fn post_raw(
    conn: &mut SendRequest<Full<Bytes>>,
    target: &Target,
    path: String,
    acct: usize,
    body: Bytes,
) -> StatusCode {
    conn.ready().await.unwrap();
    let request = Request::post(path)
        .header(header::HOST, target.host.clone())
        .header(header::AUTHORIZATION, target.auth[acct].clone())
        .body(Full::new(body))
        .unwrap();
    let response = conn.send_request(request).await.unwrap();
    let status = response.status();
    response.into_body().collect().await.unwrap();
    status
}

/// Posts every job with `concurrency` workers, one connection each;
/// returns (seconds, refused).
async fn run(
    target: &Arc<Target>,
    jobs: Arc<Vec<Job>>,
    concurrency: usize,
    expect: StatusCode,
) -> (f64, usize) {
    let next = Arc::new(AtomicUsize::new(0));
    let wrong = Arc::new(AtomicUsize::new(0));
    let mut conns = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        conns.push(connect(&target.addr).await);
    }
    let start = Instant::now();
    let mut workers = Vec::new();
    for mut conn in conns {
        let (target, jobs, next, wrong) =
            (target.clone(), jobs.clone(), next.clone(), wrong.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((acct, locator, v)) = jobs.get(i) else {
                    break;
                };
                let body = target.vouchers[*v].clone();
                let path = format!("/v1/blobs/{locator}/voucher");
                if post_raw(&mut conn, &target, path, *acct, body).await != expect {
                    wrong.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    (start.elapsed().as_secs_f64(), wrong.load(Ordering::Relaxed))
}

/// Posts `jobs` in batches of `batch` (one account each) to
/// `POST /v1/vouchers` with `concurrency` workers; returns (seconds,
/// vouchers in refused batches).
async fn run_batched(
    target: &Arc<Target>,
    jobs: Vec<Job>,
    batch: usize,
    concurrency: usize,
) -> (f64, usize) {
    // Group by account, then cut into batches.
    let mut by_account: std::collections::BTreeMap<usize, Vec<Job>> = Default::default();
    for j in jobs {
        by_account.entry(j.0).or_default().push(j);
    }
    let mut bodies: Vec<(usize, usize, Bytes)> = Vec::new();
    for (acct, jobs) in by_account {
        for chunk in jobs.chunks(batch) {
            let mut body = vec![1u8, chunk.len() as u8];
            for (_, locator, v) in chunk {
                let voucher = &target.vouchers[*v];
                body.extend_from_slice(&hex::decode(locator).unwrap());
                body.extend_from_slice(&(voucher.len() as u16).to_be_bytes());
                body.extend_from_slice(voucher);
            }
            bodies.push((acct, chunk.len(), body.into()));
        }
    }
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let wrong = Arc::new(AtomicUsize::new(0));
    let mut conns = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        conns.push(connect(&target.addr).await);
    }
    let start = Instant::now();
    let mut workers = Vec::new();
    for mut conn in conns {
        let (target, bodies, next, wrong) =
            (target.clone(), bodies.clone(), next.clone(), wrong.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((acct, n, body)) = bodies.get(i) else {
                    break;
                };
                let path = "/v1/vouchers".to_owned();
                if post_raw(&mut conn, &target, path, *acct, body.clone()).await
                    != StatusCode::CREATED
                {
                    wrong.fetch_add(*n, Ordering::Relaxed);
                }
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    (start.elapsed().as_secs_f64(), wrong.load(Ordering::Relaxed))
}

/// One line of CPU figures: milliseconds per unit for each process.
fn cpu_line(what: &str, cpu: Cpu, units: usize, unit: &str) -> String {
    let per = |s: f64| s * 1000.0 / units as f64;
    format!(
        "  CPU {what}: server {:.3} ms/{unit}, load generator {:.3} ms/{unit} ({:.2} + {:.2} s)",
        per(cpu.server),
        per(cpu.generator),
        cpu.server,
        cpu.generator
    )
}

async fn drive(args: Args) {
    let tmp = tempfile::tempdir().unwrap();
    let checked = provider(tmp.path());
    // Distinct vouchers: 200 that do not match, 20 synthetic ones that open.
    let account_key = AccountKey::generate(THRESHOLD, &mut OsRng).unwrap();
    let mut vouchers = Vec::new();
    for i in 0..220 {
        let mut hash = [0u8; 32];
        OsRng.fill_bytes(&mut hash);
        let payload = InnerPayload {
            hash,
            derivative: [7; custos_psi::DERIVATIVE_LEN],
        };
        vouchers
            .push(make_voucher(&checked, &account_key, &payload, i >= 200, &mut OsRng).encode());
    }
    let server = start_server(tmp.path());
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()
        .unwrap();
    let mut tokens = Vec::new();
    for i in 0..args.accounts {
        tokens.push(session(&http, &server.base, &format!("bench{i}")).await);
    }
    let target = Arc::new(Target {
        addr: server.base.trim_start_matches("http://").to_owned(),
        host: HeaderValue::from_str(server.base.trim_start_matches("http://")).unwrap(),
        auth: tokens
            .iter()
            .map(|t| HeaderValue::from_str(&format!("Bearer {t}")).unwrap())
            .collect(),
        vouchers: vouchers.into_iter().map(Bytes::from).collect(),
    });
    let server_pid = server.child.id();
    // The blobs, one per voucher to post, straight into the database.
    let mut jobs: Vec<Job> = Vec::with_capacity(args.vouchers);
    {
        let db = rusqlite::Connection::open(tmp.path().join("data/custos-server.db")).unwrap();
        db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
        let ids: Vec<i64> = (0..args.accounts)
            .map(|i| {
                db.query_row(
                    "SELECT id FROM accounts WHERE name = ?",
                    [format!("bench{i}")],
                    |r| r.get(0),
                )
                .unwrap()
            })
            .collect();
        let tx = db.unchecked_transaction().unwrap();
        let far = i64::MAX / 2;
        for n in 0..args.vouchers {
            // 2 % synthetic (opened), dealt round the accounts so that none
            // reaches T (an account past T with no key would run the
            // reconstruction at each further opened voucher).
            let synthetic = n % 50 == 0;
            let acct = if synthetic {
                (n / 50) % args.accounts
            } else {
                n % args.accounts
            };
            let mut loc = [0u8; 32];
            OsRng.fill_bytes(&mut loc);
            let locator = hex::encode(loc);
            tx.execute(
                "INSERT INTO blobs (locator, owner, size, created_at, expires_at, body) \
                 VALUES (?, ?, 0, 0, ?, x'')",
                rusqlite::params![locator, ids[acct], far],
            )
            .unwrap();
            let v = if synthetic {
                200 + (n / 50) % 20
            } else {
                n % 200
            };
            jobs.push((acct, locator, v));
        }
        tx.commit().unwrap();
    }
    let synthetic = jobs.iter().filter(|j| j.2 >= 200).count();
    let mut per_account = vec![0usize; args.accounts];
    for j in jobs.iter().filter(|j| j.2 >= 200) {
        per_account[j.0] += 1;
    }
    assert!(
        per_account.iter().all(|n| *n < usize::from(THRESHOLD)),
        "an account would reach T: use more accounts"
    );
    // Warm-up: 500 vouchers (connections, caches), not counted.
    let warm: Vec<Job> = jobs.drain(..500.min(jobs.len())).collect();
    run(
        &target,
        Arc::new(warm),
        args.concurrency,
        StatusCode::CREATED,
    )
    .await;
    // With --batch, half of the blobs go one by one and half in batches.
    let batched: Vec<Job> = if args.batch > 1 {
        jobs.split_off(jobs.len() / 2)
    } else {
        Vec::new()
    };
    let n = jobs.len();
    // Baseline: the same number of requests with a malformed locator.
    let bad: Vec<Job> = jobs
        .iter()
        .map(|(a, _, v)| (*a, "not-a-locator".to_owned(), *v))
        .collect();
    let ((base_secs, base_wrong), base_cpu) = measured(
        server_pid,
        run(
            &target,
            Arc::new(bad),
            args.concurrency,
            StatusCode::NOT_FOUND,
        ),
    )
    .await;
    let ((secs, wrong), cpu) = measured(
        server_pid,
        run(
            &target,
            Arc::new(jobs),
            args.concurrency,
            StatusCode::CREATED,
        ),
    )
    .await;
    let batch_result = if batched.is_empty() {
        None
    } else {
        let m = batched.len();
        let ((secs, wrong), cpu) = measured(
            server_pid,
            run_batched(&target, batched, args.batch, args.concurrency),
        )
        .await;
        Some((m, secs, wrong, cpu))
    };
    let stored: i64 = rusqlite::Connection::open(tmp.path().join("data/custos-server.db"))
        .unwrap()
        .query_row("SELECT COUNT(*) FROM psi_vouchers", [], |r| r.get(0))
        .unwrap();
    let secs_one = secs;
    let rate = n as f64 / secs;
    let base_rate = n as f64 / base_secs;
    println!(
        "vouchers: {n} posted ({synthetic} synthetic) by {} workers over {} accounts",
        args.concurrency, args.accounts
    );
    println!(
        "baseline (HTTP + session check, refused): {base_rate:.0} requests/s ({base_wrong} unexpected answers)"
    );
    println!("{}", cpu_line("baseline", base_cpu, n, "request"));
    println!(
        "vouchers (HTTP + session + check + grouped SQLite insert): {rate:.0} vouchers/s ({wrong} unexpected answers, {stored} rows stored)"
    );
    println!(
        "ratio to the baseline: {:.2}; goal 10,000/s: {}",
        rate / base_rate,
        if rate >= 10_000.0 { "met" } else { "not met" }
    );
    println!("{}", cpu_line("one by one", cpu, n, "voucher"));
    if let Some((m, secs, wrong, cpu)) = batch_result {
        let rate = m as f64 / secs;
        println!(
            "vouchers in batches of {} (POST /v1/vouchers): {m} in {rate:.0} vouchers/s ({wrong} in refused batches); ratio to one by one: {:.2}; goal 10,000/s: {}",
            args.batch,
            rate / (n as f64 / secs_one),
            if rate >= 10_000.0 { "met" } else { "not met" }
        );
        println!("{}", cpu_line("batched", cpu, m, "voucher"));
    }
    let mut child = server.child;
    drop(child.stdin.take());
    let _ = child.wait();
}
