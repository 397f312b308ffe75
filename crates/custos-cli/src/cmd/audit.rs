//! `custos audit`: replay the log, check it, and report the public figures
//! of lawful access (docs/spec/audit-figures.md).

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use custos_tlog::LogClient;
use custos_tlog::audit::AuditReport;
use custos_verify::figures::{AuditFigures, Counts, FigureOptions, Figures};
use custos_wire::manifest::Manifest;

/// Arguments of `custos audit`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct AuditArgs {
    /// `serve`: follow the log and publish the figures as a web page.
    #[command(subcommand)]
    pub cmd: Option<AuditCommand>,
    /// Base URL of the log, e.g. `http://127.0.0.1:7000`.
    #[arg(long, required = true)]
    pub log: Option<String>,
    /// Deployment manifest; without it the log's own copy is used (compare the printed hash out of band).
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Audit as of this time (Unix seconds or YYYY-MM-DD): what is overdue
    /// is overdue at this time. Default: now.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Seconds after an embargo ends before a still sealed warrant is flagged.
    #[arg(long, value_name = "SECS", default_value_t = custos_verify::figures::DEFAULT_UNSEALING_GRACE_SECS)]
    pub unsealing_grace: u64,
    /// Print one JSON report.
    #[arg(long)]
    pub json: bool,
    /// Base URL of the delivery service: with a manifest that names a key
    /// directory, check its append-only proofs between consecutive logged
    /// epochs.
    #[arg(long)]
    pub server: Option<String>,
}

/// Subcommands of `custos audit`.
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Follow the log continuously, verify it as `custos audit` does, and
    /// serve the figures as a JSON API (OpenAPI at /api/v1/openapi.json)
    /// and a web page that checks them again in the reader's browser.
    Serve(ServeArgs),
}

/// Arguments of `custos audit serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Base URL of the log, e.g. `http://127.0.0.1:7000`.
    #[arg(long)]
    pub log: String,
    /// Address to serve the dashboard on.
    #[arg(long, default_value = "127.0.0.1:7080")]
    pub listen: std::net::SocketAddr,
    /// Deployment manifest; without it the log's own copy is used (the page shows its hash: compare it out of band).
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Base URL of the delivery service whose moderation figures to show.
    #[arg(long)]
    pub provider: Option<String>,
    /// Seconds after an embargo ends before a still sealed warrant is flagged.
    #[arg(long, value_name = "SECS", default_value_t = custos_verify::figures::DEFAULT_UNSEALING_GRACE_SECS)]
    pub unsealing_grace: u64,
    /// File that keeps the last adopted checkpoint across restarts, so that
    /// a restarted dashboard notices a log that went back or forked.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Milliseconds between two polls of the log.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub poll_ms: u64,
}

/// Runs `custos audit serve` until the process is stopped.
fn serve(args: ServeArgs) -> anyhow::Result<()> {
    super::init_tracing();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let client = LogClient::new(&args.log)?;
        let manifest = match &args.manifest {
            Some(p) => super::log::read_manifest(p)?,
            None => Manifest::from_toml(&client.manifest().await?)?,
        };
        let mut config = custos_dashboard::DashboardConfig::new(&args.log, manifest);
        config.provider_url = args.provider.clone();
        config.state = args.state.clone();
        config.poll_interval = std::time::Duration::from_millis(args.poll_ms.max(50));
        config.options = FigureOptions {
            unsealing_grace_secs: args.unsealing_grace,
        };
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        println!("dashboard on http://{}/", listener.local_addr()?);
        custos_dashboard::serve(listener, config).await?;
        anyhow::Ok(())
    })
}

/// The JSON of `custos audit --json`: the integrity report's fields, and
/// the figures under `figures`.
#[derive(Debug, serde::Serialize)]
struct Output<'a> {
    #[serde(flatten)]
    report: &'a AuditReport,
    figures: &'a AuditFigures,
}

