//! Each conversation's public MLS state, kept by the service so that
//! membership comes from verified commits only (no ghost members).
//!
//! # What this guarantees
//! - A conversation is created from its creator's GroupInfo and ratchet tree
//!   at epoch 0; the GroupInfo's signature and every leaf are checked by
//!   openmls's [`PublicGroup`], and the group id is the conversation id.
//! - A commit (an MLS `PublicMessage`) is accepted only if it applies to the
//!   stored state at its current epoch: signed by a current member, with a
//!   valid update path, proposals valid (openmls's `ValSem` checks). The new
//!   roster is read from the merged state, never from the committer.
//! - A proposal (a member's removal of itself) is accepted only if it
//!   verifies against the state and is then queued there, so that a commit
//!   covering it by reference can be checked.
//! - [`GroupState::roster`] gives each leaf's account name and signature key;
//!   the caller checks that each key is that account's identity key.
//!
//! # What it does not
//! - The service cannot check confirmation tags (they need the epoch
//!   secrets); members do, when they process the commit.
//! - Welcomes are encrypted to the new members; the service cannot read them.
//!
//! # Storage
//! Each group's state lives in its own openmls [`MemoryStorage`]; [`GroupState::encode`]
//! turns it into one canonical blob (version 1, entries sorted by key) that
//! the writer stores in the `group_states` table in the same transaction as
//! the epoch bump and the member rows ([`crate::delivery::writer`]).

use custos_wire::ConversationId;
use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::*;
use openmls_memory_storage::MemoryStorage;
use openmls_rust_crypto::RustCrypto;

use crate::refusal::ConversationRefusal;

/// Version byte of the stored blob.
const STATE_V1: u8 = 1;
/// Bound on a stored blob's entries (a group's state has a handful of keys
/// plus one per queued proposal).
const MAX_ENTRIES: usize = 4096;

/// The public state of one group and the store openmls keeps it in. Only
/// this module changes it, and only with verified handshake messages.
pub struct GroupState {
    group: PublicGroup,
    storage: MemoryStorage,
}

impl std::fmt::Debug for GroupState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupState")
            .field("epoch", &self.epoch())
            .finish_non_exhaustive()
    }
}

/// A leaf of the roster: the account its credential names, and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    /// The account name the leaf's basic credential names.
    pub name: String,
    /// The leaf's signature key, which must be that account's identity key.
    pub signature_key: Vec<u8>,
}

fn invalid_state(why: impl std::fmt::Display) -> ConversationRefusal {
    ConversationRefusal::InvalidGroupState(why.to_string())
}

fn invalid_commit(why: impl std::fmt::Display) -> ConversationRefusal {
    ConversationRefusal::InvalidCommit(why.to_string())
}

fn invalid_proposal(why: impl std::fmt::Display) -> ConversationRefusal {
    ConversationRefusal::InvalidProposal(why.to_string())
}

/// A parsed, not yet verified, public handshake message of one conversation.
pub struct Handshake {
    message: ProtocolMessage,
    /// The epoch the message was made in.
    pub epoch: u64,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// Parses an MLS `PublicMessage` of `conversation` with content `want`
/// (commit or proposal), without verifying it: only its form, group and
/// epoch are known after this; [`GroupState`] verifies it.
pub fn parse_handshake(
    bytes: &[u8],
    conversation: &ConversationId,
    want: ContentType,
) -> Result<Handshake, ConversationRefusal> {
    let bad = |why: String| match want {
        ContentType::Proposal => invalid_proposal(why),
        _ => invalid_commit(why),
    };
    let msg = MlsMessageIn::tls_deserialize_exact(bytes)
        .map_err(|e| bad(format!("not an MLS message: {e}")))?;
    let message = msg
        .try_into_protocol_message()
        .map_err(|_| bad("not an MLS protocol message".into()))?;
    let ProtocolMessage::PublicMessage(_) = &message else {
        return Err(bad(
            "handshake messages must be MLS PublicMessages, so that the service can verify them"
                .into(),
        ));
    };
    if message.content_type() != want {
        return Err(bad(format!(
            "expected an MLS {want:?}, got {:?}",
            message.content_type()
        )));
    }
    if message.group_id().as_slice() != conversation.0.as_slice() {
        return Err(bad(format!(
            "the message belongs to another group than conversation {conversation}"
        )));
    }
    Ok(Handshake {
        epoch: message.epoch().as_u64(),
        message,
    })
}

impl GroupState {
    /// Builds the state of a new conversation from its creator's GroupInfo
    /// (an `MlsMessage`) and ratchet tree, checking the GroupInfo's
    /// signature, the tree, that the group id is `conversation` and that
    /// the group is at epoch 0.
    pub fn create(
        conversation: &ConversationId,
        group_info: &[u8],
        ratchet_tree: &[u8],
    ) -> Result<Self, ConversationRefusal> {
        let MlsMessageBodyIn::GroupInfo(info) = MlsMessageIn::tls_deserialize_exact(group_info)
            .map_err(|e| invalid_state(format!("group_info is not an MLS message: {e}")))?
            .extract()
        else {
            return Err(invalid_state("group_info does not hold a GroupInfo"));
        };
        let tree = RatchetTreeIn::tls_deserialize_exact(ratchet_tree)
            .map_err(|e| invalid_state(format!("ratchet_tree does not decode: {e}")))?;
        if info.group_id().as_slice() != conversation.0.as_slice() {
            return Err(invalid_state(
                "the GroupInfo's group id is not the conversation id",
            ));
        }
        let storage = MemoryStorage::default();
        let (group, _) = PublicGroup::from_external(
            &RustCrypto::default(),
            &storage,
            tree,
            info,
            ProposalStore::new(),
        )
        .map_err(invalid_state)?;
        if group.group_context().epoch().as_u64() != 0 {
            return Err(invalid_state(
                "a conversation starts at epoch 0; add members with commits",
            ));
        }
        Ok(Self { group, storage })
    }

