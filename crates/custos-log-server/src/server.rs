//! The log server: admission of signed statements, batched durable
//! sequencing, the C2SP tlog-tiles read API and witness cosigning.
//!
//! Endpoints:
//! - `GET /checkpoint` — the newest cosigned checkpoint (or, before any
//!   witness answered or with no witness configured, the newest log-signed one);
//! - `GET /tile/<L>/<N>[.p/<W>]`, `GET /tile/entries/<N>[.p/<W>]` — C2SP tlog-tiles;
//! - `POST /add-statement` — body: one encoded `SignedStatement`; answers
//!   `{index, tree_size, checkpoint, inclusion_proof}` once the entry is durable;
//! - `POST /add-statements` — body: up to 256 records `u16 length || SignedStatement`;
//!   admitted all or nothing; answers one checkpoint and a proof per statement;
//! - `GET /proof/inclusion?index=I&size=S`, `GET /proof/consistency?old=M&size=S`
//!   — convenience proofs (verifiers check them, so they need no trust);
//! - `GET /manifest` — the deployment manifest the log admits statements by.
//!
//! # Guarantees
//! - A submitter is answered only after its entry and a checkpoint covering
//!   it are durable (see [`crate::storage`]); a duplicate of a logged
//!   statement gets the existing index.
//! - A statement is admitted only if its author signature verifies and the
//!   author is a manifest participant whose role may publish its type.
//! - Every served checkpoint was committed first, so none conflicts with
//!   another, across crashes included.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use custos_clock::SharedClock;
use custos_tlog::follow_answer::{FollowAnswer, MAX_FOLLOW_ENTRIES, MAX_FOLLOW_PROOFS};
use custos_tlog::keys::{LogVerifier, NamedKey};
use custos_tlog::log_api::{
    BatchEntry, BatchResponse, MAX_STATEMENTS_PER_REQUEST, SubmitResponse, split_bundle,
};
use custos_tlog::merkle::{TILE_WIDTH, TilePath};
use custos_tlog::proof_json::{ProofResponse, encode_proof};
use custos_wire::manifest::Manifest;
use custos_wire::statement::MAX_SIGNED_STATEMENT_LEN;
use serde::Deserialize;
use tokio::sync::{RwLock as AsyncRwLock, mpsc, oneshot, watch};

use crate::admission::{Admission, AdmissionError};
use crate::storage::{EntryReader, LogStore, SharedView, StorageError, StorePaths};
use crate::witnessing::{WitnessTarget, cosign_loop};
use custos_http::{ApiError, StrictQuery, not_found, read_body, wrong_method};

/// Default largest number of entries committed by one fsync'd batch.
pub const DEFAULT_MAX_BATCH: usize = 4096;

/// Most requests waiting for the sequencer; further admitted requests wait
/// for room before they are queued.
const QUEUE_REQUESTS: usize = 1024;

/// Configuration of a log server.
pub struct LogConfig {
    /// Data directory.
    pub data: std::path::PathBuf,
    /// The signed-size record: beside the key file, outside `data`, so that
    /// restoring the data directory cannot roll it back
    /// ([`custos_tlog::signed_size::signed_size_path`]).
    pub signed_size: std::path::PathBuf,
    /// The log's checkpoint key (type `0x01`); its name is the origin.
    pub key: NamedKey,
    /// The deployment manifest: admission rules and witnesses.
    pub manifest: Manifest,
    /// Time source (cosignature requests carry none, but logging does).
    pub clock: SharedClock,
    /// Largest batch per commit, in entries. A request's statements are
    /// never split, so one request may take a batch past it (by less than
    /// [`MAX_STATEMENTS_PER_REQUEST`]).
    pub max_batch: usize,
}

/// Why the log could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Storage could not be opened or recovered.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The manifest does not name this log's key.
    #[error("configuration: {0}")]
    Config(String),
    /// Network error.
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
}

/// One request's admitted entries, queued for the sequencer. The reply is
/// `(indexes, size)`, sent once the entries are durable, or `Err` if the
/// sequencer stopped.
struct Pending {
    entries: Vec<Vec<u8>>,
    reply: oneshot::Sender<Result<(Vec<u64>, u64), ()>>,
}

