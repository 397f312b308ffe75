//! Error types, one per kind of operation.
//!
//! Every decoder returns [`DecodeError`]; none of them panics on any input.
//! Operations that use keys have their own enums, so that a caller can tell a
//! malformed input (reject the sender's bytes) from a cryptographic failure
//! (the bytes are well formed but do not check out).

/// Why bytes could not be decoded into an escrow value.
///
/// Returned by every `from_bytes` in this crate. Non-canonical input is
/// rejected: a value has exactly one accepted encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    // --- framing ---
    /// The input does not have the length this encoding requires.
    #[error("{what}: wrong length, expected {expected} bytes, found {found}")]
    WrongLength {
        /// What was being decoded.
        what: &'static str,
        /// Required length in bytes.
        expected: usize,
        /// Length of the input.
        found: usize,
    },
    /// The format version is not one this build understands.
    #[error("{what}: unsupported version {found}; this build reads version {supported}")]
    UnsupportedVersion {
        /// What was being decoded.
        what: &'static str,
        /// Version found.
        found: u8,
        /// Version supported.
        supported: u8,
    },
    /// A field holds a value outside its allowed range.
    #[error("{what}: invalid value: {reason}")]
    InvalidValue {
        /// What was being decoded.
        what: &'static str,
        /// What is wrong, and how to fix it.
        reason: &'static str,
    },

    // --- curve points ---
    /// The bytes are not the canonical compressed encoding of a curve point
    /// (bad flag bits, x not reduced, or x not on the curve).
    #[error("{what}: malformed compressed point")]
    MalformedPoint {
        /// What was being decoded.
        what: &'static str,
    },
    /// The point is on the curve but not in the prime-order subgroup.
    #[error("{what}: point is not in the prime-order subgroup")]
    NotInSubgroup {
        /// What was being decoded.
        what: &'static str,
    },
    /// The point is the group identity, which no honest party ever sends.
    #[error("{what}: point is the group identity")]
    IdentityPoint {
        /// What was being decoded.
        what: &'static str,
    },
    /// A scalar is not reduced modulo the group order, or is zero.
    #[error("{what}: scalar is zero or not reduced modulo the group order")]
    InvalidScalar {
        /// What was being decoded.
        what: &'static str,
    },
}

/// Why an IBE ciphertext or a capsule could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The Fujisaki–Okamoto check failed: the ciphertext was tampered with,
    /// or the identity key is not the key of the ciphertext's identity
    /// (wrong conversation, wrong day, wrong master key, or a combination of
    /// fewer than `t` partial keys).
    #[error("ciphertext does not open under this identity key (Fujisaki-Okamoto check failed)")]
    FoCheckFailed,
    /// The identity key (or, when encrypting, the master key) is the group
    /// identity: it binds to no identity, so it is refused.
    #[error("the key is the group identity point; it belongs to no identity")]
    IdentityKey,
}

/// Why a capsule could not be sealed or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CapsuleError {
    /// The chain id is longer than [`crate::MAX_CHAIN_ID_LEN`] bytes.
    #[error("chain id is {found} bytes; at most {max} are allowed")]
    ChainIdTooLong {
        /// Length given.
        found: usize,
        /// Limit.
        max: usize,
    },
    /// The day asked for is not the day of the day key given.
    #[error("day {requested} does not match the day key's day {key_day}; use that day's key")]
    DayMismatch {
        /// Day requested by the caller.
        requested: u32,
        /// Day of the key.
        key_day: u32,
    },
    /// The capsule is not the one that the chain's root key determines: the
    /// sender left escrow out or corrupted it. The chain must be rejected.
    #[error("capsule does not match the chain root key: reject this chain")]
    Mismatch,
}

/// Why partial identity keys could not be verified or combined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ThresholdError {
    /// A partial key's index names no custodian of this day key.
    #[error("partial key index {index} is not a custodian of this day key (1..={n})")]
    UnknownIndex {
        /// Index found.
        index: u32,
        /// Number of custodians.
        n: usize,
    },
    /// A partial key failed its pairing check against the custodian's
    /// verification key.
    #[error("partial key from custodian {index} does not verify")]
    InvalidPartial {
        /// Index of the custodian whose partial key is wrong.
        index: u32,
    },
    /// Batched verification failed; these custodians' partial keys are wrong.
    #[error("{} partial keys do not verify: custodians {indices:?}", indices.len())]
    InvalidPartials {
        /// Indices of the custodians whose partial keys are wrong.
        indices: Vec<u32>,
    },
    /// A batch spanning identities failed; these are the positions of the
    /// wrong partial keys in the batch.
    #[error("{} partial keys in the batch do not verify, at positions {positions:?}", positions.len())]
    InvalidBatchItems {
        /// Positions in the input slice.
        positions: Vec<usize>,
    },
    /// A batch item's identity is for another day than its day key.
    #[error("batch item {position}: the identity's day is not the day key's day")]
    DayMismatch {
        /// Position in the input slice.
        position: usize,
    },
    /// Two partial keys carry the same index.
    #[error("duplicate partial key index {index}")]
    DuplicateIndex {
        /// The repeated index.
        index: u32,
    },
    /// Fewer distinct partial keys than the threshold.
    #[error("{found} partial keys given; the threshold is {threshold}")]
    NotEnoughPartials {
        /// Number given.
        found: usize,
        /// Threshold needed.
        threshold: usize,
    },
    /// Nothing to verify.
    #[error("no partial keys given")]
    Empty,
    /// A verified partial key was verified for another identity or under
    /// another day key than the one combining it.
    #[error(
        "partial key from custodian {index} was verified for another conversation-day or day key; verify it for this one"
    )]
    NotVerifiedFor {
        /// Index of the custodian.
        index: u32,
    },
}
