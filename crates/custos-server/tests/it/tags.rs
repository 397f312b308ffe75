//! Delivery tags v2 issued by the writer: one signed Merkle root per tag
//! batch, a path per envelope, stored with the item and returned in
//! `Accepted` after the commit.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

use crate::common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use common::*;
use custos_server::FrankingPolicy;
use custos_wire::frames::{ClientFrame, ItemKind, ServerFrame};
use custos_wire::tag::{DeliveryTag, MAX_TAG_BATCH, Received, TAG_V2, verify_tag};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_envelopes_share_signed_batches_and_every_tag_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = custos_clock::dangerous::simulated(START_MS);
    let policy = Arc::new(FrankingPolicy::from_seed(&[3; 32], clock.shared()));
    let config = test_config(tmp.path()).with_franking(policy.clone());
    let server = TestServer::start_with(config, clock.clone()).await;
    let alice = User::register(&server, "alice").await;
    let bob = User::register(&server, "bob").await;
    let conv = alice.group_with(&[&bob]).await;

    const N: u64 = 1200;
    let mut ws = alice.ws().await;
    let mut sent = HashMap::new();
    for id in 1..=N {
        let env = envelope(&conv, today(), format!("message {id}").as_bytes());
        let frame = ClientFrame::Submit {
            request_id: id,
            kind: ItemKind::Envelope,
            conversation: conv,
            body: env.clone(),
        };
        send_frame(&mut ws, &frame).await;
        sent.insert(id, env);
    }
    let key = policy.verifying_key();
    let mut batches: BTreeMap<u64, (u16, BTreeSet<u16>)> = BTreeMap::new();
    let mut accepted_tags = HashMap::new();
    for _ in 0..N {
        let ServerFrame::Accepted {
            request_id,
            server_time,
            tag,
        } = next_frame(&mut ws).await
        else {
            panic!("expected Accepted")
        };
        let env = &sent[&request_id];
        let v = verify_tag(
            &key,
            &tag,
            &Received {
                conversation: conv,
                sender: "alice",
                server_time,
                franking_commitment: &[9; 32],
                envelope: env,
            },
        )
        .unwrap();
        assert_eq!(v.version, TAG_V2);
        let pos = v.batch.unwrap();
        assert!(pos.batch_size <= MAX_TAG_BATCH);
        let entry = batches
            .entry(pos.batch_id)
            .or_insert((pos.batch_size, BTreeSet::new()));
        assert_eq!(entry.0, pos.batch_size, "one size per batch id");
        assert!(entry.1.insert(pos.leaf_index), "leaf released twice");
        accepted_tags.insert(env.clone(), tag);
    }
    // Only alice sent envelopes, so every leaf of every signed batch is one
    // of her acknowledged submissions: each batch is complete.
    for (id, (size, leaves)) in &batches {
        assert_eq!(usize::from(*size), leaves.len(), "batch {id}");
    }
    assert!(
        batches.len() < N as usize,
        "{} signatures for {N} envelopes: no batching",
        batches.len()
    );
    // The tag was stored with the item: the recipient gets the same bytes.
    // Commits and Welcomes carry none.
    let mut seen = 0;
    let mut after = 0;
    loop {
        let got = bob.fetch(after).await;
        let Some(last) = got.last() else { break };
        after = last.seq;
        for d in got {
            match d.kind {
                ItemKind::Envelope => {
                    assert_eq!(accepted_tags[&d.body], d.tag);
                    assert!(matches!(
                        DeliveryTag::decode(&d.tag),
                        Ok(DeliveryTag::V2(_))
                    ));
                    seen += 1;
                }
                _ => assert!(d.tag.is_empty(), "{:?} carries a tag", d.kind),
            }
        }
    }
    assert_eq!(seen, N);
    drop(server.stop().await);
}