struct AppState {
    admission: Admission,
    manifest_toml: String,
    view: SharedView,
    reader: EntryReader,
    tx: mpsc::Sender<Pending>,
    failed: Arc<AtomicBool>,
    cosigned: Arc<AsyncRwLock<Option<Arc<Vec<u8>>>>>,
}

/// A running log server.
pub struct LogHandle {
    /// The bound address.
    pub addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl LogHandle {
    /// Stops serving (the sequencer thread ends when its queue closes).
    pub fn abort(&self) {
        self.task.abort();
    }
}

/// Opens (recovering if needed) the log in `config.data` and serves it on
/// `listener` in a background task.
pub async fn spawn_log(
    listener: tokio::net::TcpListener,
    config: LogConfig,
) -> Result<LogHandle, ServerError> {
    spawn_log_tls(listener, config, None).await
}

/// As [`spawn_log`], over TLS with `tls` when given (HTTPS only).
pub async fn spawn_log_tls(
    listener: tokio::net::TcpListener,
    config: LogConfig,
    tls: Option<Arc<custos_http::tls::rustls::ServerConfig>>,
) -> Result<LogHandle, ServerError> {
    let addr = listener.local_addr()?;
    let app = open_log(config).await?;
    let task = tokio::spawn(async move {
        if let Err(e) = custos_http::tls::serve(listener, tls, app).await {
            tracing::error!("log server stopped: {e}");
        }
    });
    Ok(LogHandle { addr, task })
}

/// Appends the `ManifestPublication` of `manifest` (signed with the log's
/// own key) through `app` in process, without a network round trip: the
/// log publishes its manifest at start whether it serves plain HTTP or TLS
/// under a name that does not resolve to itself. Publishing the same
/// manifest again is answered with the existing entry.
pub async fn publish_manifest_in_process(
    app: &Router,
    log_key: &ed25519_dalek::SigningKey,
    manifest: &custos_wire::manifest::Manifest,
) -> Result<(), ServerError> {
    use custos_wire::statement::{ManifestPublication, SignedStatement, Statement};
    use tower::ServiceExt as _;
    let log = manifest
        .log()
        .ok_or_else(|| ServerError::Config("manifest has no log".into()))?;
    let manifest_hash = manifest
        .hash()
        .map_err(|e| ServerError::Config(e.to_string()))?;
    let statement = Statement::ManifestPublication(ManifestPublication {
        log: log.name.clone(),
        manifest_hash,
    });
    let body = SignedStatement::sign(&statement, log_key)
        .and_then(|s| s.encode())
        .map_err(|e| ServerError::Config(e.to_string()))?;
    let req = axum::http::Request::post("/add-statement")
        .body(axum::body::Body::from(body))
        .map_err(|e| ServerError::Config(e.to_string()))?;
    let resp = app
        .clone()
        .oneshot(req)
        .await
        .map_err(|e| ServerError::Config(e.to_string()))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(ServerError::Config(format!(
            "the log refused its own manifest publication ({})",
            resp.status()
        )))
    }
}

