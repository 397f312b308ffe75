//! The audit replaying a log of 1,000,000 statements (goal: at most 60 s),
//! against a baseline measured in the same run (see BENCHMARKS.md):
//! - `replay_with_figures`: the whole audit as `custos audit` runs it,
//!   minus HTTP: every entry hashed into the tree, decoded, its author
//!   looked up in the manifest, its signature checked (strict Ed25519),
//!   the role rule, then counted into the lawful-access figures (unsealings
//!   verified against their commitments), and the figures finished.
//! - `baseline_leaf_hashing`: RFC 9162 leaf hashing of the same entries
//!   into a streaming root, the least any replay must do.
//!
//! The input is built offline, in memory: a manifest (log, 2 witnesses,
//! 2 courts, 2 authorities, a provider, 5 custodians with threshold 3), and
//! a log of signed statements in a repeating pattern per warrant: the
//! commitment, 3 releases, an interception, an unsealing, and one day key
//! and one erasure, with a checkpoint signed by the log and cosigned by both
//! witnesses. `CUSTOS_AUDIT_BENCH_ENTRIES` sets the number of entries
//! (default 1,000,000; building them signs every statement once).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "benchmark code"
)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use custos_bench::CpuTime;
use custos_tlog::audit::Replay;
use custos_tlog::checkpoint::checkpoint_text;
use custos_tlog::{ALG_COSIGNATURE_V1, ALG_ED25519, NamedKey, StreamingRoot};
use custos_verify::figures::{FigureOptions, Figures};
use custos_wire::ConversationId;
use custos_wire::manifest::{Manifest, Participant, Policy, Role};
use custos_wire::statement::{
    DayKeyErasure, EscrowDayKey, Interception, KeyRelease, SignedStatement, Statement,
    WarrantUnsealing, warrant_commitment,
};
use custos_wire::warrant::{Warrant, WarrantFields};
use ed25519_dalek::SigningKey;

const ORIGIN: &str = "log.bench";
const DAY: u64 = 86_400;
const FIRST_DAY: u32 = 20_000;
const CUSTODIANS: usize = 5;

struct Keys {
    log: NamedKey,
    witnesses: Vec<NamedKey>,
    courts: Vec<SigningKey>,
    authorities: Vec<SigningKey>,
    provider: SigningKey,
    custodians: Vec<SigningKey>,
}

fn keys() -> Keys {
    let k = |seed: u8| SigningKey::from_bytes(&[seed; 32]);
    Keys {
        log: NamedKey::from_seed(ORIGIN, ALG_ED25519, &[1; 32]).unwrap(),
        witnesses: (0..2u8)
            .map(|i| {
                NamedKey::from_seed(
                    &format!("witness-{i}.bench"),
                    ALG_COSIGNATURE_V1,
                    &[10 + i; 32],
                )
                .unwrap()
            })
            .collect(),
        courts: vec![k(2), k(3)],
        authorities: vec![k(4), k(5)],
        provider: k(6),
        custodians: (0..CUSTODIANS).map(|i| k(30 + i as u8)).collect(),
    }
}

fn court(i: usize) -> String {
    format!("court-{i}.bench")
}
fn authority(i: usize) -> String {
    format!("police-{i}.bench")
}
fn custodian(i: usize) -> String {
    format!("custodian-{i}.bench")
}

fn manifest(keys: &Keys) -> Manifest {
    let p = |name: String, role, key: [u8; 32]| Participant {
        name,
        role,
        jurisdiction: "EU".into(),
        endpoint: None,
        public_key: hex::encode(key),
    };
    let mut ps = vec![p(
        ORIGIN.into(),
        Role::Log,
        keys.log.verifying_key().to_bytes(),
    )];
    for w in &keys.witnesses {
        ps.push(p(
            w.name().into(),
            Role::Witness,
            w.verifying_key().to_bytes(),
        ));
    }
    for (i, c) in keys.courts.iter().enumerate() {
        ps.push(p(court(i), Role::Court, c.verifying_key().to_bytes()));
    }
    for (i, a) in keys.authorities.iter().enumerate() {
        ps.push(p(
            authority(i),
            Role::Authority,
            a.verifying_key().to_bytes(),
        ));
    }
    ps.push(p(
        "provider.bench".into(),
        Role::Provider,
        keys.provider.verifying_key().to_bytes(),
    ));
    for (i, c) in keys.custodians.iter().enumerate() {
        ps.push(p(
            custodian(i),
            Role::Custodian,
            c.verifying_key().to_bytes(),
        ));
    }
    Manifest::new(2, 3, Policy::default(), ps).unwrap()
}

