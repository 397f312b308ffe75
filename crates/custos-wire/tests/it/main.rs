//! Every wire format: the checked-in vectors and property round trips.
//!
//! One binary holds every integration test of the crate, one module per
//! topic: each test binary links the whole dependency tree again.

mod proptest_roundtrip;
mod vectors;