/// Opens the log and returns its router (the sequencer and cosigner run in
/// the background). Must be called inside a Tokio runtime.
pub async fn open_log(config: LogConfig) -> Result<Router, ServerError> {
    let origin = config.key.name().to_owned();
    let log = config
        .manifest
        .log()
        .ok_or_else(|| ServerError::Config("manifest has no log".into()))?;
    let manifest_key = log
        .verifying_key()
        .map_err(|e| ServerError::Config(e.to_string()))?;
    if log.name != origin || manifest_key != config.key.verifying_key() {
        return Err(ServerError::Config(format!(
            "the manifest's log is {} with another key; the key file must be that log's",
            log.name
        )));
    }
    let signer = config
        .key
        .log_signer()
        .map_err(|e| ServerError::Config(e.to_string()))?;
    let verifier = LogVerifier::new(&origin, config.key.verifying_key());
    let paths = StorePaths {
        data: config.data.clone(),
        signed_size: config.signed_size.clone(),
    };
    let store =
        tokio::task::spawn_blocking(move || LogStore::open(&paths, &origin, signer, verifier))
            .await
            .map_err(|e| ServerError::Config(format!("recovery task failed: {e}")))??;
    let view = store.view();
    let reader = store.entry_reader()?;
    let (tx, rx) = mpsc::channel(QUEUE_REQUESTS);
    let failed = Arc::new(AtomicBool::new(false));
    let (size_tx, size_rx) = watch::channel(store.size());
    let dir = store.dir().to_path_buf();
    let max_batch = config.max_batch.max(1);
    let seq_failed = Arc::clone(&failed);
    std::thread::Builder::new()
        .name("custos-log-sequencer".into())
        .spawn(move || sequencer(store, rx, max_batch, size_tx, seq_failed))?;

    let targets = WitnessTarget::from_manifest(&config.manifest)
        .map_err(|e| ServerError::Config(e.to_string()))?;
    let cosigned = Arc::new(AsyncRwLock::new(load_cosigned(&dir, &view)));
    if !targets.is_empty() {
        tokio::spawn(cosign_loop(
            Arc::clone(&view),
            size_rx,
            targets,
            dir,
            Arc::clone(&cosigned),
        ));
    }
    let state = Arc::new(AppState {
        manifest_toml: config
            .manifest
            .to_toml()
            .map_err(|e| ServerError::Config(e.to_string()))?,
        admission: Admission::new(&config.manifest),
        view,
        reader,
        tx,
        failed,
        cosigned,
    });
    Ok(Router::new()
        .route("/checkpoint", get(get_checkpoint))
        .route("/tile/{*path}", get(get_tile))
        .route("/add-statement", post(add_statement))
        .route("/add-statements", post(add_statements))
        .route("/proof/inclusion", get(get_inclusion))
        .route("/proof/consistency", get(get_consistency))
        .route("/follow", get(get_follow))
        .route("/manifest", get(get_manifest))
        .fallback(not_found)
        .method_not_allowed_fallback(wrong_method)
        .with_state(state))
}

fn load_cosigned(dir: &std::path::Path, view: &SharedView) -> Option<Arc<Vec<u8>>> {
    let bytes = std::fs::read(dir.join("checkpoint.cosigned")).ok()?;
    let parsed = custos_tlog::checkpoint::parse_checkpoint(&bytes).ok()?;
    let v = view.read().ok()?;
    // Only a cosigned copy of a committed checkpoint is served.
    let size = parsed.checkpoint.size();
    (size <= v.size && v.tree.root(size).ok()? == *parsed.checkpoint.hash())
        .then(|| Arc::new(bytes))
}

