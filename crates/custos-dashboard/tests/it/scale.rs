//! Measurements for BENCHMARKS.md (ignored by default: minutes, not
//! seconds): a log of 100,000 entries appended at the log's benchmark rate
//! (batches of 256 over HTTP) while a dashboard follows it; how far behind
//! the dashboard ends, its own replay rate from scratch, and the page's
//! load time in Chromium (navigation to verified and rendered).
//!
//! `cargo test --release -p custos-dashboard --test it scale -- --ignored --nocapture`

use std::time::{Duration, Instant};

use custos_dashboard::{DashboardConfig, spawn_dashboard};
use custos_deploy::{CustodianMode, Deployment, DeploymentSpec};
use custos_wire::ConversationId;
use custos_wire::manifest::Role;
use custos_wire::statement::{KeyPurpose, ParticipantKey, SignedStatement, Statement};

const ENTRIES: u64 = 100_000;
const BATCH: u64 = 256;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn scale_100k_entries() {
    let dir = tempfile::tempdir().unwrap();
    let spec = DeploymentSpec::new("scale.test", custos_clock::system())
        .custodians(3, 2, CustodianMode::KeysOnly)
        .without_server();
    let d = Deployment::start(dir.path(), spec).await.unwrap();
    // A few warrants among the entries, as in a real log.
    for i in 0..20u8 {
        let w = d.sign_warrant(&[ConversationId([i; 16])], 1, 1).unwrap();
        d.submit_warrant(&w).await.unwrap();
    }
    let provider = d.keys().provider.name().to_owned();
    let key = d.keys().provider.signing_key().clone();
    let start_size = d.wait_witnessed(1).await.unwrap();
    let statements: Vec<SignedStatement> = (0..ENTRIES)
        .map(|i| {
            let st = Statement::ParticipantKey(ParticipantKey {
                name: provider.clone(),
                role: Role::Provider,
                purpose: KeyPurpose::Signing,
                public_key: key.verifying_key().to_bytes().to_vec(),
                valid_from: 1_700_000_000 + i,
            });
            SignedStatement::sign(&st, &key).unwrap()
        })
        .collect();

    let mut config = DashboardConfig::new(d.log_url(), d.manifest().clone());
    config.poll_interval = Duration::from_millis(100);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let following = spawn_dashboard(listener, config.clone()).await.unwrap();

    // Append at the log's benchmark rate: 64-statement... here 256 per
    // request, 4 requests in flight.
    let t = Instant::now();
    let log = d.log().clone();
    let mut chunks = statements.chunks(BATCH as usize);
    loop {
        let mut tasks = Vec::new();
        for _ in 0..4 {
            if let Some(c) = chunks.next() {
                let (log, c) = (log.clone(), c.to_vec());
                tasks.push(tokio::spawn(
                    async move { log.submit_batch(&c).await.unwrap() },
                ));
            }
        }
        if tasks.is_empty() {
            break;
        }
        for task in tasks {
            task.await.unwrap();
        }
    }
    let append = t.elapsed();
    let final_size = d.wait_witnessed(start_size + ENTRIES).await.unwrap();
    let witnessed = t.elapsed();
    while following.shared.status().tree_size < final_size {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let caught_up = t.elapsed();
    println!(
        "append: {ENTRIES} entries in {:.2} s = {:.0} entries/s; witnessed after {:.2} s; \
         the following dashboard at {final_size} after {:.2} s (lag {:.2} s after the witnessed checkpoint)",
        append.as_secs_f64(),
        ENTRIES as f64 / append.as_secs_f64(),
        witnessed.as_secs_f64(),
        caught_up.as_secs_f64(),
        (caught_up - witnessed).as_secs_f64()
    );

    // A fresh dashboard replays the whole log.
    let t = Instant::now();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fresh = spawn_dashboard(listener, config).await.unwrap();
    while fresh.shared.status().tree_size < final_size {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let replay = t.elapsed();
    println!(
        "fresh replay: {final_size} entries in {:.2} s = {:.0} entries/s",
        replay.as_secs_f64(),
        final_size as f64 / replay.as_secs_f64()
    );
    assert_eq!(fresh.shared.figures().totals.warrants, 20);

    let profile = tempfile::tempdir().unwrap();
    let Some((mut browser, task)) = crate::browser::chromium(profile.path()).await else {
        return;
    };
    let mut loads = Vec::new();
    for _ in 0..5 {
        let page = crate::browser::open(&browser, &fresh.url()).await;
        let ms: String = page
            .evaluate("document.body.dataset.loadMs")
            .await
            .unwrap()
            .into_value()
            .unwrap();
        loads.push(ms.parse::<u64>().unwrap());
        let f = crate::browser::figures(&page).await;
        assert_eq!(
            f.get("totals.warrants"),
            Some(&("20".to_owned(), "yes".to_owned()))
        );
        page.close().await.unwrap();
    }
    loads.sort_unstable();
    println!(
        "page load with {final_size} entries (navigation to verified and rendered), 5 loads: {loads:?} ms"
    );
    assert!(loads[2] < 1000, "median page load {} ms", loads[2]);
    browser.close().await.unwrap();
    let _ = browser.wait().await;
    task.abort();
    d.shutdown().await.unwrap();
}
