//! [`MatchingStore`] on SQLite (schema version 7): one process per
//! database, so the threshold worker and the figures publisher keep their
//! rules (one attempt per period, figures logged when they changed) in
//! memory, and writes take `BEGIN IMMEDIATE`.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::MatchingStore;
use super::matching::case_select;
use super::matching::{
    Attempt, CaseRow, Figures, FiguresTurn, MatchRow, NewMatch, NewVoucher, VoucherStored,
    figures_of,
};
use super::sqlite::SqliteStore;

/// SQLite's turn: the totals, nothing locked (one publisher per process).
struct SqliteTurn(Figures);

#[async_trait]
impl FiguresTurn for SqliteTurn {
    fn totals(&self) -> Figures {
        self.0
    }

    fn last_logged(&self) -> Option<(Figures, u64)> {
        None
    }

    async fn logged(self: Box<Self>, _figures: Figures, _as_of: u64) -> Result<(), sqlx::Error> {
        Ok(())
    }

    async fn release(self: Box<Self>) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

#[async_trait]
impl MatchingStore for SqliteStore {
    /// Two statements for the whole batch (which blobs exist, whose, and
    /// which of them already have a voucher; one insert of every accepted
    /// row): each statement is a round trip to SQLite's connection thread,
    /// which under load costs far more than the statement itself.
    async fn store_vouchers(
        &self,
        batch: &[NewVoucher<'_>],
    ) -> Result<Vec<VoucherStored>, sqlx::Error> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let rows: Vec<(String, i64, bool)> = {
            let mut q = QueryBuilder::<Sqlite>::new(
                "SELECT b.locator, b.owner, \
                 EXISTS (SELECT 1 FROM psi_vouchers v WHERE v.locator = b.locator) \
                 FROM blobs b WHERE b.locator IN (",
            );
            let mut list = q.separated(", ");
            for v in batch {
                list.push_bind(v.locator);
            }
            q.push(")");
            q.build_query_as().fetch_all(&mut *tx).await?
        };
        let mut owners: HashMap<String, i64> = HashMap::with_capacity(rows.len());
        let mut taken: HashSet<String> = HashSet::with_capacity(batch.len());
        for (locator, owner, has_voucher) in rows {
            if has_voucher {
                taken.insert(locator.clone());
            }
            owners.insert(locator, owner);
        }
        let mut answers = Vec::with_capacity(batch.len());
        let mut accepted: Vec<&NewVoucher<'_>> = Vec::with_capacity(batch.len());
        for v in batch {
            if owners.get(v.locator) != Some(&v.account) {
                answers.push(VoucherStored::UnknownBlob);
            } else if !taken.insert(v.locator.to_owned()) {
                answers.push(VoucherStored::Duplicate);
            } else {
                answers.push(VoucherStored::Stored);
                accepted.push(v);
            }
        }
        if !accepted.is_empty() {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO psi_vouchers (account, locator, received_at, share) ",
            );
            q.push_values(&accepted, |mut row, v| {
                row.push_bind(v.account)
                    .push_bind(v.locator)
                    .push_bind(v.received_at)
                    .push_bind(v.share);
            });
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(answers)
    }

    async fn owed_accounts(&self, threshold: u16) -> Result<Vec<i64>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT v.account FROM psi_vouchers v WHERE v.share IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM psi_matches m WHERE m.voucher = v.id) \
             GROUP BY v.account \
             HAVING COUNT(*) >= ? OR v.account IN (SELECT account FROM psi_accounts)",
        )
        .bind(i64::from(threshold))
        .fetch_all(self.pool())
        .await
    }

    async fn inner_key(&self, account: i64) -> Result<Option<Vec<u8>>, sqlx::Error> {
        sqlx::query_scalar("SELECT inner_key FROM psi_accounts WHERE account = ?")
            .bind(account)
            .fetch_optional(self.pool())
            .await
    }

    /// One process: the period and the "new share" rule are the worker's
    /// memory; here only the count against `threshold`.
    async fn claim_attempt(
        &self,
        account: i64,
        _now: u64,
        _period_ms: u64,
        threshold: u16,
    ) -> Result<Attempt, sqlx::Error> {
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT id, share FROM psi_vouchers WHERE account = ? AND share IS NOT NULL ORDER BY id",
        )
        .bind(account)
        .fetch_all(self.pool())
        .await?;
        if rows.len() < usize::from(threshold) {
            return Ok(Attempt::NotDue);
        }
        Ok(Attempt::Try(rows))
    }

    async fn unmatched_shares(
        &self,
        account: i64,
        after: i64,
    ) -> Result<Vec<(i64, Vec<u8>)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT v.id, v.share FROM psi_vouchers v WHERE v.account = ? AND v.id > ? \
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
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "INSERT OR IGNORE INTO psi_accounts (account, inner_key, reached_at) VALUES (?, ?, ?)",
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
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
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
        sqlx::query_as(concat!(case_select!(), " WHERE c.id = ?"))
            .bind(id)
            .fetch_optional(self.pool())
            .await
    }

    async fn case_matches(&self, id: i64) -> Result<Vec<MatchRow>, sqlx::Error> {
        let rows: Vec<(Vec<u8>, Vec<u8>, i64, String)> = sqlx::query_as(
            "SELECT m.hash, m.derivative, v.received_at, v.locator FROM psi_matches m \
             JOIN psi_vouchers v ON v.id = m.voucher WHERE m.case_id = ? ORDER BY v.id",
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
            "UPDATE psi_cases SET status = ?, decided_at = ?, moderator = ?, note = ? \
             WHERE id = ? AND status = 'pending'",
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
        let (accounts, opened, confirmed, dismissed): (i64, i64, i64, i64) =
            sqlx::query_as(FIGURES).fetch_one(self.pool()).await?;
        Ok(figures_of([accounts, opened, confirmed, dismissed]))
    }

    async fn figures_turn(&self) -> Result<Option<Box<dyn FiguresTurn>>, sqlx::Error> {
        Ok(Some(Box::new(SqliteTurn(self.matching_figures().await?))))
    }

    fn matching_closed(&self) -> bool {
        self.pool().is_closed()
    }
}

/// The four figures in one statement (both backends).
pub(crate) const FIGURES: &str = "SELECT (SELECT COUNT(*) FROM psi_accounts), \
     (SELECT COUNT(*) FROM psi_cases), \
     (SELECT COUNT(*) FROM psi_cases WHERE status = 'confirmed'), \
     (SELECT COUNT(*) FROM psi_cases WHERE status = 'dismissed')";

/// A stored match as returned.
pub(crate) fn match_row(
    (hash, derivative, received_at, locator): (Vec<u8>, Vec<u8>, i64, String),
) -> MatchRow {
    MatchRow {
        hash,
        derivative,
        received_at,
        locator,
    }
}

async fn open_case(tx: &mut SqliteConnection, account: i64, now: i64) -> Result<i64, sqlx::Error> {
    let open: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM psi_cases WHERE account = ? AND status = 'pending' ORDER BY id LIMIT 1",
    )
    .bind(account)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(id) = open {
        return Ok(id);
    }
    Ok(
        sqlx::query("INSERT INTO psi_cases (account, opened_at, status) VALUES (?, ?, 'pending')")
            .bind(account)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .last_insert_rowid(),
    )
}

async fn add_all(
    tx: &mut SqliteConnection,
    case: i64,
    matches: &[NewMatch<'_>],
) -> Result<(), sqlx::Error> {
    for m in matches {
        sqlx::query(
            "INSERT OR IGNORE INTO psi_matches (voucher, case_id, hash, derivative) VALUES (?, ?, ?, ?)",
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
