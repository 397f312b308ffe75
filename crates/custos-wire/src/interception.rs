//! The interception request an authority presents to the provider, and the
//! signature that authenticates its fetches of kept items (DESIGN.md §4,
//! provider interception).
//!
//! # Security meaning
//! A request carries what the provider needs to check the warrant as a
//! custodian would, on its own: the court-signed warrant, the salt that
//! opens its logged commitment, the authority-signed commitment entry with
//! its index, a witnessed checkpoint that includes it and the inclusion
//! proof. The authority signs it (Ed25519 over
//! `custos/v1/interception-request || the request before the signature`)
//! and names the provider it is for, so a request can be presented neither
//! to another provider nor as a release request to a custodian (other label).
//!
//! Kept items are served only to the warrant's authority: each fetch is
//! signed over `custos/v1/interception-fetch || commitment || after ||
//! signed_at` ([`fetch_message`]), and the provider accepts a signature only
//! within a short window around its clock.
//!
//! Wire format: `docs/spec/interception.md`.

use crate::WireError;
use crate::authority_signed::AuthorityFields;
pub use crate::authority_signed::AuthoritySigned;
use crate::codec::{Reader, Writer};
use crate::release::{MAX_CHECKPOINT_LEN, MAX_COMMITMENT_ENTRY_LEN, MAX_PROOF_LEN};
use crate::statement::MAX_NAME_LEN;
use crate::warrant::MAX_WARRANT_ENCODED_LEN;

/// Version byte of the interception request.
pub const INTERCEPTION_VERSION: u8 = 1;
/// Domain-separation label of the authority's signature on a request.
pub const INTERCEPTION_SIGNING_LABEL: &[u8] = b"custos/v1/interception-request";
/// Domain-separation label of the authority's signature on a fetch.
pub const FETCH_SIGNING_LABEL: &[u8] = b"custos/v1/interception-fetch";

/// A warrant with everything that proves it is logged: what the provider
/// (and a custodian) checks before acting on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedWarrant {
    /// The encoded, court-signed warrant.
    pub warrant: Vec<u8>,
    /// The salt of the warrant's commitment.
    pub salt: [u8; 32],
    /// The authority's signed `WarrantCommitment` statement, as logged.
    pub commitment_entry: Vec<u8>,
    /// Its index in the log.
    pub commitment_index: u64,
    /// A checkpoint note (log-signed, witness-cosigned) that includes it.
    pub checkpoint: Vec<u8>,
    /// The inclusion proof of the entry in that checkpoint.
    pub inclusion_proof: Vec<[u8; 32]>,
}

/// The warrant and its log proof, by reference: what a release request and
/// an interception request both carry, written the same way.
pub(crate) struct LoggedWarrantRef<'a> {
    pub warrant: &'a [u8],
    pub salt: &'a [u8; 32],
    pub commitment_entry: &'a [u8],
    pub commitment_index: u64,
    pub checkpoint: &'a [u8],
    pub inclusion_proof: &'a [[u8; 32]],
}

impl LoggedWarrantRef<'_> {
    pub(crate) fn write(&self, w: &mut Writer) -> Result<(), WireError> {
        w.bytes16("warrant", self.warrant, MAX_WARRANT_ENCODED_LEN)?;
        w.raw(self.salt);
        w.bytes16(
            "commitment_entry",
            self.commitment_entry,
            MAX_COMMITMENT_ENTRY_LEN,
        )?;
        w.u64(self.commitment_index);
        w.bytes16("checkpoint", self.checkpoint, MAX_CHECKPOINT_LEN)?;
        let n = u8::try_from(self.inclusion_proof.len())
            .ok()
            .filter(|n| usize::from(*n) <= MAX_PROOF_LEN)
            .ok_or(WireError::TooLong {
                field: "inclusion_proof",
                max: MAX_PROOF_LEN,
            })?;
        w.u8(n);
        for h in self.inclusion_proof {
            w.raw(h);
        }
        Ok(())
    }
}

impl LoggedWarrant {
    fn as_ref(&self) -> LoggedWarrantRef<'_> {
        LoggedWarrantRef {
            warrant: &self.warrant,
            salt: &self.salt,
            commitment_entry: &self.commitment_entry,
            commitment_index: self.commitment_index,
            checkpoint: &self.checkpoint,
            inclusion_proof: &self.inclusion_proof,
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let warrant = r
            .field("warrant")
            .bytes16(MAX_WARRANT_ENCODED_LEN)?
            .to_vec();
        let salt = r.field("salt").array()?;
        let commitment_entry = r
            .field("commitment_entry")
            .bytes16(MAX_COMMITMENT_ENTRY_LEN)?
            .to_vec();
        let commitment_index = r.field("commitment_index").u64()?;
        let checkpoint = r.field("checkpoint").bytes16(MAX_CHECKPOINT_LEN)?.to_vec();
        let n = usize::from(r.field("inclusion_proof").u8()?);
        if n > MAX_PROOF_LEN {
            return Err(WireError::TooLong {
                field: "inclusion_proof",
                max: MAX_PROOF_LEN,
            });
        }
        let mut inclusion_proof = Vec::with_capacity(n);
        for _ in 0..n {
            inclusion_proof.push(r.field("proof_hash").array()?);
        }
        Ok(Self {
            warrant,
            salt,
            commitment_entry,
            commitment_index,
            checkpoint,
            inclusion_proof,
        })
    }
}

