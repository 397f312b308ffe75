//! Reports and moderation: `POST /v1/reports`, the moderation queue,
//! actions (dismiss, warn, suspend, escalate), and the published figures.
//!
//! # Who may moderate
//! A moderator is an ordinary account named, together with its identity key,
//! in the file `moderators` of the data directory ([`add_moderator`], or
//! `custos moderate add-moderator`); on PostgreSQL, in the `moderators`
//! table every server reads ([`add_moderator_on_postgres`]). Moderation requests authenticate with
//! that account's session (the same signed challenge as every account); the
//! service re-reads the list on each moderation request, so adding or
//! removing a moderator takes effect without a restart. Binding the identity key,
//! not only the name, means a name re-registered by someone else is no
//! moderator. Every action is stored with the moderator's name and the time.
//!
//! # Guarantees
//! - A report is taken only from a recipient of the message: a member of
//!   its conversation (the service's routing list) other than its sender;
//!   anyone else is refused `not_a_recipient`, even with valid evidence.
//! - A report enters the queue only if [`custos_verify::report::verify_report`]
//!   accepted it; a refused report is answered `422` with the check's code,
//!   and only its code, reporter and time are kept (for the figures).
//! - One report per reporter and message: a verified report of a message
//!   (the same envelope, conversation, sender and acceptance time) that the
//!   same account reported before is not stored again; it is answered `200`
//!   with the first report's id and current status. A repeat is verified
//!   like any report, so a changed payload is refused, not deduplicated.
//! - Reports are limited per account and per network prefix in time windows
//!   ([`crate::Limits::reports_per_account`], `reports_per_prefix`):
//!   `429 report_limited`, counted before the evidence is checked, so that
//!   refused reports cost the same as accepted ones. A repeat of an
//!   earlier report is not counted.
//! - A suspension is written to the database before it takes effect in
//!   memory, and is reloaded at start, so it survives restarts.

use std::path::Path;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use custos_wire::moderation::Action;
use custos_wire::report::Report;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::abuse::franking::{FrankingPolicy, Suspension};
use crate::delivery::auth::Authed;
use crate::error::HttpRefusal;
use crate::limits::ClientIp;
use crate::refusal::ModerationRefusal;
use crate::state::{AppState, JsonBody, RawBody, UrlParam, UrlQuery};
use crate::store::ModerationStore;
use crate::store::moderation::{ActionRecord, Decision, NewReport, Queued, StoredReport};
use custos_verify::package::{PackageHeader, ReportPackage};
use custos_verify::report::{ReportRefusal, SenderKeys, verify_report};

/// File in the data directory naming the moderators (`name hex(identity_key)` per line).
pub const MODERATORS_FILE: &str = "moderators";

/// Why a moderator could not be added.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AddModeratorError {
    /// No such account in the service's database.
    #[error("no account {0} on this service; register it first with `custos register`")]
    NoAccount(String),
    /// The database could not be read.
    #[error("cannot read the service database: {0}")]
    Database(#[from] sqlx::Error),
    /// The moderators file could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// Makes the registered account `name` a moderator of the service whose
/// data directory is `data_dir`. Reads the database read-only, so it works
/// while the service runs. Appends `name hex(identity_key)` to the
/// moderators file (created 0600).
pub async fn add_moderator(data_dir: &Path, name: &str) -> Result<(), AddModeratorError> {
    use sqlx::ConnectOptions;
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(data_dir.join(crate::db::DB_FILE))
        .read_only(true);
    let mut conn = opts.connect().await?;
    let key: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT identity_key FROM accounts WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut conn)
            .await?;
    let key = key.ok_or_else(|| AddModeratorError::NoAccount(name.to_owned()))?;
    let path = data_dir.join(MODERATORS_FILE);
    let io = |source| AddModeratorError::Io {
        path: path.clone(),
        source,
    };
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&path)
        .map_err(io)?;
    writeln!(f, "{name} {}", hex::encode(key)).map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(())
}

