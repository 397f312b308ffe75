//! Attachments: blobs encrypted under a fresh key, committed by the SHA-256
//! of their plaintext inside the (franked) payload.
//!
//! A blob is `AES-256-GCM(key, nonce = 0^96, aad = "custos/v1/attachment", plaintext)`.
//! The key is fresh from the OS generator for every blob and used once, so
//! the fixed nonce is never reused under a key.
//!
//! # Security meaning
//! AES-GCM is not committing: a sender can build one blob that opens, under
//! two different keys, to two different plaintexts (Dodis et al., 2018,
//! "invisible salamanders"). The payload therefore carries the SHA-256 of
//! the plaintext, and [`open_attachment`] refuses a blob whose plaintext
//! does not hash to it. Since the franking commitment covers the payload,
//! what the recipient can display is exactly what a report can prove: a
//! report verifier checks a revealed attachment against the committed hash
//! (`custos_verify::report::VerifiedMessage::attachment_matches`).

use aes_gcm::aead::{Aead, KeyInit, Payload as AeadPayload};
use aes_gcm::{Aes256Gcm, Nonce};
use custos_wire::payload::{Attachment, MAX_LOCATOR_LEN};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Associated data (domain label) of every attachment blob.
pub const ATTACHMENT_AAD: &[u8] = b"custos/v1/attachment";

/// The nonce of every blob: all zero, sound because each key seals one blob.
pub const ATTACHMENT_NONCE: [u8; 12] = [0; 12];

/// Why an attachment could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttachmentError {
    /// The blob does not decrypt under the payload's key.
    #[error("attachment does not decrypt under the key in the message")]
    Decrypt,
    /// The plaintext is not the one the (franked) payload commits to.
    #[error("attachment plaintext does not match the SHA-256 committed in the message")]
    HashMismatch,
    /// The plaintext's size is not the committed size.
    #[error("attachment size {got} differs from the committed size {committed}")]
    SizeMismatch {
        /// Decrypted size.
        got: u64,
        /// Size in the payload.
        committed: u64,
    },
    /// The locator is longer than the wire format allows.
    #[error("attachment locator is longer than {MAX_LOCATOR_LEN} bytes")]
    Locator,
}

/// An encrypted attachment: the reference that goes into the payload, and
/// the blob to upload.
#[derive(Debug)]
pub struct SealedAttachment {
    /// What the payload carries (key, plaintext SHA-256, size, locator).
    pub attachment: Attachment,
    /// The encrypted blob (ciphertext and GCM tag).
    pub blob: Vec<u8>,
}

/// Encrypts `plaintext` under a fresh key and commits to its SHA-256.
pub fn seal_attachment(
    plaintext: &[u8],
    locator: &str,
) -> Result<SealedAttachment, AttachmentError> {
    if locator.len() > MAX_LOCATOR_LEN {
        return Err(AttachmentError::Locator);
    }
    let key = crate::franking::fresh_key();
    let blob = Aes256Gcm::new(&(*key).into())
        .encrypt(
            Nonce::from_slice(&ATTACHMENT_NONCE),
            AeadPayload {
                msg: plaintext,
                aad: ATTACHMENT_AAD,
            },
        )
        .map_err(|_| AttachmentError::Decrypt)?;
    Ok(SealedAttachment {
        attachment: Attachment {
            key: *key,
            plaintext_sha256: Sha256::digest(plaintext).into(),
            size: u64::try_from(plaintext.len()).unwrap_or(u64::MAX),
            locator: locator.to_owned(),
        },
        blob,
    })
}

/// Decrypts `blob` with the attachment's key and returns the plaintext only
/// if its size and SHA-256 are the ones committed in the payload.
pub fn open_attachment(
    attachment: &Attachment,
    blob: &[u8],
) -> Result<Zeroizing<Vec<u8>>, AttachmentError> {
    let plaintext = Zeroizing::new(
        Aes256Gcm::new(&attachment.key.into())
            .decrypt(
                Nonce::from_slice(&ATTACHMENT_NONCE),
                AeadPayload {
                    msg: blob,
                    aad: ATTACHMENT_AAD,
                },
            )
            .map_err(|_| AttachmentError::Decrypt)?,
    );
    let got = u64::try_from(plaintext.len()).unwrap_or(u64::MAX);
    if got != attachment.size {
        return Err(AttachmentError::SizeMismatch {
            got,
            committed: attachment.size,
        });
    }
    let hash: [u8; 32] = Sha256::digest(plaintext.as_slice()).into();
    if !bool::from(hash.ct_eq(&attachment.plaintext_sha256)) {
        return Err(AttachmentError::HashMismatch);
    }
    Ok(plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let s = seal_attachment(b"holiday.jpg bytes", "blob/1").unwrap();
        assert_eq!(
            open_attachment(&s.attachment, &s.blob).unwrap().as_slice(),
            b"holiday.jpg bytes"
        );
        let mut bad = s.blob.clone();
        bad[0] ^= 1;
        assert_eq!(
            open_attachment(&s.attachment, &bad),
            Err(AttachmentError::Decrypt)
        );
        let mut other_hash = s.attachment.clone();
        other_hash.plaintext_sha256[0] ^= 1;
        assert_eq!(
            open_attachment(&other_hash, &s.blob),
            Err(AttachmentError::HashMismatch)
        );
        let mut other_size = s.attachment.clone();
        other_size.size += 1;
        assert!(matches!(
            open_attachment(&other_size, &s.blob),
            Err(AttachmentError::SizeMismatch { .. })
        ));
        assert_eq!(
            seal_attachment(b"x", &"l".repeat(MAX_LOCATOR_LEN + 1)).unwrap_err(),
            AttachmentError::Locator
        );
    }
}
