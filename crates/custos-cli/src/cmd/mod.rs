//! Subcommand definitions and dispatch.

mod server;

use clap::{Parser, Subcommand};

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
    /// Run the delivery service (accounts, KeyPackages, commits, mailboxes).
    Server(server::ServerArgs),
    /// Start a persistent local deployment (for now: the delivery service).
    Up(server::UpArgs),
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Version => {
            println!("custos {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Server(args) => server::run(args),
        Command::Up(args) => server::up(args),
    }
}
