//! Delivery service of Custos: accounts, KeyPackages, per-conversation commit
//! ordering, Welcome delivery, and a mailbox per device with WebSocket push
//! and HTTP fetch + ack. The contract is `docs/spec/delivery-api.md`.
//!
//! # Guarantees
//! - **Ciphertext only.** The service stores and relays encoded envelopes,
//!   chain announcements, MLS commits and Welcomes; it never holds a key that
//!   opens them.
//! - **Durable before acknowledged.** An item is answered `Accepted` (or a
//!   commit 200) only after the SQLite transaction that stores it and its
//!   mailbox rows has been committed and fsynced (WAL, `synchronous=FULL`).
//!   Submissions are grouped so that one fsync serves many
//!   ([`delivery::writer`]). On PostgreSQL ([`ServerConfig::database`],
//!   several servers on one database) the answer follows the batch's
//!   `COMMIT` there.
//! - **One commit per epoch.** For each conversation the first commit for the
//!   current epoch wins; any other gets `409 stale_epoch` with the current
//!   epoch.
//! - **No gaps in push.** A connected device receives every item stored for
//!   it, in seq order, first the backlog and then live.
//! - **Retention.** An item is deleted once every recipient device acked it,
//!   or when its TTL (default 30 days, on the injected clock) has passed.
//! - **Bounded per client.** Storage held per mailbox and per sender,
//!   registrations and reports per network prefix and service-wide, reports
//!   per account, and open WebSockets per account and in total are limited
//!   ([`Limits`]); each limit refuses with its own `429` code. Idle
//!   WebSockets are pinged and closed when they stop answering.
//! - **TLS when configured.** With [`ServerConfig::tls`] the service speaks
//!   only HTTPS and WSS (rustls, `ring`).
//! - **Hostile input.** Every malformed request is answered with a JSON
//!   error and a 4xx status; no input reachable from the network panics the
//!   service (clippy denies `unwrap`, `expect`, `panic` and indexing).
//!
//! # Not guaranteed
//! - Membership is routing information. The service does not parse MLS, so
//!   it cannot check that a commit matches its member list; clients check
//!   every sender against the MLS roster.
//! - Delivery tags and suspension are left to a [`DeliveryPolicy`]; the
//!   default [`OpenPolicy`] admits everyone and issues no tags.
//!
//! # Starting it
//! ```no_run
//! # async fn run() -> Result<(), custos_server::DeliveryServiceError> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let config = custos_server::ServerConfig::new("/tmp/custos-data");
//! let stop = async { let _ = tokio::signal::ctrl_c().await; };
//! custos_server::serve(listener, config, custos_clock::system(), stop).await
//! # }
//! ```
#![forbid(unsafe_code)]

pub mod abuse;
mod config;
pub mod db;
pub mod delivery;
pub mod directory;
mod error;
mod health;
pub mod lawful;
mod limits;
mod pg_service;
pub mod refusal;
mod routes;
mod state;
pub mod store;

use std::future::Future;
use std::sync::Arc;

use custos_clock::SharedClock;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use abuse::franking::{FrankingPolicy, Suspension};
pub use abuse::policy::{AdmitRefusal, DeliveryPolicy, OpenPolicy};
pub use abuse::{franking, franking_log, matching, moderation, policy};
pub use config::{DAY, DEFAULT_DAY_GRACE, Limits, Quota, RateLimit, ServerConfig, WindowLimit};
pub use delivery::auth::{
    AUTH_CHALLENGE_LABEL, CHALLENGE_TTL_MS, SESSION_TTL_MS, challenge_message,
};
pub use error::{DeliveryServiceError, HttpRefusal};

