//! Known-content detection end to end on real services (issue 15, tests 2,
//! 3, 4, 6 and 5 through a real device): vouchers with every picture,
//! nothing learnt below the threshold, exactly the matches opened at it,
//! review and a package, and every refused table or voucher.
//!
//! Pictures are synthetic (`custos_media::synthetic`); their hashes are put
//! on a test list. No real abuse material is used anywhere.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use custos_client::api::ApiError;
use custos_client::device::DeviceError;
use custos_client::matching::MatchingError;
use custos_deploy::matching::{MatchingSpec, TableFault};
use custos_deploy::{CustodianMode, Deployment, DeploymentSpec, ServerBackend, ServerSpec};
use custos_media::synthetic;
use tempfile::TempDir;

const T: u16 = 4;

fn picture(seed: u64) -> (Vec<u8>, [u8; 32]) {
    let p = synthetic::picture(seed, 96, 96).unwrap();
    let hash = *custos_media::hash(&p).hash.as_bytes();
    (synthetic::png(&p).unwrap(), hash)
}

async fn deployment(dir: &TempDir, listed: Vec<[u8; 32]>, fault: TableFault) -> Deployment {
    deployment_on(dir, listed, fault, ServerBackend::Sqlite).await
}

async fn deployment_on(
    dir: &TempDir,
    listed: Vec<[u8; 32]>,
    fault: TableFault,
    backend: ServerBackend,
) -> Deployment {
    let spec = DeploymentSpec::new("test", custos_clock::system())
        .custodians(0, 0, CustodianMode::KeysOnly)
        .with_server(ServerSpec {
            backend,
            ..ServerSpec::unlimited()
        })
        .with_matching(MatchingSpec {
            threshold: T,
            synthetic_rate_ppm: 0,
            listed,
            fault,
        });
    Deployment::start(&dir.path().join("deploy"), spec)
        .await
        .unwrap()
}

fn db(d: &Deployment) -> rusqlite::Connection {
    rusqlite::Connection::open(d.server().unwrap().data.join("custos-server.db")).unwrap()
}

/// Everything the service holds about `account`'s vouchers, up to the
/// random bytes: voucher rows, opened shares, threshold rows, cases, matches
/// (in its SQLite file, or in the deployment's PostgreSQL database).
fn view(d: &mut Deployment, account: &str) -> [i64; 5] {
    const COUNTS: [&str; 5] = [
        "SELECT COUNT(*) FROM psi_vouchers WHERE account = ?",
        "SELECT COUNT(*) FROM psi_vouchers WHERE account = ? AND share IS NOT NULL",
        "SELECT COUNT(*) FROM psi_accounts WHERE account = ?",
        "SELECT COUNT(*) FROM psi_cases WHERE account = ?",
        "SELECT COUNT(*) FROM psi_matches m JOIN psi_cases c ON c.id = m.case_id WHERE c.account = ?",
    ];
    if let Some(pg) = d.postgres_mut() {
        let id = format!("(SELECT id FROM accounts WHERE name = '{account}')");
        let sql = format!(
            "SELECT {}",
            COUNTS
                .map(|q| format!("({})", q.replace('?', &id)))
                .join(", ")
        );
        let out = pg.psql(custos_deploy::postgres::DATABASE, &sql).unwrap();
        let got: Vec<i64> = out.split('|').map(|n| n.parse().unwrap()).collect();
        return got.try_into().unwrap();
    }
    let c = db(d);
    let id: i64 = c
        .query_row("SELECT id FROM accounts WHERE name = ?", [account], |r| {
            r.get(0)
        })
        .unwrap();
    COUNTS.map(|sql| c.query_row(sql, [id], |r| r.get(0)).unwrap())
}

