//! The log side of C2SP tlog-witness: after each committed checkpoint, ask
//! every manifest witness to cosign it, and serve the cosigned checkpoint.
//!
//! A witness that answers 409 tells the size it last cosigned; the log then
//! retries once with a consistency proof from that size. Cosignatures are
//! verified before they are kept. The cosigned note is stored with the same
//! atomic write as checkpoints, so a restart serves it again.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use custos_durable::write_atomic;
use custos_tlog::keys::CosignatureVerifier;
use custos_tlog::witness_api::AddCheckpoint;
use custos_wire::manifest::{Manifest, Role};
use signed_note::{Note, VerifierList};
use tokio::sync::{RwLock as AsyncRwLock, watch};

use crate::storage::SharedView;

/// One witness the log asks for cosignatures.
#[derive(Debug, Clone)]
pub struct WitnessTarget {
    /// Witness name (cosignature key name).
    pub name: String,
    /// Its submission prefix, e.g. `http://127.0.0.1:7100`.
    pub url: String,
    /// Its cosignature verifier.
    pub verifier: CosignatureVerifier,
}

impl WitnessTarget {
    /// Every manifest witness that has an endpoint.
    pub fn from_manifest(m: &Manifest) -> Result<Vec<Self>, custos_wire::manifest::ManifestError> {
        let mut out = Vec::new();
        for p in m.with_role(Role::Witness) {
            if let Some(url) = &p.endpoint {
                out.push(Self {
                    name: p.name.clone(),
                    url: url.trim_end_matches('/').to_owned(),
                    verifier: CosignatureVerifier::new(&p.name, p.verifying_key()?),
                });
            }
        }
        Ok(out)
    }
}

/// Why one witness did not cosign.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CosignError {
    /// Transport failure.
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// The witness knows another size (409).
    #[error("witness has size {0}")]
    Conflict(u64),
    /// Any other refusal.
    #[error("witness refused with {status}: {body}")]
    Refused {
        /// Status.
        status: u16,
        /// Body.
        body: String,
    },
    /// Its answer held no valid cosignature from it.
    #[error("no valid cosignature in the answer")]
    BadCosignature,
}

/// Sends one add-checkpoint request; returns the witness's verified
/// cosignature lines.
pub async fn request_cosignature(
    http: &reqwest::Client,
    target: &WitnessTarget,
    request: &AddCheckpoint,
) -> Result<Vec<u8>, CosignError> {
    let resp = http
        .post(format!("{}/add-checkpoint", target.url))
        .body(request.encode())
        .send()
        .await?;
    let status = resp.status();
    let body = resp.bytes().await?;
    if status.as_u16() == 409 {
        let text = String::from_utf8_lossy(&body);
        if let Some(Ok(size)) = text.strip_suffix('\n').map(str::parse::<u64>) {
            return Err(CosignError::Conflict(size));
        }
    }
    if !status.is_success() {
        return Err(CosignError::Refused {
            status: status.as_u16(),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
    }
    let mut joined = request.checkpoint.clone();
    joined.extend_from_slice(&body);
    let note = Note::from_bytes(&joined).map_err(|_| CosignError::BadCosignature)?;
    let (verified, _) = note
        .verify(&VerifierList::new(vec![Box::new(target.verifier.clone())]))
        .map_err(|_| CosignError::BadCosignature)?;
    let mut lines = Vec::new();
    for sig in verified {
        lines.extend(sig.to_bytes());
    }
    Ok(lines)
}

/// Runs until the size channel closes: cosigns every new committed
/// checkpoint and publishes the cosigned note in `cosigned`.
pub async fn cosign_loop(
    view: SharedView,
    mut sizes: watch::Receiver<u64>,
    targets: Vec<WitnessTarget>,
    dir: PathBuf,
    cosigned: Arc<AsyncRwLock<Option<Arc<Vec<u8>>>>>,
) {
    // The process's trust for HTTPS witnesses (`custos --ca`).
    let http = match custos_tlog::client::http_client_builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("cannot build the witness HTTP client: {e}");
            return;
        }
    };
    let mut known: Vec<u64> = vec![0; targets.len()];
    let mut done_size: Option<u64> = None;
    loop {
        let Some((size, note)) = view
            .read()
            .ok()
            .map(|v| (v.size, Arc::clone(&v.checkpoint)))
        else {
            return;
        };
        if done_size != Some(size) {
            let futures = targets.iter().zip(known.iter_mut()).map(|(t, k)| {
                let view = Arc::clone(&view);
                let note = Arc::clone(&note);
                let http = &http;
                async move { cosign_one(http, t, k, &view, size, &note).await }
            });
            let results = futures_util::future::join_all(futures).await;
            let mut joined = note.to_vec();
            for lines in results.into_iter().flatten() {
                joined.extend(lines);
            }
            if let Err(e) = write_atomic(&dir.join("checkpoint.cosigned"), &joined) {
                tracing::error!("cannot store the cosigned checkpoint: {e}");
            } else {
                *cosigned.write().await = Some(Arc::new(joined));
            }
            done_size = Some(size);
        }
        if sizes.changed().await.is_err() {
            return;
        }
    }
}

async fn cosign_one(
    http: &reqwest::Client,
    target: &WitnessTarget,
    known: &mut u64,
    view: &SharedView,
    size: u64,
    note: &[u8],
) -> Option<Vec<u8>> {
    for _attempt in 0..2 {
        let old = (*known).min(size);
        let proof = view.read().ok()?.tree.consistency_proof(old, size).ok()?;
        let req = AddCheckpoint {
            old,
            proof,
            checkpoint: note.to_vec(),
        };
        match request_cosignature(http, target, &req).await {
            Ok(lines) => {
                *known = size;
                return Some(lines);
            }
            Err(CosignError::Conflict(s)) if s <= size && s != old => *known = s,
            Err(e) => {
                tracing::warn!("witness {} did not cosign size {size}: {e}", target.name);
                return None;
            }
        }
    }
    None
}
