//! `custos demo`: the story of DESIGN.md §9 on loopback, with real services
//! in a temporary folder: a transparency log with two witnesses, five
//! custodians generating day keys, the delivery service with its franking key
//! in the log, three users chatting one-to-one and in a group with every
//! chain escrowed, a member removed, a report verified, moderated and
//! escalated as a package anyone can check against the log, and lawful
//! access: a logged warrant opened by three custodians, an unlogged one
//! refused by all, and two custodians unable to open anything.
//!
//! Each step is one function that narrates what it showed; the steps share a
//! [`Demo`] context (folder, clock, running services, users).

mod lawful;
mod messaging;
mod reporting;
mod services;

use std::path::Path;
use std::time::Instant;

use anyhow::{Result, ensure};
use clap::Args;
use serde::Serialize;

/// `custos demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Print one machine-readable JSON report of every step and check.
    #[arg(long)]
    pub json: bool,
    /// Keep the temporary folder (its path is printed).
    #[arg(long)]
    pub keep: bool,
}

#[derive(Debug, Serialize)]
struct Step {
    step: String,
    ok: bool,
    detail: String,
}

#[derive(Debug, Default, Serialize)]
struct Report {
    folder: String,
    steps: Vec<Step>,
    ok: bool,
    elapsed_ms: u128,
}

/// Prints each step (or collects it for `--json`) and stops the story at the
/// first step that failed.
struct Narrator {
    json: bool,
    report: Report,
}

impl Narrator {
    fn step(&mut self, step: &str, ok: bool, detail: impl Into<String>) -> Result<()> {
        let detail = detail.into();
        if !self.json {
            println!("{} {step}: {detail}", if ok { "✔" } else { "✘" });
        }
        self.report.steps.push(Step {
            step: step.into(),
            ok,
            detail: detail.clone(),
        });
        ensure!(ok, "demo step failed: {step}: {detail}");
        Ok(())
    }
}

/// What every step shares: the narrator, the folder and the running
/// deployment.
struct Demo<'a> {
    n: &'a mut Narrator,
    dir: &'a Path,
    d: custos_deploy::Deployment,
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> Result<()> {
    let started = Instant::now();
    let dir = tempfile::Builder::new().prefix("custos-demo-").tempdir()?;
    let mut n = Narrator {
        json: args.json,
        report: Report {
            folder: dir.path().display().to_string(),
            ..Report::default()
        },
    };
    if !args.json {
        println!("Custos demo in {}\n", dir.path().display());
    }
    let result = story(&mut n, dir.path()).await;
    n.report.ok = result.is_ok();
    n.report.elapsed_ms = started.elapsed().as_millis();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&n.report)?);
    } else if result.is_ok() {
        println!(
            "\nAll {} steps passed in {} ms.",
            n.report.steps.len(),
            n.report.elapsed_ms
        );
    }
    if args.keep {
        let kept = dir.keep();
        eprintln!("kept {}", kept.display());
    }
    result
}

/// The whole story, one step after another.
async fn story(n: &mut Narrator, dir: &Path) -> Result<()> {
    let d = services::deployment(n, dir).await?;
    let mut demo = Demo { n, dir, d };
    demo.franking_key_logged().await?;

    let mut users = demo.accounts().await?;
    let dm = demo.one_to_one(&mut users).await?;
    let group = demo.group_of_three(&mut users).await?;
    demo.removal(&mut users, &group).await?;
    demo.ciphertext_only()?;

    let reported = demo.report_verified(&mut users, &dm).await?;
    demo.forged_report_refused(&users, &dm, &reported).await?;
    let moderator = demo.moderator().await?;
    demo.sender_suspended(&moderator, &mut users, &dm, &reported)
        .await?;
    let package = demo.package_verifies(&moderator, &reported).await?;
    demo.package_with_another_key_refused(&package)?;
    demo.suspension_ended(&moderator, &mut users, &dm).await?;

    let escrowed = demo.escrow_in_every_chain(&mut users).await?;
    let submitted = demo.warrant_logged(&escrowed).await?;
    demo.unlogged_warrant_refused(&escrowed, &submitted).await?;
    demo.interception(&mut users, &escrowed, &submitted).await?;
    let collected = demo.release_by_three(&escrowed, &submitted).await?;
    demo.evidence_verifies(&submitted, &collected).await?;
    demo.two_shares_open_nothing(&escrowed, &submitted).await?;

    demo.d.shutdown().await?;
    Ok(())
}
