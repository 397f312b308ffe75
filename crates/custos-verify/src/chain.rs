//! Sender chains: the symmetric ratchet that encrypts content.
//!
//! A chain belongs to one sender in one MLS epoch on one UTC day. Its root
//! `CK_0` is 32 random bytes announced over MLS. Message `n` uses the key and
//! nonce from `HKDF-Expand(CK_n, "custos/v1/msg" || chain || n)`, and then
//! `CK_{n+1} = HKDF-Expand(CK_n, "custos/v1/chain" || chain || n)`, where
//! `chain` is the 36-byte qualified chain id.
//!
//! # Security meaning
//! - **Forward secrecy within a chain:** a chain key is replaced (and the old
//!   one zeroized) as soon as it is used, and message keys are deleted after
//!   use; compromising the state later does not reveal earlier messages.
//! - **Nonce uniqueness:** every generation has its own key and nonce, and a
//!   sending chain never yields the same generation twice. Callers persist the
//!   advanced chain *before* they release the ciphertext.
//! - **Bounded skipping:** a receiver keeps at most [`MAX_SKIPPED_KEYS`] keys
//!   for messages that have not arrived yet, and refuses to jump further
//!   ahead than that in one step.

use std::collections::BTreeMap;

use custos_wire::{ChainId, ConversationId};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Most skipped message keys a receiving chain keeps, and the largest jump
/// ahead it accepts in one step.
pub const MAX_SKIPPED_KEYS: u32 = 1000;

const MSG_LABEL: &[u8] = b"custos/v1/msg";
const CHAIN_LABEL: &[u8] = b"custos/v1/chain";

/// A chain key `CK_n`. Secret; zeroized on drop.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct ChainKey([u8; 32]);

impl ChainKey {
    /// Wraps raw key bytes (a fresh random root, or a stored key).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh random root from the OS generator.
    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
        Self(bytes)
    }

    /// The raw bytes, for persisting or announcing. Handle as a secret.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChainKey(<secret>)")
    }
}

/// The AEAD key and nonce for one message. Secret; zeroized on drop.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct MessageKey {
    /// AES-256-GCM key.
    pub key: [u8; 32],
    /// AES-GCM nonce, unique to this key.
    pub nonce: [u8; 12],
}

impl std::fmt::Debug for MessageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MessageKey(<secret>)")
    }
}

/// Why a receiving chain could not give a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The generation was already used (a replay) or its skipped key was evicted.
    #[error("message key {generation} was already used or is too old (replay?)")]
    KeyUsedOrExpired {
        /// The generation asked for.
        generation: u32,
    },
    /// The generation is further ahead than the skip bound allows.
    #[error("message {generation} is more than {MAX_SKIPPED_KEYS} messages ahead of the chain")]
    TooFarAhead {
        /// The generation asked for.
        generation: u32,
    },
    /// The chain has run out of generations.
    #[error("the chain is exhausted; start a new chain")]
    Exhausted,
}

/// One step of the ratchet: the message key for `generation` and the next chain key.
pub fn step(ck: &ChainKey, qualified_chain: &[u8], generation: u32) -> (MessageKey, ChainKey) {
    // CK_n is 32 uniformly random bytes, so it is used directly as the HKDF
    // pseudorandom key (Expand only). 32 bytes is SHA-256's output length, so
    // `from_prk` cannot fail; the fallback keeps this total anyway.
    let hk = Hkdf::<Sha256>::from_prk(&ck.0).unwrap_or_else(|_| Hkdf::<Sha256>::new(None, &ck.0));
    let gen_bytes = generation.to_be_bytes();
    let mut mk = MessageKey {
        key: [0u8; 32],
        nonce: [0u8; 12],
    };
    let mut next = [0u8; 32];
    // Expand can only fail for outputs longer than 255 * 32 bytes. Key and
    // nonce come from one expansion with distinct info strings per output.
    let _ = hk.expand_multi_info(
        &[MSG_LABEL, b"/key", qualified_chain, &gen_bytes],
        &mut mk.key,
    );
    let _ = hk.expand_multi_info(
        &[MSG_LABEL, b"/nonce", qualified_chain, &gen_bytes],
        &mut mk.nonce,
    );
    let _ = hk.expand_multi_info(&[CHAIN_LABEL, qualified_chain, &gen_bytes], &mut next);
    let out = ChainKey(next);
    next.zeroize();
    (mk, out)
}

