//! Public figures of lawful access (DESIGN.md §4 step 8): replayed from the
//! log's statements, counted per court, authority and month, with the
//! flags an auditor must see.
//!
//! # How to use
//! Feed every statement that passed the log's integrity checks (entry in
//! the checkpoint, canonical, author signature, manifest participant, role
//! rule: `custos_tlog::audit::Replay`), in log order, to
//! [`Figures::add`]; then [`Figures::finish`] at the audit's clock. Nothing
//! here does I/O and memory grows with the number of warrants and days,
//! not with the number of statements, so the same code serves the
//! command line, a test on a simulated clock and a web dashboard.
//!
//! # What is counted, and what is flagged
//! - A statement is attributed to a warrant only if that warrant's
//!   `WarrantCommitment` came earlier in the log; releases, interceptions,
//!   unsealings, extensions and revocations under any other commitment are
//!   flagged ([`UnloggedWarrant`]), and releases and interceptions among
//!   them are still counted in the totals and months (they happened).
//! - A statement is believed only if its author is the party it names (the
//!   authority of a commitment, the custodian of a release or erasure, the
//!   provider of an interception, the court of an extension or
//!   revocation), an extension or revocation comes from the issuing court,
//!   and an unsealing passes [`crate::unsealing::verify_unsealing`]. An
//!   extension is honoured only before the embargo ends, if it extends it,
//!   and within the manifest's `max_embargo_days` from issue. Anything else
//!   is a [`RefusedStatement`] and is not counted.
//! - A warrant is overdue when the audit's clock is past its embargo (with
//!   honoured extensions) plus [`FigureOptions::unsealing_grace_secs`] and
//!   no valid unsealing is in the log. Revocation does not waive unsealing.
//! - A day's key is live once `t` custodians published the same key bytes;
//!   those custodians hold its shares. Once the day has ended plus the
//!   manifest's `erasure_grace_days`, every holder must have logged its
//!   erasure; a day with a holder that did not is a [`MissingErasure`]
//!   (with `still_openable` when `t` or more shares may remain).
//!
//! Times in statements are the authors' own; months are taken from them.
//!
//! JSON shape: [`AuditFigures`], documented in `docs/spec/audit-figures.md`.

mod shape;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use custos_wire::manifest::{Manifest, Participant, Role};
use custos_wire::statement::{
    EmbargoExtension, MatchingCases, Statement, StatementKind, WarrantCommitment,
    WarrantRevocation, WarrantUnsealing,
};
use sha2::{Digest as _, Sha256};

pub use shape::{
    AuditFigures, Counts, CustodianFigures, FIGURES_VERSION, Flags, MatchingFigures,
    MissingErasure, OverdueUnsealing, RefusedStatement, Row, UnloggedWarrant,
};

use crate::dates::{SECS_PER_DAY, utc_date, utc_month};
use crate::unsealing::verify_unsealing;

/// Default grace after an embargo ends before a sealed warrant is flagged:
/// one day, time for the custodians to notice and publish.
pub const DEFAULT_UNSEALING_GRACE_SECS: u64 = SECS_PER_DAY;

/// Choices of the auditor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FigureOptions {
    /// Seconds after an embargo ends before a sealed warrant is overdue.
    pub unsealing_grace_secs: u64,
}

impl Default for FigureOptions {
    fn default() -> Self {
        Self {
            unsealing_grace_secs: DEFAULT_UNSEALING_GRACE_SECS,
        }
    }
}

/// The figures being replayed; see the module documentation. A clone
/// finished at some clock gives the figures so far and lets the replay go
/// on (a dashboard that follows the log).
#[derive(Debug, Clone)]
pub struct Figures {
    manifest: Manifest,
    threshold: usize,
    erasure_grace_days: u16,
    max_embargo_secs: u64,
    courts: BTreeSet<String>,
    options: FigureOptions,
    statements: u64,
    warrants: HashMap<[u8; 32], WarrantState>,
    /// Flags of statements under a commitment not yet seen, by commitment.
    unlogged: HashMap<[u8; 32], Vec<usize>>,
    days: BTreeMap<u32, DayState>,
    custodians: BTreeMap<String, CustodianState>,
    totals: Counts,
    by_court: BTreeMap<String, Counts>,
    by_authority: BTreeMap<String, Counts>,
    by_month: BTreeMap<String, Counts>,
    rows: BTreeMap<(String, String, String), Counts>,
    flags: Flags,
    /// Key-directory epoch roots the provider logged, by epoch.
    key_directory: BTreeMap<u64, [u8; 32]>,
    /// Each provider's latest matching figures.
    matching: BTreeMap<String, MatchingFigures>,
}

