//! Membership comes from verified MLS commits only: the
//! service keeps each group's public state, refuses commits that do not
//! apply, ignores what a committer claims, and keeps the state across a
//! restart.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

use crate::common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::*;
use custos_clock::dangerous;
use custos_wire::ConversationId;
use custos_wire::frames::ItemKind;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn members_seen_by(user: &User, conv: &ConversationId) -> Option<Value> {
    let (st, list) = user.get_json("/v1/conversations").await;
    assert_eq!(st, StatusCode::OK);
    list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["conversation"] == conv.to_hex())
        .map(|c| c["members"].clone())
}

fn error_of(r: &(StatusCode, Value)) -> (StatusCode, Option<&str>) {
    (r.0, r.1["error"].as_str())
}

const INVALID_COMMIT: (StatusCode, Option<&str>) =
    (StatusCode::BAD_REQUEST, Some("invalid_commit"));

#[tokio::test]
async fn a_members_garbage_commit_is_refused_and_nobody_is_locked_out() {
    let server = TestServer::start().await;
    let alice = User::register(&server, "alice").await;
    let bob = User::register(&server, "bob").await;
    let carol = User::register(&server, "carol").await;
    let conv = alice.group_with(&[&bob, &carol]).await;
    let other = bob.group_with(&[&carol]).await;

    // Garbage, a real commit with one byte changed (its signature no longer
    // verifies), another group's commit, and a member replaying another
    // member's commit: all refused, and the epoch stays.
    let r = bob.commit_raw(&conv, 1, b"lock everyone out", None).await;
    assert_eq!(error_of(&r), INVALID_COMMIT, "{}", r.1);
    let mut tampered = bob.mls.self_update(&conv);
    bob.mls.settle_own(&conv, false);
    let n = tampered.commit.len();
    tampered.commit[n - 80] ^= 1;
    let r = bob.commit(&conv, &tampered).await;
    assert_eq!(error_of(&r), INVALID_COMMIT, "{}", r.1);
    let foreign = bob.mls.self_update(&other);
    bob.mls.settle_own(&other, false);
    let r = bob
        .commit_raw(&conv, 1, &foreign.commit, foreign.welcome.as_deref())
        .await;
    assert_eq!(error_of(&r), INVALID_COMMIT, "{}", r.1);
    let alices = alice.mls.self_update(&conv);
    let r = bob.commit(&conv, &alices).await;
    assert_eq!(error_of(&r), INVALID_COMMIT, "{}", r.1);
    alice.mls.settle_own(&conv, false);
    // A commit whose stated epoch is not its own.
    let update = bob.mls.self_update(&conv);
    let r = bob.commit_raw(&conv, 2, &update.commit, None).await;
    assert_eq!(error_of(&r), INVALID_COMMIT, "{}", r.1);
    bob.mls.settle_own(&conv, false);

    // Nobody was locked out: the members and the epoch are as before,
    // messages flow, and a real commit still applies.
    for u in [&alice, &bob, &carol] {
        assert_eq!(
            members_seen_by(u, &conv).await,
            Some(json!(["alice", "bob", "carol"]))
        );
    }
    let env = envelope(&conv, today(), b"still here");
    alice
        .submit(&conv, ItemKind::Envelope, env.clone())
        .await
        .unwrap();
    assert!(bob.fetch(0).await.iter().any(|d| d.body == env));
    assert!(carol.fetch(0).await.iter().any(|d| d.body == env));
    let (st, body, _) = carol.change(&conv, &[], &[], &[&alice, &bob]).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["epoch"], 2);
    drop(server.stop().await);
}

#[tokio::test]
async fn an_outsider_claimed_in_the_members_field_does_not_become_a_member() {
    let server = TestServer::start().await;
    let alice = User::register(&server, "alice").await;
    let bob = User::register(&server, "bob").await;
    let mallory = User::register(&server, "mallory").await;
    let conv = alice.group_with(&[&bob]).await;
    // A valid commit (a self-update) that says, beside MLS, that Mallory is
    // a member now.
    let staged = alice.mls.self_update(&conv);
    let (st, body) = alice
        .post_json(
            &format!("/v1/conversations/{conv}/commits"),
            json!({
                "epoch": staged.epoch,
                "commit": B64.encode(&staged.commit),
                "members": ["alice", "bob", "mallory"],
            }),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    alice.mls.settle_own(&conv, true);
    bob.mls.follow(&conv, &staged);
    // A Welcome "for" Mallory with a commit that adds nobody is refused.
    let update = alice.mls.self_update(&conv);
    let r = alice
        .commit_raw(
            &conv,
            update.epoch,
            &update.commit,
            Some(b"welcome mallory"),
        )
        .await;
    assert_eq!(
        error_of(&r),
        (StatusCode::BAD_REQUEST, Some("unexpected_welcome"))
    );
    alice.mls.settle_own(&conv, false);
    // Mallory is not a member: she does not see the conversation, gets no
    // ciphertext, and cannot post.
    assert_eq!(members_seen_by(&mallory, &conv).await, None);
    assert_eq!(
        members_seen_by(&alice, &conv).await,
        Some(json!(["alice", "bob"]))
    );
    let env = envelope(&conv, today(), b"not for mallory");
    alice
        .submit(&conv, ItemKind::Envelope, env.clone())
        .await
        .unwrap();
    assert!(bob.fetch(0).await.iter().any(|d| d.body == env));
    assert!(mallory.fetch(0).await.is_empty());
    let (st, body) = mallory
        .submit(&conv, ItemKind::Envelope, envelope(&conv, today(), b"x"))
        .await
        .unwrap_err();
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_member"))
    );
    drop(server.stop().await);
}

