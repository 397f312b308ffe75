//! The follower: polls the log's checkpoint, adopts it only when it is
//! signed by the log, cosigned by the witness quorum and consistent with
//! the last one adopted, replays the new entries (and only those) through
//! the audit's checks into the figures, and publishes a new snapshot.
//!
//! # What is an inconsistency
//! A checkpoint smaller than the last adopted one, another root at the same
//! size, a consistency proof that does not verify, or entries that do not
//! hash to the checkpoint's root. Each is proof that the log misbehaved
//! (or that someone between it and the dashboard did): it is kept, served
//! in red, and the follower stops (its replay state can no longer be
//! trusted to match the log everyone else sees). Anything else (the log
//! unreachable, a checkpoint still missing its quorum) is a warning, and
//! the next poll tries again.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use custos_tlog::audit::{AuditSink, FETCH_CHUNK, Replay};
use custos_tlog::proof_json::encode_proof;
use custos_tlog::{LogClient, Tree, TrustPolicy, VerifiedCheckpoint, verify_consistency};
use custos_verify::figures::Figures;
use custos_wire::manifest::{Manifest, Participant, Role};
use custos_wire::statement::{Statement, StatementKind};

use crate::DashboardConfig;
use crate::api::{
    BadEntryView, Evidence, EvidenceEntry, Moderation, ModerationFigures, Status, WitnessStatus,
};
use crate::state::{Shared, Snapshot};

/// Most refused entries listed in the status (all are counted).
const BAD_ENTRIES_SHOWN: usize = 20;

/// Follows the log until an inconsistency is found (or the task is aborted).
pub(crate) async fn run(client: LogClient, config: DashboardConfig, shared: Shared) {
    let manifest = config.manifest.clone();
    let mut follower = match Follower::new(&manifest, &config) {
        Ok(f) => f,
        Err(e) => {
            let mut snapshot = (*shared.get()).clone();
            snapshot.status.warning = Some(e);
            snapshot.status.following = false;
            shared.set(snapshot);
            return;
        }
    };
    let http = custos_tlog::client::http_client_builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .ok();
    loop {
        match follower.poll(&client).await {
            Ok(()) => follower.warning = None,
            Err(Poll::Warning(w)) => follower.warning = Some(w),
            Err(Poll::Inconsistent(m)) => follower.inconsistency = Some(m),
        }
        let moderation = moderation(http.as_ref(), config.provider_url.as_deref()).await;
        shared.set(follower.snapshot(&config, moderation));
        if follower.inconsistency.is_some() {
            tracing::error!("the log is inconsistent; the dashboard stopped following it");
            return;
        }
        tokio::time::sleep(config.poll_interval).await;
    }
}

enum Poll {
    Warning(String),
    Inconsistent(String),
}

fn warning(e: impl std::fmt::Display) -> Poll {
    Poll::Warning(e.to_string())
}

struct Follower<'m> {
    manifest: &'m Manifest,
    policy: TrustPolicy,
    replay: Replay<'m>,
    tree: Tree,
    figures: Figures,
    last: Option<VerifiedCheckpoint>,
    /// Entries of the lawful-access figures: index, kind, bytes.
    evidence: Vec<(u64, StatementKind, Vec<u8>)>,
    witness_times: BTreeMap<String, u64>,
    inconsistency: Option<String>,
    warning: Option<String>,
    polled_at: Option<u64>,
    entries_fetched: u64,
    state: Option<std::path::PathBuf>,
}

/// Hands statements to the figures and remembers whether the last one is
/// evidence the page recomputes figures from.
struct Sink<'a> {
    figures: &'a mut Figures,
    keep: Option<StatementKind>,
}

impl AuditSink for Sink<'_> {
    fn statement(&mut self, index: u64, author: &Participant, statement: &Statement) {
        self.figures.add(index, author, statement);
        let kind = statement.kind();
        self.keep = matches!(
            kind,
            StatementKind::WarrantCommitment
                | StatementKind::KeyRelease
                | StatementKind::Interception
                | StatementKind::WarrantUnsealing
                | StatementKind::EmbargoExtension
                | StatementKind::WarrantRevocation
                | StatementKind::DayKeyErasure
        )
        .then_some(kind);
    }
}

