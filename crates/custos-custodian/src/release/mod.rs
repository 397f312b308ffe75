//! The release path: every check of DESIGN.md §4 step 3, the logged
//! `KeyRelease`, and HPKE-sealed partial keys.
//!
//! # Contract for the service (`POST /v1/release`)
//! - Build one [`Releaser`] per custodian with [`Releaser::open`]: the
//!   manifest, this custodian's manifest name and Ed25519 signing key, a
//!   [`custos_tlog::LogClient`], a data directory for the persisted release
//!   state, the [`custos_clock::SharedClock`], and a [`ShareSource`] (the
//!   share store implements it: live share, erased, or unknown per day).
//! - Call [`Releaser::release`] with the request body (a
//!   `custos_wire::release::ReleaseRequest`). `Ok(bytes)` is the encoded
//!   `ReleaseResponse`, answered `200` with `application/octet-stream`.
//!   `Err(refusal)` is answered with [`ReleaseRefusal::status`] and the JSON
//!   body `{"error": refusal.code(), "message": refusal.to_string()}`;
//!   [`refusal_body`] builds that body.
//! - `release` may be called concurrently; releases are serialised inside.
//!   It returns only after this custodian's `KeyRelease` is proven in a
//!   checkpoint with the manifest's witness quorum. Dropping the future
//!   before that returns nothing; a retry of the same request reuses the
//!   logged release instead of logging it again.
//!
//! # Guarantees
//! - Each check is made independently and fails with its own
//!   [`ReleaseRefusal`] variant; sealing needs a [`checks::WarrantChecked`],
//!   which only passing every check can build.
//! - A day's share is released no earlier than that day starts, never after
//!   its erasure, and never outside the warrant's conversations and days.
//! - The release state (quota counters, revocations seen, releases and their
//!   log indices) and the last-seen checkpoint survive restarts.
//!
//! # Not guaranteed
//! Revocations are read from the log's entry bundles up to the newest
//! witnessed checkpoint without re-hashing the tiles; a log that serves other
//! entry bytes than it committed can delay a revocation from being seen.
//! A crash after the log appended a `KeyRelease` but before any checkpoint
//! witnessed it makes a retried request log the release a second time (the
//! log then over-counts, never under-counts).

pub mod checks;
pub mod http;
mod refusal;
mod seal;
mod shares;
mod state;

use std::path::PathBuf;
use std::time::Duration;

use custos_clock::SharedClock;
use custos_escrow::{EscrowIdentity, SecretShare};
use custos_tlog::{ClientError, LogClient, TrustPolicy, Verifier};
use custos_wire::manifest::{Manifest, Role};
use custos_wire::release::{ReleaseRequest, ReleaseResponse, ReleasedShares};
use custos_wire::statement::{
    KeyRelease, SignedStatement, Statement, StatementKind, warrant_commitment,
};
use custos_wire::warrant::Warrant;
use ed25519_dalek::SigningKey;
use tokio::sync::Mutex;

pub use refusal::ReleaseRefusal;
pub use seal::seal;
pub use shares::{MemoryShares, ShareSource, ShareSourceError, ShareStatus};
pub use state::{ReleaseRecord, ReleaseState, month_of_day};

use checks::WarrantChecked;
use state::StateFile;

/// Default number of warrants per authority per calendar month.
pub const DEFAULT_MONTHLY_QUOTA: u32 = 20;

/// How a custodian's release path is set up.
#[derive(Debug)]
pub struct ReleaserConfig {
    /// The deployment manifest (courts, authorities, policy, log, witnesses).
    pub manifest: Manifest,
    /// This custodian's manifest name.
    pub name: String,
    /// This custodian's manifest signing key (signs `KeyRelease`).
    pub signing_key: SigningKey,
    /// The log.
    pub log: LogClient,
    /// Directory of the release state and the last-seen checkpoint.
    pub data: PathBuf,
    /// The one clock.
    pub clock: SharedClock,
    /// Warrants per authority per calendar month.
    pub monthly_quota: u32,
    /// How long to wait for the `KeyRelease` to be witnessed.
    pub witness_timeout: Duration,
}

