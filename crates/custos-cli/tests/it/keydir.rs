//! `custos server --key-directory`: the real binary runs the provider's
//! key directory for a deployment whose manifest names it (the log and
//! witnesses from the test kit), devices registered with the real binary
//! find their key in it, and a VRF key that is not the manifest's is
//! refused at start.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

use crate::common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use custos_deploy::{CustodianMode, Deployment, DeploymentSpec};
use serde_json::Value;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn server_command(d: &Deployment, data: &Path, vrf_key: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_custos"));
    cmd.args(["server", "--listen", "127.0.0.1:0", "--log", d.log_url()])
        .arg("--data")
        .arg(data)
        .arg("--manifest")
        .arg(d.manifest_path())
        .arg("--provider-key")
        .arg(d.dir().join("keys").join("provider.key"))
        .args(["--key-directory", "--key-directory-interval", "1"])
        .arg("--key-directory-vrf-key")
        .arg(vrf_key)
        .env("RUST_LOG", "warn")
        .env_remove("CUSTOS_CONFIG");
    cmd
}

fn custos(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_custos"))
        .args(args)
        .env("CUSTOS_CONFIG", dir.join("custos.toml"))
        .env_remove("CUSTOS_HOME")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custos_server_runs_the_key_directory_of_the_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    std::fs::write(dir.join("custos.toml"), "").unwrap();
    // The log, its witnesses, and a manifest naming a key directory (its
    // VRF key in keys/keydir-vrf.key); the delivery service is the binary.
    let spec = DeploymentSpec::new("kd", custos_clock::system())
        .custodians(0, 0, CustodianMode::KeysOnly)
        .with_key_directory(Duration::from_secs(1))
        .without_server();
    let d = Deployment::start(&dir.join("deploy"), spec).await.unwrap();
    let vrf_key = d.dir().join("keys").join("keydir-vrf.key");

    // A VRF key that is not the manifest's: refused before it serves.
    let wrong = dir.join("wrong-vrf.key");
    std::fs::write(&wrong, [7u8; 32]).unwrap();
    let out = tokio::task::block_in_place(|| {
        server_command(&d, &dir.join("wrong"), &wrong)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap()
    });
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not the manifest's key directory VRF key"),
        "{err}"
    );

    let (child, addr) = tokio::task::block_in_place(|| {
        common::spawn_listening(&mut server_command(&d, &dir.join("server"), &vrf_key))
    });
    let _server = Server(child);
    let server = format!("http://{addr}");
    let home = dir.join("alice").display().to_string();
    let manifest = d.manifest_path().display().to_string();
    // `register` returns only once its key is in a logged epoch.
    let out = tokio::task::block_in_place(|| {
        custos(
            &dir,
            &[
                "--home",
                &home,
                "register",
                "--server",
                &server,
                "--log",
                d.log_url(),
                "--manifest",
                &manifest,
                "alice",
            ],
        )
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = tokio::task::block_in_place(|| {
        custos(&dir, &["--home", &home, "keys", "history", "--json"])
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let history: Value = serde_json::from_slice(&out.stdout).unwrap();
    let versions = history["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1, "{history}");
    assert_eq!(versions[0]["key"], history["this_device_key"]);
    assert!(history["epoch"].as_u64().unwrap() >= 1, "{history}");
}
