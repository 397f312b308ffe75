//! The Custos witness server: C2SP tlog-witness `add-checkpoint`, answering with C2SP
//! `cosignature/v1` signatures.
//!
//! # Guarantees
//! - It cosigns a checkpoint only if the log's signature verifies, the old
//!   size equals the size it last cosigned for that origin, and the
//!   consistency proof from its stored checkpoint verifies.
//! - Check, store and fsync happen under one lock, before the cosignature is
//!   made and returned, so two concurrent requests cannot roll it back and a
//!   crash cannot make it forget a checkpoint it cosigned.
//! - Answers follow the spec: 400 malformed / old size above the new size,
//!   403 no valid log signature, 404 unknown origin, 409 (body: the known
//!   size, `text/x.tlog.size`) stale old size or same size with another root,
//!   422 consistency proof fails. Other errors are JSON.
//!
//! Storage: one file per origin, `logs/<hex SHA-256 of origin>`, holding the
//! last cosigned checkpoint note, replaced with [`write_atomic`].
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use custos_clock::SharedClock;
use sha2::{Digest, Sha256};
use signed_note::{Signer as _, VerifierList};
use tokio::sync::Mutex;

use custos_durable::write_atomic;
use custos_tlog::checkpoint::{MAX_NOTE_LEN, parse_checkpoint};
use custos_tlog::keys::{CosignatureSigner, LogVerifier, NamedKey};
use custos_tlog::merkle::{Hash, MAX_PROOF_HASHES};
use custos_tlog::witness_api::AddCheckpoint;

use custos_http::{ApiError, not_found, read_body, wrong_method};

/// Configuration of a witness.
pub struct WitnessConfig {
    /// Data directory.
    pub data: PathBuf,
    /// The witness key (type `0x04`); its name is the witness name.
    pub key: NamedKey,
    /// Logs it witnesses: origin → log public key.
    pub logs: Vec<(String, ed25519_dalek::VerifyingKey)>,
    /// Time source for cosignature timestamps.
    pub clock: SharedClock,
}

struct Stored {
    size: u64,
    hash: Hash,
}

struct WitnessState {
    dir: PathBuf,
    signer: CosignatureSigner,
    logs: HashMap<String, LogVerifier>,
    // One lock over check + store + sign: the atomic step of the spec.
    stored: Mutex<HashMap<String, Stored>>,
}

/// Why the witness could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessError {
    /// Bad key or configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// Storage failure.
    #[error("storage: {0}")]
    Io(#[from] std::io::Error),
}

fn state_path(dir: &std::path::Path, origin: &str) -> PathBuf {
    dir.join("logs")
        .join(hex::encode(Sha256::digest(origin.as_bytes())))
}