    /// The group's current epoch.
    pub fn epoch(&self) -> u64 {
        self.group.group_context().epoch().as_u64()
    }

    /// Every leaf of the tree, in leaf order. A leaf whose credential is not
    /// a basic credential naming a valid account is an error.
    pub fn roster(&self) -> Result<Vec<Leaf>, String> {
        self.group
            .members()
            .map(|m| {
                let basic = BasicCredential::try_from(m.credential.clone())
                    .map_err(|_| format!("leaf {} has no basic credential", m.index))?;
                let name = std::str::from_utf8(basic.identity())
                    .ok()
                    .filter(|n| custos_wire::ids::validate_account_name(n).is_ok())
                    .ok_or_else(|| format!("leaf {} does not name an account", m.index))?;
                Ok(Leaf {
                    name: name.to_owned(),
                    signature_key: m.signature_key,
                })
            })
            .collect()
    }

    /// Verifies a commit against the current state and, if it applies,
    /// merges it. `sender` must be the account the commit's signing leaf
    /// names. On error the state is unchanged.
    pub fn apply_commit(
        &mut self,
        commit: Handshake,
        sender: &str,
    ) -> Result<(), ConversationRefusal> {
        let processed = self
            .group
            .process_message(&RustCrypto::default(), commit.message)
            .map_err(|e| invalid_commit(format!("the commit does not apply: {e}")))?;
        check_sender(&processed, sender).map_err(invalid_commit)?;
        let ProcessedMessageContent::StagedCommitMessage(staged) = processed.into_content() else {
            return Err(invalid_commit("not a commit"));
        };
        self.group
            .merge_commit(&self.storage, *staged)
            .map_err(|e| invalid_commit(format!("merge: {e}")))
    }

    /// Verifies a member's proposal to remove itself and queues it, so a
    /// later commit may cover it by reference.
    pub fn queue_proposal(
        &mut self,
        proposal: Handshake,
        sender: &str,
    ) -> Result<(), ConversationRefusal> {
        let processed = self
            .group
            .process_message(&RustCrypto::default(), proposal.message)
            .map_err(|e| invalid_proposal(format!("the proposal does not verify: {e}")))?;
        check_sender(&processed, sender).map_err(invalid_proposal)?;
        let Sender::Member(leaf) = *processed.sender() else {
            return Err(invalid_proposal("not from a member"));
        };
        let ProcessedMessageContent::ProposalMessage(queued) = processed.into_content() else {
            return Err(invalid_proposal("not a proposal"));
        };
        if !matches!(queued.proposal(), Proposal::Remove(r) if r.removed() == leaf) {
            return Err(invalid_proposal(
                "only a member's proposal to remove itself is accepted",
            ));
        }
        self.group
            .add_proposal(&self.storage, *queued)
            .map_err(|e| invalid_proposal(format!("queue: {e}")))
    }

    /// The canonical blob of the state: version byte, entry count (u32),
    /// then each entry sorted by key as key length (u32), value length
    /// (u32), key, value.
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        let values = self
            .storage
            .values
            .read()
            .map_err(|_| "group state store poisoned".to_owned())?;
        let mut entries: Vec<(&Vec<u8>, &Vec<u8>)> = values.iter().collect();
        entries.sort();
        let mut out = vec![STATE_V1];
        let len32 = |n: usize| u32::try_from(n).map_err(|_| "entry too large".to_owned());
        out.extend_from_slice(&len32(entries.len())?.to_be_bytes());
        for (k, v) in entries {
            out.extend_from_slice(&len32(k.len())?.to_be_bytes());
            out.extend_from_slice(&len32(v.len())?.to_be_bytes());
            out.extend_from_slice(k);
            out.extend_from_slice(v);
        }
        Ok(out)
    }

