//! Five running custodian services unseal a warrant on their own: they
//! learn it from release requests, and when its embargo ends on the
//! simulated clock exactly one `WarrantUnsealing` appears in the log.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use custos_custodian::CustodianKey;
use custos_tlog::{ClientError, LogClient, TrustPolicy, Verifier};
use custos_wire::ConversationId;
use custos_wire::release::{ConversationDay, ReleaseRequest, ReleaseRequestFields};
use custos_wire::statement::{SignedStatement, Statement, WarrantCommitment, warrant_commitment};
use custos_wire::warrant::{Warrant, WarrantFields};

const DAY_SECS: u64 = 86_400;

async fn log_and_wait(log: &LogClient, v: &mut Verifier, st: &SignedStatement) -> u64 {
    let index = log.submit(st).await.unwrap().index;
    let bytes = st.encode().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match log.prove_included(v, index, &bytes).await {
            Ok(_) => return index,
            Err(ClientError::NotYetWitnessed { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// The unsealings of `commitment` in the log that open it.
async fn unsealings(cluster: &Cluster, commitment: [u8; 32]) -> usize {
    let view = cluster.view();
    let policy = TrustPolicy::from_manifest(&cluster.manifest).unwrap();
    let size = policy
        .verify_checkpoint(&view.client().checkpoint().await.unwrap())
        .unwrap()
        .size();
    view.client()
        .entries(0, size)
        .await
        .unwrap()
        .iter()
        .filter(|e| {
            matches!(SignedStatement::decode(e).unwrap().verify().unwrap(),
                Statement::WarrantUnsealing(u) if u.warrant == commitment && u.opens_commitment())
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn running_custodians_unseal_a_warrant_once_when_its_embargo_ends() {
    let cluster = Cluster::start(&[0, 1, 2, 3, 4], 0, fast_timing()).await;
    let clock = cluster.clock.shared();
    let today = clock.today();
    cluster
        .wait_log("all five publish today's key", 120, |v| {
            v.day_key(today).is_some_and(|(_, who)| who.len() == N)
        })
        .await;

    // A court-signed warrant with an embargo of two days, its commitment in
    // the log, and a release request to every custodian.
    let now = clock.now_secs();
    let authority_hpke = CustodianKey::from_secrets("authority-hpke", [7; 32], [8; 32], [9; 32])
        .unwrap()
        .hpke_public_key();
    let warrant = Warrant::sign(
        WarrantFields {
            id: [5; 16],
            court: COURT.into(),
            authority: AUTHORITY.into(),
            legal_basis: "test".into(),
            targets: vec![ConversationId([1; 16])],
            first_day: today,
            last_day: today,
            issued_at: now,
            not_after: now + 7 * DAY_SECS,
            embargo_until: now + 2 * DAY_SECS,
            authority_hpke_key: authority_hpke,
        },
        &cluster.court_key(),
    )
    .unwrap();
    let warrant_bytes = warrant.encode().unwrap();
    let salt = [6u8; 32];
    let commitment = warrant_commitment(&salt, &warrant_bytes);
    let entry = SignedStatement::sign(
        &Statement::WarrantCommitment(WarrantCommitment {
            commitment,
            court: COURT.into(),
            authority: AUTHORITY.into(),
            issued_at: now,
            embargo_until: now + 2 * DAY_SECS,
            targets: 1,
            days: 1,
            court_signature: warrant.signature().to_vec(),
        }),
        &cluster.authority_key(),
    )
    .unwrap();
    let policy = TrustPolicy::from_manifest(&cluster.manifest).unwrap();
    let mut v = Verifier::open(policy, &cluster.dir.path().join("authority-verifier")).unwrap();
    let view = cluster.view();
    let log = view.client();
    let index = log_and_wait(log, &mut v, &entry).await;
    let entry_bytes = entry.encode().unwrap();
    let http = reqwest::Client::new();
    for i in 0..N {
        let (cp, _) = log
            .prove_included(&mut v, index, &entry_bytes)
            .await
            .unwrap();
        let proof = log.inclusion_proof(index, cp.size()).await.unwrap();
        let req = ReleaseRequest::sign(
            ReleaseRequestFields {
                warrant: warrant_bytes.clone(),
                salt,
                commitment_entry: entry_bytes.clone(),
                commitment_index: index,
                checkpoint: cp.note().to_vec(),
                inclusion_proof: proof.into_iter().map(|h| h.0).collect(),
                custodian: cluster.key(i).name().to_owned(),
                requested_at: clock.now_secs(),
                requested: vec![ConversationDay {
                    conversation: ConversationId([1; 16]),
                    day: today,
                }],
            },
            &cluster.authority_key(),
        )
        .unwrap();
        let resp = http
            .post(format!("http://{}/v1/release", cluster.addrs[i]))
            .body(req.encode().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "custodian {i}");
    }

    // Before the end nothing is unsealed.
    cluster.clock.advance_days(1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(unsealings(&cluster, commitment).await, 0);

    // The embargo ends: the custodians publish it without the authority.
    cluster.clock.advance_days(1);
    cluster.clock.advance_millis(60_000);
    let deadline = Instant::now() + Duration::from_secs(60);
    while unsealings(&cluster, commitment).await == 0 {
        assert!(Instant::now() < deadline, "never unsealed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every custodian's turn comes, and none publishes again.
    cluster.clock.advance_days(1);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(unsealings(&cluster, commitment).await, 1);
}
