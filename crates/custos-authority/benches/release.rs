//! Release and collection costs, each against a baseline measured in the
//! same run (see BENCHMARKS.md):
//! - `custodian_release_16x1`: one custodian's release of 16 conversations
//!   for one day, over the real log with 2 witnesses on loopback: every
//!   check, the logged and witnessed `KeyRelease`, HPKE sealing. Baseline:
//!   `log_and_witness_one_statement`, the log round trip alone.
//! - `authority_verify_combine_496x5`: verifying 496 identity keys' partial
//!   keys from 5 custodians in one batch and combining 3 per key. Baseline:
//!   `single_pairing_checks_496`, one pairing check per conversation-day.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "benchmark code"
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use custos_authority::collect::{CustodianAnswer, verify_and_combine};
use custos_authority::log_and_wait;
use custos_custodian::release::{MemoryShares, Releaser, ReleaserConfig};
use custos_deploy::{CustodianMode, Deployment, DeploymentSpec, Names};
use custos_escrow::EscrowIdentity;
use custos_wire::ConversationId;
use custos_wire::release::{ConversationDay, ReleaseRequest, ReleaseRequestFields};
use custos_wire::statement::{DayKeyErasure, SignedStatement, Statement};

/// Custodians of the deployment, and how many must agree on a day key.
const N: usize = 5;
const T: usize = 3;
/// Day 20422 (2025-11-30), 12:00 UTC.
const START_MS: u64 = 20_422 * 86_400_000 + 12 * 3_600_000;
const TODAY: u32 = 20_422;

/// The kit's name of custodian `i`.
fn custodian_name(i: usize) -> String {
    Names::new("test").custodian(i)
}

fn release(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // The test kit's deployment: the log, 2 witnesses, a court, an
    // authority and 5 custodians as keys; the keys of days TODAY-3..=TODAY+2
    // dealt and logged by all of them, and custodian 0's release path over
    // its shares.
    let dir = tempfile::tempdir().unwrap();
    let clock = custos_clock::dangerous::simulated(START_MS);
    let spec = DeploymentSpec::new("test", clock.shared())
        .custodians(N, T, CustodianMode::KeysOnly)
        .without_server();
    let net = rt
        .block_on(Deployment::start(&dir.path().join("deploy"), spec))
        .unwrap();
    let shares = Arc::new(MemoryShares::new());
    for day in TODAY - 3..=TODAY + 2 {
        let (_, dealt) = rt
            .block_on(net.publish_dealt_day(day, &[0, 1, 2, 3, 4]))
            .unwrap();
        shares.insert(day, &dealt[0]);
    }
    let releaser = Releaser::open(
        ReleaserConfig {
            manifest: net.manifest().clone(),
            name: custodian_name(0),
            signing_key: net.keys().custodians[0].signing_key(),
            log: net.log().clone(),
            data: dir.path().join("custodian-0"),
            clock: clock.shared(),
            monthly_quota: 1_000,
            witness_timeout: Duration::from_secs(20),
        },
        shares,
    )
    .unwrap();
    let authority = net.keys().authority.clone();
    let targets: Vec<ConversationId> = (1..=16).map(|t| ConversationId([t; 16])).collect();
    let w = net.sign_warrant(&targets, TODAY, TODAY).unwrap();
    let s = rt.block_on(net.submit_warrant(&w)).unwrap();
    let requested: Vec<ConversationDay> = targets
        .iter()
        .map(|t| ConversationDay {
            conversation: *t,
            day: TODAY,
        })
        .collect();
    let entry = hex::decode(&s.entry).unwrap();
    let (note, proof) = rt.block_on(async {
        let mut v = net.verifier("bench-proof").unwrap();
        let (cp, _) = net
            .log()
            .prove_included(&mut v, s.index, &entry)
            .await
            .unwrap();
        let p = net.log().inclusion_proof(s.index, cp.size()).await.unwrap();
        (
            cp.note().to_vec(),
            p.into_iter().map(|h| h.0).collect::<Vec<_>>(),
        )
    });
    let mut n = 0u64;
    let mut g = c.benchmark_group("release");
    g.sample_size(20);
    g.bench_function("custodian_release_16x1", |b| {
        b.iter_batched(
            || {
                n += 1;
                ReleaseRequest::sign(
                    ReleaseRequestFields {
                        warrant: hex::decode(&s.warrant).unwrap(),
                        salt: hex::decode(&s.salt).unwrap().try_into().unwrap(),
                        commitment_entry: entry.clone(),
                        commitment_index: s.index,
                        checkpoint: note.clone(),
                        inclusion_proof: proof.clone(),
                        custodian: custodian_name(0),
                        requested_at: n,
                        requested: requested.clone(),
                    },
                    &authority,
                )
                .unwrap()
                .encode()
                .unwrap()
            },
            |req| rt.block_on(releaser.release(&req)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    let mut v = net.verifier("bench-baseline").unwrap();
    let custodian_1 = net.keys().custodians[1].signing_key();
    let mut m = 0u64;
    g.bench_function("log_and_witness_one_statement", |b| {
        b.iter_batched(
            || {
                m += 1;
                let st = Statement::DayKeyErasure(DayKeyErasure {
                    day: 1,
                    custodian: custodian_name(1),
                    erased_at: m,
                });
                SignedStatement::sign(&st, &custodian_1).unwrap()
            },
            |st| rt.block_on(log_and_wait(net.log(), &mut v, &st)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

#[allow(
    clippy::needless_range_loop,
    reason = "`i` is the custodian index of both its shares and its name"
)]
fn combine(c: &mut Criterion) {
    let mut rng = rand_core::OsRng;
    let first = TODAY - 30;
    let mut day_keys = BTreeMap::new();
    let mut shares = BTreeMap::new();
    for day in first..=TODAY {
        let (dk, ss) = custos_escrow::dangerous::trusted_deal(day, N, T, &mut rng).unwrap();
        day_keys.insert(day, dk);
        shares.insert(day, ss);
    }
    let mut requested = Vec::new();
    for t in 1..=16u8 {
        for day in first..=TODAY {
            requested.push(ConversationDay {
                conversation: ConversationId([t; 16]),
                day,
            });
        }
    }
    assert_eq!(requested.len(), 496);
    let mut answers = BTreeMap::new();
    for i in 0..N {
        let list = requested
            .iter()
            .map(|cd| {
                let id = EscrowIdentity::new(&cd.conversation.0, cd.day);
                (*cd, shares[&cd.day][i].extract(&id))
            })
            .collect();
        answers.insert(
            custodian_name(i),
            CustodianAnswer::Released {
                key_release_index: i as u64,
                shares: list,
            },
        );
    }
    let mut g = c.benchmark_group("collect");
    g.sample_size(10);
    g.bench_function("authority_verify_combine_496x5", |b| {
        b.iter(|| verify_and_combine(&day_keys, &answers, &requested).unwrap())
    });
    let one: Vec<_> = requested
        .iter()
        .map(|cd| {
            let id = EscrowIdentity::new(&cd.conversation.0, cd.day);
            let p = shares[&cd.day][0].extract(&id);
            (cd.day, id, p)
        })
        .collect();
    g.bench_function("single_pairing_checks_496", |b| {
        b.iter(|| {
            for (day, id, p) in &one {
                day_keys[day].verify_partial(id, p).unwrap();
            }
        })
    });
    g.finish();
}

criterion_group!(benches, release, combine);
criterion_main!(benches);