#[derive(Debug, Clone)]
struct WarrantState {
    index: u64,
    commitment: WarrantCommitment,
    embargo_until: u64,
    extensions: u64,
    unsealed: bool,
    revoked: bool,
}

#[derive(Debug, Clone, Default)]
struct DayState {
    votes: HashMap<[u8; 32], BTreeSet<String>>,
    accepted: Option<[u8; 32]>,
    erased_by: BTreeSet<String>,
}

#[derive(Debug, Clone, Default)]
struct CustodianState {
    releases: u64,
    conversation_days_released: u64,
    generated: BTreeSet<u32>,
    erased: BTreeSet<u32>,
}

impl Figures {
    /// Empty figures for the deployment `manifest` describes.
    pub fn new(manifest: &Manifest, options: FigureOptions) -> Self {
        Self {
            manifest: manifest.clone(),
            threshold: manifest.custodian_threshold,
            erasure_grace_days: manifest.policy.erasure_grace_days,
            max_embargo_secs: u64::from(manifest.policy.max_embargo_days) * SECS_PER_DAY,
            courts: manifest
                .with_role(Role::Court)
                .map(|p| p.name.clone())
                .collect(),
            options,
            statements: 0,
            warrants: HashMap::new(),
            unlogged: HashMap::new(),
            days: BTreeMap::new(),
            custodians: manifest
                .with_role(Role::Custodian)
                .map(|p| (p.name.clone(), CustodianState::default()))
                .collect(),
            totals: Counts::default(),
            by_court: BTreeMap::new(),
            by_authority: BTreeMap::new(),
            by_month: BTreeMap::new(),
            rows: BTreeMap::new(),
            flags: Flags::default(),
            key_directory: BTreeMap::new(),
            matching: BTreeMap::new(),
        }
    }

    /// Counts statement `index`, by `author` (a manifest participant whose
    /// role may publish it, as the replay checked).
    pub fn add(&mut self, index: u64, author: &Participant, statement: &Statement) {
        self.statements = self.statements.saturating_add(1);
        let refused = match statement {
            Statement::WarrantCommitment(c) => self.commitment(index, author, c),
            Statement::KeyRelease(r) => {
                if author.name != r.custodian {
                    Err("the author is not the custodian the release names".into())
                } else {
                    let c = self.custodians.entry(r.custodian.clone()).or_default();
                    c.releases += 1;
                    c.conversation_days_released += u64::from(r.conversation_days);
                    let n = u64::from(r.conversation_days);
                    self.under_warrant(index, author, statement, &r.warrant, r.released_at, |c| {
                        c.releases += 1;
                        c.conversation_days_released += n;
                    });
                    Ok(())
                }
            }
            Statement::Interception(i) => {
                if author.name != i.provider {
                    Err("the author is not the provider the interception names".into())
                } else {
                    self.under_warrant(index, author, statement, &i.warrant, i.started_at, |c| {
                        c.interceptions += 1
                    });
                    Ok(())
                }
            }
            Statement::WarrantUnsealing(u) => self.unsealing(index, author, u),
            Statement::EmbargoExtension(e) => self.extension(index, author, e),
            Statement::WarrantRevocation(r) => self.revocation(index, author, r),
            Statement::EscrowDayKey(k) => {
                self.day_key(author, k.day, &k.day_key);
                Ok(())
            }
            Statement::DayKeyErasure(e) => {
                if author.name != e.custodian {
                    Err("the author is not the custodian the erasure names".into())
                } else {
                    let day = self.days.entry(e.day).or_default();
                    if day.erased_by.insert(e.custodian.clone()) {
                        self.custodians
                            .entry(e.custodian.clone())
                            .or_default()
                            .erased
                            .insert(e.day);
                        self.count(None, e.erased_at, |c| c.day_key_erasures += 1);
                    }
                    Ok(())
                }
            }
            Statement::KeyDirectoryEpoch(k) => self.key_directory_epoch(author, k),
            Statement::MatchingCases(c) => self.matching_cases(author, c),
            Statement::HashListRoot(l) if author.name != l.provider => {
                Err("the author is not the provider the hash list names".into())
            }
            Statement::MatchingPolicy(p) if author.name != p.provider => {
                Err("the author is not the provider the matching policy names".into())
            }
            Statement::ParticipantKey(_)
            | Statement::ProviderFrankingKey(_)
            | Statement::ManifestPublication(_)
            | Statement::HashListRoot(_)
            | Statement::MatchingPolicy(_) => Ok(()),
        };
        if let Err(reason) = refused {
            self.flags.refused_statements.push(RefusedStatement {
                index,
                kind: statement.kind().name().to_owned(),
                author: author.name.clone(),
                reason,
            });
        }
    }

