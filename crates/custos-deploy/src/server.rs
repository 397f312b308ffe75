//! The delivery service of a deployment: `custos server` on SQLite, with
//! the provider's franking key published in the log when asked.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use custos_clock::SharedClock;
use custos_server::franking_log::FrankingLogConfig;
use custos_server::{DeliveryServiceError, FrankingPolicy, ServerConfig};
use custos_wire::manifest::Manifest;
use tokio::net::TcpListener;

use crate::Deployment;
use crate::error::DeployError;
use crate::spec::{ServerBackend, ServerSpec};

/// A running delivery service. Dropping it leaves the task running until
/// the runtime ends; [`DeliveryService::stop`] stops it gracefully.
#[derive(Debug)]
pub struct DeliveryService {
    /// Its base URL.
    pub url: String,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its data directory (SQLite database, franking key).
    pub data: PathBuf,
    /// The provider's franking policy (key and log proof).
    pub franking: Arc<FrankingPolicy>,
    /// Known-content detection, when the deployment matches.
    pub matching: Option<Arc<custos_server::matching::MatchingService>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), DeliveryServiceError>>,
}

/// Where the log is and who the provider is, for the franking statement.
pub(crate) struct FrankingLog<'a> {
    pub url: &'a str,
    pub manifest: &'a Manifest,
    pub provider: &'a ed25519_dalek::SigningKey,
}

impl FrankingLog<'_> {
    /// How the service publishes its franking key in the log.
    fn config(&self) -> FrankingLogConfig {
        FrankingLogConfig {
            log_url: self.url.to_owned(),
            manifest: self.manifest.clone(),
            statement_key: self.provider.clone(),
            witness_timeout: Duration::from_secs(30),
        }
    }
}

impl DeliveryService {
    /// Starts the service on `listener` with its data in `data` (and, with
    /// `database`, its storage in that PostgreSQL database).
    #[allow(
        clippy::too_many_arguments,
        reason = "each part of the deployment the service is started from"
    )]
    pub(crate) async fn start(
        listener: TcpListener,
        data: &Path,
        spec: ServerSpec,
        log: FrankingLog<'_>,
        clock: &SharedClock,
        key_directory: Option<custos_server::directory::KeyDirectoryConfig>,
        matching: Option<custos_server::matching::MatchingService>,
        database: Option<String>,
    ) -> Result<Self, DeployError> {
        let addr = listener
            .local_addr()
            .map_err(DeployError::io("the service's address"))?;
        let url = format!("http://{addr}");
        std::fs::create_dir_all(data).map_err(DeployError::io("creating the service's data"))?;
        let franking = Arc::new(
            FrankingPolicy::open(data, clock.clone())
                .map_err(|e| DeployError::start("delivery service")(e.to_string()))?,
        );
        let mut config = ServerConfig::new(data).with_franking(franking.clone());
        config.day_grace = Duration::from_secs(u64::from(log.manifest.policy.day_grace_secs));
        if spec.franking_in_log {
            config = config.with_franking_log(log.config());
        }
        if let Some(kd) = key_directory {
            config = config.with_key_directory(kd);
        }
        if let Some(m) = matching {
            config = config.with_matching(m);
        }
        let matching = config.matching.clone();
        config.database = database;
        (spec.configure)(&mut config);
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(custos_server::serve(
            listener,
            config,
            clock.clone(),
            async {
                let _ = stop_rx.await;
            },
        ));
        let service = Self {
            url,
            addr,
            data: data.to_owned(),
            franking,
            matching,
            stop: Some(stop),
            task,
        };
        service.wait_healthy().await?;
        Ok(service)
    }

    async fn wait_healthy(&self) -> Result<(), DeployError> {
        let http = reqwest::Client::new();
        for _ in 0..1000 {
            if self.task.is_finished() {
                return Err(DeployError::start("delivery service")(
                    "the service stopped at once".into(),
                ));
            }
            if let Ok(r) = http.get(format!("{}/v1/health", self.url)).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(DeployError::Timeout {
            what: "the delivery service's health".into(),
            secs: 10,
        })
    }

    /// Stops the service gracefully and returns its exit result.
    pub async fn stop(mut self) -> Result<(), DeployError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(DeployError::start("delivery service")(e.to_string())),
            Err(e) => Err(DeployError::start("delivery service")(e.to_string())),
        }
    }
}

