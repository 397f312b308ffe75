//! The provider's matching tooling with the real `custos` binary (issue 15
//! item 4): two organisations sign their lists (`custos matching
//! sign-list`), the provider builds the table under the two-source rule
//! (`custos matching build-table`), and a `custos server
//! --matching-table` started from the command line logs statements 13 and
//! 14 for it and opens vouchers of listed pictures only.
//!
//! Pictures are synthetic (`custos_media::synthetic`): no real abuse
//! material anywhere.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

use crate::common;

use std::path::Path;
use std::process::{Child, Command, Output};

use custos_deploy::matching::{MatchingSpec, TableFault};
use custos_deploy::{CustodianMode, Deployment, DeploymentSpec, ServerSpec};
use custos_media::synthetic;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn custos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_custos"))
        .args(args)
        .env_remove("CUSTOS_CONFIG")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = custos(args);
    assert!(
        out.status.success(),
        "custos {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn png(dir: &Path, seed: u64) -> (std::path::PathBuf, Vec<u8>) {
    let bytes = synthetic::png(&synthetic::picture(seed, 96, 96).unwrap()).unwrap();
    let path = dir.join(format!("p{seed}.png"));
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_built_from_two_signed_lists_is_served_logged_and_opens_listed_vouchers_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // The deployment (log, witnesses, manifest naming the two test
    // organisations, threshold 2, no synthetic vouchers); its own server
    // serves another table, which plays no part here.
    let spec = DeploymentSpec::new("test", custos_clock::system())
        .custodians(0, 0, CustodianMode::KeysOnly)
        .with_server(ServerSpec::unlimited())
        .with_matching(MatchingSpec {
            threshold: 2,
            synthetic_rate_ppm: 0,
            listed: vec![[0x11; 32]],
            fault: TableFault::None,
        });
    let d = Deployment::start(&dir.join("deploy"), spec).await.unwrap();
    let keys = d.dir().join("matching");

    // Organisation A vouches for pictures 1, 2 and 3; B for 1 and 2 only.
    let (p1, png1) = png(dir, 1);
    let (p2, png2) = png(dir, 2);
    let (p3, png3) = png(dir, 3);
    let salt = ok(&["matching", "salt"]).trim().to_owned();
    let (list_a, list_b) = (dir.join("a.list"), dir.join("b.list"));
    ok(&[
        "matching",
        "sign-list",
        "--key",
        s(&keys.join("org-a.key")),
        "--salt",
        &salt,
        "--out",
        s(&list_a),
        "--pictures",
        s(&p1),
        s(&p2),
        s(&p3),
    ]);
    ok(&[
        "matching",
        "sign-list",
        "--key",
        s(&keys.join("org-b.key")),
        "--salt",
        &salt,
        "--out",
        s(&list_b),
        "--pictures",
        s(&p1),
        s(&p2),
    ]);
    let manifest = d.manifest_path();
    let (table, secret) = (dir.join("table.bin"), dir.join("table.secret"));
    let build = |a: &Path, b: &Path, t: &Path, k: &Path| {
        custos(&[
            "matching",
            "build-table",
            "--manifest",
            s(&manifest),
            "--org-a",
            s(a),
            "--org-b",
            s(b),
            "--table-out",
            s(t),
            "--secret-out",
            s(k),
        ])
    };
    // The lists swapped (A's list given as B's): refused, nothing written.
    let swapped = build(&list_b, &list_a, &dir.join("x.bin"), &dir.join("x.secret"));
    assert!(!swapped.status.success());
    assert!(
        String::from_utf8_lossy(&swapped.stderr).contains("signed by"),
        "{}",
        String::from_utf8_lossy(&swapped.stderr)
    );
    assert!(!dir.join("x.bin").exists() && !dir.join("x.secret").exists());
    let out = build(&list_a, &list_b, &table, &secret);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8(out.stdout).unwrap();
    // 8 dihedral hashes per picture; picture 3's were signed by A only.
    assert!(
        summary.contains("(8 signed by A only and 0 by B only"),
        "{summary}"
    );
    let table_bytes = std::fs::read(&table).unwrap();
    let root = custos_psi::BlindedTable::decode(&table_bytes)
        .unwrap()
        .root();
    assert!(summary.contains(&hex::encode(root)), "{summary}");

    // The service started from the command line with that table.
    let (child, addr) = common::spawn_listening(
        Command::new(env!("CARGO_BIN_EXE_custos"))
            .args(["server", "--listen", "127.0.0.1:0", "--data"])
            .arg(dir.join("server"))
            .args(["--log", d.log_url(), "--manifest", s(&manifest)])
            .args(["--provider-key", s(&d.key_paths().provider())])
            .args([
                "--matching-table",
                s(&table),
                "--matching-secret",
                s(&secret),
            ])
            .args(["--ip-rate", "0", "--account-rate", "0"])
            .env_remove("CUSTOS_CONFIG")
            .env("RUST_LOG", "warn"),
    );
    let _server = Server(child);
    let url = format!("http://{addr}");
    let mut devices = Vec::new();
    for name in ["alice", "bob"] {
        devices.push(
            custos_client::device::Device::register_pinned(
                &dir.join("users").join(name),
                &url,
                name,
                custos_clock::system(),
                d.pin().unwrap(),
            )
            .await
            .unwrap(),
        );
    }
    let bob = devices.pop().unwrap();
    let mut alice = devices.pop().unwrap();
    alice.dangerous_force_synthetic(Some(false));

    // The device accepts the served table only once the log shows its root
    // (kind 13) and policy (kind 14), which the service publishes at start.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match alice.checked_table().await {
            Ok(Some((checked, t, _))) => {
                assert_eq!(checked.root(), &root);
                assert_eq!(t, 2);
                break;
            }
            other => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "table never logged: {other:?}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }

    // Picture 3 (one source only) does not open, picture 1 does: below the
    // threshold of 2 nothing shows. Picture 2 opens too: the threshold is
    // reached, so exactly pictures 1 and 2 opened.
    let conv = alice.create_conversation(&["bob".into()]).await.unwrap();
    for png in [&png3, &png1] {
        alice
            .send_with_attachments(&conv, "pic", std::slice::from_ref(png))
            .await
            .unwrap();
    }
    let stats = bob.api().matching_stats().await.unwrap();
    assert_eq!(stats["table_root"], hex::encode(root));
    assert_eq!(stats["accounts_matched"], 0);
    alice
        .send_with_attachments(&conv, "pic", &[png2])
        .await
        .unwrap();
    // The threshold step runs shortly after the voucher's answer.
    let mut stats = bob.api().matching_stats().await.unwrap();
    for _ in 0..500 {
        if stats["accounts_matched"] != 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        stats = bob.api().matching_stats().await.unwrap();
    }
    assert_eq!(stats["accounts_matched"], 1, "{stats}");
    assert_eq!(stats["cases_pending"], 1, "{stats}");
    d.shutdown().await.unwrap();
}
