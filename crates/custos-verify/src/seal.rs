//! Sealing and opening envelopes under sender chains.
//!
//! Sealing: franking commitment over the encoded payload, AES-256-GCM under
//! the chain's message key with the header as associated data, then an
//! Ed25519 signature by the sender's MLS credential key over the header and
//! ciphertext. Opening checks the signature first, then decrypts, then checks
//! the franking commitment, and only then lets the chain state advance.

use aes_gcm::aead::{Aead, KeyInit, Payload as AeadPayload};
use aes_gcm::{Aes256Gcm, Nonce};
use custos_wire::ConversationId;
use custos_wire::envelope::{Envelope, EnvelopeHeader};
use custos_wire::payload::Payload;
use ed25519_dalek::{Signer as _, SigningKey};
use sha2::{Digest, Sha256};

use crate::chain::{ChainError, ReceivingChain, SendingChain};
use crate::franking;
use crate::sender_signature::{self, SenderKey, SignatureBatch};

/// Domain-separation label of message ids.
pub const MESSAGE_ID_LABEL: &[u8] = b"custos/v1/message-id";

/// Why an envelope could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The bytes are not a canonical envelope or payload.
    #[error("malformed envelope: {0}")]
    Malformed(#[from] custos_wire::WireError),
    /// The envelope belongs to another chain than the one given.
    #[error("envelope does not belong to this chain")]
    WrongChain,
    /// The sender's signature does not verify against its roster key.
    #[error("envelope signature does not verify against the sender's key")]
    BadSignature,
    /// The chain cannot give the message key (replay, too old, too far ahead).
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The ciphertext does not decrypt under the message key.
    #[error("envelope does not decrypt (tampered or wrong key)")]
    Decrypt,
    /// The payload does not match the header's franking commitment.
    #[error("franking commitment does not match the payload")]
    FrankingMismatch,
}

impl SealError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "envelope_malformed",
            Self::WrongChain => "envelope_wrong_chain",
            Self::BadSignature => "envelope_bad_signature",
            Self::Chain(ChainError::KeyUsedOrExpired { .. }) => "envelope_key_used_or_expired",
            Self::Chain(ChainError::TooFarAhead { .. }) => "envelope_too_far_ahead",
            Self::Chain(_) => "envelope_chain_exhausted",
            Self::Decrypt => "envelope_decrypt",
            Self::FrankingMismatch => "envelope_franking_mismatch",
        }
    }
}

/// A sealed envelope and what the sender keeps of it.
#[derive(Debug, Clone)]
pub struct Sealed {
    /// The encoded envelope, ready to submit.
    pub bytes: Vec<u8>,
    /// Its message id.
    pub message_id: [u8; 32],
    /// The generation used.
    pub generation: u32,
}

/// The message id of an encoded envelope: `SHA-256(label || envelope)`.
/// Public; used to refer to messages in reports.
pub fn message_id(envelope: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(MESSAGE_ID_LABEL);
    h.update(envelope);
    h.finalize().into()
}

