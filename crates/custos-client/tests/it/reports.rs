//! Reports and moderation on a real delivery service on loopback (the test
//! kit's deployment), with franking (delivery tags) switched on and a
//! simulated clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;

use crate::gcm::{aes_block, counter_block, gf_inv, gf_mul, ghash};
use custos_client::Device;
use custos_client::api::ApiError;
use custos_clock::SimulatedClock;
use custos_deploy::{CustodianMode, Deployment, DeploymentSpec, ServerSpec};
use custos_server::AdmitRefusal;
use custos_server::FrankingPolicy;
use custos_tlog::TrustPolicy;
use custos_verify::package::{
    FrankingKeyLogProof, FrankingKeyStatus, PackageError, ReportPackage, UnprovenReason,
    verify_package,
};
use custos_wire::ConversationId;
use custos_wire::moderation::{Action, ReportStatus};
use custos_wire::report::Report;
use custos_wire::tag::{DeliveryTag, DeliveryTagV1, TagFields};
use ed25519_dalek::SigningKey;
use tempfile::TempDir;

/// The test kit's deployment on `clock` (a log with two witnesses, no
/// custodians) and its delivery service, franking with a key that it
/// publishes in the log only if `franking_in_log`.
async fn deployment(dir: &TempDir, clock: &SimulatedClock, franking_in_log: bool) -> Deployment {
    let spec = DeploymentSpec::new("test", clock.shared())
        .custodians(0, 0, CustodianMode::KeysOnly)
        .with_server(ServerSpec {
            franking_in_log,
            ..ServerSpec::unlimited()
        });
    Deployment::start(&dir.path().join("deploy"), spec)
        .await
        .unwrap()
}

const START: u64 = 1_795_000_000_000;
/// Offsets in a v2 tag whose sender is `alice`: the end of the server time,
/// and the start of the batch position (batch id, size, index).
const TAG_TIME_END: usize = 1 + 32 + 16 + 1 + 5 + 8;
const TAG_POSITION: usize = TAG_TIME_END + 32;

/// Registers `name` on the deployment's next server (with several servers
/// on PostgreSQL, users are spread across them).
async fn user(dir: &TempDir, d: &Deployment, clock: &SimulatedClock, name: &str) -> Device {
    let url = d.next_server_url().unwrap();
    Device::register(&dir.path().join(name), url, name, clock.shared())
        .await
        .unwrap()
}

/// Alice sends three messages to Bob; Bob receives them. Returns the
/// conversation and Bob's message ids.
async fn exchange(alice: &mut Device, bob: &mut Device) -> (ConversationId, Vec<String>) {
    let conv = alice
        .create_conversation(&["bob".to_string()])
        .await
        .unwrap();
    for t in ["hello bob", "send me money or else", "last warning"] {
        alice.send_text(&conv, t).await.unwrap();
    }
    let got = bob.receive(None).await.unwrap();
    assert_eq!(got.len(), 3);
    (conv, got.into_iter().map(|m| m.id).collect())
}

/// The service's refusal code inside a device error, if it is one.
fn refusal_code(e: &custos_client::DeviceError) -> Option<&str> {
    match e {
        custos_client::DeviceError::Api(ApiError::Refused { code, .. }) => Some(code),
        _ => None,
    }
}

fn code(e: ApiError) -> String {
    match e {
        ApiError::Refused { code, .. } => code,
        other => panic!("not a refusal: {other}"),
    }
}

