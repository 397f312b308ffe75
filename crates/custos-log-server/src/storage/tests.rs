use std::io::Write as _;

use custos_durable::{Fault, FaultPlan, FaultyStorage, Step};

use super::*;
use custos_tlog::keys::{ALG_ED25519, NamedKey};

const ORIGIN: &str = "log.test";
const RECORD: &str = "log.key.signed-size";

fn key() -> NamedKey {
    NamedKey::from_seed(ORIGIN, ALG_ED25519, &[3; 32]).unwrap()
}

fn paths(tmp: &tempfile::TempDir) -> StorePaths {
    StorePaths {
        data: tmp.path().join("data"),
        signed_size: tmp.path().join(RECORD),
    }
}

fn open_with(storage: Arc<dyn Storage>, p: &StorePaths) -> Result<LogStore, StorageError> {
    let k = key();
    LogStore::open_with(
        storage,
        p,
        ORIGIN,
        k.log_signer().unwrap(),
        LogVerifier::new(ORIGIN, k.verifying_key()),
    )
}

fn open(p: &StorePaths) -> Result<LogStore, StorageError> {
    open_with(Arc::new(OsStorage), p)
}

/// Size and root of a checkpoint note, after checking the log's signature.
fn size_root(note: &[u8]) -> (u64, Hash) {
    let parsed = parse_checkpoint(note).unwrap();
    let k = key();
    verified_signers(
        &parsed.note,
        VerifierList::new(vec![Box::new(LogVerifier::new(ORIGIN, k.verifying_key()))]),
    )
    .unwrap();
    (parsed.checkpoint.size(), *parsed.checkpoint.hash())
}

/// Every entry the store serves, read back through its reader.
fn served_entries(s: &LogStore) -> Vec<Vec<u8>> {
    let r = s.entry_reader().unwrap();
    let v = s.view();
    let v = v.read().unwrap();
    (0..v.size as usize)
        .map(|i| r.read_record(v.offsets[i]).unwrap()[2..].to_vec())
        .collect()
}

/// Checks that the reopened store serves every acknowledged entry at its
/// index, a checkpoint signed by the log whose root its entries hash to,
/// and that this checkpoint is consistent with every earlier one.
fn check_consistent(s: &LogStore, acked: &[Vec<u8>], earlier: &[Vec<u8>]) {
    let entries = served_entries(s);
    assert!(entries.len() >= acked.len(), "acknowledged entries lost");
    assert_eq!(&entries[..acked.len()], acked);
    let mut tree = Tree::new();
    for e in &entries {
        tree.append_entry(e).unwrap();
    }
    let (size, root) = size_root(&s.checkpoint());
    assert_eq!(size, s.size());
    assert_eq!(
        tree.root(size).unwrap(),
        root,
        "served checkpoint not over entries"
    );
    for note in earlier {
        let (old, old_root) = size_root(note);
        assert!(old <= size, "log shrank from {old} to {size}");
        assert_eq!(tree.root(old).unwrap(), old_root, "log forked at {old}");
    }
}

#[test]
fn a_range_of_entries_is_read_in_one_piece_as_record_by_record() {
    let tmp = tempfile::TempDir::new().unwrap();
    let p = paths(&tmp);
    let mut s = open(&p).unwrap();
    // Entries of varied lengths, in several batches.
    for batch in 0..5u8 {
        let entries: Vec<Vec<u8>> = (0..7u8)
            .map(|i| vec![batch ^ i; 1 + usize::from(batch * 7 + i) * 13])
            .collect();
        s.append_batch(&entries).unwrap();
    }
    let r = s.entry_reader().unwrap();
    let v = s.view();
    let v = v.read().unwrap();
    let size = v.size as usize;
    for start in 0..size {
        for end in start..=size {
            let one_by_one: Vec<u8> = v.offsets[start..end]
                .iter()
                .flat_map(|&o| r.read_record(o).unwrap())
                .collect();
            assert_eq!(r.read_records(&v.offsets[start..end]).unwrap(), one_by_one);
        }
    }
    // Offsets that skip an entry, repeat one, or go backwards are refused,
    // not read as a bundle.
    let skipping = [v.offsets[0], v.offsets[2]];
    let repeating = [v.offsets[1], v.offsets[1]];
    let backwards = [v.offsets[4], v.offsets[3]];
    for bad in [skipping, repeating, backwards] {
        let e = r.read_records(&bad).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{bad:?}: {e}");
    }
}

