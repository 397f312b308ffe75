//! What the release path learns from the log, and only from entries that
//! hash to a witnessed checkpoint.
//!
//! At the first scan after a start the whole log is read again from entry 0
//! and re-hashed ([`VerifiedLog`]); later scans read only the new entries.
//! Every fact the log proves is merged into the persisted state, so a
//! missing or older state file cannot make this custodian forget its own
//! releases (quota, idempotency), a revocation, or an erasure.

use std::collections::{BTreeSet, HashMap};

use custos_wire::manifest::Role;
use custos_wire::statement::{EmbargoExtension, SignedStatement, Statement};

use super::{Inner, ReleaseRecord, ReleaseRefusal, Releaser, ShareSource, log_down, month_of_day};
use crate::verified::{EntriesError, VerifiedLog};

/// A warrant commitment's public fields, as logged by its authority.
#[derive(Debug, Clone)]
pub(crate) struct CommitmentInfo {
    pub authority: String,
}

/// Facts read from the verified log since this process started.
#[derive(Debug, Default)]
pub(crate) struct LogFacts {
    pub tree: VerifiedLog,
    /// Commitments logged by the authority they name.
    pub commitments: HashMap<[u8; 32], CommitmentInfo>,
    /// Court-signed embargo extensions, in log order, logged before any
    /// valid unsealing of their warrant.
    pub extensions: HashMap<[u8; 32], Vec<EmbargoExtension>>,
    /// Commitments that a valid `WarrantUnsealing` opened.
    pub unsealed: BTreeSet<[u8; 32]>,
}

/// What one scan found that must be merged into the state.
#[derive(Default)]
struct Found {
    revoked: Vec<String>,
    /// Own releases: request hash (hex) -> (index, statement hex, commitment hex).
    releases: Vec<(String, u64, String, String)>,
    /// Quota: authority -> month -> commitment (hex).
    quota: Vec<(String, u32, String)>,
    erased: Vec<u32>,
}

impl<S: ShareSource> Releaser<S> {
    /// Reads the log up to its newest witnessed checkpoint (consistent with
    /// the last one this custodian saw), re-hashes the new entries against
    /// it, and merges what they prove into the state.
    pub(super) async fn scan_log(&self, inner: &mut Inner) -> Result<(), ReleaseRefusal> {
        let cfg = &self.config;
        let cp = cfg
            .log
            .update(&mut inner.verifier)
            .await
            .map_err(log_down)?;
        let seen = inner.state.get().seen_size;
        if cp.size() < seen {
            return Err(ReleaseRefusal::LogInconsistent(format!(
                "the log's witnessed size {} is below the size {seen} this custodian already saw",
                cp.size()
            )));
        }
        let mut facts = inner.facts.take().unwrap_or_default();
        let entries = match facts.tree.advance(&cfg.log, &cp).await {
            Ok(e) => e,
            Err(e) => {
                // Keep what was verified before; nothing new is believed.
                let start = facts.tree.size();
                inner.facts = Some(facts);
                return Err(match e {
                    EntriesError::Client(c) => log_down(c),
                    other => {
                        tracing::error!(custodian = %cfg.name, start, "{other}");
                        ReleaseRefusal::LogInconsistent(other.to_string())
                    }
                });
            }
        };
        let mut found = Found::default();
        for (index, entry) in &entries {
            self.note_entry(&mut facts, &mut found, *index, entry);
        }
        let end = facts.tree.size();
        inner.facts = Some(facts);
        inner.state.update(|st| merge(st, found, end))
    }

    fn note_entry(&self, facts: &mut LogFacts, found: &mut Found, index: u64, entry: &[u8]) {
        let cfg = &self.config;
        let Ok(signed) = SignedStatement::decode(entry) else {
            return;
        };
        let Ok(statement) = signed.verify() else {
            return;
        };
        let author = *signed.author();
        let is = |name: &str, role: Role| {
            cfg.manifest
                .participant(name)
                .filter(|p| p.role == role)
                .and_then(|p| p.verifying_key().ok())
                .is_some_and(|k| k.as_bytes() == &author)
        };
        let me = cfg.signing_key.verifying_key().to_bytes() == author;
        match statement {
            Statement::WarrantCommitment(c) if is(&c.authority, Role::Authority) => {
                facts
                    .commitments
                    .entry(c.commitment)
                    .or_insert(CommitmentInfo {
                        authority: c.authority,
                    });
            }
            Statement::WarrantRevocation(r) if is(&r.court, Role::Court) => {
                found
                    .revoked
                    .push(format!("{}:{}", hex::encode(r.warrant), r.court));
            }
            Statement::KeyRelease(kr) if me && kr.custodian == cfg.name => {
                let warrant = hex::encode(kr.warrant);
                if let Some(c) = facts.commitments.get(&kr.warrant) {
                    let day = u32::try_from(kr.released_at / 86_400).unwrap_or(u32::MAX);
                    found
                        .quota
                        .push((c.authority.clone(), month_of_day(day), warrant.clone()));
                }
                found.releases.push((
                    hex::encode(kr.request_hash),
                    index,
                    hex::encode(entry),
                    warrant,
                ));
            }
            Statement::DayKeyErasure(e) if me && e.custodian == cfg.name => {
                found.erased.push(e.day);
            }
            Statement::EmbargoExtension(e)
                if is(&e.court, Role::Court) && !facts.unsealed.contains(&e.warrant) =>
            {
                facts.extensions.entry(e.warrant).or_default().push(e);
            }
            Statement::WarrantUnsealing(u)
                if u.opens_commitment()
                    && cfg
                        .manifest
                        .participant_by_key(&author)
                        .is_some_and(|p| matches!(p.role, Role::Custodian | Role::Court)) =>
            {
                facts.unsealed.insert(u.warrant);
            }
            _ => {}
        }
    }
}

fn merge(st: &mut super::ReleaseState, found: Found, end: u64) {
    st.scanned = end;
    st.seen_size = st.seen_size.max(end);
    st.revoked.extend(found.revoked);
    st.erased.extend(found.erased);
    for (authority, month, warrant) in found.quota {
        st.quota
            .entry(authority)
            .or_default()
            .entry(month)
            .or_default()
            .insert(warrant);
    }
    for (key, index, statement, warrant) in found.releases {
        match st.releases.get_mut(&key) {
            // The first logged copy is the release; a pending record whose
            // bytes the log holds is logged.
            Some(r) if r.index.is_none() => {
                r.index = Some(index);
                r.statement = statement;
            }
            Some(_) => {}
            None => {
                st.releases.insert(
                    key,
                    ReleaseRecord {
                        statement,
                        index: Some(index),
                        warrant,
                    },
                );
            }
        }
    }
}