/// Runs the audit; fails (exit 1) if any check failed. Flags are findings,
/// not failures: they are printed, and the exit code stays 0.
pub fn run(args: AuditArgs) -> anyhow::Result<()> {
    if let Some(AuditCommand::Serve(serve_args)) = args.cmd {
        return serve(serve_args);
    }
    let now = match &args.at {
        Some(t) => custos_authority::dates::parse_time(t)
            .ok_or_else(|| anyhow::anyhow!("--at must be Unix seconds or YYYY-MM-DD"))?,
        None => custos_clock::system().now_millis() / 1000,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let (report, figures) = runtime.block_on(async {
        let log = args.log.as_deref().unwrap_or_default();
        let client = LogClient::new(log)?;
        let manifest = match &args.manifest {
            Some(p) => super::log::read_manifest(p)?,
            None => Manifest::from_toml(&client.manifest().await?)?,
        };
        let options = FigureOptions {
            unsealing_grace_secs: args.unsealing_grace,
        };
        let mut figures = Figures::new(&manifest, options);
        let bar = super::progress::bar(args.json, "replaying entries");
        let report =
            custos_tlog::audit::audit_streaming(&client, &manifest, &mut figures, |done, total| {
                bar.set_length(total);
                bar.set_position(done);
            })
            .await;
        bar.finish_and_clear();
        if let Some(server) = &args.server
            && manifest.key_directory.is_some()
        {
            let checked = audit_key_directory(server, figures.key_directory_roots()).await?;
            if !args.json {
                println!("key directory: {checked} consecutive logged epochs proven append-only");
            }
        }
        anyhow::Ok((report?, figures.finish(now)))
    })?;
    if args.json {
        let out = Output {
            report: &report,
            figures: &figures,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_report(&report);
        print_figures(&figures);
    }
    if !report.ok() {
        bail!("audit failed: see the report above");
    }
    Ok(())
}

fn print_report(report: &AuditReport) {
    println!(
        "log {}: {} entries, root {}",
        report.origin, report.tree_size, report.root_hash
    );
    println!(
        "tree recomputed from entries: {}",
        if report.root_matches {
            "matches"
        } else {
            "MISMATCH"
        }
    );
    println!(
        "witness cosignatures: {} of {} required ({})",
        report.witnesses.len(),
        report.witness_quorum,
        report.witnesses.join(", ")
    );
    if let Some(e) = &report.checkpoint_error {
        println!("checkpoint: {e}");
    }
    for (kind, n) in &report.counts {
        println!("  {kind}: {n}");
    }
    for b in &report.bad_entries {
        println!("bad entry {}: {}", b.index, b.reason);
    }
    if report.bad_entry_count > report.bad_entries.len() as u64 {
        println!("... {} bad entries in all", report.bad_entry_count);
    }
    println!("manifest sha256: {}", report.manifest_hash);
}

const HEADER: [&str; 11] = [
    "warrants",
    "targets",
    "days",
    "releases",
    "intercept",
    "unsealed",
    "repeats",
    "extended",
    "revoked",
    "erasures",
    "",
];

fn cells(c: &Counts) -> [u64; 10] {
    [
        c.warrants,
        c.targets,
        c.days,
        c.releases,
        c.interceptions,
        c.unsealings,
        c.repeated_unsealings,
        c.embargo_extensions,
        c.revocations,
        c.day_key_erasures,
    ]
}

fn table_line(label: &str, c: &Counts) {
    let nums: Vec<String> = cells(c).iter().map(|n| format!("{n:>9}")).collect();
    println!("{label:<44}{}", nums.join(""));
}

fn print_figures(f: &AuditFigures) {
    println!();
    println!(
        "lawful-access figures as of {} ({} statements)",
        f.as_of, f.statements
    );
    let head: Vec<String> = HEADER.iter().take(10).map(|h| format!("{h:>9}")).collect();
    println!("{:<44}{}", "", head.join(""));
    table_line("total", &f.totals);
    for r in &f.rows {
        table_line(
            &format!("{} / {} / {}", r.month, r.court, r.authority),
            &r.counts,
        );
    }
    for (court, c) in &f.by_court {
        table_line(&format!("court {court}"), c);
    }
    for (authority, c) in &f.by_authority {
        table_line(&format!("authority {authority}"), c);
    }
    for (month, c) in &f.by_month {
        table_line(&format!("month {month}"), c);
    }
    println!();
    println!(
        "{:<44}{:>9}{:>12}{:>11}{:>9}",
        "custodian", "releases", "conv-days", "generated", "erased"
    );
    for (name, c) in &f.custodians {
        println!(
            "{name:<44}{:>9}{:>12}{:>11}{:>9}",
            c.releases, c.conversation_days_released, c.day_keys_generated, c.day_keys_erased
        );
    }
    if !f.matching.is_empty() {
        println!();
        println!(
            "{:<44}{:>9}{:>9}{:>11}{:>11}{:>9}",
            "matching (provider's logged figures)",
            "accounts",
            "cases",
            "confirmed",
            "dismissed",
            "pending"
        );
        for (name, m) in &f.matching {
            println!(
                "{name:<44}{:>9}{:>9}{:>11}{:>11}{:>9}",
                m.accounts_matched,
                m.cases_opened,
                m.cases_confirmed,
                m.cases_dismissed,
                m.cases_pending
            );
        }
    }
    let flags = &f.flags;
    for o in &flags.overdue_unsealings {
        println!(
            "FLAG overdue unsealing: warrant {} of {} for {} (entry {}), due {}, {} s overdue{}",
            o.warrant,
            o.court,
            o.authority,
            o.index,
            o.due_at,
            o.overdue_secs,
            if o.revoked { ", revoked" } else { "" }
        );
    }
    for m in &flags.missing_erasures {
        println!(
            "FLAG missing erasure: day {} ({}), due {}, not erased by {}{}",
            m.day,
            m.date,
            m.due_at,
            m.not_erased_by.join(", "),
            if m.still_openable {
                " (still openable)"
            } else {
                ""
            }
        );
    }
    for u in &flags.unlogged_warrants {
        let later = u
            .logged_later_at
            .map(|i| format!(" (commitment logged later, entry {i})"))
            .unwrap_or_default();
        println!(
            "FLAG {} by {} (entry {}) under warrant {} not in the log before it{later}",
            u.kind, u.author, u.index, u.warrant
        );
    }
    for r in &flags.refused_statements {
        println!(
            "FLAG {} by {} (entry {}) not counted: {}",
            r.kind, r.author, r.index, r.reason
        );
    }
    if f.clean() {
        println!("no flags");
    }
}

/// Checks the service's append-only proof between each pair of consecutive
/// logged key-directory roots; returns how many pairs were proven.
async fn audit_key_directory(
    server: &str,
    roots: &std::collections::BTreeMap<u64, [u8; 32]>,
) -> anyhow::Result<usize> {
    let api = custos_client::api::Api::new(server);
    let roots: Vec<custos_verify::keydir::EpochRoot> = roots
        .iter()
        .map(|(&epoch, &root_hash)| custos_verify::keydir::EpochRoot { epoch, root_hash })
        .collect();
    let mut checked = 0;
    for pair in roots.windows(2) {
        let [a, b] = pair else { continue };
        let proof = api.key_directory_audit(a.epoch, b.epoch).await?;
        custos_keydir::verify_audit(&[*a, *b], &proof)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "key directory epochs {} to {} are not append-only: {e}",
                    a.epoch,
                    b.epoch
                )
            })?;
        checked += 1;
    }
    Ok(checked)
}
