//! The public transparency dashboard (`custos audit serve`): a service that
//! follows the transparency log continuously, checks it as `custos audit`
//! does, and publishes what the log proves as a JSON API (described by an
//! OpenAPI document) and a web page.
//!
//! # What the service guarantees
//! - Every checkpoint it adopts carries the log's signature and the witness
//!   quorum of the manifest, is consistent with the one it adopted before
//!   (a verified consistency proof from the log, and the same entries), and
//!   the entries it replayed hash to its root. Each entry is checked once
//!   ([`custos_tlog::audit::Replay`]: canonical form, author in the
//!   manifest, strict signature, role rule); a poll replays only the new
//!   entries.
//! - Any inconsistency (a rollback, a fork, entries that do not hash to the
//!   checkpoint) is kept for good and served in [`api::Status::inconsistency`];
//!   from then on the service stops following, and the page shows it in red.
//!
//! # What the page guarantees, and what it does not
//! The page trusts nobody's server, this one included: in the reader's
//! browser it verifies the checkpoint's log signature and witness
//! cosignatures against the manifest keys the API serves, the inclusion
//! proof and author signature of every lawful-access entry it is given,
//! recomputes the warrant figures from those entries and marks each figure
//! verified or not. It cannot see an entry the server leaves out of the
//! evidence without replaying the whole log (run `custos audit` for that),
//! and it trusts the manifest keys unless the reader compares the manifest
//! hash out of band. Figures it cannot recompute (day keys generated, the
//! provider's moderation figures) are marked as the server's word.
#![forbid(unsafe_code)]

pub mod api;
mod assets;
mod follower;
mod state;

use std::net::SocketAddr;
use std::time::Duration;

use custos_clock::SharedClock;
use custos_tlog::LogClient;
use custos_verify::figures::FigureOptions;
use custos_wire::manifest::Manifest;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use state::Shared;

/// Why the dashboard could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DashboardError {
    /// The log's URL or the manifest cannot be used.
    #[error("cannot follow the log: {0}")]
    Log(#[from] custos_tlog::ClientError),
    /// The manifest does not name a log and its witnesses.
    #[error("the manifest cannot verify checkpoints: {0}")]
    Manifest(String),
    /// The listener failed.
    #[error("cannot serve the dashboard: {0}")]
    Io(#[from] std::io::Error),
}

/// How the dashboard runs.
#[derive(Clone)]
pub struct DashboardConfig {
    /// Base URL of the log it follows.
    pub log_url: String,
    /// The deployment manifest whose keys it trusts.
    pub manifest: Manifest,
    /// Base URL of the delivery service whose moderation figures it shows
    /// (as the provider's word), if any.
    pub provider_url: Option<String>,
    /// The clock at which "overdue" is judged.
    pub clock: SharedClock,
    /// Time between two polls of the log's checkpoint.
    pub poll_interval: Duration,
    /// The auditor's choices (grace before an unsealing is overdue).
    pub options: FigureOptions,
    /// A file that keeps the last adopted checkpoint across restarts: a
    /// restarted dashboard then checks the log's checkpoint against it
    /// (rollback, fork, consistency proof) before adopting anything.
    /// Without it, a restarted dashboard trusts the first checkpoint it sees.
    pub state: Option<std::path::PathBuf>,
    /// Test door: changes the figures before they are served.
    #[cfg(feature = "test-hooks")]
    pub misreport: Option<fn(&mut custos_verify::figures::AuditFigures)>,
}

impl std::fmt::Debug for DashboardConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DashboardConfig")
            .field("log_url", &self.log_url)
            .field("provider_url", &self.provider_url)
            .field("poll_interval", &self.poll_interval)
            .finish_non_exhaustive()
    }
}

impl DashboardConfig {
    /// A configuration that follows `log_url` under `manifest`, polling
    /// every second on the system clock.
    pub fn new(log_url: &str, manifest: Manifest) -> Self {
        Self {
            log_url: log_url.to_owned(),
            manifest,
            provider_url: None,
            clock: custos_clock::system(),
            poll_interval: Duration::from_secs(1),
            options: FigureOptions::default(),
            state: None,
            #[cfg(feature = "test-hooks")]
            misreport: None,
        }
    }
}

/// A running dashboard. Dropping it stops the follower and the server.
#[derive(Debug)]
pub struct DashboardHandle {
    /// The address it serves on.
    pub addr: SocketAddr,
    /// What it serves (for tests and benchmarks).
    pub shared: Shared,
    follower: JoinHandle<()>,
    server: JoinHandle<()>,
}

impl DashboardHandle {
    /// The page's URL.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Drop for DashboardHandle {
    fn drop(&mut self) {
        self.follower.abort();
        self.server.abort();
    }
}

/// Starts following the log and serving on `listener`; returns at once
/// (the first figures appear after the first poll).
pub async fn spawn_dashboard(
    listener: TcpListener,
    config: DashboardConfig,
) -> Result<DashboardHandle, DashboardError> {
    let addr = listener.local_addr()?;
    let client = LogClient::new(&config.log_url)?;
    let shared = Shared::new(&config, client.clone())?;
    let follower = tokio::spawn(follower::run(client, config.clone(), shared.clone()));
    let app = api::router(shared.clone());
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!("the dashboard stopped serving: {e}");
        }
    });
    Ok(DashboardHandle {
        addr,
        shared,
        follower,
        server,
    })
}

/// Runs the dashboard until the process ends (`custos audit serve`).
pub async fn serve(listener: TcpListener, config: DashboardConfig) -> Result<(), DashboardError> {
    let handle = spawn_dashboard(listener, config).await?;
    tracing::info!("dashboard on {}", handle.url());
    std::future::pending::<()>().await;
    drop(handle);
    Ok(())
}