/// The 8 statements of warrant number `n`.
fn cycle(keys: &Keys, n: u64) -> Vec<Vec<u8>> {
    let c = (n % 2) as usize;
    let a = ((n / 2) % 2) as usize;
    let day = FIRST_DAY + (n / 50) as u32;
    let issued_at = u64::from(day) * DAY;
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&n.to_be_bytes());
    let warrant = Warrant::sign(
        WarrantFields {
            id,
            court: court(c),
            authority: authority(a),
            legal_basis: "s. 100a StPO".into(),
            targets: vec![ConversationId([(n % 251) as u8; 16])],
            first_day: day,
            last_day: day + 1,
            issued_at,
            not_after: issued_at + 5 * DAY,
            embargo_until: issued_at + 30 * DAY,
            authority_hpke_key: [9; 32],
        },
        &keys.courts[c],
    )
    .unwrap();
    let bytes = warrant.encode().unwrap();
    let mut salt = [0u8; 32];
    salt[..8].copy_from_slice(&n.to_be_bytes());
    let commitment = warrant_commitment(&salt, &bytes);
    let f = warrant.fields();
    let sign = |st: Statement, key: &SigningKey| {
        SignedStatement::sign(&st, key).unwrap().encode().unwrap()
    };
    let custodian_index = (n % CUSTODIANS as u64) as usize;
    let mut out = vec![sign(
        Statement::WarrantCommitment(custos_wire::statement::WarrantCommitment {
            commitment,
            court: f.court.clone(),
            authority: f.authority.clone(),
            issued_at,
            embargo_until: f.embargo_until,
            targets: 1,
            days: 2,
            court_signature: warrant.signature().to_vec(),
        }),
        &keys.authorities[a],
    )];
    for i in 0..3 {
        let k = (custodian_index + i) % CUSTODIANS;
        out.push(sign(
            Statement::KeyRelease(KeyRelease {
                warrant: commitment,
                custodian: custodian(k),
                conversation_days: 2,
                request_hash: [k as u8; 32],
                released_at: issued_at + 3_600,
            }),
            &keys.custodians[k],
        ));
    }
    out.push(sign(
        Statement::Interception(Interception {
            warrant: commitment,
            provider: "provider.bench".into(),
            conversations: 1,
            first_day: day,
            last_day: day + 1,
            started_at: issued_at + 7_200,
            recovery: Vec::new(),
        }),
        &keys.provider,
    ));
    out.push(sign(
        Statement::WarrantUnsealing(WarrantUnsealing {
            warrant: commitment,
            salt,
            warrant_bytes: bytes,
            unsealed_at: f.embargo_until + 60,
        }),
        &keys.custodians[custodian_index],
    ));
    out.push(sign(
        Statement::EscrowDayKey(EscrowDayKey {
            day: FIRST_DAY + (n / CUSTODIANS as u64) as u32,
            threshold: 3,
            custodians: CUSTODIANS as u8,
            day_key: vec![0x5a; 200],
        }),
        &keys.custodians[custodian_index],
    ));
    out.push(sign(
        Statement::DayKeyErasure(DayKeyErasure {
            day: FIRST_DAY + (n / CUSTODIANS as u64) as u32,
            custodian: custodian(custodian_index),
            erased_at: issued_at + 2 * DAY,
        }),
        &keys.custodians[custodian_index],
    ));
    out
}

/// `n` entries, built on every core, and the cosigned checkpoint of them.
fn log(keys: &Keys, n: u64) -> (Vec<Vec<u8>>, Vec<u8>) {
    let cycles = n.div_ceil(8);
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get()) as u64;
    let per = cycles.div_ceil(threads);
    let mut entries: Vec<Vec<u8>> = std::thread::scope(|s| {
        let parts: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    (t * per..((t + 1) * per).min(cycles))
                        .flat_map(|c| cycle(keys, c))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts.into_iter().flat_map(|p| p.join().unwrap()).collect()
    });
    entries.truncate(n as usize);
    let mut root = StreamingRoot::new();
    for e in &entries {
        root.push_entry(e);
    }
    let text = checkpoint_text(ORIGIN, n, root.root()).unwrap();
    let mut note = signed_note::Note::new(&text, &[]).unwrap();
    let log_signer = keys.log.log_signer().unwrap();
    let cosigners: Vec<_> = keys
        .witnesses
        .iter()
        .map(|w| w.cosigner(custos_clock::system()).unwrap())
        .collect();
    note.add_sigs(&[&log_signer, &cosigners[0], &cosigners[1]])
        .unwrap();
    (entries, note.to_bytes())
}

fn audit(c: &mut Criterion<CpuTime>) {
    let n: u64 = std::env::var("CUSTOS_AUDIT_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let keys = keys();
    let manifest = manifest(&keys);
    let (entries, note) = log(&keys, n);
    let now = u64::from(FIRST_DAY) * DAY + 400 * DAY;

    let mut g = c.benchmark_group("audit");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n));
    g.bench_function("replay_with_figures", |b| {
        b.iter(|| {
            let mut figures = Figures::new(&manifest, FigureOptions::default());
            let mut replay = Replay::new(&manifest);
            for e in &entries {
                replay.push(e, &mut figures);
            }
            let report = replay.finish(&note).unwrap();
            assert!(report.ok(), "{report:?}");
            let f = figures.finish(now);
            assert_eq!(f.totals.warrants, n.div_ceil(8));
            assert!(f.flags.refused_statements.is_empty());
            f
        })
    });
    g.bench_function("baseline_leaf_hashing", |b| {
        b.iter(|| {
            let mut root = StreamingRoot::new();
            for e in &entries {
                root.push_entry(e);
            }
            root.root()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = audit
}
criterion_main!(benches);
