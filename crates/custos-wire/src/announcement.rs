//! Chain announcement v1: how a sender distributes a new chain root.
//!
//! The root `CK_0` travels only inside an MLS application message (so it gets
//! MLS's forward secrecy and post-compromise security). Beside it, in the
//! clear, travels the chain's escrow capsule.
//!
//! ```text
//! struct ChainAnnouncement {          // what the delivery service relays
//!     u8     version = 1;
//!     opaque conversation[16];
//!     ChainId chain;
//!     u8     escrow_kind;             // 0 = none, 1 = custos BF-IBE capsule v1
//!     opaque escrow_capsule<0..1024>; // u16 length; empty iff escrow_kind = 0
//!     opaque mls_message<0..65536>;   // u32 length; MLS PrivateMessage carrying a ChainRoot
//! }
//!
//! struct ChainRoot {                  // the MLS application message's content
//!     u8     version = 1;
//!     u8     kind = 1;                // chain root
//!     ChainId chain;
//!     opaque ck0[32];                 // secret
//! }
//! ```

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::WireError;
use crate::codec::{Reader, Writer};
use crate::ids::{ChainId, ConversationId, read_version};

/// Current chain announcement version.
pub const ANNOUNCEMENT_VERSION: u8 = 1;
/// Largest escrow capsule accepted.
pub const MAX_ESCROW_CAPSULE_LEN: usize = 1024;
/// Largest MLS message accepted inside an announcement.
pub const MAX_ANNOUNCEMENT_MLS_LEN: usize = 64 * 1024;

/// Which escrow construction a capsule uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscrowKind {
    /// No capsule. Only valid in deployments without lawful-access escrow.
    None,
    /// Custos threshold Boneh–Franklin capsule v1 (160 bytes).
    BfIbeV1,
}

impl EscrowKind {
    fn to_byte(self) -> u8 {
        match self {
            EscrowKind::None => 0,
            EscrowKind::BfIbeV1 => 1,
        }
    }

    fn from_byte(b: u8) -> Result<Self, WireError> {
        match b {
            0 => Ok(EscrowKind::None),
            1 => Ok(EscrowKind::BfIbeV1),
            _ => Err(WireError::InvalidValue {
                field: "escrow_kind",
                reason: "unknown escrow kind",
            }),
        }
    }
}

/// The outer announcement the delivery service stores and relays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainAnnouncement {
    /// Conversation the chain belongs to.
    pub conversation: ConversationId,
    /// The chain announced.
    pub chain: ChainId,
    /// Escrow construction of `escrow_capsule`.
    pub escrow_kind: EscrowKind,
    /// The escrow capsule of `CK_0`, public; empty when `escrow_kind` is `None`.
    pub escrow_capsule: Vec<u8>,
    /// The serialized MLS message whose content is a [`ChainRoot`].
    pub mls_message: Vec<u8>,
}

impl ChainAnnouncement {
    /// Decodes a canonical announcement.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        read_version(&mut r, "chain announcement", ANNOUNCEMENT_VERSION)?;
        let conversation = ConversationId(r.field("conversation").array()?);
        let chain = ChainId::read(&mut r)?;
        let escrow_kind = EscrowKind::from_byte(r.field("escrow_kind").u8()?)?;
        let escrow_capsule = r
            .field("escrow_capsule")
            .bytes16(MAX_ESCROW_CAPSULE_LEN)?
            .to_vec();
        check_escrow(escrow_kind, &escrow_capsule)?;
        let mls_message = r
            .field("mls_message")
            .bytes32(MAX_ANNOUNCEMENT_MLS_LEN)?
            .to_vec();
        r.finish()?;
        Ok(Self {
            conversation,
            chain,
            escrow_kind,
            escrow_capsule,
            mls_message,
        })
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        check_escrow(self.escrow_kind, &self.escrow_capsule)?;
        let mut w = Writer::with_capacity(64 + self.escrow_capsule.len() + self.mls_message.len());
        w.u8(ANNOUNCEMENT_VERSION).raw(&self.conversation.0);
        self.chain.write(&mut w);
        w.u8(self.escrow_kind.to_byte());
        w.bytes16(
            "escrow_capsule",
            &self.escrow_capsule,
            MAX_ESCROW_CAPSULE_LEN,
        )?;
        w.bytes32("mls_message", &self.mls_message, MAX_ANNOUNCEMENT_MLS_LEN)?;
        Ok(w.into_bytes())
    }
}

