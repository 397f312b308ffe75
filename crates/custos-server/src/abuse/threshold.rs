//! The threshold step, beside the voucher writer: reconstructing an
//! account's inner key once it has `T` opened shares, and opening the real
//! vouchers of accounts past the threshold.
//!
//! The voucher writer ([`crate::abuse::vouchers`]) only stores vouchers;
//! after each commit it hands this worker the accounts that got a newly
//! opened share. The worker runs one account at a time, reads the shares
//! from the database, interpolates on a blocking thread (never inside a
//! transaction), and writes a result, if any, in a short transaction of its
//! own.
//!
//! # Bounded work
//! Shares of synthetic vouchers do not interpolate, and any device can make
//! vouchers that open (synthetic ones), so an account can hold many opened
//! shares that never give a key. An attempt tries at most
//! [`MAX_RECONSTRUCTION_TRIES`] subsets (about 0.2 s of one core), and an
//! account gets an attempt only when a share arrived since its last one and
//! no sooner than [`RECONSTRUCTION_PERIOD_MS`] after it (service clock). An
//! account whose share arrives meanwhile waits for its period; the writer,
//! and every other account's vouchers, never wait for an attempt. The
//! worker runs one attempt at a time: many accounts flooding together take
//! at most one core between them.
//!
//! # Security meaning
//! - Below `T` real shares an attempt fails, whether the other shares are
//!   synthetic or not, after the same number of tries (every subset, or
//!   [`MAX_RECONSTRUCTION_TRIES`]): it writes nothing and logs the same
//!   line. The tables, counters and log lines below the threshold are thus
//!   the same for synthetic vouchers and real matches (issue 15, test 3).
//! - At the threshold the key is stored with the case and its matches in
//!   one transaction: a crash leaves either none of them or all of them.
//!   On start the worker looks again at every account that may be owed a
//!   step (at least `T` opened shares and no key; or a key and opened
//!   vouchers not yet matched), so a crash between a voucher's commit and
//!   its step delays the step, never loses it.
//! - The result appears shortly after the voucher's `201`, not with it: the
//!   device's answer never depends on matching.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use custos_clock::SharedClock;
use custos_psi::{InnerKey, OpenedShare};
use sqlx::SqlitePool;
use tokio::sync::mpsc;

use crate::abuse::matching::MatchingService;
use crate::error::HttpRefusal;

/// Most subsets tried per reconstruction attempt (about 0.1 ms each, so at
/// most about 0.2 s of one core); see [`custos_psi::reconstruct`].
pub const MAX_RECONSTRUCTION_TRIES: u32 = 2_000;

/// Least time between two reconstruction attempts for one account, in
/// milliseconds of the service clock: an account's attempts cost at most
/// [`MAX_RECONSTRUCTION_TRIES`] subsets per period.
pub const RECONSTRUCTION_PERIOD_MS: u64 = 60_000;

/// How often the worker looks at accounts that wait for their period.
const RECHECK: Duration = Duration::from_millis(500);

/// The writer's side: accounts with a newly opened share.
#[derive(Clone, Debug)]
pub(crate) struct ThresholdWorker(mpsc::UnboundedSender<Vec<i64>>);

impl ThresholdWorker {
    /// Starts the worker; it stops once every handle is dropped, after the
    /// accounts already handed to it.
    pub(crate) fn spawn(m: Arc<MatchingService>, pool: SqlitePool, clock: SharedClock) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(m, pool, clock, rx));
        Self(tx)
    }

    /// `accounts` got a newly opened share (committed).
    pub(crate) fn opened(&self, accounts: Vec<i64>) {
        if !accounts.is_empty() {
            let _ = self.0.send(accounts);
        }
    }
}

/// The worker's memory: when each account's last attempt was, and up to
/// which voucher each account past the threshold has been looked at.
#[derive(Default)]
struct Worker {
    pending: BTreeSet<i64>,
    last_attempt: HashMap<i64, u64>,
    seen: HashMap<i64, i64>,
}

async fn run(
    m: Arc<MatchingService>,
    pool: SqlitePool,
    clock: SharedClock,
    mut rx: mpsc::UnboundedReceiver<Vec<i64>>,
) {
    let mut w = Worker::default();
    match owed(&pool, m.threshold()).await {
        Ok(accounts) => w.pending.extend(accounts),
        Err(e) => tracing::warn!(error = %e.message, "matching: threshold recovery scan failed"),
    }
    let mut open = true;
    while open || !w.pending.is_empty() {
        if w.pending.is_empty() || open {
            let got = if w.pending.is_empty() {
                rx.recv().await
            } else {
                tokio::time::timeout(RECHECK, rx.recv())
                    .await
                    .unwrap_or(Some(Vec::new()))
            };
            match got {
                Some(accounts) => w.pending.extend(accounts),
                None => open = false,
            }
        }
        while let Ok(accounts) = rx.try_recv() {
            w.pending.extend(accounts);
        }
        if pool.is_closed() {
            // The service is stopping: accounts still owed a step are
            // found again on the next start.
            break;
        }
        let mut waiting = false;
        for account in std::mem::take(&mut w.pending) {
            match w.step(&m, &pool, &clock, account).await {
                Ok(true) => {}
                Ok(false) => {
                    waiting = true;
                    w.pending.insert(account);
                }
                Err(e) => {
                    tracing::warn!(error = %e.message, "matching: threshold step failed");
                }
            }
        }
        if waiting && !open {
            // Shutting down: accounts waiting for their period are looked
            // at again on the next start.
            break;
        }
    }
}

