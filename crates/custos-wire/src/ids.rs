//! Identifiers shared by every format: conversations, chains, account names.

use crate::WireError;
use crate::codec::{Reader, Writer};

/// Length of a conversation id (the MLS group id), in bytes.
pub const CONVERSATION_ID_LEN: usize = 16;
/// Maximum length of an account name, in bytes.
pub const MAX_ACCOUNT_NAME: usize = 64;

/// A conversation id: 16 random bytes, equal to the MLS group id.
///
/// Public, not secret: the delivery service routes by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConversationId(pub [u8; CONVERSATION_ID_LEN]);

impl ConversationId {
    /// Lowercase hex, as the CLI prints it.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 32 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, WireError> {
        let mut out = [0u8; CONVERSATION_ID_LEN];
        hex::decode_to_slice(s, &mut out).map_err(|_| WireError::InvalidValue {
            field: "conversation",
            reason: "expected 32 hex digits",
        })?;
        Ok(Self(out))
    }
}

impl std::fmt::Display for ConversationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Identifies one sender chain within a conversation: one sender (MLS leaf) in
/// one MLS epoch on one UTC day. `seq` distinguishes chains that a sender
/// starts again within the same epoch and day (after a restart, say).
///
/// Its encoding is 20 bytes: `epoch u64 || sender_leaf u32 || day u32 || seq u32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChainId {
    /// MLS epoch in which the chain root was announced.
    pub epoch: u64,
    /// The sender's leaf index in the MLS tree of that epoch.
    pub sender_leaf: u32,
    /// UTC day number (`unix_seconds / 86400`) the chain belongs to; escrow is per day.
    pub day: u32,
    /// Sequence number of the chain for this (epoch, leaf, day).
    pub seq: u32,
}

impl ChainId {
    /// Encoded length in bytes.
    pub const LEN: usize = 20;

    /// Writes the 20-byte encoding.
    pub fn write(&self, w: &mut Writer) {
        w.u64(self.epoch)
            .u32(self.sender_leaf)
            .u32(self.day)
            .u32(self.seq);
    }

    /// Reads the 20-byte encoding.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            epoch: r.field("epoch").u64()?,
            sender_leaf: r.field("sender_leaf").u32()?,
            day: r.field("day").u32()?,
            seq: r.field("chain_seq").u32()?,
        })
    }

    /// `conversation || chain id`: the 36-byte string that names a chain
    /// globally, used as KDF context and as the escrow capsule's chain id.
    pub fn qualified(
        &self,
        conversation: &ConversationId,
    ) -> [u8; CONVERSATION_ID_LEN + Self::LEN] {
        let mut w = Writer::with_capacity(CONVERSATION_ID_LEN + Self::LEN);
        w.raw(&conversation.0);
        self.write(&mut w);
        let mut out = [0u8; CONVERSATION_ID_LEN + Self::LEN];
        out.copy_from_slice(w.as_slice());
        out
    }
}

/// Checks an account name: 1 to 64 bytes of `a-z`, `0-9`, `.`, `_` and `-`.
///
/// Names are compared byte for byte, so the alphabet is restricted to avoid
/// look-alike names.
pub fn validate_account_name(name: &str) -> Result<(), WireError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_ACCOUNT_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(WireError::InvalidValue {
            field: "account",
            reason: "an account name is 1-64 characters of a-z, 0-9, '.', '_' or '-'",
        })
    }
}

pub(crate) fn read_account<'a>(r: &mut Reader<'a>) -> Result<&'a str, WireError> {
    let name = r.field("account").str8(MAX_ACCOUNT_NAME)?;
    validate_account_name(name)?;
    Ok(name)
}

pub(crate) fn write_account(w: &mut Writer, name: &str) -> Result<(), WireError> {
    validate_account_name(name)?;
    w.bytes8("account", name.as_bytes(), MAX_ACCOUNT_NAME)?;
    Ok(())
}

pub(crate) fn read_version(
    r: &mut Reader<'_>,
    format: &'static str,
    supported: u8,
) -> Result<(), WireError> {
    let version = r.field("version").u8()?;
    if version == supported {
        Ok(())
    } else {
        Err(WireError::UnsupportedVersion {
            format,
            version,
            supported,
        })
    }
}
