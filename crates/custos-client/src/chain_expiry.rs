//! Receiving chains expire, so that old keys leave the disk and a member
//! who left cannot keep posting on a chain it had before.
//!
//! # Security meaning
//! - **Removed members.** When a commit (another member's or ours) removes
//!   someone, their receiving chains in that conversation are deleted and
//!   the removal is remembered with its epoch; any later envelope of theirs
//!   on a chain of an earlier epoch is refused
//!   ([`EnvelopeRefusal::SenderRemoved`]), even from a service that
//!   delivers it after the commit.
//! - **Epochs.** A chain more than [`MAX_PAST_EPOCHS`] epochs behind the
//!   conversation is deleted, and envelopes on such chains are refused
//!   ([`EnvelopeRefusal::ChainExpired`]), the same bound under which a chain
//!   announcement of an old epoch is refused.
//! - **Days.** Once a chain's day plus the policy's grace (after which the
//!   service accepts nothing more on it) and a margin for delivery have
//!   passed, and the mailbox has been read to its end, the chain is deleted.
//! - The device store runs with SQLite's `secure_delete`, so deleted chain
//!   keys and skipped keys are overwritten on disk, not only unlinked.
//!
//! # Not guaranteed
//! A device that stays offline keeps its chains until it reads its mailbox:
//! envelopes accepted in time must still open when it comes back.

use custos_wire::ConversationId;
use custos_wire::envelope::EnvelopeHeader;
use openmls::prelude::MlsGroup;
use rusqlite::params;

use crate::device::{Device, DeviceError};
use crate::mls::{MAX_PAST_EPOCHS, credential_name};
use crate::refusal::EnvelopeRefusal;
use crate::store::StoreError;

/// After a chain's day plus the grace, how long the device still keeps the
/// chain for envelopes the service accepted in time (milliseconds).
pub const DELIVERY_MARGIN_MS: u64 = 3_600_000;

fn epoch_key(conv: &ConversationId) -> String {
    format!("epoch/{}", conv.to_hex())
}

fn removed_key(conv: &ConversationId, member: &str) -> String {
    format!("removed/{}/{member}", conv.to_hex())
}

fn read_u64(bytes: Option<Vec<u8>>) -> Option<u64> {
    bytes.and_then(|b| {
        <[u8; 8]>::try_from(b.as_slice())
            .ok()
            .map(u64::from_be_bytes)
    })
}

impl Device {
    /// Records that this device's view of `conv` is now `group` (just after
    /// a commit was merged, or a group was created or joined): deletes the
    /// chains of members no longer in the roster and of epochs too old, and
    /// remembers who was removed at which epoch.
    pub(crate) fn after_epoch_change(
        &mut self,
        conv: &ConversationId,
        group: &MlsGroup,
    ) -> Result<(), DeviceError> {
        let epoch = group.epoch().as_u64();
        let roster: Vec<String> = group
            .members()
            .filter_map(|m| credential_name(&m.credential))
            .collect();
        let tx = self
            .store
            .conn
            .unchecked_transaction()
            .map_err(StoreError::from)?;
        let senders: Vec<String> = {
            let mut stmt = tx
                .prepare("SELECT DISTINCT sender FROM receiving_chains WHERE conversation = ?1")
                .map_err(StoreError::from)?;
            stmt.query_map([conv.0.as_slice()], |r| r.get(0))
                .map_err(StoreError::from)?
                .collect::<Result<_, _>>()
                .map_err(StoreError::from)?
        };
        for gone in senders.iter().filter(|s| !roster.contains(s)) {
            tx.execute(
                "DELETE FROM receiving_chains WHERE conversation = ?1 AND sender = ?2",
                params![conv.0.as_slice(), gone],
            )
            .map_err(StoreError::from)?;
            // Same connection, so inside the transaction.
            self.store
                .set(&removed_key(conv, gone), &epoch.to_be_bytes())?;
        }
        if let Some(oldest) = epoch.checked_sub(MAX_PAST_EPOCHS as u64) {
            tx.execute(
                "DELETE FROM receiving_chains WHERE conversation = ?1 AND epoch < ?2",
                params![conv.0.as_slice(), i64::try_from(oldest).unwrap_or(i64::MAX)],
            )
            .map_err(StoreError::from)?;
        }
        self.store.set(&epoch_key(conv), &epoch.to_be_bytes())?;
        tx.commit().map_err(StoreError::from)?;
        Ok(())
    }

    /// Takes back the records [`Device::after_epoch_change`] and the
    /// conversation's own record wrote for a conversation joined from
    /// nothing, whose join was then refused.
    pub(crate) fn forget_unjoined(&mut self, conv: &ConversationId) -> Result<(), DeviceError> {
        let tx = self.store.transaction()?;
        self.store.remove_conversation(conv)?;
        self.store.delete(&epoch_key(conv))?;
        tx.commit().map_err(StoreError::from)?;
        Ok(())
    }

    /// Why an envelope with `header` from `sender` is on a chain that has
    /// expired, if it is.
    pub(crate) fn expired_chain(
        &self,
        header: &EnvelopeHeader,
        sender: &str,
    ) -> Result<Option<EnvelopeRefusal>, DeviceError> {
        let chain_epoch = header.chain.epoch;
        if let Some(removed_at) =
            read_u64(self.store.get(&removed_key(&header.conversation, sender))?)
            && chain_epoch < removed_at
        {
            return Ok(Some(EnvelopeRefusal::SenderRemoved {
                sender: sender.to_owned(),
                epoch: removed_at,
            }));
        }
        if let Some(current) = read_u64(self.store.get(&epoch_key(&header.conversation))?)
            && chain_epoch.saturating_add(MAX_PAST_EPOCHS as u64) < current
        {
            return Ok(Some(EnvelopeRefusal::ChainExpired {
                epoch: chain_epoch,
                current,
            }));
        }
        Ok(None)
    }

    /// How many receiving chains (each with its keys) this device holds.
    pub fn receiving_chain_count(&self) -> Result<usize, DeviceError> {
        let n: i64 = self
            .store
            .conn
            .query_row("SELECT COUNT(*) FROM receiving_chains", [], |r| r.get(0))
            .map_err(StoreError::from)?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Deletes every receiving chain whose day, plus the grace and
    /// [`DELIVERY_MARGIN_MS`], ended before now. Call only once the mailbox
    /// has been read to its end. Returns how many were deleted.
    pub(crate) fn expire_day_chains(&mut self, grace_secs: u64) -> Result<usize, DeviceError> {
        let now = self.clock.now_millis();
        let window = 86_400_000u64
            .saturating_add(grace_secs.saturating_mul(1000))
            .saturating_add(DELIVERY_MARGIN_MS);
        // Chains of day d last until d × 1 day + window.
        let Some(last_ended) = now.checked_sub(window).map(|t| t / 86_400_000) else {
            return Ok(0);
        };
        let deleted = self
            .store
            .conn
            .execute(
                "DELETE FROM receiving_chains WHERE day < ?1",
                [i64::try_from(last_ended).unwrap_or(i64::MAX)],
            )
            .map_err(StoreError::from)?;
        Ok(deleted)
    }
}
