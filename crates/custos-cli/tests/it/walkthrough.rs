//! The README's walkthrough, run with the real `custos` binary against a
//! real `custos server` on loopback; and `custos demo --json`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

use crate::common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(data: &Path) -> (Server, String) {
    let (child, addr) = common::spawn_listening(
        Command::new(env!("CARGO_BIN_EXE_custos"))
            .args(["server", "--listen", "127.0.0.1:0"])
            .arg("--data")
            .arg(data)
            .env("RUST_LOG", "warn")
            .env_remove("CUSTOS_CONFIG"),
    );
    (Server(child), format!("http://{addr}"))
}

/// Runs `custos` with `args` (and `stdin`), with a config file in `dir`.
fn custos(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_custos"))
        .args(args)
        .env("CUSTOS_CONFIG", dir.join("custos.toml"))
        .env_remove("CUSTOS_HOME")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = custos(dir, args, None);
    assert!(
        out.status.success(),
        "custos {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The messages `receive --json` printed (its other events, such as
/// refused items, are left out).
fn received(dir: &Path, home: &str) -> Vec<Value> {
    ok(dir, &["--home", home, "receive", "--json"])
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v.get("text").is_some())
        .collect()
}

#[test]
fn readme_walkthrough_with_the_real_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (_server, url) = start_server(&dir.join("data"));
    // The server URL comes from the config file, not a flag.
    std::fs::write(
        dir.join("custos.toml"),
        format!("[register]\nserver = \"{url}\"\n"),
    )
    .unwrap();
    let home = |u: &str| dir.join(u).display().to_string();
    let (alice, bob, carol) = (home("alice"), home("bob"), home("carol"));
    for (h, name) in [(&alice, "alice"), (&bob, "bob"), (&carol, "carol")] {
        let out: Value =
            serde_json::from_str(&ok(dir, &["--home", h, "register", "--json", name])).unwrap();
        assert_eq!(out["name"], name);
    }

    let dm = ok(dir, &["--home", &alice, "conversation", "create", "bob"])
        .trim()
        .to_owned();
    assert_eq!(dm.len(), 32);
    let group: Value = serde_json::from_str(&ok(
        dir,
        &[
            "--home",
            &alice,
            "conversation",
            "create",
            "--json",
            "bob",
            "carol",
        ],
    ))
    .unwrap();
    let group = group["conversation"].as_str().unwrap().to_owned();

    ok(dir, &["--home", &alice, "send", &dm, "Hi Bob"]);
    let out = custos(
        dir,
        &["--home", &alice, "send", &group, "-"],
        Some("Hello group"),
    );
    assert!(out.status.success());

    let bob_got = received(dir, &bob);
    let texts: Vec<_> = bob_got
        .iter()
        .map(|m| {
            (
                m["conversation"].as_str().unwrap(),
                m["text"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(texts.contains(&(dm.as_str(), "Hi Bob")), "{bob_got:?}");
    assert!(
        texts.contains(&(group.as_str(), "Hello group")),
        "{bob_got:?}"
    );
    for m in &bob_got {
        assert_eq!(m["sender"], "alice");
        assert!(m["sent_at"].is_u64() || m["sent_at"].is_string(), "{m}");
    }
    // Bob reports alice's direct message; the service (franking on by
    // default) verifies the commitment and its own delivery tag.
    let hi = bob_got.iter().find(|m| m["text"] == "Hi Bob").unwrap();
    let report: Value = serde_json::from_str(&ok(
        dir,
        &[
            "--home",
            &bob,
            "report",
            &dm,
            hi["id"].as_str().unwrap(),
            "--reason",
            "spam",
            "--json",
        ],
    ))
    .unwrap();
    assert!(report["report_id"].as_i64().unwrap() > 0, "{report}");

    let carol_got = received(dir, &carol);
    assert_eq!(carol_got.len(), 1);
    assert_eq!(carol_got[0]["text"], "Hello group");

    // Carol leaves the group; alice's next receive commits the removal.
    let left: Value = serde_json::from_str(&ok(
        dir,
        &["--home", &carol, "conversation", "leave", "--json", &group],
    ))
    .unwrap();
    assert_eq!(left["left"], true);
    let out = custos(dir, &["--home", &carol, "send", &group, "still here"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("left"));
    received(dir, &alice);
    let list: Value = serde_json::from_str(&ok(
        dir,
        &["--home", &alice, "conversation", "list", "--json"],
    ))
    .unwrap();
    let g = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["conversation"] == group.as_str())
        .unwrap();
    let mut members: Vec<_> = g["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    members.sort();
    assert_eq!(members, ["alice", "bob"]);
    ok(dir, &["--home", &alice, "send", &group, "after carol left"]);
    assert!(received(dir, &carol).is_empty());
    assert_eq!(
        received(dir, &bob).last().unwrap()["text"],
        "after carol left"
    );

    // A file travels encrypted and is saved under bob's home.
    let file = dir.join("photo.bin");
    std::fs::write(&file, b"not really a photo").unwrap();
    ok(
        dir,
        &[
            "--home",
            &alice,
            "send",
            &group,
            "see attached",
            "--attach",
            file.to_str().unwrap(),
        ],
    );
    let got = received(dir, &bob);
    let with_file = got.last().unwrap();
    assert_eq!(with_file["text"], "see attached");
    let saved = with_file["attachments"][0].as_str().unwrap();
    assert_eq!(std::fs::read(saved).unwrap(), b"not really a photo");

    // History: nothing is a day old yet; `--all` purges everything; a purge
    // that does not say what to purge is refused.
    let purged = |args: &[&str]| -> Value {
        let mut all = vec!["--home", bob.as_str(), "history", "purge", "--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&ok(dir, &all)).unwrap()
    };
    assert_eq!(purged(&["--older-than-days", "1"])["purged"], 0);
    assert!(purged(&["--all"])["purged"].as_u64().unwrap() >= 4);
    assert_eq!(purged(&["--all"])["purged"], 0);
    assert!(
        !custos(dir, &["--home", &bob, "history", "purge"], None)
            .status
            .success()
    );
    // `receive --keep-days 0` purges what it received.
    ok(dir, &["--home", &alice, "send", &group, "kept for no days"]);
    ok(dir, &["--home", &bob, "receive", "--keep-days", "0"]);
    assert_eq!(purged(&["--all"])["purged"], 0);

    // Usage and configuration errors exit with 2.
    assert_eq!(
        custos(dir, &["--home", &alice, "send"], None).status.code(),
        Some(2)
    );
    std::fs::write(dir.join("custos.toml"), "[register]\nserevr = \"x\"\n").unwrap();
    let out = custos(dir, &["--home", &alice, "conversation", "list"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("serevr"));
}

#[test]
fn demo_json_reports_every_step_ok() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("custos.toml"), "").unwrap();
    let out = custos(tmp.path(), &["demo", "--json"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    let steps = report["steps"].as_array().unwrap();
    assert!(steps.len() >= 10, "{report}");
    assert!(steps.iter().all(|s| s["ok"] == true), "{report}");
    let names: Vec<_> = steps.iter().map(|s| s["step"].as_str().unwrap()).collect();
    for expected in [
        "key transparency",
        "one-to-one",
        "removal",
        "server sees ciphertext only",
        "report verified",
        "forged report refused",
        "sender suspended",
        "pictures below the threshold",
        "threshold reached: human review",
        "clearinghouse package",
        "custodians",
        "escrow in every chain",
        "warrant logged",
        "unlogged warrant refused",
        "release by three",
        "interception",
        "evidence verifies",
        "two shares open nothing",
        "embargo ends, custodians unseal",
        "members see the notice",
        "audit figures",
    ] {
        assert!(
            names.contains(&expected),
            "missing step {expected}: {names:?}"
        );
    }
    // The last steps report each of their checks, all passed.
    for step in steps.iter().filter(|s| s["checks"].is_array()) {
        assert!(
            step["checks"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["ok"] == true),
            "{step}"
        );
    }
    // The temporary folder is gone afterwards.
    assert!(!Path::new(report["folder"].as_str().unwrap()).exists());
}

/// The raw HTTP answer to a GET of `url` (`http://ADDR/PATH`).
fn http_get(url: &str) -> String {
    use std::io::{Read as _, Write as _};
    let rest = url.strip_prefix("http://").unwrap();
    let (addr, path) = rest.split_once('/').unwrap();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Reads `custos up --json`'s summary line.
fn start_up(data: &Path) -> (Server, Value) {
    use std::io::{BufRead as _, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_custos"))
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--dashboard",
            "127.0.0.1:0",
            "--days-ahead",
            "1",
            "--json",
        ])
        .arg("--data")
        .arg(data)
        .env("RUST_LOG", "warn")
        .env_remove("CUSTOS_CONFIG")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let summary: Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("custos up printed {line:?}: {e}"));
    (Server(child), summary)
}

fn stop_gracefully(mut s: Server) {
    let pid = s.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = s.0.wait().unwrap();
    assert!(status.success(), "custos up exited with {status}");
}

#[test]
fn up_runs_a_whole_deployment_where_devices_escrow_and_resumes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("custos.toml"), "").unwrap();
    let data = dir.join("deployment");
    let (up, summary) = start_up(&data);
    assert_eq!(summary["custodians"].as_array().unwrap().len(), 5);
    assert_eq!(summary["custodian_threshold"], 3);
    assert_eq!(summary["witnesses"].as_array().unwrap().len(), 2);
    // The transparency dashboard runs too, and serves its page.
    let page = http_get(summary["dashboard"].as_str().unwrap());
    assert!(
        page.starts_with("HTTP/1.1 200") && page.contains("Custos transparency dashboard"),
        "{page}"
    );
    // `custos audit serve` follows the same log on its own.
    let audit = {
        use std::io::{BufRead as _, BufReader};
        let mut child = Command::new(env!("CARGO_BIN_EXE_custos"))
            .args(["audit", "serve", "--listen", "127.0.0.1:0", "--log"])
            .arg(summary["log"].as_str().unwrap())
            .current_dir(dir)
            .env("RUST_LOG", "warn")
            .env_remove("CUSTOS_CONFIG")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("dashboard on ")
            .unwrap_or_else(|| panic!("custos audit serve printed {line:?}"))
            .to_owned();
        (Server(child), url)
    };
    let mut status = String::new();
    for _ in 0..200 {
        status = http_get(&format!("{}api/v1/status", audit.1));
        if status.contains("\"following\":true") && !status.contains("\"tree_size\":0,") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        status.contains("\"following\":true") && !status.contains("\"tree_size\":0,"),
        "{status}"
    );
    drop(audit);
    let (server, log, manifest) = (
        summary["server"].as_str().unwrap().to_owned(),
        summary["log"].as_str().unwrap().to_owned(),
        summary["manifest"].as_str().unwrap().to_owned(),
    );

    // Devices pin the manifest, follow the log for day keys, and escrow.
    let home = |u: &str| dir.join(u).display().to_string();
    let (alice, bob) = (home("alice"), home("bob"));
    for (h, name) in [(&alice, "alice"), (&bob, "bob")] {
        ok(
            dir,
            &[
                "--home",
                h,
                "register",
                "--server",
                &server,
                "--log",
                &log,
                "--manifest",
                &manifest,
                name,
            ],
        );
    }
    // `custos up` runs the key directory: alice's key is proven in it.
    let history: Value =
        serde_json::from_str(&ok(dir, &["--home", &alice, "keys", "history", "--json"])).unwrap();
    assert_eq!(
        history["versions"].as_array().unwrap().len(),
        1,
        "{history}"
    );
    assert_eq!(history["versions"][0]["key"], history["this_device_key"]);
    let dm = ok(dir, &["--home", &alice, "conversation", "create", "bob"])
        .trim()
        .to_owned();
    ok(dir, &["--home", &alice, "send", &dm, "escrowed hello"]);
    let got = received(dir, &bob);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["text"], "escrowed hello");

    // Lawful access with the real binaries: the court signs, the authority
    // logs the commitment and collects from the five custodians.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let today = (now / 86_400).to_string();
    let key = |k: &str| summary["keys"][k].as_str().unwrap().to_owned();
    let warrant = dir.join("warrant.bin").display().to_string();
    let submission = dir.join("submission.json").display().to_string();
    let released = dir.join("released.keys").display().to_string();
    ok(
        dir,
        &[
            "court",
            "sign-warrant",
            "--court",
            summary["court"].as_str().unwrap(),
            "--key",
            &key("court"),
            "--conversation",
            &dm,
            "--from",
            &today,
            "--to",
            &today,
            "--embargo-until",
            &(now + 30 * 86_400).to_string(),
            "--not-after",
            &(now + 7 * 86_400).to_string(),
            "--basis",
            "test order",
            "--authority",
            summary["authority"].as_str().unwrap(),
            "--authority-hpke-key",
            summary["authority_hpke_public_key"].as_str().unwrap(),
            "--out",
            &warrant,
        ],
    );
    let checkpoint = dir.join("authority.checkpoint").display().to_string();
    let authority = |args: &[&str]| {
        let mut all = vec!["authority"];
        all.extend_from_slice(args);
        all.extend_from_slice(&[
            "--manifest",
            &manifest,
            "--checkpoint-file",
            &checkpoint,
            "--json",
        ]);
        ok(dir, &all)
    };
    authority(&[
        "submit",
        &warrant,
        "--key",
        &key("authority"),
        "--out",
        &submission,
    ]);
    let collected: Value = serde_json::from_str(&authority(&[
        "collect",
        &submission,
        "--key",
        &key("authority"),
        "--hpke-key",
        &key("authority_hpke"),
        "--out",
        &released,
    ]))
    .unwrap();
    assert!(Path::new(&released).exists(), "{collected}");
    assert_eq!(collected["identity_keys"], 1, "{collected}");
    let answers = collected["custodians"].as_object().unwrap();
    assert_eq!(answers.len(), 5, "{collected}");
    assert!(answers.values().all(|a| a["released"] == 1), "{collected}");

    // The provider intercepts under the logged warrant; what alice sends
    // next is kept, opened by the authority, and verifies offline.
    let intercepted: Value = serde_json::from_str(&authority(&[
        "intercept",
        &submission,
        "--key",
        &key("authority"),
        "--server",
        &server,
    ]))
    .unwrap();
    assert!(intercepted["log_index"].as_u64().is_some(), "{intercepted}");
    ok(dir, &["--home", &alice, "send", &dm, "under the warrant"]);
    assert_eq!(received(dir, &bob).len(), 1);
    let evidence = dir.join("evidence");
    let decrypted: Value = serde_json::from_str(&authority(&[
        "decrypt",
        &submission,
        "--key",
        &key("authority"),
        "--hpke-key",
        &key("authority_hpke"),
        "--keys",
        &released,
        "--server",
        &server,
        "--out",
        evidence.to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(decrypted["messages"], 1, "{decrypted}");
    let bundle = evidence.join("evidence.json").display().to_string();
    let hash = summary["manifest_sha256"].as_str().unwrap();
    let verified: Value = serde_json::from_str(&ok(
        dir,
        &[
            "evidence",
            "verify",
            &bundle,
            "--manifest-hash",
            hash,
            "--json",
        ],
    ))
    .unwrap();
    assert_eq!(verified["verified"], true);
    assert_eq!(verified["messages"], 1);
    let report = std::fs::read_to_string(evidence.join("report.html")).unwrap();
    assert!(report.contains("under the warrant") && !report.contains("http"));
    // One changed character and it no longer verifies.
    let text = std::fs::read_to_string(&bundle).unwrap();
    std::fs::write(
        &bundle,
        text.replace("under the warrant", "under the warrent"),
    )
    .unwrap();
    let out = custos(dir, &["evidence", "verify", &bundle], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("messages[0]"));

    // The log it runs passes the audit against the manifest it wrote.
    ok(
        dir,
        &["audit", "--log", &log, "--manifest", &manifest, "--json"],
    );

    // Stopped and started again on the same folder: same manifest, same log.
    stop_gracefully(up);
    let (up, again) = start_up(&data);
    assert_eq!(again["manifest_sha256"], summary["manifest_sha256"]);
    assert_eq!(again["log"], summary["log"]);
    ok(
        dir,
        &["audit", "--log", &log, "--manifest", &manifest, "--json"],
    );
    stop_gracefully(up);
}

/// A log with one witness, a court and an authority (no custodians, so
/// escrow is off), run in this process; the manifest in `dir/manifest.toml`.
struct NoticeLog {
    url: String,
    client: custos_tlog::LogClient,
    manifest: custos_wire::manifest::Manifest,
    court: ed25519_dalek::SigningKey,
    authority: ed25519_dalek::SigningKey,
    _handle: custos_log_server::LogHandle,
}

impl NoticeLog {
    async fn start(dir: &Path) -> Self {
        use custos_tlog::{ALG_COSIGNATURE_V1, ALG_ED25519, NamedKey};
        use custos_wire::manifest::{Manifest, Participant, Policy, Role};
        let log_key = NamedKey::from_seed("log.test", ALG_ED25519, &[1; 32]).unwrap();
        let witness_key = || NamedKey::from_seed("witness.test", ALG_COSIGNATURE_V1, &[2; 32]);
        let provider_key = || NamedKey::from_seed("provider.test", ALG_ED25519, &[6; 32]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let witness = custos_witness_server::spawn_witness(
            listener,
            custos_witness_server::WitnessConfig {
                data: dir.join("witness"),
                logs: vec![("log.test".into(), log_key.verifying_key())],
                key: witness_key().unwrap(),
                clock: custos_clock::system(),
            },
        )
        .await
        .unwrap();
        let court = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let authority = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
        let p = |name: &str, role, key: [u8; 32], endpoint: Option<String>| Participant {
            name: name.into(),
            role,
            jurisdiction: "EU".into(),
            endpoint,
            public_key: hex::encode(key),
        };
        let manifest = Manifest::new(
            1,
            0,
            Policy::default(),
            vec![
                p(
                    "log.test",
                    Role::Log,
                    log_key.verifying_key().to_bytes(),
                    None,
                ),
                p(
                    "witness.test",
                    Role::Witness,
                    witness_key().unwrap().verifying_key().to_bytes(),
                    Some(format!("http://{witness}")),
                ),
                p(
                    "court.test",
                    Role::Court,
                    court.verifying_key().to_bytes(),
                    None,
                ),
                p(
                    "police.test",
                    Role::Authority,
                    authority.verifying_key().to_bytes(),
                    None,
                ),
                p(
                    "provider.test",
                    Role::Provider,
                    provider_key().unwrap().verifying_key().to_bytes(),
                    None,
                ),
            ],
        )
        .unwrap();
        std::fs::write(dir.join("manifest.toml"), manifest.to_toml().unwrap()).unwrap();
        // The delivery service publishes its franking key under this key.
        provider_key()
            .unwrap()
            .write_file(&dir.join("provider.key"))
            .unwrap();
        let signing = log_key.signing_key().clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let handle = custos_log_server::spawn_log(
            listener,
            custos_log_server::LogConfig {
                data: dir.join("log"),
                signed_size: dir.join("log.signed-size"),
                key: log_key,
                manifest: manifest.clone(),
                clock: custos_clock::system(),
                max_batch: 64,
            },
        )
        .await
        .unwrap();
        let url = format!("http://{}", handle.addr);
        let client = custos_tlog::LogClient::new(&url).unwrap();
        let log = Self {
            url,
            client,
            manifest,
            court,
            authority,
            _handle: handle,
        };
        let sub = log
            .client
            .publish_manifest(&signing, &log.manifest)
            .await
            .unwrap();
        log.wait_witnessed(sub.index + 1).await;
        log
    }

    async fn wait_witnessed(&self, size: u64) {
        let policy = custos_tlog::TrustPolicy::from_manifest(&self.manifest).unwrap();
        for _ in 0..800 {
            let note = self.client.checkpoint().await.unwrap();
            if policy
                .verify_checkpoint(&note)
                .is_ok_and(|cp| cp.size() >= size)
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("the log never reached a witnessed size of {size}");
    }

    async fn log(&self, st: &custos_wire::statement::Statement, key: &ed25519_dalek::SigningKey) {
        let signed = custos_wire::statement::SignedStatement::sign(st, key).unwrap();
        let index = self.client.submit(&signed).await.unwrap().index;
        self.wait_witnessed(index + 1).await;
    }
}

#[test]
fn receive_shows_the_notice_of_an_unsealed_warrant_once_and_notices_lists_it() {
    use custos_authority::court::{WarrantOrder, sign_warrant};
    use custos_authority::submit::commitment_statement;
    use custos_wire::statement::{Statement, WarrantUnsealing, warrant_commitment};

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("custos.toml"), "").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let log = rt.block_on(NoticeLog::start(dir));
    // A service whose franking key is in the log: pinned devices trust no other.
    let (child, addr) = common::spawn_listening(
        Command::new(env!("CARGO_BIN_EXE_custos"))
            .args(["server", "--listen", "127.0.0.1:0", "--log", &log.url])
            .arg("--data")
            .arg(dir.join("data"))
            .arg("--manifest")
            .arg(dir.join("manifest.toml"))
            .arg("--provider-key")
            .arg(dir.join("provider.key"))
            .env("RUST_LOG", "warn")
            .env_remove("CUSTOS_CONFIG"),
    );
    let (_server, url) = (Server(child), format!("http://{addr}"));
    let manifest = dir.join("manifest.toml");
    let home = |u: &str| dir.join(u).to_str().unwrap().to_owned();
    for u in ["alice", "bob", "carol"] {
        ok(
            dir,
            &[
                "--home",
                &home(u),
                "register",
                "--server",
                &url,
                "--log",
                &log.url,
                "--manifest",
                manifest.to_str().unwrap(),
                u,
            ],
        );
    }
    let conv = ok(
        dir,
        &["--home", &home("alice"), "conversation", "create", "bob"],
    )
    .trim()
    .to_owned();
    ok(dir, &["--home", &home("alice"), "send", &conv, "hello"]);
    assert_eq!(received(dir, &home("bob")).len(), 1);

    // The court's warrant over the conversation, committed, then unsealed
    // by the court.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let day = (now / 86_400) as u32;
    let w = sign_warrant(
        WarrantOrder {
            court: "court.test".into(),
            authority: "police.test".into(),
            authority_hpke_key: [5; 32],
            legal_basis: "s. 100a StPO".into(),
            targets: vec![custos_wire::ConversationId::from_hex(&conv).unwrap()],
            days: (day, day),
            issued_at: now,
            not_after: now + 86_400,
            embargo_until: now + 60,
        },
        &log.court,
    )
    .unwrap();
    let salt = [6u8; 32];
    let bytes = w.encode().unwrap();
    let unsealing = Statement::WarrantUnsealing(WarrantUnsealing {
        warrant: warrant_commitment(&salt, &bytes),
        salt,
        warrant_bytes: bytes,
        unsealed_at: now + 120,
    });
    rt.block_on(async {
        log.log(&commitment_statement(&w, &salt).unwrap(), &log.authority)
            .await;
        log.log(&unsealing, &log.court).await;
    });

    // Bob's next receive emits the notice event; the one after does not.
    let events = |who: &str| -> Vec<Value> {
        ok(dir, &["--home", &home(who), "receive", "--json"])
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| v["event"] == "notice")
            .collect()
    };
    let first = events("bob");
    assert_eq!(first.len(), 1, "{first:?}");
    let n = &first[0]["notice"];
    assert_eq!(n["court"], "court.test");
    assert_eq!(n["authority"], "police.test");
    assert_eq!(n["legal_basis"], "s. 100a StPO");
    assert_eq!(n["conversations"][0], conv.as_str());
    assert_eq!(n["first_day"], day);
    assert_eq!(n["unsealed_at"], now + 120);
    assert!(events("bob").is_empty());
    // Alice sees it as one line; carol, in no target conversation, never.
    let line = ok(dir, &["--home", &home("alice"), "receive"]);
    assert!(
        line.lines()
            .any(|l| l.starts_with("notice: conversation ") && l.contains("court.test")),
        "{line}"
    );
    assert!(events("carol").is_empty());
    // `notices` keeps listing it.
    let listed: Value =
        serde_json::from_str(&ok(dir, &["--home", &home("bob"), "notices", "--json"])).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["warrant"], n["warrant"]);
    let carol_listed: Value =
        serde_json::from_str(&ok(dir, &["--home", &home("carol"), "notices", "--json"])).unwrap();
    assert!(carol_listed.as_array().unwrap().is_empty());

    // The audit counts the warrant and its unsealing.
    let audit: Value = serde_json::from_str(&ok(
        dir,
        &[
            "audit",
            "--log",
            &log.url,
            "--manifest",
            manifest.to_str().unwrap(),
            "--json",
        ],
    ))
    .unwrap();
    assert_eq!(audit["figures"]["totals"]["warrants"], 1);
    assert_eq!(audit["figures"]["totals"]["unsealings"], 1);
    assert_eq!(audit["figures"]["by_court"]["court.test"]["unsealings"], 1);
    assert_eq!(
        audit["figures"]["flags"]["overdue_unsealings"],
        serde_json::json!([])
    );
}
