//! End-to-end messaging on a real delivery service on loopback (the test
//! kit's deployment): three users, one-to-one and group conversations,
//! membership changes, restarts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;

use custos_client::refusal::EnvelopeRefusal;
use custos_client::seal::SealError;
use custos_client::{Device, Outcome};
use custos_deploy::{CustodianMode, Deployment, DeploymentSpec, ServerSpec};
use custos_wire::ConversationId;
use custos_wire::frames::{Delivery, ItemKind};
use tempfile::TempDir;

/// The test kit's deployment (a log with two witnesses, no custodians) on
/// the system clock, and its delivery service without franking (tests below
/// alter deliveries, which a tag would refuse first).
async fn deployment(dir: &TempDir) -> Deployment {
    crate::kit::deployment(dir, ServerSpec::unlimited_without_franking()).await
}

use crate::kit::user;

async fn texts(d: &mut Device) -> Vec<(String, String, String)> {
    d.receive(None)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.conversation, m.sender, m.text))
        .collect()
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Raw, unprocessed items in a device's mailbox (as the service would hand them out).
async fn raw_mailbox(d: &Device) -> Vec<Delivery> {
    d.api().fetch(0, 1000).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_users_one_to_one_and_group() {
    let dir = TempDir::new().unwrap();
    let d = deployment(&dir).await;
    let mut alice = user(&dir, &d, "alice").await;
    let mut bob = user(&dir, &d, "bob").await;
    let mut carol = user(&dir, &d, "carol").await;

    // One-to-one.
    let dm = alice.create_conversation(&names(&["bob"])).await.unwrap();
    for i in 0..5 {
        alice.send_text(&dm, &format!("dm {i}")).await.unwrap();
    }
    let got = texts(&mut bob).await;
    let expected: Vec<_> = (0..5)
        .map(|i| (dm.to_hex(), "alice".to_string(), format!("dm {i}")))
        .collect();
    assert_eq!(got, expected);
    bob.send_text(&dm, "hi alice").await.unwrap();
    assert_eq!(
        texts(&mut alice).await,
        vec![(dm.to_hex(), "bob".into(), "hi alice".into())]
    );

    // A group of three; every message arrives intact, in order per sender.
    let group = alice
        .create_conversation(&names(&["bob", "carol"]))
        .await
        .unwrap();
    bob.sync().await.unwrap();
    carol.sync().await.unwrap();
    for i in 0..3 {
        alice.send_text(&group, &format!("a{i}")).await.unwrap();
        bob.send_text(&group, &format!("b{i}")).await.unwrap();
        carol.send_text(&group, &format!("c{i}")).await.unwrap();
    }
    for (me, dev) in [
        ("alice", &mut alice),
        ("bob", &mut bob),
        ("carol", &mut carol),
    ] {
        let got = texts(dev).await;
        for sender in ["alice", "bob", "carol"] {
            let mine: Vec<_> = got
                .iter()
                .filter(|m| m.1 == sender)
                .map(|m| m.2.clone())
                .collect();
            if sender == me {
                assert!(mine.is_empty(), "{me} does not receive its own messages");
            } else {
                let p = &sender[..1];
                assert_eq!(
                    mine,
                    vec![format!("{p}0"), format!("{p}1"), format!("{p}2")],
                    "{me} from {sender}"
                );
            }
        }
    }
    let rosters = alice.conversations().unwrap();
    let g = rosters
        .iter()
        .find(|c| c.conversation == group.to_hex())
        .unwrap();
    let mut members = g.members.clone();
    members.sort();
    assert_eq!(members, names(&["alice", "bob", "carol"]));
    d.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_member_cannot_read_later_and_new_member_cannot_read_earlier() {
    let dir = TempDir::new().unwrap();
    let d = deployment(&dir).await;
    let mut alice = user(&dir, &d, "alice").await;
    let mut bob = user(&dir, &d, "bob").await;
    let mut carol = user(&dir, &d, "carol").await;
    let mut dave = user(&dir, &d, "dave").await;

    let group = alice
        .create_conversation(&names(&["bob", "carol"]))
        .await
        .unwrap();
    carol.sync().await.unwrap();
    alice.send_text(&group, "before dave").await.unwrap();
    // What the service holds for bob now: the chain announcement and envelope
    // sent before dave joined.
    let before_dave: Vec<_> = raw_mailbox(&bob).await;
    assert!(before_dave.iter().any(|d| d.kind == ItemKind::Envelope));
    assert_eq!(texts(&mut carol).await.len(), 1);

    // Remove carol, add dave.
    alice
        .remove_members(&group, &names(&["carol"]))
        .await
        .unwrap();
    alice.add_members(&group, &names(&["dave"])).await.unwrap();
    let outcomes = carol.sync().await.unwrap();
    assert!(outcomes.contains(&Outcome::Removed));
    dave.sync().await.unwrap();

    alice.send_text(&group, "after removal").await.unwrap();
    bob.sync().await.unwrap();
    let after: Vec<_> = raw_mailbox(&dave).await;
    assert!(after.iter().any(|d| d.kind == ItemKind::Envelope));

    // Dave reads what was sent after he joined, and nothing from before.
    let dave_got = texts(&mut dave).await;
    assert_eq!(
        dave_got,
        vec![(group.to_hex(), "alice".into(), "after removal".into())]
    );
    for (i, mut d) in before_dave.into_iter().enumerate() {
        d.seq = 1_000_000 + i as u64;
        let outcome = dave.process_delivery(d).await.unwrap();
        assert_ne!(outcome, Outcome::Message);
    }
    assert!(dave.receive(None).await.unwrap().is_empty());

    // Carol gets nothing new from the service, and even handed the items
    // she cannot decrypt them: she is no longer in the group's epochs.
    assert!(texts(&mut carol).await.is_empty());
    for (i, mut d) in after.into_iter().enumerate() {
        d.seq = 2_000_000 + i as u64;
        let outcome = carol.process_delivery(d).await.unwrap();
        assert_ne!(outcome, Outcome::Message);
    }
    assert!(carol.receive(None).await.unwrap().is_empty());

    let bob_got = texts(&mut bob).await;
    assert_eq!(
        bob_got.iter().map(|m| m.2.as_str()).collect::<Vec<_>>(),
        vec!["before dave", "after removal"]
    );
    d.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_messages_queued_loses_nothing_and_stores_no_plaintext() {
    let dir = TempDir::new().unwrap();
    let mut d = deployment(&dir).await;
    let data = d.server().unwrap().data.clone();
    let mut alice = user(&dir, &d, "alice").await;
    let mut bob = user(&dir, &d, "bob").await;
    let conv = alice.create_conversation(&names(&["bob"])).await.unwrap();
    let marker = "PLAINTEXT-MARKER-7f3a9c";
    for i in 0..20 {
        alice
            .send_text(&conv, &format!("{marker} {i}"))
            .await
            .unwrap();
    }
    let addr = d.stop_server().await.unwrap();

    // Nothing the service stored contains the plaintext.
    for entry in walk(&data) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "{} holds plaintext",
            entry.display()
        );
    }

    // Restarted on the same port and data: every accepted message is there.
    d.start_server_on(addr).await.unwrap();
    let got = texts(&mut bob).await;
    assert_eq!(got.len(), 20);
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.2, format!("{marker} {i}"));
    }
    d.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_forged_and_replayed_envelopes_are_refused() {
    let dir = TempDir::new().unwrap();
    let d = deployment(&dir).await;
    let mut alice = user(&dir, &d, "alice").await;
    let mut bob = user(&dir, &d, "bob").await;
    let conv = alice.create_conversation(&names(&["bob"])).await.unwrap();
    alice.send_text(&conv, "genuine").await.unwrap();
    let items = raw_mailbox(&bob).await;
    let envelope = items
        .iter()
        .find(|d| d.kind == ItemKind::Envelope)
        .unwrap()
        .clone();
    for d in items.iter().filter(|d| d.kind != ItemKind::Envelope) {
        bob.process_delivery(d.clone()).await.unwrap();
    }

    let variant = |f: &dyn Fn(&mut Delivery)| {
        let mut d = envelope.clone();
        d.seq += 10_000;
        f(&mut d);
        d
    };
    // Tampered ciphertext: the signature no longer verifies.
    let n = envelope.body.len();
    let tampered = variant(&|d| d.body[n - 80] ^= 1);
    assert_eq!(
        bob.process_delivery(tampered).await.unwrap(),
        Outcome::Refused(EnvelopeRefusal::Open(SealError::BadSignature).into())
    );
    // Wrong signature.
    let forged = variant(&|d| d.body[n - 1] ^= 1);
    assert_eq!(
        bob.process_delivery(forged).await.unwrap(),
        Outcome::Refused(EnvelopeRefusal::Open(SealError::BadSignature).into())
    );
    // Service lies about the sender.
    let spoofed = variant(&|d| d.sender = "mallory".into());
    assert_eq!(
        bob.process_delivery(spoofed).await.unwrap(),
        Outcome::Refused(EnvelopeRefusal::SenderMismatch.into())
    );
    // The genuine one opens, once; the replay is recognised.
    assert_eq!(
        bob.process_delivery(envelope.clone()).await.unwrap(),
        Outcome::Message
    );
    assert_eq!(
        bob.process_delivery(variant(&|_| {})).await.unwrap(),
        Outcome::Duplicate
    );
    let msgs = bob.receive(None).await.unwrap();
    assert_eq!(
        msgs.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        vec!["genuine"]
    );
    d.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_commits_both_land() {
    let dir = TempDir::new().unwrap();
    let d = deployment(&dir).await;
    let mut alice = user(&dir, &d, "alice").await;
    let mut bob = user(&dir, &d, "bob").await;
    let _carol = user(&dir, &d, "carol").await;
    let _dave = user(&dir, &d, "dave").await;
    let conv = alice.create_conversation(&names(&["bob"])).await.unwrap();
    bob.sync().await.unwrap();
    // Both commit at the same epoch; one loses, catches up and retries.
    let (carol_list, dave_list) = (names(&["carol"]), names(&["dave"]));
    let (a, b) = tokio::join!(
        alice.add_members(&conv, &carol_list),
        bob.add_members(&conv, &dave_list)
    );
    a.unwrap();
    b.unwrap();
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    let ra = alice.conversations().unwrap();
    let rb = bob.conversations().unwrap();
    assert_eq!(ra[0].epoch, rb[0].epoch);
    let mut m = ra[0].members.clone();
    m.sort();
    assert_eq!(m, names(&["alice", "bob", "carol", "dave"]));
    alice.send_text(&conv, "all four").await.unwrap();
    assert_eq!(texts(&mut bob).await.last().unwrap().2, "all four");
    d.shutdown().await.unwrap();
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_leaves_and_reads_nothing_afterwards() {
    let dir = TempDir::new().unwrap();
    let d = deployment(&dir).await;
    let mut alice = user(&dir, &d, "alice").await;
    let mut bob = user(&dir, &d, "bob").await;
    let mut carol = user(&dir, &d, "carol").await;
    let group = alice
        .create_conversation(&names(&["bob", "carol"]))
        .await
        .unwrap();
    bob.sync().await.unwrap();
    carol.sync().await.unwrap();

    // Bob commits while carol is behind: her first proposal is for a stale
    // epoch, refused by the service (409); she catches up and proposes again.
    bob.self_update(&group).await.unwrap();
    carol.leave_conversation(&group).await.unwrap();
    assert!(carol.is_leaving(&group).unwrap());
    assert!(matches!(
        carol.send_text(&group, "still here?").await,
        Err(custos_client::DeviceError::Left(_))
    ));

    // Bob commits again before he has seen the proposal: it is overtaken.
    bob.self_update(&group).await.unwrap();
    let outcomes = alice.sync().await.unwrap();
    assert!(outcomes.contains(&Outcome::ProposalQueued));
    alice.receive(None).await.unwrap();
    // Nothing to commit: bob's commit cleared the overtaken proposal.
    assert_eq!(alice.conversations().unwrap()[0].members.len(), 3);

    // Carol sees the commit that did not remove her and proposes again;
    // alice commits it on her next receive.
    carol.receive(None).await.unwrap();
    assert!(carol.is_leaving(&group).unwrap());
    alice.receive(None).await.unwrap();
    let mut roster = alice.conversations().unwrap()[0].members.clone();
    roster.sort();
    assert_eq!(roster, names(&["alice", "bob"]));
    let outcomes = carol.sync().await.unwrap();
    assert!(outcomes.contains(&Outcome::Removed), "{outcomes:?}");
    assert!(!carol.is_leaving(&group).unwrap());
    assert!(carol.conversations().unwrap().is_empty());

    // What is sent afterwards reaches bob, not carol, even handed the items.
    alice.send_text(&group, "after carol left").await.unwrap();
    let after = raw_mailbox(&bob).await;
    let bob_got = texts(&mut bob).await;
    assert_eq!(bob_got.last().unwrap().2, "after carol left");
    let mut roster = bob.conversations().unwrap()[0].members.clone();
    roster.sort();
    assert_eq!(roster, names(&["alice", "bob"]));
    assert!(texts(&mut carol).await.is_empty());
    for (i, mut d) in after.into_iter().enumerate() {
        d.seq = 3_000_000 + i as u64;
        let outcome = carol.process_delivery(d).await.unwrap();
        assert_ne!(outcome, Outcome::Message);
    }
    assert!(carol.receive(None).await.unwrap().is_empty());
    d.shutdown().await.unwrap();
}

/// Two processes on one home directory must never seal two messages with the
/// same chain key and nonce: the second waits for the first, so both
/// messages go out under distinct generations and the recipient reads both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_from_one_home_never_reuse_a_chain_generation() {
    let dir = TempDir::new().unwrap();
    let d = deployment(&dir).await;
    let mut alice = user(&dir, &d, "alice").await;
    let mut bob = user(&dir, &d, "bob").await;
    let conv = alice.create_conversation(&names(&["bob"])).await.unwrap();
    alice.send_text(&conv, "first").await.unwrap();
    drop(alice);

    let home = dir.path().join("alice");
    let senders: Vec<_> = (0..4)
        .map(|i| {
            let home = home.clone();
            tokio::spawn(async move {
                let mut device = Device::open(&home, custos_clock::system()).await.unwrap();
                device
                    .send_text(&conv, &format!("concurrent {i}"))
                    .await
                    .unwrap();
            })
        })
        .collect();
    for s in senders {
        s.await.unwrap();
    }

    let mut got: Vec<String> = texts(&mut bob).await.into_iter().map(|m| m.2).collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            "concurrent 0",
            "concurrent 1",
            "concurrent 2",
            "concurrent 3",
            "first"
        ]
    );
    d.shutdown().await.unwrap();
}

