//! x
//!
//! One binary for every integration test of the crate: each test binary
//! links the whole dependency tree again, so a module per topic here
//! costs one link, not one per file.

mod common;
mod api;
mod dkg;
mod envelope_vectors;
mod hardening;
mod unsealing;
