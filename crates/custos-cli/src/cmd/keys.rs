//! `custos keys history` and `custos verify CONTACT`: the account's keys as
//! the provider's key directory proves them (docs/design/0016-key-transparency.md).

use anyhow::Result;
use clap::{Args, Subcommand};

use super::user::{HomeArgs, open};

/// `custos keys`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Every key your account has had, proven by the key directory against
    /// a root in the witnessed log; a key this device did not make is an alert.
    History {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// `custos verify CONTACT`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The contact's account name.
    pub contact: String,
    /// Accept the contact's new key after comparing the new safety code.
    #[arg(long)]
    pub accept: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs `custos keys`.
pub async fn run(home: &HomeArgs, cmd: KeysCommand) -> Result<()> {
    match cmd {
        KeysCommand::History { json } => {
            let mut device = open(home).await?;
            let Some(versions) = device.key_history().await? else {
                anyhow::bail!("the deployment runs no key directory (the manifest names none)");
            };
            let alerts = device.check_own_keys().await?;
            let all_alerts = device.key_alerts()?;
            let own = hex::encode(device.identity_key());
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "account": device.name(),
                        "epoch": device.key_directory_epoch()?,
                        "versions": versions,
                        "this_device_key": own,
                        "alerts": all_alerts,
                    })
                );
            } else {
                println!(
                    "keys of `{}` (key directory epoch {}):",
                    device.name(),
                    device.key_directory_epoch()?
                );
                for v in &versions {
                    let mark = if v.key == own {
                        "this device"
                    } else {
                        "NOT THIS DEVICE"
                    };
                    println!(
                        "  version {} (epoch {}): {} [{mark}]",
                        v.version, v.epoch, v.key
                    );
                }
                for a in &alerts {
                    eprintln!("{a}");
                }
            }
            Ok(())
        }
    }
}

/// Runs `custos verify CONTACT`.
pub async fn verify(home: &HomeArgs, args: VerifyArgs) -> Result<()> {
    let mut device = open(home).await?;
    let check = device.verify_contact(&args.contact, args.accept).await?;
    if args.json {
        println!("{}", serde_json::to_string(&check)?);
    } else {
        if let Some(old) = &check.replaced {
            println!("accepted the new key of `{}` (was {old})", check.contact);
        }
        println!(
            "`{}` has key {} (key directory epoch {})",
            check.contact, check.key, check.epoch
        );
        println!("safety code: {}", check.safety_code);
        println!(
            "compare it with {} in person or over another channel; `{}` is now marked verified",
            check.contact, check.contact
        );
    }
    Ok(())
}
