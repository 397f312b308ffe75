//! HTTP client of the log, for custodians, clients, the delivery server and audit.
//!
//! Nothing the log answers is trusted: checkpoints go through a
//! [`Verifier`], proofs through [`verify_inclusion`] / consistency checks.
//! [`LogClient::submit`] returns the log's answer unverified; call
//! [`LogClient::prove_included`] to get a witnessed inclusion proof.

use std::sync::OnceLock;
use std::time::Duration;

use custos_wire::statement::SignedStatement;

use crate::follow_answer::{FollowAnswer, MAX_FOLLOW_PROOFS};
use crate::log_api::{BatchResponse, ErrorBody, SubmitResponse};
use crate::merkle::{Hash, TILE_WIDTH, TilePath};
use crate::proof_json::{ProofResponse, decode_proof};
use crate::verifier::{
    InclusionVerified, VerifiedCheckpoint, Verifier, VerifyError, verify_inclusion,
};

/// Why a log request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Transport failure.
    #[error("cannot reach the log: {0}")]
    Http(#[from] reqwest::Error),
    /// The log refused the request.
    #[error("log answered {status}: {code}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Error code from the JSON body.
        code: String,
        /// Message from the JSON body.
        message: String,
    },
    /// The log's answer is malformed.
    #[error("malformed answer from the log: {0}")]
    Malformed(String),
    /// Verification failed.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// The statement could not be encoded.
    #[error("cannot encode the statement: {0}")]
    Encode(#[from] custos_wire::WireError),
    /// The audit could not replay the log.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    /// The entry did not appear in a witnessed checkpoint in time.
    #[error("entry {index} is not yet in a witnessed checkpoint (size {size}); retry later")]
    NotYetWitnessed {
        /// Entry index.
        index: u64,
        /// Size of the newest witnessed checkpoint.
        size: u64,
    },
}

/// The CA certificates that HTTPS to the log must chain to, when set.
static HTTPS_CA: OnceLock<Vec<reqwest::Certificate>> = OnceLock::new();

/// Makes every [`LogClient`] of this process trust only the CA
/// certificates of the PEM bundle `pem` for `https://` logs, instead of the
/// built-in public roots (the `custos` binary does it from `--ca`, for a
/// deployment with its own CA). Returns `Ok(false)` if a CA was set already
/// (it is not changed).
pub fn set_https_ca(pem: &[u8]) -> Result<bool, ClientError> {
    let certs = reqwest::Certificate::from_pem_bundle(pem)?;
    if certs.is_empty() {
        return Err(ClientError::Malformed(
            "the CA file holds no certificate".into(),
        ));
    }
    Ok(HTTPS_CA.set(certs).is_ok())
}

/// An HTTP client builder with the process's trust ([`set_https_ca`]).
pub fn http_client_builder() -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder();
    match HTTPS_CA.get() {
        Some(certs) => certs
            .iter()
            .fold(builder.tls_built_in_root_certs(false), |b, c| {
                b.add_root_certificate(c.clone())
            }),
        None => builder,
    }
}

/// The log's answer to a submission (not yet verified).
#[derive(Debug, Clone)]
pub struct Submission {
    /// Index of the entry.
    pub index: u64,
    /// Size of the checkpoint the proof is against.
    pub tree_size: u64,
    /// That log-signed checkpoint note.
    pub checkpoint: Vec<u8>,
    /// Inclusion proof.
    pub inclusion_proof: Vec<Hash>,
}

/// One round of [`LogClient::update_and_read`].
#[derive(Debug)]
pub struct ReadRound {
    /// The new checkpoint, accepted: witnessed by the policy's quorum and
    /// consistent with every checkpoint the verifier accepted before.
    pub checkpoint: VerifiedCheckpoint,
    /// The entries read, not yet proven included in `checkpoint`.
    pub entries: Vec<Vec<u8>>,
    /// Inclusion proofs of the first of `entries` in `checkpoint`, in the
    /// same order, not yet verified; `None` when none came (not asked
    /// for, or too many entries).
    pub inclusion_proofs: Option<Vec<Vec<Hash>>>,
}

/// A client of one log.
#[derive(Debug, Clone)]
pub struct LogClient {
    base: String,
    http: reqwest::Client,
}

impl LogClient {
    /// A client for the log at `base_url` (e.g. `http://127.0.0.1:7000`).
    pub fn new(base_url: &str) -> Result<Self, ClientError> {
        Ok(Self {
            base: base_url.trim_end_matches('/').to_owned(),
            http: http_client_builder()
                .timeout(Duration::from_secs(30))
                .build()?,
        })
    }

    /// Submits a signed statement; returns once the log holds it durably.
    pub async fn submit(&self, statement: &SignedStatement) -> Result<Submission, ClientError> {
        self.submit_raw(statement.encode()?).await
    }

