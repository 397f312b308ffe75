//! Escrow benchmarks (BENCHMARKS.md, "Escrow (custos-escrow)"), with
//! commonware's Boneh–Franklin TLE in the same run as a baseline.
//!
//! Run on one core: `taskset -c 1 cargo bench -p custos-escrow --bench escrow`.
//! Times are the benchmark thread's CPU time (`custos_bench::CpuTime`), so that other
//! processes sharing the core do not inflate them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test and benchmark code: a panic is a failed test, not a service crash"
)]

use std::collections::BTreeMap;
use std::hint::black_box;

use commonware_cryptography::bls12381::primitives::ops::{keypair, sign_message};
use commonware_cryptography::bls12381::primitives::variant::MinSig;
use commonware_cryptography::bls12381::tle;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use custos_bench::CpuTime;
use custos_escrow::dkg::{Dealing, DkgConfig, Recipient, public_key_of};
use custos_escrow::{
    EscrowIdentity, PartialCheck, PartialKey, SealContext, dangerous, open, seal,
    verify_partials_batch,
};
use rand_chacha_cw::ChaCha20Rng;
use rand_chacha_cw::rand_core::SeedableRng;
use rand_core::{OsRng, RngCore};

type C = Criterion<CpuTime>;

const CONV: [u8; 16] = [0x42; 16];
const DAY: u32 = 20_418;

fn capsules(c: &mut C) {
    let (dk, shares) = dangerous::trusted_deal(DAY, 5, 3, &mut OsRng).unwrap();
    let ctx = SealContext::new(&dk, &CONV, DAY).unwrap();
    let id = *ctx.identity();
    let ck0 = [7u8; 32];
    let capsule = ctx.seal(b"chain", &ck0).unwrap();
    let key = dk
        .verify_and_combine(
            &id,
            &shares[..3]
                .iter()
                .map(|s| s.extract(&id))
                .collect::<Vec<_>>(),
            &mut OsRng,
        )
        .unwrap();

    let mut g = c.benchmark_group("capsule");
    g.bench_function("seal (cached context)", |b| {
        b.iter(|| ctx.seal(black_box(b"chain"), black_box(&ck0)).unwrap())
    });
    g.bench_function("verify (cached context)", |b| {
        b.iter(|| {
            ctx.verify(black_box(&capsule), black_box(b"chain"), black_box(&ck0))
                .unwrap()
        })
    });
    g.bench_function("seal (no cache)", |b| {
        b.iter(|| seal(&dk, &CONV, DAY, black_box(b"chain"), &ck0).unwrap())
    });
    g.bench_function("open", |b| {
        b.iter(|| open(black_box(&capsule), black_box(&key)).unwrap())
    });
    g.finish();
}

fn baseline(c: &mut C) {
    let mut rng = ChaCha20Rng::from_seed([1u8; 32]);
    let (secret, public) = keypair::<_, MinSig>(&mut rng);
    let target = CONV;
    let message = tle::Block::new([7u8; 32]);
    let ct = tle::encrypt::<_, MinSig>(&mut rng, public, (b"custos", &target), &message).unwrap();
    let sig = sign_message::<MinSig>(&secret, b"custos", &target);
    let mut g = c.benchmark_group("baseline commonware tle");
    g.bench_function("encrypt", |b| {
        b.iter(|| {
            tle::encrypt::<_, MinSig>(&mut rng, public, (b"custos", black_box(&target)), &message)
                .unwrap()
        })
    });
    g.bench_function("decrypt", |b| {
        b.iter(|| tle::decrypt::<MinSig>(black_box(&sig), black_box(&ct)).unwrap())
    });
    g.finish();
}

/// Primitive costs behind the design choices (docs/design/0001).
fn primitives(c: &mut C) {
    use blstrs::{G1Projective, G2Projective, Scalar};
    use ff::Field;
    use group::{Curve, Group};
    let id = EscrowIdentity::new(&CONV, DAY);
    let s = Scalar::random(OsRng);
    let r = Scalar::random(OsRng);
    let master = (G2Projective::generator() * s).to_affine();
    let q = *id.point();
    let gt = blstrs::pairing(&q, &master);
    let mut g = c.benchmark_group("primitive");
    g.bench_function("pairing", |b| {
        b.iter(|| blstrs::pairing(black_box(&q), black_box(&master)))
    });
    g.bench_function("G1 mul", |b| {
        b.iter(|| G1Projective::from(black_box(q)) * black_box(r))
    });
    g.bench_function("G2 mul (generator)", |b| {
        b.iter(|| G2Projective::generator() * black_box(r))
    });
    g.bench_function("GT exponentiation (blstrs)", |b| {
        b.iter(|| black_box(gt) * black_box(r))
    });
    g.bench_function("hash to G1", |b| {
        b.iter(|| EscrowIdentity::new(black_box(&CONV), DAY))
    });
    g.finish();
}

