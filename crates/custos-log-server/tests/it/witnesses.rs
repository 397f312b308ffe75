//! Witnesses end to end: cosigning, quorum verification, refusals, split view.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: a failure is a test failure"
)]

use crate::common;

use std::time::Duration;

use common::*;
use custos_tlog::checkpoint::sign_checkpoint;
use custos_tlog::merkle::Tree;
use custos_tlog::witness_api::AddCheckpoint;
use custos_tlog::{LogClient, TrustPolicy, Verifier, VerifyError};

async fn wait_for_cosigned(client: &LogClient, policy: &TrustPolicy, size: u64) -> Vec<u8> {
    for _ in 0..200 {
        let note = client.checkpoint().await.unwrap();
        if let Ok(cp) = policy.verify_checkpoint(&note)
            && cp.size() >= size
        {
            return note;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("checkpoint of size {size} was never cosigned by the quorum");
}

#[tokio::test]
async fn log_gathers_cosignatures_and_verifier_requires_quorum() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Deployment::new(2);
    let (url, _, manifest) = d.start(tmp.path(), 2).await;
    let client = LogClient::new(&url).unwrap();
    let policy = TrustPolicy::from_manifest(&manifest).unwrap();
    let mut verifier = Verifier::open(policy.clone(), &tmp.path().join("verifier")).unwrap();

    let first = release(&d.custodian, 1);
    let sub = client.submit(&first).await.unwrap();
    // The submit answer is log-signed only: a 2-of-2 verifier refuses it.
    assert!(matches!(
        policy.verify_checkpoint(&sub.checkpoint),
        Err(VerifyError::Quorum { got: 0, need: 2 })
    ));
    wait_for_cosigned(&client, &policy, 1).await;
    let (cp, inc) = client
        .prove_included(&mut verifier, sub.index, &first.encode().unwrap())
        .await
        .unwrap();
    assert_eq!(cp.witnesses().len(), 2);
    assert_eq!(inc.index(), 0);

    for i in 0..5 {
        client.submit(&erasure(&d.custodian, i)).await.unwrap();
    }
    wait_for_cosigned(&client, &policy, 6).await;
    let cp = client.update(&mut verifier).await.unwrap();
    assert_eq!(cp.size(), 6);

    // The verifier's state survives a restart.
    let reopened = Verifier::open(policy.clone(), &tmp.path().join("verifier")).unwrap();
    assert_eq!(reopened.last().unwrap().size(), 6);

    // The audit sees both cosignatures.
    let report = custos_tlog::audit::audit(&client, &manifest).await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.witnesses.len(), 2);
}

struct FakeLog {
    tree: Tree,
    signer: custos_tlog::keys::LogSigner,
}

impl FakeLog {
    fn new(d: &Deployment) -> Self {
        Self {
            tree: Tree::new(),
            signer: d.log_key().log_signer().unwrap(),
        }
    }
    fn append(&mut self, n: u32) -> Vec<u8> {
        for i in 0..n {
            self.tree.append_entry(&i.to_be_bytes()).unwrap();
        }
        self.note(self.tree.size())
    }
    fn note(&self, size: u64) -> Vec<u8> {
        sign_checkpoint(&self.signer, ORIGIN, size, self.tree.root(size).unwrap()).unwrap()
    }
}

async fn post(url: &str, req: &AddCheckpoint) -> (u16, String, String) {
    let r = reqwest::Client::new()
        .post(format!("{url}/add-checkpoint"))
        .body(req.encode())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, r.text().await.unwrap())
}

