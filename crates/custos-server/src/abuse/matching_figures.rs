//! The matching figures in the transparency log (statement kind 15,
//! `MatchingCases`; docs/design/0020-matching-figures-in-the-log.md): the
//! service's totals of accounts past the threshold and of cases, logged
//! periodically when they changed, one server at a time on PostgreSQL.

use std::sync::Arc;

use custos_wire::statement::{MatchingCases, SignedStatement, Statement};

use crate::abuse::franking_log::{FrankingLogConfig, PublishError, log_and_prove};
use crate::abuse::matching::{MatchingService, provider_name};
use crate::store::MatchingStore;

/// Default period of the matching figures in the log: a day.
pub const DEFAULT_FIGURES_PERIOD: std::time::Duration = std::time::Duration::from_secs(86_400);

/// Logs the matching figures (statement kind 15, `MatchingCases`) every
/// `every`, when a figure changed since the last ones logged (by this
/// process on SQLite; by any server on PostgreSQL, which keeps them in the
/// database); none are logged while every figure is zero. Runs until
/// `stop` turns true. A failed publication is tried again at the next
/// period.
///
/// On PostgreSQL the counting and the logging happen under one turn
/// ([`MatchingStore::figures_turn`]): one server logs at a time, and the
/// figures it logs are those read in its turn, never fewer than the last
/// logged, so the figures in the log never go backwards.
///
/// # Security meaning
/// The statement carries totals only (no account, case or hash), so the
/// public learns the figures and the period in which they changed, not
/// when a case opened; see docs/design/0020-matching-figures-in-the-log.md.
pub async fn publish_figures(
    matching: Arc<MatchingService>,
    store: Arc<dyn MatchingStore>,
    config: Arc<FrankingLogConfig>,
    clock: custos_clock::SharedClock,
    every: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut last = [0u32; 4];
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        // Another server's turn (PostgreSQL): it logs; this one looks
        // again next period.
        let turn = match store.figures_turn().await {
            Ok(Some(turn)) => turn,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(%e, "matching figures: cannot count");
                continue;
            }
        };
        let now = turn.totals();
        let (before, before_at) = turn.last_logged().unwrap_or((last, 0));
        if now == before {
            last = now;
            if let Err(e) = turn.release().await {
                tracing::warn!(%e, "matching figures: turn not released");
            }
            continue;
        }
        // Never earlier than the last statement, by whichever server.
        let as_of = (clock.now_millis() / 1000).max(before_at);
        match log_figures(&matching, &config, as_of, now).await {
            Ok(index) => match turn.logged(now, as_of).await {
                Ok(()) => {
                    last = now;
                    tracing::info!(index, "matching figures published in the transparency log");
                }
                // Logged but not recorded: the next turn logs the same or
                // newer figures again, never older ones.
                Err(e) => tracing::warn!(%e, "matching figures logged but not recorded"),
            },
            Err(e) => {
                tracing::warn!(%e, "matching figures not yet in the log; next period");
                if let Err(e) = turn.release().await {
                    tracing::warn!(%e, "matching figures: turn not released");
                }
            }
        }
    }
}

async fn log_figures(
    matching: &MatchingService,
    config: &FrankingLogConfig,
    as_of: u64,
    [
        accounts_matched,
        cases_opened,
        cases_confirmed,
        cases_dismissed,
    ]: [u32; 4],
) -> Result<u64, PublishError> {
    use custos_tlog::{LogClient, TrustPolicy};
    let trust = TrustPolicy::from_manifest(&config.manifest)
        .map_err(|e| PublishError::Policy(e.to_string()))?;
    let statement = Statement::MatchingCases(MatchingCases {
        provider: provider_name(config)?,
        table_root: matching.root(),
        as_of,
        accounts_matched,
        cases_opened,
        // Decided cases never outnumber opened ones (one row each); the
        // statement refuses to encode otherwise.
        cases_confirmed,
        cases_dismissed,
    });
    let signed = SignedStatement::sign(&statement, &config.statement_key)?;
    let client = LogClient::new(&config.log_url)?;
    Ok(
        log_and_prove(&client, &trust, &signed, config.witness_timeout)
            .await?
            .index,
    )
}