impl Deployment {
    /// Starts the delivery service of the spec on `addr` (for instance the
    /// address [`Deployment::stop_server`] returned), with its data in
    /// `DIR/server`.
    pub async fn start_server_on(&mut self, addr: SocketAddr) -> Result<(), DeployError> {
        let Some(spec) = self.spec.server else {
            return Err(no_service());
        };
        let listener = crate::bind(addr).await?;
        let (key_directory, matching) = self.service_parts()?;
        let database = self.database_url(spec)?;
        let service = DeliveryService::start(
            listener,
            &self.dir.join("server"),
            spec,
            self.franking_log(),
            &self.spec.clock,
            key_directory,
            matching,
            database,
        )
        .await?;
        let published = service.matching.clone().filter(|_| {
            self.spec.matching.as_ref().map(|m| m.fault)
                != Some(crate::matching::TableFault::Unlogged)
        });
        let franking = service.franking.clone();
        self.server = Some(service);
        if spec.franking_in_log {
            // Devices pin only a logged franking key: wait until the
            // service has its key in a witnessed checkpoint.
            self.wait("the franking key in the log", || async {
                (!matches!(
                    franking.log_proof(),
                    custos_verify::package::FrankingKeyLogProof::Pending
                ))
                .then_some(())
            })
            .await?;
        }
        if let Some(m) = published {
            // The provider's tooling logs the table's root and the policy;
            // devices refuse the table until then.
            custos_server::matching::publish(&m, &self.franking_log_config())
                .await
                .map_err(|e| DeployError::Log(e.to_string()))?;
        }
        Ok(())
    }

    /// The key directory and known-content detection every server of the
    /// deployment runs, when the deployment has them.
    fn service_parts(
        &self,
    ) -> Result<
        (
            Option<custos_server::directory::KeyDirectoryConfig>,
            Option<custos_server::matching::MatchingService>,
        ),
        DeployError,
    > {
        let key_directory = match (self.key_directory_vrf()?, self.spec.key_directory) {
            (Some(vrf), Some(interval)) => Some(custos_server::directory::KeyDirectoryConfig {
                interval,
                ..custos_server::directory::KeyDirectoryConfig::new(vrf)
            }),
            _ => None,
        };
        let matching = match (&self.matching, &self.manifest.matching) {
            (Some(k), Some(m)) => Some(k.service(m)?),
            _ => None,
        };
        Ok((key_directory, matching))
    }

    /// Makes the registered account `name` a moderator of the deployment's
    /// service, as the operator's `custos moderate add-moderator` does: in
    /// the server's moderators file on SQLite, in the table every server
    /// reads on PostgreSQL.
    pub async fn add_moderator(&self, name: &str) -> Result<(), DeployError> {
        let server = self.server.as_ref().ok_or_else(no_service)?;
        let added = match &self.postgres {
            Some(pg) => custos_server::moderation::add_moderator_on_postgres(&pg.url(), name).await,
            None => custos_server::moderation::add_moderator(&server.data, name).await,
        };
        added.map_err(|e| DeployError::Database(e.to_string()))
    }

    /// The database URL of a [`ServerBackend::Postgres`] spec, starting the
    /// deployment's cluster (in `DIR/postgres`) on first use.
    fn database_url(&mut self, spec: ServerSpec) -> Result<Option<String>, DeployError> {
        if spec.backend != ServerBackend::Postgres {
            return Ok(None);
        }
        if self.postgres.is_none() {
            self.postgres = crate::postgres::TestPostgres::start(&self.dir.join("postgres"))?;
        }
        match &self.postgres {
            Some(pg) => Ok(Some(pg.url())),
            None => Err(DeployError::Usage(
                "this deployment's server runs on PostgreSQL, which is not installed".into(),
            )),
        }
    }

    /// The PostgreSQL cluster of a [`ServerBackend::Postgres`] deployment
    /// (to stop, kill or restart it under the servers).
    pub fn postgres_mut(&mut self) -> Option<&mut crate::postgres::TestPostgres> {
        self.postgres.as_mut()
    }

