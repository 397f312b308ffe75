//! Proofs as JSON arrays of base64 hashes, as the log's proof endpoints serve them.

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use serde::{Deserialize, Serialize};

use crate::merkle::{Hash, MAX_PROOF_HASHES};

/// `{"proof": ["<base64 hash>", ...]}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProofResponse {
    /// The proof's hashes, base64.
    pub proof: Vec<String>,
}

/// Encodes hashes as base64 strings.
pub fn encode_proof(proof: &[Hash]) -> Vec<String> {
    proof.iter().map(|h| BASE64_STANDARD.encode(h.0)).collect()
}

/// Decodes base64 hashes; `None` if any is malformed or there are more than
/// [`MAX_PROOF_HASHES`].
pub fn decode_proof(proof: &[String]) -> Option<Vec<Hash>> {
    if proof.len() > MAX_PROOF_HASHES {
        return None;
    }
    proof
        .iter()
        .map(|s| {
            let raw = BASE64_STANDARD.decode(s).ok()?;
            Some(Hash(raw.try_into().ok()?))
        })
        .collect()
}
