//! Keeping again after the database is lost or restored from an older
//! backup: the provider rebuilds its interceptions from its own
//! `Interception` statements in the log.
//!
//! # Security meaning
//! An interception is public (its statement is in the log) but its targets
//! are not: the statement carries them, with the warrant's not-after, in a
//! *recovery record* sealed with ChaCha20-Poly1305 under a key only the
//! provider can derive, `HMAC-SHA256(statement secret key,
//! "custos/v1/interception-recovery" ‖ commitment)`, with the commitment and
//! the warranted days as associated data. One key per warrant, so the fixed
//! nonce never seals two different records (presenting a warrant again seals
//! the same bytes). Anyone else learns from the record only its length, which
//! the statement's target count already states.
//!
//! At start, the service reads the log up to a checkpoint with the witness
//! quorum, checks that the entries hash to that checkpoint's root, and for
//! every `Interception` signed by its own key whose commitment its database
//! does not hold, re-creates the hold through the normal apply path
//! ([`crate::lawful::holds::Holds::intercept`]: the rows, copies of what is
//! still stored, and keeping from then on), unless the warrant was revoked
//! by its court in the log or its keeping ended. It does not check the
//! warrant again: it checked it before signing the statement.
//!
//! Not recovered: copies of items that the restored database no longer
//! holds (acked or expired since the backup). Kept items are a copy apart
//! from mailboxes; what the backup lost, the provider cannot bring back.

use std::collections::HashMap;
use std::time::Duration;

use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use custos_wire::ConversationId;
use custos_wire::manifest::Role;
use custos_wire::statement::{Interception, SignedStatement, Statement};
use ed25519_dalek::SigningKey;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::abuse::franking_log::FrankingLogConfig;
use crate::delivery::writer::{Op, WriterHandle};
use crate::lawful::holds::{Hold, NewInterception};
use crate::lawful::intercept::KEEP_GRACE_SECS;

/// Domain label of the recovery record's key.
pub(crate) const RECOVERY_LABEL: &[u8] = b"custos/v1/interception-recovery";
/// How often a rebuild that could not reach the log is tried again.
const RETRY: Duration = Duration::from_secs(5);

/// What a recovery record holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Recovery {
    /// The warrant's not-after, Unix seconds.
    pub not_after: u64,
    /// The warrant's target conversations.
    pub targets: Vec<ConversationId>,
}

/// Why a rebuild did not finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum RebuildError {
    /// The log could not be read, or its entries do not match a witnessed
    /// checkpoint.
    #[error("the transparency log: {0}")]
    Log(String),
    /// The database or the writer failed.
    #[error("the database: {0}")]
    Database(String),
}

fn record_cipher(key: &SigningKey, commitment: &[u8; 32]) -> Option<ChaCha20Poly1305> {
    let secret = Zeroizing::new(key.to_bytes());
    let mut mac = <Hmac<Sha256> as hmac::Mac>::new_from_slice(secret.as_slice()).ok()?;
    mac.update(RECOVERY_LABEL);
    mac.update(commitment);
    let derived: Zeroizing<[u8; 32]> = Zeroizing::new(mac.finalize().into_bytes().into());
    ChaCha20Poly1305::new_from_slice(derived.as_slice()).ok()
}

fn associated(commitment: &[u8; 32], first_day: u32, last_day: u32) -> Vec<u8> {
    let mut aad = Vec::with_capacity(RECOVERY_LABEL.len() + 40);
    aad.extend_from_slice(RECOVERY_LABEL);
    aad.extend_from_slice(commitment);
    aad.extend_from_slice(&first_day.to_be_bytes());
    aad.extend_from_slice(&last_day.to_be_bytes());
    aad
}

