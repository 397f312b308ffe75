//! Reports and moderation on a real delivery service on loopback, with
//! franking (delivery tags) switched on and a simulated clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::sync::Arc;

use custos_client::Device;
use custos_client::api::ApiError;
use custos_clock::SimulatedClock;
use custos_server::FrankingPolicy;
use custos_server::franking_log::FrankingLogConfig;
use custos_server::package::{
    FrankingKeyLogProof, FrankingKeyStatus, PackageError, ReportPackage, UnprovenReason,
    verify_package,
};
use custos_tlog::{
    ALG_COSIGNATURE_V1, ALG_ED25519, LogConfig, NamedKey, TrustPolicy, WitnessConfig,
};
use custos_wire::ConversationId;
use custos_wire::manifest::{Manifest, Participant, Policy, Role};
use custos_wire::report::Report;
use ed25519_dalek::SigningKey;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

struct Server {
    url: String,
    data: std::path::PathBuf,
    franking: Arc<FrankingPolicy>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

/// A transparency log with two witnesses (quorum 2) on loopback, and the
/// provider's statement key named in its manifest.
struct Log {
    url: String,
    manifest: Manifest,
    provider: SigningKey,
    _handle: custos_tlog::LogHandle,
}

impl Log {
    async fn start(dir: &Path) -> Self {
        let log_key = NamedKey::from_seed("log.test", ALG_ED25519, &[1; 32]).unwrap();
        let provider = SigningKey::from_bytes(&[5; 32]);
        let participant =
            |name: &str, role: Role, key: [u8; 32], endpoint: Option<String>| Participant {
                name: name.into(),
                role,
                jurisdiction: "EU".into(),
                endpoint,
                public_key: hex::encode(key),
            };
        let mut ps = vec![
            participant(
                "log.test",
                Role::Log,
                log_key.verifying_key().to_bytes(),
                None,
            ),
            participant(
                "provider.test",
                Role::Provider,
                provider.verifying_key().to_bytes(),
                None,
            ),
        ];
        for i in 0..2u8 {
            let name = format!("witness-{i}.test");
            let key = NamedKey::from_seed(&name, ALG_COSIGNATURE_V1, &[10 + i; 32]).unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = custos_tlog::spawn_witness(
                listener,
                WitnessConfig {
                    data: dir.join(format!("witness-{i}")),
                    logs: vec![("log.test".into(), log_key.verifying_key())],
                    key: NamedKey::from_seed(&name, ALG_COSIGNATURE_V1, &[10 + i; 32]).unwrap(),
                    clock: custos_clock::system(),
                },
            )
            .await
            .unwrap();
            ps.push(participant(
                &name,
                Role::Witness,
                key.verifying_key().to_bytes(),
                Some(format!("http://{addr}")),
            ));
        }
        let manifest = Manifest::new(2, 1, Policy::default(), ps).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let handle = custos_tlog::spawn_log(
            listener,
            LogConfig {
                data: dir.join("log"),
                key: log_key,
                manifest: manifest.clone(),
                clock: custos_clock::system(),
                max_batch: 64,
            },
        )
        .await
        .unwrap();
        Self {
            url: format!("http://{}", handle.addr),
            manifest,
            provider,
            _handle: handle,
        }
    }

    fn policy(&self) -> TrustPolicy {
        TrustPolicy::from_manifest(&self.manifest).unwrap()
    }

    fn config(&self) -> FrankingLogConfig {
        FrankingLogConfig {
            log_url: self.url.clone(),
            manifest: self.manifest.clone(),
            statement_key: self.provider.clone(),
            witness_timeout: std::time::Duration::from_secs(20),
        }
    }
}

impl Server {
    async fn start(data: &Path, clock: &SimulatedClock) -> Self {
        Self::start_on(data, clock, "127.0.0.1:0", None).await
    }

