//! [`MatchingStore`] on PostgreSQL (migration 15), for several servers on
//! one database.
//!
//! # How the guarantees hold across servers
//! - One voucher per blob: `psi_vouchers.locator` is `UNIQUE` and the
//!   insert is `ON CONFLICT DO NOTHING … RETURNING`, so of two servers
//!   storing a voucher for one blob at once, one stores it and the other
//!   answers `duplicate`; the blob's owner is read in the same transaction.
//! - One attempt at a time, once a period, only after a new share:
//!   [`MatchingStore::claim_attempt`] takes the account's `psi_attempts`
//!   row with `FOR UPDATE SKIP LOCKED` (a server that finds it locked
//!   answers [`Attempt::Busy`] instead of waiting), counts the opened
//!   shares, compares with the last attempt's time and count, and records
//!   the new ones before committing. A server that claims later, anywhere,
//!   sees that attempt and waits for the period or for a new share. The
//!   reconstruction itself runs after the claim's commit, outside any
//!   transaction.
//! - One pending case per account: the partial unique index
//!   `psi_cases_one_pending`; a case is opened with `ON CONFLICT DO
//!   NOTHING` and then read, so two servers opening one at once share it.
//!   A voucher is matched once (`psi_matches.voucher` is the key, inserts
//!   `ON CONFLICT DO NOTHING`); a key is recorded once (likewise).
//! - A case is decided once: the update's `WHERE status = 'pending'` runs
//!   under the row's lock, so of two moderators on two servers one wins.
//! - The figures in the log: [`MatchingStore::figures_turn`] holds the
//!   `psi_figures_logged` row's lock (taken with `SKIP LOCKED`: a server
//!   that finds it held skips this period) for as long as the server logs,
//!   reads the totals after taking it, and records what it logged before
//!   releasing it. Turns thus follow one another, each reading totals at
//!   least those the previous one logged: the logged figures never go
//!   backwards; nor does their `as_of`, which is never earlier than the
//!   last one recorded, whatever this server's clock says. A server that dies while logging leaves the row unlocked
//!   (its transaction ends with its connection) and the next turn logs the
//!   same or newer figures again.

use async_trait::async_trait;
use sqlx::{PgConnection, Postgres, Transaction};

use super::MatchingStore;
use super::matching::case_select;
use super::matching::{
    Attempt, CaseRow, Figures, FiguresTurn, MatchRow, NewMatch, NewVoucher, VoucherStored,
    figures_of,
};
use super::postgres::PgStore;
use super::sqlite_matching::{FIGURES, match_row};

/// A PostgreSQL turn: the open transaction holding the row lock.
struct PgTurn {
    tx: Transaction<'static, Postgres>,
    totals: Figures,
    last: (Figures, u64),
}

#[async_trait]
impl FiguresTurn for PgTurn {
    fn totals(&self) -> Figures {
        self.totals
    }

    fn last_logged(&self) -> Option<(Figures, u64)> {
        Some(self.last)
    }

    async fn logged(mut self: Box<Self>, figures: Figures, as_of: u64) -> Result<(), sqlx::Error> {
        let [a, o, c, d] = figures.map(i64::from);
        sqlx::query(
            "UPDATE psi_figures_logged SET accounts_matched = $1, cases_opened = $2, \
             cases_confirmed = $3, cases_dismissed = $4, as_of = $5 WHERE id = 1",
        )
        .bind(a)
        .bind(o)
        .bind(c)
        .bind(d)
        .bind(i64::try_from(as_of).unwrap_or(i64::MAX))
        .execute(&mut *self.tx)
        .await?;
        self.tx.commit().await
    }

