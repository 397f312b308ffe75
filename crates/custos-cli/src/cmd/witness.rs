//! `custos witness`: key generation and the C2SP tlog-witness server.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use custos_tlog::{ALG_COSIGNATURE_V1, ALG_ED25519, NamedKey};
use custos_witness_server::WitnessConfig;
use ed25519_dalek::VerifyingKey;

/// `custos witness` subcommands.
#[derive(Debug, Subcommand)]
pub enum WitnessCommand {
    /// Generate a witness cosignature key; prints the public key for the manifest.
    Keygen {
        /// Witness name (key name), e.g. `witness-1.custos.example`.
        #[arg(long)]
        name: String,
        /// Where to write the private key (mode 0600, never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Serve a witness.
    Serve {
        /// Data directory (created if missing).
        #[arg(long)]
        data: PathBuf,
        /// Address to listen on.
        #[arg(long)]
        listen: String,
        /// TLS certificate and key.
        #[command(flatten)]
        tls: super::server::TlsArgs,
        /// The witness's private key file (from `custos witness keygen`).
        #[arg(long)]
        key: PathBuf,
        /// A log to witness, `ORIGIN=PUBKEY`; PUBKEY is the log's vkey or 64 hex digits. Repeatable.
        #[arg(long = "log", required = true)]
        logs: Vec<String>,
    },
}

/// Runs a `custos witness` subcommand.
pub fn run(cmd: WitnessCommand) -> anyhow::Result<()> {
    match cmd {
        WitnessCommand::Keygen { name, out } => super::log::keygen(&name, &out, ALG_COSIGNATURE_V1),
        WitnessCommand::Serve {
            data,
            listen,
            tls,
            key,
            logs,
        } => {
            let tls_config = tls.load()?;
            let key = NamedKey::read_file(&key, ALG_COSIGNATURE_V1)?;
            let logs = logs
                .iter()
                .map(|s| parse_log(s))
                .collect::<anyhow::Result<Vec<_>>>()?;
            super::init_tracing();
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind(&listen)
                    .await
                    .with_context(|| format!("cannot listen on {listen}"))?;
                let name = key.name().to_owned();
                let addr = custos_witness_server::start_witness_tls(
                    listener,
                    WitnessConfig {
                        data,
                        key,
                        logs,
                        clock: custos_clock::system(),
                    },
                    tls_config,
                )
                .await?
                .addr;
                println!(
                    "custos witness {name} listening on {}://{addr}",
                    tls.scheme()
                );
                tokio::signal::ctrl_c().await?;
                Ok(())
            })
        }
    }
}

fn parse_log(arg: &str) -> anyhow::Result<(String, VerifyingKey)> {
    let Some((origin, key)) = arg.split_once('=') else {
        bail!("--log takes ORIGIN=PUBKEY, got `{arg}`");
    };
    if key.contains('+') {
        let (name, vk) = custos_tlog::keys::parse_vkey(key, ALG_ED25519)?;
        if name != origin {
            bail!("the vkey is for `{name}`, not `{origin}`");
        }
        return Ok((origin.to_owned(), vk));
    }
    let raw: [u8; 32] = hex::decode(key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .context("PUBKEY must be a vkey or 64 hex digits")?;
    Ok((origin.to_owned(), VerifyingKey::from_bytes(&raw)?))
}
