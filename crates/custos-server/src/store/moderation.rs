//! The rows of the moderation concern ([`super::ModerationStore`]): reports,
//! their refusals, moderators' decisions and suspensions, as both backends
//! store them.

use custos_wire::report::Report;

use crate::abuse::franking::Suspension;

/// A verified report to queue (its checks have passed).
#[derive(Debug, Clone, Copy)]
pub struct NewReport<'a> {
    /// When the service received it (ms).
    pub received_at: i64,
    /// The reporting account's name and id (the id's row serialises the
    /// reporter's reports, so two identical reports at once store one).
    pub reporter: &'a str,
    /// The reporter's account id.
    pub reporter_id: i64,
    /// The reported message's conversation.
    pub conversation: &'a [u8],
    /// Its verified sender.
    pub sender: &'a str,
    /// The service's acceptance time of the message (ms).
    pub server_time: i64,
    /// The reporter's reason.
    pub reason: &'a str,
    /// The encoded report, as received.
    pub report: &'a [u8],
    /// The reported envelope: a stored report of the same reporter,
    /// conversation, sender and time with these envelope bytes is the same
    /// message.
    pub envelope: &'a [u8],
}

/// The outcome of [`super::ModerationStore::queue_report`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Queued {
    /// Stored as a new open report with this id.
    New(i64),
    /// The reporter reported this message before: nothing was written.
    Earlier {
        /// The earlier report.
        id: i64,
        /// Its current status.
        status: String,
    },
}

/// A stored report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReport {
    /// Its id (assigned in commit order per backend).
    pub id: i64,
    /// When it was received (ms).
    pub received_at: i64,
    /// The reporter's name.
    pub reporter: String,
    /// The reported message's conversation.
    pub conversation: Vec<u8>,
    /// The verified sender of the message.
    pub sender: String,
    /// The service's acceptance time of the message (ms).
    pub server_time: i64,
    /// The reporter's reason.
    pub reason: String,
    /// `open`, or the status of the last decision.
    pub status: String,
    /// The encoded report (empty in listings).
    pub report: Vec<u8>,
}

/// One recorded moderation decision.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ActionRecord {
    /// The action's name (`dismiss`, `warn`, `suspend`, `escalate`).
    pub action: String,
    /// The moderator who took it.
    pub moderator: String,
    /// The moderator's note.
    pub note: String,
    /// For a timed suspension, its end (ms).
    pub suspended_until: Option<i64>,
    /// When it was taken (ms).
    pub taken_at: i64,
}

/// A moderator's decision on a report.
#[derive(Debug, Clone, Copy)]
pub struct Decision<'a> {
    /// The report decided.
    pub report_id: i64,
    /// The deciding moderator.
    pub moderator: &'a str,
    /// The action's name.
    pub action: &'a str,
    /// The report's status after it.
    pub status: &'a str,
    /// The moderator's note.
    pub note: &'a str,
    /// Whether the action suspends the report's sender.
    pub suspend: bool,
    /// The suspension's end (ms), `None` for a permanent one.
    pub suspended_until: Option<i64>,
    /// When it is taken (ms).
    pub taken_at: i64,
}

/// The published moderation figures, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModerationStats {
    /// Reports that passed verification.
    pub verified: i64,
    /// Reports refused.
    pub refused: i64,
    /// Refusals by code, sorted.
    pub refused_by_reason: Vec<(String, i64)>,
    /// Open reports.
    pub open: i64,
    /// Actions by name, sorted.
    pub by_action: Vec<(String, i64)>,
    /// Per decided report, ms from receipt to its first action (unsorted).
    pub time_to_action: Vec<i64>,
}

/// The suspension a stored `until` means (`None`: permanent).
pub fn suspension_of(until: Option<i64>) -> Suspension {
    match until {
        None => Suspension::Permanent,
        Some(t) => Suspension::Until(u64::try_from(t).unwrap_or(0)),
    }
}

/// The suspension in force at `now` for a stored row, if any.
pub(crate) fn in_force(row: Option<Option<i64>>, now: i64) -> Option<Suspension> {
    match row? {
        Some(t) if t <= now => None,
        until => Some(suspension_of(until)),
    }
}

/// The first of the candidate rows (`id`, `status`, stored report) whose
/// report names the same envelope bytes: stored reports were verified when
/// taken, so equal envelopes mean the same message.
pub(crate) fn same_message(
    rows: Vec<(i64, String, Vec<u8>)>,
    envelope: &[u8],
) -> Option<(i64, String)> {
    rows.into_iter().find_map(|(id, status, stored)| {
        Report::decode(&stored)
            .ok()
            .filter(|s| s.message.envelope == envelope)
            .map(|_| (id, status))
    })
}
