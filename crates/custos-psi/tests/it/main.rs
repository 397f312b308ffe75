//! Integration tests of custos-psi: matching of modified synthetic pictures
//! through real vouchers, and the test vectors.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failure is a test failure"
)]

mod matching;
mod vectors;
