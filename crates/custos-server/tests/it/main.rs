//! The delivery service end to end on loopback: the API, hostile input,
//! durability across restarts, delivery tags and a model-based property test.
//!
//! One binary holds every integration test of the crate, one module per
//! topic: each test binary links the whole dependency tree again.

mod api;
mod blob_store;
mod common;
mod directory_store;
mod durability;
mod hostile;
mod interception_store;
mod limits;
mod matching_store;
mod membership;
mod moderation_store;
mod pg_failover;
mod pg_mailbox;
mod pg_matching;
mod pg_service;
mod proptest_model;
mod store;
mod tags;
