//! `custos history`: the device's message history and how long it is kept.

use anyhow::{Result, bail};
use clap::Subcommand;

use super::user::{HomeArgs, open};

/// `custos history`.
#[derive(Debug, Subcommand)]
pub enum HistoryCommand {
    /// Delete stored messages: those older than --older-than-days, or all
    /// with --all. Deleted messages are overwritten on disk and can no
    /// longer be reported. (`custos receive --keep-days N` purges after
    /// every receive; set it once in the config file as `[receive]
    /// keep-days = N` or with CUSTOS_KEEP_DAYS.)
    Purge {
        /// Delete messages older than this many days.
        #[arg(long, conflicts_with = "all")]
        older_than_days: Option<u32>,
        /// Delete every stored message.
        #[arg(long)]
        all: bool,
        /// Print `{"purged": N}`.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `custos history`.
pub async fn run(home: &HomeArgs, cmd: HistoryCommand) -> Result<()> {
    match cmd {
        HistoryCommand::Purge {
            older_than_days,
            all,
            json,
        } => {
            let mut device = open(home).await?;
            let purged = match (older_than_days, all) {
                (Some(days), false) => device.purge_history_older_than(days)?,
                (None, true) => device.purge_all_history()?,
                _ => bail!("say what to purge: --older-than-days N, or --all"),
            };
            if json {
                println!("{}", serde_json::json!({ "purged": purged }));
            } else {
                println!("purged {purged} messages");
            }
            Ok(())
        }
    }
}
