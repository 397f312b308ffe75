//! Reports and moderation: `POST /v1/reports`, the moderation queue,
//! actions (dismiss, warn, suspend, escalate), and the published figures.
//!
//! # Who may moderate
//! A moderator is an ordinary account named, together with its identity key,
//! in the file `moderators` of the data directory ([`add_moderator`], or
//! `custos moderate add-moderator`). Moderation requests authenticate with
//! that account's session (the same signed challenge as every account); the
//! service re-reads the file on each moderation request, so adding or
//! removing a line takes effect without a restart. Binding the identity key,
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
use sqlx::SqlitePool;
use std::sync::Arc;

use crate::abuse::franking::{FrankingPolicy, Suspension};
use crate::delivery::auth::Authed;
use crate::error::HttpRefusal;
use crate::limits::ClientIp;
use crate::refusal::ModerationRefusal;
use crate::state::{AppState, JsonBody, RawBody, UrlParam, UrlQuery};
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

/// Loads the suspensions stored in the database into the policy.
pub(crate) async fn load_suspensions(
    pool: &SqlitePool,
    policy: &FrankingPolicy,
) -> Result<(), sqlx::Error> {
    let rows: Vec<(String, Option<i64>)> = sqlx::query_as("SELECT account, until FROM suspensions")
        .fetch_all(pool)
        .await?;
    for (account, until) in rows {
        policy.suspend(&account, suspension_of(until));
    }
    Ok(())
}

fn suspension_of(until: Option<i64>) -> Suspension {
    match until {
        None => Suspension::Permanent,
        Some(t) => Suspension::Until(u64::try_from(t).unwrap_or(0)),
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
    let repeat = match &decoded {
        Ok(r) => earlier_report(&state.pool, &auth.name, r).await?.is_some(),
        Err(_) => false,
    };
    if !repeat {
        state.guards.report(auth.account_id, ip)?;
    }
    let senders = match &decoded {
        Ok(r) => sender_keys(&state.pool, r).await?,
        Err(_) => SenderKeys::new(),
    };
    let mut verdict = decoded.and_then(|r| verify_report(&r, &key, &senders).map(|v| (r, v)));
    // Only a recipient may report: a member of the verified conversation
    // other than the verified sender. Checked after the evidence, so that a
    // changed claim is refused with the check it fails.
    if let Ok((_, v)) = &verdict {
        let member = sqlx::query_scalar::<_, i64>(
            "SELECT 1 FROM members WHERE conversation = ? AND account_id = ?",
        )
        .bind(v.message.conversation.0.to_vec())
        .bind(auth.account_id)
        .fetch_optional(&state.pool)
        .await?
        .is_some();
        if !member || v.message.sender == *auth.name {
            verdict = Err(ReportRefusal::NotARecipient);
        }
    }
    let now = now_i64(&state);
    let (report, verified) = match verdict {
        Ok(ok) => ok,
        Err(refusal) => {
            sqlx::query(
                "INSERT INTO report_refusals (received_at, reporter, code) VALUES (?, ?, ?)",
            )
            .bind(now)
            .bind(&*auth.name)
            .bind(refusal.code())
            .execute(&state.pool)
            .await?;
            return Err(ModerationRefusal::Report(refusal).into());
        }
    };
    let v = &verified.message;
    // The repeat check again, with the insert in one write transaction, so
    // that two identical reports at once store one.
    let mut tx = state.pool.begin_with("BEGIN IMMEDIATE").await?;
    if let Some((id, status)) = earlier_report(&mut *tx, &auth.name, &report).await? {
        return Ok(
            axum::Json(serde_json::json!({ "report_id": id, "status": status })).into_response(),
        );
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO reports (received_at, reporter, conversation, sender, server_time, reason, \
         report, status) VALUES (?, ?, ?, ?, ?, ?, ?, 'open') RETURNING id",
    )
    .bind(now)
    .bind(&*auth.name)
    .bind(v.conversation.0.to_vec())
    .bind(&v.sender)
    .bind(i64::try_from(v.server_time).unwrap_or(i64::MAX))
    .bind(&report.reason)
    .bind(body.to_vec())
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(report = id, "report verified and queued");
    Ok((
        StatusCode::CREATED,
        axum::Json(serde_json::json!({ "report_id": id, "status": "open" })),
    )
        .into_response())
}

/// The id and status of a stored report by `reporter` of the same message
/// as `report` (same conversation, sender, acceptance time and envelope
/// bytes). Stored reports were verified when they were taken, so equal
/// envelope bytes mean the same message.
async fn earlier_report<'c, E>(
    db: E,
    reporter: &str,
    report: &Report,
) -> Result<Option<(i64, String)>, HttpRefusal>
where
    E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
{
    let m = &report.message;
    let rows: Vec<(i64, String, Vec<u8>)> = sqlx::query_as(
        "SELECT id, status, report FROM reports WHERE reporter = ? AND conversation = ? \
         AND sender = ? AND server_time = ? ORDER BY id LIMIT 16",
    )
    .bind(reporter)
    .bind(m.conversation.0.to_vec())
    .bind(&m.sender)
    .bind(i64::try_from(m.server_time).unwrap_or(i64::MAX))
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().find_map(|(id, status, stored)| {
        Report::decode(&stored)
            .ok()
            .filter(|s| s.message.envelope == m.envelope)
            .map(|_| (id, status))
    }))
}

