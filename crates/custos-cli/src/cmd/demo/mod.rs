//! `custos demo`: the story of DESIGN.md §9 on loopback, with real services
//! in a temporary folder: a transparency log with two witnesses, five
//! custodians generating day keys, the delivery service with its franking key
//! in the log, three users chatting one-to-one and in a group with every
//! chain escrowed, a member removed, a report verified, moderated and
//! escalated as a package anyone can check against the log, and lawful
//! access: a logged warrant opened by three custodians, an unlogged one
//! refused by all, and two custodians unable to open anything; then, on the
//! simulated clock, the embargo ends, the custodians unseal the warrant
//! without the authority, the target conversation's members see the notice,
//! and the audit's figures flag a warrant kept sealed past its embargo.
//!
//! Each step is one function that narrates what it showed; the steps share a
//! [`Demo`] context (folder, clock, running services, users).

mod lawful;
mod matching;
mod messaging;
mod notices;
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
    /// The step's separate checks, when it has several.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    checks: Vec<Check>,
}

/// One named check of a step.
#[derive(Debug, Serialize)]
struct Check {
    check: String,
    ok: bool,
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
            checks: Vec::new(),
        });
        ensure!(ok, "demo step failed: {step}: {detail}");
        Ok(())
    }

    /// A step made of several named checks: it passes if all pass, and the
    /// report lists each (a failed one is named in the text output too).
    fn checked(
        &mut self,
        step: &str,
        checks: &[(&str, bool)],
        detail: impl Into<String>,
    ) -> Result<()> {
        let ok = checks.iter().all(|(_, ok)| *ok);
        let mut detail = detail.into();
        let failed: Vec<&str> = checks.iter().filter(|c| !c.1).map(|c| c.0).collect();
        if !failed.is_empty() {
            detail = format!("{detail} (failed: {})", failed.join(", "));
        }
        let result = self.step(step, ok, detail);
        if let Some(last) = self.report.steps.last_mut() {
            last.checks = checks
                .iter()
                .map(|(name, ok)| Check {
                    check: (*name).to_owned(),
                    ok: *ok,
                })
                .collect();
        }
        result
    }
}

/// What every step shares: the narrator, the folder and the running
/// deployment.
struct Demo<'a> {
    n: &'a mut Narrator,
    dir: &'a Path,
    d: custos_deploy::Deployment,
    /// The one clock of every service, moved forward by the story.
    clock: custos_clock::SimulatedClock,
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
    let (d, clock) = services::deployment(n, dir).await?;
    let mut demo = Demo { n, dir, d, clock };
    demo.franking_key_logged().await?;
    // The franking key is valid from the next whole second of the clock;
    // the story's messages come after it.
    demo.clock.advance_millis(1_000);

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
    demo.known_content(&moderator).await?;

    let escrowed = demo.escrow_in_every_chain(&mut users).await?;
    let submitted = demo.warrant_logged(&escrowed).await?;
    demo.unlogged_warrant_refused(&escrowed, &submitted).await?;
    demo.interception(&mut users, &escrowed, &submitted).await?;
    let collected = demo.release_by_three(&escrowed, &submitted).await?;
    demo.evidence_verifies(&submitted, &collected).await?;
    demo.two_shares_open_nothing(&escrowed, &submitted).await?;
    let sealed = demo.warrant_kept_sealed(&group).await?;
    demo.embargo_ends(&submitted, &sealed).await?;
    demo.notices_seen(&mut users, &escrowed.conversation())
        .await?;
    demo.audit_figures(&submitted, &sealed).await?;

    demo.d.shutdown().await?;
    Ok(())
}