    /// Loads the state of `conversation` from a blob made by [`Self::encode`].
    pub fn decode(conversation: &ConversationId, blob: &[u8]) -> Result<Self, String> {
        let mut r = Reader(blob);
        if r.take(1)? != [STATE_V1] {
            return Err("unknown group state version".into());
        }
        let n = r.u32()?;
        if n > MAX_ENTRIES {
            return Err("too many entries".into());
        }
        let mut map = std::collections::HashMap::with_capacity(n);
        for _ in 0..n {
            let (kl, vl) = (r.u32()?, r.u32()?);
            let k = r.take(kl)?.to_vec();
            let v = r.take(vl)?.to_vec();
            if map.insert(k, v).is_some() {
                return Err("repeated key".into());
            }
        }
        if !r.0.is_empty() {
            return Err("trailing bytes".into());
        }
        let storage = MemoryStorage {
            values: std::sync::RwLock::new(map),
        };
        // openmls's memory storage unwraps its own JSON decoding, so a
        // corrupt stored value panics inside `load`: contain that here as an
        // error, so that one damaged row cannot stop the writer.
        let group_id = GroupId::from_slice(&conversation.0);
        let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            PublicGroup::load(&storage, &group_id)
        }))
        .map_err(|_| "the stored group state is corrupt".to_owned())?;
        let group = loaded
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "no group in the stored state".to_owned())?;
        Ok(Self { group, storage })
    }
}

fn check_sender(processed: &ProcessedMessage, sender: &str) -> Result<(), String> {
    let basic = BasicCredential::try_from(processed.credential().clone())
        .map_err(|_| "the signer has no basic credential".to_owned())?;
    if basic.identity() != sender.as_bytes() {
        return Err("the message is signed by another member than the caller".into());
    }
    Ok(())
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("truncated group state".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<usize, String> {
        let b: [u8; 4] = self
            .take(4)?
            .try_into()
            .map_err(|_| "truncated group state".to_owned())?;
        usize::try_from(u32::from_be_bytes(b)).map_err(|_| "length overflow".to_owned())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;
    use ed25519_dalek::SigningKey;

    use super::*;

    const CONV: ConversationId = ConversationId([7; 16]);

    /// The stored state of a real two-member group.
    fn stored_state() -> Vec<u8> {
        let (create, _) = custos_deploy::mls_fixture::two_member_group(
            &CONV,
            ("alice", &SigningKey::from_bytes(&[1; 32])),
            ("bob", &SigningKey::from_bytes(&[2; 32])),
        );
        let field = |k: &str| B64.decode(create[k].as_str().unwrap()).unwrap();
        GroupState::create(&CONV, &field("group_info"), &field("ratchet_tree"))
            .unwrap()
            .encode()
            .unwrap()
    }

    /// Offsets of every entry's value in an encoded state.
    fn value_offsets(blob: &[u8]) -> Vec<(usize, usize)> {
        let u32_at = |at: usize| u32::from_be_bytes(blob[at..at + 4].try_into().unwrap()) as usize;
        let mut at = 5;
        let mut out = Vec::new();
        for _ in 0..u32_at(1) {
            let (kl, vl) = (u32_at(at), u32_at(at + 4));
            out.push((at + 8 + kl, vl));
            at += 8 + kl + vl;
        }
        out
    }

    #[test]
    fn a_stored_state_round_trips() {
        let blob = stored_state();
        let state = GroupState::decode(&CONV, &blob).unwrap();
        assert_eq!(state.epoch(), 0);
        assert_eq!(state.encode().unwrap(), blob);
    }

    /// Found by the `server_mls_public_state` fuzz target: a stored value
    /// that is not the JSON openmls wrote made `decode` panic. Each value
    /// damaged in turn (its first byte, its last byte, or cut short) is now
    /// an error or a state that still loads, never a panic.
    #[test]
    fn a_damaged_stored_state_is_an_error_not_a_panic() {
        let blob = stored_state();
        let values = value_offsets(&blob);
        assert!(values.len() >= 3, "tree, context and more are stored");
        for (start, len) in values {
            for damage in 0..3 {
                let mut bad = blob.clone();
                match damage {
                    0 => bad[start] = b'!',
                    1 => bad[start + len - 1] ^= 0x55,
                    _ => {
                        bad.remove(start);
                        let vl_at = start - len_of_key(&blob, start) - 4;
                        let vl = u32::try_from(len - 1).unwrap().to_be_bytes();
                        bad[vl_at..vl_at + 4].copy_from_slice(&vl);
                    }
                }
                let _ = GroupState::decode(&CONV, &bad);
            }
        }
    }

    /// The key length of the entry whose value starts at `value_start`.
    fn len_of_key(blob: &[u8], value_start: usize) -> usize {
        let mut at = 5;
        loop {
            let kl = u32::from_be_bytes(blob[at..at + 4].try_into().unwrap()) as usize;
            let vl = u32::from_be_bytes(blob[at + 4..at + 8].try_into().unwrap()) as usize;
            if at + 8 + kl == value_start {
                return kl;
            }
            at += 8 + kl + vl;
        }
    }
}
