use super::*;

fn deal() -> (DayKey, Vec<SecretShare>) {
    custos_escrow::dangerous::trusted_deal(20_500, 5, 3, &mut OsRng).unwrap()
}

/// Every byte of every file under `dir`, concatenated.
fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(all_bytes(&p));
        } else {
            out.extend(std::fs::read(&p).unwrap());
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn shares_are_encrypted_at_rest_survive_reopen_and_erasure_removes_every_byte() {
    let dir = tempfile::tempdir().unwrap();
    let key = CustodianKey::generate("c1.test").unwrap();
    let (day_key, shares) = deal();
    let share = &shares[0];
    let store = ShareStore::open(dir.path(), &key).unwrap();
    store.put(20_500, share, &day_key, &[7; 32]).unwrap();
    let plain = share.to_bytes();
    let file = std::fs::read(dir.path().join("shares/20500.share")).unwrap();
    let ciphertext = file[1 + NONCE_LEN..].to_vec();
    assert!(!contains(&all_bytes(dir.path()), plain.as_ref()));
    assert!(contains(&all_bytes(dir.path()), &ciphertext));
    drop(store);

    // Reopened: the share is still there and decrypts to the same bytes.
    let store = ShareStore::open(dir.path(), &key).unwrap();
    match store.share(20_500).unwrap() {
        ShareLookup::Live(s) => assert_eq!(s.to_bytes().as_ref(), plain.as_ref()),
        other => panic!("expected live share, got {other:?}"),
    }
    assert_eq!(store.day_key(20_500).unwrap().unwrap(), day_key);
    // Another key file cannot open it.
    let other = CustodianKey::generate("c1.test").unwrap();
    drop(store);
    assert!(matches!(
        ShareStore::open(dir.path(), &other).unwrap().share(20_500),
        Err(StoreError::Corrupt { .. })
    ));

    let store = ShareStore::open(dir.path(), &key).unwrap();
    store.erase(20_500).unwrap();
    assert!(matches!(store.share(20_500).unwrap(), ShareLookup::Erased));
    let everything = all_bytes(dir.path());
    assert!(!contains(&everything, plain.as_ref()));
    assert!(!contains(&everything, &ciphertext));
    assert!(!contains(&everything, &file));
    drop(store);
    // Erased is forever, across restarts; a new share for the day is refused.
    let store = ShareStore::open(dir.path(), &key).unwrap();
    assert!(matches!(store.share(20_500).unwrap(), ShareLookup::Erased));
    assert_eq!(
        store.status(20_500).unwrap(),
        Some(DayStatus::Erased { logged: false })
    );
    assert!(store.put(20_500, share, &day_key, &[7; 32]).is_err());
    store.mark_erasure_logged(20_500).unwrap();
    drop(store);
    let store = ShareStore::open(dir.path(), &key).unwrap();
    assert_eq!(
        store.status(20_500).unwrap(),
        Some(DayStatus::Erased { logged: true })
    );
}

#[test]
fn an_interrupted_erasure_is_finished_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let key = CustodianKey::generate("c1.test").unwrap();
    let (day_key, shares) = deal();
    let store = ShareStore::open(dir.path(), &key).unwrap();
    store.put(20_500, &shares[1], &day_key, &[7; 32]).unwrap();
    let file = std::fs::read(dir.path().join("shares/20500.share")).unwrap();
    // Crash after `erased` was recorded, before the file was erased.
    {
        let mut state = store.state.lock().unwrap();
        state.days.get_mut(&20_500).unwrap().status = DayStatus::Erased { logged: false };
        store.persist(&state).unwrap();
    }
    drop(store);
    // And an orphan share written just before a crash.
    std::fs::write(dir.path().join("shares/20501.share"), &file).unwrap();
    let store = ShareStore::open(dir.path(), &key).unwrap();
    assert!(!dir.path().join("shares/20500.share").exists());
    assert!(!dir.path().join("shares/20501.share").exists());
    assert!(!contains(&all_bytes(dir.path()), &file));
    assert!(matches!(store.share(20_501).unwrap(), ShareLookup::Unknown));
}

#[test]
fn an_erasure_not_yet_logged_keeps_the_file_but_never_serves_the_share() {
    let dir = tempfile::tempdir().unwrap();
    let key = CustodianKey::generate("c1.test").unwrap();
    let (day_key, shares) = deal();
    let store = ShareStore::open(dir.path(), &key).unwrap();
    store.put(20_500, &shares[2], &day_key, &[7; 32]).unwrap();
    let path = dir.path().join("shares/20500.share");
    let file = std::fs::read(&path).unwrap();
    store.begin_erasure(20_500).unwrap();
    store.begin_erasure(20_500).unwrap();
    drop(store);
    // A crash before the DayKeyErasure is logged: the file survives the
    // reopen (it is destroyed only after logging), the share is withheld.
    let store = ShareStore::open(dir.path(), &key).unwrap();
    assert_eq!(store.status(20_500).unwrap(), Some(DayStatus::Erasing));
    assert!(path.exists());
    assert!(matches!(store.share(20_500).unwrap(), ShareLookup::Erased));
    assert!(store.put(20_500, &shares[2], &day_key, &[7; 32]).is_err());
    // Logged: the file goes, every byte of it.
    store.finish_erasure(20_500).unwrap();
    store.finish_erasure(20_500).unwrap();
    assert!(!path.exists());
    assert!(!contains(&all_bytes(dir.path()), &file));
    assert_eq!(
        store.status(20_500).unwrap(),
        Some(DayStatus::Erased { logged: true })
    );
    // A live day cannot skip the erasing step.
    store.put(20_501, &shares[2], &day_key, &[7; 32]).unwrap();
    assert!(store.finish_erasure(20_501).is_err());
}
