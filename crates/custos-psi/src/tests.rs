use super::*;
use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use rand_core::OsRng;

pub(crate) struct Fixture {
    pub secret_bytes: [u8; 32],
    pub table: BlindedTable,
    pub org_a: SigningKey,
    pub org_b: SigningKey,
    pub listed: Vec<[u8; 32]>,
}

pub(crate) fn fixture(n: usize) -> Fixture {
    let secret = ProviderSecret::generate(&mut OsRng);
    let org_a = SigningKey::from_bytes(&[1; 32]);
    let org_b = SigningKey::from_bytes(&[2; 32]);
    let salt = [9u8; 32];
    let listed: Vec<[u8; 32]> = (0..n)
        .map(|i| {
            let mut h = [0u8; 32];
            OsRng.fill_bytes(&mut h);
            h[0] = i as u8;
            h
        })
        .collect();
    let entries: Vec<ListedHash> = listed
        .iter()
        .map(|h| {
            let c = entry_commitment(&salt, h);
            ListedHash {
                hash: *h,
                entry: ListEntry {
                    commitment: c,
                    sig_a: sign_entry(&org_a, &c),
                    sig_b: sign_entry(&org_b, &c),
                },
            }
        })
        .collect();
    let table = build_table(
        &secret,
        TableParams::default(),
        (
            &org_a.verifying_key().to_bytes(),
            &org_b.verifying_key().to_bytes(),
        ),
        &salt,
        &entries,
        &mut OsRng,
    )
    .unwrap();
    Fixture {
        secret_bytes: secret.expose_bytes(),
        table,
        org_a,
        org_b,
        listed,
    }
}

use rand_core::RngCore as _;

fn orgs(f: &Fixture) -> ([u8; 32], [u8; 32]) {
    (
        f.org_a.verifying_key().to_bytes(),
        f.org_b.verifying_key().to_bytes(),
    )
}

fn payload(hash: [u8; 32]) -> InnerPayload {
    InnerPayload {
        hash,
        derivative: [7; DERIVATIVE_LEN],
    }
}

#[test]
fn listed_hashes_open_and_others_do_not() {
    let f = fixture(20);
    let (a, b) = orgs(&f);
    let logged = f.table.logged();
    let checked = f.table.clone().check(&logged, (&a, &b)).unwrap();
    let service = ServiceTable::new(
        ProviderSecret::from_bytes(&f.secret_bytes).unwrap(),
        &f.table,
    )
    .unwrap();
    let account = AccountKey::generate(3, &mut OsRng).unwrap();
    let v = make_voucher(&checked, &account, &payload(f.listed[4]), false, &mut OsRng);
    let bytes = v.encode();
    assert_eq!(bytes.len(), voucher_len(DEFAULT_SLOTS));
    let parsed = Voucher::decode(&bytes).unwrap();
    assert_eq!(parsed, v);
    let opened = service.open(&parsed).unwrap().unwrap();
    assert_eq!(opened.slots_opened, DEFAULT_SLOTS);
    // One bit flipped outside nothing: a random hash does not open.
    let mut other = [0u8; 32];
    OsRng.fill_bytes(&mut other);
    let v = make_voucher(&checked, &account, &payload(other), false, &mut OsRng);
    assert_eq!(service.open(&v).unwrap(), None);
    // A synthetic voucher opens, with a share that is not the account's.
    let v = make_voucher(&checked, &account, &payload(other), true, &mut OsRng);
    let s = service.open(&v).unwrap().unwrap();
    assert!(s.slots_opened >= 1);
    assert!(account.inner_key().open(&s.share).is_none());
}

#[test]
fn threshold_opens_exactly_the_real_matches() {
    let f = fixture(30);
    let (a, b) = orgs(&f);
    let checked = f.table.clone().check(&f.table.logged(), (&a, &b)).unwrap();
    let service = ServiceTable::new(
        ProviderSecret::from_bytes(&f.secret_bytes).unwrap(),
        &f.table,
    )
    .unwrap();
    let t = 4u16;
    let account = AccountKey::generate(t, &mut OsRng).unwrap();
    let mut shares = Vec::new();
    for i in 0..3 {
        let v = make_voucher(&checked, &account, &payload(f.listed[i]), false, &mut OsRng);
        shares.push(service.open(&v).unwrap().unwrap().share);
    }
    for _ in 0..3 {
        let v = make_voucher(&checked, &account, &payload([0; 32]), true, &mut OsRng);
        shares.push(service.open(&v).unwrap().unwrap().share);
    }
    // Three real and three synthetic: below T, every subset fails.
    assert!(reconstruct(&shares, t, 10_000, &mut OsRng).is_none());
    let v = make_voucher(&checked, &account, &payload(f.listed[9]), false, &mut OsRng);
    shares.push(service.open(&v).unwrap().unwrap().share);
    let key = reconstruct(&shares, t, 10_000, &mut OsRng).unwrap();
    let opened: Vec<_> = shares.iter().filter_map(|s| key.open(s)).collect();
    assert_eq!(opened.len(), 4);
    assert_eq!(opened[0].hash, f.listed[0]);
    assert_eq!(opened[3].hash, f.listed[9]);
    assert_eq!(opened[0].derivative, [7; DERIVATIVE_LEN]);
}

