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
//! # Several servers (PostgreSQL)
//! Every server runs a worker on the shared database. Before an attempt the
//! worker claims it in the database ([`MatchingStore::claim_attempt`]): the
//! account's last attempt, by any server, and its share count are stored
//! there, so an account is tried by one server at a time, at most once a
//! period, and only when a share arrived since; a pending case is unique
//! per account, so two servers past the threshold at once share one case.
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
use tokio::sync::mpsc;

use crate::abuse::matching::MatchingService;
use crate::error::HttpRefusal;
use crate::store::MatchingStore;
use crate::store::matching::{Attempt, NewMatch};

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
    pub(crate) fn spawn(
        m: Arc<MatchingService>,
        store: Arc<dyn MatchingStore>,
        clock: SharedClock,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(m, store, clock, rx));
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
    store: Arc<dyn MatchingStore>,
    clock: SharedClock,
    mut rx: mpsc::UnboundedReceiver<Vec<i64>>,
) {
    let mut w = Worker::default();
    match store.owed_accounts(m.threshold()).await {
        Ok(accounts) => w.pending.extend(accounts),
        Err(e) => tracing::warn!(error = %e, "matching: threshold recovery scan failed"),
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
        if store.matching_closed() {
            // The service is stopping: accounts still owed a step are
            // found again on the next start.
            break;
        }
        let mut waiting = false;
        for account in std::mem::take(&mut w.pending) {
            match w.step(&m, &*store, &clock, account).await {
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

impl Worker {
    /// One account's step; `false` when it must wait for its period.
    async fn step(
        &mut self,
        m: &MatchingService,
        store: &dyn MatchingStore,
        clock: &SharedClock,
        account: i64,
    ) -> Result<bool, HttpRefusal> {
        if let Some(k) = store.inner_key(account).await? {
            let Ok(bytes) = <[u8; 32]>::try_from(k.as_slice()) else {
                return Err(HttpRefusal::internal("psi inner key", "bad length"));
            };
            self.past_threshold(store, clock, account, &InnerKey::from_bytes(bytes))
                .await?;
            return Ok(true);
        }
        let now = clock.now_millis();
        if let Some(last) = self.last_attempt.get(&account)
            && now < last.saturating_add(RECONSTRUCTION_PERIOD_MS)
        {
            return Ok(false);
        }
        let rows = match store
            .claim_attempt(account, now, RECONSTRUCTION_PERIOD_MS, m.threshold())
            .await?
        {
            Attempt::Try(rows) => rows,
            Attempt::NotDue => return Ok(true),
            Attempt::Busy => return Ok(false),
            Attempt::Wait { last_at } => {
                // Another server's attempt: wait for its period here too.
                self.last_attempt.insert(account, last_at);
                return Ok(false);
            }
        };
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
        let opened: Vec<(i64, custos_psi::InnerPayload)> = shares
            .iter()
            .filter_map(|(id, s)| Some((*id, key.open(s)?)))
            .collect();
        let case = store
            .record_threshold(account, &key.expose_bytes(), at, &matches(&opened))
            .await?;
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
        store: &dyn MatchingStore,
        clock: &SharedClock,
        account: i64,
        key: &InnerKey,
    ) -> Result<(), HttpRefusal> {
        let after = self.seen.get(&account).copied().unwrap_or(0);
        let rows = store.unmatched_shares(account, after).await?;
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
            store.add_matches(account, at, &matches(&opened)).await?;
        }
        self.seen.insert(account, last);
        Ok(())
    }
}

/// The rows of opened inner layers.
fn matches(opened: &[(i64, custos_psi::InnerPayload)]) -> Vec<NewMatch<'_>> {
    opened
        .iter()
        .map(|(voucher, inner)| NewMatch {
            voucher: *voucher,
            hash: inner.hash.as_slice(),
            derivative: inner.derivative.as_slice(),
        })
        .collect()
}
