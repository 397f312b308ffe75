//! Custodians on loopback: their HTTP API, the DKG, unsealing, faults of
//! the log, and the DKG envelope vectors.
//!
//! One binary holds every integration test of the crate, one module per
//! topic: each test binary links the whole dependency tree again.

mod api;
mod common;
mod dkg;
mod envelope_vectors;
mod hardening;
mod unsealing;
