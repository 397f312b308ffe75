//! `custos custodian`: key generation and the custodian service.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use custos_custodian::{CustodianConfig, CustodianKey, Timing, spawn_custodian_tls};

/// `custos custodian` subcommands.
#[derive(Debug, Subcommand)]
pub enum CustodianCommand {
    /// Generate a custodian's keys (Ed25519 signing key for the manifest,
    /// X25519 HPKE key for the DKG, storage key for shares at rest); prints
    /// the public keys.
    Keygen {
        /// The custodian's name, as it will appear in the manifest.
        #[arg(long)]
        name: String,
        /// Where to write the key file (created with mode 0600, never overwritten).
        #[arg(long)]
        out: PathBuf,
        /// Print the public keys as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Serve as a custodian: DKG with the manifest's other custodians, day
    /// keys published in the log, shares kept encrypted and erased on time.
    Serve {
        /// Data directory (created if missing).
        #[arg(long, env = "CUSTOS_DATA")]
        data: PathBuf,
        /// Address to listen on, e.g. `127.0.0.1:7300`; must match the
        /// custodian's endpoint in the manifest.
        #[arg(long, env = "CUSTOS_LISTEN")]
        listen: String,
        /// Deployment manifest.
        #[arg(long)]
        manifest: PathBuf,
        /// The key file from `custos custodian keygen`.
        #[arg(long)]
        key: PathBuf,
        /// Days after today whose keys are generated in advance.
        #[arg(long, default_value_t = 7)]
        days_ahead: u32,
        /// Warrants per authority per calendar month served by this custodian.
        #[arg(long, default_value_t = custos_custodian::release::DEFAULT_MONTHLY_QUOTA)]
        monthly_quota: u32,
        /// TLS certificate and key.
        #[command(flatten)]
        tls: super::server::TlsArgs,
    },
}

/// Runs a `custos custodian` subcommand.
pub fn run(cmd: CustodianCommand) -> anyhow::Result<()> {
    match cmd {
        CustodianCommand::Keygen { name, out, json } => {
            let key = CustodianKey::generate(&name)?;
            key.save(&out)
                .context("choose a path that does not exist yet")?;
            let public = hex::encode(key.public_key());
            let hpke = hex::encode(key.hpke_public_key());
            if json {
                println!(
                    "{}",
                    serde_json::json!({"name": name, "public_key": public, "hpke_public_key": hpke})
                );
            } else {
                println!("public_key: {public}");
                println!("hpke_public_key: {hpke}");
            }
            Ok(())
        }
        CustodianCommand::Serve {
            data,
            listen,
            manifest,
            key,
            days_ahead,
            monthly_quota,
            tls,
        } => {
            let tls_config = tls.load()?;
            let key = CustodianKey::load(&key)?;
            let manifest = super::log::read_manifest(&manifest)?;
            super::init_tracing();
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind(&listen)
                    .await
                    .with_context(|| format!("cannot listen on {listen}"))?;
                let name = key.name().to_owned();
                let handle = spawn_custodian_tls(
                    listener,
                    CustodianConfig {
                        data,
                        key,
                        manifest,
                        clock: custos_clock::system(),
                        days_ahead,
                        timing: Timing::default(),
                        monthly_quota,
                    },
                    tls_config,
                )
                .await?;
                println!(
                    "custos custodian {name} listening on {}://{}",
                    tls.scheme(),
                    handle.addr
                );
                tokio::signal::ctrl_c().await?;
                handle.abort();
                Ok(())
            })
        }
    }
}
