//! Escrow in every chain, on loopback: the test kit's deployment (a
//! transparency log with two witnesses, custodians publishing day keys in
//! it, dealt with `custos_escrow::dangerous::trusted_deal`, and the delivery
//! service), and devices that pin the manifest and follow the log.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use custos_client::api::ApiError;
use custos_client::daykeys::DayKeyEscrow;
use custos_client::escrow::{EscrowError, EscrowPolicy};
use custos_client::pin::{ManifestPin, PinError};
use custos_client::refusal::{AnnouncementRefusal, EnvelopeRefusal, Refusal};
use custos_client::{Device, DeviceError, Outcome};
use custos_clock::SimulatedClock;
use custos_deploy::{CustodianMode, Deployment, DeploymentSpec, ServerSpec};
use custos_escrow::{Capsule, DayKey, EscrowIdentity, OpenError, SecretShare};
use custos_wire::announcement::{ChainAnnouncement, EscrowKind};
use custos_wire::frames::{Delivery, ItemKind};
use custos_wire::manifest::{Manifest, Participant, Policy, Role};
use custos_wire::statement::{
    SignedStatement, Statement, WarrantCommitment, WarrantUnsealing, warrant_commitment,
};
use custos_wire::warrant::{Warrant, WarrantFields};
use custos_wire::{ChainId, ConversationId};
use ed25519_dalek::SigningKey;
use tempfile::TempDir;

/// 2025-11-18 12:00 UTC: the middle of day `DAY`.
const START: u64 = 1_763_467_200_000;
const DAY: u32 = (START / 86_400_000) as u32;
const MS_PER_DAY: u64 = 86_400_000;

/// The reference deployment of the test kit on `clock`: a log with two
/// witnesses (quorum 2), `n` custodians (threshold `t`) that are keys in the
/// manifest only (day keys dealt by the test), a court (`court.test`), an
/// authority (`police.test`), and the delivery service without franking
/// (a test below alters a delivery's server time, which a tag would catch).
async fn deployment(dir: &TempDir, n: usize, t: usize, clock: &SimulatedClock) -> Deployment {
    let spec = DeploymentSpec::new("test", clock.shared())
        .custodians(n, t, CustodianMode::KeysOnly)
        .with_server(ServerSpec::unlimited_without_franking());
    Deployment::start(&dir.path().join("deploy"), spec)
        .await
        .unwrap()
}

/// Custodians `by` publish `key` for its day.
async fn publish(d: &Deployment, key: &DayKey, by: &[usize]) {
    d.publish_day_key(key, by).await.unwrap();
}

/// Logs `st` signed by `key` and waits for the witnesses; its index.
async fn log_statement(d: &Deployment, st: &Statement, key: &SigningKey) -> u64 {
    let signed = SignedStatement::sign(st, key).unwrap();
    let index = d.log().submit(&signed).await.unwrap().index;
    d.wait_witnessed(index + 1).await.unwrap();
    index
}

/// Custodian `i`'s statement key.
fn custodian(d: &Deployment, i: usize) -> SigningKey {
    d.keys().custodians[i].signing_key()
}

/// Deals day `day` among `n` custodians with threshold `t`.
fn deal(day: u32, n: usize, t: usize) -> (DayKey, Vec<SecretShare>) {
    custos_escrow::dangerous::trusted_deal(day, n, t, &mut rand_core::OsRng).unwrap()
}

/// A device of `name` on `clock`, registered with the deployment's service
/// (the next of several servers) and pinned to its manifest.
async fn user(dir: &TempDir, d: &Deployment, clock: &SimulatedClock, name: &str) -> Device {
    Device::register_pinned(
        &dir.path().join(name),
        d.next_server_url().unwrap(),
        name,
        clock.shared(),
        d.pin().unwrap(),
    )
    .await
    .unwrap()
}

/// A modified sender's escrow: what it does to the honest capsule.
#[derive(Debug)]
enum Cheat {
    /// No capsule at all.
    Omit,
    /// The honest capsule with one bit flipped.
    Corrupt(DayKeyEscrow),
    /// A capsule sealed to a day key only the sender knows.
    OwnKey(DayKey),
}

