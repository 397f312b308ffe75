//! Every bad input gets a clear JSON error with the right 4xx, and the
//! service keeps serving.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

use crate::common;

use common::*;
use custos_server::refusal::Refusal as _;
use custos_wire::ConversationId;
use custos_wire::envelope::MAX_ENVELOPE_LEN;
use custos_wire::frames::{ClientFrame, ItemKind};
use rand::{Rng, RngCore, SeedableRng};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn error_of(r: reqwest::Response) -> (StatusCode, Value) {
    let st = r.status();
    let body: Value = r.json().await.expect("error body is JSON");
    assert!(body["error"].is_string(), "{body}");
    assert!(body["message"].is_string(), "{body}");
    (st, body)
}

#[tokio::test]
async fn bad_envelopes_are_refused_with_clear_errors() {
    let server = TestServer::start().await;
    let alice = User::register(&server, "alice").await;
    let bob = User::register(&server, "bob").await;
    let eve = User::register(&server, "eve").await;
    let conv = alice.group_with(&[&bob]).await;
    let good = envelope(&conv, today(), b"ciphertext");

    // Tampered: a flipped length byte makes it undecodable.
    let mut tampered = good.clone();
    tampered[1 + 16 + 20 + 4 + 32] ^= 0x40;
    let (st, body) = alice
        .submit(&conv, ItemKind::Envelope, tampered)
        .await
        .unwrap_err();
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("malformed"))
    );
    // Trailing bytes, unknown version.
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(
        alice
            .submit(&conv, ItemKind::Envelope, trailing)
            .await
            .unwrap_err()
            .0,
        StatusCode::BAD_REQUEST
    );
    let mut v2 = good.clone();
    v2[0] = 2;
    let (st, body) = alice
        .submit(&conv, ItemKind::Envelope, v2.clone())
        .await
        .unwrap_err();
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let wire = custos_wire::envelope::Envelope::decode(&v2).unwrap_err();
    assert!(matches!(
        wire,
        custos_wire::WireError::UnsupportedVersion { version: 2, .. }
    ));
    let expected = custos_server::refusal::RequestRefusal::wire("envelope", &wire);
    assert_eq!(body["error"], expected.code(), "{body}");
    assert_eq!(body["message"], expected.to_string(), "{body}");
    // An announcement sent as an envelope.
    assert_eq!(
        alice
            .submit(&conv, ItemKind::Announcement, good.clone())
            .await
            .unwrap_err()
            .0,
        StatusCode::BAD_REQUEST
    );
    // Commits must use the commit endpoint.
    let (st, body) = alice
        .submit(&conv, ItemKind::Commit, good.clone())
        .await
        .unwrap_err();
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("wrong_kind"))
    );
    // An envelope for another conversation.
    let other = envelope(&ConversationId([1; 16]), today(), b"x");
    let (st, body) = alice
        .submit(&conv, ItemKind::Envelope, other)
        .await
        .unwrap_err();
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("conversation_mismatch"))
    );
    // Not a member.
    let (st, body) = eve
        .submit(&conv, ItemKind::Envelope, good.clone())
        .await
        .unwrap_err();
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_member"))
    );
    // Unknown conversation.
    let ghost = ConversationId([2; 16]);
    let (st, _) = alice
        .submit(&ghost, ItemKind::Envelope, envelope(&ghost, today(), b"x"))
        .await
        .unwrap_err();
    assert_eq!(st, StatusCode::NOT_FOUND);
    // Replay: accepted once, then 409.
    alice
        .submit(&conv, ItemKind::Envelope, good.clone())
        .await
        .unwrap();
    let (st, body) = alice
        .submit(&conv, ItemKind::Envelope, good.clone())
        .await
        .unwrap_err();
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("duplicate"))
    );
    // Oversized: an envelope one byte over 256 KiB, and a body far over.
    let ct = vec![0u8; MAX_ENVELOPE_LEN - (1 + 16 + 20 + 4 + 32 + 4 + 64) + 1];
    let mut big = envelope(&conv, today(), &[]);
    big.truncate(1 + 16 + 20 + 4 + 32);
    big.extend_from_slice(&u32::try_from(ct.len()).unwrap().to_be_bytes());
    big.extend_from_slice(&ct);
    big.extend_from_slice(&[0; 64]);
    assert_eq!(big.len(), MAX_ENVELOPE_LEN + 1);
    let mut frame = vec![1u8, 1];
    frame.extend_from_slice(&1u64.to_be_bytes());
    frame.push(1);
    frame.extend_from_slice(&conv.0);
    frame.extend_from_slice(&u32::try_from(big.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(&big);
    let (st, body) = error_of(alice.submit_raw(&conv, frame).await).await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("too_large"))
    );
    let (st, _) = error_of(alice.submit_raw(&conv, vec![0; 2 * 1024 * 1024]).await).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
    // An envelope of exactly 256 KiB is fine.
    let ct = vec![7u8; MAX_ENVELOPE_LEN - (1 + 16 + 20 + 4 + 32 + 4 + 64)];
    let max = envelope(&conv, today(), &ct);
    assert_eq!(max.len(), MAX_ENVELOPE_LEN);
    alice.submit(&conv, ItemKind::Envelope, max).await.unwrap();
    // Oversized JSON.
    let r = alice
        .http
        .post(format!("{}/v1/key-packages", server.url))
        .bearer_auth(&alice.token)
        .body(vec![b' '; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    // Unknown JSON fields are refused.
    let (st, body) = alice
        .post_json(
            "/v1/conversations",
            json!({"conversation": "00".repeat(16), "extra": 1}),
        )
        .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_json"))
    );
    assert!(server.health().await);
    server.stop().await;
}