/// Alice's conversation with bob and carol, in which carol has posted once
/// and bob has read it (so he holds carol's receiving chain).
async fn bob_has_carols_chain(
    dir: &TempDir,
) -> (Deployment, Device, Device, Device, ConversationId) {
    let d = deployment(dir).await;
    let mut alice = user(dir, &d, "alice").await;
    let mut bob = user(dir, &d, "bob").await;
    let mut carol = user(dir, &d, "carol").await;
    let group = alice
        .create_conversation(&names(&["bob", "carol"]))
        .await
        .unwrap();
    bob.sync().await.unwrap();
    carol.sync().await.unwrap();
    carol.send_text(&group, "one").await.unwrap();
    assert_eq!(texts(&mut bob).await.len(), 1, "bob has carol's chain");
    (d, alice, bob, carol, group)
}

/// `sender`'s envelope from a raw mailbox, as a service would hand it over
/// late (after everything else it holds).
fn held_envelope_of(raw: &[Delivery], sender: &str) -> Delivery {
    let mut envelope = raw
        .iter()
        .find(|i| i.kind == ItemKind::Envelope && i.sender == sender)
        .cloned()
        .unwrap();
    envelope.seq += 1_000_000;
    envelope
}

/// A member removed from a conversation cannot keep posting on a chain it
/// had before: even a service that delivers its envelope after the removal
/// commit gets it refused, naming the member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_cannot_keep_posting_on_an_old_chain() {
    let dir = TempDir::new().unwrap();
    let (d, mut alice, mut bob, mut carol, group) = bob_has_carols_chain(&dir).await;

    // Carol posts again on the same chain; then alice removes her. The
    // service hands bob the removal first and carol's envelope after it.
    carol.send_text(&group, "two").await.unwrap();
    alice
        .remove_members(&group, &names(&["carol"]))
        .await
        .unwrap();
    let raw = raw_mailbox(&bob).await;
    let late = held_envelope_of(&raw, "carol");
    let commit = raw
        .iter()
        .find(|i| i.kind == ItemKind::Commit)
        .cloned()
        .unwrap();
    assert_eq!(
        bob.process_delivery(commit).await.unwrap(),
        Outcome::CommitApplied
    );
    match bob.process_delivery(late).await.unwrap() {
        Outcome::Refused(custos_client::refusal::Refusal::Envelope(
            EnvelopeRefusal::SenderRemoved { sender, .. },
        )) => assert_eq!(sender, "carol"),
        other => panic!("a removed member's old chain must be closed: {other:?}"),
    }
    d.shutdown().await.unwrap();
}