    async fn release(self: Box<Self>) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

#[async_trait]
impl MatchingStore for PgStore {
    async fn store_vouchers(
        &self,
        batch: &[NewVoucher<'_>],
    ) -> Result<Vec<VoucherStored>, sqlx::Error> {
        let locators: Vec<&str> = batch.iter().map(|v| v.locator).collect();
        let mut tx = self.pool().begin().await?;
        let owners: std::collections::HashMap<String, i64> =
            sqlx::query_as("SELECT locator, owner FROM blobs WHERE locator = ANY($1)")
                .bind(&locators)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect();
        let mut answers = Vec::with_capacity(batch.len());
        let mut accepted: Vec<&NewVoucher<'_>> = Vec::with_capacity(batch.len());
        for v in batch {
            if owners.get(v.locator) != Some(&v.account) {
                answers.push(VoucherStored::UnknownBlob);
            } else if accepted.iter().any(|a| a.locator == v.locator) {
                answers.push(VoucherStored::Duplicate);
            } else {
                answers.push(VoucherStored::Stored);
                accepted.push(v);
            }
        }
        if !accepted.is_empty() {
            let mut q = sqlx::QueryBuilder::<Postgres>::new(
                "INSERT INTO psi_vouchers (account, locator, received_at, share) ",
            );
            q.push_values(&accepted, |mut row, v| {
                row.push_bind(v.account)
                    .push_bind(v.locator)
                    .push_bind(v.received_at)
                    .push_bind(v.share);
            });
            q.push(" ON CONFLICT (locator) DO NOTHING RETURNING locator");
            let stored: std::collections::HashSet<String> = q
                .build_query_scalar::<String>()
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect();
            // A blob whose voucher another transaction (this server's or
            // another's) committed first is a duplicate.
            for (v, answer) in batch.iter().zip(answers.iter_mut()) {
                if *answer == VoucherStored::Stored && !stored.contains(v.locator) {
                    *answer = VoucherStored::Duplicate;
                }
            }
        }
        tx.commit().await?;
        Ok(answers)
    }

    async fn owed_accounts(&self, threshold: u16) -> Result<Vec<i64>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT v.account FROM psi_vouchers v WHERE v.share IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM psi_matches m WHERE m.voucher = v.id) \
             GROUP BY v.account \
             HAVING COUNT(*) >= $1 OR v.account IN (SELECT account FROM psi_accounts)",
        )
        .bind(i64::from(threshold))
        .fetch_all(self.pool())
        .await
    }

    async fn inner_key(&self, account: i64) -> Result<Option<Vec<u8>>, sqlx::Error> {
        sqlx::query_scalar("SELECT inner_key FROM psi_accounts WHERE account = $1")
            .bind(account)
            .fetch_optional(self.pool())
            .await
    }

    async fn claim_attempt(
        &self,
        account: i64,
        now: u64,
        period_ms: u64,
        threshold: u16,
    ) -> Result<Attempt, sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO psi_attempts (account, last_at, last_shares) VALUES ($1, NULL, 0) \
             ON CONFLICT (account) DO NOTHING",
        )
        .bind(account)
        .execute(&mut *tx)
        .await?;
        let row: Option<(Option<i64>, i64)> = sqlx::query_as(
            "SELECT last_at, last_shares FROM psi_attempts WHERE account = $1 \
             FOR UPDATE SKIP LOCKED",
        )
        .bind(account)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((last_at, last_shares)) = row else {
            tx.commit().await?;
            return Ok(Attempt::Busy);
        };
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT id, share FROM psi_vouchers WHERE account = $1 AND share IS NOT NULL \
             ORDER BY id",
        )
        .bind(account)
        .fetch_all(&mut *tx)
        .await?;
        let count = i64::try_from(rows.len()).unwrap_or(i64::MAX);
        // Each path commits (never a dropped transaction, whose ROLLBACK
        // would only be queued): the row lock is released on return.
        if rows.len() < usize::from(threshold) || count == last_shares {
            tx.commit().await?;
            return Ok(Attempt::NotDue);
        }
        if let Some(last) = last_at.map(|t| u64::try_from(t).unwrap_or(0))
            && now < last.saturating_add(period_ms)
        {
            tx.commit().await?;
            return Ok(Attempt::Wait { last_at: last });
        }
        sqlx::query("UPDATE psi_attempts SET last_at = $2, last_shares = $3 WHERE account = $1")
            .bind(account)
            .bind(i64::try_from(now).unwrap_or(i64::MAX))
            .bind(count)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Attempt::Try(rows))
    }

    async fn unmatched_shares(
        &self,
        account: i64,
        after: i64,
    ) -> Result<Vec<(i64, Vec<u8>)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT v.id, v.share FROM psi_vouchers v WHERE v.account = $1 AND v.id > $2 \
             AND v.share IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM psi_matches m WHERE m.voucher = v.id) ORDER BY v.id",
        )
        .bind(account)
        .bind(after)
        .fetch_all(self.pool())
        .await
    }

    async fn record_threshold(
        &self,
        account: i64,
        inner_key: &[u8; 32],
        at: i64,
        matches: &[NewMatch<'_>],
    ) -> Result<i64, sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO psi_accounts (account, inner_key, reached_at) VALUES ($1, $2, $3) \
             ON CONFLICT (account) DO NOTHING",
        )
        .bind(account)
        .bind(inner_key.as_slice())
        .bind(at)
        .execute(&mut *tx)
        .await?;
        let case = open_case(&mut tx, account, at).await?;
        add_all(&mut tx, case, matches).await?;
        tx.commit().await?;
        Ok(case)
    }

    async fn add_matches(
        &self,
        account: i64,
        at: i64,
        matches: &[NewMatch<'_>],
    ) -> Result<i64, sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        let case = open_case(&mut tx, account, at).await?;
        add_all(&mut tx, case, matches).await?;
        tx.commit().await?;
        Ok(case)
    }

    async fn list_cases(&self) -> Result<Vec<CaseRow>, sqlx::Error> {
        sqlx::query_as(concat!(case_select!(), " ORDER BY c.id"))
            .fetch_all(self.pool())
            .await
    }

    async fn case(&self, id: i64) -> Result<Option<CaseRow>, sqlx::Error> {
        sqlx::query_as(concat!(case_select!(), " WHERE c.id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await
    }

    async fn case_matches(&self, id: i64) -> Result<Vec<MatchRow>, sqlx::Error> {
        let rows: Vec<(Vec<u8>, Vec<u8>, i64, String)> = sqlx::query_as(
            "SELECT m.hash, m.derivative, v.received_at, v.locator FROM psi_matches m \
             JOIN psi_vouchers v ON v.id = m.voucher WHERE m.case_id = $1 ORDER BY v.id",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(match_row).collect())
    }

    async fn decide_case(
        &self,
        id: i64,
        status: &str,
        at: i64,
        moderator: &str,
        note: &str,
    ) -> Result<bool, sqlx::Error> {
        Ok(sqlx::query(
            "UPDATE psi_cases SET status = $1, decided_at = $2, moderator = $3, note = $4 \
             WHERE id = $5 AND status = 'pending'",
        )
        .bind(status)
        .bind(at)
        .bind(moderator)
        .bind(note)
        .bind(id)
        .execute(self.pool())
        .await?
        .rows_affected()
            > 0)
    }

    async fn matching_figures(&self) -> Result<Figures, sqlx::Error> {
        let (a, o, c, d): (i64, i64, i64, i64) =
            sqlx::query_as(FIGURES).fetch_one(self.pool()).await?;
        Ok(figures_of([a, o, c, d]))
    }

    async fn figures_turn(&self) -> Result<Option<Box<dyn FiguresTurn>>, sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        let last: Option<(i64, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT accounts_matched, cases_opened, cases_confirmed, cases_dismissed, as_of \
             FROM psi_figures_logged WHERE id = 1 FOR UPDATE SKIP LOCKED",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some((a, o, c, d, as_of)) = last else {
            tx.commit().await?;
            return Ok(None);
        };
        // Read after the lock (READ COMMITTED: a new snapshot per
        // statement), so at least what the previous turn logged.
        let (ta, to, tc, td): (i64, i64, i64, i64) =
            sqlx::query_as(FIGURES).fetch_one(&mut *tx).await?;
        Ok(Some(Box::new(PgTurn {
            tx,
            totals: figures_of([ta, to, tc, td]),
            last: (figures_of([a, o, c, d]), u64::try_from(as_of).unwrap_or(0)),
        })))
    }

    fn matching_closed(&self) -> bool {
        self.pool().is_closed()
    }
}