impl EscrowPolicy for Cheat {
    fn seal(
        &self,
        conversation: &ConversationId,
        chain: &ChainId,
        ck0: &[u8; 32],
    ) -> Result<(EscrowKind, Vec<u8>), EscrowError> {
        match self {
            Cheat::Omit => Ok((EscrowKind::None, Vec::new())),
            Cheat::Corrupt(honest) => {
                let (kind, mut capsule) = honest.seal(conversation, chain, ck0)?;
                capsule[120] ^= 1;
                Ok((kind, capsule))
            }
            Cheat::OwnKey(key) => {
                let capsule = custos_escrow::seal(
                    key,
                    &conversation.0,
                    chain.day,
                    &chain.qualified(conversation),
                    ck0,
                )?;
                Ok((EscrowKind::BfIbeV1, capsule.to_bytes().to_vec()))
            }
        }
    }

    fn verify(
        &self,
        _: &ConversationId,
        _: &ChainId,
        _: &[u8; 32],
        _: EscrowKind,
        _: &[u8],
    ) -> Result<(), EscrowError> {
        Ok(())
    }
}

/// The announcements in a device's mailbox, unprocessed.
async fn announcements(d: &Device) -> Vec<(Delivery, ChainAnnouncement)> {
    d.api()
        .fetch(0, 500)
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.kind == ItemKind::Announcement)
        .map(|i| {
            let a = ChainAnnouncement::decode(&i.body).unwrap();
            (i, a)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modified_sender_that_omits_or_corrupts_its_capsule_is_refused_by_every_honest_recipient()
{
    let dir = TempDir::new().unwrap();
    let clock = custos_clock::dangerous::simulated(START);
    let d = deployment(&dir, 3, 2, &clock).await;
    let (key, _) = deal(DAY, 3, 2);
    publish(&d, &key, &[0, 1]).await;
    let mut alice = user(&dir, &d, &clock, "alice").await;
    let mut bob = user(&dir, &d, &clock, "bob").await;
    let mut carol = user(&dir, &d, &clock, "carol").await;
    assert_eq!(alice.day_key(DAY), Some(key.clone()));

    // Honest chains carry a capsule that every recipient recomputes.
    let conv = alice
        .create_conversation(&["bob".into(), "carol".into()])
        .await
        .unwrap();
    alice.send_text(&conv, "honest").await.unwrap();
    for r in [&mut bob, &mut carol] {
        let got = r.receive(None).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].text, "honest");
        let refused = r.take_refusals();
        assert!(
            !refused.iter().any(|x| x.code == "escrow_violation"),
            "{refused:?}"
        );
    }

    let rogue = deal(DAY, 3, 2).0;
    let cheats = [
        (Cheat::Omit, EscrowError::MissingCapsule),
        (
            Cheat::Corrupt(DayKeyEscrow::new(day_keys_of(&key))),
            EscrowError::Capsule(custos_escrow::CapsuleError::Mismatch),
        ),
        (
            Cheat::OwnKey(rogue),
            EscrowError::Capsule(custos_escrow::CapsuleError::Mismatch),
        ),
    ];
    for (cheat, expected) in cheats {
        // A new conversation starts a new chain, sealed by the cheat.
        alice.set_escrow(Arc::new(cheat));
        let conv2 = alice
            .create_conversation(&["bob".into(), "carol".into()])
            .await
            .unwrap();
        alice.send_text(&conv2, "no escrow here").await.unwrap();
        // Bob: item by item, the refusal matched by variant.
        let items: Vec<Delivery> = bob
            .api()
            .fetch(0, 500)
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.conversation == conv2)
            .collect();
        let mut violation = None;
        for item in items {
            let kind = item.kind;
            let outcome = bob.process_delivery(item).await.unwrap();
            match kind {
                ItemKind::Announcement => violation = Some(outcome),
                ItemKind::Envelope => assert_eq!(outcome, Outcome::Buffered),
                _ => {}
            }
        }
        assert_eq!(
            violation,
            Some(Outcome::Refused(Refusal::Announcement(
                AnnouncementRefusal::EscrowViolation {
                    sender: "alice".into(),
                    reason: expected.clone(),
                }
            )))
        );
        // Carol: through `receive`, as `custos receive` reports it.
        let got = carol.receive(None).await.unwrap();
        assert!(got.is_empty(), "{got:?}");
        let refused = carol.take_refusals();
        let v = refused
            .iter()
            .find(|x| x.code == "escrow_violation")
            .unwrap_or_else(|| panic!("no escrow violation in {refused:?}"));
        assert_eq!(v.escrow_violator.as_deref(), Some("alice"));
        assert_eq!(v.conversation, conv2.to_hex());
        assert!(v.reason.contains(&expected.to_string()), "{v:?}");
    }
    d.shutdown().await.unwrap();
}

