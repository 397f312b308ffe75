//! Abuse reporting: `custos report` (any user) and `custos moderate`
//! (moderators, and the operator's `add-moderator` and `verify-package`).

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};

use custos_wire::moderation::Action;

use crate::cmd::user::{HomeArgs, conversation_id, open};

/// `custos report CONV MESSAGE-ID --reason TEXT [--context N]`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Conversation id (hex).
    pub conversation: String,
    /// Message id (hex), as `custos receive --json` prints it.
    pub message: String,
    /// Why you report it; shown to moderators.
    #[arg(long)]
    pub reason: String,
    /// Also reveal up to N surrounding messages of the conversation (at most 8).
    #[arg(long, default_value_t = 0)]
    pub context: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `custos moderate ...`.
#[derive(Debug, Subcommand)]
pub enum ModerateCommand {
    /// List reports in the moderation queue (open ones unless --all).
    List {
        /// Include resolved reports.
        #[arg(long)]
        all: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one report: the verified message, context and actions.
    Show {
        /// Report id.
        id: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Save an attachment of a report's message: the service opens it with
    /// the key the report revealed and checks it against the sender's
    /// commitment.
    Attachment {
        /// Report id.
        id: i64,
        /// Which attachment of the message (from 0).
        index: usize,
        /// Where to write it.
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Take an action on a report.
    Resolve {
        /// Report id.
        id: i64,
        /// What to do.
        #[arg(long, value_enum)]
        action: Action,
        /// For suspend: how long, e.g. 3600s, 90m, 24h, 7d; omit for permanent.
        #[arg(long)]
        duration: Option<String>,
        /// A note recorded with the action.
        #[arg(long, default_value = "")]
        note: String,
        /// For escalate: write the report package to this file.
        #[arg(long)]
        package: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Known-content detection: list the cases past the threshold.
    Matches {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Known-content detection: show a case (hashes, 32x32 derivatives as
    /// base64) for review.
    MatchShow {
        /// Case id.
        id: i64,
    },
    /// Known-content detection: confirm or dismiss a case. A confirmed case
    /// gives a clearinghouse package; nothing is sent anywhere.
    MatchResolve {
        /// Case id.
        id: i64,
        /// `confirm` or `dismiss`.
        #[arg(long)]
        decision: String,
        /// A note recorded with the decision.
        #[arg(long, default_value = "")]
        note: String,
        /// For confirm: write the clearinghouse package to this file.
        #[arg(long)]
        package: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The service's published moderation figures (and matching figures,
    /// when the deployment matches pictures).
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make a registered account a moderator (operator; on the server's data directory).
    AddModerator {
        /// The service's data directory (SQLite).
        #[arg(long, required_unless_present = "database")]
        data: Option<PathBuf>,
        /// The service's PostgreSQL database (`postgres://…`): the
        /// moderator is then one for every server on it.
        #[arg(long, env = "CUSTOS_DATABASE", hide_env_values = true)]
        database: Option<String>,
        /// Account name.
        name: String,
    },
    /// Check a report package with public information only: the package and
    /// the transparency log's trust policy (from the manifest, as `custos
    /// audit` takes it, or from the log's and witnesses' verifier keys).
    VerifyPackage {
        /// The package (JSON).
        file: PathBuf,
        /// Deployment manifest: trust the log, witnesses and quorum it names,
        /// and require the key's author to be its provider.
        #[arg(long, conflicts_with_all = ["log_key", "witness", "quorum"])]
        manifest: Option<PathBuf>,
        /// The log's verifier key (`origin+keyid+base64`, as `custos log keygen` prints it).
        #[arg(long)]
        log_key: Option<String>,
        /// A witness's verifier key (`name+keyid+base64`); repeat for each witness.
        #[arg(long)]
        witness: Vec<String>,
        /// How many witness cosignatures the checkpoint needs (default: all given).
        #[arg(long)]
        quorum: Option<usize>,
        /// Succeed even when the package has no log proof of its franking key
        /// (the tags then only prove that *some* key signed them).
        #[arg(long)]
        allow_unproven_key: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `custos report`.
pub async fn report(home: &HomeArgs, a: ReportArgs) -> Result<()> {
    let conv = conversation_id(&a.conversation)?;
    let device = open(home).await?;
    let id = device
        .report(&conv, &a.message, &a.reason, a.context)
        .await
        .context("reporting the message")?;
    if a.json {
        println!("{}", serde_json::json!({ "report_id": id }));
    } else {
        println!("report {id} verified by the service and queued for moderation");
    }
    Ok(())
}

/// Parses `3600s`, `90m`, `24h`, `7d` (or plain seconds).
pub fn parse_duration(s: &str) -> Result<u64> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .with_context(|| format!("`{s}` is not a duration like 3600s, 90m, 24h or 7d"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("`{s}`: the unit is s, m, h or d"),
    };
    Ok(n.saturating_mul(mult))
}

/// Runs `custos moderate ...`.
pub async fn moderate(home: &HomeArgs, c: ModerateCommand) -> Result<()> {
    match c {
        ModerateCommand::AddModerator {
            data,
            database,
            name,
        } => {
            match (data, database) {
                (Some(data), _) => {
                    custos_server::moderation::add_moderator(&data, &name).await?;
                    println!(
                        "{name} is now a moderator of the service in {}",
                        data.display()
                    );
                }
                (None, Some(url)) => {
                    custos_server::moderation::add_moderator_on_postgres(&url, &name).await?;
                    println!("{name} is now a moderator of every server on the database");
                }
                (None, None) => bail!("name the service: --data DIR or --database URL"),
            }
            Ok(())
        }
        ModerateCommand::VerifyPackage {
            file,
            manifest,
            log_key,
            witness,
            quorum,
            allow_unproven_key,
            json,
        } => {
            let manifest = manifest
                .map(|p| super::log::read_manifest(&p))
                .transpose()?;
            let policy = trust_policy(manifest.as_ref(), log_key.as_deref(), &witness, quorum)?;
            verify_package(&file, &policy, manifest.as_ref(), allow_unproven_key, json)
        }
        ModerateCommand::List { all, json } => {
            let queue = open(home).await?.api().moderation_list(all).await?;
            if json {
                println!("{}", serde_json::to_string(&queue)?);
            } else {
                for r in &queue.reports {
                    println!(
                        "#{} [{}] {} reported {}: {}",
                        r.id, r.status, r.reporter, r.sender, r.reason
                    );
                }
            }
            Ok(())
        }
        ModerateCommand::Show { id, json } => {
            let shown = open(home).await?.api().moderation_show(id).await?;
            if json {
                println!("{}", serde_json::to_string(&shown)?);
            } else {
                println!("{}", serde_json::to_string_pretty(&shown)?);
            }
            Ok(())
        }
        ModerateCommand::Attachment { id, index, out } => {
            let bytes = open(home)
                .await?
                .api()
                .moderation_attachment(id, index)
                .await?;
            std::fs::write(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
            println!("saved {} bytes to {}", bytes.len(), out.display());
            Ok(())
        }
        ModerateCommand::Resolve {
            id,
            action,
            duration,
            note,
            package,
            json,
        } => resolve(home, id, action, duration, note, package, json).await,
        ModerateCommand::Stats { json } => {
            let d = open(home).await?;
            let stats = d.api().moderation_stats().await?;
            // A service that does not match pictures answers `matching_off`.
            let matching = d.api().matching_stats().await.ok();
            let all = serde_json::json!({ "reports": stats, "matching": matching });
            if json {
                println!("{}", serde_json::to_string(&all)?);
            } else {
                println!("{}", serde_json::to_string_pretty(&all)?);
            }
            Ok(())
        }
        ModerateCommand::Matches { json } => {
            let cases = open(home).await?.api().matching_cases().await?;
            if json {
                println!("{}", serde_json::to_string(&cases)?);
            } else {
                for c in cases.as_array().into_iter().flatten() {
                    println!(
                        "#{} [{}] {}: {} matches",
                        at(c, "/id"),
                        at(c, "/status"),
                        at(c, "/account"),
                        at(c, "/matches")
                    );
                }
            }
            Ok(())
        }
        ModerateCommand::MatchShow { id } => {
            let case = open(home).await?.api().matching_case(id).await?;
            println!("{}", serde_json::to_string_pretty(&case)?);
            Ok(())
        }
        ModerateCommand::MatchResolve {
            id,
            decision,
            note,
            package,
            json,
        } => {
            let r = open(home)
                .await?
                .api()
                .resolve_matching_case(id, &decision, &note)
                .await?;
            if let (Some(path), Some(p)) = (&package, r.get("package")) {
                std::fs::write(path, serde_json::to_string_pretty(p)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!("case {id}: {}", at(&r, "/case/status"));
            }
            Ok(())
        }
    }
}

/// `custos moderate resolve`: takes the action; for an escalation, writes
/// the package to `package` if given.
async fn resolve(
    home: &HomeArgs,
    id: i64,
    action: Action,
    duration: Option<String>,
    note: String,
    package: Option<PathBuf>,
    json: bool,
) -> Result<()> {
    let secs = duration.as_deref().map(parse_duration).transpose()?;
    let d = open(home).await?;
    let r = d.api().moderation_resolve(id, action, &note, secs).await?;
    if let (Some(path), Some(p)) = (&package, &r.package) {
        std::fs::write(path, serde_json::to_string_pretty(p)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!("report {id}: {}", r.status);
    }
    Ok(())
}

/// `custos moderate verify-package`: the package's evidence, its franking
/// key's log proof under `policy`, and, given the manifest, that the key's
/// author is the manifest's provider.
fn verify_package(
    file: &std::path::Path,
    policy: &custos_tlog::TrustPolicy,
    manifest: Option<&custos_wire::manifest::Manifest>,
    allow_unproven_key: bool,
    json: bool,
) -> Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let v = custos_verify::package::verify_package(&text, policy)
        .context("the package does not verify")?;
    let logged = match v.require_logged() {
        Ok(k) => Some(k),
        Err(e) if allow_unproven_key => {
            eprintln!("warning: {e}");
            None
        }
        Err(e) => bail!("{e} (pass --allow-unproven-key to accept that)"),
    };
    if let (Some(m), Some(k)) = (manifest, logged) {
        custos_verify::provider::check_provider(m, k)?;
    }
    if json {
        println!(
            "{}",
            serde_json::json!({
                "verified": true, "sender": v.message.sender,
                "server_time": v.message.server_time, "text": v.message.text,
                "context": v.context.len(),
                "franking_key_logged": logged.is_some(),
                "provider": logged.map(|k| k.provider.clone()),
                "log_index": logged.map(|k| k.index),
                "witnesses": logged.map(|k| k.witnesses.clone()),
            })
        );
    } else {
        println!(
            "verified: {} sent {:?} at {} ({} context messages)",
            v.message.sender,
            v.message.text,
            v.message.server_time,
            v.context.len()
        );
        if let Some(k) = logged {
            println!(
                "franking key published by {} in log {} (entry {} of {}, cosigned by {})",
                k.provider,
                k.origin,
                k.index,
                k.tree_size,
                k.witnesses.join(", ")
            );
        }
    }
    Ok(())
}

/// The log trust policy of `verify-package`: the manifest's, or one built
/// from verifier keys.
fn trust_policy(
    manifest: Option<&custos_wire::manifest::Manifest>,
    log_key: Option<&str>,
    witnesses: &[String],
    quorum: Option<usize>,
) -> Result<custos_tlog::TrustPolicy> {
    use custos_tlog::keys::parse_vkey;
    if let Some(m) = manifest {
        return Ok(custos_tlog::TrustPolicy::from_manifest(m)?);
    }
    let Some(log_key) = log_key else {
        bail!(
            "give the log's trust policy: --manifest FILE, or --log-key VKEY [--witness VKEY ...]"
        );
    };
    let (origin, key) = parse_vkey(log_key, custos_tlog::ALG_ED25519).context("--log-key")?;
    let ws = witnesses
        .iter()
        .map(|w| parse_vkey(w, custos_tlog::ALG_COSIGNATURE_V1).context("--witness"))
        .collect::<Result<Vec<_>>>()?;
    Ok(custos_tlog::TrustPolicy::new(
        &origin,
        key,
        &ws,
        quorum.unwrap_or(ws.len()),
    )?)
}

/// The JSON value at `pointer`, or null.
fn at<'a>(v: &'a serde_json::Value, pointer: &str) -> &'a serde_json::Value {
    v.pointer(pointer).unwrap_or(&serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations() {
        assert_eq!(super::parse_duration("90m").unwrap(), 5400);
        assert_eq!(super::parse_duration("7d").unwrap(), 604_800);
        assert_eq!(super::parse_duration("10").unwrap(), 10);
        assert!(super::parse_duration("5w").is_err());
    }
}