/// Accounts that may be owed a step: past the threshold with opened
/// vouchers not matched, or with `T` opened shares and no key.
async fn owed(pool: &SqlitePool, threshold: u16) -> Result<Vec<i64>, HttpRefusal> {
    Ok(sqlx::query_scalar(
        "SELECT v.account FROM psi_vouchers v WHERE v.share IS NOT NULL \
         AND NOT EXISTS (SELECT 1 FROM psi_matches m WHERE m.voucher = v.id) \
         GROUP BY v.account \
         HAVING COUNT(*) >= ? OR v.account IN (SELECT account FROM psi_accounts)",
    )
    .bind(i64::from(threshold))
    .fetch_all(pool)
    .await?)
}

impl Worker {
    /// One account's step; `false` when it must wait for its period.
    async fn step(
        &mut self,
        m: &MatchingService,
        pool: &SqlitePool,
        clock: &SharedClock,
        account: i64,
    ) -> Result<bool, HttpRefusal> {
        let known: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT inner_key FROM psi_accounts WHERE account = ?")
                .bind(account)
                .fetch_optional(pool)
                .await?;
        if let Some(k) = known {
            let Ok(bytes) = <[u8; 32]>::try_from(k.as_slice()) else {
                return Err(HttpRefusal::internal("psi inner key", "bad length"));
            };
            self.past_threshold(pool, clock, account, &InnerKey::from_bytes(bytes))
                .await?;
            return Ok(true);
        }
        let now = clock.now_millis();
        if let Some(last) = self.last_attempt.get(&account)
            && now < last.saturating_add(RECONSTRUCTION_PERIOD_MS)
        {
            return Ok(false);
        }
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT id, share FROM psi_vouchers WHERE account = ? AND share IS NOT NULL ORDER BY id",
        )
        .bind(account)
        .fetch_all(pool)
        .await?;
        if rows.len() < usize::from(m.threshold()) {
            return Ok(true);
        }
        let shares: Vec<(i64, OpenedShare)> = rows
            .iter()
            .filter_map(|(id, b)| OpenedShare::from_bytes(b).map(|s| (*id, s)))
            .collect();
        self.last_attempt.insert(account, now);
        // The same line whatever the attempt gives below the threshold.
        tracing::debug!(shares = shares.len(), "matching: threshold attempt");
        let only: Vec<OpenedShare> = shares.iter().map(|(_, s)| s.clone()).collect();
        let threshold = m.threshold();
        let key = tokio::task::spawn_blocking(move || {
            custos_psi::reconstruct(
                &only,
                threshold,
                MAX_RECONSTRUCTION_TRIES,
                &mut rand_core::OsRng,
            )
        })
        .await
        .map_err(|e| HttpRefusal::internal("psi reconstruction", e))?;
        let Some(key) = key else {
            return Ok(true);
        };
        let at = i64::try_from(clock.now_millis()).unwrap_or(i64::MAX);
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("INSERT INTO psi_accounts (account, inner_key, reached_at) VALUES (?, ?, ?)")
            .bind(account)
            .bind(key.expose_bytes().as_slice())
            .bind(at)
            .execute(&mut *tx)
            .await?;
        let case = open_case(&mut tx, account, at).await?;
        for (id, s) in &shares {
            if let Some(inner) = key.open(s) {
                add_match(&mut tx, case, *id, &inner).await?;
            }
        }
        tx.commit().await?;
        self.last_attempt.remove(&account);
        if let Some((last, _)) = shares.last() {
            self.seen.insert(account, *last);
        }
        tracing::info!(
            account,
            case,
            "matching threshold reached; case opened for review"
        );
        Ok(true)
    }

    /// Past the threshold: opens the account's opened vouchers not looked
    /// at yet; the real ones join its pending case.
    async fn past_threshold(
        &mut self,
        pool: &SqlitePool,
        clock: &SharedClock,
        account: i64,
        key: &InnerKey,
    ) -> Result<(), HttpRefusal> {
        let after = self.seen.get(&account).copied().unwrap_or(0);
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT v.id, v.share FROM psi_vouchers v WHERE v.account = ? AND v.id > ? \
             AND v.share IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM psi_matches m WHERE m.voucher = v.id) ORDER BY v.id",
        )
        .bind(account)
        .bind(after)
        .fetch_all(pool)
        .await?;
        let Some((last, _)) = rows.last() else {
            return Ok(());
        };
        let last = *last;
        let opened: Vec<(i64, custos_psi::InnerPayload)> = rows
            .iter()
            .filter_map(|(id, b)| Some((*id, key.open(&OpenedShare::from_bytes(b)?)?)))
            .collect();
        if !opened.is_empty() {
            let at = i64::try_from(clock.now_millis()).unwrap_or(i64::MAX);
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            let case = open_case(&mut tx, account, at).await?;
            for (id, inner) in &opened {
                add_match(&mut tx, case, *id, inner).await?;
            }
            tx.commit().await?;
        }
        self.seen.insert(account, last);
        Ok(())
    }
}

async fn open_case(
    tx: &mut sqlx::SqliteConnection,
    account: i64,
    now: i64,
) -> Result<i64, HttpRefusal> {
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

async fn add_match(
    tx: &mut sqlx::SqliteConnection,
    case: i64,
    voucher: i64,
    inner: &custos_psi::InnerPayload,
) -> Result<(), HttpRefusal> {
    sqlx::query(
        "INSERT OR IGNORE INTO psi_matches (voucher, case_id, hash, derivative) VALUES (?, ?, ?, ?)",
    )
    .bind(voucher)
    .bind(case)
    .bind(inner.hash.as_slice())
    .bind(inner.derivative.as_slice())
    .execute(&mut *tx)
    .await?;
    Ok(())
}