/// Builds the witness router, loading each log's stored checkpoint.
pub fn witness_router(config: WitnessConfig) -> Result<Router, WitnessError> {
    let signer = config
        .key
        .cosigner(config.clock)
        .map_err(|e| WitnessError::Config(e.to_string()))?;
    std::fs::create_dir_all(config.data.join("logs"))?;
    let mut logs = HashMap::new();
    let mut stored = HashMap::new();
    for (origin, key) in config.logs {
        let verifier = LogVerifier::new(&origin, key);
        match std::fs::read(state_path(&config.data, &origin)) {
            Ok(bytes) => {
                let p = parse_checkpoint(&bytes)
                    .map_err(|e| WitnessError::Config(format!("stored state of {origin}: {e}")))?;
                stored.insert(
                    origin.clone(),
                    Stored {
                        size: p.checkpoint.size(),
                        hash: *p.checkpoint.hash(),
                    },
                );
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        logs.insert(origin, verifier);
    }
    let state = Arc::new(WitnessState {
        dir: config.data,
        signer,
        logs,
        stored: Mutex::new(stored),
    });
    Ok(Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .fallback(not_found)
        .method_not_allowed_fallback(wrong_method)
        .with_state(state))
}

/// A witness serving in a background task.
#[derive(Debug)]
pub struct WitnessHandle {
    /// The bound address.
    pub addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl WitnessHandle {
    /// Stops serving and releases the address. What it cosigned stays on disk.
    pub fn abort(&self) {
        self.task.abort();
    }
}

/// Serves a witness on `listener` in a background task until
/// [`WitnessHandle::abort`] or the end of the runtime.
pub async fn start_witness(
    listener: tokio::net::TcpListener,
    config: WitnessConfig,
) -> Result<WitnessHandle, WitnessError> {
    start_witness_tls(listener, config, None).await
}

/// As [`start_witness`], over TLS with `tls` when given (HTTPS only).
pub async fn start_witness_tls(
    listener: tokio::net::TcpListener,
    config: WitnessConfig,
    tls: Option<Arc<custos_http::tls::rustls::ServerConfig>>,
) -> Result<WitnessHandle, WitnessError> {
    let addr = listener.local_addr()?;
    let app = witness_router(config)?;
    let task = tokio::spawn(async move {
        if let Err(e) = custos_http::tls::serve(listener, tls, app).await {
            tracing::error!("witness stopped: {e}");
        }
    });
    Ok(WitnessHandle { addr, task })
}

/// Serves a witness on `listener` until the end of the runtime; returns its
/// address.
pub async fn spawn_witness(
    listener: tokio::net::TcpListener,
    config: WitnessConfig,
) -> Result<std::net::SocketAddr, WitnessError> {
    Ok(start_witness(listener, config).await?.addr)
}

fn conflict(size: u64) -> Response {
    (
        StatusCode::CONFLICT,
        [(header::CONTENT_TYPE, "text/x.tlog.size")],
        format!("{size}\n"),
    )
        .into_response()
}

async fn add_checkpoint(
    State(s): State<Arc<WitnessState>>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let body = read_body(body, MAX_NOTE_LEN + 64 * 46).await?;
    let req = AddCheckpoint::parse(&body).ok_or_else(|| {
        ApiError::bad_request(
            "malformed_request",
            "body must be `old N`, base64 proof lines, an empty line, then a checkpoint",
        )
    })?;
    let parsed = parse_checkpoint(&req.checkpoint)
        .map_err(|e| ApiError::bad_request("malformed_checkpoint", e.to_string()))?;
    let origin = parsed.checkpoint.origin().to_owned();
    let verifier = s
        .logs
        .get(&origin)
        .ok_or_else(|| ApiError::not_found(format!("this witness does not follow `{origin}`")))?;
    parsed
        .note
        .verify(&VerifierList::new(vec![Box::new(verifier.clone())]))
        .map_err(|e| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "bad_log_signature",
                format!("no valid signature from the log key: {e}"),
            )
        })?;
    let size = parsed.checkpoint.size();
    let hash = *parsed.checkpoint.hash();
    if req.old > size {
        return Err(ApiError::bad_request(
            "old_size_too_large",
            format!("old size {} is above the checkpoint size {size}", req.old),
        ));
    }

    let mut stored = s.stored.lock().await;
    let (known_size, known_hash) = stored
        .get(&origin)
        .map_or((0, None), |st| (st.size, Some(st.hash)));
    if req.old != known_size {
        return Ok(conflict(known_size));
    }
    match known_hash {
        Some(h) if size == known_size && known_size > 0 => {
            if h != hash {
                tracing::warn!("split view: {origin} signed two roots for size {size}");
                return Ok(conflict(known_size));
            }
        }
        Some(h) if known_size > 0 => {
            if req.proof.len() > MAX_PROOF_HASHES
                || tlog_tiles::check_tree(&req.proof, size, hash, known_size, h).is_err()
            {
                return Err(bad_proof());
            }
        }
        _ => {
            // Nothing (or only the empty tree) cosigned yet: no proof needed.
            if !req.proof.is_empty() {
                return Err(bad_proof());
            }
        }
    }
    // Store durably before answering (tlog-witness), still under the lock.
    let path = state_path(&s.dir, &origin);
    let note_bytes = req.checkpoint.clone();
    tokio::task::spawn_blocking(move || write_atomic(&path, &note_bytes))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    stored.insert(origin, Stored { size, hash });
    drop(stored);

    let sig = s
        .signer
        .sign(parsed.note.text())
        .map_err(ApiError::internal)?;
    let line = signed_note::Signature::new(s.signer.name().to_owned(), s.signer.key_id(), sig)
        .map_err(ApiError::internal)?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        line.to_bytes(),
    )
        .into_response())
}

fn bad_proof() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "bad_consistency_proof",
        "the consistency proof from the stored checkpoint does not verify",
    )
}