/// Makes the registered account `name` a moderator of every server on the
/// PostgreSQL database at `url` (the shared `moderators` table, bound to
/// the account's identity key now). Applies the migrations this build
/// knows, as a starting server would.
pub async fn add_moderator_on_postgres(url: &str, name: &str) -> Result<(), AddModeratorError> {
    let store = crate::store::postgres::PgStore::connect(url, 1).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let added = store.add_moderator(name, now).await;
    store.pool().close().await;
    if added? {
        Ok(())
    } else {
        Err(AddModeratorError::NoAccount(name.to_owned()))
    }
}

/// Loads the suspensions stored in the database into the policy.
pub(crate) async fn load_suspensions(
    store: &dyn ModerationStore,
    policy: &FrankingPolicy,
) -> Result<(), sqlx::Error> {
    for (account, until) in store.suspensions().await? {
        policy.suspend(&account, suspension_of(until));
    }
    Ok(())
}

fn suspension_of(until: Option<i64>) -> Suspension {
    crate::store::moderation::suspension_of(until)
}

/// The queue's view of a decoded report by `reporter`.
fn new_report<'a>(
    auth: &'a Authed,
    report: &'a Report,
    body: &'a [u8],
    received_at: i64,
) -> NewReport<'a> {
    let m = &report.message;
    NewReport {
        received_at,
        reporter: &auth.name,
        reporter_id: auth.account_id,
        conversation: &m.conversation.0,
        sender: &m.sender,
        server_time: i64::try_from(m.server_time).unwrap_or(i64::MAX),
        reason: &report.reason,
        report: body,
        envelope: &m.envelope,
    }
}

fn franking(state: &AppState) -> Result<&Arc<FrankingPolicy>, ModerationRefusal> {
    state
        .config
        .franking
        .as_ref()
        .ok_or(ModerationRefusal::FrankingDisabled)
}

fn now_i64(state: &AppState) -> i64 {
    i64::try_from(state.clock.now_millis()).unwrap_or(i64::MAX)
}

/// `GET /v1/franking-key`.
pub(crate) async fn franking_key(
    State(state): State<AppState>,
) -> Result<impl IntoResponse, HttpRefusal> {
    let f = franking(&state)?;
    Ok(axum::Json(serde_json::json!({
        "public_key": B64.encode(f.public_key()),
        "log_proof": f.log_proof(),
    })))
}

/// `POST /v1/reports`: body is an encoded Report v1.
pub(crate) async fn submit_report(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    auth: Authed,
    RawBody(body): RawBody,
) -> Result<axum::response::Response, HttpRefusal> {
    let key = franking(&state)?.verifying_key();
    let decoded = Report::decode(&body).map_err(ReportRefusal::Malformed);
    // A repeat of an earlier report is not counted against the limits; it
    // is still verified like any report (a changed payload is refused, not
    // answered with the earlier report), and answered with the earlier id
    // below.
    let now = now_i64(&state);
    let repeat = match &decoded {
        Ok(r) => state
            .store
            .earlier_report(&new_report(&auth, r, &body, now))
            .await?
            .is_some(),
        Err(_) => false,
    };
    if !repeat {
        state.guards.report(auth.account_id, ip)?;
    }
    let senders = match &decoded {
        Ok(r) => sender_keys(&state, r).await?,
        Err(_) => SenderKeys::new(),
    };
    let mut verdict = decoded.and_then(|r| verify_report(&r, &key, &senders).map(|v| (r, v)));
    // Only a recipient may report: a member of the verified conversation
    // other than the verified sender. Checked after the evidence, so that a
    // changed claim is refused with the check it fails.
    if let Ok((_, v)) = &verdict {
        let member = state
            .store
            .is_member(&v.message.conversation.0, auth.account_id)
            .await?;
        if !member || v.message.sender == *auth.name {
            verdict = Err(ReportRefusal::NotARecipient);
        }
    }
    let (report, verified) = match verdict {
        Ok(ok) => ok,
        Err(refusal) => {
            state
                .store
                .record_report_refusal(now, &auth.name, refusal.code())
                .await?;
            return Err(ModerationRefusal::Report(refusal).into());
        }
    };
    let v = &verified.message;
    // The repeat check again, with the insert in one transaction, so that
    // two identical reports at once store one.
    let queued = NewReport {
        conversation: &v.conversation.0,
        sender: &v.sender,
        server_time: i64::try_from(v.server_time).unwrap_or(i64::MAX),
        ..new_report(&auth, &report, &body, now)
    };
    let id = match state.store.queue_report(&queued).await? {
        Queued::New(id) => id,
        Queued::Earlier { id, status } => {
            return Ok(
                axum::Json(serde_json::json!({ "report_id": id, "status": status }))
                    .into_response(),
            );
        }
    };
    tracing::info!(report = id, "report verified and queued");
    Ok((
        StatusCode::CREATED,
        axum::Json(serde_json::json!({ "report_id": id, "status": "open" })),
    )
        .into_response())
}