/// A chain more than `MAX_PAST_EPOCHS` epochs behind the conversation is
/// closed: an envelope on it, delivered after the group moved on, is refused
/// as expired, naming both epochs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envelope_on_a_chain_too_many_epochs_old_is_refused_as_expired() {
    let dir = TempDir::new().unwrap();
    let (d, mut alice, mut bob, mut carol, group) = bob_has_carols_chain(&dir).await;

    // Carol posts again on her chain; then the group moves on by more
    // epochs than a chain may lag. Bob reads the commits first.
    carol.send_text(&group, "late").await.unwrap();
    let lag = custos_client::mls::MAX_PAST_EPOCHS as u64 + 1;
    for _ in 0..lag {
        alice.self_update(&group).await.unwrap();
    }
    let raw = raw_mailbox(&bob).await;
    let late = held_envelope_of(&raw, "carol");
    for commit in raw.iter().filter(|i| i.kind == ItemKind::Commit) {
        assert_eq!(
            bob.process_delivery(commit.clone()).await.unwrap(),
            Outcome::CommitApplied
        );
    }
    match bob.process_delivery(late).await.unwrap() {
        Outcome::Refused(custos_client::refusal::Refusal::Envelope(
            EnvelopeRefusal::ChainExpired { epoch, current },
        )) => assert_eq!(current, epoch + lag),
        other => panic!("a chain {lag} epochs old must be closed: {other:?}"),
    }
    d.shutdown().await.unwrap();
}

