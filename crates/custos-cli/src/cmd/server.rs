//! `custos server`: run the delivery service.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use custos_server::{RateLimit, ServerConfig};

/// Options of `custos server`.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Directory of the service's database (created if missing). With
    /// --database it holds only the franking key (each server of a
    /// deployment its own copy of the provider's key).
    #[arg(long, env = "CUSTOS_DATA", value_name = "DIR")]
    pub data: PathBuf,
    /// Store in this PostgreSQL database (`postgres://USER@HOST/DB`)
    /// instead of SQLite under --data, so that several servers can share
    /// it behind one address (docs/deploy.md). Prefer CUSTOS_DATABASE for a
    /// URL holding a password: the environment is not in the process list.
    /// Every feature runs on it; --data then holds only the franking key.
    #[arg(
        long,
        env = "CUSTOS_DATABASE",
        value_name = "URL",
        hide_env_values = true,
        value_parser = postgres_url
    )]
    pub database: Option<String>,
    /// Address to listen on; port 0 picks a free port (printed on start).
    #[arg(
        long,
        env = "CUSTOS_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:7400"
    )]
    pub listen: SocketAddr,
    /// Days an unacknowledged item is kept before it is deleted.
    #[arg(long, value_name = "N", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub retention_days: u32,
    /// Requests per second allowed from one IP address (0: unlimited).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub ip_rate: u32,
    /// Requests and submissions per second allowed for one account (0: unlimited).
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub account_rate: u32,
    /// Seconds after midnight (UTC) during which chains of the day before
    /// are still accepted; after it, only today's. Use the manifest's
    /// `policy.day_grace_secs`: recipients refuse envelopes delivered
    /// outside their chain's day plus that grace.
    #[arg(long, value_name = "SECONDS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(0..=86_399))]
    pub day_grace: u64,
    /// Abuse reporting and the transparency log.
    #[command(flatten)]
    pub franking: FrankingArgs,
    /// TLS certificate and key.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Quotas and abuse limits.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Key transparency.
    #[command(flatten)]
    pub key_directory: KeyDirectoryArgs,
}

/// The provider's key directory (docs/design/0016-key-transparency.md):
/// every account's identity key in an auditable key directory whose epoch
/// roots the service logs, so that devices can check every key they
/// encrypt to. Off unless `--key-directory` is given.
#[derive(Debug, clap::Args)]
pub struct KeyDirectoryArgs {
    /// Run the key directory. Needs --key-directory-vrf-key, the log
    /// (--log, --manifest, --provider-key) and a manifest whose
    /// `[key_directory]` section names this VRF key's public key: devices
    /// of such a manifest refuse to add or accept members whose keys the
    /// directory does not prove.
    #[arg(
        long,
        env = "CUSTOS_KEY_DIRECTORY",
        requires_all = ["key_directory_vrf_key", "log"]
    )]
    pub key_directory: bool,
    /// The directory's VRF secret: a file of exactly 32 bytes (`custos up`
    /// keeps it in DATA/keys/keydir-vrf.key). Keep it secret: it hides
    /// which account a proof is about from everyone else.
    #[arg(
        long,
        env = "CUSTOS_KEY_DIRECTORY_VRF_KEY",
        value_name = "FILE",
        requires = "key_directory"
    )]
    pub key_directory_vrf_key: Option<PathBuf>,
    /// Seconds between two epochs of the directory (a new account's key is
    /// provable, and `register` returns, after the next epoch is logged).
    #[arg(
        long,
        env = "CUSTOS_KEY_DIRECTORY_INTERVAL",
        value_name = "SECONDS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    pub key_directory_interval: u64,
    /// Most key changes published in one epoch; more wait for the next.
    #[arg(
        long,
        env = "CUSTOS_KEY_DIRECTORY_MAX_CHANGES",
        value_name = "N",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(1..=1_000_000)
    )]
    pub key_directory_max_changes: u64,
}

