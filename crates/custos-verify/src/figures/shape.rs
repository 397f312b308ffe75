//! The serialisable shape of the audit figures, version
//! [`FIGURES_VERSION`]. `docs/spec/audit-figures.md` documents every field;
//! a change to this shape is a new version there and here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version of the [`AuditFigures`] JSON shape.
pub const FIGURES_VERSION: u32 = 2;

/// What the log shows about lawful access, as of one instant of the
/// audit's clock. Built by [`super::Figures::finish`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditFigures {
    /// Shape version, [`FIGURES_VERSION`].
    pub version: u32,
    /// The audit's clock, Unix seconds: overdue means overdue at this time.
    pub as_of: u64,
    /// Valid statements replayed (entries the integrity checks refused are
    /// not counted here; the audit report lists them).
    pub statements: u64,
    /// Seconds after an embargo (with its logged extensions) ends before a
    /// still sealed warrant is flagged.
    pub unsealing_grace_secs: u64,
    /// Days after a day ends before a missing erasure is flagged (the
    /// manifest's `policy.erasure_grace_days`).
    pub erasure_grace_days: u16,
    /// Every counted event.
    pub totals: Counts,
    /// Events of warrants issued by each court.
    pub by_court: BTreeMap<String, Counts>,
    /// Events of warrants requested by each authority.
    pub by_authority: BTreeMap<String, Counts>,
    /// Events by UTC month (`YYYY-MM`) of the time the statement carries.
    pub by_month: BTreeMap<String, Counts>,
    /// Events by court, authority and month together, sorted by those keys.
    pub rows: Vec<Row>,
    /// What each custodian of the manifest logged.
    pub custodians: BTreeMap<String, CustodianFigures>,
    /// Known-content detection: each provider's latest logged matching
    /// figures (statement kind 15), by provider name (version 2).
    #[serde(default)]
    pub matching: BTreeMap<String, MatchingFigures>,
    /// What the audit found wrong.
    pub flags: Flags,
}

impl AuditFigures {
    /// Whether nothing is flagged.
    pub fn clean(&self) -> bool {
        let f = &self.flags;
        f.overdue_unsealings.is_empty()
            && f.missing_erasures.is_empty()
            && f.unlogged_warrants.is_empty()
            && f.refused_statements.is_empty()
    }
}

/// Counts of one group of events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Counts {
    /// Warrant commitments logged.
    pub warrants: u64,
    /// Target conversations of those warrants (their public count).
    pub targets: u64,
    /// Days those warrants cover (their public count).
    pub days: u64,
    /// `KeyRelease` statements.
    pub releases: u64,
    /// Conversation-days those releases cover.
    pub conversation_days_released: u64,
    /// `Interception` statements.
    pub interceptions: u64,
    /// Warrants unsealed (the first valid unsealing of each).
    pub unsealings: u64,
    /// Valid unsealings of a warrant already unsealed (harmless repeats).
    pub repeated_unsealings: u64,
    /// Embargo extensions honoured (by the issuing court, before the
    /// embargo ended, within the policy's maximum).
    pub embargo_extensions: u64,
    /// Warrants revoked.
    pub revocations: u64,
    /// Day-key share erasures (one per custodian and day).
    pub day_key_erasures: u64,
}

/// The counts of one court, authority and month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Row {
    /// The court that issued the warrants.
    pub court: String,
    /// The authority that requested them.
    pub authority: String,
    /// UTC month, `YYYY-MM`.
    pub month: String,
    /// The counts.
    pub counts: Counts,
}

/// What one custodian logged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CustodianFigures {
    /// `KeyRelease` statements it logged.
    pub releases: u64,
    /// Conversation-days it released.
    pub conversation_days_released: u64,
    /// Days whose key it published (`EscrowDayKey`).
    pub day_keys_generated: u64,
    /// Days whose share it logged as erased (`DayKeyErasure`).
    pub day_keys_erased: u64,
}

/// A provider's matching figures as its latest accepted `matching_cases`
/// statement gives them: totals since its service began, its claim; the
/// audit checks that they never went down and that no more cases were
/// decided than opened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MatchingFigures {
    /// `matching_cases` statements of this provider counted.
    pub statements: u64,
    /// The latest one's time, Unix seconds.
    pub as_of: u64,
    /// The table in force then, hex.
    pub table_root: String,
    /// Accounts that reached the threshold.
    pub accounts_matched: u64,
    /// Review cases opened.
    pub cases_opened: u64,
    /// Cases a moderator confirmed.
    pub cases_confirmed: u64,
    /// Cases a moderator dismissed.
    pub cases_dismissed: u64,
    /// Cases not decided yet (opened minus decided).
    pub cases_pending: u64,
}

/// Everything the audit flags. Each list is in log order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Flags {
    /// Warrants still sealed after their embargo plus the grace.
    pub overdue_unsealings: Vec<OverdueUnsealing>,
    /// Days whose shares are not all logged as erased after the grace.
    pub missing_erasures: Vec<MissingErasure>,
    /// Statements under a warrant whose commitment was not in the log
    /// before them.
    pub unlogged_warrants: Vec<UnloggedWarrant>,
    /// Statements that passed the integrity checks but say something
    /// false or not allowed (see each reason).
    pub refused_statements: Vec<RefusedStatement>,
}

/// A warrant kept sealed too long.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OverdueUnsealing {
    /// The commitment, hex.
    pub warrant: String,
    /// Log index of the commitment.
    pub index: u64,
    /// Issuing court.
    pub court: String,
    /// Requesting authority.
    pub authority: String,
    /// End of the embargo, with honoured extensions, Unix seconds.
    pub embargo_until: u64,
    /// Extensions honoured.
    pub extensions: u64,
    /// When it had to be unsealed at the latest (`embargo_until` + grace).
    pub due_at: u64,
    /// Seconds past `due_at` at the audit's clock.
    pub overdue_secs: u64,
    /// Whether the warrant was revoked (revocation does not waive unsealing).
    pub revoked: bool,
}

/// A day whose key shares were not all erased in time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MissingErasure {
    /// UTC day number.
    pub day: u32,
    /// The day as `YYYY-MM-DD`.
    pub date: String,
    /// When every share had to be erased (end of the day plus the grace).
    pub due_at: u64,
    /// Custodians that published the day's accepted key (share holders).
    pub holders: Vec<String>,
    /// Holders whose erasure is logged.
    pub erased_by: Vec<String>,
    /// Holders whose erasure is not logged.
    pub not_erased_by: Vec<String>,
    /// Whether enough unerased shares may remain to open the day (at least
    /// the manifest's threshold).
    pub still_openable: bool,
}

/// A statement under a warrant the log did not hold when it was logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnloggedWarrant {
    /// Log index of the statement.
    pub index: u64,
    /// Its type (`key_release`, `interception`, ...).
    pub kind: String,
    /// Its author's manifest name.
    pub author: String,
    /// The commitment it names, hex.
    pub warrant: String,
    /// Log index of that commitment if it was logged later, else `null`.
    pub logged_later_at: Option<u64>,
}

/// A statement the figures do not count, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RefusedStatement {
    /// Log index.
    pub index: u64,
    /// Its type.
    pub kind: String,
    /// Its author's manifest name.
    pub author: String,
    /// Why it is not counted.
    pub reason: String,
}
