//! A fault-injecting HTTP proxy in front of a real log on loopback: it
//! forwards every request unchanged unless a fault is switched on.
//!
//! Faults: submissions refused before they reach the log ("failed and not
//! persisted"), submissions forwarded but answered 503 ("failed but
//! persisted"), and one entry's bytes altered in the entry bundles it
//! serves (a log serving other bytes than it committed to).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers: a failure is a test failure"
)]
#![allow(dead_code, reason = "each test binary uses part of the helpers")]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// The switches, shared with the running proxy.
#[derive(Debug, Default)]
pub struct Faults {
    /// Refuse every submission without forwarding it.
    pub drop_submissions: AtomicBool,
    /// Forward every submission, then answer 503.
    pub lose_answers: AtomicBool,
    /// Serve this entry with its last byte flipped.
    pub tamper_entry: Mutex<Option<Vec<u8>>>,
}

impl Faults {
    pub fn set_drop(&self, on: bool) {
        self.drop_submissions.store(on, Ordering::SeqCst);
    }
    pub fn set_lose(&self, on: bool) {
        self.lose_answers.store(on, Ordering::SeqCst);
    }
    pub fn tamper(&self, entry: Option<Vec<u8>>) {
        *self.tamper_entry.lock().unwrap() = entry;
    }
}

/// A running proxy.
pub struct LogProxy {
    pub url: String,
    pub faults: Arc<Faults>,
}

struct ProxyState {
    upstream: String,
    http: reqwest::Client,
    faults: Arc<Faults>,
}

/// Starts a proxy on 127.0.0.1:0 in front of `upstream`.
pub async fn spawn_proxy(upstream: &str) -> LogProxy {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    spawn_proxy_on(listener, upstream).await
}

/// Starts a proxy on `listener` in front of `upstream`.
pub async fn spawn_proxy_on(listener: tokio::net::TcpListener, upstream: &str) -> LogProxy {
    let url = format!("http://{}", listener.local_addr().unwrap());
    let faults = Arc::new(Faults::default());
    let state = Arc::new(ProxyState {
        upstream: upstream.trim_end_matches('/').to_owned(),
        http: reqwest::Client::new(),
        faults: faults.clone(),
    });
    let app = axum::Router::new().fallback(forward).with_state(state);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    LogProxy { url, faults }
}

async fn forward(
    State(s): State<Arc<ProxyState>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let path = uri
        .path_and_query()
        .map_or(uri.path(), |p| p.as_str())
        .to_owned();
    let submit = path.starts_with("/add-statement");
    if submit && s.faults.drop_submissions.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "fault: dropped").into_response();
    }
    let req = s
        .http
        .request(method, format!("{}{path}", s.upstream))
        .body(body.to_vec());
    let Ok(resp) = req.send().await else {
        return (StatusCode::BAD_GATEWAY, "fault: upstream down").into_response();
    };
    if submit && s.faults.lose_answers.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "fault: answer lost").into_response();
    }
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
    let ctype = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let mut bytes = resp.bytes().await.unwrap_or_default().to_vec();
    let tamper = s.faults.tamper_entry.lock().unwrap().clone();
    if let Some(entry) = tamper.filter(|_| path.starts_with("/tile/entries/"))
        && let Some(at) = bytes.windows(entry.len()).position(|w| w == entry)
    {
        bytes[at + entry.len() - 1] ^= 1;
    }
    (status, [(axum::http::header::CONTENT_TYPE, ctype)], bytes).into_response()
}
