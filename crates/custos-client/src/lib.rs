//! Device library of Custos: account, MLS conversations, sender chains,
//! franking, the receive pipeline, and notices of unsealed warrants
//! ([`notices`]).
//!
//! # Guarantees
//! - Content is encrypted end to end under sender chains whose roots travel
//!   only inside MLS application messages; the delivery service never sees a
//!   key or a plaintext.
//! - Every envelope is signed by its sender's MLS credential key and checked
//!   against the roster; tampered, forged, replayed and misfranked envelopes
//!   are refused and leave the chain state unchanged.
//! - Used chain and message keys are deleted (forward secrecy within a chain);
//!   new MLS epochs and new days start new chains.
//!
//! # Not guaranteed
//! Two colluding endpoints can always super-encrypt; an endpoint that is
//! compromised reads what it can decrypt.
#![forbid(unsafe_code)]

mod announcement;
pub mod api;
pub use custos_verify::attachment;
mod chain_expiry;
pub use custos_verify::chain;
pub mod conversation;
pub mod daykeys;
pub mod device;
pub mod escrow;
pub mod follower;
pub use custos_verify::franking;
pub mod history;
pub mod home_lock;
pub mod identity;
pub mod keydir;
pub mod leave;
pub mod logsync;
pub mod matching;
pub mod media;
pub mod mls;
mod mls_storage;
pub mod notices;
pub mod pin;
pub mod receive;
pub mod refusal;
pub mod report;
pub use custos_verify::seal;
pub mod send;
pub mod store;
pub mod tls;

pub use device::{Device, DeviceError, MlsError};
pub use receive::Outcome;
pub use refusal::Refusal;