/// The sender's side of a chain.
#[derive(Debug, Clone)]
pub struct SendingChain {
    /// Conversation of the chain.
    pub conversation: ConversationId,
    /// The chain's id.
    pub id: ChainId,
    /// Next generation to use.
    pub next_generation: u32,
    /// `CK_{next_generation}`.
    pub chain_key: ChainKey,
}

impl SendingChain {
    /// Starts a chain at generation 0 from `root`.
    pub fn new(conversation: ConversationId, id: ChainId, root: ChainKey) -> Self {
        Self {
            conversation,
            id,
            next_generation: 0,
            chain_key: root,
        }
    }

    /// Takes the next message key, advancing the chain and erasing the used
    /// chain key. Never returns the same generation twice.
    pub fn next_key(&mut self) -> Result<(u32, MessageKey), ChainError> {
        let generation = self.next_generation;
        let after = generation.checked_add(1).ok_or(ChainError::Exhausted)?;
        let qid = self.id.qualified(&self.conversation);
        let (mk, next) = step(&self.chain_key, &qid, generation);
        self.chain_key = next;
        self.next_generation = after;
        Ok((generation, mk))
    }
}

/// The receiver's side of a chain, with its skipped keys.
#[derive(Debug, Clone)]
pub struct ReceivingChain {
    /// Conversation of the chain.
    pub conversation: ConversationId,
    /// The chain's id.
    pub id: ChainId,
    /// Lowest generation not yet derived.
    pub next_generation: u32,
    /// `CK_{next_generation}`.
    pub chain_key: ChainKey,
    /// Keys derived for generations below `next_generation` that have not
    /// been used yet, at most [`MAX_SKIPPED_KEYS`].
    pub skipped: BTreeMap<u32, MessageKey>,
}

impl ReceivingChain {
    /// Starts receiving a chain at generation 0 from its announced root.
    pub fn new(conversation: ConversationId, id: ChainId, root: ChainKey) -> Self {
        Self {
            conversation,
            id,
            next_generation: 0,
            chain_key: root,
            skipped: BTreeMap::new(),
        }
    }