/// The fields an authority signs in an interception request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterceptionRequestFields {
    /// The warrant and its log proof.
    pub logged: LoggedWarrant,
    /// The provider (manifest name) this request is addressed to.
    pub provider: String,
    /// When the authority made the request, Unix seconds.
    pub requested_at: u64,
}

impl AuthorityFields for InterceptionRequestFields {
    const SIGNING_LABEL: &'static [u8] = INTERCEPTION_SIGNING_LABEL;

    fn write(&self) -> Result<Vec<u8>, WireError> {
        let mut w = Writer::with_capacity(2048);
        w.u8(INTERCEPTION_VERSION);
        self.logged.as_ref().write(&mut w)?;
        if self.provider.is_empty() {
            return Err(WireError::InvalidValue {
                field: "provider",
                reason: "must not be empty",
            });
        }
        w.bytes8("provider", self.provider.as_bytes(), MAX_NAME_LEN)?;
        w.u64(self.requested_at);
        Ok(w.into_bytes())
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let version = r.field("version").u8()?;
        if version != INTERCEPTION_VERSION {
            return Err(WireError::UnsupportedVersion {
                format: "interception request",
                version,
                supported: INTERCEPTION_VERSION,
            });
        }
        let logged = LoggedWarrant::read(r)?;
        let provider = r.field("provider").str8(MAX_NAME_LEN)?.to_owned();
        if provider.is_empty() {
            return Err(WireError::InvalidValue {
                field: "provider",
                reason: "must not be empty",
            });
        }
        let requested_at = r.field("requested_at").u64()?;
        Ok(Self {
            logged,
            provider,
            requested_at,
        })
    }
}

/// An authority-signed interception request. Holding one says nothing
/// about its signature: check it with [`AuthoritySigned::verify`].
pub type InterceptionRequest = AuthoritySigned<InterceptionRequestFields>;

/// The message an authority signs to fetch the items kept under the warrant
/// with commitment `commitment`, after item id `after`, at `signed_at` (Unix
/// seconds).
pub fn fetch_message(commitment: &[u8; 32], after: u64, signed_at: u64) -> Vec<u8> {
    let mut msg = Vec::with_capacity(FETCH_SIGNING_LABEL.len() + 48);
    msg.extend_from_slice(FETCH_SIGNING_LABEL);
    msg.extend_from_slice(commitment);
    msg.extend_from_slice(&after.to_be_bytes());
    msg.extend_from_slice(&signed_at.to_be_bytes());
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer as _, SigningKey};

    fn fields() -> InterceptionRequestFields {
        InterceptionRequestFields {
            logged: LoggedWarrant {
                warrant: vec![1; 300],
                salt: [2; 32],
                commitment_entry: vec![3; 400],
                commitment_index: 17,
                checkpoint: b"log.test\n18\nAAAA\n\n".to_vec(),
                inclusion_proof: vec![[4; 32], [5; 32]],
            },
            provider: "provider.test".into(),
            requested_at: 1_728_000_000,
        }
    }

    #[test]
    fn a_signed_request_round_trips_and_verifies_only_under_its_key() {
        let key = SigningKey::from_bytes(&[4; 32]);
        let req = InterceptionRequest::sign(fields(), &key).unwrap();
        let bytes = req.encode().unwrap();
        let again = InterceptionRequest::decode(&bytes).unwrap();
        assert_eq!(again, req);
        again.verify(&key.verifying_key()).unwrap();
        let other = SigningKey::from_bytes(&[5; 32]).verifying_key();
        assert!(again.verify(&other).is_err());
        // A trailing byte, a cut and another version are refused.
        let mut long = bytes.clone();
        long.push(0);
        assert!(InterceptionRequest::decode(&long).is_err());
        assert!(InterceptionRequest::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut v2 = bytes;
        v2[0] = 2;
        assert!(matches!(
            InterceptionRequest::decode(&v2),
            Err(WireError::UnsupportedVersion { .. })
        ));
    }

    #[test]
    fn a_release_request_signature_is_not_an_interception_signature() {
        let key = SigningKey::from_bytes(&[4; 32]);
        let fields = fields();
        let mut bytes = fields.write().unwrap();
        let signature = key.sign(&crate::authority_signed::labelled(
            crate::release::REQUEST_SIGNING_LABEL,
            &bytes,
        ));
        bytes.extend_from_slice(&signature.to_bytes());
        let forged = InterceptionRequest::decode(&bytes).unwrap();
        assert!(forged.verify(&key.verifying_key()).is_err());
    }
}
