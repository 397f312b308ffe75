//! The custodians' release path against faults, on loopback with a real
//! log and witnesses: a log that serves altered entries, a restart in the
//! middle of a release, a lost or stale state file, a share that a restored
//! store still offers after its erasure was logged, and a checkpoint that is
//! witnessed but inconsistent with the last one a custodian saw.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

use crate::common;

use common::*;
use custos_authority::submit::{SubmittedWarrant, submit};
use custos_custodian::release::{ReleaseState, Releaser};
use custos_tlog::LogClient;
use custos_wire::ConversationId;
use custos_wire::manifest::Policy;
use custos_wire::release::{
    ConversationDay, ReleaseRequest, ReleaseRequestFields, ReleaseResponse,
};
use custos_wire::statement::{DayKeyErasure, SignedStatement, Statement};
use custos_wire::warrant::Warrant;

fn cds(target: u8, day: u32) -> Vec<ConversationDay> {
    vec![ConversationDay {
        conversation: ConversationId([target; 16]),
        day,
    }]
}

async fn submitted(net: &Net, w: &Warrant) -> SubmittedWarrant {
    let mut v = net.verifier("authority");
    submit(&net.log, &mut v, w, &net.authority).await.unwrap()
}

/// A request for custodian `i`, with the checkpoint `note` (a fresh
/// witnessed one when `None`).
async fn request_with(
    net: &Net,
    s: &SubmittedWarrant,
    i: usize,
    requested: Vec<ConversationDay>,
    note: Option<Vec<u8>>,
) -> ReleaseRequest {
    let entry = hex::decode(&s.entry).unwrap();
    let mut v = net.verifier("req");
    let (cp, _) = net
        .log
        .prove_included(&mut v, s.index, &entry)
        .await
        .unwrap();
    let proof = net.log.inclusion_proof(s.index, cp.size()).await.unwrap();
    ReleaseRequest::sign(
        ReleaseRequestFields {
            warrant: hex::decode(&s.warrant).unwrap(),
            salt: hex::decode(&s.salt).unwrap().try_into().unwrap(),
            commitment_entry: entry,
            commitment_index: s.index,
            checkpoint: note.unwrap_or_else(|| cp.note().to_vec()),
            inclusion_proof: proof.into_iter().map(|h| h.0).collect(),
            custodian: custodian_name(i),
            requested_at: net.now(),
            requested,
        },
        &net.authority,
    )
    .unwrap()
}

async fn request(
    net: &Net,
    s: &SubmittedWarrant,
    i: usize,
    requested: Vec<ConversationDay>,
) -> ReleaseRequest {
    request_with(net, s, i, requested, None).await
}

/// Every entry of the log up to its witnessed checkpoint.
async fn all_entries(net: &Net) -> Vec<Vec<u8>> {
    let mut v = net.verifier("count");
    let size = net.log.update(&mut v).await.unwrap().size();
    net.log.entries(0, size).await.unwrap()
}

/// The `KeyRelease` entries in the log that answer `hash`.
async fn releases_logged(net: &Net, hash: [u8; 32]) -> usize {
    all_entries(net)
        .await
        .iter()
        .filter(|e| {
            matches!(SignedStatement::decode(e).unwrap().verify().unwrap(),
                Statement::KeyRelease(kr) if kr.request_hash == hash)
        })
        .count()
}

