//! The scheduler: publication of the HPKE key, generation of day keys,
//! erasure of expired shares, and the log statements for each.
//!
//! Every tick, in this order:
//! 1. Follow the log (every entry re-hashed against a witnessed
//!    checkpoint); publish this custodian's HPKE key if it is not there.
//! 2. For every stored day: once `today >= day + 1 + erasure_grace_days`
//!    (the end of the day plus the grace), mark it `erasing` (the share is
//!    never used again), log `DayKeyErasure` and wait for a witnessed
//!    checkpoint, then destroy the share file; finish any erasure a crash
//!    interrupted; erase at once a share whose erasure the log already holds;
//!    log any `EscrowDayKey` that a crash left unlogged.
//! 3. For each day from today to today + `days_ahead` that this custodian
//!    has no record of: if `t` custodians already published its key without
//!    this one, record it as missed; otherwise, once every custodian's HPKE
//!    key is in the log, run the DKG over HTTP among all of them. A result
//!    in which any share was revealed (a custodian did not acknowledge, for
//!    example because it was down) is dropped and retried later; otherwise
//!    the share is stored (durable) and the `EscrowDayKey` published.

use std::collections::HashMap;
use std::sync::Arc;

use custos_escrow::dkg::{self, DkgConfig, DkgOutput};
use custos_wire::manifest::Role;
use custos_wire::statement::{DayKeyErasure, EscrowDayKey, KeyPurpose, ParticipantKey, Statement};
use rand_core::OsRng;

use super::Shared;
use crate::logview::{LogError, LogView};
use crate::net::transport::{HttpTransport, Peer};
use crate::store::{DayStatus, StoreError};

#[derive(Debug, thiserror::Error)]
enum TickError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("DKG of day {day}: {reason}")]
    Dkg { day: u32, reason: String },
}

pub(super) async fn run(
    s: Arc<Shared>,
    mut view: LogView,
    mut wake: tokio::sync::mpsc::Receiver<u32>,
) {
    loop {
        if let Err(e) = tick(&s, &mut view).await {
            tracing::warn!(custodian = s.key.name(), "{e}");
        }
        tokio::select! {
            () = tokio::time::sleep(s.timing.tick) => {}
            _ = wake.recv() => {}
        }
    }
}

async fn tick(s: &Arc<Shared>, view: &mut LogView) -> Result<(), TickError> {
    view.refresh().await?;
    let me = s.key.public_key();
    let hpke = s.key.hpke_public_key();
    if view.hpke_keys().get(&me) != Some(&hpke) {
        let st = Statement::ParticipantKey(ParticipantKey {
            name: s.key.name().to_owned(),
            role: Role::Custodian,
            purpose: KeyPurpose::Hpke,
            public_key: hpke.to_vec(),
            valid_from: s.clock.now_secs(),
        });
        view.publish(&s.key, &st).await?;
        view.refresh().await?;
    }
    if let Ok(mut known) = s.hpke.write() {
        known.clone_from(view.hpke_keys());
    }
    let today = s.clock.today();
    s.inbox.prune(today);
    upkeep(s, &mut *view, today).await?;
    generate(s, view, today).await
}

/// Erasure and catch-up logging for every stored day.
///
/// Erasure is logged before its effect (`docs/design/0011-erasure-logged-first.md`):
/// the day is first marked `erasing` (its share is never used again), then
/// the `DayKeyErasure` is logged and witnessed, and only then is the share
/// file destroyed. A day whose erasure by this custodian the log already
/// holds (a crash after logging, or a share store restored from an older
/// backup) is erased at once without logging again.
async fn upkeep(s: &Arc<Shared>, view: &mut LogView, today: u32) -> Result<(), TickError> {
    let grace = u32::from(s.manifest.policy.erasure_grace_days);
    let me = s.key.public_key();
    for (day, status, _) in s.store.days()? {
        let logged = view.erasures(day).contains(&me);
        match status {
            DayStatus::Live { .. } if logged => {
                tracing::warn!(
                    custodian = s.key.name(),
                    day,
                    "the log says this share was erased; erasing the copy found on disk"
                );
                s.store.begin_erasure(day)?;
                s.store.finish_erasure(day)?;
            }
            DayStatus::Live { published } => {
                if today >= day.saturating_add(1).saturating_add(grace) {
                    s.store.begin_erasure(day)?;
                    log_erasure(s, view, day).await?;
                    s.store.finish_erasure(day)?;
                    tracing::info!(
                        custodian = s.key.name(),
                        day,
                        "erasure logged, then share erased"
                    );
                } else if !published {
                    publish_day_key(s, view, day).await?;
                }
            }
            DayStatus::Erasing => {
                if !logged {
                    log_erasure(s, view, day).await?;
                }
                s.store.finish_erasure(day)?;
            }
            DayStatus::Erased { logged: false } => {
                if !logged {
                    log_erasure(s, view, day).await?;
                }
                s.store.mark_erasure_logged(day)?;
            }
            DayStatus::Erased { logged: true } | DayStatus::Missed => {}
        }
    }
    Ok(())
}

