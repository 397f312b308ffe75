//! [`ModerationStore`] on PostgreSQL (migration 10), for several servers on
//! one database.
//!
//! # How the guarantees hold across servers
//! - One report per reporter and message: [`ModerationStore::queue_report`]
//!   locks the reporter's account row (`FOR UPDATE`) before its repeat
//!   check, so two identical reports on two servers run one after the other
//!   and the second finds the first.
//! - Decisions on one report are serialised by its row lock
//!   (`SELECT … FOR UPDATE` before the action is inserted), so action ids,
//!   the report's status and the sender's suspension all follow one order:
//!   the status and the suspension are those of the last action recorded.
//! - Suspensions everywhere at once: the suspension commits before the
//!   decision returns; a send checks it with [`suspensions_in`] inside its
//!   batch's transaction (h1's writer), so a batch that starts after the
//!   commit, on any server, refuses the suspended sender. A server's
//!   in-memory copy ([`crate::FrankingPolicy`]) is only an early refusal and
//!   is never what admits a send on this backend.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::PgConnection;

use super::ModerationStore;
use super::moderation::{
    ActionRecord, Decision, ModerationStats, NewReport, Queued, StoredReport, in_force,
    same_message, suspension_of,
};
use super::postgres::PgStore;
use super::sqlite_moderation::{action_record, stored};
use crate::abuse::franking::Suspension;

/// The suspensions in force at `now` (ms) among `accounts`, read on `conn`
/// (a batch's open transaction): what a send batch on PostgreSQL calls
/// before it admits its senders, so that a suspension committed on any
/// server before the batch began refuses them.
///
/// # Errors
/// When the database fails (the batch must then refuse, not admit).
pub async fn suspensions_in(
    conn: &mut PgConnection,
    accounts: &[String],
    now: i64,
) -> Result<HashMap<String, Suspension>, sqlx::Error> {
    let rows: Vec<(String, Option<i64>)> = sqlx::query_as(
        "SELECT account, until FROM suspensions WHERE account = ANY($1) \
         AND (until IS NULL OR until > $2)",
    )
    .bind(accounts)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(a, until)| (a, suspension_of(until)))
        .collect())
}

async fn earlier(
    conn: &mut PgConnection,
    r: &NewReport<'_>,
) -> Result<Option<(i64, String)>, sqlx::Error> {
    let rows: Vec<(i64, String, Vec<u8>)> = sqlx::query_as(
        "SELECT id, status, report FROM reports WHERE reporter = $1 AND conversation = $2 \
         AND sender = $3 AND server_time = $4 ORDER BY id LIMIT 16",
    )
    .bind(r.reporter)
    .bind(r.conversation)
    .bind(r.sender)
    .bind(r.server_time)
    .fetch_all(&mut *conn)
    .await?;
    Ok(same_message(rows, r.envelope))
}

#[async_trait]
impl ModerationStore for PgStore {
    async fn is_member(&self, conversation: &[u8], account_id: i64) -> Result<bool, sqlx::Error> {
        Ok(sqlx::query_scalar::<_, i32>(
            "SELECT 1 FROM members WHERE conversation = $1 AND account_id = $2",
        )
        .bind(conversation)
        .bind(account_id)
        .fetch_optional(self.pool())
        .await?
        .is_some())
    }

    async fn identity_keys(&self, names: &[String]) -> Result<Vec<(String, Vec<u8>)>, sqlx::Error> {
        sqlx::query_as("SELECT name, identity_key FROM accounts WHERE name = ANY($1) ORDER BY name")
            .bind(names)
            .fetch_all(self.pool())
            .await
    }

    async fn identity_key_of(&self, account_id: i64) -> Result<Option<Vec<u8>>, sqlx::Error> {
        sqlx::query_scalar("SELECT identity_key FROM accounts WHERE id = $1")
            .bind(account_id)
            .fetch_optional(self.pool())
            .await
    }

    async fn earlier_report(
        &self,
        report: &NewReport<'_>,
    ) -> Result<Option<(i64, String)>, sqlx::Error> {
        earlier(&mut *self.pool().acquire().await?, report).await
    }