struct Inner {
    state: StateFile,
    verifier: Verifier,
}

/// A custodian's release path. See the module docs for the contract.
pub struct Releaser<S> {
    config: ReleaserConfig,
    policy: TrustPolicy,
    shares: S,
    inner: Mutex<Inner>,
}

impl<S> std::fmt::Debug for Releaser<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Releaser")
            .field("name", &self.config.name)
            .finish_non_exhaustive()
    }
}

/// The JSON body of a refusal: `{"error": code, "message": text}`.
pub fn refusal_body(refusal: &ReleaseRefusal) -> String {
    serde_json::json!({ "error": refusal.code(), "message": refusal.to_string() }).to_string()
}

fn internal(e: impl std::fmt::Display) -> ReleaseRefusal {
    ReleaseRefusal::Internal(e.to_string())
}

fn log_down(e: impl std::fmt::Display) -> ReleaseRefusal {
    ReleaseRefusal::LogUnavailable(e.to_string())
}

impl<S: ShareSource> Releaser<S> {
    /// Opens the release state under `config.data` (created if missing).
    pub fn open(config: ReleaserConfig, shares: S) -> Result<Self, ReleaseRefusal> {
        let me = config
            .manifest
            .participant(&config.name)
            .filter(|p| p.role == Role::Custodian)
            .ok_or_else(|| internal(format!("`{}` is not a manifest custodian", config.name)))?;
        let key = me.verifying_key().map_err(internal)?;
        if key != config.signing_key.verifying_key() {
            return Err(internal(
                "the signing key is not this custodian's manifest key",
            ));
        }
        std::fs::create_dir_all(&config.data).map_err(internal)?;
        let policy = TrustPolicy::from_manifest(&config.manifest).map_err(internal)?;
        let verifier = Verifier::open(policy.clone(), &config.data.join("release-checkpoint"))
            .map_err(internal)?;
        let state = StateFile::open(&config.data.join("release-state.json"))?;
        Ok(Self {
            config,
            policy,
            shares,
            inner: Mutex::new(Inner { state, verifier }),
        })
    }

    /// The persisted state (for tests and status pages).
    pub async fn state(&self) -> ReleaseState {
        self.inner.lock().await.state.get().clone()
    }

