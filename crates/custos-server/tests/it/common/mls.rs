//! Real MLS clients for the tests: the service verifies every commit
//! against its public group state, so the tests' users hold real groups
//! (openmls, in memory), signed with their account's identity key.
#![allow(dead_code, missing_docs)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

use std::collections::HashMap;
use std::sync::Mutex;

use custos_wire::ConversationId;
use ed25519_dalek::SigningKey;
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_rust_crypto::OpenMlsRustCrypto;
use openmls_traits::signatures::{Signer, SignerError};
use openmls_traits::types::SignatureScheme;

pub const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

struct Key(SigningKey);

impl Signer for Key {
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignerError> {
        use ed25519_dalek::Signer as _;
        Ok(self.0.sign(payload).to_bytes().to_vec())
    }

    fn signature_scheme(&self) -> SignatureScheme {
        SignatureScheme::ED25519
    }
}

/// One user's MLS state: its groups, in memory.
pub struct Mls {
    name: String,
    key: Key,
    provider: OpenMlsRustCrypto,
    groups: Mutex<HashMap<ConversationId, MlsGroup>>,
}

impl std::fmt::Debug for Mls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// A staged commit: its bytes, the epoch it is for, and its Welcome.
pub struct Staged {
    pub epoch: u64,
    pub commit: Vec<u8>,
    pub welcome: Option<Vec<u8>>,
}

fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .use_ratchet_tree_extension(true)
        .wire_format_policy(PURE_PLAINTEXT_WIRE_FORMAT_POLICY)
        .build()
}

fn bytes(m: &MlsMessageOut) -> Vec<u8> {
    m.tls_serialize_detached().unwrap()
}

impl Mls {
    pub fn new(name: &str, key: &SigningKey) -> Self {
        Self {
            name: name.to_owned(),
            key: Key(key.clone()),
            provider: OpenMlsRustCrypto::default(),
            groups: Mutex::new(HashMap::new()),
        }
    }

    /// A credential naming `name` with this user's key.
    fn credential_named(&self, name: &str) -> CredentialWithKey {
        CredentialWithKey {
            credential: BasicCredential::new(name.as_bytes().to_vec()).into(),
            signature_key: self.key.0.verifying_key().to_bytes().to_vec().into(),
        }
    }

    /// A fresh KeyPackage of this user.
    pub fn key_package(&self) -> KeyPackage {
        KeyPackage::builder()
            .build(
                CIPHERSUITE,
                &self.provider,
                &self.key,
                self.credential_named(&self.name),
            )
            .unwrap()
            .key_package()
            .clone()
    }

    /// Creates the group of `conv`; returns its GroupInfo and ratchet tree.
    pub fn create(&self, conv: &ConversationId) -> (Vec<u8>, Vec<u8>) {
        self.create_named(conv, &self.name.clone())
    }

    /// Creates the group of `conv` with a leaf that names `name`.
    pub fn create_named(&self, conv: &ConversationId, name: &str) -> (Vec<u8>, Vec<u8>) {
        let group = MlsGroup::builder()
            .with_group_id(GroupId::from_slice(&conv.0))
            .ciphersuite(CIPHERSUITE)
            .use_ratchet_tree_extension(true)
            .with_wire_format_policy(PURE_PLAINTEXT_WIRE_FORMAT_POLICY)
            .build(&self.provider, &self.key, self.credential_named(name))
            .unwrap();
        let info = group
            .export_group_info(self.provider.crypto(), &self.key, false)
            .unwrap();
        let tree = group
            .export_ratchet_tree()
            .tls_serialize_detached()
            .unwrap();
        self.groups.lock().unwrap().insert(*conv, group);
        (bytes(&info), tree)
    }

    pub fn has(&self, conv: &ConversationId) -> bool {
        self.groups
            .lock()
            .unwrap()
            .get(conv)
            .is_some_and(MlsGroup::is_active)
    }

    pub fn epoch(&self, conv: &ConversationId) -> u64 {
        self.groups.lock().unwrap()[conv].epoch().as_u64()
    }

