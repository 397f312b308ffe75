//! x
//!
//! One binary for every integration test of the crate: each test binary
//! links the whole dependency tree again, so a module per topic here
//! costs one link, not one per file.

mod capsule_vectors;
mod drand_vectors;
mod roundtrips;
