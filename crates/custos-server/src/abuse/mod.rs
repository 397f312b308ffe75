//! The abuse room (DESIGN.md §5): the franking key and the delivery tags it
//! signs, the key's publication in the transparency log, the admission
//! policy (suspensions), and reports with their moderation. Report and
//! package verification itself is `custos-verify`'s, which anyone can run.

pub mod franking;
pub mod franking_log;
pub mod matching;
pub(crate) mod matching_figures;
pub mod moderation;
pub mod policy;
pub(crate) mod threshold;
pub(crate) mod vouchers;
