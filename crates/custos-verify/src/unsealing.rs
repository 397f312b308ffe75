//! The unsealing check: a `WarrantUnsealing` from the log opens a
//! `WarrantCommitment` that is in the log, and the warrant it reveals is
//! the one the court signed (DESIGN.md §4 step 7).
//!
//! # Security meaning
//! Devices tell their users "this conversation was opened" from an
//! unsealed warrant, and auditors count unsealings, so an unsealing is
//! believed only when all of these hold ([`verify_unsealing`]):
//! - it names the commitment it is checked against, and its salt and
//!   warrant bytes hash to that commitment (`SHA-256(salt || warrant)`);
//! - the warrant bytes are one canonical warrant v1;
//! - the court the warrant names is a court of the manifest, and the
//!   warrant's court signature verifies under that court's manifest key;
//! - the commitment's public fields (court, authority, issue time,
//!   original embargo, number of targets and days, court signature) are
//!   those of the warrant, so the public figures counted from the
//!   commitment are the warrant's.
//!
//! An [`UnsealedWarrant`] is built only here. Whoever published the
//! unsealing (a custodian or the court) does not matter: the checks make
//! it true whoever carried it, and a repeat is the same warrant again.
//!
//! # Not checked here
//! That the commitment and the unsealing are entries of a witnessed
//! checkpoint: the caller passes statements it proved included (the
//! device's log follower, the audit's replay).

use custos_wire::WireError;
use custos_wire::manifest::{Manifest, Role};
use custos_wire::statement::{WarrantCommitment, WarrantUnsealing};
use custos_wire::warrant::{Warrant, WarrantFields};
use subtle::ConstantTimeEq as _;

/// Why an unsealing was not believed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnsealingError {
    /// The unsealing names another commitment than the one given.
    #[error("the unsealing names another warrant commitment")]
    OtherCommitment,
    /// The salt and warrant bytes do not hash to the commitment.
    #[error("the salt and warrant do not open the logged commitment")]
    DoesNotOpen,
    /// The warrant bytes are not a canonical warrant.
    #[error("the unsealed warrant is malformed: {0}")]
    Malformed(WireError),
    /// The warrant names a court the manifest does not have.
    #[error("the warrant names court `{0}`, which is not a court of the manifest")]
    UnknownCourt(String),
    /// The court's signature does not verify under its manifest key.
    #[error("the warrant's court signature does not verify under the manifest key of `{0}`")]
    BadCourtSignature(String),
    /// A public field of the commitment differs from the warrant's.
    #[error("the logged commitment's {0} differs from the unsealed warrant's")]
    FieldMismatch(&'static str),
}

/// A warrant proven to be the one behind a logged commitment, signed by a
/// court of the manifest. Built only by [`verify_unsealing`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsealedWarrant {
    commitment: [u8; 32],
    warrant: Warrant,
    unsealed_at: u64,
}

impl UnsealedWarrant {
    /// The commitment the warrant opens.
    pub fn commitment(&self) -> &[u8; 32] {
        &self.commitment
    }

    /// The court-signed warrant.
    pub fn warrant(&self) -> &Warrant {
        &self.warrant
    }

    /// The warrant's fields (court, authority, legal basis, targets, days).
    pub fn fields(&self) -> &WarrantFields {
        self.warrant.fields()
    }

    /// When the unsealing says it was published, Unix seconds.
    pub fn unsealed_at(&self) -> u64 {
        self.unsealed_at
    }
}

/// Checks `unsealing` against the logged `commitment` under `manifest`
/// (see the module documentation for the list of checks).
pub fn verify_unsealing(
    manifest: &Manifest,
    commitment: &WarrantCommitment,
    unsealing: &WarrantUnsealing,
) -> Result<UnsealedWarrant, UnsealingError> {
    if !bool::from(unsealing.warrant.ct_eq(&commitment.commitment)) {
        return Err(UnsealingError::OtherCommitment);
    }
    if !unsealing.opens_commitment() {
        return Err(UnsealingError::DoesNotOpen);
    }
    let warrant = Warrant::decode(&unsealing.warrant_bytes).map_err(UnsealingError::Malformed)?;
    let f = warrant.fields();
    let court = manifest
        .with_role(Role::Court)
        .find(|p| p.name == f.court)
        .ok_or_else(|| UnsealingError::UnknownCourt(f.court.clone()))?;
    let key = court
        .verifying_key()
        .map_err(|_| UnsealingError::BadCourtSignature(f.court.clone()))?;
    warrant
        .verify(&key)
        .map_err(|_| UnsealingError::BadCourtSignature(f.court.clone()))?;
    check_fields(commitment, &warrant)?;
    Ok(UnsealedWarrant {
        commitment: commitment.commitment,
        warrant,
        unsealed_at: unsealing.unsealed_at,
    })
}

fn check_fields(c: &WarrantCommitment, w: &Warrant) -> Result<(), UnsealingError> {
    let f = w.fields();
    let checks: [(&'static str, bool); 7] = [
        ("court", c.court == f.court),
        ("authority", c.authority == f.authority),
        ("issue time", c.issued_at == f.issued_at),
        ("embargo end", c.embargo_until == f.embargo_until),
        (
            "number of targets",
            usize::from(c.targets) == f.targets.len(),
        ),
        ("number of days", u32::from(c.days) == f.days()),
        ("court signature", c.court_signature == w.signature()),
    ];
    match checks.into_iter().find(|(_, ok)| !ok) {
        Some((field, _)) => Err(UnsealingError::FieldMismatch(field)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
