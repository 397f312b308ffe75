//! The real `custos` binary: the README's walkthrough, and the log and the
//! delivery service killed with SIGKILL.
//!
//! One binary holds every integration test of the crate, one module per
//! topic: each test binary links the whole dependency tree again.

mod common;
mod keydir;
mod log_crash;
mod matching_tool;
mod server_kill;
mod tls;
mod walkthrough;
