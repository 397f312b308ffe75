//! A whole Custos deployment on loopback, the way DESIGN.md §1 lays out the
//! parties: a transparency log that publishes the manifest, witnesses that
//! cosign it, custodians that generate day keys by DKG and release shares
//! under logged warrants, the delivery service with its franking key in the
//! log, and devices that pin the manifest.
//!
//! `custos up` runs one persistently in a folder, `custos demo` runs one in
//! a temporary folder, and every crate's integration tests start one (with
//! a simulated clock where days must pass). There is one copy of this setup,
//! so the tests exercise the deployment users run.
//!
//! # Security meaning
//! One process holds every party's secret keys here ([`DeploymentKeys`]):
//! this is a test and demonstration deployment, never a production one.
//! Each service still checks everything it would check in production: they
//! talk over HTTP on loopback and trust only the manifest.
#![forbid(unsafe_code)]

mod custodians;
mod error;
mod keys;
mod lawful;
mod manifest;
pub mod matching;
pub mod mls_fixture;
mod names;
pub mod postgres;
pub mod proxy;
mod server;
mod service_db;
mod spec;
#[cfg(feature = "tls-fixture")]
pub mod tls_fixture;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use custos_client::Device;
use custos_client::pin::ManifestPin;
use custos_clock::SharedClock;
use custos_escrow::{DayKey, SecretShare};
use custos_log_server::{LogConfig, LogHandle};
use custos_tlog::{LogClient, NamedKey, TrustPolicy};
use custos_wire::manifest::Manifest;
use custos_wire::statement::{EscrowDayKey, SignedStatement, Statement};
use custos_witness_server::WitnessConfig;
use tokio::net::TcpListener;

pub use custodians::CustodianSlot;
pub use error::DeployError;
pub use keys::{DeploymentKeys, KeyPaths};
pub use names::Names;
pub use server::DeliveryService;
pub use spec::{
    CustodianMode, DeploymentSpec, ServerBackend, ServerSpec, TEST_BACKEND_VAR, loopback_timing,
};

/// The file that holds the manifest, in the deployment's folder.
pub const MANIFEST_FILE: &str = "manifest.toml";

/// A running deployment. Dropping it stops the log and the custodians; the
/// delivery service stops with [`Deployment::shutdown`] or with the runtime.
pub struct Deployment {
    dir: PathBuf,
    spec: DeploymentSpec,
    keys: DeploymentKeys,
    manifest: Manifest,
    log_handle: LogHandle,
    log_url: String,
    log: LogClient,
    log_proxy: Option<proxy::LogProxy>,
    witness_urls: Vec<String>,
    witnesses: Vec<custos_witness_server::WitnessHandle>,
    custodians: Vec<CustodianSlot>,
    server: Option<DeliveryService>,
    /// The further servers of a PostgreSQL deployment
    /// ([`DeploymentSpec::servers`]), on the same database.
    more_servers: Vec<DeliveryService>,
    /// Which server the next registered device talks to.
    next_server: std::sync::atomic::AtomicUsize,
    matching: Option<matching::MatchingKeys>,
    /// The PostgreSQL cluster of a [`ServerBackend::Postgres`] deployment.
    postgres: Option<postgres::TestPostgres>,
}

impl std::fmt::Debug for Deployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployment")
            .field("dir", &self.dir)
            .field("log_url", &self.log_url)
            .field("witness_urls", &self.witness_urls)
            .field("server", &self.server.as_ref().map(|s| &s.url))
            .finish_non_exhaustive()
    }
}