/// `view(d, account)` once it is `expected`: the threshold step runs
/// shortly after the voucher's answer, beside the voucher writer. Polls
/// for at most 20 s (a failing test shows the last view).
async fn settled(d: &mut Deployment, account: &str, expected: [i64; 5]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let now = view(d, account);
        if now == expected || std::time::Instant::now() > deadline {
            assert_eq!(now, expected, "{account}");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The service's log lines, captured on the threads of one test's runtime
/// only: one global subscriber (every level of `custos_server`) writes each
/// line to the capture of the thread that logs it, if that thread has one.
/// (A thread-local subscriber per test is not reliable while other tests
/// run: tracing caches each call site's interest process-wide.)
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<Captured>> = const { std::cell::RefCell::new(None) };
}

/// Writes to the logging thread's capture, or nowhere.
struct Routed(Option<Captured>);

impl std::io::Write for Routed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(c) = &self.0 {
            c.0.lock().unwrap().extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Routes this thread's `custos_server` log lines here.
    fn attach(&self) {
        static GLOBAL: std::sync::Once = std::sync::Once::new();
        GLOBAL.call_once(|| {
            tracing::subscriber::set_global_default(
                tracing_subscriber::fmt()
                    .with_env_filter(tracing_subscriber::EnvFilter::new("custos_server=trace"))
                    .with_writer(|| Routed(CAPTURE.with(|c| c.borrow().clone())))
                    .with_ansi(false)
                    .without_time()
                    .with_target(true)
                    .finish(),
            )
            .unwrap();
        });
        CAPTURE.with(|c| *c.borrow_mut() = Some(self.clone()));
    }

    /// The lines logged since the last call, up to randomness: hex strings,
    /// numbers and the two accounts' names replaced, background tasks
    /// (retention, log publication, key directory) left out, sorted.
    fn take(&self, names: &[&str]) -> Vec<String> {
        let bytes = std::mem::take(&mut *self.0.lock().unwrap());
        let mut lines: Vec<String> = String::from_utf8(bytes)
            .unwrap()
            .lines()
            .filter(|l| {
                ![
                    "retention",
                    "franking_log",
                    "directory",
                    "lawful",
                    "matching: hash list",
                ]
                .iter()
                .any(|t| l.contains(t))
            })
            .map(|l| {
                let mut l = l.to_owned();
                for n in names {
                    l = l.replace(n, "USER");
                }
                let mut out = String::new();
                let mut run = String::new();
                for c in l.chars().chain(std::iter::once(' ')) {
                    if c.is_ascii_hexdigit() {
                        run.push(c);
                        continue;
                    }
                    if !run.is_empty() {
                        out.push_str(
                            if run.len() >= 8 || run.chars().all(|d| d.is_ascii_digit()) {
                                "#"
                            } else {
                                &run
                            },
                        );
                        run.clear();
                    }
                    out.push(c);
                }
                out
            })
            .collect();
        lines.sort();
        lines
    }
}

/// Issue 15 tests 2 and 3 (the same tables, counters and log lines below
/// the threshold), in a runtime whose threads log to one capture.
#[test]
fn below_the_threshold_the_service_learns_nothing_and_at_it_opens_exactly_the_matches() {
    in_captured_runtime(ServerBackend::Sqlite);
}

/// The same on PostgreSQL (the service's tables there).
#[test]
fn below_the_threshold_the_service_learns_nothing_on_postgres_either() {
    if custos_deploy::postgres::skip_without_postgres() {
        return;
    }
    in_captured_runtime(ServerBackend::Postgres);
}

fn in_captured_runtime(backend: ServerBackend) {
    let captured = Captured::default();
    let on_start = captured.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || on_start.attach())
        .build()
        .unwrap();
    captured.attach();
    rt.block_on(below_the_threshold(captured, backend));
}

