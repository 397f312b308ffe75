//! The custodian service of Custos (DESIGN.md §3 and §4): one of `n`
//! independent custodians, in different jurisdictions, of whom `t` must
//! agree before any conversation-day can be opened.
//!
//! # What a custodian does
//! - Generates each UTC day's escrow key with the other custodians by
//!   distributed key generation, a configurable number of days ahead, and
//!   publishes the day's public key in the transparency log.
//! - Keeps its share of each live day key encrypted at rest, and erases it
//!   once the day and the manifest's grace have passed, after logging it.
//! - Releases partial keys only under a court-signed warrant whose commitment
//!   is in a witnessed log checkpoint, after checking every condition of
//!   DESIGN.md §4 step 3 itself, and only after its own `KeyRelease` is in the
//!   log. Shares are sealed to the authority's key named in the warrant.
//! - Publishes `WarrantUnsealing` (salt and warrant) for the warrants it
//!   learnt from release requests once their embargo, with the court's valid
//!   logged extensions, has ended; one publication is enough.
//! - Acts only on log entries that it re-hashed against a witnessed
//!   checkpoint ([`verified`]), and rebuilds its release state from the log at
//!   every start.
//! - Never holds more than its own share: a DKG result in which any share was
//!   revealed is dropped. Logs each erasure before destroying the share.
//!
//! # Not guaranteed
//! `t` colluding custodians can open the days whose keys are still live
//! without logging; erasure bounds that window (see the threat model).
//! While any custodian is down no new day key is made (keys are made
//! `days_ahead` days ahead to bridge that).
#![forbid(unsafe_code)]

pub mod keys;
pub mod logview;
pub mod net;
pub mod release;
mod service;
pub mod store;
pub mod verified;

pub use keys::{CustodianKey, KeyFileError};
pub use service::{
    ApiError, CustodianConfig, CustodianHandle, StartError, Timing, spawn_custodian,
    spawn_custodian_tls,
};
pub use store::{DayStatus, ShareLookup, ShareStore, StoreError};