impl Deployment {
    /// Starts the deployment of `spec` in `dir`. A folder that already
    /// holds a deployment (its `manifest.toml` and `keys/`) is started
    /// again with its keys, addresses and data; otherwise keys are
    /// generated, services bind free loopback ports, and the manifest is
    /// written and published in the log.
    pub async fn start(dir: &Path, spec: DeploymentSpec) -> Result<Self, DeployError> {
        std::fs::create_dir_all(dir).map_err(DeployError::io("creating the deployment folder"))?;
        let names = Names::new(&spec.domain);
        let paths = KeyPaths::new(dir);
        let manifest_path = dir.join(MANIFEST_FILE);
        let existing = manifest_path.exists();
        if existing && spec.log_proxy {
            return Err(DeployError::Usage(
                "a deployment whose log is behind a proxy cannot be restarted from its folder"
                    .into(),
            ));
        }
        let mut proxy_listener = None;
        let matching_keys = spec
            .matching
            .as_ref()
            .map(|m| matching::MatchingKeys::load_or_make(dir, m))
            .transpose()?;
        let (keys, manifest, endpoints, listeners) = if existing {
            let (manifest, endpoints) = manifest::read(&manifest_path)?;
            let keys = DeploymentKeys::load(
                &paths,
                endpoints.witnesses.len(),
                endpoints.custodians.len(),
            )?;
            let listeners = Listeners::rebind(&endpoints).await?;
            (keys, manifest, endpoints, listeners)
        } else {
            let keys = DeploymentKeys::generate(&names, spec.witnesses, spec.custodians)?;
            keys.save(&paths)?;
            let listeners = Listeners::fresh(spec.witnesses, spec.custodians).await?;
            let endpoints = listeners.endpoints()?;
            // With a proxy, the manifest names it as the log's endpoint.
            let mut named = endpoints.clone();
            if spec.log_proxy {
                let l = bind(loopback_any()).await?;
                named.log = l
                    .local_addr()
                    .map_err(DeployError::io("the proxy's address"))?;
                proxy_listener = Some(l);
            }
            let mut manifest = manifest::build(&spec, &names, &keys, &named)?;
            if spec.key_directory.is_some() {
                let vrf = keydir_vrf(dir)?;
                manifest = manifest
                    .with_key_directory(custos_wire::manifest::KeyDirectorySection {
                        vrf_public_key: hex::encode(vrf.public_key()),
                    })
                    .map_err(|e| DeployError::Manifest(e.to_string()))?;
            }
            if let (Some(k), Some(m)) = (&matching_keys, &spec.matching) {
                manifest = manifest
                    .with_matching(k.section(m))
                    .map_err(|e| DeployError::Manifest(e.to_string()))?;
            }
            let text = manifest
                .to_toml()
                .map_err(|e| DeployError::Manifest(e.to_string()))?;
            custos_durable::write_atomic(&manifest_path, text.as_bytes())
                .map_err(DeployError::io("writing the manifest"))?;
            (keys, manifest, endpoints, listeners)
        };
        let Listeners {
            log: log_listener,
            witnesses: witness_listeners,
            custodians: custodian_listeners,
        } = listeners;

        let mut witness_urls = Vec::new();
        let mut witnesses = Vec::new();
        for (i, listener) in witness_listeners.into_iter().enumerate() {
            let key = copy_key(keys.witnesses.get(i), "witness")?;
            let name = key.name().to_owned();
            let witness = custos_witness_server::start_witness(
                listener,
                WitnessConfig {
                    data: dir.join(format!("witness-{}", i + 1)),
                    key,
                    logs: vec![(keys.log.name().to_owned(), keys.log.verifying_key())],
                    clock: spec.clock.clone(),
                },
            )
            .await
            .map_err(|e| DeployError::start(&name)(e.to_string()))?;
            witness_urls.push(format!("http://{}", witness.addr));
            witnesses.push(witness);
        }
        let log_handle = custos_log_server::spawn_log(
            log_listener,
            LogConfig {
                data: dir.join("log"),
                signed_size: custos_tlog::signed_size::signed_size_path(&paths.log()),
                key: copy_key(Some(&keys.log), "log")?,
                manifest: manifest.clone(),
                clock: spec.clock.clone(),
                max_batch: 256,
            },
        )
        .await
        .map_err(|e| DeployError::start("log")(e.to_string()))?;
        let log_url = format!("http://{}", endpoints.log);
        let log = LogClient::new(&log_url).map_err(|e| DeployError::Log(e.to_string()))?;
        let log_proxy = proxy_listener
            .map(|l| proxy::spawn_proxy_on(l, &log_url))
            .transpose()?;
        let mut deployment = Self {
            dir: dir.to_owned(),
            keys,
            manifest,
            log_handle,
            log_url,
            log,
            log_proxy,
            witness_urls,
            witnesses,
            custodians: Vec::new(),
            server: None,
            more_servers: Vec::new(),
            next_server: std::sync::atomic::AtomicUsize::new(0),
            spec,
            matching: matching_keys,
            postgres: None,
        };
        if !existing {
            let published = deployment
                .log
                .publish_manifest(deployment.keys.log.signing_key(), &deployment.manifest)
                .await
                .map_err(|e| DeployError::Log(e.to_string()))?;
            deployment.wait_witnessed(published.index + 1).await?;
        }
        deployment.custodians = custodian_listeners
            .into_iter()
            .enumerate()
            .map(|(i, l)| CustodianSlot::new(i, endpoints.custodians.get(i).copied(), l))
            .collect::<Result<_, _>>()?;
        deployment.start_custodians().await?;
        if let Some(server_spec) = deployment.spec.server {
            deployment
                .start_server_on(server_spec.listen.unwrap_or(loopback_any()))
                .await?;
            if server_spec.backend == ServerBackend::Postgres {
                for n in 2..=deployment.spec.servers {
                    let more = deployment.start_another_server(n).await?;
                    deployment.more_servers.push(more);
                }
            }
        }
        Ok(deployment)
    }

