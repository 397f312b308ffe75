//! Delivery tag v1: the service's signed statement that it accepted an
//! envelope from an account, in a conversation, at a time.
//!
//! ```text
//! struct DeliveryTag {
//!     u8     version = 1;
//!     opaque franking_commitment[32]; // copied from the envelope header
//!     opaque conversation[16];
//!     opaque sender<1..64>;           // u8 length; authenticated account name
//!     u64    server_time;             // acceptance time, Unix ms (service clock)
//!     opaque envelope_hash[32];       // SHA-256 of the envelope exactly as received
//!     opaque signature[64];           // Ed25519 by the service's franking key
//! }
//! ```
//! The signature covers [`TAG_SIGNATURE_LABEL`] followed by every byte of the
//! encoding before the signature ([`DeliveryTag::signed_bytes`]).
//!
//! # Security meaning
//! A valid tag proves that the holder of the franking key (the service)
//! received, from the authenticated account `sender`, the envelope whose
//! SHA-256 is `envelope_hash` and whose header commits to a payload with
//! `franking_commitment`. Together with the payload and its franking key it
//! lets anyone with the service's public key check who sent what, and nobody
//! without the service's signing key can make one. This crate checks form
//! only; the signature is checked by the holder of the public key.

use crate::WireError;
use crate::codec::{Reader, Writer};
use crate::ids::{ConversationId, MAX_ACCOUNT_NAME, read_account, read_version, write_account};

/// Current delivery-tag version.
pub const TAG_VERSION: u8 = 1;
/// Domain-separation label prefixed to the bytes a tag signature covers.
pub const TAG_SIGNATURE_LABEL: &[u8] = b"custos/v1/delivery-tag";
/// Largest encoded tag.
pub const MAX_DELIVERY_TAG_LEN: usize = 1 + 32 + 16 + 1 + MAX_ACCOUNT_NAME + 8 + 32 + 64;

/// The fields a delivery tag binds (everything but the signature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFields {
    /// The envelope header's franking commitment.
    pub franking_commitment: [u8; 32],
    /// The conversation the envelope was submitted to.
    pub conversation: ConversationId,
    /// The authenticated sender account.
    pub sender: String,
    /// Acceptance time, Unix ms on the service clock.
    pub server_time: u64,
    /// SHA-256 of the envelope exactly as received.
    pub envelope_hash: [u8; 32],
}

/// A decoded delivery tag. Decoding checks form only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryTag {
    /// What the tag binds.
    pub fields: TagFields,
    /// Ed25519 signature over [`DeliveryTag::signed_bytes`].
    pub signature: [u8; 64],
}

impl TagFields {
    fn write(&self, w: &mut Writer) -> Result<(), WireError> {
        w.u8(TAG_VERSION)
            .raw(&self.franking_commitment)
            .raw(&self.conversation.0);
        write_account(w, &self.sender)?;
        w.u64(self.server_time).raw(&self.envelope_hash);
        Ok(())
    }

    /// The bytes a tag signature covers: the label, then the encoding of
    /// these fields (version included).
    pub fn signed_bytes(&self) -> Result<Vec<u8>, WireError> {
        let mut w = Writer::with_capacity(TAG_SIGNATURE_LABEL.len() + MAX_DELIVERY_TAG_LEN);
        w.raw(TAG_SIGNATURE_LABEL);
        self.write(&mut w)?;
        Ok(w.into_bytes())
    }
}

impl DeliveryTag {
    /// Decodes a canonical tag, refusing anything else.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        if bytes.len() > MAX_DELIVERY_TAG_LEN {
            return Err(WireError::TooLong {
                field: "delivery_tag",
                max: MAX_DELIVERY_TAG_LEN,
            });
        }
        let mut r = Reader::new(bytes);
        read_version(&mut r, "delivery tag", TAG_VERSION)?;
        let franking_commitment = r.field("franking_commitment").array()?;
        let conversation = ConversationId(r.field("conversation").array()?);
        let sender = read_account(&mut r)?.to_owned();
        let server_time = r.field("server_time").u64()?;
        let envelope_hash = r.field("envelope_hash").array()?;
        let signature = r.field("signature").array()?;
        r.finish()?;
        Ok(Self {
            fields: TagFields {
                franking_commitment,
                conversation,
                sender,
                server_time,
                envelope_hash,
            },
            signature,
        })
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let mut w = Writer::with_capacity(MAX_DELIVERY_TAG_LEN);
        self.fields.write(&mut w)?;
        w.raw(&self.signature);
        Ok(w.into_bytes())
    }

    /// The bytes the signature covers; see [`TagFields::signed_bytes`].
    pub fn signed_bytes(&self) -> Result<Vec<u8>, WireError> {
        self.fields.signed_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> DeliveryTag {
        DeliveryTag {
            fields: TagFields {
                franking_commitment: [0x11; 32],
                conversation: ConversationId([0x22; 16]),
                sender: "alice".into(),
                server_time: 1_795_000_000_000,
                envelope_hash: [0x33; 32],
            },
            signature: [0x44; 64],
        }
    }

    #[test]
    fn round_trip_and_refusals() {
        let t = sample();
        let bytes = t.encode().unwrap();
        assert_eq!(DeliveryTag::decode(&bytes).unwrap(), t);
        assert!(bytes.len() <= MAX_DELIVERY_TAG_LEN);
        assert!(bytes.len() <= crate::frames::MAX_TAG_LEN);
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            DeliveryTag::decode(&trailing),
            Err(WireError::TrailingBytes { count: 1 })
        ));
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert!(matches!(
            DeliveryTag::decode(&v2),
            Err(WireError::UnsupportedVersion { version: 2, .. })
        ));
        // An invalid sender name (uppercase) is refused.
        let mut upper = bytes.clone();
        upper[1 + 32 + 16 + 1] = b'A';
        assert!(DeliveryTag::decode(&upper).is_err());
        for n in 0..bytes.len() {
            assert!(DeliveryTag::decode(&bytes[..n]).is_err());
        }
    }

    #[test]
    fn signed_bytes_are_label_then_encoding_without_signature() {
        let t = sample();
        let bytes = t.encode().unwrap();
        let signed = t.signed_bytes().unwrap();
        assert_eq!(&signed[..TAG_SIGNATURE_LABEL.len()], TAG_SIGNATURE_LABEL);
        assert_eq!(
            &signed[TAG_SIGNATURE_LABEL.len()..],
            &bytes[..bytes.len() - 64]
        );
    }
}
