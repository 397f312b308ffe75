//! Unsealing without the authority: five custodians that learnt a warrant
//! from release requests publish its `WarrantUnsealing` when the embargo
//! ends on the simulated clock, exactly once; a court extension logged
//! before the end delays it; one beyond the policy's maximum is refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

use crate::common;

use common::*;
use custos_authority::collect::{AuthorityKeys, collect};
use custos_authority::court;
use custos_authority::submit::submit;
use custos_wire::ConversationId;
use custos_wire::manifest::Policy;
use custos_wire::release::ConversationDay;
use custos_wire::statement::{SignedStatement, Statement};
use custos_wire::warrant::Warrant;

const DAY: u64 = 86_400;

/// The valid unsealings of `commitment` in the log: (author, warrant bytes).
async fn unsealings(net: &Net, commitment: [u8; 32]) -> Vec<([u8; 32], Vec<u8>)> {
    let mut v = net.verifier("count");
    let size = net.log.update(&mut v).await.unwrap().size();
    net.log
        .entries(0, size)
        .await
        .unwrap()
        .iter()
        .filter_map(|e| {
            let s = SignedStatement::decode(e).unwrap();
            match s.verify().unwrap() {
                Statement::WarrantUnsealing(u) if u.warrant == commitment => {
                    assert!(u.opens_commitment(), "an unsealing that does not open");
                    Some((*s.author(), u.warrant_bytes))
                }
                _ => None,
            }
        })
        .collect()
}

/// One tick of every custodian's unsealing task, all at once.
async fn tick_all(net: &Net) {
    let mut tasks = Vec::new();
    for r in &net.releasers {
        let r = r.clone();
        tasks.push(tokio::spawn(async move { r.unseal_due().await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embargo_ends_and_the_custodians_unseal_the_warrant_once() {
    let policy = Policy {
        max_embargo_days: 40,
        ..Policy::default()
    };
    let net = Net::start(policy, 10).await;
    let issued = net.now();
    // Embargo of 30 days.
    let w: Warrant = net.warrant(&[1], TODAY, TODAY);
    assert_eq!(w.fields().embargo_until, issued + 30 * DAY);
    let mut v = net.verifier("authority");
    let s = submit(&net.log, &mut v, &w, &net.authority).await.unwrap();
    let commitment: [u8; 32] = hex::decode(&s.commitment).unwrap().try_into().unwrap();
    // The custodians learn the warrant from the authority's requests.
    let got = collect(
        &net.manifest,
        &net.log,
        &mut v,
        &s,
        AuthorityKeys {
            signing: &net.authority,
            hpke: &net.hpke,
        },
        vec![ConversationDay {
            conversation: ConversationId([1; 16]),
            day: TODAY,
        }],
        net.now(),
    )
    .await
    .unwrap();
    assert_eq!(got.keys.len(), 1);

    // Before the end nothing is unsealed.
    net.clock.advance_days(29);
    tick_all(&net).await;
    assert!(unsealings(&net, commitment).await.is_empty());

    // The court extends the embargo by 5 days before it ends (honoured),
    // then to 60 days after issue, beyond the policy's 40 (refused).
    let mut cv = net.verifier("court");
    court::extend_embargo(
        &net.log,
        &mut cv,
        COURT,
        &net.court,
        commitment,
        issued + 35 * DAY,
        net.now(),
    )
    .await
    .unwrap();
    court::extend_embargo(
        &net.log,
        &mut cv,
        COURT,
        &net.court,
        commitment,
        issued + 60 * DAY,
        net.now(),
    )
    .await
    .unwrap();
    // An extension signed by another court does not count either.
    let rogue = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
    court::extend_embargo(
        &net.log,
        &mut cv,
        "rogue-court.test",
        &rogue,
        commitment,
        issued + 38 * DAY,
        net.now(),
    )
    .await
    .unwrap();
    for r in &net.releasers {
        let e = r.embargo(&commitment).await.unwrap().unwrap();
        assert_eq!(e.until, issued + 35 * DAY);
        assert_eq!((e.extensions, e.refused), (1, 2));
    }

    // The original end passes: still sealed, because of the extension.
    net.clock.advance_days(2);
    tick_all(&net).await;
    assert!(unsealings(&net, commitment).await.is_empty());

    // The extended end passes: the custodians unseal it, without the
    // authority, exactly once although all five run.
    net.clock.set_millis((issued + 35 * DAY + 60) * 1000);
    for _ in 0..3 {
        tick_all(&net).await;
    }
    let found = unsealings(&net, commitment).await;
    assert_eq!(found.len(), 1, "expected exactly one unsealing");
    let (author, bytes) = &found[0];
    assert!(
        net.custodian_keys
            .iter()
            .any(|k| k.verifying_key().as_bytes() == author)
    );
    assert_eq!(Warrant::decode(bytes).unwrap(), w);
    // Later turns of the other custodians publish nothing more.
    net.clock.advance_days(2);
    for _ in 0..2 {
        tick_all(&net).await;
    }
    assert_eq!(unsealings(&net, commitment).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custodian_that_never_saw_the_warrant_cannot_and_does_not_unseal_it() {
    let net = Net::start(Policy::default(), 10).await;
    let w = net.warrant(&[1], TODAY, TODAY);
    let mut v = net.verifier("authority");
    let s = submit(&net.log, &mut v, &w, &net.authority).await.unwrap();
    let commitment: [u8; 32] = hex::decode(&s.commitment).unwrap().try_into().unwrap();
    // No request reached any custodian: the commitment alone reveals nothing.
    net.clock.advance_days(31);
    tick_all(&net).await;
    assert!(unsealings(&net, commitment).await.is_empty());
    assert!(
        net.releasers[0]
            .embargo(&commitment)
            .await
            .unwrap()
            .is_none()
    );
}
