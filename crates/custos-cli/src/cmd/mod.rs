//! Subcommand definitions and dispatch.

use clap::{Parser, Subcommand};

pub mod audit;
pub mod log;
pub mod witness;

/// Custos: end-to-end encrypted messaging with accountable, logged lawful access.
#[derive(Debug, Parser)]
#[command(name = "custos", version, about, long_about = None)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Every `custos` subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the version and exit.
    Version,
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
    /// Replay the log: recompute the tree, check every signature, count statements.
    Audit(audit::AuditArgs),
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
    match cli.command {
        Command::Version => {
            println!("custos {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Log { cmd } => log::run(cmd),
        Command::Witness { cmd } => witness::run(cmd),
        Command::Audit(args) => audit::run(args),
    }
}
