//! Running the service on PostgreSQL ([`crate::ServerConfig::database`]):
//! any number of identical servers on one database (design note 0019).
//!
//! # What differs from SQLite
//! - The writer is [`crate::delivery::writer::pg`]: one per process, each
//!   batch a PostgreSQL transaction, answered after `COMMIT`.
//! - Push across servers: a task listens for the mailbox notifications of
//!   every server's commits ([`crate::store::pg_mailbox::MailboxWakeups`])
//!   and wakes the WebSockets of the devices it holds, which then read from
//!   their durable cursor. After a lost listening connection every
//!   WebSocket is woken once; each also polls on a slow timer.
//! - Login challenges are keyed with the deployment's shared secret and a
//!   correct answer is spent in the database, for every server.
//! - `/readyz` asks PostgreSQL (through the pool, within its timeout).
//! - Blobs are served from the database (`store::pg_blobs`: the body in
//!   the row, the quota under the owner's row lock, swept by the writer).
//! - Reports and moderation use the shared tables (`store::pg_moderation`),
//!   moderators included: one list for every server.
//! - Interception holds (`lawful::pg_holds`) and known-content detection
//!   (`store::pg_matching`) are read and written in the shared database by
//!   every server. The service keeps no local database (the SQLite pool of
//!   the shared state is closed), so nothing is ever stored where the other
//!   servers would not see it; `--data` holds only the franking key.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use custos_clock::SharedClock;
use rand::RngCore;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::ServerConfig;
use crate::delivery;
use crate::delivery::mailbox::Hub;
use crate::error::DeliveryServiceError;
use crate::store::pg_mailbox::Wake;
use crate::store::postgres::PgStore;

/// Connections each server keeps to PostgreSQL (the writer, the listener,
/// and the handlers' reads).
const POOL_SIZE: u32 = 16;
/// The purpose under which the login challenge key is shared.
const CHALLENGE_KEY: &str = "login_challenge";

