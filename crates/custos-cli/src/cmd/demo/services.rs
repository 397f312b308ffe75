//! The demo's services on loopback: a transparency log with two witnesses
//! (quorum 2) and a manifest naming them, and the delivery service, whose
//! franking key the provider publishes in the log.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::{Demo, Narrator};

/// A transparency log with two witnesses (quorum 2) on loopback, and a
/// manifest naming them and the provider's statement key.
pub(super) struct DemoLog {
    pub(super) url: String,
    pub(super) manifest: custos_wire::manifest::Manifest,
    pub(super) provider: ed25519_dalek::SigningKey,
    handle: custos_log_server::LogHandle,
}

/// The delivery service, running until [`Demo::shutdown`].
pub(super) struct DemoServer {
    pub(super) url: String,
    pub(super) data: std::path::PathBuf,
    pub(super) franking: Arc<custos_server::FrankingPolicy>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), custos_server::DeliveryServiceError>>,
}

/// Step "transparency log": the log, two witnesses and the manifest
/// (written to `manifest.toml`, what `custos moderate verify-package
/// --manifest` and `custos audit` take).
pub(super) async fn transparency_log(n: &mut Narrator, dir: &Path) -> Result<DemoLog> {
    use custos_tlog::{ALG_COSIGNATURE_V1, ALG_ED25519, NamedKey};
    use custos_wire::manifest::{Manifest, Participant, Policy, Role};
    let participant =
        |name: &str, role: Role, key: [u8; 32], endpoint: Option<String>| Participant {
            name: name.into(),
            role,
            jurisdiction: "EU".into(),
            endpoint,
            public_key: hex::encode(key),
        };
    let log_key = NamedKey::generate("log.demo.custos", ALG_ED25519)?;
    let provider = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    let mut ps = vec![
        participant(
            log_key.name(),
            Role::Log,
            log_key.verifying_key().to_bytes(),
            None,
        ),
        participant(
            "provider.demo.custos",
            Role::Provider,
            provider.verifying_key().to_bytes(),
            None,
        ),
    ];
    for name in ["witness-1.demo.custos", "witness-2.demo.custos"] {
        let key = NamedKey::generate(name, ALG_COSIGNATURE_V1)?;
        let public = key.verifying_key().to_bytes();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = custos_witness_server::spawn_witness(
            listener,
            custos_witness_server::WitnessConfig {
                data: dir.join(name),
                key,
                logs: vec![(log_key.name().to_owned(), log_key.verifying_key())],
                clock: custos_clock::system(),
            },
        )
        .await?;
        ps.push(participant(
            name,
            Role::Witness,
            public,
            Some(format!("http://{addr}")),
        ));
    }
    let manifest = Manifest::new(2, 1, Policy::default(), ps)?;
    std::fs::write(dir.join("manifest.toml"), manifest.to_toml()?)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let handle = custos_log_server::spawn_log(
        listener,
        custos_log_server::LogConfig {
            data: dir.join("log"),
            signed_size: dir.join("log.signed-size"),
            key: log_key,
            manifest: manifest.clone(),
            clock: custos_clock::system(),
            max_batch: 256,
        },
    )
    .await?;
    let log = DemoLog {
        url: format!("http://{}", handle.addr),
        manifest,
        provider,
        handle,
    };
    n.step(
        "transparency log",
        true,
        format!(
            "log {} on {} with two witnesses (quorum 2)",
            log.manifest.log().map(|l| l.name.as_str()).unwrap_or("?"),
            log.url
        ),
    )?;
    Ok(log)
}

/// Step "delivery service": the server on SQLite, publishing its franking
/// key in the log with the provider's statement key.
pub(super) async fn delivery_service(
    n: &mut Narrator,
    dir: &Path,
    log: &DemoLog,
    clock: &custos_clock::SharedClock,
) -> Result<DemoServer> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let data = dir.join("server");
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let franking = Arc::new(custos_server::FrankingPolicy::open(&data, clock.clone())?);
    let task = tokio::spawn(custos_server::serve(
        listener,
        custos_server::ServerConfig::new(data.clone())
            .with_franking(franking.clone())
            .with_franking_log(custos_server::franking_log::FrankingLogConfig {
                log_url: log.url.clone(),
                manifest: log.manifest.clone(),
                statement_key: log.provider.clone(),
                witness_timeout: Duration::from_secs(20),
            }),
        clock.clone(),
        async {
            let _ = stop_rx.await;
        },
    ));
    n.step(
        "delivery service",
        true,
        format!("listening on {url}, SQLite in WAL mode"),
    )?;
    Ok(DemoServer {
        url,
        data,
        franking,
        stop,
        task,
    })
}

impl Demo<'_> {
    /// Step "franking key in the log": the provider's statement for its
    /// franking key is in a checkpoint cosigned by both witnesses.
    pub(super) async fn franking_key_logged(&mut self) -> Result<()> {
        let franking = &self.server.franking;
        let started = Instant::now();
        let proof = loop {
            if let custos_verify::package::FrankingKeyLogProof::Logged(p) = franking.log_proof() {
                break Some(p);
            }
            if started.elapsed() > Duration::from_secs(30) {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let policy = custos_tlog::TrustPolicy::from_manifest(&self.log.manifest)?;
        let logged = proof.as_ref().map(|p| p.verify(&policy)).transpose()?;
        self.n.step(
            "franking key in the log",
            logged
                .as_ref()
                .is_some_and(|k| k.public_key == franking.public_key()),
            match &logged {
                Some(k) => format!(
                    "the provider signed a provider_franking_key statement for key {}...; it is \
                     entry {} of a checkpoint of size {} cosigned by {}",
                    &hex::encode(k.public_key)[..16],
                    k.index,
                    k.tree_size,
                    k.witnesses.join(" and ")
                ),
                None => "the key was not logged within 30 s".into(),
            },
        )
    }

    /// Stops the delivery service and the log.
    pub(super) async fn shutdown(self) -> Result<()> {
        let _ = self.server.stop.send(());
        self.server.task.await??;
        self.log.handle.abort();
        Ok(())
    }
}