    /// Submits raw bytes as a statement (for tests of the log's refusals).
    pub async fn submit_raw(&self, body: Vec<u8>) -> Result<Submission, ClientError> {
        let resp = self
            .http
            .post(format!("{}/add-statement", self.base))
            .body(body)
            .send()
            .await?;
        let r: SubmitResponse = json_or_error(resp).await?;
        Ok(Submission {
            index: r.index,
            tree_size: r.tree_size,
            checkpoint: r.checkpoint.into_bytes(),
            inclusion_proof: decode_proof(&r.inclusion_proof)
                .ok_or_else(|| ClientError::Malformed("inclusion proof".into()))?,
        })
    }

    /// Submits up to 256 statements in one request (all or nothing); returns
    /// once all are durable, each with a proof against one checkpoint.
    pub async fn submit_batch(
        &self,
        statements: &[SignedStatement],
    ) -> Result<Vec<Submission>, ClientError> {
        let mut body = Vec::new();
        for st in statements {
            let bytes = st.encode()?;
            let len = u16::try_from(bytes.len())
                .map_err(|_| ClientError::Malformed("statement too long".into()))?;
            body.extend_from_slice(&len.to_be_bytes());
            body.extend_from_slice(&bytes);
        }
        let resp = self
            .http
            .post(format!("{}/add-statements", self.base))
            .body(body)
            .send()
            .await?;
        let r: BatchResponse = json_or_error(resp).await?;
        r.entries
            .into_iter()
            .map(|e| {
                Ok(Submission {
                    index: e.index,
                    tree_size: r.tree_size,
                    checkpoint: r.checkpoint.clone().into_bytes(),
                    inclusion_proof: decode_proof(&e.inclusion_proof)
                        .ok_or_else(|| ClientError::Malformed("inclusion proof".into()))?,
                })
            })
            .collect()
    }

    /// The checkpoint the log serves (cosigned when witnesses are configured).
    pub async fn checkpoint(&self) -> Result<Vec<u8>, ClientError> {
        self.get_bytes("checkpoint").await
    }

    /// The deployment manifest the log serves (compare its hash out of band).
    pub async fn manifest(&self) -> Result<String, ClientError> {
        let b = self.get_bytes("manifest").await?;
        String::from_utf8(b).map_err(|_| ClientError::Malformed("manifest is not UTF-8".into()))
    }

    /// An inclusion proof for `index` in the tree of `size`.
    pub async fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ClientError> {
        self.proof(&format!("proof/inclusion?index={index}&size={size}"))
            .await
    }

    /// A consistency proof from `old` to `size`.
    pub async fn consistency_proof(&self, old: u64, size: u64) -> Result<Vec<Hash>, ClientError> {
        self.proof(&format!("proof/consistency?old={old}&size={size}"))
            .await
    }

    /// Entries `[start, end)`, read through C2SP entry bundles; `end` must
    /// not exceed the size of a checkpoint the log served.
    pub async fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, ClientError> {
        let mut out = Vec::new();
        let mut n = start / TILE_WIDTH;
        while n * TILE_WIDTH < end {
            let width = (end - n * TILE_WIDTH).min(TILE_WIDTH);
            let path = TilePath {
                level: None,
                n,
                width,
            }
            .to_path();
            let bundle = self.get_bytes(&format!("tile/{path}")).await?;
            let mut rest = &bundle[..];
            let mut i = n * TILE_WIDTH;
            while !rest.is_empty() {
                let (len, tail) = rest
                    .split_first_chunk::<2>()
                    .ok_or_else(|| ClientError::Malformed("entry bundle".into()))?;
                let len = usize::from(u16::from_be_bytes(*len));
                let (entry, tail) = tail
                    .split_at_checked(len)
                    .ok_or_else(|| ClientError::Malformed("entry bundle".into()))?;
                if i >= start && i < end {
                    out.push(entry.to_vec());
                }
                i += 1;
                rest = tail;
            }
            if i != n * TILE_WIDTH + width {
                return Err(ClientError::Malformed(
                    "entry bundle has the wrong count".into(),
                ));
            }
            n += 1;
        }
        Ok(out)
    }

    /// Fetches the served checkpoint and a consistency proof from the
    /// verifier's last checkpoint, and updates the verifier.
    pub async fn update(&self, verifier: &mut Verifier) -> Result<VerifiedCheckpoint, ClientError> {
        Ok(self.update_and_read(verifier, 0, 0, 0).await?.checkpoint)
    }