/// Refuses anyone not listed, with their current identity key, as a
/// moderator: in the data directory's moderators file on SQLite, in the
/// shared `moderators` table on PostgreSQL (so every server agrees).
pub(crate) async fn moderator(state: &AppState, auth: &Authed) -> Result<(), HttpRefusal> {
    franking(state)?;
    let denied = || HttpRefusal::from(ModerationRefusal::NotModerator);
    let key = state
        .store
        .identity_key_of(auth.account_id)
        .await?
        .ok_or_else(denied)?;
    let listed = match &state.pg {
        Some(pg) => pg.is_moderator(&auth.name, &key).await?,
        None => listed_in_file(&state.config.data_dir, &auth.name, &key)?,
    };
    if listed { Ok(()) } else { Err(denied()) }
}

/// Whether the moderators file of `data_dir` names `name` with `key`.
fn listed_in_file(data_dir: &Path, name: &str, key: &[u8]) -> Result<bool, HttpRefusal> {
    let list = match std::fs::read_to_string(data_dir.join(MODERATORS_FILE)) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(HttpRefusal::internal("moderators file", e)),
    };
    let key = hex::encode(key);
    Ok(list.lines().any(|l| {
        let mut parts = l.split_whitespace();
        parts.next() == Some(name) && parts.next() == Some(key.as_str())
    }))
}

/// A queue entry.
#[derive(Debug, Serialize)]
pub(crate) struct ReportSummary {
    id: i64,
    received_at: i64,
    reporter: String,
    conversation_hex: String,
    sender: String,
    server_time: i64,
    reason: String,
    status: String,
}

impl ReportSummary {
    fn of(r: StoredReport) -> (Self, Vec<u8>) {
        (
            Self {
                id: r.id,
                received_at: r.received_at,
                reporter: r.reporter,
                conversation_hex: hex::encode(&r.conversation),
                sender: r.sender,
                server_time: r.server_time,
                reason: r.reason,
                status: r.status,
            },
            r.report,
        )
    }
}

/// Query of the queue.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    #[serde(default)]
    status: Option<String>,
}

/// `GET /v1/moderation/reports?status=open|all`.
pub(crate) async fn list(
    State(state): State<AppState>,
    auth: Authed,
    UrlQuery(q): UrlQuery<ListQuery>,
) -> Result<impl IntoResponse, HttpRefusal> {
    moderator(&state, &auth).await?;
    let all = q.status.as_deref() == Some("all");
    let rows: Vec<ReportSummary> = state
        .store
        .list_reports(all)
        .await?
        .into_iter()
        .map(|r| ReportSummary::of(r).0)
        .collect();
    Ok(axum::Json(serde_json::json!({ "reports": rows })))
}

async fn load(state: &AppState, id: i64) -> Result<(ReportSummary, Vec<u8>), HttpRefusal> {
    let row = state.store.report(id).await?;
    Ok(ReportSummary::of(
        row.ok_or(ModerationRefusal::NoReport(id))?,
    ))
}

