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
    let vk = sk.verifying_key();
    g.bench_function("custos_seal_open", |b| {
        b.iter(|| {
            let payload = text_payload(&body, 1);
            let sealed = seal(&mut s, &sk, "alice", &payload).unwrap();
            let opened = open(&sealed.bytes, &mut r, &vk, "alice").unwrap();
            std::hint::black_box(opened);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
