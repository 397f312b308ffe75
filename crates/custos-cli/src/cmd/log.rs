//! `custos log`: key generation and the transparency log server.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use custos_log_server::LogConfig;
use custos_tlog::{ALG_ED25519, NamedKey};
use custos_wire::manifest::Manifest;

/// `custos log` subcommands.
#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Generate a log checkpoint key; prints the public key for the manifest.
    Keygen {
        /// Log origin (key name), e.g. `log.custos.example`.
        #[arg(long)]
        name: String,
        /// Where to write the private key (created with mode 0600, never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Serve the transparency log.
    Serve {
        /// Data directory (created if missing).
        #[arg(long)]
        data: PathBuf,
        /// Address to listen on, e.g. `127.0.0.1:7000` (port 0 picks one).
        #[arg(long)]
        listen: String,
        /// The log's private key file (from `custos log keygen`).
        #[arg(long)]
        key: PathBuf,
        /// Deployment manifest (default: DATA/manifest.toml).
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Most entries committed by one fsync'd batch.
        #[arg(long, default_value_t = custos_log_server::server::DEFAULT_MAX_BATCH)]
        max_batch: usize,
        /// TLS certificate and key.
        #[command(flatten)]
        tls: super::server::TlsArgs,
    },
}

/// Runs a `custos log` subcommand.
pub fn run(cmd: LogCommand) -> anyhow::Result<()> {
    match cmd {
        LogCommand::Keygen { name, out } => keygen(&name, &out, ALG_ED25519),
        LogCommand::Serve {
            data,
            listen,
            key,
            manifest,
            max_batch,
            tls,
        } => {
            let tls_config = tls.load()?;
            // The signed-size record lives beside the key, outside the
            // data directory, so restoring the data cannot roll it back.
            let signed_size = custos_tlog::signed_size::signed_size_path(&key);
            let key = NamedKey::read_file(&key, ALG_ED25519)?;
            let manifest_path = manifest.unwrap_or_else(|| data.join("manifest.toml"));
            let manifest = read_manifest(&manifest_path)?;
            super::init_tracing();
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind(&listen)
                    .await
                    .with_context(|| format!("cannot listen on {listen}"))?;
                let origin = key.name().to_owned();
                let signing = key.signing_key().clone();
                let published = manifest.clone();
                let addr = listener.local_addr()?;
                let app = custos_log_server::open_log(LogConfig {
                    data,
                    signed_size,
                    key,
                    manifest,
                    clock: custos_clock::system(),
                    max_batch,
                })
                .await?;
                // The manifest's hash goes into the log at every start (the
                // same bytes each time, so the log keeps one entry): devices
                // pin the manifest only against this publication. In
                // process, so that it needs no certificate for 127.0.0.1.
                custos_log_server::publish_manifest_in_process(&app, &signing, &published)
                    .await
                    .context("publishing the manifest's hash in the log")?;
                let served = tokio::spawn(custos_http::tls::serve(listener, tls_config, app));
                let url = format!("{}://{addr}", tls.scheme());
                // One write, whose failure is ignored: a service must not
                // die because whoever started it stopped reading its output.
                let status = format!(
                    "custos log {origin} listening on {url}\nmanifest {} published\n",
                    hex::encode(published.hash()?)
                );
                let _ = std::io::Write::write_all(&mut std::io::stdout(), status.as_bytes());
                tokio::select! {
                    r = tokio::signal::ctrl_c() => r?,
                    r = served => {
                        r.context("the log server task failed")?
                            .context("the log server stopped")?;
                    }
                }
                Ok(())
            })
        }
    }
}

/// Generates a key of signature type `alg` and writes it to `out`.
pub fn keygen(name: &str, out: &std::path::Path, alg: u8) -> anyhow::Result<()> {
    let key = NamedKey::generate(name, alg)?;
    key.write_file(out)
        .with_context(|| "choose a path that does not exist yet")?;
    println!("vkey: {}", key.vkey());
    println!(
        "public_key: {}",
        hex::encode(key.verifying_key().to_bytes())
    );
    Ok(())
}

/// Reads and validates a manifest file.
pub fn read_manifest(path: &std::path::Path) -> anyhow::Result<Manifest> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the manifest {}; pass --manifest FILE",
            path.display()
        )
    })?;
    Ok(Manifest::from_toml(&text)?)
}
