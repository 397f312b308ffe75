//! Crash safety of the real `custos log serve` binary: SIGKILL at random
//! points during a stream of concurrent submissions, many times, then check
//! that every acknowledged entry is there, that the tree is consistent with
//! every checkpoint ever served, and that no two served checkpoints conflict.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: a failure is a test failure"
)]

use crate::common;

use std::collections::HashMap;

use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use custos_tlog::checkpoint::parse_checkpoint;
use custos_tlog::{LogClient, Tree, TrustPolicy};
use custos_wire::manifest::{Manifest, Participant, Policy, Role};
use custos_wire::statement::{DayKeyErasure, SignedStatement, Statement};
use ed25519_dalek::SigningKey;
use rand::Rng as _;

const ORIGIN: &str = "log.crash.test";
const CYCLES: usize = 12;
const WRITERS: usize = 8;

fn custos() -> Command {
    Command::new(env!("CARGO_BIN_EXE_custos"))
}

fn start(dir: &std::path::Path) -> (Child, String) {
    common::spawn_listening(
        custos()
            .args([
                "log",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--max-batch",
                "64",
            ])
            .arg("--data")
            .arg(dir.join("data"))
            .arg("--key")
            .arg(dir.join("log.key"))
            .arg("--manifest")
            .arg(dir.join("manifest.toml")),
    )
}

#[derive(Default)]
struct Seen {
    acked: Vec<(u64, Vec<u8>)>,
    served: Vec<Vec<u8>>,
}

