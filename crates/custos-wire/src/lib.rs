//! Canonical, versioned wire encodings of Custos.
//!
//! # Guarantees
//! - Every format starts with a version byte; an unknown version is its own
//!   error ([`WireError::UnsupportedVersion`]).
//! - Every variable-length field has a length prefix and an upper bound, checked
//!   on both encode and decode.
//! - Decoders consume their whole input and accept exactly one encoding per
//!   value, so `encode(decode(b)) == b` for every accepted `b`. Signatures and
//!   hashes are computed over these exact bytes.
//! - Decoders never panic on any input (fuzzed in `fuzz/`).
//!
//! # Not guaranteed here
//! This crate checks form, not meaning: signatures, MACs and membership are
//! checked by the crates that hold the keys. Two exceptions verify public-key
//! signatures because every party must check them the same way: signed
//! statements ([`statement`]) and delivery tags ([`tag::verify_tag`]).
#![forbid(unsafe_code)]

pub mod announcement;
pub mod authority_signed;
pub mod codec;
pub mod envelope;
mod error;
pub mod frames;
pub mod ids;
pub mod interception;
pub mod manifest;
pub mod mls_header;
pub mod moderation;
pub mod payload;
pub mod release;
pub mod report;
pub mod signature;
pub mod statement;
pub mod tag;
pub mod warrant;

pub use error::WireError;
pub use ids::{ChainId, ConversationId};