/// The single sequencer: drains the queue into batches and commits each
/// with one pass of the durable steps. Stops for good on a storage error.
fn sequencer(
    mut store: LogStore,
    mut rx: mpsc::Receiver<Pending>,
    max_batch: usize,
    size_tx: watch::Sender<u64>,
    failed: Arc<AtomicBool>,
) {
    let mut seen: HashMap<[u8; 32], u64> = HashMap::new();
    if let Ok(v) = store.view().read() {
        for i in 0..v.size {
            if let Some(h) = v.tree.leaf(i) {
                seen.insert(h.0, i);
            }
        }
    }
    while let Some(first) = rx.blocking_recv() {
        let mut count = first.entries.len();
        let mut batch = vec![first];
        while count < max_batch {
            match rx.try_recv() {
                Ok(p) => {
                    count += p.entries.len();
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let base = store.size();
        let mut entries = Vec::with_capacity(count);
        let mut assigned = Vec::with_capacity(batch.len());
        for p in &mut batch {
            let mut indexes = Vec::with_capacity(p.entries.len());
            for entry in std::mem::take(&mut p.entries) {
                let h = tlog_tiles::record_hash(&entry).0;
                let next = base + entries.len() as u64;
                let index = *seen.entry(h).or_insert(next);
                if index == next {
                    entries.push(entry);
                }
                indexes.push(index);
            }
            assigned.push(indexes);
        }
        let result = if entries.is_empty() {
            Ok(base)
        } else {
            store.append_batch(&entries).map(|c| c.size)
        };
        match result {
            Ok(size) => {
                for (p, indexes) in batch.into_iter().zip(assigned) {
                    let _ = p.reply.send(Ok((indexes, size)));
                }
                size_tx.send_replace(size);
            }
            Err(e) => {
                tracing::error!("sequencer stopped, restart the log to recover: {e}");
                failed.store(true, Ordering::SeqCst);
                for p in batch {
                    let _ = p.reply.send(Err(()));
                }
                return;
            }
        }
    }
}

/// The checkpoint note the log serves: the newest cosigned one when it has
/// witnesses, else its own newest.
async fn served_checkpoint(s: &AppState) -> Result<Arc<Vec<u8>>, ApiError> {
    let cosigned = s.cosigned.read().await.clone();
    Ok(match cosigned {
        Some(n) => n,
        None => Arc::clone(&s.view.read().map_err(ApiError::internal_lock)?.checkpoint),
    })
}

async fn get_checkpoint(State(s): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let note = served_checkpoint(&s).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        note.to_vec(),
    )
        .into_response())
}

async fn get_tile(
    State(s): State<Arc<AppState>>,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    let tile = TilePath::parse(&path)
        .ok_or_else(|| ApiError::not_found(format!("`tile/{path}` is not a C2SP tile path")))?;
    let missing = || ApiError::not_found(format!("tile/{path} is beyond the current checkpoint"));
    let body = match tile.level {
        Some(level) => {
            let v = s.view.read().map_err(ApiError::internal_lock)?;
            v.tree
                .tile(level, tile.n, tile.width, v.size)
                .ok_or_else(missing)?
        }
        None => {
            let offsets: Vec<u64> = {
                let v = s.view.read().map_err(ApiError::internal_lock)?;
                let start = tile.n.checked_mul(TILE_WIDTH).ok_or_else(missing)?;
                let end = start.checked_add(tile.width).ok_or_else(missing)?;
                if end > v.size {
                    return Err(missing());
                }
                let (a, b) = (usize::try_from(start), usize::try_from(end));
                match (a, b) {
                    (Ok(a), Ok(b)) => v.offsets.get(a..b).ok_or_else(missing)?.to_vec(),
                    _ => return Err(missing()),
                }
            };
            s.reader
                .read_records(&offsets)
                .map_err(ApiError::internal)?
        }
    };
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response())
}

async fn add_statement(
    State(s): State<Arc<AppState>>,
    body: axum::body::Body,
) -> Result<axum::Json<SubmitResponse>, ApiError> {
    let bytes = read_body(body, MAX_SIGNED_STATEMENT_LEN).await?;
    admit(&s, &bytes, "")?;
    let (indexes, size) = sequence(&s, vec![bytes]).await?;
    let index = *indexes
        .first()
        .ok_or_else(|| ApiError::internal("sequencer returned no index"))?;
    let v = s.view.read().map_err(ApiError::internal_lock)?;
    if v.size != size {
        // A later batch already committed; prove against the newest checkpoint.
        drop(v);
        return proof_against_latest(&s, index);
    }
    // The reply is sent after `size` was published, so the proof exists.
    let proof = v
        .tree
        .inclusion_proof(index, size)
        .map_err(ApiError::internal)?;
    Ok(axum::Json(SubmitResponse {
        index,
        tree_size: size,
        checkpoint: String::from_utf8_lossy(&v.checkpoint).into_owned(),
        inclusion_proof: encode_proof(&proof),
    }))
}

