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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_root_for_the_same_size_is_reported_as_a_fork() {
    let dir = tempfile::tempdir().unwrap();
    let clock = custos_clock::dangerous::simulated(1_773_000_000_000);
    let spec = DeploymentSpec::new("split.test", clock.shared())
        .custodians(3, 2, CustodianMode::KeysOnly)
        .without_server();
    let d = Deployment::start(dir.path(), spec).await.unwrap();
    let size = d.wait_witnessed(1).await.unwrap();

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
    let keys = d.keys();
    let note = sign_checkpoint(
        &keys.log.log_signer().unwrap(),
        keys.log.name(),
        size,
        Hash([1; 32]),
    )
    .unwrap();
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