async fn wait_logged(net: &Net, hash: [u8; 32], n: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while releases_logged(net, hash).await != n {
        assert!(std::time::Instant::now() < deadline, "never logged {n}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn open(
    net: &Net,
    i: usize,
    data: &std::path::Path,
    log: LogClient,
    quota: u32,
) -> Releaser<std::sync::Arc<custos_custodian::release::MemoryShares>> {
    let mut config = net.releaser_config(i, data.to_path_buf(), log);
    config.monthly_quota = quota;
    Releaser::open(config, net.shares[i].clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_served_with_altered_bytes_is_not_ignored_but_refused() {
    let net = Net::start(Policy::default(), 10).await;
    let w = net.warrant(&[1], TODAY, TODAY);
    let s = submitted(&net, &w).await;
    let commitment: [u8; 32] = hex::decode(&s.commitment).unwrap().try_into().unwrap();
    let mut v = net.verifier("court");
    let at =
        custos_authority::court::revoke(&net.log, &mut v, COURT, &net.court, commitment, net.now())
            .await
            .unwrap();
    let revocation = all_entries(&net).await[at as usize].clone();

    // The log serves the revocation with one byte changed: its signature no
    // longer verifies, so a reader that does not re-hash would skip it.
    let proxy = custos_deploy::proxy::spawn_proxy(&net.log_url)
        .await
        .unwrap();
    proxy.faults.tamper(Some(revocation));
    let via = LogClient::new(&proxy.url).unwrap();
    let r = open(&net, 0, &net.dir.path().join("tampered"), via, 10);
    let req = request(&net, &s, 0, cds(1, TODAY)).await;
    let err = r.release(&req.encode().unwrap()).await.unwrap_err();
    assert_eq!(err.code(), "log_inconsistent", "{err}");
    assert_eq!(releases_logged(&net, req.hash().unwrap()).await, 0);

    // The same log serving honest bytes: the revocation is seen.
    proxy.faults.tamper(None);
    let err = r.release(&req.encode().unwrap()).await.unwrap_err();
    assert_eq!(err.code(), "warrant_revoked", "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_release_logs_it_once_and_returns_shares_only_after_inclusion() {
    let net = Net::start(Policy::default(), 10).await;
    let w = net.warrant(&[1, 2], TODAY, TODAY);
    let s = submitted(&net, &w).await;
    let proxy = custos_deploy::proxy::spawn_proxy(&net.log_url)
        .await
        .unwrap();
    let via = LogClient::new(&proxy.url).unwrap();
    let data = net.dir.path().join("mid-release");

    // Failed but persisted: the log appends the KeyRelease, its answer is
    // lost, the custodian stops. Nothing was returned.
    let req = request(&net, &s, 0, cds(1, TODAY)).await;
    let hash = req.hash().unwrap();
    proxy.faults.set_lose(true);
    let r = open(&net, 0, &data, via.clone(), 10);
    let err = r.release(&req.encode().unwrap()).await.unwrap_err();
    assert_eq!(err.code(), "log_unavailable");
    drop(r);
    proxy.faults.set_lose(false);
    wait_logged(&net, hash, 1).await;

    // At start the custodian reconciles its pending release with the log.
    let r = open(&net, 0, &data, via.clone(), 10);
    r.recover().await.unwrap();
    let logged = r.state().await.releases[&hex::encode(hash)].index;
    assert!(
        logged.is_some(),
        "the pending release was not found in the log"
    );
    // The retry returns the shares under the one logged release.
    let resp = ReleaseResponse::decode(&r.release(&req.encode().unwrap()).await.unwrap()).unwrap();
    assert_eq!(Some(resp.key_release_index), logged);
    assert_eq!(releases_logged(&net, hash).await, 1);
    drop(r);

    // Failed and not persisted: the log never sees it, nothing is returned;
    // after a restart the retry logs it once and only then answers.
    let req = request(&net, &s, 0, cds(2, TODAY)).await;
    let hash = req.hash().unwrap();
    proxy.faults.set_drop(true);
    let r = open(&net, 0, &data, via.clone(), 10);
    let err = r.release(&req.encode().unwrap()).await.unwrap_err();
    assert_eq!(err.code(), "log_unavailable");
    drop(r);
    proxy.faults.set_drop(false);
    assert_eq!(releases_logged(&net, hash).await, 0);
    let r = open(&net, 0, &data, via, 10);
    r.recover().await.unwrap();
    assert_eq!(r.state().await.releases[&hex::encode(hash)].index, None);
    let resp = ReleaseResponse::decode(&r.release(&req.encode().unwrap()).await.unwrap()).unwrap();
    assert_eq!(releases_logged(&net, hash).await, 1);
    let entry = &all_entries(&net).await[resp.key_release_index as usize];
    assert!(matches!(
        SignedStatement::decode(entry).unwrap().verify().unwrap(),
        Statement::KeyRelease(kr) if kr.request_hash == hash
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_or_stale_state_file_is_rebuilt_from_the_log_and_never_goes_backwards() {
    let net = Net::start(Policy::default(), 10).await;
    let first = submitted(&net, &net.warrant(&[1], TODAY, TODAY)).await;
    let second = submitted(&net, &net.warrant(&[2], TODAY, TODAY)).await;
    let data = net.dir.path().join("lost-state");
    // Quota of one warrant a month: the first warrant uses it.
    let r = open(&net, 0, &data, net.log.clone(), 1);
    let req = request(&net, &first, 0, cds(1, TODAY)).await;
    let resp = ReleaseResponse::decode(&r.release(&req.encode().unwrap()).await.unwrap()).unwrap();
    drop(r);

    // The state file is lost.
    std::fs::remove_file(data.join("release-state.json")).unwrap();
    let r = open(&net, 0, &data, net.log.clone(), 1);
    // The quota the log proves used is still used.
    let other = request(&net, &second, 0, cds(2, TODAY)).await;
    let err = r.release(&other.encode().unwrap()).await.unwrap_err();
    assert_eq!(err.code(), "quota_spent", "{err}");
    // The release the log holds is found again, not logged a second time.
    let again = ReleaseResponse::decode(&r.release(&req.encode().unwrap()).await.unwrap()).unwrap();
    assert_eq!(again.key_release_index, resp.key_release_index);
    assert_eq!(releases_logged(&net, req.hash().unwrap()).await, 1);
    assert!(r.state().await.seen_size > resp.key_release_index);
    drop(r);

    // A state that saw a larger log than the one now served: refused.
    let stale = net.dir.path().join("stale-state");
    std::fs::create_dir_all(&stale).unwrap();
    let state = ReleaseState {
        seen_size: 1_000_000,
        ..ReleaseState::default()
    };
    std::fs::write(
        stale.join("release-state.json"),
        serde_json::to_vec(&state).unwrap(),
    )
    .unwrap();
    let r = open(&net, 1, &stale, net.log.clone(), 10);
    let req = request(&net, &first, 1, cds(1, TODAY)).await;
    let err = r.release(&req.encode().unwrap()).await.unwrap_err();
    assert_eq!(err.code(), "log_inconsistent", "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_whose_erasure_is_logged_is_never_used_even_if_the_store_has_it() {
    let net = Net::start(Policy::default(), 10).await;
    let s = submitted(&net, &net.warrant(&[1], TODAY - 2, TODAY)).await;
    // Custodian 0 logged the erasure of TODAY - 2, but its store (restored
    // from an older backup) still offers the share.
    let st = Statement::DayKeyErasure(DayKeyErasure {
        day: TODAY - 2,
        custodian: custodian_name(0),
        erased_at: net.now(),
    });
    let mut v = net.verifier("erasure");
    custos_authority::log_and_wait(
        &net.log,
        &mut v,
        &SignedStatement::sign(&st, &net.custodian_keys[0]).unwrap(),
    )
    .await
    .unwrap();
    let req = request(&net, &s, 0, cds(1, TODAY - 2)).await;
    let err = net.releasers[0]
        .release(&req.encode().unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "day_erased", "{err}");
    assert_eq!(releases_logged(&net, req.hash().unwrap()).await, 0);
    // Another custodian, whose erasure is not logged, still releases the day.
    let req = request(&net, &s, 1, cds(1, TODAY - 2)).await;
    net.releasers[1]
        .release(&req.encode().unwrap())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witnessed_checkpoint_inconsistent_with_the_last_one_seen_is_refused() {
    let net = Net::start(Policy::default(), 10).await;
    let s = submitted(&net, &net.warrant(&[1], TODAY, TODAY)).await;
    let req = request(&net, &s, 0, cds(1, TODAY)).await;
    net.releasers[0]
        .release(&req.encode().unwrap())
        .await
        .unwrap();
    // A fork: a checkpoint of the current size with another root, signed by
    // the log's key and cosigned by both witnesses (all keys compromised).
    let mut v = net.verifier("fork");
    let size = net.log.update(&mut v).await.unwrap().size();
    let text =
        custos_tlog::checkpoint::checkpoint_text(ORIGIN, size, custos_tlog::Hash([0xab; 32]))
            .unwrap();
    let mut note = signed_note::Note::new(&text, &[]).unwrap();
    let log_signer = net.log_key().log_signer().unwrap();
    let w0 = net.witness_key(0).cosigner(custos_clock::system()).unwrap();
    let w1 = net.witness_key(1).cosigner(custos_clock::system()).unwrap();
    note.add_sigs(&[&log_signer, &w0, &w1]).unwrap();
    let forged = note.to_bytes();
    // The forged note passes the witness quorum on its own.
    custos_tlog::TrustPolicy::from_manifest(&net.manifest)
        .unwrap()
        .verify_checkpoint(&forged)
        .unwrap();
    let req = request_with(&net, &s, 0, cds(1, TODAY), Some(forged)).await;
    let err = net.releasers[0]
        .release(&req.encode().unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "checkpoint_inconsistent", "{err}");
}
