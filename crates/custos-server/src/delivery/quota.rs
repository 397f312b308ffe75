//! Storage quotas ([`crate::Limits::mailbox_quota`], `sender_quota`): how
//! much unacknowledged data the service holds for one device's mailbox, and
//! for what one account sent.
//!
//! # The choice
//! A mailbox is filled by others, so a limit on the recipient alone would
//! let one sender fill it for everyone; a limit on the sender alone would
//! let many senders fill it together. Both are kept:
//! - every account may have at most the sender quota of its items stored
//!   and not yet acknowledged by all their recipients (default 10,000 items
//!   or 256 MiB), so one sender cannot fill a mailbox alone;
//! - every device's mailbox holds at most the mailbox quota (default 50,000
//!   items or 1 GiB), whoever the senders are.
//!
//! A submission that would pass either is refused whole, `429` with
//! `sender_quota` or `mailbox_full`: an item is never stored for some
//! recipients and dropped for another, since that would break "no gaps"
//! silently. The cost is that a member who stays offline can stop a
//! group's traffic once their mailbox is full; it drains when they fetch,
//! or when the retention TTL deletes the items. Commits and Welcomes count
//! in the usage, and the sender quota applies to them, but a full mailbox
//! does not block them, so that a member whose mailbox is full can still be
//! removed.
//!
//! # Accounting
//! The writer, the only code that stores and deletes items, keeps the usage
//! in memory: loaded from the database at start, reserved when a submission
//! is routed (released if it is then refused as a replay), added when a
//! commit is stored, subtracted when an ack or the retention sweep deletes
//! rows and items. If a batch fails, it is reloaded from the database.
//! With both quotas off, nothing is tracked.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::sqlite::SqliteConnection;

use crate::config::Quota;
use crate::refusal::LimitRefusal;

#[derive(Debug, Clone, Copy, Default)]
struct Held {
    items: u64,
    bytes: u64,
}

impl Held {
    fn fits(&self, q: &Quota, bytes: u64) -> bool {
        (q.items == 0 || self.items.saturating_add(1) <= q.items)
            && (q.bytes == 0 || self.bytes.saturating_add(bytes) <= q.bytes)
    }

    fn add(&mut self, bytes: u64) {
        self.items = self.items.saturating_add(1);
        self.bytes = self.bytes.saturating_add(bytes);
    }

    fn sub(&mut self, bytes: u64) {
        self.items = self.items.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(bytes);
    }

    fn is_empty(&self) -> bool {
        self.items == 0 && self.bytes == 0
    }
}

/// What is held per mailbox and per sender, with the quotas.
#[derive(Debug)]
pub(crate) struct Usage {
    mailbox_quota: Quota,
    sender_quota: Quota,
    mailbox: HashMap<i64, Held>,
    sent: HashMap<Arc<str>, Held>,
}

fn len_of(bytes: usize) -> u64 {
    u64::try_from(bytes).unwrap_or(u64::MAX)
}

impl Usage {
    /// Loads what the database holds (nothing when both quotas are off).
    pub async fn load(
        conn: &mut SqliteConnection,
        mailbox_quota: Quota,
        sender_quota: Quota,
    ) -> Result<Self, sqlx::Error> {
        let mut usage = Self {
            mailbox_quota,
            sender_quota,
            mailbox: HashMap::new(),
            sent: HashMap::new(),
        };
        usage.reload(conn).await?;
        Ok(usage)
    }

    /// Whether any quota is on.
    pub fn enabled(&self) -> bool {
        self.mailbox_quota != Quota::UNLIMITED || self.sender_quota != Quota::UNLIMITED
    }

