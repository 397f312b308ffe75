//! Opening and re-checking what a provider kept under a warrant: 100,000
//! envelopes from 100 chains (goals: at most 3 s each on one core), against
//! baselines measured in the same run (see BENCHMARKS.md):
//! - `open_kept/all_checks`: the authority's path,
//!   [`custos_verify::intercepted::open_kept`]: every capsule opened with its
//!   conversation-day key and re-sealed (provenance), every envelope's chain
//!   key derived, envelope decrypted, sender signature, franking commitment
//!   and delivery tag checked.
//! - `open_kept/baseline_strict_signatures_one_by_one`: the 100,000
//!   envelope signatures alone, checked one by one with `verify_strict` as
//!   before envelope signatures moved to a rule with a batch form
//!   (docs/design/0013-envelope-signatures.md): the floor of the old path.
//! - `evidence_verify/from_json`: `custos evidence verify` minus reading the
//!   file: the bundle parsed from its JSON bytes and
//!   [`custos_verify::evidence::verify_evidence`] (manifest, witnessed
//!   checkpoint, warrant, day keys, franking key, identity keys, every item
//!   opened again and compared with the messages).
//! - `evidence_verify/baseline_open_kept`: `open_kept` on the same items, the
//!   part of the verification that the evidence itself cannot avoid.
//!
//! The fixture is built once per run, in memory: a manifest (log, 2
//! witnesses, a court, an authority, a provider, 5 custodians, t = 3), a
//! warrant on 4 conversations for one day, a day key dealt by a trusted
//! dealer, 100 chains of 1,000 text messages (25 senders per conversation,
//! each with one real Ed25519 identity key), delivery tags v2 in batches of
//! 500 under the provider's franking key, and a log holding the commitment,
//! the day key (3 custodians) and the franking key, with a checkpoint
//! cosigned by both witnesses. `CUSTOS_EVIDENCE_BENCH_PER_CHAIN` sets the
//! messages per chain (default 1,000).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "benchmark code"
)]

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use custos_bench::CpuTime;
use custos_escrow::{DayKey, EscrowIdentity, IdentityKey};
use custos_tlog::checkpoint::checkpoint_text;
use custos_tlog::{ALG_COSIGNATURE_V1, ALG_ED25519, NamedKey, Tree};
use custos_verify::chain::{ChainKey, SendingChain};
use custos_verify::evidence::{
    EVIDENCE_FORMAT, EVIDENCE_VERSION, EvidenceBundle, IdentityKeyEvidence, LoggedEntry,
    WarrantEvidence, item_evidence, message_evidence, verify_evidence,
};
use custos_verify::intercepted::{IdentityKeys, KeptItem, open_kept};
use custos_verify::seal::{seal, text_payload};
use custos_wire::announcement::{ChainAnnouncement, EscrowKind};
use custos_wire::envelope::Envelope;
use custos_wire::frames::ItemKind;
use custos_wire::manifest::{Manifest, Participant, Policy, Role};
use custos_wire::statement::{
    EscrowDayKey, ProviderFrankingKey, SignedStatement, Statement, WarrantCommitment,
    warrant_commitment,
};
use custos_wire::tag::{DeliveryTag, TagFields, build_batch};
use custos_wire::warrant::{Warrant, WarrantFields};
use custos_wire::{ChainId, ConversationId};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};

const ORIGIN: &str = "log.bench";
const DAY: u32 = 20_500;
const CONVERSATIONS: u8 = 4;
const CHAINS: usize = 100;
const TAG_BATCH: usize = 500;