    /// Stages a commit that adds `add` and removes the members named
    /// `remove` (a self-update if both are empty).
    pub fn stage(&self, conv: &ConversationId, add: &[&Mls], remove: &[&str]) -> Staged {
        let mut groups = self.groups.lock().unwrap();
        let group = groups.get_mut(conv).unwrap();
        let epoch = group.epoch().as_u64();
        if add.is_empty() && remove.is_empty() {
            let bundle = group
                .self_update(&self.provider, &self.key, LeafNodeParameters::default())
                .unwrap();
            let (commit, welcome, _) = bundle.into_messages();
            return Staged {
                epoch,
                commit: bytes(&commit),
                welcome: welcome.map(|w| w.tls_serialize_detached().unwrap()),
            };
        }
        let kps: Vec<KeyPackage> = add.iter().map(|m| m.key_package()).collect();
        let leaves: Vec<LeafNodeIndex> = group
            .members()
            .filter(|m| {
                let basic = BasicCredential::try_from(m.credential.clone()).unwrap();
                remove.iter().any(|r| r.as_bytes() == basic.identity())
            })
            .map(|m| m.index)
            .collect();
        let mut b = group.commit_builder();
        if !kps.is_empty() {
            b = b.propose_adds(kps);
        }
        if !leaves.is_empty() {
            b = b.propose_removals(leaves);
        }
        let bundle = b
            .load_psks(self.provider.storage())
            .unwrap()
            .build(
                self.provider.rand(),
                self.provider.crypto(),
                &self.key,
                |_| true,
            )
            .unwrap()
            .stage_commit(&self.provider)
            .unwrap();
        let (commit, welcome, _) = bundle.into_messages();
        Staged {
            epoch,
            commit: bytes(&commit),
            welcome: welcome.map(|w| w.tls_serialize_detached().unwrap()),
        }
    }

    /// A self-update commit.
    pub fn self_update(&self, conv: &ConversationId) -> Staged {
        self.stage(conv, &[], &[])
    }

    /// Merges (accepted) or drops (refused) the pending commit.
    pub fn settle_own(&self, conv: &ConversationId, accepted: bool) {
        let mut groups = self.groups.lock().unwrap();
        let group = groups.get_mut(conv).unwrap();
        if accepted {
            group.merge_pending_commit(&self.provider).unwrap();
        } else {
            group.clear_pending_commit(self.provider.storage()).unwrap();
        }
    }

    /// Processes another member's accepted commit, or joins from its
    /// Welcome if this user has no group yet.
    pub fn follow(&self, conv: &ConversationId, staged: &Staged) {
        let mut groups = self.groups.lock().unwrap();
        if let Some(group) = groups.get_mut(conv).filter(|g| g.is_active()) {
            let msg = MlsMessageIn::tls_deserialize_exact(&staged.commit).unwrap();
            let pm = msg.try_into_protocol_message().unwrap();
            let processed = group.process_message(&self.provider, pm).unwrap();
            let ProcessedMessageContent::StagedCommitMessage(c) = processed.into_content() else {
                panic!("not a commit")
            };
            group.merge_staged_commit(&self.provider, *c).unwrap();
            return;
        }
        let Some(w) = &staged.welcome else { return };
        let msg = MlsMessageIn::tls_deserialize_exact(w).unwrap();
        let MlsMessageBodyIn::Welcome(welcome) = msg.extract() else {
            panic!("not a Welcome")
        };
        // Re-added after a removal: the old group's state goes first.
        if let Some(mut old) = groups.remove(conv) {
            old.delete(self.provider.storage()).unwrap();
        }
        // A Welcome for others: nothing to join.
        let Ok(staged) =
            StagedWelcome::new_from_welcome(&self.provider, &join_config(), welcome, None)
        else {
            return;
        };
        let group = staged.into_group(&self.provider).unwrap();
        groups.insert(*conv, group);
    }

    /// A proposal to remove this user's own leaf.
    pub fn leave(&self, conv: &ConversationId) -> Vec<u8> {
        let mut groups = self.groups.lock().unwrap();
        let group = groups.get_mut(conv).unwrap();
        let p = group.leave_group(&self.provider, &self.key).unwrap();
        bytes(&p)
    }

    /// Stores another member's proposal (as members do before committing it).
    pub fn take_proposal(&self, conv: &ConversationId, proposal: &[u8]) {
        let mut groups = self.groups.lock().unwrap();
        let group = groups.get_mut(conv).unwrap();
        let msg = MlsMessageIn::tls_deserialize_exact(proposal).unwrap();
        let pm = msg.try_into_protocol_message().unwrap();
        let processed = group.process_message(&self.provider, pm).unwrap();
        let ProcessedMessageContent::ProposalMessage(q) = processed.into_content() else {
            panic!("not a proposal")
        };
        group
            .store_pending_proposal(self.provider.storage(), *q)
            .unwrap();
    }

    /// Commits the proposals this user holds.
    pub fn commit_pending(&self, conv: &ConversationId) -> Staged {
        let mut groups = self.groups.lock().unwrap();
        let group = groups.get_mut(conv).unwrap();
        let epoch = group.epoch().as_u64();
        let (commit, welcome, _) = group
            .commit_to_pending_proposals(&self.provider, &self.key)
            .unwrap();
        Staged {
            epoch,
            commit: bytes(&commit),
            welcome: welcome.map(|w| w.tls_serialize_detached().unwrap()),
        }
    }
}