    /// The key directory's VRF secret (`DIR/keys/keydir-vrf.key`), if the
    /// deployment runs a key directory.
    pub fn key_directory_vrf(&self) -> Result<Option<custos_keydir::VrfSecret>, DeployError> {
        self.spec
            .key_directory
            .map(|_| keydir_vrf(&self.dir))
            .transpose()
    }

    /// The deployment's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifest every party trusts.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Where the manifest is written.
    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join(MANIFEST_FILE)
    }

    /// Every party's secret keys (one machine plays every party).
    pub fn keys(&self) -> &DeploymentKeys {
        &self.keys
    }

    /// Where the key files are.
    pub fn key_paths(&self) -> KeyPaths {
        KeyPaths::new(&self.dir)
    }

    /// The log's base URL.
    pub fn log_url(&self) -> &str {
        &self.log_url
    }

    /// A client of the log.
    pub fn log(&self) -> &LogClient {
        &self.log
    }

    /// The proxy the manifest names as the log's endpoint, if the spec
    /// asked for one ([`DeploymentSpec::with_log_proxy`]).
    pub fn log_proxy(&self) -> Option<&proxy::LogProxy> {
        self.log_proxy.as_ref()
    }

    /// The witnesses' base URLs.
    pub fn witness_urls(&self) -> &[String] {
        &self.witness_urls
    }

    /// The clock of every service.
    pub fn clock(&self) -> &SharedClock {
        &self.spec.clock
    }

    /// The delivery service, if it runs.
    pub fn server(&self) -> Option<&DeliveryService> {
        self.server.as_ref()
    }

    /// The delivery service's URL, or an error if it does not run.
    pub fn server_url(&self) -> Result<&str, DeployError> {
        self.server
            .as_ref()
            .map(|s| s.url.as_str())
            .ok_or_else(|| DeployError::Usage("this deployment has no delivery service".into()))
    }

    /// The checks a device, custodian or auditor applies to checkpoints.
    pub fn trust_policy(&self) -> Result<TrustPolicy, DeployError> {
        TrustPolicy::from_manifest(&self.manifest).map_err(|e| DeployError::Manifest(e.to_string()))
    }

    /// A device's pin of this deployment's manifest and log.
    pub fn pin(&self) -> Result<ManifestPin, DeployError> {
        let text = self
            .manifest
            .to_toml()
            .map_err(|e| DeployError::Manifest(e.to_string()))?;
        ManifestPin::from_toml(&self.log_url, &text)
            .map_err(|e| DeployError::Manifest(e.to_string()))
    }

    /// Registers account `name` with one device whose home is
    /// `DIR/users/NAME`, pinned to the manifest. With several servers
    /// ([`DeploymentSpec::servers`]), devices are spread across them in
    /// turn, so that a conversation's members talk to different servers.
    pub async fn register(&self, name: &str) -> Result<Device, DeployError> {
        self.register_on(name, self.next_server_url()?).await
    }

    /// The server the next device should talk to: the only one, or with
    /// several ([`DeploymentSpec::servers`]) each in turn, so that the
    /// members of a conversation are spread across servers.
    pub fn next_server_url(&self) -> Result<&str, DeployError> {
        let urls = self.server_urls();
        let turn = self
            .next_server
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        urls.get(turn % urls.len().max(1))
            .copied()
            .ok_or_else(server::no_service)
    }

    /// The base URLs of every running delivery server, the first one first.
    pub fn server_urls(&self) -> Vec<&str> {
        self.server
            .iter()
            .chain(&self.more_servers)
            .map(|s| s.url.as_str())
            .collect()
    }

    /// Waits until the log has a checkpoint of at least `size` entries with
    /// the witness quorum's cosignatures.
    pub async fn wait_witnessed(&self, size: u64) -> Result<u64, DeployError> {
        let policy = self.trust_policy()?;
        self.wait("a witnessed checkpoint", || async {
            let note = self.log.checkpoint().await.ok()?;
            let cp = policy.verify_checkpoint(&note).ok()?;
            (cp.size() >= size).then_some(cp.size())
        })
        .await
    }

    /// Waits until every day in `days` has a day key that `t` custodians
    /// published in a witnessed checkpoint: the keys a device accepts.
    pub async fn wait_day_keys(
        &self,
        days: std::ops::RangeInclusive<u32>,
    ) -> Result<std::collections::BTreeMap<u32, DayKey>, DeployError> {
        let policy = self.trust_policy()?;
        let days: Vec<u32> = days.collect();
        self.wait("day keys published by t custodians", || async {
            let note = self.log.checkpoint().await.ok()?;
            let cp = policy.verify_checkpoint(&note).ok()?;
            custos_authority::collect::day_keys_from_log(
                &self.manifest,
                &self.log,
                cp.size(),
                &days,
            )
            .await
            .ok()
        })
        .await
    }

    /// Deals day `day` for the custodians by a trusted dealer (tests and
    /// benchmarks of [`CustodianMode::KeysOnly`] deployments), and logs the
    /// day key signed by custodians `by`. Returns the key and every share.
    pub async fn publish_dealt_day(
        &self,
        day: u32,
        by: &[usize],
    ) -> Result<(DayKey, Vec<SecretShare>), DeployError> {
        let (key, shares) = custos_escrow::dangerous::trusted_deal(
            day,
            self.keys.custodians.len(),
            self.spec.threshold,
            &mut rand_core::OsRng,
        )
        .map_err(|e| DeployError::Usage(e.to_string()))?;
        self.publish_day_key(&key, by).await?;
        Ok((key, shares))
    }

    /// Logs `key` signed by custodians `by`, and waits until it is witnessed.
    pub async fn publish_day_key(&self, key: &DayKey, by: &[usize]) -> Result<(), DeployError> {
        let statement = Statement::EscrowDayKey(EscrowDayKey {
            day: key.day(),
            threshold: u8::try_from(key.threshold()).unwrap_or(u8::MAX),
            custodians: u8::try_from(key.custodians()).unwrap_or(u8::MAX),
            day_key: key.to_bytes(),
        });
        let mut signed = Vec::new();
        for &i in by {
            let custodian = self
                .keys
                .custodians
                .get(i)
                .ok_or_else(|| DeployError::Usage(format!("no custodian {i}")))?;
            signed.push(
                SignedStatement::sign(&statement, &custodian.signing_key())
                    .map_err(|e| DeployError::Log(e.to_string()))?,
            );
        }
        let submitted = self
            .log
            .submit_batch(&signed)
            .await
            .map_err(|e| DeployError::Log(e.to_string()))?;
        let last = submitted.iter().map(|s| s.index).max().unwrap_or(0);
        self.wait_witnessed(last + 1).await.map(|_| ())
    }

    /// Stops the delivery service gracefully, then the custodians and the log.
    pub async fn shutdown(mut self) -> Result<(), DeployError> {
        for server in std::mem::take(&mut self.more_servers) {
            server.stop().await?;
        }
        if let Some(server) = self.server.take() {
            server.stop().await?;
        }
        for c in &mut self.custodians {
            c.stop();
        }
        self.stop_log_and_witnesses();
        // Let the aborted tasks release their ports.
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(())
    }

    /// Polls `probe` until it answers, for at most the spec's patience.
    async fn wait<T, F, Fut>(&self, what: &str, probe: F) -> Result<T, DeployError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let started = Instant::now();
        loop {
            if let Some(v) = probe().await {
                return Ok(v);
            }
            if started.elapsed() > self.spec.patience {
                return Err(DeployError::Timeout {
                    what: what.into(),
                    secs: self.spec.patience.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Deployment {
    fn stop_log_and_witnesses(&self) {
        self.log_handle.abort();
        for w in &self.witnesses {
            w.abort();
        }
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        self.stop_log_and_witnesses();
    }
}

/// A second handle on a note key (services take keys by value).
fn copy_key(key: Option<&NamedKey>, what: &str) -> Result<NamedKey, DeployError> {
    let key = key.ok_or_else(|| DeployError::Usage(format!("no {what} key")))?;
    NamedKey::parse(&key.private_text()).map_err(|e| DeployError::key(key.name())(e.to_string()))
}

fn loopback_any() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Binds `addr`, retrying for a while if a previous run still holds it.
async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, DeployError> {
    let mut last = None;
    for _ in 0..50 {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(DeployError::io(format!("listening on {addr}"))(e)),
        }
    }
    Err(DeployError::io(format!("listening on {addr}"))(
        last.unwrap_or_else(|| std::io::Error::other("address in use")),
    ))
}

/// The listeners of the services the manifest names endpoints for.
struct Listeners {
    log: TcpListener,
    witnesses: Vec<TcpListener>,
    custodians: Vec<TcpListener>,
}

impl Listeners {
    async fn fresh(witnesses: usize, custodians: usize) -> Result<Self, DeployError> {
        let mut ws = Vec::new();
        for _ in 0..witnesses {
            ws.push(bind(loopback_any()).await?);
        }
        let mut cs = Vec::new();
        for _ in 0..custodians {
            cs.push(bind(loopback_any()).await?);
        }
        Ok(Self {
            log: bind(loopback_any()).await?,
            witnesses: ws,
            custodians: cs,
        })
    }

    async fn rebind(endpoints: &manifest::Endpoints) -> Result<Self, DeployError> {
        let mut ws = Vec::new();
        for a in &endpoints.witnesses {
            ws.push(bind(*a).await?);
        }
        let mut cs = Vec::new();
        for a in &endpoints.custodians {
            cs.push(bind(*a).await?);
        }
        Ok(Self {
            log: bind(endpoints.log).await?,
            witnesses: ws,
            custodians: cs,
        })
    }

    fn endpoints(&self) -> Result<manifest::Endpoints, DeployError> {
        let addr = |l: &TcpListener| {
            l.local_addr()
                .map_err(DeployError::io("a listener's address"))
        };
        Ok(manifest::Endpoints {
            log: addr(&self.log)?,
            witnesses: self.witnesses.iter().map(addr).collect::<Result<_, _>>()?,
            custodians: self.custodians.iter().map(addr).collect::<Result<_, _>>()?,
        })
    }
}

/// Loads the key directory's VRF secret from `DIR/keys/keydir-vrf.key`,
/// creating it (mode 0600, durable) the first time.
fn keydir_vrf(dir: &Path) -> Result<custos_keydir::VrfSecret, DeployError> {
    let path = dir.join("keys").join("keydir-vrf.key");
    if !path.exists() {
        let fresh = custos_keydir::VrfSecret::generate();
        std::fs::create_dir_all(dir.join("keys"))
            .map_err(DeployError::io("creating the keys folder"))?;
        custos_durable::write_new(&path, fresh.expose())
            .map_err(DeployError::io("writing the key directory's VRF key"))?;
    }
    let bytes = std::fs::read(&path).map_err(DeployError::io("reading the VRF key"))?;
    let seed: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| DeployError::Manifest("the VRF key file must hold 32 bytes".into()))?;
    Ok(custos_keydir::VrfSecret::from_bytes(seed))
}