fn partial_keys(c: &mut C) {
    let (dk, shares) = dangerous::trusted_deal(DAY, 5, 3, &mut OsRng).unwrap();
    let id = EscrowIdentity::new(&CONV, DAY);
    let partials: Vec<PartialKey> = shares.iter().map(|s| s.extract(&id)).collect();
    let mut g = c.benchmark_group("partial key");
    g.bench_function("extract (hash identity + G1 mul)", |b| {
        b.iter(|| shares[0].extract(&EscrowIdentity::new(black_box(&CONV), DAY)))
    });
    g.bench_function("verify single", |b| {
        b.iter(|| dk.verify_partial(&id, black_box(&partials[0])).unwrap())
    });
    g.throughput(Throughput::Elements(5));
    g.bench_function("verify batched, 5 keys", |b| {
        b.iter(|| {
            dk.verify_partials(&id, black_box(&partials), &mut OsRng)
                .unwrap()
        })
    });
    g.throughput(Throughput::Elements(1));
    let verified = dk.verify_partials(&id, &partials, &mut OsRng).unwrap();
    g.bench_function("combine 3 of 5", |b| {
        b.iter(|| dk.combine(&id, black_box(&verified[1..4])).unwrap())
    });
    g.finish();

    // A warrant's worth: 16 conversations of one day, 5 custodians each.
    let ids: Vec<EscrowIdentity> = (0u8..16)
        .map(|i| EscrowIdentity::new(&[i; 16], DAY))
        .collect();
    let many: Vec<(usize, PartialKey)> = ids
        .iter()
        .enumerate()
        .flat_map(|(i, id)| shares.iter().map(move |s| (i, s.extract(id))))
        .collect();
    let checks: Vec<PartialCheck<'_>> = many
        .iter()
        .map(|(i, p)| PartialCheck {
            day_key: &dk,
            identity: &ids[*i],
            partial: p,
        })
        .collect();
    let mut g = c.benchmark_group("partial key");
    g.throughput(Throughput::Elements(checks.len() as u64));
    g.sample_size(20);
    g.bench_function("verify batched, 16 identities x 5 keys", |b| {
        b.iter(|| verify_partials_batch(black_box(&checks), &mut OsRng).unwrap())
    });
    g.finish();

    // A larger committee, to show the per-key cost of batching.
    let (dk64, shares64) = dangerous::trusted_deal(DAY, 64, 33, &mut OsRng).unwrap();
    let partials64: Vec<PartialKey> = shares64.iter().map(|s| s.extract(&id)).collect();
    let mut g = c.benchmark_group("partial key");
    g.throughput(Throughput::Elements(64));
    g.sample_size(20);
    g.bench_function("verify batched, 64 keys", |b| {
        b.iter(|| {
            dk64.verify_partials(&id, black_box(&partials64), &mut OsRng)
                .unwrap()
        })
    });
    g.finish();
}

/// One full DKG among 5 custodians (threshold 3), all run on this core.
fn dkg(c: &mut C) {
    let secrets: Vec<[u8; 32]> = (0..5)
        .map(|_| {
            let mut k = [0u8; 32];
            OsRng.fill_bytes(&mut k);
            k
        })
        .collect();
    let publics: Vec<[u8; 32]> = secrets.iter().map(|s| public_key_of(s).unwrap()).collect();
    let cfg = DkgConfig::new(DAY, 3, &publics).unwrap();
    let mut g = c.benchmark_group("dkg");
    g.sample_size(10);
    g.bench_function("full DKG n=5 t=3 (all custodians)", |b| {
        b.iter_batched(
            || (),
            |()| run_lockstep(&cfg, &secrets),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn run_lockstep(cfg: &DkgConfig, secrets: &[[u8; 32]]) -> [u8; 32] {
    let mut inbox: BTreeMap<u32, Vec<(u32, Vec<u8>)>> = BTreeMap::new();
    let route = |from: u32,
                 out: Vec<custos_escrow::dkg::Outgoing>,
                 inbox: &mut BTreeMap<u32, Vec<(u32, Vec<u8>)>>| {
        for m in out {
            match m.to {
                Recipient::Custodian(to) => inbox.entry(to).or_default().push((from, m.bytes)),
                Recipient::All => {
                    for to in 1..=5 {
                        inbox.entry(to).or_default().push((from, m.bytes.clone()));
                    }
                }
            }
        }
    };
    let mut states = BTreeMap::new();
    for s in secrets {
        let (d, out) = Dealing::start(cfg, s, &mut OsRng).unwrap();
        route(d.index(), out, &mut inbox);
        states.insert(d.index(), d);
    }
    for _ in 0..2 {
        for (i, d) in states.iter_mut() {
            for (from, bytes) in inbox.remove(i).unwrap_or_default() {
                let out = d.handle(from, &bytes).unwrap();
                route(*i, out, &mut inbox);
            }
        }
    }
    let mut fins = BTreeMap::new();
    for (i, d) in states {
        let (f, log) = d.finish();
        route(i, vec![log], &mut inbox);
        fins.insert(i, f);
    }
    let mut hash = [0u8; 32];
    for (i, mut f) in fins {
        for (from, bytes) in inbox.remove(&i).unwrap_or_default() {
            f.handle(from, &bytes).unwrap();
        }
        hash = f.finalize().unwrap().public.transcript_hash;
    }
    hash
}

/// The benchmark groups.
mod groups {
    #![allow(missing_docs, reason = "criterion macros generate undocumented items")]
    use super::*;
    criterion_group! {
        name = benches;
        config = Criterion::default().with_measurement(CpuTime);
        targets = capsules, baseline, primitives, partial_keys, dkg
    }
}
criterion_main!(groups::benches);