/// Seals `record` for the `Interception` statement of `commitment` covering
/// `first_day..=last_day`: `u64 not_after ‖ u8 count ‖ count × 16 bytes`,
/// encrypted. `None` only if the record cannot be encoded (over 255 targets).
pub(crate) fn seal(
    key: &SigningKey,
    commitment: &[u8; 32],
    first_day: u32,
    last_day: u32,
    record: &Recovery,
) -> Option<Vec<u8>> {
    let count = u8::try_from(record.targets.len()).ok()?;
    let mut plain = Zeroizing::new(Vec::with_capacity(9 + 16 * record.targets.len()));
    plain.extend_from_slice(&record.not_after.to_be_bytes());
    plain.push(count);
    for t in &record.targets {
        plain.extend_from_slice(&t.0);
    }
    let aad = associated(commitment, first_day, last_day);
    record_cipher(key, commitment)?
        .encrypt(
            &Nonce::default(),
            Payload {
                msg: &plain,
                aad: &aad,
            },
        )
        .ok()
}

/// Opens a recovery record sealed by [`seal`]; `None` if it was not sealed
/// by this key for this statement, or does not decode.
pub(crate) fn open(
    key: &SigningKey,
    commitment: &[u8; 32],
    first_day: u32,
    last_day: u32,
    sealed: &[u8],
) -> Option<Recovery> {
    let aad = associated(commitment, first_day, last_day);
    let plain = Zeroizing::new(
        record_cipher(key, commitment)?
            .decrypt(
                &Nonce::default(),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .ok()?,
    );
    let (not_after, rest) = plain.split_first_chunk::<8>()?;
    let (count, rest) = rest.split_first()?;
    if rest.len() != usize::from(*count) * 16 {
        return None;
    }
    let targets = rest
        .chunks_exact(16)
        .map(|c| <[u8; 16]>::try_from(c).ok().map(ConversationId))
        .collect::<Option<Vec<_>>>()?;
    Some(Recovery {
        not_after: u64::from_be_bytes(*not_after),
        targets,
    })
}

/// Rebuilds at start: one attempt now; if the log cannot be read, tries
/// again every few seconds in the background until it succeeds.
pub(crate) async fn rebuild_at_start(
    config: std::sync::Arc<FrankingLogConfig>,
    store: std::sync::Arc<dyn crate::store::Store>,
    writer: WriterHandle,
    clock: custos_clock::SharedClock,
) {
    let first = rebuild(&config, store.as_ref(), &writer, clock.now_millis());
    match tokio::time::timeout(config.witness_timeout, first).await {
        Ok(Ok(n)) => {
            if n > 0 {
                tracing::warn!(
                    rebuilt = n,
                    "interceptions missing from the database were rebuilt from the log"
                );
            }
            return;
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "interceptions not rebuilt yet; retrying"),
        Err(_) => tracing::warn!("interceptions not rebuilt yet (log too slow); retrying"),
    }
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(RETRY).await;
            match rebuild(&config, store.as_ref(), &writer, clock.now_millis()).await {
                Ok(n) => {
                    tracing::warn!(rebuilt = n, "interceptions rebuilt from the log");
                    return;
                }
                Err(RebuildError::Database(e)) => {
                    tracing::warn!(error = %e, "the writer stopped; interceptions not rebuilt");
                    return;
                }
                Err(e) => tracing::debug!(error = %e, "interceptions not rebuilt yet"),
            }
        }
    });
}

/// A logged warrant commitment: its court, authority and signer.
struct Committed {
    court: String,
    authority: String,
    author: [u8; 32],
}

