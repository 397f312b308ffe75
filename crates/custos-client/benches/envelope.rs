//! Envelope round trip (seal + sign, then verify + open, 1 KiB payload)
//! against the same round trip through openmls application messages
//! (`create_message` + `process_message`), measured in the same run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use custos_client::chain::{ChainKey, ReceivingChain, SendingChain};
use custos_client::seal::{open, seal, text_payload};
use custos_wire::{ChainId, ConversationId};
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use sha2::{Digest, Sha256};

const CS: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

fn member(name: &str, provider: &OpenMlsRustCrypto) -> (CredentialWithKey, SignatureKeyPair) {
    let keys = SignatureKeyPair::new(SignatureScheme::ED25519).unwrap();
    keys.store(provider.storage()).unwrap();
    (
        CredentialWithKey {
            credential: BasicCredential::new(name.as_bytes().to_vec()).into(),
            signature_key: keys.public().into(),
        },
        keys,
    )
}

fn openmls_pair() -> (
    OpenMlsRustCrypto,
    SignatureKeyPair,
    MlsGroup,
    OpenMlsRustCrypto,
    MlsGroup,
) {
    let pa = OpenMlsRustCrypto::default();
    let pb = OpenMlsRustCrypto::default();
    let (ca, ka) = member("alice", &pa);
    let (cb, kb) = member("bob", &pb);
    let kp = KeyPackage::builder().build(CS, &pb, &kb, cb).unwrap();
    let mut ga = MlsGroup::builder()
        .ciphersuite(CS)
        .use_ratchet_tree_extension(true)
        .build(&pa, &ka, ca)
        .unwrap();
    let (_, welcome, _) = ga
        .add_members(&pa, &ka, &[kp.key_package().clone()])
        .unwrap();
    ga.merge_pending_commit(&pa).unwrap();
    let welcome =
        MlsMessageIn::tls_deserialize_exact(welcome.tls_serialize_detached().unwrap()).unwrap();
    let MlsMessageBodyIn::Welcome(welcome) = welcome.extract() else {
        panic!("not a welcome")
    };
    let gb = StagedWelcome::new_from_welcome(&pb, &MlsGroupJoinConfig::default(), welcome, None)
        .unwrap()
        .into_group(&pb)
        .unwrap();
    (pa, ka, ga, pb, gb)
}

fn bench(c: &mut Criterion) {
    let body = "x".repeat(1024);
    let mut g = c.benchmark_group("envelope_round_trip_1KiB");

    let (pa, ka, mut ga, pb, mut gb) = openmls_pair();
    g.bench_function("baseline_openmls_create_process", |b| {
        b.iter(|| {
            let out = ga.create_message(&pa, &ka, body.as_bytes()).unwrap();
            let bytes = out.tls_serialize_detached().unwrap();
            let msg = MlsMessageIn::tls_deserialize_exact(bytes).unwrap();
            let pm = msg.try_into_protocol_message().unwrap();
            let processed = gb.process_message(&pb, pm).unwrap();
            std::hint::black_box(processed.into_content());
        })
    });

    let conv = ConversationId([7; 16]);
    let id = ChainId {
        epoch: 1,
        sender_leaf: 0,
        day: 20_000,
        seq: 0,
    };
    let root = ChainKey::random();
    let mut s = SendingChain::new(conv, id, root.clone());
    let mut r = ReceivingChain::new(conv, id, root);
    let sk = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    let vk = custos_verify::sender_signature::SenderKey::try_from(&sk.verifying_key()).unwrap();
    g.bench_function("custos_seal_open", |b| {
        b.iter(|| {
            let payload = text_payload(&body, 1);
            let sealed = seal(&mut s, &sk, "alice", &payload).unwrap();
            let opened = open(&sealed.bytes, &mut r, &vk, "alice").unwrap();
            std::hint::black_box(opened);
        })
    });

    // The whole path a device runs per message: the sender seals and signs;
    // the recipient checks the delivery tag (v2, batches of 64 as the
    // service signs them; each batch root's signature once, remembered),
    // then verifies the envelope signature, decrypts and checks the franking
    // commitment. The service's tag signing is not a device's work and is
    // left out of the time.
    let service = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    let pinned = service.verifying_key();
    let mut roots = custos_wire::tag::VerifiedRoots::new();
    let id2 = ChainId { seq: 1, ..id };
    let root2 = ChainKey::random();
    let mut s2 = SendingChain::new(conv, id2, root2.clone());
    let mut r2 = ReceivingChain::new(conv, id2, root2);
    g.bench_function("custos_device_path_with_tag_check", |b| {
        b.iter_custom(|iters| {
            let mut took = std::time::Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(64);
                left -= n;
                let start = std::time::Instant::now();
                let sealed: Vec<_> = (0..n)
                    .map(|_| seal(&mut s2, &sk, "alice", &text_payload(&body, 1)).unwrap())
                    .collect();
                took += start.elapsed();
                let fields = sealed
                    .iter()
                    .map(|m| {
                        let header = custos_wire::envelope::peek_header(&m.bytes).unwrap();
                        custos_wire::tag::TagFields {
                            franking_commitment: header.franking_commitment,
                            conversation: conv,
                            sender: "alice".into(),
                            server_time: 1_795_000_000_000,
                            envelope_hash: Sha256::digest(&m.bytes).into(),
                        }
                    })
                    .collect();
                let tags = custos_wire::tag::build_batch(left, fields, |m| {
                    ed25519_dalek::Signer::sign(&service, m).to_bytes()
                })
                .unwrap();
                // Tags reach the device encoded: encoding is the service's work.
                let tags: Vec<Vec<u8>> = tags
                    .into_iter()
                    .map(|t| custos_wire::tag::DeliveryTag::V2(t).encode().unwrap())
                    .collect();
                let start = std::time::Instant::now();
                for (m, tag) in sealed.iter().zip(tags) {
                    let header = custos_wire::envelope::peek_header(&m.bytes).unwrap();
                    custos_client::report::check_tag(
                        &pinned,
                        &tag,
                        &header,
                        &m.bytes,
                        "alice",
                        1_795_000_000_000,
                        &mut roots,
                    )
                    .unwrap();
                    std::hint::black_box(open(&m.bytes, &mut r2, &vk, "alice").unwrap());
                }
                took += start.elapsed();
            }
            took
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
