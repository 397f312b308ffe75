//! The seam where lawful-access escrow plugs into chain announcements.
//!
//! A deployment with escrow gives every device an [`EscrowPolicy`]. Senders
//! then attach a deterministic capsule of `CK_0` to every chain announcement,
//! and recipients recompute it and refuse any chain whose capsule is missing
//! or differs, so a modified sender cannot leave escrow out without every
//! honest recipient refusing its messages. Without a policy, announcements
//! carry no capsule and capsules are not checked.

use custos_wire::announcement::EscrowKind;
use custos_wire::{ChainId, ConversationId};

/// Why a capsule could not be made or was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("escrow: {0}")]
pub struct EscrowError(pub String);

/// Makes and checks escrow capsules for chain roots.
pub trait EscrowPolicy: Send + Sync + std::fmt::Debug {
    /// The capsule of `ck0` for this chain, sealed to the day key of `chain.day`.
    fn seal(
        &self,
        conversation: &ConversationId,
        chain: &ChainId,
        ck0: &[u8; 32],
    ) -> Result<(EscrowKind, Vec<u8>), EscrowError>;

    /// Checks, in constant time, that `capsule` is exactly the capsule of
    /// `ck0` for this chain.
    fn verify(
        &self,
        conversation: &ConversationId,
        chain: &ChainId,
        ck0: &[u8; 32],
        kind: EscrowKind,
        capsule: &[u8],
    ) -> Result<(), EscrowError>;
}
