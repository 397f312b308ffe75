//! Notices: the device tells its user when a warrant that covered one of
//! its conversations is unsealed (DESIGN.md §4 step 7).
//!
//! The device follows the log ([`crate::logsync`]) for `WarrantCommitment`
//! and `WarrantUnsealing` statements, each proven included in a witnessed
//! checkpoint by a manifest participant allowed to publish it. It keeps
//! every commitment, and an unsealing only once it passed
//! [`custos_verify::unsealing::verify_unsealing`] against the commitment
//! logged before it: the salt and warrant open the commitment, and the
//! court signature verifies under the manifest's key for that court.
//!
//! # Guarantees
//! - A [`Notice`] is shown only for a warrant that passed those checks, and
//!   only when one of its targets is a conversation this device is or was
//!   in (kept in `conversation_history`, so leaving does not hide a
//!   notice).
//! - [`Device::take_new_notices`] returns each notice once, across
//!   restarts: the `shown` mark is stored in the same SQLite store
//!   (`synchronous=FULL`) before the call returns.
//! - An unsealing that comes before its commitment, does not open it, or
//!   carries a warrant no manifest court signed is never stored; the device
//!   logs a warning.
//!
//! # Not guaranteed
//! A warrant kept sealed produces no notice; the audit flags it
//! (`custos_verify::figures`). The times shown are the statements' own.

use custos_verify::dates::utc_date;
use custos_verify::unsealing::verify_unsealing;
use custos_wire::ConversationId;
use custos_wire::manifest::Manifest;
use custos_wire::statement::{Statement, WarrantCommitment, WarrantUnsealing};
use custos_wire::warrant::Warrant;
use rusqlite::{OptionalExtension as _, params};

use crate::device::{Device, DeviceError};
use crate::store::{Store, StoreError};

/// One unsealed warrant that covered conversations of this device.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Notice {
    /// The warrant's commitment in the log, hex.
    pub warrant: String,
    /// Log index of the unsealing this device accepted first.
    pub log_index: u64,
    /// The court that issued it.
    pub court: String,
    /// The authority it was issued to.
    pub authority: String,
    /// The legal basis the court gave.
    pub legal_basis: String,
    /// This device's conversations it covered (hex).
    pub conversations: Vec<String>,
    /// First UTC day covered (day number).
    pub first_day: u32,
    /// Last UTC day covered (day number, inclusive).
    pub last_day: u32,
    /// First day covered, `YYYY-MM-DD`.
    pub first_date: String,
    /// Last day covered, `YYYY-MM-DD`.
    pub last_date: String,
    /// When the warrant was issued, Unix seconds.
    pub issued_at: u64,
    /// When it was unsealed, Unix seconds (the unsealing's own time).
    pub unsealed_at: u64,
}

impl Notice {
    /// The one line `custos receive` prints.
    pub fn line(&self) -> String {
        let convs: Vec<&str> = self
            .conversations
            .iter()
            .map(|c| c.get(..8).unwrap_or(c))
            .collect();
        let days = if self.first_day == self.last_day {
            format!("on {}", self.first_date)
        } else {
            format!("from {} to {}", self.first_date, self.last_date)
        };
        format!(
            "notice: conversation {} was opened {days} under warrant {} of {} for {} ({})",
            convs.join(", "),
            self.warrant.get(..16).unwrap_or(&self.warrant),
            self.court,
            self.authority,
            self.legal_basis
        )
    }
}

impl Device {
    /// Every notice this device has, in log order (shown before or not).
    /// The log is not followed here: call [`Device::follow_log`] (or
    /// `receive`) first for the newest.
    pub fn notices(&self) -> Result<Vec<Notice>, DeviceError> {
        Ok(notices(&self.store, false)?)
    }

    /// The notices not returned before, in log order; marks them shown.
    pub fn take_new_notices(&mut self) -> Result<Vec<Notice>, DeviceError> {
        let new = notices(&self.store, true)?;
        for n in &new {
            if let Ok(c) = hex::decode(&n.warrant) {
                self.store
                    .conn
                    .execute(
                        "UPDATE unsealed_warrants SET shown = 1 WHERE commitment = ?1",
                        [c.as_slice()],
                    )
                    .map_err(StoreError::from)?;
            }
        }
        Ok(new)
    }
}

