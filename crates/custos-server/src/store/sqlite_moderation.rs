//! [`ModerationStore`] on SQLite: the SQL of `abuse::moderation`, moved
//! unchanged. The report queue's repeat check and insert take
//! `BEGIN IMMEDIATE`, so two identical reports at once store one; a
//! decision's transaction starts with a write, so decisions are serialised
//! by SQLite's single writer lock.

use async_trait::async_trait;

use super::ModerationStore;
use super::moderation::{
    ActionRecord, Decision, ModerationStats, NewReport, Queued, StoredReport, in_force,
    same_message,
};
use super::sqlite::SqliteStore;
use crate::abuse::franking::Suspension;

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

pub(crate) fn stored(row: ReportRow) -> StoredReport {
    let (id, received_at, reporter, conversation, sender, server_time, reason, status, report) =
        row;
    StoredReport {
        id,
        received_at,
        reporter,
        conversation,
        sender,
        server_time,
        reason,
        status,
        report,
    }
}

async fn earlier<'c, E>(db: E, r: &NewReport<'_>) -> Result<Option<(i64, String)>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
{
    let rows: Vec<(i64, String, Vec<u8>)> = sqlx::query_as(
        "SELECT id, status, report FROM reports WHERE reporter = ? AND conversation = ? \
         AND sender = ? AND server_time = ? ORDER BY id LIMIT 16",
    )
    .bind(r.reporter)
    .bind(r.conversation)
    .bind(r.sender)
    .bind(r.server_time)
    .fetch_all(db)
    .await?;
    Ok(same_message(rows, r.envelope))
}

#[async_trait]
impl ModerationStore for SqliteStore {
    async fn is_member(&self, conversation: &[u8], account_id: i64) -> Result<bool, sqlx::Error> {
        Ok(sqlx::query_scalar::<_, i64>(
            "SELECT 1 FROM members WHERE conversation = ? AND account_id = ?",
        )
        .bind(conversation)
        .bind(account_id)
        .fetch_optional(self.pool())
        .await?
        .is_some())
    }

