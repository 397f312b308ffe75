//! A fault-injecting HTTP proxy in front of a log, for tests of what the
//! log's clients do when the log misbehaves: it forwards every request
//! unchanged unless a fault is switched on.
//!
//! Faults: submissions refused before they reach the log ("failed and not
//! persisted"), submissions forwarded but answered 503 ("failed but
//! persisted"), one entry's bytes altered in the entry bundles it serves
//! (a log serving other bytes than it committed to), and inclusion proofs
//! answered for the neighbouring entry (a proof that does not prove the
//! entry asked about). Both apply to the entries and proofs of `/follow`
//! answers too.
//!
//! # Security meaning
//! The proxy is an attacker's position between a party and the log. Tests
//! name it as the log's endpoint in a manifest, or point a log client at
//! it, to show that no party accepts what a witnessed checkpoint does not
//! cover. It never runs in a real deployment.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;

use crate::error::DeployError;

/// The fault switches, shared with the running proxy. All are off at first.
#[derive(Debug, Default)]
pub struct Faults {
    drop_submissions: AtomicBool,
    lose_answers: AtomicBool,
    tamper_entry: Mutex<Option<Vec<u8>>>,
    wrong_inclusion_proofs: AtomicBool,
}

impl Faults {
    /// While on, every submission is refused with 503 without reaching the
    /// log ("failed and not persisted").
    pub fn set_drop(&self, on: bool) {
        self.drop_submissions.store(on, Ordering::SeqCst);
    }

    /// While on, every submission reaches the log and is then answered 503
    /// ("failed but persisted").
    pub fn set_lose(&self, on: bool) {
        self.lose_answers.store(on, Ordering::SeqCst);
    }

    /// While `Some(entry)`, the entry bundles that hold those exact bytes
    /// are served with the entry's last byte flipped; `None` stops it.
    pub fn tamper(&self, entry: Option<Vec<u8>>) {
        *self.tampered() = entry;
    }

    /// While on, an inclusion proof asked for entry `i` is the log's proof
    /// for a neighbouring entry (`i ^ 1`, or `i - 1` at the tree's end).
    pub fn set_wrong_inclusion_proofs(&self, on: bool) {
        self.wrong_inclusion_proofs.store(on, Ordering::SeqCst);
    }

    fn tampered(&self) -> MutexGuard<'_, Option<Vec<u8>>> {
        // A panicking holder cannot leave the Option half-written.
        self.tamper_entry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A running proxy. Its task runs until the runtime ends, also after this
/// value is dropped (a manifest may name it as the log's endpoint).
#[derive(Debug, Clone)]
pub struct LogProxy {
    /// The proxy's base URL.
    pub url: String,
    /// Its fault switches.
    pub faults: Arc<Faults>,
}

struct ProxyState {
    upstream: String,
    http: reqwest::Client,
    faults: Arc<Faults>,
}

/// Starts a proxy on a free loopback port in front of the log at `upstream`.
pub async fn spawn_proxy(upstream: &str) -> Result<LogProxy, DeployError> {
    let listener = crate::bind(crate::loopback_any()).await?;
    spawn_proxy_on(listener, upstream)
}

/// Starts a proxy on `listener` in front of the log at `upstream` (bind the
/// listener first to name its address in a manifest).
pub fn spawn_proxy_on(listener: TcpListener, upstream: &str) -> Result<LogProxy, DeployError> {
    let addr = listener
        .local_addr()
        .map_err(DeployError::io("the proxy's address"))?;
    let faults = Arc::new(Faults::default());
    let state = Arc::new(ProxyState {
        upstream: upstream.trim_end_matches('/').to_owned(),
        http: reqwest::Client::new(),
        faults: faults.clone(),
    });
    let app = axum::Router::new().fallback(forward).with_state(state);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!("the log proxy stopped: {e}");
        }
    });
    Ok(LogProxy {
        url: format!("http://{addr}"),
        faults,
    })
}

async fn forward(
    State(s): State<Arc<ProxyState>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let mut path = uri
        .path_and_query()
        .map_or(uri.path(), |p| p.as_str())
        .to_owned();
    if s.faults.wrong_inclusion_proofs.load(Ordering::SeqCst) {
        path = neighbour_proof(&path).unwrap_or(path);
    }
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
    let status =
        StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let ctype = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let mut bytes = resp.bytes().await.unwrap_or_default().to_vec();
    let follow = path.starts_with("/follow?");
    if follow && s.faults.wrong_inclusion_proofs.load(Ordering::SeqCst) {
        bytes = neighbour_proofs_in_answer(&s, &path, bytes).await;
    }
    let tamper = s.faults.tampered().clone();
    let serves_entries = follow || path.starts_with("/tile/entries/");
    if let Some(entry) = tamper.filter(|e| !e.is_empty() && serves_entries)
        && let Some(at) = bytes.windows(entry.len()).position(|w| w == entry)
        && let Some(last) = bytes.get_mut(at + entry.len() - 1)
    {
        *last ^= 1;
    }
    (status, [(axum::http::header::CONTENT_TYPE, ctype)], bytes).into_response()
}

/// A `/follow` answer whose inclusion proofs are replaced by the log's
/// proofs of the neighbouring entries ([`neighbour_proof`]); unchanged if
/// it carries none or cannot be read.
async fn neighbour_proofs_in_answer(s: &ProxyState, path: &str, bytes: Vec<u8>) -> Vec<u8> {
    use custos_tlog::follow_answer::FollowAnswer;
    let Ok(mut answer) = FollowAnswer::decode(&bytes) else {
        return bytes;
    };
    let from = query_value(path, "from").unwrap_or(0);
    let size = custos_tlog::checkpoint::parse_checkpoint(&answer.checkpoint)
        .map(|c| c.checkpoint.size())
        .unwrap_or(0);
    let Some(proofs) = &mut answer.inclusion else {
        return bytes;
    };
    let client = match custos_tlog::LogClient::new(&s.upstream) {
        Ok(c) => c,
        Err(_) => return bytes,
    };
    for (index, proof) in (from..).zip(proofs.iter_mut()) {
        let Some(n) = neighbour(index, size) else {
            continue;
        };
        if let Ok(other) = client.inclusion_proof(n, size).await {
            *proof = other;
        }
    }
    answer.encode().unwrap_or(bytes)
}

/// The value of `key` in the query of `path`, as a number.
fn query_value(path: &str, key: &str) -> Option<u64> {
    let (_, query) = path.split_once('?')?;
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
}

/// `/proof/inclusion?index=I&size=N` asked instead for a neighbour in the
/// same tree: `I ^ 1`, or `I - 1` when `I ^ 1` is past the tree's end.
fn neighbour_proof(path: &str) -> Option<String> {
    path.strip_prefix("/proof/inclusion?")?;
    let size = query_value(path, "size")?;
    let neighbour = neighbour(query_value(path, "index")?, size)?;
    Some(format!("/proof/inclusion?index={neighbour}&size={size}"))
}

/// The neighbour of entry `index` in a tree of `size`: `index ^ 1`, or
/// `index - 1` when that is past the tree's end.
fn neighbour(index: u64, size: u64) -> Option<u64> {
    if index ^ 1 < size {
        Some(index ^ 1)
    } else {
        index.checked_sub(1)
    }
}
