//! Envelope v1: one content message under a sender chain.
//!
//! ```text
//! struct Envelope {
//!     u8     version = 1;
//!     opaque conversation[16];
//!     ChainId chain;                  // epoch u64, sender_leaf u32, day u32, seq u32
//!     u32    generation;              // message index n within the chain
//!     opaque franking_commitment[32]; // HMAC-SHA256 commitment to the payload
//!     opaque ciphertext<0..2^32-1>;   // AEAD(payload), associated data = header
//!     opaque signature[64];           // Ed25519 by the sender's MLS credential key
//! }
//! ```
//! The header is everything before `ciphertext`. The signature covers
//! [`ENVELOPE_SIGNATURE_LABEL`] followed by every byte before the signature.
//! The whole encoding is at most [`MAX_ENVELOPE_LEN`] bytes.

use crate::WireError;
use crate::codec::{Reader, Writer};
use crate::ids::{CONVERSATION_ID_LEN, ChainId, ConversationId, read_version};

/// Current envelope version.
pub const ENVELOPE_VERSION: u8 = 1;
/// Largest envelope the service accepts, in bytes (256 KiB).
pub const MAX_ENVELOPE_LEN: usize = 256 * 1024;
/// Length of the envelope header, in bytes.
pub const ENVELOPE_HEADER_LEN: usize = 1 + CONVERSATION_ID_LEN + ChainId::LEN + 4 + 32;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Largest ciphertext that fits in an envelope.
pub const MAX_CIPHERTEXT_LEN: usize = MAX_ENVELOPE_LEN - ENVELOPE_HEADER_LEN - 4 - SIGNATURE_LEN;
/// Domain-separation label prefixed to the bytes an envelope signature covers.
pub const ENVELOPE_SIGNATURE_LABEL: &[u8] = b"custos/v1/envelope-signature";

/// The authenticated header of an envelope; it is also the AEAD associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvelopeHeader {
    /// Conversation (MLS group) the message belongs to.
    pub conversation: ConversationId,
    /// The sender chain that encrypts it.
    pub chain: ChainId,
    /// Index of the message key within the chain.
    pub generation: u32,
    /// Franking commitment to the payload, bound to conversation and sender.
    pub franking_commitment: [u8; 32],
}

impl EnvelopeHeader {
    /// The canonical header bytes (AEAD associated data).
    pub fn encode(&self) -> [u8; ENVELOPE_HEADER_LEN] {
        let mut w = Writer::with_capacity(ENVELOPE_HEADER_LEN);
        self.write(&mut w);
        let mut out = [0u8; ENVELOPE_HEADER_LEN];
        out.copy_from_slice(w.as_slice());
        out
    }

    fn write(&self, w: &mut Writer) {
        w.u8(ENVELOPE_VERSION).raw(&self.conversation.0);
        self.chain.write(w);
        w.u32(self.generation).raw(&self.franking_commitment);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        read_version(r, "envelope", ENVELOPE_VERSION)?;
        Ok(Self {
            conversation: ConversationId(r.field("conversation").array()?),
            chain: ChainId::read(r)?,
            generation: r.field("generation").u32()?,
            franking_commitment: r.field("franking_commitment").array()?,
        })
    }
}

/// A decoded envelope. Decoding checks form only; the signature and the AEAD
/// are checked by the client that holds the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The authenticated header.
    pub header: EnvelopeHeader,
    /// AEAD ciphertext of the payload.
    pub ciphertext: Vec<u8>,
    /// Ed25519 signature over [`Envelope::signed_bytes`].
    pub signature: [u8; SIGNATURE_LEN],
}