async fn add_statements(
    State(s): State<Arc<AppState>>,
    body: axum::body::Body,
) -> Result<axum::Json<BatchResponse>, ApiError> {
    let limit = MAX_STATEMENTS_PER_REQUEST * (MAX_SIGNED_STATEMENT_LEN + 2);
    let bytes = read_body(body, limit).await?;
    let statements = split_bundle(&bytes)
        .filter(|v| !v.is_empty() && v.len() <= MAX_STATEMENTS_PER_REQUEST)
        .ok_or_else(|| {
            ApiError::bad_request(
                "malformed_bundle",
                format!(
                    "body must be 1 to {MAX_STATEMENTS_PER_REQUEST} records of u16 length || SignedStatement"
                ),
            )
        })?;
    // All or nothing: one bad statement refuses the whole request.
    for (i, st) in statements.iter().enumerate() {
        admit(&s, st, &format!("statement {i}: "))?;
    }
    let (indexes, _) = sequence(&s, statements).await?;
    let v = s.view.read().map_err(ApiError::internal_lock)?;
    let mut entries = Vec::with_capacity(indexes.len());
    for index in indexes {
        let proof = v
            .tree
            .inclusion_proof(index, v.size)
            .map_err(ApiError::internal)?;
        entries.push(BatchEntry {
            index,
            inclusion_proof: encode_proof(&proof),
        });
    }
    Ok(axum::Json(BatchResponse {
        tree_size: v.size,
        checkpoint: String::from_utf8_lossy(&v.checkpoint).into_owned(),
        entries,
    }))
}

/// Admission (see [`crate::admission`]), as a JSON refusal naming the
/// statement (`at`) and the check that failed.
fn admit(s: &AppState, bytes: &[u8], at: &str) -> Result<(), ApiError> {
    s.admission.admit(bytes).map(drop).map_err(|e| {
        let message = format!("{at}{e}");
        match e {
            AdmissionError::Malformed(_) => ApiError::bad_request("malformed_statement", message),
            AdmissionError::Signature(_) => {
                ApiError::new(StatusCode::FORBIDDEN, "bad_signature", message)
            }
            AdmissionError::UnknownAuthor => {
                ApiError::new(StatusCode::FORBIDDEN, "unknown_author", message)
            }
            AdmissionError::RoleNotAllowed { .. } => {
                ApiError::new(StatusCode::FORBIDDEN, "role_not_allowed", message)
            }
        }
    })
}

/// Queues one request's admitted entries (committed in one batch) and waits
/// until they are durable: (index of each, committed size).
async fn sequence(s: &AppState, entries: Vec<Vec<u8>>) -> Result<(Vec<u64>, u64), ApiError> {
    if s.failed.load(Ordering::SeqCst) {
        return Err(unavailable());
    }
    let (reply, rx) = oneshot::channel();
    s.tx.send(Pending { entries, reply })
        .await
        .map_err(|_| unavailable())?;
    rx.await
        .map_err(|_| unavailable())?
        .map_err(|()| unavailable())
}

fn proof_against_latest(s: &AppState, index: u64) -> Result<axum::Json<SubmitResponse>, ApiError> {
    let v = s.view.read().map_err(ApiError::internal_lock)?;
    let proof = v
        .tree
        .inclusion_proof(index, v.size)
        .map_err(ApiError::internal)?;
    Ok(axum::Json(SubmitResponse {
        index,
        tree_size: v.size,
        checkpoint: String::from_utf8_lossy(&v.checkpoint).into_owned(),
        inclusion_proof: encode_proof(&proof),
    }))
}

fn unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "log_unavailable",
        "the log stopped sequencing after a storage error; it recovers on restart, retry then",
    )
}

/// Query of `GET /proof/inclusion`.
#[derive(Debug, Deserialize)]
struct InclusionQuery {
    index: u64,
    size: u64,
}

/// Query of `GET /proof/consistency`.
#[derive(Debug, Deserialize)]
struct ConsistencyQuery {
    old: u64,
    size: u64,
}

async fn get_inclusion(
    State(s): State<Arc<AppState>>,
    StrictQuery(q): StrictQuery<InclusionQuery>,
) -> Result<axum::Json<ProofResponse>, ApiError> {
    let v = s.view.read().map_err(ApiError::internal_lock)?;
    if q.size > v.size || q.index >= q.size {
        return Err(ApiError::bad_request(
            "out_of_range",
            format!("need index < size <= {}", v.size),
        ));
    }
    let proof = v
        .tree
        .inclusion_proof(q.index, q.size)
        .map_err(ApiError::internal)?;
    Ok(axum::Json(ProofResponse {
        proof: encode_proof(&proof),
    }))
}

