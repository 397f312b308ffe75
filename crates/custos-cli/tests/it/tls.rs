//! `custos server --tls-cert/--tls-key` with the real binary, and clients
//! that trust its CA by `--ca` or by the config file's `ca` key, or do not.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

use std::path::Path;
use std::process::{Child, Command, Output};

use crate::common;

struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes `ca.pem` (a CA), and `server.pem`/`server.key` (issued by it for
/// `localhost`) into `dir`.
fn certificates(dir: &Path) {
    custos_deploy::tls_fixture::test_certificates(dir);
}

fn custos(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_custos"))
        .args(args)
        .env("CUSTOS_CONFIG", dir.join("custos.toml"))
        .env_remove("CUSTOS_HOME")
        .env_remove("CUSTOS_CA")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

#[test]
fn a_tls_service_is_reached_only_with_its_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    certificates(dir);
    let (child, addr) = common::spawn_listening(
        Command::new(env!("CARGO_BIN_EXE_custos"))
            .args(["server", "--listen", "127.0.0.1:0", "--tls-cert"])
            .arg(dir.join("server.pem"))
            .arg("--tls-key")
            .arg(dir.join("server.key"))
            .arg("--data")
            .arg(dir.join("data"))
            .env("RUST_LOG", "warn")
            .env_remove("CUSTOS_CONFIG"),
    );
    let _service = Service(child);
    let port = addr.rsplit_once(':').unwrap().1;
    let url = format!("https://localhost:{port}");
    std::fs::write(
        dir.join("custos.toml"),
        format!("[register]\nserver = \"{url}\"\n"),
    )
    .unwrap();
    let home = |u: &str| dir.join(u).display().to_string();
    let ca = dir.join("ca.pem").display().to_string();

    // Without the CA: refused, with the fix in the message.
    let out = custos(dir, &["--home", &home("carol"), "register", "carol"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--ca"), "{err}");

    // With --ca: registered, and the account works (send, receive).
    let out = custos(
        dir,
        &["--home", &home("alice"), "--ca", &ca, "register", "alice"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // With `ca` in the config file, as any option can be.
    std::fs::write(
        dir.join("custos.toml"),
        format!("ca = \"{ca}\"\n[register]\nserver = \"{url}\"\n"),
    )
    .unwrap();
    let out = custos(dir, &["--home", &home("bob"), "register", "bob"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = custos(
        dir,
        &["--home", &home("alice"), "conversation", "create", "bob"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dm = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let out = custos(dir, &["--home", &home("alice"), "send", &dm, "over TLS"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = custos(dir, &["--home", &home("bob"), "receive"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("over TLS"));
}
