//! Vouchers (issue 15 goals: made on the device in at most 2 ms; checked by
//! the service in at most 0.2 ms, 10,000 per second), against a baseline
//! measured in the same run (BENCHMARKS.md):
//! - `psi/baseline_scalar_mul`: one ristretto255 variable-base scalar
//!   multiplication (curve25519-dalek), the unit both sides are made of.
//! - `psi/voucher_create/S`: [`custos_psi::make_voucher`] for a real voucher
//!   against a table of 1,000 listed hashes with `S` slots (40 bits each).
//! - `psi/service_open_match/S` and `psi/service_open_miss/S`:
//!   [`custos_psi::ServiceTable::open`] of a matching and a non-matching voucher.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "benchmark code"
)]

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use curve25519_dalek_5::{RistrettoPoint, Scalar};
use custos_bench::CpuTime;
use custos_psi::{
    AccountKey, InnerPayload, ListEntry, ListedHash, ProviderSecret, ServiceTable, TableParams,
    build_table, entry_commitment, make_voucher, sign_entry,
};
use ed25519_dalek::SigningKey;
use rand_core::{OsRng, RngCore};

fn bench(c: &mut Criterion<CpuTime>) {
    let mut g = c.benchmark_group("psi");
    let mut wide = [0u8; 64];
    OsRng.fill_bytes(&mut wide);
    let p = RistrettoPoint::from_uniform_bytes(&wide);
    OsRng.fill_bytes(&mut wide);
    let s = Scalar::from_bytes_mod_order_wide(&wide);
    g.bench_function("baseline_scalar_mul", |b| b.iter(|| s * p));
    let pc = p.compress();
    g.bench_function("part_decompress", |b| b.iter(|| pc.decompress().unwrap()));
    g.bench_function("part_compress", |b| b.iter(|| p.compress()));
    let four = [p, p + p, p + p + p, p + p + p + p];
    g.bench_function("part_double_and_compress_batch_4", |b| {
        b.iter(|| RistrettoPoint::double_and_compress_batch(&four))
    });
    let a = SigningKey::from_bytes(&[1; 32]);
    let o = SigningKey::from_bytes(&[2; 32]);
    let salt = [3; 32];
    let hashes: Vec<[u8; 32]> = (0..1000)
        .map(|_| {
            let mut h = [0; 32];
            OsRng.fill_bytes(&mut h);
            h
        })
        .collect();
    let listed: Vec<ListedHash> = hashes
        .iter()
        .map(|h| {
            let c = entry_commitment(&salt, h);
            ListedHash {
                hash: *h,
                entry: ListEntry {
                    commitment: c,
                    sig_a: sign_entry(&a, &c),
                    sig_b: sign_entry(&o, &c),
                },
            }
        })
        .collect();
    let orgs = (a.verifying_key().to_bytes(), o.verifying_key().to_bytes());
    for slots in [4u8, 6, 8] {
        let secret = ProviderSecret::generate(&mut OsRng);
        let table = build_table(
            &secret,
            TableParams {
                slots,
                sample_bits: 40,
            },
            (&orgs.0, &orgs.1),
            &salt,
            &listed,
            &mut OsRng,
        )
        .unwrap();
        let service = ServiceTable::new(
            ProviderSecret::from_bytes(&secret.expose_bytes()).unwrap(),
            &table,
        )
        .unwrap();
        let logged = table.logged();
        let checked = table.check(&logged, (&orgs.0, &orgs.1)).unwrap();
        let account = AccountKey::generate(10, &mut OsRng).unwrap();
        let payload = InnerPayload {
            hash: hashes[7],
            derivative: [9; custos_psi::DERIVATIVE_LEN],
        };
        g.bench_with_input(BenchmarkId::new("voucher_create", slots), &slots, |b, _| {
            b.iter(|| make_voucher(&checked, &account, &payload, false, &mut OsRng))
        });
        let hit = make_voucher(&checked, &account, &payload, false, &mut OsRng);
        let miss_payload = InnerPayload {
            hash: [0x5a; 32],
            ..payload.clone()
        };
        let miss = make_voucher(&checked, &account, &miss_payload, false, &mut OsRng);
        assert!(service.open(&hit).unwrap().is_some());
        assert!(service.open(&miss).unwrap().is_none());
        g.bench_with_input(
            BenchmarkId::new("service_open_match", slots),
            &slots,
            |b, _| b.iter(|| service.open(&hit).unwrap()),
        );
        let hit_bytes = hit.encode();
        g.bench_with_input(
            BenchmarkId::new("service_decode_open_match", slots),
            &slots,
            |b, _| {
                b.iter(|| {
                    service
                        .open(&custos_psi::Voucher::decode(&hit_bytes).unwrap())
                        .unwrap()
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("service_open_miss", slots),
            &slots,
            |b, _| b.iter(|| service.open(&miss).unwrap()),
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = bench
}
criterion_main!(benches);