/// `GET /v1/moderation/reports/{id}`: the report, its verified messages and
/// its actions.
pub(crate) async fn show(
    State(state): State<AppState>,
    auth: Authed,
    UrlParam(id): UrlParam<i64>,
) -> Result<impl IntoResponse, HttpRefusal> {
    moderator(&state, &auth).await?;
    let key = franking(&state)?.verifying_key();
    let (summary, bytes) = load(&state, id).await?;
    let report = Report::decode(&bytes).map_err(|e| HttpRefusal::internal("stored report", e))?;
    let senders = sender_keys(&state, &report).await?;
    let v = verify_report(&report, &key, &senders)
        .map_err(|e| HttpRefusal::internal("stored report", e))?;
    let msg = |m: &custos_verify::report::VerifiedMessage| {
        serde_json::json!({
            "sender": m.sender, "server_time": m.server_time, "text": m.text,
            "commitment": hex::encode(m.commitment),
            "attachments_sha256": m.attachment_sha256.iter().map(hex::encode).collect::<Vec<_>>(),
        })
    };
    let actions: Vec<ActionRecord> = state.store.actions(id).await?;
    Ok(axum::Json(serde_json::json!({
        "report": summary,
        "message": msg(&v.message),
        "context": v.context.iter().map(msg).collect::<Vec<_>>(),
        "actions": actions,
    })))
}

/// `GET /v1/moderation/reports/{id}/attachments/{index}`: a moderator sees
/// an attachment of the reported message. The report revealed the
/// message's payload, with each attachment's key; the service opens its
/// stored blob with it and answers the plaintext only if it is exactly what
/// the sender committed to (size and SHA-256 inside the franked payload).
pub(crate) async fn attachment(
    State(state): State<AppState>,
    auth: Authed,
    UrlParam((id, index)): UrlParam<(i64, usize)>,
) -> Result<impl IntoResponse, HttpRefusal> {
    moderator(&state, &auth).await?;
    let (_, bytes) = load(&state, id).await?;
    let report = Report::decode(&bytes).map_err(|e| HttpRefusal::internal("stored report", e))?;
    let payload = custos_wire::payload::Payload::decode(&report.message.payload)
        .map_err(|e| HttpRefusal::internal("stored report", e))?;
    let attachment = payload
        .attachments
        .get(index)
        .ok_or(ModerationRefusal::NoAttachment(index))?;
    let blob = if crate::delivery::blobs::is_locator(&attachment.locator) {
        crate::delivery::blobs::stored_body(&state, &attachment.locator, None).await?
    } else {
        None
    };
    let blob = blob.ok_or_else(|| {
        ModerationRefusal::AttachmentUnavailable("its blob is no longer stored".into())
    })?;
    let plaintext = custos_verify::attachment::open_attachment(attachment, &blob)
        .map_err(|e| ModerationRefusal::AttachmentUnavailable(e.to_string()))?;
    tracing::info!(report = id, index, "attachment shown to a moderator");
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
        plaintext.to_vec(),
    ))
}

/// Body of `POST /v1/moderation/reports/{id}/resolve`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResolveBody {
    /// `dismiss`, `warn`, `suspend` or `escalate` ([`Action`]); parsed by
    /// hand so that another word is refused `bad_action`.
    action: String,
    /// The moderator's note.
    #[serde(default)]
    note: String,
    /// For `suspend`: seconds; absent means permanent.
    #[serde(default)]
    suspend_seconds: Option<u64>,
}

/// `POST /v1/moderation/reports/{id}/resolve`.
pub(crate) async fn resolve(
    State(state): State<AppState>,
    auth: Authed,
    UrlParam(id): UrlParam<i64>,
    JsonBody(body): JsonBody<ResolveBody>,
) -> Result<impl IntoResponse, HttpRefusal> {
    moderator(&state, &auth).await?;
    let policy = franking(&state)?.clone();
    let (summary, bytes) = load(&state, id).await?;
    let action = Action::from_name(&body.action).ok_or(ModerationRefusal::BadAction)?;
    let status = action.status();
    let now = state.clock.now_millis();
    let until = match (action, body.suspend_seconds) {
        (Action::Suspend, Some(s)) => Some(now.saturating_add(s.saturating_mul(1000))),
        _ => None,
    };
    let until_i64 = until.map(|t| i64::try_from(t).unwrap_or(i64::MAX));
    record_action(&state, &auth, &summary, action, &body.note, until_i64).await?;
    if action == Action::Suspend {
        policy.suspend(&summary.sender, suspension_of(until_i64));
    }
    tracing::info!(report = id, %action, moderator = %auth.name, "moderation action");
    let package = match action {
        Action::Escalate => {
            let report =
                Report::decode(&bytes).map_err(|e| HttpRefusal::internal("stored report", e))?;
            let senders = sender_keys(&state, &report).await?;
            Some(escalation_package(
                &policy, &auth, &summary, &report, &senders, now,
            )?)
        }
        Action::Dismiss | Action::Warn | Action::Suspend => None,
    };
    Ok(axum::Json(serde_json::json!({
        "report_id": id,
        "status": status,
        "sender": summary.sender,
        "suspended_until": until,
        "package": package,
    })))
}