    /// Takes the key for `generation`, deleting it from the chain. Keys for
    /// generations jumped over are kept (up to the bound) for messages that
    /// arrive late. Callers that fail to authenticate the message with this
    /// key should discard this chain state and keep the previous one.
    pub fn take_key(&mut self, generation: u32) -> Result<MessageKey, ChainError> {
        if generation < self.next_generation {
            return self
                .skipped
                .remove(&generation)
                .ok_or(ChainError::KeyUsedOrExpired { generation });
        }
        if generation - self.next_generation > MAX_SKIPPED_KEYS {
            return Err(ChainError::TooFarAhead { generation });
        }
        let qid = self.id.qualified(&self.conversation);
        while self.next_generation < generation {
            let (mk, next) = step(&self.chain_key, &qid, self.next_generation);
            self.skipped.insert(self.next_generation, mk);
            self.chain_key = next;
            self.next_generation += 1;
        }
        let (mk, next) = step(&self.chain_key, &qid, generation);
        self.chain_key = next;
        self.next_generation = generation.checked_add(1).ok_or(ChainError::Exhausted)?;
        // Keep the newest keys within the bound; evict the oldest.
        while self.skipped.len() > MAX_SKIPPED_KEYS as usize {
            self.skipped.pop_first();
        }
        Ok(mk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn ids() -> (ConversationId, ChainId) {
        (
            ConversationId([1; 16]),
            ChainId {
                epoch: 1,
                sender_leaf: 0,
                day: 20_000,
                seq: 0,
            },
        )
    }

    #[test]
    fn sender_and_receiver_agree_in_and_out_of_order() {
        let (conv, id) = ids();
        let root = ChainKey::random();
        let mut s = SendingChain::new(conv, id, root.clone());
        let mut r = ReceivingChain::new(conv, id, root);
        let keys: Vec<_> = (0..10).map(|_| s.next_key().unwrap()).collect();
        for i in [3usize, 0, 9, 1, 2, 4, 8, 5, 7, 6] {
            let (g, k) = &keys[i];
            assert_eq!(&r.take_key(*g).unwrap(), k);
        }
        assert!(r.skipped.is_empty());
    }

    #[test]
    fn used_keys_are_deleted_so_replays_fail() {
        let (conv, id) = ids();
        let root = ChainKey::random();
        let mut r = ReceivingChain::new(conv, id, root);
        r.take_key(0).unwrap();
        assert_eq!(
            r.take_key(0),
            Err(ChainError::KeyUsedOrExpired { generation: 0 })
        );
        r.take_key(5).unwrap();
        assert_eq!(r.skipped.len(), 4);
        r.take_key(2).unwrap();
        assert_eq!(
            r.take_key(2),
            Err(ChainError::KeyUsedOrExpired { generation: 2 })
        );
        assert_eq!(
            r.take_key(5),
            Err(ChainError::KeyUsedOrExpired { generation: 5 })
        );
    }

    #[test]
    fn chain_key_changes_every_step_forward_secrecy() {
        let (conv, id) = ids();
        let root = ChainKey::random();
        let mut s = SendingChain::new(conv, id, root.clone());
        let mut seen = vec![root.expose().to_vec()];
        for _ in 0..20 {
            s.next_key().unwrap();
            let now = s.chain_key.expose().to_vec();
            assert!(!seen.contains(&now));
            seen.push(now);
        }
        // The state after step n cannot give the key of step n-1: a fresh
        // receiver starting from the current chain key derives different keys.
        let mut from_now = ReceivingChain::new(conv, id, s.chain_key.clone());
        from_now.next_generation = s.next_generation;
        let mut s_again = SendingChain::new(conv, id, root);
        let (_, first) = s_again.next_key().unwrap();
        for g in s.next_generation..s.next_generation + 5 {
            assert_ne!(from_now.take_key(g).unwrap(), first);
        }
    }

    #[test]
    fn skip_bound_holds() {
        let (conv, id) = ids();
        let mut r = ReceivingChain::new(conv, id, ChainKey::random());
        assert_eq!(
            r.take_key(MAX_SKIPPED_KEYS + 1),
            Err(ChainError::TooFarAhead {
                generation: MAX_SKIPPED_KEYS + 1
            })
        );
        r.take_key(MAX_SKIPPED_KEYS).unwrap();
        assert_eq!(r.skipped.len(), MAX_SKIPPED_KEYS as usize);
        // Jumping again keeps the total within the bound, evicting the oldest.
        r.take_key(2 * MAX_SKIPPED_KEYS).unwrap();
        assert_eq!(r.skipped.len(), MAX_SKIPPED_KEYS as usize);
        assert!(r.take_key(0).is_err());
    }

    #[test]
    fn nonces_and_keys_never_repeat() {
        let (conv, id) = ids();
        let mut nonces = HashSet::new();
        let mut keys = HashSet::new();
        for seq in 0..4 {
            let id = ChainId { seq, ..id };
            let mut s = SendingChain::new(conv, id, ChainKey::random());
            for _ in 0..500 {
                let (_, mk) = s.next_key().unwrap();
                assert!(nonces.insert((mk.key, mk.nonce)));
                assert!(keys.insert(mk.key));
            }
        }
        // Same root, different chain ids: different keys (domain separation).
        let root = ChainKey::random();
        let mut a = SendingChain::new(conv, id, root.clone());
        let mut b = SendingChain::new(conv, ChainId { seq: 9, ..id }, root);
        assert_ne!(a.next_key().unwrap().1, b.next_key().unwrap().1);
    }
}
