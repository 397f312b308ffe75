//! `custos authority intercept` and `custos authority decrypt`: the
//! authority at the provider, and the evidence bundle it writes.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use custos_authority::keys::{HpkeKeyPair, read_secret, read_signing_key};
use custos_authority::store::open_keys;
use custos_authority::submit::SubmittedWarrant;

use super::authority::{LogArgs, print};

fn read_submission(path: &Path) -> anyhow::Result<SubmittedWarrant> {
    Ok(serde_json::from_slice(&std::fs::read(path).with_context(
        || format!("cannot read {}", path.display()),
    )?)?)
}

/// `custos authority intercept SUBMISSION --key FILE --server URL`.
pub async fn intercept(
    submission: &Path,
    key: &Path,
    server: &str,
    log: &LogArgs,
) -> anyhow::Result<()> {
    let s = read_submission(submission)?;
    let signing = read_signing_key(key)?;
    let (client, mut verifier, manifest) = log.open()?;
    let started = custos_authority::intercept::intercept(
        &manifest,
        &client,
        &mut verifier,
        &s,
        &signing,
        server,
        custos_clock::system().now_secs(),
    )
    .await?;
    print(
        log.json,
        &serde_json::json!({
            "commitment": started.commitment,
            "log_index": started.log_index,
            "kept": started.kept,
        }),
        &format!(
            "the provider logged its interception as entry {} and keeps the warranted items \
             ({} already stored)",
            started.log_index, started.kept
        ),
    )
}

/// What `custos authority decrypt` needs.
pub struct DecryptArgs<'a> {
    pub submission: &'a Path,
    pub key: &'a Path,
    pub hpke_key: &'a Path,
    pub keys: &'a Path,
    pub server: &'a str,
    pub out: &'a PathBuf,
}

/// `custos authority decrypt`: fetch what the provider keeps, open it with
/// the released keys, and write `evidence.json` and `report.html` to `out`.
pub async fn decrypt(a: DecryptArgs<'_>, log: &LogArgs) -> anyhow::Result<()> {
    let s = read_submission(a.submission)?;
    let signing = read_signing_key(a.key)?;
    let hpke = HpkeKeyPair::from_seed(*read_secret(a.hpke_key)?);
    let keys = open_keys(
        &std::fs::read(a.keys).with_context(|| format!("cannot read {}", a.keys.display()))?,
        &hpke,
    )?;
    let (client, mut verifier, manifest) = log.open()?;
    let commitment: [u8; 32] = hex::decode(&s.commitment)
        .ok()
        .and_then(|b| b.try_into().ok())
        .context("the submission's commitment is not 32 bytes of hex")?;
    let clock = custos_clock::system();
    let items =
        custos_authority::intercept::fetch_kept(a.server, &commitment, &signing, move || {
            clock.now_secs()
        })
        .await?;
    let warrant = s.warrant()?;
    let cp = client.update(&mut verifier).await?;
    let mut days: Vec<u32> = keys.keys().map(|cd| cd.day).collect();
    days.dedup();
    let day_keys =
        custos_authority::collect::day_keys_from_log(&manifest, &client, cp.size(), &days).await?;
    let franking =
        custos_authority::intercept::franking_key_from_log(&manifest, &client, cp.size()).await?;
    let by_cd = keys
        .iter()
        .map(|(cd, k)| ((cd.conversation, cd.day), *k))
        .collect();
    let opened =
        custos_verify::intercepted::open_kept(&warrant, &items, &by_cd, &day_keys, &franking);
    let bundle = custos_authority::evidence::build(
        &manifest,
        &client,
        &mut verifier,
        &s,
        &keys,
        &items,
        &opened,
    )
    .await?;
    let verdict = match custos_verify::evidence::verify_evidence(&bundle, None) {
        Ok(_) => "verified offline against the manifest: every message, signature, tag, \
                  capsule and key checks"
            .to_owned(),
        Err(e) => format!("DOES NOT VERIFY: {e}"),
    };
    std::fs::create_dir_all(a.out)?;
    custos_durable::write_atomic(
        &a.out.join("evidence.json"),
        &serde_json::to_vec_pretty(&bundle)?,
    )?;
    custos_durable::write_atomic(
        &a.out.join("report.html"),
        custos_authority::evidence::render_html(&bundle, &verdict).as_bytes(),
    )?;
    print(
        log.json,
        &serde_json::json!({
            "messages": opened.messages.len(),
            "failures": opened.failures.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
            "outside_warrant": opened.outside_warrant,
            "out": a.out,
        }),
        &format!(
            "{} messages recovered ({} items could not be opened); evidence in {}",
            opened.messages.len(),
            opened.failures.len(),
            a.out.display()
        ),
    )
}
