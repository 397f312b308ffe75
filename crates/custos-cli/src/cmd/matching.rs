//! `custos matching`: the tooling of known-content detection outside the
//! service. A child-protection organisation makes its key (`org-keygen`)
//! and signs its list of PDQ hashes (`sign-list`) over the provider's salt
//! (`salt`); the provider combines two organisations' lists under the
//! two-source rule into the blinded table and its secret (`build-table`),
//! which `custos server --matching-table --matching-secret` serves and logs
//! (statements 13 and 14). See `docs/design/0017-threshold-matching.md`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use custos_psi::list::{SignedList, combine};
use custos_psi::{ProviderSecret, TableParams, build_table};
use ed25519_dalek::SigningKey;
use rand_core::{OsRng, RngCore as _};

/// `custos matching ...`
#[derive(Debug, clap::Subcommand)]
pub enum MatchingCommand {
    /// An organisation's entry-signing key: writes the secret (32 bytes)
    /// to FILE and prints the public key for the manifest's `[matching]`
    /// section.
    OrgKeygen {
        /// Where to write the secret key (created, never overwritten).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// The provider's salt for the next table (64 hex digits), which it
    /// gives both organisations to sign with.
    Salt,
    /// An organisation signs its hashes: each one's salted commitment,
    /// with its key. Writes the signed list (docs/spec/psi.md).
    SignList(SignListArgs),
    /// The provider builds the blinded table from both organisations'
    /// signed lists: only hashes signed by both (as the manifest names
    /// them) are listed.
    BuildTable(BuildTableArgs),
}

/// `custos matching sign-list`
#[derive(Debug, clap::Args)]
pub struct SignListArgs {
    /// The organisation's secret key (`custos matching org-keygen`).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// The provider's salt, 64 hex digits.
    #[arg(long, value_name = "HEX")]
    pub salt: String,
    /// PDQ hashes, 64 hex digits a line (`#` starts a comment).
    #[arg(long, value_name = "FILE")]
    pub hashes: Option<PathBuf>,
    /// Pictures to list: each adds the PDQ hashes of its 8 rotations and
    /// flips, so that a turned copy matches too.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub pictures: Vec<PathBuf>,
    /// Where to write the signed list.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// `custos matching build-table`
#[derive(Debug, clap::Args)]
pub struct BuildTableArgs {
    /// The deployment manifest; its `[matching]` section names the two
    /// organisations (first A, then B).
    #[arg(long, value_name = "FILE")]
    pub manifest: PathBuf,
    /// Organisation A's signed list.
    #[arg(long, value_name = "FILE")]
    pub org_a: PathBuf,
    /// Organisation B's signed list.
    #[arg(long, value_name = "FILE")]
    pub org_b: PathBuf,
    /// Where to write the table (served with `custos server --matching-table`).
    #[arg(long, value_name = "FILE")]
    pub table_out: PathBuf,
    /// Where to write the provider's blinding secret (created, never
    /// overwritten; `custos server --matching-secret`).
    #[arg(long, value_name = "FILE")]
    pub secret_out: PathBuf,
    /// Samples per hash.
    #[arg(long, default_value_t = custos_psi::DEFAULT_SLOTS)]
    pub slots: u8,
    /// Bits per sample.
    #[arg(long, default_value_t = custos_psi::DEFAULT_SAMPLE_BITS)]
    pub sample_bits: u8,
}

/// Runs a `custos matching` command.
pub fn run(cmd: MatchingCommand) -> anyhow::Result<()> {
    match cmd {
        MatchingCommand::OrgKeygen { out } => {
            let key = SigningKey::generate(&mut OsRng);
            write_secret(&out, &key.to_bytes())?;
            println!("{}", hex::encode(key.verifying_key().to_bytes()));
            Ok(())
        }
        MatchingCommand::Salt => {
            let mut salt = [0u8; 32];
            OsRng.fill_bytes(&mut salt);
            println!("{}", hex::encode(salt));
            Ok(())
        }
        MatchingCommand::SignList(a) => sign_list(a),
        MatchingCommand::BuildTable(a) => build(a),
    }
}

fn sign_list(a: SignListArgs) -> anyhow::Result<()> {
    let key: [u8; 32] = std::fs::read(&a.key)
        .with_context(|| format!("reading the organisation key {}", a.key.display()))?
        .try_into()
        .map_err(|_| anyhow::anyhow!("{} is not a 32-byte key", a.key.display()))?;
    let key = SigningKey::from_bytes(&key);
    let salt = parse32(&a.salt).context("--salt must be 64 hex digits")?;
    let mut hashes = Vec::new();
    if let Some(path) = &a.hashes {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            hashes.push(parse32(line).with_context(|| {
                format!("{} line {}: not a 64-hex-digit hash", path.display(), n + 1)
            })?);
        }
    }
    for p in &a.pictures {
        let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        let picture =
            custos_media::decode(&bytes).with_context(|| format!("decoding {}", p.display()))?;
        for (_, h) in custos_media::dihedral_hashes(&picture) {
            hashes.push(*h.hash.as_bytes());
        }
    }
    anyhow::ensure!(
        !hashes.is_empty(),
        "nothing to sign: pass --hashes FILE or --pictures FILE..."
    );
    let list = SignedList::sign(&key, &salt, &hashes)?;
    custos_durable::write_atomic(&a.out, &list.encode())
        .with_context(|| format!("writing {}", a.out.display()))?;
    println!(
        "signed {} hashes as {} into {}",
        list.entries().len(),
        hex::encode(list.organisation()),
        a.out.display()
    );
    Ok(())
}

fn build(a: BuildTableArgs) -> anyhow::Result<()> {
    let manifest = super::log::read_manifest(&a.manifest)?;
    let section = manifest
        .matching
        .as_ref()
        .context("the manifest has no [matching] section naming the two organisations")?;
    let orgs = section.organisation_keys()?;
    let read = |p: &Path| -> anyhow::Result<SignedList> {
        let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        SignedList::decode(&bytes).with_context(|| format!("{}", p.display()))
    };
    let list_a = read(&a.org_a)?;
    let list_b = read(&a.org_b)?;
    let combined = combine(&list_a, &list_b, (&orgs.0, &orgs.1))?;
    let secret = ProviderSecret::generate(&mut OsRng);
    let table = build_table(
        &secret,
        TableParams {
            slots: a.slots,
            sample_bits: a.sample_bits,
        },
        (&orgs.0, &orgs.1),
        &combined.salt,
        &combined.listed,
        &mut OsRng,
    )?;
    write_secret(&a.secret_out, &secret.expose_bytes())?;
    custos_durable::write_atomic(&a.table_out, &table.encode())
        .with_context(|| format!("writing {}", a.table_out.display()))?;
    println!(
        "table {} lists {} hashes signed by both organisations \
         ({} signed by A only and {} by B only were left out); root {}",
        a.table_out.display(),
        combined.listed.len(),
        combined.only_a,
        combined.only_b,
        hex::encode(table.root())
    );
    Ok(())
}

fn parse32(text: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = hex::decode(text.trim())?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| anyhow::anyhow!("not 32 bytes"))
}

/// Writes a secret file that must not exist yet, readable by its owner only.
fn write_secret(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut f = options
        .open(path)
        .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}