/// The account's pending case, opened at `now` unless there is one. Two
/// transactions opening one at once: the second's insert waits for the
/// first's commit on the unique index, does nothing, and reads its case.
async fn open_case(tx: &mut PgConnection, account: i64, now: i64) -> Result<i64, sqlx::Error> {
    let pending = "SELECT id FROM psi_cases WHERE account = $1 AND status = 'pending' \
                   ORDER BY id LIMIT 1";
    let open: Option<i64> = sqlx::query_scalar(pending)
        .bind(account)
        .fetch_optional(&mut *tx)
        .await?;
    if let Some(id) = open {
        return Ok(id);
    }
    let opened: Option<i64> = sqlx::query_scalar(
        "INSERT INTO psi_cases (account, opened_at, status) VALUES ($1, $2, 'pending') \
         ON CONFLICT (account) WHERE status = 'pending' DO NOTHING RETURNING id",
    )
    .bind(account)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    match opened {
        Some(id) => Ok(id),
        None => {
            sqlx::query_scalar(pending)
                .bind(account)
                .fetch_one(&mut *tx)
                .await
        }
    }
}

async fn add_all(
    tx: &mut PgConnection,
    case: i64,
    matches: &[NewMatch<'_>],
) -> Result<(), sqlx::Error> {
    for m in matches {
        sqlx::query(
            "INSERT INTO psi_matches (voucher, case_id, hash, derivative) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (voucher) DO NOTHING",
        )
        .bind(m.voucher)
        .bind(case)
        .bind(m.hash)
        .bind(m.derivative)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