async fn get_consistency(
    State(s): State<Arc<AppState>>,
    StrictQuery(q): StrictQuery<ConsistencyQuery>,
) -> Result<axum::Json<ProofResponse>, ApiError> {
    let v = s.view.read().map_err(ApiError::internal_lock)?;
    if q.size > v.size || q.old > q.size {
        return Err(ApiError::bad_request(
            "out_of_range",
            format!("need old <= size <= {}", v.size),
        ));
    }
    let proof = v
        .tree
        .consistency_proof(q.old, q.size)
        .map_err(ApiError::internal)?;
    Ok(axum::Json(ProofResponse {
        proof: encode_proof(&proof),
    }))
}

/// Query of `GET /follow`.
#[derive(Debug, Deserialize)]
struct FollowQuery {
    /// The first entry wanted.
    from: u64,
    /// The size of the checkpoint the follower holds (0: none).
    known: u64,
    /// Most entries wanted (at most [`MAX_FOLLOW_ENTRIES`] come).
    max: u64,
    /// Inclusion proofs come when the answer holds at most this many
    /// entries (at most [`MAX_FOLLOW_PROOFS`]).
    prove: u64,
}

/// One round of following the log in one answer ([`FollowAnswer`]): the
/// served checkpoint, a consistency proof to it from the size the follower
/// holds, the entries from `from` on, and their inclusion proofs if few.
/// Every proof is against the served checkpoint's size.
async fn get_follow(
    State(s): State<Arc<AppState>>,
    StrictQuery(q): StrictQuery<FollowQuery>,
) -> Result<Response, ApiError> {
    if q.prove > MAX_FOLLOW_PROOFS as u64 {
        return Err(ApiError::bad_request(
            "out_of_range",
            format!("need prove <= {MAX_FOLLOW_PROOFS}"),
        ));
    }
    let note = served_checkpoint(&s).await?;
    let size = custos_tlog::checkpoint::parse_checkpoint(&note)
        .map_err(ApiError::internal)?
        .checkpoint
        .size();
    let wanted = q.max.min(MAX_FOLLOW_ENTRIES as u64);
    let end = size.min(q.from.saturating_add(wanted));
    let (consistency, inclusion, offsets) = {
        let v = s.view.read().map_err(ApiError::internal_lock)?;
        // The served checkpoint is one the log committed: its size is
        // within the view.
        if size > v.size {
            return Err(ApiError::internal("served checkpoint beyond the log"));
        }
        let consistency = if q.known > 0 && q.known < size {
            v.tree
                .consistency_proof(q.known, size)
                .map_err(ApiError::internal)?
        } else {
            Vec::new()
        };
        let count = end.saturating_sub(q.from);
        let inclusion = if count > 0 && count <= q.prove {
            Some(
                (q.from..end)
                    .map(|i| v.tree.inclusion_proof(i, size))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(ApiError::internal)?,
            )
        } else {
            None
        };
        let offsets = if count > 0 {
            let range = usize::try_from(q.from).ok().zip(usize::try_from(end).ok());
            range
                .and_then(|(a, b)| v.offsets.get(a..b))
                .ok_or_else(|| ApiError::internal("entry offsets beyond the log"))?
                .to_vec()
        } else {
            Vec::new()
        };
        (consistency, inclusion, offsets)
    };
    let entries = if offsets.is_empty() {
        Vec::new()
    } else {
        let bundle = s
            .reader
            .read_records(&offsets)
            .map_err(ApiError::internal)?;
        split_bundle(&bundle).ok_or_else(|| ApiError::internal("malformed entry bundle"))?
    };
    let answer = FollowAnswer {
        checkpoint: note.to_vec(),
        consistency,
        entries,
        inclusion,
    }
    .encode()
    .map_err(ApiError::internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        answer,
    )
        .into_response())
}

async fn get_manifest(State(s): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/toml")],
        s.manifest_toml.clone(),
    )
}
