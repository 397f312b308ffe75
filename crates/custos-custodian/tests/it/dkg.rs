//! Custodians on loopback: the DKG over HTTP, the published day keys, the
//! threshold, a custodian down during the DKG (no day key with revealed
//! shares), restarts and erasure.

use crate::common;

use std::time::Duration;

use common::*;
use custos_custodian::{DayStatus, ShareLookup, ShareStore};
use custos_escrow::{DayKey, EscrowIdentity, PartialKey};

const CONVERSATION: [u8; 16] = [0x42; 16];

fn partials(cluster: &Cluster, who: &[usize], day: u32) -> Vec<PartialKey> {
    let id = EscrowIdentity::new(&CONVERSATION, day);
    who.iter()
        .map(|i| cluster.live_share(*i, day).extract(&id))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_custodians_run_the_dkg_over_http_and_publish_the_same_day_key() {
    let cluster = Cluster::start(&[0, 1, 2, 3, 4], 1, fast_timing()).await;
    let today = cluster.clock.shared().today();
    let view = cluster
        .wait_log("all five publish today's and tomorrow's key", 120, |v| {
            (today..=today + 1).all(|d| v.day_key(d).is_some_and(|(_, who)| who.len() == N))
        })
        .await;
    for day in today..=today + 1 {
        // Exactly one set of bytes, published by every custodian.
        assert_eq!(view.day_key_publishers(day).len(), N);
        let (bytes, _) = view.day_key(day).unwrap();
        let day_key = DayKey::from_bytes(bytes).unwrap();
        assert_eq!(
            (day_key.day(), day_key.threshold(), day_key.custodians()),
            (day, T, N)
        );
        for i in 0..N {
            let store = ShareStore::inspect(&cluster.data(i), &cluster.key(i)).unwrap();
            assert_eq!(store.day_key(day).unwrap().unwrap(), day_key);
            assert_eq!(
                store.status(day).unwrap(),
                Some(DayStatus::Live { published: true })
            );
        }
        // The transcript hash agrees at every custodian.
        let transcripts: Vec<String> = (0..N)
            .map(|i| {
                let store = ShareStore::inspect(&cluster.data(i), &cluster.key(i)).unwrap();
                let days = store.days().unwrap();
                days.into_iter().find(|(d, ..)| *d == day).unwrap().2
            })
            .collect();
        assert!(
            transcripts
                .iter()
                .all(|t| t == &transcripts[0] && t.len() == 64)
        );
    }

    // The threshold: t-1 partial keys are refused, any t give the same key.
    let day = today;
    let (bytes, _) = view.day_key(day).unwrap();
    let day_key = DayKey::from_bytes(bytes).unwrap();
    let all = partials(&cluster, &[0, 1, 2, 3, 4], day);
    let id = EscrowIdentity::new(&CONVERSATION, day);
    for p in &all {
        assert!(day_key.verify_partial(&id, p).is_ok());
    }
    let ck0 = [9u8; 32];
    let capsule = custos_escrow::seal(&day_key, &CONVERSATION, day, b"chain-1", &ck0).unwrap();
    assert!(
        day_key
            .verify_and_combine(&id, &all[..T - 1], &mut rand_core::OsRng)
            .is_err()
    );
    let mut keys = Vec::new();
    for subset in [[0, 1, 2], [2, 3, 4], [0, 2, 4], [1, 3, 4]] {
        let chosen: Vec<PartialKey> = subset.iter().map(|i| all[*i]).collect();
        let key = day_key
            .verify_and_combine(&id, &chosen, &mut rand_core::OsRng)
            .unwrap();
        assert_eq!(custos_escrow::open(&capsule, &key).unwrap().as_ref(), &ck0);
        keys.push(key.to_bytes());
    }
    assert!(keys.windows(2).all(|w| w[0] == w[1]));
    // The key of one day opens nothing of the next.
    let next = DayKey::from_bytes(view.day_key(day + 1).unwrap().0).unwrap();
    let other = custos_escrow::seal(&next, &CONVERSATION, day + 1, b"chain-1", &ck0).unwrap();
    let key = day_key
        .verify_and_combine(&id, &all[..T], &mut rand_core::OsRng)
        .unwrap();
    assert!(custos_escrow::open(&other, &key).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_custodian_down_during_the_dkg_gets_no_share_revealed_and_the_day_waits_for_it() {
    let timing = custos_custodian::Timing {
        phase_timeout: Duration::from_secs(1),
        ..fast_timing()
    };
    let mut cluster = Cluster::start(&[0, 1, 2, 3, 4], 0, timing).await;
    let today = cluster.clock.shared().today();
    cluster
        .wait_log("all five publish today's key", 120, |v| {
            v.day_key(today).is_some_and(|(_, who)| who.len() == N)
        })
        .await;

    // Custodian 4 is down (its HPKE key is in the log, so the others start
    // the next day's DKG with it and it never acknowledges a dealing).
    cluster.stop(4).await;
    cluster.clock.advance_days(1);
    let next = today + 1;
    // Several DKG rounds fit in this time (three phases of 1 s, then a
    // cool-down of 2 s): every one reveals custodian 4's shares to the
    // others, so none may be kept or published.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let mut view = cluster.view();
    view.refresh().await.unwrap();
    assert!(
        view.day_key_publishers(next).is_empty(),
        "a day key made with revealed shares was published"
    );
    for i in 0..N - 1 {
        let store = ShareStore::inspect(&cluster.data(i), &cluster.key(i)).unwrap();
        assert_eq!(
            store.status(next).unwrap(),
            None,
            "custodian {i} kept a share"
        );
        assert!(matches!(cluster.share(i, next), ShareLookup::Unknown));
    }

    // Custodian 4 comes back: the day is generated by all five, each holding
    // only its own share.
    cluster.restart(4).await;
    let view = cluster
        .wait_log("all five publish the next day's key", 120, |v| {
            v.day_key(next).is_some_and(|(_, who)| who.len() == N)
        })
        .await;
    let day_key = DayKey::from_bytes(view.day_key(next).unwrap().0).unwrap();
    assert_eq!((day_key.threshold(), day_key.custodians()), (T, N));
    let ck0 = [3u8; 32];
    let capsule = custos_escrow::seal(&day_key, &CONVERSATION, next, b"c", &ck0).unwrap();
    let key = day_key
        .verify_and_combine(
            &EscrowIdentity::new(&CONVERSATION, next),
            &partials(&cluster, &[1, 2, 4], next),
            &mut rand_core::OsRng,
        )
        .unwrap();
    assert_eq!(custos_escrow::open(&capsule, &key).unwrap().as_ref(), &ck0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shares_survive_restarts_and_are_erased_from_disk_after_the_grace() {
    let mut cluster = Cluster::start(&[0, 1, 2, 3, 4], 0, fast_timing()).await;
    let day = cluster.clock.shared().today();
    cluster
        .wait_log("all five publish today's key", 120, |v| {
            v.day_key(day).is_some_and(|(_, who)| who.len() == N)
        })
        .await;
    let mut secrets = Vec::new();
    for i in 0..N {
        let plain = cluster.live_share(i, day).to_bytes().to_vec();
        let file = std::fs::read(cluster.data(i).join(format!("shares/{day}.share"))).unwrap();
        // Encrypted at rest: the plaintext share is nowhere under --data.
        assert!(!contains(&all_bytes(&cluster.data(i)), &plain));
        secrets.push((plain, file[13..].to_vec(), file));
    }

    // A restart keeps the share and the day's state.
    cluster.restart(0).await;
    assert_eq!(cluster.live_share(0, day).to_bytes().to_vec(), secrets[0].0);

    // One day later (still within the grace) nothing is erased; the next
    // day's key is generated by all five, the restarted one included.
    cluster.clock.advance_days(1);
    cluster
        .wait_log("all five publish the next day's key", 120, |v| {
            v.day_key(day + 1).is_some_and(|(_, who)| who.len() == N)
        })
        .await;
    for i in 0..N {
        assert!(matches!(cluster.share(i, day), ShareLookup::Live(_)));
    }

    // After the end of the day plus the grace, every share is erased, and
    // only then logged.
    cluster.clock.advance_days(1);
    let view = cluster
        .wait_log("all five log the erasure", 120, |v| {
            v.erasures(day).len() == N
        })
        .await;
    assert_eq!(view.erasures(day).len(), N);
    for (i, (plain, ciphertext, file)) in secrets.iter().enumerate() {
        assert!(matches!(cluster.share(i, day), ShareLookup::Erased));
        // The erasure is logged before the file is destroyed: give the
        // custodian a moment to finish destroying it.
        let share_file = cluster.data(i).join(format!("shares/{day}.share"));
        for _ in 0..100 {
            if !share_file.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let everything = all_bytes(&cluster.data(i));
        assert!(
            !contains(&everything, plain),
            "custodian {i}: plaintext share on disk"
        );
        assert!(
            !contains(&everything, ciphertext),
            "custodian {i}: ciphertext on disk"
        );
        assert!(
            !contains(&everything, file),
            "custodian {i}: share file on disk"
        );
        assert!(!cluster.data(i).join(format!("shares/{day}.share")).exists());
    }
    // Erased is forever, across a restart.
    cluster.restart(1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(matches!(cluster.share(1, day), ShareLookup::Erased));
}
