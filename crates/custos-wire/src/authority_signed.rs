//! A request an authority signs as a whole: canonical fields, then an
//! Ed25519 signature over `label || fields` with the authority's manifest
//! key. The release request (to a custodian) and the interception request
//! (to the provider) are both of this form, under different labels, so a
//! signature made for one can never be taken for the other.

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::WireError;
use crate::codec::Reader;

/// Fields an authority signs: their domain-separation label and their
/// canonical encoding (version byte first).
pub trait AuthorityFields: Sized {
    /// The label the signature is made over, before the fields.
    const SIGNING_LABEL: &'static [u8];
    /// The canonical encoding of the fields.
    fn write(&self) -> Result<Vec<u8>, WireError>;
    /// Reads the fields, refusing any non-canonical input.
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError>;
}

/// Fields with an authority's signature. Holding one says nothing about
/// its signature: check it with [`AuthoritySigned::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthoritySigned<F> {
    fields: F,
    signature: [u8; 64],
}

/// `label || bytes`: the message a request signature covers.
pub(crate) fn labelled(label: &[u8], bytes: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(label.len() + bytes.len());
    msg.extend_from_slice(label);
    msg.extend_from_slice(bytes);
    msg
}

impl<F: AuthorityFields> AuthoritySigned<F> {
    /// Signs the fields with the authority's manifest key.
    pub fn sign(fields: F, authority: &SigningKey) -> Result<Self, WireError> {
        let signature = authority
            .sign(&labelled(F::SIGNING_LABEL, &fields.write()?))
            .to_bytes();
        Ok(Self { fields, signature })
    }

    /// The signed fields.
    pub fn fields(&self) -> &F {
        &self.fields
    }

    /// Checks the authority's signature (strict Ed25519) over the exact fields.
    pub fn verify(&self, authority: &VerifyingKey) -> Result<(), WireError> {
        crate::signature::verify_strict(
            authority,
            &labelled(F::SIGNING_LABEL, &self.fields.write()?),
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| WireError::InvalidValue {
            field: "signature",
            reason: "authority signature does not verify",
        })
    }

    /// The canonical encoding: the fields, then the 64-byte signature.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let mut bytes = self.fields.write()?;
        bytes.extend_from_slice(&self.signature);
        Ok(bytes)
    }

    /// SHA-256 of the encoded request (a release request's hash is what a
    /// `KeyRelease` names and the response's associated data).
    pub fn hash(&self) -> Result<[u8; 32], WireError> {
        Ok(Sha256::digest(self.encode()?).into())
    }

    /// Decodes one request, refusing any non-canonical input. Does not check
    /// the signature.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let fields = F::read(&mut r)?;
        let signature = r.field("signature").array()?;
        r.finish()?;
        Ok(Self { fields, signature })
    }
}
