//! The delivery service of a deployment: `custos server` on SQLite, with
//! the provider's franking key published in the log when asked.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use custos_clock::SharedClock;
use custos_server::{DeliveryServiceError, FrankingPolicy, ServerConfig};
use custos_wire::manifest::Manifest;
use tokio::net::TcpListener;

use crate::error::DeployError;
use crate::spec::ServerSpec;

/// A running delivery service. Dropping it leaves the task running until
/// the runtime ends; [`DeliveryService::stop`] stops it gracefully.
#[derive(Debug)]
pub struct DeliveryService {
    /// Its base URL.
    pub url: String,
    /// The address it listens on.
    pub addr: std::net::SocketAddr,
    /// Its data directory (SQLite database, franking key).
    pub data: PathBuf,
    /// The provider's franking policy (key and log proof).
    pub franking: Arc<FrankingPolicy>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), DeliveryServiceError>>,
}

/// Where the log is and who the provider is, for the franking statement.
pub(crate) struct FrankingLog<'a> {
    pub url: &'a str,
    pub manifest: &'a Manifest,
    pub provider: &'a ed25519_dalek::SigningKey,
}

impl DeliveryService {
    /// Starts the service on `listener` with its data in `data`.
    pub(crate) async fn start(
        listener: TcpListener,
        data: &Path,
        spec: ServerSpec,
        log: FrankingLog<'_>,
        clock: &SharedClock,
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
            config = config.with_franking_log(custos_server::franking_log::FrankingLogConfig {
                log_url: log.url.to_owned(),
                manifest: log.manifest.clone(),
                statement_key: log.provider.clone(),
                witness_timeout: Duration::from_secs(30),
            });
        }
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

impl crate::Deployment {
    /// Stops the delivery service gracefully. Its data stays in
    /// `DIR/server` ([`custos_server::db::DB_FILE`] and its WAL), where a
    /// test may replace it, e.g. with an older backup, before
    /// [`crate::Deployment::restart_server`].
    pub async fn stop_server(&mut self) -> Result<(), DeployError> {
        let server = self
            .server
            .take()
            .ok_or_else(|| DeployError::Usage("the delivery service does not run".into()))?;
        self.stopped_server = Some(server.addr);
        server.stop().await
    }

    /// Starts the delivery service stopped by [`crate::Deployment::stop_server`]
    /// again, on the same address (devices keep their URL), with its data
    /// folder as it is now.
    pub async fn restart_server(&mut self) -> Result<(), DeployError> {
        let (Some(spec), Some(addr)) = (self.spec.server, self.stopped_server.take()) else {
            return Err(DeployError::Usage("no delivery service was stopped".into()));
        };
        let listener = crate::bind(addr).await?;
        let service = DeliveryService::start(
            listener,
            &self.dir.join("server"),
            spec,
            FrankingLog {
                url: &self.log_url,
                manifest: &self.manifest,
                provider: self.keys.provider.signing_key(),
            },
            &self.spec.clock,
        )
        .await?;
        self.server = Some(service);
        Ok(())
    }

    /// Stops the log and the witnesses (for tests of what a party does
    /// while the log is unreachable); they do not start again.
    pub fn stop_log(&self) {
        self.stop_log_and_witnesses();
    }
}
