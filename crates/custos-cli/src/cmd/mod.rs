//! Subcommand definitions and dispatch.

pub mod demo;
pub mod moderate;
pub mod user;

use clap::{Parser, Subcommand};

/// Custos: end-to-end encrypted messaging with accountable, logged lawful access.
#[derive(Debug, Parser)]
#[command(name = "custos", version, about, long_about = None)]
pub struct Cli {
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
    /// Report a message to the service's moderators, with proof of who sent it.
    Report(moderate::ReportArgs),
    /// Moderation: the report queue, actions, figures, packages.
    #[command(subcommand)]
    Moderate(moderate::ModerateCommand),
    /// Walk through the whole system on loopback, in a temporary folder.
    Demo(demo::DemoArgs),
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        match cli.command {
            Command::Register(a) => user::register(&cli.home, a).await,
            Command::Conversation(c) => user::conversation(&cli.home, c).await,
            Command::Send(a) => user::send(&cli.home, a).await,
            Command::Receive(a) => user::receive(&cli.home, a).await,
            Command::Report(a) => moderate::report(&cli.home, a).await,
            Command::Moderate(c) => moderate::moderate(&cli.home, c).await,
            Command::Demo(a) => demo::run(a).await,
        }
    })
}