/// Receiving chains go once their day, the grace and the delivery margin
/// are over and the mailbox is read; purged history is gone from the files
/// (secure_delete, and the write-ahead log emptied).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_chains_expire_and_purged_history_leaves_no_trace_on_disk() {
    let dir = TempDir::new().unwrap();
    let clock = custos_clock::dangerous::simulated(20_500 * 86_400_000 + 12 * 3_600_000);
    let spec = DeploymentSpec::new("test", clock.shared())
        .custodians(0, 0, CustodianMode::KeysOnly)
        .with_server(ServerSpec::unlimited_without_franking());
    let d = Deployment::start(&dir.path().join("deploy"), spec)
        .await
        .unwrap();
    let (alice_home, bob_home) = (dir.path().join("alice"), dir.path().join("bob"));
    let mut alice = Device::register(
        &alice_home,
        d.next_server_url().unwrap(),
        "alice",
        clock.shared(),
    )
    .await
    .unwrap();
    let mut bob = Device::register(
        &bob_home,
        d.next_server_url().unwrap(),
        "bob",
        clock.shared(),
    )
    .await
    .unwrap();
    let conv = alice.create_conversation(&names(&["bob"])).await.unwrap();
    let secret = "the secret words nobody should find on disk";
    alice.send_text(&conv, secret).await.unwrap();
    assert_eq!(texts(&mut bob).await.len(), 1);
    assert_eq!(bob.receiving_chain_count().unwrap(), 1);

    // The next day, within the grace: the chain stays. (Bob opens his
    // device again after each jump, as the command line does, to log in.)
    clock.advance_millis(14 * 3_600_000);
    drop(bob);
    let mut bob = Device::open(&bob_home, clock.shared()).await.unwrap();
    bob.receive(None).await.unwrap();
    assert_eq!(bob.receiving_chain_count().unwrap(), 1);
    // Two days on, the mailbox read: the chain and its keys are gone.
    clock.advance_millis(2 * 86_400_000);
    drop(bob);
    let mut bob = Device::open(&bob_home, clock.shared()).await.unwrap();
    bob.receive(None).await.unwrap();
    assert_eq!(bob.receiving_chain_count().unwrap(), 0);

    assert_eq!(bob.purge_all_history().unwrap(), 1);
    drop(bob);
    for entry in std::fs::read_dir(&bob_home).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} still holds the purged text",
                path.display()
            );
        }
    }
    d.shutdown().await.unwrap();
}

