//! Lawful access end to end on loopback: a court signs, the authority logs
//! the commitment, five custodians check everything on their own and
//! release under it, and the authority combines `t` shares per
//! conversation-day. Every refusal of the custodians' checks is shown.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

use crate::common;

use std::collections::BTreeMap;

use common::*;
use custos_authority::collect::{
    AuthorityKeys, CustodianAnswer, collect, open_response, verify_and_combine,
};
use custos_authority::submit::{SubmittedWarrant, commitment_statement, submit};
use custos_authority::{court, store};
use custos_escrow::{EscrowIdentity, PartialKey};
use custos_wire::ConversationId;
use custos_wire::manifest::Policy;
use custos_wire::release::{
    ConversationDay, ReleaseRequest, ReleaseRequestFields, ReleaseResponse,
};
use custos_wire::statement::{SignedStatement, Statement};
use custos_wire::warrant::{Warrant, WarrantFields};

fn cds(targets: &[u8], days: std::ops::RangeInclusive<u32>) -> Vec<ConversationDay> {
    let mut out = Vec::new();
    for t in targets {
        for d in days.clone() {
            out.push(ConversationDay {
                conversation: ConversationId([*t; 16]),
                day: d,
            });
        }
    }
    out.sort();
    out
}

/// A signed request for custodian `i` from the submitted warrant, with a
/// fresh witnessed checkpoint and proof.
async fn request(
    net: &Net,
    s: &SubmittedWarrant,
    i: usize,
    requested: Vec<ConversationDay>,
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
            checkpoint: cp.note().to_vec(),
            inclusion_proof: proof.into_iter().map(|h| h.0).collect(),
            custodian: custodian_name(i),
            requested_at: net.now(),
            requested,
        },
        &net.authority,
    )
    .unwrap()
}

async fn refusal(net: &Net, i: usize, req: &ReleaseRequest) -> &'static str {
    net.releasers[i]
        .release(&req.encode().unwrap())
        .await
        .map(|_| ())
        .expect_err("expected a refusal")
        .code()
}

async fn submitted(net: &Net, w: &Warrant) -> SubmittedWarrant {
    let mut v = net.verifier("authority");
    submit(&net.log, &mut v, w, &net.authority).await.unwrap()
}