impl Envelope {
    /// Decodes a canonical envelope, refusing anything else.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        if bytes.len() > MAX_ENVELOPE_LEN {
            return Err(WireError::TooLong {
                field: "envelope",
                max: MAX_ENVELOPE_LEN,
            });
        }
        let mut r = Reader::new(bytes);
        let header = EnvelopeHeader::read(&mut r)?;
        let ciphertext = r.field("ciphertext").bytes32(MAX_CIPHERTEXT_LEN)?.to_vec();
        let signature = r.field("signature").array()?;
        r.finish()?;
        Ok(Self {
            header,
            ciphertext,
            signature,
        })
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let mut w = Self::unsigned_writer(&self.header, &self.ciphertext)?;
        w.raw(&self.signature);
        Ok(w.into_bytes())
    }

    /// The message an envelope signature covers: the label, then the header
    /// and the length-prefixed ciphertext, exactly as encoded.
    pub fn signed_bytes(header: &EnvelopeHeader, ciphertext: &[u8]) -> Result<Vec<u8>, WireError> {
        let mut w = Writer::with_capacity(
            ENVELOPE_SIGNATURE_LABEL.len() + ENVELOPE_HEADER_LEN + 4 + ciphertext.len(),
        );
        w.raw(ENVELOPE_SIGNATURE_LABEL);
        header.write(&mut w);
        w.bytes32("ciphertext", ciphertext, MAX_CIPHERTEXT_LEN)?;
        Ok(w.into_bytes())
    }

    fn unsigned_writer(header: &EnvelopeHeader, ciphertext: &[u8]) -> Result<Writer, WireError> {
        let mut w =
            Writer::with_capacity(ENVELOPE_HEADER_LEN + 4 + ciphertext.len() + SIGNATURE_LEN);
        header.write(&mut w);
        w.bytes32("ciphertext", ciphertext, MAX_CIPHERTEXT_LEN)?;
        Ok(w)
    }
}

/// Reads only the header of an encoded envelope, for routing and policy
/// checks that need not copy the ciphertext. Checks the overall length too.
pub fn peek_header(bytes: &[u8]) -> Result<EnvelopeHeader, WireError> {
    if bytes.len() > MAX_ENVELOPE_LEN {
        return Err(WireError::TooLong {
            field: "envelope",
            max: MAX_ENVELOPE_LEN,
        });
    }
    EnvelopeHeader::read(&mut Reader::new(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        Envelope {
            header: EnvelopeHeader {
                conversation: ConversationId([7; 16]),
                chain: ChainId {
                    epoch: 3,
                    sender_leaf: 1,
                    day: 20_000,
                    seq: 0,
                },
                generation: 9,
                franking_commitment: [0xab; 32],
            },
            ciphertext: vec![1, 2, 3],
            signature: [0x55; 64],
        }
    }

    #[test]
    fn round_trip_and_refusals() {
        let env = sample();
        let bytes = env.encode().unwrap();
        assert_eq!(Envelope::decode(&bytes).unwrap(), env);
        assert_eq!(peek_header(&bytes).unwrap(), env.header);
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            Envelope::decode(&trailing),
            Err(WireError::TrailingBytes { .. })
        ));
        let mut wrong_version = bytes.clone();
        wrong_version[0] = 2;
        assert!(matches!(
            Envelope::decode(&wrong_version),
            Err(WireError::UnsupportedVersion { version: 2, .. })
        ));
        assert!(Envelope::decode(&bytes[..bytes.len() - 1]).is_err());
        let huge = vec![0u8; MAX_ENVELOPE_LEN + 1];
        assert!(matches!(
            Envelope::decode(&huge),
            Err(WireError::TooLong { .. })
        ));
    }

    #[test]
    fn signed_bytes_are_label_then_encoding_without_signature() {
        let env = sample();
        let bytes = env.encode().unwrap();
        let signed = Envelope::signed_bytes(&env.header, &env.ciphertext).unwrap();
        assert_eq!(
            &signed[..ENVELOPE_SIGNATURE_LABEL.len()],
            ENVELOPE_SIGNATURE_LABEL
        );
        assert_eq!(
            &signed[ENVELOPE_SIGNATURE_LABEL.len()..],
            &bytes[..bytes.len() - 64]
        );
    }
}
