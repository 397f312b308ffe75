//! Payload v1: the plaintext inside an envelope.
//!
//! ```text
//! struct Payload {
//!     u8     version = 1;
//!     u8     content_type;            // 1 = UTF-8 text
//!     u64    sent_at;                 // sender's clock, Unix milliseconds
//!     opaque franking_key[32];        // fresh per message; secret until reported
//!     opaque body<0..2^32-1>;         // u32 length, at most MAX_BODY_LEN
//!     Attachment attachments<0..8>;   // u8 count
//! }
//! struct Attachment {
//!     opaque key[32];                 // AEAD key of the attachment blob; secret
//!     opaque plaintext_sha256[32];    // commits the franking to the attachment
//!     u64    size;
//!     opaque locator<0..1024>;        // u16 length, UTF-8 (where the blob is stored)
//! }
//! ```
//! Because the franking commitment covers the whole encoded payload, and the
//! payload carries the SHA-256 of each attachment's plaintext, a report
//! commits to attachments even though their blobs are encrypted under a
//! non-committing AEAD (closing the attack of Dodis et al., 2018).

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::WireError;
use crate::codec::{Reader, Writer};
use crate::ids::read_version;

/// Current payload version.
pub const PAYLOAD_VERSION: u8 = 1;
/// Largest message body.
pub const MAX_BODY_LEN: usize = 200 * 1024;
/// Most attachments per message.
pub const MAX_ATTACHMENTS: usize = 8;
/// Largest attachment locator.
pub const MAX_LOCATOR_LEN: usize = 1024;

/// What the body holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    /// UTF-8 text.
    Text,
}

/// A reference to an encrypted attachment blob.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Attachment {
    /// Key of the blob. Secret.
    pub key: [u8; 32],
    /// SHA-256 of the blob's plaintext.
    pub plaintext_sha256: [u8; 32],
    /// Size of the plaintext in bytes.
    pub size: u64,
    /// Where the blob is stored.
    pub locator: String,
}

impl std::fmt::Debug for Attachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachment")
            .field("key", &"<secret>")
            .field("plaintext_sha256", &hex::encode(self.plaintext_sha256))
            .field("size", &self.size)
            .field("locator", &self.locator)
            .finish()
    }
}

/// A decrypted message. Zeroized on drop.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Payload {
    /// What the body holds.
    #[zeroize(skip)]
    pub content_type: ContentType,
    /// Sender's clock at sending, Unix milliseconds (not trusted for ordering).
    pub sent_at: u64,
    /// The per-message franking key. Secret until the recipient reports.
    pub franking_key: [u8; 32],
    /// The message body.
    pub body: Vec<u8>,
    /// Attachments, each committed by the SHA-256 of its plaintext.
    pub attachments: Vec<Attachment>,
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payload")
            .field("content_type", &self.content_type)
            .field("sent_at", &self.sent_at)
            .field("body_len", &self.body.len())
            .field("attachments", &self.attachments.len())
            .finish_non_exhaustive()
    }
}

impl Payload {
    /// Decodes a canonical payload. A text body must be valid UTF-8.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        read_version(&mut r, "payload", PAYLOAD_VERSION)?;
        let content_type = match r.field("content_type").u8()? {
            1 => ContentType::Text,
            _ => {
                return Err(WireError::InvalidValue {
                    field: "content_type",
                    reason: "unknown content type",
                });
            }
        };
        let sent_at = r.field("sent_at").u64()?;
        let franking_key = r.field("franking_key").array()?;
        let body = r.field("body").bytes32(MAX_BODY_LEN)?.to_vec();
        if content_type == ContentType::Text && std::str::from_utf8(&body).is_err() {
            return Err(WireError::InvalidUtf8 { field: "body" });
        }
        let count = usize::from(r.field("attachments").u8()?);
        if count > MAX_ATTACHMENTS {
            return Err(WireError::TooLong {
                field: "attachments",
                max: MAX_ATTACHMENTS,
            });
        }
        let mut attachments = Vec::with_capacity(count);
        for _ in 0..count {
            attachments.push(Attachment {
                key: r.field("attachment_key").array()?,
                plaintext_sha256: r.field("attachment_sha256").array()?,
                size: r.field("attachment_size").u64()?,
                locator: r
                    .field("attachment_locator")
                    .str16(MAX_LOCATOR_LEN)?
                    .to_owned(),
            });
        }
        r.finish()?;
        Ok(Self {
            content_type,
            sent_at,
            franking_key,
            body,
            attachments,
        })
    }

    /// The canonical encoding. Secret: the caller zeroizes it after use.
    pub fn encode(&self) -> Result<zeroize::Zeroizing<Vec<u8>>, WireError> {
        if self.attachments.len() > MAX_ATTACHMENTS {
            return Err(WireError::TooLong {
                field: "attachments",
                max: MAX_ATTACHMENTS,
            });
        }
        let mut w = Writer::with_capacity(64 + self.body.len() + self.attachments.len() * 128);
        w.u8(PAYLOAD_VERSION).u8(match self.content_type {
            ContentType::Text => 1,
        });
        w.u64(self.sent_at).raw(&self.franking_key);
        w.bytes32("body", &self.body, MAX_BODY_LEN)?;
        // Bounded by MAX_ATTACHMENTS (8) above.
        w.u8(
            u8::try_from(self.attachments.len()).map_err(|_| WireError::TooLong {
                field: "attachments",
                max: MAX_ATTACHMENTS,
            })?,
        );
        for a in &self.attachments {
            w.raw(&a.key).raw(&a.plaintext_sha256).u64(a.size);
            w.bytes16("attachment_locator", a.locator.as_bytes(), MAX_LOCATOR_LEN)?;
        }
        Ok(zeroize::Zeroizing::new(w.into_bytes()))
    }

    /// The body as text, if the content type is text.
    pub fn text(&self) -> Option<&str> {
        match self.content_type {
            ContentType::Text => std::str::from_utf8(&self.body).ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_attachment_and_bad_utf8() {
        let p = Payload {
            content_type: ContentType::Text,
            sent_at: 1_700_000_000_000,
            franking_key: [3; 32],
            body: b"hello".to_vec(),
            attachments: vec![Attachment {
                key: [1; 32],
                plaintext_sha256: [2; 32],
                size: 10,
                locator: "blob/1".into(),
            }],
        };
        let bytes = p.encode().unwrap();
        assert_eq!(Payload::decode(&bytes).unwrap(), p);
        let mut bad = bytes.to_vec();
        // body starts after version, type, sent_at, franking key and length.
        bad[1 + 1 + 8 + 32 + 4] = 0xff;
        assert!(matches!(
            Payload::decode(&bad),
            Err(WireError::InvalidUtf8 { .. })
        ));
    }
}
