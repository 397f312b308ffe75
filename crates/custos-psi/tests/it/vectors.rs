//! Test vectors of the table and voucher encodings
//! (`crates/custos-psi/tests/vectors/*.vector`): `kind` is `table` or
//! `voucher`, `bytes` the encoding, `expect` `ok` or the refusal's variant.
//! An accepted encoding must re-encode to the same bytes; a table vector
//! that is `ok` also gives its `root`. The vectors are written by
//! `write_vectors` (ignored; run it once to regenerate) from a seeded
//! generator, so they are the same on every machine.

use custos_psi::list::{ListError, SignedList};
use custos_psi::{
    AccountKey, BlindedTable, InnerPayload, ListEntry, ListedHash, ProviderSecret, TableError,
    TableParams, Voucher, VoucherError, build_table, entry_commitment, make_voucher, sign_entry,
};
use custos_vectors::Vector;
use ed25519_dalek::SigningKey;
use rand::SeedableRng as _;
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn table_outcome(e: &TableError) -> &'static str {
    match e {
        TableError::Wire(_) => "wire",
        TableError::OutOfBounds { .. } => "out_of_bounds",
        TableError::BadPoint { .. } => "bad_point",
        TableError::NotSorted(_) => "not_sorted",
        _ => "other",
    }
}

fn voucher_outcome(e: &VoucherError) -> &'static str {
    match e {
        VoucherError::Wire(_) => "wire",
        VoucherError::Length { .. } => "length",
        VoucherError::BadPoint(_) => "bad_point",
        _ => "other",
    }
}

fn list_outcome(e: &ListError) -> &'static str {
    match e {
        ListError::Wire(_) => "wire",
        ListError::OutOfBounds(_) => "out_of_bounds",
        _ => "other",
    }
}

#[test]
fn vectors_decode_as_expected() {
    let vectors = custos_vectors::read_dir(&dir()).unwrap();
    assert!(vectors.len() >= 8, "vectors missing");
    for v in vectors {
        let bytes = v.hex("bytes").unwrap();
        let expect = v.field("expect").unwrap();
        match v.field("kind").unwrap() {
            "table" => match BlindedTable::decode(&bytes) {
                Ok(t) => {
                    assert_eq!(expect, "ok", "{}", v.name);
                    assert_eq!(t.encode(), bytes, "{}", v.name);
                    assert_eq!(
                        hex::encode(t.root()),
                        v.field("root").unwrap(),
                        "{}",
                        v.name
                    );
                }
                Err(e) => assert_eq!(table_outcome(&e), expect, "{}: {e}", v.name),
            },
            "voucher" => match Voucher::decode(&bytes) {
                Ok(x) => {
                    assert_eq!(expect, "ok", "{}", v.name);
                    assert_eq!(x.encode(), bytes, "{}", v.name);
                }
                Err(e) => assert_eq!(voucher_outcome(&e), expect, "{}: {e}", v.name),
            },
            "signed_list" => match SignedList::decode(&bytes) {
                Ok(l) => {
                    assert_eq!(expect, "ok", "{}", v.name);
                    assert_eq!(l.encode(), bytes, "{}", v.name);
                }
                Err(e) => assert_eq!(list_outcome(&e), expect, "{}: {e}", v.name),
            },
            other => panic!("{}: unknown kind {other}", v.name),
        }
    }
}