    /// Starts one more delivery service on the deployment's PostgreSQL
    /// database, as a second `custos server` behind the same address would
    /// run: its own data folder (`DIR/server-N`) with a copy of the
    /// provider's franking key, so that its delivery tags verify like the
    /// first server's. The caller owns (and stops) it.
    ///
    /// # Errors
    /// When the deployment's server is not on PostgreSQL, or it fails to start.
    pub async fn start_another_server(&mut self, n: usize) -> Result<DeliveryService, DeployError> {
        let Some(spec) = self.spec.server else {
            return Err(no_service());
        };
        if spec.backend != ServerBackend::Postgres {
            return Err(DeployError::Usage(
                "more than one server needs ServerBackend::Postgres".into(),
            ));
        }
        let data = self.dir.join(format!("server-{n}"));
        std::fs::create_dir_all(&data).map_err(DeployError::io("creating the service's data"))?;
        // The provider's one franking key, and its proof in the log when the
        // first server has it (so this one does not log the key again).
        for file in [
            custos_server::franking::FRANKING_KEY_FILE,
            custos_server::franking_log::PROOF_FILE,
        ] {
            let from = self.dir.join("server").join(file);
            if from.exists() && !data.join(file).exists() {
                std::fs::copy(from, data.join(file))
                    .map_err(DeployError::io("copying the franking key"))?;
            }
        }
        let database = self.database_url(spec)?;
        let (key_directory, matching) = self.service_parts()?;
        let listener = crate::bind(crate::loopback_any()).await?;
        let service = DeliveryService::start(
            listener,
            &data,
            spec,
            self.franking_log(),
            &self.spec.clock,
            key_directory,
            matching,
            database,
        )
        .await?;
        if spec.franking_in_log {
            let franking = service.franking.clone();
            self.wait("the second server's franking key in the log", || async {
                (!matches!(
                    franking.log_proof(),
                    custos_verify::package::FrankingKeyLogProof::Pending
                ))
                .then_some(())
            })
            .await?;
        }
        Ok(service)
    }

    /// Registers account `name` as [`Deployment::register`] does, its
    /// device talking to the server at `server_url` (another server of a
    /// PostgreSQL deployment).
    pub async fn register_on(
        &self,
        name: &str,
        server_url: &str,
    ) -> Result<custos_client::Device, DeployError> {
        custos_client::Device::register_pinned(
            &self.dir.join("users").join(name),
            server_url,
            name,
            self.spec.clock.clone(),
            self.pin()?,
        )
        .await
        .map_err(|e| DeployError::Device {
            name: name.to_owned(),
            reason: e.to_string(),
        })
    }

    /// Stops the delivery service gracefully; its data stays. Returns the
    /// address it listened on.
    pub async fn stop_server(&mut self) -> Result<SocketAddr, DeployError> {
        let old = self.server.take().ok_or_else(no_service)?;
        let addr = old.addr;
        old.stop().await?;
        Ok(addr)
    }

    /// Stops the delivery service gracefully and starts it again on the
    /// same address with the same data, as an operator restarting
    /// `custos server` would.
    pub async fn restart_server(&mut self) -> Result<(), DeployError> {
        let addr = self.stop_server().await?;
        self.start_server_on(addr).await
    }

    /// How the delivery service publishes its franking key: this log, this
    /// manifest, and the provider's statement key.
    pub fn franking_log_config(&self) -> FrankingLogConfig {
        self.franking_log().config()
    }

    fn franking_log(&self) -> FrankingLog<'_> {
        FrankingLog {
            url: &self.log_url,
            manifest: &self.manifest,
            provider: self.keys.provider.signing_key(),
        }
    }
}

pub(crate) fn no_service() -> DeployError {
    DeployError::Usage("this deployment has no delivery service".into())
}

impl Deployment {
    /// Stops the log and the witnesses (for tests of what a party does
    /// while the log is unreachable); they do not start again.
    pub fn stop_log(&self) {
        self.stop_log_and_witnesses();
    }
}
