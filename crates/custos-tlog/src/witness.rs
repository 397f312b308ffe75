//! The witness: C2SP tlog-witness `add-checkpoint`, answering with C2SP
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
//!   422 consistency proof fails. Other errors are JSON ([`crate::http`]).
//!
//! Storage: one file per origin, `logs/<hex SHA-256 of origin>`, holding the
//! last cosigned checkpoint note, replaced with [`write_atomic`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use custos_clock::SharedClock;
use sha2::{Digest, Sha256};
use signed_note::{Note, Signer as _, VerifierList};
use tokio::sync::Mutex;

use crate::checkpoint::{MAX_NOTE_LEN, parse_checkpoint};
use crate::http::{ApiError, read_body};
use crate::keys::{CosignatureSigner, LogVerifier, NamedKey};
use crate::merkle::{Hash, MAX_PROOF_HASHES};
use crate::storage::write_atomic;

/// Most consistency proof lines in a request (C2SP tlog-witness).
pub const MAX_REQUEST_PROOF_LINES: usize = 63;

/// A decoded `add-checkpoint` request body.
#[derive(Debug, Clone, PartialEq)]
pub struct AddCheckpoint {
    /// Size of the checkpoint the witness is believed to hold.
    pub old: u64,
    /// Consistency proof from `old` to the new checkpoint.
    pub proof: Vec<Hash>,
    /// The new checkpoint note, signatures included.
    pub checkpoint: Vec<u8>,
}

impl AddCheckpoint {
    /// The request body: `old N`, proof lines, an empty line, the checkpoint.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!("old {}\n", self.old).into_bytes();
        for h in &self.proof {
            out.extend(BASE64_STANDARD.encode(h.0).into_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
        out.extend_from_slice(&self.checkpoint);
        out
    }

    /// Parses a request body, accepting only canonical forms (no leading
    /// zeros, canonical base64, at most 63 proof lines).
    pub fn parse(body: &[u8]) -> Option<Self> {
        let split = body.windows(2).position(|w| w == b"\n\n")?;
        let head = std::str::from_utf8(body.get(..split)?).ok()?;
        let checkpoint = body.get(split + 2..)?.to_vec();
        let mut lines = head.split('\n');
        let old_text = lines.next()?.strip_prefix("old ")?;
        let old: u64 = old_text.parse().ok()?;
        if old.to_string() != old_text {
            return None;
        }
        let mut proof = Vec::new();
        for line in lines {
            if proof.len() >= MAX_REQUEST_PROOF_LINES.min(MAX_PROOF_HASHES) {
                return None;
            }
            let raw = BASE64_STANDARD.decode(line).ok()?;
            let h = Hash(raw.try_into().ok()?);
            if BASE64_STANDARD.encode(h.0) != line {
                return None;
            }
            proof.push(h);
        }
        Some(Self {
            old,
            proof,
            checkpoint,
        })
    }
}

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
        .with_state(state))
}

/// Serves a witness on `listener` in a background task; returns its address.
pub async fn spawn_witness(
    listener: tokio::net::TcpListener,
    config: WitnessConfig,
) -> Result<std::net::SocketAddr, WitnessError> {
    let addr = listener.local_addr()?;
    let app = witness_router(config)?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("witness stopped: {e}");
        }
    });
    Ok(addr)
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

/// Whether `note` carries a valid cosignature by `verifier` (helper for tests and audit).
pub fn has_cosignature(note: &[u8], verifier: &crate::keys::CosignatureVerifier) -> bool {
    Note::from_bytes(note)
        .ok()
        .and_then(|n| {
            n.verify(&VerifierList::new(vec![Box::new(verifier.clone())]))
                .ok()
        })
        .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example_request_parses_and_re_encodes() {
        // Request body example from C2SP tlog-witness, "add-checkpoint".
        let body = "old 20852014\n\
PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n\
jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n\
5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n\
/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n\
\n\
example.com/behind-the-sofa\n\
20852163\n\
CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\
\n\
— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n\
— example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=\n";
        let req = AddCheckpoint::parse(body.as_bytes()).unwrap();
        assert_eq!(req.old, 20_852_014);
        assert_eq!(req.proof.len(), 4);
        assert_eq!(req.encode(), body.as_bytes());
        let cp = parse_checkpoint(&req.checkpoint).unwrap();
        assert_eq!(cp.checkpoint.size(), 20_852_163);
    }

    #[test]
    fn malformed_requests_are_refused() {
        for bad in [
            "old 01\n\nx",
            "old -1\n\nx",
            "new 1\n\nx",
            "old 1\nnot-base64\n\nx",
            "old 1\nAAAA\n\nx",
            "old 1",
        ] {
            assert!(AddCheckpoint::parse(bad.as_bytes()).is_none(), "{bad}");
        }
        let many = format!(
            "old 1\n{}\nx",
            "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n".repeat(64)
        );
        assert!(AddCheckpoint::parse(many.as_bytes()).is_none());
    }

    proptest::proptest! {
        #[test]
        fn prop_requests_round_trip(old in proptest::prelude::any::<u64>(), hashes in proptest::collection::vec(proptest::prelude::any::<[u8; 32]>(), 0..63), tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let req = AddCheckpoint { old, proof: hashes.into_iter().map(Hash).collect(), checkpoint: tail };
            proptest::prop_assert_eq!(AddCheckpoint::parse(&req.encode()), Some(req));
        }
    }
}