#[test]
#[ignore]
fn write_vectors() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(2021);
    let secret = ProviderSecret::generate(&mut rng);
    let a = SigningKey::from_bytes(&[21; 32]);
    let b = SigningKey::from_bytes(&[22; 32]);
    let salt = [23; 32];
    let listed: Vec<ListedHash> = (0..3u8)
        .map(|i| {
            let h = [i.wrapping_mul(37).wrapping_add(5); 32];
            let c = entry_commitment(&salt, &h);
            ListedHash {
                hash: h,
                entry: ListEntry {
                    commitment: c,
                    sig_a: sign_entry(&a, &c),
                    sig_b: sign_entry(&b, &c),
                },
            }
        })
        .collect();
    let orgs = (a.verifying_key().to_bytes(), b.verifying_key().to_bytes());
    let table = build_table(
        &secret,
        TableParams::default(),
        (&orgs.0, &orgs.1),
        &salt,
        &listed,
        &mut rng,
    )
    .unwrap();
    let t = table.encode();
    let d = dir();
    let write = |name: &str, comment: &str, kind: &str, bytes: &[u8], expect: &str| {
        let mut v = Vector::new(&format!("{name}.vector"), comment)
            .with("kind", kind)
            .with_hex("bytes", bytes)
            .with("expect", expect);
        if expect == "ok" && kind == "table" {
            v = v.with(
                "root",
                hex::encode(BlindedTable::decode(bytes).unwrap().root()),
            );
        }
        custos_vectors::write(&d, &v).unwrap();
    };
    write(
        "table-ok",
        "A table of three listed hashes, 4 slots of 40 bits.",
        "table",
        &t,
        "ok",
    );
    let mut v2 = t.clone();
    v2[0] = 2;
    write("table-version-2", "Unknown version.", "table", &v2, "wire");
    write(
        "table-truncated",
        "The last bucket cut short.",
        "table",
        &t[..t.len() - 1],
        "wire",
    );
    let mut trailing = t.clone();
    trailing.push(0);
    write(
        "table-trailing",
        "One byte after the last bucket.",
        "table",
        &trailing,
        "wire",
    );
    let mut slots = t.clone();
    slots[1] = 17;
    write(
        "table-slots-17",
        "17 slots (at most 16).",
        "table",
        &slots,
        "out_of_bounds",
    );
    let mut same = t.clone();
    let (oa, ob) = (3 + 32 + 32, 3 + 32 + 32 + 32);
    let org_a = same[oa..oa + 32].to_vec();
    same[ob..ob + 32].copy_from_slice(&org_a);
    write(
        "table-same-organisations",
        "Organisation B is organisation A.",
        "table",
        &same,
        "out_of_bounds",
    );
    let mut point = t.clone();
    let last = point.len() - 32;
    point[last..].copy_from_slice(&[0xff; 32]);
    write(
        "table-bad-point",
        "The last bucket is not a canonical point.",
        "table",
        &point,
        "bad_point",
    );
    let mut unsorted = t.clone();
    let e0 = 3 + 32 * 4 + 4;
    let (first, second) = (
        unsorted[e0..e0 + 160].to_vec(),
        unsorted[e0 + 160..e0 + 320].to_vec(),
    );
    unsorted[e0..e0 + 160].copy_from_slice(&second);
    unsorted[e0 + 160..e0 + 320].copy_from_slice(&first);
    write(
        "table-entries-unsorted",
        "Entries 0 and 1 swapped.",
        "table",
        &unsorted,
        "not_sorted",
    );

    let logged = table.logged();
    let checked = table.check(&logged, (&orgs.0, &orgs.1)).unwrap();
    let account = AccountKey::generate(10, &mut rng).unwrap();
    let payload = InnerPayload {
        hash: listed[0].hash,
        derivative: [128; custos_psi::DERIVATIVE_LEN],
    };
    let voucher = make_voucher(&checked, &account, &payload, false, &mut rng).encode();
    write(
        "voucher-ok",
        "A real voucher for a listed hash.",
        "voucher",
        &voucher,
        "ok",
    );
    let mut vv = voucher.clone();
    vv[0] = 0;
    write(
        "voucher-version-0",
        "Unknown version.",
        "voucher",
        &vv,
        "wire",
    );
    write(
        "voucher-truncated",
        "One byte short.",
        "voucher",
        &voucher[..voucher.len() - 1],
        "length",
    );
    let mut vs = voucher.clone();
    vs[33] = 0;
    write("voucher-zero-slots", "No slot.", "voucher", &vs, "length");
    let mut vp = voucher.clone();
    vp[34..66].copy_from_slice(&[0xff; 32]);
    write(
        "voucher-bad-q",
        "Slot 0's Q is not a canonical point.",
        "voucher",
        &vp,
        "bad_point",
    );
}

#[test]
#[ignore]
fn write_signed_list_vectors() {
    let a = SigningKey::from_bytes(&[21; 32]);
    let hashes: Vec<[u8; 32]> = (0..3u8)
        .map(|i| [i.wrapping_mul(37).wrapping_add(5); 32])
        .collect();
    let l = SignedList::sign(&a, &[23; 32], &hashes).unwrap().encode();
    let d = dir();
    let write = |name: &str, comment: &str, bytes: &[u8], expect: &str| {
        let v = Vector::new(&format!("{name}.vector"), comment)
            .with("kind", "signed_list")
            .with_hex("bytes", bytes)
            .with("expect", expect);
        custos_vectors::write(&d, &v).unwrap();
    };
    write(
        "signed-list-ok",
        "Organisation A's list of three hashes over salt 23..23.",
        &l,
        "ok",
    );
    let mut v2 = l.clone();
    v2[0] = 2;
    write("signed-list-version-2", "Unknown version.", &v2, "wire");
    write(
        "signed-list-truncated",
        "The last signature cut short.",
        &l[..l.len() - 1],
        "wire",
    );
    let e0 = 1 + 32 + 32 + 4;
    let mut dup = l.clone();
    let first = dup[e0..e0 + 96].to_vec();
    dup[e0 + 96..e0 + 192].copy_from_slice(&first);
    write(
        "signed-list-duplicate",
        "Entry 1 repeats entry 0 (hashes must be strictly ascending).",
        &dup,
        "out_of_bounds",
    );
    let mut zero = l[..e0 - 4].to_vec();
    zero.extend_from_slice(&[0, 0, 0, 0]);
    write("signed-list-empty", "No entry.", &zero, "out_of_bounds");
}