/// Seals `payload` as the next message of `chain`. `sender` is the sender's
/// account name, which the franking commitment binds.
///
/// The chain advances even if a later step fails, so a generation is never
/// reused; the caller must persist `chain` before releasing the bytes.
pub fn seal(
    chain: &mut SendingChain,
    signing_key: &SigningKey,
    sender: &str,
    payload: &Payload,
) -> Result<Sealed, SealError> {
    let plaintext = payload.encode()?;
    let commitment = franking::commit(
        &payload.franking_key,
        &chain.conversation,
        sender,
        &plaintext,
    );
    let (generation, mk) = chain.next_key()?;
    let header = EnvelopeHeader {
        conversation: chain.conversation,
        chain: chain.id,
        generation,
        franking_commitment: commitment,
    };
    let aad = header.encode();
    let cipher = Aes256Gcm::new(&mk.key.into());
    let ciphertext = cipher
        .encrypt(
            Nonce::from_slice(&mk.nonce),
            AeadPayload {
                msg: &plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| SealError::Decrypt)?;
    let signed = Envelope::signed_bytes(&header, &ciphertext)?;
    let signature = signing_key.sign(&signed).to_bytes();
    let envelope = Envelope {
        header,
        ciphertext,
        signature,
    };
    let bytes = envelope.encode()?;
    Ok(Sealed {
        message_id: message_id(&bytes),
        bytes,
        generation,
    })
}

/// An opened envelope.
#[derive(Debug)]
pub struct Opened {
    /// The decrypted, franking-checked payload.
    pub payload: Payload,
    /// The envelope's header.
    pub header: EnvelopeHeader,
    /// Its message id.
    pub message_id: [u8; 32],
}

/// Opens an envelope of `chain`, sent by `sender` whose roster signature key
/// is `sender_key`; the signature is checked by the rule of
/// [`crate::sender_signature`].
///
/// On success `chain` has advanced (the key is deleted). On any error `chain`
/// is left exactly as it was, so a forged or tampered envelope cannot burn
/// keys of genuine messages.
pub fn open(
    bytes: &[u8],
    chain: &mut ReceivingChain,
    sender_key: &SenderKey,
    sender: &str,
) -> Result<Opened, SealError> {
    let envelope = Envelope::decode(bytes)?;
    let signed = signed_bytes_of_chain(&envelope, chain)?;
    sender_signature::verify(sender_key, &signed, &envelope.signature)
        .map_err(|_| SealError::BadSignature)?;
    decrypt_and_check(envelope, bytes, chain, sender)
}

/// [`open`] with the signature queued in `batch` instead of checked.
///
/// Only for callers that check `batch` afterwards and, if it fails, throw
/// away every result and chain state obtained this way and open again with
/// [`open`]: until then a message opened here is not authenticated, and an
/// insider who knows the chain key could have burnt the genuine message's
/// key with a forgery.
pub(crate) fn open_queuing_signature(
    bytes: &[u8],
    chain: &mut ReceivingChain,
    sender_key: &SenderKey,
    sender: &str,
    batch: &mut SignatureBatch,
) -> Result<Opened, SealError> {
    let envelope = Envelope::decode(bytes)?;
    let signed = signed_bytes_of_chain(&envelope, chain)?;
    batch.queue(sender_key, &signed, &envelope.signature);
    decrypt_and_check(envelope, bytes, chain, sender)
}

/// The bytes the sender signed, once the envelope is known to be of `chain`.
fn signed_bytes_of_chain(
    envelope: &Envelope,
    chain: &ReceivingChain,
) -> Result<Vec<u8>, SealError> {
    let header = &envelope.header;
    if header.conversation != chain.conversation || header.chain != chain.id {
        return Err(SealError::WrongChain);
    }
    Ok(Envelope::signed_bytes(header, &envelope.ciphertext)?)
}

/// Decrypts under the chain's key for the envelope's generation and checks
/// the franking commitment; advances `chain` only on success.
fn decrypt_and_check(
    envelope: Envelope,
    bytes: &[u8],
    chain: &mut ReceivingChain,
    sender: &str,
) -> Result<Opened, SealError> {
    let header = envelope.header;
    let mut next = chain.clone();
    let mk = next.take_key(header.generation)?;
    let cipher = Aes256Gcm::new(&mk.key.into());
    let plaintext = zeroize::Zeroizing::new(
        cipher
            .decrypt(
                Nonce::from_slice(&mk.nonce),
                AeadPayload {
                    msg: &envelope.ciphertext,
                    aad: &header.encode(),
                },
            )
            .map_err(|_| SealError::Decrypt)?,
    );
    let payload = Payload::decode(&plaintext)?;
    if !franking::verify(
        &header.franking_commitment,
        &payload.franking_key,
        &chain.conversation,
        sender,
        &plaintext,
    ) {
        return Err(SealError::FrankingMismatch);
    }
    *chain = next;
    Ok(Opened {
        payload,
        header,
        message_id: message_id(bytes),
    })
}

/// A text payload with a fresh franking key, stamped `sent_at` (Unix ms).
pub fn text_payload(text: &str, sent_at: u64) -> Payload {
    Payload {
        content_type: custos_wire::payload::ContentType::Text,
        sent_at,
        franking_key: *franking::fresh_key(),
        body: text.as_bytes().to_vec(),
        attachments: Vec::new(),
    }
}

/// Conversation-independent check used by reports: does `payload` (encoded)
/// match `commitment` for this conversation and sender?
pub fn payload_matches_commitment(
    commitment: &[u8; 32],
    payload: &Payload,
    conversation: &ConversationId,
    sender: &str,
) -> Result<bool, SealError> {
    let plaintext = payload.encode()?;
    Ok(franking::verify(
        commitment,
        &payload.franking_key,
        conversation,
        sender,
        &plaintext,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::ChainKey;
    use custos_wire::ChainId;

    fn key(sk: &SigningKey) -> SenderKey {
        SenderKey::try_from(&sk.verifying_key()).unwrap()
    }

    fn setup() -> (SendingChain, ReceivingChain, SigningKey) {
        let conv = ConversationId([4; 16]);
        let id = ChainId {
            epoch: 2,
            sender_leaf: 1,
            day: 20_500,
            seq: 0,
        };
        let root = ChainKey::random();
        (
            SendingChain::new(conv, id, root.clone()),
            ReceivingChain::new(conv, id, root),
            SigningKey::generate(&mut rand_core::OsRng),
        )
    }

    #[test]
    fn round_trip() {
        let (mut s, mut r, sk) = setup();
        let sealed = seal(&mut s, &sk, "alice", &text_payload("hi bob", 5)).unwrap();
        let opened = open(&sealed.bytes, &mut r, &key(&sk), "alice").unwrap();
        assert_eq!(opened.payload.text(), Some("hi bob"));
        assert_eq!(opened.message_id, sealed.message_id);
    }

    #[test]
    fn tampering_is_refused_and_does_not_burn_the_key() {
        let (mut s, mut r, sk) = setup();
        let sealed = seal(&mut s, &sk, "alice", &text_payload("hi", 5)).unwrap();
        for i in [
            0usize,
            20,
            60,
            sealed.bytes.len() - 70,
            sealed.bytes.len() - 1,
        ] {
            let mut bad = sealed.bytes.clone();
            bad[i] ^= 1;
            assert!(open(&bad, &mut r, &key(&sk), "alice").is_err(), "byte {i}");
        }
        let other = SigningKey::generate(&mut rand_core::OsRng);
        assert!(matches!(
            open(&sealed.bytes, &mut r, &key(&other), "alice"),
            Err(SealError::BadSignature)
        ));
        // The genuine envelope still opens, once.
        open(&sealed.bytes, &mut r, &key(&sk), "alice").unwrap();
        assert!(matches!(
            open(&sealed.bytes, &mut r, &key(&sk), "alice"),
            Err(SealError::Chain(ChainError::KeyUsedOrExpired { .. }))
        ));
    }

    #[test]
    fn wrong_sender_name_fails_franking() {
        let (mut s, mut r, sk) = setup();
        let sealed = seal(&mut s, &sk, "alice", &text_payload("hi", 5)).unwrap();
        assert!(matches!(
            open(&sealed.bytes, &mut r, &key(&sk), "mallory"),
            Err(SealError::FrankingMismatch)
        ));
    }
}