#[tokio::test]
async fn witness_refusals_follow_tlog_witness_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Deployment::new(1);
    let urls = d.start_witnesses(tmp.path()).await;
    let w = &urls[0];
    let mut log = FakeLog::new(&d);
    let note4 = log.append(4);
    let ok = post(
        w,
        &AddCheckpoint {
            old: 0,
            proof: vec![],
            checkpoint: note4.clone(),
        },
    )
    .await;
    assert_eq!(ok.0, 200, "{}", ok.2);
    assert!(ok.2.starts_with("— witness-0.test "));
    // Unknown paths and wrong methods get JSON bodies too.
    let http = reqwest::Client::new();
    for (path, status, code) in [
        ("no/such/endpoint", 404, "not_found"),
        ("add-checkpoint", 405, "method_not_allowed"),
    ] {
        let r = http.get(format!("{w}/{path}")).send().await.unwrap();
        assert_eq!(r.status(), status, "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], code, "{path}: {body}");
    }

    let note9 = log.append(5);
    let good_proof = log.tree.consistency_proof(4, 9).unwrap();
    // Stale old size: 409 with the known size.
    let stale = post(
        w,
        &AddCheckpoint {
            old: 0,
            proof: vec![],
            checkpoint: note9.clone(),
        },
    )
    .await;
    assert_eq!(
        (stale.0, stale.1.as_str(), stale.2.as_str()),
        (409, "text/x.tlog.size", "4\n")
    );
    // Bad proof: 422.
    let mut bad = good_proof.clone();
    bad[0].0[0] ^= 1;
    let r = post(
        w,
        &AddCheckpoint {
            old: 4,
            proof: bad,
            checkpoint: note9.clone(),
        },
    )
    .await;
    assert_eq!(r.0, 422);
    assert!(r.2.contains("bad_consistency_proof"));
    // Old size above the checkpoint: 400.
    let r = post(
        w,
        &AddCheckpoint {
            old: 10,
            proof: vec![],
            checkpoint: note9.clone(),
        },
    )
    .await;
    assert_eq!(r.0, 400);
    // Forged log signature: 403.
    let other = custos_tlog::NamedKey::from_seed(ORIGIN, custos_tlog::ALG_ED25519, &[99; 32])
        .unwrap()
        .log_signer()
        .unwrap();
    let forged = sign_checkpoint(&other, ORIGIN, 9, log.tree.root(9).unwrap()).unwrap();
    let r = post(
        w,
        &AddCheckpoint {
            old: 4,
            proof: good_proof.clone(),
            checkpoint: forged,
        },
    )
    .await;
    assert_eq!(r.0, 403);
    // Unknown origin: 404.
    let foreign = sign_checkpoint(&log.signer, "other.test", 9, log.tree.root(9).unwrap()).unwrap();
    let r = post(
        w,
        &AddCheckpoint {
            old: 4,
            proof: good_proof.clone(),
            checkpoint: foreign,
        },
    )
    .await;
    assert_eq!(r.0, 404);
    // Malformed body and truncated checkpoint: 400, JSON.
    for body in [
        b"garbage".to_vec(),
        AddCheckpoint {
            old: 4,
            proof: vec![],
            checkpoint: note9[..20].to_vec(),
        }
        .encode(),
    ] {
        let r = reqwest::Client::new()
            .post(format!("{w}/add-checkpoint"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let v: serde_json::Value = r.json().await.unwrap();
        assert!(v["error"].is_string());
    }
    // None of that moved the witness: it still expects old size 4.
    let r = post(
        w,
        &AddCheckpoint {
            old: 4,
            proof: good_proof,
            checkpoint: note9,
        },
    )
    .await;
    assert_eq!(r.0, 200, "{}", r.2);
}

#[tokio::test]
async fn split_view_is_caught_by_witness_and_verifier() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Deployment::new(1);
    let urls = d.start_witnesses(tmp.path()).await;
    let manifest = d.manifest(&urls, 1);
    let w = &urls[0];
    // Two histories of the same size, both signed by the log key.
    let mut honest = FakeLog::new(&d);
    let note_a = honest.append(3);
    let mut fork = FakeLog::new(&d);
    fork.tree.append_entry(b"evil").unwrap();
    let note_b = fork.append(2);

    let r = post(
        w,
        &AddCheckpoint {
            old: 0,
            proof: vec![],
            checkpoint: note_a.clone(),
        },
    )
    .await;
    assert_eq!(r.0, 200);
    let cosigned_a = [note_a.clone(), r.2.into_bytes()].concat();
    // The witness refuses the second view of size 3.
    let r = post(
        w,
        &AddCheckpoint {
            old: 3,
            proof: vec![],
            checkpoint: note_b.clone(),
        },
    )
    .await;
    assert_eq!((r.0, r.2.as_str()), (409, "3\n"));

    // A verifier requiring the witness rejects the uncosigned fork.
    let policy = TrustPolicy::from_manifest(&manifest).unwrap();
    policy.verify_checkpoint(&cosigned_a).unwrap();
    assert!(matches!(
        policy.verify_checkpoint(&note_b),
        Err(VerifyError::Quorum { got: 0, need: 1 })
    ));
    // And a verifier that saw view A refuses view B even without witnesses.
    let log_only = TrustPolicy::new(ORIGIN, d.log_key().verifying_key(), &[], 0).unwrap();
    let mut v = Verifier::open(log_only, &tmp.path().join("v")).unwrap();
    v.update_checkpoint(&note_a, &[]).unwrap();
    assert!(matches!(
        v.update_checkpoint(&note_b, &[]),
        Err(VerifyError::Inconsistent { size: 3, last: 3 })
    ));
    // A larger fork with a made-up proof is refused too, and so is a rollback.
    let note_b5 = fork.append(2);
    let fake_proof = honest.tree.consistency_proof(0, 3).unwrap();
    assert!(matches!(
        v.update_checkpoint(&note_b5, &fake_proof),
        Err(VerifyError::Inconsistent { .. })
    ));
    let note_small = honest.note(2);
    assert!(matches!(
        v.update_checkpoint(&note_small, &[]),
        Err(VerifyError::Rollback { got: 2, last: 3 })
    ));
    assert_eq!(v.last().unwrap().size(), 3);
}