#[tokio::test]
async fn creation_derives_members_from_a_verified_group() {
    let server = TestServer::start().await;
    let alice = User::register(&server, "alice").await;
    let bob = User::register(&server, "bob").await;
    let fresh = || {
        let mut id = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        ConversationId(id)
    };
    let invalid = (StatusCode::BAD_REQUEST, Some("invalid_group_state"));
    // A GroupInfo of another group than the conversation named.
    let (c1, c2) = (fresh(), fresh());
    let (info, tree) = alice.mls.create(&c1);
    let r = alice.create_raw(&c2, &info, &tree).await;
    assert_eq!(error_of(&r), invalid, "{}", r.1);
    // A tree that is not the GroupInfo's, or garbage.
    let (_, other_tree) = bob.mls.create(&c2);
    let r = alice.create_raw(&c1, &info, &other_tree).await;
    assert_eq!(error_of(&r), invalid, "{}", r.1);
    let r = alice.create_raw(&c1, b"garbage", &tree).await;
    assert_eq!(error_of(&r), invalid, "{}", r.1);
    // A leaf that names Bob but carries Alice's key; a leaf naming no account.
    let c3 = fresh();
    let (info, tree) = alice.mls.create_named(&c3, "bob");
    let r = alice.create_raw(&c3, &info, &tree).await;
    assert_eq!(error_of(&r), invalid, "{}", r.1);
    let c4 = fresh();
    let (info, tree) = alice.mls.create_named(&c4, "nobody");
    let r = alice.create_raw(&c4, &info, &tree).await;
    assert_eq!(error_of(&r), invalid, "{}", r.1);
    // Bob's real group uploaded by Alice: she is not a member of it.
    let c5 = fresh();
    let (info, tree) = bob.mls.create(&c5);
    let r = alice.create_raw(&c5, &info, &tree).await;
    assert_eq!(error_of(&r), invalid, "{}", r.1);
    // The real thing.
    let c6 = fresh();
    let (info, tree) = alice.mls.create(&c6);
    let r = alice.create_raw(&c6, &info, &tree).await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    assert_eq!(members_seen_by(&alice, &c6).await, Some(json!(["alice"])));
    drop(server.stop().await);
}

#[tokio::test]
async fn a_restart_keeps_the_public_state() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = dangerous::simulated(START_MS);
    let server = TestServer::start_with(test_config(tmp.path()), clock.clone()).await;
    let mut alice = User::register(&server, "alice").await;
    let mut bob = User::register(&server, "bob").await;
    let mut carol = User::register(&server, "carol").await;
    let conv = alice.group_with(&[&bob]).await;
    let (st, body, epoch_one) = bob.change(&conv, &[], &[], &[&alice]).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    drop(server.stop().await);

    let server = TestServer::start_with(test_config(tmp.path()), clock.clone()).await;
    for u in [&mut alice, &mut bob, &mut carol] {
        u.base = server.url.clone();
        u.login().await;
    }
    // The commit of the old epoch is stale, a garbage one refused, and real
    // commits still verify against the state kept on disk.
    let r = bob.commit(&conv, &epoch_one).await;
    assert_eq!(r.0, StatusCode::CONFLICT, "{}", r.1);
    let r = bob.commit_raw(&conv, 2, b"garbage", None).await;
    assert_eq!(error_of(&r), INVALID_COMMIT, "{}", r.1);
    let (st, body, _) = alice.change(&conv, &[&carol], &[], &[&bob]).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["epoch"], 3);
    let (st, body, _) = carol.change(&conv, &[], &["bob"], &[&alice, &bob]).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(
        members_seen_by(&alice, &conv).await,
        Some(json!(["alice", "carol"]))
    );
    drop(server.stop().await);
}