impl KeyDirectoryArgs {
    /// Switches the key directory on in `config` (after the log is set up:
    /// epochs are logged through it). `manifest` is --manifest.
    fn apply(
        &self,
        mut config: ServerConfig,
        manifest: Option<&std::path::Path>,
    ) -> anyhow::Result<ServerConfig> {
        if !self.key_directory {
            return Ok(config);
        }
        let (Some(vrf_path), Some(manifest_path)) = (&self.key_directory_vrf_key, manifest) else {
            anyhow::bail!("--key-directory needs --key-directory-vrf-key and --manifest");
        };
        if config.franking_log.is_none() {
            anyhow::bail!(
                "--key-directory needs the log (--log, --manifest, --provider-key; not --no-franking): \
                 every epoch's root is logged"
            );
        }
        let seed: [u8; 32] = std::fs::read(vrf_path)
            .with_context(|| format!("reading the key directory's VRF key {}", vrf_path.display()))?
            .try_into()
            .map_err(|_| {
                anyhow::anyhow!(
                    "{} must hold exactly 32 bytes (the key directory's VRF secret)",
                    vrf_path.display()
                )
            })?;
        let vrf = custos_keydir::VrfSecret::from_bytes(seed);
        let public = hex::encode(vrf.public_key());
        let manifest = super::log::read_manifest(manifest_path)?;
        let section = manifest.key_directory.as_ref().with_context(|| {
            format!(
                "the manifest {} has no [key_directory] section; add one with \
                 vrf_public_key = \"{public}\" (this VRF key's public key)",
                manifest_path.display()
            )
        })?;
        let named = section
            .vrf_key()
            .context("the manifest's key_directory.vrf_public_key")?;
        if hex::encode(named) != public {
            anyhow::bail!(
                "{} is not the manifest's key directory VRF key (manifest: {}, this file: {public}); \
                 devices would refuse every proof",
                vrf_path.display(),
                hex::encode(named)
            );
        }
        config = config.with_key_directory(custos_server::directory::KeyDirectoryConfig {
            vrf,
            interval: std::time::Duration::from_secs(self.key_directory_interval),
            max_changes: usize::try_from(self.key_directory_max_changes).unwrap_or(usize::MAX),
        });
        Ok(config)
    }
}

/// Quotas and abuse limits of `custos server` (docs/spec/delivery-api.md);
/// 0 switches one off.
#[derive(Debug, clap::Args)]
pub struct LimitArgs {
    /// Unacknowledged items held for one device's mailbox, from all senders.
    #[arg(long, value_name = "N", default_value_t = 50_000)]
    pub mailbox_quota_items: u64,
    /// Unacknowledged MiB held for one device's mailbox.
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    pub mailbox_quota_mib: u64,
    /// Stored items an account sent that some recipient has not acknowledged.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub sender_quota_items: u64,
    /// Stored MiB an account sent that some recipient has not acknowledged.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    pub sender_quota_mib: u64,
    /// Registrations per hour from one network prefix (/24 IPv4, /56 IPv6).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub registrations_per_prefix: u32,
    /// Registrations per hour service-wide.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub registrations_per_hour: u32,
    /// Reports per hour from one account.
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub reports_per_account: u32,
    /// Reports per hour from one network prefix.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub reports_per_prefix: u32,
    /// Open WebSocket connections per account.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub ws_per_account: usize,
    /// Open WebSocket connections service-wide.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub ws_total: usize,
    /// Seconds between pings on an open WebSocket; a connection silent for
    /// two intervals is closed.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub ws_ping_secs: u64,
}

impl LimitArgs {
    /// Sets the limits in `limits`.
    fn apply(&self, limits: &mut custos_server::Limits) {
        use custos_server::{Quota, WindowLimit};
        const MIB: u64 = 1 << 20;
        limits.mailbox_quota = Quota {
            items: self.mailbox_quota_items,
            bytes: self.mailbox_quota_mib.saturating_mul(MIB),
        };
        limits.sender_quota = Quota {
            items: self.sender_quota_items,
            bytes: self.sender_quota_mib.saturating_mul(MIB),
        };
        limits.registrations_per_prefix = WindowLimit::per_hour(self.registrations_per_prefix);
        limits.registrations_global = WindowLimit::per_hour(self.registrations_per_hour);
        limits.reports_per_account = WindowLimit::per_hour(self.reports_per_account);
        limits.reports_per_prefix = WindowLimit::per_hour(self.reports_per_prefix);
        limits.ws_max_per_account = self.ws_per_account;
        limits.ws_max_total = self.ws_total;
        limits.ws_ping_interval = std::time::Duration::from_secs(self.ws_ping_secs);
    }
}

