//! `custos demo`: the story of DESIGN.md §9 on loopback, with real services
//! in a temporary folder. This part covers messaging; later parts add the
//! log, custodians, warrants and reporting.

use std::time::Instant;

use anyhow::{Context as _, Result, ensure};
use clap::Args;
use custos_client::{Device, Outcome};
use custos_wire::frames::ItemKind;
use serde::Serialize;

use super::json_field;

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

/// A transparency log with two witnesses (quorum 2) on loopback, and a
/// manifest naming them and the provider's statement key.
struct DemoLog {
    url: String,
    manifest: custos_wire::manifest::Manifest,
    provider: ed25519_dalek::SigningKey,
    handle: custos_log_server::LogHandle,
}

async fn start_log(dir: &std::path::Path) -> Result<DemoLog> {
    use custos_tlog::{ALG_COSIGNATURE_V1, ALG_ED25519, NamedKey};
    use custos_wire::manifest::{Manifest, Participant, Policy, Role};
    let participant =
        |name: &str, role: Role, key: [u8; 32], endpoint: Option<String>| Participant {
            name: name.into(),
            role,
            jurisdiction: "EU".into(),
            endpoint,
            public_key: hex::encode(key),
        };
    let log_key = NamedKey::generate("log.demo.custos", ALG_ED25519)?;
    let provider = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    let mut ps = vec![
        participant(
            log_key.name(),
            Role::Log,
            log_key.verifying_key().to_bytes(),
            None,
        ),
        participant(
            "provider.demo.custos",
            Role::Provider,
            provider.verifying_key().to_bytes(),
            None,
        ),
    ];
    for name in ["witness-1.demo.custos", "witness-2.demo.custos"] {
        let key = NamedKey::generate(name, ALG_COSIGNATURE_V1)?;
        let public = key.verifying_key().to_bytes();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = custos_witness_server::spawn_witness(
            listener,
            custos_witness_server::WitnessConfig {
                data: dir.join(name),
                key,
                logs: vec![(log_key.name().to_owned(), log_key.verifying_key())],
                clock: custos_clock::system(),
            },
        )
        .await?;
        ps.push(participant(
            name,
            Role::Witness,
            public,
            Some(format!("http://{addr}")),
        ));
    }
    let manifest = Manifest::new(2, 1, Policy::default(), ps)?;
    // Public: what `custos moderate verify-package --manifest` and `custos audit` take.
    std::fs::write(dir.join("manifest.toml"), manifest.to_toml()?)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let handle = custos_log_server::spawn_log(
        listener,
        custos_log_server::LogConfig {
            data: dir.join("log"),
            signed_size: dir.join("log.signed-size"),
            key: log_key,
            manifest: manifest.clone(),
            clock: custos_clock::system(),
            max_batch: 256,
        },
    )
    .await?;
    Ok(DemoLog {
        url: format!("http://{}", handle.addr),
        manifest,
        provider,
        handle,
    })
}

