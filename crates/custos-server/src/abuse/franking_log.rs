//! Publishing the franking key in the transparency log.
//!
//! The service learns its log from a [`FrankingLogConfig`]: the log's URL,
//! the deployment manifest (which names the log, its witnesses, the quorum
//! and the provider), and the provider's statement signing key, which must
//! be the manifest key of a participant with role `provider`.
//! [`publish_franking_key`] signs a `provider_franking_key` statement for the
//! service's franking key, submits it, waits until a checkpoint that the
//! manifest's trust policy accepts (log signature and witness quorum) covers
//! it, verifies the inclusion proof, stores the proof in
//! `DATA/franking-key.proof.json` and hands it to the [`FrankingPolicy`].
//! On restart a stored proof for the same key is verified again and reused.
//!
//! # Security meaning
//! The proof makes the franking key attributable to the provider in public:
//! only a manifest participant with role `provider` may publish this
//! statement type (the log refuses anyone else), and the log, watched by
//! its witnesses, cannot show the statement to one verifier and hide it
//! from another. A service with no log configured says so in every package
//! ([`FrankingKeyLogProof::NoLog`]); one whose log has not answered yet says
//! [`FrankingKeyLogProof::Pending`]. Neither is ever presented as proven.
//! The statement signing key never leaves this process and is not logged.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use custos_tlog::{LogClient, TrustPolicy};
use custos_wire::manifest::{Manifest, Role};
use custos_wire::statement::{ProviderFrankingKey, SignedStatement, Statement};
use ed25519_dalek::SigningKey;

use crate::abuse::franking::FrankingPolicy;
use custos_verify::package::{FrankingKeyLogProof, KeyProofError, LogProof};

/// File in the data directory holding the franking key's log proof (JSON).
pub const PROOF_FILE: &str = "franking-key.proof.json";

/// Where and as whom the service publishes its franking key.
pub struct FrankingLogConfig {
    /// Base URL of the transparency log.
    pub log_url: String,
    /// The deployment manifest: the log's and witnesses' keys, the quorum,
    /// and the provider participant.
    pub manifest: Manifest,
    /// The provider's statement signing key (its manifest key). Zeroized on
    /// drop by `ed25519_dalek`.
    pub statement_key: SigningKey,
    /// How long to wait for a witnessed checkpoint covering the statement.
    pub witness_timeout: Duration,
}

impl std::fmt::Debug for FrankingLogConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrankingLogConfig")
            .field("log_url", &self.log_url)
            .field(
                "statement_key",
                &hex::encode(self.statement_key.verifying_key().to_bytes()),
            )
            .finish_non_exhaustive()
    }
}