impl<'m> Follower<'m> {
    fn new(manifest: &'m Manifest, config: &DashboardConfig) -> Result<Self, String> {
        let policy = TrustPolicy::from_manifest(manifest).map_err(|e| e.to_string())?;
        // The checkpoint adopted before a restart: the first poll must be
        // consistent with it (the entries are replayed again from 0).
        let last = match &config.state {
            Some(path) => custos_tlog::Verifier::open(policy.clone(), path)
                .map_err(|e| format!("the state file {}: {e}", path.display()))?
                .last()
                .cloned(),
            None => None,
        };
        Ok(Self {
            manifest,
            state: config.state.clone(),
            policy,
            replay: Replay::new(manifest),
            tree: Tree::new(),
            figures: Figures::new(manifest, config.options),
            last,
            evidence: Vec::new(),
            witness_times: BTreeMap::new(),
            inconsistency: None,
            warning: None,
            polled_at: None,
            entries_fetched: 0,
        })
    }

    async fn poll(&mut self, client: &LogClient) -> Result<(), Poll> {
        let note = client.checkpoint().await.map_err(warning)?;
        let cp = self
            .policy
            .verify_checkpoint(&note)
            .map_err(|e| warning(format!("the log's latest checkpoint is not adopted: {e}")))?;
        if let Some(last) = &self.last {
            if cp.size() < last.size() {
                return Err(Poll::Inconsistent(format!(
                    "the log served a checkpoint of size {} after one of size {}: a rollback",
                    cp.size(),
                    last.size()
                )));
            }
            if cp.size() == last.size() {
                if cp.hash() != last.hash() {
                    return Err(Poll::Inconsistent(format!(
                        "the log signed two different roots for size {}: a fork",
                        cp.size()
                    )));
                }
            } else {
                let proof = client
                    .consistency_proof(last.size(), cp.size())
                    .await
                    .map_err(warning)?;
                if !verify_consistency(last.size(), last.hash(), cp.size(), cp.hash(), &proof) {
                    return Err(Poll::Inconsistent(format!(
                        "the log's checkpoint of size {} is not consistent with the one of size {}: a split view",
                        cp.size(),
                        last.size()
                    )));
                }
            }
        }
        while self.tree.size() < cp.size() {
            let start = self.tree.size();
            let end = start.saturating_add(FETCH_CHUNK).min(cp.size());
            let entries = client.entries(start, end).await.map_err(warning)?;
            if entries.is_empty() {
                return Err(warning("the log served no entries below its checkpoint"));
            }
            self.entries_fetched = self.entries_fetched.saturating_add(entries.len() as u64);
            for entry in entries {
                self.push(entry)?;
            }
        }
        let root = self.tree.root(cp.size()).map_err(warning)?;
        if root != cp.hash() {
            return Err(Poll::Inconsistent(format!(
                "the entries the log served do not hash to its checkpoint of size {}: \
                 it serves other entries than it committed to",
                cp.size()
            )));
        }
        for (name, time) in cosignature_times(cp.note(), cp.witnesses()) {
            let t = self.witness_times.entry(name).or_default();
            *t = (*t).max(time);
        }
        if let Some(path) = &self.state {
            // Durable before it counts as adopted: a restart never goes
            // back behind a checkpoint the dashboard has served.
            custos_durable::write_atomic(path, cp.note())
                .map_err(|e| warning(format!("cannot keep the checkpoint: {e}")))?;
        }
        self.last = Some(cp);
        Ok(())
    }

    fn push(&mut self, entry: Vec<u8>) -> Result<(), Poll> {
        let index = self.tree.append_entry(&entry).map_err(warning)?;
        let mut sink = Sink {
            figures: &mut self.figures,
            keep: None,
        };
        self.replay.push(&entry, &mut sink);
        if let Some(kind) = sink.keep {
            self.evidence.push((index, kind, entry));
        }
        Ok(())
    }

