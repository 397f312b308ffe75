//! The custodian service: HTTP API, DKG over HTTP, share store and the
//! scheduler that generates and erases day keys.
//!
//! [`spawn_custodian`] binds nothing itself: it serves on the listener it is
//! given, so tests, `custos up` and `custos custodian serve` start it the
//! same way. Time comes only from the injected [`SharedClock`]; the
//! scheduler wakes every `tick` (and when a peer starts a day's DKG),
//! generates every missing day from today to today + `days_ahead`, and
//! erases every day whose end plus the manifest's grace has passed. A
//! third task reconciles the release state with the log at start and
//! publishes `WarrantUnsealing` for warrants whose embargo ended.

mod http;
mod scheduler;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use custos_clock::SharedClock;
use custos_wire::manifest::{Manifest, Role};

use crate::keys::CustodianKey;
use crate::net::inbox::Inbox;
use crate::release::{
    ReleaseRefusal, Releaser, ReleaserConfig, ShareSource, ShareSourceError, ShareStatus,
};
use crate::store::{ShareLookup, ShareStore, StoreError};

pub use http::ApiError;

/// Timing of the DKG and the scheduler (real time, not the injected clock:
/// these bound network waits, not calendar days).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long each DKG phase waits for missing messages.
    pub phase_timeout: Duration,
    /// Unused: a DKG now needs every custodian
    /// (`docs/design/0010-dkg-without-revealed-shares.md`). Kept so that
    /// existing configurations still build.
    pub peer_wait: Duration,
    /// How often the scheduler looks for work.
    pub tick: Duration,
    /// How long a release waits for its `KeyRelease` to be witnessed.
    pub witness_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            phase_timeout: Duration::from_secs(10),
            peer_wait: Duration::from_secs(60),
            tick: Duration::from_secs(5),
            witness_timeout: Duration::from_secs(30),
        }
    }
}