    async fn queue_report(&self, r: &NewReport<'_>) -> Result<Queued, sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        // The reporter's row lock serialises its reports across servers:
        // the repeat check below cannot miss a report committing meanwhile.
        sqlx::query("SELECT id FROM accounts WHERE id = $1 FOR UPDATE")
            .bind(r.reporter_id)
            .execute(&mut *tx)
            .await?;
        if let Some((id, status)) = earlier(&mut tx, r).await? {
            return Ok(Queued::Earlier { id, status });
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO reports (received_at, reporter, conversation, sender, server_time, reason, \
             report, status) VALUES ($1, $2, $3, $4, $5, $6, $7, 'open') RETURNING id",
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
        sqlx::query(
            "INSERT INTO report_refusals (received_at, reporter, code) VALUES ($1, $2, $3)",
        )
        .bind(received_at)
        .bind(reporter)
        .bind(code)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn list_reports(&self, all: bool) -> Result<Vec<StoredReport>, sqlx::Error> {
        let rows = sqlx::query_as(
            "SELECT id, received_at, reporter, conversation, sender, server_time, reason, status, \
             ''::bytea FROM reports WHERE ($1 OR status = 'open') ORDER BY id LIMIT 1000",
        )
        .bind(all)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(stored).collect())
    }

    async fn report(&self, id: i64) -> Result<Option<StoredReport>, sqlx::Error> {
        let row = sqlx::query_as(
            "SELECT id, received_at, reporter, conversation, sender, server_time, reason, status, \
             report FROM reports WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(stored))
    }

    async fn actions(&self, report_id: i64) -> Result<Vec<ActionRecord>, sqlx::Error> {
        let rows = sqlx::query_as(
            "SELECT action, moderator, note, suspended_until, taken_at FROM moderation_actions \
             WHERE report_id = $1 ORDER BY id",
        )
        .bind(report_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(action_record).collect())
    }

    async fn record_decision(&self, d: &Decision<'_>, sender: &str) -> Result<(), sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        // The report's row lock orders decisions on it across servers: the
        // action's id, the status and the suspension below are all written
        // in that order, so the last action recorded is what stays.
        sqlx::query("SELECT id FROM reports WHERE id = $1 FOR UPDATE")
            .bind(d.report_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO moderation_actions (report_id, moderator, action, note, suspended_until, \
             taken_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(d.report_id)
        .bind(d.moderator)
        .bind(d.action)
        .bind(d.note)
        .bind(d.suspended_until)
        .bind(d.taken_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE reports SET status = $1 WHERE id = $2")
            .bind(d.status)
            .bind(d.report_id)
            .execute(&mut *tx)
            .await?;
        if d.suspend {
            sqlx::query(
                "INSERT INTO suspensions (account, until, report_id, since) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (account) DO UPDATE SET \
                 until = excluded.until, report_id = excluded.report_id, since = excluded.since",
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
            sqlx::query_scalar("SELECT until FROM suspensions WHERE account = $1")
                .bind(account)
                .fetch_optional(self.pool())
                .await?;
        Ok(in_force(row, now))
    }

    async fn moderation_stats(&self) -> Result<ModerationStats, sqlx::Error> {
        let pool = self.pool();
        // One snapshot for every figure, so they add up.
        let mut tx = pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let verified: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM reports")
            .fetch_one(&mut *tx)
            .await?;
        let refused: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM report_refusals")
            .fetch_one(&mut *tx)
            .await?;
        let refused_by_reason: Vec<(String, i64)> = sqlx::query_as(
            "SELECT code, COUNT(*) FROM report_refusals GROUP BY code ORDER BY code",
        )
        .fetch_all(&mut *tx)
        .await?;
        let by_action: Vec<(String, i64)> = sqlx::query_as(
            "SELECT action, COUNT(*) FROM moderation_actions GROUP BY action ORDER BY action",
        )
        .fetch_all(&mut *tx)
        .await?;
        let time_to_action: Vec<i64> = sqlx::query_scalar(
            "SELECT MIN(a.taken_at) - r.received_at FROM reports r \
             JOIN moderation_actions a ON a.report_id = r.id GROUP BY r.id",
        )
        .fetch_all(&mut *tx)
        .await?;
        let open: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM reports WHERE status = 'open'")
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
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

/// The moderators of a PostgreSQL deployment (migration 14): one list for
/// every server, where SQLite keeps its data directory's `moderators` file.
impl PgStore {
    /// Whether account `name`, whose identity key is now `identity_key`, is
    /// a moderator: listed under that name with that same key, so a name
    /// registered again by someone else is no moderator.
    ///
    /// # Errors
    /// When the database fails (the request is then refused, not admitted).
    pub async fn is_moderator(&self, name: &str, identity_key: &[u8]) -> Result<bool, sqlx::Error> {
        Ok(sqlx::query_scalar::<_, i32>(
            "SELECT 1 FROM moderators WHERE name = $1 AND identity_key = $2",
        )
        .bind(name)
        .bind(identity_key)
        .fetch_optional(self.pool())
        .await?
        .is_some())
    }

    /// Makes the registered account `name` a moderator on every server,
    /// bound to its identity key now (adding it again rebinds the key).
    /// Answers `false`, writing nothing, when there is no such account.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn add_moderator(&self, name: &str, now: i64) -> Result<bool, sqlx::Error> {
        let added = sqlx::query(
            "INSERT INTO moderators (name, identity_key, added_at) \
             SELECT name, identity_key, $2 FROM accounts WHERE name = $1 \
             ON CONFLICT (name) DO UPDATE SET identity_key = EXCLUDED.identity_key, \
             added_at = EXCLUDED.added_at",
        )
        .bind(name)
        .bind(now)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(added > 0)
    }
}
