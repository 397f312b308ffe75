//! Storage held per mailbox and per sender on PostgreSQL (migration 6),
//! for the quotas of `delivery::quota`, shared by every server.
//!
//! # How it is kept
//! Every transaction that stores, acks or expires items adds its changes
//! with [`apply`] at its end, in key order (devices, then senders), so the
//! counters change atomically with the rows they count and two
//! transactions never wait on each other's counters in opposite orders.
//! A batch checks its submissions against the counters as read at its
//! start ([`held`]); batches committing at once on several servers may
//! therefore together pass a quota by at most what each of them admitted,
//! never more.

use std::collections::BTreeMap;

use sqlx::PgConnection;

/// Items and bytes held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Held {
    /// Items.
    pub items: i64,
    /// Bytes of item bodies.
    pub bytes: i64,
}

/// Changes to the counters made by one transaction.
#[derive(Debug, Clone, Default)]
pub struct UsageDelta {
    /// Per device mailbox.
    pub devices: BTreeMap<i64, Held>,
    /// Per sending account name.
    pub senders: BTreeMap<String, Held>,
}

impl UsageDelta {
    /// An item of `bytes` from `sender` stored for `devices` (`sign` 1), or
    /// removed (`sign` -1: pass the devices whose rows went, and the sender
    /// only if the item itself went).
    pub fn add_row(&mut self, device: i64, bytes: i64, sign: i64) {
        let h = self.devices.entry(device).or_default();
        h.items += sign;
        h.bytes += sign * bytes;
    }

    /// An item of `bytes` from `sender` stored (`sign` 1) or deleted (-1).
    pub fn add_item(&mut self, sender: &str, bytes: i64, sign: i64) {
        let h = self.senders.entry(sender.to_owned()).or_default();
        h.items += sign;
        h.bytes += sign * bytes;
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty() && self.senders.is_empty()
    }
}

/// What `devices` and `senders` hold now (no lock: see the module doc).
///
/// # Errors
/// When the database fails.
pub async fn held(
    conn: &mut PgConnection,
    devices: &[i64],
    senders: &[String],
) -> Result<(BTreeMap<i64, Held>, BTreeMap<String, Held>), sqlx::Error> {
    let d: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT device_id, items, bytes FROM device_usage WHERE device_id = ANY($1)",
    )
    .bind(devices)
    .fetch_all(&mut *conn)
    .await?;
    let s: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT sender, items, bytes FROM sender_usage WHERE sender = ANY($1)")
            .bind(senders)
            .fetch_all(&mut *conn)
            .await?;
    Ok((
        d.into_iter()
            .map(|(k, items, bytes)| (k, Held { items, bytes }))
            .collect(),
        s.into_iter()
            .map(|(k, items, bytes)| (k, Held { items, bytes }))
            .collect(),
    ))
}

/// Adds `delta` to the counters, in key order, inside the caller's
/// transaction (take no other lock after this).
///
/// # Errors
/// When the database fails; the caller rolls back.
pub async fn apply(conn: &mut PgConnection, delta: &UsageDelta) -> Result<(), sqlx::Error> {
    if !delta.devices.is_empty() {
        let keys: Vec<i64> = delta.devices.keys().copied().collect();
        let items: Vec<i64> = delta.devices.values().map(|h| h.items).collect();
        let bytes: Vec<i64> = delta.devices.values().map(|h| h.bytes).collect();
        sqlx::query(
            "INSERT INTO device_usage (device_id, items, bytes) \
             SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[]) ORDER BY 1 \
             ON CONFLICT (device_id) DO UPDATE SET items = GREATEST(device_usage.items + excluded.items, 0), \
             bytes = GREATEST(device_usage.bytes + excluded.bytes, 0)",
        )
        .bind(&keys)
        .bind(&items)
        .bind(&bytes)
        .execute(&mut *conn)
        .await?;
    }
    if !delta.senders.is_empty() {
        let keys: Vec<&str> = delta.senders.keys().map(String::as_str).collect();
        let items: Vec<i64> = delta.senders.values().map(|h| h.items).collect();
        let bytes: Vec<i64> = delta.senders.values().map(|h| h.bytes).collect();
        sqlx::query(
            "INSERT INTO sender_usage (sender, items, bytes) \
             SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[]) ORDER BY 1 \
             ON CONFLICT (sender) DO UPDATE SET items = GREATEST(sender_usage.items + excluded.items, 0), \
             bytes = GREATEST(sender_usage.bytes + excluded.bytes, 0)",
        )
        .bind(&keys)
        .bind(&items)
        .bind(&bytes)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Adds what a store of `items` (with their outcomes) holds.
pub fn add_stored(
    delta: &mut UsageDelta,
    items: &[super::pg_mailbox::PgNewItem],
    stored: &[super::pg_mailbox::StoredItem],
) {
    for (item, outcome) in items.iter().zip(stored) {
        if let super::pg_mailbox::StoredItem::Stored { rows, .. } = outcome
            && !rows.is_empty()
        {
            let bytes = i64::try_from(item.body.len()).unwrap_or(i64::MAX);
            for (device, _) in rows {
                delta.add_row(*device, bytes, 1);
            }
            delta.add_item(&item.sender, bytes, 1);
        }
    }
}