struct Fixture {
    warrant: Warrant,
    items: Vec<KeptItem>,
    keys: IdentityKeys,
    day_keys: BTreeMap<u32, DayKey>,
    franking: VerifyingKey,
    json: Vec<u8>,
    messages: usize,
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn sender(i: usize) -> String {
    format!("user{i}")
}

/// One chain's kept items (announcement first) and its messages' tag fields.
fn chain_items(
    day_key: &DayKey,
    conv: ConversationId,
    chain_no: usize,
    per_chain: usize,
) -> (KeptItem, Vec<(KeptItem, TagFields)>) {
    let who = sender(chain_no);
    let signing = key(100 + (chain_no % 100) as u8);
    let sender_key = signing.verifying_key().to_bytes();
    let id = ChainId {
        epoch: 1,
        sender_leaf: (chain_no / usize::from(CONVERSATIONS)) as u32,
        day: DAY,
        seq: 0,
    };
    let root = ChainKey::random();
    let capsule =
        custos_escrow::seal(day_key, &conv.0, DAY, &id.qualified(&conv), root.expose()).unwrap();
    let announcement = ChainAnnouncement {
        conversation: conv,
        chain: id,
        escrow_kind: EscrowKind::BfIbeV1,
        escrow_capsule: capsule.to_bytes().to_vec(),
        mls_message: vec![4; 20],
    };
    let base_time = u64::from(DAY) * 86_400_000 + 3_600_000;
    let kept = |kind, server_time, tag: Vec<u8>, body: Vec<u8>| KeptItem {
        id: 0,
        kind,
        conversation: conv,
        day: DAY,
        sender: who.clone(),
        sender_key,
        server_time,
        tag,
        body,
    };
    let ann = kept(
        ItemKind::Announcement,
        base_time,
        Vec::new(),
        announcement.encode().unwrap(),
    );
    let mut chain = SendingChain::new(conv, id, root);
    let mut envelopes = Vec::with_capacity(per_chain);
    for n in 0..per_chain {
        let at = base_time + 1 + n as u64;
        let sealed = seal(
            &mut chain,
            &signing,
            &who,
            &text_payload(&format!("message {n} of chain {chain_no}"), at),
        )
        .unwrap();
        let header = Envelope::decode(&sealed.bytes).unwrap().header;
        let fields = TagFields {
            franking_commitment: header.franking_commitment,
            conversation: conv,
            sender: who.clone(),
            server_time: at,
            envelope_hash: Sha256::digest(&sealed.bytes).into(),
        };
        envelopes.push((
            kept(ItemKind::Envelope, at, Vec::new(), sealed.bytes),
            fields,
        ));
    }
    (ann, envelopes)
}

fn manifest(log: &NamedKey, witnesses: &[NamedKey]) -> Manifest {
    let p = |name: String, role, key: [u8; 32]| Participant {
        name,
        role,
        jurisdiction: "EU".into(),
        endpoint: None,
        public_key: hex::encode(key),
    };
    let mut ps = vec![p(ORIGIN.into(), Role::Log, log.verifying_key().to_bytes())];
    for w in witnesses {
        ps.push(p(
            w.name().into(),
            Role::Witness,
            w.verifying_key().to_bytes(),
        ));
    }
    ps.push(p(
        "court.bench".into(),
        Role::Court,
        key(2).verifying_key().to_bytes(),
    ));
    ps.push(p(
        "police.bench".into(),
        Role::Authority,
        key(3).verifying_key().to_bytes(),
    ));
    ps.push(p(
        "provider.bench".into(),
        Role::Provider,
        key(4).verifying_key().to_bytes(),
    ));
    for i in 0..5u8 {
        ps.push(p(
            format!("custodian-{i}.bench"),
            Role::Custodian,
            key(30 + i).verifying_key().to_bytes(),
        ));
    }
    Manifest::new(2, 3, Policy::default(), ps).unwrap()
}

fn fixture(per_chain: usize) -> Fixture {
    let log_key = NamedKey::from_seed(ORIGIN, ALG_ED25519, &[1; 32]).unwrap();
    let witnesses: Vec<NamedKey> = (0..2u8)
        .map(|i| {
            NamedKey::from_seed(
                &format!("witness-{i}.bench"),
                ALG_COSIGNATURE_V1,
                &[10 + i; 32],
            )
            .unwrap()
        })
        .collect();
    let manifest = manifest(&log_key, &witnesses);
    let (day_key, shares) =
        custos_escrow::dangerous::trusted_deal(DAY, 5, 3, &mut rand_core::OsRng).unwrap();
    let franking = key(5);
    let convs: Vec<ConversationId> = (1..=CONVERSATIONS)
        .map(|c| ConversationId([c; 16]))
        .collect();

    let issued_at = u64::from(DAY) * 86_400;
    let warrant = Warrant::sign(
        WarrantFields {
            id: [7; 16],
            court: "court.bench".into(),
            authority: "police.bench".into(),
            legal_basis: "benchmark".into(),
            targets: convs.clone(),
            first_day: DAY,
            last_day: DAY,
            issued_at,
            not_after: issued_at + 7 * 86_400,
            embargo_until: issued_at + 30 * 86_400,
            authority_hpke_key: [9; 32],
        },
        &key(2),
    )
    .unwrap();
    let mut keys: IdentityKeys = BTreeMap::new();
    for c in &convs {
        let identity = EscrowIdentity::new(&c.0, DAY);
        let partials: Vec<_> = shares[..3].iter().map(|s| s.extract(&identity)).collect();
        let k: IdentityKey = day_key
            .verify_and_combine(&identity, &partials, &mut rand_core::OsRng)
            .unwrap();
        keys.insert((*c, DAY), k);
    }

    // The chains, sealed on every core; then ids in storage order and tags.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = CHAINS.div_ceil(threads);
    let chains: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (day_key, convs) = (&day_key, &convs);
                s.spawn(move || {
                    (t * per_thread..((t + 1) * per_thread).min(CHAINS))
                        .map(|i| chain_items(day_key, convs[i % convs.len()], i, per_chain))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut items = Vec::with_capacity(CHAINS * (per_chain + 1));
    let mut pending: Vec<(KeptItem, TagFields)> = Vec::new();
    for (ann, envelopes) in chains {
        items.push(ann);
        pending.extend(envelopes);
    }
    for (batch_id, batch) in pending.chunks(TAG_BATCH).enumerate() {
        let fields = batch.iter().map(|(_, f)| f.clone()).collect();
        let tags = build_batch(batch_id as u64, fields, |m| franking.sign(m).to_bytes()).unwrap();
        for ((item, _), tag) in batch.iter().zip(tags) {
            let mut item = item.clone();
            item.tag = DeliveryTag::V2(tag).encode().unwrap();
            items.push(item);
        }
    }
    for (i, item) in items.iter_mut().enumerate() {
        item.id = i as u64 + 1;
    }
    let day_keys = BTreeMap::from([(DAY, day_key.clone())]);
    let opened = open_kept(
        &warrant,
        &items,
        &keys,
        &day_keys,
        &franking.verifying_key(),
    );
    assert!(opened.failures.is_empty(), "{:?}", &opened.failures[..1]);
    assert_eq!(opened.messages.len(), CHAINS * per_chain);

    // The log: commitment, the day key by 3 custodians, the franking key.
    let warrant_bytes = warrant.encode().unwrap();
    let salt = [8u8; 32];
    let sign =
        |st: Statement, k: &SigningKey| SignedStatement::sign(&st, k).unwrap().encode().unwrap();
    let mut entries = vec![sign(
        Statement::WarrantCommitment(WarrantCommitment {
            commitment: warrant_commitment(&salt, &warrant_bytes),
            court: "court.bench".into(),
            authority: "police.bench".into(),
            issued_at,
            embargo_until: warrant.fields().embargo_until,
            targets: u16::from(CONVERSATIONS),
            days: 1,
            court_signature: warrant.signature().to_vec(),
        }),
        &key(3),
    )];
    for i in 0..3u8 {
        entries.push(sign(
            Statement::EscrowDayKey(EscrowDayKey {
                day: DAY,
                threshold: 3,
                custodians: 5,
                day_key: day_key.to_bytes(),
            }),
            &key(30 + i),
        ));
    }
    entries.push(sign(
        Statement::ProviderFrankingKey(ProviderFrankingKey {
            provider: "provider.bench".into(),
            public_key: franking.verifying_key().to_bytes(),
            valid_from: issued_at,
        }),
        &key(4),
    ));
    let mut tree = Tree::new();
    for e in &entries {
        tree.append_entry(e).unwrap();
    }
    let size = tree.size();
    let text = checkpoint_text(ORIGIN, size, tree.root(size).unwrap()).unwrap();
    let mut note = signed_note::Note::new(&text, &[]).unwrap();
    let cosigners: Vec<_> = witnesses
        .iter()
        .map(|w| w.cosigner(custos_clock::system()).unwrap())
        .collect();
    note.add_sigs(&[&log_key.log_signer().unwrap(), &cosigners[0], &cosigners[1]])
        .unwrap();
    let note = String::from_utf8(note.to_bytes()).unwrap();
    let proof = |i: u64| -> Vec<String> {
        tree.inclusion_proof(i, size)
            .unwrap()
            .iter()
            .map(|h| B64.encode(h.0))
            .collect()
    };
    let logged = |i: u64| LoggedEntry {
        entry: B64.encode(&entries[i as usize]),
        index: i,
        inclusion_proof: proof(i),
    };
    let bundle = EvidenceBundle {
        format: EVIDENCE_FORMAT.into(),
        version: EVIDENCE_VERSION,
        manifest: manifest.to_toml().unwrap(),
        checkpoint: note.clone(),
        warrant: WarrantEvidence {
            warrant: B64.encode(&warrant_bytes),
            salt: hex::encode(salt),
            commitment_entry: B64.encode(&entries[0]),
            commitment_index: 0,
            checkpoint: note,
            inclusion_proof: proof(0),
        },
        day_keys: (1..=3).map(logged).collect(),
        franking_key: logged(4),
        identity_keys: keys
            .iter()
            .map(|((c, d), k)| IdentityKeyEvidence {
                conversation: c.to_hex(),
                day: *d,
                key: B64.encode(k.to_bytes()),
            })
            .collect(),
        items: items.iter().map(item_evidence).collect(),
        messages: opened.messages.iter().map(message_evidence).collect(),
    };
    let json = serde_json::to_vec(&bundle).unwrap();
    let checked: EvidenceBundle = serde_json::from_slice(&json).unwrap();
    verify_evidence(&checked, Some(&manifest.hash().unwrap())).unwrap();
    Fixture {
        warrant,
        items,
        keys,
        day_keys,
        franking: franking.verifying_key(),
        json,
        messages: CHAINS * per_chain,
    }
}

fn bench(c: &mut Criterion<CpuTime>) {
    let per_chain: usize = std::env::var("CUSTOS_EVIDENCE_BENCH_PER_CHAIN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let f = fixture(per_chain);
    let open = || {
        let opened = open_kept(&f.warrant, &f.items, &f.keys, &f.day_keys, &f.franking);
        assert_eq!(opened.messages.len(), f.messages);
        opened
    };

    let mut g = c.benchmark_group("open_kept");
    g.sample_size(10);
    g.throughput(Throughput::Elements(f.messages as u64));
    g.bench_function("all_checks", |b| b.iter(open));
    g.bench_function("baseline_strict_signatures_one_by_one", |b| {
        b.iter(|| {
            for item in f.items.iter().filter(|i| i.kind == ItemKind::Envelope) {
                let e = Envelope::decode(&item.body).unwrap();
                let signed = Envelope::signed_bytes(&e.header, &e.ciphertext).unwrap();
                custos_wire::signature::verify_strict(
                    &VerifyingKey::from_bytes(&item.sender_key).unwrap(),
                    &signed,
                    &ed25519_dalek::Signature::from_bytes(&e.signature),
                )
                .unwrap();
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("evidence_verify");
    g.sample_size(10);
    g.throughput(Throughput::Elements(f.messages as u64));
    g.bench_function("from_json", |b| {
        b.iter(|| {
            let bundle: EvidenceBundle = serde_json::from_slice(&f.json).unwrap();
            let verified = verify_evidence(&bundle, None).unwrap();
            assert_eq!(verified.opened.messages.len(), f.messages);
            verified
        })
    });
    g.bench_function("baseline_open_kept", |b| b.iter(open));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = bench
}
criterion_main!(benches);