    /// A provider's matching figures: by the provider it names, not earlier
    /// than its previous ones, and no figure lower than before.
    fn matching_cases(&mut self, author: &Participant, c: &MatchingCases) -> Result<(), String> {
        if author.name != c.provider {
            return Err("the author is not the provider the matching figures name".into());
        }
        let now = [
            c.accounts_matched,
            c.cases_opened,
            c.cases_confirmed,
            c.cases_dismissed,
        ]
        .map(u64::from);
        if let Some(prev) = self.matching.get(&c.provider) {
            if c.as_of < prev.as_of {
                return Err("earlier than the provider's previous matching figures".into());
            }
            let before = [
                prev.accounts_matched,
                prev.cases_opened,
                prev.cases_confirmed,
                prev.cases_dismissed,
            ];
            if now.iter().zip(&before).any(|(n, b)| n < b) {
                return Err(
                    "a matching figure went down since the provider's previous ones".into(),
                );
            }
        }
        let statements = self
            .matching
            .get(&c.provider)
            .map_or(0, |p| p.statements)
            .saturating_add(1);
        let [
            accounts_matched,
            cases_opened,
            cases_confirmed,
            cases_dismissed,
        ] = now;
        self.matching.insert(
            c.provider.clone(),
            MatchingFigures {
                statements,
                as_of: c.as_of,
                table_root: hex::encode(c.table_root),
                accounts_matched,
                cases_opened,
                cases_confirmed,
                cases_dismissed,
                cases_pending: cases_opened.saturating_sub(cases_confirmed + cases_dismissed),
            },
        );
        Ok(())
    }

    /// A key-directory root: by the provider it names, for the next epoch
    /// (a second root for a logged epoch is a split view, in public).
    fn key_directory_epoch(
        &mut self,
        author: &Participant,
        k: &custos_wire::statement::KeyDirectoryEpoch,
    ) -> Result<(), String> {
        if author.name != k.provider {
            return Err("the author is not the provider the epoch names".into());
        }
        if let Some(root) = self.key_directory.get(&k.epoch) {
            return Err(if *root == k.root_hash {
                format!("key-directory epoch {} logged twice", k.epoch)
            } else {
                format!(
                    "key-directory epoch {} logged again with another root (split view)",
                    k.epoch
                )
            });
        }
        let next = self
            .key_directory
            .last_key_value()
            .map_or(1, |(e, _)| e.saturating_add(1));
        if k.epoch != next {
            return Err(format!(
                "key-directory epoch {} logged where epoch {next} was due",
                k.epoch
            ));
        }
        self.key_directory.insert(k.epoch, k.root_hash);
        Ok(())
    }

    /// The key-directory roots logged so far, by epoch (consecutive from 1).
    pub fn key_directory_roots(&self) -> &BTreeMap<u64, [u8; 32]> {
        &self.key_directory
    }