    /// Reads the usage again from the database (after a failed batch).
    pub async fn reload(&mut self, conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
        self.mailbox.clear();
        self.sent.clear();
        if !self.enabled() {
            return Ok(());
        }
        let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT m.device_id, COUNT(*), COALESCE(SUM(length(i.body)), 0) \
             FROM mailbox m JOIN items i ON i.id = m.item_id GROUP BY m.device_id",
        )
        .fetch_all(&mut *conn)
        .await?;
        for (device, items, bytes) in rows {
            self.mailbox.insert(
                device,
                Held {
                    items: u64::try_from(items).unwrap_or(0),
                    bytes: u64::try_from(bytes).unwrap_or(0),
                },
            );
        }
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT sender, COUNT(*), COALESCE(SUM(length(body)), 0) FROM items GROUP BY sender",
        )
        .fetch_all(&mut *conn)
        .await?;
        for (sender, items, bytes) in rows {
            self.sent.insert(
                sender.into(),
                Held {
                    items: u64::try_from(items).unwrap_or(0),
                    bytes: u64::try_from(bytes).unwrap_or(0),
                },
            );
        }
        Ok(())
    }

    fn check_sender(&self, sender: &str, bytes: u64) -> Result<(), LimitRefusal> {
        let held = self.sent.get(sender).copied().unwrap_or_default();
        if held.fits(&self.sender_quota, bytes) {
            Ok(())
        } else {
            Err(LimitRefusal::SenderQuota {
                items: held.items,
                bytes: held.bytes,
            })
        }
    }

    /// Checks a submission of `bytes` from `sender` to `recipients` against
    /// both quotas and reserves it. Nothing is stored for no recipient, so
    /// nothing is counted.
    pub fn admit(
        &mut self,
        sender: &Arc<str>,
        bytes: usize,
        recipients: &[i64],
    ) -> Result<(), LimitRefusal> {
        if !self.enabled() || recipients.is_empty() {
            return Ok(());
        }
        let bytes = len_of(bytes);
        self.check_sender(sender, bytes)?;
        for d in recipients {
            let held = self.mailbox.get(d).copied().unwrap_or_default();
            if !held.fits(&self.mailbox_quota, bytes) {
                return Err(LimitRefusal::MailboxFull {
                    items: held.items,
                    bytes: held.bytes,
                });
            }
        }
        self.add(sender, bytes, recipients);
        Ok(())
    }

    /// Checks a commit (and its Welcome) of `bytes` against the sender
    /// quota only; [`Usage::stored`] counts them once stored.
    pub fn admit_commit(&self, sender: &str, bytes: usize) -> Result<(), LimitRefusal> {
        if !self.enabled() {
            return Ok(());
        }
        self.check_sender(sender, len_of(bytes))
    }

    /// Gives back what [`Usage::admit`] reserved for a submission that was
    /// then refused.
    pub fn release(&mut self, sender: &str, bytes: usize, recipients: &[i64]) {
        if !self.enabled() || recipients.is_empty() {
            return;
        }
        let bytes = len_of(bytes);
        for d in recipients {
            self.row_deleted(*d, bytes);
        }
        self.item_deleted(sender, bytes);
    }

    /// Counts an item stored without [`Usage::admit`] (commits, Welcomes).
    pub fn stored(&mut self, sender: &Arc<str>, bytes: usize, recipients: &[i64]) {
        if !self.enabled() || recipients.is_empty() {
            return;
        }
        self.add(sender, len_of(bytes), recipients);
    }

    fn add(&mut self, sender: &Arc<str>, bytes: u64, recipients: &[i64]) {
        self.sent.entry(sender.clone()).or_default().add(bytes);
        for d in recipients {
            self.mailbox.entry(*d).or_default().add(bytes);
        }
    }

    /// A mailbox row of an item of `bytes` was deleted (acked or expired).
    pub fn row_deleted(&mut self, device: i64, bytes: u64) {
        if let Some(h) = self.mailbox.get_mut(&device) {
            h.sub(bytes);
            if h.is_empty() {
                self.mailbox.remove(&device);
            }
        }
    }

    /// An item of `bytes` sent by `sender` was deleted.
    pub fn item_deleted(&mut self, sender: &str, bytes: u64) {
        if let Some(h) = self.sent.get_mut(sender) {
            h.sub(bytes);
            if h.is_empty() {
                self.sent.remove(sender);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_release_and_delete_balance() {
        let mut u = Usage {
            mailbox_quota: Quota { items: 2, bytes: 0 },
            sender_quota: Quota {
                items: 0,
                bytes: 100,
            },
            mailbox: HashMap::new(),
            sent: HashMap::new(),
        };
        let a: Arc<str> = "alice".into();
        assert!(u.admit(&a, 40, &[1, 2]).is_ok());
        assert!(u.admit(&a, 40, &[1]).is_ok());
        assert!(matches!(
            u.admit(&a, 10, &[1]),
            Err(LimitRefusal::MailboxFull { items: 2, .. })
        ));
        assert!(matches!(
            u.admit(&a, 30, &[2]),
            Err(LimitRefusal::SenderQuota { bytes: 80, .. })
        ));
        u.release(&a, 40, &[1]);
        u.row_deleted(1, 40);
        u.row_deleted(2, 40);
        u.item_deleted(&a, 40);
        assert!(u.mailbox.is_empty() && u.sent.is_empty());
        assert!(
            u.admit(&a, 0, &[]).is_ok(),
            "nothing stored, nothing counted"
        );
    }
}