async fn below_the_threshold(captured: Captured, backend: ServerBackend) {
    let dir = TempDir::new().unwrap();
    let alice_pics: Vec<(Vec<u8>, [u8; 32])> = (1..=u64::from(T)).map(picture).collect();
    let listed: Vec<[u8; 32]> = alice_pics.iter().map(|(_, h)| *h).collect();
    let mut d = deployment_on(&dir, listed.clone(), TableFault::None, backend).await;
    let mut alice = d.register("alice").await.unwrap();
    let mut carol = d.register("carol").await.unwrap();
    let bob = d.register("bob").await.unwrap();
    let to_bob_a = alice.create_conversation(&["bob".into()]).await.unwrap();
    let to_bob_c = carol.create_conversation(&["bob".into()]).await.unwrap();

    // T - 1 listed pictures from alice (real vouchers); T - 1 unlisted
    // pictures from carol whose vouchers are synthetic.
    alice.dangerous_force_synthetic(Some(false));
    carol.dangerous_force_synthetic(Some(true));
    captured.take(&[]);
    for (png, _) in alice_pics.iter().take(usize::from(T) - 1) {
        alice
            .send_with_attachments(&to_bob_a, "pic", std::slice::from_ref(png))
            .await
            .unwrap();
    }
    let alice_lines = captured.take(&["alice", "carol"]);
    for i in 0..u64::from(T) - 1 {
        carol
            .send_with_attachments(&to_bob_c, "pic", &[picture(100 + i).0])
            .await
            .unwrap();
    }
    let carol_lines = captured.take(&["alice", "carol"]);
    // Each device downloaded and checked the table once, for its first
    // picture; later sends used the checked table (the service said 304).
    assert_eq!(alice.matching_table_downloads(), 1);
    assert_eq!(carol.matching_table_downloads(), 1);
    // The service's log lines for T - 1 real matches and for T - 1
    // synthetic vouchers are the same, up to randomness; and there are some
    // (each voucher's check and each batch's commit are logged).
    assert_eq!(alice_lines, carol_lines);
    assert!(
        alice_lines.iter().any(|l| l.contains("voucher")),
        "{alice_lines:#?}"
    );
    // The service's view of both is the same: as many vouchers, as many
    // opened, no threshold, no case, no match; the public figures say nothing.
    assert_eq!(view(&mut d, "alice"), view(&mut d, "carol"));
    assert_eq!(view(&mut d, "alice"), [3, 3, 0, 0, 0]);
    let stats = bob.api().matching_stats().await.unwrap();
    assert_eq!(stats["accounts_matched"], 0);
    assert_eq!(stats["cases_pending"], 0);

    // An unlisted picture with a real voucher does not open.
    alice
        .send_with_attachments(&to_bob_a, "other", &[picture(500).0])
        .await
        .unwrap();
    assert_eq!(view(&mut d, "alice"), [4, 3, 0, 0, 0]);

    // The T-th listed picture, decoded and encoded again: the threshold is
    // reached and exactly the T real matches open. (Not a lossy copy: under a
    // random table a JPEG copy misses now and then, by design; how often
    // modified copies match is measured in custos-psi's matching tests.)
    let again =
        synthetic::png(&custos_media::decode(&alice_pics[usize::from(T) - 1].0).unwrap()).unwrap();
    alice
        .send_with_attachments(&to_bob_a, "last", &[again])
        .await
        .unwrap();
    settled(&mut d, "alice", [5, 4, 1, 1, 4]).await;
    assert_eq!(view(&mut d, "carol"), [3, 3, 0, 0, 0]);

    // Carol's synthetic vouchers never become matches, however many.
    carol
        .send_with_attachments(&to_bob_c, "more", &[picture(200).0])
        .await
        .unwrap();
    assert_eq!(view(&mut d, "carol"), [4, 4, 0, 0, 0]);

    // Past the threshold a synthetic voucher of alice's opens no match; a
    // further listed picture joins the case.
    alice.dangerous_force_synthetic(Some(true));
    alice
        .send_with_attachments(&to_bob_a, "synthetic", &[picture(600).0])
        .await
        .unwrap();
    assert_eq!(view(&mut d, "alice"), [6, 5, 1, 1, 4]);
    // A further listed picture joins the case (past the threshold its
    // voucher opens directly).
    alice.dangerous_force_synthetic(Some(false));
    alice
        .send_with_attachments(&to_bob_a, "again", &[alice_pics[0].0.clone()])
        .await
        .unwrap();
    settled(&mut d, "alice", [7, 6, 1, 1, 5]).await;

    // Review: bob moderates. The case holds the hashes and derivatives.
    d.add_moderator("bob").await.unwrap();
    let cases = bob.api().matching_cases().await.unwrap();
    assert_eq!(cases.as_array().unwrap().len(), 1);
    assert_eq!(cases[0]["account"], "alice");
    let id = cases[0]["id"].as_i64().unwrap();
    let case = bob.api().matching_case(id).await.unwrap();
    let matches = case["matches"].as_array().unwrap();
    assert_eq!(matches.len(), usize::from(T) + 1);
    for (m, h) in matches.iter().zip(&listed).take(usize::from(T) - 1) {
        assert_eq!(m["hash"], hex::encode(h));
    }
    // Carol, not a moderator, cannot see the queue.
    assert!(matches!(
        carol.api().matching_cases().await,
        Err(ApiError::Refused { status: 403, .. })
    ));
    let decided = bob
        .api()
        .resolve_matching_case(id, "confirm", "reviewed")
        .await
        .unwrap();
    let package = &decided["package"];
    assert_eq!(package["format"], "custos-clearinghouse-package/v1");
    assert_eq!(package["account"], "alice");
    assert_eq!(
        package["matches"].as_array().unwrap().len(),
        usize::from(T) + 1
    );
    assert!(package["log_proofs"]["hash_list_root"]["index"].is_u64());
    // Decided once only.
    assert!(matches!(
        bob.api().resolve_matching_case(id, "dismiss", "").await,
        Err(ApiError::Refused { status: 409, .. })
    ));
    let stats = bob.api().matching_stats().await.unwrap();
    assert_eq!(stats["accounts_matched"], 1);
    assert_eq!(stats["cases_confirmed"], 1);
    assert_eq!(stats["threshold"], T);
    // The figures are public in the log (statement kind 15), and the audit
    // counts them: one account matched, one case opened and confirmed.
    let provider = d.keys().provider.name().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let mut figures = custos_verify::figures::Figures::new(d.manifest(), Default::default());
        custos_tlog::audit::audit_streaming(d.log(), d.manifest(), &mut figures, |_, _| {})
            .await
            .unwrap();
        let f = figures.finish(custos_clock::Clock::now_millis(&**d.clock()) / 1000);
        assert!(f.flags.refused_statements.is_empty(), "{:?}", f.flags);
        if let Some(m) = f.matching.get(&provider)
            && m.cases_confirmed == 1
        {
            assert_eq!((m.accounts_matched, m.cases_opened), (1, 1));
            assert_eq!((m.cases_dismissed, m.cases_pending), (0, 0));
            assert!(m.statements >= 1);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{:?}", f.matching);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    d.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_refuse_a_table_not_in_the_log_and_one_with_a_one_source_entry() {
    for fault in [TableFault::Unlogged, TableFault::OneSource] {
        let dir = TempDir::new().unwrap();
        let (png, hash) = picture(1);
        let d = deployment(&dir, vec![hash, picture(2).1], fault).await;
        let mut alice = d.register("alice").await.unwrap();
        d.register("bob").await.unwrap();
        let conv = alice.create_conversation(&["bob".into()]).await.unwrap();
        let e = alice
            .send_with_attachments(&conv, "pic", &[png])
            .await
            .unwrap_err();
        match (fault, e) {
            (TableFault::Unlogged, DeviceError::Matching(MatchingError::NotLogged(_))) => {}
            (
                TableFault::OneSource,
                DeviceError::Matching(MatchingError::Table(custos_psi::TableError::OneSource {
                    ..
                })),
            ) => {}
            (f, e) => panic!("{f:?}: unexpected {e:?}"),
        }
        // Nothing was uploaded.
        let blobs: i64 = db(&d)
            .query_row("SELECT COUNT(*) FROM blobs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(blobs, 0);
        d.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_vouchers_are_refused_with_their_code_and_nothing_is_stored() {
    let dir = TempDir::new().unwrap();
    let d = deployment(&dir, vec![picture(1).1], TableFault::None).await;
    let alice = d.register("alice").await.unwrap();
    let carol = d.register("carol").await.unwrap();
    let locator = alice.api().upload_blob(vec![1, 2, 3]).await.unwrap();
    let code = |e: ApiError| match e {
        ApiError::Refused { status, code, .. } => (status, code),
        other => panic!("expected a refusal, got {other:?}"),
    };
    let len = custos_psi::voucher_len(custos_psi::DEFAULT_SLOTS);
    // Garbage, a wrong length, a wrong version, a non-canonical point.
    let mut wrong_version = vec![0u8; len];
    wrong_version[0] = 2;
    let mut bad_point = vec![0xffu8; len];
    bad_point[0] = 1;
    bad_point[33] = custos_psi::DEFAULT_SLOTS;
    for bytes in [
        vec![],
        vec![1u8; 10],
        vec![1u8; len + 1],
        wrong_version,
        bad_point,
    ] {
        let e = alice
            .api()
            .upload_voucher(&locator, bytes)
            .await
            .unwrap_err();
        assert_eq!(code(e), (400, "bad_voucher".into()));
    }
    // A well-formed voucher made against another table.
    let mut other_table = vec![0u8; len];
    other_table[0] = 1;
    other_table[33] = custos_psi::DEFAULT_SLOTS;
    let g = curve25519_point();
    for s in 0..usize::from(custos_psi::DEFAULT_SLOTS) {
        other_table[34 + s * 128..34 + s * 128 + 32].copy_from_slice(&g);
    }
    let e = alice
        .api()
        .upload_voucher(&locator, other_table.clone())
        .await
        .unwrap_err();
    assert_eq!(code(e), (409, "wrong_table".into()));
    // Someone else's blob, or one that does not exist.
    let mut right_table = other_table.clone();
    let root = custos_psi::BlindedTable::decode(&alice.api().psi_table().await.unwrap())
        .unwrap()
        .root();
    right_table[1..33].copy_from_slice(&root);
    let e = carol
        .api()
        .upload_voucher(&locator, right_table.clone())
        .await
        .unwrap_err();
    assert_eq!(code(e), (404, "unknown_blob".into()));
    // Nothing stored by any refusal.
    let count = |d: &Deployment| -> i64 {
        db(d)
            .query_row("SELECT COUNT(*) FROM psi_vouchers", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(count(&d), 0);
    // The right table and the owner: stored once; a second is refused.
    alice
        .api()
        .upload_voucher(&locator, right_table.clone())
        .await
        .unwrap();
    let e = alice
        .api()
        .upload_voucher(&locator, right_table)
        .await
        .unwrap_err();
    assert_eq!(code(e), (409, "duplicate_voucher".into()));
    assert_eq!(count(&d), 1);
    d.shutdown().await.unwrap();
}

/// The ristretto255 basepoint's canonical encoding.
fn curve25519_point() -> [u8; 32] {
    hex::decode("e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76")
        .unwrap()
        .try_into()
        .unwrap()
}

/// The reconstruction finding (issue 15): an account with at least `T`
/// opened vouchers whose shares do not interpolate (synthetic ones, which
/// any device can make) once made the service try up to 2,000 subsets for
/// each further opened voucher, inside the voucher writer's transaction,
/// holding up every other account's voucher. Now the reconstruction runs
/// beside the writer, at most once per account and period: another
/// account's voucher is answered within a bound while one account floods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_synthetic_vouchers_does_not_hold_up_another_accounts_voucher() {
    use custos_psi::{AccountKey, InnerPayload, make_voucher};
    use rand_core::OsRng;
    use std::time::{Duration, Instant};

    const STREAMS: usize = 16;
    const PER_STREAM: usize = 6;
    let dir = TempDir::new().unwrap();
    let mut d = deployment(&dir, vec![picture(1).1], TableFault::None).await;
    let mut mallory = d.register("mallory").await.unwrap();
    let mut alice = d.register("alice").await.unwrap();
    let (table, t, _) = mallory.checked_table().await.unwrap().unwrap();
    let key = AccountKey::generate(t, &mut OsRng).unwrap();
    let payload = InnerPayload {
        hash: [7; 32],
        derivative: [0; custos_psi::DERIVATIVE_LEN],
    };
    // Mallory's first T + 4 synthetic vouchers, one by one: from now on
    // every further opened voucher of hers is one the old code reconstructed
    // for (2,000 subsets each).
    let api = mallory.api().clone();
    let mut warm = Vec::new();
    for i in 0..usize::from(t) + 4 {
        let locator = api.upload_blob(vec![i as u8; 16]).await.unwrap();
        let v = make_voucher(&table, &key, &payload, true, &mut OsRng).encode();
        warm.push((locator, v));
    }
    for (locator, v) in warm {
        api.upload_voucher(&locator, v).await.unwrap();
    }
    // Then a flood on many connections at once.
    let mut flood = Vec::new();
    for s in 0..STREAMS {
        let mut jobs = Vec::new();
        for i in 0..PER_STREAM {
            let locator = api
                .upload_blob(vec![(s * PER_STREAM + i) as u8, 1, 2, 3])
                .await
                .unwrap();
            jobs.push((
                locator,
                make_voucher(&table, &key, &payload, true, &mut OsRng).encode(),
            ));
        }
        flood.push(jobs);
    }
    let (alice_table, _, _) = alice.checked_table().await.unwrap().unwrap();
    let alice_key = AccountKey::generate(t, &mut OsRng).unwrap();
    let alice_locator = alice.api().upload_blob(vec![9; 64]).await.unwrap();
    let alice_voucher =
        make_voucher(&alice_table, &alice_key, &payload, false, &mut OsRng).encode();
    let started = Instant::now();
    let tasks: Vec<_> = flood
        .into_iter()
        .map(|jobs| {
            let api = api.clone();
            tokio::spawn(async move {
                for (locator, v) in jobs {
                    api.upload_voucher(&locator, v).await.unwrap();
                }
            })
        })
        .collect();
    // Alice's voucher once the flood is under way.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let sent = Instant::now();
    alice
        .api()
        .upload_voucher(&alice_locator, alice_voucher)
        .await
        .unwrap();
    let alice_took = sent.elapsed();
    for task in tasks {
        task.await.unwrap();
    }
    let flood_took = started.elapsed();
    // On the old code alice waited for the reconstructions of every opened
    // voucher committed before hers and with hers (seconds here); now only
    // for a commit.
    assert!(
        alice_took < Duration::from_millis(1500),
        "alice's voucher took {alice_took:?} during the flood (whole flood {flood_took:?})"
    );
    // Mallory's vouchers are all stored; she reached no threshold.
    let stored = view(&mut d, "mallory");
    assert_eq!(
        stored[0] as usize,
        usize::from(t) + 4 + STREAMS * PER_STREAM
    );
    assert_eq!(stored[2..], [0, 0, 0]);
    d.shutdown().await.unwrap();
}

/// Issue 15: the device keeps the checked table across processes (in its
/// store, by root): a second process neither downloads it again (the
/// service answers 304 to its root) nor re-verifies its signatures; a kept
/// table whose root this deployment's log does not show is refused, and the
/// service's table is checked in full instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_uses_the_kept_table_and_a_kept_table_not_in_the_log_is_refused() {
    use custos_client::device::Device;
    let dir = TempDir::new().unwrap();
    let mut d = deployment(&dir, vec![picture(1).1], TableFault::None).await;
    let mut alice = d.register("alice").await.unwrap();
    d.register("bob").await.unwrap();
    let conv = alice.create_conversation(&["bob".into()]).await.unwrap();
    alice
        .send_with_attachments(&conv, "pic", &[picture(2).0])
        .await
        .unwrap();
    assert_eq!(alice.matching_table_downloads(), 1);
    let home = d.dir().join("users").join("alice");
    drop(alice);
    let kept = |home: &std::path::Path| -> Vec<u8> {
        rusqlite::Connection::open(home.join("device.db"))
            .unwrap()
            .query_row("SELECT value FROM meta WHERE key = 'psi/table'", [], |r| {
                r.get(0)
            })
            .unwrap()
    };
    let served = kept(&home);

    // A second process: no download, the kept table's vouchers are taken.
    let mut alice = Device::open(&home, d.clock().clone()).await.unwrap();
    alice
        .send_with_attachments(&conv, "pic", &[picture(3).0])
        .await
        .unwrap();
    assert_eq!(alice.matching_table_downloads(), 0);
    drop(alice);
    assert_eq!(view(&mut d, "alice")[0], 2);

    // Another deployment's table (its root is not in this log) planted as
    // the kept one: refused on load; the service's table is fetched and
    // checked, and kept instead.
    let dir2 = TempDir::new().unwrap();
    let d2 = deployment(&dir2, vec![picture(1).1], TableFault::None).await;
    let other = d2
        .register("x")
        .await
        .unwrap()
        .api()
        .psi_table()
        .await
        .unwrap();
    d2.shutdown().await.unwrap();
    assert_ne!(other, served);
    let planted = rusqlite::Connection::open(home.join("device.db"))
        .unwrap()
        .execute(
            "UPDATE meta SET value = ?1 WHERE key = 'psi/table'",
            [&other],
        )
        .unwrap();
    assert_eq!(planted, 1);
    let mut alice = Device::open(&home, d.clock().clone()).await.unwrap();
    alice
        .send_with_attachments(&conv, "pic", &[picture(4).0])
        .await
        .unwrap();
    assert_eq!(alice.matching_table_downloads(), 1);
    drop(alice);
    assert_eq!(kept(&home), served);
    assert_eq!(view(&mut d, "alice")[0], 3);
    d.shutdown().await.unwrap();
}

/// A message with several attachments sends their vouchers in one request
/// (`POST /v1/vouchers`); a batch with one malformed voucher, or one blob
/// twice, is refused whole and stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_attachments_send_their_vouchers_in_one_batch_and_a_bad_batch_stores_nothing() {
    use custos_psi::{AccountKey, InnerPayload, make_voucher};
    use rand_core::OsRng;
    let dir = TempDir::new().unwrap();
    let mut d = deployment(&dir, vec![picture(1).1], TableFault::None).await;
    let mut alice = d.register("alice").await.unwrap();
    d.register("bob").await.unwrap();
    let conv = alice.create_conversation(&["bob".into()]).await.unwrap();
    alice
        .send_with_attachments(
            &conv,
            "pics",
            &[picture(2).0, picture(3).0, b"a file".to_vec()],
        )
        .await
        .unwrap();
    assert_eq!(view(&mut d, "alice")[0], 3);

    let (table, t, _) = alice.checked_table().await.unwrap().unwrap();
    let key = AccountKey::generate(t, &mut OsRng).unwrap();
    let payload = InnerPayload {
        hash: [3; 32],
        derivative: [0; custos_psi::DERIVATIVE_LEN],
    };
    let voucher = || make_voucher(&table, &key, &payload, false, &mut OsRng).encode();
    let l1 = alice.api().upload_blob(vec![1, 2]).await.unwrap();
    let l2 = alice.api().upload_blob(vec![3, 4]).await.unwrap();
    let code = |e: ApiError| match e {
        ApiError::Refused { status, code, .. } => (status, code),
        other => panic!("expected a refusal, got {other:?}"),
    };
    for bad in [
        vec![(l1.clone(), voucher()), (l2.clone(), vec![1u8; 10])],
        vec![(l1.clone(), voucher()), (l1.clone(), voucher())],
    ] {
        let e = alice.api().upload_vouchers(&bad).await.unwrap_err();
        assert_eq!(code(e), (400, "bad_voucher".into()));
        assert_eq!(view(&mut d, "alice")[0], 3);
    }
    alice
        .api()
        .upload_vouchers(&[(l1, voucher()), (l2, voucher())])
        .await
        .unwrap();
    assert_eq!(view(&mut d, "alice")[0], 5);
    d.shutdown().await.unwrap();
}