/// Keeps a logged commitment (the first one logged under its hash).
pub(crate) fn keep_commitment(
    store: &Store,
    index: u64,
    c: &WarrantCommitment,
) -> Result<(), DeviceError> {
    let bytes = Statement::WarrantCommitment(c.clone()).encode()?;
    store
        .conn
        .execute(
            "INSERT OR IGNORE INTO warrant_commitments (commitment, log_index, statement)
         VALUES (?1, ?2, ?3)",
            params![c.commitment.as_slice(), to_i64(index), bytes],
        )
        .map_err(StoreError::from)?;
    Ok(())
}

/// Checks an unsealing against its logged commitment and keeps it if it
/// passes; a failed check is logged and dropped.
pub(crate) fn take_unsealing(
    store: &Store,
    manifest: &Manifest,
    index: u64,
    u: &WarrantUnsealing,
) -> Result<(), DeviceError> {
    let stored: Option<Vec<u8>> = store
        .conn
        .query_row(
            "SELECT statement FROM warrant_commitments WHERE commitment = ?1",
            [u.warrant.as_slice()],
            |r| r.get(0),
        )
        .optional()
        .map_err(StoreError::from)?;
    let commitment = match stored.as_deref().map(Statement::decode) {
        Some(Ok(Statement::WarrantCommitment(c))) => c,
        _ => {
            tracing::warn!(
                index,
                warrant = %hex::encode(u.warrant),
                "an unsealing of a warrant whose commitment is not in the log before it; ignored"
            );
            return Ok(());
        }
    };
    match verify_unsealing(manifest, &commitment, u) {
        Ok(w) => {
            store
                .conn
                .execute(
                    "INSERT OR IGNORE INTO unsealed_warrants
                   (commitment, log_index, unsealed_at, warrant, shown) VALUES (?1, ?2, ?3, ?4, 0)",
                    params![
                        w.commitment().as_slice(),
                        to_i64(index),
                        to_i64(w.unsealed_at()),
                        u.warrant_bytes
                    ],
                )
                .map_err(StoreError::from)?;
        }
        Err(e) => {
            tracing::warn!(index, reason = %e, "an unsealing that does not verify; ignored");
        }
    }
    Ok(())
}

fn notices(store: &Store, only_new: bool) -> Result<Vec<Notice>, StoreError> {
    let mine = store.conversations_ever()?;
    let sql = if only_new {
        "SELECT commitment, log_index, unsealed_at, warrant FROM unsealed_warrants
         WHERE shown = 0 ORDER BY log_index"
    } else {
        "SELECT commitment, log_index, unsealed_at, warrant FROM unsealed_warrants
         ORDER BY log_index"
    };
    let mut stmt = store.conn.prepare(sql)?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, Vec<u8>>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, Vec<u8>>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (commitment, index, unsealed_at, bytes) = row?;
        // Verified before it was stored; a row that no longer decodes is skipped.
        let Ok(warrant) = Warrant::decode(&bytes) else {
            continue;
        };
        let f = warrant.fields();
        let covered: Vec<String> = f
            .targets
            .iter()
            .filter(|t| mine.contains(t))
            .map(ConversationId::to_hex)
            .collect();
        if covered.is_empty() {
            continue;
        }
        out.push(Notice {
            warrant: hex::encode(commitment),
            log_index: u64::try_from(index).unwrap_or(0),
            court: f.court.clone(),
            authority: f.authority.clone(),
            legal_basis: f.legal_basis.clone(),
            conversations: covered,
            first_day: f.first_day,
            last_day: f.last_day,
            first_date: utc_date(f.first_day),
            last_date: utc_date(f.last_day),
            issued_at: f.issued_at,
            unsealed_at: u64::try_from(unsealed_at).unwrap_or(0),
        });
    }
    Ok(out)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