    fn snapshot(&mut self, config: &DashboardConfig, moderation: Moderation) -> Snapshot {
        let now_ms = config.clock.now_millis();
        self.polled_at = Some(now_ms);
        #[allow(unused_mut, reason = "changed only by the test door")]
        let mut figures = self.figures.clone().finish(now_ms / 1000);
        #[cfg(feature = "test-hooks")]
        if let Some(lie) = config.misreport {
            lie(&mut figures);
        }
        let latest: &[String] = self.last.as_ref().map_or(&[], |c| c.witnesses());
        let (bad, bad_count) = self.replay.bad_entries();
        let mut status = Status::empty(
            self.policy.origin(),
            self.manifest.witness_quorum,
            self.manifest.hash().map(hex::encode).unwrap_or_default(),
        );
        status.witnesses = self
            .manifest
            .with_role(Role::Witness)
            .map(|w| WitnessStatus {
                name: w.name.clone(),
                in_latest: latest.contains(&w.name),
                last_cosigned: self.witness_times.get(&w.name).copied(),
            })
            .collect();
        status.inconsistency = self.inconsistency.clone();
        status.warning = self.warning.clone();
        status.following = self.inconsistency.is_none();
        status.bad_entry_count = bad_count;
        status.bad_entries = bad
            .iter()
            .take(BAD_ENTRIES_SHOWN)
            .map(|b| BadEntryView {
                index: b.index,
                reason: b.reason.clone(),
            })
            .collect();
        status.polled_at = self.polled_at;
        status.entries_fetched = self.entries_fetched;
        let mut evidence = Evidence::default();
        // A checkpoint remembered from before a restart shows only once its
        // entries are replayed again.
        if let Some(cp) = self.last.as_ref().filter(|c| self.tree.size() >= c.size()) {
            status.tree_size = cp.size();
            status.root_hash = BASE64_STANDARD.encode(cp.hash().0);
            status.checkpoint = String::from_utf8_lossy(cp.note()).into_owned();
            evidence.tree_size = cp.size();
            evidence.checkpoint = status.checkpoint.clone();
            evidence.entries = self
                .evidence
                .iter()
                .filter(|(i, _, _)| *i < cp.size())
                .filter_map(|(index, kind, entry)| {
                    let proof = self.tree.inclusion_proof(*index, cp.size()).ok()?;
                    Some(EvidenceEntry {
                        index: *index,
                        kind: kind.name().to_owned(),
                        entry: BASE64_STANDARD.encode(entry),
                        proof: encode_proof(&proof),
                    })
                })
                .collect();
        }
        Snapshot {
            status,
            figures,
            evidence,
            moderation,
        }
    }
}

/// The timestamps of the verified witnesses' `cosignature/v1` lines of a
/// checkpoint note (key id, then the big-endian timestamp, then the
/// signature, base64).
fn cosignature_times(note: &[u8], verified: &[String]) -> Vec<(String, u64)> {
    let text = String::from_utf8_lossy(note);
    let Some((_, sigs)) = text.split_once("\n\n") else {
        return Vec::new();
    };
    sigs.lines()
        .filter_map(|line| {
            let (name, b64) = line.strip_prefix("\u{2014} ")?.split_once(' ')?;
            if !verified.iter().any(|v| v == name) {
                return None;
            }
            let raw = BASE64_STANDARD.decode(b64).ok()?;
            let time: [u8; 8] = raw.get(4..12)?.try_into().ok()?;
            Some((name.to_owned(), u64::from_be_bytes(time)))
        })
        .collect()
}

async fn moderation(http: Option<&reqwest::Client>, provider: Option<&str>) -> Moderation {
    let Some(base) = provider else {
        return Moderation::default();
    };
    let mut m = Moderation {
        configured: true,
        ..Moderation::default()
    };
    let Some(http) = http else {
        m.error = Some("no HTTP client".into());
        return m;
    };
    let url = format!("{}/v1/moderation/stats", base.trim_end_matches('/'));
    match http.get(url).send().await {
        Ok(resp) if resp.status().is_success() => match resp.json::<ModerationFigures>().await {
            Ok(f) => m.figures = Some(f),
            Err(e) => m.error = Some(format!("malformed figures: {e}")),
        },
        Ok(resp) => m.error = Some(format!("the provider answered {}", resp.status())),
        Err(e) => m.error = Some(format!("cannot reach the provider: {e}")),
    }
    m
}