/// Re-creates every interception of this provider that the log holds and
/// the database does not; returns how many.
pub(crate) async fn rebuild(
    config: &FrankingLogConfig,
    store: &dyn crate::store::Store,
    writer: &WriterHandle,
    now_ms: u64,
) -> Result<usize, RebuildError> {
    let entries = crate::abuse::franking_log::witnessed_entries(config)
        .await
        .map_err(|e| RebuildError::Log(e.to_string()))?;

    let own = config.statement_key.verifying_key().to_bytes();
    let mut committed: HashMap<[u8; 32], Committed> = HashMap::new();
    let mut revoked: Vec<([u8; 32], [u8; 32])> = Vec::new();
    let mut ours: Vec<(u64, Interception)> = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let Ok(signed) = SignedStatement::decode(entry) else {
            continue;
        };
        let Ok(statement) = signed.verify() else {
            continue;
        };
        match statement {
            Statement::WarrantCommitment(c) => {
                committed.entry(c.commitment).or_insert(Committed {
                    court: c.court,
                    authority: c.authority,
                    author: *signed.author(),
                });
            }
            Statement::WarrantRevocation(r) => revoked.push((r.warrant, *signed.author())),
            Statement::Interception(i) if *signed.author() == own => {
                ours.push((index as u64, i));
            }
            _ => {}
        }
    }

    let key_of = |name: &str, role: Role| {
        config
            .manifest
            .participant(name)
            .filter(|p| p.role == role)
            .and_then(|p| p.verifying_key().ok())
            .map(|k| k.to_bytes())
    };
    let mut rebuilt = 0;
    for (index, i) in ours {
        let held = store
            .interception_log_index(&i.warrant)
            .await
            .map_err(|e| RebuildError::Database(e.to_string()))?;
        if held.is_some() {
            continue;
        }
        let Some(record) = open(
            &config.statement_key,
            &i.warrant,
            i.first_day,
            i.last_day,
            &i.recovery,
        ) else {
            tracing::warn!(
                log_index = index,
                "an interception of ours has no recovery record we can open"
            );
            continue;
        };
        let keep_until = record
            .not_after
            .saturating_add(KEEP_GRACE_SECS)
            .saturating_mul(1000);
        if keep_until <= now_ms {
            continue;
        }
        let Some(c) = committed.get(&i.warrant) else {
            tracing::warn!(
                log_index = index,
                "an interception of ours names no logged commitment"
            );
            continue;
        };
        let Some(authority_key) = key_of(&c.authority, Role::Authority).filter(|k| *k == c.author)
        else {
            continue;
        };
        let court_key = key_of(&c.court, Role::Court);
        if revoked
            .iter()
            .any(|(w, by)| *w == i.warrant && Some(*by) == court_key)
        {
            continue;
        }
        writer
            .call(|reply| Op::Intercept {
                new: Box::new(NewInterception {
                    hold: Hold {
                        commitment: i.warrant,
                        first_day: i.first_day,
                        last_day: i.last_day,
                        keep_until,
                    },
                    authority: c.authority.clone(),
                    authority_key,
                    targets: record.targets,
                    not_after: record.not_after,
                    log_index: index,
                    started_at: i.started_at,
                }),
                reply,
            })
            .await
            .map_err(|e| RebuildError::Database(format!("{e:?}")))?;
        rebuilt += 1;
    }
    Ok(rebuilt)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;

    #[test]
    fn a_record_opens_only_with_its_key_commitment_and_days() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let record = Recovery {
            not_after: 1_800_000_000,
            targets: vec![ConversationId([1; 16]), ConversationId([2; 16])],
        };
        let sealed = seal(&key, &[7; 32], 10, 11, &record).unwrap();
        assert_eq!(sealed.len(), 8 + 1 + 32 + 16);
        assert_eq!(open(&key, &[7; 32], 10, 11, &sealed), Some(record));
        let other = SigningKey::from_bytes(&[4; 32]);
        assert_eq!(open(&other, &[7; 32], 10, 11, &sealed), None);
        assert_eq!(open(&key, &[8; 32], 10, 11, &sealed), None);
        assert_eq!(open(&key, &[7; 32], 10, 12, &sealed), None);
        let mut flipped = sealed.clone();
        flipped[3] ^= 1;
        assert_eq!(open(&key, &[7; 32], 10, 11, &flipped), None);
        assert_eq!(open(&key, &[7; 32], 10, 11, &[]), None);
    }
}