/// Refuses anyone not named (with their current identity key) in the moderators file.
async fn moderator(state: &AppState, auth: &Authed) -> Result<(), HttpRefusal> {
    franking(state)?;
    let denied = || HttpRefusal::from(ModerationRefusal::NotModerator);
    let list = match std::fs::read_to_string(state.config.data_dir.join(MODERATORS_FILE)) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(denied()),
        Err(e) => return Err(HttpRefusal::internal("moderators file", e)),
    };
    let key: Vec<u8> = sqlx::query_scalar("SELECT identity_key FROM accounts WHERE id = ?")
        .bind(auth.account_id)
        .fetch_one(&state.pool)
        .await?;
    let key = hex::encode(key);
    let listed = list.lines().any(|l| {
        let mut parts = l.split_whitespace();
        parts.next() == Some(&*auth.name) && parts.next() == Some(key.as_str())
    });
    if listed { Ok(()) } else { Err(denied()) }
}

/// A queue entry.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub(crate) struct ReportSummary {
    id: i64,
    received_at: i64,
    reporter: String,
    #[sqlx(skip)]
    conversation_hex: String,
    #[serde(skip)]
    conversation: Vec<u8>,
    sender: String,
    server_time: i64,
    reason: String,
    status: String,
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
    let mut rows: Vec<ReportSummary> = sqlx::query_as(
        "SELECT id, received_at, reporter, conversation, sender, server_time, reason, status \
         FROM reports WHERE (? OR status = 'open') ORDER BY id LIMIT 1000",
    )
    .bind(all)
    .fetch_all(&state.pool)
    .await?;
    for r in &mut rows {
        r.conversation_hex = hex::encode(&r.conversation);
    }
    Ok(axum::Json(serde_json::json!({ "reports": rows })))
}

/// A stored report row: summary columns, then the encoded report.
type ReportRow = (
    i64,
    i64,
    String,
    Vec<u8>,
    String,
    i64,
    String,
    String,
    Vec<u8>,
);

async fn load(state: &AppState, id: i64) -> Result<(ReportSummary, Vec<u8>), HttpRefusal> {
    let row: Option<ReportRow> = sqlx::query_as(
        "SELECT id, received_at, reporter, conversation, sender, server_time, reason, status, \
             report FROM reports WHERE id = ?",
    )
    .bind(id)
    .fetch_optional(&state.pool)
    .await?;
    let (id, received_at, reporter, conversation, sender, server_time, reason, status, report) =
        row.ok_or(ModerationRefusal::NoReport(id))?;
    Ok((
        ReportSummary {
            id,
            received_at,
            reporter,
            conversation_hex: hex::encode(&conversation),
            conversation,
            sender,
            server_time,
            reason,
            status,
        },
        report,
    ))
}