/// [`crate::serve`] on PostgreSQL at `url`.
pub(crate) async fn serve(
    listener: TcpListener,
    config: ServerConfig,
    url: String,
    clock: SharedClock,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DeliveryServiceError> {
    let pg = PgStore::connect(&url, POOL_SIZE).await?;
    let blob_files = delivery::blob_files::BlobFiles::open(&config.data_dir).map_err(|source| {
        DeliveryServiceError::DataDir {
            path: config.data_dir.join("blobs"),
            source,
        }
    })?;
    if let (Some(franking), Some(log)) = (&config.franking, &config.franking_log) {
        tokio::spawn(crate::abuse::franking_log::maintain(
            franking.clone(),
            log.clone(),
            config.data_dir.clone(),
            Duration::from_secs(5),
        ));
    }
    let mut fresh = zeroize::Zeroizing::new([0u8; 64]);
    rand::rngs::OsRng.fill_bytes(fresh.as_mut());
    let tls = config.tls.clone();
    let challenge_key = pg.shared_secret(CHALLENGE_KEY, &fresh).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let _stop_on_drop = crate::StopOnDrop(stop_tx.clone());
    let hub = Arc::new(Hub::default());
    let (writer, writer_task) = delivery::writer::pg::spawn(
        pg.clone(),
        hub.clone(),
        config.policy.clone(),
        &config.limits,
        stop_rx.clone(),
    );
    let sweeper = delivery::retention::spawn_sweeper(
        writer.clone(),
        blob_files.clone(),
        clock.clone(),
        config.sweep_interval,
        stop_rx.clone(),
    );
    // Interceptions logged but missing from the database (restored from an
    // older backup) are rebuilt as on SQLite; on several servers at once,
    // the same interception applied twice adds nothing.
    if let Some(log) = &config.franking_log {
        crate::lawful::recover::rebuild_at_start(
            log.clone(),
            Arc::new(pg.clone()),
            writer.clone(),
            clock.clone(),
        )
        .await;
    }
    // The key directory in the shared database: every server serves its
    // proofs; one at a time publishes (`directory::publish_round`).
    let directory = match &config.key_directory {
        Some(kd) => {
            let svc = crate::directory::DirectoryService::open_pg(pg.clone(), kd)
                .await
                .map_err(|e| DeliveryServiceError::KeyDirectory(e.to_string()))?;
            if let Some(log) = &config.franking_log {
                tokio::spawn(crate::directory::run_publisher(
                    svc.clone(),
                    kd.clone(),
                    log.clone(),
                    clock.clone(),
                    stop_rx.clone(),
                ));
            } else {
                tracing::warn!("key directory without a log: its epochs are not published");
            }
            Some(svc)
        }
        None => None,
    };
    // Known-content detection on the shared database: every server stores
    // vouchers and runs a threshold worker; the database serialises their
    // attempts, cases and logged figures (`store::pg_matching`).
    if let (true, Some(m), Some(log)) = (
        config.publish_matching,
        config.matching.clone(),
        config.franking_log.clone(),
    ) {
        tokio::spawn(async move {
            while let Err(e) = crate::abuse::matching::publish(&m, &log).await {
                tracing::warn!(%e, "hash list not yet proven in the log; retrying");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        });
    }
    let vouchers = crate::abuse::matching::start(
        &config,
        Arc::new(pg.clone()),
        Arc::new(pg.clone()),
        &clock,
        &stop_rx,
    );
    let listener_task = tokio::spawn(wake_connections(pg.clone(), hub.clone(), stop_rx.clone()));
    let state = Arc::new(crate::state::Inner {
        directory,
        store: Arc::new(pg.clone()),
        pg: Some(pg.clone()),
        vouchers,
        pool: closed_sqlite_pool().await,
        clock,
        ip_limiter: crate::limits::RateLimiter::new(config.limits.ip_rate),
        account_limiter: crate::limits::RateLimiter::new(config.limits.account_rate),
        sessions: Default::default(),
        guards: crate::limits::Guards::new(&config.limits),
        challenges: delivery::challenge::Challenges::with_key(
            challenge_key,
            config.limits.max_challenges,
        ),
        config,
        writer,
        hub,
        shutdown: stop_rx,
    });
    let app = crate::routes::router(state);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "delivery service listening (PostgreSQL)");
    }
    let served = crate::serve_http(listener, app, tls, stop_tx.clone(), shutdown).await;
    let _ = stop_tx.send(true);
    let _ = sweeper.await;
    let _ = writer_task.await;
    let _ = listener_task.await;
    pg.pool().close().await;
    served?;
    Ok(())
}

/// A SQLite pool that is closed before anyone uses it: on PostgreSQL,
/// every query on [`crate::state::Inner::pool`] fails (`PoolClosed`, a 503),
/// and no file is created.
async fn closed_sqlite_pool() -> sqlx::SqlitePool {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_lazy_with(SqliteConnectOptions::new().in_memory(true));
    pool.close().await;
    pool
}

/// Wakes the WebSockets of this server when any server stored rows for
/// their devices, until `stop`. A listener that lost its connection
/// reconnects (after a pause while PostgreSQL is down) and wakes everyone.
async fn wake_connections(pg: PgStore, hub: Arc<Hub>, mut stop: watch::Receiver<bool>) {
    loop {
        let mut wakeups = tokio::select! {
            w = pg.wakeups() => match w {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(%e, "mailbox wake-ups: cannot listen; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                        _ = stop.changed() => return,
                    }
                }
            },
            _ = stop.changed() => return,
        };
        // Rows may have been stored while nobody listened.
        hub.wake_all();
        loop {
            tokio::select! {
                w = wakeups.next() => match w {
                    Ok(Wake::Devices(d)) => hub.wake(&d),
                    Ok(Wake::All) => hub.wake_all(),
                    Err(e) => {
                        tracing::warn!(%e, "mailbox wake-ups: connection lost");
                        hub.wake_all();
                        break;
                    }
                },
                _ = stop.changed() => return,
            }
        }
    }
}
