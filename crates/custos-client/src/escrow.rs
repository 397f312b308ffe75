//! The seam where lawful-access escrow plugs into chain announcements.
//!
//! A deployment with escrow gives every device an [`EscrowPolicy`]. Senders
//! then attach a deterministic capsule of `CK_0` to every chain announcement,
//! and recipients recompute it and refuse any chain whose capsule is missing
//! or differs, so a modified sender cannot leave escrow out without every
//! honest recipient refusing its messages. The policy a device runs is
//! [`crate::daykeys::DayKeyEscrow`], fed with day keys that t custodians of
//! the pinned manifest published in the log. A deployment whose manifest
//! names no custodians runs without escrow: announcements then carry no
//! capsule, and an announcement that carries one is refused, because no
//! honest device of that deployment makes one.

use custos_wire::announcement::EscrowKind;
use custos_wire::{ChainId, ConversationId};

/// Why a capsule could not be made or was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EscrowError {
    /// No day key was accepted for that day: the device cannot seal (and
    /// refuses to send) nor check capsules of that day.
    #[error(
        "no escrow day key is known for day {day}; day keys appear once enough custodians \
         have published them in the log (run `custos receive` to follow the log, and ask the \
         operator if this persists)"
    )]
    NoDayKey {
        /// The UTC day asked for.
        day: u32,
    },
    /// The announcement carries no capsule although the deployment requires one.
    #[error("the chain announcement carries no escrow capsule")]
    MissingCapsule,
    /// The announcement carries a capsule although the deployment has no escrow.
    #[error("the chain announcement carries a capsule but this deployment has no escrow")]
    UnexpectedCapsule,
    /// The capsule's construction is not one this build knows.
    #[error("escrow kind {0:?} is not supported")]
    UnsupportedKind(EscrowKind),
    /// The capsule does not decode.
    #[error("the capsule does not decode: {0}")]
    MalformedCapsule(custos_escrow::DecodeError),
    /// The capsule could not be made, or is not the one `CK_0` determines.
    #[error("{0}")]
    Capsule(#[from] custos_escrow::CapsuleError),
}

impl EscrowError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoDayKey { .. } => "no_day_key",
            Self::MissingCapsule => "capsule_missing",
            Self::UnexpectedCapsule => "capsule_unexpected",
            Self::UnsupportedKind(_) => "capsule_kind_unsupported",
            Self::MalformedCapsule(_) => "capsule_malformed",
            Self::Capsule(custos_escrow::CapsuleError::Mismatch) => "capsule_mismatch",
            Self::Capsule(_) => "capsule_error",
        }
    }
}

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
