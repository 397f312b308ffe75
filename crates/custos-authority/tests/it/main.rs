//! Lawful access on loopback: release under a logged warrant, unsealing
//! when the embargo ends, and the release path against log faults.
//!
//! One binary holds every integration test of the crate, one module per
//! topic: each test binary links the whole dependency tree again.

mod common;
mod hardening;
mod release;
mod unsealing;
