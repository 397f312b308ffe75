//! Message history retention: how long this device keeps what it received
//! and sent.
//!
//! # Security meaning
//! History is kept forever unless the user says otherwise. A purge deletes
//! the messages (their text, and the envelope, payload and delivery tag kept
//! for reports) older than a cutoff; with the store's `secure_delete` on, the
//! deleted rows are overwritten in the file. A purged message can no longer
//! be reported: the proof went with it.

use crate::device::{Device, DeviceError};
use crate::store::StoreError;

/// Milliseconds in a day.
const DAY_MS: u64 = 86_400_000;

impl Device {
    /// Deletes every stored message older than `days` days (by the service's
    /// acceptance time, or the sender's clock for this device's own
    /// messages). Returns how many were deleted.
    pub fn purge_history_older_than(&mut self, days: u32) -> Result<usize, DeviceError> {
        let cutoff = self
            .clock
            .now_millis()
            .saturating_sub(u64::from(days).saturating_mul(DAY_MS));
        self.purge_history_before(cutoff)
    }

    /// Deletes every stored message. Returns how many were deleted.
    pub fn purge_all_history(&mut self) -> Result<usize, DeviceError> {
        self.purge_history_before(u64::MAX)
    }

    fn purge_history_before(&mut self, cutoff_ms: u64) -> Result<usize, DeviceError> {
        let cutoff = i64::try_from(cutoff_ms).unwrap_or(i64::MAX);
        let conn = &self.store.conn;
        let purged = conn
            .execute(
                "DELETE FROM messages WHERE
                 (CASE WHEN server_time > 0 THEN server_time ELSE sent_at END) < ?1",
                [cutoff],
            )
            .map_err(StoreError::from)?;
        // The write-ahead log still holds the old pages: fold it into the
        // database (where `secure_delete` overwrote them) and empty it.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(StoreError::from)?;
        Ok(purged)
    }
}
