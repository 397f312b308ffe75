//! Integration tests of lawful access: release, unsealing and hardening against faults, with the court's and the authority's tools on loopback.
//!
//! One binary for every integration test of the crate: each test binary
//! links the whole dependency tree again, so a module per topic here
//! costs one link, not one per file.

mod common;
mod hardening;
mod release;
mod unsealing;