/// A Welcome refused after openmls has written its group (here: delivered
/// under another conversation's id) leaves the device's MLS state as it
/// was. The KeyPackage the Welcome is for is still there, so the Welcome,
/// delivered as the service sent it, is joined, and messages flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_welcome_refused_after_its_group_was_written_can_still_be_joined() {
    let dir = TempDir::new().unwrap();
    let d = deployment(&dir).await;
    let mut alice = user(&dir, &d, "alice").await;
    let mut bob = user(&dir, &d, "bob").await;
    let conv = alice.create_conversation(&[]).await.unwrap();
    alice.add_members(&conv, &names(&["bob"])).await.unwrap();
    let welcome = raw_mailbox(&bob)
        .await
        .into_iter()
        .find(|i| i.kind == ItemKind::Welcome)
        .unwrap();
    let mut elsewhere = welcome.clone();
    elsewhere.conversation = ConversationId([0xAB; 16]);
    assert_eq!(
        bob.process_delivery(elsewhere).await.unwrap(),
        Outcome::Refused(custos_client::Refusal::Welcome(
            custos_client::refusal::WelcomeRefusal::ConversationMismatch
        ))
    );
    assert!(bob.conversations().unwrap().is_empty());
    assert_eq!(
        bob.process_delivery(welcome).await.unwrap(),
        Outcome::Joined
    );
    alice.send_text(&conv, "joined after all").await.unwrap();
    assert_eq!(
        texts(&mut bob).await,
        vec![(conv.to_hex(), "alice".into(), "joined after all".into())]
    );
    d.shutdown().await.unwrap();
}