#[test]
fn tables_are_checked_against_the_log_and_both_sources() {
    let f = fixture(5);
    let (a, b) = orgs(&f);
    let mut logged = f.table.logged();
    assert!(f.table.clone().check(&logged, (&a, &b)).is_ok());
    // Another root.
    logged.root[0] ^= 1;
    assert!(matches!(
        f.table.clone().check(&logged, (&a, &b)),
        Err(TableError::NotLogged { .. })
    ));
    // Organisations not the manifest's.
    let logged = f.table.logged();
    assert!(matches!(
        f.table.clone().check(&logged, (&b, &a)),
        Err(TableError::WrongOrganisations)
    ));
    // An entry signed by one organisation only (B signature replaced by A's).
    let mut bytes = f.table.encode();
    let e0 = 1 + 1 + 1 + 32 + 32 + 32 + 32 + 4;
    let sig_a = bytes[e0 + 32..e0 + 96].to_vec();
    bytes[e0 + 96..e0 + 160].copy_from_slice(&sig_a);
    let forged = BlindedTable::decode(&bytes).unwrap();
    let logged = forged.logged();
    assert!(matches!(
        forged.check(&logged, (&a, &b)),
        Err(TableError::OneSource {
            index: 0,
            organisation: 'b'
        })
    ));
}

#[test]
fn builder_refuses_one_source_entries() {
    let secret = ProviderSecret::generate(&mut OsRng);
    let org_a = SigningKey::from_bytes(&[1; 32]);
    let org_b = SigningKey::from_bytes(&[2; 32]);
    let salt = [3; 32];
    let h = [5; 32];
    let c = entry_commitment(&salt, &h);
    let one = ListedHash {
        hash: h,
        entry: ListEntry {
            commitment: c,
            sig_a: sign_entry(&org_a, &c),
            sig_b: [0; 64],
        },
    };
    let r = build_table(
        &secret,
        TableParams::default(),
        (
            &org_a.verifying_key().to_bytes(),
            &org_b.verifying_key().to_bytes(),
        ),
        &salt,
        &[one],
        &mut OsRng,
    );
    assert!(matches!(r, Err(TableError::OneSource { .. })));
}

#[test]
fn service_refuses_vouchers_of_another_table() {
    let f = fixture(3);
    let g = fixture(3);
    let (a, b) = orgs(&f);
    let checked = f.table.clone().check(&f.table.logged(), (&a, &b)).unwrap();
    let service = ServiceTable::new(
        ProviderSecret::from_bytes(&g.secret_bytes).unwrap(),
        &g.table,
    )
    .unwrap();
    let account = AccountKey::generate(2, &mut OsRng).unwrap();
    let v = make_voucher(&checked, &account, &payload(f.listed[0]), false, &mut OsRng);
    assert!(matches!(
        service.open(&v),
        Err(VoucherError::WrongTable { .. })
    ));
    // The wrong secret for a table is refused.
    assert!(
        ServiceTable::new(
            ProviderSecret::from_bytes(&g.secret_bytes).unwrap(),
            &f.table
        )
        .is_none()
    );
}

#[test]
fn derivative_averages_boxes() {
    let d = derivative(64, 64, &vec![200u8; 64 * 64 * 3]).unwrap();
    assert!(d.iter().all(|&v| v == 200));
    assert!(derivative(64, 64, &[0; 10]).is_none());
    let d = derivative(5, 7, &[10u8; 5 * 7 * 3]).unwrap();
    assert!(d.iter().all(|&v| v == 10));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn voucher_decoding_never_panics_and_is_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..800)) {
        if let Ok(v) = Voucher::decode(&bytes) {
            prop_assert_eq!(v.encode(), bytes);
        }
    }

    #[test]
    fn table_decoding_never_panics_and_is_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(t) = BlindedTable::decode(&bytes) {
            prop_assert_eq!(t.encode(), bytes);
        }
    }

    #[test]
    fn flipped_voucher_bytes_never_open_as_real(pos in 0usize..2000, bit in 0u8..8) {
        let f = fixture(2);
        let (a, b) = orgs(&f);
        let checked = f.table.clone().check(&f.table.logged(), (&a, &b)).unwrap();
        let service = ServiceTable::new(ProviderSecret::from_bytes(&f.secret_bytes).unwrap(), &f.table).unwrap();
        let account = AccountKey::generate(1, &mut OsRng).unwrap();
        let v = make_voucher(&checked, &account, &payload(f.listed[0]), false, &mut OsRng);
        let mut bytes = v.encode();
        let pos = pos % bytes.len();
        bytes[pos] ^= 1 << bit;
        if let Ok(v) = Voucher::decode(&bytes) {
            // Only a flip that leaves one slot openable keeps the voucher
            // openable, and then the share is intact.
            if let Ok(Some(o)) = service.open(&v) {
                prop_assert!(account.inner_key().open(&o.share).is_some());
            }
        }
    }

    #[test]
    fn table_round_trips(n in 1usize..6) {
        let f = fixture(n);
        let bytes = f.table.encode();
        let t = BlindedTable::decode(&bytes).unwrap();
        prop_assert_eq!(t.root(), f.table.root());
        prop_assert_eq!(t.list_size() as usize, n);
    }
}