fn check_escrow(kind: EscrowKind, capsule: &[u8]) -> Result<(), WireError> {
    let ok = match kind {
        EscrowKind::None => capsule.is_empty(),
        EscrowKind::BfIbeV1 => capsule.len() == 160,
    };
    if ok {
        Ok(())
    } else {
        Err(WireError::InvalidValue {
            field: "escrow_capsule",
            reason: "capsule length does not match its kind",
        })
    }
}

/// Current chain root version.
pub const CHAIN_ROOT_VERSION: u8 = 1;
const CHAIN_ROOT_KIND: u8 = 1;
/// Encoded length of a chain root.
pub const CHAIN_ROOT_LEN: usize = 2 + ChainId::LEN + 32;

/// The secret content of an announcement's MLS message. Zeroized on drop.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct ChainRoot {
    /// The chain this root starts; must equal the outer announcement's.
    #[zeroize(skip)]
    pub chain: ChainId,
    /// `CK_0`, 32 random bytes. Secret.
    pub ck0: [u8; 32],
}

impl std::fmt::Debug for ChainRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainRoot")
            .field("chain", &self.chain)
            .field("ck0", &"<secret>")
            .finish()
    }
}

impl ChainRoot {
    /// Decodes a canonical chain root.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        read_version(&mut r, "chain root", CHAIN_ROOT_VERSION)?;
        if r.field("kind").u8()? != CHAIN_ROOT_KIND {
            return Err(WireError::InvalidValue {
                field: "kind",
                reason: "not a chain root",
            });
        }
        let chain = ChainId::read(&mut r)?;
        let ck0 = r.field("ck0").array()?;
        r.finish()?;
        Ok(Self { chain, ck0 })
    }

    /// The canonical encoding. The caller must zeroize the returned buffer
    /// once MLS has encrypted it.
    pub fn encode(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let mut w = Writer::with_capacity(CHAIN_ROOT_LEN);
        w.u8(CHAIN_ROOT_VERSION).u8(CHAIN_ROOT_KIND);
        self.chain.write(&mut w);
        w.raw(&self.ck0);
        zeroize::Zeroizing::new(w.into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcement_round_trip_and_capsule_rules() {
        let a = ChainAnnouncement {
            conversation: ConversationId([1; 16]),
            chain: ChainId {
                epoch: 1,
                sender_leaf: 0,
                day: 20_001,
                seq: 2,
            },
            escrow_kind: EscrowKind::BfIbeV1,
            escrow_capsule: vec![9; 160],
            mls_message: vec![4; 100],
        };
        let bytes = a.encode().unwrap();
        assert_eq!(ChainAnnouncement::decode(&bytes).unwrap(), a);
        let bad = ChainAnnouncement {
            escrow_capsule: vec![9; 159],
            ..a.clone()
        };
        assert!(bad.encode().is_err());
        let none_with_bytes = ChainAnnouncement {
            escrow_kind: EscrowKind::None,
            ..a
        };
        assert!(none_with_bytes.encode().is_err());
    }

    #[test]
    fn chain_root_round_trip_and_debug_hides_key() {
        let root = ChainRoot {
            chain: ChainId {
                epoch: 2,
                sender_leaf: 3,
                day: 4,
                seq: 5,
            },
            ck0: [0x42; 32],
        };
        let bytes = root.encode();
        assert_eq!(bytes.len(), CHAIN_ROOT_LEN);
        assert_eq!(ChainRoot::decode(&bytes).unwrap(), root);
        assert!(!format!("{root:?}").contains("42"));
    }
}
