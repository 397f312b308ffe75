//! `custos authority`: key generation, warrant commitment, collection of
//! key shares. Parsing and printing only; the work is in `custos-authority`.

use std::path::PathBuf;

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Subcommand};
use custos_authority::collect::{AuthorityKeys, CustodianAnswer, collect};
use custos_authority::keys::{
    HpkeKeyPair, generate_signing_key, read_secret, read_signing_key, write_secret,
};
use custos_authority::store::seal_keys;
use custos_authority::submit::{SubmittedWarrant, submit};
use custos_tlog::{LogClient, TrustPolicy, Verifier};
use custos_wire::manifest::Manifest;
use custos_wire::release::ConversationDay;
use custos_wire::warrant::Warrant;

/// `custos authority` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuthorityCommand {
    /// Generate the authority's signing key and HPKE key (files with mode 0600).
    Keygen {
        /// Directory for `signing.key` and `hpke.key` (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Log the warrant's commitment and wait for the witness quorum.
    Submit {
        /// The signed warrant file (from `custos court sign-warrant`).
        warrant: PathBuf,
        /// The authority's signing key file.
        #[arg(long)]
        key: PathBuf,
        /// Where to write the submission record (JSON; holds the salt: keep it private).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Ask every custodian for its shares, verify them, combine t per
    /// conversation-day, and store the identity keys encrypted.
    Collect {
        /// The submission record (from `custos authority submit`).
        submission: PathBuf,
        /// The authority's signing key file.
        #[arg(long)]
        key: PathBuf,
        /// The authority's HPKE key file.
        #[arg(long)]
        hpke_key: PathBuf,
        /// Where to write the encrypted identity keys.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Present the logged warrant to the provider, which checks it, logs
    /// its interception and keeps the warranted conversation-days' items.
    Intercept {
        /// The submission record (from `custos authority submit`).
        submission: PathBuf,
        /// The authority's signing key file.
        #[arg(long)]
        key: PathBuf,
        /// The delivery service's URL.
        #[arg(long, env = "CUSTOS_SERVER")]
        server: String,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Fetch what the provider keeps under the warrant, open it with the
    /// collected identity keys, check every message, and write
    /// `evidence.json` and `report.html` to --out.
    Decrypt {
        /// The submission record (from `custos authority submit`).
        submission: PathBuf,
        /// The authority's signing key file.
        #[arg(long)]
        key: PathBuf,
        /// The authority's HPKE key file.
        #[arg(long)]
        hpke_key: PathBuf,
        /// The encrypted identity keys (from `custos authority collect`).
        #[arg(long)]
        keys: PathBuf,
        /// The delivery service's URL.
        #[arg(long, env = "CUSTOS_SERVER")]
        server: String,
        /// The evidence folder (created if missing).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        log: LogArgs,
    },
}

/// Where the log is and how to trust it.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// The deployment manifest (TOML).
    #[arg(long)]
    manifest: PathBuf,
    /// The log's base URL (default: the log's endpoint in the manifest).
    #[arg(long)]
    log: Option<String>,
    /// Where the last witnessed checkpoint seen is kept, so that a log that
    /// forks or rolls back is caught (default:
    /// `~/.custos/checkpoints/ORIGIN-KEY`, one file per log key).
    #[arg(long, env = "CUSTOS_CHECKPOINT_FILE")]
    checkpoint_file: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `~/.custos/checkpoints/ORIGIN-KEY`: one file per log and log key, so
/// two deployments never share one.
fn default_checkpoint_file(manifest: &Manifest) -> anyhow::Result<PathBuf> {
    let log = manifest
        .log()
        .ok_or_else(|| anyhow!("the manifest names no log"))?;
    let home = std::env::var_os("HOME").ok_or_else(|| anyhow!("set --checkpoint-file or HOME"))?;
    let dir = PathBuf::from(home).join(".custos").join("checkpoints");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let key: String = log.public_key.chars().take(16).collect();
    Ok(dir.join(format!("{}-{key}", log.name)))
}

impl LogArgs {
    /// The log client, a verifier with the manifest's witness quorum, and the manifest.
    pub fn open(&self) -> anyhow::Result<(LogClient, Verifier, Manifest)> {
        let text = std::fs::read_to_string(&self.manifest)
            .with_context(|| format!("cannot read {}", self.manifest.display()))?;
        let manifest = Manifest::from_toml(&text)?;
        let url = match &self.log {
            Some(u) => u.clone(),
            None => manifest
                .log()
                .and_then(|l| l.endpoint.clone())
                .ok_or_else(|| anyhow!("the manifest's log has no endpoint; pass --log URL"))?,
        };
        let checkpoint_file = match &self.checkpoint_file {
            Some(f) => f.clone(),
            None => default_checkpoint_file(&manifest)?,
        };
        let verifier = Verifier::open(TrustPolicy::from_manifest(&manifest)?, &checkpoint_file)
            .with_context(|| format!("the last checkpoint seen, {}", checkpoint_file.display()))?;
        Ok((LogClient::new(&url)?, verifier, manifest))
    }
}

/// Prints `value` as JSON or `text` for people.
pub fn print(json: bool, value: &serde_json::Value, text: &str) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        println!("{text}");
    }
    Ok(())
}

/// Runs a `custos authority` subcommand.
pub async fn run(cmd: AuthorityCommand) -> anyhow::Result<()> {
    match cmd {
        AuthorityCommand::Keygen { out, json } => {
            std::fs::create_dir_all(&out)?;
            let signing = generate_signing_key();
            let hpke = HpkeKeyPair::generate();
            write_secret(&out.join("signing.key"), signing.as_bytes())?;
            write_secret(&out.join("hpke.key"), hpke.expose_seed())?;
            let public = hex::encode(signing.verifying_key().as_bytes());
            let hpke_public = hex::encode(hpke.public_key());
            print(
                json,
                &serde_json::json!({ "public_key": public, "hpke_public_key": hpke_public, "dir": out }),
                &format!(
                    "authority public key (manifest): {public}\nHPKE public key (for warrants): {hpke_public}"
                ),
            )
        }
        AuthorityCommand::Submit {
            warrant,
            key,
            out,
            log,
        } => {
            let bytes = std::fs::read(&warrant)
                .with_context(|| format!("cannot read {}", warrant.display()))?;
            let w = Warrant::decode(&bytes)?;
            let key = read_signing_key(&key)?;
            let (client, mut verifier, _) = log.open()?;
            let s = submit(&client, &mut verifier, &w, &key).await?;
            std::fs::write(&out, serde_json::to_vec_pretty(&s)?)
                .with_context(|| format!("cannot write {}", out.display()))?;
            print(
                log.json,
                &serde_json::json!({ "commitment": s.commitment, "index": s.index, "submission": out }),
                &format!(
                    "commitment {} logged as entry {} and witnessed",
                    s.commitment, s.index
                ),
            )
        }
        AuthorityCommand::Intercept {
            submission,
            key,
            server,
            log,
        } => super::interception::intercept(&submission, &key, &server, &log).await,
        AuthorityCommand::Decrypt {
            submission,
            key,
            hpke_key,
            keys,
            server,
            out,
            log,
        } => {
            super::interception::decrypt(
                super::interception::DecryptArgs {
                    submission: &submission,
                    key: &key,
                    hpke_key: &hpke_key,
                    keys: &keys,
                    server: &server,
                    out: &out,
                },
                &log,
            )
            .await
        }
        AuthorityCommand::Collect {
            submission,
            key,
            hpke_key,
            out,
            log,
        } => {
            let s: SubmittedWarrant = serde_json::from_slice(
                &std::fs::read(&submission)
                    .with_context(|| format!("cannot read {}", submission.display()))?,
            )?;
            let signing = read_signing_key(&key)?;
            let hpke = HpkeKeyPair::from_seed(*read_secret(&hpke_key)?);
            let (client, mut verifier, manifest) = log.open()?;
            let w = s.warrant()?;
            let now = custos_clock::system();
            let today = now.today();
            let f = w.fields();
            let mut requested = Vec::new();
            for c in &f.targets {
                for day in f.first_day..=f.last_day.min(today) {
                    requested.push(ConversationDay {
                        conversation: *c,
                        day,
                    });
                }
            }
            if requested.is_empty() {
                bail!("no day of the warrant has started yet");
            }
            let got = collect(
                &manifest,
                &client,
                &mut verifier,
                &s,
                AuthorityKeys {
                    signing: &signing,
                    hpke: &hpke,
                },
                requested,
                now.now_secs(),
            )
            .await?;
            std::fs::write(&out, seal_keys(&got.keys, &hpke)?)
                .with_context(|| format!("cannot write {}", out.display()))?;
            let answers: serde_json::Map<String, serde_json::Value> = got
                .answers
                .iter()
                .map(|(n, a)| {
                    let v = match a {
                        CustodianAnswer::Released { key_release_index, shares } => serde_json::json!({ "released": shares.len(), "key_release_index": key_release_index }),
                        CustodianAnswer::Refused(r) => serde_json::json!({ "refused": r }),
                    };
                    (n.clone(), v)
                })
                .collect();
            print(
                log.json,
                &serde_json::json!({ "identity_keys": got.keys.len(), "out": out, "custodians": answers }),
                &format!(
                    "{} identity keys combined and stored encrypted in {}",
                    got.keys.len(),
                    out.display()
                ),
            )
        }
    }
}