    async fn identity_keys(&self, names: &[String]) -> Result<Vec<(String, Vec<u8>)>, sqlx::Error> {
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let stored: Option<Vec<u8>> =
                sqlx::query_scalar("SELECT identity_key FROM accounts WHERE name = ?")
                    .bind(name)
                    .fetch_optional(self.pool())
                    .await?;
            if let Some(key) = stored {
                out.push((name.clone(), key));
            }
        }
        Ok(out)
    }

    async fn identity_key_of(&self, account_id: i64) -> Result<Option<Vec<u8>>, sqlx::Error> {
        sqlx::query_scalar("SELECT identity_key FROM accounts WHERE id = ?")
            .bind(account_id)
            .fetch_optional(self.pool())
            .await
    }

    async fn earlier_report(
        &self,
        report: &NewReport<'_>,
    ) -> Result<Option<(i64, String)>, sqlx::Error> {
        earlier(self.pool(), report).await
    }

    async fn queue_report(&self, r: &NewReport<'_>) -> Result<Queued, sqlx::Error> {
        // The repeat check again, with the insert in one write transaction,
        // so that two identical reports at once store one.
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        if let Some((id, status)) = earlier(&mut *tx, r).await? {
            return Ok(Queued::Earlier { id, status });
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO reports (received_at, reporter, conversation, sender, server_time, reason, \
             report, status) VALUES (?, ?, ?, ?, ?, ?, ?, 'open') RETURNING id",
        )
        .bind(r.received_at)
        .bind(r.reporter)
        .bind(r.conversation)
        .bind(r.sender)
        .bind(r.server_time)
        .bind(r.reason)
        .bind(r.report)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Queued::New(id))
    }

    async fn record_report_refusal(
        &self,
        received_at: i64,
        reporter: &str,
        code: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO report_refusals (received_at, reporter, code) VALUES (?, ?, ?)")
            .bind(received_at)
            .bind(reporter)
            .bind(code)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn list_reports(&self, all: bool) -> Result<Vec<StoredReport>, sqlx::Error> {
        let rows: Vec<ReportRow> = sqlx::query_as(
            "SELECT id, received_at, reporter, conversation, sender, server_time, reason, status, \
             X'' FROM reports WHERE (? OR status = 'open') ORDER BY id LIMIT 1000",
        )
        .bind(all)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(stored).collect())
    }

    async fn report(&self, id: i64) -> Result<Option<StoredReport>, sqlx::Error> {
        let row: Option<ReportRow> = sqlx::query_as(
            "SELECT id, received_at, reporter, conversation, sender, server_time, reason, status, \
             report FROM reports WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(stored))
    }

    async fn actions(&self, report_id: i64) -> Result<Vec<ActionRecord>, sqlx::Error> {
        let rows: Vec<(String, String, String, Option<i64>, i64)> = sqlx::query_as(
            "SELECT action, moderator, note, suspended_until, taken_at FROM moderation_actions \
             WHERE report_id = ? ORDER BY id",
        )
        .bind(report_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(action_record).collect())
    }

    async fn record_decision(&self, d: &Decision<'_>, sender: &str) -> Result<(), sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO moderation_actions (report_id, moderator, action, note, suspended_until, \
             taken_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(d.report_id)
        .bind(d.moderator)
        .bind(d.action)
        .bind(d.note)
        .bind(d.suspended_until)
        .bind(d.taken_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE reports SET status = ? WHERE id = ?")
            .bind(d.status)
            .bind(d.report_id)
            .execute(&mut *tx)
            .await?;
        if d.suspend {
            sqlx::query(
                "INSERT INTO suspensions (account, until, report_id, since) VALUES (?, ?, ?, ?) \
                 ON CONFLICT(account) DO UPDATE SET until = excluded.until, \
                 report_id = excluded.report_id, since = excluded.since",
            )
            .bind(sender)
            .bind(d.suspended_until)
            .bind(d.report_id)
            .bind(d.taken_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn suspensions(&self) -> Result<Vec<(String, Option<i64>)>, sqlx::Error> {
        sqlx::query_as("SELECT account, until FROM suspensions")
            .fetch_all(self.pool())
            .await
    }

    async fn suspension(&self, account: &str, now: i64) -> Result<Option<Suspension>, sqlx::Error> {
        let row: Option<Option<i64>> =
            sqlx::query_scalar("SELECT until FROM suspensions WHERE account = ?")
                .bind(account)
                .fetch_optional(self.pool())
                .await?;
        Ok(in_force(row, now))
    }

    async fn moderation_stats(&self) -> Result<ModerationStats, sqlx::Error> {
        let pool = self.pool();
        let verified: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM reports")
            .fetch_one(pool)
            .await?;
        let refused: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM report_refusals")
            .fetch_one(pool)
            .await?;
        let refused_by_reason: Vec<(String, i64)> = sqlx::query_as(
            "SELECT code, COUNT(*) FROM report_refusals GROUP BY code ORDER BY code",
        )
        .fetch_all(pool)
        .await?;
        let by_action: Vec<(String, i64)> = sqlx::query_as(
            "SELECT action, COUNT(*) FROM moderation_actions GROUP BY action ORDER BY action",
        )
        .fetch_all(pool)
        .await?;
        // Time to action: from receipt to the report's first action.
        let time_to_action: Vec<i64> = sqlx::query_scalar(
            "SELECT MIN(a.taken_at) - r.received_at FROM reports r \
             JOIN moderation_actions a ON a.report_id = r.id GROUP BY r.id",
        )
        .fetch_all(pool)
        .await?;
        let open: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM reports WHERE status = 'open'")
            .fetch_one(pool)
            .await?;
        Ok(ModerationStats {
            verified,
            refused,
            refused_by_reason,
            open,
            by_action,
            time_to_action,
        })
    }
}

pub(crate) fn action_record(
    (action, moderator, note, suspended_until, taken_at): (
        String,
        String,
        String,
        Option<i64>,
        i64,
    ),
) -> ActionRecord {
    ActionRecord {
        action,
        moderator,
        note,
        suspended_until,
        taken_at,
    }
}