    /// The figures at the audit's clock `now` (Unix seconds).
    pub fn finish(mut self, now: u64) -> AuditFigures {
        let grace = self.options.unsealing_grace_secs;
        let mut overdue: Vec<OverdueUnsealing> = self
            .warrants
            .iter()
            .filter(|(_, w)| !w.unsealed)
            .filter_map(|(c, w)| {
                let due_at = w.embargo_until.saturating_add(grace);
                (now > due_at).then(|| OverdueUnsealing {
                    warrant: hex::encode(c),
                    index: w.index,
                    court: w.commitment.court.clone(),
                    authority: w.commitment.authority.clone(),
                    embargo_until: w.embargo_until,
                    extensions: w.extensions,
                    due_at,
                    overdue_secs: now - due_at,
                    revoked: w.revoked,
                })
            })
            .collect();
        overdue.sort_by_key(|o| o.index);
        self.flags.overdue_unsealings = overdue;
        let erasure_grace = u64::from(self.erasure_grace_days) * SECS_PER_DAY;
        for (day, state) in &self.days {
            let Some(holders) = state.accepted.and_then(|a| state.votes.get(&a)) else {
                continue;
            };
            let due_at = (u64::from(*day) + 1) * SECS_PER_DAY + erasure_grace;
            let not_erased: Vec<String> = holders.difference(&state.erased_by).cloned().collect();
            if now > due_at && !not_erased.is_empty() {
                self.flags.missing_erasures.push(MissingErasure {
                    day: *day,
                    date: utc_date(*day),
                    due_at,
                    holders: holders.iter().cloned().collect(),
                    erased_by: holders.intersection(&state.erased_by).cloned().collect(),
                    still_openable: not_erased.len() >= self.threshold.max(1),
                    not_erased_by: not_erased,
                });
            }
        }
        AuditFigures {
            version: FIGURES_VERSION,
            as_of: now,
            statements: self.statements,
            unsealing_grace_secs: grace,
            erasure_grace_days: self.erasure_grace_days,
            totals: self.totals,
            by_court: self.by_court,
            by_authority: self.by_authority,
            by_month: self.by_month,
            rows: self
                .rows
                .into_iter()
                .map(|((court, authority, month), counts)| Row {
                    court,
                    authority,
                    month,
                    counts,
                })
                .collect(),
            custodians: self
                .custodians
                .into_iter()
                .map(|(name, c)| {
                    let figures = CustodianFigures {
                        releases: c.releases,
                        conversation_days_released: c.conversation_days_released,
                        day_keys_generated: c.generated.len() as u64,
                        day_keys_erased: c.erased.len() as u64,
                    };
                    (name, figures)
                })
                .collect(),
            matching: self.matching,
            flags: self.flags,
        }
    }

    fn commitment(
        &mut self,
        index: u64,
        author: &Participant,
        c: &WarrantCommitment,
    ) -> Result<(), String> {
        if author.name != c.authority {
            return Err("the author is not the authority the commitment names".into());
        }
        if !self.courts.contains(&c.court) {
            return Err(format!("`{}` is not a court of the manifest", c.court));
        }
        if self.warrants.contains_key(&c.commitment) {
            return Err("the commitment is already in the log".into());
        }
        let state = WarrantState {
            index,
            commitment: c.clone(),
            embargo_until: c.embargo_until,
            extensions: 0,
            unsealed: false,
            revoked: false,
        };
        let (targets, days) = (u64::from(c.targets), u64::from(c.days));
        self.count(Some(attribution(&state)), c.issued_at, |n| {
            n.warrants += 1;
            n.targets += targets;
            n.days += days;
        });
        self.warrants.insert(c.commitment, state);
        for flag in self.unlogged.remove(&c.commitment).unwrap_or_default() {
            if let Some(f) = self.flags.unlogged_warrants.get_mut(flag) {
                f.logged_later_at = Some(index);
            }
        }
        Ok(())
    }

    /// Counts a release or interception: under its warrant if logged, else
    /// flagged and counted without court and authority.
    fn under_warrant(
        &mut self,
        index: u64,
        author: &Participant,
        statement: &Statement,
        warrant: &[u8; 32],
        time: u64,
        f: impl Fn(&mut Counts),
    ) {
        let who = self.warrants.get(warrant).map(attribution);
        if who.is_none() {
            self.flag_unlogged(index, author, statement.kind(), warrant);
        }
        self.count(who, time, f);
    }

    /// Whether a court's statement about `warrant` may be applied:
    /// `Ok(false)` (and a flag) when the warrant is not logged, an error
    /// when the author is not the issuing court.
    fn court_may_act(
        &mut self,
        index: u64,
        author: &Participant,
        kind: StatementKind,
        court: &str,
        warrant: &[u8; 32],
    ) -> Result<bool, String> {
        if author.name != court {
            return Err("the author is not the court the statement names".into());
        }
        match self.warrants.get(warrant) {
            None => {
                self.flag_unlogged(index, author, kind, warrant);
                Ok(false)
            }
            Some(w) if w.commitment.court != court => {
                Err("the court did not issue this warrant".into())
            }
            Some(_) => Ok(true),
        }
    }

