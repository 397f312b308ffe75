//! A log that shows the dashboard a second history: after the dashboard
//! adopted the real checkpoint of size N, a server in front of the log
//! serves another root for size N, signed with the log's key and cosigned
//! with both witnesses' keys (the log and its witnesses colluding, or their
//! keys stolen). Signatures and quorum are fine; only consistency with what
//! the dashboard saw before betrays it. The dashboard must report the fork
//! and stop following.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::Uri;
use axum::response::IntoResponse;
use custos_dashboard::{DashboardConfig, spawn_dashboard};
use custos_deploy::{CustodianMode, Deployment, DeploymentSpec};
use custos_tlog::Hash;
use custos_tlog::checkpoint::sign_checkpoint;
use signed_note::{Note, Signer};

#[derive(Clone)]
struct Evil {
    upstream: String,
    forged: Arc<Mutex<Option<Vec<u8>>>>,
}

async fn forward(State(e): State<Evil>, uri: Uri) -> impl IntoResponse {
    if uri.path() == "/checkpoint"
        && let Some(note) = e.forged.lock().unwrap().clone()
    {
        return Bytes::from(note).into_response();
    }
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let resp = reqwest::get(format!("{}{path}", e.upstream)).await.unwrap();
    let status = axum::http::StatusCode::from_u16(resp.status().as_u16()).unwrap();
    (status, resp.bytes().await.unwrap()).into_response()
}

/// A checkpoint for (`size`, `root`) with the log's signature and every
/// witness's cosignature, made with the deployment's keys.
fn forge(d: &Deployment, clock: &custos_clock::SimulatedClock, size: u64, root: Hash) -> Vec<u8> {
    let keys = d.keys();
    let note =
        sign_checkpoint(&keys.log.log_signer().unwrap(), keys.log.name(), size, root).unwrap();
    let mut note = Note::from_bytes(&note).unwrap();
    let cosigners: Vec<_> = keys
        .witnesses
        .iter()
        .map(|w| w.cosigner(clock.shared()).unwrap())
        .collect();
    let signers: Vec<&dyn Signer> = cosigners.iter().map(|c| c as &dyn Signer).collect();
    note.add_sigs(&signers).unwrap();
    let forged = note.to_bytes();
    d.trust_policy()
        .unwrap()
        .verify_checkpoint(&forged)
        .expect("the forged checkpoint carries the log's signature and the quorum");
    forged
}

/// Starts a server in front of the log that serves `forged` as the
/// checkpoint while it is set; its URL.
async fn evil(d: &Deployment) -> (Evil, String) {
    let evil = Evil {
        upstream: d.log_url().to_owned(),
        forged: Arc::new(Mutex::new(None)),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .fallback(forward)
        .with_state(evil.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (evil, url)
}

async fn follow(
    config: DashboardConfig,
    done: impl Fn(&custos_dashboard::api::Status) -> bool,
) -> custos_dashboard::DashboardHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let h = spawn_dashboard(listener, config).await.unwrap();
    for _ in 0..400 {
        if done(&h.shared.status()) {
            return h;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the dashboard never got there: {:?}", h.shared.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_dashboard_remembers_what_it_saw() {
    let dir = tempfile::tempdir().unwrap();
    let clock = custos_clock::dangerous::simulated(1_773_000_000_000);
    let spec = DeploymentSpec::new("restart.test", clock.shared())
        .custodians(3, 2, CustodianMode::KeysOnly)
        .without_server();
    let d = Deployment::start(&dir.path().join("d"), spec)
        .await
        .unwrap();
    let w = d
        .sign_warrant(&[custos_wire::ConversationId([3; 16])], 1, 1)
        .unwrap();
    let sub = d.submit_warrant(&w).await.unwrap();
    let size = d.wait_witnessed(sub.index + 1).await.unwrap();
    let (evil, url) = evil(&d).await;
    let state = dir.path().join("dashboard.checkpoint");
    let mut config = DashboardConfig::new(&url, d.manifest().clone());
    config.poll_interval = Duration::from_millis(50);
    config.state = Some(state.clone());
    drop(follow(config.clone(), |s| s.tree_size >= size).await);

    // The log now shows a shorter history (a valid prefix, well signed).
    let entries = d.log().entries(0, size - 1).await.unwrap();
    let mut tree = custos_tlog::Tree::new();
    for e in &entries {
        tree.append_entry(e).unwrap();
    }
    *evil.forged.lock().unwrap() = Some(forge(&d, &clock, size - 1, tree.root(size - 1).unwrap()));
    // A dashboard without memory accepts it...
    let mut fresh = config.clone();
    fresh.state = None;
    let h = follow(fresh, |s| s.tree_size == size - 1).await;
    assert!(h.shared.status().inconsistency.is_none());
    drop(h);
    // ...the restarted one does not.
    let h = follow(config, |s| s.inconsistency.is_some()).await;
    let status = h.shared.status();
    assert!(
        status
            .inconsistency
            .as_deref()
            .is_some_and(|m| m.contains("rollback")),
        "{status:?}"
    );
    d.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_root_for_the_same_size_is_reported_as_a_fork() {
    let dir = tempfile::tempdir().unwrap();
    let clock = custos_clock::dangerous::simulated(1_773_000_000_000);
    let spec = DeploymentSpec::new("split.test", clock.shared())
        .custodians(3, 2, CustodianMode::KeysOnly)
        .without_server();
    let d = Deployment::start(dir.path(), spec).await.unwrap();
    let size = d.wait_witnessed(1).await.unwrap();

    let (evil, url) = evil(&d).await;

    let mut config = DashboardConfig::new(&url, d.manifest().clone());
    config.poll_interval = Duration::from_millis(50);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let h = spawn_dashboard(listener, config).await.unwrap();
    for _ in 0..400 {
        if h.shared.status().tree_size >= size {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let before = h.shared.status();
    assert_eq!(before.tree_size, size);
    assert!(before.inconsistency.is_none() && before.following);

    // Another root for the same size, with valid signatures and quorum.
    let forged = forge(&d, &clock, size, Hash([1; 32]));
    *evil.forged.lock().unwrap() = Some(forged);

    let mut status = h.shared.status();
    for _ in 0..400 {
        status = h.shared.status();
        if status.inconsistency.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        status
            .inconsistency
            .as_deref()
            .is_some_and(|m| m.contains("fork")),
        "{status:?}"
    );
    assert!(!status.following, "the dashboard stops following");
    // It keeps serving the last consistent checkpoint.
    assert_eq!(status.checkpoint, before.checkpoint);
    d.shutdown().await.unwrap();
}
