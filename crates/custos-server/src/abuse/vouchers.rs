//! The voucher writer: stores checked safety vouchers in grouped
//! transactions, and hands the accounts of opened ones to the threshold
//! worker ([`crate::abuse::threshold`]).
//!
//! A voucher is checked (parsed, opened or not) by its request handler,
//! on the request's own thread; the handler then queues it here and waits.
//! The writer takes every queued voucher (at most [`MAX_BATCH`]) into one
//! transaction ([`MatchingStore::store_vouchers`]; `BEGIN IMMEDIATE` on
//! SQLite): for each, the blob-ownership and
//! duplicate checks and the row, then one commit, and only then answers
//! each handler. The threshold step (a reconstruction can take 0.2 s)
//! runs after the commit, in the worker, so that no voucher of any account
//! waits for another account's reconstruction. One commit (one fsync of the WAL under
//! `synchronous = FULL`) for a batch instead of one per voucher is what lets
//! the route take thousands of vouchers per second.
//!
//! On PostgreSQL each server runs its own writer and worker on the shared
//! database: a voucher stored through any server counts toward its
//! account's threshold on all of them (`store::pg_matching`).
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

use std::sync::Arc;

use custos_psi::OpenedShare;
use tokio::sync::{mpsc, oneshot};

use crate::abuse::matching::MatchingService;
use crate::abuse::threshold::ThresholdWorker;
use crate::error::HttpRefusal;
use crate::refusal::MatchingRefusal;
use crate::store::MatchingStore;
use crate::store::matching::{NewVoucher, VoucherStored};

/// Most vouchers committed in one transaction.
pub const MAX_BATCH: usize = 512;
/// Vouchers waiting for the writer; handlers wait for room beyond this.
const QUEUE: usize = 4 * MAX_BATCH;

/// One checked voucher, waiting to be stored.
pub(crate) struct Job {
    pub account: i64,
    pub locator: String,
    /// The share's bytes, when the voucher opened (it then goes to the
    /// threshold step).
    pub share_bytes: Option<Vec<u8>>,
    pub now: i64,
    pub reply: oneshot::Sender<Result<(), HttpRefusal>>,
}

/// The handlers' side of the voucher writer.
#[derive(Clone, Debug)]
pub(crate) struct VoucherQueue(mpsc::Sender<Job>);

impl VoucherQueue {
    /// Starts the writer for `matching` on `writer_store`, with its
    /// threshold worker on `store`: both the same database (this process's
    /// SQLite database, the writer through a connection of its own, or the
    /// PostgreSQL database every server shares). It stops once every handle
    /// is dropped, after storing what was queued.
    pub(crate) fn spawn(
        matching: Arc<MatchingService>,
        store: Arc<dyn MatchingStore>,
        writer_store: Arc<dyn MatchingStore>,
        clock: custos_clock::SharedClock,
    ) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let worker = ThresholdWorker::spawn(matching, store, clock);
        tokio::spawn(run(worker, writer_store, rx));
        Self(tx)
    }

    /// Queues a checked voucher and waits for its commit (or refusal).
    pub(crate) async fn store(
        &self,
        account: i64,
        locator: String,
        share: Option<OpenedShare>,
        now: i64,
    ) -> Result<(), HttpRefusal> {
        let (reply, answer) = oneshot::channel();
        self.0
            .send(Job {
                account,
                locator,
                share_bytes: share.as_ref().map(OpenedShare::to_bytes),
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
        vouchers: Vec<(String, Option<OpenedShare>)>,
        now: i64,
    ) -> Result<(), HttpRefusal> {
        let mut answers = Vec::with_capacity(vouchers.len());
        for (locator, share) in vouchers {
            let (reply, answer) = oneshot::channel();
            self.0
                .send(Job {
                    account,
                    locator,
                    share_bytes: share.as_ref().map(OpenedShare::to_bytes),
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

async fn run(worker: ThresholdWorker, store: Arc<dyn MatchingStore>, mut rx: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match commit(&*store, &batch).await {
            Ok(answers) => {
                tracing::debug!(vouchers = batch.len(), "voucher batch committed");
                // After the commit: the worker reads what was committed.
                let mut opened: Vec<i64> = batch
                    .iter()
                    .zip(&answers)
                    .filter(|(job, answer)| job.share_bytes.is_some() && answer.is_ok())
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

/// One transaction for `batch` ([`MatchingStore::store_vouchers`]); per
/// voucher, `Ok` (stored) or its refusal.
async fn commit(
    store: &dyn MatchingStore,
    batch: &[Job],
) -> Result<Vec<Result<(), HttpRefusal>>, HttpRefusal> {
    let rows: Vec<NewVoucher<'_>> = batch
        .iter()
        .map(|job| NewVoucher {
            account: job.account,
            locator: &job.locator,
            share: job.share_bytes.as_deref(),
            received_at: job.now,
        })
        .collect();
    Ok(store
        .store_vouchers(&rows)
        .await?
        .into_iter()
        .map(|stored| match stored {
            VoucherStored::Stored => Ok(()),
            VoucherStored::UnknownBlob => Err(MatchingRefusal::UnknownBlob.into()),
            VoucherStored::Duplicate => Err(MatchingRefusal::DuplicateVoucher.into()),
        })
        .collect())
}
