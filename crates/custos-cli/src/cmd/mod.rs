//! Subcommand definitions and dispatch.

pub mod audit;
pub mod authority;
pub mod config;
pub mod court;
pub mod custodian;
pub mod demo;
pub mod evidence;
pub mod history;
pub mod interception;
pub mod keys;
pub mod log;
pub mod matching;
pub mod moderate;
pub mod progress;
pub mod server;
pub mod up;
pub mod user;
pub mod witness;

use clap::{Parser, Subcommand};

/// Custos: end-to-end encrypted messaging with accountable, logged lawful access.
#[derive(Debug, Parser)]
#[command(name = "custos", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (TOML): defaults for any option, overridden by
    /// environment variables and flags. Default: ~/.config/custos/config.toml.
    #[arg(long, env = "CUSTOS_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// CA certificate (PEM) that the delivery service's TLS certificate
    /// must chain to, instead of the built-in public roots: for a
    /// deployment with its own CA (`https://` and `wss://` URLs).
    #[arg(long, env = "CUSTOS_CA", global = true, value_name = "FILE")]
    pub ca: Option<std::path::PathBuf>,
    /// Where the user's device state lives.
    #[command(flatten)]
    pub home: user::HomeArgs,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Every `custos` subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an account on a delivery service, with a new identity key.
    Register(user::RegisterArgs),
    /// Create conversations, change their members, list them.
    #[command(subcommand)]
    Conversation(user::ConversationCommand),
    /// Send a text message.
    Send(user::SendArgs),
    /// Fetch, verify and decrypt new messages.
    Receive(user::ReceiveArgs),
    /// List unsealed warrants that covered your conversations.
    Notices(user::NoticesArgs),
    /// The device's message history: `purge`.
    #[command(subcommand)]
    History(history::HistoryCommand),
    /// Your account's keys in the provider's key directory: `history`.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Prove a contact's key through the key directory, print the pair's
    /// safety code, and mark the contact verified.
    Verify(keys::VerifyArgs),
    /// Report a message to the service's moderators, with proof of who sent it.
    Report(moderate::ReportArgs),
    /// Moderation: the report queue, actions, figures, packages.
    #[command(subcommand)]
    Moderate(moderate::ModerateCommand),
    /// Walk through the whole system on loopback, in a temporary folder.
    Demo(demo::DemoArgs),
    /// Run the delivery service (accounts, KeyPackages, commits, mailboxes).
    Server(server::ServerArgs),
    /// Start a persistent local deployment: the log, 2 witnesses, 5
    /// custodians (threshold 3) and the delivery service, with a generated
    /// manifest and keys.
    Up(up::UpArgs),
    /// The transparency log: `keygen`, `serve`.
    Log {
        /// What to do.
        #[command(subcommand)]
        cmd: log::LogCommand,
    },
    /// A transparency log witness: `keygen`, `serve`.
    Witness {
        /// What to do.
        #[command(subcommand)]
        cmd: witness::WitnessCommand,
    },
    /// A custodian of day-key shares: `keygen`, `serve`.
    Custodian {
        /// What to do.
        #[command(subcommand)]
        cmd: custodian::CustodianCommand,
    },
    /// Court: `keygen`, `sign-warrant`, `extend-embargo`, `revoke`.
    Court {
        /// What to do.
        #[command(subcommand)]
        cmd: court::CourtCommand,
    },
    /// Authority: `keygen`, `submit` a warrant's commitment, `collect` key
    /// shares, `intercept` at the provider, `decrypt` into an evidence bundle.
    Authority {
        /// What to do.
        #[command(subcommand)]
        cmd: authority::AuthorityCommand,
    },
    /// Evidence: `verify` a bundle offline.
    Evidence {
        /// What to do.
        #[command(subcommand)]
        cmd: evidence::EvidenceCommand,
    },
    /// Known-content detection tooling: organisations sign their lists of
    /// hashes, the provider builds the blinded table from two of them.
    Matching {
        /// What to do.
        #[command(subcommand)]
        cmd: matching::MatchingCommand,
    },
    /// Replay the log: recompute the tree, check every signature, report the lawful-access figures.
    Audit(audit::AuditArgs),
    /// Print the version and exit.
    Version,
}

/// Sends service logs to stderr; `RUST_LOG` overrides the default `info` level.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(ca) = &cli.ca {
        use anyhow::Context as _;
        let trust = custos_client::tls::Trust::ca_file(ca)
            .with_context(|| format!("--ca {}", ca.display()))?;
        custos_client::tls::set_default(trust).context("--ca")?;
        // The same CA for the transparency log (`--log https://...`).
        let pem = std::fs::read(ca).with_context(|| format!("--ca {}", ca.display()))?;
        custos_tlog::client::set_https_ca(&pem).context("--ca")?;
    }
    // Commands that own their runtime.
    let command = match cli.command {
        Command::Version => {
            println!("custos {}", env!("CARGO_PKG_VERSION"));
            return Ok(());
        }
        Command::Log { cmd } => return log::run(cmd),
        Command::Witness { cmd } => return witness::run(cmd),
        Command::Custodian { cmd } => return custodian::run(cmd),
        Command::Audit(args) => return audit::run(args),
        Command::Matching { cmd } => return matching::run(cmd),
        Command::Evidence { cmd } => return evidence::run(cmd),
        Command::Server(args) => return server::run(args),
        Command::Up(args) => return up::run(args),
        other => other,
    };
    let rt = tokio::runtime::Runtime::new()?;
    let result = rt.block_on(async move {
        match command {
            Command::Register(a) => user::register(&cli.home, a).await,
            Command::Conversation(c) => user::conversation(&cli.home, c).await,
            Command::Send(a) => user::send(&cli.home, a).await,
            Command::Receive(a) => user::receive(&cli.home, a).await,
            Command::Notices(a) => user::notices(&cli.home, a).await,
            Command::History(c) => history::run(&cli.home, c).await,
            Command::Keys(c) => keys::run(&cli.home, c).await,
            Command::Verify(a) => keys::verify(&cli.home, a).await,
            Command::Report(a) => moderate::report(&cli.home, a).await,
            Command::Moderate(c) => moderate::moderate(&cli.home, c).await,
            Command::Demo(a) => demo::run(a).await,
            Command::Court { cmd } => court::run(cmd).await,
            Command::Authority { cmd } => authority::run(cmd).await,
            Command::Version
            | Command::Log { .. }
            | Command::Witness { .. }
            | Command::Custodian { .. }
            | Command::Audit(_)
            | Command::Matching { .. }
            | Command::Evidence { .. }
            | Command::Server(_)
            | Command::Up(_) => Ok(()),
        }
    });
    // Blocking work of services already stopped (e.g. a demo custodian's
    // DKG round waiting for peers that are gone) must not hold the exit.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}
