//! The voucher writer: stores checked safety vouchers in grouped
//! transactions, and hands the accounts of opened ones to the threshold
//! worker ([`crate::abuse::threshold`]).
//!
//! A voucher is checked (parsed, opened or not) by its request handler,
//! on the request's own thread; the handler then queues it here and waits.
//! The writer takes every queued voucher (at most [`MAX_BATCH`]) into one
//! `BEGIN IMMEDIATE` transaction: for each, the blob-ownership and
//! duplicate checks and the row, then one commit, and only then answers
//! each handler. The threshold step (a reconstruction can take 0.2 s)
//! runs after the commit, in the worker, so that no voucher of any account
//! waits for another account's reconstruction. One commit (one fsync of the WAL under
//! `synchronous = FULL`) for a batch instead of one per voucher is what lets
//! the route take thousands of vouchers per second.
//!
//! # Durability and failure
//! - A voucher is accepted (`201`) only after the commit that holds it: a
//!   crash before the commit loses the whole batch and no handler has
//!   answered `201` for any of it.
//! - A refused voucher of a batch (unknown blob, duplicate) writes nothing
//!   and does not disturb the others: its checks run before its insert.
//! - A database error aborts the batch (rolled back when the transaction is
//!   dropped) and every voucher of it is answered `500`; the device sends
//!   it again.
//!
//! # Security meaning
//! The writer does the same statements for a voucher that opened and for
//! one that did not, and logs nothing per voucher; the batch size depends only on arrival
//! times. Below the threshold its tables and log lines are thus the same
//! for synthetic and real matches (issue 15, test 3).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::body::Bytes;
use custos_psi::OpenedShare;
use sqlx::{QueryBuilder, Sqlite, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use crate::abuse::matching::MatchingService;
use crate::abuse::threshold::ThresholdWorker;
use crate::error::HttpRefusal;
use crate::refusal::MatchingRefusal;

/// Most vouchers committed in one transaction.
pub const MAX_BATCH: usize = 512;
/// Vouchers waiting for the writer; handlers wait for room beyond this.
const QUEUE: usize = 4 * MAX_BATCH;

/// One checked voucher, waiting to be stored.
pub(crate) struct Job {
    pub account: i64,
    pub locator: String,
    pub body: Bytes,
    /// The share, when the voucher opened.
    pub share: Option<OpenedShare>,
    pub now: i64,
    pub reply: oneshot::Sender<Result<(), HttpRefusal>>,
}

/// The handlers' side of the voucher writer.
#[derive(Clone, Debug)]
pub(crate) struct VoucherQueue(mpsc::Sender<Job>);

impl VoucherQueue {
    /// Starts the writer for `matching` on `pool`. It stops once every
    /// handle is dropped, after storing what was queued.
    pub(crate) fn spawn(
        matching: Arc<MatchingService>,
        pool: SqlitePool,
        clock: custos_clock::SharedClock,
    ) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let worker = ThresholdWorker::spawn(matching, pool.clone(), clock);
        tokio::spawn(run(worker, pool, rx));
        Self(tx)
    }

    /// Queues a checked voucher and waits for its commit (or refusal).
    pub(crate) async fn store(
        &self,
        account: i64,
        locator: String,
        body: Bytes,
        share: Option<OpenedShare>,
        now: i64,
    ) -> Result<(), HttpRefusal> {
        let (reply, answer) = oneshot::channel();
        self.0
            .send(Job {
                account,
                locator,
                body,
                share,
                now,
                reply,
            })
            .await
            .map_err(|_| HttpRefusal::unavailable())?;
        answer
            .await
            .unwrap_or_else(|_| Err(HttpRefusal::unavailable()))
    }

    /// Queues checked vouchers of one account, all before waiting for any
    /// (so that, as a rule, one commit holds them), then waits for each;
    /// the first refusal, if any, after every answer.
    pub(crate) async fn store_all(
        &self,
        account: i64,
        vouchers: Vec<(String, Bytes, Option<OpenedShare>)>,
        now: i64,
    ) -> Result<(), HttpRefusal> {
        let mut answers = Vec::with_capacity(vouchers.len());
        for (locator, body, share) in vouchers {
            let (reply, answer) = oneshot::channel();
            self.0
                .send(Job {
                    account,
                    locator,
                    body,
                    share,
                    now,
                    reply,
                })
                .await
                .map_err(|_| HttpRefusal::unavailable())?;
            answers.push(answer);
        }
        let mut first = Ok(());
        for answer in answers {
            let got = answer
                .await
                .unwrap_or_else(|_| Err(HttpRefusal::unavailable()));
            if first.is_ok() {
                first = got;
            }
        }
        first
    }
}

async fn run(worker: ThresholdWorker, pool: SqlitePool, mut rx: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match commit(&pool, &batch).await {
            Ok(answers) => {
                tracing::debug!(vouchers = batch.len(), "voucher batch committed");
                // After the commit: the worker reads what was committed.
                let mut opened: Vec<i64> = batch
                    .iter()
                    .zip(&answers)
                    .filter(|(job, answer)| job.share.is_some() && answer.is_ok())
                    .map(|(job, _)| job.account)
                    .collect();
                opened.sort_unstable();
                opened.dedup();
                worker.opened(opened);
                for (job, answer) in batch.drain(..).zip(answers) {
                    let _ = job.reply.send(answer);
                }
            }
            Err(e) => {
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// One transaction for `batch`; per voucher, `Ok` (stored) or its refusal.
///
/// Three statements for the whole batch (which blobs exist and whose,
/// which already have a voucher, one insert of every accepted row): each
/// statement is a round trip to SQLite's connection thread, which under
/// load costs far more than the statement itself.
async fn commit(
    pool: &SqlitePool,
    batch: &[Job],
) -> Result<Vec<Result<(), HttpRefusal>>, HttpRefusal> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let owners: HashMap<String, i64> = {
        let mut q =
            QueryBuilder::<Sqlite>::new("SELECT locator, owner FROM blobs WHERE locator IN (");
        let mut list = q.separated(", ");
        for job in batch {
            list.push_bind(&job.locator);
        }
        q.push(")");
        q.build_query_as::<(String, i64)>()
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect()
    };
    let mut taken: HashSet<String> = {
        let mut q =
            QueryBuilder::<Sqlite>::new("SELECT locator FROM psi_vouchers WHERE locator IN (");
        let mut list = q.separated(", ");
        for job in batch {
            list.push_bind(&job.locator);
        }
        q.push(")");
        q.build_query_scalar::<String>()
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect()
    };
    let mut answers = Vec::with_capacity(batch.len());
    let mut accepted: Vec<&Job> = Vec::with_capacity(batch.len());
    for job in batch {
        if owners.get(&job.locator) != Some(&job.account) {
            answers.push(Err(MatchingRefusal::UnknownBlob.into()));
        } else if !taken.insert(job.locator.clone()) {
            answers.push(Err(MatchingRefusal::DuplicateVoucher.into()));
        } else {
            answers.push(Ok(()));
            accepted.push(job);
        }
    }
    if !accepted.is_empty() {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO psi_vouchers (account, locator, received_at, voucher, share) ",
        );
        q.push_values(&accepted, |mut row, job| {
            row.push_bind(job.account)
                .push_bind(&job.locator)
                .push_bind(job.now)
                .push_bind(job.body.as_ref())
                .push_bind(job.share.as_ref().map(OpenedShare::to_bytes));
        });
        q.build().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(answers)
}