async fn story(n: &mut Narrator, dir: &std::path::Path) -> Result<()> {
    let clock = custos_clock::system();
    let log = start_log(dir).await?;
    n.step(
        "transparency log",
        true,
        format!(
            "log {} on {} with two witnesses (quorum 2)",
            log.manifest.log().map(|l| l.name.as_str()).unwrap_or("?"),
            log.url
        ),
    )?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let franking = std::sync::Arc::new(custos_server::FrankingPolicy::open(
        &dir.join("server"),
        clock.clone(),
    )?);
    let server = tokio::spawn(custos_server::serve(
        listener,
        custos_server::ServerConfig::new(dir.join("server"))
            .with_franking(franking.clone())
            .with_franking_log(custos_server::franking_log::FrankingLogConfig {
                log_url: log.url.clone(),
                manifest: log.manifest.clone(),
                statement_key: log.provider.clone(),
                witness_timeout: std::time::Duration::from_secs(20),
            }),
        clock.clone(),
        async {
            let _ = stop_rx.await;
        },
    ));
    n.step(
        "delivery service",
        true,
        format!("listening on {url}, SQLite in WAL mode"),
    )?;
    let started = Instant::now();
    let proof = loop {
        if let custos_server::package::FrankingKeyLogProof::Logged(p) = franking.log_proof() {
            break Some(p);
        }
        if started.elapsed() > std::time::Duration::from_secs(30) {
            break None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let policy = custos_tlog::TrustPolicy::from_manifest(&log.manifest)?;
    let logged = proof.as_ref().map(|p| p.verify(&policy)).transpose()?;
    n.step(
        "franking key in the log",
        logged
            .as_ref()
            .is_some_and(|k| k.public_key == franking.public_key()),
        match &logged {
            Some(k) => format!(
                "the provider signed a provider_franking_key statement for key {}...; it is \
                 entry {} of a checkpoint of size {} cosigned by {}",
                &hex::encode(k.public_key)[..16],
                k.index,
                k.tree_size,
                k.witnesses.join(" and ")
            ),
            None => "the key was not logged within 30 s".into(),
        },
    )?;

    let mut users = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let d = Device::register(&dir.join(name), &url, name, clock.clone())
            .await
            .with_context(|| format!("registering {name}"))?;
        users.push(d);
    }
    let [mut alice, mut bob, mut carol]: [Device; 3] = users
        .try_into()
        .map_err(|_| anyhow::anyhow!("three users"))?;
    n.step(
        "accounts",
        true,
        "alice, bob and carol registered with Ed25519 identity keys and uploaded MLS KeyPackages",
    )?;

    let dm = alice.create_conversation(&["bob".into()]).await?;
    alice.send_text(&dm, "Hi Bob, lunch tomorrow?").await?;
    let got = bob.receive(None).await?;
    n.step(
        "one-to-one",
        got.len() == 1 && got.iter().all(|m| m.sender == "alice"),
        format!(
            "conversation {} (an MLS group of two); bob decrypted {:?}",
            &dm.to_hex()[..8],
            got.iter().map(|m| m.text.as_str()).collect::<Vec<_>>()
        ),
    )?;

    let group = alice
        .create_conversation(&["bob".into(), "carol".into()])
        .await?;
    bob.sync().await?;
    carol.sync().await?;
    alice.send_text(&group, "Welcome to the group!").await?;
    bob.send_text(&group, "Thanks, Alice.").await?;
    let c = carol.receive(None).await?;
    n.step(
        "group of three",
        c.len() == 2,
        format!(
            "carol read {:?}; each sender's chain root went over MLS, content under sender chains",
            c.iter()
                .map(|m| format!("{}: {}", m.sender, m.text))
                .collect::<Vec<_>>()
        ),
    )?;

    alice.remove_members(&group, &["carol".into()]).await?;
    let outcomes = carol.sync().await?;
    alice
        .send_text(&group, "Carol has left; this is for Bob only.")
        .await?;
    let raw = bob.api().fetch(0, 1000).await?;
    let mut refused = 0;
    for (i, mut d) in raw
        .into_iter()
        .filter(|d| d.kind != ItemKind::Commit)
        .enumerate()
    {
        d.seq = 1_000_000 + i as u64;
        if carol.process_delivery(d)? != Outcome::Message {
            refused += 1;
        }
    }
    let carol_new = carol.receive(None).await?;
    let bob_new = bob.receive(None).await?;
    n.step(
        "removal",
        outcomes.contains(&Outcome::Removed) && carol_new.is_empty() && refused > 0 && bob_new.len() == 2,
        format!(
            "carol was removed; handed the {refused} items sent afterwards, she could open none; bob read {} messages",
            bob_new.len()
        ),
    )?;

    let data = dir.join("server");
    let mut leaked = false;
    for entry in std::fs::read_dir(&data)? {
        let bytes = std::fs::read(entry?.path()).unwrap_or_default();
        leaked |= bytes.windows(5).any(|w| w == b"Lunch" || w == b"lunch");
    }
    n.step(
        "server sees ciphertext only",
        !leaked,
        "no message text in the server's files",
    )?;

    let services = Services {
        url: &url,
        franking: &franking,
        log: &log,
    };
    reporting(n, dir, &services, &mut alice, &mut bob, &dm).await?;

    let _ = stop_tx.send(());
    server.await??;
    log.handle.abort();
    Ok(())
}

/// The running services the reporting story uses.
struct Services<'a> {
    url: &'a str,
    franking: &'a custos_server::FrankingPolicy,
    log: &'a DemoLog,
}

