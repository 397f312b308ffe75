//! Devices against real services on loopback: messaging, escrow in every
//! chain, reports and moderation.
//!
//! One binary holds every integration test of the crate, one module per
//! topic: each test binary links the whole dependency tree again.

mod escrow;
mod gcm;
mod keydir;
mod kit;
mod matching;
mod media;
mod messaging;
mod reports;
mod tls;