fn day_keys_of(key: &DayKey) -> Arc<custos_client::daykeys::DayKeys> {
    let m = Manifest::new(
        1,
        key.threshold(),
        Policy::default(),
        (0..key.custodians())
            .map(|i| Participant {
                name: format!("c{i}"),
                role: Role::Custodian,
                jurisdiction: "EU".into(),
                endpoint: None,
                public_key: hex::encode(
                    SigningKey::from_bytes(&[60 + i as u8; 32])
                        .verifying_key()
                        .to_bytes(),
                ),
            })
            .chain([
                Participant {
                    name: "l".into(),
                    role: Role::Log,
                    jurisdiction: "EU".into(),
                    endpoint: None,
                    public_key: hex::encode(
                        SigningKey::from_bytes(&[90; 32]).verifying_key().to_bytes(),
                    ),
                },
                Participant {
                    name: "w".into(),
                    role: Role::Witness,
                    jurisdiction: "EU".into(),
                    endpoint: None,
                    public_key: hex::encode(
                        SigningKey::from_bytes(&[91; 32]).verifying_key().to_bytes(),
                    ),
                },
            ])
            .collect(),
    )
    .unwrap();
    let keys = custos_client::daykeys::DayKeys::for_manifest(&m).unwrap();
    keys.insert(key.clone());
    Arc::new(keys)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_day_key_opens_one_day_on_the_server_and_on_the_recipient() {
    let dir = TempDir::new().unwrap();
    // The service's clock is 5 minutes after midnight; Alice's is late, still on DAY.
    let server_clock =
        custos_clock::dangerous::simulated(u64::from(DAY + 1) * MS_PER_DAY + 300_000);
    let alice_clock = custos_clock::dangerous::simulated(u64::from(DAY + 1) * MS_PER_DAY - 60_000);
    let d = deployment(&dir, 3, 2, &server_clock).await;
    for day in [DAY, DAY + 1] {
        publish(&d, &deal(day, 3, 2).0, &[0, 1]).await;
    }
    let mut alice = user(&dir, &d, &alice_clock, "alice").await;
    let mut bob = user(&dir, &d, &server_clock, "bob").await;
    let conv = alice.create_conversation(&["bob".into()]).await.unwrap();
    // Within the grace, yesterday's chain is still accepted and read.
    alice
        .send_text(&conv, "just before midnight")
        .await
        .unwrap();
    let raw = bob.api().fetch(0, 100).await.unwrap();
    let envelope = raw
        .iter()
        .find(|i| i.kind == ItemKind::Envelope)
        .unwrap()
        .clone();
    for item in raw.iter().filter(|i| i.kind != ItemKind::Envelope) {
        bob.process_delivery(item.clone()).await.unwrap();
    }

    // After the grace, the service refuses yesterday's chain.
    server_clock.set_millis(u64::from(DAY + 1) * MS_PER_DAY + 600_000);
    let err = alice.send_text(&conv, "too late").await.unwrap_err();
    match err {
        DeviceError::Api(ApiError::Refused {
            status: 400,
            ref code,
            ..
        }) if code == "wrong_day" => {}
        other => panic!("expected wrong_day, got {other:?}"),
    }

    // A recipient refuses an envelope delivered outside its chain's day plus
    // the grace (here: the service's word on the time, as a lying or
    // misconfigured service would give it).
    let mut late = envelope.clone();
    late.seq += 100_000;
    late.server_time = u64::from(DAY + 1) * MS_PER_DAY + 600_000;
    assert_eq!(
        bob.process_delivery(late).await.unwrap(),
        Outcome::Refused(Refusal::Envelope(EnvelopeRefusal::OutsideChainDay {
            day: DAY,
            server_time: u64::from(DAY + 1) * MS_PER_DAY + 600_000,
            grace_secs: 600,
        }))
    );
    // The genuine delivery, inside the grace, opens.
    let got = bob.receive(None).await.unwrap();
    assert_eq!(got.len(), 1, "{:?}", bob.take_refusals());
    assert_eq!(got[0].text, "just before midnight");
    d.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_key_needs_t_custodians_and_without_one_nothing_is_sent() {
    let dir = TempDir::new().unwrap();
    let clock = custos_clock::dangerous::simulated(START);
    let d = deployment(&dir, 3, 2, &clock).await;
    let mut alice = user(&dir, &d, &clock, "alice").await;
    let _bob = user(&dir, &d, &clock, "bob").await;
    let conv = alice.create_conversation(&["bob".into()]).await.unwrap();

    // No day key at all: nothing is sent.
    let err = alice.send_text(&conv, "hello").await.unwrap_err();
    assert!(
        matches!(err, DeviceError::Escrow(EscrowError::NoDayKey { day }) if day == DAY),
        "{err:?}"
    );

    // One rogue custodian publishes a key: not enough.
    let (rogue, _) = deal(DAY, 3, 2);
    publish(&d, &rogue, &[0]).await;
    alice.follow_log().await.unwrap();
    assert_eq!(alice.day_key(DAY), None);
    // Another custodian publishes another key: still no key has 2 votes.
    let (real, _) = deal(DAY, 3, 2);
    publish(&d, &real, &[1]).await;
    alice.follow_log().await.unwrap();
    assert_eq!(alice.day_key(DAY), None);
    assert!(matches!(
        alice.send_text(&conv, "hello").await.unwrap_err(),
        DeviceError::Escrow(EscrowError::NoDayKey { .. })
    ));
    // The same custodian publishing twice counts once.
    publish(&d, &real, &[1]).await;
    alice.follow_log().await.unwrap();
    assert_eq!(alice.day_key(DAY), None);
    // A second custodian agrees: accepted, and sending works (the device
    // follows the log by itself when it lacks today's key).
    publish(&d, &real, &[2]).await;
    alice.send_text(&conv, "hello").await.unwrap();
    assert_eq!(alice.day_key(DAY), Some(real.clone()));
    // The rogue key reaching t later does not replace it.
    publish(&d, &rogue, &[2]).await;
    alice.follow_log().await.unwrap();
    assert_eq!(alice.day_key(DAY), Some(real));
    // Accepted keys survive a restart.
    drop(alice);
    let alice = Device::open(&dir.path().join("alice"), clock.shared())
        .await
        .unwrap();
    assert!(alice.day_key(DAY).is_some());
    assert_eq!(alice.pinned_manifest(), Some(d.manifest()));
    d.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_for_one_conversation_and_day_opens_nothing_else() {
    let dir = TempDir::new().unwrap();
    // One minute before midnight.
    let clock = custos_clock::dangerous::simulated(u64::from(DAY + 1) * MS_PER_DAY - 60_000);
    let d = deployment(&dir, 3, 2, &clock).await;
    let (today, today_shares) = deal(DAY, 3, 2);
    let (tomorrow, tomorrow_shares) = deal(DAY + 1, 3, 2);
    publish(&d, &today, &[0, 1, 2]).await;
    publish(&d, &tomorrow, &[0, 1, 2]).await;
    let mut alice = user(&dir, &d, &clock, "alice").await;
    let bob = user(&dir, &d, &clock, "bob").await;
    let a = alice.create_conversation(&["bob".into()]).await.unwrap();
    let b = alice.create_conversation(&["bob".into()]).await.unwrap();
    alice.send_text(&a, "A on day D").await.unwrap();
    alice.send_text(&b, "B on day D").await.unwrap();
    // Just after midnight: a new chain, for the new day.
    clock.advance_millis(120_000);
    alice.send_text(&a, "A just after midnight").await.unwrap();

    let caps: Vec<(ConversationId, ChainId, Capsule)> = announcements(&bob)
        .await
        .into_iter()
        .map(|(_, ann)| {
            (
                ann.conversation,
                ann.chain,
                Capsule::from_bytes(&ann.escrow_capsule).unwrap(),
            )
        })
        .collect();
    assert_eq!(caps.len(), 3);
    let find = |conv: &ConversationId, day: u32| {
        *caps
            .iter()
            .find(|(c, ch, _)| c == conv && ch.day == day)
            .unwrap()
    };
    let (_, chain_ad, cap_ad) = find(&a, DAY);
    let (_, _, cap_bd) = find(&b, DAY);
    let (_, chain_ad1, cap_ad1) = find(&a, DAY + 1);

    // The identity key of (A, D), combined from t = 2 of the 3 shares.
    let id_ad = EscrowIdentity::new(&a.0, DAY);
    let partials: Vec<_> = today_shares[1..]
        .iter()
        .map(|s| s.extract(&id_ad))
        .collect();
    let key_ad = today
        .verify_and_combine(&id_ad, &partials, &mut rand_core::OsRng)
        .unwrap();
    // It opens A's chain of day D, and the root it yields is that chain's.
    let ck0 = custos_escrow::open(&cap_ad, &key_ad).unwrap();
    custos_escrow::verify(&cap_ad, &today, &a.0, DAY, &chain_ad.qualified(&a), &ck0).unwrap();
    // Not B on the same day, not A on the next day (just after midnight).
    assert_eq!(
        custos_escrow::open(&cap_bd, &key_ad).unwrap_err(),
        OpenError::FoCheckFailed
    );
    assert_eq!(
        custos_escrow::open(&cap_ad1, &key_ad).unwrap_err(),
        OpenError::FoCheckFailed
    );
    // The next day needs the next day's key, for A's identity of that day.
    let id_ad1 = EscrowIdentity::new(&a.0, DAY + 1);
    let partials: Vec<_> = tomorrow_shares[..2]
        .iter()
        .map(|s| s.extract(&id_ad1))
        .collect();
    let key_ad1 = tomorrow
        .verify_and_combine(&id_ad1, &partials, &mut rand_core::OsRng)
        .unwrap();
    let ck0_next = custos_escrow::open(&cap_ad1, &key_ad1).unwrap();
    custos_escrow::verify(
        &cap_ad1,
        &tomorrow,
        &a.0,
        DAY + 1,
        &chain_ad1.qualified(&a),
        &ck0_next,
    )
    .unwrap();
    // One share alone (t - 1) combines to nothing.
    assert!(
        today
            .verify_and_combine(
                &id_ad,
                &[today_shares[0].extract(&id_ad)],
                &mut rand_core::OsRng
            )
            .is_err()
    );
    d.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manifest_is_pinned_only_against_the_log() {
    let dir = TempDir::new().unwrap();
    let clock = custos_clock::dangerous::simulated(START);
    let d = deployment(&dir, 3, 2, &clock).await;

    // The operator's hash: fetched and compared.
    let hash = d.manifest().hash().unwrap();
    let pin = ManifestPin::fetch(d.log_url(), &hash).await.unwrap();
    assert_eq!(pin.manifest(), d.manifest());
    let mut wrong = hash;
    wrong[0] ^= 1;
    assert!(matches!(
        ManifestPin::fetch(d.log_url(), &wrong).await.unwrap_err(),
        PinError::HashMismatch { .. }
    ));

    // A manifest the log never published is refused, and nothing is registered.
    let mut other = d.manifest().clone();
    other.policy.max_targets = 3;
    let pin = ManifestPin::from_toml(d.log_url(), &other.to_toml().unwrap()).unwrap();
    let err = Device::register_pinned(
        &dir.path().join("mallory"),
        d.server_url().unwrap(),
        "mallory",
        clock.shared(),
        pin,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, DeviceError::Pin(PinError::NotPublished { .. })),
        "{err:?}"
    );
    assert!(!dir.path().join("mallory/identity.key").exists());

    // A manifest with a witness quorum of 0 is not a manifest at all.
    let text = d
        .manifest()
        .to_toml()
        .unwrap()
        .replace("witness_quorum = 2", "witness_quorum = 0");
    assert!(matches!(
        ManifestPin::from_toml(d.log_url(), &text).unwrap_err(),
        PinError::Manifest(_)
    ));
    d.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_custodians_escrow_is_off_and_a_capsule_is_refused() {
    let dir = TempDir::new().unwrap();
    let clock = custos_clock::dangerous::simulated(START);
    let d = deployment(&dir, 0, 0, &clock).await;
    let mut alice = user(&dir, &d, &clock, "alice").await;
    let mut bob = user(&dir, &d, &clock, "bob").await;
    let conv = alice.create_conversation(&["bob".into()]).await.unwrap();
    alice.send_text(&conv, "no escrow").await.unwrap();
    assert_eq!(bob.receive(None).await.unwrap().len(), 1);
    // A capsule where the deployment has none is refused too.
    alice.set_escrow(Arc::new(Cheat::OwnKey(deal(DAY, 3, 2).0)));
    let conv2 = alice.create_conversation(&["bob".into()]).await.unwrap();
    alice.send_text(&conv2, "capsule").await.unwrap();
    assert!(bob.receive(None).await.unwrap().is_empty());
    let refused = bob.take_refusals();
    assert!(
        refused
            .iter()
            .any(|r| r.escrow_violator.as_deref() == Some("alice")
                && r.reason
                    .contains(&EscrowError::UnexpectedCapsule.to_string())),
        "{refused:?}"
    );
    d.shutdown().await.unwrap();
}

/// A warrant of `court.test` over `targets` for days `DAY..=DAY+1`,
/// signed with `key` (the court's own, or a forger's).
fn warrant(key: &SigningKey, targets: &[ConversationId]) -> Warrant {
    let mut targets = targets.to_vec();
    targets.sort();
    let issued_at = START / 1000;
    Warrant::sign(
        WarrantFields {
            id: [3; 16],
            court: "court.test".into(),
            authority: "police.test".into(),
            legal_basis: "s. 100a StPO, case 4711".into(),
            targets,
            first_day: DAY,
            last_day: DAY + 1,
            issued_at,
            not_after: issued_at + 2 * 86_400,
            embargo_until: issued_at + 10 * 86_400,
            authority_hpke_key: [8; 32],
        },
        key,
    )
    .unwrap()
}

fn commitment(w: &Warrant, salt: &[u8; 32]) -> Statement {
    let f = w.fields();
    Statement::WarrantCommitment(WarrantCommitment {
        commitment: warrant_commitment(salt, &w.encode().unwrap()),
        court: f.court.clone(),
        authority: f.authority.clone(),
        issued_at: f.issued_at,
        embargo_until: f.embargo_until,
        targets: f.targets.len() as u16,
        days: f.days() as u16,
        court_signature: w.signature().to_vec(),
    })
}

fn unsealing(w: &Warrant, salt: [u8; 32]) -> WarrantUnsealing {
    let bytes = w.encode().unwrap();
    WarrantUnsealing {
        warrant: warrant_commitment(&salt, &bytes),
        salt,
        warrant_bytes: bytes,
        unsealed_at: w.fields().embargo_until + 60,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_of_a_target_conversation_sees_the_notice_of_an_unsealed_warrant_once() {
    let dir = TempDir::new().unwrap();
    let clock = custos_clock::dangerous::simulated(START);
    let d = deployment(&dir, 3, 2, &clock).await;
    publish(&d, &deal(DAY, 3, 2).0, &[0, 1]).await;
    let mut alice = user(&dir, &d, &clock, "alice").await;
    let mut bob = user(&dir, &d, &clock, "bob").await;
    let mut carol = user(&dir, &d, &clock, "carol").await;
    let target = alice.create_conversation(&["bob".into()]).await.unwrap();
    let other = alice.create_conversation(&["carol".into()]).await.unwrap();
    alice.send_text(&target, "hi bob").await.unwrap();
    alice.send_text(&other, "hi carol").await.unwrap();
    assert_eq!(bob.receive(None).await.unwrap().len(), 1);
    assert_eq!(carol.receive(None).await.unwrap().len(), 1);

    // The warrant is committed; while it is sealed, nobody is told.
    let stranger = ConversationId([0xee; 16]);
    let w = warrant(&d.keys().court, &[target, stranger]);
    let salt = [7u8; 32];
    log_statement(&d, &commitment(&w, &salt), &d.keys().authority).await;
    assert!(bob.receive(None).await.unwrap().is_empty());
    assert!(bob.take_new_notices().unwrap().is_empty());

    // Unsealings that must not produce a notice: a wrong salt; a warrant
    // "of court.test" signed by another key (its commitment logged); a
    // warrant whose commitment was never logged.
    let mut wrong_salt = unsealing(&w, salt);
    wrong_salt.salt[0] ^= 1;
    let forged = warrant(&d.keys().authority, &[target]);
    log_statement(&d, &commitment(&forged, &salt), &d.keys().authority).await;
    let unlogged = warrant(&d.keys().court, &[target]);
    for u in [
        wrong_salt,
        unsealing(&forged, salt),
        unsealing(&unlogged, [9; 32]),
    ] {
        log_statement(&d, &Statement::WarrantUnsealing(u), &custodian(&d, 1)).await;
    }
    // The embargo ends: a custodian unseals, and the court repeats it.
    let genuine = log_statement(
        &d,
        &Statement::WarrantUnsealing(unsealing(&w, salt)),
        &custodian(&d, 0),
    )
    .await;
    log_statement(
        &d,
        &Statement::WarrantUnsealing(unsealing(&w, salt)),
        &d.keys().court,
    )
    .await;

    // Both members of the target conversation see one notice; carol none.
    let expected_commitment = hex::encode(warrant_commitment(&salt, &w.encode().unwrap()));
    for dev in [&mut alice, &mut bob] {
        dev.receive(None).await.unwrap();
        let notices = dev.take_new_notices().unwrap();
        assert_eq!(notices.len(), 1, "{}: {notices:?}", dev.name());
        let n = &notices[0];
        assert_eq!(n.warrant, expected_commitment);
        assert_eq!(n.log_index, genuine);
        assert_eq!(n.court, "court.test");
        assert_eq!(n.authority, "police.test");
        assert_eq!(n.legal_basis, "s. 100a StPO, case 4711");
        assert_eq!(n.conversations, vec![target.to_hex()]);
        assert_eq!((n.first_day, n.last_day), (DAY, DAY + 1));
        assert_eq!(n.first_date, "2025-11-18");
        assert_eq!(n.unsealed_at, w.fields().embargo_until + 60);
        assert!(n.line().contains("court.test"), "{}", n.line());
        // Shown once: the next receive has nothing new, the list keeps it.
        dev.receive(None).await.unwrap();
        assert!(dev.take_new_notices().unwrap().is_empty());
        assert_eq!(dev.notices().unwrap(), notices);
    }
    carol.receive(None).await.unwrap();
    assert!(carol.take_new_notices().unwrap().is_empty());
    assert!(carol.notices().unwrap().is_empty());

    // Shown stays shown across a restart.
    drop(bob);
    let mut bob = Device::open(&dir.path().join("bob"), clock.shared())
        .await
        .unwrap();
    bob.receive(None).await.unwrap();
    assert!(bob.take_new_notices().unwrap().is_empty());
    assert_eq!(bob.notices().unwrap().len(), 1);
    d.shutdown().await.unwrap();
}