/// The reporting story: a message reported and verified, a forged report
/// refused, the sender suspended and the report escalated.
async fn reporting(
    n: &mut Narrator,
    dir: &std::path::Path,
    services: &Services<'_>,
    alice: &mut Device,
    bob: &mut Device,
    dm: &custos_wire::ConversationId,
) -> Result<()> {
    let Services { url, franking, log } = *services;
    alice
        .send_text(dm, "Pay me 500 or your photos go public.")
        .await?;
    let got = bob.receive(None).await?;
    let abusive = got
        .iter()
        .find(|m| m.text.starts_with("Pay me"))
        .context("bob did not receive the message")?;
    let report_id = bob.report(dm, &abusive.id, "extortion", 1).await?;
    n.step(
        "report verified",
        report_id > 0,
        format!(
            "bob reported alice's message with one context message; the service checked the \
             franking commitment and its own delivery tag (key {}...) and queued report {report_id}",
            &hex::encode(franking.public_key())[..16]
        ),
    )?;

    let mut forged = bob.build_report(dm, &abusive.id, "forged", 0)?;
    let last = forged.message.payload.len().saturating_sub(2);
    if let Some(b) = forged.message.payload.get_mut(last) {
        *b ^= 0x20;
    }
    let refusal = bob.api().submit_report(&forged.encode()?).await;
    let refused_ok = matches!(&refusal, Err(custos_client::api::ApiError::Refused { code, .. }) if code == "franking_mismatch");
    n.step(
        "forged report refused",
        refused_ok,
        "bob changed one character of the revealed text; the service refused: franking_mismatch",
    )?;

    let moderator = Device::register(&dir.join("mod"), url, "mod", custos_clock::system()).await?;
    custos_server::moderation::add_moderator(&dir.join("server"), "mod").await?;
    let r = moderator
        .api()
        .moderation_resolve(report_id, "suspend", "extortion, 2 s for the demo", Some(2))
        .await?;
    let refused = alice.send_text(dm, "hello?").await;
    n.step(
        "sender suspended",
        json_field(&r, "status") == "suspended"
            && refused
                .as_ref()
                .is_err_and(|e| e.to_string().contains("suspended")),
        format!(
            "moderator mod suspended alice; her next send was refused: {}",
            refused.err().map(|e| e.to_string()).unwrap_or_default()
        ),
    )?;

    let esc = moderator
        .api()
        .moderation_resolve(report_id, "escalate", "for the clearinghouse", None)
        .await?;
    let package = serde_json::to_string_pretty(json_field(&esc, "package"))?;
    let package_file = dir.join("report-package.json");
    std::fs::write(&package_file, &package)?;
    // What a clearinghouse does: the package plus the log's public trust
    // policy (log key, witness keys, quorum), nothing from the service.
    let policy = custos_tlog::TrustPolicy::from_manifest(&log.manifest)?;
    let verified = custos_server::package::verify_package(&package, &policy)?;
    let key = verified.require_logged()?;
    n.step(
        "package verifies publicly",
        verified.message.sender == "alice" && key.public_key == franking.public_key(),
        format!(
            "{} verified with only the package and the log's trust policy: alice sent {:?}; \
             the tags' key is entry {} of log {}, published by {}, cosigned by {} witnesses",
            package_file.display(),
            verified.message.text,
            key.index,
            key.origin,
            key.provider,
            key.witnesses.len()
        ),
    )?;
    let mut forged: custos_server::package::ReportPackage = serde_json::from_str(&package)?;
    forged.franking_public_key = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode([0x42; 32])
    };
    let refused = custos_server::package::verify_package(&serde_json::to_string(&forged)?, &policy);
    n.step(
        "package with another key refused",
        matches!(
            refused,
            Err(custos_server::package::PackageError::UnpublishedKey)
        ),
        "the same package claiming another franking key is refused: the log publishes another key",
    )?;

    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    alice.send_text(dm, "Sorry.").await?;
    let stats = moderator.api().moderation_stats().await?;
    n.step(
        "suspension ended",
        json_field(&stats, "reports_verified") == 1 && json_field(&stats, "reports_refused") == 1,
        format!(
            "after 2 s alice could send again; published figures: {} received, {} verified, \
             {} refused, actions {}",
            json_field(&stats, "reports_received"),
            json_field(&stats, "reports_verified"),
            json_field(&stats, "reports_refused"),
            json_field(&stats, "actions")
        ),
    )?;
    Ok(())
}
