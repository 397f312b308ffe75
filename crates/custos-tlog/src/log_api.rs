//! The log's HTTP answers and request framing, shared by the log server and
//! its client. Nothing here is trusted by a verifier: checkpoints and proofs
//! in these answers go through [`crate::verifier`].

use serde::{Deserialize, Serialize};

/// The JSON error body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `bad_signature`.
    pub error: String,
    /// Human-readable explanation with a hint.
    pub message: String,
}

/// The JSON answer to `POST /add-statement`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubmitResponse {
    /// Index of the entry.
    pub index: u64,
    /// Size of the checkpoint the proof is against.
    pub tree_size: u64,
    /// That checkpoint (log-signed note text).
    pub checkpoint: String,
    /// RFC 6962 inclusion proof, base64 hashes.
    pub inclusion_proof: Vec<String>,
}

/// Most statements in one `POST /add-statements` request.
pub const MAX_STATEMENTS_PER_REQUEST: usize = 256;

/// The JSON answer to `POST /add-statements`: one checkpoint, one proof per statement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchResponse {
    /// Size of the checkpoint every proof is against.
    pub tree_size: u64,
    /// That checkpoint (log-signed note text).
    pub checkpoint: String,
    /// Index and inclusion proof of each statement, in request order.
    pub entries: Vec<BatchEntry>,
}

/// One statement's place in a [`BatchResponse`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchEntry {
    /// Index of the entry.
    pub index: u64,
    /// RFC 6962 inclusion proof, base64 hashes.
    pub inclusion_proof: Vec<String>,
}

/// Splits a bundle of `u16 length || signed statement` records (the C2SP
/// entry-bundle framing).
pub fn split_bundle(body: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (len, tail) = rest.split_first_chunk::<2>()?;
        let (entry, tail) = tail.split_at_checked(usize::from(u16::from_be_bytes(*len)))?;
        out.push(entry.to_vec());
        rest = tail;
    }
    Some(out)
}
