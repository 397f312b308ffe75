//! The log and its witnesses end to end on loopback.
//!
//! One binary holds every integration test of the crate, one module per
//! topic: each test binary links the whole dependency tree again.

mod common;
mod log_api;
mod tls;
mod witnesses;