/// Why the franking key could not be published or proven.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The manifest gives no usable trust policy.
    #[error("the manifest gives no trust policy: {0}")]
    Policy(String),
    /// The statement key is not a provider of the manifest.
    #[error(
        "the statement key {0} is not the key of a `provider` participant of the manifest; add it there"
    )]
    NotAProvider(String),
    /// The statement could not be built.
    #[error("cannot build the statement: {0}")]
    Statement(#[from] custos_wire::WireError),
    /// The log refused or could not be reached.
    #[error("log: {0}")]
    Log(#[from] custos_tlog::ClientError),
    /// The log's answer does not prove the statement.
    #[error("the log's proof does not verify: {0}")]
    Proof(#[from] KeyProofError),
    /// The log's checkpoint or its entries do not verify (a log that
    /// answers with what its witnesses did not cosign).
    #[error("the log does not verify: {0}")]
    Unverified(String),
    /// No witnessed checkpoint covered the statement in time.
    #[error("no witnessed checkpoint covers entry {index} after {waited:?}; retry later")]
    NotWitnessed {
        /// Index of the statement.
        index: u64,
        /// How long we waited.
        waited: Duration,
    },
    /// The proof file could not be written.
    #[error("cannot store {path}: {message}")]
    Store {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

/// Publishes (or reloads) the franking key's log proof and sets it on
/// `policy`. Returns the proof. See the module docs.
pub async fn publish_franking_key(
    policy: &FrankingPolicy,
    config: &FrankingLogConfig,
    data_dir: &Path,
) -> Result<LogProof, PublishError> {
    let trust = TrustPolicy::from_manifest(&config.manifest)
        .map_err(|e| PublishError::Policy(e.to_string()))?;
    let author = hex::encode(config.statement_key.verifying_key().to_bytes());
    let provider = config
        .manifest
        .with_role(Role::Provider)
        .find(|p| p.public_key.eq_ignore_ascii_case(&author))
        .ok_or_else(|| PublishError::NotAProvider(author.clone()))?
        .name
        .clone();
    let path = data_dir.join(PROOF_FILE);
    if let Some(proof) = load_stored(&path, &trust, policy) {
        policy.set_log_proof(FrankingKeyLogProof::Logged(proof.clone()));
        return Ok(proof);
    }
    let statement = SignedStatement::sign(
        &Statement::ProviderFrankingKey(ProviderFrankingKey {
            provider,
            public_key: policy.public_key(),
            valid_from: policy.valid_from(),
        }),
        &config.statement_key,
    )?;
    let client = LogClient::new(&config.log_url)?;
    let included = log_and_prove(&client, &trust, &statement, config.witness_timeout).await?;
    let index = included.index;
    let proof = LogProof::new(
        &statement.encode()?,
        index,
        included.checkpoint.note(),
        &included.proof,
    );
    proof.verify(&trust)?;
    let json = serde_json::to_vec_pretty(&proof).map_err(|e| PublishError::Store {
        path: path.clone(),
        message: e.to_string(),
    })?;
    custos_durable::write_atomic(&path, &json).map_err(|e| PublishError::Store {
        path: path.clone(),
        message: e.to_string(),
    })?;
    tracing::info!(index, origin = %trust.origin(), "franking key published in the transparency log");
    policy.set_log_proof(FrankingKeyLogProof::Logged(proof.clone()));
    Ok(proof)
}

/// A statement the log included in a witnessed checkpoint.
pub(crate) struct Included {
    /// Its index.
    pub index: u64,
    /// The checkpoint (log signature and witness quorum verified).
    pub checkpoint: custos_tlog::VerifiedCheckpoint,
    /// Its inclusion proof in that checkpoint (verified).
    pub proof: Vec<custos_tlog::Hash>,
}

/// Submits `statement` and waits (at most `timeout`) for a checkpoint with
/// the log's signature and the witness quorum that includes it; returns the
/// verified inclusion.
pub(crate) async fn log_and_prove(
    client: &LogClient,
    trust: &TrustPolicy,
    statement: &SignedStatement,
    timeout: Duration,
) -> Result<Included, PublishError> {
    let entry = statement.encode()?;
    let index = client.submit(statement).await?.index;
    let started = std::time::Instant::now();
    loop {
        let note = client.checkpoint().await?;
        // A checkpoint without the quorum yet (witnesses still cosigning)
        // or one that does not cover the entry yet: wait for the next.
        if let Ok(cp) = trust.verify_checkpoint(&note)
            && cp.size() > index
        {
            let proof = client.inclusion_proof(index, cp.size()).await?;
            if custos_tlog::verify_inclusion(&cp, index, &entry, &proof).is_ok() {
                return Ok(Included {
                    index,
                    checkpoint: cp,
                    proof,
                });
            }
        }
        if started.elapsed() >= timeout {
            return Err(PublishError::NotWitnessed {
                index,
                waited: started.elapsed(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every entry of the log up to its newest witnessed checkpoint (the log's
/// signature and the witness quorum verified), checked to hash to that
/// checkpoint's root: what the provider reads back from its own log when it
/// starts (interceptions to keep, the key directory's last logged epoch).
pub(crate) async fn witnessed_entries(
    config: &FrankingLogConfig,
) -> Result<Vec<Vec<u8>>, PublishError> {
    let trust = TrustPolicy::from_manifest(&config.manifest)
        .map_err(|e| PublishError::Policy(e.to_string()))?;
    let client = LogClient::new(&config.log_url)?;
    let note = client.checkpoint().await?;
    let cp = trust
        .verify_checkpoint(&note)
        .map_err(|e| PublishError::Unverified(e.to_string()))?;
    let entries = client.entries(0, cp.size()).await?;
    let mut root = custos_tlog::StreamingRoot::new();
    for e in &entries {
        root.push_entry(e);
    }
    if root.size() != cp.size() || root.root() != cp.hash() {
        return Err(PublishError::Unverified(
            "its entries do not hash to its witnessed checkpoint".into(),
        ));
    }
    Ok(entries)
}

/// A stored proof that still verifies and is for the current key.
fn load_stored(path: &Path, trust: &TrustPolicy, policy: &FrankingPolicy) -> Option<LogProof> {
    let bytes = std::fs::read(path).ok()?;
    let proof: LogProof = serde_json::from_slice(&bytes).ok()?;
    match proof.verify(trust) {
        Ok(k) if k.public_key == policy.public_key() => Some(proof),
        Ok(_) => {
            tracing::warn!("stored franking-key proof is for another key; publishing again");
            None
        }
        Err(e) => {
            tracing::warn!(%e, "stored franking-key proof does not verify; publishing again");
            None
        }
    }
}

/// Keeps trying [`publish_franking_key`] (every `retry`) until it succeeds;
/// the policy shows [`FrankingKeyLogProof::Pending`] meanwhile. `serve`
/// runs this in the background when a log is configured.
pub async fn maintain(
    policy: Arc<FrankingPolicy>,
    config: Arc<FrankingLogConfig>,
    data_dir: PathBuf,
    retry: Duration,
) {
    policy.set_log_proof(FrankingKeyLogProof::Pending);
    loop {
        match publish_franking_key(&policy, &config, &data_dir).await {
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(%e, "franking key not yet proven in the log; retrying");
                tokio::time::sleep(retry).await;
            }
        }
    }
}
