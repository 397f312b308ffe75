//! Escrow cryptography: property round trips, the capsule vectors, and
//! drand's tlock vectors.
//!
//! One binary holds every integration test of the crate, one module per
//! topic: each test binary links the whole dependency tree again.

mod capsule_vectors;
mod drand_vectors;
mod roundtrips;
