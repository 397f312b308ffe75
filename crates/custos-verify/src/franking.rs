//! Message franking: a commitment in the header to the payload.
//!
//! `c = HMAC-SHA256(k_f, "custos/v1/franking" || conversation || len(sender) || sender || payload)`,
//! where `k_f` is a fresh random key carried inside the payload and `payload`
//! is the exact encoded plaintext.
//!
//! # Security meaning
//! HMAC-SHA256 is a committing MAC: a sender cannot find two payloads (or two
//! keys) that give the same `c`, so what a recipient reads is what a report
//! later proves. The recipient refuses any envelope whose commitment does not
//! match the decrypted payload. Attachments are committed through the SHA-256
//! of their plaintext inside the payload.

use custos_wire::ConversationId;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Domain-separation label of the franking commitment.
pub const FRANKING_LABEL: &[u8] = b"custos/v1/franking";

type HmacSha256 = Hmac<Sha256>;

fn mac(
    franking_key: &[u8; 32],
    conversation: &ConversationId,
    sender: &str,
    payload: &[u8],
) -> HmacSha256 {
    // RFC 2104 pads keys shorter than the block with zeros, so keying with the
    // zero-padded 64-byte block is the same HMAC and cannot fail.
    let mut block = zeroize::Zeroizing::new([0u8; 64]);
    for (b, k) in block.iter_mut().zip(franking_key) {
        *b = *k;
    }
    let mut m = <HmacSha256 as hmac::digest::KeyInit>::new(&(*block).into());
    m.update(FRANKING_LABEL);
    m.update(&conversation.0);
    // Account names are at most 64 bytes (checked by custos-wire).
    m.update(&[u8::try_from(sender.len()).unwrap_or(u8::MAX)]);
    m.update(sender.as_bytes());
    m.update(payload);
    m
}

/// Computes the commitment `c` to `payload` (its exact encoding).
pub fn commit(
    franking_key: &[u8; 32],
    conversation: &ConversationId,
    sender: &str,
    payload: &[u8],
) -> [u8; 32] {
    mac(franking_key, conversation, sender, payload)
        .finalize()
        .into_bytes()
        .into()
}

/// Checks a commitment in constant time.
pub fn verify(
    commitment: &[u8; 32],
    franking_key: &[u8; 32],
    conversation: &ConversationId,
    sender: &str,
    payload: &[u8],
) -> bool {
    mac(franking_key, conversation, sender, payload)
        .verify_slice(commitment)
        .is_ok()
}

/// A fresh franking key from the OS generator.
pub fn fresh_key() -> zeroize::Zeroizing<[u8; 32]> {
    let mut k = zeroize::Zeroizing::new([0u8; 32]);
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, k.as_mut());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_every_input() {
        let k = [1u8; 32];
        let conv = ConversationId([2; 16]);
        let c = commit(&k, &conv, "alice", b"hello");
        assert!(verify(&c, &k, &conv, "alice", b"hello"));
        assert!(!verify(&c, &[9u8; 32], &conv, "alice", b"hello"));
        assert!(!verify(&c, &k, &ConversationId([3; 16]), "alice", b"hello"));
        assert!(!verify(&c, &k, &conv, "mallory", b"hello"));
        assert!(!verify(&c, &k, &conv, "alice", b"hellO"));
        // The length prefix keeps sender and payload from sliding into each other.
        assert_ne!(commit(&k, &conv, "ab", b"c"), commit(&k, &conv, "a", b"bc"));
    }
}
