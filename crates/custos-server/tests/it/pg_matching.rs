//! Known-content detection on PostgreSQL with two real servers on one
//! database (the test kit's deployment: log, witnesses, PostgreSQL, the
//! first server with the test list; a second `custos_server::serve` on the
//! same database, table and log): vouchers split across the servers count
//! toward one account and open exactly one case, below the threshold
//! nothing opens (real or synthetic), a case decided on one server is
//! decided on the other, and the figures both servers log never go
//! backwards. Without PostgreSQL the test prints SKIPPED
//! (`CUSTOS_REQUIRE_POSTGRES=1` makes that a failure).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use custos_clock::{SimulatedClock, dangerous};
use custos_deploy::matching::{MatchingSpec, TableFault};
use custos_deploy::{CustodianMode, Deployment, DeploymentSpec, ServerBackend, ServerSpec};
use custos_psi::{AccountKey, BlindedTable, CheckedTable, InnerPayload, make_voucher};
use custos_server::FrankingPolicy;
use custos_wire::manifest::Participant;
use custos_wire::statement::Statement;
use rand_core::{OsRng, RngCore};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use crate::common::{START_MS, TestServer, User, test_config};

const T: u16 = 3;

/// The deployment (server A inside), server B, and what the test reads.
struct Pair {
    d: Deployment,
    b: TestServer,
    a_url: String,
    db: PgPool,
    table: CheckedTable,
    listed: Vec<[u8; 32]>,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

/// A PostgreSQL deployment matching against `listed`, and a second server
/// on its database (the provider's franking key, the same table and log).
async fn pair(clock: &SimulatedClock) -> Option<Pair> {
    if custos_deploy::postgres::skip_without_postgres() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let listed: Vec<[u8; 32]> = (0..3)
        .map(|_| {
            let mut h = [0u8; 32];
            OsRng.fill_bytes(&mut h);
            h
        })
        .collect();
    let spec = DeploymentSpec::new("test", clock.shared())
        .custodians(0, 0, CustodianMode::KeysOnly)
        .with_server(ServerSpec {
            backend: ServerBackend::Postgres,
            ..ServerSpec::unlimited()
        })
        .with_matching(MatchingSpec {
            threshold: T,
            synthetic_rate_ppm: 0,
            listed: listed.clone(),
            fault: TableFault::None,
        });
    let mut d = Deployment::start(&dir.path().join("deploy"), spec)
        .await
        .unwrap();
    let url = d.postgres_mut().unwrap().url();
    let a = d.server().unwrap();
    let a_url = a.url.clone();
    let dir_b = tempfile::tempdir().unwrap();
    for file in [
        custos_server::franking::FRANKING_KEY_FILE,
        custos_server::franking_log::PROOF_FILE,
    ] {
        let from = a.data.join(file);
        if from.exists() {
            std::fs::copy(from, dir_b.path().join(file)).unwrap();
        }
    }
    let franking = Arc::new(FrankingPolicy::open(dir_b.path(), clock.shared()).unwrap());
    let mut config = test_config(dir_b.path())
        .with_database(url.clone())
        .with_franking(franking)
        .with_franking_log(d.franking_log_config());
    config.matching = a.matching.clone();
    config.matching_figures_every = Some(Duration::from_millis(200));
    let b = TestServer::start_with(config, clock.clone()).await;
    let bytes = reqwest::get(format!("{a_url}/v1/psi/table"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let t = BlindedTable::decode(&bytes).unwrap();
    let orgs = t.organisations();
    let logged = t.logged();
    let table = t.check(&logged, (&orgs.0, &orgs.1)).unwrap();
    let db = PgPool::connect(&url).await.unwrap();
    Some(Pair {
        d,
        b,
        a_url,
        db,
        table,
        listed,
        _dirs: (dir, dir_b),
    })
}

/// The same user, talking to the server at `base`.
fn via(u: &User, base: &str) -> User {
    User {
        name: u.name.clone(),
        key: u.key.clone(),
        token: u.token.clone(),
        base: base.to_owned(),
        http: reqwest::Client::new(),
        mls: u.mls.clone(),
    }
}

/// Uploads a blob and its voucher for a picture with `hash` through `u`'s
/// server: real (a share of `key`) or synthetic.
async fn send(u: &User, table: &CheckedTable, key: &AccountKey, hash: [u8; 32], synthetic: bool) {
    let r = u
        .http
        .post(format!("{}/v1/blobs", u.base))
        .bearer_auth(&u.token)
        .body(vec![1u8; 64])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let body: serde_json::Value = r.json().await.unwrap();
    let locator = body["locator"].as_str().unwrap().to_owned();
    let payload = InnerPayload {
        hash,
        derivative: [7; custos_psi::DERIVATIVE_LEN],
    };
    let voucher = make_voucher(table, key, &payload, synthetic, &mut OsRng).encode();
    let r = u
        .http
        .post(format!("{}/v1/blobs/{locator}/voucher", u.base))
        .bearer_auth(&u.token)
        .body(voucher)
        .send()
        .await
        .unwrap();
    let st = r.status();
    if st != StatusCode::CREATED {
        panic!("voucher: {st} {}", r.text().await.unwrap());
    }
}

/// What the service holds about `account`: vouchers, opened ones, keys,
/// cases, matches.
async fn view(db: &PgPool, account: &str) -> [i64; 5] {
    let (v, o, k, c, m): (i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM psi_vouchers v WHERE v.account = a.id), \
         (SELECT COUNT(*) FROM psi_vouchers v WHERE v.account = a.id AND v.share IS NOT NULL), \
         (SELECT COUNT(*) FROM psi_accounts p WHERE p.account = a.id), \
         (SELECT COUNT(*) FROM psi_cases c WHERE c.account = a.id), \
         (SELECT COUNT(*) FROM psi_matches m JOIN psi_cases c ON c.id = m.case_id \
          WHERE c.account = a.id) \
         FROM accounts a WHERE a.name = $1",
    )
    .bind(account)
    .fetch_one(db)
    .await
    .unwrap();
    [v, o, k, c, m]
}

/// `view` once it is `expected` (at most 20 s); never more than one case
/// on the way.
async fn settled(db: &PgPool, account: &str, expected: [i64; 5]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = view(db, account).await;
        assert!(now[3] <= 1, "{account}: a second case {now:?}");
        if now == expected || Instant::now() > deadline {
            assert_eq!(now, expected, "{account}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every matching figures statement in the log, in log order.
#[derive(Default)]
struct FiguresSink(Vec<([u32; 4], u64)>);

impl custos_tlog::audit::AuditSink for FiguresSink {
    fn statement(&mut self, _: u64, _: &Participant, statement: &Statement) {
        if let Statement::MatchingCases(c) = statement {
            self.0.push((
                [
                    c.accounts_matched,
                    c.cases_opened,
                    c.cases_confirmed,
                    c.cases_dismissed,
                ],
                c.as_of,
            ));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_match_as_one() {
    let clock = dangerous::simulated(START_MS);
    let Some(p) = pair(&clock).await else {
        return;
    };
    let (a, b) = (p.a_url.as_str(), p.b.url.as_str());
    let alice = User::register(&p.b, "alice").await;
    let carol = User::register(&p.b, "carol").await;
    let dave = User::register(&p.b, "dave").await;
    let moderator = User::register(&p.b, "mod").await;
    let keys: Vec<Arc<AccountKey>> = (0..3)
        .map(|_| Arc::new(AccountKey::generate(T, &mut OsRng).unwrap()))
        .collect();

    // Below the threshold: T - 1 real matches of alice's split across the
    // servers, T + 1 synthetic vouchers of carol's (past T, but they never
    // give a key): nothing opens.
    send(&via(&alice, a), &p.table, &keys[0], p.listed[0], false).await;
    send(&via(&alice, b), &p.table, &keys[0], p.listed[1], false).await;
    for i in 0..=T {
        let server = if i % 2 == 0 { a } else { b };
        send(&via(&carol, server), &p.table, &keys[1], [9; 32], true).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(view(&p.db, "alice").await, [2, 2, 0, 0, 0]);
    assert_eq!(view(&p.db, "carol").await, [4, 4, 0, 0, 0]);
    let (_, stats) = via(&alice, a)
        .get_json("/v1/moderation/matches-stats")
        .await;
    assert_eq!(stats["accounts_matched"], 0, "{stats}");

    // The T-th through B: the threshold, one case with the T matches.
    send(&via(&alice, b), &p.table, &keys[0], p.listed[2], false).await;
    settled(&p.db, "alice", [3, 3, 1, 1, 3]).await;

    // Dave's vouchers all at once through both servers: both servers'
    // workers look at him, one case opens, and every match joins it.
    let mut tasks = Vec::new();
    for i in 0..6usize {
        let u = via(&dave, if i % 2 == 0 { a } else { b });
        let (table, key, hash) = (p.table.clone(), keys[2].clone(), p.listed[i % 3]);
        tasks.push(tokio::spawn(async move {
            send(&u, &table, &key, hash, false).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    settled(&p.db, "dave", [6, 6, 1, 1, 6]).await;
    assert_eq!(view(&p.db, "carol").await, [4, 4, 0, 0, 0]);

    // Review: a case decided through B is decided on A.
    p.d.add_moderator("mod").await.unwrap();
    let (st, cases) = via(&moderator, a).get_json("/v1/moderation/matches").await;
    assert_eq!(st, StatusCode::OK, "{cases}");
    let cases = cases.as_array().unwrap().clone();
    assert_eq!(cases.len(), 2, "{cases:?}");
    let alice_case = cases.iter().find(|c| c["account"] == "alice").unwrap()["id"]
        .as_i64()
        .unwrap();
    let dave_case = cases.iter().find(|c| c["account"] == "dave").unwrap()["id"]
        .as_i64()
        .unwrap();
    let (st, decided) = via(&moderator, b)
        .post_json(
            &format!("/v1/moderation/matches/{alice_case}/resolve"),
            json!({"decision": "confirm", "note": "reviewed"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{decided}");
    assert_eq!(decided["package"]["account"], "alice");
    assert_eq!(
        decided["package"]["matches"].as_array().unwrap().len(),
        usize::from(T)
    );
    let (st, shown) = via(&moderator, a)
        .get_json(&format!("/v1/moderation/matches/{alice_case}"))
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(shown["case"]["status"], "confirmed");
    assert_eq!(shown["case"]["moderator"], "mod");
    assert_eq!(shown["matches"].as_array().unwrap().len(), usize::from(T));
    let (st, again) = via(&moderator, a)
        .post_json(
            &format!("/v1/moderation/matches/{alice_case}/resolve"),
            json!({"decision": "dismiss", "note": ""}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{again}");
    // Dave's case decided on both servers at once: decided once.
    let mut tasks = Vec::new();
    for server in [a, b, a, b] {
        let u = via(&moderator, server);
        tasks.push(tokio::spawn(async move {
            u.post_json(
                &format!("/v1/moderation/matches/{dave_case}/resolve"),
                json!({"decision": "dismiss", "note": ""}),
            )
            .await
            .0
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            StatusCode::OK => ok += 1,
            StatusCode::CONFLICT => {}
            other => panic!("{other}"),
        }
    }
    assert_eq!(ok, 1, "decided once");
    let (_, stats) = via(&alice, b)
        .get_json("/v1/moderation/matches-stats")
        .await;
    assert_eq!(
        [
            &stats["accounts_matched"],
            &stats["cases_opened"],
            &stats["cases_confirmed"],
            &stats["cases_dismissed"]
        ],
        [&json!(2), &json!(2), &json!(1), &json!(1)],
        "{stats}"
    );

    // The figures in the log: both servers log every 200 ms; the
    // statements never go backwards (figures or time), each says something
    // new, and the last has every figure.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        clock.advance_millis(1_000);
        let mut sink = FiguresSink::default();
        custos_tlog::audit::audit_streaming(p.d.log(), p.d.manifest(), &mut sink, |_, _| {})
            .await
            .unwrap();
        for w in sink.0.windows(2) {
            let ((before, at0), (after, at1)) = (w[0], w[1]);
            assert!(at1 >= at0, "time went back: {:?}", sink.0);
            assert!(
                before.iter().zip(&after).all(|(x, y)| x <= y),
                "a figure went down: {:?}",
                sink.0
            );
            assert_ne!(before, after, "the same figures twice: {:?}", sink.0);
        }
        if sink.0.last().map(|l| l.0) == Some([2, 2, 1, 1]) {
            break;
        }
        assert!(Instant::now() < deadline, "{:?}", sink.0);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut figures = custos_verify::figures::Figures::new(p.d.manifest(), Default::default());
    custos_tlog::audit::audit_streaming(p.d.log(), p.d.manifest(), &mut figures, |_, _| {})
        .await
        .unwrap();
    let f = figures.finish(custos_clock::Clock::now_millis(&**p.d.clock()) / 1000);
    assert!(f.flags.refused_statements.is_empty(), "{:?}", f.flags);
    p.b.stop().await;
    p.d.shutdown().await.unwrap();
}
