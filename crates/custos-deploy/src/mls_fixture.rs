//! Raw-HTTP fixtures for tests and benches that drive the delivery service
//! without the client library: the service verifies every conversation's
//! creation and every commit against MLS, so even raw callers make real
//! ones, with openmls, as the client does.
//!
//! # Security meaning
//! None: test fixtures only. The keys are the callers' own.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use custos_wire::ConversationId;
use ed25519_dalek::SigningKey;
use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::*;
use openmls_rust_crypto::OpenMlsRustCrypto;
use openmls_traits::signatures::{Signer, SignerError};
use openmls_traits::types::SignatureScheme;
use serde_json::{Value, json};

/// The ciphersuite of every Custos group.
pub const CS: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

/// An identity key as openmls's signer.
pub struct Key(pub SigningKey);

impl Signer for Key {
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignerError> {
        use ed25519_dalek::Signer as _;
        Ok(self.0.sign(payload).to_bytes().to_vec())
    }
    fn signature_scheme(&self) -> SignatureScheme {
        SignatureScheme::ED25519
    }
}

/// The basic credential `name` with `key`'s public half as its signature key,
/// as a device's leaf carries its account name and identity key.
pub fn credential(name: &str, key: &Key) -> CredentialWithKey {
    CredentialWithKey {
        credential: BasicCredential::new(name.as_bytes().to_vec()).into(),
        signature_key: key.0.verifying_key().to_bytes().to_vec().into(),
    }
}

/// The JSON bodies of `POST /v1/conversations` (by `a`) and of the commit
/// (by `a`, epoch 0, with its Welcome) that adds `b`: a real two-member MLS
/// group whose leaves carry each account's identity key.
///
/// # Panics
/// If openmls refuses to build the group (a bug, never bad input).
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "test fixture")]
pub fn two_member_group(
    conv: &ConversationId,
    a: (&str, &SigningKey),
    b: (&str, &SigningKey),
) -> (Value, Value) {
    let provider = OpenMlsRustCrypto::default();
    let ka = Key(a.1.clone());
    let kb = Key(b.1.clone());
    let mut group = MlsGroup::builder()
        .with_group_id(GroupId::from_slice(&conv.0))
        .ciphersuite(CS)
        .use_ratchet_tree_extension(true)
        .with_wire_format_policy(PURE_PLAINTEXT_WIRE_FORMAT_POLICY)
        .build(&provider, &ka, credential(a.0, &ka))
        .unwrap();
    let info = group
        .export_group_info(provider.crypto(), &ka, false)
        .unwrap()
        .tls_serialize_detached()
        .unwrap();
    let tree = group
        .export_ratchet_tree()
        .tls_serialize_detached()
        .unwrap();
    let kp = KeyPackage::builder()
        .build(CS, &OpenMlsRustCrypto::default(), &kb, credential(b.0, &kb))
        .unwrap()
        .key_package()
        .clone();
    let (commit, welcome, _) = group.add_members(&provider, &ka, &[kp]).unwrap();
    (
        json!({"conversation": conv.to_hex(), "group_info": B64.encode(info),
               "ratchet_tree": B64.encode(tree)}),
        json!({"epoch": 0, "commit": B64.encode(commit.tls_serialize_detached().unwrap()),
               "welcome": B64.encode(welcome.tls_serialize_detached().unwrap())}),
    )
}

/// A KeyPackage (`MlsMessage` bytes, as `POST /v1/key-packages` takes
/// them) that names account `name` but carries `key`: what a service
/// substituting its own key for `name`'s would hand out.
///
/// # Panics
/// If openmls refuses to build the KeyPackage (a bug, never bad input).
#[allow(clippy::unwrap_used, reason = "test fixture")]
pub fn key_package(name: &str, key: &SigningKey) -> Vec<u8> {
    let k = Key(key.clone());
    let bundle = KeyPackage::builder()
        .build(CS, &OpenMlsRustCrypto::default(), &k, credential(name, &k))
        .unwrap();
    MlsMessageOut::from(bundle.key_package().clone())
        .tls_serialize_detached()
        .unwrap()
}
