//! Integration tests of the dashboard: a real deployment on loopback, the
//! dashboard following its log, the JSON API against its OpenAPI
//! description, and the page in a headless Chromium.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failure is a test failure"
)]

mod browser;
mod kit;
mod openapi;
mod scale;
mod split;
