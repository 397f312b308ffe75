//! The delivery room: accounts and sessions, KeyPackages, conversations
//! and their membership, item submission, mailboxes with WebSocket push, the
//! single writer that orders and stores everything, and retention.

pub(crate) mod auth;
pub(crate) mod blob_files;
pub(crate) mod blobs;
pub(crate) mod challenge;
pub(crate) mod conversations;
pub(crate) mod keypackages;
pub(crate) mod mailbox;
pub(crate) mod membership;
pub mod public_state;
pub(crate) mod quota;
pub(crate) mod retention;
pub(crate) mod session_cache;
pub(crate) mod submit;
pub mod writer;
pub(crate) mod ws;