/// `--tls-cert` and `--tls-key` of every service.
#[derive(Debug, clap::Args)]
pub struct TlsArgs {
    /// Serve HTTPS (and WSS) only, with this PEM certificate chain (leaf
    /// first). Without it the service speaks plain HTTP: keep it on
    /// loopback or behind a TLS-terminating proxy.
    #[arg(
        long,
        env = "CUSTOS_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(
        long,
        env = "CUSTOS_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
}

impl TlsArgs {
    /// The server TLS configuration, if a certificate was given.
    pub fn load(
        &self,
    ) -> anyhow::Result<Option<std::sync::Arc<custos_http::tls::rustls::ServerConfig>>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(
                custos_http::tls::server_config(cert, key)
                    .context("loading --tls-cert/--tls-key")?,
            )),
            _ => Ok(None),
        }
    }

    /// The URL scheme the service is reached with.
    pub fn scheme(&self) -> &'static str {
        if self.tls_cert.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

/// Abuse reporting options of `custos server`.
#[derive(Debug, clap::Args)]
pub struct FrankingArgs {
    /// Switch delivery tags, reports and moderation off. By default the
    /// service signs a delivery tag for every envelope with its franking key
    /// (`DATA/franking.key`, created on first start).
    #[arg(long, conflicts_with_all = ["log", "manifest", "provider_key"])]
    pub no_franking: bool,
    /// Transparency log URL where the franking key is published, so that
    /// report packages carry a log proof of it. Needs --manifest and --provider-key.
    #[arg(long, env = "CUSTOS_LOG", value_name = "URL", requires_all = ["manifest", "provider_key"])]
    pub log: Option<String>,
    /// Deployment manifest (the log's and witnesses' keys and the provider participant).
    #[arg(long, value_name = "FILE", requires = "log")]
    pub manifest: Option<PathBuf>,
    /// The provider's statement key, the manifest key of a `provider`
    /// participant (`custos log keygen --name NAME --out FILE` makes one).
    #[arg(long, value_name = "FILE", requires = "log")]
    pub provider_key: Option<PathBuf>,
    /// Known-content detection: the blinded hash table (docs/spec/psi.md)
    /// to serve; its root and the manifest's `[matching]` policy are logged
    /// at start. Needs --matching-secret and --log.
    #[arg(long, value_name = "FILE", requires_all = ["matching_secret", "log"])]
    pub matching_table: Option<PathBuf>,
    /// The provider's 32-byte blinding secret of that table (a file).
    #[arg(long, value_name = "FILE", requires = "matching_table")]
    pub matching_secret: Option<PathBuf>,
}

impl FrankingArgs {
    /// Switches franking (and its log publication) on in `config`.
    fn apply(
        &self,
        mut config: ServerConfig,
        data: &std::path::Path,
    ) -> anyhow::Result<ServerConfig> {
        if self.no_franking {
            return Ok(config);
        }
        std::fs::create_dir_all(data)
            .with_context(|| format!("cannot create {}", data.display()))?;
        let policy = custos_server::FrankingPolicy::open(data, custos_clock::system())
            .context("opening the franking key")?;
        config = config.with_franking(std::sync::Arc::new(policy));
        if let (Some(log_url), Some(manifest), Some(key)) =
            (&self.log, &self.manifest, &self.provider_key)
        {
            let key = custos_tlog::keys::NamedKey::read_file(key, custos_tlog::keys::ALG_ED25519)
                .with_context(|| format!("reading the provider key {}", key.display()))?;
            let manifest = super::log::read_manifest(manifest)?;
            if let (Some(table), Some(secret)) = (&self.matching_table, &self.matching_secret) {
                let section = manifest
                    .matching
                    .as_ref()
                    .context("--matching-table needs a manifest with a [matching] section")?;
                let table_bytes =
                    std::fs::read(table).with_context(|| format!("reading {}", table.display()))?;
                let secret: [u8; 32] = std::fs::read(secret)
                    .with_context(|| format!("reading {}", secret.display()))?
                    .try_into()
                    .map_err(|_| anyhow::anyhow!("the matching secret is not 32 bytes"))?;
                let published_at = std::fs::metadata(table)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs());
                let service = custos_server::matching::MatchingService::new(
                    table_bytes,
                    &secret,
                    section,
                    published_at,
                )
                .context("loading the hash table")?;
                config = config.with_matching(service);
                config.publish_matching = true;
            }
            config = config.with_franking_log(custos_server::franking_log::FrankingLogConfig {
                log_url: log_url.clone(),
                manifest,
                statement_key: key.signing_key().clone(),
                witness_timeout: std::time::Duration::from_secs(30),
            });
        }
        Ok(config)
    }
}

fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs the delivery service until Ctrl-C or SIGTERM.
pub fn run(args: ServerArgs) -> anyhow::Result<()> {
    init_logs();
    let mut config = ServerConfig::new(&args.data);
    config.database = args.database.clone();
    config.retention = custos_server::DAY.saturating_mul(args.retention_days);
    config.limits.ip_rate = rate(args.ip_rate);
    config.limits.account_rate = rate(args.account_rate);
    config.day_grace = std::time::Duration::from_secs(args.day_grace);
    config.tls = args.tls.load()?;
    args.limits.apply(&mut config.limits);
    let config = args.franking.apply(config, &args.data)?;
    let config = args
        .key_directory
        .apply(config, args.franking.manifest.as_deref())?;
    serve_blocking(args.listen, config)
}

/// Accepts only a PostgreSQL URL, so that a path given by mistake is not
/// taken for one.
fn postgres_url(s: &str) -> Result<String, String> {
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        Ok(s.to_owned())
    } else {
        Err("a PostgreSQL URL starts with postgres:// (for SQLite, give --data DIR alone)".into())
    }
}

fn rate(per_second: u32) -> RateLimit {
    if per_second == 0 {
        RateLimit::UNLIMITED
    } else {
        RateLimit {
            per_second,
            burst: per_second.saturating_mul(2),
        }
    }
}

fn serve_blocking(listen: SocketAddr, config: ServerConfig) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}; is the port in use?"))?;
        let addr = listener.local_addr()?;
        // Scripts and tests read this line to learn the port.
        println!("listening on {addr}");
        custos_server::serve(listener, config, custos_clock::system(), stop_signal())
            .await
            .context("the delivery service failed")
    })
}

/// Resolves on Ctrl-C or SIGTERM.
pub(super) async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "test code")]
mod tests {
    use clap::Parser as _;

    /// The flags' defaults are the library's documented limits.
    #[test]
    fn limit_flags_default_to_the_documented_limits() {
        let cli = crate::cmd::Cli::try_parse_from(["custos", "server", "--data", "x"]).unwrap();
        let crate::cmd::Command::Server(args) = cli.command else {
            panic!("not the server command");
        };
        let mut limits = custos_server::Limits::default();
        args.limits.apply(&mut limits);
        assert_eq!(limits, custos_server::Limits::default());
        // The key directory is off by default; its defaults are the service's.
        assert!(!args.key_directory.key_directory);
        assert_eq!(
            std::time::Duration::from_secs(args.key_directory.key_directory_interval),
            custos_server::directory::DEFAULT_INTERVAL
        );
        assert_eq!(
            args.key_directory.key_directory_max_changes,
            custos_server::directory::DEFAULT_MAX_CHANGES as u64
        );
    }

    /// `--key-directory` alone is refused before anything starts.
    #[test]
    fn the_key_directory_needs_its_key_and_the_log() {
        let e =
            crate::cmd::Cli::try_parse_from(["custos", "server", "--data", "x", "--key-directory"])
                .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("--key-directory-vrf-key"), "{text}");
    }
}