/// Everything a custodian service needs.
#[derive(Debug)]
pub struct CustodianConfig {
    /// Data directory (shares, day keys, state).
    pub data: PathBuf,
    /// This custodian's keys; its public key must be a custodian of the manifest.
    pub key: CustodianKey,
    /// The deployment manifest (custodians, endpoints, threshold, grace, log).
    pub manifest: Manifest,
    /// The one clock.
    pub clock: SharedClock,
    /// How many days after today to generate ahead (default 7).
    pub days_ahead: u32,
    /// DKG and scheduler timing.
    pub timing: Timing,
    /// Warrants per authority per calendar month that this custodian serves
    /// (`release::DEFAULT_MONTHLY_QUOTA` unless the operator says otherwise).
    pub monthly_quota: u32,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration does not fit the manifest; the message says how.
    #[error("custodian configuration: {0}")]
    Config(String),
    /// The share store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The listener could not be used.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
    /// The release path could not be opened.
    #[error("release path: {0}")]
    Release(#[from] ReleaseRefusal),
}

/// A running custodian service.
#[derive(Debug)]
pub struct CustodianHandle {
    /// The address it serves on.
    pub addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
    scheduler: tokio::task::JoinHandle<()>,
    unsealer: tokio::task::JoinHandle<()>,
}

impl CustodianHandle {
    /// Stops the service (HTTP and scheduler). Its state stays on disk.
    pub fn abort(&self) {
        self.server.abort();
        self.scheduler.abort();
        self.unsealer.abort();
    }
}

impl Drop for CustodianHandle {
    fn drop(&mut self) {
        self.abort();
    }
}

/// State shared by the HTTP handlers and the scheduler.
pub(crate) struct Shared {
    pub key: CustodianKey,
    pub manifest: Manifest,
    pub clock: SharedClock,
    pub store: ShareStore,
    pub inbox: Inbox,
    pub days_ahead: u32,
    pub timing: Timing,
    pub threshold: u16,
    /// Every custodian's Ed25519 key and endpoint.
    pub custodians: HashMap<[u8; 32], Option<String>>,
    /// HPKE keys learnt from the log.
    pub hpke: RwLock<HashMap<[u8; 32], [u8; 32]>>,
    pub wake: tokio::sync::mpsc::Sender<u32>,
    pub http: reqwest::Client,
}

/// Starts a custodian service on `listener`.
pub async fn spawn_custodian(
    listener: tokio::net::TcpListener,
    config: CustodianConfig,
) -> Result<CustodianHandle, StartError> {
    spawn_custodian_tls(listener, config, None).await
}

/// As [`spawn_custodian`], over TLS with `tls` when given (HTTPS only).
/// Calls to the other custodians and the log trust the process's CA
/// ([`custos_tlog::client::set_https_ca`]) or the built-in roots.
pub async fn spawn_custodian_tls(
    listener: tokio::net::TcpListener,
    config: CustodianConfig,
    tls: Option<Arc<custos_http::tls::rustls::ServerConfig>>,
) -> Result<CustodianHandle, StartError> {
    let addr = listener.local_addr()?;
    let me = config.key.public_key();
    let mine = config
        .manifest
        .participant_by_key(&me)
        .filter(|p| p.role == Role::Custodian)
        .ok_or_else(|| {
            StartError::Config(
                "this key is not a custodian of the manifest; add its public key (custos custodian keygen prints it)".into(),
            )
        })?;
    if mine.name != config.key.name() {
        return Err(StartError::Config(format!(
            "the key file names `{}` but the manifest names this key `{}`",
            config.key.name(),
            mine.name
        )));
    }
    let mut custodians = HashMap::new();
    for p in config.manifest.with_role(Role::Custodian) {
        let k = p
            .verifying_key()
            .map_err(|e| StartError::Config(e.to_string()))?;
        custodians.insert(k.to_bytes(), p.endpoint.clone());
    }
    let threshold = u16::try_from(config.manifest.custodian_threshold)
        .ok()
        .filter(|t| usize::from(*t) == custodians.len() / 2 + 1)
        .ok_or_else(|| {
            StartError::Config(format!(
                "custodian_threshold must be the honest majority floor(n/2)+1 = {} for {} custodians",
                custodians.len() / 2 + 1,
                custodians.len()
            ))
        })?;
    let view = crate::logview::LogView::new(&config.manifest)
        .map_err(|e| StartError::Config(e.to_string()))?;
    let log = view.client().clone();
    std::fs::create_dir_all(&config.data)?;
    let store = ShareStore::open(&config.data, &config.key)?;
    let (wake, wake_rx) = tokio::sync::mpsc::channel(64);
    let shared = Arc::new(Shared {
        key: config.key,
        manifest: config.manifest,
        clock: config.clock,
        store,
        inbox: Inbox::default(),
        days_ahead: config.days_ahead,
        timing: config.timing,
        threshold,
        custodians,
        hpke: RwLock::new(HashMap::new()),
        wake,
        http: custos_tlog::client::http_client_builder()
            .build()
            .map_err(|e| StartError::Config(format!("HTTP client: {e}")))?,
    });
    let releaser = Releaser::open(
        ReleaserConfig {
            manifest: shared.manifest.clone(),
            name: shared.key.name().to_owned(),
            signing_key: shared.key.signing_key(),
            log,
            data: config.data.join("release"),
            clock: shared.clock.clone(),
            monthly_quota: config.monthly_quota,
            witness_timeout: shared.timing.witness_timeout,
        },
        StoreShares(shared.clone()),
    )?;
    let releaser = Arc::new(releaser);
    let unsealer = tokio::spawn(release_upkeep(releaser.clone(), shared.timing.tick));
    let app = http::router(shared.clone()).merge(crate::release::http::router(releaser));
    let server = tokio::spawn(async move {
        if let Err(e) = custos_http::tls::serve(listener, tls, app).await {
            tracing::error!("custodian server stopped: {e}");
        }
    });
    let scheduler = tokio::spawn(scheduler::run(shared, view, wake_rx));
    Ok(CustodianHandle {
        addr,
        server,
        scheduler,
        unsealer,
    })
}

/// The release path's own upkeep: at start, re-read the whole log and
/// reconcile the release state with it (pending releases, quota, erasures);
/// then, every `tick`, unseal the warrants whose embargo ended.
async fn release_upkeep(releaser: Arc<Releaser<StoreShares>>, tick: Duration) {
    let mut recovered = false;
    loop {
        if !recovered {
            match releaser.recover().await {
                Ok(()) => recovered = true,
                Err(e) => tracing::warn!("release state not yet reconciled with the log: {e}"),
            }
        }
        if recovered && let Err(e) = releaser.unseal_due().await {
            tracing::warn!("unsealing: {e}");
        }
        tokio::time::sleep(tick).await;
    }
}

/// The share store as the release path sees it. A day whose erasure has
/// begun answers `Erased` (the store records it before erasing the file).
struct StoreShares(Arc<Shared>);

impl ShareSource for StoreShares {
    fn share(
        &self,
        day: u32,
    ) -> impl std::future::Future<Output = Result<ShareStatus, ShareSourceError>> + Send {
        let answer = match self.0.store.share(day) {
            Ok(ShareLookup::Live(share)) => Ok(ShareStatus::Live(share)),
            Ok(ShareLookup::Erased) => Ok(ShareStatus::Erased),
            Ok(ShareLookup::Unknown) => Ok(ShareStatus::Unknown),
            Err(e) => Err(ShareSourceError(e.to_string())),
        };
        std::future::ready(answer)
    }
}