#[test]
fn reopen_keeps_committed_and_drops_uncommitted_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let p = paths(&tmp);
    let mut s = open(&p).unwrap();
    assert_eq!(s.size(), 0);
    let c = s.append_batch(&[b"a".to_vec(), b"bb".to_vec()]).unwrap();
    assert_eq!(c.size, 2);
    drop(s);
    // A batch that reached `entries` but crashed before it was signed.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(p.data.join("entries"))
        .unwrap();
    f.write_all(&[0, 3, b'x', b'y']).unwrap();
    drop(f);
    let s = open(&p).unwrap();
    assert_eq!(s.size(), 2);
    assert_eq!(s.checkpoint(), c.checkpoint);
    let r = s.entry_reader().unwrap();
    let off = s.view().read().unwrap().offsets[1];
    assert_eq!(r.read_record(off).unwrap(), vec![0, 2, b'b', b'b']);
    assert_eq!(std::fs::metadata(p.data.join("entries")).unwrap().len(), 7);
}

#[test]
fn lost_entries_or_foreign_checkpoint_refuse_to_start() {
    let tmp = tempfile::tempdir().unwrap();
    let p = paths(&tmp);
    let mut s = open(&p).unwrap();
    s.append_batch(&[b"a".to_vec(), b"bb".to_vec()]).unwrap();
    drop(s);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(p.data.join("entries"))
        .unwrap();
    f.set_len(4).unwrap();
    assert!(matches!(
        open(&p),
        Err(StorageError::BehindSigned {
            signed: 2,
            found: 1
        })
    ));
    let other = NamedKey::from_seed(ORIGIN, ALG_ED25519, &[4; 32]).unwrap();
    let r = LogStore::open(
        &p,
        ORIGIN,
        other.log_signer().unwrap(),
        LogVerifier::new(ORIGIN, other.verifying_key()),
    );
    assert!(matches!(r, Err(StorageError::Checkpoint(_))));
}

#[test]
fn edited_entries_refuse_to_start() {
    let tmp = tempfile::tempdir().unwrap();
    let p = paths(&tmp);
    let mut s = open(&p).unwrap();
    s.append_batch(&[b"a".to_vec()]).unwrap();
    drop(s);
    std::fs::write(p.data.join("entries"), [0, 1, b'z']).unwrap();
    assert!(matches!(open(&p), Err(StorageError::Corrupt(_))));
}

#[test]
fn deleted_or_older_checkpoint_never_shrinks_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let p = paths(&tmp);
    let mut s = open(&p).unwrap();
    let first = s.append_batch(&[b"a".to_vec()]).unwrap();
    let old_note = std::fs::read(p.data.join("checkpoint")).unwrap();
    let last = s.append_batch(&[b"b".to_vec(), b"c".to_vec()]).unwrap();
    drop(s);
    let acked = [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()];

    std::fs::remove_file(p.data.join("checkpoint")).unwrap();
    let s = open(&p).unwrap();
    assert_eq!(s.size(), 3);
    assert_eq!(s.checkpoint(), last.checkpoint, "same key, same text");
    check_consistent(&s, &acked, std::slice::from_ref(&first.checkpoint));
    drop(s);

    std::fs::write(p.data.join("checkpoint"), &old_note).unwrap();
    let mut s = open(&p).unwrap();
    assert_eq!(s.size(), 3);
    let next = s.append_batch(&[b"d".to_vec()]).unwrap();
    assert_eq!(next.size, 4);
    check_consistent(&s, &acked, &[first.checkpoint, last.checkpoint]);
}

#[test]
fn restored_data_directory_or_lost_record_cases() {
    let tmp = tempfile::tempdir().unwrap();
    let p = paths(&tmp);
    let mut s = open(&p).unwrap();
    s.append_batch(&[b"a".to_vec()]).unwrap();
    drop(s);
    let backup = (
        std::fs::read(p.data.join("entries")).unwrap(),
        std::fs::read(p.data.join("checkpoint")).unwrap(),
    );
    let mut s = open(&p).unwrap();
    s.append_batch(&[b"b".to_vec()]).unwrap();
    drop(s);
    // An old backup of the whole data directory: behind what was signed.
    std::fs::write(p.data.join("entries"), &backup.0).unwrap();
    std::fs::write(p.data.join("checkpoint"), &backup.1).unwrap();
    assert!(matches!(
        open(&p),
        Err(StorageError::BehindSigned {
            signed: 2,
            found: 1
        })
    ));
    // A wiped data directory cannot start a new log under the same key.
    std::fs::remove_dir_all(&p.data).unwrap();
    assert!(matches!(
        open(&p),
        Err(StorageError::BehindSigned {
            signed: 2,
            found: 0
        })
    ));
    // Entries with neither checkpoint nor record: refused, not truncated.
    std::fs::create_dir_all(&p.data).unwrap();
    std::fs::write(p.data.join("entries"), &backup.0).unwrap();
    std::fs::remove_file(&p.signed_size).unwrap();
    assert!(matches!(open(&p), Err(StorageError::Corrupt(_))));
    assert_eq!(std::fs::read(p.data.join("entries")).unwrap(), backup.0);
}

