//! `custos evidence verify BUNDLE`: re-check an evidence bundle offline,
//! with nothing but the bundle and (optionally) the manifest hash given by
//! its operator.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;

/// `custos evidence` subcommands.
#[derive(Debug, Subcommand)]
pub enum EvidenceCommand {
    /// Verify an evidence bundle offline: warrant, log proofs, day keys,
    /// identity keys, and every message, signature, tag and capsule.
    Verify {
        /// The bundle (`evidence.json` from `custos authority decrypt`).
        bundle: PathBuf,
        /// The SHA-256 of the deployment manifest, from its operator; the
        /// bundle's manifest must match it.
        #[arg(long, value_name = "HEX")]
        manifest_hash: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `custos evidence` subcommand; fails (exit 1) if the bundle does
/// not verify, saying where.
pub fn run(cmd: EvidenceCommand) -> anyhow::Result<()> {
    let EvidenceCommand::Verify {
        bundle,
        manifest_hash,
        json,
    } = cmd;
    let bytes =
        std::fs::read(&bundle).with_context(|| format!("cannot read {}", bundle.display()))?;
    let parsed: custos_verify::evidence::EvidenceBundle =
        serde_json::from_slice(&bytes).context("not an evidence bundle (JSON)")?;
    let pinned = manifest_hash
        .map(|h| {
            hex::decode(h)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .context("--manifest-hash must be 64 hex digits")
        })
        .transpose()?;
    let verified = custos_verify::evidence::verify_evidence(&parsed, pinned.as_ref())
        .context("the evidence does not verify")?;
    let summary = serde_json::json!({
        "verified": true,
        "commitment": hex::encode(verified.commitment),
        "messages": verified.opened.messages.len(),
        "checkpoint_size": verified.checkpoint.size(),
    });
    super::authority::print(
        json,
        &summary,
        &format!(
            "the evidence verifies: {} messages under warrant commitment {}",
            verified.opened.messages.len(),
            hex::encode(verified.commitment)
        ),
    )
}