/// Stores the action, the report's new status and, for a suspension, the
/// suspension, in one transaction: durable before it is in force.
async fn record_action(
    state: &AppState,
    auth: &Authed,
    summary: &ReportSummary,
    action: Action,
    note: &str,
    until: Option<i64>,
) -> Result<(), HttpRefusal> {
    let decision = Decision {
        report_id: summary.id,
        moderator: &auth.name,
        action: action.name(),
        status: action.status().name(),
        note,
        suspend: action == Action::Suspend,
        suspended_until: until,
        taken_at: now_i64(state),
    };
    state
        .store
        .record_decision(&decision, &summary.sender)
        .await?;
    Ok(())
}

/// The package of an escalated report: the stored report verified again
/// under the franking key, with the key's log proof.
fn escalation_package(
    policy: &FrankingPolicy,
    auth: &Authed,
    summary: &ReportSummary,
    report: &Report,
    senders: &SenderKeys,
    now: u64,
) -> Result<ReportPackage, HttpRefusal> {
    let verified = verify_report(report, &policy.verifying_key(), senders)
        .map_err(|e| HttpRefusal::internal("stored report", e))?;
    Ok(ReportPackage::assemble(
        PackageHeader {
            report_id: summary.id,
            reporter: summary.reporter.clone(),
            reported_at: u64::try_from(summary.received_at).unwrap_or(0),
            escalated_by: auth.name.to_string(),
            escalated_at: now,
        },
        &policy.public_key(),
        policy.log_proof(),
        report,
        &verified,
    ))
}

/// The identity keys of the accounts a report names as senders, from the
/// service's accounts (an unknown name is simply absent: the check then
/// refuses it as `unknown_sender`).
async fn sender_keys(state: &AppState, report: &Report) -> Result<SenderKeys, HttpRefusal> {
    let mut names: Vec<String> = std::iter::once(&report.message)
        .chain(&report.context)
        .map(|m| m.sender.clone())
        .collect();
    names.sort_unstable();
    names.dedup();
    let mut keys = SenderKeys::new();
    for (name, stored) in state.store.identity_keys(&names).await? {
        let key = <[u8; 32]>::try_from(stored.as_slice())
            .ok()
            .and_then(|b| custos_verify::sender_signature::SenderKey::from_bytes(&b).ok());
        if let Some(key) = key {
            keys.insert(name, key);
        }
    }
    Ok(keys)
}

/// `GET /v1/moderation/stats`: the published figures (no authentication).
pub(crate) async fn stats(State(state): State<AppState>) -> Result<impl IntoResponse, HttpRefusal> {
    franking(&state)?;
    let stats = state.store.moderation_stats().await?;
    let (verified, refused, open) = (stats.verified, stats.refused, stats.open);
    let (refused_by_reason, by_action) = (stats.refused_by_reason, stats.by_action);
    let mut delays = stats.time_to_action;
    delays.sort_unstable();
    let median_ms = median(&delays);
    Ok(axum::Json(serde_json::json!({
        "reports_received": verified.saturating_add(refused),
        "reports_verified": verified,
        "reports_refused": refused,
        "refused_by_reason": refused_by_reason.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        "reports_open": open,
        "actions": by_action.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        "median_time_to_action_ms": median_ms,
    })))
}

fn median(sorted: &[i64]) -> Option<i64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let hi = *sorted.get(n / 2)?;
    if n % 2 == 1 {
        Some(hi)
    } else {
        let lo = *sorted.get(n / 2 - 1)?;
        Some(lo + (hi - lo) / 2)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(super::median(&[]), None);
        assert_eq!(super::median(&[5]), Some(5));
        assert_eq!(super::median(&[1, 3, 10]), Some(3));
        assert_eq!(super::median(&[1, 3]), Some(2));
    }
}