/// A load balancer's probes answer without a session: the process is live,
/// and ready while its database answers and its writer runs.
#[tokio::test]
async fn liveness_and_readiness_answer_without_a_session() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    for (path, status) in [("/healthz", "ok"), ("/readyz", "ready")] {
        let r = http
            .get(format!("{}{path}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["status"], status, "{path}");
    }
    server.stop().await;
}

/// Every route and method the API has.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/health"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("POST", "/v1/accounts"),
    ("POST", "/v1/auth/challenge"),
    ("POST", "/v1/auth/session"),
    ("POST", "/v1/key-packages"),
    ("POST", "/v1/key-packages/claim"),
    ("GET", "/v1/key-packages/count"),
    ("POST", "/v1/conversations"),
    ("GET", "/v1/conversations"),
    ("POST", "/v1/conversations/{id}/commits"),
    ("POST", "/v1/conversations/{id}/items"),
    ("GET", "/v1/mailbox"),
    ("POST", "/v1/mailbox/ack"),
    ("GET", "/v1/ws"),
];

#[tokio::test]
async fn random_bytes_on_every_endpoint_get_json_4xx() {
    let server = TestServer::start().await;
    let alice = User::register(&server, "alice").await;
    let bob = User::register(&server, "bob").await;
    let conv = alice.group_with(&[&bob]).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x00C0_5705);
    let http = reqwest::Client::new();
    for round in 0..12 {
        for (method, path) in ROUTES {
            let path = path.replace("{id}", &conv.to_hex());
            let len = match round % 4 {
                0 => 0,
                1 => rng.gen_range(1..64),
                2 => rng.gen_range(64..4096),
                _ => rng.gen_range(4096..70_000),
            };
            let mut body = vec![0u8; len];
            rng.fill_bytes(&mut body);
            if round % 3 == 2 && !body.is_empty() {
                // Random bytes behind a valid-looking prefix.
                body[0] = if path.ends_with("items") { 1 } else { b'{' };
            }
            for authed in [false, true] {
                let url = format!("{}{}", server.url, path);
                let req = match *method {
                    "GET" => http.get(&url),
                    _ => http.post(&url),
                };
                let req = if authed {
                    req.bearer_auth(&alice.token)
                } else {
                    req
                };
                let r = req.body(body.clone()).send().await.unwrap();
                let st = r.status();
                if ["/v1/health", "/healthz", "/readyz"].contains(&path.as_str()) {
                    assert_eq!(st, StatusCode::OK);
                    continue;
                }
                if *method == "GET" && authed && path != "/v1/ws" {
                    // GETs ignore bodies; they must still answer sensibly.
                    assert!(st.is_success(), "{method} {path}: {st}");
                    continue;
                }
                assert!(
                    st.is_client_error(),
                    "{method} {path} authed={authed} len={len}: {st}"
                );
                let (_, _) = error_of(r).await;
            }
        }
        // Random bytes over the WebSocket: refused, socket stays open.
        let mut ws = alice.ws().await;
        let mut body = vec![0u8; rng.gen_range(0..2000)];
        rng.fill_bytes(&mut body);
        use futures_util::SinkExt;
        ws.send(tokio_tungstenite::tungstenite::Message::Binary(body.into()))
            .await
            .unwrap();
        loop {
            match next_frame(&mut ws).await {
                custos_wire::frames::ServerFrame::Refused {
                    request_id: 0,
                    status,
                    ..
                } => {
                    assert!((400..500).contains(&status));
                    break;
                }
                custos_wire::frames::ServerFrame::Delivery(_) => continue,
                other => panic!("{other:?}"),
            }
        }
        send_frame(
            &mut ws,
            &ClientFrame::Ack {
                seqs: vec![u64::MAX],
            },
        )
        .await;
    }
    // Wrong methods and unknown paths: JSON errors too.
    let r = http
        .delete(format!("{}/v1/accounts", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.0, StatusCode::METHOD_NOT_ALLOWED);
    let r = http
        .get(format!("{}/v1/nope", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.0, StatusCode::NOT_FOUND);
    let r = http
        .get(format!("{}/v1/mailbox?after=-1", server.url))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.0, StatusCode::BAD_REQUEST);
    let r = http
        .post(format!("{}/v1/conversations/zz/items", server.url))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.0, StatusCode::BAD_REQUEST);
    // Still serving real traffic.
    assert!(server.health().await);
    alice
        .submit(
            &conv,
            ItemKind::Envelope,
            envelope(&conv, today(), b"still here"),
        )
        .await
        .unwrap();
    assert_eq!(bob.fetch(0).await.len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn bad_tokens_are_401_and_rates_are_limited() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = test_config(tmp.path());
    config.limits.account_rate = custos_server::RateLimit {
        per_second: 1,
        burst: 5,
    };
    let server = TestServer::start_with(config, custos_clock::dangerous::simulated(START_MS)).await;
    let alice = User::register(&server, "alice").await;
    for token in [
        "",
        "not-hex",
        &"ab".repeat(31),
        &"ab".repeat(32),
        &"ab".repeat(33),
    ] {
        let r = alice
            .http
            .get(format!("{}/v1/conversations", server.url))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        let (st, body) = error_of(r).await;
        assert_eq!(
            (st, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("unauthorized"))
        );
    }
    let r = alice
        .http
        .get(format!("{}/v1/conversations", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.0, StatusCode::UNAUTHORIZED);
    // Past the burst: 429 with Retry-After.
    let mut limited = None;
    for _ in 0..10 {
        let r = alice
            .http
            .get(format!("{}/v1/conversations", server.url))
            .bearer_auth(&alice.token)
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("rate limit reached");
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert_eq!(error_of(r).await.1["error"], "rate_limited");
    assert!(server.health().await);
    drop(server.stop().await);
    drop(tmp);
}

#[tokio::test]
async fn a_suspended_account_is_refused_by_the_policy_hook() {
    use custos_server::policy::{AdmitRefusal, DeliveryPolicy, Sender, TagInput};
    #[derive(Debug)]
    struct SuspendEve;
    impl DeliveryPolicy for SuspendEve {
        fn admit(&self, sender: &Sender<'_>) -> Result<(), AdmitRefusal> {
            if sender.name == "eve" {
                Err(AdmitRefusal::Suspended {
                    account: sender.name.into(),
                    until: None,
                })
            } else {
                Ok(())
            }
        }
        fn tag_batch(&self, inputs: &[TagInput<'_>]) -> Vec<Vec<u8>> {
            inputs
                .iter()
                .map(|input| {
                    let mut t = input.item_hash.to_vec();
                    t.extend_from_slice(&input.server_time.to_be_bytes());
                    t
                })
                .collect()
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut config = test_config(tmp.path());
    config.policy = std::sync::Arc::new(SuspendEve);
    let server = TestServer::start_with(config, custos_clock::dangerous::simulated(START_MS)).await;
    let alice = User::register(&server, "alice").await;
    let eve = User::register(&server, "eve").await;
    let conv = alice.group_with(&[&eve]).await;
    let env = envelope(&conv, today(), b"tagged");
    let accepted = alice
        .submit(&conv, ItemKind::Envelope, env.clone())
        .await
        .unwrap();
    let custos_wire::frames::ServerFrame::Accepted { tag, .. } = accepted else {
        panic!()
    };
    assert_eq!(tag.len(), 40);
    // The tag is stored and delivered with the item.
    let got = eve.fetch(0).await;
    assert_eq!(got.last().unwrap().tag, tag);
    let (st, body) = eve
        .submit(&conv, ItemKind::Envelope, envelope(&conv, today(), b"x"))
        .await
        .unwrap_err();
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("suspended"))
    );
    let (st, _, _) = eve.change(&conv, &[], &[], &[&alice]).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    drop(server.stop().await);
}

/// A policy that answers `tag_batch` with the wrong number of tags, or with
/// a tag too long to deliver, fails those submissions with a 500 (nothing is
/// stored), and the service goes on.
#[tokio::test]
async fn a_policy_that_breaks_the_tag_contract_fails_the_submission_only() {
    use custos_server::policy::{AdmitRefusal, DeliveryPolicy, Sender, TagInput};
    #[derive(Debug)]
    struct Broken;
    impl DeliveryPolicy for Broken {
        fn admit(&self, _sender: &Sender<'_>) -> Result<(), AdmitRefusal> {
            Ok(())
        }
        fn tag_batch(&self, inputs: &[TagInput<'_>]) -> Vec<Vec<u8>> {
            // "short" bodies get no tag at all (wrong count); others a tag
            // longer than MAX_TAG_LEN.
            inputs
                .iter()
                .filter(|i| i.server_time % 2 == 0)
                .map(|_| vec![0; custos_wire::frames::MAX_TAG_LEN + 1])
                .collect()
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut config = test_config(tmp.path());
    config.policy = std::sync::Arc::new(Broken);
    let clock = custos_clock::dangerous::simulated(START_MS);
    let server = TestServer::start_with(config, clock.clone()).await;
    let alice = User::register(&server, "alice").await;
    let bob = User::register(&server, "bob").await;
    let conv = alice.group_with(&[&bob]).await;
    for parity in [1u64, 0] {
        // The acceptance time's parity picks the breach: odd, no tag (wrong
        // count); even, a tag too long.
        if custos_clock::Clock::now_millis(&clock) % 2 != parity {
            clock.advance_millis(1);
        }
        let body = format!("parity {parity}");
        let (st, err) = alice
            .submit(
                &conv,
                ItemKind::Envelope,
                envelope(&conv, today(), body.as_bytes()),
            )
            .await
            .unwrap_err();
        assert_eq!(st, StatusCode::INTERNAL_SERVER_ERROR, "{err}");
    }
    assert!(
        bob.fetch(0)
            .await
            .iter()
            .all(|d| d.kind != ItemKind::Envelope)
    );
    assert!(server.health().await);
    drop(server.stop().await);
}

/// The clear header of an MLS PrivateMessage (RFC 9420 §6.3) followed by
/// opaque bytes standing in for the encrypted part.
fn mls_private_message(conv: &ConversationId, epoch: u64, content_type: u8) -> Vec<u8> {
    let mut b = vec![0, 1, 0, 2, 16];
    b.extend_from_slice(&conv.0);
    b.extend_from_slice(&epoch.to_be_bytes());
    b.push(content_type);
    b.extend_from_slice(&[0x5a; 40]);
    b
}

#[tokio::test]
async fn proposals_are_verified_and_ordered_by_epoch_like_commits() {
    let server = TestServer::start().await;
    let alice = User::register(&server, "alice").await;
    let bob = User::register(&server, "bob").await;
    let carol = User::register(&server, "carol").await;
    let conv = alice.group_with(&[&bob, &carol]).await; // now at epoch 1
    let other = alice.group_with(&[&bob]).await;

    // Garbage, encrypted proposals (the service cannot verify them), a
    // commit sent as a proposal, another group's proposal.
    let update = alice.mls.self_update(&conv);
    alice.mls.settle_own(&conv, false);
    let foreign = bob.mls.leave(&other);
    let refused = [
        (
            b"garbage".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_proposal",
        ),
        (
            mls_private_message(&conv, 1, 2),
            StatusCode::BAD_REQUEST,
            "invalid_proposal",
        ),
        (
            update.commit.clone(),
            StatusCode::BAD_REQUEST,
            "invalid_proposal",
        ),
        (foreign, StatusCode::BAD_REQUEST, "invalid_proposal"),
    ];
    for (body, status, code) in refused {
        let (st, json) = bob
            .submit(&conv, ItemKind::Proposal, body)
            .await
            .unwrap_err();
        assert_eq!((st, json["error"].as_str()), (status, Some(code)), "{json}");
    }
    // Another member's proposal, replayed by Carol, is refused: the
    // signer must be the caller.
    let leave = bob.mls.leave(&conv);
    let (st, json) = carol
        .submit(&conv, ItemKind::Proposal, leave.clone())
        .await
        .unwrap_err();
    assert_eq!(
        (st, json["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_proposal")),
        "{json}"
    );
    // Bob's own proposal to leave is accepted and reaches the others.
    bob.submit(&conv, ItemKind::Proposal, leave.clone())
        .await
        .unwrap();
    let got = alice.fetch(0).await;
    assert_eq!(got.last().map(|d| d.kind), Some(ItemKind::Proposal));
    // Alice commits it (by reference: the service has it queued); Bob is
    // no longer a member.
    alice.mls.take_proposal(&conv, &leave);
    let commit = alice.mls.commit_pending(&conv);
    let (st, body) = alice.commit(&conv, &commit).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    alice.mls.settle_own(&conv, true);
    let (_, list) = alice.get_json("/v1/conversations").await;
    let members: Vec<&Value> = list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["conversation"] == conv.to_hex())
        .map(|c| &c["members"])
        .collect();
    assert_eq!(members, vec![&json!(["alice", "carol"])]);
    // After the commit, a proposal for the old epoch is stale.
    let (st, json) = carol
        .submit(&conv, ItemKind::Proposal, carol.mls.leave(&conv))
        .await
        .unwrap_err();
    assert_eq!(
        (st, json["error"].as_str()),
        (StatusCode::CONFLICT, Some("stale_epoch"))
    );
    drop(server.stop().await);
}

#[tokio::test]
async fn weak_identity_keys_are_refused_at_registration() {
    use base64::Engine as _;
    let server = TestServer::start().await;
    let probe = User::register(&server, "probe").await;
    // The all-zero encoding, the identity point, and a point of order 8
    // (small-order points verify signatures anyone can make).
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut order_eight = [0u8; 32];
    order_eight.copy_from_slice(
        &hex::decode("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a").unwrap(),
    );
    for (i, key) in [[0u8; 32], identity, order_eight].iter().enumerate() {
        let name = format!("weak{i}");
        let (st, body) = probe
            .post_json(
                "/v1/accounts",
                json!({"name": name, "identity_key": base64::engine::general_purpose::STANDARD.encode(key)}),
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"], "bad_key", "{body}");
        let (st, _) = probe
            .post_json("/v1/auth/challenge", json!({"name": name}))
            .await;
        assert_eq!(st, StatusCode::NOT_FOUND, "a refused key registers nothing");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_session_token_has_one_canonical_form() {
    let server = TestServer::start().await;
    let alice = User::register(&server, "alice").await;
    let get = |token: String| {
        let alice = &alice;
        async move {
            alice
                .http
                .get(format!("{}/v1/conversations", alice.base))
                .header("authorization", format!("Bearer {token}"))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(get(alice.token.clone()).await.status(), StatusCode::OK);
    let (st, body) = error_of(get(alice.token.to_uppercase()).await).await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    server.stop().await;
}

#[tokio::test]
async fn requesting_challenges_cannot_lock_anyone_out() {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;
    let tmp = tempfile::tempdir().unwrap();
    let mut config = test_config(tmp.path());
    config.limits.max_challenges = 8;
    let server = TestServer::start_with(config, custos_clock::dangerous::simulated(START_MS)).await;
    let mut alice = User::register(&server, "alice").await;
    let mallory = User::register(&server, "mallory").await;
    // Mallory asks for many challenges in her own and in alice's name, and
    // answers alice's wrongly.
    for i in 0..200 {
        let name = if i % 2 == 0 { "alice" } else { "mallory" };
        let (st, ch) = mallory
            .post_json("/v1/auth/challenge", json!({"name": name}))
            .await;
        assert_eq!(st, StatusCode::OK, "{ch}");
        if name == "alice" {
            let req = json!({"name": "alice", "challenge": ch["challenge"], "signature": B64.encode([7u8; 64])});
            let (st, body) = mallory.post_json("/v1/auth/session", req).await;
            assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");
        }
    }
    // Alice still logs in, and her answered challenge is not accepted twice.
    alice.login().await;
    let (_, ch) = alice
        .post_json("/v1/auth/challenge", json!({"name": "alice"}))
        .await;
    let c: [u8; 32] = B64
        .decode(ch["challenge"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    use ed25519_dalek::Signer as _;
    let sig = alice
        .key
        .sign(&custos_server::challenge_message("alice", &c));
    let req = json!({"name": "alice", "challenge": ch["challenge"], "signature": B64.encode(sig.to_bytes())});
    assert_eq!(
        alice.post_json("/v1/auth/session", req.clone()).await.0,
        StatusCode::OK
    );
    assert_eq!(
        alice.post_json("/v1/auth/session", req).await.0,
        StatusCode::UNAUTHORIZED
    );
    // A challenge issued for mallory does not log in as alice.
    let (_, ch) = mallory
        .post_json("/v1/auth/challenge", json!({"name": "mallory"}))
        .await;
    let c: [u8; 32] = B64
        .decode(ch["challenge"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let sig = alice
        .key
        .sign(&custos_server::challenge_message("alice", &c));
    let req = json!({"name": "alice", "challenge": ch["challenge"], "signature": B64.encode(sig.to_bytes())});
    assert_eq!(
        alice.post_json("/v1/auth/session", req).await.0,
        StatusCode::UNAUTHORIZED
    );
    server.stop().await;
}

#[tokio::test]
async fn path_and_body_refusals_are_json() {
    let server = TestServer::start().await;
    let alice = User::register(&server, "alice").await;
    for path in [
        "/v1/moderation/reports/abc",
        "/v1/moderation/reports/99999999999999999999",
        "/v1/moderation/reports?status=1&status=2",
    ] {
        let r = alice
            .http
            .get(format!("{}{path}", server.url))
            .bearer_auth(&alice.token)
            .send()
            .await
            .unwrap();
        let (st, body) = error_of(r).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{path}: {body}");
    }
    let r = alice
        .http
        .post(format!("{}/v1/reports", server.url))
        .bearer_auth(&alice.token)
        .body(vec![0u8; custos_wire::report::MAX_REPORT_LEN + 4096])
        .send()
        .await
        .unwrap();
    let (st, body) = error_of(r).await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("too_large")),
        "{body}"
    );
    assert!(server.health().await);
    server.stop().await;
}

#[tokio::test]
async fn the_websocket_takes_its_token_in_the_header_only() {
    let server = TestServer::start().await;
    let alice = User::register(&server, "alice").await;
    // In the URL (where proxies log it): refused.
    let url = format!(
        "{}/v1/ws?token={}",
        server.url.replace("http://", "ws://"),
        alice.token
    );
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        }
        Err(e) => panic!("expected 401, got {e}"),
        Ok(_) => panic!("a token in the URL must be refused"),
    }
    // In the Authorization header: accepted.
    let _ws = alice.ws().await;
    server.stop().await;
}
