//! Integration tests of the key directory on a real SQLite file.
#![allow(clippy::unwrap_used, reason = "tests")]

mod conformance;
mod file;
