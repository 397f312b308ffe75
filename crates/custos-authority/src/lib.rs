//! Court and authority tools of Custos (DESIGN.md §4): warrants signed by a
//! court, their public commitments in the transparency log, and the
//! collection, verification and combination of custodians' key shares.
//!
//! # Security meaning
//! An authority can open a conversation-day only with `t` partial keys that
//! custodians released under a warrant whose commitment is in the log; this
//! crate checks every partial key against the day key published in the log
//! before it combines them, and keeps the combined identity keys encrypted.
#![forbid(unsafe_code)]