    fn unsealing(
        &mut self,
        index: u64,
        author: &Participant,
        u: &WarrantUnsealing,
    ) -> Result<(), String> {
        let Some(w) = self.warrants.get_mut(&u.warrant) else {
            self.flag_unlogged(index, author, StatementKind::WarrantUnsealing, &u.warrant);
            return Ok(());
        };
        verify_unsealing(&self.manifest, &w.commitment, u).map_err(|e| e.to_string())?;
        let repeat = std::mem::replace(&mut w.unsealed, true);
        let who = attribution(w);
        self.count(Some(who), u.unsealed_at, |c| {
            if repeat {
                c.repeated_unsealings += 1;
            } else {
                c.unsealings += 1;
            }
        });
        Ok(())
    }

    fn extension(
        &mut self,
        index: u64,
        author: &Participant,
        e: &EmbargoExtension,
    ) -> Result<(), String> {
        let kind = StatementKind::EmbargoExtension;
        if !self.court_may_act(index, author, kind, &e.court, &e.warrant)? {
            return Ok(());
        }
        let max = self.max_embargo_secs;
        let Some(w) = self.warrants.get_mut(&e.warrant) else {
            return Ok(());
        };
        if w.unsealed {
            return Err("the warrant is already unsealed".into());
        }
        // The custodians' rule (custos-custodian `effective_embargo`): an
        // extension issued at the end instant or later comes too late.
        if e.issued_at >= w.embargo_until {
            return Err("issued after the embargo ended".into());
        }
        if e.embargo_until <= w.embargo_until {
            return Err("does not extend the embargo".into());
        }
        if e.embargo_until.saturating_sub(w.commitment.issued_at) > max {
            return Err("beyond the policy's maximum embargo".into());
        }
        w.embargo_until = e.embargo_until;
        w.extensions += 1;
        let who = attribution(w);
        self.count(Some(who), e.issued_at, |c| c.embargo_extensions += 1);
        Ok(())
    }

    fn revocation(
        &mut self,
        index: u64,
        author: &Participant,
        r: &WarrantRevocation,
    ) -> Result<(), String> {
        let kind = StatementKind::WarrantRevocation;
        if !self.court_may_act(index, author, kind, &r.court, &r.warrant)? {
            return Ok(());
        }
        let Some(w) = self.warrants.get_mut(&r.warrant) else {
            return Ok(());
        };
        if std::mem::replace(&mut w.revoked, true) {
            return Err("the warrant is already revoked".into());
        }
        let who = attribution(w);
        self.count(Some(who), r.revoked_at, |c| c.revocations += 1);
        Ok(())
    }

    fn flag_unlogged(
        &mut self,
        index: u64,
        author: &Participant,
        kind: StatementKind,
        warrant: &[u8; 32],
    ) {
        self.unlogged
            .entry(*warrant)
            .or_default()
            .push(self.flags.unlogged_warrants.len());
        self.flags.unlogged_warrants.push(UnloggedWarrant {
            index,
            kind: kind.name().to_owned(),
            author: author.name.clone(),
            warrant: hex::encode(warrant),
            logged_later_at: None,
        });
    }

    fn day_key(&mut self, author: &Participant, day: u32, key: &[u8]) {
        self.custodians
            .entry(author.name.clone())
            .or_default()
            .generated
            .insert(day);
        let digest: [u8; 32] = Sha256::digest(key).into();
        let threshold = self.threshold.max(1);
        let state = self.days.entry(day).or_default();
        let voters = state.votes.entry(digest).or_default();
        voters.insert(author.name.clone());
        if state.accepted.is_none() && voters.len() >= threshold {
            state.accepted = Some(digest);
        }
    }

    fn count(&mut self, who: Option<(String, String)>, time: u64, f: impl Fn(&mut Counts)) {
        let month = utc_month(time);
        f(&mut self.totals);
        f(self.by_month.entry(month.clone()).or_default());
        if let Some((court, authority)) = who {
            f(self.by_court.entry(court.clone()).or_default());
            f(self.by_authority.entry(authority.clone()).or_default());
            f(self.rows.entry((court, authority, month)).or_default());
        }
    }
}

impl custos_tlog::audit::AuditSink for Figures {
    fn statement(&mut self, index: u64, author: &Participant, statement: &Statement) {
        self.add(index, author, statement);
    }
}

fn attribution(w: &WarrantState) -> (String, String) {
    (w.commitment.court.clone(), w.commitment.authority.clone())
}

#[cfg(test)]
mod tests;
