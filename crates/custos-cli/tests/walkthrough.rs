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
    ] {
        assert!(
            names.contains(&expected),
            "missing step {expected}: {names:?}"
        );
    }
    // The temporary folder is gone afterwards.
    assert!(!Path::new(report["folder"].as_str().unwrap()).exists());
}