    /// Checks a release request and, if every check passes, logs this
    /// custodian's `KeyRelease`, waits for it to be witnessed, and returns the
    /// encoded response with the sealed partial keys.
    pub async fn release(&self, request_bytes: &[u8]) -> Result<Vec<u8>, ReleaseRefusal> {
        let cfg = &self.config;
        let malformed = |e: custos_wire::WireError| ReleaseRefusal::MalformedRequest(e.to_string());
        let request = ReleaseRequest::decode(request_bytes).map_err(malformed)?;
        let f = request.fields();
        if f.custodian != cfg.name {
            return Err(ReleaseRefusal::WrongCustodian(f.custodian.clone()));
        }
        let warrant = Warrant::decode(&f.warrant).map_err(malformed)?;
        let clock = cfg.clock.as_ref();
        let court = checks::check_court(&cfg.manifest, &warrant)?;
        let signed = checks::check_request_signature(&cfg.manifest, &warrant, &request)?;
        let commitment = checks::check_commitment(&cfg.manifest, &warrant, &f.warrant, &request)?;
        let policy = checks::check_policy(&cfg.manifest.policy, &warrant)?;
        let expiry = checks::check_not_expired(clock, &warrant)?;
        let within = checks::check_within_warrant(clock, &warrant, &f.requested)?;

        let mut inner = self.inner.lock().await;
        let last = inner.verifier.last().cloned();
        let offered = self
            .policy
            .verify_checkpoint(&f.checkpoint)
            .map_err(|e| ReleaseRefusal::CheckpointNotWitnessed(e.to_string()))?;
        let proof = match &last {
            Some(l) if l.size() > 0 && l.size() < offered.size() => self
                .config
                .log
                .consistency_proof(l.size(), offered.size())
                .await
                .map_err(log_down)?,
            Some(l) if offered.size() > 0 && offered.size() < l.size() => self
                .config
                .log
                .consistency_proof(offered.size(), l.size())
                .await
                .map_err(log_down)?,
            _ => Vec::new(),
        };
        let checkpoint =
            checks::check_checkpoint(&self.policy, &f.checkpoint, last.as_ref(), &proof)?;
        let inclusion = checks::check_inclusion(&checkpoint, &request)?;
        if last
            .as_ref()
            .is_none_or(|l| checkpoint.checkpoint().size() > l.size())
        {
            inner
                .verifier
                .update_checkpoint(&f.checkpoint, &proof)
                .map_err(|e| ReleaseRefusal::CheckpointInconsistent(e.to_string()))?;
        }

        // Revocations (and own releases) up to the newest witnessed checkpoint.
        self.scan_log(&mut inner).await?;
        let commitment_hash = warrant_commitment(&f.salt, &f.warrant);
        let revoked_key = format!(
            "{}:{}",
            hex::encode(commitment_hash),
            warrant.fields().court
        );
        let revocation =
            checks::check_not_revoked(inner.state.get().revoked.contains(&revoked_key))?;

        let authority = warrant.fields().authority.clone();
        let month = month_of_day(clock.today());
        let warrant_hex = hex::encode(commitment_hash);
        let used = inner
            .state
            .get()
            .quota
            .get(&authority)
            .and_then(|m| m.get(&month));
        let quota = checks::check_quota(
            &authority,
            cfg.monthly_quota,
            used.map_or(0, |s| s.len()),
            used.is_some_and(|s| s.contains(&warrant_hex)),
        )?;

        let mut day_shares = std::collections::BTreeMap::<u32, SecretShare>::new();
        for cd in &f.requested {
            if day_shares.contains_key(&cd.day) {
                continue;
            }
            match self.shares.share(cd.day).await.map_err(internal)? {
                ShareStatus::Live(s) => {
                    day_shares.insert(cd.day, s);
                }
                ShareStatus::Erased => return Err(ReleaseRefusal::DayErased { day: cd.day }),
                ShareStatus::Unknown => return Err(ReleaseRefusal::DayUnknown { day: cd.day }),
            }
        }
        let checked = WarrantChecked::assemble(
            &court,
            &signed,
            &commitment,
            &checkpoint,
            &inclusion,
            &policy,
            &expiry,
            &revocation,
            &within,
            &quota,
        );

        let request_hash = request.hash().map_err(internal)?;
        let index = self
            .log_release(
                &mut inner,
                &request,
                request_hash,
                &warrant_hex,
                &authority,
                month,
            )
            .await?;
        drop(inner);

        let mut released = Vec::with_capacity(f.requested.len());
        for cd in &f.requested {
            let share = day_shares
                .get(&cd.day)
                .ok_or_else(|| internal("share missing after the checks"))?;
            let identity = EscrowIdentity::new(&cd.conversation.0, cd.day);
            released.push((*cd, share.extract(&identity).to_bytes()));
        }
        let (enc, sealed) = seal(
            &checked,
            &warrant.fields().authority_hpke_key,
            &request_hash,
            &ReleasedShares { shares: released },
        )?;
        ReleaseResponse {
            custodian: cfg.name.clone(),
            request_hash,
            key_release_index: index,
            enc,
            sealed,
        }
        .encode()
        .map_err(internal)
    }

