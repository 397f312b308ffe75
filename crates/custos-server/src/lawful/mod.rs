//! Lawful access at the provider (DESIGN.md §4): interception under a
//! court warrant that is logged and witnessed, checked here as a custodian
//! would check it, logged by the provider before anything is kept, and the
//! kept items served to the warrant's authority alone.
//!
//! - [`holds`]: what the single writer keeps, and when it lets go.
//! - [`pg_holds`]: the same on PostgreSQL, with servers sharing one
//!   database: holds read in each batch's transaction, never remembered.
//! - [`intercept`]: the HTTP endpoints and their checks.
//! - [`recover`]: rebuilding interceptions from the log after the database
//!   is lost or restored from an older backup.

pub(crate) mod holds;
pub mod intercept;
pub(crate) mod pg_holds;
pub(crate) mod recover;