async fn submit(bob: &Device, r: &Report) -> Result<i64, String> {
    bob.api()
        .submit_report(&r.encode().unwrap())
        .await
        .map_err(code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_report_verifies_and_every_single_byte_change_is_refused() {
    let dir = TempDir::new().unwrap();
    let clock = custos_clock::dangerous::simulated(START);
    let d = deployment(&dir, &clock, false).await;
    let server = d.server().unwrap();
    let mut alice = user(&dir, &d, &clock, "alice").await;
    let mut bob = user(&dir, &d, &clock, "bob").await;
    assert_eq!(
        bob.pinned_franking_key().unwrap(),
        Some(server.franking.public_key())
    );
    let (conv, ids) = exchange(&mut alice, &mut bob).await;
    let good = bob.build_report(&conv, &ids[1], "extortion", 2).unwrap();
    assert_eq!(good.context.len(), 2);
    assert_eq!(good.message.sender, "alice");
    // Alice sent one message at a time: each is alone in its tag batch.
    let Ok(DeliveryTag::V2(t)) = DeliveryTag::decode(&good.message.tag) else {
        panic!("the service issues v2 tags")
    };
    assert_eq!((t.batch_size, t.leaf_index, t.path.len()), (1, 0, 0));

    // Each mutation touches one byte and must fail with its own reason.
    type Mutation = (&'static str, &'static str, fn(&mut Report));
    let mutations: Vec<Mutation> = vec![
        ("payload body", "franking_mismatch", |r| {
            let n = r.message.payload.len();
            r.message.payload[n - 2] ^= 1;
        }),
        ("revealed franking key", "franking_key_mismatch", |r| {
            r.message.franking_key[0] ^= 1;
        }),
        (
            "franking key in payload and report",
            "franking_mismatch",
            |r| {
                r.message.payload[10] ^= 1;
                r.message.franking_key[0] ^= 1;
            },
        ),
        ("header commitment", "commitment_mismatch", |r| {
            r.message.envelope[1 + 16 + 20 + 4] ^= 1;
        }),
        ("ciphertext", "envelope_hash_mismatch", |r| {
            let n = r.message.envelope.len();
            r.message.envelope[n - 70] ^= 1;
        }),
        ("tag signature", "bad_tag_root_signature", |r| {
            let n = r.message.tag.len();
            r.message.tag[n - 1] ^= 1;
        }),
        // The tag's time and the claim changed together: the leaf is no
        // longer the one under the signed root.
        ("tag time", "bad_tag_root_signature", |r| {
            r.message.tag[TAG_TIME_END - 1] ^= 1;
            r.message.server_time ^= 1;
        }),
        ("tag batch id", "bad_tag_root_signature", |r| {
            r.message.tag[TAG_POSITION] ^= 1;
        }),
        ("tag batch size", "malformed_tag", |r| {
            r.message.tag[TAG_POSITION + 9] ^= 1;
        }),
        ("tag leaf index", "malformed_tag", |r| {
            r.message.tag[TAG_POSITION + 11] ^= 1;
        }),
        ("tag commitment", "commitment_mismatch", |r| {
            r.message.tag[1] ^= 1;
        }),
        ("claimed conversation", "conversation_mismatch", |r| {
            r.message.conversation.0[0] ^= 1;
        }),
        ("claimed sender", "sender_mismatch", |r| {
            r.message.sender = "alicf".into();
        }),
        ("claimed time", "time_mismatch", |r| {
            r.message.server_time ^= 1;
        }),
        ("context message payload", "franking_mismatch", |r| {
            let n = r.context[0].payload.len();
            r.context[0].payload[n - 2] ^= 1;
        }),
    ];
    for (what, expected, mutate) in mutations {
        let mut bad = good.clone();
        mutate(&mut bad);
        assert_eq!(
            submit(&bob, &bad).await.unwrap_err(),
            expected,
            "mutating the {what}"
        );
    }
    let id = submit(&bob, &good).await.unwrap();
    assert!(id > 0);
    d.shutdown().await.unwrap();
}

/// A reported message whose tag comes from a tag batch of 13 (leaf 5, a
/// 4-hash path, signed by the service's key through the writer's signing
/// path) verifies; every single-byte change of that tag is refused, by the
/// local verifier with the reason of the byte's region, and by the service
/// with the same code for one byte of each region. A v1 tag signed by the
/// service's key (read from its key file, as an old report would carry)
/// still verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_single_byte_change_of_a_v2_tag_is_refused_for_its_reason() {
    use custos_verify::report::{SenderKeys, verify_report};
    let dir = TempDir::new().unwrap();
    let clock = custos_clock::dangerous::simulated(START);
    let d = deployment(&dir, &clock, false).await;
    let server = d.server().unwrap();
    let mut alice = user(&dir, &d, &clock, "alice").await;
    let mut bob = user(&dir, &d, &clock, "bob").await;
    let (conv, ids) = exchange(&mut alice, &mut bob).await;
    let senders = SenderKeys::from([(
        "alice".to_owned(),
        custos_verify::sender_signature::SenderKey::from_bytes(&alice.identity_key()).unwrap(),
    )]);
    let mut good = bob.build_report(&conv, &ids[0], "threats", 0).unwrap();
    let real: TagFields = DeliveryTag::decode(&good.message.tag)
        .unwrap()
        .fields()
        .clone();
    let mut batch: Vec<TagFields> = (0..13u64)
        .map(|i| TagFields {
            server_time: real.server_time + 1 + i,
            ..real.clone()
        })
        .collect();
    batch[5] = real.clone();
    let tag = server.franking.sign_batch(batch).unwrap().remove(5);
    assert_eq!((tag.batch_size, tag.leaf_index, tag.path.len()), (13, 5, 4));
    good.message.tag = DeliveryTag::V2(tag).encode().unwrap();
    let key = server.franking.verifying_key();
    verify_report(&good, &key, &senders).unwrap();
    submit(&bob, &good).await.unwrap();

    let tag = good.message.tag.clone();
    let position = TAG_POSITION;
    let path_start = position + 8 + 2 + 2;
    let sig_start = tag.len() - 64;
    let region = |at: usize| -> &'static str {
        match at {
            0 => "version",
            1..=32 => "commitment",
            33..=48 => "conversation",
            49..=54 => "sender",
            a if a < TAG_TIME_END => "time",
            a if a < position => "envelope hash",
            a if a < position + 8 => "batch id",
            a if a < path_start => "size or index",
            a if a < sig_start => "path",
            _ => "signature",
        }
    };
    let allowed = |region: &str| -> &'static [&'static str] {
        match region {
            "version" | "sender" => &["malformed_tag", "sender_mismatch"],
            "commitment" => &["commitment_mismatch"],
            "conversation" => &["conversation_mismatch"],
            "time" => &["time_mismatch"],
            "envelope hash" => &["envelope_hash_mismatch"],
            "size or index" => &["malformed_tag", "bad_tag_root_signature"],
            _ => &["bad_tag_root_signature"],
        }
    };
    let mut asked_service = BTreeSet::new();
    for at in 0..tag.len() {
        let mut bad = good.clone();
        bad.message.tag[at] ^= 1;
        let code = verify_report(&bad, &key, &senders).unwrap_err().code();
        let r = region(at);
        assert!(allowed(r).contains(&code), "byte {at} ({r}): {code}");
        if asked_service.insert(r) {
            assert_eq!(
                submit(&bob, &bad).await.unwrap_err(),
                code,
                "byte {at} ({r})"
            );
        }
    }
    assert_eq!(asked_service.len(), 10);

    // A v1 tag by the same key, as reports from before v2 carry, verifies;
    // its single-byte changes are refused.
    let seed: [u8; 32] =
        std::fs::read(server.data.join(custos_server::franking::FRANKING_KEY_FILE))
            .unwrap()
            .try_into()
            .unwrap();
    let service_key = SigningKey::from_bytes(&seed);
    let v1 = DeliveryTag::V1(DeliveryTagV1 {
        signature: ed25519_dalek::Signer::sign(&service_key, &real.signed_bytes_v1().unwrap())
            .to_bytes(),
        fields: real,
    })
    .encode()
    .unwrap();
    let mut old = good.clone();
    old.message.tag = v1;
    verify_report(&old, &key, &senders).unwrap();
    submit(&bob, &old).await.unwrap();
    let n = old.message.tag.len();
    old.message.tag[n - 1] ^= 1;
    assert_eq!(submit(&bob, &old).await.unwrap_err(), "bad_tag_signature");
    d.shutdown().await.unwrap();
}

