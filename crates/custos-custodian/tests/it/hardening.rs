//! Custodians on loopback against faults: a log that serves altered entry
//! bytes, a log that refuses submissions when shares fall due for erasure,
//! and a share store restored from a backup taken before an erasure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use custos_custodian::logview::LogError;
use custos_custodian::verified::EntriesError;
use custos_custodian::{DayStatus, ShareLookup, ShareStore};

fn status(cluster: &Cluster, i: usize, day: u32) -> Option<DayStatus> {
    ShareStore::inspect(&cluster.data(i), &cluster.key(i))
        .ok()
        .and_then(|s| s.status(day).ok().flatten())
}

fn share_file(cluster: &Cluster, i: usize, day: u32) -> std::path::PathBuf {
    cluster.data(i).join(format!("shares/{day}.share"))
}

async fn wait_until(what: &str, secs: u64, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn entries_that_do_not_hash_to_the_witnessed_checkpoint_are_refused() {
    let cluster = Cluster::start(&[0, 1, 2, 3, 4], 0, fast_timing()).await;
    let day = cluster.clock.shared().today();
    cluster
        .wait_log("all five publish today's key", 120, |v| {
            v.day_key(day).is_some_and(|(_, who)| who.len() == N)
        })
        .await;
    // The log serves custodian 0's day-key statement with one byte changed.
    let mut view = cluster.view();
    view.refresh().await.unwrap();
    let size = {
        let note = view.client().checkpoint().await.unwrap();
        custos_tlog::TrustPolicy::from_manifest(&cluster.manifest)
            .unwrap()
            .verify_checkpoint(&note)
            .unwrap()
            .size()
    };
    let entries = view.client().entries(0, size).await.unwrap();
    let me = cluster.public_key(0);
    let target = entries
        .iter()
        .find(|e| {
            let s = custos_wire::statement::SignedStatement::decode(e).unwrap();
            s.author() == &me
                && matches!(
                    s.verify().unwrap(),
                    custos_wire::statement::Statement::EscrowDayKey(_)
                )
        })
        .unwrap()
        .clone();
    cluster.log_faults.tamper(Some(target));
    let mut fresh = cluster.view();
    match fresh.refresh().await {
        Err(LogError::Entries(EntriesError::RootMismatch { .. })) => {}
        other => panic!("expected the altered entries to be refused, got {other:?}"),
    }
    // Nothing of the altered range was indexed.
    assert!(fresh.day_key_publishers(day).is_empty());
    // The honest bytes are accepted again.
    cluster.log_faults.tamper(None);
    fresh.refresh().await.unwrap();
    assert_eq!(fresh.day_key_publishers(day).len(), N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn erasure_is_in_the_log_before_the_share_is_destroyed() {
    let cluster = Cluster::start(&[0, 1, 2, 3, 4], 0, fast_timing()).await;
    let day = cluster.clock.shared().today();
    cluster
        .wait_log("all five publish today's key", 120, |v| {
            v.day_key(day).is_some_and(|(_, who)| who.len() == N)
        })
        .await;

    // The log refuses every submission when the erasure falls due.
    cluster.log_faults.set_drop(true);
    cluster.clock.advance_days(2);
    wait_until("every custodian begins the erasure", 60, || {
        (0..N).all(|i| status(&cluster, i, day) == Some(DayStatus::Erasing))
    })
    .await;
    // Several ticks later: the erasure could not be logged, so the share
    // file is still there, but it is never used again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut view = cluster.view();
    view.refresh().await.unwrap();
    assert!(view.erasures(day).is_empty());
    for i in 0..N {
        assert_eq!(status(&cluster, i, day), Some(DayStatus::Erasing));
        assert!(
            share_file(&cluster, i, day).exists(),
            "custodian {i} destroyed its share before logging the erasure"
        );
        assert!(matches!(cluster.share(i, day), ShareLookup::Erased));
    }

    // The log accepts again: every erasure is logged, then the files go.
    cluster.log_faults.set_drop(false);
    cluster
        .wait_log("all five log the erasure", 120, |v| {
            v.erasures(day).len() == N
        })
        .await;
    wait_until("every share file is destroyed", 60, || {
        (0..N).all(|i| {
            status(&cluster, i, day) == Some(DayStatus::Erased { logged: true })
                && !share_file(&cluster, i, day).exists()
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_restored_after_erasure_does_not_bring_the_share_back() {
    let mut cluster = Cluster::start(&[0, 1, 2, 3, 4], 0, fast_timing()).await;
    let day = cluster.clock.shared().today();
    cluster
        .wait_log("all five publish today's key", 120, |v| {
            v.day_key(day).is_some_and(|(_, who)| who.len() == N)
        })
        .await;
    // A backup of custodian 0's data directory while the share is live.
    cluster.stop(0).await;
    let backup = cluster.dir.path().join("backup-0");
    copy_dir(&cluster.data(0), &backup);
    cluster.restart(0).await;

    cluster.clock.advance_days(2);
    cluster
        .wait_log("all five log the erasure", 120, |v| {
            v.erasures(day).len() == N
        })
        .await;
    wait_until("custodian 0 destroys its share", 60, || {
        !share_file(&cluster, 0, day).exists()
    })
    .await;

    // The old backup comes back: the store says the share is live again.
    cluster.stop(0).await;
    std::fs::remove_dir_all(cluster.data(0)).unwrap();
    copy_dir(&backup, &cluster.data(0));
    assert!(matches!(cluster.share(0, day), ShareLookup::Live(_)));
    cluster.restart(0).await;
    // The log says custodian 0 erased the day: the copy is destroyed again
    // and the erasure is not logged twice.
    wait_until("the resurrected share is destroyed", 60, || {
        status(&cluster, 0, day) == Some(DayStatus::Erased { logged: true })
            && !share_file(&cluster, 0, day).exists()
    })
    .await;
    assert!(matches!(cluster.share(0, day), ShareLookup::Erased));
    let mut view = cluster.view();
    view.refresh().await.unwrap();
    let size = custos_tlog::TrustPolicy::from_manifest(&cluster.manifest)
        .unwrap()
        .verify_checkpoint(&view.client().checkpoint().await.unwrap())
        .unwrap()
        .size();
    let me = cluster.public_key(0);
    let erasures_by_0 = view
        .client()
        .entries(0, size)
        .await
        .unwrap()
        .iter()
        .filter(|e| {
            let s = custos_wire::statement::SignedStatement::decode(e).unwrap();
            s.author() == &me
                && matches!(
                    s.verify().unwrap(),
                    custos_wire::statement::Statement::DayKeyErasure(ref d) if d.day == day
                )
        })
        .count();
    assert_eq!(erasures_by_0, 1);
}