/// One durable step of a batch fails both ways; the reopened log keeps every
/// acknowledged entry and serves only checkpoints consistent with the ones
/// it served before. `expect` is the size after reopening.
fn batch_step_fails(step: Step, file: &str, fault: Fault, expect: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let p = paths(&tmp);
    let faulty = Arc::new(FaultyStorage::new());
    let mut s = open_with(faulty.clone(), &p).unwrap();
    let acked = vec![b"a".to_vec(), b"bb".to_vec()];
    let served = s.append_batch(&acked).unwrap().checkpoint;
    faulty.arm(FaultPlan {
        step,
        file: file.into(),
        skip: 0,
        fault,
    });
    let r = s.append_batch(&[b"ccc".to_vec(), b"d".to_vec()]);
    assert!(r.is_err(), "{step:?} {file} {fault:?} did not fail");
    assert!(faulty.fired().is_some());
    // Readers never saw the failed batch.
    assert_eq!(s.size(), 2);
    assert_eq!(s.checkpoint(), served);
    drop(s);

    let mut s = open(&p).unwrap();
    assert_eq!(s.size(), expect, "{step:?} {file} {fault:?}");
    check_consistent(&s, &acked, std::slice::from_ref(&served));
    let after = s.append_batch(&[b"e".to_vec()]).unwrap();
    assert_eq!(after.size, expect + 1);
    check_consistent(&s, &acked, &[served, after.checkpoint]);
}

#[test]
fn append_of_entries_fails_not_persisted() {
    batch_step_fails(Step::Append, "entries", Fault::NotPersisted, 2);
}

#[test]
fn append_of_entries_fails_persisted() {
    batch_step_fails(Step::Append, "entries", Fault::Persisted, 2);
}

#[test]
fn signed_size_record_fails_not_persisted() {
    batch_step_fails(Step::WriteAtomic, RECORD, Fault::NotPersisted, 2);
}

#[test]
fn signed_size_record_fails_persisted() {
    batch_step_fails(Step::WriteAtomic, RECORD, Fault::Persisted, 4);
}

#[test]
fn checkpoint_write_fails_not_persisted() {
    batch_step_fails(Step::WriteAtomic, "checkpoint", Fault::NotPersisted, 4);
}

#[test]
fn checkpoint_write_fails_persisted() {
    batch_step_fails(Step::WriteAtomic, "checkpoint", Fault::Persisted, 4);
}

/// One durable step of opening a new log fails both ways; opening again
/// gives an empty, working log.
#[test]
fn every_step_of_creating_a_log_fails_both_ways() {
    let steps = [
        (Step::CreateDir, "data"),
        (Step::Append, "entries"),
        (Step::WriteAtomic, RECORD),
        (Step::WriteAtomic, "checkpoint"),
    ];
    for (step, file) in steps {
        for fault in [Fault::NotPersisted, Fault::Persisted] {
            let tmp = tempfile::tempdir().unwrap();
            let p = paths(&tmp);
            let faulty = Arc::new(FaultyStorage::new());
            faulty.arm(FaultPlan {
                step,
                file: file.into(),
                skip: 0,
                fault,
            });
            assert!(open_with(faulty.clone(), &p).is_err(), "{step:?} {fault:?}");
            assert!(faulty.fired().is_some());
            let mut s = open(&p).unwrap();
            assert_eq!(s.size(), 0);
            let c = s.append_batch(&[b"a".to_vec()]).unwrap();
            check_consistent(&s, &[b"a".to_vec()], &[c.checkpoint]);
        }
    }
}

/// The recovery steps (cutting an unsigned tail, re-signing a deleted
/// checkpoint) fail both ways; recovery runs again on the next open.
#[test]
fn every_step_of_recovery_fails_both_ways() {
    let steps = [
        (Step::Truncate, "entries"),
        (Step::WriteAtomic, "checkpoint"),
    ];
    for (step, file) in steps {
        for fault in [Fault::NotPersisted, Fault::Persisted] {
            let tmp = tempfile::tempdir().unwrap();
            let p = paths(&tmp);
            let mut s = open(&p).unwrap();
            let acked = vec![b"a".to_vec(), b"bb".to_vec()];
            let served = s.append_batch(&acked).unwrap().checkpoint;
            drop(s);
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(p.data.join("entries"))
                .unwrap();
            f.write_all(&[0, 1, b'x']).unwrap();
            drop(f);
            std::fs::remove_file(p.data.join("checkpoint")).unwrap();
            let faulty = Arc::new(FaultyStorage::new());
            faulty.arm(FaultPlan {
                step,
                file: file.into(),
                skip: 0,
                fault,
            });
            assert!(open_with(faulty.clone(), &p).is_err(), "{step:?} {fault:?}");
            let mut s = open(&p).unwrap();
            assert_eq!(s.size(), 2);
            check_consistent(&s, &acked, std::slice::from_ref(&served));
            let after = s.append_batch(&[b"c".to_vec()]).unwrap();
            assert_eq!(after.size, 3);
            check_consistent(&s, &acked, &[served, after.checkpoint]);
        }
    }
}
