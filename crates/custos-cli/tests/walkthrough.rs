//! The README's walkthrough, run with the real `custos` binary against a
//! real `custos server` on loopback; and `custos demo --json`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

mod common;

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
        "one-to-one",
        "removal",
        "server sees ciphertext only",
        "report verified",
        "forged report refused",
        "sender suspended",
        "custodians",
        "escrow in every chain",
        "warrant logged",
        "unlogged warrant refused",
        "release by three",
        "two shares open nothing",
    ] {
        assert!(
            names.contains(&expected),
            "missing step {expected}: {names:?}"
        );
    }
    // The temporary folder is gone afterwards.
    assert!(!Path::new(report["folder"].as_str().unwrap()).exists());
}

/// Reads `custos up --json`'s summary line.
fn start_up(data: &Path) -> (Server, Value) {
    use std::io::{BufRead as _, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_custos"))
        .args([
            "up",
            "--listen",
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
