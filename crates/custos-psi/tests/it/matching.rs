//! Issue 15, test 5: a modified picture whose PDQ hash stays close still
//! matches through a real voucher; an unrelated picture does not. Pictures
//! are synthetic (`custos_media::synthetic`), their hashes put on a test list.

use custos_media::synthetic::{self, Modification};
use custos_psi::{
    AccountKey, BlindedTable, InnerPayload, ListEntry, ListedHash, ProviderSecret, Sampler,
    ServiceTable, TableParams, build_table, entry_commitment, make_voucher, sign_entry,
};
use ed25519_dalek::SigningKey;
use rand::SeedableRng as _;
use rand_core::OsRng;

/// The modifications this design claims to survive (design note 0017):
/// re-encoding and small brightness shifts. Resizing is measured but not
/// claimed (a quarter of halved pictures are missed).
pub const CLAIMED: [Modification; 3] = [
    Modification::Jpeg(80),
    Modification::Jpeg(50),
    Modification::Brightness(12),
];

fn hash(p: &custos_media::Picture) -> [u8; 32] {
    *custos_media::hash(p).hash.as_bytes()
}

fn distance(a: &[u8; 32], b: &[u8; 32]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

fn table_of(hashes: &[[u8; 32]], params: TableParams) -> (BlindedTable, [u8; 32]) {
    // A seeded generator: the table's samples, and so the test, are the
    // same on every run.
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    let secret = ProviderSecret::generate(&mut rng);
    let a = SigningKey::from_bytes(&[11; 32]);
    let b = SigningKey::from_bytes(&[12; 32]);
    let salt = [1; 32];
    let listed: Vec<ListedHash> = hashes
        .iter()
        .map(|h| {
            let c = entry_commitment(&salt, h);
            ListedHash {
                hash: *h,
                entry: ListEntry {
                    commitment: c,
                    sig_a: sign_entry(&a, &c),
                    sig_b: sign_entry(&b, &c),
                },
            }
        })
        .collect();
    let table = build_table(
        &secret,
        params,
        (&a.verifying_key().to_bytes(), &b.verifying_key().to_bytes()),
        &salt,
        &listed,
        &mut rng,
    )
    .unwrap();
    (table, secret.expose_bytes())
}

#[test]
fn modified_pictures_match_and_unrelated_ones_do_not() {
    let originals: Vec<_> = (0..12u64)
        .map(|s| synthetic::picture(s, 256, 256).unwrap())
        .collect();
    let listed: Vec<[u8; 32]> = originals.iter().map(hash).collect();
    let (table, secret) = table_of(&listed, TableParams::default());
    let logged = table.logged();
    let orgs = table.organisations();
    let service = ServiceTable::new(ProviderSecret::from_bytes(&secret).unwrap(), &table).unwrap();
    let checked = table.check(&logged, (&orgs.0, &orgs.1)).unwrap();
    let account = AccountKey::generate(10, &mut OsRng).unwrap();
    let opens = |h: [u8; 32]| {
        let v = make_voucher(
            &checked,
            &account,
            &InnerPayload {
                hash: h,
                derivative: [0; custos_psi::DERIVATIVE_LEN],
            },
            false,
            &mut OsRng,
        );
        service.open(&v).unwrap().is_some()
    };
    let mut missed = Vec::new();
    for (i, p) in originals.iter().enumerate() {
        assert!(opens(listed[i]), "an exact listed picture must match");
        for m in CLAIMED {
            let h = hash(&m.apply(p).unwrap());
            if !opens(h) {
                missed.push((i, m, distance(&h, &listed[i])));
            }
        }
    }
    // The claimed modifications: at most one miss in 36 (the rates measured
    // over 200 pictures are in the design note).
    assert!(missed.len() <= 1, "missed: {missed:?}");
    // Unrelated pictures never match.
    for s in 1000..1030u64 {
        let h = hash(&synthetic::picture(s, 256, 256).unwrap());
        assert!(!opens(h), "unrelated picture {s} matched");
    }
}

/// Prints the distances and per-configuration rates (run with
/// `--ignored --nocapture`; the figures of the design note).
#[test]
#[ignore]
fn measure_rates() {
    let n = 200u64;
    let originals: Vec<_> = (0..n)
        .map(|s| synthetic::picture(s, 256, 256).unwrap())
        .collect();
    let listed: Vec<[u8; 32]> = originals.iter().map(hash).collect();
    let mods = [
        Modification::Jpeg(80),
        Modification::Jpeg(50),
        Modification::Resize(0.5),
        Modification::Resize(1.5),
        Modification::Brightness(12),
        Modification::Brightness(30),
        Modification::Crop(0.03),
        Modification::Crop(0.08),
    ];
    let modified: Vec<Vec<[u8; 32]>> = mods
        .iter()
        .map(|m| {
            originals
                .iter()
                .map(|p| hash(&m.apply(p).unwrap()))
                .collect()
        })
        .collect();
    let unrelated: Vec<[u8; 32]> = (100_000..100_000 + 2 * n)
        .map(|s| hash(&synthetic::picture(s, 256, 256).unwrap()))
        .collect();
    for (m, hs) in mods.iter().zip(&modified) {
        let mut d: Vec<u32> = hs
            .iter()
            .zip(&listed)
            .map(|(a, b)| distance(a, b))
            .collect();
        d.sort_unstable();
        println!(
            "{m:?}: distance median {} p90 {} max {}",
            d[d.len() / 2],
            d[d.len() * 9 / 10],
            d[d.len() - 1]
        );
    }
    let mut ud: Vec<u32> = Vec::new();
    for a in &unrelated {
        for b in &listed {
            ud.push(distance(a, b));
        }
    }
    ud.sort_unstable();
    println!(
        "unrelated: distance min {} median {}",
        ud[0],
        ud[ud.len() / 2]
    );
    for (slots, bits) in [(4u8, 32u8), (4, 40), (6, 40), (8, 40), (8, 48), (4, 24)] {
        let s = Sampler::new(&[5; 32], slots, bits);
        let matches = |a: &[u8; 32], b: &[u8; 32]| {
            (0..usize::from(slots)).any(|i| s.element(i, a) == s.element(i, b))
        };
        let mut line = format!("slots {slots} bits {bits}:");
        for (m, hs) in mods.iter().zip(&modified) {
            let miss = hs
                .iter()
                .zip(&listed)
                .filter(|(a, b)| !matches(a, b))
                .count();
            line += &format!(" {m:?} FN {:.3};", miss as f64 / n as f64);
        }
        let fp = unrelated
            .iter()
            .flat_map(|a| listed.iter().map(move |b| (a, b)))
            .filter(|(a, b)| matches(a, b))
            .count();
        line += &format!(" FP pairs {fp}/{}", unrelated.len() * listed.len());
        println!("{line}");
    }
}

/// Vouchers checked per second by the service on two threads (wall clock;
/// run with `--ignored --nocapture`, figure in BENCHMARKS.md).
#[test]
#[ignore]
fn service_throughput_two_threads() {
    let listed: Vec<[u8; 32]> = (0..1000u32)
        .map(|i| {
            let mut h = [0u8; 32];
            h[..4].copy_from_slice(&i.to_be_bytes());
            h[31] = 0x5a;
            h
        })
        .collect();
    let (table, secret) = table_of(&listed, TableParams::default());
    let logged = table.logged();
    let orgs = table.organisations();
    let checked = table.clone().check(&logged, (&orgs.0, &orgs.1)).unwrap();
    let account = AccountKey::generate(10, &mut OsRng).unwrap();
    let vouchers: Vec<_> = (0..2000usize)
        .map(|i| {
            let hash = if i % 10 == 0 {
                listed[i % 1000]
            } else {
                [i as u8; 32]
            };
            make_voucher(
                &checked,
                &account,
                &InnerPayload {
                    hash,
                    derivative: [0; custos_psi::DERIVATIVE_LEN],
                },
                false,
                &mut OsRng,
            )
        })
        .collect();
    let service = ServiceTable::new(ProviderSecret::from_bytes(&secret).unwrap(), &table).unwrap();
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        for half in vouchers.chunks(1000) {
            let service = &service;
            s.spawn(move || {
                for v in half {
                    let _ = service.open(v).unwrap();
                }
            });
        }
    });
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{} vouchers in {secs:.3} s on 2 threads: {:.0} per second",
        vouchers.len(),
        vouchers.len() as f64 / secs
    );
}