/// Seals a chain root for `cd` under the logged day key; whether `key` opens it.
fn opens(net: &Net, cd: &ConversationDay, key: &custos_escrow::IdentityKey) -> bool {
    let ck0 = [0x5a; 32];
    let capsule = custos_escrow::seal(
        &net.day_keys[&cd.day],
        &cd.conversation.0,
        cd.day,
        b"chain",
        &ck0,
    )
    .unwrap();
    custos_escrow::open(&capsule, key).is_ok_and(|k| *k == ck0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logged_warrant_releases_and_t_shares_open_exactly_the_warranted_days() {
    let net = Net::start(Policy::default(), 10).await;
    let w = net.warrant(&[1, 2], TODAY - 1, TODAY);
    let s = submitted(&net, &w).await;
    let mut v = net.verifier("collect");
    let requested = cds(&[1, 2], TODAY - 1..=TODAY);
    let got = collect(
        &net.manifest,
        &net.log,
        &mut v,
        &s,
        AuthorityKeys {
            signing: &net.authority,
            hpke: &net.hpke,
        },
        requested.clone(),
        net.now(),
    )
    .await
    .unwrap();
    assert_eq!(got.keys.len(), 4);
    for (cd, key) in &got.keys {
        assert!(opens(&net, cd, key), "{cd:?}");
        // Not another conversation, not the next day.
        let other = ConversationDay {
            conversation: ConversationId([3; 16]),
            day: cd.day,
        };
        let next = ConversationDay {
            conversation: cd.conversation,
            day: cd.day + 1,
        };
        assert!(!opens(&net, &other, key));
        assert!(!opens(&net, &next, key));
    }

    // Every KeyRelease is in the log, by its custodian, naming the request.
    let size = net.log.update(&mut v).await.unwrap().size();
    let entries = net.log.entries(0, size).await.unwrap();
    for (name, a) in &got.answers {
        let CustodianAnswer::Released {
            key_release_index, ..
        } = a
        else {
            panic!("{name} refused: {a:?}")
        };
        let st = SignedStatement::decode(&entries[*key_release_index as usize])
            .unwrap()
            .verify()
            .unwrap();
        let Statement::KeyRelease(kr) = st else {
            panic!("not a KeyRelease")
        };
        assert_eq!(&kr.custodian, name);
        assert_eq!(kr.conversation_days, 4);
        assert_eq!(hex::encode(kr.warrant), s.commitment);
    }

    // Any t give the same key; t-1 give none that opens anything.
    let mut per_custodian: Vec<BTreeMap<String, CustodianAnswer>> = Vec::new();
    for (name, a) in got.answers {
        let mut m = BTreeMap::new();
        m.insert(name, a);
        per_custodian.push(m);
    }
    let subset = |idx: &[usize]| {
        let mut m = BTreeMap::new();
        for i in idx {
            for (k, v) in &per_custodian[*i] {
                let CustodianAnswer::Released {
                    key_release_index,
                    shares,
                } = v
                else {
                    unreachable!()
                };
                m.insert(
                    k.clone(),
                    CustodianAnswer::Released {
                        key_release_index: *key_release_index,
                        shares: shares.clone(),
                    },
                );
            }
        }
        m
    };
    let a = verify_and_combine(&net.day_keys, &subset(&[0, 1, 2]), &requested).unwrap();
    let b = verify_and_combine(&net.day_keys, &subset(&[2, 3, 4]), &requested).unwrap();
    let c = verify_and_combine(&net.day_keys, &subset(&[0, 2, 4]), &requested).unwrap();
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert!(verify_and_combine(&net.day_keys, &subset(&[0, 1]), &requested).is_err());
    // t-1 real shares with a made-up third: the made-up one fails
    // verification, so no key can be combined from them.
    let cd = requested[0];
    let two: Vec<PartialKey> = [0, 1]
        .iter()
        .map(|i| match per_custodian[*i].values().next().unwrap() {
            CustodianAnswer::Released { shares, .. } => {
                shares.iter().find(|(c, _)| *c == cd).unwrap().1
            }
            CustodianAnswer::Refused(_) => unreachable!(),
        })
        .collect();
    let fake = custos_escrow::dangerous::trusted_deal(cd.day, N, T, &mut rand_core::OsRng)
        .unwrap()
        .1[4]
        .extract(&EscrowIdentity::new(&cd.conversation.0, cd.day));
    let forged = net.day_keys[&cd.day].verify_and_combine(
        &EscrowIdentity::new(&cd.conversation.0, cd.day),
        &[two[0], two[1], fake],
        &mut rand_core::OsRng,
    );
    assert!(matches!(
        forged,
        Err(custos_escrow::ThresholdError::InvalidPartials { .. })
    ));

    // The keys are stored encrypted to the authority and open only with its key.
    let file = store::seal_keys(&a, &net.hpke).unwrap();
    assert_eq!(store::open_keys(&file, &net.hpke).unwrap(), a);
    let other = custos_authority::keys::HpkeKeyPair::from_seed([8; 32]);
    assert!(store::open_keys(&file, &other).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlogged_or_unwitnessed_warrants_are_refused_by_every_custodian() {
    let net = Net::start(Policy::default(), 10).await;
    let logged = net.warrant(&[1], TODAY, TODAY);
    let s = submitted(&net, &logged).await;
    // Another warrant, never logged, presented with the logged one's proof.
    let unlogged = net.warrant(&[1], TODAY, TODAY);
    let salt = [7u8; 32];
    let entry = SignedStatement::sign(
        &commitment_statement(&unlogged, &salt).unwrap(),
        &net.authority,
    )
    .unwrap();
    let forged_s = SubmittedWarrant {
        warrant: hex::encode(unlogged.encode().unwrap()),
        salt: hex::encode(salt),
        entry: hex::encode(entry.encode().unwrap()),
        index: s.index,
        commitment: String::new(),
    };
    for i in 0..N {
        let mut req = request(&net, &s, i, cds(&[1], TODAY..=TODAY)).await;
        let mut f = req.fields().clone();
        f.warrant = hex::decode(&forged_s.warrant).unwrap();
        f.salt = salt;
        f.commitment_entry = hex::decode(&forged_s.entry).unwrap();
        req = ReleaseRequest::sign(f, &net.authority).unwrap();
        assert_eq!(
            refusal(&net, i, &req).await,
            "commitment_not_in_log",
            "custodian {i}"
        );

        // The logged warrant with a checkpoint that carries only the log's signature.
        let good = request(&net, &s, i, cds(&[1], TODAY..=TODAY)).await;
        let mut f = good.fields().clone();
        let note = String::from_utf8(f.checkpoint.clone()).unwrap();
        let log_sig_only: String = note
            .lines()
            .filter(|l| !l.starts_with("— witness-"))
            .map(|l| format!("{l}\n"))
            .collect();
        f.checkpoint = log_sig_only.into_bytes();
        let req = ReleaseRequest::sign(f, &net.authority).unwrap();
        assert_eq!(
            refusal(&net, i, &req).await,
            "checkpoint_not_witnessed",
            "custodian {i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_altered_warrants_are_refused() {
    let net = Net::start(Policy::default(), 10).await;
    let w = net.warrant(&[1], TODAY, TODAY);
    let s = submitted(&net, &w).await;
    let good = request(&net, &s, 0, cds(&[1], TODAY..=TODAY)).await;
    let alter = |change: &dyn Fn(&mut WarrantFields)| {
        let mut f = w.fields().clone();
        change(&mut f);
        let altered = Warrant::from_parts(f, *w.signature());
        let mut rf = good.fields().clone();
        rf.warrant = altered.encode().unwrap();
        ReleaseRequest::sign(rf, &net.authority).unwrap()
    };
    for (what, req) in [
        (
            "targets",
            alter(&|f| f.targets = vec![ConversationId([1; 16]), ConversationId([2; 16])]),
        ),
        ("days", alter(&|f| f.first_day -= 2)),
        ("embargo", alter(&|f| f.embargo_until += 86_400)),
        ("authority key", alter(&|f| f.authority_hpke_key = [1; 32])),
        ("court", alter(&|f| f.court = "rogue-court.test".into())),
    ] {
        assert_eq!(
            refusal(&net, 0, &req).await,
            "bad_court_signature",
            "{what}"
        );
    }
    let unknown = alter(&|f| f.court = "nobody.test".into());
    assert_eq!(refusal(&net, 0, &unknown).await, "unknown_court");
    // The request signed by someone else than the warrant's authority.
    let req = ReleaseRequest::sign(good.fields().clone(), &net.court).unwrap();
    assert_eq!(refusal(&net, 0, &req).await, "bad_request_signature");
    // The request for another custodian.
    assert_eq!(refusal(&net, 1, &good).await, "wrong_custodian");
    // A wrong salt does not open the commitment.
    let mut rf = good.fields().clone();
    rf.salt = [0; 32];
    let req = ReleaseRequest::sign(rf, &net.authority).unwrap();
    assert_eq!(refusal(&net, 0, &req).await, "commitment_mismatch");
    // The unaltered request is released.
    let resp = ReleaseResponse::decode(
        &net.releasers[0]
            .release(&good.encode().unwrap())
            .await
            .unwrap(),
    )
    .unwrap();
    let opened = open_response(
        &resp.encode().unwrap(),
        &good,
        &custodian_name(0),
        &net.hpke,
    )
    .unwrap();
    assert!(matches!(opened, CustodianAnswer::Released { ref shares, .. } if shares.len() == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_policy_limit_is_enforced() {
    let policy = Policy {
        max_targets: 2,
        max_days: 2,
        max_embargo_days: 20,
        erasure_grace_days: 1,
        ..Policy::default()
    };
    let net = Net::start(policy, 1).await;
    let mk = |targets: &[u8], first, last, embargo_days: u64| {
        let now = net.now();
        court::sign_warrant(
            court::WarrantOrder {
                court: COURT.into(),
                authority: AUTHORITY.into(),
                authority_hpke_key: net.hpke.public_key(),
                legal_basis: "test".into(),
                targets: targets.iter().map(|b| ConversationId([*b; 16])).collect(),
                days: (first, last),
                issued_at: now,
                not_after: now + 86_400,
                embargo_until: now + embargo_days * 86_400,
            },
            &net.court,
        )
        .unwrap()
    };
    let cases = [
        (
            "targets",
            mk(&[1, 2, 3], TODAY, TODAY, 10),
            cds(&[1], TODAY..=TODAY),
            "over_policy",
        ),
        (
            "days",
            mk(&[1], TODAY - 2, TODAY, 10),
            cds(&[1], TODAY..=TODAY),
            "over_policy",
        ),
        (
            "embargo",
            mk(&[1], TODAY, TODAY, 21),
            cds(&[1], TODAY..=TODAY),
            "over_policy",
        ),
        (
            "not started",
            mk(&[1], TODAY, TODAY + 1, 10),
            cds(&[1], TODAY + 1..=TODAY + 1),
            "day_not_started",
        ),
        (
            "outside",
            mk(&[1], TODAY, TODAY, 10),
            cds(&[2], TODAY..=TODAY),
            "outside_warrant",
        ),
        (
            "outside day",
            mk(&[1], TODAY, TODAY, 10),
            cds(&[1], TODAY - 1..=TODAY - 1),
            "outside_warrant",
        ),
    ];
    for (what, w, requested, code) in cases {
        let s = submitted(&net, &w).await;
        let req = request(&net, &s, 0, requested).await;
        assert_eq!(refusal(&net, 0, &req).await, code, "{what}");
    }
    // Erased day.
    let w = mk(&[1], TODAY - 1, TODAY, 10);
    let s = submitted(&net, &w).await;
    net.shares[0].erase(TODAY - 1);
    let req = request(&net, &s, 0, cds(&[1], TODAY - 1..=TODAY - 1)).await;
    assert_eq!(refusal(&net, 0, &req).await, "day_erased");
    // Quota of 1 warrant a month: the first is released, again under the same
    // warrant too, a second warrant is refused.
    let req = request(&net, &s, 0, cds(&[1], TODAY..=TODAY)).await;
    net.releasers[0]
        .release(&req.encode().unwrap())
        .await
        .unwrap();
    let req = request(&net, &s, 0, cds(&[1], TODAY..=TODAY)).await;
    net.releasers[0]
        .release(&req.encode().unwrap())
        .await
        .unwrap();
    let other = submitted(&net, &mk(&[2], TODAY, TODAY, 10)).await;
    let req = request(&net, &other, 0, cds(&[2], TODAY..=TODAY)).await;
    assert_eq!(refusal(&net, 0, &req).await, "quota_spent");
    // Another custodian counts on its own and still releases.
    let req = request(&net, &other, 1, cds(&[2], TODAY..=TODAY)).await;
    net.releasers[1]
        .release(&req.encode().unwrap())
        .await
        .unwrap();
    // Not-after: two days later the first warrant is expired.
    net.clock.advance_days(2);
    let req = request(&net, &s, 2, cds(&[1], TODAY..=TODAY)).await;
    assert_eq!(refusal(&net, 2, &req).await, "warrant_expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_warrant_gets_nothing_more() {
    let net = Net::start(Policy::default(), 10).await;
    let w = net.warrant(&[1], TODAY - 1, TODAY);
    let s = submitted(&net, &w).await;
    let req = request(&net, &s, 0, cds(&[1], TODAY - 1..=TODAY - 1)).await;
    net.releasers[0]
        .release(&req.encode().unwrap())
        .await
        .unwrap();
    // A revocation by another court does not count.
    let rogue = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
    let commitment: [u8; 32] = hex::decode(&s.commitment).unwrap().try_into().unwrap();
    let mut v = net.verifier("court");
    court::revoke(
        &net.log,
        &mut v,
        "rogue-court.test",
        &rogue,
        commitment,
        net.now(),
    )
    .await
    .unwrap();
    let req = request(&net, &s, 0, cds(&[1], TODAY..=TODAY)).await;
    net.releasers[0]
        .release(&req.encode().unwrap())
        .await
        .unwrap();
    court::revoke(&net.log, &mut v, COURT, &net.court, commitment, net.now())
        .await
        .unwrap();
    for i in 0..N {
        let req = request(&net, &s, i, cds(&[1], TODAY..=TODAY)).await;
        assert_eq!(
            refusal(&net, i, &req).await,
            "warrant_revoked",
            "custodian {i}"
        );
    }
}

/// Counts the `KeyRelease` entries in the log that answer `hash`.
async fn releases_logged(net: &Net, hash: [u8; 32]) -> usize {
    let mut v = net.verifier("count");
    let size = net.log.update(&mut v).await.unwrap().size();
    let entries = net.log.entries(0, size).await.unwrap();
    entries
        .iter()
        .filter(|e| {
            matches!(SignedStatement::decode(e).unwrap().verify().unwrap(),
                Statement::KeyRelease(kr) if kr.request_hash == hash)
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_release_neither_loses_a_logged_release_nor_leaks_an_unlogged_one() {
    use custos_custodian::release::{ReleaseRecord, ReleaseState, Releaser, month_of_day};
    use custos_wire::statement::KeyRelease;

    let net = Net::start(Policy::default(), 10).await;
    let w = net.warrant(&[1, 2], TODAY, TODAY);
    let s = submitted(&net, &w).await;
    let commitment: [u8; 32] = hex::decode(&s.commitment).unwrap().try_into().unwrap();
    let logged_req = request(&net, &s, 0, cds(&[1], TODAY..=TODAY)).await;
    let unlogged_req = request(&net, &s, 0, cds(&[2], TODAY..=TODAY)).await;
    let pending = |req: &ReleaseRequest| {
        let st = Statement::KeyRelease(KeyRelease {
            warrant: commitment,
            custodian: custodian_name(0),
            conversation_days: 1,
            request_hash: req.hash().unwrap(),
            released_at: net.now(),
        });
        SignedStatement::sign(&st, &net.custodian_keys[0]).unwrap()
    };
    // The state a custodian leaves when it crashes after persisting two
    // pending releases, one of which the log appended before the crash.
    let a = pending(&logged_req);
    let b = pending(&unlogged_req);
    let mut state = ReleaseState::default();
    for (req, st) in [(&logged_req, &a), (&unlogged_req, &b)] {
        state.releases.insert(
            hex::encode(req.hash().unwrap()),
            ReleaseRecord {
                statement: hex::encode(st.encode().unwrap()),
                index: None,
                warrant: s.commitment.clone(),
            },
        );
    }
    state
        .quota
        .entry(AUTHORITY.into())
        .or_default()
        .entry(month_of_day(TODAY))
        .or_default()
        .insert(s.commitment.clone());
    let data = net.dir.path().join("restarted");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("release-state.json"),
        serde_json::to_vec(&state).unwrap(),
    )
    .unwrap();
    let appended = net.log.submit(&a).await.unwrap().index;

    // The restarted custodian finds the logged release again and logs no second one.
    let r = Releaser::open(
        net.releaser_config(0, data.clone(), net.log.clone()),
        net.shares[0].clone(),
    )
    .unwrap();
    let resp =
        ReleaseResponse::decode(&r.release(&logged_req.encode().unwrap()).await.unwrap()).unwrap();
    assert_eq!(resp.key_release_index, appended);
    assert_eq!(releases_logged(&net, logged_req.hash().unwrap()).await, 1);
    // The release the log never saw is logged now, once, before any share leaves.
    assert_eq!(releases_logged(&net, unlogged_req.hash().unwrap()).await, 0);
    let resp = ReleaseResponse::decode(&r.release(&unlogged_req.encode().unwrap()).await.unwrap())
        .unwrap();
    assert_eq!(releases_logged(&net, unlogged_req.hash().unwrap()).await, 1);
    drop(r);
    // Restarted again: the same answers, nothing logged twice, quota kept.
    let r = Releaser::open(
        net.releaser_config(0, data.clone(), net.log.clone()),
        net.shares[0].clone(),
    )
    .unwrap();
    let again = ReleaseResponse::decode(&r.release(&unlogged_req.encode().unwrap()).await.unwrap())
        .unwrap();
    assert_eq!(again.key_release_index, resp.key_release_index);
    assert_eq!(releases_logged(&net, unlogged_req.hash().unwrap()).await, 1);
    let st = r.state().await;
    assert_eq!(st.quota[AUTHORITY][&month_of_day(TODAY)].len(), 1);
    assert!(st.releases.values().all(|rec| rec.index.is_some()));

    // A custodian that cannot reach the log returns nothing.
    let dead = custos_tlog::LogClient::new("http://127.0.0.1:9").unwrap();
    let r = Releaser::open(
        net.releaser_config(1, net.dir.path().join("dead"), dead),
        net.shares[1].clone(),
    )
    .unwrap();
    let req = request(&net, &s, 1, cds(&[1], TODAY..=TODAY)).await;
    let err = r.release(&req.encode().unwrap()).await.unwrap_err();
    assert_eq!(err.code(), "log_unavailable");
    assert_eq!(releases_logged(&net, req.hash().unwrap()).await, 0);
}