    /// Logs (or finds again) the `KeyRelease` of this request and waits for
    /// it to be in a witnessed checkpoint. Returns its log index.
    async fn log_release(
        &self,
        inner: &mut Inner,
        request: &ReleaseRequest,
        request_hash: [u8; 32],
        warrant_hex: &str,
        authority: &str,
        month: u32,
    ) -> Result<u64, ReleaseRefusal> {
        let cfg = &self.config;
        let key = hex::encode(request_hash);
        let record = match inner.state.get().releases.get(&key) {
            Some(r) => r.clone(),
            None => {
                let n = u16::try_from(request.fields().requested.len()).map_err(internal)?;
                let statement = Statement::KeyRelease(KeyRelease {
                    warrant: hex_array(warrant_hex)?,
                    custodian: cfg.name.clone(),
                    conversation_days: n,
                    request_hash,
                    released_at: cfg.clock.now_secs(),
                });
                let signed =
                    SignedStatement::sign(&statement, &cfg.signing_key).map_err(internal)?;
                let record = ReleaseRecord {
                    statement: hex::encode(signed.encode().map_err(internal)?),
                    index: None,
                    warrant: warrant_hex.to_owned(),
                };
                // Commit point: the pending release and the quota it uses are
                // durable before the log sees the statement.
                let r = record.clone();
                inner.state.update(|st| {
                    st.quota
                        .entry(authority.to_owned())
                        .or_default()
                        .entry(month)
                        .or_default()
                        .insert(warrant_hex.to_owned());
                    st.releases.insert(key.clone(), r);
                })?;
                record
            }
        };
        let bytes = hex::decode(&record.statement).map_err(internal)?;
        let index = match record.index {
            Some(i) => i,
            None => {
                let signed = SignedStatement::decode(&bytes).map_err(internal)?;
                let sub = cfg.log.submit(&signed).await.map_err(log_down)?;
                inner.state.update(|st| {
                    if let Some(r) = st.releases.get_mut(&key) {
                        r.index = Some(sub.index);
                    }
                })?;
                sub.index
            }
        };
        // Nothing leaves before the KeyRelease is in a witnessed checkpoint.
        let deadline = tokio::time::Instant::now() + cfg.witness_timeout;
        loop {
            match cfg
                .log
                .prove_included(&mut inner.verifier, index, &bytes)
                .await
            {
                Ok(_) => return Ok(index),
                Err(ClientError::NotYetWitnessed { .. })
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(log_down(e)),
            }
        }
    }

    /// Reads the log from the last scanned entry up to the newest witnessed
    /// checkpoint: records revocations by their court and finds this
    /// custodian's pending releases again.
    async fn scan_log(&self, inner: &mut Inner) -> Result<(), ReleaseRefusal> {
        let cfg = &self.config;
        let cp = cfg
            .log
            .update(&mut inner.verifier)
            .await
            .map_err(log_down)?;
        let start = inner.state.get().scanned;
        if cp.size() <= start {
            return Ok(());
        }
        let entries = cfg.log.entries(start, cp.size()).await.map_err(log_down)?;
        let pending: Vec<(String, String)> = inner
            .state
            .get()
            .releases
            .iter()
            .filter(|(_, r)| r.index.is_none())
            .map(|(k, r)| (k.clone(), r.statement.clone()))
            .collect();
        let mut revoked = Vec::new();
        let mut found = Vec::new();
        for (i, entry) in (start..).zip(entries.iter()) {
            if let Some((k, _)) = pending
                .iter()
                .find(|(_, s)| hex::decode(s).is_ok_and(|b| &b == entry))
            {
                found.push((k.clone(), i));
            }
            let Ok(signed) = SignedStatement::decode(entry) else {
                continue;
            };
            if signed.statement_bytes().get(1) != Some(&StatementKind::WarrantRevocation.tag()) {
                continue;
            }
            let Ok(Statement::WarrantRevocation(r)) = signed.verify() else {
                continue;
            };
            let by_court = cfg
                .manifest
                .participant(&r.court)
                .filter(|p| p.role == Role::Court)
                .and_then(|p| p.verifying_key().ok())
                .is_some_and(|k| k.as_bytes() == signed.author());
            if by_court {
                revoked.push(format!("{}:{}", hex::encode(r.warrant), r.court));
            }
        }
        let end = cp.size();
        inner.state.update(|st| {
            st.scanned = end;
            st.revoked.extend(revoked);
            for (k, i) in found {
                if let Some(r) = st.releases.get_mut(&k) {
                    r.index = Some(i);
                }
            }
        })
    }
}

fn hex_array(s: &str) -> Result<[u8; 32], ReleaseRefusal> {
    hex::decode(s)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| internal("bad commitment hex"))
}