/// Generates the log key with the real binary and writes a manifest with the
/// log and one custodian (whose statements the tests submit).
fn setup(dir: &std::path::Path) -> (TrustPolicy, SigningKey) {
    let out = custos()
        .args(["log", "keygen", "--name", ORIGIN, "--out"])
        .arg(dir.join("log.key"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let log_hex = stdout
        .lines()
        .find_map(|l| l.strip_prefix("public_key: "))
        .unwrap()
        .to_owned();
    let custodian = SigningKey::from_bytes(&[3; 32]);
    // One witness, not running: this test checks the log's own signatures,
    // durability and consistency, with a log-only policy below.
    let manifest = Manifest::new(
        1,
        1,
        Policy::default(),
        vec![
            Participant {
                name: ORIGIN.into(),
                role: Role::Log,
                jurisdiction: "EU".into(),
                endpoint: None,
                public_key: log_hex.clone(),
            },
            Participant {
                name: "witness.test".into(),
                role: Role::Witness,
                jurisdiction: "EU".into(),
                endpoint: None,
                public_key: hex::encode(
                    SigningKey::from_bytes(&[2; 32]).verifying_key().to_bytes(),
                ),
            },
            Participant {
                name: "custodian.test".into(),
                role: Role::Custodian,
                jurisdiction: "EU".into(),
                endpoint: None,
                public_key: hex::encode(custodian.verifying_key().to_bytes()),
            },
        ],
    )
    .unwrap();
    std::fs::write(dir.join("manifest.toml"), manifest.to_toml().unwrap()).unwrap();
    let log_key: [u8; 32] = hex::decode(&log_hex).unwrap().try_into().unwrap();
    let policy = TrustPolicy::new(
        ORIGIN,
        ed25519_dalek::VerifyingKey::from_bytes(&log_key).unwrap(),
        &[],
        0,
    )
    .unwrap();
    (policy, custodian)
}

/// A custodian statement for `day`, signed and encoded.
fn statement(custodian: &SigningKey, day: u32) -> Vec<u8> {
    let st = Statement::DayKeyErasure(DayKeyErasure {
        day,
        custodian: "custodian.test".into(),
        erased_at: 0,
    });
    SignedStatement::sign(&st, custodian)
        .unwrap()
        .encode()
        .unwrap()
}

#[test]
fn sigkill_during_submissions_loses_nothing_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let (policy, custodian) = setup(tmp.path());

    let rt = tokio::runtime::Runtime::new().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let next = Arc::new(AtomicU32::new(0));
    let mut rng = rand::thread_rng();
    for _cycle in 0..CYCLES {
        let (mut child, url) = start(tmp.path());
        let kill_after = Duration::from_millis(rng.gen_range(20..300));
        rt.block_on(async {
            let client = LogClient::new(&url).unwrap();
            let mut tasks = Vec::new();
            for w in 0..WRITERS {
                let client = client.clone();
                let seen = Arc::clone(&seen);
                let next = Arc::clone(&next);
                let custodian = custodian.clone();
                tasks.push(tokio::spawn(async move {
                    for i in 0u32.. {
                        if w == 0 && i % 4 == 0 {
                            match client.checkpoint().await {
                                Ok(note) => seen.lock().unwrap().served.push(note),
                                Err(_) => return,
                            }
                        }
                        let bytes = statement(&custodian, next.fetch_add(1, Ordering::SeqCst));
                        match client.submit_raw(bytes.clone()).await {
                            Ok(sub) => {
                                let mut s = seen.lock().unwrap();
                                s.acked.push((sub.index, bytes));
                                s.served.push(sub.checkpoint);
                            }
                            Err(_) => return,
                        }
                    }
                }));
            }
            tokio::time::sleep(kill_after).await;
            // SIGKILL, mid-stream.
            child.kill().unwrap();
            child.wait().unwrap();
            for t in tasks {
                t.await.unwrap();
            }
        });
    }

    let (mut child, url) = start(tmp.path());
    let (note, entries) = rt.block_on(async {
        let client = LogClient::new(&url).unwrap();
        let note = client.checkpoint().await.unwrap();
        let size = parse_checkpoint(&note).unwrap().checkpoint.size();
        (note, client.entries(0, size).await.unwrap())
    });
    child.kill().unwrap();
    child.wait().unwrap();

    let final_cp = policy.verify_checkpoint(&note).unwrap();
    let seen = seen.lock().unwrap();
    assert!(
        seen.acked.len() >= 50,
        "only {} acknowledgements: the test did not exercise the log",
        seen.acked.len()
    );
    // Every acknowledged entry is there, at its index.
    for (index, bytes) in &seen.acked {
        assert_eq!(
            entries.get(*index as usize),
            Some(bytes),
            "entry {index} lost"
        );
    }
    // The tree is consistent with every checkpoint ever served, so no two conflict.
    let mut tree = Tree::new();
    for e in &entries {
        tree.append_entry(e).unwrap();
    }
    assert_eq!(tree.root(final_cp.size()).unwrap(), final_cp.hash());
    let mut by_size = HashMap::new();
    for served in &seen.served {
        let cp = policy.verify_checkpoint(served).unwrap();
        assert!(cp.size() <= final_cp.size());
        assert_eq!(
            tree.root(cp.size()).unwrap(),
            cp.hash(),
            "served checkpoint forked"
        );
        if let Some(prev) = by_size.insert(cp.size(), cp.hash()) {
            assert_eq!(prev, cp.hash());
        }
    }
    eprintln!(
        "{CYCLES} kills: {} acknowledged, {} checkpoints served, final size {}",
        seen.acked.len(),
        seen.served.len(),
        final_cp.size()
    );
}

/// Submits `days` one by one; returns (index, bytes) of each acknowledged one.
fn submit_all(
    rt: &tokio::runtime::Runtime,
    url: &str,
    custodian: &SigningKey,
    days: std::ops::Range<u32>,
) -> Vec<(u64, Vec<u8>)> {
    rt.block_on(async {
        let client = LogClient::new(url).unwrap();
        let mut acked = Vec::new();
        for day in days {
            let bytes = statement(custodian, day);
            let sub = client.submit_raw(bytes.clone()).await.unwrap();
            acked.push((sub.index, bytes));
        }
        acked
    })
}

/// Restarts the log and checks it kept every acknowledged entry at its index,
/// serves a checkpoint at least as large, and appends after them (no fork).
fn restart_keeps(
    dir: &std::path::Path,
    rt: &tokio::runtime::Runtime,
    policy: &TrustPolicy,
    custodian: &SigningKey,
    acked: &[(u64, Vec<u8>)],
) {
    let (mut child, url) = start(dir);
    let (size, entries, next) = rt.block_on(async {
        let client = LogClient::new(&url).unwrap();
        let note = client.checkpoint().await.unwrap();
        let cp = policy.verify_checkpoint(&note).unwrap();
        let entries = client.entries(0, cp.size()).await.unwrap();
        let next = client
            .submit_raw(statement(custodian, 1_000_000))
            .await
            .unwrap();
        (cp.size(), entries, next.index)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        size >= acked.len() as u64,
        "the log restarted at size {size} after acknowledging {} entries",
        acked.len()
    );
    for (index, bytes) in acked {
        assert_eq!(
            entries.get(*index as usize),
            Some(bytes),
            "entry {index} lost"
        );
    }
    assert!(
        next >= size,
        "new statement sequenced at {next}, inside the old log"
    );
}

#[test]
fn deleted_checkpoint_after_sigkill_never_shrinks_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let (policy, custodian) = setup(tmp.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (mut child, url) = start(tmp.path());
    let acked = submit_all(&rt, &url, &custodian, 0..20);
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_file(tmp.path().join("data/checkpoint")).unwrap();
    restart_keeps(tmp.path(), &rt, &policy, &custodian, &acked);
}

#[test]
fn restored_older_checkpoint_never_shrinks_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let (policy, custodian) = setup(tmp.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (mut child, url) = start(tmp.path());
    let mut acked = submit_all(&rt, &url, &custodian, 0..10);
    let backup = std::fs::read(tmp.path().join("data/checkpoint")).unwrap();
    acked.extend(submit_all(&rt, &url, &custodian, 10..25));
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::write(tmp.path().join("data/checkpoint"), &backup).unwrap();
    restart_keeps(tmp.path(), &rt, &policy, &custodian, &acked);
}

#[test]
fn restored_older_data_directory_refuses_to_start() {
    let tmp = tempfile::tempdir().unwrap();
    let (_policy, custodian) = setup(tmp.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (mut child, url) = start(tmp.path());
    submit_all(&rt, &url, &custodian, 0..5);
    child.kill().unwrap();
    child.wait().unwrap();
    let data = tmp.path().join("data");
    let saved: Vec<(std::path::PathBuf, Vec<u8>)> = ["entries", "checkpoint"]
        .iter()
        .map(|f| (data.join(f), std::fs::read(data.join(f)).unwrap()))
        .collect();
    let (mut child, url) = start(tmp.path());
    submit_all(&rt, &url, &custodian, 5..9);
    child.kill().unwrap();
    child.wait().unwrap();
    // The largest size the log signed: the nine statements and the
    // manifest publication the log makes when it starts.
    let signed = parse_checkpoint(&std::fs::read(data.join("checkpoint")).unwrap())
        .unwrap()
        .checkpoint
        .size();
    assert!(signed >= 9);
    for (path, bytes) in &saved {
        std::fs::write(path, bytes).unwrap();
    }
    let out = custos()
        .args(["log", "serve", "--listen", "127.0.0.1:0"])
        .arg("--data")
        .arg(&data)
        .arg("--key")
        .arg(tmp.path().join("log.key"))
        .arg("--manifest")
        .arg(tmp.path().join("manifest.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "a log behind what it signed started");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("signed size {signed}")),
        "{stderr}"
    );
    assert_eq!(std::fs::read(data.join("entries")).unwrap(), saved[0].1);
}
