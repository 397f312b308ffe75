//! Property test: random sequences of commits (fresh and stale), submissions
//! and acks by three users agree with a simple model of the service:
//! one commit per epoch, routing by membership, mailboxes in order, acked
//! items gone.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

use crate::common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use custos_wire::frames::ItemKind;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::StatusCode;

#[derive(Debug, Clone)]
enum Step {
    Commit { by: usize, stale: bool, members: u8 },
    Submit { by: usize },
    Ack { by: usize, n: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..3usize, any::<bool>(), 1..8u8).prop_map(|(by, stale, members)| Step::Commit {
            by,
            stale,
            members
        }),
        (0..3usize).prop_map(|by| Step::Submit { by }),
        (0..3usize, 0..4usize).prop_map(|(by, n)| Step::Ack { by, n }),
    ]
}

struct Model {
    epoch: u64,
    members: BTreeSet<usize>,
    /// Expected mailbox bodies per user, in order.
    boxes: [Vec<Vec<u8>>; 3],
}

static CASE: AtomicU64 = AtomicU64::new(0);

async fn run_case(server: &TestServer, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let case = CASE.fetch_add(1, Ordering::Relaxed);
    let mut users = Vec::new();
    for u in ["a", "b", "c"] {
        users.push(User::register(server, &format!("{u}{case}")).await);
    }
    let names: Vec<String> = users.iter().map(|u| u.name.clone()).collect();
    let conv = users[0].create_conversation().await;
    let mut model = Model {
        epoch: 0,
        members: BTreeSet::from([0]),
        boxes: Default::default(),
    };
    let mut last: Option<mls::Staged> = None;
    for step in steps {
        match step {
            Step::Commit { by, stale, members } => {
                let mut new: BTreeSet<usize> = (0..3).filter(|j| members & (1 << j) != 0).collect();
                if !model.members.contains(&by) {
                    // Not a member: a real commit it replays is refused as
                    // such, garbage as garbage.
                    if let Some(old) = &last {
                        let (st, _) = users[by].commit(&conv, old).await;
                        prop_assert_eq!(st, StatusCode::FORBIDDEN);
                    } else {
                        let (st, resp) = users[by]
                            .commit_raw(&conv, model.epoch, b"not-a-commit", None)
                            .await;
                        prop_assert_eq!(st, StatusCode::BAD_REQUEST);
                        prop_assert_eq!(resp["error"].as_str(), Some("invalid_commit"));
                    }
                    continue;
                }
                if stale && let Some(old) = &last {
                    // The commit of an earlier epoch, sent again.
                    let (st, resp) = users[by].commit(&conv, old).await;
                    prop_assert_eq!(st, StatusCode::CONFLICT);
                    prop_assert_eq!(resp["current_epoch"].as_u64(), Some(model.epoch));
                    continue;
                }
                // A member cannot commit its own removal.
                new.insert(by);
                let added: Vec<usize> = new.difference(&model.members).copied().collect();
                let removed: Vec<&str> = model
                    .members
                    .difference(&new)
                    .map(|j| names[*j].as_str())
                    .collect();
                let add: Vec<&User> = added.iter().map(|j| &users[*j]).collect();
                let others: Vec<&User> = model
                    .members
                    .iter()
                    .filter(|j| **j != by)
                    .map(|j| &users[*j])
                    .collect();
                let (st, resp, staged) = users[by].change(&conv, &add, &removed, &others).await;
                prop_assert_eq!(st, StatusCode::OK, "{}", resp);
                model.epoch += 1;
                prop_assert_eq!(resp["epoch"].as_u64(), Some(model.epoch));
                // The commit reaches the members before it (removed ones
                // included); new members get only the Welcome.
                for j in &model.members {
                    if *j != by {
                        model.boxes[*j].push(staged.commit.clone());
                    }
                }
                for j in &added {
                    model.boxes[*j].push(staged.welcome.clone().unwrap());
                }
                model.members = new;
                last = Some(staged);
            }
            Step::Submit { by } => {
                let env = envelope(&conv, today(), &random_bytes(24));
                let r = users[by]
                    .submit(&conv, ItemKind::Envelope, env.clone())
                    .await;
                if model.members.contains(&by) {
                    prop_assert!(r.is_ok(), "{:?}", r);
                    for j in &model.members {
                        if *j != by {
                            model.boxes[*j].push(env.clone());
                        }
                    }
                } else {
                    prop_assert_eq!(r.unwrap_err().0, StatusCode::FORBIDDEN);
                }
            }
            Step::Ack { by, n } => {
                let got = users[by].fetch(0).await;
                let bodies: Vec<Vec<u8>> = got.iter().map(|d| d.body.clone()).collect();
                prop_assert_eq!(&bodies, &model.boxes[by]);
                let n = n.min(got.len());
                if n > 0 {
                    let seqs: Vec<u64> = got[..n].iter().map(|d| d.seq).collect();
                    prop_assert_eq!(users[by].ack(&seqs).await, n as u64);
                    model.boxes[by].drain(..n);
                }
            }
        }
    }
    for (j, u) in users.iter().enumerate() {
        let got = u.fetch(0).await;
        let seqs: Vec<u64> = got.iter().map(|d| d.seq).collect();
        prop_assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seqs increase");
        let bodies: Vec<Vec<u8>> = got.into_iter().map(|d| d.body).collect();
        prop_assert_eq!(&bodies, &model.boxes[j]);
    }
    Ok(())
}

#[test]
fn commits_routing_and_acks_follow_the_model() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(TestServer::start());
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&proptest::collection::vec(step(), 1..16), |steps| {
        rt.block_on(run_case(&server, steps))
    });
    rt.block_on(server.stop());
    if let Err(e) = result {
        panic!("{e}");
    }
}