/// The recipient's client refuses an envelope whose v2 tag does not verify
/// under the pinned key (the shared verifier's code is in the reason), and
/// then accepts the genuine delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recipient_refuses_an_envelope_whose_tag_does_not_verify() {
    use custos_client::receive::Outcome;
    use custos_client::refusal::{EnvelopeRefusal, Refusal};
    use custos_client::report::TagCheckError;
    use custos_wire::frames::ItemKind;
    use custos_wire::tag::TagRefusal;
    let dir = TempDir::new().unwrap();
    let clock = custos_clock::dangerous::simulated(START);
    let d = deployment(&dir, &clock, false).await;
    let mut alice = user(&dir, &d, &clock, "alice").await;
    let mut bob = user(&dir, &d, &clock, "bob").await;
    let conv = alice
        .create_conversation(&["bob".to_string()])
        .await
        .unwrap();
    alice.send_text(&conv, "tagged").await.unwrap();
    let items = bob.api().fetch(0, 100).await.unwrap();
    let envelope = items
        .iter()
        .find(|d| d.kind == ItemKind::Envelope)
        .unwrap()
        .clone();
    for d in items.iter().filter(|d| d.kind != ItemKind::Envelope) {
        bob.process_delivery(d.clone()).await.unwrap();
    }
    let n = envelope.tag.len();
    let cases: [(usize, &str); 4] = [
        (n - 1, "bad_tag_root_signature"),            // signature
        (TAG_POSITION + 3, "bad_tag_root_signature"), // batch id
        (TAG_POSITION + 9, "malformed_tag"),          // batch size 1 -> 0
        (1, "commitment_mismatch"),
    ];
    for (at, code) in cases {
        let mut bad = envelope.clone();
        bad.tag[at] ^= 1;
        match bob.process_delivery(bad).await.unwrap() {
            Outcome::Refused(r) => assert_eq!(r.code(), code, "byte {at}: {r}"),
            other => panic!("byte {at}: {other:?}"),
        }
    }
    let mut untagged = envelope.clone();
    untagged.tag.clear();
    assert!(matches!(
        bob.process_delivery(untagged).await.unwrap(),
        Outcome::Refused(Refusal::Envelope(EnvelopeRefusal::Tag(TagCheckError::Tag(
            TagRefusal::Missing
        ))))
    ));
    assert_eq!(
        bob.process_delivery(envelope).await.unwrap(),
        Outcome::Message
    );
    d.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipient_cannot_frame_a_sender() {
    let dir = TempDir::new().unwrap();
    let clock = custos_clock::dangerous::simulated(START);
    let d = deployment(&dir, &clock, false).await;
    let mut alice = user(&dir, &d, &clock, "alice").await;
    let mut bob = user(&dir, &d, &clock, "bob").await;
    let (conv, ids) = exchange(&mut alice, &mut bob).await;
    let real = bob.build_report(&conv, &ids[0], "framing", 0).unwrap();

    // 1. Bob writes his own payload "alice: I confess", commits to it with
    //    his own franking key, and attaches Alice's real envelope and tag.
    let mut fake_payload = custos_client::seal::text_payload("I confess", START);
    fake_payload.franking_key = [9; 32];
    let mut forged = real.clone();
    forged.message.payload = fake_payload.encode().unwrap().to_vec();
    forged.message.franking_key = [9; 32];
    assert_eq!(
        submit(&bob, &forged).await.unwrap_err(),
        "franking_mismatch"
    );

    // 2. Bob sends "I confess" himself and claims Alice sent it.
    bob.send_text(&conv, "I confess").await.unwrap();
    let history = alice.receive(None).await.unwrap();
    let bob_msg = history.iter().find(|m| m.text == "I confess").unwrap();
    let mut claimed = alice.build_report(&conv, &bob_msg.id, "x", 0).unwrap();
    claimed.message.sender = "alice".into();
    assert_eq!(
        alice
            .api()
            .submit_report(&claimed.encode().unwrap())
            .await
            .map_err(code)
            .unwrap_err(),
        "sender_mismatch"
    );

    // 3. Bob rewrites the tag to name Alice: the leaf leaves the signed root.
    let mut retagged = alice.build_report(&conv, &bob_msg.id, "x", 0).unwrap();
    let Ok(DeliveryTag::V2(mut tag)) = DeliveryTag::decode(&retagged.message.tag) else {
        panic!("v2 tag expected")
    };
    tag.fields.sender = "alice".into();
    retagged.message.tag = DeliveryTag::V2(tag).encode().unwrap();
    retagged.message.sender = "alice".into();
    assert_eq!(
        alice
            .api()
            .submit_report(&retagged.encode().unwrap())
            .await
            .map_err(code)
            .unwrap_err(),
        "bad_tag_root_signature"
    );

    // 4. Bob signs a tag with a key of his own, as v2 and as v1.
    let mine = FrankingPolicy::from_seed(&[5; 32], clock.shared());
    let mut self_signed = real.clone();
    let fields = DeliveryTag::decode(&real.message.tag)
        .unwrap()
        .fields()
        .clone();
    let forged = mine.sign_batch(vec![fields.clone()]).unwrap().remove(0);
    self_signed.message.tag = DeliveryTag::V2(forged).encode().unwrap();
    assert_eq!(
        submit(&bob, &self_signed).await.unwrap_err(),
        "bad_tag_root_signature"
    );
    let my_key = SigningKey::from_bytes(&[5; 32]);
    self_signed.message.tag = DeliveryTag::V1(DeliveryTagV1 {
        signature: ed25519_dalek::Signer::sign(&my_key, &fields.signed_bytes_v1().unwrap())
            .to_bytes(),
        fields,
    })
    .encode()
    .unwrap();
    assert_eq!(
        submit(&bob, &self_signed).await.unwrap_err(),
        "bad_tag_signature"
    );
    // The genuine report still verifies.
    submit(&bob, &real).await.unwrap();
    d.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspension_stops_sends_until_it_ends_and_package_verifies_publicly() {
    let dir = TempDir::new().unwrap();
    let clock = custos_clock::dangerous::simulated(START);
    let d = deployment(&dir, &clock, false).await;
    let mut alice = user(&dir, &d, &clock, "alice").await;
    let mut bob = user(&dir, &d, &clock, "bob").await;
    let moderator = user(&dir, &d, &clock, "mod").await;
    let (conv, ids) = exchange(&mut alice, &mut bob).await;
    let report_id = bob.report(&conv, &ids[1], "extortion", 1).await.unwrap();

    // Not a moderator yet.
    assert_eq!(
        code(moderator.api().moderation_list(false).await.unwrap_err()),
        "not_moderator"
    );
    d.add_moderator("mod").await.unwrap();
    assert_eq!(
        code(bob.api().moderation_list(false).await.unwrap_err()),
        "not_moderator"
    );
    let queue = moderator.api().moderation_list(false).await.unwrap();
    assert_eq!(queue.reports[0].id, report_id);
    assert_eq!(queue.reports[0].status, ReportStatus::Open);
    let shown = moderator.api().moderation_show(report_id).await.unwrap();
    assert_eq!(shown.message.text, "send me money or else");
    assert_eq!(shown.message.sender, "alice");

    clock.advance_millis(60_000);
    let r = moderator
        .api()
        .moderation_resolve(report_id, Action::Suspend, "extortion", Some(3600))
        .await
        .unwrap();
    assert_eq!(r.status, ReportStatus::Suspended);
    let e = alice.send_text(&conv, "still here").await.unwrap_err();
    assert_eq!(refusal_code(&e), Some("suspended"), "{e}");
    clock.advance_millis(3_600_000);
    alice.send_text(&conv, "back again").await.unwrap();

    // Escalation exports a package that verifies with public information.
    let esc = moderator
        .api()
        .moderation_resolve(report_id, Action::Escalate, "to clearinghouse", None)
        .await
        .unwrap();
    // This service publishes its key in no log: the package says so, and
    // its key verifies only as unproven, never as logged.
    let esc_package = esc.package.unwrap();
    let package = serde_json::to_string(&esc_package).unwrap();
    assert_eq!(
        esc_package.franking_key_log_proof,
        FrankingKeyLogProof::NoLog
    );
    let any_policy = TrustPolicy::new(
        "log.test",
        SigningKey::from_bytes(&[1; 32]).verifying_key(),
        &[],
        0,
    )
    .unwrap();
    let v = verify_package(&package, &any_policy).unwrap();
    assert_eq!(v.message.text, "send me money or else");
    assert_eq!(v.message.sender, "alice");
    assert_eq!(v.context.len(), 1);
    assert_eq!(
        v.franking_key,
        FrankingKeyStatus::Unproven(UnprovenReason::NoLog)
    );
    assert!(matches!(
        v.require_logged(),
        Err(PackageError::UnprovenKey(UnprovenReason::NoLog))
    ));
    let edited = package.replace("send me money or else", "send me mone  or else");
    assert!(matches!(
        verify_package(&edited, &any_policy),
        Err(PackageError::StatedContent)
    ));

    // Figures.
    let stats = bob.api().moderation_stats().await.unwrap();
    assert_eq!(stats.reports_verified, 1);
    assert_eq!(stats.actions[&Action::Suspend], 1);
    assert_eq!(stats.actions[&Action::Escalate], 1);
    assert_eq!(stats.median_time_to_action_ms, Some(60_000));
    let shown = moderator.api().moderation_show(report_id).await.unwrap();
    assert_eq!(shown.actions[0].moderator, "mod");
    assert_eq!(shown.actions[0].action, Action::Suspend);
    d.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_suspension_survives_restart() {
    let dir = TempDir::new().unwrap();
    let clock = custos_clock::dangerous::simulated(START);
    let mut d = deployment(&dir, &clock, false).await;
    let mut alice = user(&dir, &d, &clock, "alice").await;
    let mut bob = user(&dir, &d, &clock, "bob").await;
    let moderator = user(&dir, &d, &clock, "mod").await;
    d.add_moderator("mod").await.unwrap();
    let (conv, ids) = exchange(&mut alice, &mut bob).await;
    let id = bob.report(&conv, &ids[2], "threat", 0).await.unwrap();
    moderator
        .api()
        .moderation_resolve(id, Action::Suspend, "permanent", None)
        .await
        .unwrap();
    // The same service restarts on its address with its data.
    d.restart_server().await.unwrap();
    clock.advance_days(400);
    // The first device must be closed before its home can be opened again.
    drop(alice);
    let mut alice = Device::open(&dir.path().join("alice"), clock.shared())
        .await
        .unwrap();
    let e = alice.send_text(&conv, "hi").await.unwrap_err();
    assert_eq!(refusal_code(&e), Some("suspended"), "{e}");
    let permanent = AdmitRefusal::Suspended {
        account: "alice".into(),
        until: None,
    };
    assert!(
        matches!(&e, custos_client::DeviceError::Api(ApiError::Refused { message, .. }) if *message == permanent.to_string()),
        "{e}"
    );
    d.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn package_carries_the_log_proof_of_the_franking_key_and_verifies_with_the_log_only() {
    let dir = TempDir::new().unwrap();
    // The key's valid_from is its file's (real) creation time.
    let clock = custos_clock::dangerous::simulated(custos_clock::system().now_millis());
    let mut d = deployment(&dir, &clock, true).await;
    let server = d.server().unwrap();
    let data = server.data.clone();
    let policy = d.trust_policy().unwrap();
    let provider = d.keys().provider.signing_key().clone();
    // `serve` publishes the key in the background; wait for the proof.
    let mut waited = 0;
    while !matches!(server.franking.log_proof(), FrankingKeyLogProof::Logged(_)) {
        assert!(
            waited < 200,
            "franking key not logged: {:?}",
            server.franking.log_proof()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    let proof_file = data.join(custos_server::franking_log::PROOF_FILE);
    assert!(proof_file.exists());
    let mut alice = user(&dir, &d, &clock, "alice").await;
    let mut bob = user(&dir, &d, &clock, "bob").await;
    let moderator = user(&dir, &d, &clock, "mod").await;
    d.add_moderator("mod").await.unwrap();
    // Tags are signed after the key's valid_from (its file's real time, in
    // seconds, made after the simulated clock started: on a loaded machine
    // that can be seconds later), so the clock moves a second past now.
    let past_the_key = custos_clock::system().now_millis() + 1000;
    clock.advance_millis(past_the_key.saturating_sub(custos_clock::Clock::now_millis(&clock)));
    let (conv, ids) = exchange(&mut alice, &mut bob).await;
    let id = bob.report(&conv, &ids[1], "extortion", 1).await.unwrap();
    let esc = moderator
        .api()
        .moderation_resolve(id, Action::Escalate, "court", None)
        .await
        .unwrap();
    let esc_package = esc.package.unwrap();
    let json = serde_json::to_string(&esc_package).unwrap();
    assert!(matches!(
        esc_package.franking_key_log_proof,
        FrankingKeyLogProof::Logged(_)
    ));

    // The package and the log's public trust policy are enough.
    let v = verify_package(&json, &policy).unwrap();
    let logged = v.require_logged().unwrap();
    assert_eq!(logged.public_key, server.franking.public_key());
    assert_eq!(logged.provider, "provider.test");
    assert_eq!(logged.author, provider.verifying_key().to_bytes());
    assert_eq!(logged.witnesses.len(), 2);
    assert_eq!(v.message.sender, "alice");

    let package: ReportPackage = serde_json::from_str(&json).unwrap();
    let FrankingKeyLogProof::Logged(proof) = &package.franking_key_log_proof else {
        panic!("not logged");
    };
    let with = |f: &dyn Fn(&mut ReportPackage)| {
        let mut p = package.clone();
        f(&mut p);
        verify_package(&serde_json::to_string(&p).unwrap(), &policy)
    };
    // Another log (or the right log without its witnesses' quorum) is refused.
    let other_log = TrustPolicy::new(
        "log.test",
        SigningKey::from_bytes(&[2; 32]).verifying_key(),
        &[],
        0,
    )
    .unwrap();
    assert!(matches!(
        verify_package(&json, &other_log),
        Err(PackageError::KeyProof(
            custos_verify::package::KeyProofError::Checkpoint(_)
        ))
    ));
    // A package whose tags were signed by another key than the logged one.
    let other = FrankingPolicy::from_seed(&[6; 32], clock.shared());
    assert!(matches!(
        with(&|p| {
            use base64::Engine as _;
            p.franking_public_key =
                base64::engine::general_purpose::STANDARD.encode(other.public_key());
        }),
        Err(PackageError::UnpublishedKey)
    ));
    // A wrong index, a changed proof hash, a changed statement.
    let idx = proof.index;
    assert!(matches!(
        with(
            &|p| if let FrankingKeyLogProof::Logged(l) = &mut p.franking_key_log_proof {
                l.index = idx + 1;
            }
        ),
        Err(PackageError::KeyProof(
            custos_verify::package::KeyProofError::Inclusion { .. }
        ))
    ));
    if !proof.inclusion_proof.is_empty() {
        assert!(matches!(
            with(
                &|p| if let FrankingKeyLogProof::Logged(l) = &mut p.franking_key_log_proof {
                    l.inclusion_proof[0] = proof.inclusion_proof[0].replace(
                        &proof.inclusion_proof[0][..1],
                        if proof.inclusion_proof[0].starts_with('A') {
                            "B"
                        } else {
                            "A"
                        },
                    );
                }
            ),
            Err(PackageError::KeyProof(_))
        ));
    }
    assert!(matches!(
        with(
            &|p| if let FrankingKeyLogProof::Logged(l) = &mut p.franking_key_log_proof {
                use base64::Engine as _;
                let b64 = base64::engine::general_purpose::STANDARD;
                let mut raw = b64.decode(&l.statement).unwrap();
                let n = raw.len();
                raw[n - 1] ^= 1;
                l.statement = b64.encode(raw);
            }
        ),
        Err(PackageError::KeyProof(
            custos_verify::package::KeyProofError::BadStatementSignature(_)
        ))
    ));
    // A logged statement for this key whose valid_from is after the tags.
    let late = custos_wire::statement::SignedStatement::sign(
        &custos_wire::statement::Statement::ProviderFrankingKey(
            custos_wire::statement::ProviderFrankingKey {
                provider: "provider.test".into(),
                public_key: server.franking.public_key(),
                valid_from: custos_clock::system().now_millis() / 1000 + 86_400,
            },
        ),
        &provider,
    )
    .unwrap();
    let client = custos_tlog::LogClient::new(d.log_url()).unwrap();
    let index = client.submit(&late).await.unwrap().index;
    let note = loop {
        let note = client.checkpoint().await.unwrap();
        if policy
            .verify_checkpoint(&note)
            .is_ok_and(|cp| cp.size() > index)
        {
            break note;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let size = policy.verify_checkpoint(&note).unwrap().size();
    let hashes = client.inclusion_proof(index, size).await.unwrap();
    let late_proof =
        custos_verify::package::LogProof::new(&late.encode().unwrap(), index, &note, &hashes);
    assert!(matches!(
        with(&|p| p.franking_key_log_proof = FrankingKeyLogProof::Logged(late_proof.clone())),
        Err(PackageError::KeyNotYetValid { .. })
    ));
    // Claiming "pending" instead of the proof downgrades to unproven, never to ok-and-logged.
    let pending = with(&|p| p.franking_key_log_proof = FrankingKeyLogProof::Pending).unwrap();
    assert!(matches!(
        pending.require_logged(),
        Err(PackageError::UnprovenKey(UnprovenReason::Pending))
    ));

    // A restart reuses the stored proof for the same key (no second entry).
    let before = std::fs::read(&proof_file).unwrap();
    d.restart_server().await.unwrap();
    let server = d.server().unwrap();
    let again = custos_server::franking_log::publish_franking_key(
        &server.franking,
        &d.franking_log_config(),
        &data,
    )
    .await
    .unwrap();
    assert_eq!(&again, proof);
    assert_eq!(std::fs::read(&proof_file).unwrap(), before);
    d.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_key_that_is_not_a_provider_cannot_publish() {
    let dir = TempDir::new().unwrap();
    let clock = custos_clock::dangerous::simulated(START);
    let spec = DeploymentSpec::new("test", clock.shared())
        .custodians(0, 0, CustodianMode::KeysOnly)
        .without_server();
    let d = Deployment::start(&dir.path().join("deploy"), spec)
        .await
        .unwrap();
    let policy = FrankingPolicy::from_seed(&[7; 32], clock.shared());
    let mut config = d.franking_log_config();
    config.statement_key = SigningKey::from_bytes(&[8; 32]);
    let e = custos_server::franking_log::publish_franking_key(&policy, &config, dir.path())
        .await
        .unwrap_err();
    assert!(matches!(
        e,
        custos_server::franking_log::PublishError::NotAProvider(_)
    ));
    assert_eq!(policy.log_proof(), FrankingKeyLogProof::NoLog);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_recipient_can_report() {
    let dir = TempDir::new().unwrap();
    let clock = custos_clock::dangerous::simulated(START);
    let d = deployment(&dir, &clock, false).await;
    let mut alice = user(&dir, &d, &clock, "alice").await;
    let mut bob = user(&dir, &d, &clock, "bob").await;
    let carol = user(&dir, &d, &clock, "carol").await;
    let (conv, ids) = exchange(&mut alice, &mut bob).await;
    let report = bob.build_report(&conv, &ids[1], "extortion", 1).unwrap();

    // Carol is no member of the conversation: a leaked report (valid tag,
    // payload and franking key) is refused with its own reason.
    assert_eq!(
        carol
            .api()
            .submit_report(&report.encode().unwrap())
            .await
            .map_err(code)
            .unwrap_err(),
        "not_a_recipient"
    );
    // The sender is a member, but not a recipient of her own message.
    let own = alice.build_report(&conv, &ids[1], "self", 0).unwrap();
    assert_eq!(
        alice
            .api()
            .submit_report(&own.encode().unwrap())
            .await
            .map_err(code)
            .unwrap_err(),
        "not_a_recipient"
    );
    // Claiming another conversation (one Carol is in) does not help: the
    // claim must match the envelope and the tag.
    let mut carol = carol;
    let theirs = carol.create_conversation(&["alice".into()]).await.unwrap();
    let mut moved = report.clone();
    moved.message.conversation = theirs;
    assert_eq!(
        carol
            .api()
            .submit_report(&moved.encode().unwrap())
            .await
            .map_err(code)
            .unwrap_err(),
        "conversation_mismatch"
    );
    // The recipient can.
    submit(&bob, &report).await.unwrap();
    let stats = bob.api().moderation_stats().await.unwrap();
    assert_eq!(stats.refused_by_reason["not_a_recipient"], 2);
    assert_eq!(stats.reports_verified, 1);
    d.shutdown().await.unwrap();
}

/// Alice builds, by hand, an envelope that is correctly signed and
/// encrypted under her sending chain but whose franking does not match what
/// it decrypts to, submits it, and Bob's client refuses it on receive: it is
/// never displayed and never stored, so it cannot reach the report path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_cannot_show_one_thing_and_frank_another() {
    use aes_gcm::aead::{Aead, KeyInit, Payload as AeadPayload};
    use custos_client::seal::{message_id, text_payload};
    use custos_wire::envelope::{Envelope, EnvelopeHeader};
    use custos_wire::frames::ItemKind;
    use ed25519_dalek::Signer as _;

    let dir = TempDir::new().unwrap();
    let clock = custos_clock::dangerous::simulated(START);
    let d = deployment(&dir, &clock, false).await;
    let mut alice = user(&dir, &d, &clock, "alice").await;
    let mut bob = user(&dir, &d, &clock, "bob").await;
    let (conv, _) = exchange(&mut alice, &mut bob).await;

    let home = dir.path().join("alice");
    let identity = custos_client::identity::Identity::load(&home.join("identity.key")).unwrap();
    let store = custos_client::store::Store::open(&home.join("device.db")).unwrap();

    // (what, encrypted payload bytes, franked payload bytes, franking key
    // used for the commitment)
    type Case = (&'static str, Vec<u8>, Vec<u8>, [u8; 32]);
    let shown = text_payload("send me money or else", START);
    let innocuous = text_payload("see you at lunch", START);
    let mut other_key = shown.clone();
    other_key.franking_key = [0x77; 32];
    let cases: Vec<Case> = vec![
        (
            "commitment over another payload",
            shown.encode().unwrap().to_vec(),
            innocuous.encode().unwrap().to_vec(),
            innocuous.franking_key,
        ),
        (
            "commitment under another franking key than the payload's",
            shown.encode().unwrap().to_vec(),
            shown.encode().unwrap().to_vec(),
            other_key.franking_key,
        ),
    ];
    let mut crafted_ids = Vec::new();
    for (what, encrypted, franked, franking_key) in cases {
        let mut chain = store.sending_chain(&conv).unwrap().unwrap();
        let (generation, mk) = chain.next_key().unwrap();
        store.save_sending_chain(&chain).unwrap();
        let header = EnvelopeHeader {
            conversation: conv,
            chain: chain.id,
            generation,
            franking_commitment: custos_client::franking::commit(
                &franking_key,
                &conv,
                "alice",
                &franked,
            ),
        };
        let ciphertext = aes_gcm::Aes256Gcm::new(&mk.key.into())
            .encrypt(
                aes_gcm::Nonce::from_slice(&mk.nonce),
                AeadPayload {
                    msg: &encrypted,
                    aad: &header.encode(),
                },
            )
            .unwrap();
        let signed = Envelope::signed_bytes(&header, &ciphertext).unwrap();
        let signature = identity.signing_key().sign(&signed).to_bytes();
        let bytes = Envelope {
            header,
            ciphertext,
            signature,
        }
        .encode()
        .unwrap();
        crafted_ids.push((what, hex::encode(message_id(&bytes))));
        // The service cannot tell (it sees ciphertext) and tags it.
        let (_, tag) = alice
            .api()
            .submit(&conv, ItemKind::Envelope, bytes)
            .await
            .unwrap();
        assert!(!tag.is_empty(), "{what}");
    }
    // A genuine message after them still arrives.
    alice.send_text(&conv, "genuine").await.unwrap();
    let got = bob.receive(None).await.unwrap();
    assert_eq!(
        got.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        ["genuine"],
        "only the genuine message is displayed"
    );
    for (what, id) in crafted_ids {
        assert!(
            matches!(
                bob.build_report(&conv, &id, "x", 0),
                Err(custos_client::DeviceError::UnknownMessage(_))
            ),
            "{what}: a refused envelope must not be reportable"
        );
    }
    d.shutdown().await.unwrap();
}

/// A report's proof rests on the sender's own key too: the provider, who
/// holds the franking key, re-signs a delivered envelope with another key
/// and tags it afresh. Tag and franking still verify, but the envelope's
/// signature is not the sender's, so the report is refused locally and by
/// the service (`bad_envelope_signature`); a verifier that knows no key for
/// the sender refuses it too (`unknown_sender`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_of_an_envelope_the_sender_did_not_sign_is_refused() {
    use custos_verify::report::{ReportRefusal, SenderKeys, verify_report};
    use custos_wire::envelope::Envelope;
    use sha2::{Digest, Sha256};
    let dir = TempDir::new().unwrap();
    let clock = custos_clock::dangerous::simulated(START);
    let d = deployment(&dir, &clock, false).await;
    let server = d.server().unwrap();
    let mut alice = user(&dir, &d, &clock, "alice").await;
    let mut bob = user(&dir, &d, &clock, "bob").await;
    let (conv, ids) = exchange(&mut alice, &mut bob).await;
    let key = server.franking.verifying_key();
    let alice_key =
        custos_verify::sender_signature::SenderKey::from_bytes(&alice.identity_key()).unwrap();
    let senders = SenderKeys::from([("alice".to_owned(), alice_key)]);
    let good = bob.build_report(&conv, &ids[0], "threats", 0).unwrap();
    verify_report(&good, &key, &senders).unwrap();

    let mut envelope = Envelope::decode(&good.message.envelope).unwrap();
    let mallory = SigningKey::from_bytes(&[0x66; 32]);
    let signed = Envelope::signed_bytes(&envelope.header, &envelope.ciphertext).unwrap();
    envelope.signature = ed25519_dalek::Signer::sign(&mallory, &signed).to_bytes();
    let forged_bytes = envelope.encode().unwrap();
    let mut fields: TagFields = DeliveryTag::decode(&good.message.tag)
        .unwrap()
        .fields()
        .clone();
    fields.envelope_hash = Sha256::digest(&forged_bytes).into();
    let tag = server.franking.sign_batch(vec![fields]).unwrap().remove(0);
    let mut forged = good.clone();
    forged.message.envelope = forged_bytes;
    forged.message.tag = DeliveryTag::V2(tag).encode().unwrap();
    assert_eq!(
        verify_report(&forged, &key, &senders).unwrap_err(),
        ReportRefusal::BadEnvelopeSignature
    );
    assert_eq!(
        submit(&bob, &forged).await.unwrap_err(),
        "bad_envelope_signature"
    );
    assert_eq!(
        verify_report(&good, &key, &SenderKeys::new()).unwrap_err(),
        ReportRefusal::UnknownSender("alice".into())
    );
    submit(&bob, &good).await.unwrap();
    d.shutdown().await.unwrap();
}

/// The attack of Dodis, Grubbs, Ristenpart and Woodage (CRYPTO 2018) on a
/// non-committing AEAD, with a real AES-256-GCM key collision: one blob
/// (ciphertext and tag) that opens under key K1 to an innocuous file and
/// under key K2 to abusive content. Because the franked payload carries the
/// plaintext's SHA-256, the recipient refuses the blob under whichever key
/// does not give the committed plaintext, and a report verifier refuses a
/// revealed attachment that is not the committed one; the reporter cannot
/// swap the key either, since the key is inside the franked payload.
#[test]
fn aes_gcm_key_collision_is_caught_by_the_committed_attachment_hash() {
    use aes_gcm::aead::{Aead, KeyInit, Payload as AeadPayload};
    use custos_client::attachment::{
        ATTACHMENT_AAD, ATTACHMENT_NONCE, AttachmentError, open_attachment,
    };
    use custos_wire::payload::{Attachment, Payload};
    use sha2::{Digest, Sha256};

    let k1 = [0x11u8; 32];
    let k2 = [0x22u8; 32];
    let nonce = ATTACHMENT_NONCE;
    let (h1, h2) = (aes_block(&k1, [0; 16]), aes_block(&k2, [0; 16]));
    let (s1, s2) = (
        aes_block(&k1, counter_block(&nonce, 1)),
        aes_block(&k2, counter_block(&nonce, 1)),
    );
    let ks = |k: &[u8; 32], i: u32| aes_block(k, counter_block(&nonce, i + 2));
    let block = |s: &[u8; 16]| u128::from_be_bytes(*s);
    // Blocks 0-1 read as the innocuous file under K1, block 2 as the abusive
    // one under K2, block 3 is solved so that both keys give the same tag.
    let mut ct = [
        block(b"holiday photo: b") ^ ks(&k1, 0),
        block(b"each, sunset.   ") ^ ks(&k1, 1),
        block(b"ABUSIVE CONTENT!") ^ ks(&k2, 2),
        0,
    ];
    // tag_i = ghash(H_i, C) ^ S_i is affine in the free block C3 with
    // coefficient H_i^2 (it is followed only by the length block).
    let rest = ghash(h1, ATTACHMENT_AAD, &ct) ^ ghash(h2, ATTACHMENT_AAD, &ct) ^ s1 ^ s2;
    ct[3] = gf_mul(rest, gf_inv(gf_mul(h1, h1) ^ gf_mul(h2, h2)));
    let tag1 = ghash(h1, ATTACHMENT_AAD, &ct) ^ s1;
    assert_eq!(tag1, ghash(h2, ATTACHMENT_AAD, &ct) ^ s2, "tags collide");
    let mut blob: Vec<u8> = ct.iter().flat_map(|b| b.to_be_bytes()).collect();
    blob.extend_from_slice(&tag1.to_be_bytes());

    // The real AES-256-GCM accepts the same blob under both keys.
    let open = |k: &[u8; 32]| {
        aes_gcm::Aes256Gcm::new(k.into())
            .decrypt(
                aes_gcm::Nonce::from_slice(&nonce),
                AeadPayload {
                    msg: &blob,
                    aad: ATTACHMENT_AAD,
                },
            )
            .unwrap()
    };
    let (p1, p2) = (open(&k1), open(&k2));
    assert_ne!(p1, p2);
    assert!(p1.starts_with(b"holiday photo: beach, sunset."));
    assert_eq!(&p2[32..48], b"ABUSIVE CONTENT!");

    let attachment = |key: [u8; 32], committed: &[u8]| Attachment {
        key,
        plaintext_sha256: Sha256::digest(committed).into(),
        size: committed.len() as u64,
        locator: "blob/1".into(),
    };
    // Honest: key and hash agree, the recipient sees exactly p1.
    assert_eq!(
        open_attachment(&attachment(k1, &p1), &blob)
            .unwrap()
            .as_slice(),
        p1.as_slice()
    );
    // The sender commits to the innocuous hash but gives the key that shows
    // the abusive content: the recipient refuses to display it.
    assert_eq!(
        open_attachment(&attachment(k2, &p1), &blob),
        Err(AttachmentError::HashMismatch)
    );
    // And the other way round: show innocuous, commit to the abusive hash.
    assert_eq!(
        open_attachment(&attachment(k1, &p2), &blob),
        Err(AttachmentError::HashMismatch)
    );

    // Report side: the franked payload references (K1, SHA-256(p1)).
    let conv = ConversationId([3; 16]);
    let mut payload = custos_client::seal::text_payload("look at this", START);
    payload.attachments = vec![attachment(k1, &p1)];
    let bytes = payload.encode().unwrap().to_vec();
    let commitment = custos_client::franking::commit(&payload.franking_key, &conv, "alice", &bytes);
    // A reporter who swaps in K2 (to show the abusive reading) breaks the franking.
    let mut swapped = Payload::decode(&bytes).unwrap();
    swapped.attachments[0].key = k2;
    let swapped = swapped.encode().unwrap();
    assert!(!custos_verify::report::franking_opens(
        &commitment,
        &payload.franking_key,
        &conv,
        "alice",
        &swapped
    ));
    assert!(custos_verify::report::franking_opens(
        &commitment,
        &payload.franking_key,
        &conv,
        "alice",
        &bytes
    ));
    // A verifier accepts as the attachment only the committed plaintext.
    let verified = custos_verify::report::VerifiedMessage {
        conversation: conv,
        sender: "alice".into(),
        server_time: START,
        commitment,
        text: "look at this".into(),
        attachment_sha256: vec![Sha256::digest(&p1).into()],
        sender_key: [0; 32],
    };
    assert!(verified.attachment_matches(0, &p1));
    assert!(!verified.attachment_matches(0, &p2));
    assert!(!verified.attachment_matches(1, &p1));
}

/// Reports are limited per account and per network prefix (`429
/// report_limited`), and a repeated report of the same message is stored
/// once and answered with the first report's id, without being counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_limited_and_a_repeat_is_stored_once() {
    let dir = TempDir::new().unwrap();
    let clock = custos_clock::dangerous::simulated(START);
    let spec = DeploymentSpec::new("test", clock.shared())
        .custodians(0, 0, CustodianMode::KeysOnly)
        .with_server(ServerSpec {
            franking_in_log: false,
            configure: |c| {
                (ServerSpec::unlimited().configure)(c);
                c.limits.reports_per_account = custos_server::WindowLimit::per_hour(3);
                c.limits.reports_per_prefix = custos_server::WindowLimit::per_hour(4);
            },
            ..ServerSpec::unlimited()
        })
        // Report windows are each server process's own (docs/deploy.md: a
        // proxy holds per-address limits across servers), so one server.
        .with_servers(1);
    let d = Deployment::start(&dir.path().join("deploy"), spec)
        .await
        .unwrap();
    let mut alice = user(&dir, &d, &clock, "alice").await;
    let mut bob = user(&dir, &d, &clock, "bob").await;
    let conv = alice
        .create_conversation(&["bob".to_string()])
        .await
        .unwrap();
    for i in 0..4 {
        alice
            .send_text(&conv, &format!("threat {i}"))
            .await
            .unwrap();
    }
    let to_bob: Vec<String> = bob
        .receive(None)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(to_bob.len(), 4);
    for i in 0..2 {
        bob.send_text(&conv, &format!("reply {i}")).await.unwrap();
    }
    let to_alice: Vec<String> = alice
        .receive(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.sender == "bob")
        .map(|m| m.id)
        .collect();
    assert_eq!(to_alice.len(), 2);
    let report = |dev: &Device, id: &str| dev.build_report(&conv, id, "threats", 0).unwrap();

    // The same message twice: one report, the same id, counted once.
    let first = submit(&bob, &report(&bob, &to_bob[0])).await.unwrap();
    let again = submit(&bob, &report(&bob, &to_bob[0])).await.unwrap();
    assert_eq!(first, again);
    // A repeat is verified like any report: a changed payload is refused,
    // not answered with the earlier report.
    let mut forged = report(&bob, &to_bob[0]);
    let last = forged.message.payload.len() - 2;
    forged.message.payload[last] ^= 0x20;
    assert_eq!(
        submit(&bob, &forged).await.unwrap_err(),
        "franking_mismatch"
    );
    submit(&bob, &report(&bob, &to_bob[1])).await.unwrap();
    submit(&bob, &report(&bob, &to_bob[2])).await.unwrap();
    // Bob's fourth distinct report is over his account's 3 per hour.
    let err = bob
        .api()
        .submit_report(&report(&bob, &to_bob[3]).encode().unwrap())
        .await
        .unwrap_err();
    match &err {
        ApiError::Refused {
            status,
            code,
            message,
            ..
        } => {
            assert_eq!((*status, code.as_str()), (429, "report_limited"));
            assert!(message.contains("from your account"), "{message}");
        }
        other => panic!("expected 429, got {other}"),
    }
    // Alice shares Bob's network (loopback): one more report fits the
    // prefix's 4 per hour (bob's refused one was not counted there), the
    // next does not.
    submit(&alice, &report(&alice, &to_alice[0])).await.unwrap();
    let err = alice
        .api()
        .submit_report(&report(&alice, &to_alice[1]).encode().unwrap())
        .await
        .unwrap_err();
    match &err {
        ApiError::Refused { code, message, .. } => {
            assert_eq!(code, "report_limited");
            assert!(message.contains("from your network"), "{message}");
        }
        other => panic!("expected 429, got {other}"),
    }
    let stats = bob.api().moderation_stats().await.unwrap();
    assert_eq!(stats.reports_verified, 4);
    d.shutdown().await.unwrap();
}
