//! `custos court`: key generation, warrant signing, embargo extension,
//! revocation. Parsing and printing only; the work is in `custos-authority`.

use std::path::PathBuf;

use anyhow::{Context as _, anyhow};
use clap::{Args, Subcommand};
use custos_authority::court::{WarrantOrder, extend_embargo, revoke, sign_warrant};
use custos_authority::dates::{parse_day, parse_time};
use custos_authority::keys::{generate_signing_key, read_signing_key, write_secret};
use custos_wire::ConversationId;

use super::authority::{LogArgs, print};

/// `custos court` subcommands.
#[derive(Debug, Subcommand)]
pub enum CourtCommand {
    /// Generate the court's Ed25519 signing key; prints the public key for the manifest.
    Keygen {
        /// Where to write the private key (mode 0600, never overwritten).
        #[arg(long)]
        out: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sign a warrant (written to --out); it stays private until unsealed.
    SignWarrant(SignWarrantArgs),
    /// Extend a warrant's embargo with a logged, court-signed statement.
    ExtendEmbargo {
        /// The warrant commitment (64 hex digits, from `custos authority submit`).
        #[arg(long)]
        commitment: String,
        /// New end of the embargo: YYYY-MM-DD (UTC) or Unix seconds.
        #[arg(long)]
        until: String,
        #[command(flatten)]
        court: CourtKeyArgs,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Revoke a warrant with a logged, court-signed statement; custodians stop at once.
    Revoke {
        /// The warrant commitment (64 hex digits).
        #[arg(long)]
        commitment: String,
        #[command(flatten)]
        court: CourtKeyArgs,
        #[command(flatten)]
        log: LogArgs,
    },
}

/// The court's identity.
#[derive(Debug, Args)]
pub struct CourtKeyArgs {
    /// The court's manifest name.
    #[arg(long)]
    court: String,
    /// The court's private key file (from `custos court keygen`).
    #[arg(long)]
    key: PathBuf,
}

/// `custos court sign-warrant`.
#[derive(Debug, Args)]
pub struct SignWarrantArgs {
    #[command(flatten)]
    court: CourtKeyArgs,
    /// Target conversation (32 hex digits); repeat for each, at most 16.
    #[arg(long = "conversation", required = true)]
    conversations: Vec<String>,
    /// First day: YYYY-MM-DD (UTC) or a day number.
    #[arg(long)]
    from: String,
    /// Last day (inclusive), at most 31 days after --from.
    #[arg(long)]
    to: String,
    /// End of the embargo: YYYY-MM-DD or Unix seconds (at most 180 days).
    #[arg(long)]
    embargo_until: String,
    /// No release after this: YYYY-MM-DD or Unix seconds.
    #[arg(long)]
    not_after: String,
    /// Legal basis.
    #[arg(long)]
    basis: String,
    /// The authority's manifest name.
    #[arg(long)]
    authority: String,
    /// The authority's HPKE public key (64 hex digits, from `custos authority keygen`).
    #[arg(long)]
    authority_hpke_key: String,
    /// Where to write the signed warrant (binary).
    #[arg(long)]
    out: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs a `custos court` subcommand.
pub async fn run(cmd: CourtCommand) -> anyhow::Result<()> {
    match cmd {
        CourtCommand::Keygen { out, json } => {
            let key = generate_signing_key();
            write_secret(&out, key.as_bytes())?;
            let public = hex::encode(key.verifying_key().as_bytes());
            print(
                json,
                &serde_json::json!({ "public_key": public, "key_file": out }),
                &format!("court public key (put it in the manifest): {public}"),
            )
        }
        CourtCommand::SignWarrant(a) => sign(a),
        CourtCommand::ExtendEmbargo {
            commitment,
            until,
            court,
            log,
        } => {
            let key = read_signing_key(&court.key)?;
            let until = parse_time(&until)
                .ok_or_else(|| anyhow!("--until: expected YYYY-MM-DD or Unix seconds"))?;
            let (client, mut verifier, _) = log.open()?;
            let now = custos_clock::system().now_secs();
            let index = extend_embargo(
                &client,
                &mut verifier,
                &court.court,
                &key,
                hex32(&commitment)?,
                until,
                now,
            )
            .await?;
            print(
                log.json,
                &serde_json::json!({ "embargo_extension_index": index, "embargo_until": until }),
                &format!("embargo extended to {until}; logged as entry {index}"),
            )
        }
        CourtCommand::Revoke {
            commitment,
            court,
            log,
        } => {
            let key = read_signing_key(&court.key)?;
            let (client, mut verifier, _) = log.open()?;
            let now = custos_clock::system().now_secs();
            let index = revoke(
                &client,
                &mut verifier,
                &court.court,
                &key,
                hex32(&commitment)?,
                now,
            )
            .await?;
            print(
                log.json,
                &serde_json::json!({ "revocation_index": index }),
                &format!("warrant revoked; logged as entry {index}"),
            )
        }
    }
}

fn sign(a: SignWarrantArgs) -> anyhow::Result<()> {
    let key = read_signing_key(&a.court.key)?;
    let day = |s: &str, flag| {
        parse_day(s).ok_or_else(|| anyhow!("{flag}: expected YYYY-MM-DD or a day number"))
    };
    let time = |s: &str, flag| {
        parse_time(s).ok_or_else(|| anyhow!("{flag}: expected YYYY-MM-DD or Unix seconds"))
    };
    let targets = a
        .conversations
        .iter()
        .map(|c| ConversationId::from_hex(c).map_err(|e| anyhow!("--conversation {c}: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let warrant = sign_warrant(
        WarrantOrder {
            court: a.court.court,
            authority: a.authority,
            authority_hpke_key: hex32(&a.authority_hpke_key).context("--authority-hpke-key")?,
            legal_basis: a.basis,
            targets,
            days: (day(&a.from, "--from")?, day(&a.to, "--to")?),
            issued_at: custos_clock::system().now_secs(),
            not_after: time(&a.not_after, "--not-after")?,
            embargo_until: time(&a.embargo_until, "--embargo-until")?,
        },
        &key,
    )?;
    let bytes = warrant.encode()?;
    std::fs::write(&a.out, &bytes).with_context(|| format!("cannot write {}", a.out.display()))?;
    let f = warrant.fields();
    print(
        a.json,
        &serde_json::json!({
            "warrant_file": a.out,
            "id": hex::encode(f.id),
            "targets": f.targets.len(),
            "first_day": f.first_day,
            "last_day": f.last_day,
        }),
        &format!(
            "warrant {} signed: {} conversations, days {}..={}; written to {}",
            hex::encode(f.id),
            f.targets.len(),
            f.first_day,
            f.last_day,
            a.out.display()
        ),
    )
}

pub(crate) fn hex32(s: &str) -> anyhow::Result<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s.trim(), &mut out).map_err(|_| anyhow!("expected 64 hex digits"))?;
    Ok(out)
}
