//! Pictures: bounded decoding, PDQ against Meta's published hashes (with the
//! 8 rotations and flips), the match rule, and properties.
//!
//! One binary holds every integration test of the crate, one module per
//! topic: each test binary links the whole dependency tree again.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failure is a test failure"
)]

mod decode;
mod dihedral;
mod reference;
