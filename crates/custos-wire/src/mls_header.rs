//! The clear header of an MLS `PrivateMessage` (RFC 9420 §6.3), read without
//! decrypting anything.
//!
//! The delivery service cannot open MLS messages, but it orders them: a
//! proposal is accepted only for the conversation's current epoch, in order
//! with commits, so that it can never be silently overtaken by a commit that
//! was sequenced before it. This module reads just enough of the public
//! framing to do that: protocol version, wire format, group id, epoch and
//! content type. It checks form only; the members check everything else.

use crate::WireError;
use crate::codec::Reader;

/// `ProtocolVersion mls10` (RFC 9420 §6).
pub const MLS10: u16 = 1;
/// `WireFormat mls_private_message` (RFC 9420 §6).
pub const WIRE_FORMAT_PRIVATE_MESSAGE: u16 = 2;
/// `ContentType` values (RFC 9420 §6).
pub const CONTENT_TYPE_APPLICATION: u8 = 1;
/// A proposal.
pub const CONTENT_TYPE_PROPOSAL: u8 = 2;
/// A commit.
pub const CONTENT_TYPE_COMMIT: u8 = 3;
/// Largest group id this reader accepts (Custos uses 16-byte ids).
pub const MAX_GROUP_ID_LEN: usize = 255;

/// The public part of an MLS `PrivateMessage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrivateMessageHeader<'a> {
    /// `group_id`: for Custos, the conversation id.
    pub group_id: &'a [u8],
    /// The epoch the message was sent in.
    pub epoch: u64,
    /// `content_type`: application, proposal or commit.
    pub content_type: u8,
}

/// Reads the clear header of an `MLSMessage` that must be a `PrivateMessage`.
/// The rest of the message (authenticated data, encrypted sender data,
/// ciphertext) is not parsed.
pub fn peek_private_message(bytes: &[u8]) -> Result<PrivateMessageHeader<'_>, WireError> {
    let mut r = Reader::new(bytes);
    if r.field("mls_version").u16()? != MLS10 {
        return Err(WireError::InvalidValue {
            field: "mls_version",
            reason: "not MLS 1.0",
        });
    }
    if r.field("mls_wire_format").u16()? != WIRE_FORMAT_PRIVATE_MESSAGE {
        return Err(WireError::InvalidValue {
            field: "mls_wire_format",
            reason: "not a PrivateMessage",
        });
    }
    let len = varint_len(r.field("group_id"))?;
    if len > MAX_GROUP_ID_LEN {
        return Err(WireError::TooLong {
            field: "group_id",
            max: MAX_GROUP_ID_LEN,
        });
    }
    let group_id = r.take(len)?;
    let epoch = r.field("epoch").u64()?;
    let content_type = r.field("content_type").u8()?;
    if !matches!(
        content_type,
        CONTENT_TYPE_APPLICATION | CONTENT_TYPE_PROPOSAL | CONTENT_TYPE_COMMIT
    ) {
        return Err(WireError::InvalidValue {
            field: "content_type",
            reason: "unknown MLS content type",
        });
    }
    Ok(PrivateMessageHeader {
        group_id,
        epoch,
        content_type,
    })
}

/// An MLS variable-size vector length (RFC 9420 §2.1.2): the top two bits of
/// the first byte give the width (1, 2 or 4 bytes); `0b11` is invalid, and so
/// is any length not in its shortest form.
fn varint_len(r: &mut Reader<'_>) -> Result<usize, WireError> {
    let first = r.u8()?;
    let (value, min) = match first >> 6 {
        0 => (u32::from(first & 0x3f), 0),
        1 => (u32::from(u16::from_be_bytes([first & 0x3f, r.u8()?])), 64),
        2 => {
            let rest: [u8; 3] = r.array()?;
            (
                u32::from_be_bytes([first & 0x3f, rest[0], rest[1], rest[2]]),
                16_384,
            )
        }
        _ => {
            return Err(WireError::InvalidValue {
                field: "mls_varint",
                reason: "length prefix 0b11 is reserved",
            });
        }
    };
    if value < min {
        return Err(WireError::InvalidValue {
            field: "mls_varint",
            reason: "length not in its shortest encoding",
        });
    }
    usize::try_from(value).map_err(|_| WireError::TooLong {
        field: "mls_varint",
        max: usize::MAX,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(group: &[u8], epoch: u64, ct: u8) -> Vec<u8> {
        let mut b = vec![0, 1, 0, 2, u8::try_from(group.len()).unwrap()];
        b.extend_from_slice(group);
        b.extend_from_slice(&epoch.to_be_bytes());
        b.push(ct);
        b.extend_from_slice(&[0, 0, 0]);
        b
    }

    #[test]
    fn reads_group_epoch_and_content_type() {
        let h = header(&[7; 16], 42, CONTENT_TYPE_PROPOSAL);
        let p = peek_private_message(&h).unwrap();
        assert_eq!(p.group_id, &[7; 16]);
        assert_eq!(p.epoch, 42);
        assert_eq!(p.content_type, CONTENT_TYPE_PROPOSAL);
    }

    #[test]
    fn refuses_other_versions_formats_and_content_types() {
        let mut h = header(&[7; 16], 1, 2);
        h[1] = 2;
        assert!(peek_private_message(&h).is_err());
        let mut h = header(&[7; 16], 1, 2);
        h[3] = 1; // PublicMessage
        assert!(peek_private_message(&h).is_err());
        assert!(peek_private_message(&header(&[7; 16], 1, 4)).is_err());
        assert!(peek_private_message(&header(&[7; 16], 1, 0)).is_err());
    }

    #[test]
    fn varint_forms() {
        // Two-byte form of 16 is not the shortest: refused.
        let mut h = vec![0, 1, 0, 2, 0x40, 16];
        h.extend_from_slice(&[7; 16]);
        h.extend_from_slice(&1u64.to_be_bytes());
        h.push(2);
        assert!(peek_private_message(&h).is_err());
        // Reserved prefix.
        assert!(peek_private_message(&[0, 1, 0, 2, 0xc0, 0, 0, 0]).is_err());
        // Two-byte form of 300 is fine, but the group id is then too long.
        assert!(matches!(
            peek_private_message(&[0, 1, 0, 2, 0x41, 0x2c]),
            Err(WireError::TooLong { .. })
        ));
        // Every truncation is an error, never a panic.
        let h = header(&[7; 16], 9, 2);
        for n in 0..h.len() - 3 {
            assert!(peek_private_message(&h[..n]).is_err(), "prefix {n}");
        }
    }
}