    async fn start_on(
        data: &Path,
        clock: &SimulatedClock,
        addr: &str,
        log: Option<FrankingLogConfig>,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel();
        let franking = Arc::new(FrankingPolicy::open(data, clock.shared()).unwrap());
        let mut config = custos_server::ServerConfig::new(data).with_franking(franking.clone());
        if let Some(log) = log {
            config = config.with_franking_log(log);
        }
        config.limits.ip_rate = custos_server::RateLimit::UNLIMITED;
        config.limits.account_rate = custos_server::RateLimit::UNLIMITED;
        let shared = clock.shared();
        let task = tokio::spawn(async move {
            custos_server::serve(listener, config, shared, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Self {
            url,
            data: data.to_owned(),
            franking,
            stop: Some(tx),
            task,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap();
    }
}

const START: u64 = 1_795_000_000_000;

async fn user(dir: &TempDir, server: &Server, clock: &SimulatedClock, name: &str) -> Device {
    Device::register(&dir.path().join(name), &server.url, name, clock.shared())
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
    let server = Server::start(&dir.path().join("server"), &clock).await;
    let mut alice = user(&dir, &server, &clock, "alice").await;
    let mut bob = user(&dir, &server, &clock, "bob").await;
    assert_eq!(
        bob.pinned_franking_key().unwrap(),
        Some(server.franking.public_key())
    );
    let (conv, ids) = exchange(&mut alice, &mut bob).await;
    let good = bob.build_report(&conv, &ids[1], "extortion", 2).unwrap();
    assert_eq!(good.context.len(), 2);
    assert_eq!(good.message.sender, "alice");

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
        ("tag signature", "bad_tag_signature", |r| {
            let n = r.message.tag.len();
            r.message.tag[n - 1] ^= 1;
        }),
        ("tag time", "bad_tag_signature", |r| {
            let n = r.message.tag.len();
            r.message.tag[n - 64 - 32 - 1] ^= 1;
            r.message.server_time ^= 1;
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
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipient_cannot_frame_a_sender() {
    let dir = TempDir::new().unwrap();
    let clock = custos_clock::dangerous::simulated(START);
    let server = Server::start(&dir.path().join("server"), &clock).await;
    let mut alice = user(&dir, &server, &clock, "alice").await;
    let mut bob = user(&dir, &server, &clock, "bob").await;
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

    // 3. Bob rewrites the tag to name Alice: the signature breaks.
    let mut retagged = alice.build_report(&conv, &bob_msg.id, "x", 0).unwrap();
    let mut tag = custos_wire::tag::DeliveryTag::decode(&retagged.message.tag).unwrap();
    tag.fields.sender = "alice".into();
    retagged.message.tag = tag.encode().unwrap();
    retagged.message.sender = "alice".into();
    assert_eq!(
        alice
            .api()
            .submit_report(&retagged.encode().unwrap())
            .await
            .map_err(code)
            .unwrap_err(),
        "bad_tag_signature"
    );

    // 4. Bob signs a tag with a key of his own.
    let mine = FrankingPolicy::from_seed(&[5; 32], clock.shared());
    let mut self_signed = real.clone();
    let t = custos_wire::tag::DeliveryTag::decode(&real.message.tag).unwrap();
    self_signed.message.tag = mine.sign(t.fields).unwrap().encode().unwrap();
    assert_eq!(
        submit(&bob, &self_signed).await.unwrap_err(),
        "bad_tag_signature"
    );
    // The genuine report still verifies.
    submit(&bob, &real).await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspension_stops_sends_until_it_ends_and_package_verifies_publicly() {
    let dir = TempDir::new().unwrap();
    let clock = custos_clock::dangerous::simulated(START);
    let server = Server::start(&dir.path().join("server"), &clock).await;
    let mut alice = user(&dir, &server, &clock, "alice").await;
    let mut bob = user(&dir, &server, &clock, "bob").await;
    let moderator = user(&dir, &server, &clock, "mod").await;
    let (conv, ids) = exchange(&mut alice, &mut bob).await;
    let report_id = bob.report(&conv, &ids[1], "extortion", 1).await.unwrap();

    // Not a moderator yet.
    assert_eq!(
        code(moderator.api().moderation_list(false).await.unwrap_err()),
        "not_moderator"
    );
    custos_server::moderation::add_moderator(&server.data, "mod")
        .await
        .unwrap();
    assert_eq!(
        code(bob.api().moderation_list(false).await.unwrap_err()),
        "not_moderator"
    );
    let queue = moderator.api().moderation_list(false).await.unwrap();
    assert_eq!(queue["reports"][0]["id"], report_id);
    let shown = moderator.api().moderation_show(report_id).await.unwrap();
    assert_eq!(shown["message"]["text"], "send me money or else");
    assert_eq!(shown["message"]["sender"], "alice");

    clock.advance_millis(60_000);
    let r = moderator
        .api()
        .moderation_resolve(report_id, "suspend", "extortion", Some(3600))
        .await
        .unwrap();
    assert_eq!(r["status"], "suspended");
    let e = alice.send_text(&conv, "still here").await.unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("suspended"), "{msg}");
    clock.advance_millis(3_600_000);
    alice.send_text(&conv, "back again").await.unwrap();

    // Escalation exports a package that verifies with public information.
    let esc = moderator
        .api()
        .moderation_resolve(report_id, "escalate", "to clearinghouse", None)
        .await
        .unwrap();
    // This service publishes its key in no log: the package says so, and
    // its key verifies only as unproven, never as logged.
    let package = serde_json::to_string(&esc["package"]).unwrap();
    assert_eq!(esc["package"]["franking_key_log_proof"]["status"], "no_log");
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
    assert_eq!(stats["reports_verified"], 1);
    assert_eq!(stats["actions"]["suspend"], 1);
    assert_eq!(stats["actions"]["escalate"], 1);
    assert_eq!(stats["median_time_to_action_ms"], 60_000);
    let shown = moderator.api().moderation_show(report_id).await.unwrap();
    assert_eq!(shown["actions"][0]["moderator"], "mod");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_suspension_survives_restart() {
    let dir = TempDir::new().unwrap();
    let clock = custos_clock::dangerous::simulated(START);
    let data = dir.path().join("server");
    let server = Server::start(&data, &clock).await;
    let mut alice = user(&dir, &server, &clock, "alice").await;
    let mut bob = user(&dir, &server, &clock, "bob").await;
    let moderator = user(&dir, &server, &clock, "mod").await;
    custos_server::moderation::add_moderator(&data, "mod")
        .await
        .unwrap();
    let (conv, ids) = exchange(&mut alice, &mut bob).await;
    let id = bob.report(&conv, &ids[2], "threat", 0).await.unwrap();
    moderator
        .api()
        .moderation_resolve(id, "suspend", "permanent", None)
        .await
        .unwrap();
    let addr = server.url.trim_start_matches("http://").to_owned();
    server.stop().await;
    let server = Server::start_on(&data, &clock, &addr, None).await;
    clock.advance_days(400);
    let mut alice = Device::open(&dir.path().join("alice"), clock.shared())
        .await
        .unwrap();
    let e = alice.send_text(&conv, "hi").await.unwrap_err().to_string();
    assert!(e.contains("suspended permanently"), "{e}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn package_carries_the_log_proof_of_the_franking_key_and_verifies_with_the_log_only() {
    let dir = TempDir::new().unwrap();
    // The key's valid_from is its file's (real) creation time.
    let clock = custos_clock::dangerous::simulated(custos_clock::system().now_millis());
    let log = Log::start(dir.path()).await;
    let data = dir.path().join("server");
    let server = Server::start_on(&data, &clock, "127.0.0.1:0", Some(log.config())).await;
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
    let mut alice = user(&dir, &server, &clock, "alice").await;
    let mut bob = user(&dir, &server, &clock, "bob").await;
    let moderator = user(&dir, &server, &clock, "mod").await;
    custos_server::moderation::add_moderator(&data, "mod")
        .await
        .unwrap();
    // Tags are signed after the key's valid_from (its file's time, seconds).
    clock.advance_millis(2000);
    let (conv, ids) = exchange(&mut alice, &mut bob).await;
    let id = bob.report(&conv, &ids[1], "extortion", 1).await.unwrap();
    let esc = moderator
        .api()
        .moderation_resolve(id, "escalate", "court", None)
        .await
        .unwrap();
    let json = serde_json::to_string(&esc["package"]).unwrap();
    assert_eq!(esc["package"]["franking_key_log_proof"]["status"], "logged");

    // The package and the log's public trust policy are enough.
    let v = verify_package(&json, &log.policy()).unwrap();
    let logged = v.require_logged().unwrap();
    assert_eq!(logged.public_key, server.franking.public_key());
    assert_eq!(logged.provider, "provider.test");
    assert_eq!(logged.author, log.provider.verifying_key().to_bytes());
    assert_eq!(logged.witnesses.len(), 2);
    assert_eq!(v.message.sender, "alice");

    let package: ReportPackage = serde_json::from_str(&json).unwrap();
    let FrankingKeyLogProof::Logged(proof) = &package.franking_key_log_proof else {
        panic!("not logged");
    };
    let with = |f: &dyn Fn(&mut ReportPackage)| {
        let mut p = package.clone();
        f(&mut p);
        verify_package(&serde_json::to_string(&p).unwrap(), &log.policy())
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
            custos_server::package::KeyProofError::Checkpoint(_)
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
            custos_server::package::KeyProofError::Inclusion { .. }
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
            custos_server::package::KeyProofError::BadStatementSignature(_)
        ))
    ));
    // Claiming "pending" instead of the proof downgrades to unproven, never to ok-and-logged.
    let pending = with(&|p| p.franking_key_log_proof = FrankingKeyLogProof::Pending).unwrap();
    assert!(matches!(
        pending.require_logged(),
        Err(PackageError::UnprovenKey(UnprovenReason::Pending))
    ));

    // A restart reuses the stored proof for the same key (no second entry).
    let before = std::fs::read(&proof_file).unwrap();
    let addr = server.url.trim_start_matches("http://").to_owned();
    server.stop().await;
    let server = Server::start_on(&data, &clock, &addr, Some(log.config())).await;
    let again =
        custos_server::franking_log::publish_franking_key(&server.franking, &log.config(), &data)
            .await
            .unwrap();
    assert_eq!(&again, proof);
    assert_eq!(std::fs::read(&proof_file).unwrap(), before);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_key_that_is_not_a_provider_cannot_publish() {
    let dir = TempDir::new().unwrap();
    let clock = custos_clock::dangerous::simulated(START);
    let log = Log::start(dir.path()).await;
    let policy = FrankingPolicy::from_seed(&[7; 32], clock.shared());
    let mut config = log.config();
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