/// Runs the delivery service on `listener` until `shutdown` completes.
///
/// Opens (or creates) the database in `config.data_dir`, taking an exclusive
/// lock on it, then serves `docs/spec/delivery-api.md`. Time (challenge,
/// session and item expiry, the day check on chains) comes only from
/// `clock`.
///
/// When `shutdown` completes, the service stops accepting connections,
/// closes WebSockets, answers what is queued, commits the last batch, and
/// returns. If the returned future is dropped instead (the task aborted),
/// the same stop is signalled; the last batch still commits or not at all,
/// and the directory lock is released when the writer has finished.
pub async fn serve(
    listener: TcpListener,
    config: ServerConfig,
    clock: SharedClock,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DeliveryServiceError> {
    if let Some(url) = config.database.clone() {
        return pg_service::serve(listener, config, url, clock, shutdown).await;
    }
    let db = db::open(&config.data_dir).await?;
    let blob_files = delivery::blob_files::BlobFiles::open(&config.data_dir).map_err(|source| {
        DeliveryServiceError::DataDir {
            path: config.data_dir.join("blobs"),
            source,
        }
    })?;
    let orphans = blob_files.remove_orphans(&db.pool).await?;
    if orphans > 0 {
        tracing::info!(files = orphans, "blob store: unreferenced bodies deleted");
    }
    let tls = config.tls.clone();
    if let Some(franking) = &config.franking {
        abuse::moderation::load_suspensions(
            &store::sqlite::SqliteStore::new(db.pool.clone()),
            franking,
        )
        .await?;
        if let Some(log) = &config.franking_log {
            tokio::spawn(abuse::franking_log::maintain(
                franking.clone(),
                log.clone(),
                config.data_dir.clone(),
                std::time::Duration::from_secs(5),
            ));
        }
    }
    if let (true, Some(m), Some(log)) = (
        config.publish_matching,
        config.matching.clone(),
        config.franking_log.clone(),
    ) {
        tokio::spawn(async move {
            while let Err(e) = abuse::matching::publish(&m, &log).await {
                tracing::warn!(%e, "hash list not yet proven in the log; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
        });
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let _stop_on_drop = StopOnDrop(stop_tx.clone());
    let hub = Arc::new(delivery::mailbox::Hub::default());
    let (writer, writer_task) = delivery::writer::spawn(
        db.writer,
        db.lock,
        db.wal,
        hub.clone(),
        config.policy.clone(),
        &config.limits,
        stop_rx.clone(),
    )
    .await?;
    let sweeper = delivery::retention::spawn_sweeper(
        writer.clone(),
        blob_files.clone(),
        clock.clone(),
        config.sweep_interval,
        stop_rx.clone(),
    );
    if let Some(log) = &config.franking_log {
        lawful::recover::rebuild_at_start(
            log.clone(),
            Arc::new(store::sqlite::SqliteStore::new(db.pool.clone())),
            writer.clone(),
            clock.clone(),
        )
        .await;
    }
    let directory = match &config.key_directory {
        Some(kd) => {
            let svc = directory::DirectoryService::open(db.pool.clone(), db.keydir.clone(), kd)
                .await
                .map_err(|e| DeliveryServiceError::KeyDirectory(e.to_string()))?;
            if let Some(log) = &config.franking_log {
                tokio::spawn(directory::run_publisher(
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
    let vouchers = abuse::matching::start(
        &config,
        Arc::new(store::sqlite::SqliteStore::new(db.pool.clone())),
        Arc::new(store::sqlite::SqliteStore::new(db.voucher_pool.clone())),
        &clock,
        &stop_rx,
    );
    let state = Arc::new(state::Inner {
        directory,
        store: Arc::new(
            store::sqlite::SqliteStore::new(db.pool.clone()).with_blob_files(blob_files.clone()),
        ),
        pg: None,
        vouchers,
        pool: db.pool.clone(),
        clock,
        ip_limiter: limits::RateLimiter::new(config.limits.ip_rate),
        account_limiter: limits::RateLimiter::new(config.limits.account_rate),
        sessions: Default::default(),
        guards: limits::Guards::new(&config.limits),
        challenges: delivery::challenge::Challenges::new(config.limits.max_challenges),
        config,
        writer,
        hub,
        shutdown: stop_rx,
    });
    let app = routes::router(state);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "delivery service listening");
    }
    let served = serve_http(listener, app, tls, stop_tx.clone(), shutdown).await;
    let _ = stop_tx.send(true);
    let _ = sweeper.await;
    let _ = writer_task.await;
    db.voucher_pool.close().await;
    db.keydir.close().await;
    db.pool.close().await;
    served?;
    Ok(())
}

/// Serves `app` on `listener` (over TLS when configured) until `shutdown`
/// completes, then signals stop on `stop_tx`.
async fn serve_http(
    listener: TcpListener,
    app: axum::Router,
    tls: Option<Arc<custos_http::tls::rustls::ServerConfig>>,
    stop_tx: Arc<watch::Sender<bool>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let signal = async move {
        shutdown.await;
        tracing::info!("delivery service stopping");
        let _ = stop_tx.send(true);
    };
    let make = app.into_make_service_with_connect_info::<custos_http::tls::PeerAddr>();
    match tls {
        Some(tls) => {
            let listener = custos_http::tls::TlsListener::new(listener, tls)?;
            axum::serve(listener, make)
                .with_graceful_shutdown(signal)
                .await
        }
        None => {
            axum::serve(listener, make)
                .with_graceful_shutdown(signal)
                .await
        }
    }
}

/// Signals stop when `serve`'s future is dropped (aborted).
struct StopOnDrop(Arc<watch::Sender<bool>>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(true);
    }
}
