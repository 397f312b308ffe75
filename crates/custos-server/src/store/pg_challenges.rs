//! Login challenges answered once across servers.
//!
//! A challenge is issued statelessly (`delivery::challenge`); what must be
//! shared between servers is which challenges have been answered. A
//! correctly signed answer is spent here, in PostgreSQL, so the same answer
//! presented to another server (a replayed login) is refused there. Wrong
//! answers open nothing and stay remembered per process only.

use super::postgres::PgStore;

/// Correctly answered live challenges an account may hold (as the
/// per-process limit of `delivery::challenge`).
pub const MAX_LIVE_LOGINS: i64 = 64;

/// The outcome of [`PgStore::spend_challenge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spent {
    /// First answer to this challenge: a session may be opened.
    Fresh,
    /// Already answered, on this server or another: refuse.
    Used,
    /// The account holds [`MAX_LIVE_LOGINS`] live answered challenges:
    /// refuse until the oldest expires.
    TooManyLogins,
}

impl PgStore {
    /// Spends the challenge with `tag` for `account_id`, answered correctly
    /// at `now` and live until `expires_at` (ms). Expired answers of the
    /// account are forgotten first.
    ///
    /// # Errors
    /// When the database fails (nothing is spent: the caller refuses).
    pub async fn spend_challenge(
        &self,
        account_id: i64,
        tag: &[u8; 16],
        expires_at: i64,
        now: i64,
    ) -> Result<Spent, sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        // The account's row lock serialises its logins across servers, so
        // the count below holds until this commits.
        sqlx::query("SELECT id FROM accounts WHERE id = $1 FOR UPDATE")
            .bind(account_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM used_challenges WHERE account_id = $1 AND expires_at <= $2")
            .bind(account_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let used: Option<i64> =
            sqlx::query_scalar("SELECT account_id FROM used_challenges WHERE tag = $1")
                .bind(tag.as_slice())
                .fetch_optional(&mut *tx)
                .await?;
        if used.is_some() {
            return Ok(Spent::Used);
        }
        let live: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM used_challenges WHERE account_id = $1")
                .bind(account_id)
                .fetch_one(&mut *tx)
                .await?;
        if live >= MAX_LIVE_LOGINS {
            return Ok(Spent::TooManyLogins);
        }
        let inserted = sqlx::query(
            "INSERT INTO used_challenges (tag, account_id, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (tag) DO NOTHING",
        )
        .bind(tag.as_slice())
        .bind(account_id)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        // A tag is bound to one account name, but a conflict with another
        // account's row (a tag collision) must still refuse.
        Ok(if inserted.rows_affected() == 1 {
            Spent::Fresh
        } else {
            Spent::Used
        })
    }

    /// The deployment's shared secret for `purpose` (migration 5): the one
    /// stored, or `fresh` if this is the first server to ask (two servers
    /// asking at once both get the one that was stored first).
    ///
    /// # Security meaning
    /// Whoever can read the database can read it; it keys the stateless
    /// login challenges, whose safety rests on the account's signature and
    /// on answers being spent once, so reading it lets one forge a
    /// challenge, never a login.
    ///
    /// # Errors
    /// When the database fails, or the stored secret is not 64 bytes.
    pub async fn shared_secret(
        &self,
        purpose: &str,
        fresh: &[u8; 64],
    ) -> Result<zeroize::Zeroizing<[u8; 64]>, sqlx::Error> {
        sqlx::query(
            "INSERT INTO server_secrets (purpose, secret) VALUES ($1, $2) \
             ON CONFLICT (purpose) DO NOTHING",
        )
        .bind(purpose)
        .bind(fresh.as_slice())
        .execute(self.pool())
        .await?;
        let stored: zeroize::Zeroizing<Vec<u8>> = zeroize::Zeroizing::new(
            sqlx::query_scalar("SELECT secret FROM server_secrets WHERE purpose = $1")
                .bind(purpose)
                .fetch_one(self.pool())
                .await?,
        );
        let mut key = zeroize::Zeroizing::new([0u8; 64]);
        if stored.len() != key.len() {
            return Err(sqlx::Error::Protocol(format!(
                "the shared secret `{purpose}` is not 64 bytes"
            )));
        }
        key.copy_from_slice(&stored);
        Ok(key)
    }

    /// Deletes answered challenges expired at `now`, at most `limit` rows,
    /// skipping rows another server's sweep holds; the number deleted.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn sweep_challenges(&self, now: i64, limit: i64) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(
            "DELETE FROM used_challenges WHERE ctid IN (SELECT ctid FROM used_challenges \
             WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(now)
        .bind(limit)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }
}
