//! The reference deployment end to end on loopback, on a simulated clock:
//! five custodian services run the DKG over HTTP and log day keys, devices
//! escrow every chain to them, a logged warrant opens exactly its
//! conversation-day through three custodians, and the deployment restarts
//! from its folder with everything it had.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed step must fail the test"
)]

use custos_authority::CollectError;
use custos_clock::{Clock as _, MILLIS_PER_DAY};
use custos_deploy::{CustodianMode, Deployment, DeploymentSpec};
use custos_escrow::Capsule;
use custos_verify::evidence::{EvidenceBundle, verify_evidence};
use custos_wire::announcement::{ChainAnnouncement, EscrowKind};
use custos_wire::frames::ItemKind;
use custos_wire::release::ConversationDay;

/// A change to an evidence bundle.
type Tamper = Box<dyn Fn(&mut EvidenceBundle)>;

/// Flips one bit in the middle of a base64 (or hex) value, keeping it valid text.
fn flip(s: &str) -> String {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::STANDARD;
    match engine.decode(s) {
        Ok(mut bytes) if !bytes.is_empty() => {
            let mid = bytes.len() / 2;
            bytes[mid] ^= 1;
            engine.encode(bytes)
        }
        _ => format!("{s}0"),
    }
}

/// Day 20,480 at 09:00 UTC.
const DAY: u32 = 20_480;
const START_MS: u64 = DAY as u64 * MILLIS_PER_DAY + 9 * 3_600_000;