/// Logs this custodian's `DayKeyErasure` of `day` and waits until a
/// witnessed checkpoint holds it.
async fn log_erasure(s: &Shared, view: &mut LogView, day: u32) -> Result<(), TickError> {
    let st = Statement::DayKeyErasure(DayKeyErasure {
        day,
        custodian: s.key.name().to_owned(),
        erased_at: s.clock.now_secs(),
    });
    view.publish_witnessed(&s.key, &st, s.timing.witness_timeout)
        .await?;
    Ok(())
}

async fn publish_day_key(s: &Shared, view: &LogView, day: u32) -> Result<(), TickError> {
    let Some(day_key) = s.store.day_key(day)? else {
        return Ok(());
    };
    let st = Statement::EscrowDayKey(EscrowDayKey {
        day,
        threshold: u8::try_from(day_key.threshold()).unwrap_or(u8::MAX),
        custodians: u8::try_from(day_key.custodians()).unwrap_or(u8::MAX),
        day_key: day_key.to_bytes(),
    });
    view.publish(&s.key, &st).await?;
    s.store.mark_published(day)?;
    tracing::info!(custodian = s.key.name(), day, "day key published");
    Ok(())
}

async fn generate(s: &Arc<Shared>, view: &mut LogView, today: u32) -> Result<(), TickError> {
    let me = s.key.public_key();
    let t = usize::from(s.threshold);
    for day in today..=today.saturating_add(s.days_ahead) {
        if s.store.status(day)?.is_some() {
            continue;
        }
        let publishers = view.day_key_publishers(day);
        if publishers.len() >= t && !publishers.contains(&me) {
            s.store.mark_missed(day)?;
            tracing::warn!(
                custodian = s.key.name(),
                day,
                "day generated without this custodian"
            );
            continue;
        }
        // Every custodian takes part or none does: a custodian that cannot
        // receive its dealings would have its shares revealed to the others
        // (docs/design/0010-dkg-without-revealed-shares.md).
        let peers = peers(s);
        if !peers.contains_key(&me) || peers.len() != s.custodians.len() || s.inbox.is_cooling(day)
        {
            return Ok(());
        }
        let output = run_dkg(s, day, peers).await?;
        if !output.public.revealed.is_empty() {
            // A complaint was answered by revealing shares: the live
            // custodians now hold more than their own share of this key. It
            // is dropped here (the share is zeroized), never stored or
            // published, and the day is tried again after a cool-down.
            s.inbox.end(day, true, s.timing.phase_timeout * 2);
            tracing::warn!(
                custodian = s.key.name(),
                day,
                revealed = ?output.public.revealed,
                "day key refused: shares of custodians {:?} were revealed during the DKG; retrying later",
                output.public.revealed
            );
            return Ok(());
        }
        s.store.put(
            day,
            &output.share,
            &output.public.day_key,
            &output.public.transcript_hash,
        )?;
        s.inbox.end(day, false, s.timing.phase_timeout);
        tracing::info!(
            custodian = s.key.name(),
            day,
            transcript = %hex::encode(output.public.transcript_hash),
            "day key generated"
        );
        publish_day_key(s, view, day).await?;
        view.refresh().await?;
    }
    Ok(())
}

/// Custodians with an endpoint (or this one) and an HPKE key in the log.
fn peers(s: &Shared) -> HashMap<[u8; 32], Peer> {
    let me = s.key.public_key();
    let Ok(hpke) = s.hpke.read() else {
        return HashMap::new();
    };
    s.custodians
        .iter()
        .filter_map(|(pk, endpoint)| {
            let key = hpke.get(pk)?;
            let endpoint = match endpoint {
                Some(e) => e.clone(),
                None if *pk == me => String::new(),
                None => return None,
            };
            Some((
                *pk,
                Peer {
                    endpoint,
                    hpke: *key,
                },
            ))
        })
        .collect()
}

async fn run_dkg(
    s: &Arc<Shared>,
    day: u32,
    peers: HashMap<[u8; 32], Peer>,
) -> Result<DkgOutput, TickError> {
    let fail = |reason: String| TickError::Dkg { day, reason };
    let keys: Vec<[u8; 32]> = s.custodians.keys().copied().collect();
    let config = DkgConfig::new(day, s.threshold, &keys).map_err(|e| fail(e.to_string()))?;
    s.inbox.begin(day);
    let shared = s.clone();
    let runtime = tokio::runtime::Handle::current();
    let joined = tokio::task::spawn_blocking(move || {
        let mut transport = HttpTransport {
            key: &shared.key,
            config: &config,
            peers: &peers,
            inbox: &shared.inbox,
            http: shared.http.clone(),
            runtime,
            phase_timeout: shared.timing.phase_timeout,
        };
        dkg::run(
            &config,
            shared.key.signing_seed(),
            &mut transport,
            &mut OsRng,
        )
    })
    .await;
    match joined {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(e)) => {
            s.inbox.end(day, true, s.timing.phase_timeout * 2);
            Err(fail(e.to_string()))
        }
        Err(e) => {
            s.inbox.end(day, true, s.timing.phase_timeout * 2);
            Err(fail(e.to_string()))
        }
    }
}