/// One recorded action.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub(crate) struct ActionRecord {
    action: String,
    moderator: String,
    note: String,
    suspended_until: Option<i64>,
    taken_at: i64,
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
    let senders = sender_keys(&state.pool, &report).await?;
    let v = verify_report(&report, &key, &senders)
        .map_err(|e| HttpRefusal::internal("stored report", e))?;
    let msg = |m: &custos_verify::report::VerifiedMessage| {
        serde_json::json!({
            "sender": m.sender, "server_time": m.server_time, "text": m.text,
            "commitment": hex::encode(m.commitment),
            "attachments_sha256": m.attachment_sha256.iter().map(hex::encode).collect::<Vec<_>>(),
        })
    };
    let actions: Vec<ActionRecord> = sqlx::query_as(
        "SELECT action, moderator, note, suspended_until, taken_at FROM moderation_actions \
         WHERE report_id = ? ORDER BY id",
    )
    .bind(id)
    .fetch_all(&state.pool)
    .await?;
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
            let senders = sender_keys(&state.pool, &report).await?;
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
    let mut tx = state.pool.begin().await?;
    sqlx::query(
        "INSERT INTO moderation_actions (report_id, moderator, action, note, suspended_until, \
         taken_at) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(summary.id)
    .bind(&*auth.name)
    .bind(action.name())
    .bind(note)
    .bind(until)
    .bind(now_i64(state))
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE reports SET status = ? WHERE id = ?")
        .bind(action.status().name())
        .bind(summary.id)
        .execute(&mut *tx)
        .await?;
    if action == Action::Suspend {
        sqlx::query(
            "INSERT INTO suspensions (account, until, report_id, since) VALUES (?, ?, ?, ?) \
             ON CONFLICT(account) DO UPDATE SET until = excluded.until, \
             report_id = excluded.report_id, since = excluded.since",
        )
        .bind(&summary.sender)
        .bind(until)
        .bind(summary.id)
        .bind(now_i64(state))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
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
async fn sender_keys(pool: &SqlitePool, report: &Report) -> Result<SenderKeys, HttpRefusal> {
    let mut keys = SenderKeys::new();
    for m in std::iter::once(&report.message).chain(&report.context) {
        if keys.contains_key(&m.sender) {
            continue;
        }
        let stored: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT identity_key FROM accounts WHERE name = ?")
                .bind(&m.sender)
                .fetch_optional(pool)
                .await?;
        let key = stored
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            .and_then(|b| custos_verify::sender_signature::SenderKey::from_bytes(&b).ok());
        if let Some(key) = key {
            keys.insert(m.sender.clone(), key);
        }
    }
    Ok(keys)
}

/// `GET /v1/moderation/stats`: the published figures (no authentication).
pub(crate) async fn stats(State(state): State<AppState>) -> Result<impl IntoResponse, HttpRefusal> {
    franking(&state)?;
    let verified: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM reports")
        .fetch_one(&state.pool)
        .await?;
    let refused: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM report_refusals")
        .fetch_one(&state.pool)
        .await?;
    let refused_by_reason: Vec<(String, i64)> =
        sqlx::query_as("SELECT code, COUNT(*) FROM report_refusals GROUP BY code ORDER BY code")
            .fetch_all(&state.pool)
            .await?;
    let by_action: Vec<(String, i64)> = sqlx::query_as(
        "SELECT action, COUNT(*) FROM moderation_actions GROUP BY action ORDER BY action",
    )
    .fetch_all(&state.pool)
    .await?;
    // Time to action: from receipt to the report's first action.
    let mut delays: Vec<i64> = sqlx::query_scalar(
        "SELECT MIN(a.taken_at) - r.received_at FROM reports r \
         JOIN moderation_actions a ON a.report_id = r.id GROUP BY r.id",
    )
    .fetch_all(&state.pool)
    .await?;
    delays.sort_unstable();
    let median_ms = median(&delays);
    let open: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM reports WHERE status = 'open'")
        .fetch_one(&state.pool)
        .await?;
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