fn spec(clock: &custos_clock::SimulatedClock) -> DeploymentSpec {
    DeploymentSpec::new("test", clock.shared()).custodians(5, 3, CustodianMode::services(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escrowed_chains_open_only_under_a_logged_warrant_by_t_custodians() {
    let dir = tempfile::tempdir().unwrap();
    let clock = custos_clock::dangerous::simulated(START_MS);
    let mut d = Deployment::start(dir.path(), spec(&clock)).await.unwrap();
    let day_keys = d.wait_day_keys(DAY..=DAY + 1).await.unwrap();
    assert_eq!(day_keys[&DAY].custodians(), 5);
    assert_eq!(day_keys[&DAY].threshold(), 3);

    // Escrow in every chain: alice's chain to bob carries a capsule that
    // bob's device recomputed before it showed the message.
    let mut alice = d.register("alice").await.unwrap();
    let mut bob = d.register("bob").await.unwrap();
    let mut carol = d.register("carol").await.unwrap();
    let conv = alice.create_conversation(&["bob".into()]).await.unwrap();
    let other = carol.create_conversation(&["bob".into()]).await.unwrap();
    alice.send_text(&conv, "hello bob").await.unwrap();
    carol.send_text(&other, "not warranted").await.unwrap();
    let mailbox = bob.api().fetch(0, 100).await.unwrap();
    let capsules: Vec<ChainAnnouncement> = mailbox
        .iter()
        .filter(|i| i.kind == ItemKind::Announcement)
        .map(|i| ChainAnnouncement::decode(&i.body).unwrap())
        .collect();
    assert_eq!(capsules.len(), 2);
    assert!(
        capsules
            .iter()
            .all(|a| a.escrow_kind == EscrowKind::BfIbeV1 && !a.escrow_capsule.is_empty())
    );
    let got = bob.receive(None).await.unwrap();
    let texts: Vec<&str> = got.iter().map(|m| m.text.as_str()).collect();
    assert!(texts.contains(&"hello bob") && texts.contains(&"not warranted"));
    let refused = bob.take_refusals();
    assert!(refused.is_empty(), "{refused:?}");
    let capsule_of = |c| {
        let a = capsules.iter().find(|a| a.conversation == c).unwrap();
        Capsule::from_bytes(&a.escrow_capsule).unwrap()
    };

    // A warrant that is signed but not in the log: every custodian refuses.
    let unlogged = d.sign_warrant(&[conv], DAY, DAY).unwrap();
    let mut forged = d.submit_warrant(&unlogged).await.unwrap();
    let other_warrant = d.sign_warrant(&[other], DAY, DAY).unwrap();
    forged.warrant = hex::encode(other_warrant.encode().unwrap());
    let requested = vec![ConversationDay {
        conversation: conv,
        day: DAY,
    }];
    match d.collect(&forged, requested.clone()).await {
        Err(CollectError::NotEnoughShares { got: 0, .. }) => {}
        other => panic!("a warrant that is not the logged one must be refused: {other:?}"),
    }

    // With two custodians down, the other three release and the key opens
    // alice's capsule; it opens neither carol's conversation nor day + 1.
    d.stop_custodian(0).await.unwrap();
    d.stop_custodian(4).await.unwrap();
    let warrant = d.sign_warrant(&[conv], DAY, DAY).unwrap();
    let submitted = d.submit_warrant(&warrant).await.unwrap();
    let collected = d.collect(&submitted, requested.clone()).await.unwrap();
    let released = collected
        .answers
        .values()
        .filter(|a| {
            matches!(
                a,
                custos_authority::collect::CustodianAnswer::Released { .. }
            )
        })
        .count();
    assert_eq!(released, 3);
    let key = &collected.keys[&requested[0]];
    let ck0 = custos_escrow::open(&capsule_of(conv), key).unwrap();
    assert_ne!(*ck0, [0u8; 32]);
    assert!(custos_escrow::open(&capsule_of(other), key).is_err());
    // Provenance: the recovered CK_0 re-seals to the very capsule of alice's chain.
    let chain = capsules
        .iter()
        .find(|a| a.conversation == conv)
        .unwrap()
        .chain;
    custos_escrow::verify(
        &capsule_of(conv),
        &day_keys[&DAY],
        &conv.0,
        DAY,
        &chain.qualified(&conv),
        &ck0,
    )
    .unwrap();

    // Just after midnight (past the grace) alice's next chain is of day + 1,
    // and the key of day D does not open it.
    clock.advance_millis(15 * 3_600_000 + 30 * 60_000);
    alice.send_text(&conv, "next day").await.unwrap();
    let next = bob
        .api()
        .fetch(0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.kind == ItemKind::Announcement)
        .map(|i| ChainAnnouncement::decode(&i.body).unwrap())
        .find(|a| a.conversation == conv && a.chain.day == DAY + 1)
        .expect("a chain of day + 1");
    let next = Capsule::from_bytes(&next.escrow_capsule).unwrap();
    assert!(custos_escrow::open(&next, key).is_err());

    // A request for a conversation outside the warrant is refused by all.
    let outside = vec![ConversationDay {
        conversation: other,
        day: DAY,
    }];
    assert!(matches!(
        d.collect(&submitted, outside).await,
        Err(CollectError::NotEnoughShares { got: 0, .. })
    ));

    // Two custodians alone cannot: the third stops, and nothing combines.
    d.stop_custodian(1).await.unwrap();
    match d.collect(&submitted, requested.clone()).await {
        Err(CollectError::NotEnoughShares {
            got: 2, need: 3, ..
        }) => {}
        other => panic!("two shares must open nothing: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_restarts_from_its_folder_with_its_keys_log_and_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let clock = custos_clock::dangerous::simulated(START_MS);
    let d = Deployment::start(dir.path(), spec(&clock)).await.unwrap();
    let keys = d.wait_day_keys(DAY..=DAY + 1).await.unwrap();
    let manifest = d.manifest().clone();
    let size = d.wait_witnessed(1).await.unwrap();
    d.shutdown().await.unwrap();

    let d = Deployment::start(dir.path(), spec(&clock)).await.unwrap();
    assert_eq!(d.manifest(), &manifest);
    assert!(d.wait_witnessed(size).await.unwrap() >= size);
    assert_eq!(d.wait_day_keys(DAY..=DAY + 1).await.unwrap(), keys);
    d.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logged_warrant_intercepts_and_decrypts_exactly_its_conversation_days() {
    use custos_authority::InterceptError;
    let dir = tempfile::tempdir().unwrap();
    let clock = custos_clock::dangerous::simulated(START_MS);
    let d = Deployment::start(dir.path(), spec(&clock)).await.unwrap();
    d.wait_day_keys(DAY..=DAY + 1).await.unwrap();
    let mut alice = d.register("alice").await.unwrap();
    let mut bob = d.register("bob").await.unwrap();
    let mut carol = d.register("carol").await.unwrap();
    let conv = alice.create_conversation(&["bob".into()]).await.unwrap();
    let other = carol.create_conversation(&["bob".into()]).await.unwrap();
    // Bob reads (and acks) the first message, which carried the chain's
    // announcement; the second waits in his mailbox.
    alice.send_text(&conv, "before, read").await.unwrap();
    assert_eq!(bob.receive(None).await.unwrap().len(), 1);
    alice.send_text(&conv, "before, unread").await.unwrap();

    // A warrant that is not the logged one starts nothing.
    let warrant = d.sign_warrant(&[conv], DAY, DAY).unwrap();
    let submitted = d.submit_warrant(&warrant).await.unwrap();
    let mut forged = submitted.clone();
    forged.warrant = hex::encode(
        d.sign_warrant(&[other], DAY, DAY)
            .unwrap()
            .encode()
            .unwrap(),
    );
    match d.intercept(&forged).await {
        Err(InterceptError::Refused { code, .. }) => assert_eq!(code, "commitment_mismatch"),
        other => panic!("an unlogged warrant must be refused: {other:?}"),
    }

    // A logged warrant that its court revoked starts nothing either.
    let revoked = d
        .submit_warrant(&d.sign_warrant(&[conv], DAY, DAY).unwrap())
        .await
        .unwrap();
    let mut court_verifier = d.verifier("court").unwrap();
    custos_authority::court::revoke(
        d.log(),
        &mut court_verifier,
        "court.test",
        &d.keys().court,
        hex::decode(&revoked.commitment)
            .unwrap()
            .try_into()
            .unwrap(),
        clock.now_millis() / 1000,
    )
    .await
    .unwrap();
    match d.intercept(&revoked).await {
        Err(InterceptError::Refused { code, .. }) => assert_eq!(code, "warrant_revoked"),
        other => panic!("a revoked warrant must be refused: {other:?}"),
    }

    // The logged one: the provider logs its Interception and keeps what is
    // still stored (the unread envelope), the day's chain announcement
    // (remembered though acked), and what comes.
    let started = d.intercept(&submitted).await.unwrap();
    assert_eq!(started.kept, 2);
    let again = d.intercept(&submitted).await.unwrap();
    assert_eq!(
        again.log_index, started.log_index,
        "presenting it again is harmless"
    );
    let entry = &d
        .log()
        .entries(started.log_index, started.log_index + 1)
        .await
        .unwrap()[0];
    let signed = custos_wire::statement::SignedStatement::decode(entry).unwrap();
    assert!(matches!(
        signed.verify().unwrap(),
        custos_wire::statement::Statement::Interception(i) if i.warrant.to_vec() == hex::decode(&started.commitment).unwrap()
    ));

    // Bob reads and acks; the kept copies stay.
    assert_eq!(bob.receive(None).await.unwrap().len(), 1);
    alice.send_text(&conv, "after the warrant").await.unwrap();
    carol
        .send_text(&other, "another conversation")
        .await
        .unwrap();
    bob.receive(None).await.unwrap();
    // Day + 1 is outside the warrant.
    clock.advance_millis(15 * 3_600_000 + 30 * 60_000);
    alice.send_text(&conv, "the next day").await.unwrap();
    assert_eq!(bob.receive(None).await.unwrap().len(), 1);

    let requested = vec![ConversationDay {
        conversation: conv,
        day: DAY,
    }];
    let collected = d.collect(&submitted, requested).await.unwrap();
    let (_, opened) = d.decrypt(&submitted, &collected).await.unwrap();
    assert!(opened.failures.is_empty(), "{:?}", opened.failures);
    assert_eq!(
        opened.outside_warrant, 0,
        "the provider kept nothing outside"
    );
    let texts: Vec<String> = opened
        .messages
        .iter()
        .map(|m| String::from_utf8(m.body.clone()).unwrap())
        .collect();
    assert_eq!(texts, ["before, unread", "after the warrant"]);
    for m in &opened.messages {
        assert_eq!(m.sender, "alice");
        assert!(
            m.checks.envelope_signature
                && m.checks.franking_commitment
                && m.checks.delivery_tag
                && m.checks.escrow_provenance,
            "{m:?}"
        );
    }

    // The evidence bundle verifies offline; any change is caught and located.
    let bundle = d.evidence(&submitted, &collected).await.unwrap();
    let manifest_hash = d.manifest().hash().unwrap();
    let verified = verify_evidence(&bundle, Some(&manifest_hash)).unwrap();
    assert_eq!(verified.opened.messages.len(), 2);
    let roundtrip: EvidenceBundle =
        serde_json::from_str(&serde_json::to_string(&bundle).unwrap()).unwrap();
    verify_evidence(&roundtrip, Some(&manifest_hash)).unwrap();
    assert!(verify_evidence(&bundle, Some(&[0; 32])).is_err());
    let env = bundle.items.iter().position(|i| i.kind == 1).unwrap();
    let ann = bundle.items.iter().position(|i| i.kind == 2).unwrap();
    let tampered: Vec<(&str, Tamper)> = vec![
        ("message text", Box::new(|b| b.messages[0].text.push('!'))),
        (
            "message check",
            Box::new(|b| b.messages[1].checks.delivery_tag = false),
        ),
        ("dropped message", Box::new(|b| drop(b.messages.pop()))),
        (
            "item body",
            Box::new(move |b| b.items[env].body = flip(&b.items[env].body)),
        ),
        (
            "item tag",
            Box::new(move |b| b.items[env].tag = flip(&b.items[env].tag)),
        ),
        (
            "item sender",
            Box::new(move |b| b.items[env].sender = "carol".into()),
        ),
        (
            "announcement sender",
            Box::new(move |b| b.items[ann].sender = "carol".into()),
        ),
        (
            "announcement body",
            Box::new(move |b| b.items[ann].body = flip(&b.items[ann].body)),
        ),
        (
            "identity key",
            Box::new(|b| b.identity_keys[0].key = flip(&b.identity_keys[0].key)),
        ),
        (
            "warrant",
            Box::new(|b| b.warrant.warrant = flip(&b.warrant.warrant)),
        ),
        (
            "day key entry",
            Box::new(|b| b.day_keys[0].entry = flip(&b.day_keys[0].entry)),
        ),
        (
            "franking key",
            Box::new(|b| b.franking_key.entry = flip(&b.franking_key.entry)),
        ),
        (
            "checkpoint",
            Box::new(|b| b.checkpoint = b.checkpoint.replacen('\n', "\n\n", 1)),
        ),
    ];
    for (what, change) in tampered {
        let mut b = bundle.clone();
        change(&mut b);
        let err = verify_evidence(&b, Some(&manifest_hash));
        assert!(err.is_err(), "a changed {what} must not verify");
    }

    // The kept items go to the warrant's authority only.
    let commitment: [u8; 32] = hex::decode(&started.commitment)
        .unwrap()
        .try_into()
        .unwrap();
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let now = clock.now_millis() / 1000;
    match custos_authority::intercept::fetch_kept(
        d.server_url().unwrap(),
        &commitment,
        &stranger,
        move || now,
    )
    .await
    {
        Err(InterceptError::Refused { code, .. }) => assert_eq!(code, "not_authorised"),
        other => panic!("a stranger must not fetch kept items: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decryption_covers_exactly_the_warranted_conversations_and_days() {
    let dir = tempfile::tempdir().unwrap();
    // Day D − 1 at 20:00: the warrant will cover day D only.
    let clock = custos_clock::dangerous::simulated(START_MS - 13 * 3_600_000);
    let d = Deployment::start(dir.path(), spec(&clock)).await.unwrap();
    d.wait_day_keys(DAY - 1..=DAY).await.unwrap();
    let mut alice = d.register("alice").await.unwrap();
    let mut bob = d.register("bob").await.unwrap();
    let mut carol = d.register("carol").await.unwrap();
    let a = alice.create_conversation(&["bob".into()]).await.unwrap();
    let b = alice.create_conversation(&["carol".into()]).await.unwrap();
    let c = bob.create_conversation(&["carol".into()]).await.unwrap();
    // Day D − 1, left unread in the mailboxes: outside the warrant.
    alice.send_text(&a, "a, day before").await.unwrap();
    alice.send_text(&b, "b, day before").await.unwrap();

    // Day D, 00:30: a warrant for conversations a and b on day D.
    clock.advance_millis(4 * 3_600_000 + 30 * 60_000);
    d.wait_day_keys(DAY..=DAY + 1).await.unwrap();
    let submitted = d
        .submit_warrant(&d.sign_warrant(&[a, b], DAY, DAY).unwrap())
        .await
        .unwrap();
    let started = d.intercept(&submitted).await.unwrap();
    assert_eq!(started.kept, 0, "nothing of day D was stored yet");
    alice.send_text(&a, "a, on the day").await.unwrap();
    alice.send_text(&b, "b, on the day").await.unwrap();
    bob.send_text(&c, "c, on the day").await.unwrap();
    for device in [&mut bob, &mut carol] {
        device.receive(None).await.unwrap();
    }

    // (Day D + 1 is outside too: see the test above; a device's session
    // lasts a day, so this one stops here.)
    let requested = vec![
        ConversationDay {
            conversation: a,
            day: DAY,
        },
        ConversationDay {
            conversation: b,
            day: DAY,
        },
    ];
    let mut requested = requested;
    requested.sort_by_key(|cd| (cd.conversation, cd.day));
    let collected = d.collect(&submitted, requested).await.unwrap();
    let (_, opened) = d.decrypt(&submitted, &collected).await.unwrap();
    assert!(opened.failures.is_empty(), "{:?}", opened.failures);
    assert_eq!(opened.outside_warrant, 0);
    let mut texts: Vec<String> = opened
        .messages
        .iter()
        .map(|m| String::from_utf8(m.body.clone()).unwrap())
        .collect();
    texts.sort();
    assert_eq!(texts, ["a, on the day", "b, on the day"]);
}

/// A device with a pinned manifest pins only a franking key that the
/// manifest's provider published in the log: a service presenting any
/// other key is refused at registration, before the device trusts a tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_refuses_a_franking_key_that_is_not_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let clock = custos_clock::dangerous::simulated(START_MS);
    let mut server = custos_deploy::ServerSpec::unlimited();
    server.franking_in_log = false;
    let spec = DeploymentSpec::new("test", clock.shared())
        .custodians(0, 0, CustodianMode::KeysOnly)
        .with_server(server);
    let d = Deployment::start(dir.path(), spec).await.unwrap();
    let refused = custos_client::Device::register_pinned(
        &dir.path().join("users/alice"),
        d.server_url().unwrap(),
        "alice",
        clock.shared(),
        d.pin().unwrap(),
    )
    .await;
    let key = d.server().unwrap().franking.public_key();
    match refused {
        Err(custos_client::DeviceError::FrankingKeyNotLogged { key: k }) => {
            assert_eq!(k, hex::encode(key));
        }
        Err(other) => panic!("an unlogged franking key must be refused: {other:?}"),
        Ok(_) => panic!("an unlogged franking key must be refused"),
    }

    // With the key in the log, the same service is trusted.
    let dir2 = tempfile::tempdir().unwrap();
    let spec =
        DeploymentSpec::new("test", clock.shared()).custodians(0, 0, CustodianMode::KeysOnly);
    let d2 = Deployment::start(dir2.path(), spec).await.unwrap();
    d2.register("alice").await.unwrap();
}
