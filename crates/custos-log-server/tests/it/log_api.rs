//! The log server end to end: admission, refusals, proofs, tiles, audit.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: a failure is a test failure"
)]

use crate::common;

use common::*;
use custos_tlog::checkpoint::parse_checkpoint;
use custos_tlog::merkle::{TILE_WIDTH, TilePath};
use custos_tlog::{ClientError, LogClient, verify_inclusion};
use custos_wire::statement::{STATEMENT_SIGNING_LABEL, SignedStatement};

/// The size of the checkpoint the log serves, once it has settled: with a
/// witness, the served checkpoint is the latest cosigned one, which follows
/// the sequencer by one witness round trip.
async fn size_of(client: &LogClient) -> u64 {
    let read = || async {
        parse_checkpoint(&client.checkpoint().await.unwrap())
            .unwrap()
            .checkpoint
            .size()
    };
    let mut last = read().await;
    for _ in 0..25 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let now = read().await;
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

fn refused(r: Result<custos_tlog::Submission, ClientError>) -> (u16, String) {
    match r {
        Err(ClientError::Refused {
            status,
            code,
            message,
        }) => {
            assert!(!message.is_empty());
            (status, code)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn submissions_are_proven_and_bad_inputs_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Deployment::new(0);
    let (url, _, manifest) = d.start(tmp.path(), 0).await;
    let client = LogClient::new(&url).unwrap();
    let policy = d.log_only_policy();

    let statements = [
        release(&d.custodian, 1),
        erasure(&d.custodian, 20_000),
        commitment(&d.authority),
        franking(&d.provider),
    ];
    for (i, st) in statements.iter().enumerate() {
        let sub = client.submit(st).await.unwrap();
        assert_eq!(sub.index, i as u64);
        let cp = policy.verify_checkpoint(&sub.checkpoint).unwrap();
        verify_inclusion(&cp, sub.index, &st.encode().unwrap(), &sub.inclusion_proof).unwrap();
    }
    // A duplicate gets the existing index and does not grow the log.
    let again = client.submit(&statements[1]).await.unwrap();
    assert_eq!(again.index, 1);
    assert_eq!(size_of(&client).await, 4);

    let good = release(&d.custodian, 2).encode().unwrap();
    let mut forged = good.clone();
    *forged.last_mut().unwrap() ^= 1;
    let outsider = release(&d.outsider, 1).encode().unwrap();
    let wrong_role = release(&d.provider, 1).encode().unwrap();
    let authority_release = release(&d.authority, 1).encode().unwrap();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("forged signature", forged, 403, "bad_signature"),
        ("unknown author", outsider, 403, "unknown_author"),
        (
            "provider publishing a release",
            wrong_role,
            403,
            "role_not_allowed",
        ),
        (
            "authority publishing a release",
            authority_release,
            403,
            "role_not_allowed",
        ),
        (
            "truncated",
            good[..good.len() - 1].to_vec(),
            400,
            "malformed_statement",
        ),
        ("empty", Vec::new(), 400, "malformed_statement"),
        ("oversized", vec![1u8; 70_000], 413, "too_large"),
        (
            "trailing byte",
            [good.clone(), vec![0]].concat(),
            400,
            "malformed_statement",
        ),
    ];
    for (name, body, status, code) in cases {
        let (s, c) = refused(client.submit_raw(body).await);
        assert_eq!((s, c.as_str()), (status, code), "{name}");
        assert_eq!(size_of(&client).await, 4, "{name} changed the log");
    }
    // The good one still goes in afterwards.
    assert_eq!(client.submit_raw(good).await.unwrap().index, 4);

    // Tiles and entry bundles follow C2SP tlog-tiles.
    let entries = client.entries(0, 5).await.unwrap();
    assert_eq!(entries[0], statements[0].encode().unwrap());
    SignedStatement::decode(&entries[4]).unwrap();
    let http = reqwest::Client::new();
    let tile = http
        .get(format!("{url}/tile/0/000.p/5"))
        .send()
        .await
        .unwrap();
    assert_eq!(tile.status(), 200);
    let tile = tile.bytes().await.unwrap();
    assert_eq!(&tile[..32], &tlog_tiles::record_hash(&entries[0]).0);
    for bad in [
        "tile/0/000.p/6",
        "tile/0/000",
        "tile/0/5",
        "tile/99/000",
        "tile/entries/001",
    ] {
        let r = http.get(format!("{url}/{bad}")).send().await.unwrap();
        assert_eq!(r.status(), 404, "{bad}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "not_found");
    }
    let r = http
        .get(format!("{url}/proof/inclusion?index=9&size=5"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Every refusal is JSON: queries that do not parse, unknown paths and
    // wrong methods included.
    for (post, path, status, code) in [
        (false, "proof/inclusion?index=x&size=5", 400, "bad_query"),
        (false, "proof/consistency?old=1", 400, "bad_query"),
        (
            false,
            "proof/inclusion?index=1&size=99999999999999999999",
            400,
            "bad_query",
        ),
        (false, "no/such/endpoint", 404, "not_found"),
        (true, "checkpoint", 405, "method_not_allowed"),
        (false, "add-statement", 405, "method_not_allowed"),
    ] {
        let req = if post {
            http.post(format!("{url}/{path}"))
        } else {
            http.get(format!("{url}/{path}"))
        };
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), status, "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], code, "{path}: {body}");
        assert!(body["message"].is_string(), "{path}: {body}");
    }
    assert_eq!(TilePath::parse("entries/000.p/5").unwrap().width, 5);
    assert_eq!(TILE_WIDTH, 256);

    // The audit replays everything. The manifest's witness is not running,
    // so the audit reports the checkpoint's missing quorum, and nothing else.
    let report = custos_tlog::audit::audit(&client, &manifest).await.unwrap();
    assert!(
        report.root_matches && report.bad_entries.is_empty(),
        "{report:?}"
    );
    assert!(report.checkpoint_error.is_some(), "{report:?}");
    assert_eq!(report.tree_size, 5);
    assert_eq!(report.counts["key_release"], 2);
    assert_eq!(report.counts["warrant_commitment"], 1);
    assert_eq!(report.counts["provider_franking_key"], 1);
    assert_eq!(report.counts["day_key_erasure"], 1);
}

#[tokio::test]
async fn concurrent_submissions_are_batched_and_all_proven() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Deployment::new(0);
    let (url, _, _) = d.start(tmp.path(), 0).await;
    let client = LogClient::new(&url).unwrap();
    let policy = d.log_only_policy();
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let client = client.clone();
        let st = erasure(&d.custodian, i);
        tasks.push(tokio::spawn(async move {
            let sub = client.submit(&st).await.unwrap();
            (st, sub)
        }));
    }
    let mut indexes = Vec::new();
    for t in tasks {
        let (st, sub) = t.await.unwrap();
        let cp = policy.verify_checkpoint(&sub.checkpoint).unwrap();
        verify_inclusion(&cp, sub.index, &st.encode().unwrap(), &sub.inclusion_proof).unwrap();
        indexes.push(sub.index);
    }
    indexes.sort_unstable();
    assert_eq!(indexes, (0..200).collect::<Vec<u64>>());
}

#[tokio::test]
async fn batch_submission_is_all_or_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Deployment::new(0);
    let (url, _, _) = d.start(tmp.path(), 0).await;
    let client = LogClient::new(&url).unwrap();
    let policy = d.log_only_policy();
    let batch: Vec<_> = (0..10).map(|i| erasure(&d.custodian, i)).collect();
    let subs = client.submit_batch(&batch).await.unwrap();
    for (st, sub) in batch.iter().zip(&subs) {
        let cp = policy.verify_checkpoint(&sub.checkpoint).unwrap();
        verify_inclusion(&cp, sub.index, &st.encode().unwrap(), &sub.inclusion_proof).unwrap();
    }
    // One statement from a role that may not publish it refuses the whole batch.
    let mut bad = vec![erasure(&d.custodian, 100), erasure(&d.custodian, 101)];
    bad.push(release(&d.provider, 1));
    match client.submit_batch(&bad).await {
        Err(ClientError::Refused {
            status,
            code,
            message,
        }) => {
            assert_eq!((status, code.as_str()), (403, "role_not_allowed"));
            assert!(message.starts_with("statement 2: "));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(size_of(&client).await, 10);
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{url}/add-statements"))
        .body(vec![0u8, 9, 1])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(size_of(&client).await, 10);
}

/// The custodian's own signature, but with a small-order point added to `R`
/// (`R = [r]B + T`, `s = r + k·a`): it satisfies the cofactored equation that
/// Ed25519 batch verification checks, and fails `verify_strict`.
fn mixed_order_erasure(custodian: &ed25519_dalek::SigningKey, day: u32) -> SignedStatement {
    use curve25519_dalek::constants::ED25519_BASEPOINT_POINT as B;
    use curve25519_dalek::edwards::CompressedEdwardsY;
    use curve25519_dalek::scalar::Scalar;
    use sha2::{Digest as _, Sha512};
    let hash = |parts: &[&[u8]]| {
        let mut h = Sha512::new();
        for p in parts {
            h.update(p);
        }
        Scalar::from_bytes_mod_order_wide(&h.finalize().into())
    };
    let good = erasure(custodian, day);
    let msg = [STATEMENT_SIGNING_LABEL, good.statement_bytes()].concat();
    // (sqrt(-1), 0) has order 4.
    let t = CompressedEdwardsY([0; 32]).decompress().unwrap();
    let r = hash(&[b"nonce", &msg]);
    let r_bytes = (r * B + t).compress().to_bytes();
    let k = hash(&[&r_bytes, good.author(), &msg]);
    let s = r + k * custodian.to_scalar();
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&r_bytes);
    sig[32..].copy_from_slice(s.as_bytes());
    SignedStatement::from_parts(*good.author(), good.statement_bytes().to_vec(), sig)
}

#[tokio::test]
async fn signature_failing_verify_strict_is_refused_alone_and_in_a_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Deployment::new(0);
    let (url, _, _) = d.start(tmp.path(), 0).await;
    let client = LogClient::new(&url).unwrap();
    client.submit(&erasure(&d.custodian, 0)).await.unwrap();

    let bad = mixed_order_erasure(&d.custodian, 1);
    assert!(bad.verify().is_err());
    let (status, code) = refused(client.submit(&bad).await);
    assert_eq!((status, code.as_str()), (403, "bad_signature"));
    assert_eq!(size_of(&client).await, 1);

    let batch = vec![
        erasure(&d.custodian, 2),
        erasure(&d.custodian, 3),
        bad.clone(),
        erasure(&d.custodian, 4),
    ];
    match client.submit_batch(&batch).await {
        Err(ClientError::Refused {
            status,
            code,
            message,
        }) => {
            assert_eq!((status, code.as_str()), (403, "bad_signature"));
            assert!(message.starts_with("statement 2: "), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(size_of(&client).await, 1);
    // The same statement with a valid signature goes in.
    let sub = client.submit(&erasure(&d.custodian, 1)).await.unwrap();
    assert_eq!(sub.index, 1);
}

/// `GET /follow` answers one round of following in one request: the served
/// checkpoint, a consistency proof from the size the follower holds, the
/// entries and (when few) their inclusion proofs, all against the served
/// checkpoint; entries beyond what one answer carries come through tiles.
#[tokio::test]
async fn one_follow_request_answers_the_checkpoint_consistency_entries_and_proofs() {
    use custos_tlog::Verifier;
    use custos_tlog::follow_answer::{FollowAnswer, MAX_FOLLOW_ENTRIES};

    let tmp = tempfile::tempdir().unwrap();
    let d = Deployment::new(0);
    let (url, _, _) = d.start(tmp.path(), 0).await;
    let client = LogClient::new(&url).unwrap();
    let statements: Vec<SignedStatement> = (0..300).map(|n| release(&d.custodian, n)).collect();
    client.submit_batch(&statements[..4]).await.unwrap();

    // A new follower: the checkpoint and four entries with their proofs.
    let mut verifier = Verifier::with_last(d.log_only_policy(), None).unwrap();
    let round = client
        .update_and_read(&mut verifier, 0, 4096, 8)
        .await
        .unwrap();
    assert_eq!(round.checkpoint.size(), 4);
    assert_eq!(round.entries, client.entries(0, 4).await.unwrap());
    let proofs = round.inclusion_proofs.unwrap();
    for (i, (entry, proof)) in round.entries.iter().zip(&proofs).enumerate() {
        verify_inclusion(&round.checkpoint, i as u64, entry, proof).unwrap();
    }

    // Six more: the consistency proof from 4 is checked by the verifier,
    // and only the new entries come.
    client.submit_batch(&statements[4..10]).await.unwrap();
    let round = client
        .update_and_read(&mut verifier, 4, 4096, 8)
        .await
        .unwrap();
    assert_eq!(round.checkpoint.size(), 10);
    assert_eq!(round.entries, client.entries(4, 10).await.unwrap());
    for (i, (entry, proof)) in round
        .entries
        .iter()
        .zip(round.inclusion_proofs.as_ref().unwrap())
        .enumerate()
    {
        verify_inclusion(&round.checkpoint, 4 + i as u64, entry, proof).unwrap();
    }
    // More entries than proofs asked for: none come; `max` is kept.
    let answer = client.follow(0, 10, 9, 8).await.unwrap();
    assert_eq!(answer.entries.len(), 9);
    assert!(answer.inclusion.is_none() && answer.consistency.is_empty());
    // Nothing new: the same checkpoint, no entries.
    let answer = client.follow(10, 10, 4096, 8).await.unwrap();
    assert!(answer.entries.is_empty() && answer.inclusion.is_none());
    assert_eq!(answer.checkpoint, client.checkpoint().await.unwrap());

    // 300 entries: one answer carries 256, the tiles the rest.
    client.submit_batch(&statements[10..256]).await.unwrap();
    client.submit_batch(&statements[256..]).await.unwrap();
    let answer = client.follow(0, 10, 4096, 8).await.unwrap();
    assert_eq!(answer.entries.len(), MAX_FOLLOW_ENTRIES);
    let mut fresh = Verifier::with_last(d.log_only_policy(), None).unwrap();
    let round = client
        .update_and_read(&mut fresh, 0, 4096, 8)
        .await
        .unwrap();
    assert_eq!(round.checkpoint.size(), 300);
    assert_eq!(round.entries.len(), 300);
    assert_eq!(round.entries, client.entries(0, 300).await.unwrap());
    for (i, st) in statements.iter().enumerate() {
        assert_eq!(round.entries[i], st.encode().unwrap());
    }
    let round = client
        .update_and_read(&mut verifier, 10, 4096, 8)
        .await
        .unwrap();
    assert_eq!(round.checkpoint.size(), 300);
    assert_eq!(round.entries.len(), 290);

    // The answer is the versioned encoding; bad queries are refused as JSON.
    let http = reqwest::Client::new();
    let raw = http
        .get(format!("{url}/follow?from=300&known=300&max=1&prove=0"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(raw[0], 1);
    assert_eq!(FollowAnswer::decode(&raw).unwrap().encode().unwrap(), raw);
    for (path, code) in [
        ("follow?from=0&known=0&max=1&prove=9", "out_of_range"),
        ("follow?from=0&known=0&max=1", "bad_query"),
        ("follow?from=x&known=0&max=1&prove=0", "bad_query"),
    ] {
        let r = http.get(format!("{url}/{path}")).send().await.unwrap();
        assert_eq!(r.status(), 400, "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], code, "{path}: {body}");
    }
}

/// A follow answer holding more entries than asked (a log, or anyone in
/// between, padding the answer) is refused as malformed, and the follower
/// accepts no checkpoint from it.
#[tokio::test]
async fn a_follow_answer_with_more_entries_than_asked_is_refused() {
    use custos_tlog::Verifier;
    use custos_tlog::follow_answer::FollowAnswer;

    let tmp = tempfile::tempdir().unwrap();
    let d = Deployment::new(0);
    let (url, _, _) = d.start(tmp.path(), 0).await;
    let honest = LogClient::new(&url).unwrap();
    let statements: Vec<SignedStatement> = (0..3).map(|n| release(&d.custodian, n)).collect();
    honest.submit_batch(&statements).await.unwrap();

    // In front of the log: every follow answer gets one entry more.
    let upstream = url.clone();
    let padding = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let upstream = upstream.clone();
        async move {
            let path = uri.path_and_query().unwrap().as_str().to_owned();
            let bytes = reqwest::get(format!("{upstream}{path}"))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            let mut answer = FollowAnswer::decode(&bytes).unwrap();
            answer.entries.push(statements[0].encode().unwrap());
            if let Some(proofs) = &mut answer.inclusion {
                proofs.push(Vec::new());
            }
            answer.encode().unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, padding).await });

    let mut verifier = Verifier::with_last(d.log_only_policy(), None).unwrap();
    let client = LogClient::new(&front).unwrap();
    for (start, max) in [(0, 1), (0, 4096), (3, 4096)] {
        let err = client
            .update_and_read(&mut verifier, start, max, 8)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ClientError::Malformed(m) if m.contains("entries beyond")),
            "{start}, {max}: {err}"
        );
        assert!(verifier.last().is_none(), "no checkpoint accepted");
    }
    // The honest log is followed as before.
    let round = honest
        .update_and_read(&mut verifier, 0, 4096, 8)
        .await
        .unwrap();
    assert_eq!(round.entries.len(), 3);
}
