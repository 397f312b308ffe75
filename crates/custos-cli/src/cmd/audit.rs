//! `custos audit`: replay the log and report what it holds.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use custos_tlog::LogClient;
use custos_wire::manifest::Manifest;

/// Arguments of `custos audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Base URL of the log, e.g. `http://127.0.0.1:7000`.
    #[arg(long)]
    pub log: String,
    /// Deployment manifest; without it the log's own copy is used (compare the printed hash out of band).
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Print one JSON report.
    #[arg(long)]
    pub json: bool,
}

/// Runs the audit; fails (exit 1) if any check failed.
pub fn run(args: AuditArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(async {
        let client = LogClient::new(&args.log)?;
        let manifest = match &args.manifest {
            Some(p) => super::log::read_manifest(p)?,
            None => Manifest::from_toml(&client.manifest().await?)?,
        };
        let bar = super::progress::bar(args.json, "replaying entries");
        let report = custos_tlog::audit::audit_with_progress(&client, &manifest, |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })
        .await;
        bar.finish_and_clear();
        anyhow::Ok(report?)
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
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
        println!("manifest sha256: {}", report.manifest_hash);
    }
    if !report.ok() {
        bail!("audit failed: see the report above");
    }
    Ok(())
}