    /// As [`LogClient::update`], and reads the entries from `start` on (at
    /// most `max`, none past the new checkpoint) in the same request as the
    /// checkpoint and the consistency proof ([`LogClient::follow`]; entries
    /// beyond what one answer carries come through the tiles). The entries
    /// are not proven yet: each must be proven included in the returned
    /// checkpoint before it is trusted.
    ///
    /// When there are at most `prove_up_to` entries (and at most
    /// [`MAX_FOLLOW_PROOFS`]), the same answer also carries an inclusion
    /// proof of each in the new checkpoint (in the entries' order; not
    /// verified here: [`verify_inclusion`] checks one against the returned
    /// checkpoint). Otherwise none comes.
    pub async fn update_and_read(
        &self,
        verifier: &mut Verifier,
        start: u64,
        max: u64,
        prove_up_to: u64,
    ) -> Result<ReadRound, ClientError> {
        let known = verifier.last().map_or(0, VerifiedCheckpoint::size);
        let prove = prove_up_to.min(MAX_FOLLOW_PROOFS as u64);
        let answer = self.follow(start, known, max, prove).await?;
        // The very note accepted last needs no second check of its
        // signatures (the common answer when nothing was logged since).
        let offered = match verifier.last() {
            Some(last) if last.note() == answer.checkpoint.as_slice() => last.clone(),
            _ => verifier.policy().verify_checkpoint(&answer.checkpoint)?,
        };
        let end = offered.size().min(start.saturating_add(max)).max(start);
        let got = u64::try_from(answer.entries.len()).unwrap_or(u64::MAX);
        let read_to = start.saturating_add(got);
        if read_to > end {
            return Err(ClientError::Malformed(
                "the log's follow answer holds entries beyond the checkpoint or the count asked"
                    .into(),
            ));
        }
        let mut entries = answer.entries;
        if read_to < end {
            // More than one answer carries: the rest through the tiles.
            entries.extend(self.entries(read_to, end).await?);
        }
        Ok(ReadRound {
            checkpoint: verifier.accept_checkpoint(offered, &answer.consistency)?,
            entries,
            inclusion_proofs: answer.inclusion,
        })
    }

    /// One round of following in one request (`GET /follow`, see
    /// [`crate::follow_answer`]): the served checkpoint, a consistency proof
    /// from `known`, entries from `start` (at most `max`) and, if at most
    /// `prove` of them, their inclusion proofs. Unverified.
    pub async fn follow(
        &self,
        start: u64,
        known: u64,
        max: u64,
        prove: u64,
    ) -> Result<FollowAnswer, ClientError> {
        let bytes = self
            .get_bytes(&format!(
                "follow?from={start}&known={known}&max={max}&prove={prove}"
            ))
            .await?;
        FollowAnswer::decode(&bytes)
            .map_err(|e| ClientError::Malformed(format!("the log's follow answer: {e}")))
    }

    /// Proves that `entry` is entry `index` of a checkpoint that the
    /// verifier's policy accepts (witness quorum included) and that is
    /// consistent with everything the verifier saw before.
    pub async fn prove_included(
        &self,
        verifier: &mut Verifier,
        index: u64,
        entry: &[u8],
    ) -> Result<(VerifiedCheckpoint, InclusionVerified), ClientError> {
        let cp = self.update(verifier).await?;
        if index >= cp.size() {
            return Err(ClientError::NotYetWitnessed {
                index,
                size: cp.size(),
            });
        }
        let proof = self.inclusion_proof(index, cp.size()).await?;
        let ok = verify_inclusion(&cp, index, entry, &proof)?;
        Ok((cp, ok))
    }

    /// Publishes the SHA-256 of `manifest` as a `ManifestPublication`
    /// signed with the log's own key (the key the manifest names for the
    /// log), so that devices can pin the manifest against the log. The
    /// statement has no timestamp: publishing the same manifest again is
    /// answered with the existing entry.
    pub async fn publish_manifest(
        &self,
        log_key: &ed25519_dalek::SigningKey,
        manifest: &custos_wire::manifest::Manifest,
    ) -> Result<Submission, ClientError> {
        use custos_wire::statement::{ManifestPublication, Statement};
        let log = manifest
            .log()
            .ok_or_else(|| ClientError::Malformed("the manifest names no log".into()))?;
        let manifest_hash = manifest
            .hash()
            .map_err(|e| ClientError::Malformed(e.to_string()))?;
        let statement = Statement::ManifestPublication(ManifestPublication {
            log: log.name.clone(),
            manifest_hash,
        });
        self.submit(&SignedStatement::sign(&statement, log_key)?)
            .await
    }

    async fn proof(&self, path: &str) -> Result<Vec<Hash>, ClientError> {
        let resp = self
            .http
            .get(format!("{}/{path}", self.base))
            .send()
            .await?;
        let r: ProofResponse = json_or_error(resp).await?;
        decode_proof(&r.proof).ok_or_else(|| ClientError::Malformed("proof".into()))
    }

    async fn get_bytes(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        let resp = self
            .http
            .get(format!("{}/{path}", self.base))
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(refused(resp).await);
        }
        Ok(resp.bytes().await?.to_vec())
    }
}

async fn refused(resp: reqwest::Response) -> ClientError {
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap_or_default();
    match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(e) => ClientError::Refused {
            status,
            code: e.error,
            message: e.message,
        },
        Err(_) => ClientError::Refused {
            status,
            code: "unknown".into(),
            message: String::from_utf8_lossy(&body).into_owned(),
        },
    }
}

async fn json_or_error<T: serde::de::DeserializeOwned>(
    resp: reqwest::Response,
) -> Result<T, ClientError> {
    if !resp.status().is_success() {
        return Err(refused(resp).await);
    }
    let body = resp.bytes().await?;
    serde_json::from_slice(&body).map_err(|e| ClientError::Malformed(e.to_string()))
}
