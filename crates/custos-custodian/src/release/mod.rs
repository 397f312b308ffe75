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
//! - Every log entry the release path acts on (revocations, its own
//!   releases and erasures, commitments, extensions, unsealings) is re-hashed
//!   against a witnessed checkpoint first; a log serving altered entries gets
//!   [`ReleaseRefusal::LogInconsistent`] and nothing is released.
//! - Idempotent across restarts: a `KeyRelease` is persisted as pending
//!   before it is submitted, the same signed bytes are resubmitted on a
//!   retry (the log answers a duplicate with the existing index), and at
//!   start the whole log is re-read so that a release the log holds is found
//!   again even when the state file was lost or restored from an older copy.
//! - A day whose `DayKeyErasure` by this custodian is in the log is refused
//!   as erased, whatever the share store says.
//!
//! # Not guaranteed
//! If the state file is lost while a release is pending and the log never
//! appended it, the pending release is forgotten: harmless, since no share
//! left before its inclusion. With the state file and the verifier's
//! checkpoint file both lost, the custodian trusts the first witnessed
//! checkpoint it sees again (the witnesses still vouch for it).

pub mod checks;
pub mod http;
mod logscan;
mod refusal;
mod seal;
mod shares;
mod state;
mod unseal;

use std::path::PathBuf;
use std::time::Duration;

use custos_clock::SharedClock;
use custos_escrow::{EscrowIdentity, SecretShare};
use custos_tlog::{ClientError, LogClient, TrustPolicy, Verifier};
use custos_wire::manifest::{Manifest, Role};
use custos_wire::release::{ReleaseRequest, ReleaseResponse, ReleasedShares};
use custos_wire::statement::{KeyRelease, SignedStatement, Statement, warrant_commitment};
use custos_wire::warrant::Warrant;
use ed25519_dalek::SigningKey;
use tokio::sync::Mutex;

pub use refusal::ReleaseRefusal;
pub use seal::seal;
pub use shares::{MemoryShares, ShareSource, ShareSourceError, ShareStatus};
pub use state::{KnownWarrant, ReleaseRecord, ReleaseState, month_of_day};
pub use unseal::{Embargo, effective_embargo};

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
    /// What the verified log proved since this process started (`None`
    /// until the first scan, which re-reads the whole log).
    facts: Option<logscan::LogFacts>,
    /// Unsealings submitted by this process, by commitment: resubmitted
    /// byte for byte until witnessed.
    unsealings: std::collections::HashMap<[u8; 32], Vec<u8>>,
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
            inner: Mutex::new(Inner {
                state,
                verifier,
                facts: None,
                unsealings: std::collections::HashMap::new(),
            }),
        })
    }

    /// The persisted state (for tests and status pages).
    pub async fn state(&self) -> ReleaseState {
        self.inner.lock().await.state.get().clone()
    }

    /// Re-reads the whole log (re-hashed against a witnessed checkpoint) and
    /// merges what it proves into the state: own releases (a pending release
    /// the log holds becomes logged, the quota it used is counted), own
    /// erasures, revocations, and the largest size seen. The service calls
    /// it at start; a release runs it first if it has not run yet.
    pub async fn recover(&self) -> Result<(), ReleaseRefusal> {
        let mut inner = self.inner.lock().await;
        self.scan_log(&mut inner).await
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
        // Checked now, refused only once the warrant is kept for unsealing.
        let policy = checks::check_policy(&cfg.manifest.policy, &warrant);
        let expiry = checks::check_not_expired(clock, &warrant);
        let within = checks::check_within_warrant(clock, &warrant, &f.requested);

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

        // Revocations, own releases and own erasures up to the newest
        // witnessed checkpoint, every entry re-hashed against it.
        self.scan_log(&mut inner).await?;
        // The warrant's commitment is in the log and opened by it: keep it
        // to unseal when its embargo ends, whatever the rest of the checks say.
        let known = hex::encode(warrant_commitment(&f.salt, &f.warrant));
        if !inner.state.get().warrants.contains_key(&known) {
            let entry = KnownWarrant {
                salt: hex::encode(f.salt),
                warrant: hex::encode(&f.warrant),
            };
            inner.state.update(|st| {
                st.warrants.insert(known.clone(), entry);
            })?;
        }
        let (policy, expiry, within) = (policy?, expiry?, within?);
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
            // The log says this custodian erased the day: a share the store
            // still offers (a restored backup) is never used.
            if inner.state.get().erased.contains(&cd.day) {
                return Err(ReleaseRefusal::DayErased { day: cd.day });
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
        self.wait_witnessed(inner, index, &bytes).await?;
        Ok(index)
    }

    /// Waits (up to the witness timeout) until `entry` is proven at `index`
    /// in a witnessed checkpoint consistent with the last one seen.
    async fn wait_witnessed(
        &self,
        inner: &mut Inner,
        index: u64,
        entry: &[u8],
    ) -> Result<(), ReleaseRefusal> {
        let cfg = &self.config;
        let deadline = tokio::time::Instant::now() + cfg.witness_timeout;
        loop {
            match cfg
                .log
                .prove_included(&mut inner.verifier, index, entry)
                .await
            {
                Ok(_) => return Ok(()),
                Err(ClientError::NotYetWitnessed { .. })
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(log_down(e)),
            }
        }
    }
}

fn hex_array(s: &str) -> Result<[u8; 32], ReleaseRefusal> {
    hex::decode(s)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| internal("bad commitment hex"))
}
