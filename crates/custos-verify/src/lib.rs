//! Checks that a device, a moderator, a clearinghouse, a court or an auditor
//! runs with public information only: abuse reports, report packages, the
//! log proof of a franking key, that the provider who logged it is the
//! one the deployment manifest names, unsealed warrants against their
//! logged commitments ([`unsealing`]), and the public figures of lawful
//! access replayed from the log ([`figures`]); and the message cryptography
//! that devices, an authority decrypting under a warrant, and an offline
//! evidence verifier share: sender chains ([`chain`]), sealed envelopes
//! ([`seal`]) and franking commitments ([`franking`]).
//!
//! # Guarantees
//! - **No I/O.** Every function takes bytes or parsed values and returns a
//!   verdict; nothing here opens a file or a socket, so the checks can run
//!   in a service, a command-line tool or a court's offline verifier alike,
//!   and give the same answer.
//! - **A verified value is proof.** [`report::VerifiedReport`] is built only
//!   by [`report::verify_report`]; [`package::VerifiedPackage`] only by
//!   [`package::verify_package`]; [`unsealing::UnsealedWarrant`] only by
//!   [`unsealing::verify_unsealing`].
//! - **Each failed check has its own variant** ([`report::ReportRefusal`],
//!   [`package::PackageError`], [`package::KeyProofError`],
//!   [`provider::ProviderError`], [`unsealing::UnsealingError`]), so callers and tests match on the type.
//!
//! # Not guaranteed
//! - The franking key is trusted only through the transparency log: a
//!   package without a log proof verifies as
//!   [`package::FrankingKeyStatus::Unproven`], which proves that *some* key
//!   signed the delivery tags, not that the service did.
//! - Who may report (a recipient of the message) is the service's check;
//!   it needs the service's membership and is not repeated here.
#![forbid(unsafe_code)]

pub mod attachment;
pub mod chain;
pub mod dates;
pub mod evidence;
pub mod figures;
pub mod franking;
pub mod intercepted;
pub mod keydir;
pub mod package;
pub mod provider;
pub mod report;
pub mod seal;
pub mod sender_signature;
pub mod unsealing;
pub mod warrant;
