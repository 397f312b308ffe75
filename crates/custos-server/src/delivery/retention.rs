//! Retention: items are deleted once every recipient device acked them
//! ([`crate::delivery::mailbox::apply_ack`]), or when their TTL (set at acceptance from
//! [`crate::ServerConfig::retention`]) has passed on the injected clock,
//! whichever comes first. Expired replay hashes, sessions and blobs go too
//! (a blob's file after the deletion of its row has committed).

use std::time::Duration;

use custos_clock::SharedClock;
use sqlx::sqlite::SqliteConnection;
use tokio::sync::watch;

use crate::delivery::blob_files::BlobFiles;
use crate::delivery::quota::Usage;
use crate::delivery::writer::{Op, SweepReport, WriterHandle};

/// Deletes everything whose expiry is at or before `now` (Unix ms). Runs
/// inside the writer's transaction.
pub(crate) async fn sweep(
    conn: &mut SqliteConnection,
    now: i64,
    usage: &mut Usage,
) -> Result<SweepReport, sqlx::Error> {
    let (rows, items) = if usage.enabled() {
        // What goes is subtracted from the quotas' usage.
        let rows: Vec<(i64, Option<i64>)> = sqlx::query_as(
            "DELETE FROM mailbox WHERE item_id IN (SELECT id FROM items WHERE expires_at <= ?) \
             RETURNING device_id, (SELECT length(body) FROM items WHERE items.id = mailbox.item_id)",
        )
        .bind(now)
        .fetch_all(&mut *conn)
        .await?;
        let items: Vec<(String, Option<i64>)> = sqlx::query_as(
            "DELETE FROM items WHERE expires_at <= ? RETURNING sender, length(body)",
        )
        .bind(now)
        .fetch_all(&mut *conn)
        .await?;
        let size = |l: Option<i64>| l.and_then(|l| u64::try_from(l).ok()).unwrap_or(0);
        for (device, len) in &rows {
            usage.row_deleted(*device, size(*len));
        }
        for (sender, len) in &items {
            usage.item_deleted(sender, size(*len));
        }
        (len_u64(rows.len()), len_u64(items.len()))
    } else {
        let rows = sqlx::query(
            "DELETE FROM mailbox WHERE item_id IN (SELECT id FROM items WHERE expires_at <= ?)",
        )
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        let items = sqlx::query("DELETE FROM items WHERE expires_at <= ?")
            .bind(now)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        (rows, items)
    };
    sqlx::query("DELETE FROM seen WHERE expires_at <= ?")
        .bind(now)
        .execute(&mut *conn)
        .await?;
    // Rows with an empty body have their body in a file, deleted after commit.
    let expired_blob_files: Vec<Option<String>> = sqlx::query_scalar(
        "DELETE FROM blobs WHERE expires_at <= ? \
         RETURNING CASE WHEN length(body) = 0 THEN locator END",
    )
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM sessions WHERE expires_at <= ?")
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(SweepReport {
        items,
        mailbox_rows: rows,
        expired_blob_files: expired_blob_files.into_iter().flatten().collect(),
    })
}

fn len_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Runs a sweep every `interval` (real time) until `shutdown`, each at the
/// clock's current time.
pub(crate) fn spawn_sweeper(
    writer: WriterHandle,
    blob_files: BlobFiles,
    clock: SharedClock,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => break,
            }
            if *shutdown.borrow() {
                break;
            }
            let now = clock.now_millis();
            match writer
                .call(|reply| Op::Sweep {
                    now,
                    reply: Some(reply),
                })
                .await
            {
                Ok(r) => {
                    if r.items > 0 {
                        tracing::info!(
                            items = r.items,
                            rows = r.mailbox_rows,
                            "retention: expired items deleted"
                        );
                    }
                    blob_files.remove(r.expired_blob_files).await;
                }
                Err(e) => {
                    tracing::warn!(code = e.code, "retention sweep failed");
                    if e.code == "unavailable" {
                        break;
                    }
                }
            }
        }
    })
}
